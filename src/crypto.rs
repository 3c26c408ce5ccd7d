//! Signatures, body encryption, key wraps and proofs of a shared secret.
//!
//! Every signature and every encryption carries one of the constant purpose labels below,
//! so bytes signed or sealed for one purpose never verify or open for another. This module
//! never decides *whether* something should be trusted (that is `conversation` and `sync`);
//! it only answers whether bytes are authentic.

use std::fmt;

use blake2::digest::consts::U32;
use blake2::{Blake2b, Blake2b512, Digest};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::{Scalar, clamp_integer};
use ed25519_dalek::{Signature, VerifyingKey};
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::identity::UserId;

pub const LABEL_PROFILE: &[u8] = b"flurfunk/v1/profile";
pub const LABEL_EVENT_SIGNATURE: &[u8] = b"flurfunk/v1/event-signature";
pub const LABEL_EVENT_ID: &[u8] = b"flurfunk/v1/event-id";
/// Hash of an event's sealed body, which its signature and id cover (wire version 5).
pub const LABEL_BODY_HASH: &[u8] = b"flurfunk/v1/body-hash";
pub const LABEL_EVENT_BODY: &[u8] = b"flurfunk/v1/event-body";
pub const LABEL_SEALED_KEY: &[u8] = b"flurfunk/v1/sealed-epoch-key";
pub const LABEL_DIRECT_CONVERSATION: &[u8] = b"flurfunk/v1/direct-conversation";
pub const LABEL_GROUP_CONVERSATION: &[u8] = b"flurfunk/v1/group-conversation";
pub const LABEL_SAFETY_NUMBER: &[u8] = b"flurfunk/v1/safety-number";
pub const LABEL_RECEIPT: &[u8] = b"flurfunk/v1/group-receipt";
pub const LABEL_VV_DIGEST: &[u8] = b"flurfunk/v1/version-vector-digest";
pub const LABEL_KEY_COMMITMENT: &[u8] = b"flurfunk/v2/key-commitment";
pub const LABEL_KEY_WRAP: &[u8] = b"flurfunk/v3/key-wrap";
pub const LABEL_SHARED_PROOF: &[u8] = b"flurfunk/v3/shared-secret-proof";
pub const LABEL_EPHEMERAL_PROOF: &[u8] = b"flurfunk/v3/ephemeral-key-proof";
pub const LABEL_PROOF_NONCE: &[u8] = b"flurfunk/v3/proof-nonce";
/// Derives the key that seals a node's opened epoch keys in its own store.
pub const LABEL_AT_REST: &[u8] = b"flurfunk/v1/at-rest-key";
/// Associated data of an epoch key sealed in the store (with its rekey's id).
pub const LABEL_RECALLED_KEY: &[u8] = b"flurfunk/v1/recalled-epoch-key";
/// A managed network's wire key, derived from its key file's key and admin key.
pub const LABEL_MANAGED_NETWORK: &[u8] = b"flurfunk/v1/managed-network-key";
/// The network's admin key certifying a relay (`wire::RelayCertificate`).
pub const LABEL_RELAY_CERTIFICATE: &[u8] = b"flurfunk/v1/relay-certificate";
/// The network's admin key signing a statement (`wire::AdminStatement`).
pub const LABEL_ADMIN_STATEMENT: &[u8] = b"flurfunk/v1/admin-statement";

/// Nonce (24) + Poly1305 tag (16) added to every encrypted body.
pub const BODY_OVERHEAD: usize = 24 + 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("signature does not verify")]
    BadSignature,
    #[error("ciphertext does not decrypt (wrong key or tampered)")]
    Decrypt,
    #[error("X25519 public key is not canonical or of small order")]
    WeakKey,
}

/// Whether `u` is an acceptable X25519 public key for a profile: a canonical encoding
/// (high bit clear, below p) of a point on the curve (not the twist) that is not of small
/// order. The seven encodings libsodium refuses (0, 1, the two points of order 8, p-1, p,
/// p+1) fail here, as do the other non-canonical ones. A wrap for a small-order key is
/// readable from public bytes alone (the shared secret is fixed), so a member could
/// otherwise make a group key public while every rule looked satisfied.
pub fn dh_public_is_valid(u: &[u8; 32]) -> bool {
    const P_LOW_BYTE: u8 = 0xed;
    let below_p =
        u[31] < 0x7f || u[1..31].iter().any(|b| *b != 0xff) || (u[31] == 0x7f && u[0] < P_LOW_BYTE);
    u[31] & 0x80 == 0
        && below_p
        && MontgomeryPoint(*u)
            .to_edwards(0)
            .is_some_and(|p| !p.is_small_order())
}

