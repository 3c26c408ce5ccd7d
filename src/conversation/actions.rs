//! What acts on each text of a conversation: edits, reactions and deletions held inside
//! their authors' chains, indexed by the text they name (`docs/PROTOCOL.md`, "Replies,
//! edits, reactions and deletion"). Which of them count is decided here from the event
//! set alone, so every member shows the same text, the same reactions and the same
//! deletions whatever order the events arrived in.
//!
//! Kept in memory and rebuilt with the conversation (`ConversationState::rebuild`, and the
//! replay at start-up). It must never decide validity of the events themselves (that is
//! `ConversationState::check`), nor act on a text of another conversation.

use std::collections::{BTreeMap, BTreeSet};

use crate::files::BlobRef;
use crate::identity::UserId;
use crate::wire::{ConversationId, Event, EventId, EventKind, OrderKey};

/// Edits of one text that count: the first ones in the total order. A typo fixed twenty
/// times is plenty; the bound keeps one author from growing every member's index without
/// end through one message.
pub const MAX_EDITS: usize = 20;

/// Deletions of one message kept per signer: one counts; a second covers a signer that
/// deleted from two devices at once; more only cost every member memory.
const MAX_DELETIONS_PER_SIGNER: usize = 2;

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
    /// By the deletion's id (`MAX_DELETIONS_PER_SIGNER`).
    deletions: BTreeMap<EventId, Deletion>,
    /// Every edit and reaction held (also those that no longer count): what a deletion
    /// of the target purges.
    held: BTreeSet<EventId>,
}

#[derive(Debug)]
pub struct Actions {
    /// The conversation this index belongs to: a target elsewhere is never acted on.
    conversation: ConversationId,
    by_target: BTreeMap<EventId, OfTarget>,
    /// Texts that carry each file (by its ciphertext's hash): a file is removed only when
    /// every text naming it is deleted (anyone can name any file in a text of its own).
    files: BTreeMap<[u8; 32], BTreeSet<EventId>>,
}

impl Actions {
    pub fn new(conversation: ConversationId) -> Self {
        Actions {
            conversation,
            by_target: BTreeMap::new(),
            files: BTreeMap::new(),
        }
    }

    /// Take an event held inside its author's chain (a deletion also outside it: see
    /// `ConversationState::apply`). `by_admin`: its author is an admin of a group just
    /// before it.
    pub fn record(&mut self, event: &Event, by_admin: bool) {
        let h = &event.header;
        if h.conversation != self.conversation {
            return;
        }
        if h.kind == EventKind::Text
            && let Some(blob) = BlobRef::decode(&event.public)
        {
            self.files.entry(blob.hash).or_default().insert(event.id());
        }
        let Some(target) = event.target() else {
            return;
        };
        let entry = self.by_target.entry(target).or_default();
        let item = (event.order_key(), event.id());
        match h.kind {
            EventKind::Edit => {
                entry.held.insert(item.1);
                let edits = entry.edits.entry(h.author).or_default();
                if let Err(at) = edits.binary_search(&item) {
                    edits.insert(at, item);
                    edits.truncate(MAX_EDITS);
                }
            }
            EventKind::Reaction => {
                entry.held.insert(item.1);
                let newest = entry.reactions.entry(h.author).or_insert(item);
                if item.0 > newest.0 {
                    *newest = item;
                }
            }
            EventKind::Delete => {
                let by_signer = entry
                    .deletions
                    .values()
                    .filter(|d| d.author == h.author && d.event_id != item.1)
                    .count();
                if by_signer < MAX_DELETIONS_PER_SIGNER {
                    let d = entry.deletions.entry(item.1).or_insert(Deletion {
                        order: item.0,
                        event_id: item.1,
                        author: h.author,
                        by_admin,
                    });
                    d.by_admin |= by_admin;
                }
            }
            _ => {}
        }
    }

    /// The deletion of `target` that counts, if any: by the target's author, or by an
    /// admin of the group; always one of this conversation, sorting after the target.
    pub fn deletion_of(&self, target: &Event) -> Option<Deletion> {
        if target.header.kind != EventKind::Text || target.header.conversation != self.conversation
        {
            return None;
        }
        self.by_target
            .get(&target.id())?
            .deletions
            .values()
            .copied()
            .find(|d| {
                (d.author == target.header.author || d.by_admin) && d.order > target.order_key()
            })
    }

    /// The edits of `target` that count, oldest first: by its author, after it.
    pub fn edits_of(&self, target: &Event) -> Vec<EventId> {
        if target.header.kind != EventKind::Text || target.header.conversation != self.conversation
        {
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
            .map(|of| of.held.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The texts here that carry the file whose ciphertext hash is `blob`.
    pub fn texts_with_file(&self, blob: &[u8; 32]) -> impl Iterator<Item = &EventId> {
        self.files.get(blob).into_iter().flatten()
    }

    /// Every text with a deletion held (for a sweep after a rebuild).
    pub fn deleted_targets(&self) -> Vec<EventId> {
        self.by_target
            .iter()
            .filter(|(_, of)| !of.deletions.is_empty())
            .map(|(id, _)| *id)
            .collect()
    }
}
