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

use crate::crypto::{LABEL_EVENT_ID, LABEL_VV_DIGEST};
use crate::identity::{MAX_DISPLAY_NAME_BYTES, Profile, UserId};

pub const WIRE_VERSION: u8 = 2;
/// Largest encoded event. A text of a few pages fits; attachments will travel separately.
/// The largest events are a group's creation and its rekeys (a profile or a sealed key per
/// member, about 200 bytes each): 256 KiB holds those of a group of `MAX_MEMBERS`.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// Largest text message, in bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 32 * 1024;
/// Largest sync frame. Batches are cut well below this (see `sync::BATCH_BYTES`).
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// Most members a conversation can have: bounds rekey size (one sealed key each). A town
/// hall's "Alle" group has up to about 1,000 members.
pub const MAX_MEMBERS: usize = 1024;
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

pub const EVENT_HEADER_LEN: usize = 1 + 32 + 32 + 8 + 32 + 8 + 8 + 4 + 1;
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
    /// Key epoch the sealed part is encrypted with (0: no key yet, nothing sealed).
    pub epoch: u32,
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
/// is encrypted with the conversation's epoch key. Construct with `Event::new`.
#[derive(Clone, PartialEq, Eq)]
pub struct Event {
    pub header: EventHeader,
    pub public: Vec<u8>,
    pub sealed: Vec<u8>,
    pub signature: [u8; 64],
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
        let mut e = Event {
            header,
            public,
            sealed,
            signature,
            event_id: EventId([0; 32]),
        };
        e.event_id = EventId(hash32(&[LABEL_EVENT_ID, &e.signed_bytes()]));
        e
    }

    /// Bytes covered by the signature: header, public part, sealed part.
    pub fn signed_bytes(&self) -> Vec<u8> {
        Self::signed_bytes_of(&self.header, &self.public, &self.sealed)
    }

    pub fn signed_bytes_of(header: &EventHeader, public: &[u8], sealed: &[u8]) -> Vec<u8> {
        let mut w = Writer::with_capacity(EVENT_HEADER_LEN + 8 + public.len() + sealed.len());
        header.encode_into(&mut w);
        w.var_bytes(public);
        w.var_bytes(sealed);
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

    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.signed_bytes();
        out.extend_from_slice(&self.signature);
        out
    }

    pub fn encoded_len(&self) -> usize {
        EVENT_HEADER_LEN + 8 + self.public.len() + self.sealed.len() + 64
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
        let sealed = r.var_bytes(MAX_EVENT_BYTES)?.to_vec();
        let signature = r.array::<64>()?;
        r.finish()?;
        Ok(Event::new(header, public, sealed, signature))
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

/// Public part of a rekey event: the new epoch key sealed to each member, and a
/// commitment to that key (`key_commitment`) that every recipient checks on opening, so
/// an author cannot hand different members different keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RekeyBody {
    pub commitment: [u8; 32],
    pub recipients: Vec<(UserId, Vec<u8>)>,
}

impl RekeyBody {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(34 + self.recipients.len() * 180);
        w.bytes(&self.commitment);
        w.u16(self.recipients.len() as u16);
        for (user, sealed) in &self.recipients {
            w.bytes(&user.0);
            w.var_bytes(sealed);
        }
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let commitment = r.array()?;
        let n = r.count16("rekey recipients", MAX_MEMBERS, 36)?;
        let mut recipients = Vec::with_capacity(n);
        for _ in 0..n {
            let user = UserId(r.array()?);
            let sealed = r.var_bytes(crate::crypto::MAX_SEALED_PAYLOAD * 2)?.to_vec();
            recipients.push((user, sealed));
        }
        r.finish()?;
        Ok(RekeyBody {
            commitment,
            recipients,
        })
    }
}

/// The public commitment to a rekey's key: binds it to conversation, author and epoch.
pub fn key_commitment(
    conversation: &ConversationId,
    author: &UserId,
    epoch: u32,
    key: &[u8; 32],
) -> [u8; 32] {
    hash32(&[
        crate::crypto::LABEL_KEY_COMMITMENT,
        &conversation.0,
        &author.0,
        &epoch.to_be_bytes(),
        key,
    ])
}

