//! Events held back because something before them is missing (a gap in their author's
//! chain, or the conversation's first event). Bounded three ways, so that a peer that
//! sends events which never fit costs others little: per sending peer, per conversation
//! and in all; and each entry expires.

use std::collections::BTreeMap;

use crate::identity::UserId;
use crate::wire::{ConversationId, Event};

/// Events held back in all. Beyond any of the bounds, new ones are dropped and fetched
/// again later (the version vectors still show them missing).
pub const MAX_PENDING_EVENTS: usize = 16 * 1024;
/// Held back for one sending peer: one peer's junk cannot fill the buffer for the rest.
/// (A catch-up frame holds at most `BATCH_BYTES`, a few thousand events, and arrives in
/// order per author, so an honest peer rarely gets near this.)
pub const MAX_PENDING_PER_PEER: usize = 4 * 1024;
/// Held back for one conversation: one group's flood cannot starve the others.
pub const MAX_PENDING_PER_CONVERSATION: usize = 8 * 1024;
/// A held-back event whose predecessor has not come by then is dropped; if it is genuine
/// it comes again with the rest of its author's chain.
pub const PENDING_TTL_MS: u64 = 60_000;

/// Who an event came from: `None` for the node itself (a reload).
type Source = Option<UserId>;

struct Held {
    event: Event,
    from: Source,
    since_ms: u64,
}

#[derive(Default)]
pub(super) struct Pending {
    events: BTreeMap<(ConversationId, UserId, u64), Held>,
    per_peer: BTreeMap<Source, usize>,
    per_conversation: BTreeMap<ConversationId, usize>,
    /// When `expire` last looked (it looks at most once a second).
    expired_at_ms: u64,
}

/// Why an event was not held back.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Full {
    Peer,
    Conversation,
    All,
}

impl Pending {
    pub(super) fn len(&self) -> usize {
        self.events.len()
    }

    /// Hold `event` back, unless a bound is reached. The first copy of an event stays (a
    /// second copy from another peer changes nothing).
    pub(super) fn insert(&mut self, event: Event, from: Source, now_ms: u64) -> Result<(), Full> {
        let key = (
            event.header.conversation,
            event.header.author,
            event.header.seq,
        );
        if self.events.contains_key(&key) {
            return Ok(());
        }
        if self.events.len() >= MAX_PENDING_EVENTS {
            return Err(Full::All);
        }
        if self.per_peer.get(&from).copied().unwrap_or(0) >= MAX_PENDING_PER_PEER {
            return Err(Full::Peer);
        }
        if self.per_conversation.get(&key.0).copied().unwrap_or(0) >= MAX_PENDING_PER_CONVERSATION {
            return Err(Full::Conversation);
        }
        *self.per_peer.entry(from).or_default() += 1;
        *self.per_conversation.entry(key.0).or_default() += 1;
        self.events.insert(
            key,
            Held {
                event,
                from,
                since_ms: now_ms,
            },
        );
        Ok(())
    }

    fn remove(&mut self, key: &(ConversationId, UserId, u64)) -> Option<Event> {
        let held = self.events.remove(key)?;
        decrement(&mut self.per_peer, &held.from);
        decrement(&mut self.per_conversation, &key.0);
        Some(held.event)
    }

    /// The held-back events of one conversation, in (author, seq) order.
    pub(super) fn of(&self, conv: ConversationId) -> impl Iterator<Item = &Event> {
        self.events
            .range((conv, UserId([0; 32]), 0)..=(conv, UserId([0xff; 32]), u64::MAX))
            .map(|(_, h)| &h.event)
    }

    /// Take out the events of `conv` for which `fits` holds.
    pub(super) fn take_fitting(
        &mut self,
        conv: ConversationId,
        fits: impl Fn(&Event) -> bool,
    ) -> Vec<Event> {
        let keys: Vec<_> = self
            .of(conv)
            .filter(|e| fits(e))
            .map(|e| (conv, e.header.author, e.header.seq))
            .collect();
        keys.iter().filter_map(|k| self.remove(k)).collect()
    }

    /// Drop what waited longer than `PENDING_TTL_MS`; returns how many.
    pub(super) fn expire(&mut self, now_ms: u64) -> usize {
        if self.events.is_empty() || now_ms < self.expired_at_ms.saturating_add(1_000) {
            return 0;
        }
        self.expired_at_ms = now_ms;
        let old: Vec<_> = self
            .events
            .iter()
            .filter(|(_, h)| now_ms.saturating_sub(h.since_ms) >= PENDING_TTL_MS)
            .map(|(k, _)| *k)
            .collect();
        for k in &old {
            self.remove(k);
        }
        old.len()
    }
}

fn decrement<K: Ord>(map: &mut BTreeMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EventHeader, EventId, EventKind};

    fn event(conv: u8, author: u8, seq: u64) -> Event {
        let header = EventHeader {
            conversation: ConversationId([conv; 32]),
            author: UserId([author; 32]),
            seq,
            prev: EventId([0; 32]),
            lamport: seq,
            wall_ms: 0,
            epoch: 0,
            key: EventId([0; 32]),
            kind: EventKind::Text,
        };
        Event::new(header, vec![], vec![], [0; 64])
    }

    #[test]
    fn one_peer_cannot_fill_the_buffer_for_others() {
        let mallory = Some(UserId([9; 32]));
        let anna = Some(UserId([1; 32]));
        let mut p = Pending::default();
        for seq in 0..MAX_PENDING_PER_PEER as u64 {
            p.insert(event(1, 9, seq + 2), mallory, 0).unwrap();
        }
        assert_eq!(
            p.insert(event(1, 9, 1_000_000), mallory, 0),
            Err(Full::Peer)
        );
        assert_eq!(p.insert(event(1, 1, 5), anna, 0), Ok(()));
        assert_eq!(p.len(), MAX_PENDING_PER_PEER + 1);
    }

    #[test]
    fn one_conversation_cannot_fill_the_buffer_for_others() {
        let mut p = Pending::default();
        for i in 0..MAX_PENDING_PER_CONVERSATION as u64 {
            let peer = Some(UserId([(i % 4) as u8; 32]));
            p.insert(event(1, (i % 4) as u8, i + 2), peer, 0).unwrap();
        }
        let other = Some(UserId([7; 32]));
        assert_eq!(p.insert(event(1, 7, 3), other, 0), Err(Full::Conversation));
        assert_eq!(p.insert(event(2, 7, 3), other, 0), Ok(()));
    }

    #[test]
    fn held_events_expire_and_their_counts_with_them() {
        let peer = Some(UserId([3; 32]));
        let mut p = Pending::default();
        p.insert(event(1, 3, 5), peer, 1_000).unwrap();
        p.insert(event(1, 3, 6), peer, 30_000).unwrap();
        assert_eq!(p.expire(1_000 + PENDING_TTL_MS - 1), 0);
        assert_eq!(
            p.expire(1_000 + PENDING_TTL_MS),
            0,
            "looked less than a second ago"
        );
        assert_eq!(p.expire(1_000 + PENDING_TTL_MS + 1_000), 1);
        assert_eq!(p.len(), 1);
        assert_eq!(p.per_peer.get(&peer), Some(&1));
        let taken = p.take_fitting(ConversationId([1; 32]), |_| true);
        assert_eq!(taken.len(), 1);
        assert!(p.per_peer.is_empty() && p.per_conversation.is_empty());
    }
}
