//! In-memory store for tests and the simulator. `crash_copy` returns what a restarted
//! process would find: only what was flushed.

use std::collections::{BTreeMap, BTreeSet};

use super::{Batch, ReaderPosition, Store, StoreError, vv_after_removal};
use crate::identity::{Profile, UserId};
use crate::wire::{AdminStatement, ConversationId, Event, EventId, OrderKey, VersionVector};

#[derive(Clone, Default, Debug)]
struct State {
    events: BTreeMap<EventId, Event>,
    by_seq: BTreeMap<(ConversationId, UserId, u64), EventId>,
    order: BTreeMap<(ConversationId, OrderKey), EventId>,
    vv: BTreeMap<ConversationId, VersionVector>,
    outbox: BTreeMap<EventId, ConversationId>,
    read: BTreeMap<ConversationId, OrderKey>,
    positions: BTreeMap<(ConversationId, UserId), ReaderPosition>,
    profiles: BTreeMap<UserId, Profile>,
    conversations: BTreeSet<ConversationId>,
    forks: BTreeMap<(ConversationId, UserId, u64), Event>,
    lost_rekeys: BTreeMap<EventId, Event>,
    sealed_keys: BTreeMap<EventId, Vec<u8>>,
    admin: BTreeMap<u8, AdminStatement>,
    hidden: BTreeSet<(ConversationId, EventId)>,
}

impl State {
    fn apply(&mut self, batch: &Batch) {
        for e in &batch.remove_events {
            let h = &e.header;
            self.events.remove(&e.id());
            self.by_seq.remove(&(h.conversation, h.author, h.seq));
            self.order.remove(&(h.conversation, e.order_key()));
        }
        for (conv, author, seq) in vv_after_removal(&batch.remove_events) {
            let vv = self.vv.entry(conv).or_default();
            if seq == 0 {
                vv.remove(&author);
            } else {
                vv.insert(author, seq);
            }
        }
        for e in &batch.insert_events {
            let h = &e.header;
            self.events.insert(e.id(), e.clone());
            self.by_seq
                .insert((h.conversation, h.author, h.seq), e.id());
            self.order.insert((h.conversation, e.order_key()), e.id());
            self.conversations.insert(h.conversation);
            let entry = self
                .vv
                .entry(h.conversation)
                .or_default()
                .entry(h.author)
                .or_insert(0);
            *entry = (*entry).max(h.seq);
        }
        for (conv, id) in &batch.outbox_add {
            self.outbox.insert(*id, *conv);
        }
        for id in &batch.outbox_remove {
            self.outbox.remove(id);
        }
        for (conv, key) in &batch.read_markers {
            self.read.insert(*conv, *key);
        }
        for p in &batch.profiles {
            self.profiles.insert(p.user_id, p.clone());
        }
        for p in &batch.reader_positions {
            self.positions.insert((p.conversation, p.reader), *p);
        }
        for e in &batch.forks {
            let h = &e.header;
            self.forks
                .insert((h.conversation, h.author, h.seq), e.clone());
        }
        for key in &batch.forks_forget {
            self.forks.remove(key);
        }
        for (id, sealed) in &batch.sealed_keys {
            self.sealed_keys.insert(*id, sealed.clone());
        }
        for e in &batch.lost_rekeys {
            self.lost_rekeys.insert(e.id(), e.clone());
        }
        for statement in &batch.admin_statements {
            self.admin.insert(statement.kind.code(), statement.clone());
        }
        self.hidden.extend(batch.hidden.iter().copied());
    }
}

#[derive(Default, Debug)]
pub struct MemoryStore {
    current: State,
    durable: State,
    unflushed: Vec<Batch>,
    /// Test hook: when set, `apply` and `flush` fail as a full disk would.
    pub fail_writes: bool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// What a process restarted after a crash would see: the flushed state only.
    pub fn crash_copy(&self) -> MemoryStore {
        MemoryStore {
            current: self.durable.clone(),
            durable: self.durable.clone(),
            unflushed: Vec::new(),
            fail_writes: false,
        }
    }

    pub fn durable_event_ids(&self) -> BTreeSet<EventId> {
        self.durable.events.keys().copied().collect()
    }
}

impl Store for MemoryStore {
    fn apply(&mut self, batch: Batch) -> Result<(), StoreError> {
        if self.fail_writes {
            return Err(StoreError::Io {
                reason: "no space left on device (simulated)".into(),
            });
        }
        self.current.apply(&batch);
        self.unflushed.push(batch);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.fail_writes {
            return Err(StoreError::Io {
                reason: "no space left on device (simulated)".into(),
            });
        }
        for batch in self.unflushed.drain(..) {
            self.durable.apply(&batch);
        }
        Ok(())
    }

