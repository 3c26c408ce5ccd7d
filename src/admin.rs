//! The network's admin key: made by `flurfunk network new`, kept by IT in a file of its
//! own (0600; DPAPI on Windows), never handed out. Its public half travels in the network
//! key file (`net::NetworkKey::admin`); what it signs is checked by every node offline
//! (docs/PROTOCOL.md, "Administration").

use std::io::Read;
use std::path::Path;

use ed25519_dalek::{Signer, SigningKey};
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::crypto::{self, LABEL_ADMIN_STATEMENT, LABEL_RELAY_CERTIFICATE};
use crate::identity::UserId;
use crate::wire::{
    AdminStatement, ConversationId, GroupRetention, MAX_CERTIFICATE_MS, MAX_KEY_RECIPIENTS,
    MAX_OVERLAP_MS, MAX_RETENTION_GROUPS, MAX_REVOCATIONS, MAX_STATEMENT_BODY, MIN_KEEP_MESSAGES_S,
    NetworkKeyRotation, Policy, RelayCertificate, Revocations, StatementKind,
};

const FILE_MAGIC: &[u8] = b"FLURFUNK-ADMIN-KEY-1\n";
const FILE_MAX_BYTES: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot read admin key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a Flurfunk admin key file")]
    Format { path: String },
    #[error("cannot write admin key file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("a certificate may be valid for at most 5 years")]
    TooLong,
    #[error("the statement is malformed or over its limit (at most 4,096 revocations)")]
    StatementTooLarge,
    #[error("messages are kept at least a day")]
    KeepTooShort,
    #[error(
        "the node holds a group retention this admin tool cannot read (a newer version's): update it"
    )]
    GroupRetention,
    #[error("at most 1,024 groups with a period of their own (or one taken away)")]
    TooManyGroups,
    #[error(
        "a network key rotation is still under way (its overlap ends {}); one at a time, or nodes offline through both would be shut out",
        utc(*until_ms)
    )]
    RotationUnderWay { until_ms: u64 },
    #[error("a rotation needs its switch at or after now and an overlap of at most 30 days")]
    RotationPhases,
    #[error("a rotation names 1 to 4,096 colleagues")]
    RotationRecipients,
}

/// A time for an error message (the CLI shows local times; errors do not know the zone).
fn utc(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// The admin's signing key.
pub struct AdminKey {
    signing: SigningKey,
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminKey({})", fingerprint(&self.public()))
    }
}

