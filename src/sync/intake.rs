//! Events coming in: signatures checked one by one, each event offered to its
//! conversation (accepted, held back for a gap, a duplicate, one version of an
//! equivocation, or invalid and counted against the sender), what it unblocks, and the
//! requests that follow (gaps, forks, whole vectors where views differ).

use super::*;

impl<S: Store> Engine<S> {
    pub(super) fn handle_events(
        &mut self,
        now_ms: u64,
        from: Option<UserId>,
        events: Vec<Event>,
    ) -> Result<(), SyncError> {
        let verified = self.verify_signatures(from, events);
        self.note_deletions(&verified);
        let mut accepted: Vec<Event> = Vec::new();
        let mut fetch: BTreeSet<ConversationId> = BTreeSet::new();
        let mut batch = Batch::default();
        let mut sorted = verified;
        sorted.sort_by_key(|e| (e.header.conversation, e.order_key()));
        self.rejected_in.clear();
        self.forks_in.clear();
        self.winners_out.clear();
        let invalid_before = from
            .and_then(|p| self.offences.get(&p))
            .map_or(0, |o| o.invalid);
        for event in sorted {
            self.offer(now_ms, from, event, &mut batch, &mut accepted, &mut fetch)?;
        }
        if let Some(peer) = from
            && let Some(o) = self.offences.get_mut(&peer)
            && o.invalid != invalid_before
        {
            o.frames_with_invalid += 1;
        }
        // Gaps: ask the sender for the missing run of each author it sent ahead of.
        let mut gaps: Vec<wire::Announce> = Vec::new();
        let mut whole: BTreeSet<ConversationId> = BTreeSet::new();
        for conv in fetch {
            let Some(state) = self.convs.get(&conv) else {
                whole.insert(conv);
                continue;
            };
            let authors: BTreeSet<(UserId, u64)> = self
                .pending
                .of(conv)
                .map(|e| {
                    let a = e.header.author;
                    (a, state.vv.get(&a).copied().unwrap_or(0))
                })
                .collect();
            for (author, have) in authors {
                // At most one request per author and interval: events that stay pending
                // (their predecessor is invalid here) must not be asked for in a loop.
                if self.want_due(now_ms, conv, author, have + 1) {
                    gaps.push(wire::Announce {
                        conversation: conv,
                        author,
                        seq: have,
                    });
                }
            }
        }
        // An event the sender holds is invalid here: our views differ, so compare whole
        // vectors (the sender then sends what decides it, or learns what we hold).
        for (conv, author, have) in std::mem::take(&mut self.forks_in) {
            if self.want_due(now_ms, conv, author, have) {
                // The sender's events from our head on, its version of our head first.
                gaps.push(wire::Announce {
                    conversation: conv,
                    author,
                    seq: have.saturating_sub(1),
                });
            }
        }
        let mut winners = std::mem::take(&mut self.winners_out);
        winners.dedup_by_key(|e| e.id());
        let rejected: Vec<ConversationId> = self.rejected_in.iter().copied().collect();
        for conv in rejected {
            if self.want_due(now_ms, conv, gossip::WHOLE_CONVERSATION, u64::MAX) {
                whole.insert(conv);
            }
        }
        if let Err(e) = self.store.apply(std::mem::take(&mut batch)) {
            // Nothing of this frame is kept; the peers still hold it and will resend.
            self.reload()?;
            return Err(e.into());
        }
        self.after_accept(from, accepted);
        if let Some(peer) = from {
            if !winners.is_empty() {
                self.send(peer, SyncMessage::Events { events: winners });
            }
            if !gaps.is_empty() {
                self.stats.wants_sent += 1;
                self.send(peer, SyncMessage::Want { items: gaps });
            }
            if !whole.is_empty() {
                let summary = self.summary_for(&peer, Some(&whole));
                self.send(peer, summary);
            }
        }
        Ok(())
    }

