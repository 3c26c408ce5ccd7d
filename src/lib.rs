//! Flurfunk: a serverless, end-to-end encrypted messenger for a town hall's LAN.
//!
//! Module map (dependencies point down the list only):
//! - [`platform`]: what differs between OSes: data folder, key protection at rest (DPAPI),
//!   machine-wide files, Windows ids and security descriptors.
//! - [`identity`]: user keys, signed profiles, key files, safety numbers.
//! - [`crypto`]: purpose-labelled signatures (one strict rule), body encryption, key wraps
//!   for many recipients and the proofs around them.
//! - [`wire`]: the one canonical, versioned, size-limited encoding of everything.
//! - [`conversation`]: membership rules and per-conversation state, pure.
//! - [`store`]: the `Store` trait with sled and in-memory implementations.
//! - [`sync`]: the pure sync engine (anti-entropy, store-and-forward, receipts).
//! - [`net`]: libp2p transport (TCP, pnet network key, Noise, yamux), frames, codec.
//! - [`node`]: the tokio task that owns the swarm and the engine, and its handle.
//! - [`app`]: requests in users' words (names, groups), the control socket, data-dir layout,
//!   starting a node for a data directory (`app::launch`).
//! - [`gui`]: the desktop app (egui/eframe), a thin view over the node handle.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod app;
pub mod conversation;
pub mod crypto;
pub mod files;
#[cfg(feature = "gui")]
pub mod gui;
pub mod identity;
pub mod net;
pub mod node;
pub mod platform;
pub mod store;
pub mod sync;
pub mod wire;