impl AdminKey {
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(secret.as_mut());
        AdminKey {
            signing: SigningKey::from_bytes(&secret),
        }
    }

    /// The public key every node of the network checks statements with.
    pub fn public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// Certify `relay` from `issued_ms` for `valid_ms`.
    pub fn certify_relay(
        &self,
        relay: UserId,
        issued_ms: u64,
        valid_ms: u64,
    ) -> Result<RelayCertificate, AdminError> {
        if valid_ms > MAX_CERTIFICATE_MS {
            return Err(AdminError::TooLong);
        }
        let expires_ms = issued_ms.saturating_add(valid_ms);
        let msg = RelayCertificate::signed_bytes(&self.public(), &relay, issued_ms, expires_ms);
        let signature = self
            .signing
            .sign(&crypto::labelled(LABEL_RELAY_CERTIFICATE, &msg))
            .to_bytes();
        Ok(RelayCertificate {
            relay,
            issued_ms,
            expires_ms,
            signature,
        })
    }

    /// Sign statement number `serial` of `kind` (docs/PROTOCOL.md, "Admin statements").
    pub fn sign_statement(
        &self,
        kind: StatementKind,
        serial: u64,
        issued_ms: u64,
        body: Vec<u8>,
    ) -> Result<AdminStatement, AdminError> {
        if body.len() > MAX_STATEMENT_BODY || serial == 0 {
            return Err(AdminError::StatementTooLarge);
        }
        let msg = AdminStatement::signed_bytes(&self.public(), kind, serial, issued_ms, &body);
        let signature = self
            .signing
            .sign(&crypto::labelled(LABEL_ADMIN_STATEMENT, &msg))
            .to_bytes();
        Ok(AdminStatement {
            kind,
            serial,
            issued_ms,
            body,
            signature,
        })
    }

    /// The statement of `kind` after `current` (the one the node holds, if any): signed
    /// with the next serial.
    pub fn sign_next(
        &self,
        current: Option<&AdminStatement>,
        kind: StatementKind,
        now_ms: u64,
        body: Vec<u8>,
    ) -> Result<AdminStatement, AdminError> {
        self.sign_statement(kind, next_serial(current), now_ms, body)
    }

    /// The revocation list after `current` with `user` revoked at `now_ms` (`revoke`) or
    /// taken off the list again, signed with the next serial. `Ok(None)`: nothing changes.
    pub fn change_revocations(
        &self,
        current: Option<&AdminStatement>,
        user: UserId,
        revoke: bool,
        now_ms: u64,
    ) -> Result<Option<AdminStatement>, AdminError> {
        let mut list = match current {
            Some(s) => Revocations::decode(&s.body).map_err(|_| AdminError::StatementTooLarge)?,
            None => Revocations::default(),
        };
        let changed = if revoke {
            if list.revoked.contains_key(&user) {
                false
            } else if list.revoked.len() >= MAX_REVOCATIONS {
                return Err(AdminError::StatementTooLarge);
            } else {
                list.revoked.insert(user, now_ms);
                true
            }
        } else {
            list.revoked.remove(&user).is_some()
        };
        if !changed {
            return Ok(None);
        }
        self.sign_next(current, StatementKind::Revocations, now_ms, list.encode())
            .map(Some)
    }

    /// The policy statement after `current` saying `policy`, signed with the next serial.
    /// `Ok(None)`: it says that already.
    pub fn change_policy(
        &self,
        current: Option<&AdminStatement>,
        policy: Policy,
        now_ms: u64,
    ) -> Result<Option<AdminStatement>, AdminError> {
        let held = current.and_then(|s| Policy::decode(&s.body).ok());
        if held == Some(policy) || (current.is_none() && policy == Policy::default()) {
            return Ok(None);
        }
        self.sign_next(current, StatementKind::Policy, now_ms, policy.encode())
            .map(Some)
    }

    /// The group-retention statement after `current` with `conversation`'s own period
    /// set to `keep_s` seconds (`None`: taken away), carried (`GroupRetention::carry`)
    /// and signed with the next serial. `Ok(None)`: it says that already.
    pub fn change_group_retention(
        &self,
        current: Option<&AdminStatement>,
        conversation: ConversationId,
        keep_s: Option<u64>,
        now_ms: u64,
    ) -> Result<Option<AdminStatement>, AdminError> {
        let held = match current {
            Some(s) => GroupRetention::decode(&s.body).map_err(|_| AdminError::GroupRetention)?,
            None => GroupRetention::default(),
        };
        if keep_s.is_some_and(|s| s < MIN_KEEP_MESSAGES_S) {
            return Err(AdminError::KeepTooShort);
        }
        let mut next = held.clone();
        next.groups.entry(conversation).or_default().keep_s = keep_s;
        let next = next.carry(&held, now_ms);
        if next.groups.len() > MAX_RETENTION_GROUPS {
            return Err(AdminError::TooManyGroups);
        }
        if next == held {
            return Ok(None);
        }
        self.sign_next(
            current,
            StatementKind::GroupRetention,
            now_ms,
            next.encode(),
        )
        .map(Some)
    }

    /// The next network key statement: `key` (a new file key) sealed to `recipients`,
    /// replacing the wire key `replaces` (`wire::wire_key_id`), dialled with from
    /// `switch_at_ms`, the old key accepted until `overlap_until_ms`.
    /// Refused while the `current` rotation's overlap lasts. Returns who was left out
    /// (their X25519 key is not a valid public key).
    #[allow(clippy::too_many_arguments)]
    pub fn rotate_network_key<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        current: Option<&AdminStatement>,
        key: &[u8; 32],
        recipients: &[(UserId, [u8; 32])],
        replaces: [u8; 16],
        switch_at_ms: u64,
        overlap_until_ms: u64,
        now_ms: u64,
    ) -> Result<(AdminStatement, Vec<UserId>), AdminError> {
        // Until the old key has left every ring (the overlap and its grace): a node
        // that holds it must still be able to take the next key beside it.
        if let Some(held) = current.and_then(|s| NetworkKeyRotation::decode(&s.body).ok())
            && crate::net::pnet_ring::old_key_until_ms(held.switch_at_ms, held.overlap_until_ms)
                > now_ms
        {
            return Err(AdminError::RotationUnderWay {
                until_ms: crate::net::pnet_ring::old_key_until_ms(
                    held.switch_at_ms,
                    held.overlap_until_ms,
                ),
            });
        }
        if switch_at_ms < now_ms
            || overlap_until_ms < switch_at_ms
            || overlap_until_ms - switch_at_ms > MAX_OVERLAP_MS
        {
            return Err(AdminError::RotationPhases);
        }
        if recipients.is_empty() || recipients.len() > MAX_KEY_RECIPIENTS {
            return Err(AdminError::RotationRecipients);
        }
        let serial = next_serial(current);
        let (rotation, left_out) = NetworkKeyRotation::seal(
            rng,
            &self.public(),
            serial,
            key,
            recipients,
            replaces,
            switch_at_ms,
            overlap_until_ms,
        );
        let statement =
            self.sign_statement(StatementKind::NetworkKey, serial, now_ms, rotation.encode())?;
        Ok((statement, left_out))
    }

    /// Write a new admin key file (readable by its owner only, protected at rest on
    /// Windows); never overwrites.
    pub fn save_new(&self, path: &Path) -> Result<(), AdminError> {
        let write = |source| AdminError::Write {
            path: path.display().to_string(),
            source,
        };
        let mut bytes = Zeroizing::new(FILE_MAGIC.to_vec());
        bytes.extend_from_slice(&self.signing.to_bytes());
        let stored = Zeroizing::new(crate::platform::protect(&bytes).map_err(write)?);
        crate::identity::write_private_file(path, &stored, false).map_err(write)
    }

    pub fn load(path: &Path) -> Result<Self, AdminError> {
        let shown = path.display().to_string();
        let read = |source| AdminError::Read {
            path: shown.clone(),
            source,
        };
        let mut stored = Zeroizing::new(Vec::new());
        std::fs::File::open(path)
            .map_err(read)?
            .take(FILE_MAX_BYTES + 1)
            .read_to_end(&mut stored)
            .map_err(read)?;
        let format = || AdminError::Format {
            path: shown.clone(),
        };
        if stored.len() as u64 > FILE_MAX_BYTES {
            return Err(format());
        }
        let bytes = crate::platform::unprotect(&stored).map_err(read)?;
        let secret: [u8; 32] = bytes
            .strip_prefix(FILE_MAGIC)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(format)?;
        let secret = Zeroizing::new(secret);
        Ok(AdminKey {
            signing: SigningKey::from_bytes(&secret),
        })
    }
}

