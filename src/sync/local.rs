//! Events this node authors: messages, groups, membership changes, rekeys, receipts; and
//! the read-only views the app needs.

use super::*;

impl<S: Store> Engine<S> {
    /// Author, sign, store (not yet durable) and push one event.
    pub(super) fn author_event(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
        kind: EventKind,
        public: Vec<u8>,
        content: Option<Content>,
        rekey_epoch: Option<u32>,
    ) -> Result<Event, SyncError> {
        let me = self.me.user_id();
        if content.is_some()
            && rekey_epoch.is_none()
            && self
                .convs
                .get(&conv)
                .is_some_and(|s| s.current_key().is_none() && s.membership.is_member(&me))
        {
            // The key is stale (someone left or was removed, a concurrent change, a key
            // that did not open): rotate before writing anything under it.
            self.rekey(now_ms, conv)?;
        }
        let fresh = ConversationState::with_profiles(conv, self.profiles_ok.clone());
        let state = self.convs.get(&conv).unwrap_or(&fresh);
        let (epoch, key_id, key) = match (&content, rekey_epoch) {
            (_, Some(epoch)) => (epoch, EventId([0; 32]), None),
            (Some(_), None) => {
                let (rekey, epoch, key) = state.current_key().ok_or(SyncError::NoKey)?;
                (epoch, rekey, Some(key.clone()))
            }
            (None, None) => (0, EventId([0; 32]), None),
        };
        let header = EventHeader {
            conversation: conv,
            author: me,
            seq: state.next_seq(&me),
            prev: state.prev_of_next(&me),
            lamport: state.next_lamport(&me),
            wall_ms: now_ms,
            epoch,
            key: key_id,
            kind,
        };
        let sealed = match (content, key) {
            (Some(content), Some(key)) => {
                let aad = Event::body_aad(&header, &public);
                key.encrypt(&mut self.rng, &aad, &content.encode())
            }
            _ => Vec::new(),
        };
        let signed = Event::signed_bytes_of(&header, &public, &sealed);
        let signature = self.me.sign(LABEL_EVENT_SIGNATURE, &signed);
        let event = Event::new(header, public, sealed, signature);
        match state.check(&event, None) {
            Ok(crate::conversation::Standing::Inside) => {}
            // Removed (by a removal that holds): nothing of ours may count any more.
            Ok(crate::conversation::Standing::Outside) => return Err(SyncError::NotMember),
            Err(r) => return Err(SyncError::Rejected(r)),
        }

        let mut batch = Batch::default();
        let mut accepted = Vec::new();
        self.accept(now_ms, event.clone(), &mut batch, &mut accepted)?;
        let is_receipt = kind.is_receipt();
        if !is_receipt {
            batch.outbox_add.push((conv, event.id()));
        }
        if let Err(e) = self.store.apply(batch) {
            self.reload()?;
            return Err(e.into());
        }
        if !is_receipt {
            self.outbox.insert(event.id(), (conv, event.header.seq));
        }
        self.unsaved_own.extend(accepted);
        Ok(event)
    }

    pub(super) fn member_state(
        &self,
        conv: &ConversationId,
    ) -> Result<&ConversationState, SyncError> {
        let state = self
            .convs
            .get(conv)
            .ok_or(SyncError::UnknownConversation(*conv))?;
        if !state.membership.is_member(&self.me.user_id()) {
            return Err(SyncError::NotMember);
        }
        Ok(state)
    }

    fn require_admin(&self, conv: &ConversationId) -> Result<(), SyncError> {
        let state = self.member_state(conv)?;
        let me = self.me.user_id();
        if !state.members().any(|m| m.profile.user_id == me && m.admin) {
            return Err(SyncError::NotAdmin);
        }
        Ok(())
    }

