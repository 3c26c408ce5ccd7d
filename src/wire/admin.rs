//! What the network's admin key signs. So far: relay certificates (docs/PROTOCOL.md,
//! "Administration").

use super::{Reader, WireError, Writer};
use crate::crypto::{self, LABEL_RELAY_CERTIFICATE};
use crate::identity::UserId;

const CERTIFICATE_VERSION: u8 = 1;
/// Bytes of an encoded certificate.
pub const RELAY_CERTIFICATE_BYTES: usize = 1 + 32 + 8 + 8 + 64;
/// A certificate is valid for at most this long after it was issued.
pub const MAX_CERTIFICATE_MS: u64 = 5 * 366 * 24 * 3600 * 1000;
/// A certificate issued this far ahead of a node's clock is already accepted (clocks of a
/// LAN differ by seconds; an admin's machine by minutes at worst).
pub const CERTIFICATE_CLOCK_SKEW_MS: u64 = 10 * 60 * 1000;
/// How a certificate is written to a file: this prefix, then base16.
const TEXT_PREFIX: &str = "/flurfunk/relay-certificate/1/";

/// "The holder of `relay`'s key may carry every conversation of this network", signed by
/// the network's admin key, valid from `issued_ms` until `expires_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayCertificate {
    pub relay: UserId,
    pub issued_ms: u64,
    pub expires_ms: u64,
    pub signature: [u8; 64],
}

/// Why a certificate is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("the certificate is for another relay ({0})")]
    OtherRelay(String),
    #[error("the certificate is not valid yet (issued in the future)")]
    NotYetValid,
    #[error("the certificate expired")]
    Expired,
    #[error("the certificate claims a validity of more than 5 years")]
    TooLong,
    #[error("the certificate is not signed by this network's admin key")]
    BadSignature,
}

impl RelayCertificate {
    /// What the admin key signs: it names the admin key, so a certificate of one network
    /// means nothing in another.
    pub fn signed_bytes(
        admin: &[u8; 32],
        relay: &UserId,
        issued_ms: u64,
        expires_ms: u64,
    ) -> Vec<u8> {
        let mut w = Writer::with_capacity(32 + 1 + 32 + 16);
        w.bytes(admin);
        w.u8(CERTIFICATE_VERSION);
        w.bytes(&relay.0);
        w.u64(issued_ms);
        w.u64(expires_ms);
        w.into_bytes()
    }

    /// Whether `peer` may act as relay under this certificate at `now_ms`, in the network
    /// whose admin key is `admin`.
    pub fn check(
        &self,
        admin: &[u8; 32],
        peer: &UserId,
        now_ms: u64,
    ) -> Result<(), CertificateError> {
        if self.relay != *peer {
            return Err(CertificateError::OtherRelay(self.relay.short()));
        }
        if self.expires_ms.saturating_sub(self.issued_ms) > MAX_CERTIFICATE_MS {
            return Err(CertificateError::TooLong);
        }
        if self.issued_ms > now_ms.saturating_add(CERTIFICATE_CLOCK_SKEW_MS) {
            return Err(CertificateError::NotYetValid);
        }
        if now_ms >= self.expires_ms {
            return Err(CertificateError::Expired);
        }
        let msg = Self::signed_bytes(admin, &self.relay, self.issued_ms, self.expires_ms);
        crypto::verify_with_key(admin, LABEL_RELAY_CERTIFICATE, &msg, &self.signature)
            .map_err(|_| CertificateError::BadSignature)
    }

    pub(super) fn encode_into(&self, w: &mut Writer) {
        w.u8(CERTIFICATE_VERSION);
        w.bytes(&self.relay.0);
        w.u64(self.issued_ms);
        w.u64(self.expires_ms);
        w.bytes(&self.signature);
    }

    pub(super) fn decode_from(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let version = r.u8()?;
        if version != CERTIFICATE_VERSION {
            return Err(WireError::UnknownTag {
                what: "relay certificate version",
                tag: version,
            });
        }
        Ok(RelayCertificate {
            relay: UserId(r.array()?),
            issued_ms: r.u64()?,
            expires_ms: r.u64()?,
            signature: r.array()?,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(RELAY_CERTIFICATE_BYTES);
        self.encode_into(&mut w);
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let cert = Self::decode_from(&mut r)?;
        r.finish()?;
        Ok(cert)
    }

    /// One line of text, for the file a relay keeps (`DIR/relay.cert`).
    pub fn to_text(&self) -> String {
        format!("{TEXT_PREFIX}{}\n", hex::encode(self.encode()))
    }

    pub fn from_text(text: &str) -> Result<Self, WireError> {
        let invalid = || WireError::Invalid {
            what: "relay certificate file",
        };
        let body = text.trim().strip_prefix(TEXT_PREFIX).ok_or_else(invalid)?;
        if body.len() != 2 * RELAY_CERTIFICATE_BYTES {
            return Err(invalid());
        }
        let bytes = hex::decode(body).map_err(|_| invalid())?;
        Self::decode(&bytes)
    }
}
