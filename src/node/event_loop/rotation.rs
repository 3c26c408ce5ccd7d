//! The node's side of a network key rotation (docs/PROTOCOL.md, "Network key
//! rotation"): open the admin's statement with this installation's X25519 keys, hand
//! both keys to the pnet key ring for the overlap, and at its end keep the new key in
//! the data directory and close the connections that may still use the old one.

use zeroize::Zeroizing;

use super::Core;
use crate::net::NetworkKey;
use crate::net::pnet_ring::NextKey;
use crate::wire::{NetworkKeyRotation, StatementKind};

/// What this node made of the rotation statement it holds.
pub(in crate::node) struct RotationHere {
    serial: u64,
    /// The new network key, if the statement holds one for this node.
    next: Option<NetworkKey>,
    pub(in crate::node) switch_at_ms: u64,
    pub(in crate::node) overlap_until_ms: u64,
    /// The overlap is over here: the key file was replaced and connections closed.
    promoted: bool,
}

impl RotationHere {
    /// The new key's fingerprint, or None: this node was not given the key (it needs the
    /// new key file from IT once the overlap is over).
    pub(in crate::node) fn fingerprint(&self) -> Option<String> {
        self.next.map(|k| k.fingerprint())
    }
}

impl Core {
    /// Bring the key ring in line with the rotation statement held (at start, when a
    /// statement arrives, and on the tick for the end of the overlap).
    pub(in crate::node) fn apply_network_key(&mut self, now: u64) {
        let Some(admin) = self.network.admin() else {
            return;
        };
        let Some(statement) = self
            .engine
            .admin_statements()
            .into_iter()
            .find(|s| s.kind == StatementKind::NetworkKey)
        else {
            return;
        };
        if self.rotation.as_ref().map(|r| r.serial) != Some(statement.serial) {
            let Ok(rotation) = NetworkKeyRotation::decode(&statement.body) else {
                return;
            };
            let identity = self.engine.identity();
            let mut keys = vec![identity.dh_key()];
            keys.extend(
                identity
                    .retired_before(u64::MAX)
                    .iter()
                    .filter_map(|public| identity.dh_key_for(public)),
            );
            let opened = rotation.open(&admin, statement.serial, &identity.user_id(), &keys);
            let next = opened.map(|file_key| NetworkKey::from_bytes(file_key, Some(admin)));
            match &next {
                Some(key) => tracing::info!(
                    next = %key.fingerprint(),
                    switch_at_ms = rotation.switch_at_ms,
                    overlap_until_ms = rotation.overlap_until_ms,
                    "the network's admin rotates the network key"
                ),
                None => tracing::warn!(
                    "the network's admin rotates the network key, but not for this installation: once the overlap is over, it needs the new key file from IT"
                ),
            }
            self.rotation = Some(RotationHere {
                serial: statement.serial,
                next,
                switch_at_ms: rotation.switch_at_ms,
                overlap_until_ms: rotation.overlap_until_ms,
                promoted: next.is_some_and(|k| k.wire_key() == self.network.wire_key()),
            });
            self.ring.set_keys(
                self.network.wire_key(),
                next.map(|k| NextKey {
                    key: Zeroizing::new(k.wire_key()),
                    switch_at_ms: rotation.switch_at_ms,
                    overlap_until_ms: rotation.overlap_until_ms,
                }),
            );
        }
        self.promote_network_key(now);
    }

    /// At the end of the overlap: the new key becomes this node's (kept in the data
    /// directory for the next start), and every connection is closed, since pnet is
    /// checked only when one is made and some may use the old key (peers redial with
    /// the new one; the old one is accepted a little longer for clocks that differ).
    fn promote_network_key(&mut self, now: u64) {
        let Some(rotation) = self.rotation.as_mut() else {
            return;
        };
        if rotation.promoted || now < rotation.overlap_until_ms {
            return;
        }
        rotation.promoted = true;
        let Some(next) = rotation.next else {
            return;
        };
        if let Some(path) = &self.config.network_key_path {
            match next.save_replace(path) {
                Ok(()) => tracing::info!(
                    network = %next.fingerprint(),
                    file = %path.display(),
                    "the new network key is in use and kept"
                ),
                // The statement stays in the store: the next start opens it again.
                Err(e) => tracing::error!(error = %e, "keeping the new network key failed"),
            }
        }
        self.network = next;
        let connected: Vec<_> = self.swarm.connected_peers().copied().collect();
        for peer in connected {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        self.last_relink_ms = 0;
        self.plan = None;
    }
}
