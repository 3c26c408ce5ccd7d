//! What the network's admin key signs: relay certificates and statements (revocations
//! so far; docs/PROTOCOL.md, "Administration").

use super::{GroupRetention, OrgGroups, Reader, WireError, Writer};
use crate::crypto::{self, LABEL_ADMIN_STATEMENT, LABEL_RELAY_CERTIFICATE};
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

const STATEMENT_VERSION: u8 = 1;
/// Largest body of one statement (a revocation list of `MAX_REVOCATIONS` fits, and a
/// directory of some 4,000 colleagues with names and departments of usual length).
/// Nodes that understand only kinds 1 and 2 (up to 192 KiB) are never sent a directory.
pub const MAX_STATEMENT_BODY: usize = 512 * 1024;
/// Kinds of statement a node keeps at most (one statement each).
pub const MAX_STATEMENT_KINDS: usize = 8;
/// The highest statement kind code this build understands.
pub const KNOWN_STATEMENT_KINDS: u8 = 6;
/// Users one revocation list names at most (40 bytes each).
pub const MAX_REVOCATIONS: usize = 4096;

/// What an admin statement is about; each kind has its own serials (newest wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatementKind {
    /// The users who left the organisation (`Revocations`).
    Revocations,
    /// The organisation's switches for every node (`Policy`).
    Policy,
    /// Official names and departments (`Directory`).
    Directory,
    /// The next network key, sealed to each colleague (`NetworkKeyRotation`).
    NetworkKey,
    /// The groups whose membership the directory decides (`OrgGroups`).
    OrgGroups,
    /// Retention periods of single groups (`GroupRetention`).
    GroupRetention,
}

impl StatementKind {
    pub fn code(self) -> u8 {
        match self {
            StatementKind::Revocations => 1,
            StatementKind::Policy => 2,
            StatementKind::Directory => 3,
            StatementKind::NetworkKey => 4,
            StatementKind::OrgGroups => 5,
            StatementKind::GroupRetention => 6,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(StatementKind::Revocations),
            2 => Some(StatementKind::Policy),
            3 => Some(StatementKind::Directory),
            4 => Some(StatementKind::NetworkKey),
            5 => Some(StatementKind::OrgGroups),
            6 => Some(StatementKind::GroupRetention),
            _ => None,
        }
    }
}

/// A statement of the network's admin key (docs/PROTOCOL.md, "Admin statements"): per
/// kind, the one with the highest serial holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminStatement {
    pub kind: StatementKind,
    pub serial: u64,
    pub issued_ms: u64,
    pub body: Vec<u8>,
    pub signature: [u8; 64],
}

impl AdminStatement {
    /// What the admin key signs: it names the admin key, so a statement of one network
    /// means nothing in another.
    pub fn signed_bytes(
        admin: &[u8; 32],
        kind: StatementKind,
        serial: u64,
        issued_ms: u64,
        body: &[u8],
    ) -> Vec<u8> {
        let mut w = Writer::with_capacity(32 + 1 + 1 + 16 + 4 + body.len());
        w.bytes(admin);
        w.u8(STATEMENT_VERSION);
        w.u8(kind.code());
        w.u64(serial);
        w.u64(issued_ms);
        w.var_bytes(body);
        w.into_bytes()
    }

    /// Whether the admin key `admin` signed this statement, and its body is well formed.
    pub fn check(&self, admin: &[u8; 32]) -> Result<(), WireError> {
        let msg = Self::signed_bytes(admin, self.kind, self.serial, self.issued_ms, &self.body);
        crypto::verify_with_key(admin, LABEL_ADMIN_STATEMENT, &msg, &self.signature).map_err(
            |_| WireError::Invalid {
                what: "admin statement signature",
            },
        )?;
        match self.kind {
            StatementKind::Revocations => Revocations::decode(&self.body).map(|_| ()),
            StatementKind::Policy => Policy::decode(&self.body).map(|_| ()),
            StatementKind::Directory => Directory::decode(&self.body).map(|_| ()),
            StatementKind::NetworkKey => super::NetworkKeyRotation::decode(&self.body).map(|_| ()),
            StatementKind::OrgGroups => OrgGroups::decode(&self.body).map(|_| ()),
            StatementKind::GroupRetention => GroupRetention::check_body(&self.body),
        }
    }

