//! The body of a network key rotation (admin statement kind 4, docs/PROTOCOL.md,
//! "Network key rotation"): the next network key, sealed by the admin to each colleague
//! it vouches for, and when it takes over.
//!
//! Only the seal and its check live here; what a node does with the key (which keys its
//! listener accepts when) is `net::pnet_ring` and the node's.

use super::{Reader, WireError, Writer};
use crate::crypto::{self, DhKey, KeyWrapper};
use crate::identity::UserId;

/// Colleagues one rotation seals the key to at most (64 bytes each: 256 KiB, within a
/// statement's body).
pub const MAX_KEY_RECIPIENTS: usize = 4096;
/// The longest overlap a rotation may ask for: nodes accept the old key this long at
/// most after the switch, so a rotation that shuts a colleague out cannot be stretched
/// into one that never does.
pub const MAX_OVERLAP_MS: u64 = 30 * 24 * 3600 * 1000;
const LABEL_NETWORK_KEY_COMMITMENT: &[u8] = b"flurfunk/v1/network-key-commitment";
const LABEL_NETWORK_KEY_WRAP: &[u8] = b"flurfunk/v1/network-key-wrap";
const LABEL_NETWORK_KEY_ID: &[u8] = b"flurfunk/v1/network-key-id";

/// Names a wire key without disclosing it (`NetworkKeyRotation::replaces`).
pub fn wire_key_id(wire_key: &[u8; 32]) -> [u8; 16] {
    let hash = super::hash32(&[&crypto::labelled(LABEL_NETWORK_KEY_ID, wire_key)]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&hash[..16]);
    id
}

/// The next network key for the colleagues it names (`wraps`), and its phases by the
/// nodes' own clocks: before `switch_at_ms` nodes dial with the old key and accept both,
/// until `overlap_until_ms` they dial with the new one (the old where it is refused) and
/// accept both, then the new one only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkKeyRotation {
    pub switch_at_ms: u64,
    pub overlap_until_ms: u64,
    /// The wire key this one replaces (`wire_key_id`): only a node that holds that key
    /// accepts it beside the new one during the overlap (one that holds an older key,
    /// e.g. an installed file two rotations old, accepts only the new one).
    pub replaces: [u8; 16],
    /// A hash of the new file key (`commitment`): what an unwrapped key is checked
    /// against (a wrap has no tag).
    pub commitment: [u8; 32],
    pub ephemeral: [u8; 32],
    /// Per colleague, strictly ascending: the new file key wrapped to its X25519 key.
    pub wraps: Vec<(UserId, [u8; 32])>,
}

/// The commitment to a new file key in the rotation of `serial` by `admin`.
pub fn commitment(admin: &[u8; 32], serial: u64, key: &[u8; 32]) -> [u8; 32] {
    let mut input = Vec::with_capacity(72);
    input.extend_from_slice(admin);
    input.extend_from_slice(&serial.to_be_bytes());
    input.extend_from_slice(key);
    super::hash32(&[&crypto::labelled(LABEL_NETWORK_KEY_COMMITMENT, &input)])
}

fn wrap_context(admin: &[u8; 32], serial: u64, commitment: &[u8; 32]) -> Vec<u8> {
    let mut input = Vec::with_capacity(72);
    input.extend_from_slice(admin);
    input.extend_from_slice(&serial.to_be_bytes());
    input.extend_from_slice(commitment);
    crypto::labelled(LABEL_NETWORK_KEY_WRAP, &input)
}

impl NetworkKeyRotation {
    /// Seal `key` to `recipients` (user id, X25519 public key); a recipient whose key is
    /// not a valid public key is left out and returned.
    #[allow(clippy::too_many_arguments)]
    pub fn seal<R: rand::RngCore + rand::CryptoRng>(
        rng: &mut R,
        admin: &[u8; 32],
        serial: u64,
        key: &[u8; 32],
        recipients: &[(UserId, [u8; 32])],
        replaces: [u8; 16],
        switch_at_ms: u64,
        overlap_until_ms: u64,
    ) -> (Self, Vec<UserId>) {
        let commitment = commitment(admin, serial, key);
        let context = wrap_context(admin, serial, &commitment);
        let wrapper = KeyWrapper::new(rng);
        let mut wraps = Vec::with_capacity(recipients.len());
        let mut left_out = Vec::new();
        let mut sorted: Vec<&(UserId, [u8; 32])> = recipients.iter().collect();
        sorted.sort_by_key(|(user, _)| *user);
        sorted.dedup_by_key(|(user, _)| *user);
        for (user, dh_public) in sorted {
            match wrapper.wrap(&context, dh_public, key) {
                Some(wrapped) => wraps.push((*user, wrapped)),
                None => left_out.push(*user),
            }
        }
        let rotation = NetworkKeyRotation {
            switch_at_ms,
            overlap_until_ms,
            replaces,
            commitment,
            ephemeral: wrapper.ephemeral,
            wraps,
        };
        (rotation, left_out)
    }