    fn conversations(&self) -> Result<Vec<ConversationId>, StoreError> {
        Ok(self.current.conversations.iter().copied().collect())
    }

    fn events_in_order(&self, conversation: &ConversationId) -> Result<Vec<Event>, StoreError> {
        self.events_before(conversation, None, usize::MAX)
    }

    fn events_before(
        &self,
        conversation: &ConversationId,
        before: Option<OrderKey>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let lo = OrderKey {
            lamport: 0,
            author: UserId([0; 32]),
            seq: 0,
        };
        let range = match before {
            Some(b) => self
                .current
                .order
                .range((*conversation, lo)..(*conversation, b)),
            None => self.current.order.range((*conversation, lo)..),
        };
        let mut out: Vec<Event> = range
            .take_while(|((c, _), _)| c == conversation)
            .map(|(_, id)| id)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .take(limit)
            .filter_map(|id| self.current.events.get(id).cloned())
            .collect();
        out.reverse();
        Ok(out)
    }

    fn events_after_key(
        &self,
        conversation: &ConversationId,
        after: Option<OrderKey>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        use std::ops::Bound;
        let start = match after {
            Some(a) => Bound::Excluded((*conversation, a)),
            None => Bound::Included((
                *conversation,
                OrderKey {
                    lamport: 0,
                    author: UserId([0; 32]),
                    seq: 0,
                },
            )),
        };
        Ok(self
            .current
            .order
            .range((start, Bound::Unbounded))
            .take_while(|((c, _), _)| c == conversation)
            .take(limit)
            .filter_map(|(_, id)| self.current.events.get(id).cloned())
            .collect())
    }

    fn event(&self, event_id: &EventId) -> Result<Option<Event>, StoreError> {
        Ok(self.current.events.get(event_id).cloned())
    }

    fn event_id_by_seq(
        &self,
        conversation: &ConversationId,
        author: &UserId,
        seq: u64,
    ) -> Result<Option<EventId>, StoreError> {
        Ok(self
            .current
            .by_seq
            .get(&(*conversation, *author, seq))
            .copied())
    }

    fn events_after(
        &self,
        conversation: &ConversationId,
        author: &UserId,
        after_seq: u64,
        max_bytes: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for (_, id) in self
            .current
            .by_seq
            .range((*conversation, *author, after_seq + 1)..=(*conversation, *author, u64::MAX))
        {
            let Some(e) = self.current.events.get(id) else {
                continue;
            };
            bytes += e.encoded_len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn version_vector(&self, conversation: &ConversationId) -> Result<VersionVector, StoreError> {
        Ok(self
            .current
            .vv
            .get(conversation)
            .cloned()
            .unwrap_or_default())
    }

    fn outbox(&self) -> Result<Vec<(ConversationId, EventId)>, StoreError> {
        Ok(self
            .current
            .outbox
            .iter()
            .map(|(id, c)| (*c, *id))
            .collect())
    }

    fn read_marker(&self, conversation: &ConversationId) -> Result<Option<OrderKey>, StoreError> {
        Ok(self.current.read.get(conversation).copied())
    }

    fn reader_positions(
        &self,
        conversation: &ConversationId,
    ) -> Result<Vec<ReaderPosition>, StoreError> {
        Ok(self
            .current
            .positions
            .range((*conversation, UserId([0; 32]))..=(*conversation, UserId([0xff; 32])))
            .map(|(_, p)| *p)
            .collect())
    }

    fn profiles(&self) -> Result<Vec<Profile>, StoreError> {
        Ok(self.current.profiles.values().cloned().collect())
    }

    fn event_count(&self) -> Result<usize, StoreError> {
        Ok(self.current.events.len())
    }

    fn forks(&self) -> Result<Vec<Event>, StoreError> {
        Ok(self.current.forks.values().cloned().collect())
    }

    fn lost_rekeys(&self) -> Result<Vec<Event>, StoreError> {
        Ok(self.current.lost_rekeys.values().cloned().collect())
    }

    fn admin_statements(&self) -> Result<Vec<AdminStatement>, StoreError> {
        Ok(self.current.admin.values().cloned().collect())
    }

    fn sealed_keys(&self) -> Result<Vec<(EventId, Vec<u8>)>, StoreError> {
        Ok(self
            .current
            .sealed_keys
            .iter()
            .map(|(id, s)| (*id, s.clone()))
            .collect())
    }

    fn hidden(&self) -> Result<Vec<(ConversationId, EventId)>, StoreError> {
        Ok(self.current.hidden.iter().copied().collect())
    }
}
