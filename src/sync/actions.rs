//! Replies, edits, reactions and deletion for everyone at the engine
//! (`docs/PROTOCOL.md`, "Replies, edits, reactions and deletion"): authoring them, purging
//! what a deletion that counts names (in the deletion's own batch, so a crash never leaves
//! half of it), storing purged whatever arrives after its deletion, refusing purged events
//! nobody deleted, sending each purged event with the deletion that purged it, and what a
//! message view shows of all this.
//!
//! It must never purge on a peer's word alone: only a deletion signed by the author or a
//! group admin, held or checked in a frame, does.

use super::*;
use crate::conversation::MAX_EDITS;
use crate::wire::{MAX_EMOJI_BYTES, MAX_MENTIONS};

/// Signers of one target's deletions noted from one frame: the author and an admin or
/// two; more in one frame is junk.
const MAX_SIGNERS_NOTED: usize = 4;

/// Characters of the original shown in a reply's quote.
pub const QUOTE_CHARS: usize = 120;

/// What a reply shows of the message it answers, as held now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    pub event_id: EventId,
    /// None: the original is not held here (yet).
    pub author: Option<UserId>,
    /// The start of its text (its newest edit), or its file's name.
    pub snippet: String,
    pub deleted: bool,
}

/// Edits, reactions, deletion and quote of one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageActions {
    /// The newest edit's text, if the message was edited.
    pub newest_text: Option<String>,
    /// Deleted for everyone: no text, no file.
    pub deleted: bool,
    pub reply_to: Option<Quote>,
    /// Colleagues called with @ in it (its newest version).
    pub mentions: Vec<UserId>,
    /// Each emoji with who gave it, in order of first appearance by emoji.
    pub reactions: Vec<(String, Vec<UserId>)>,
}

impl MessageActions {
    /// The message was edited (its text is `newest_text`).
    pub fn edited(&self) -> bool {
        self.newest_text.is_some()
    }
}

impl<S: Store> Engine<S> {
    /// Send a text, maybe answering `reply_to` and calling colleagues with @.
    pub fn send_message(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
        text: &str,
        reply_to: Option<EventId>,
        mentions: Vec<UserId>,
    ) -> Result<EventId, SyncError> {
        if text.trim().is_empty() || text.len() > MAX_TEXT_BYTES {
            return Err(SyncError::BadText {
                max: MAX_TEXT_BYTES,
            });
        }
        self.member_state(&conv)?;
        self.refuse_left_partner(&conv)?;
        if let Some(target) = reply_to {
            self.readable_text(&conv, &target)?;
        }
        let content = Content::Text {
            text: text.to_string(),
            reply_to,
            mentions: dedup_mentions(mentions),
        };
        Ok(self
            .author_event(
                now_ms,
                conv,
                EventKind::Text,
                Vec::new(),
                Some(content),
                None,
            )?
            .id())
    }

    /// Replace the text (or a file's caption) of an own message.
    pub fn edit(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
        target: EventId,
        text: &str,
        mentions: Vec<UserId>,
    ) -> Result<EventId, SyncError> {
        if text.len() > MAX_TEXT_BYTES {
            return Err(SyncError::BadText {
                max: MAX_TEXT_BYTES,
            });
        }
        self.member_state(&conv)?;
        let original = self.readable_text(&conv, &target)?;
        if original.header.author != self.me.user_id() {
            return Err(SyncError::NotYours);
        }
        let policy = self.policy();
        if !policy.allows(crate::wire::FEATURE_EDITS) {
            return Err(SyncError::FeatureOff {
                what: "editing messages",
            });
        }
        if !policy.may_edit(original.header.wall_ms, now_ms) {
            return Err(SyncError::TooLate {
                window: crate::wire::human_window(policy.edit_window_s.unwrap_or_default()),
            });
        }
        let is_file = crate::wire::BlobRef::decode(&original.public).is_some();
        if text.trim().is_empty() && !is_file {
            return Err(SyncError::BadText {
                max: MAX_TEXT_BYTES,
            });
        }
        let state = self.member_state(&conv)?;
        if state.actions.edits_of(&original).len() >= MAX_EDITS {
            return Err(SyncError::TooManyEdits { max: MAX_EDITS });
        }
        let content = Content::Text {
            text: text.to_string(),
            reply_to: None,
            mentions: dedup_mentions(mentions),
        };
        Ok(self
            .author_event(
                now_ms,
                conv,
                EventKind::Edit,
                target.0.to_vec(),
                Some(content),
                None,
            )?
            .id())
    }