/// Whether an X25519 shared secret carries the contribution of both keys (RFC 7748 §6.1):
/// all zeros means the peer's key was of small order.
fn contributory(shared: &[u8; 32]) -> bool {
    shared.iter().any(|b| *b != 0)
}

/// `len(label) || label || msg`: the exact bytes signed for a purpose.
pub fn labelled(label: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + label.len() + msg.len());
    out.push(label.len() as u8);
    out.extend_from_slice(label);
    out.extend_from_slice(msg);
    out
}

/// The one signature rule, on every path: RFC 8032 verification in its strict form
/// (`verify_strict`: no small-order key or R, R compared as an encoding, so a signature with
/// a torsion component is refused). Every event, profile and receipt is checked alone with
/// it. There is deliberately no batch check: ed25519-dalek's batch equation is
/// cofactorless, weighted by values derived from the batch, and skips the small-order
/// checks, so a signature whose R carries a point of order 2 passed about half the batches
/// it was in while failing alone; honest nodes disagreed on validity and an honest
/// forwarder could be charged as a forger. (A strict check costs about 26 µs more per
/// event than a batched one; see docs/PROTOCOL.md.)
pub fn verify(
    user: &UserId,
    label: &[u8],
    msg: &[u8],
    signature: &[u8; 64],
) -> Result<(), CryptoError> {
    verify_with_key(&user.0, label, msg, signature)
}

/// `verify` for a key that is not a user's (the network's admin key).
pub fn verify_with_key(
    key: &[u8; 32],
    label: &[u8],
    msg: &[u8],
    signature: &[u8; 64],
) -> Result<(), CryptoError> {
    let key = VerifyingKey::from_bytes(key).map_err(|_| CryptoError::BadSignature)?;
    let sig = Signature::from_bytes(signature);
    key.verify_strict(&labelled(label, msg), &sig)
        .map_err(|_| CryptoError::BadSignature)
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

/// Wraps one epoch key for many recipients with a single ephemeral key (a rekey's public
/// part): 32 bytes per recipient. There is no tag: the rekey's public commitment is what
/// a recipient checks the unwrapped key against, and the event's signature names the
/// author. Should the author hand one recipient a key that does not match, that recipient
/// can prove it (`prove_shared`): anyone then computes its unwrapped key and sees the
/// mismatch.
pub struct KeyWrapper {
    secret: Zeroizing<[u8; 32]>,
    /// The ephemeral public key: a torsion-free Edwards25519 point, compressed.
    pub ephemeral: [u8; 32],
}

impl KeyWrapper {
    pub fn new<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(secret.as_mut());
        let ephemeral = EdwardsPoint::mul_base_clamped(*secret)
            .compress()
            .to_bytes();
        KeyWrapper { secret, ephemeral }
    }

    /// `key` wrapped for the holder of X25519 key `recipient_dh_public`. `context` names
    /// what the key is for (conversation, author, epoch).
    /// None if that key is not a valid public key (`dh_public_is_valid`): a wrap for it
    /// would be readable by anyone.
    pub fn wrap(
        &self,
        context: &[u8],
        recipient_dh_public: &[u8; 32],
        key: &[u8; 32],
    ) -> Option<[u8; 32]> {
        if !dh_public_is_valid(recipient_dh_public) {
            return None;
        }
        let shared = Zeroizing::new(
            MontgomeryPoint(*recipient_dh_public)
                .mul_clamped(*self.secret)
                .to_bytes(),
        );
        if !contributory(&shared) {
            return None;
        }
        let pad = wrap_pad(context, &self.ephemeral, recipient_dh_public, &shared);
        Some(xor32(key, &pad))
    }

    /// A Schnorr proof that the author knows the ephemeral secret, bound to `context`
    /// (what the rekey commits to). Without it a member could copy someone else's
    /// ephemeral key into a rekey of its own, hand a victim a wrong wrap, and make the
    /// victim's complaint disclose its shared secret with that other key.
    pub fn prove_possession<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        context: &[u8],
    ) -> [u8; 64] {
        let e = Zeroizing::new(Scalar::from_bytes_mod_order(clamp_integer(*self.secret)));
        let k = Zeroizing::new(nonce(rng, &[self.secret.as_slice(), context]));
        let r = EdwardsPoint::mul_base(&k);
        let public = EdwardsPoint::mul_base(&e);
        let c = challenge(LABEL_EPHEMERAL_PROOF, context, &[&public, &r]);
        let z = *k + c * *e;
        let mut proof = [0u8; 64];
        proof[..32].copy_from_slice(c.as_bytes());
        proof[32..].copy_from_slice(z.as_bytes());
        proof
    }
}