    /// Rotate the conversation key: a fresh epoch key wrapped for each current member.
    pub fn rekey(&mut self, now_ms: u64, conv: ConversationId) -> Result<Event, SyncError> {
        let key = EpochKey::generate(&mut self.rng);
        let me = self.me.user_id();
        let state = self.member_state(&conv)?;
        let epoch = state.next_epoch(&me);
        let members: Vec<(UserId, [u8; 32])> = state
            .members()
            .map(|m| (m.profile.user_id, m.profile.dh_public))
            .collect();
        let public =
            RekeyBody::seal(&mut self.rng, &conv, &me, epoch, key.as_bytes(), members).encode();
        self.author_event(now_ms, conv, EventKind::Rekey, public, None, Some(epoch))
    }

    /// Prove that `rekey`'s wrap for this node does not hold its committed key: its
    /// shared secret with the rekey's ephemeral key, disclosed with a proof.
    pub fn complain(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
        rekey: EventId,
    ) -> Result<Event, SyncError> {
        let state = self.member_state(&conv)?;
        // Never about a rekey whose ephemeral key is not proven: the disclosed shared
        // secret would answer a Diffie-Hellman query for whoever chose that key.
        let body = state
            .rekey_event(&rekey)
            .and_then(|e| {
                let body = RekeyBody::decode(&e.public).ok()?;
                let h = &e.header;
                body.ephemeral_is_proven(&conv, &h.author, h.epoch)
                    .then_some(body)
            })
            .ok_or(SyncError::NoKey)?;
        let context = wire::complaint_context(&rekey, &self.me.user_id());
        // For the key its wrap for us names (an earlier one of ours, if still kept).
        let dh = body
            .wrap_for(&self.me.user_id())
            .and_then(|w| self.me.dh_key_for(&w.dh))
            .ok_or(SyncError::NoKey)?;
        let shared = crypto::prove_shared(&mut self.rng, dh, &context, &body.ephemeral)
            .ok_or(SyncError::NoKey)?;
        let public = ComplaintBody { rekey, shared }.encode();
        self.author_event(now_ms, conv, EventKind::KeyComplaint, public, None, None)
    }

