//! Key updates: a node replaces its X25519 key (the one every conversation key is wrapped
//! to), so that a copy of its key file taken before no longer opens the keys that come
//! after. In each of its conversations it then signs a `MembershipOp::KeyUpdate` (its new
//! profile) and rotates the key, wrapped to the new key from then on. The old key is kept
//! for `RETIRED_KEY_GRACE_MS` (rekeys made by members who had not yet seen the update are
//! wrapped to it); before it is deleted, the epoch keys it opened are sealed into the
//! store with the node's at-rest key, so history stays readable.

use zeroize::Zeroizing;

use super::*;

/// How long a replaced X25519 key is kept before it is deleted.
pub const RETIRED_KEY_GRACE_MS: u64 = 7 * 24 * 3600 * 1000;

impl<S: Store> Engine<S> {
    /// Replace this node's X25519 key with `secret` (fresh from the operating system's
    /// generator). `save` writes the key file durably first; if it fails, the key is not
    /// replaced. The key updates and rekeys follow at the next commit (a node that
    /// crashes before signing them signs them at its next start: `key_update_due`).
    pub fn update_key<E: std::fmt::Display>(
        &mut self,
        now_ms: u64,
        secret: Zeroizing<[u8; 32]>,
        save: impl FnOnce(&Identity) -> Result<(), E>,
    ) -> Result<(), SyncError> {
        if self.me.retired_count() >= crate::identity::MAX_RETIRED_DH_KEYS {
            // Replacing now would delete the oldest without sealing what it opened.
            return Err(SyncError::TooManyKeyUpdates);
        }
        self.me.replace_dh(secret, now_ms);
        if let Err(e) = save(&self.me) {
            self.me.undo_replace_dh();
            return Err(SyncError::KeyFile(e.to_string()));
        }
        self.publish_own_profile(now_ms)?;
        let due: Vec<ConversationId> = self
            .convs
            .keys()
            .copied()
            .filter(|c| self.key_update_due(c))
            .collect();
        self.rekey_due.extend(due);
        Ok(())
    }

    /// Whether this node is a member of `conv` with an X25519 key other than its current
    /// one: after `update_key`, after a crash between saving the key file and signing the
    /// updates, or when someone added it with an older profile.
    pub(super) fn key_update_due(&self, conv: &ConversationId) -> bool {
        self.convs.get(conv).is_some_and(|s| {
            s.membership
                .members
                .get(&self.me.user_id())
                .is_some_and(|m| m.profile.dh_public != self.me.dh_public())
        })
    }

    /// Sign the key update in `conv` and rotate its key (wrapped to the new key).
    pub(super) fn send_key_update(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
    ) -> Result<(), SyncError> {
        let op = MembershipOp::KeyUpdate {
            profile: self.profile.clone(),
        };
        self.author_event(now_ms, conv, EventKind::Membership, op.encode(), None, None)?;
        self.rekey(now_ms, conv)?;
        Ok(())
    }

    /// Delete the X25519 keys replaced more than `RETIRED_KEY_GRACE_MS` ago, after
    /// sealing into the store (durably) every epoch key opened here. True if the
    /// identity changed (the caller saves the key file).
    pub fn drop_expired_keys(&mut self, now_ms: u64) -> Result<bool, SyncError> {
        let expired = self
            .me
            .retired_before(now_ms.saturating_sub(RETIRED_KEY_GRACE_MS));
        if expired.is_empty() {
            return Ok(false);
        }
        // Only the keys these X25519 keys opened: a copy of an old key file opens those
        // anyway (from recorded rekeys), never one opened with a later key.
        let at_rest = self.me.at_rest_key();
        let mut sealed = Vec::new();
        let mut recalled = Vec::new();
        for dh in &expired {
            for (id, key) in self.convs.values().flat_map(|s| s.opened_with(dh)) {
                let aad = crypto::labelled(crypto::LABEL_RECALLED_KEY, &id.0);
                sealed.push((*id, at_rest.encrypt(&mut self.rng, &aad, key.as_bytes())));
                recalled.push((*id, key.clone()));
            }
        }
        self.store.apply(Batch {
            sealed_keys: sealed,
            ..Batch::default()
        })?;
        self.store.flush()?;
        for (id, key) in recalled {
            self.me.recall(id, key);
        }
        for dh in &expired {
            self.me.drop_retired(dh);
        }
        tracing::info!(count = expired.len(), "replaced X25519 keys deleted");
        Ok(true)
    }

    /// Take the epoch keys sealed in the store (opened with keys since deleted) back into
    /// the identity, before the conversations are rebuilt. One that does not open (a
    /// damaged entry, another identity's store) is skipped with a warning: its messages
    /// stay unreadable, nothing else is lost.
    pub(super) fn recall_sealed_keys(&mut self) -> Result<(), SyncError> {
        let at_rest = self.me.at_rest_key();
        for (id, sealed) in self.store.sealed_keys()? {
            let aad = crypto::labelled(crypto::LABEL_RECALLED_KEY, &id.0);
            match at_rest.decrypt(&aad, &sealed) {
                Ok(bytes) if bytes.len() == 32 => {
                    let mut key = [0u8; 32];
                    key.copy_from_slice(&bytes);
                    self.me.recall(id, EpochKey::from_bytes(key));
                }
                _ => tracing::warn!(rekey = %id, "a stored epoch key does not open; skipped"),
            }
        }
        Ok(())
    }
}