    /// Of two statements of one kind, whether `self` wins over `other` (newest wins; at
    /// one serial, the lower hash of the encoding, so every node settles alike).
    pub fn beats(&self, other: &AdminStatement) -> bool {
        self.rank() > other.rank()
    }

    /// The order of `beats` as a value, as peers announce it (`SyncMessage::AdminSerials`):
    /// serial, then the lower hash prefix.
    pub fn rank(&self) -> (u64, std::cmp::Reverse<[u8; 8]>) {
        let hash = super::hash32(&[&self.encode()]);
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&hash[..8]);
        (self.serial, std::cmp::Reverse(prefix))
    }

    pub(super) fn encode_into(&self, w: &mut Writer) {
        w.u8(STATEMENT_VERSION);
        w.u8(self.kind.code());
        w.u64(self.serial);
        w.u64(self.issued_ms);
        w.var_bytes(&self.body);
        w.bytes(&self.signature);
    }

    pub(super) fn decode_from(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let version = r.u8()?;
        if version != STATEMENT_VERSION {
            return Err(WireError::UnknownTag {
                what: "admin statement version",
                tag: version,
            });
        }
        let code = r.u8()?;
        let kind = StatementKind::from_code(code).ok_or(WireError::UnknownTag {
            what: "admin statement kind",
            tag: code,
        })?;
        let serial = r.u64()?;
        if serial == 0 {
            return Err(WireError::Invalid {
                what: "admin statement serial",
            });
        }
        Ok(AdminStatement {
            kind,
            serial,
            issued_ms: r.u64()?,
            body: r.var_bytes(MAX_STATEMENT_BODY)?.to_vec(),
            signature: r.array()?,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.body.len() + 96);
        self.encode_into(&mut w);
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let statement = Self::decode_from(&mut r)?;
        r.finish()?;
        Ok(statement)
    }
}

/// The body of a revocation statement: who left, and since when (ms since the epoch).
/// Events those users sign later than that are refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revocations {
    pub revoked: std::collections::BTreeMap<UserId, u64>,
}

impl Revocations {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(2 + 40 * self.revoked.len());
        w.u16(self.revoked.len() as u16);
        for (user, at) in &self.revoked {
            w.bytes(&user.0);
            w.u64(*at);
        }
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let n = r.count16("revocations", MAX_REVOCATIONS, 40)?;
        let mut revoked = std::collections::BTreeMap::new();
        let mut last: Option<UserId> = None;
        for _ in 0..n {
            let user = UserId(r.array()?);
            // Canonical: strictly ascending, so one list has one encoding.
            if last.is_some_and(|l| l >= user) {
                return Err(WireError::Invalid {
                    what: "revocation order",
                });
            }
            last = Some(user);
            revoked.insert(user, r.u64()?);
        }
        r.finish()?;
        Ok(Revocations { revoked })
    }
}

/// How much of colleagues' presence nodes show (`Policy::presence`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Online, offline and "last seen".
    #[default]
    Full,
    /// Online or offline, no "last seen".
    OnlineOnly,
    /// Neither.
    Hidden,
}

/// Largest policy body (a few switches; room for later ones).
pub const MAX_POLICY_BODY: usize = 1024;

