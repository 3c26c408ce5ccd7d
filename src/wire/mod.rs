//! The one wire module: every byte that is signed, stored or sent is encoded here.
//!
//! Encoding is canonical (one byte string per value), versioned (a leading version byte;
//! enums carry explicit tags, unknown tags decode to `Unknown` so old nodes still store and
//! forward newer kinds) and bounded: every length is checked against a named limit before
//! anything is allocated. Nothing here panics on input.

use std::collections::BTreeMap;
use std::fmt;

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};

use crate::crypto::{LABEL_BODY_HASH, LABEL_EVENT_ID, LABEL_VV_DIGEST};
use crate::identity::{MAX_DISPLAY_NAME_BYTES, Profile, UserId};

pub const WIRE_VERSION: u8 = 5;
/// Largest encoded event. A text of a few pages fits; attachments will travel separately.
/// The largest events are a group's creation (a profile per member, at most 201 bytes
/// each) and its rekeys (96 bytes per member): 448 KiB holds those of `MAX_MEMBERS`.
pub const MAX_EVENT_BYTES: usize = 448 * 1024;
/// Largest text message, in bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 32 * 1024;
/// Largest sync frame. Batches are cut well below this (see `sync::BATCH_BYTES`).
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// Most members a conversation can have: bounds the size of a creation and of a rekey. A
/// town hall's "Alle" group has up to about 1,500 members.
pub const MAX_MEMBERS: usize = 2000;
/// Most conversations announced in one summary frame.
pub const MAX_SUMMARY_CONVERSATIONS: usize = 4096;
/// Profiles per `Profiles` frame: a whole town hall (a few hundred staff) fits in one.
pub const MAX_PROFILES_PER_FRAME: usize = 1024;
/// Most events in one frame.
pub const MAX_EVENTS_PER_FRAME: usize = 8192;
/// Bytes of a version-vector digest. Two different vectors share one with probability
/// 2^-128; even then the next change of either repairs it.
pub const DIGEST_BYTES: usize = 16;
/// Most (conversation, author, seq) items in one `Have` or `Want` frame.
pub const MAX_ANNOUNCE_ITEMS: usize = 4096;
/// Most receipts in one `Receipts` frame.
pub const MAX_RECEIPTS_PER_FRAME: usize = 1024;

pub const EVENT_HEADER_LEN: usize = 1 + 32 + 32 + 8 + 32 + 8 + 8 + 4 + 32 + 1;
const PROFILE_MIN_LEN: usize = 32 + 32 + 8 + 1 + 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("input of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("input ends early: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("{extra} unexpected bytes after the end")]
    TrailingBytes { extra: usize },
    #[error("unsupported wire version {version}")]
    Version { version: u8 },
    #[error("unknown tag {tag} for {what}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("{what}: count {count} exceeds the limit of {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("invalid {what}")]
    Invalid { what: &'static str },
}

macro_rules! id_type {
    ($name:ident) => {
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; 32]);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &hex::encode(self.0)[..12])
            }
        }

        impl std::str::FromStr for $name {
            type Err = WireError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s.trim(), &mut out).map_err(|_| WireError::Invalid {
                    what: stringify!($name),
                })?;
                Ok($name(out))
            }
        }
    };
}
id_type!(ConversationId);
id_type!(EventId);

/// What an event's signature covers of its sealed body.
fn body_hash(sealed: &[u8]) -> [u8; 32] {
    hash32(&[LABEL_BODY_HASH, sealed])
}

pub(crate) fn hash32(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    Text,
    Membership,
    Rekey,
    DeliveryReceipt,
    ReadReceipt,
    /// A recipient proves that a rekey's wrap for it does not hold the committed key.
    KeyComplaint,
    /// A new text for an earlier own text (public part: the target's id).
    Edit,
    /// Deletes an earlier text for everyone (public part: the target's id; nothing sealed).
    Delete,
    /// An emoji under an earlier text, or none (public part: the target's id).
    Reaction,
    /// A kind from a newer version: stored and forwarded, never shown.
    Unknown(u8),
}

