//! Signatures, body encryption and sealed envelopes.
//!
//! Every signature and every encryption carries one of the constant purpose labels below,
//! so bytes signed or sealed for one purpose never verify or open for another. This module
//! never decides *whether* something should be trusted (that is `conversation` and `sync`);
//! it only answers whether bytes are authentic.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, VerifyingKey};
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::identity::{Identity, UserId};

pub const LABEL_PROFILE: &[u8] = b"flurfunk/v1/profile";
pub const LABEL_EVENT_SIGNATURE: &[u8] = b"flurfunk/v1/event-signature";
pub const LABEL_EVENT_ID: &[u8] = b"flurfunk/v1/event-id";
pub const LABEL_EVENT_BODY: &[u8] = b"flurfunk/v1/event-body";
pub const LABEL_SEALED_KEY: &[u8] = b"flurfunk/v1/sealed-epoch-key";
pub const LABEL_DIRECT_CONVERSATION: &[u8] = b"flurfunk/v1/direct-conversation";
pub const LABEL_GROUP_CONVERSATION: &[u8] = b"flurfunk/v1/group-conversation";
pub const LABEL_SAFETY_NUMBER: &[u8] = b"flurfunk/v1/safety-number";
pub const LABEL_RECEIPT: &[u8] = b"flurfunk/v1/group-receipt";
pub const LABEL_VV_DIGEST: &[u8] = b"flurfunk/v1/version-vector-digest";
pub const LABEL_KEY_COMMITMENT: &[u8] = b"flurfunk/v2/key-commitment";

const NOISE_PARAMS: &str = "Noise_X_25519_ChaChaPoly_BLAKE2s";
/// Noise X message overhead: ephemeral key (32) + encrypted static key (32 + 16) + tag (16).
pub const SEAL_OVERHEAD: usize = 32 + 48 + 16;
/// Nonce (24) + Poly1305 tag (16) added to every encrypted body.
pub const BODY_OVERHEAD: usize = 24 + 16;
/// A sealed payload is at most this long (epoch keys are 32 bytes plus a small header);
/// Noise caps messages at 65535 bytes anyway.
pub const MAX_SEALED_PAYLOAD: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("signature does not verify")]
    BadSignature,
    #[error("ciphertext does not decrypt (wrong key or tampered)")]
    Decrypt,
    #[error("sealed envelope does not open")]
    Unseal,
    #[error("payload of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
}

/// `len(label) || label || msg`: the exact bytes signed for a purpose.
pub fn labelled(label: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + label.len() + msg.len());
    out.push(label.len() as u8);
    out.extend_from_slice(label);
    out.extend_from_slice(msg);
    out
}

pub fn verify(
    user: &UserId,
    label: &[u8],
    msg: &[u8],
    signature: &[u8; 64],
) -> Result<(), CryptoError> {
    let key = user.verifying_key().ok_or(CryptoError::BadSignature)?;
    let sig = Signature::from_bytes(signature);
    key.verify_strict(&labelled(label, msg), &sig)
        .map_err(|_| CryptoError::BadSignature)
}

/// Verify many signatures of the same purpose at once (about twice as fast as one by one).
/// Returns `Ok` only if all verify; callers fall back to `verify` to find the bad ones.
pub fn verify_batch(
    label: &[u8],
    items: &[(&UserId, &[u8], &[u8; 64])],
) -> Result<(), CryptoError> {
    let mut messages = Vec::with_capacity(items.len());
    let mut signatures = Vec::with_capacity(items.len());
    let mut keys: Vec<VerifyingKey> = Vec::with_capacity(items.len());
    for (user, msg, sig) in items {
        keys.push(user.verifying_key().ok_or(CryptoError::BadSignature)?);
        messages.push(labelled(label, msg));
        signatures.push(Signature::from_bytes(sig));
    }
    let refs: Vec<&[u8]> = messages.iter().map(|m| m.as_slice()).collect();
    ed25519_dalek::verify_batch(&refs, &signatures, &keys).map_err(|_| CryptoError::BadSignature)
}

/// A conversation key for one epoch.
#[derive(Clone)]
pub struct EpochKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EpochKey(..)")
    }
}

impl PartialEq for EpochKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_ref() == other.0.as_ref()
    }
}

impl EpochKey {
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        EpochKey(key)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        EpochKey(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Encrypt an event body. `aad` is the event header; the label is bound in as well.
    pub fn encrypt<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        let aad = labelled(LABEL_EVENT_BODY, aad);
        let mut out = Vec::with_capacity(BODY_OVERHEAD + plaintext.len());
        out.extend_from_slice(&nonce);
        // Encryption with a valid key and in-memory buffers cannot fail.
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        out.extend_from_slice(&ct);
        out
    }

    pub fn decrypt(&self, aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if ciphertext.len() < BODY_OVERHEAD {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ct) = ciphertext.split_at(24);
        let cipher = XChaCha20Poly1305::new(self.0.as_ref().into());
        let aad = labelled(LABEL_EVENT_BODY, aad);
        cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| CryptoError::Decrypt)
    }
}