    /// Complaints first (a rekey proved wrong is no longer the current key), then rekeys.
    /// A conversation where our events no longer count is skipped; on a store error the
    /// conversations not yet done stay due.
    pub(super) fn run_due_rekeys(&mut self, now_ms: u64) -> Result<(), SyncError> {
        let due: Vec<ConversationId> = std::mem::take(&mut self.rekey_due).into_iter().collect();
        for (i, conv) in due.iter().enumerate() {
            match self.run_due_rekey(now_ms, *conv) {
                Ok(()) | Err(SyncError::NotMember | SyncError::Rejected(_)) => {}
                Err(e) => {
                    self.rekey_due.extend(due[i..].iter().copied());
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn run_due_rekey(&mut self, now_ms: u64, conv: ConversationId) -> Result<(), SyncError> {
        if self.key_update_due(&conv) {
            // The update rotates the key too, wrapped to our new key. Refused (someone
            // else signed a newer update for us: shown as "has a new key"), complaints
            // and rekeys below still run.
            match self.send_key_update(now_ms, conv) {
                Ok(()) => return Ok(()),
                Err(SyncError::Rejected(r)) => {
                    tracing::warn!(conversation = %conv, reason = %r, "own key update refused");
                }
                Err(e) => return Err(e),
            }
        }
        let me = self.me.user_id();
        let complaints = self
            .convs
            .get(&conv)
            .map(|s| s.complaints_due(&me))
            .unwrap_or_default();
        // Forget waits for rekeys blamed meanwhile (or no longer due): nobody else's
        // complaint is needed once one holds. Should that complaint be withdrawn later
        // (its author equivocated it away), the conversation is due again and the wait
        // starts afresh (`replace_chain_from`).
        self.complaint_waits
            .retain(|id, (c, _)| *c != conv || complaints.contains(id));
        for rekey in complaints {
            let steps = self
                .convs
                .get(&conv)
                .and_then(|s| s.complaint_wait_steps(&me, &rekey))
                .unwrap_or(0);
            let wait = u64::from(steps).saturating_mul(COMPLAINT_STEP_MS);
            let due = match self.complaint_waits.get(&rekey) {
                // A wait longer than any rank gives: the clock went back; start again.
                Some((_, due)) if *due <= now_ms.saturating_add(wait) => *due,
                _ => {
                    let due = now_ms.saturating_add(wait);
                    self.complaint_waits.insert(rekey, (conv, due));
                    due
                }
            };
            if now_ms < due {
                continue; // `handle_tick` makes it due again
            }
            tracing::warn!(conversation = %conv, "a rekey's key for this node does not match its commitment; proving it");
            match self.complain(now_ms, conv, rekey) {
                Ok(_) => {
                    self.complaint_waits.remove(&rekey);
                }
                Err(SyncError::NoKey) => {
                    // The key its wrap names was replaced and deleted here: nothing to
                    // prove with; not an error that should hold up other conversations.
                    self.complaint_waits.remove(&rekey);
                    tracing::warn!(conversation = %conv, "cannot prove a wrong key: the key it was wrapped to is deleted");
                }
                Err(e) => {
                    // Kept, and tried again later: a victim must never stay silent.
                    self.complaint_waits
                        .insert(rekey, (conv, now_ms.saturating_add(COMPLAINT_RETRY_MS)));
                    return Err(e);
                }
            }
        }
        if self
            .convs
            .get(&conv)
            .is_some_and(|s| s.rekey_needed_by(&me))
        {
            self.rekey(now_ms, conv)?;
        }
        Ok(())
    }

    /// Create a group with the given members (their signed profiles) and a name.
    pub fn create_group(
        &mut self,
        now_ms: u64,
        name: &str,
        members: &[Profile],
    ) -> Result<ConversationId, SyncError> {
        crate::identity::validate_name(name).map_err(|_| SyncError::BadText {
            max: crate::identity::MAX_DISPLAY_NAME_BYTES,
        })?;
        let mut nonce = [0u8; 16];
        self.rng.fill_bytes(&mut nonce);
        let me = self.me.user_id();
        let conv = group_conversation_id(&me, &nonce);
        let mut profiles = vec![self.profile.clone()];
        for p in members {
            if p.user_id != me && !profiles.iter().any(|q| q.user_id == p.user_id) {
                profiles.push(p.clone());
            }
        }
        let op = MembershipOp::Create {
            nonce,
            members: profiles,
            admins: vec![me],
        };
        self.author_event(now_ms, conv, EventKind::Membership, op.encode(), None, None)?;
        self.rekey(now_ms, conv)?;
        self.rename(now_ms, conv, name)?;
        Ok(conv)
    }

    /// The 1:1 conversation with `peer`, created on first use.
    pub fn open_direct(
        &mut self,
        now_ms: u64,
        peer: &Profile,
    ) -> Result<ConversationId, SyncError> {
        let me = self.me.user_id();
        let conv = direct_conversation_id(&me, &peer.user_id);
        if self.convs.get(&conv).is_some_and(|s| s.kind().is_some()) {
            if self
                .convs
                .get(&conv)
                .is_some_and(|s| s.current_key().is_none())
            {
                self.rekey(now_ms, conv)?;
            }
            return Ok(conv);
        }
        let op = MembershipOp::Create {
            nonce: [0; 16],
            members: vec![self.profile.clone(), peer.clone()],
            admins: vec![me, peer.user_id],
        };
        self.author_event(now_ms, conv, EventKind::Membership, op.encode(), None, None)?;
        self.rekey(now_ms, conv)?;
        Ok(conv)
    }

    pub fn send_text(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
        text: &str,
    ) -> Result<EventId, SyncError> {
        self.send_message(now_ms, conv, text, None, Vec::new())
    }

    /// Send a file already in the blob store (`files::BlobStore::import`): its
    /// reference in the event's public part, its name, key and preview sealed.
    pub fn send_attachment(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
        blob: crate::wire::BlobRef,
        attachment: crate::wire::Attachment,
    ) -> Result<EventId, SyncError> {
        // Checked again where the event is written (the node checked before importing;
        // a policy may have come in meanwhile).
        if !self.policy().allows(crate::wire::FEATURE_FILES) {
            return Err(SyncError::FeatureOff {
                what: "sending files",
            });
        }
        if !attachment.fits(&blob)
            || attachment.caption.len() > MAX_TEXT_BYTES
            || attachment.name.len() > crate::wire::MAX_FILE_NAME_BYTES
            || attachment.mime.len() > crate::wire::MAX_MIME_BYTES
            || attachment
                .image
                .as_ref()
                .is_some_and(|i| i.thumbnail.len() > crate::wire::MAX_THUMBNAIL_BYTES)
        {
            return Err(SyncError::BadAttachment);
        }
        self.member_state(&conv)?;
        self.refuse_left_partner(&conv)?;
        Ok(self
            .author_event(
                now_ms,
                conv,
                EventKind::Text,
                blob.encode(),
                Some(Content::Attachment(Box::new(attachment))),
                None,
            )?
            .id())
    }

    pub fn rename(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
        name: &str,
    ) -> Result<(), SyncError> {
        self.refuse_org_group(&conv)?;
        self.set_group_name(now_ms, conv, name)
    }

    fn set_group_name(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
        name: &str,
    ) -> Result<(), SyncError> {
        crate::identity::validate_name(name).map_err(|_| SyncError::BadText {
            max: crate::identity::MAX_DISPLAY_NAME_BYTES,
        })?;
        self.member_state(&conv)?;
        let content = Content::GroupName {
            name: name.to_string(),
        };
        self.author_event(
            now_ms,
            conv,
            EventKind::Membership,
            MembershipOp::Rename.encode(),
            Some(content),
            None,
        )?;
        Ok(())
    }

    pub fn add_member(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
        profile: &Profile,
    ) -> Result<(), SyncError> {
        self.refuse_org_group(&conv)?;
        self.change_members(now_ms, conv, std::slice::from_ref(profile), &[])
    }

    /// Add and remove several members with one key rotation (an organisation group's
    /// pass, a revoked colleague's removal; one member by hand). Removing a non-member or
    /// oneself is skipped. If one change fails, those written before it still get the
    /// key rotation, and the error is returned.
    pub(super) fn change_members(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
        add: &[Profile],
        remove: &[UserId],
    ) -> Result<(), SyncError> {
        self.require_admin(&conv)?;
        let me = self.me.user_id();
        let mut written = (0usize, 0usize);
        let mut failed = None;
        for user in remove {
            let state = self.member_state(&conv)?;
            if !state.membership.is_member(user) || *user == me {
                continue;
            }
            let seen = state.vv.get(user).copied().unwrap_or(0);
            let op = MembershipOp::Remove { user: *user, seen };
            match self.author_event(now_ms, conv, EventKind::Membership, op.encode(), None, None) {
                Ok(_) => written.0 += 1,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        for profile in add.iter().filter(|_| failed.is_none()) {
            let seen = self.member_state(&conv)?.vv.get(&profile.user_id).copied();
            let op = MembershipOp::Add {
                profile: profile.clone(),
                seen: seen.unwrap_or(0),
            };
            match self.author_event(now_ms, conv, EventKind::Membership, op.encode(), None, None) {
                Ok(_) => written.1 += 1,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if written != (0, 0) {
            self.rekey(now_ms, conv)?;
        }
        // A new member holds only the new key and cannot read the name sealed at
        // creation (or the last rename): say it again under the new key.
        let name = self.member_state(&conv)?.name.clone();
        if written.1 > 0
            && let Some(name) = name.filter(|n| !n.is_empty())
        {
            self.set_group_name(now_ms, conv, &name)?;
        }
        failed.map_or(Ok(()), Err)
    }

    /// Remove a member and rotate the key so they cannot read anything sent afterwards.
    pub fn remove_member(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
        user: &UserId,
    ) -> Result<(), SyncError> {
        self.refuse_org_group(&conv)?;
        self.require_admin(&conv)?;
        let state = self.member_state(&conv)?;
        if !state.membership.is_member(user) || *user == self.me.user_id() {
            return Err(SyncError::Rejected(Rejection::Invalid(
                "remove target is not another member",
            )));
        }
        let seen = state.vv.get(user).copied().unwrap_or(0);
        let op = MembershipOp::Remove { user: *user, seen };
        self.author_event(now_ms, conv, EventKind::Membership, op.encode(), None, None)?;
        self.rekey(now_ms, conv)?;
        Ok(())
    }

    pub fn promote(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
        user: &UserId,
    ) -> Result<(), SyncError> {
        self.refuse_org_group(&conv)?;
        self.require_admin(&conv)?;
        let op = MembershipOp::Promote { user: *user };
        self.author_event(now_ms, conv, EventKind::Membership, op.encode(), None, None)?;
        Ok(())
    }

    pub fn leave(&mut self, now_ms: u64, conv: ConversationId) -> Result<(), SyncError> {
        self.member_state(&conv)?;
        self.refuse_org_group(&conv)?;
        self.author_event(
            now_ms,
            conv,
            EventKind::Membership,
            MembershipOp::Leave.encode(),
            None,
            None,
        )?;
        Ok(())
    }

    /// Mark everything up to `upto` as read: stored locally and told to the others.
    pub fn mark_read(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
        upto: OrderKey,
    ) -> Result<(), SyncError> {
        let is_group = self.member_state(&conv)?.kind() == Some(ConversationKind::Group);
        let old = self.store.read_marker(&conv)?;
        if old.is_some_and(|k| k >= upto) {
            return Ok(());
        }
        self.store.apply(Batch {
            read_markers: vec![(conv, upto)],
            ..Batch::default()
        })?;
        if !self.policy().read_receipts {
            // The organisation turned read receipts off: kept here (unread counts), told
            // to nobody.
            return Ok(());
        }
        if is_group {
            // Routed to the authors alone (see `receipts`); nothing for others to store.
            return self.send_read_receipts(conv, old, upto);
        }
        if self
            .convs
            .get(&conv)
            .is_some_and(|s| s.current_key().is_some())
        {
            self.author_event(
                now_ms,
                conv,
                EventKind::ReadReceipt,
                Vec::new(),
                Some(Content::Read { upto }),
                None,
            )?;
        }
        Ok(())
    }

    // ----- views --------------------------------------------------------------------

    pub fn conversation_ids(&self) -> Vec<ConversationId> {
        self.convs.keys().copied().collect()
    }

    /// A group's name (without the members a summary clones).
    pub fn group_name(&self, conv: &ConversationId) -> Option<String> {
        self.convs.get(conv)?.name.clone()
    }

    pub fn conversation(&self, conv: &ConversationId) -> Option<ConversationSummary> {
        let state = self.convs.get(conv)?;
        let kind = state.kind()?;
        let me = self.me.user_id();
        let members: Vec<(Profile, bool)> = state
            .members()
            .map(|m| {
                let newest = self
                    .profiles
                    .get(&m.profile.user_id)
                    .filter(|p| {
                        p.updated_ms > m.profile.updated_ms && p.dh_public == m.profile.dh_public
                    })
                    .unwrap_or(&m.profile);
                (newest.clone(), m.admin)
            })
            .collect();
        let name = match kind {
            ConversationKind::Group => state.name.clone().unwrap_or_default(),
            ConversationKind::Direct => members
                .iter()
                .find(|(p, _)| p.user_id != me)
                .map(|(p, _)| p.display_name.clone())
                .unwrap_or_default(),
        };
        Some(ConversationSummary {
            conversation: *conv,
            kind,
            name,
            members,
            last_activity_ms: state.last_activity_ms,
            is_member: state.membership.is_member(&me),
            wrong_keys_from: state
                .blamed_rekeys()
                .into_iter()
                .map(|(_, author)| author)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        })
    }

    pub fn version_vector(&self, conv: &ConversationId) -> VersionVector {
        self.convs
            .get(conv)
            .map(|s| s.vv.clone())
            .unwrap_or_default()
    }

    /// The text messages of a conversation this node can read, in the common total order.
    pub fn messages(&self, conv: &ConversationId) -> Result<Vec<MessageView>, SyncError> {
        self.messages_before(conv, None, usize::MAX)
    }

    /// (author, removed member) of every removal in a conversation that holds.
    pub fn removals_that_hold(&self, conv: &ConversationId) -> Vec<(UserId, UserId)> {
        self.convs
            .get(conv)
            .map(|s| s.removals_that_hold())
            .unwrap_or_default()
    }

    /// Whether a stored event counts: held, and not kept outside its author's chain
    /// (`conversation::MAX_OUTSIDE_EVENTS`).
    pub fn counts(&self, event_id: &EventId) -> Result<bool, SyncError> {
        let Some(event) = self.store.event(event_id)? else {
            return Ok(false);
        };
        Ok(self
            .convs
            .get(&event.header.conversation)
            .is_some_and(|s| !s.is_outside(&event)))
    }

    /// Up to `limit` readable text messages before `before`, in order (for paging).
    pub fn messages_before(
        &self,
        conv: &ConversationId,
        before: Option<OrderKey>,
        limit: usize,
    ) -> Result<Vec<MessageView>, SyncError> {
        self.items_before(conv, before, limit, false)
    }

    /// Like `messages_before`, with lines about the group itself between the messages
    /// (created, added, removed, left, promoted, renamed: `ConversationState::notice`).
    pub fn timeline_before(
        &self,
        conv: &ConversationId,
        before: Option<OrderKey>,
        limit: usize,
    ) -> Result<Vec<MessageView>, SyncError> {
        self.items_before(conv, before, limit, true)
    }

    fn items_before(
        &self,
        conv: &ConversationId,
        before: Option<OrderKey>,
        limit: usize,
        notices: bool,
    ) -> Result<Vec<MessageView>, SyncError> {
        let Some(state) = self.convs.get(conv) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut cursor = before;
        // Receipts are interleaved with texts; page through until enough items are found.
        loop {
            let page = self
                .store
                .events_before(conv, cursor, limit.clamp(64, 4096))?;
            let Some(first) = page.first() else { break };
            cursor = Some(first.order_key());
            // `sent`: for a message (not a notice), what its body says it answers and whom
            // it calls.
            let view = |e: &Event,
                        text: String,
                        notice: Option<crate::conversation::Notice>,
                        file: Option<MessageFile>,
                        sent: Option<(Option<EventId>, Vec<UserId>)>| {
                let actions = match sent {
                    Some((reply_to, mentions)) => self.actions_of(state, e, reply_to, mentions),
                    None => MessageActions::default(),
                };
                let (text, file) = match (&actions.newest_text, actions.deleted) {
                    (_, true) => (String::new(), None),
                    (Some(newest), false) => (newest.clone(), file),
                    (None, false) => (text, file),
                };
                MessageView {
                    event_id: e.id(),
                    author: e.header.author,
                    order: e.order_key(),
                    wall_ms: e.header.wall_ms,
                    text,
                    for_some_members: e.header.kind == EventKind::Text && state.for_some_members(e),
                    notice,
                    file,
                    actions,
                }
            };
            let mut texts: Vec<MessageView> = page
                .iter()
                .filter(|e| !self.hidden.contains(&e.id()))
                .filter_map(|e| match e.header.kind {
                    // Purged with no deletion of it: gone for its age (`sync::retention`),
                    // not shown at all.
                    EventKind::Text if e.is_purged() && state.actions.deletion_of(e).is_none() => {
                        None
                    }
                    EventKind::Text
                        if !state.is_outside(e)
                            && (e.is_purged() || state.actions.deletion_of(e).is_some()) =>
                    {
                        Some(view(e, String::new(), None, None, Some((None, Vec::new()))))
                    }
                    EventKind::Text if !state.is_outside(e) => match state.decrypt(e) {
                        Some(Content::Text {
                            text,
                            reply_to,
                            mentions,
                        }) => Some(view(e, text, None, None, Some((reply_to, mentions)))),
                        Some(content @ Content::Attachment(_)) => {
                            let file = MessageFile::of(e, &content)?;
                            let caption = file.attachment.caption.clone();
                            Some(view(e, caption, None, Some(file), Some((None, Vec::new()))))
                        }
                        _ => None,
                    },
                    EventKind::Membership if notices => state
                        .notice(e)
                        .map(|n| view(e, String::new(), Some(n), None, None)),
                    _ => None,
                })
                .collect();
            texts.append(&mut out);
            out = texts;
            if out.len() >= limit {
                out.drain(..out.len() - limit);
                break;
            }
        }
        Ok(out)
    }

    /// Decrypt any stored event this node has the key for (used by tests and tools).
    pub fn decrypt(&self, event: &Event) -> Option<Content> {
        self.convs.get(&event.header.conversation)?.decrypt(event)
    }

    /// Who has received and read one of this node's own messages.
    pub fn delivery_state(
        &self,
        conv: &ConversationId,
        event_id: &EventId,
    ) -> Result<DeliveryState, SyncError> {
        let state = self
            .convs
            .get(conv)
            .ok_or(SyncError::UnknownConversation(*conv))?;
        let event = self
            .store
            .event(event_id)?
            .ok_or(SyncError::UnknownConversation(*conv))?;
        let me = self.me.user_id();
        let mut out = DeliveryState::default();
        // Read receipts off: whatever a reader still says (an older node, a liar) is not shown.
        let reads_shown = self.policy().read_receipts;
        for m in state.members() {
            let user = m.profile.user_id;
            if user == me {
                continue;
            }
            let read = reads_shown
                && state
                    .read
                    .get(&user)
                    .is_some_and(|k| *k >= event.order_key());
            let delivered = read
                || state
                    .delivered
                    .get(&user)
                    .and_then(|vv| vv.get(&event.header.author))
                    .is_some_and(|s| *s >= event.header.seq);
            if read {
                out.read_by.push(user);
            }
            if delivered {
                out.delivered_to.push(user);
            } else {
                out.waiting_for.push(user);
            }
        }
        Ok(out)
    }

    /// Own events not yet known to be held by any other node.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Partners of 1:1 chats with own events in the outbox: each is the only other holder
    /// of those events, so the node links to it whatever the link plan chose (the plan is
    /// made when a membership changes, and a text in a chat that was idle then would
    /// otherwise wait for the next change).
    pub fn waiting_direct_partners(&self) -> BTreeSet<UserId> {
        let me = self.me.user_id();
        let convs: BTreeSet<ConversationId> = self.outbox.values().map(|(c, _)| *c).collect();
        convs
            .iter()
            .filter_map(|c| self.convs.get(c))
            .filter(|s| s.kind() == Some(ConversationKind::Direct))
            .flat_map(|s| s.members().map(|m| m.profile.user_id))
            .filter(|u| *u != me)
            .collect()
    }

    /// Readable texts from others after the read marker. Pages back from the newest event
    /// and stops at the marker, so a long, read conversation costs one page, not a scan.
    pub fn unread_count(&self, conv: &ConversationId) -> Result<usize, SyncError> {
        let Some(state) = self.convs.get(conv) else {
            return Ok(0);
        };
        let marker = self.store.read_marker(conv)?;
        let me = self.me.user_id();
        let mut count = 0;
        let mut cursor = None;
        loop {
            let page = self.store.events_before(conv, cursor, 256)?;
            let Some(first) = page.first() else {
                return Ok(count);
            };
            cursor = Some(first.order_key());
            for e in page.iter().rev() {
                if marker.is_some_and(|k| e.order_key() <= k) {
                    return Ok(count);
                }
                if e.header.kind == EventKind::Text
                    && e.header.author != me
                    && !state.is_outside(e)
                    && !self.hidden.contains(&e.id())
                    && matches!(
                        state.decrypt(e),
                        Some(Content::Text { .. } | Content::Attachment(_))
                    )
                {
                    count += 1;
                }
            }
        }
    }
}
