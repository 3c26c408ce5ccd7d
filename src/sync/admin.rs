//! Relay certificates (docs/PROTOCOL.md, "Administration"): in a managed network a peer
//! that claims the relay role counts as one only while it holds a certificate of the
//! network's admin key; until then it is treated like a member (`Engine::is_shareable`).

use super::*;
use crate::wire::RelayCertificate;

impl<S: Store> Engine<S> {
    /// Our certificate goes after each hello of ours (when this node is a certified relay).
    pub(super) fn send_certificate(&mut self, peer: UserId) {
        if self.config.role != Role::Relay {
            return;
        }
        if let Some(certificate) = self.config.relay_certificate.clone() {
            self.send(peer, SyncMessage::RelayCertificate { certificate });
        }
    }

    /// A peer shows its certificate: checked once per distinct certificate; accepted, the
    /// peer is a relay from now on, and gets a digest so that the sync starts.
    pub(super) fn handle_relay_certificate(
        &mut self,
        now_ms: u64,
        peer: UserId,
        certificate: RelayCertificate,
    ) {
        let Some(admin) = self.config.admin_key else {
            // Unmanaged: relays are taken as they claim; nothing to check.
            return;
        };
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.certificate_checked == Some(certificate.signature) {
            return;
        }
        p.certificate_checked = Some(certificate.signature);
        match certificate.check(&admin, &peer, now_ms) {
            Ok(()) => {
                let newly = p.certified_until.is_none();
                p.certified_until = Some(certificate.expires_ms);
                let relay = p.role == Some(Role::Relay);
                if newly && relay {
                    self.send_digest(peer);
                }
            }
            Err(e) => {
                p.certified_until = None;
                self.stats.malformed_frames += 1;
                self.stats.certificates_refused += 1;
                tracing::warn!(peer = %peer.short(), error = %e, "relay certificate refused");
            }
        }
    }

    /// Certificates that ran out: those relays are members from now on.
    pub(super) fn expire_certificates(&mut self, now_ms: u64) {
        for p in self.peers.values_mut() {
            if p.certified_until.is_some_and(|t| now_ms >= t) {
                p.certified_until = None;
            }
        }
    }

    /// Whether `peer` is connected as a relay this node shares every conversation with
    /// (certified in a managed network; as claimed in an unmanaged one).
    pub fn is_relay_peer(&self, peer: &UserId) -> bool {
        self.peers.get(peer).is_some_and(|p| {
            p.role == Some(Role::Relay)
                && (self.config.admin_key.is_none() || p.certified_until.is_some())
        })
    }
}