impl EventKind {
    pub fn code(self) -> u8 {
        match self {
            EventKind::Text => 1,
            EventKind::Membership => 2,
            EventKind::Rekey => 3,
            EventKind::DeliveryReceipt => 4,
            EventKind::ReadReceipt => 5,
            EventKind::KeyComplaint => 6,
            EventKind::Edit => 7,
            EventKind::Delete => 8,
            EventKind::Reaction => 9,
            EventKind::Unknown(c) => c,
        }
    }

    pub fn from_code(code: u8) -> Self {
        match code {
            1 => EventKind::Text,
            2 => EventKind::Membership,
            3 => EventKind::Rekey,
            4 => EventKind::DeliveryReceipt,
            5 => EventKind::ReadReceipt,
            6 => EventKind::KeyComplaint,
            7 => EventKind::Edit,
            8 => EventKind::Delete,
            9 => EventKind::Reaction,
            c => EventKind::Unknown(c),
        }
    }

    /// Kinds that change who is in a conversation or which key it uses.
    pub fn is_control(self) -> bool {
        matches!(self, EventKind::Membership | EventKind::Rekey)
    }

    pub fn is_receipt(self) -> bool {
        matches!(self, EventKind::DeliveryReceipt | EventKind::ReadReceipt)
    }

    /// Kinds that act on an earlier text, named by id in their public part.
    pub fn has_target(self) -> bool {
        matches!(
            self,
            EventKind::Edit | EventKind::Delete | EventKind::Reaction
        )
    }
}

/// The position of an event in its conversation's total order: Lamport clock, then
/// author, then sequence number. Every member sorts by this, so all see the same order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderKey {
    pub lamport: u64,
    pub author: UserId,
    pub seq: u64,
}

