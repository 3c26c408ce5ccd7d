//! Persistent state behind one trait, with a sled implementation for real nodes and an
//! in-memory one for tests and the simulator (which can also simulate a crash: whatever was
//! not flushed is gone).
//!
//! A store never validates events; `sync` does that before anything reaches it. It must
//! apply each `Batch` atomically and make it durable only on `flush`, so callers can group
//! many writes under one fsync.

mod memory;
mod sled_store;

pub use memory::MemoryStore;
pub use sled_store::SledStore;

use crate::identity::{Profile, UserId};
use crate::wire::{AdminStatement, ConversationId, Event, EventId, OrderKey, VersionVector};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database at {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("the database at {path} is in use by another Flurfunk process")]
    Locked { path: String },
    #[error("database I/O failed (disk full or unwritable?): {reason}")]
    Io { reason: String },
    #[error("the database holds damaged data ({what}); nothing was changed")]
    Corrupt { what: String },
}

/// Writes that must land together or not at all.
#[derive(Debug, Default)]
pub struct Batch {
    pub insert_events: Vec<Event>,
    /// Events no longer valid (see `conversation::ConversationState::rebuild`). Always a
    /// suffix of their author's chain.
    pub remove_events: Vec<Event>,
    pub outbox_add: Vec<(ConversationId, EventId)>,
    pub outbox_remove: Vec<EventId>,
    pub read_markers: Vec<(ConversationId, OrderKey)>,
    pub profiles: Vec<Profile>,
    /// Where group members stand with this node's own messages (latest per reader).
    pub reader_positions: Vec<ReaderPosition>,
    /// Equivocations settled: the winning version at its (conversation, author, seq),
    /// kept across restarts so a given-up version is never taken back.
    pub forks: Vec<Event>,
    /// Settled equivocations no longer remembered (the oldest, beyond the bound).
    pub forks_forget: Vec<(ConversationId, UserId, u64)>,
    /// Rekeys that lost an equivocation, kept apart from the conversation and read-only:
    /// what members wrote under their key before the equivocation was settled stays
    /// readable for those who hold it.
    pub lost_rekeys: Vec<Event>,
    /// Epoch keys opened with an X25519 key about to be deleted, by rekey, sealed with
    /// the node's at-rest key (`Identity::at_rest_key`): history stays readable.
    pub sealed_keys: Vec<(EventId, Vec<u8>)>,
    /// Statements of the network's admin key that replace the held one of their kind
    /// (checked by `sync` first).
    pub admin_statements: Vec<AdminStatement>,
    /// Messages deleted for this node only (`Engine::delete_for_me`): never shown here
    /// again; the events stay, others keep them.
    pub hidden: Vec<(ConversationId, EventId)>,
}

/// How far one reader of a group has received and read this node's own messages, as its
/// latest group receipt said. Kept by the author alone (see `wire::Receipt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderPosition {
    pub conversation: ConversationId,
    pub reader: UserId,
    pub delivered_seq: u64,
    pub read: Option<OrderKey>,
}

impl ReaderPosition {
    pub(crate) fn key(&self) -> [u8; 64] {
        let mut k = [0u8; 64];
        k[..32].copy_from_slice(&self.conversation.0);
        k[32..].copy_from_slice(&self.reader.0);
        k
    }

    pub(crate) fn encode_value(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(57);
        v.extend_from_slice(&self.delivered_seq.to_be_bytes());
        match &self.read {
            Some(k) => {
                v.push(1);
                v.extend_from_slice(&k.encode());
            }
            None => v.push(0),
        }
        v
    }