/// Seal `payload` to `recipient_dh_public` so only its owner can open it, and the opener
/// learns (authenticated) which static key sealed it. One Noise_X message.
pub fn seal(
    sender: &Identity,
    recipient_dh_public: &[u8; 32],
    payload: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if payload.len() > MAX_SEALED_PAYLOAD {
        return Err(CryptoError::TooLarge {
            len: payload.len(),
            max: MAX_SEALED_PAYLOAD,
        });
    }
    let params = NOISE_PARAMS.parse().map_err(|_| CryptoError::Unseal)?;
    let mut hs = snow::Builder::new(params)
        .local_private_key(sender.dh_secret())
        .and_then(|b| b.remote_public_key(recipient_dh_public))
        .and_then(|b| b.prologue(LABEL_SEALED_KEY))
        .and_then(|b| b.build_initiator())
        .map_err(|_| CryptoError::Unseal)?;
    let mut out = vec![0u8; payload.len() + SEAL_OVERHEAD];
    let len = hs
        .write_message(payload, &mut out)
        .map_err(|_| CryptoError::Unseal)?;
    out.truncate(len);
    Ok(out)
}

/// Open a sealed envelope. Returns the sender's static X25519 key and the payload; the
/// caller must check that key against the sender's signed profile.
pub fn open(recipient: &Identity, sealed: &[u8]) -> Result<([u8; 32], Vec<u8>), CryptoError> {
    if sealed.len() < SEAL_OVERHEAD || sealed.len() > MAX_SEALED_PAYLOAD + SEAL_OVERHEAD {
        return Err(CryptoError::Unseal);
    }
    let params = NOISE_PARAMS.parse().map_err(|_| CryptoError::Unseal)?;
    let mut hs = snow::Builder::new(params)
        .local_private_key(recipient.dh_secret())
        .and_then(|b| b.prologue(LABEL_SEALED_KEY))
        .and_then(|b| b.build_responder())
        .map_err(|_| CryptoError::Unseal)?;
    let mut payload = vec![0u8; sealed.len()];
    let len = hs
        .read_message(sealed, &mut payload)
        .map_err(|_| CryptoError::Unseal)?;
    payload.truncate(len);
    let remote = hs.get_remote_static().ok_or(CryptoError::Unseal)?;
    let mut sender = [0u8; 32];
    if remote.len() != 32 {
        return Err(CryptoError::Unseal);
    }
    sender.copy_from_slice(remote);
    Ok((sender, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ids() -> (Identity, Identity, Identity) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        (
            Identity::generate(&mut rng, "A").unwrap(),
            Identity::generate(&mut rng, "B").unwrap(),
            Identity::generate(&mut rng, "C").unwrap(),
        )
    }

    #[test]
    fn signature_is_bound_to_its_purpose() {
        let (a, _, _) = ids();
        let sig = a.sign(LABEL_EVENT_SIGNATURE, b"hello");
        verify(&a.user_id(), LABEL_EVENT_SIGNATURE, b"hello", &sig).unwrap();
        assert_eq!(
            verify(&a.user_id(), LABEL_PROFILE, b"hello", &sig),
            Err(CryptoError::BadSignature)
        );
        assert!(verify(&a.user_id(), LABEL_EVENT_SIGNATURE, b"hellO", &sig).is_err());
    }

    #[test]
    fn batch_verify_catches_one_bad_signature() {
        let (a, b, _) = ids();
        let s1 = a.sign(LABEL_EVENT_SIGNATURE, b"one");
        let s2 = b.sign(LABEL_EVENT_SIGNATURE, b"two");
        let (ua, ub) = (a.user_id(), b.user_id());
        let good: Vec<(&UserId, &[u8], &[u8; 64])> =
            vec![(&ua, b"one".as_slice(), &s1), (&ub, b"two".as_slice(), &s2)];
        verify_batch(LABEL_EVENT_SIGNATURE, &good).unwrap();
        let bad: Vec<(&UserId, &[u8], &[u8; 64])> =
            vec![(&ua, b"one".as_slice(), &s1), (&ua, b"two".as_slice(), &s2)];
        assert!(verify_batch(LABEL_EVENT_SIGNATURE, &bad).is_err());
    }

    #[test]
    fn seal_opens_only_for_recipient_and_names_sender() {
        let (a, b, c) = ids();
        let sealed = seal(&a, &b.dh_public(), b"epoch key").unwrap();
        let (sender, payload) = open(&b, &sealed).unwrap();
        assert_eq!(sender, a.dh_public());
        assert_eq!(payload, b"epoch key");
        assert_eq!(open(&c, &sealed), Err(CryptoError::Unseal));
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(open(&b, &t).is_err(), "flip at {i} opened");
        }
        assert!(open(&b, &sealed[..10]).is_err());
    }

    #[test]
    fn body_encryption_binds_header() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let key = EpochKey::generate(&mut rng);
        let ct = key.encrypt(&mut rng, b"header", b"Guten Morgen");
        assert_eq!(key.decrypt(b"header", &ct).unwrap(), b"Guten Morgen");
        assert_eq!(key.decrypt(b"headeR", &ct), Err(CryptoError::Decrypt));
        let other = EpochKey::generate(&mut rng);
        assert_eq!(other.decrypt(b"header", &ct), Err(CryptoError::Decrypt));
        assert_eq!(format!("{key:?}"), "EpochKey(..)");
    }
}
