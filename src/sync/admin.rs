//! Relay certificates (docs/PROTOCOL.md, "Administration"): in a managed network a peer
//! that claims the relay role counts as one only while it holds a certificate of the
//! network's admin key; until then it is treated like a member (`Engine::is_shareable`).

use super::*;
use crate::wire::{CertificateError, RelayCertificate};

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

    /// A peer that said hello as a relay shows its certificate: checked once per distinct
    /// certificate; accepted, the peer is a relay from now on, and gets a digest so that
    /// the sync starts. A forged one, or one of another node, is an offence (the node
    /// penalises the sender); one out of its time is refused without blame (an admin's
    /// clock or a renewal), and checked again if shown again.
    pub(super) fn handle_relay_certificate(
        &mut self,
        now_ms: u64,
        peer: UserId,
        certificate: RelayCertificate,
    ) -> Result<(), SyncError> {
        let Some(admin) = self.config.admin_key else {
            // Unmanaged: relays are taken as they claim; nothing to check.
            return Ok(());
        };
        let Some(p) = self.peers.get_mut(&peer) else {
            return Ok(());
        };
        if p.role != Some(Role::Relay) || p.certificate_checked == Some(certificate.signature) {
            return Ok(());
        }
        let result = certificate.check(&admin, &peer, now_ms);
        if matches!(
            result,
            Ok(()) | Err(CertificateError::BadSignature | CertificateError::OtherRelay(_))
        ) {
            p.certificate_checked = Some(certificate.signature);
        }
        match result {
            Ok(()) => {
                let newly = p.certified_until.is_none();
                p.certified_until = Some(certificate.expires_ms);
                if newly {
                    self.send_digest(peer);
                }
                Ok(())
            }
            Err(e) => {
                p.certified_until = None;
                self.stats.certificates_refused += 1;
                tracing::warn!(peer = %peer.short(), error = %e, "relay certificate refused");
                match e {
                    CertificateError::BadSignature | CertificateError::OtherRelay(_) => {
                        self.stats.malformed_frames += 1;
                        Err(SyncError::Wire(crate::wire::WireError::Invalid {
                            what: "relay certificate",
                        }))
                    }
                    _ => Ok(()),
                }
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

    /// Whether `peer` is connected as a relay with a certificate this node accepted (a
    /// managed network): it is served files of every conversation and asked for them.
    pub fn is_certified_relay(&self, peer: &UserId) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|p| p.role == Some(Role::Relay) && p.certified_until.is_some())
    }

    /// The certified relays connected now.
    pub fn certified_relays(&self) -> Vec<UserId> {
        self.peers
            .keys()
            .filter(|p| self.is_certified_relay(p))
            .copied()
            .collect()
    }
}