    /// Check each event's signature alone, with the one rule every path uses
    /// (`crypto::verify`): a batch check could accept what the single check refuses.
    pub(super) fn verify_signatures(
        &mut self,
        from: Option<UserId>,
        events: Vec<Event>,
    ) -> Vec<Event> {
        // An exact copy of an event held already (same signed bytes and signature, checked
        // when it was stored) needs no second check; catch-ups and gossip bring many. A
        // copy with another signature is checked like anything new.
        let held: Vec<bool> = events.iter().map(|e| self.holds(e)).collect();
        let ok = check_signatures(&events, &held, self.config.verify_threads);
        let mut good = Vec::with_capacity(events.len());
        for (e, ok) in events.into_iter().zip(ok) {
            if ok {
                good.push(e);
            } else {
                self.stats.invalid_events += 1;
                if let Some(peer) = from {
                    self.offences.entry(peer).or_default().forged += 1;
                }
            }
        }
        good
    }

    /// Whether this exact event (bytes and signature) is stored.
    fn holds(&self, e: &Event) -> bool {
        let h = &e.header;
        self.convs
            .get(&h.conversation)
            .is_some_and(|s| h.seq <= s.vv.get(&h.author).copied().unwrap_or(0))
            && matches!(
                self.store.event(&e.id()),
                Ok(Some(held)) if held.signature == e.signature
            )
    }