/// The organisation's switches (docs/PROTOCOL.md, "Admin statements"): what a staff
/// council or data-protection officer decides for every node. Encoded as fields (tag,
/// length, value) in ascending tag order; a node skips tags it does not know, so a newer
/// admin tool's policy still applies its known switches on older nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    /// Whether anyone is told that a message was read (delivery ticks stay).
    pub read_receipts: bool,
    pub presence: Presence,
    /// Largest file a node sends (`None`: each node's own setting).
    pub max_file_bytes: Option<u64>,
    /// Largest file fetched without a click (`None`: each node's own setting).
    pub auto_download_bytes: Option<u64>,
    /// Whether messages may be deleted for everyone (off where retention duties forbid
    /// it; deleting for oneself stays).
    #[serde(default = "yes")]
    pub delete_for_everyone: bool,
    /// Seconds after sending within which its author may edit a message (`None`: any
    /// time).
    #[serde(default)]
    pub edit_window_s: Option<u64>,
    /// Seconds after sending within which a message may be deleted for everyone
    /// (`None`: any time).
    #[serde(default)]
    pub delete_window_s: Option<u64>,
    /// Seconds after sending after which every node deletes a message's text, file,
    /// edits and reactions (`None`: kept; at least `MIN_KEEP_MESSAGES_S`). The network's
    /// statement only, never a machine's: every node must judge a message's age alike.
    #[serde(default)]
    pub keep_messages_s: Option<u64>,
    /// Messages stamped before this (ms) may have lost their bodies to an earlier,
    /// shorter retention: nodes take such copies from peers also after the retention
    /// was lengthened or switched off (`carry_retention`). Only ever raised.
    #[serde(default)]
    pub dropped_before_ms: Option<u64>,
    /// Features the organisation turned off (`FEATURE_*` bits; 0: none). A network's and
    /// a machine's add up.
    #[serde(default)]
    pub features_off: u64,
}

/// Sending files and photos (receiving stays).
pub const FEATURE_FILES: u64 = 1;
/// Reacting to messages.
pub const FEATURE_REACTIONS: u64 = 1 << 1;
/// Editing one's messages after sending.
pub const FEATURE_EDITS: u64 = 1 << 2;
/// The message's text in notifications (they say only who wrote, and where).
pub const FEATURE_PREVIEWS: u64 = 1 << 3;
/// Every feature a policy can turn off, with its name in tools and settings files.
pub const FEATURES: [(u64, &str); 4] = [
    (FEATURE_FILES, "files"),
    (FEATURE_REACTIONS, "reactions"),
    (FEATURE_EDITS, "edits"),
    (FEATURE_PREVIEWS, "previews"),
];

/// The shortest retention a policy may set (a day: clocks differ, and a typo must not
/// delete everything at once).
pub const MIN_KEEP_MESSAGES_S: u64 = 86_400;

fn yes() -> bool {
    true
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            read_receipts: true,
            presence: Presence::Full,
            max_file_bytes: None,
            auto_download_bytes: None,
            delete_for_everyone: true,
            edit_window_s: None,
            delete_window_s: None,
            keep_messages_s: None,
            dropped_before_ms: None,
            features_off: 0,
        }
    }
}

impl Policy {
    /// This policy (the network's, signed) over `machine` (the machine's settings): each
    /// switch the network sets holds, the machine's where it sets none; deletion for
    /// everyone and the features are off where either turns them off. A switch at its
    /// default (read receipts on, full presence) counts as not set.
    pub fn over(self, machine: Policy) -> Policy {
        let defaults = Policy::default();
        Policy {
            read_receipts: if self.read_receipts != defaults.read_receipts {
                self.read_receipts
            } else {
                machine.read_receipts
            },
            presence: if self.presence != defaults.presence {
                self.presence
            } else {
                machine.presence
            },
            max_file_bytes: self.max_file_bytes.or(machine.max_file_bytes),
            auto_download_bytes: self.auto_download_bytes.or(machine.auto_download_bytes),
            delete_for_everyone: self.delete_for_everyone && machine.delete_for_everyone,
            edit_window_s: self.edit_window_s.or(machine.edit_window_s),
            delete_window_s: self.delete_window_s.or(machine.delete_window_s),
            keep_messages_s: self.keep_messages_s,
            dropped_before_ms: self.dropped_before_ms,
            features_off: self.features_off | machine.features_off,
        }
    }

    /// Whether `feature` (a `FEATURE_*` bit) may be used.
    pub fn allows(&self, feature: u64) -> bool {
        self.features_off & feature == 0
    }

