//! The node's side of a network key rotation (docs/PROTOCOL.md, "Network key
//! rotation"): open the admin's statement with this installation's X25519 keys, hand
//! both keys and the colleagues it was sealed to to the pnet key ring for the overlap
//! (the transport then takes the old key from those colleagues only), and at the end
//! keep the new key in the data directory and end every connection made with the old
//! one.

use std::collections::HashSet;

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
    /// The new key's fingerprint, or None: this node was not given the key (nodes that
    /// know of the rotation refuse it; it needs the new key file from IT).
    pub(in crate::node) fn fingerprint(&self) -> Option<String> {
        self.next.map(|k| k.fingerprint())
    }
}

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
                    "the network's admin rotates the network key, but not for this installation: nodes that know of it refuse this one; it needs the new key file from IT"
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
            // The transport takes the old key only from those the new one was sealed
            // to; connections made before this node knew of the rotation (all with the
            // old key) from anyone else are closed now.
            let recipients: HashSet<UserId> =
                rotation.wraps.iter().map(|(user, _)| *user).collect();
            if next.is_some() && !already {
                self.ring.set_recipients(Some(
                    recipients.iter().filter_map(|u| u.to_peer_id()).collect(),
                ));
                let outsiders: Vec<_> = self
                    .swarm
                    .connected_peers()
                    .filter(|p| UserId::from_peer_id(p).is_none_or(|u| !recipients.contains(&u)))
                    .copied()
                    .collect();
                for peer in outsiders {
                    tracing::info!(%peer, "closed: the old network key, and not sealed the new one");
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
            } else {
                self.ring.set_recipients(None);
            }
            self.rotation = Some(RotationHere {
                serial,
                next,
                switch_at_ms: rotation.switch_at_ms,
                overlap_until_ms: rotation.overlap_until_ms,
                old_until_ms,
                promoted: already,
                ended: already,
            });
        }
        self.advance_rotation(now);
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
                // Connections made with the old key end (peers redial with the new one);
                // those made in the grace end when the ring drops the key.
                self.ring.retire_current();
                self.relink_soon();
            }
        }
        let Some(rotation) = self.rotation.as_mut() else {
            return;
        };
        if !rotation.ended && now >= rotation.old_until_ms {
            rotation.ended = true;
            if let Some(next) = rotation.next {
                self.ring.set_keys(next.wire_key(), None);
                self.ring.set_recipients(None);
                self.relink_soon();
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

    /// Choose and dial links again soon (connections ended with the old key).
    fn relink_soon(&mut self) {
        self.last_relink_ms = 0;
        self.plan = None;
    }
}