/// Whether `proof` shows that whoever made `ephemeral` knows its secret (`prove_possession`).
pub fn verify_possession(ephemeral: &[u8; 32], context: &[u8], proof: &[u8; 64]) -> bool {
    let Some(e) = ephemeral_point(ephemeral) else {
        return false;
    };
    let Some((c, z)) = scalars(proof) else {
        return false;
    };
    let r = EdwardsPoint::mul_base(&z) - c * e;
    challenge(LABEL_EPHEMERAL_PROOF, context, &[&e, &r]) == c
}

/// The challenge and the response of a proof, if both are canonical scalars.
fn scalars(proof: &[u8; 64]) -> Option<(Scalar, Scalar)> {
    let mut c = [0u8; 32];
    c.copy_from_slice(&proof[..32]);
    let mut z = [0u8; 32];
    z.copy_from_slice(&proof[32..]);
    let c = Option::<Scalar>::from(Scalar::from_canonical_bytes(c))?;
    let z = Option::<Scalar>::from(Scalar::from_canonical_bytes(z))?;
    Some((c, z))
}

/// A proof's nonce: hedged, from fresh randomness and the secret and what is proven, so
/// neither a weak RNG nor a repeated one alone discloses the secret.
fn nonce<R: RngCore + CryptoRng>(rng: &mut R, parts: &[&[u8]]) -> Scalar {
    let mut fresh = Zeroizing::new([0u8; 64]);
    rng.fill_bytes(fresh.as_mut());
    let mut h = Blake2b512::new();
    h.update(labelled(LABEL_PROOF_NONCE, fresh.as_slice()));
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// The ephemeral key of a wrap, if it is a valid torsion-free point (a rekey whose
/// ephemeral key is not is invalid: nobody could open it, nor prove that).
fn ephemeral_point(ephemeral: &[u8; 32]) -> Option<EdwardsPoint> {
    // Canonical encodings only, so prover and verifier hash the same bytes.
    CompressedEdwardsY(*ephemeral).decompress().filter(|p| {
        p.is_torsion_free() && *p != EdwardsPoint::default() && p.compress().0 == *ephemeral
    })
}

/// Whether `ephemeral` is acceptable as a wrap's ephemeral key.
pub fn ephemeral_is_valid(ephemeral: &[u8; 32]) -> bool {
    ephemeral_point(ephemeral).is_some()
}

/// One of a node's X25519 keys (the current one or one retired by a key update).
#[derive(Clone, Copy)]
pub struct DhKey<'a> {
    pub secret: &'a [u8; 32],
    pub public: [u8; 32],
}

impl fmt::Debug for DhKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DhKey(..)")
    }
}

/// The key `wrapped` holds for the owner of `me`.
pub fn unwrap_key(
    me: DhKey<'_>,
    context: &[u8],
    ephemeral: &[u8; 32],
    wrapped: &[u8; 32],
) -> Option<[u8; 32]> {
    let e = ephemeral_point(ephemeral)?;
    let shared = Zeroizing::new(e.to_montgomery().mul_clamped(*me.secret).to_bytes());
    if !contributory(&shared) {
        return None;
    }
    let pad = wrap_pad(context, ephemeral, &me.public, &shared);
    Some(xor32(wrapped, &pad))
}