impl OrderKey {
    pub fn encode(&self) -> [u8; 48] {
        let mut out = [0u8; 48];
        out[..8].copy_from_slice(&self.lamport.to_be_bytes());
        out[8..40].copy_from_slice(&self.author.0);
        out[40..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 48 {
            return None;
        }
        let mut author = [0u8; 32];
        author.copy_from_slice(&bytes[8..40]);
        Some(OrderKey {
            lamport: u64::from_be_bytes(bytes[..8].try_into().ok()?),
            author: UserId(author),
            seq: u64::from_be_bytes(bytes[40..].try_into().ok()?),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventHeader {
    pub conversation: ConversationId,
    pub author: UserId,
    /// 1, 2, 3 ... per author per conversation.
    pub seq: u64,
    /// The id of the author's previous event in this conversation (zeros at seq 1): each
    /// author's events form a hash chain, so two versions of one seq cannot both fit.
    pub prev: EventId,
    /// At most `seq * LAMPORT_STEP` (`conversation::max_lamport`).
    pub lamport: u64,
    /// The author's wall clock in ms since the Unix epoch; shown, never trusted for order.
    pub wall_ms: u64,
    /// Key epoch the sealed part is encrypted with (0: no key yet, nothing sealed); for
    /// a rekey, the epoch it starts. A label for people and logs: which key opens the
    /// body is named by `key`.
    pub epoch: u32,
    /// The rekey whose key sealed the body (zeros when nothing is sealed). A reader opens
    /// the body with that key only, so one signed event never reads differently for
    /// different members (the AEAD does not commit to its key), and a reader can tell
    /// whether that key reached every member (`ConversationState::for_some_members`).
    pub key: EventId,
    pub kind: EventKind,
}

impl EventHeader {
    pub fn encode_into(&self, w: &mut Writer) {
        w.u8(WIRE_VERSION);
        w.bytes(&self.conversation.0);
        w.bytes(&self.author.0);
        w.u64(self.seq);
        w.bytes(&self.prev.0);
        w.u64(self.lamport);
        w.u64(self.wall_ms);
        w.u32(self.epoch);
        w.bytes(&self.key.0);
        w.u8(self.kind.code());
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let version = r.u8()?;
        if version != WIRE_VERSION {
            return Err(WireError::Version { version });
        }
        Ok(EventHeader {
            conversation: ConversationId(r.array()?),
            author: UserId(r.array()?),
            seq: r.u64()?,
            prev: EventId(r.array()?),
            lamport: r.u64()?,
            wall_ms: r.u64()?,
            epoch: r.u32()?,
            key: EventId(r.array()?),
            kind: EventKind::from_code(r.u8()?),
        })
    }

    pub fn order_key(&self) -> OrderKey {
        OrderKey {
            lamport: self.lamport,
            author: self.author,
            seq: self.seq,
        }
    }
}

/// A signed event. `public` is readable by relays (membership, key recipients); `sealed`
/// is encrypted with the conversation's epoch key. The signature covers the hash of
/// `sealed`, so a deleted message's body can be dropped (`purged`) while the event keeps
/// its id, signature and place in its author's chain. Construct with `Event::new`.
#[derive(Clone, PartialEq, Eq)]
pub struct Event {
    pub header: EventHeader,
    pub public: Vec<u8>,
    /// The sealed body; empty when there is none or it was purged.
    pub sealed: Vec<u8>,
    pub signature: [u8; 64],
    body_hash: [u8; 32],
    purged: bool,
    event_id: EventId,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.event_id)
            .field("kind", &self.header.kind)
            .field("author", &self.header.author)
            .field("seq", &self.header.seq)
            .field("lamport", &self.header.lamport)
            .finish_non_exhaustive()
    }
}

impl Event {
    pub fn new(header: EventHeader, public: Vec<u8>, sealed: Vec<u8>, signature: [u8; 64]) -> Self {
        let body_hash = body_hash(&sealed);
        Self::assemble(header, public, sealed, body_hash, false, signature)
    }

    fn assemble(
        header: EventHeader,
        public: Vec<u8>,
        sealed: Vec<u8>,
        body_hash: [u8; 32],
        purged: bool,
        signature: [u8; 64],
    ) -> Self {
        let mut e = Event {
            header,
            public,
            sealed,
            signature,
            body_hash,
            purged,
            event_id: EventId([0; 32]),
        };
        e.event_id = EventId(hash32(&[LABEL_EVENT_ID, &e.signed_bytes()]));
        e
    }

    /// This event without its sealed body: same id, same signature, same place. An
    /// event signed without a body (a deletion) stays as it is: a purged copy of it would
    /// not decode.
    pub fn purge(&self) -> Event {
        if !self.has_body() {
            return self.clone();
        }
        let mut e = self.clone();
        e.sealed = Vec::new();
        e.purged = true;
        e
    }

    /// Whether the body was dropped (a deleted message).
    pub fn is_purged(&self) -> bool {
        self.purged
    }

    /// Whether the event was signed with a sealed body (held or purged since). Decided by
    /// the signed hash, so a whole and a purged copy of one event always agree.
    pub fn has_body(&self) -> bool {
        self.body_hash != body_hash(&[])
    }

    /// For the kinds that act on an earlier text (`EventKind::has_target`): its id.
    pub fn target(&self) -> Option<EventId> {
        if !self.header.kind.has_target() {
            return None;
        }
        Some(EventId(self.public.as_slice().try_into().ok()?))
    }

    /// Bytes covered by the signature: header, public part, hash of the sealed part.
    pub fn signed_bytes(&self) -> Vec<u8> {
        Self::signed_with_hash(&self.header, &self.public, &self.body_hash)
    }

    pub fn signed_bytes_of(header: &EventHeader, public: &[u8], sealed: &[u8]) -> Vec<u8> {
        Self::signed_with_hash(header, public, &body_hash(sealed))
    }

    fn signed_with_hash(header: &EventHeader, public: &[u8], body_hash: &[u8; 32]) -> Vec<u8> {
        let mut w = Writer::with_capacity(EVENT_HEADER_LEN + 4 + public.len() + 32);
        header.encode_into(&mut w);
        w.var_bytes(public);
        w.bytes(body_hash);
        w.into_bytes()
    }

    /// Associated data for the sealed part: the header and the public part, so a body
    /// cannot be moved to another event, author or conversation.
    pub fn body_aad(header: &EventHeader, public: &[u8]) -> Vec<u8> {
        let mut w = Writer::with_capacity(EVENT_HEADER_LEN + 4 + public.len());
        header.encode_into(&mut w);
        w.var_bytes(public);
        w.into_bytes()
    }

    pub fn id(&self) -> EventId {
        self.event_id
    }

    pub fn order_key(&self) -> OrderKey {
        self.header.order_key()
    }

    /// Header, public part, then the body (0 and the sealed bytes) or, for a purged
    /// event, 1 and the body's hash; then the signature.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded_len());
        self.header.encode_into(&mut w);
        w.var_bytes(&self.public);
        if self.purged {
            w.u8(1);
            w.bytes(&self.body_hash);
        } else {
            w.u8(0);
            w.var_bytes(&self.sealed);
        }
        w.bytes(&self.signature);
        w.into_bytes()
    }

    pub fn encoded_len(&self) -> usize {
        let body = if self.purged {
            32
        } else {
            4 + self.sealed.len()
        };
        EVENT_HEADER_LEN + 4 + self.public.len() + 1 + body + 64
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(WireError::TooLarge {
                len: bytes.len(),
                max: MAX_EVENT_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let header = EventHeader::decode_from(&mut r)?;
        let public = r.var_bytes(MAX_EVENT_BYTES)?.to_vec();
        let event = match r.u8()? {
            0 => {
                let sealed = r.var_bytes(MAX_EVENT_BYTES)?.to_vec();
                let signature = r.array::<64>()?;
                Event::new(header, public, sealed, signature)
            }
            1 => {
                let hash = r.array::<32>()?;
                if hash == body_hash(&[]) {
                    // Nothing to purge: an event without a body travels whole.
                    return Err(WireError::Invalid {
                        what: "purged event without a body",
                    });
                }
                let signature = r.array::<64>()?;
                Event::assemble(header, public, Vec::new(), hash, true, signature)
            }
            _ => return Err(WireError::Invalid { what: "event body" }),
        };
        r.finish()?;
        Ok(event)
    }
}

/// Who may be in a conversation, changed only by membership events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipOp {
    /// First event of a conversation. For groups the conversation id is derived from the
    /// creator and `nonce`; for 1:1 chats from the two user ids.
    Create {
        nonce: [u8; 16],
        members: Vec<Profile>,
        admins: Vec<UserId>,
    },
    /// `seen`: the added user's seq the adder holds (0 for someone new); the user's
    /// events after it are inside again.
    Add {
        profile: Profile,
        seen: u64,
    },
    /// `seen`: the removed user's seq the remover holds; everything the user signs after
    /// it is outside, whatever its clock says.
    Remove {
        user: UserId,
        seen: u64,
    },
    Leave,
    Promote {
        user: UserId,
    },
    /// The new name travels in the sealed part (`Content::GroupName`).
    Rename,
    /// The author's own profile with a new X25519 key (a key update): from its place in
    /// the order on, keys are wrapped to the new key. Valid in 1:1 chats too.
    KeyUpdate {
        profile: Profile,
    },
}

impl MembershipOp {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64);
        match self {
            MembershipOp::Create {
                nonce,
                members,
                admins,
            } => {
                w.u8(1);
                w.bytes(nonce);
                w.u16(members.len() as u16);
                for p in members {
                    encode_profile(&mut w, p);
                }
                w.u16(admins.len() as u16);
                for a in admins {
                    w.bytes(&a.0);
                }
            }
            MembershipOp::Add { profile, seen } => {
                w.u8(2);
                encode_profile(&mut w, profile);
                w.u64(*seen);
            }
            MembershipOp::Remove { user, seen } => {
                w.u8(3);
                w.bytes(&user.0);
                w.u64(*seen);
            }
            MembershipOp::Leave => w.u8(4),
            MembershipOp::Promote { user } => {
                w.u8(5);
                w.bytes(&user.0);
            }
            MembershipOp::Rename => w.u8(6),
            MembershipOp::KeyUpdate { profile } => {
                w.u8(7);
                encode_profile(&mut w, profile);
            }
        }
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let op = match r.u8()? {
            1 => {
                let nonce = r.array()?;
                let n = r.count16("members", MAX_MEMBERS, PROFILE_MIN_LEN)?;
                let mut members = Vec::with_capacity(n);
                for _ in 0..n {
                    members.push(decode_profile(&mut r)?);
                }
                let n = r.count16("admins", MAX_MEMBERS, 32)?;
                let mut admins = Vec::with_capacity(n);
                for _ in 0..n {
                    admins.push(UserId(r.array()?));
                }
                MembershipOp::Create {
                    nonce,
                    members,
                    admins,
                }
            }
            2 => MembershipOp::Add {
                profile: decode_profile(&mut r)?,
                seen: r.u64()?,
            },
            3 => MembershipOp::Remove {
                user: UserId(r.array()?),
                seen: r.u64()?,
            },
            4 => MembershipOp::Leave,
            5 => MembershipOp::Promote {
                user: UserId(r.array()?),
            },
            6 => MembershipOp::Rename,
            7 => MembershipOp::KeyUpdate {
                profile: decode_profile(&mut r)?,
            },
            tag => {
                return Err(WireError::UnknownTag {
                    what: "membership op",
                    tag,
                });
            }
        };
        r.finish()?;
        Ok(op)
    }
}

pub type VersionVector = BTreeMap<UserId, u64>;

/// Per author, the first bytes of the id of the event at the vector's seq.
pub type Heads = BTreeMap<UserId, [u8; 8]>;

pub fn head_prefix(id: &EventId) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&id.0[..8]);
    out
}