    pub(crate) fn decode(key: &[u8], value: &[u8]) -> Option<Self> {
        if key.len() != 64 || value.len() < 9 {
            return None;
        }
        let read = match value[8] {
            0 if value.len() == 9 => None,
            1 => Some(OrderKey::decode(&value[9..])?),
            _ => return None,
        };
        Some(ReaderPosition {
            conversation: ConversationId(key[..32].try_into().ok()?),
            reader: UserId(key[32..].try_into().ok()?),
            delivered_seq: u64::from_be_bytes(value[..8].try_into().ok()?),
            read,
        })
    }
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.insert_events.is_empty()
            && self.remove_events.is_empty()
            && self.outbox_add.is_empty()
            && self.outbox_remove.is_empty()
            && self.read_markers.is_empty()
            && self.profiles.is_empty()
            && self.reader_positions.is_empty()
            && self.forks.is_empty()
            && self.forks_forget.is_empty()
            && self.lost_rekeys.is_empty()
            && self.sealed_keys.is_empty()
            && self.admin_statements.is_empty()
            && self.hidden.is_empty()
    }
}

pub trait Store {
    /// Apply atomically. Visible to reads at once; durable only after `flush`.
    fn apply(&mut self, batch: Batch) -> Result<(), StoreError>;
    /// Make everything applied so far durable.
    fn flush(&mut self) -> Result<(), StoreError>;