    /// The next policy after `before` at `now_ms`: where the retention gets longer or is
    /// switched off, messages older than the old one may already have lost their bodies
    /// on some nodes, so `dropped_before_ms` is raised to say so (else nodes that lack
    /// such a message would refuse the emptied copies for good, and the author's later
    /// messages behind it).
    pub fn carry_retention(mut self, before: &Policy, now_ms: u64) -> Policy {
        self.dropped_before_ms = self.dropped_before_ms.max(before.dropped_before_ms);
        if let Some(old) = before.keep_messages_s
            && self.keep_messages_s.is_none_or(|new| new > old)
        {
            let floor = retention_floor(old, now_ms);
            self.dropped_before_ms = Some(self.dropped_before_ms.unwrap_or(0).max(floor));
        }
        self
    }

    /// Whether a message sent at `sent_ms` may still be edited by its author at `now_ms`.
    pub fn may_edit(&self, sent_ms: u64, now_ms: u64) -> bool {
        self.allows(FEATURE_EDITS) && within(self.edit_window_s, sent_ms, now_ms)
    }

    /// Whether a message sent at `sent_ms` may still be deleted for everyone at `now_ms`.
    pub fn may_delete_for_everyone(&self, sent_ms: u64, now_ms: u64) -> bool {
        self.delete_for_everyone && within(self.delete_window_s, sent_ms, now_ms)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(32);
        if !self.read_receipts {
            w.u8(1);
            w.u8(1);
            w.u8(0);
        }
        if self.presence != Presence::Full {
            w.u8(2);
            w.u8(1);
            w.u8(match self.presence {
                Presence::Full => 0,
                Presence::OnlineOnly => 1,
                Presence::Hidden => 2,
            });
        }
        for (tag, value) in [(3, self.max_file_bytes), (4, self.auto_download_bytes)] {
            if let Some(v) = value {
                w.u8(tag);
                w.u8(8);
                w.u64(v);
            }
        }
        if !self.delete_for_everyone {
            w.u8(5);
            w.u8(1);
            w.u8(0);
        }
        for (tag, value) in [
            (6, self.edit_window_s),
            (7, self.delete_window_s),
            (8, self.keep_messages_s),
            (9, self.dropped_before_ms),
        ] {
            if let Some(v) = value {
                w.u8(tag);
                w.u8(8);
                w.u64(v);
            }
        }
        if self.features_off != 0 {
            w.u8(10);
            w.u8(8);
            w.u64(self.features_off);
        }
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_POLICY_BODY {
            return Err(WireError::TooLarge {
                len: bytes.len(),
                max: MAX_POLICY_BODY,
            });
        }
        let invalid = || WireError::Invalid { what: "policy" };
        let mut r = Reader::new(bytes);
        let mut policy = Policy::default();
        let mut last = 0u8;
        while r.remaining() > 0 {
            let tag = r.u8()?;
            // Canonical: ascending tags, each once.
            if tag <= last {
                return Err(invalid());
            }
            last = tag;
            let value = r.var_bytes_u8()?;
            match (tag, value) {
                (1, [0]) => policy.read_receipts = false,
                (1, [1]) => policy.read_receipts = true,
                (2, [0]) => policy.presence = Presence::Full,
                (2, [1]) => policy.presence = Presence::OnlineOnly,
                (2, [2]) => policy.presence = Presence::Hidden,
                (3 | 4 | 6..=10, v) if v.len() == 8 => {
                    let value = u64::from_be_bytes(v.try_into().map_err(|_| invalid())?);
                    let n = Some(value);
                    match tag {
                        3 => policy.max_file_bytes = n,
                        4 => policy.auto_download_bytes = n,
                        6 => policy.edit_window_s = n,
                        7 => policy.delete_window_s = n,
                        // Under the minimum: not a retention (ignored, not refused, so
                        // nodes of two versions never disagree on the statement).
                        8 => policy.keep_messages_s = n.filter(|s| *s >= MIN_KEEP_MESSAGES_S),
                        9 => policy.dropped_before_ms = n,
                        // Bits of features a newer build knows count as well (a node
                        // that does not know a feature has nothing to turn off).
                        _ => policy.features_off = value,
                    }
                }
                (5, [0]) => policy.delete_for_everyone = false,
                (5, [1]) => policy.delete_for_everyone = true,
                (1..=10, _) => return Err(invalid()),
                // A switch of a newer Flurfunk: skipped.
                _ => {}
            }
        }
        Ok(policy)
    }
}