    /// Try to accept one verified event; then any pending events it unblocks.
    pub(super) fn offer(
        &mut self,
        now_ms: u64,
        from: Option<UserId>,
        event: Event,
        batch: &mut Batch,
        accepted: &mut Vec<Event>,
        fetch: &mut BTreeSet<ConversationId>,
    ) -> Result<(), SyncError> {
        let conv = event.header.conversation;
        let mut queue = vec![event];
        while let Some(event) = queue.pop() {
            let h = &event.header;
            let known = if self
                .convs
                .get(&conv)
                .is_some_and(|s| h.seq <= s.vv.get(&h.author).copied().unwrap_or(0))
            {
                self.store.event_id_by_seq(&conv, &h.author, h.seq)?
            } else {
                None
            };
            if event.is_purged()
                && known != Some(event.id())
                && !self.purge_justified(now_ms, &event, batch)
            {
                // A body withheld, not a deletion we can check: refused without blame
                // (the deletion may follow); other peers still hold the whole event.
                self.stats.withheld_bodies += 1;
                continue;
            }
            if known != Some(event.id()) && self.is_refused_as_revoked(&event) {
                // Signed by a colleague who left, not held here (also another version of
                // one held): refused without blame (an honest peer may have taken it
                // before it heard of the revocation).
                self.stats.revoked_events += 1;
                continue;
            }
            let fork_key = (conv, h.author, h.seq);
            let verdict = match (self.forks.get(&fork_key), self.convs.get(&conv)) {
                (Some(low), _) if low.id() < event.id() => {
                    // A version given up already: refused, and the sender told which won.
                    self.stats.invalid_events += 1;
                    self.winners_out.push(low.clone());
                    continue;
                }
                (_, Some(state)) => state.check(&event, known),
                (_, None) => ConversationState::with_profiles(conv, self.profiles_ok.clone())
                    .check(&event, None),
            };
            match verdict {
                Ok(_) => {
                    self.accept(now_ms, event, batch, accepted)?;
                    // Whatever waited for this event may now fit.
                    let state = self.convs.get(&conv);
                    let next = self
                        .pending
                        .take_fitting(conv, |e| state.is_some_and(|s| s.check(e, None).is_ok()));
                    queue.extend(next.into_iter().rev());
                }
                Err(Rejection::Duplicate) => self.stats.duplicate_events += 1,
                Err(Rejection::Equivocation) => {
                    tracing::warn!(conversation = %conv, author = %event.header.author, seq = event.header.seq,
                        "two different events with one author and sequence number: that member's device sent conflicting messages");
                    self.stats.equivocations += 1;
                    self.notifications.push_back(Notification::Equivocation {
                        conversation: conv,
                        author: event.header.author,
                    });
                    let ours = match known {
                        Some(id) => self.store.event(&id)?,
                        None => None,
                    };
                    let low = [
                        self.forks.get(&fork_key).cloned(),
                        ours,
                        Some(event.clone()),
                    ]
                    .into_iter()
                    .flatten()
                    .min_by_key(Event::id);
                    if let Some(low) = low
                        && (known.is_some() || self.forks.contains_key(&fork_key))
                        && self.forks.get(&fork_key) != Some(&low)
                    {
                        // Remembered on disk too: after a restart the given-up version
                        // is still refused.
                        if self.forks.len() >= MAX_FORKS
                            && !self.forks.contains_key(&fork_key)
                            && let Some((oldest, _)) = self.forks.pop_first()
                        {
                            batch.forks_forget.push(oldest);
                        }
                        batch.forks.push(low.clone());
                        self.forks.insert(fork_key, low);
                    }
                    match known {
                        // The lower id wins, on every node alike.
                        Some(ours) if event.id() < ours => {
                            self.replace_chain_from(now_ms, &event, batch, accepted)?;
                            queue.push(event);
                        }
                        Some(_) => {
                            self.stats.invalid_events += 1;
                            if let Some(low) = self.forks.get(&fork_key) {
                                self.winners_out.push(low.clone());
                            }
                        }
                        None => {
                            // Its `prev` names another version of what we hold: ask for it.
                            let have = self
                                .convs
                                .get(&conv)
                                .and_then(|s| s.vv.get(&event.header.author).copied())
                                .unwrap_or(0);
                            self.forks_in.insert((conv, event.header.author, have));
                        }
                    }
                }
                Err(r) if r.is_pending() => {
                    fetch.insert(conv);
                    if let Err(full) = self.pending.insert(event, from, now_ms) {
                        tracing::debug!(conversation = %conv, ?from, ?full, "held-back events at their bound; dropped");
                        self.stats.pending_dropped += 1;
                    }
                }
                Err(r) => {
                    tracing::debug!(conversation = %conv, reason = %r, "dropping invalid event");
                    self.stats.invalid_events += 1;
                    self.rejected_in.insert(conv);
                    if let Some(peer) = from {
                        self.offences.entry(peer).or_default().invalid += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// Open the rekeys of `state`'s conversation that lost an equivocation, read-only (a
    /// rebuild starts from the conversation's events alone).
    pub(super) fn reopen_lost_rekeys(&self, state: &mut ConversationState) {
        for rekey in self.lost_rekeys.get(&state.id).into_iter().flatten() {
            state.open_read_only(rekey, Some(&self.me));
        }
    }

    /// Drop `event`'s author's events from its seq on (the losing version of an
    /// equivocation and what was built on it) and re-decide the conversation.
    pub(super) fn replace_chain_from(
        &mut self,
        _now_ms: u64,
        event: &Event,
        batch: &mut Batch,
        accepted: &mut Vec<Event>,
    ) -> Result<(), SyncError> {
        let (conv, author, seq) = (
            event.header.conversation,
            event.header.author,
            event.header.seq,
        );
        self.store.apply(std::mem::take(batch))?;
        let losers = self
            .store
            .events_after(&conv, &author, seq.saturating_sub(1), usize::MAX)?;
        for l in &losers {
            accepted.retain(|a| a.id() != l.id());
            self.notifications.push_back(Notification::Retracted {
                conversation: conv,
                event_id: l.id(),
            });
        }
        // A losing rekey is kept apart, read-only: members may have written under its key
        // before the equivocation was settled (bounded like the settled forks).
        let kept = self.lost_rekeys.values().map(Vec::len).sum::<usize>();
        let lost: Vec<Event> = losers
            .iter()
            .filter(|l| l.header.kind == EventKind::Rekey)
            .take(MAX_FORKS.saturating_sub(kept))
            .cloned()
            .collect();
        self.lost_rekeys
            .entry(conv)
            .or_default()
            .extend(lost.iter().cloned());
        self.store.apply(Batch {
            remove_events: losers,
            lost_rekeys: lost,
            ..Batch::default()
        })?;
        let events = self.store.events_in_order(&conv)?;
        let (mut state, dropped) =
            ConversationState::rebuild_with(conv, events, Some(&self.me), self.profiles_ok.clone());
        self.reopen_lost_rekeys(&mut state);
        if !dropped.is_empty() {
            for d in &dropped {
                accepted.retain(|a| a.id() != d.id());
            }
            self.store.apply(Batch {
                remove_events: dropped,
                ..Batch::default()
            })?;
        }
        self.convs.insert(conv, state);
        self.purge_sweep(conv, batch)?;
        self.notifications
            .push_back(Notification::ConversationChanged { conversation: conv });
        // A losing version may have been a complaint: the rekey it blamed is current again
        // for whoever did not complain, and must be answered (found by review: the rekey's
        // author complained about its own rekey, then equivocated the complaint away).
        self.rekey_due.insert(conv);
        Ok(())
    }

    pub(super) fn accept(
        &mut self,
        now_ms: u64,
        event: Event,
        batch: &mut Batch,
        accepted: &mut Vec<Event>,
    ) -> Result<(), SyncError> {
        let conv = event.header.conversation;
        let profiles = self.profiles_ok.clone();
        let state = self.convs.entry(conv).or_insert_with(|| {
            tracing::debug!(conversation = %conv, "first event of a conversation");
            ConversationState::with_profiles(conv, profiles)
        });
        if state.needs_rebuild(&event) {
            // A control event arrived late: re-decide everything after it.
            self.store.apply(std::mem::take(batch))?;
            let mut events = self.store.events_in_order(&conv)?;
            events.push(event.clone());
            let (mut new_state, dropped) = ConversationState::rebuild_with(
                conv,
                events,
                Some(&self.me),
                self.profiles_ok.clone(),
            );
            self.reopen_lost_rekeys(&mut new_state);
            let mut removal = Vec::new();
            for d in dropped {
                if d.id() == event.id() {
                    self.stats.invalid_events += 1;
                    continue;
                }
                self.notifications.push_back(Notification::Retracted {
                    conversation: conv,
                    event_id: d.id(),
                });
                accepted.retain(|a| a.id() != d.id());
                removal.push(d);
            }
            let kept =
                new_state.vv.get(&event.header.author).copied().unwrap_or(0) >= event.header.seq;
            // A rebuild blames again what was blamed before: only news is told.
            let blamed = new_state.take_newly_blamed();
            let old = self.convs.get(&conv);
            self.notifications.extend(
                blamed
                    .into_iter()
                    .filter(|(id, _)| !old.is_some_and(|s| s.is_blamed(id)))
                    .map(|(_, author)| Notification::WrongKey {
                        conversation: conv,
                        author,
                    }),
            );
            self.convs.insert(conv, new_state);
            self.store.apply(Batch {
                remove_events: removal,
                ..Batch::default()
            })?;
            self.purge_sweep(conv, batch)?;
            if kept {
                let event = self.purge_on_arrival(now_ms, event, batch)?;
                batch.insert_events.push(event.clone());
                self.stats.events_stored += 1;
                accepted.push(event);
            }
            self.notifications
                .push_back(Notification::ConversationChanged { conversation: conv });
            self.rekey_due.insert(conv);
            return Ok(());
        }
        let content = state.apply(&event, Some(&self.me));
        let for_some_members = state.for_some_members(&event);
        let event = self.purge_on_arrival(now_ms, event, batch)?;
        let content = if event.is_purged() { None } else { content };
        if let Some(content) = &content {
            self.index_content(&event, content);
        }
        let Some(state) = self.convs.get_mut(&conv) else {
            return Ok(());
        };
        let blamed = state.take_newly_blamed();
        self.notifications.extend(
            blamed
                .into_iter()
                .map(|(_, author)| Notification::WrongKey {
                    conversation: conv,
                    author,
                }),
        );
        self.stats.events_stored += 1;
        let me = self.me.user_id();
        // A relay keeps the files its conversations carry: with a certificate in a managed
        // network; in an unmanaged one, where its claim is all there is, too.
        if self.config.role == Role::Relay
            && (self.config.relay_certificate.is_some() || self.config.admin_key.is_none())
            && event.header.kind == EventKind::Text
            && !event.is_purged()
            && let Some(blob) = crate::wire::BlobRef::decode(&event.public)
        {
            self.notifications.push_back(Notification::FileCarried {
                conversation: conv,
                blob,
                author: event.header.author,
                wall_ms: event.header.wall_ms,
            });
        }
        match (&event.header.kind, content) {
            (EventKind::Text, Some(content @ (Content::Text { .. } | Content::Attachment(_))))
                if event.header.author != me =>
            {
                let file = MessageFile::of(&event, &content).map(Box::new);
                // A file whose public reference does not fit its description is stored
                // (validity does not read the public part) but not announced.
                let (text, mentions, reply_to) = match content {
                    Content::Text {
                        text,
                        mentions,
                        reply_to,
                    } => (Some(text), mentions, reply_to),
                    Content::Attachment(a) => {
                        (file.is_some().then_some(a.caption), Vec::new(), None)
                    }
                    _ => (None, Vec::new(), None),
                };
                self.receipt_due.insert(conv);
                self.receipt_authors
                    .entry(conv)
                    .or_default()
                    .insert(event.header.author);
                if let Some(text) = text {
                    self.notifications.push_back(Notification::Message {
                        conversation: conv,
                        event_id: event.id(),
                        author: event.header.author,
                        order: event.order_key(),
                        wall_ms: event.header.wall_ms,
                        text,
                        for_some_members,
                        file,
                        mentions,
                        reply_to,
                    });
                }
            }
            (EventKind::Membership | EventKind::Rekey | EventKind::KeyComplaint, _) => {
                self.notifications
                    .push_back(Notification::ConversationChanged { conversation: conv });
                if event.header.author != me {
                    // Decided at commit, once the whole frame is in (`rekey_needed_by`).
                    self.rekey_due.insert(conv);
                }
            }
            (EventKind::DeliveryReceipt | EventKind::ReadReceipt, _) => {
                self.notifications
                    .push_back(Notification::ReceiptsChanged { conversation: conv });
            }
            (EventKind::Edit | EventKind::Reaction, content) => {
                if let Some(target) = event.target() {
                    self.notifications.push_back(Notification::MessageChanged {
                        conversation: conv,
                        target,
                    });
                    if let Some(Content::Text { text, mentions, .. }) = content
                        && event.header.kind == EventKind::Edit
                        && event.header.author != me
                        && mentions.contains(&me)
                        && self.newly_mentions_me(&event, &target, batch)?
                    {
                        self.notifications.push_back(Notification::Mentioned {
                            conversation: conv,
                            target,
                            author: event.header.author,
                            wall_ms: event.header.wall_ms,
                            text,
                        });
                    }
                }
            }
            _ => {}
        }
        batch.insert_events.push(event.clone());
        accepted.push(event);
        Ok(())
    }
}

/// Frames with fewer signatures to check than this are checked on the calling thread.
const PARALLEL_VERIFY_MIN: usize = 64;

/// Whether each event's signature holds (`crypto::verify`, alone, the one rule every path
/// uses); events marked `held` count as checked. Large frames are split over `threads`
/// scoped threads: compute only, the answer does not depend on the split.
fn check_signatures(events: &[Event], held: &[bool], threads: usize) -> Vec<bool> {
    let one = |(e, held): (&Event, &bool)| {
        *held
            || crypto::verify(
                &e.header.author,
                LABEL_EVENT_SIGNATURE,
                &e.signed_bytes(),
                &e.signature,
            )
            .is_ok()
    };
    let to_check = held.iter().filter(|h| !**h).count();
    if threads <= 1 || to_check < PARALLEL_VERIFY_MIN {
        return events.iter().zip(held).map(one).collect();
    }
    let chunk = events.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = events
            .chunks(chunk)
            .zip(held.chunks(chunk))
            .map(|(es, hs)| {
                let n = es.len();
                (
                    n,
                    scope.spawn(move || es.iter().zip(hs).map(one).collect::<Vec<_>>()),
                )
            })
            .collect();
        parts
            .into_iter()
            // A check that panicked counts as failed (nothing in it should panic).
            .flat_map(|(n, p)| p.join().unwrap_or_else(|_| vec![false; n]))
            .collect()
    })
}
