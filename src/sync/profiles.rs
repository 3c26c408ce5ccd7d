//! Profiles: the signed names of users, passed from node to node so that a name reaches
//! nodes that never meet its owner. A node compares a digest of the profiles it knows
//! with each peer it meets and sends them only if the digests differ; its own profile
//! keeps its version across restarts, so starting a node is no news to the network.

use super::*;

impl<S: Store> Engine<S> {
    /// Store a verified profile if it is newer than what we have; true if it was.
    pub(super) fn learn_profile(&mut self, profile: Profile) -> Result<bool, SyncError> {
        if !self.is_newer_profile(&profile) {
            return Ok(false);
        }
        self.learn_profiles(vec![profile])?;
        Ok(true)
    }

    /// Whether this profile is newer than the one known (the own one never is; nor is a
    /// revoked colleague's: it cannot rename itself after it left).
    pub(super) fn is_newer_profile(&self, profile: &Profile) -> bool {
        profile.user_id != self.me.user_id()
            && !self.is_revoked(&profile.user_id)
            && self
                .profiles
                .get(&profile.user_id)
                .is_none_or(|old| old.updated_ms < profile.updated_ms)
    }

    /// Store verified, newer profiles in one batch.
    pub(super) fn learn_profiles(&mut self, profiles: Vec<Profile>) -> Result<(), SyncError> {
        if profiles.is_empty() {
            return Ok(());
        }
        self.store.apply(Batch {
            profiles: profiles.clone(),
            ..Batch::default()
        })?;
        for profile in profiles {
            self.org_profile_learned(&profile.user_id);
            self.profile_clock += 1;
            self.profile_learned
                .insert(profile.user_id, self.profile_clock);
            self.profiles.insert(profile.user_id, profile.clone());
            self.notifications
                .push_back(Notification::PeerProfile { profile });
        }
        Ok(())
    }

    /// Keep the own profile of the last run if the name and keys are the same: a profile
    /// signed anew at every start would be news to every node of the network each time.
    pub(super) fn keep_own_profile(&mut self) -> Result<(), SyncError> {
        let me = self.me.user_id();
        let stored = self.store.profiles()?.into_iter().find(|p| p.user_id == me);
        match stored {
            Some(p)
                if p.display_name == self.profile.display_name
                    && p.dh_public == self.profile.dh_public
                    && p.verify().is_ok() =>
            {
                self.profile = p;
            }
            _ => self.store.apply(Batch {
                profiles: vec![self.profile.clone()],
                ..Batch::default()
            })?,
        }
        Ok(())
    }

    /// A hash of every known profile (user and version), own included.
    pub(super) fn profile_digest(&self) -> [u8; wire::DIGEST_BYTES] {
        let mut versions = VersionVector::new();
        versions.insert(self.me.user_id(), self.profile.updated_ms);
        for p in self.profiles.values() {
            versions.insert(p.user_id, p.updated_ms);
        }
        wire::vv_digest(&versions)
    }

    /// Send a peer the profiles it may lack: everything, the first time; after that only
    /// what was learned since (links come and go as plans change).
    pub(super) fn send_profiles_to(&mut self, peer: UserId) {
        let since = self.profiles_sent.get(&peer).copied().unwrap_or(0);
        let known: Vec<Profile> = self
            .profiles
            .values()
            .filter(|p| p.user_id != peer)
            .filter(|p| self.profile_learned.get(&p.user_id).copied().unwrap_or(0) > since)
            .take(wire::MAX_PROFILES_PER_FRAME)
            .cloned()
            .collect();
        make_room(&mut self.profiles_sent, &peer, MAX_PROFILE_PEERS);
        self.profiles_sent.insert(peer, self.profile_clock);
        if !known.is_empty() {
            self.send(peer, SyncMessage::Profiles { profiles: known });
        }
    }

    /// Pass newly learned profiles on to every other connected peer. Only strictly newer
    /// profiles are passed on, so the flood ends after one round per change.
    pub(super) fn spread_profiles(&mut self, from: Option<UserId>, profiles: Vec<Profile>) {
        if profiles.is_empty() {
            return;
        }
        let peers: Vec<UserId> = self.peers.keys().copied().collect();
        for peer in peers {
            if Some(peer) == from {
                continue;
            }
            let others: Vec<Profile> = profiles
                .iter()
                .filter(|p| p.user_id != peer)
                .cloned()
                .collect();
            if !others.is_empty() {
                self.send(peer, SyncMessage::Profiles { profiles: others });
            }
        }
    }

    /// Change the own display name: a new signed profile goes to every connected peer,
    /// which pass it on. The caller persists the identity file.
    pub fn set_display_name(&mut self, now_ms: u64, name: &str) -> Result<(), SyncError> {
        self.me
            .set_display_name(name)
            .map_err(|_| SyncError::BadText {
                max: crate::identity::MAX_DISPLAY_NAME_BYTES,
            })?;
        self.publish_own_profile(now_ms)
    }

    /// Sign the own profile anew (a new name or key), store it and tell every connected
    /// peer, which pass it on.
    pub(super) fn publish_own_profile(&mut self, now_ms: u64) -> Result<(), SyncError> {
        // Profiles are ordered by time; never go backwards even if the clock did.
        let updated_ms = now_ms.max(self.profile.updated_ms + 1);
        self.profile = self.me.profile(updated_ms);
        self.store.apply(Batch {
            profiles: vec![self.profile.clone()],
            ..Batch::default()
        })?;
        let peers: Vec<UserId> = self.peers.keys().copied().collect();
        for peer in peers {
            let hello = self.hello();
            self.send(peer, hello);
            self.send_certificate(peer);
        }
        Ok(())
    }

    pub(super) fn hello(&self) -> SyncMessage {
        SyncMessage::Hello {
            role: self.config.role,
            profile: self.profile.clone(),
        }
    }

    /// The signed profile of another user, if known.
    pub fn known_profile(&self, user: &UserId) -> Option<&Profile> {
        self.profiles.get(user)
    }

    /// The own signed profile as peers see it.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }
}
