//! What acts on each text of a conversation: edits, reactions and deletions held inside
//! their authors' chains, indexed by the text they name (`docs/PROTOCOL.md`, "Replies,
//! edits, reactions and deletion"). Which of them count is decided here from the event
//! set alone, so every member shows the same text, the same reactions and the same
//! deletions whatever order the events arrived in.
//!
//! Kept in memory and rebuilt with the conversation (`ConversationState::rebuild`, and the
//! replay at start-up). It must never decide validity of the events themselves: that is
//! `ConversationState::check`.

use std::collections::BTreeMap;

use crate::identity::UserId;
use crate::wire::{Event, EventId, EventKind, OrderKey};

/// Edits of one text that count: the first ones in the total order. A typo fixed twenty
/// times is plenty; the bound keeps one author from growing every member's index without
/// end through one message.
pub const MAX_EDITS: usize = 20;

/// A deletion held: where it sorts, who signed it, and whether that was an admin of the
/// group just before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deletion {
    pub order: OrderKey,
    pub event_id: EventId,
    pub author: UserId,
    pub by_admin: bool,
}

#[derive(Debug, Default)]
struct OfTarget {
    /// By the edit's author: the smallest `MAX_EDITS` (order, id). Only the target's own
    /// author's list is ever read.
    edits: BTreeMap<UserId, Vec<(OrderKey, EventId)>>,
    /// The newest reaction of each member.
    reactions: BTreeMap<UserId, (OrderKey, EventId)>,
    deletions: Vec<Deletion>,
    /// Every edit and reaction held (also those that no longer count): what a deletion
    /// of the target purges.
    held: Vec<EventId>,
}

#[derive(Debug, Default)]
pub struct Actions {
    by_target: BTreeMap<EventId, OfTarget>,
}

impl Actions {
    /// Take an event held inside its author's chain. `by_admin`: its author is an admin of
    /// a group just before it.
    pub fn record(&mut self, event: &Event, by_admin: bool) {
        let Some(target) = event.target() else {
            return;
        };
        let h = &event.header;
        let entry = self.by_target.entry(target).or_default();
        let item = (event.order_key(), event.id());
        if h.kind != EventKind::Delete && !entry.held.contains(&item.1) {
            entry.held.push(item.1);
        }
        match h.kind {
            EventKind::Edit => {
                let edits = entry.edits.entry(h.author).or_default();
                if let Err(at) = edits.binary_search(&item) {
                    edits.insert(at, item);
                    edits.truncate(MAX_EDITS);
                }
            }
            EventKind::Reaction => {
                let newest = entry.reactions.entry(h.author).or_insert(item);
                if item.0 > newest.0 {
                    *newest = item;
                }
            }
            EventKind::Delete if !entry.deletions.iter().any(|d| d.event_id == item.1) => {
                entry.deletions.push(Deletion {
                    order: item.0,
                    event_id: item.1,
                    author: h.author,
                    by_admin,
                });
            }
            _ => {}
        }
    }

    /// The deletion of `target` that counts, if any: by the target's author, or by an
    /// admin of the group.
    pub fn deletion_of(&self, target: &Event) -> Option<Deletion> {
        if target.header.kind != EventKind::Text {
            return None;
        }
        self.by_target
            .get(&target.id())?
            .deletions
            .iter()
            .copied()
            .find(|d| {
                (d.author == target.header.author || d.by_admin) && d.order > target.order_key()
            })
    }

    /// The edits of `target` that count, oldest first: by its author, after it.
    pub fn edits_of(&self, target: &Event) -> Vec<EventId> {
        if target.header.kind != EventKind::Text {
            return Vec::new();
        }
        let Some(of) = self.by_target.get(&target.id()) else {
            return Vec::new();
        };
        of.edits
            .get(&target.header.author)
            .map(|v| {
                v.iter()
                    .filter(|(order, _)| *order > target.order_key())
                    .map(|(_, id)| *id)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The newest reaction of each member to `target` (which may say "none").
    pub fn reactions_of(&self, target: &EventId) -> Vec<(UserId, EventId)> {
        self.by_target
            .get(target)
            .map(|of| of.reactions.iter().map(|(u, (_, id))| (*u, *id)).collect())
            .unwrap_or_default()
    }

    /// Every held event acting on `target` (edits and reactions of anyone): what a
    /// deletion of it purges.
    pub fn all_of(&self, target: &EventId) -> Vec<EventId> {
        self.by_target
            .get(target)
            .map(|of| of.held.clone())
            .unwrap_or_default()
    }

    /// Whether anything acts on `target` (a cheap test before loading events).
    pub fn touches(&self, target: &EventId) -> bool {
        self.by_target.contains_key(target)
    }
}