/// A digest of a version vector and its heads: equal only if both peers hold the same
/// events, not just the same number of them.
pub fn vv_heads_digest(vv: &VersionVector, heads: &Heads) -> [u8; DIGEST_BYTES] {
    let mut w = Writer::with_capacity(2 + vv.len() * 48);
    encode_vv(&mut w, vv);
    for user in vv.keys() {
        w.bytes(&heads.get(user).copied().unwrap_or([0; 8]));
    }
    let full = hash32(&[LABEL_VV_DIGEST, &w.into_bytes()]);
    let mut out = [0u8; DIGEST_BYTES];
    out.copy_from_slice(&full[..DIGEST_BYTES]);
    out
}

/// A short hash of a version vector: peers compare these first and exchange whole vectors
/// only for conversations whose digests differ.
pub fn vv_digest(vv: &VersionVector) -> [u8; DIGEST_BYTES] {
    let mut w = Writer::with_capacity(2 + vv.len() * 40);
    encode_vv(&mut w, vv);
    let full = hash32(&[LABEL_VV_DIGEST, &w.into_bytes()]);
    let mut out = [0u8; DIGEST_BYTES];
    out.copy_from_slice(&full[..DIGEST_BYTES]);
    out
}

/// One author's events of one conversation up to (or, in a `Want`, after) a sequence
/// number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Announce {
    pub conversation: ConversationId,
    pub author: UserId,
    pub seq: u64,
}