    fn conversations(&self) -> Result<Vec<ConversationId>, StoreError>;
    /// All events of a conversation in total order.
    fn events_in_order(&self, conversation: &ConversationId) -> Result<Vec<Event>, StoreError>;
    /// The last `limit` events of a conversation before `before` (exclusive), in order.
    fn events_before(
        &self,
        conversation: &ConversationId,
        before: Option<OrderKey>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;
    /// Up to `limit` events after `after` (None: from the first), in order: pages forward
    /// through a conversation without holding all of it in memory.
    fn events_after_key(
        &self,
        conversation: &ConversationId,
        after: Option<OrderKey>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;
    fn event(&self, event_id: &EventId) -> Result<Option<Event>, StoreError>;
    fn event_id_by_seq(
        &self,
        conversation: &ConversationId,
        author: &UserId,
        seq: u64,
    ) -> Result<Option<EventId>, StoreError>;
    /// Events of one author with seq > `after_seq`, ascending, until `max_bytes` of
    /// encoded events (at least one event if there is any).
    fn events_after(
        &self,
        conversation: &ConversationId,
        author: &UserId,
        after_seq: u64,
        max_bytes: usize,
    ) -> Result<Vec<Event>, StoreError>;
    fn version_vector(&self, conversation: &ConversationId) -> Result<VersionVector, StoreError>;
    fn outbox(&self) -> Result<Vec<(ConversationId, EventId)>, StoreError>;
    fn read_marker(&self, conversation: &ConversationId) -> Result<Option<OrderKey>, StoreError>;
    /// The stored group receipts for own messages of one conversation.
    fn reader_positions(
        &self,
        conversation: &ConversationId,
    ) -> Result<Vec<ReaderPosition>, StoreError>;
    fn profiles(&self) -> Result<Vec<Profile>, StoreError>;
    fn event_count(&self) -> Result<usize, StoreError>;
    /// The winning versions of settled equivocations (`Batch::forks`).
    fn forks(&self) -> Result<Vec<Event>, StoreError>;
    /// Rekeys that lost an equivocation (`Batch::lost_rekeys`).
    fn lost_rekeys(&self) -> Result<Vec<Event>, StoreError>;
    /// Epoch keys sealed at rest (`Batch::sealed_keys`).
    fn sealed_keys(&self) -> Result<Vec<(EventId, Vec<u8>)>, StoreError>;
    /// Messages deleted for this node only (`Batch::hidden`).
    fn hidden(&self) -> Result<Vec<(ConversationId, EventId)>, StoreError>;
    /// The admin statements held, one per kind.
    fn admin_statements(&self) -> Result<Vec<AdminStatement>, StoreError>;
}

pub(crate) fn seq_key(conversation: &ConversationId, author: &UserId, seq: u64) -> [u8; 72] {
    let mut k = [0u8; 72];
    k[..32].copy_from_slice(&conversation.0);
    k[32..64].copy_from_slice(&author.0);
    k[64..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn order_index_key(conversation: &ConversationId, key: &OrderKey) -> [u8; 80] {
    let mut k = [0u8; 80];
    k[..32].copy_from_slice(&conversation.0);
    k[32..].copy_from_slice(&key.encode());
    k
}

/// Resulting version vector entries after removing a chain suffix: author -> new max seq.
pub(crate) fn vv_after_removal(events: &[Event]) -> Vec<(ConversationId, UserId, u64)> {
    let mut lowest: std::collections::BTreeMap<(ConversationId, UserId), u64> = Default::default();
    for e in events {
        let entry = lowest
            .entry((e.header.conversation, e.header.author))
            .or_insert(e.header.seq);
        *entry = (*entry).min(e.header.seq);
    }
    lowest
        .into_iter()
        .map(|((c, a), s)| (c, a, s - 1))
        .collect()
}

/// A store chosen at run time (sled on disk, memory in tests), so the node task and every
/// handle stay non-generic.
pub type DynStore = Box<dyn Store + Send>;

impl Store for DynStore {
    fn apply(&mut self, batch: Batch) -> Result<(), StoreError> {
        (**self).apply(batch)
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        (**self).flush()
    }
    fn conversations(&self) -> Result<Vec<ConversationId>, StoreError> {
        (**self).conversations()
    }
    fn events_in_order(&self, conversation: &ConversationId) -> Result<Vec<Event>, StoreError> {
        (**self).events_in_order(conversation)
    }
    fn events_before(
        &self,
        conversation: &ConversationId,
        before: Option<OrderKey>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        (**self).events_before(conversation, before, limit)
    }
    fn events_after_key(
        &self,
        conversation: &ConversationId,
        after: Option<OrderKey>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        (**self).events_after_key(conversation, after, limit)
    }
    fn event(&self, event_id: &EventId) -> Result<Option<Event>, StoreError> {
        (**self).event(event_id)
    }
    fn event_id_by_seq(
        &self,
        conversation: &ConversationId,
        author: &UserId,
        seq: u64,
    ) -> Result<Option<EventId>, StoreError> {
        (**self).event_id_by_seq(conversation, author, seq)
    }
    fn events_after(
        &self,
        conversation: &ConversationId,
        author: &UserId,
        after_seq: u64,
        max_bytes: usize,
    ) -> Result<Vec<Event>, StoreError> {
        (**self).events_after(conversation, author, after_seq, max_bytes)
    }
    fn version_vector(&self, conversation: &ConversationId) -> Result<VersionVector, StoreError> {
        (**self).version_vector(conversation)
    }
    fn outbox(&self) -> Result<Vec<(ConversationId, EventId)>, StoreError> {
        (**self).outbox()
    }
    fn read_marker(&self, conversation: &ConversationId) -> Result<Option<OrderKey>, StoreError> {
        (**self).read_marker(conversation)
    }
    fn reader_positions(
        &self,
        conversation: &ConversationId,
    ) -> Result<Vec<ReaderPosition>, StoreError> {
        (**self).reader_positions(conversation)
    }
    fn profiles(&self) -> Result<Vec<Profile>, StoreError> {
        (**self).profiles()
    }
    fn event_count(&self) -> Result<usize, StoreError> {
        (**self).event_count()
    }
    fn forks(&self) -> Result<Vec<Event>, StoreError> {
        (**self).forks()
    }
    fn lost_rekeys(&self) -> Result<Vec<Event>, StoreError> {
        (**self).lost_rekeys()
    }
    fn sealed_keys(&self) -> Result<Vec<(EventId, Vec<u8>)>, StoreError> {
        (**self).sealed_keys()
    }
    fn hidden(&self) -> Result<Vec<(ConversationId, EventId)>, StoreError> {
        (**self).hidden()
    }
    fn admin_statements(&self) -> Result<Vec<AdminStatement>, StoreError> {
        (**self).admin_statements()
    }
}