/// The features `off` names, in English ("files, reactions"; "none").
pub fn features_named(off: u64) -> String {
    let mut names: Vec<String> = FEATURES
        .iter()
        .filter(|(bit, _)| off & bit != 0)
        .map(|(_, name)| name.to_string())
        .collect();
    let known = FEATURES.iter().fold(0, |all, (bit, _)| all | bit);
    if off & !known != 0 {
        names.push(format!("features of a newer version ({:#x})", off & !known));
    }
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// The bit of the feature called `name` (`FEATURES`).
pub fn feature_named(name: &str) -> Result<u64, String> {
    let name = name.trim();
    FEATURES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(bit, _)| *bit)
        .ok_or_else(|| {
            let known: Vec<&str> = FEATURES.iter().map(|(_, n)| *n).collect();
            format!("unknown feature {name:?}: use {}", known.join(", "))
        })
}

/// A window in its largest whole unit, in English: "15 minutes", "2 days", "30 seconds".
pub fn human_window(s: u64) -> String {
    let (n, unit) = match s {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// Messages stamped before this (ms) may have lost their bodies at `now_ms` under a
/// period of `keep_s`: nodes whose clocks run ahead by the receivers' margin (a day, a
/// quarter of the period at most) may have dropped that much more.
pub(super) fn retention_floor(keep_s: u64, now_ms: u64) -> u64 {
    let keep_ms = keep_s.saturating_mul(1000);
    let margin = (24 * 3600 * 1000u64).min(keep_ms / 4);
    now_ms.saturating_sub(keep_ms).saturating_add(margin)
}

/// Whether `now_ms` is within `window_s` seconds after `sent_ms` (no window: always).
fn within(window_s: Option<u64>, sent_ms: u64, now_ms: u64) -> bool {
    window_s.is_none_or(|w| now_ms.saturating_sub(sent_ms) <= w.saturating_mul(1000))
}

/// Colleagues one directory names at most.
pub const MAX_DIRECTORY_ENTRIES: usize = 4096;

/// A colleague's official name and department, as the admin set them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DirectoryEntry {
    pub name: String,
    /// Empty: none given.
    pub department: String,
}

/// The body of a directory statement (docs/PROTOCOL.md, "Admin statements"): official
/// names and departments by user id. Nodes show these instead of the names colleagues
/// chose, with a mark; a self-chosen name that looks like an official one of someone
/// else is shown as doubtful.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directory {
    pub entries: std::collections::BTreeMap<UserId, DirectoryEntry>,
}

impl Directory {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(2 + 64 * self.entries.len());
        w.u16(self.entries.len() as u16);
        for (user, entry) in &self.entries {
            w.bytes(&user.0);
            for text in [&entry.name, &entry.department] {
                w.u8(text.len() as u8);
                w.bytes(text.as_bytes());
            }
        }
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let invalid = |what| WireError::Invalid { what };
        let mut r = Reader::new(bytes);
        let n = r.count16("directory entries", MAX_DIRECTORY_ENTRIES, 32 + 2)?;
        let mut entries = std::collections::BTreeMap::new();
        let mut last: Option<UserId> = None;
        for _ in 0..n {
            let user = UserId(r.array()?);
            // Canonical: strictly ascending, so one directory has one encoding.
            if last.is_some_and(|l| l >= user) {
                return Err(invalid("directory order"));
            }
            last = Some(user);
            let name = std::str::from_utf8(r.var_bytes_u8()?)
                .map_err(|_| invalid("directory name"))?
                .to_string();
            let department = std::str::from_utf8(r.var_bytes_u8()?)
                .map_err(|_| invalid("directory department"))?
                .to_string();
            // The wire rule only (as for profiles): the stricter character rule is the
            // admin tool's when it writes, and nodes clean what they show
            // (`identity::clean_peer_name`), so nodes of two versions never disagree on
            // whether a signed directory is valid.
            crate::identity::validate_wire_name(&name).map_err(|_| invalid("directory name"))?;
            if !department.is_empty() {
                crate::identity::validate_wire_name(&department)
                    .map_err(|_| invalid("directory department"))?;
            }
            entries.insert(user, DirectoryEntry { name, department });
        }
        r.finish()?;
        Ok(Directory { entries })
    }
}