    /// Delete a message for everyone: own messages anywhere, others' as an admin of a
    /// group. Its text, edits, reactions and file are purged here at once and on every
    /// node that learns of the deletion.
    pub fn delete_for_everyone(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
        target: EventId,
    ) -> Result<EventId, SyncError> {
        let state = self.member_state(&conv)?;
        let original = self
            .store
            .event(&target)?
            .filter(|e| e.header.conversation == conv && e.header.kind == EventKind::Text)
            .ok_or(SyncError::NoSuchMessage)?;
        if state.actions.deletion_of(&original).is_some() || original.is_purged() {
            return Err(SyncError::NoSuchMessage);
        }
        let me = self.me.user_id();
        let group_admin =
            state.kind() == Some(ConversationKind::Group) && state.membership.is_admin(&me);
        if original.header.author != me && !group_admin {
            return Err(SyncError::NotYours);
        }
        // The organisation's rules, checked where the deletion is written (see
        // docs/PROTOCOL.md: receivers do not enforce them).
        let policy = self.policy();
        if !policy.delete_for_everyone {
            return Err(SyncError::DeletionForbidden);
        }
        // The window is the author's: measured from the time its author gave the message,
        // it must not let a sender who backdates its messages keep admins from deleting
        // them.
        if original.header.author == me
            && !policy.may_delete_for_everyone(original.header.wall_ms, now_ms)
        {
            return Err(SyncError::TooLate {
                window: crate::wire::human_window(policy.delete_window_s.unwrap_or_default()),
            });
        }
        Ok(self
            .author_event(
                now_ms,
                conv,
                EventKind::Delete,
                target.0.to_vec(),
                None,
                None,
            )?
            .id())
    }

    /// Delete a message for this node only: no view here shows it again (history, search,
    /// quotes, unread counts); the others keep it, and so does this node's store (it may
    /// still pass the event on). A file someone else sent goes from this disk too,
    /// unless another message still shows it. Durable at the next commit.
    pub fn delete_for_me(
        &mut self,
        conv: ConversationId,
        target: EventId,
    ) -> Result<(), SyncError> {
        let state = self
            .convs
            .get(&conv)
            .ok_or(SyncError::UnknownConversation(conv))?;
        let original = self
            .store
            .event(&target)?
            .filter(|e| {
                e.header.conversation == conv
                    && e.header.kind == EventKind::Text
                    && !state.is_outside(e)
                    && !self.hidden.contains(&e.id())
            })
            .ok_or(SyncError::NoSuchMessage)?;
        self.store.apply(Batch {
            hidden: vec![(conv, target)],
            ..Batch::default()
        })?;
        self.hidden.insert(target);
        if original.header.author != self.me.user_id()
            && let Some(blob) = crate::wire::BlobRef::decode(&original.public)
            && !self.file_still_named(&blob, &target, &Batch::default())?
        {
            self.notifications
                .push_back(Notification::FilePurged { blob });
        }
        self.notifications.push_back(Notification::MessageChanged {
            conversation: conv,
            target,
        });
        Ok(())
    }

    /// Whether this node's user deleted the message for itself (`delete_for_me`).
    pub fn is_hidden(&self, event_id: &EventId) -> bool {
        self.hidden.contains(event_id)
    }

