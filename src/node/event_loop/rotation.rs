//! The node's side of a network key rotation (docs/PROTOCOL.md, "Network key
//! rotation"): open the admin's statement with this installation's X25519 keys, hand
//! both keys to the pnet key ring for the overlap, keep connections made with the old
//! key to the colleagues the key was sealed to, and at the end keep the new key in the
//! data directory and end every connection made with the old one.

use std::collections::{HashMap, HashSet};

use libp2p::PeerId;
use libp2p::swarm::ConnectionId;
use zeroize::Zeroizing;

use super::Core;
use crate::identity::UserId;
use crate::net::NetworkKey;
use crate::net::pnet_ring::NextKey;
use crate::wire::{NetworkKeyRotation, StatementKind, wire_key_id};

/// What this node made of the rotation statement it holds.
pub(in crate::node) struct RotationHere {
    serial: u64,
    /// The new network key, if the statement holds one for this node.
    next: Option<NetworkKey>,
    /// Whom the key was sealed to: the only peers a connection made with the old key
    /// may come from.
    recipients: HashSet<UserId>,
    pub(in crate::node) switch_at_ms: u64,
    pub(in crate::node) overlap_until_ms: u64,
    /// When the old key is accepted no more (`NextKey`: the overlap and its grace).
    old_until_ms: u64,
    /// The overlap is over here: the key file was replaced.
    promoted: bool,
    /// The grace is over: the old key is gone from the ring.
    ended: bool,
}

impl RotationHere {
    /// The new key's fingerprint, or None: this node was not given the key (it needs the
    /// new key file from IT once the overlap is over).
    pub(in crate::node) fn fingerprint(&self) -> Option<String> {
        self.next.map(|k| k.fingerprint())
    }
}

/// Connections made with the old key and kept (their peers were sealed the new key):
/// ended at the overlap's end, and those made later at the grace's end.
pub(in crate::node) type OldKeyConnections = HashMap<ConnectionId, PeerId>;

impl Core {
    /// Bring the key ring in line with the rotation statement held (at start, when a
    /// statement arrives, and on the tick for the phases).
    pub(in crate::node) fn apply_network_key(&mut self, now: u64) {
        let Some(admin) = self.network.admin() else {
            return;
        };
        let Some(statement) = self.engine.admin_statement(StatementKind::NetworkKey) else {
            return;
        };
        let serial = statement.serial;
        if self.rotation.as_ref().map(|r| r.serial) != Some(serial) {
            let Ok(rotation) = NetworkKeyRotation::decode(&statement.body) else {
                return;
            };
            // A rotation that replaces the key this node was given by the one before
            // (not promoted yet: a short overlap, or the node was off): that key first.
            if let Some(previous) = self.rotation.take()
                && let Some(key) = previous.next
                && wire_key_id(&key.wire_key()) == rotation.replaces
                && key.wire_key() != self.network.wire_key()
            {
                self.keep_network_key(key);
            }
            let identity = self.engine.identity();
            let mut keys = vec![identity.dh_key()];
            keys.extend(
                identity
                    .retired_before(u64::MAX)
                    .iter()
                    .filter_map(|public| identity.dh_key_for(public)),
            );
            let opened = rotation.open(&admin, serial, &identity.user_id(), &keys);
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
            let next_key = next.map(|k| NextKey {
                key: Zeroizing::new(k.wire_key()),
                switch_at_ms: rotation.switch_at_ms,
                overlap_until_ms: rotation.overlap_until_ms,
            });
            let old_until_ms = next_key
                .as_ref()
                .map_or(rotation.overlap_until_ms, |n| n.old_key_until_ms());
            let already = next.is_some_and(|k| k.wire_key() == self.network.wire_key());
            // The old key beside the new one only where it is the key this rotation
            // replaces; a node that holds an older one (an installed file two rotations
            // old) takes the new key alone.
            let holds_replaced = wire_key_id(&self.network.wire_key()) == rotation.replaces;
            match (&next_key, holds_replaced) {
                (Some(n), false) if !already => {
                    self.ring.set_keys(*n.key, None);
                    self.network = next.unwrap_or(self.network);
                }
                _ => self.ring.set_keys(self.network.wire_key(), next_key),
            }
            self.rotation = Some(RotationHere {
                serial,
                next,
                recipients: rotation.wraps.iter().map(|(user, _)| *user).collect(),
                switch_at_ms: rotation.switch_at_ms,
                overlap_until_ms: rotation.overlap_until_ms,
                old_until_ms,
                promoted: already,
                ended: already,
            });
        }
        self.advance_rotation(now);
    }

    /// A connection just established was made with the old key: kept only if its peer
    /// was sealed the new key (a colleague who was away, or whose clock is behind), so
    /// that during the overlap a fresh identity with the old key file gets nowhere.
    /// Returns whether it is kept.
    pub(in crate::node) fn old_key_connection(
        &mut self,
        user: &UserId,
        peer: PeerId,
        connection: ConnectionId,
    ) -> bool {
        let Some(rotation) = &self.rotation else {
            return true;
        };
        if rotation.next.is_none() {
            // Not given the key: this node polices nothing (it will be shut out itself).
            return true;
        }
        if !rotation.recipients.contains(user) || rotation.ended {
            tracing::info!(peer = %user.short(), "refused: the old network key, and not sealed the new one");
            self.swarm.close_connection(connection);
            return false;
        }
        self.old_key_connections.insert(connection, peer);
        true
    }

    /// The phases on this node's clock: at the overlap's end the new key is kept and
    /// the connections made with the old one end (their peers redial with the new one);
    /// at the grace's end the old key leaves the ring.
    fn advance_rotation(&mut self, now: u64) {
        let Some(rotation) = self.rotation.as_mut() else {
            return;
        };
        if !rotation.promoted && now >= rotation.overlap_until_ms {
            rotation.promoted = true;
            if let Some(next) = rotation.next {
                self.keep_network_key(next);
                self.end_old_key_connections();
            }
        }
        let Some(rotation) = self.rotation.as_mut() else {
            return;
        };
        if !rotation.ended && now >= rotation.old_until_ms {
            rotation.ended = true;
            if let Some(next) = rotation.next {
                self.ring.set_keys(next.wire_key(), None);
                self.end_old_key_connections();
            }
        }
    }

    /// The new key becomes this node's, kept in the data directory for the next start
    /// (where the machine is not locked to IT's installed key).
    fn keep_network_key(&mut self, next: NetworkKey) {
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
    }

    /// Close the connections made with the old key, and end those the node has not seen
    /// established yet (`KeyRing::retire_old`).
    fn end_old_key_connections(&mut self) {
        self.ring.retire_old();
        for (connection, _) in std::mem::take(&mut self.old_key_connections) {
            self.swarm.close_connection(connection);
        }
        self.last_relink_ms = 0;
        self.plan = None;
    }
}