/// The key `wrapped` holds for the owner of `dh_public`, given the shared secret a
/// verified proof disclosed (`verify_shared`).
pub fn unwrap_with_shared(
    shared: &[u8; 32],
    context: &[u8],
    ephemeral: &[u8; 32],
    dh_public: &[u8; 32],
    wrapped: &[u8; 32],
) -> [u8; 32] {
    xor32(wrapped, &wrap_pad(context, ephemeral, dh_public, shared))
}

fn wrap_pad(
    context: &[u8],
    ephemeral: &[u8; 32],
    dh_public: &[u8; 32],
    shared: &[u8; 32],
) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    h.update(labelled(LABEL_KEY_WRAP, context));
    h.update(ephemeral);
    h.update(dh_public);
    h.update(shared);
    h.finalize().into()
}

fn xor32(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    out
}

/// A recipient's shared secret with a wrap's ephemeral key, disclosed with a proof that it
/// is the right one (a Chaum-Pedersen proof that `point` = x * E for the x with
/// x * B = the recipient's public key). It opens that one wrap for everyone, and nothing
/// else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedProof {
    /// x * E, a compressed Edwards25519 point.
    pub point: [u8; 32],
    /// The challenge and the response, canonical scalars.
    pub proof: [u8; 64],
}

/// Disclose `me`'s shared secret with `ephemeral`, with its proof. `context` binds the
/// proof to what it is about (the rekey). None if `ephemeral` is not a valid point.
pub fn prove_shared<R: RngCore + CryptoRng>(
    rng: &mut R,
    me: DhKey<'_>,
    context: &[u8],
    ephemeral: &[u8; 32],
) -> Option<SharedProof> {
    let e = ephemeral_point(ephemeral)?;
    let public = MontgomeryPoint(me.public).to_edwards(0)?;
    let mut x = Zeroizing::new(Scalar::from_bytes_mod_order(clamp_integer(*me.secret)));
    if EdwardsPoint::mul_base(&x) != public {
        // The other lift of the same u-coordinate; u(-S) = u(S), so the secret is the same.
        *x = -*x;
    }
    let point = *x * e;
    let k = Zeroizing::new(nonce(rng, &[me.secret.as_slice(), context, ephemeral]));
    let c = challenge(
        LABEL_SHARED_PROOF,
        context,
        &[&public, &e, &point, &EdwardsPoint::mul_base(&k), &(*k * e)],
    );
    let z = *k + c * *x;
    let mut proof = [0u8; 64];
    proof[..32].copy_from_slice(c.as_bytes());
    proof[32..].copy_from_slice(z.as_bytes());
    Some(SharedProof {
        point: point.compress().to_bytes(),
        proof,
    })
}

/// The shared secret of the owner of `dh_public` with `ephemeral`, if `proof` shows it is
/// the right one.
pub fn verify_shared(
    dh_public: &[u8; 32],
    context: &[u8],
    ephemeral: &[u8; 32],
    proof: &SharedProof,
) -> Option<[u8; 32]> {
    if !dh_public_is_valid(dh_public) {
        return None;
    }
    let public = MontgomeryPoint(*dh_public)
        .to_edwards(0)
        .filter(EdwardsPoint::is_torsion_free)?;
    let e = ephemeral_point(ephemeral)?;
    let point = ephemeral_point(&proof.point)?;
    let (c, z) = scalars(&proof.proof)?;
    let a1 = EdwardsPoint::mul_base(&z) - c * public;
    let a2 = z * e - c * point;
    (challenge(
        LABEL_SHARED_PROOF,
        context,
        &[&public, &e, &point, &a1, &a2],
    ) == c)
        .then(|| point.to_montgomery().to_bytes())
}