    /// React to a message with one emoji; an empty one takes the reaction back.
    pub fn react(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
        target: EventId,
        emoji: &str,
    ) -> Result<EventId, SyncError> {
        if emoji.len() > MAX_EMOJI_BYTES
            || emoji.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(SyncError::BadReaction {
                max: MAX_EMOJI_BYTES,
            });
        }
        // Taking one's reaction back (empty) stays possible.
        if !emoji.is_empty() && !self.policy().allows(crate::wire::FEATURE_REACTIONS) {
            return Err(SyncError::FeatureOff { what: "reactions" });
        }
        self.member_state(&conv)?;
        self.readable_text(&conv, &target)?;
        Ok(self
            .author_event(
                now_ms,
                conv,
                EventKind::Reaction,
                target.0.to_vec(),
                Some(Content::Reaction {
                    emoji: emoji.to_string(),
                }),
                None,
            )?
            .id())
    }

    /// A held text of `conv` that is not deleted.
    fn readable_text(&self, conv: &ConversationId, target: &EventId) -> Result<Event, SyncError> {
        let state = self
            .convs
            .get(conv)
            .ok_or(SyncError::UnknownConversation(*conv))?;
        self.store
            .event(target)?
            .filter(|e| {
                e.header.conversation == *conv
                    && e.header.kind == EventKind::Text
                    && !e.is_purged()
                    && !state.is_outside(e)
                    && state.actions.deletion_of(e).is_none()
                    && !self.hidden.contains(&e.id())
            })
            .ok_or(SyncError::NoSuchMessage)
    }

    /// An event of `conv` accepted in this batch or stored before.
    fn held_event(
        &self,
        id: &EventId,
        conv: &ConversationId,
        batch: &Batch,
    ) -> Result<Option<Event>, SyncError> {
        let found = match batch.insert_events.iter().rev().find(|e| e.id() == *id) {
            Some(e) => Some(e.clone()),
            None => self.store.event(id)?,
        };
        Ok(found.filter(|e| e.header.conversation == *conv))
    }

    /// After `event` was applied to its conversation: what it deletes is purged in
    /// `batch`; returns the event as it is to be stored (purged if it, or the message it
    /// acts on, was deleted before it came).
    pub(super) fn purge_on_arrival(
        &mut self,
        now_ms: u64,
        event: Event,
        batch: &mut Batch,
    ) -> Result<Event, SyncError> {
        let conv = event.header.conversation;
        let kind = event.header.kind;
        if !(kind == EventKind::Text || kind.has_target()) {
            return Ok(event);
        }
        let target = match event.target() {
            None => Some(event.clone()),
            Some(id) => self.held_event(&id, &conv, batch)?,
        };
        let Some(target) = target else {
            return Ok(event);
        };
        let deletion = self
            .convs
            .get(&conv)
            .and_then(|s| s.actions.deletion_of(&target));
        // Older than the organisation keeps messages (`sync::retention`), or emptied for
        // that elsewhere (purged, no deletion of it): the text and its edits and
        // reactions are kept purged. Deletions stay whole (they have no body).
        let aged = matches!(
            kind,
            EventKind::Text | EventKind::Edit | EventKind::Reaction
        ) && (self.is_expired(&conv, target.header.wall_ms, now_ms)
            || (target.is_purged() && deletion.is_none()));
        if aged {
            if kind == EventKind::Text {
                self.purge_message(&target, batch)?;
                if !event.is_purged() {
                    self.stats.messages_expired += 1;
                }
            } else if !event.is_purged() {
                self.stats.bodies_purged += 1;
            }
            return Ok(event.purge());
        }
        let Some(deletion) = deletion else {
            return Ok(event);
        };
        match kind {
            // Only the deletion that counts purges (another finds it done already).
            EventKind::Delete if deletion.event_id == event.id() => {
                self.purge_message(&target, batch)?;
                Ok(event)
            }
            EventKind::Delete => Ok(event),
            // The text came after its deletion: it and whatever acted on it before it
            // came are kept purged.
            EventKind::Text => {
                self.purge_message(&target, batch)?;
                Ok(event.purge())
            }
            // An edit or reaction of a deleted message.
            _ => {
                if !event.is_purged() {
                    self.stats.bodies_purged += 1;
                }
                Ok(event.purge())
            }
        }
    }

    /// Purge a deleted text, its edits and reactions (held in `batch` or the store), and
    /// its file where no other text still names it.
    pub(super) fn purge_message(
        &mut self,
        target: &Event,
        batch: &mut Batch,
    ) -> Result<(), SyncError> {
        let conv = target.header.conversation;
        let Some(state) = self.convs.get(&conv) else {
            return Ok(());
        };
        let mut ids = state.actions.all_of(&target.id());
        ids.push(target.id());
        for id in &ids {
            let held = if *id == target.id() {
                Some(target.clone())
            } else {
                self.held_event(id, &conv, batch)?
            };
            if let Some(held) = held
                && !held.is_purged()
                && held.has_body()
            {
                self.stats.bodies_purged += 1;
                batch.insert_events.push(held.purge());
            }
        }
        if let Some(blob) = crate::wire::BlobRef::decode(&target.public)
            && !self.file_still_named(&blob, &target.id(), batch)?
        {
            self.notifications
                .push_back(Notification::FilePurged { blob });
        }
        self.notifications.push_back(Notification::MessageChanged {
            conversation: conv,
            target: target.id(),
        });
        Ok(())
    }

    /// Whether a text other than `except`, in any conversation, that is not deleted still
    /// carries `blob`: then its file stays (a member may name anyone's file in a text of
    /// its own and delete that).
    fn file_still_named(
        &self,
        blob: &crate::wire::BlobRef,
        except: &EventId,
        batch: &Batch,
    ) -> Result<bool, SyncError> {
        for (conv, state) in &self.convs {
            for id in state.actions.texts_with_file(&blob.hash) {
                if id == except {
                    continue;
                }
                if let Some(e) = self.held_event(id, conv, batch)?
                    && !e.is_purged()
                    && state.actions.deletion_of(&e).is_none()
                    // Deleted here only: keeps no file, unless it was sent from here
                    // (others may still fetch it from this node).
                    && (!self.hidden.contains(id) || e.header.author == self.me.user_id())
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// After a rebuild re-decided a conversation: purge what a deletion now counts for
    /// (an admin's deletion whose author's promotion arrived late).
    pub(super) fn purge_sweep(
        &mut self,
        conv: ConversationId,
        batch: &mut Batch,
    ) -> Result<(), SyncError> {
        let Some(state) = self.convs.get(&conv) else {
            return Ok(());
        };
        let targets = state.actions.deleted_targets();
        for id in targets {
            let Some(target) = self.held_event(&id, &conv, batch)? else {
                continue;
            };
            let counts = self
                .convs
                .get(&conv)
                .is_some_and(|s| s.actions.deletion_of(&target).is_some());
            let undone = !target.is_purged()
                || self.convs.get(&conv).is_some_and(|s| {
                    s.actions.all_of(&id).iter().any(|a| {
                        self.held_event(a, &conv, batch)
                            .ok()
                            .flatten()
                            .is_some_and(|e| !e.is_purged())
                    })
                });
            if counts && undone {
                self.purge_message(&target, batch)?;
            }
        }
        Ok(())
    }

    /// Whether a purged event from a peer may be stored: a deletion of it (or of the
    /// message it acts on) that counts is held, or the frame it came in carries one
    /// signed by that message's author or by an admin of the group. Otherwise a peer
    /// could strip bodies.
    pub(super) fn purge_justified(&self, now_ms: u64, event: &Event, batch: &Batch) -> bool {
        let conv = event.header.conversation;
        let Some(state) = self.convs.get(&conv) else {
            return false;
        };
        let target = match event.header.kind {
            EventKind::Text => event.clone(),
            EventKind::Edit | EventKind::Reaction => match event
                .target()
                .and_then(|id| self.held_event(&id, &conv, batch).ok().flatten())
            {
                Some(t) => t,
                None => return false,
            },
            _ => return false,
        };
        if state.actions.deletion_of(&target).is_some()
            || self.expired_for_peer(&conv, target.header.wall_ms, now_ms)
        {
            return true;
        }
        let group = state.kind() == Some(ConversationKind::Group);
        self.deletions_seen
            .get(&target.id())
            .is_some_and(|signers| {
                signers.iter().any(|(c, s)| {
                    *c == conv
                        && (*s == target.header.author || (group && state.membership.is_admin(s)))
                })
            })
    }

    /// Remember the deletions of this frame (signatures checked) before its events are
    /// offered: a purged event sorts before the deletion that explains it when the
    /// author deleted its own message. Only for conversations held here; forgotten with
    /// the frame.
    pub(super) fn note_deletions(&mut self, events: &[Event]) {
        self.deletions_seen.clear();
        for e in events {
            if e.header.kind != EventKind::Delete
                || !self.convs.contains_key(&e.header.conversation)
            {
                continue;
            }
            let Some(target) = e.target() else { continue };
            let signers = self.deletions_seen.entry(target).or_default();
            let signer = (e.header.conversation, e.header.author);
            if !signers.contains(&signer) && signers.len() < MAX_SIGNERS_NOTED {
                signers.push(signer);
            }
        }
    }

    /// Add to a frame of events the deletion behind each purged event in it, so the
    /// receiver can tell a deleted message from a withheld body.
    pub(super) fn add_deletions(&self, events: &mut Vec<Event>) {
        let mut extra: Vec<Event> = Vec::new();
        for e in events.iter().filter(|e| e.is_purged()) {
            let conv = e.header.conversation;
            let Some(state) = self.convs.get(&conv) else {
                continue;
            };
            let target = match e.target() {
                None => Some(e.clone()),
                Some(id) => self
                    .store
                    .event(&id)
                    .ok()
                    .flatten()
                    .filter(|t| t.header.conversation == conv),
            };
            let Some(deletion) = target.and_then(|t| state.actions.deletion_of(&t)) else {
                continue;
            };
            if events
                .iter()
                .chain(&extra)
                .any(|x| x.id() == deletion.event_id)
            {
                continue;
            }
            if let Ok(Some(d)) = self.store.event(&deletion.event_id) {
                extra.push(d);
            }
        }
        events.extend(extra);
    }

    /// Whether `edit` (one that calls this node's user) counts for `target` and neither
    /// the message nor another edit of it held here calls the user: an edit that adds a
    /// mention notifies the newly called alone, once, in any order of arrival.
    pub(super) fn newly_mentions_me(
        &self,
        edit: &Event,
        target: &EventId,
        batch: &Batch,
    ) -> Result<bool, SyncError> {
        let conv = edit.header.conversation;
        let (Some(state), Some(original)) = (
            self.convs.get(&conv),
            self.held_event(target, &conv, batch)?,
        ) else {
            return Ok(false);
        };
        if self.hidden.contains(target) || state.actions.deletion_of(&original).is_some() {
            return Ok(false);
        }
        let edits = state.actions.edits_of(&original);
        if !edits.contains(&edit.id()) {
            return Ok(false);
        }
        let me = self.me.user_id();
        let called = |e: &Event| matches!(state.decrypt(e), Some(Content::Text { mentions, .. }) if mentions.contains(&me));
        if called(&original) {
            return Ok(false);
        }
        for id in edits.iter().filter(|id| **id != edit.id()) {
            if self
                .held_event(id, &conv, batch)?
                .is_some_and(|e| called(&e))
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Edits, reactions, deletion and quote of a text event, as held now.
    /// `reply_to` and `mentions` as its (already opened) body says.
    pub(super) fn actions_of(
        &self,
        state: &ConversationState,
        event: &Event,
        reply_to: Option<EventId>,
        mentions: Vec<UserId>,
    ) -> MessageActions {
        let mut out = MessageActions::default();
        if event.is_purged() || state.actions.deletion_of(event).is_some() {
            out.deleted = true;
            return out;
        }
        out.mentions = mentions;
        out.reply_to = reply_to.map(|id| self.quote(state, &id));
        if let Some((text, mentions)) = self.newest_edit(state, event) {
            out.newest_text = Some(text);
            out.mentions = mentions;
        }
        let mut reactions: Vec<(String, Vec<UserId>)> = Vec::new();
        for (user, id) in state.actions.reactions_of(&event.id()) {
            let Ok(Some(r)) = self.store.event(&id) else {
                continue;
            };
            if let Some(Content::Reaction { emoji }) = state.decrypt(&r)
                && !emoji.is_empty()
            {
                match reactions.iter_mut().find(|(e, _)| *e == emoji) {
                    Some((_, users)) => users.push(user),
                    None => reactions.push((emoji, vec![user])),
                }
            }
        }
        out.reactions = reactions;
        out
    }

    /// The newest edit of a text that counts and opens: (text, mentions).
    pub(super) fn newest_edit(
        &self,
        state: &ConversationState,
        event: &Event,
    ) -> Option<(String, Vec<UserId>)> {
        state.actions.edits_of(event).iter().rev().find_map(|id| {
            match self.store.event(id).ok().flatten() {
                Some(e) => match state.decrypt(&e) {
                    Some(Content::Text { text, mentions, .. }) => Some((text, mentions)),
                    _ => None,
                },
                None => None,
            }
        })
    }

    /// Every version of a text, oldest first (the original, then each edit that counts).
    pub fn versions(
        &self,
        conv: &ConversationId,
        event_id: &EventId,
    ) -> Result<Vec<(u64, String)>, SyncError> {
        let state = self
            .convs
            .get(conv)
            .ok_or(SyncError::UnknownConversation(*conv))?;
        let original = self.readable_text(conv, event_id)?;
        let mut out = Vec::new();
        match state.decrypt(&original) {
            Some(Content::Text { text, .. }) => out.push((original.header.wall_ms, text)),
            Some(Content::Attachment(a)) => out.push((original.header.wall_ms, a.caption)),
            _ => {}
        }
        for id in state.actions.edits_of(&original) {
            if let Some(e) = self.store.event(&id)?
                && let Some(Content::Text { text, .. }) = state.decrypt(&e)
            {
                out.push((e.header.wall_ms, text));
            }
        }
        Ok(out)
    }

    fn quote(&self, state: &ConversationState, id: &EventId) -> Quote {
        let mut quote = Quote {
            event_id: *id,
            author: None,
            snippet: String::new(),
            deleted: false,
        };
        let Ok(Some(original)) = self.store.event(id) else {
            return quote;
        };
        if original.header.conversation != state.id || original.header.kind != EventKind::Text {
            return quote;
        }
        quote.author = Some(original.header.author);
        if original.is_purged()
            || state.actions.deletion_of(&original).is_some()
            || self.hidden.contains(id)
        {
            quote.deleted = true;
            return quote;
        }
        let text = match self.newest_edit(state, &original) {
            Some((text, _)) => Some(text),
            None => match state.decrypt(&original) {
                Some(Content::Text { text, .. }) => Some(text),
                Some(Content::Attachment(a)) if a.caption.trim().is_empty() => Some(a.name),
                Some(Content::Attachment(a)) => Some(a.caption),
                _ => None,
            },
        };
        quote.snippet = text.map(|t| snippet(&t)).unwrap_or_default();
        quote
    }
}

/// The first `QUOTE_CHARS` characters of a text on one line.
pub fn snippet(text: &str) -> String {
    let line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(QUOTE_CHARS + 1)
        .collect();
    if line.chars().count() > QUOTE_CHARS {
        let cut: String = line.chars().take(QUOTE_CHARS).collect();
        format!("{cut}…")
    } else {
        line
    }
}

fn dedup_mentions(mut mentions: Vec<UserId>) -> Vec<UserId> {
    let mut seen = BTreeSet::new();
    mentions.retain(|u| seen.insert(*u));
    mentions.truncate(MAX_MENTIONS);
    mentions
}