#[cfg(test)]
mod statement_tests {
    use super::*;

    fn signed(admin: &ed25519_dalek::SigningKey, serial: u64, body: Vec<u8>) -> AdminStatement {
        let msg = AdminStatement::signed_bytes(
            &admin.verifying_key().to_bytes(),
            StatementKind::Revocations,
            serial,
            7,
            &body,
        );
        use ed25519_dalek::Signer;
        AdminStatement {
            kind: StatementKind::Revocations,
            serial,
            issued_ms: 7,
            body,
            signature: admin
                .sign(&crypto::labelled(LABEL_ADMIN_STATEMENT, &msg))
                .to_bytes(),
        }
    }

    #[test]
    fn statements_are_bound_to_the_admin_key_and_every_field() {
        let admin = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let other = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let pk = admin.verifying_key().to_bytes();
        let mut list = Revocations::default();
        list.revoked.insert(UserId([9; 32]), 1_000);
        let s = signed(&admin, 2, list.encode());
        assert_eq!(s.check(&pk), Ok(()));
        assert_eq!(AdminStatement::decode(&s.encode()), Ok(s.clone()));
        assert!(s.check(&other.verifying_key().to_bytes()).is_err());
        assert!(signed(&other, 2, list.encode()).check(&pk).is_err());
        let mut t = s.clone();
        t.serial = 3;
        assert!(t.check(&pk).is_err());
        let mut t = s.clone();
        t.body[5] ^= 1;
        assert!(t.check(&pk).is_err());
        let mut t = s.clone();
        t.issued_ms += 1;
        assert!(t.check(&pk).is_err());
        // A well-signed but malformed body is refused too.
        assert!(signed(&admin, 4, vec![0, 1]).check(&pk).is_err());
        // Newest wins; one serial: the same winner whichever is asked.
        let newer = signed(&admin, 3, Revocations::default().encode());
        assert!(newer.beats(&s) && !s.beats(&newer));
        let twin = signed(&admin, 2, Revocations::default().encode());
        assert!(twin.beats(&s) != s.beats(&twin));
        assert!(!s.beats(&s));
    }