/// "`reader` holds `author`'s events of `conversation` up to `delivered_seq` and has read
/// everything up to `read`": a group receipt. It is addressed to `author` alone and routed
/// towards it, never stored by anyone else, so receipts cost O(n) per message in a group of
/// n instead of O(n²). Signed by the reader, so nodes on the way cannot forge it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub conversation: ConversationId,
    pub author: UserId,
    pub reader: UserId,
    pub delivered_seq: u64,
    pub read: Option<OrderKey>,
    /// Hops left; not signed, decremented by every node that passes the receipt on.
    pub hops_left: u8,
    pub signature: [u8; 64],
}

impl Receipt {
    /// Bytes covered by the reader's signature.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(32 * 3 + 8 + 49);
        w.u8(WIRE_VERSION);
        w.bytes(&self.conversation.0);
        w.bytes(&self.author.0);
        w.bytes(&self.reader.0);
        w.u64(self.delivered_seq);
        match &self.read {
            Some(key) => {
                w.u8(1);
                w.bytes(&key.encode());
            }
            None => w.u8(0),
        }
        w.into_bytes()
    }

    fn encode_into(&self, w: &mut Writer) {
        w.bytes(&self.signed_bytes());
        w.u8(self.hops_left);
        w.bytes(&self.signature);
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let version = r.u8()?;
        if version != WIRE_VERSION {
            return Err(WireError::Version { version });
        }
        let conversation = ConversationId(r.array()?);
        let author = UserId(r.array()?);
        let reader = UserId(r.array()?);
        let delivered_seq = r.u64()?;
        let read = match r.u8()? {
            0 => None,
            1 => Some(
                OrderKey::decode(r.take(48)?).ok_or(WireError::Invalid { what: "order key" })?,
            ),
            tag => {
                return Err(WireError::UnknownTag {
                    what: "read key",
                    tag,
                });
            }
        };
        Ok(Receipt {
            conversation,
            author,
            reader,
            delivered_seq,
            read,
            hops_left: r.u8()?,
            signature: r.array()?,
        })
    }
}

