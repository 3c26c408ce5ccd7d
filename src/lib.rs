//! Flurfunk: a serverless, end-to-end encrypted messenger for a town hall's LAN.
//!
//! Module map (dependencies point down the list only):
//! - [`identity`]: user keys, signed profiles, key files, safety numbers.
//! - [`crypto`]: purpose-labelled signatures, body encryption, Noise-sealed envelopes.
//! - [`wire`]: the one canonical, versioned, size-limited encoding of everything.
//! - [`conversation`]: membership rules and per-conversation state, pure.
//! - [`store`]: the `Store` trait with sled and in-memory implementations.
//! - [`sync`]: the pure sync engine (anti-entropy, store-and-forward, receipts).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod conversation;
pub mod crypto;
pub mod identity;
pub mod store;
pub mod sync;
pub mod wire;