    #[test]
    fn policies_round_trip_skip_unknown_switches_and_refuse_malformed_ones() {
        let policy = Policy {
            read_receipts: false,
            presence: Presence::OnlineOnly,
            max_file_bytes: Some(100 << 20),
            auto_download_bytes: Some(0),
            delete_for_everyone: false,
            edit_window_s: Some(15 * 60),
            delete_window_s: Some(0),
            keep_messages_s: Some(90 * 86_400),
            dropped_before_ms: Some(1_000),
            features_off: FEATURE_REACTIONS | FEATURE_PREVIEWS,
        };
        assert_eq!(Policy::decode(&policy.encode()), Ok(policy));
        // Features: a network's and a machine's add up; editing off means no edit at
        // all; a feature bit of a newer build is kept (nothing to turn off here).
        let machine = Policy {
            features_off: FEATURE_FILES,
            ..Policy::default()
        };
        let both = policy.over(machine);
        assert_eq!(
            both.features_off,
            FEATURE_FILES | FEATURE_REACTIONS | FEATURE_PREVIEWS
        );
        assert!(both.allows(FEATURE_EDITS) && !both.allows(FEATURE_FILES));
        assert!(both.may_edit(1_000, 1_000));
        let no_edits = Policy {
            features_off: FEATURE_EDITS,
            ..Policy::default()
        };
        assert!(!no_edits.may_edit(1_000, 1_000));
        let newer = Policy {
            features_off: 1 << 40,
            ..Policy::default()
        };
        assert_eq!(Policy::decode(&newer.encode()), Ok(newer));
        assert_eq!(
            features_named(FEATURE_FILES | FEATURE_EDITS),
            "files, edits"
        );
        assert_eq!(feature_named(" Reactions"), Ok(FEATURE_REACTIONS));
        assert!(feature_named("calls").is_err());
        // A retention under a day: no retention.
        let short = Policy {
            keep_messages_s: Some(3_600),
            ..Policy::default()
        };
        assert_eq!(Policy::decode(&short.encode()), Ok(Policy::default()));
        // Lengthened or switched off: what the old one may have dropped is said; only
        // ever raised.
        let day = 86_400_000;
        let thirty = Policy {
            keep_messages_s: Some(30 * 86_400),
            ..Policy::default()
        };
        let off = Policy::default().carry_retention(&thirty, 100 * day);
        assert_eq!(off.dropped_before_ms, Some(71 * day));
        let longer = Policy {
            keep_messages_s: Some(90 * 86_400),
            ..Policy::default()
        }
        .carry_retention(&off, 50 * day);
        assert_eq!(longer.dropped_before_ms, Some(71 * day));
        let shorter = thirty.carry_retention(&longer, 200 * day);
        assert_eq!(shorter.dropped_before_ms, Some(71 * day));
        // The network's retention holds whatever the machine says; a machine sets none.
        let machine = Policy {
            keep_messages_s: Some(86_400),
            ..Policy::default()
        };
        assert_eq!(Policy::default().over(machine).keep_messages_s, None);
        assert_eq!(policy.over(machine).keep_messages_s, Some(90 * 86_400));
        assert_eq!(Policy::decode(&[]), Ok(Policy::default()));
        // An unknown switch of a newer tool is skipped; the known ones hold.
        let mut newer = policy.encode();
        newer.extend_from_slice(&[11, 2, 0xab, 0xcd]);
        assert_eq!(Policy::decode(&newer), Ok(policy));
        // Out of order, repeated, a wrong length or value, truncated: refused.
        assert!(Policy::decode(&[2, 1, 1, 1, 1, 0]).is_err());
        assert!(Policy::decode(&[1, 1, 0, 1, 1, 0]).is_err());
        assert!(Policy::decode(&[1, 2, 0, 0]).is_err());
        assert!(Policy::decode(&[2, 1, 7]).is_err());
        assert!(Policy::decode(&[3, 8, 0, 0]).is_err());
        assert!(Policy::decode(&[5, 1, 2]).is_err());
        assert!(Policy::decode(&[6, 4, 0, 0, 0, 1]).is_err());
        assert!(Policy::decode(&vec![9; MAX_POLICY_BODY + 1]).is_err());
    }

    #[test]
    fn windows_read_in_their_largest_unit() {
        assert_eq!(human_window(60), "1 minute");
        assert_eq!(human_window(15 * 60), "15 minutes");
        assert_eq!(human_window(86_400), "1 day");
        assert_eq!(human_window(2 * 86_400), "2 days");
        assert_eq!(human_window(90), "90 seconds");
    }