fn encode_announces(w: &mut Writer, items: &[Announce]) {
    w.u32(items.len() as u32);
    for a in items {
        w.bytes(&a.conversation.0);
        w.bytes(&a.author.0);
        w.u64(a.seq);
    }
}

fn decode_announces(r: &mut Reader<'_>) -> Result<Vec<Announce>, WireError> {
    let n = r.count32("announcements", MAX_ANNOUNCE_ITEMS, 72)?;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push(Announce {
            conversation: ConversationId(r.array()?),
            author: UserId(r.array()?),
            seq: r.u64()?,
        });
    }
    Ok(items)
}

/// The longest file name an attachment carries (bytes of UTF-8).
pub const MAX_FILE_NAME_BYTES: usize = 255;
/// The longest media type an attachment carries.
pub const MAX_MIME_BYTES: usize = 100;
/// The largest thumbnail an image attachment carries inside its event.
pub const MAX_THUMBNAIL_BYTES: usize = 16 * 1024;
/// Colleagues one message can call with @: enough for a department, small enough that a
/// message cannot notify a whole town hall by listing it.
pub const MAX_MENTIONS: usize = 64;
/// One emoji with its modifiers (a family with skin tones is about 30 bytes).
pub const MAX_EMOJI_BYTES: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// An ordinary node: receives the conversations its user is a member of.
    Member,
    /// Stores and forwards ciphertext of every conversation, reads none.
    Relay,
}

/// Messages of the sync protocol between two nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncMessage {
    Hello {
        role: Role,
        profile: Profile,
    },
    /// "This is what I hold" for the conversations the two peers share. Answered with the
    /// events the sender lacks, and with a summary back if the sender has more.
    /// With each author's seq goes a prefix of the id of the event at that seq, so two
    /// versions of one seq (equivocation) show up even where the seqs agree.
    Summary {
        conversations: Vec<(ConversationId, VersionVector, Heads)>,
    },
    Events {
        events: Vec<Event>,
    },
    /// Signed profiles of other users, passed on so that a name change reaches nodes that
    /// never meet its owner directly. Each is verified on its own; the sender vouches for
    /// nothing.
    Profiles {
        profiles: Vec<Profile>,
    },
    /// A digest of the version vector of each conversation the two peers share. Answered
    /// by a `Summary` of just the conversations whose digests differ.
    Digest {
        conversations: Vec<(ConversationId, [u8; DIGEST_BYTES])>,
    },
    /// "I hold these authors' events up to these sequence numbers": new events announced
    /// lazily to the peers they were not pushed to. Answered by a `Want` for what is missing.
    Have {
        items: Vec<Announce>,
    },
    /// "Send me these authors' events after these sequence numbers."
    Want {
        items: Vec<Announce>,
    },
    /// Group receipts on their way to the author they are addressed to.
    Receipts {
        receipts: Vec<Receipt>,
    },
    /// A hash of every profile the sender knows (user and version), sent on meeting a
    /// peer: only if it differs does the peer send the profiles it knows.
    ProfileDigest {
        digest: [u8; DIGEST_BYTES],
    },
    /// A relay's certificate from the network's admin key, sent after its hello
    /// (docs/PROTOCOL.md, "Administration").
    RelayCertificate {
        certificate: RelayCertificate,
    },
    /// The serial of each admin statement the sender holds, sent after its hello in a
    /// managed network; a peer holding a newer one sends it.
    /// Each entry: kind (its code; kinds this build does not know are passed through),
    /// serial, and the first bytes of the statement's hash, so two statements of one
    /// serial are told apart (`AdminStatement::rank`). `known_kinds`: the highest kind
    /// code the sender understands; it is sent no statement of a later kind.
    AdminSerials {
        known_kinds: u8,
        serials: Vec<(u8, u64, [u8; 8])>,
    },
    /// One statement of the network's admin key (docs/PROTOCOL.md, "Admin statements").
    AdminStatement {
        statement: AdminStatement,
    },
}