/// The payload sealed to each rekey recipient: binds the key to its conversation and epoch.
pub fn encode_sealed_key(conversation: &ConversationId, epoch: u32, key: &[u8; 32]) -> Vec<u8> {
    let mut w = Writer::with_capacity(68);
    w.bytes(&conversation.0);
    w.u32(epoch);
    w.bytes(key);
    w.into_bytes()
}

pub fn decode_sealed_key(bytes: &[u8]) -> Result<(ConversationId, u32, [u8; 32]), WireError> {
    let mut r = Reader::new(bytes);
    let conv = ConversationId(r.array()?);
    let epoch = r.u32()?;
    let key = r.array()?;
    r.finish()?;
    Ok((conv, epoch, key))
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

/// The decrypted sealed part of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    Text {
        text: String,
    },
    GroupName {
        name: String,
    },
    /// "I hold, durably, every event up to these sequence numbers."
    Delivered {
        upto: VersionVector,
    },
    /// "I have read everything up to and including this event."
    Read {
        upto: OrderKey,
    },
    Unknown {
        tag: u8,
    },
}

impl Content {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(32);
        match self {
            Content::Text { text } => {
                w.u8(1);
                w.var_bytes(text.as_bytes());
            }
            Content::GroupName { name } => {
                w.u8(2);
                w.var_bytes(name.as_bytes());
            }
            Content::Delivered { upto } => {
                w.u8(3);
                encode_vv(&mut w, upto);
            }
            Content::Read { upto } => {
                w.u8(4);
                w.bytes(&upto.encode());
            }
            Content::Unknown { tag } => w.u8(*tag),
        }
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let content = match r.u8()? {
            1 => Content::Text {
                text: r.string(MAX_TEXT_BYTES)?,
            },
            2 => Content::GroupName {
                name: r.string(MAX_DISPLAY_NAME_BYTES)?,
            },
            3 => Content::Delivered {
                upto: decode_vv(&mut r)?,
            },
            4 => Content::Read {
                upto: OrderKey::decode(r.take(48)?)
                    .ok_or(WireError::Invalid { what: "order key" })?,
            },
            tag => return Ok(Content::Unknown { tag }),
        };
        r.finish()?;
        Ok(content)
    }
}

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

pub fn encode_profile(w: &mut Writer, p: &Profile) {
    w.bytes(&p.user_id.0);
    w.bytes(&p.dh_public);
    w.u64(p.updated_ms);
    w.u8(p.display_name.len().min(255) as u8);
    w.bytes(p.display_name.as_bytes());
    w.bytes(&p.signature);
}

pub fn decode_profile(r: &mut Reader<'_>) -> Result<Profile, WireError> {
    let user_id = UserId(r.array()?);
    let dh_public = r.array()?;
    let updated_ms = r.u64()?;
    let len = r.u8()? as usize;
    if len > MAX_DISPLAY_NAME_BYTES {
        return Err(WireError::TooLarge {
            len,
            max: MAX_DISPLAY_NAME_BYTES,
        });
    }
    let name = std::str::from_utf8(r.take(len)?)
        .map_err(|_| WireError::Invalid {
            what: "display name",
        })?
        .to_string();
    Ok(Profile {
        user_id,
        display_name: name,
        dh_public,
        updated_ms,
        signature: r.array()?,
    })
}

pub fn profile_to_bytes(p: &Profile) -> Vec<u8> {
    let mut w = Writer::with_capacity(PROFILE_MIN_LEN + p.display_name.len());
    encode_profile(&mut w, p);
    w.into_bytes()
}

pub fn profile_from_bytes(bytes: &[u8]) -> Result<Profile, WireError> {
    let mut r = Reader::new(bytes);
    let p = decode_profile(&mut r)?;
    r.finish()?;
    Ok(p)
}