    #[test]
    fn edit_and_delete_windows_count_from_sending() {
        let mut p = Policy::default();
        assert!(p.may_edit(0, u64::MAX) && p.may_delete_for_everyone(0, u64::MAX));
        p.edit_window_s = Some(15 * 60);
        p.delete_window_s = Some(2 * 86_400);
        let sent = 1_000_000;
        assert!(p.may_edit(sent, sent + 15 * 60_000));
        assert!(!p.may_edit(sent, sent + 15 * 60_000 + 1));
        assert!(p.may_delete_for_everyone(sent, sent + 86_400_000));
        assert!(!p.may_delete_for_everyone(sent, sent + 3 * 86_400_000));
        // A clock behind the message's own: still inside.
        assert!(p.may_edit(sent, sent - 5_000));
        p.delete_for_everyone = false;
        assert!(!p.may_delete_for_everyone(sent, sent));
        // Over the machine's settings: the stricter "no" holds, a window set by the
        // network wins over the machine's.
        let machine = Policy {
            edit_window_s: Some(60),
            ..Policy::default()
        };
        let net = Policy {
            delete_for_everyone: false,
            ..Policy::default()
        };
        let both = net.over(machine);
        assert!(!both.delete_for_everyone);
        assert_eq!(both.edit_window_s, Some(60));
        assert!(!Policy::default().over(net).delete_for_everyone);
    }

    #[test]
    fn directories_are_canonical_bounded_and_hold_wire_valid_names() {
        let mut dir = Directory::default();
        let entry = |name: &str, department: &str| DirectoryEntry {
            name: name.into(),
            department: department.into(),
        };
        dir.entries
            .insert(UserId([2; 32]), entry("Bürgermeisteramt", ""));
        dir.entries
            .insert(UserId([1; 32]), entry("Anna Schmidt", "Bürgerbüro"));
        let bytes = dir.encode();
        assert_eq!(Directory::decode(&bytes), Ok(dir.clone()));
        assert_eq!(Directory::decode(&[0, 0]), Ok(Directory::default()));
        // Out of order or repeated: refused; ascending: taken.
        let one = |id: u8| {
            let mut v = vec![id; 32];
            v.extend_from_slice(&[1, b'A', 0]);
            v
        };
        let two = |a: u8, b: u8| [vec![0, 2], one(a), one(b)].concat();
        assert!(Directory::decode(&two(1, 2)).is_ok());
        assert!(Directory::decode(&two(2, 1)).is_err());
        assert!(Directory::decode(&two(1, 1)).is_err());
        // An empty name or one with outer spaces, bad UTF-8, a lying count, trailing
        // bytes: refused. Invisible or direction characters pass the wire rule (the
        // admin tool refuses them, nodes drop them when showing).
        for bad in ["", " Anna", "Anna "] {
            let mut d = Directory::default();
            d.entries.insert(UserId([1; 32]), entry(bad, ""));
            assert!(Directory::decode(&d.encode()).is_err(), "{bad:?}");
        }
        let mut d = Directory::default();
        d.entries
            .insert(UserId([1; 32]), entry("Anna\u{202E}", "Amt\u{200B}"));
        assert!(Directory::decode(&d.encode()).is_ok());
        let mut utf = dir.encode();
        utf[2 + 32 + 1] = 0xff;
        assert!(Directory::decode(&utf).is_err());
        assert!(Directory::decode(&[0xff, 0xff]).is_err());
        let mut trailing = dir.encode();
        trailing.push(0);
        assert!(Directory::decode(&trailing).is_err());
    }

    #[test]
    fn revocation_lists_are_canonical_and_bounded() {
        let mut list = Revocations::default();
        list.revoked.insert(UserId([2; 32]), 5);
        list.revoked.insert(UserId([1; 32]), 6);
        let bytes = list.encode();
        assert_eq!(Revocations::decode(&bytes), Ok(list));
        // Swapped order: refused.
        let mut swapped = bytes.clone();
        swapped[2..42].copy_from_slice(&bytes[42..82]);
        swapped[42..82].copy_from_slice(&bytes[2..42]);
        assert!(Revocations::decode(&swapped).is_err());
        // A count beyond the bound or the bytes: refused before allocating.
        assert!(Revocations::decode(&[0xff, 0xff]).is_err());
        assert!(Revocations::decode(&[0, 3]).is_err());
        assert!(Revocations::decode(&[0]).is_err());
        assert!(AdminStatement::decode(&[1, 9, 0]).is_err());
        assert!(AdminStatement::decode(&[]).is_err());
    }
}