    /// The new file key for `user`, tried with each of its X25519 keys (a colleague may
    /// have replaced its key since the admin's node saw it); None if the rotation names
    /// it not, or no key opens a wrap that matches the commitment.
    pub fn open(
        &self,
        admin: &[u8; 32],
        serial: u64,
        user: &UserId,
        keys: &[DhKey<'_>],
    ) -> Option<[u8; 32]> {
        let i = self.wraps.binary_search_by_key(user, |(u, _)| *u).ok()?;
        let wrapped = &self.wraps[i].1;
        let context = wrap_context(admin, serial, &self.commitment);
        keys.iter().find_map(|k| {
            let key = crypto::unwrap_key(*k, &context, &self.ephemeral, wrapped)?;
            (commitment(admin, serial, &key) == self.commitment).then_some(key)
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(98 + 64 * self.wraps.len());
        w.u64(self.switch_at_ms);
        w.u64(self.overlap_until_ms);
        w.bytes(&self.replaces);
        w.bytes(&self.commitment);
        w.bytes(&self.ephemeral);
        w.u16(self.wraps.len() as u16);
        for (user, wrapped) in &self.wraps {
            w.bytes(&user.0);
            w.bytes(wrapped);
        }
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let invalid = |what| WireError::Invalid { what };
        let mut r = Reader::new(bytes);
        let switch_at_ms = r.u64()?;
        let overlap_until_ms = r.u64()?;
        if overlap_until_ms < switch_at_ms || overlap_until_ms - switch_at_ms > MAX_OVERLAP_MS {
            return Err(invalid("network key rotation phases"));
        }
        let replaces = r.array()?;
        let commitment = r.array()?;
        let ephemeral: [u8; 32] = r.array()?;
        if !crypto::ephemeral_is_valid(&ephemeral) {
            return Err(invalid("network key rotation ephemeral key"));
        }
        let n = r.count16("network key recipients", MAX_KEY_RECIPIENTS, 64)?;
        let mut wraps = Vec::with_capacity(n);
        for _ in 0..n {
            let user = UserId(r.array()?);
            // Canonical: strictly ascending, so one rotation has one encoding and a
            // colleague one wrap.
            if wraps.last().is_some_and(|(l, _)| *l >= user) {
                return Err(invalid("network key recipients order"));
            }
            wraps.push((user, r.array()?));
        }
        r.finish()?;
        Ok(NetworkKeyRotation {
            switch_at_ms,
            overlap_until_ms,
            replaces,
            commitment,
            ephemeral,
            wraps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use rand::SeedableRng;

    #[test]
    fn each_recipient_opens_the_key_and_nobody_else_does() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let admin = [9u8; 32];
        let anna = Identity::generate(&mut rng, "Anna").unwrap();
        let ben = Identity::generate(&mut rng, "Ben").unwrap();
        let mallory = Identity::generate(&mut rng, "Mallory").unwrap();
        let key = [42u8; 32];
        let recipients = vec![
            (ben.user_id(), ben.dh_public()),
            (anna.user_id(), anna.dh_public()),
            // Mallory's id with Anna's key: Mallory cannot open it.
            (mallory.user_id(), anna.dh_public()),
            // Not a valid key: left out.
            (UserId([1; 32]), [0u8; 32]),
        ];
        let (rotation, left_out) =
            NetworkKeyRotation::seal(&mut rng, &admin, 5, &key, &recipients, [3; 16], 10, 20);
        assert_eq!(left_out, vec![UserId([1; 32])]);
        let back = NetworkKeyRotation::decode(&rotation.encode()).unwrap();
        assert_eq!(back, rotation);
        for who in [&anna, &ben] {
            assert_eq!(
                back.open(&admin, 5, &who.user_id(), &[who.dh_key()]),
                Some(key)
            );
            // Another serial or admin: another context, nothing opens.
            assert_eq!(back.open(&admin, 6, &who.user_id(), &[who.dh_key()]), None);
            assert_eq!(
                back.open(&[8; 32], 5, &who.user_id(), &[who.dh_key()]),
                None
            );
        }
        assert_eq!(
            back.open(&admin, 5, &mallory.user_id(), &[mallory.dh_key()]),
            None
        );
        // Anna's key under Ben's entry does not match the commitment.
        assert_eq!(back.open(&admin, 5, &ben.user_id(), &[anna.dh_key()]), None);
    }

    #[test]
    fn a_malformed_rotation_is_refused() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
        let anna = Identity::generate(&mut rng, "Anna").unwrap();
        let (good, _) = NetworkKeyRotation::seal(
            &mut rng,
            &[9; 32],
            1,
            &[1; 32],
            &[(anna.user_id(), anna.dh_public())],
            [3; 16],
            10,
            20,
        );
        let mut backwards = good.clone();
        backwards.overlap_until_ms = 5;
        assert!(NetworkKeyRotation::decode(&backwards.encode()).is_err());
        let mut endless = good.clone();
        endless.overlap_until_ms = 10 + MAX_OVERLAP_MS + 1;
        assert!(NetworkKeyRotation::decode(&endless.encode()).is_err());
        let mut twice = good.clone();
        twice.wraps.push(twice.wraps[0]);
        assert!(NetworkKeyRotation::decode(&twice.encode()).is_err());
        let mut weak = good.clone();
        weak.ephemeral = [0; 32];
        assert!(NetworkKeyRotation::decode(&weak.encode()).is_err());
        let mut long = good.encode();
        long.push(0);
        assert!(NetworkKeyRotation::decode(&long).is_err());
        assert!(NetworkKeyRotation::decode(&good.encode()[..40]).is_err());
    }
}