/// Fiat-Shamir challenge over a purpose label, a context and points. Every field is
/// framed: the label and the context carry their lengths, the points are 32 bytes each and
/// their number is fixed per label.
fn challenge(label: &[u8], context: &[u8], points: &[&EdwardsPoint]) -> Scalar {
    let mut h = Blake2b512::new();
    h.update(labelled(label, &[]));
    h.update((context.len() as u64).to_be_bytes());
    h.update(context);
    for p in points {
        h.update(p.compress().as_bytes());
    }
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
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
    fn a_wrap_opens_for_each_recipient_only() {
        let (a, b, c) = ids();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let wrapper = KeyWrapper::new(&mut rng);
        let key = [7u8; 32];
        for r in [&a, &b] {
            let wrapped = wrapper.wrap(b"ctx", &r.dh_public(), &key).unwrap();
            assert_eq!(
                unwrap_key(r.dh_key(), b"ctx", &wrapper.ephemeral, &wrapped),
                Some(key)
            );
            assert_ne!(
                unwrap_key(c.dh_key(), b"ctx", &wrapper.ephemeral, &wrapped),
                Some(key)
            );
            assert_ne!(
                unwrap_key(r.dh_key(), b"ctX", &wrapper.ephemeral, &wrapped),
                Some(key)
            );
        }
        // Not a point, a point of small order, the identity: refused.
        assert!(!ephemeral_is_valid(&[0xff; 32]));
        assert!(!ephemeral_is_valid(&[0; 32]));
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(!ephemeral_is_valid(&identity));
        assert!(ephemeral_is_valid(&wrapper.ephemeral));
        // A non-canonical encoding (y = 1 + p, the identity again): refused.
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        assert!(CompressedEdwardsY(non_canonical).decompress().is_some());
        assert!(!ephemeral_is_valid(&non_canonical));
    }

    #[test]
    fn only_the_maker_of_an_ephemeral_key_can_prove_it() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let wrapper = KeyWrapper::new(&mut rng);
        let proof = wrapper.prove_possession(&mut rng, b"rekey 1");
        assert!(verify_possession(&wrapper.ephemeral, b"rekey 1", &proof));
        // Copied into another rekey (another context): refused.
        assert!(!verify_possession(&wrapper.ephemeral, b"rekey 2", &proof));
        // Another key's proof: refused.
        let other = KeyWrapper::new(&mut rng);
        assert!(!verify_possession(&other.ephemeral, b"rekey 1", &proof));
        for i in 0..64 {
            let mut t = proof;
            t[i] ^= 0x01;
            assert!(!verify_possession(&wrapper.ephemeral, b"rekey 1", &t));
        }
    }

    #[test]
    fn a_proof_of_the_shared_secret_verifies_for_its_owner_only() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let wrapper = KeyWrapper::new(&mut rng);
        let key = [9u8; 32];
        // Several identities, so both lifts of a u-coordinate are met.
        for n in 0..12 {
            let me = Identity::generate(&mut rng, &format!("M{n}")).unwrap();
            let other = Identity::generate(&mut rng, "O").unwrap();
            let wrapped = wrapper.wrap(b"ctx", &me.dh_public(), &key).unwrap();
            let proof = prove_shared(&mut rng, me.dh_key(), b"rekey", &wrapper.ephemeral).unwrap();
            let shared = verify_shared(&me.dh_public(), b"rekey", &wrapper.ephemeral, &proof)
                .expect("an honest proof verifies");
            assert_eq!(
                unwrap_with_shared(
                    &shared,
                    b"ctx",
                    &wrapper.ephemeral,
                    &me.dh_public(),
                    &wrapped
                ),
                key
            );
            assert_eq!(
                verify_shared(&other.dh_public(), b"rekey", &wrapper.ephemeral, &proof),
                None
            );
            assert_eq!(
                verify_shared(&me.dh_public(), b"other", &wrapper.ephemeral, &proof),
                None
            );
            for i in 0..32 {
                let mut t = proof.clone();
                t.point[i] ^= 0x01;
                assert_eq!(
                    verify_shared(&me.dh_public(), b"rekey", &wrapper.ephemeral, &t),
                    None
                );
            }
            for i in 0..64 {
                let mut t = proof.clone();
                t.proof[i] ^= 0x01;
                assert_eq!(
                    verify_shared(&me.dh_public(), b"rekey", &wrapper.ephemeral, &t),
                    None
                );
            }
            // Someone else's secret, claimed as `me`'s: refused.
            let theirs =
                prove_shared(&mut rng, other.dh_key(), b"rekey", &wrapper.ephemeral).unwrap();
            assert_eq!(
                verify_shared(&me.dh_public(), b"rekey", &wrapper.ephemeral, &theirs),
                None
            );
        }
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