/// Append one line to an installation's admin audit log (`DataDir::admin_audit_log`):
/// UTC time, admin key fingerprint, what was done (tab-separated; line breaks in `what`
/// become spaces). Synced before it returns: the log is what IT shows an auditor.
pub fn append_audit(path: &Path, admin: &AdminKey, what: &str) -> std::io::Result<()> {
    use std::io::Write;
    let line = format!(
        "{}\tadmin {}\t{}\n",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
        fingerprint(&admin.public()),
        what.replace(['\n', '\r'], " ")
    );
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|()| f.sync_all()))
}

/// The serial of the statement after `current` (1 for the first of its kind).
pub fn next_serial(current: Option<&AdminStatement>) -> u64 {
    current.map_or(1, |s| s.serial.saturating_add(1))
}

/// A short form of an admin public key to compare by eye: "3f2a 91c0 …" (the first 8
/// bytes of its BLAKE2b hash).
pub fn fingerprint(public: &[u8; 32]) -> String {
    use blake2::Digest;
    let digest = blake2::Blake2b512::digest(public);
    digest[..8]
        .chunks(2)
        .map(hex::encode)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CertificateError;
    use rand::SeedableRng;

    fn rng() -> rand_chacha::ChaCha20Rng {
        rand_chacha::ChaCha20Rng::seed_from_u64(11)
    }

    #[test]
    fn a_certificate_holds_only_for_its_relay_its_network_and_its_time() {
        let mut rng = rng();
        let admin = AdminKey::generate(&mut rng);
        let other_admin = AdminKey::generate(&mut rng);
        let relay = crate::identity::Identity::generate(&mut rng, "Relay")
            .unwrap()
            .user_id();
        let mallory = crate::identity::Identity::generate(&mut rng, "Mallory")
            .unwrap()
            .user_id();
        let day = 24 * 3600 * 1000;
        let cert = admin.certify_relay(relay, 1_000 * day, 365 * day).unwrap();
        let public = admin.public();
        let now = 1_010 * day;
        assert_eq!(cert.check(&public, &relay, now), Ok(()));
        // Through the wire and through its file.
        let back = RelayCertificate::decode(&cert.encode()).unwrap();
        assert_eq!(back, cert);
        assert_eq!(RelayCertificate::from_text(&cert.to_text()).unwrap(), cert);
        assert_eq!(cert.encode().len(), crate::wire::RELAY_CERTIFICATE_BYTES);
        // Someone else presenting it, another network, before and after its time.
        assert!(matches!(
            cert.check(&public, &mallory, now),
            Err(CertificateError::OtherRelay(_))
        ));
        assert_eq!(
            cert.check(&other_admin.public(), &relay, now),
            Err(CertificateError::BadSignature)
        );
        assert_eq!(
            cert.check(&public, &relay, 999 * day),
            Err(CertificateError::NotYetValid)
        );
        assert_eq!(
            cert.check(&public, &relay, 1_365 * day),
            Err(CertificateError::Expired)
        );
        // Any changed field breaks the signature.
        for tamper in 0..4 {
            let mut forged = cert.clone();
            match tamper {
                0 => forged.relay = mallory,
                1 => forged.expires_ms += day,
                2 => forged.issued_ms -= 1,
                _ => forged.signature[5] ^= 1,
            }
            let who = if tamper == 0 { mallory } else { relay };
            assert_eq!(
                forged.check(&public, &who, now),
                Err(CertificateError::BadSignature),
                "tamper {tamper}"
            );
        }
        // At most 5 years, from the issuer and at the checker.
        assert!(admin.certify_relay(relay, 0, 6 * 366 * day).is_err());
        let mut long = cert.clone();
        long.expires_ms = long.issued_ms + 6 * 366 * day;
        assert_eq!(
            long.check(&public, &relay, now),
            Err(CertificateError::TooLong)
        );
        // Malformed text is an error, never a panic.
        for bad in [
            "",
            "/flurfunk/relay-certificate/1/zz",
            "hello",
            &cert.to_text()[..50],
        ] {
            assert!(RelayCertificate::from_text(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_admin_key_file_roundtrips_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rathaus-admin.key");
        let key = AdminKey::generate(&mut rng());
        key.save_new(&path).unwrap();
        assert!(key.save_new(&path).is_err(), "never overwritten");
        assert_eq!(AdminKey::load(&path).unwrap().public(), key.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        std::fs::write(&path, b"FLURFUNK-ADMIN-KEY-1\nshort").unwrap();
        assert!(matches!(
            AdminKey::load(&path),
            Err(AdminError::Format { .. })
        ));
        std::fs::write(&path, vec![0u8; 10_000]).unwrap();
        assert!(matches!(
            AdminKey::load(&path),
            Err(AdminError::Format { .. })
        ));
        assert!(matches!(
            AdminKey::load(&dir.path().join("missing")),
            Err(AdminError::Read { .. })
        ));
    }

    #[test]
    fn a_rotation_for_1000_colleagues_is_64_kb_and_one_runs_at_a_time() {
        let mut rng = rng();
        let admin = AdminKey::generate(&mut rng);
        let users: Vec<(UserId, [u8; 32])> = (0..1000)
            .map(|i| {
                let id = crate::identity::Identity::generate(&mut rng, &format!("U{i}")).unwrap();
                (id.user_id(), id.dh_public())
            })
            .collect();
        let now = 1_000_000;
        let (first, left_out) = admin
            .rotate_network_key(
                &mut rng,
                None,
                &[5; 32],
                &users,
                [0; 16],
                now,
                now + 1000,
                now,
            )
            .unwrap();
        assert!(left_out.is_empty());
        assert_eq!(first.body.len(), 98 + 64 * 1000);
        assert_eq!(first.encode().len(), 64_184);
        first.check(&admin.public()).unwrap();
        // Another one before the overlap ended is refused; after it, it is the next serial.
        let again = admin.rotate_network_key(
            &mut rng,
            Some(&first),
            &[6; 32],
            &users,
            [0; 16],
            now + 10,
            now + 20,
            now + 10,
        );
        assert!(matches!(again, Err(AdminError::RotationUnderWay { .. })));
        let (second, _) = admin
            .rotate_network_key(
                &mut rng,
                Some(&first),
                &[6; 32],
                &users,
                [0; 16],
                // The overlap's end and a quarter of it more (the grace).
                now + 1250,
                now + 2250,
                now + 1250,
            )
            .unwrap();
        assert_eq!(second.serial, 2);
        // A switch in the past, an overlap backwards or beyond 30 days, nobody: refused.
        for (switch, until, who) in [
            (now - 1, now + 10, &users[..]),
            (now + 10, now + 5, &users[..]),
            (now, now + crate::wire::MAX_OVERLAP_MS + 1, &users[..]),
            (now, now + 10, &users[..0]),
        ] {
            assert!(
                admin
                    .rotate_network_key(&mut rng, None, &[5; 32], who, [0; 16], switch, until, now)
                    .is_err()
            );
        }
    }
}
