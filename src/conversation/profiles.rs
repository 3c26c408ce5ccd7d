//! Profiles a node checked once (see `VerifiedProfiles`).

use std::collections::HashSet;
use std::sync::Mutex;

use crate::identity::Profile;

/// Profiles whose signature and X25519 key a node checked once. A create of "Alle"
/// carries every colleague's profile; checking the event, applying it, replaying the
/// order for a later event, rebuilding, and the same colleague's hello and its other
/// groups reuse the answer instead of checking a thousand signatures each time. Kept by
/// exact value (every field, signature included), so a profile that differs in any byte
/// is checked afresh. Per node (the engine's), never shared between nodes; bounded.
#[derive(Default)]
pub struct VerifiedProfiles(Mutex<HashSet<Profile>>);

/// The count only: a state printed for a log must not list thousands of profiles.
impl std::fmt::Debug for VerifiedProfiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.0.lock().map_or(0, |known| known.len());
        write!(f, "VerifiedProfiles({held})")
    }
}

/// Profiles remembered at most (a town hall's colleagues, with room for key updates);
/// beyond it the memory starts afresh.
const MAX_VERIFIED_PROFILES: usize = 8 * 1024;

impl VerifiedProfiles {
    /// `Profile::verify`, answered from memory for a profile checked before.
    pub fn verify(&self, profile: &Profile) -> bool {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if known.contains(profile) {
            return true;
        }
        if profile.verify().is_err() {
            return false;
        }
        if known.len() >= MAX_VERIFIED_PROFILES {
            known.clear();
        }
        known.insert(profile.clone());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use rand::SeedableRng;

    #[test]
    fn a_remembered_profile_never_vouches_for_a_changed_one() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let anna = Identity::generate(&mut rng, "Anna").unwrap();
        let memory = VerifiedProfiles::default();
        let good = anna.profile(1_000);
        assert!(memory.verify(&good));
        assert!(memory.verify(&good), "asked again, from memory");
        let mut renamed = good.clone();
        renamed.display_name = "Bürgermeister".into();
        assert!(!memory.verify(&renamed), "same signature, other name");
        let mut other_key = good.clone();
        other_key.dh_public[0] ^= 1;
        assert!(!memory.verify(&other_key), "same signature, other key");
        let mut later = good.clone();
        later.updated_ms += 1;
        assert!(!memory.verify(&later), "same signature, other time");
        let mut forged = good.clone();
        forged.signature[5] ^= 1;
        assert!(!memory.verify(&forged), "another signature");
        assert!(memory.verify(&good), "the genuine one is still known");
    }

    #[test]
    fn the_memory_is_bounded() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let memory = VerifiedProfiles::default();
        let someone = Identity::generate(&mut rng, "Ben").unwrap();
        for t in 0..(MAX_VERIFIED_PROFILES as u64 + 10) {
            assert!(memory.verify(&someone.profile(t + 1)));
        }
        let held = memory.0.lock().unwrap().len();
        assert!(held <= MAX_VERIFIED_PROFILES, "{held}");
    }
}