impl SyncMessage {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256);
        w.u8(WIRE_VERSION);
        match self {
            SyncMessage::Hello { role, profile } => {
                w.u8(1);
                w.u8(match role {
                    Role::Member => 1,
                    Role::Relay => 2,
                });
                encode_profile(&mut w, profile);
            }
            SyncMessage::Summary { conversations } => {
                w.u8(2);
                w.u32(conversations.len() as u32);
                for (conv, vv, heads) in conversations {
                    w.bytes(&conv.0);
                    encode_vv(&mut w, vv);
                    for user in vv.keys() {
                        w.bytes(&heads.get(user).copied().unwrap_or([0; 8]));
                    }
                }
            }
            SyncMessage::Events { events } => {
                w.u8(3);
                w.u32(events.len() as u32);
                for e in events {
                    w.var_bytes(&e.encode());
                }
            }
            SyncMessage::Profiles { profiles } => {
                w.u8(4);
                w.u32(profiles.len() as u32);
                for p in profiles {
                    encode_profile(&mut w, p);
                }
            }
            SyncMessage::Digest { conversations } => {
                w.u8(5);
                w.u32(conversations.len() as u32);
                for (conv, digest) in conversations {
                    w.bytes(&conv.0);
                    w.bytes(digest);
                }
            }
            SyncMessage::Have { items } => {
                w.u8(6);
                encode_announces(&mut w, items);
            }
            SyncMessage::Want { items } => {
                w.u8(7);
                encode_announces(&mut w, items);
            }
            SyncMessage::Receipts { receipts } => {
                w.u8(8);
                w.u32(receipts.len() as u32);
                for receipt in receipts {
                    receipt.encode_into(&mut w);
                }
            }
            SyncMessage::ProfileDigest { digest } => {
                w.u8(9);
                w.bytes(digest);
            }
            SyncMessage::RelayCertificate { certificate } => {
                w.u8(10);
                certificate.encode_into(&mut w);
            }
            SyncMessage::AdminSerials {
                known_kinds,
                serials,
            } => {
                w.u8(11);
                w.u8(*known_kinds);
                w.u8(serials.len() as u8);
                for (kind, serial, hash) in serials {
                    w.u8(*kind);
                    w.u64(*serial);
                    w.bytes(hash);
                }
            }
            SyncMessage::AdminStatement { statement } => {
                w.u8(12);
                statement.encode_into(&mut w);
            }
        }
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(WireError::TooLarge {
                len: bytes.len(),
                max: MAX_FRAME_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != WIRE_VERSION {
            return Err(WireError::Version { version });
        }
        let msg = match r.u8()? {
            1 => {
                let role = match r.u8()? {
                    1 => Role::Member,
                    2 => Role::Relay,
                    tag => return Err(WireError::UnknownTag { what: "role", tag }),
                };
                SyncMessage::Hello {
                    role,
                    profile: decode_profile(&mut r)?,
                }
            }
            2 => {
                let n = r.count32("conversations", MAX_SUMMARY_CONVERSATIONS, 34)?;
                let mut conversations = Vec::with_capacity(n);
                for _ in 0..n {
                    let conv = ConversationId(r.array()?);
                    let vv = decode_vv(&mut r)?;
                    let mut heads = Heads::new();
                    for user in vv.keys() {
                        heads.insert(*user, r.array()?);
                    }
                    conversations.push((conv, vv, heads));
                }
                SyncMessage::Summary { conversations }
            }
            3 => {
                let n = r.count32("events", MAX_EVENTS_PER_FRAME, 4 + EVENT_HEADER_LEN)?;
                let mut events = Vec::with_capacity(n);
                for _ in 0..n {
                    events.push(Event::decode(r.var_bytes(MAX_EVENT_BYTES)?)?);
                }
                SyncMessage::Events { events }
            }
            4 => {
                // A profile is at least id, key, time, name length and signature.
                let n = r.count32("profiles", MAX_PROFILES_PER_FRAME, 32 + 32 + 8 + 1 + 64)?;
                let mut profiles = Vec::with_capacity(n);
                for _ in 0..n {
                    profiles.push(decode_profile(&mut r)?);
                }
                SyncMessage::Profiles { profiles }
            }
            5 => {
                let n = r.count32("digests", MAX_SUMMARY_CONVERSATIONS, 32 + DIGEST_BYTES)?;
                let mut conversations = Vec::with_capacity(n);
                for _ in 0..n {
                    conversations.push((ConversationId(r.array()?), r.array()?));
                }
                SyncMessage::Digest { conversations }
            }
            6 => SyncMessage::Have {
                items: decode_announces(&mut r)?,
            },
            7 => SyncMessage::Want {
                items: decode_announces(&mut r)?,
            },
            8 => {
                // A receipt is at least its fixed fields, hop count and signature.
                let n = r.count32("receipts", MAX_RECEIPTS_PER_FRAME, 1 + 96 + 8 + 1 + 1 + 64)?;
                let mut receipts = Vec::with_capacity(n);
                for _ in 0..n {
                    receipts.push(Receipt::decode_from(&mut r)?);
                }
                SyncMessage::Receipts { receipts }
            }
            9 => SyncMessage::ProfileDigest { digest: r.array()? },
            10 => SyncMessage::RelayCertificate {
                certificate: RelayCertificate::decode_from(&mut r)?,
            },
            11 => {
                let known_kinds = r.u8()?;
                let n = r.u8()? as usize;
                if n > MAX_STATEMENT_KINDS || n * 17 > r.remaining() {
                    return Err(WireError::Invalid {
                        what: "admin serials",
                    });
                }
                let mut serials = Vec::with_capacity(n);
                for _ in 0..n {
                    serials.push((r.u8()?, r.u64()?, r.array()?));
                }
                SyncMessage::AdminSerials {
                    known_kinds,
                    serials,
                }
            }
            12 => SyncMessage::AdminStatement {
                statement: AdminStatement::decode_from(&mut r)?,
            },
            tag => {
                return Err(WireError::UnknownTag {
                    what: "sync message",
                    tag,
                });
            }
        };
        r.finish()?;
        Ok(msg)
    }
}

fn encode_vv(w: &mut Writer, vv: &VersionVector) {
    w.u16(vv.len() as u16);
    for (user, seq) in vv {
        w.bytes(&user.0);
        w.u64(*seq);
    }
}

fn decode_vv(r: &mut Reader<'_>) -> Result<VersionVector, WireError> {
    let n = r.count16("version vector", MAX_MEMBERS * 4, 40)?;
    let mut vv = VersionVector::new();
    let mut last: Option<UserId> = None;
    for _ in 0..n {
        let user = UserId(r.array()?);
        // Canonical: strictly ascending authors, so one vector has one encoding.
        if last.is_some_and(|l| l >= user) {
            return Err(WireError::Invalid {
                what: "version vector order",
            });
        }
        last = Some(user);
        vv.insert(user, r.u64()?);
    }
    Ok(vv)
}

mod admin;
mod codec;
mod content;
mod groups;
mod keys;
mod rotation;
pub use admin::*;
pub use codec::*;
pub use content::*;
pub use groups::*;
pub use keys::*;
pub use rotation::*;

#[cfg(test)]
mod tests;