/// Big-endian writer. Lengths are u32 (`var_bytes`) or u16 counts.
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub fn var_bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.buf.extend_from_slice(b);
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Bounds-checked reader; every method returns an error instead of panicking.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A u32 length followed by that many bytes, checked against `max` and the input
    /// size before anything is taken.
    pub fn var_bytes(&mut self, max: usize) -> Result<&'a [u8], WireError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(WireError::TooLarge { len, max });
        }
        self.take(len)
    }

    pub fn string(&mut self, max: usize) -> Result<String, WireError> {
        let bytes = self.var_bytes(max)?;
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| WireError::Invalid { what: "utf-8 text" })
    }

    fn check_count(
        &self,
        what: &'static str,
        count: usize,
        max: usize,
        min_item: usize,
    ) -> Result<usize, WireError> {
        if count > max {
            return Err(WireError::TooMany { what, count, max });
        }
        // Each item needs at least `min_item` bytes: a lying count cannot make us allocate.
        if count.saturating_mul(min_item) > self.remaining() {
            return Err(WireError::Truncated {
                offset: self.pos,
                needed: count * min_item - self.remaining(),
            });
        }
        Ok(count)
    }

    pub fn count16(
        &mut self,
        what: &'static str,
        max: usize,
        min_item: usize,
    ) -> Result<usize, WireError> {
        let n = self.u16()? as usize;
        self.check_count(what, n, max, min_item)
    }

    pub fn count32(
        &mut self,
        what: &'static str,
        max: usize,
        min_item: usize,
    ) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        self.check_count(what, n, max, min_item)
    }

    pub fn finish(&self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(WireError::TrailingBytes { extra }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(kind: EventKind) -> EventHeader {
        EventHeader {
            conversation: ConversationId([0x11; 32]),
            author: UserId([0x22; 32]),
            seq: 3,
            prev: EventId([0x66; 32]),
            lamport: 7,
            wall_ms: 1_764_000_000_000,
            epoch: 2,
            kind,
        }
    }

    fn profile(name: &str) -> Profile {
        Profile {
            user_id: UserId([0x33; 32]),
            display_name: name.into(),
            dh_public: [0x44; 32],
            updated_ms: 5,
            signature: [0x55; 64],
        }
    }

    /// Pins the event byte layout. Changing it breaks every stored database and every
    /// peer on the network: bump WIRE_VERSION instead.
    #[test]
    fn event_layout_snapshot() {
        let e = Event::new(
            header(EventKind::Text),
            vec![0xAA],
            vec![0xBB, 0xCC],
            [0x77; 64],
        );
        let hex = hex::encode(e.encode());
        let expected = concat!(
            "02",
            "1111111111111111111111111111111111111111111111111111111111111111",
            "2222222222222222222222222222222222222222222222222222222222222222",
            "0000000000000003",
            "6666666666666666666666666666666666666666666666666666666666666666",
            "0000000000000007",
            "0000019ab697e800",
            "00000002",
            "01",
            "00000001aa",
            "00000002bbcc",
            "77777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777",
        );
        assert_eq!(hex, expected);
    }

    #[test]
    fn sync_digest_layout_snapshot() {
        let msg = SyncMessage::Digest {
            conversations: vec![(ConversationId([0x0f; 32]), [0xd1; DIGEST_BYTES])],
        };
        assert_eq!(
            hex::encode(msg.encode()),
            concat!(
                "0205",
                "00000001",
                "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f",
                "d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1",
            )
        );
    }

    #[test]
    fn digests_differ_when_vectors_do() {
        let mut a = VersionVector::new();
        a.insert(UserId([1; 32]), 5);
        let mut b = a.clone();
        assert_eq!(vv_digest(&a), vv_digest(&b));
        b.insert(UserId([1; 32]), 6);
        assert_ne!(vv_digest(&a), vv_digest(&b));
        assert_ne!(vv_digest(&a), vv_digest(&VersionVector::new()));
        // Same seqs, another event at the head: another digest.
        let h1: Heads = [(UserId([1; 32]), [1u8; 8])].into();
        let h2: Heads = [(UserId([1; 32]), [2u8; 8])].into();
        assert_ne!(vv_heads_digest(&a, &h1), vv_heads_digest(&a, &h2));
        assert_eq!(vv_heads_digest(&a, &h1), vv_heads_digest(&a, &h1.clone()));
    }

    #[test]
    fn sync_summary_layout_snapshot() {
        let mut vv = VersionVector::new();
        vv.insert(UserId([0x01; 32]), 9);
        let mut heads = Heads::new();
        heads.insert(UserId([0x01; 32]), [0xab; 8]);
        let msg = SyncMessage::Summary {
            conversations: vec![(ConversationId([0x0f; 32]), vv, heads)],
        };
        assert_eq!(
            hex::encode(msg.encode()),
            concat!(
                "0202",
                "00000001",
                "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f",
                "0001",
                "0101010101010101010101010101010101010101010101010101010101010101",
                "0000000000000009",
                "abababababababab"
            )
        );
    }

    #[test]
    fn hello_rejects_overlong_names() {
        let hello = SyncMessage::Hello {
            role: Role::Member,
            profile: profile("Anna"),
        };
        assert_eq!(SyncMessage::decode(&hello.encode()).unwrap(), hello);
        let long = SyncMessage::Hello {
            role: Role::Member,
            profile: profile(&"x".repeat(MAX_DISPLAY_NAME_BYTES + 1)),
        };
        assert!(matches!(
            SyncMessage::decode(&long.encode()),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn content_layout_snapshot() {
        let c = Content::Text {
            text: "Moin".into(),
        };
        assert_eq!(hex::encode(c.encode()), "01000000044d6f696e");
    }

    #[test]
    fn oversized_and_truncated_inputs_are_rejected() {
        let big = vec![0u8; MAX_EVENT_BYTES + 1];
        assert!(matches!(
            Event::decode(&big),
            Err(WireError::TooLarge { .. })
        ));
        let e = Event::new(header(EventKind::Text), vec![], vec![1, 2, 3], [0; 64]);
        let bytes = e.encode();
        for cut in 0..bytes.len() {
            assert!(Event::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(
            Event::decode(&extra),
            Err(WireError::TrailingBytes { extra: 1 })
        );
        // A frame that claims 8192 events but carries none must not allocate for them.
        let mut lying = vec![WIRE_VERSION, 3];
        lying.extend_from_slice(&8192u32.to_be_bytes());
        assert!(matches!(
            SyncMessage::decode(&lying),
            Err(WireError::Truncated { .. })
        ));
        let mut huge_len = vec![WIRE_VERSION, 3, 0, 0, 0, 1];
        huge_len.extend_from_slice(&u32::MAX.to_be_bytes());
        huge_len.extend_from_slice(&[0u8; 200]);
        assert!(matches!(
            SyncMessage::decode(&huge_len),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn unknown_kinds_survive_a_roundtrip() {
        let e = Event::new(header(EventKind::Unknown(42)), vec![], vec![], [0; 64]);
        let back = Event::decode(&e.encode()).unwrap();
        assert_eq!(back.header.kind, EventKind::Unknown(42));
        assert_eq!(back.id(), e.id());
    }

    fn arb_user() -> impl Strategy<Value = UserId> {
        any::<[u8; 32]>().prop_map(UserId)
    }

    fn arb_profile() -> impl Strategy<Value = Profile> {
        (
            arb_user(),
            "[a-zA-Zäöü ]{1,20}",
            any::<[u8; 32]>(),
            any::<u64>(),
        )
            .prop_map(|(user_id, name, dh_public, updated_ms)| Profile {
                user_id,
                display_name: name,
                dh_public,
                updated_ms,
                signature: [9; 64],
            })
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        (
            any::<[u8; 32]>(),
            arb_user(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::collection::vec(any::<u8>(), 0..200),
            any::<[u8; 32]>(),
        )
            .prop_map(
                |(c, author, seq, lamport, wall_ms, epoch, kind, public, sealed, sig)| {
                    let mut signature = [0u8; 64];
                    signature[..32].copy_from_slice(&sig);
                    Event::new(
                        EventHeader {
                            conversation: ConversationId(c),
                            author,
                            seq,
                            prev: EventId(c),
                            lamport,
                            wall_ms,
                            epoch,
                            kind: EventKind::from_code(kind),
                        },
                        public,
                        sealed,
                        signature,
                    )
                },
            )
    }

    proptest! {
        #[test]
        fn event_roundtrip(e in arb_event()) {
            let bytes = e.encode();
            prop_assert_eq!(bytes.len(), e.encoded_len());
            let back = Event::decode(&bytes).unwrap();
            prop_assert_eq!(back.id(), e.id());
            prop_assert_eq!(back, e);
        }

        #[test]
        fn sync_message_roundtrip(
            events in proptest::collection::vec(arb_event(), 0..5),
            vv in proptest::collection::btree_map(arb_user(), any::<u64>(), 0..6),
            conv in any::<[u8; 32]>(),
            p in arb_profile(),
            seq in any::<u64>(),
            read in proptest::option::of((any::<u64>(), any::<u64>())),
        ) {
            let author = vv.keys().next().copied().unwrap_or(UserId([3; 32]));
            let announce = Announce { conversation: ConversationId(conv), author, seq };
            let receipt = Receipt {
                conversation: ConversationId(conv),
                author,
                reader: p.user_id,
                delivered_seq: seq,
                read: read.map(|(lamport, s)| OrderKey { lamport, author, seq: s }),
                hops_left: 3,
                signature: [7; 64],
            };
            for msg in [
                SyncMessage::Digest { conversations: vec![(ConversationId(conv), vv_digest(&vv))] },
                SyncMessage::Have { items: vec![announce, announce] },
                SyncMessage::Want { items: vec![announce] },
                SyncMessage::ProfileDigest { digest: vv_digest(&vv) },
                SyncMessage::Receipts { receipts: vec![receipt.clone(), receipt] },
                SyncMessage::Events { events },
                SyncMessage::Summary { conversations: vec![(ConversationId(conv), vv.clone(), vv.keys().map(|u| (*u, [7u8; 8])).collect())] },
                SyncMessage::Hello { role: Role::Relay, profile: p.clone() },
                SyncMessage::Profiles { profiles: vec![p.clone(), p] },
            ] {
                prop_assert_eq!(SyncMessage::decode(&msg.encode()).unwrap(), msg);
            }
        }

        #[test]
        fn membership_roundtrip(members in proptest::collection::vec(arb_profile(), 0..4), nonce in any::<[u8;16]>(), u in arb_user()) {
            let admins = members.iter().map(|p| p.user_id).collect();
            for op in [
                MembershipOp::Create { nonce, members: members.clone(), admins },
                MembershipOp::Remove { user: u, seen: 7 },
                MembershipOp::Leave,
                MembershipOp::Promote { user: u },
                MembershipOp::Rename,
            ] {
                prop_assert_eq!(MembershipOp::decode(&op.encode()).unwrap(), op);
            }
            if let Some(p) = members.first() {
                let op = MembershipOp::Add { profile: p.clone(), seen: 3 };
                prop_assert_eq!(MembershipOp::decode(&op.encode()).unwrap(), op);
            }
        }

        #[test]
        fn content_roundtrip(text in ".{0,100}", vv in proptest::collection::btree_map(arb_user(), any::<u64>(), 0..6)) {
            for c in [Content::Text { text: text.clone() }, Content::Delivered { upto: vv }] {
                prop_assert_eq!(Content::decode(&c.encode()).unwrap(), c);
            }
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Event::decode(&bytes);
            let _ = SyncMessage::decode(&bytes);
            let _ = MembershipOp::decode(&bytes);
            let _ = RekeyBody::decode(&bytes);
            let _ = Content::decode(&bytes);
        }
    }
}
