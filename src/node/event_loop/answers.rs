//! What the node tells and answers: its events from the engine's notifications, and the
//! views and small operations the handle's jobs ask for (names, status, peers,
//! conversations, messages, search, read markers, the own name and key).

use super::*;

impl Core {
    pub(in crate::node) fn node_event(&mut self, n: Notification) -> Option<NodeEvent> {
        Some(match n {
            Notification::FileCarried {
                conversation,
                blob,
                author,
                wall_ms,
            } => {
                // A relay keeps recent files up to its automatic size.
                let now = now_ms();
                let fetch = self.fetch_by_itself(wall_ms, blob.ct_len, now);
                if let Err(e) = self.want_file(conversation, blob, fetch, Some(author), now) {
                    tracing::info!(error = %e, "a relayed file is not kept");
                }
                return None;
            }
            // The engine settles both on its own; the user is told once per author.
            Notification::Equivocation {
                conversation,
                author,
            } => self.misbehaviour("two_versions", &conversation, &author)?,
            Notification::WrongKey {
                conversation,
                author,
            } => self.misbehaviour("wrong_key", &conversation, &author)?,
            Notification::Message {
                conversation,
                event_id,
                author,
                wall_ms,
                text,
                for_some_members,
                file,
                mentions,
                reply_to,
                ..
            } => {
                if author == self.me() {
                    return None;
                }
                let me = self.me();
                if let Some(f) = &file {
                    let now = now_ms();
                    let fetch = self.fetch_by_itself(wall_ms, f.attachment.size, now);
                    if let Err(e) = self.want_file(conversation, f.blob, fetch, Some(author), now) {
                        tracing::info!(error = %e, "a file is not fetched by itself");
                    }
                }
                let file = file.as_ref().map(|f| self.file_item(f));
                NodeEvent::Message {
                    conversation: conversation.to_string(),
                    conversation_name: self
                        .engine
                        .conversation(&conversation)
                        .map(|c| self.conversation_name(&c))
                        .unwrap_or_default(),
                    event_id: event_id.to_string(),
                    author: author.to_string(),
                    author_name: self.name_of(&author),
                    wall_ms,
                    text,
                    for_some_members,
                    file,
                    mentions_me: mentions.contains(&me),
                    reply_to: reply_to.map(|id| id.to_string()),
                }
            }
            Notification::MessageChanged {
                conversation,
                target,
            } => NodeEvent::MessageChanged {
                conversation: conversation.to_string(),
                event_id: target.to_string(),
            },
            Notification::Mentioned {
                conversation,
                target,
                author,
                wall_ms,
                text,
            } => NodeEvent::Mentioned {
                conversation: conversation.to_string(),
                conversation_name: self
                    .engine
                    .conversation(&conversation)
                    .map(|c| self.conversation_name(&c))
                    .unwrap_or_default(),
                event_id: target.to_string(),
                author: author.to_string(),
                author_name: self.name_of(&author),
                wall_ms,
                text,
            },
            Notification::FilePurged { blob } => {
                self.purge_file(&blob);
                return None;
            }
            Notification::Saved {
                conversation,
                event_id,
            } => NodeEvent::Saved {
                conversation: conversation.to_string(),
                event_id: event_id.to_string(),
            },
            Notification::ConversationChanged { conversation } => {
                let summary = self.engine.conversation(&conversation)?;
                if self.known_conversations.insert(conversation) {
                    NodeEvent::ConversationCreated {
                        conversation: conversation.to_string(),
                        kind: kind_name(summary.kind).to_string(),
                        name: self.conversation_name(&summary),
                    }
                } else {
                    NodeEvent::ConversationChanged {
                        conversation: conversation.to_string(),
                        name: self.conversation_name(&summary),
                        members: summary
                            .members
                            .iter()
                            .map(|(p, _)| p.user_id.to_string())
                            .collect(),
                        is_member: summary.is_member,
                    }
                }
            }
            Notification::ReceiptsChanged { conversation } => NodeEvent::Receipt {
                conversation: conversation.to_string(),
            },
            Notification::Retracted {
                conversation,
                event_id,
            } => NodeEvent::Retracted {
                conversation: conversation.to_string(),
                event_id: event_id.to_string(),
            },
            Notification::PeerProfile { profile } => NodeEvent::Profile {
                user_id: profile.user_id.to_string(),
                name: self.shown_name(&profile.user_id, Some(&profile.display_name)),
            },
            Notification::AdminStatement { kind } => {
                self.apply_revocations(now_ms(), true);
                self.apply_network_key(now_ms());
                self.plan = None;
                self.last_relink_ms = 0;
                NodeEvent::AdminStatement {
                    kind: crate::node::statement_kind_name(kind).into(),
                }
            }
        })
    }

    /// The admin statements held, for `flurfunk admin statements` and the tools that make
    /// the next one.
    pub(in crate::node) fn statement_views(&self) -> Vec<crate::node::StatementView> {
        self.engine
            .admin_statements()
            .into_iter()
            .map(|s| {
                use crate::wire::StatementKind;
                let revoked = match s.kind {
                    StatementKind::Revocations => crate::wire::Revocations::decode(&s.body)
                        .map(|l| l.revoked)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(user, since_ms)| crate::node::RevokedView {
                            user_id: user.to_string(),
                            name: self.name_of(&user),
                            since_ms,
                        })
                        .collect(),
                    StatementKind::Policy
                    | StatementKind::Directory
                    | StatementKind::NetworkKey
                    | StatementKind::OrgGroups
                    | StatementKind::GroupRetention => Vec::new(),
                };
                let rotation = (s.kind == StatementKind::NetworkKey)
                    .then(|| crate::wire::NetworkKeyRotation::decode(&s.body).ok())
                    .flatten()
                    .map(|r| crate::node::RotationView {
                        switch_at_ms: r.switch_at_ms,
                        overlap_until_ms: r.overlap_until_ms,
                        recipients: r.wraps.len(),
                    });
                let policy = (s.kind == StatementKind::Policy)
                    .then(|| crate::wire::Policy::decode(&s.body).ok())
                    .flatten();
                let directory = (s.kind == StatementKind::Directory)
                    .then(|| crate::wire::Directory::decode(&s.body).ok())
                    .flatten()
                    .map(|d| d.entries)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(user, entry)| crate::node::DirectoryView {
                        user_id: user.to_string(),
                        name: entry.name,
                        department: entry.department,
                    })
                    .collect();
                let org_groups = (s.kind == StatementKind::OrgGroups)
                    .then(|| crate::wire::OrgGroups::decode(&s.body).ok())
                    .flatten()
                    .map(|org| {
                        org.groups
                            .iter()
                            .map(|g| {
                                let summary = self.engine.conversation(&g.conversation);
                                crate::node::OrgGroupView {
                                    conversation: g.conversation.to_string(),
                                    department: g.department.clone(),
                                    name: summary
                                        .as_ref()
                                        .map(|c| c.name.clone())
                                        .unwrap_or_default(),
                                    members: summary.map_or(0, |c| c.members.len()),
                                    steward: org.steward.to_string(),
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let group_retention = (s.kind == StatementKind::GroupRetention)
                    .then(|| crate::wire::GroupRetention::decode(&s.body).ok())
                    .flatten()
                    .map(|r| {
                        r.groups
                            .iter()
                            .map(|(conv, g)| crate::node::GroupRetentionView {
                                conversation: conv.to_string(),
                                name: self.engine.group_name(conv).unwrap_or_default(),
                                keep_messages_s: g.keep_s,
                                dropped_before_ms: g.dropped_before_ms,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                crate::node::StatementView {
                    kind: crate::node::statement_kind_name(s.kind).into(),
                    serial: s.serial,
                    issued_ms: s.issued_ms,
                    revoked,
                    policy,
                    directory,
                    rotation,
                    org_groups,
                    group_retention,
                    encoded: hex::encode(s.encode()),
                }
            })
            .collect()
    }

    // ----- views and operations (called from handle jobs) -----------------------------

    /// `user`'s name as shown: the official one from the network's directory with its
    /// mark, else the self-chosen one (marks a peer put in dropped), marked as doubtful
    /// when it looks like someone else's official name.
    pub(in crate::node) fn name_of(&self, user: &UserId) -> String {
        let chosen = if *user == self.me() {
            Some(self.engine.identity().display_name())
        } else {
            self.engine
                .known_profile(user)
                .map(|p| p.display_name.as_str())
        };
        self.shown_name(user, chosen)
    }

    /// [`Self::name_of`] for a name already at hand (a profile of a conversation's member).
    pub(in crate::node) fn shown_name(&self, user: &UserId, chosen: Option<&str>) -> String {
        use crate::identity::{DOUBTFUL_MARK, OFFICIAL_MARK};
        if let Some(entry) = self.engine.directory_entry(user) {
            let official = crate::identity::clean_peer_name(&entry.name);
            // A colleague who left keeps the name, not the mark.
            return if self.engine.is_revoked(user) {
                official
            } else {
                format!("{official} {OFFICIAL_MARK}")
            };
        }
        let Some(chosen) = chosen else {
            return user.short();
        };
        let clean = crate::identity::clean_peer_name(chosen);
        let clean = if clean.is_empty() {
            user.short()
        } else {
            clean
        };
        if self.engine.looks_official(user, &clean) {
            format!("{clean} {DOUBTFUL_MARK}")
        } else {
            clean
        }
    }

    /// A conversation's name as shown: a 1:1 chat is named as its partner is
    /// ([`Self::shown_name`], with the directory's marks); a group's name, chosen by a
    /// member, without marks, control or invisible characters.
    pub(in crate::node) fn conversation_name(
        &self,
        summary: &crate::sync::ConversationSummary,
    ) -> String {
        if summary.kind == crate::conversation::ConversationKind::Direct
            && let Some((partner, _)) = summary.members.iter().find(|(p, _)| p.user_id != self.me())
        {
            return self.shown_name(&partner.user_id, Some(&partner.display_name));
        }
        let clean = crate::identity::clean_peer_name(&summary.name);
        if clean.is_empty() && !summary.name.is_empty() {
            "?".into()
        } else {
            clean
        }
    }

    /// `user`'s department from the network's directory.
    pub(in crate::node) fn department_of(&self, user: &UserId) -> Option<String> {
        self.engine
            .directory_entry(user)
            .map(|e| crate::identity::clean_peer_name(&e.department))
            .filter(|d| !d.is_empty())
    }

    pub(in crate::node) fn profile_of(&self, user: &UserId) -> Result<Profile, NodeError> {
        if let Some(p) = self.engine.known_profile(user) {
            return Ok(p.clone());
        }
        // Members of shared conversations carry their profile too.
        for conv in self.engine.conversation_ids() {
            if let Some(summary) = self.engine.conversation(&conv)
                && let Some((p, _)) = summary
                    .members
                    .into_iter()
                    .find(|(p, _)| p.user_id == *user)
            {
                return Ok(p);
            }
        }
        Err(NodeError::UnknownUser(user.to_string()))
    }

    pub(in crate::node) fn status(&self) -> NodeStatus {
        /// Dials in a row refused at the key check before the status says the key is out
        /// of date (one refusal can be a listener that crashed).
        const KEY_REFUSALS_OUTDATED: u32 = 2;
        NodeStatus {
            user_id: self.me().to_string(),
            name: self.engine.identity().display_name().to_string(),
            network: self.network.fingerprint(),
            network_key_id: hex::encode(crate::wire::wire_key_id(&self.network.wire_key())),
            demo_network: self.network.is_demo(),
            network_admin: self.network.admin().map(|a| crate::admin::fingerprint(&a)),
            // The network's statement over the machine's settings, when either sets any.
            policy: (self
                .engine
                .admin_statements()
                .iter()
                .any(|s| s.kind == crate::wire::StatementKind::Policy)
                || self.engine.policy() != crate::wire::Policy::default())
            .then(|| self.engine.policy()),
            network_policy: self
                .engine
                .admin_statements()
                .iter()
                .find(|s| s.kind == crate::wire::StatementKind::Policy)
                .and_then(|s| crate::wire::Policy::decode(&s.body).ok()),
            key_rotation: self
                .rotation
                .as_ref()
                .filter(|r| now_ms() < r.overlap_until_ms)
                .map(|r| crate::node::KeyRotationStatus {
                    next_network: r.fingerprint(),
                    switch_at_ms: r.switch_at_ms,
                    overlap_until_ms: r.overlap_until_ms,
                }),
            network_key_refused: self.ring.refused_in_a_row() >= KEY_REFUSALS_OUTDATED
                && self.swarm.connected_peers().next().is_none(),
            role: match self.config.role {
                Role::Member => "member".into(),
                Role::Relay => "relay".into(),
            },
            listen: self.listen_addrs.iter().map(|a| a.to_string()).collect(),
            peers_online: self.engine.connected_peers().len(),
            peers_on_older_builds: self.engine.peers_on_older_builds(),
            outbox: self.engine.outbox_len(),
            load: self.load_stats(),
        }
    }

    pub(in crate::node) fn load_stats(&self) -> LoadStats {
        let s = self.engine.stats();
        LoadStats {
            connections: self.swarm.connected_peers().count(),
            wanted_links: self.wanted.len(),
            queued_frames: self.queued_frames(),
            max_queue: self.net_stats.max_queue,
            frames_dropped: self.net_stats.frames_dropped + s.frames_dropped,
            requests_failed: self.net_stats.requests_failed,
            resyncs: self.net_stats.resyncs,
            trimmed_connections: self.net_stats.trimmed,
            streams_moved: self.net_stats.streams_moved,
            pending_events: s.pending_events,
            pending_dropped: s.pending_dropped,
            events_stored: s.events_stored,
            duplicate_events: s.duplicate_events,
            invalid_events: s.invalid_events,
            events_pushed: s.events_pushed,
            haves_sent: s.haves_sent,
            wants_sent: s.wants_sent,
            digests_sent: s.digests_sent,
            summaries_sent: s.summaries_sent,
            receipts_forwarded: s.receipts_forwarded,
            receipts_dropped: s.receipts_dropped,
            file_bytes_served: self.files.as_ref().map_or(0, |f| {
                f.served_bytes.load(std::sync::atomic::Ordering::Relaxed)
            }),
            file_bytes_fetched: self.files.as_ref().map_or(0, |f| f.fetched_bytes),
            file_answers_refused: self.files.as_ref().map_or(0, |f| f.refused_answers),
        }
    }

    pub(in crate::node) fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen_addrs.clone()
    }

    pub(in crate::node) fn peer_views(&self) -> Vec<PeerView> {
        use crate::wire::Presence;
        // What the organisation lets the app show of colleagues' presence.
        let presence = self.engine.policy().presence;
        let mut out: Vec<PeerView> = self
            .engine
            .known_profiles()
            .into_iter()
            .map(|p| {
                let peer = p.user_id.to_peer_id();
                let entry = peer.and_then(|peer| self.book.peers.get(&peer));
                PeerView {
                    user_id: p.user_id.to_string(),
                    name: self.shown_name(&p.user_id, Some(&p.display_name)),
                    department: self.department_of(&p.user_id),
                    official: self.engine.directory_entry(&p.user_id).is_some(),
                    online: presence != Presence::Hidden
                        && entry.is_some_and(|e| e.connections > 0),
                    last_seen_ms: entry
                        .and_then(|e| e.last_seen_ms)
                        .filter(|_| presence == Presence::Full),
                    addresses: entry
                        .map(|e| e.addrs.iter().map(|a| a.to_string()).collect())
                        .unwrap_or_default(),
                }
            })
            .collect();
        out.sort_by(|a, b| b.online.cmp(&a.online).then(a.name.cmp(&b.name)));
        out
    }

    pub(in crate::node) fn member_views(&self, members: &[(Profile, bool)]) -> Vec<MemberView> {
        members
            .iter()
            .map(|(p, admin)| MemberView {
                user_id: p.user_id.to_string(),
                name: self.shown_name(&p.user_id, Some(&p.display_name)),
                department: self.department_of(&p.user_id),
                admin: *admin,
                left_organisation: self.engine.is_revoked(&p.user_id),
            })
            .collect()
    }

    pub(in crate::node) fn conversation_view(
        &mut self,
        conv: &ConversationId,
    ) -> Result<Option<ConversationView>, NodeError> {
        let Some(summary) = self.engine.conversation(conv) else {
            return Ok(None);
        };
        let last_message = self.message_items(conv, None, 1)?.pop();
        Ok(Some(ConversationView {
            conversation: conv.to_string(),
            kind: kind_name(summary.kind).to_string(),
            name: self.conversation_name(&summary),
            members: self.member_views(&summary.members),
            is_member: summary.is_member,
            unread: self.engine.unread_count(conv)?,
            last_activity_ms: summary.last_activity_ms,
            last_message,
            organisation: self.engine.org_group(conv).map(|g| g.department.clone()),
            keep_messages_s: self.engine.keep_messages_s(conv),
            group_keep_messages_s: self.engine.group_keep_messages_s(conv),
        }))
    }

    pub(in crate::node) fn conversation_views(
        &mut self,
    ) -> Result<Vec<ConversationView>, NodeError> {
        let mut out = Vec::new();
        for conv in self.engine.conversation_ids() {
            if let Some(view) = self.conversation_view(&conv)? {
                out.push(view);
            }
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.last_activity_ms));
        Ok(out)
    }

    pub(in crate::node) fn message_items(
        &mut self,
        conv: &ConversationId,
        before: Option<OrderKey>,
        limit: usize,
    ) -> Result<Vec<MessageItem>, NodeError> {
        let me = self.me();
        let messages = self.engine.timeline_before(conv, before, limit)?;
        messages
            .into_iter()
            .map(|m| {
                if let Some(notice) = &m.notice {
                    return Ok(self.notice_item(conv, &m, notice));
                }
                let own = m.author == me;
                let state = if own {
                    self.engine.delivery_state(conv, &m.event_id)?
                } else {
                    sync::DeliveryState::default()
                };
                let ids = |v: Vec<UserId>| v.iter().map(|u| u.to_string()).collect();
                Ok(MessageItem {
                    conversation: conv.to_string(),
                    event_id: m.event_id.to_string(),
                    order: hex::encode(m.order.encode()),
                    author: m.author.to_string(),
                    author_name: self.name_of(&m.author),
                    own,
                    wall_ms: m.wall_ms,
                    text: m.text,
                    delivered_to: ids(state.delivered_to),
                    read_by: ids(state.read_by),
                    waiting_for: ids(state.waiting_for),
                    for_some_members: m.for_some_members,
                    notice: None,
                    subject: None,
                    subject_name: None,
                    file: m.file.as_ref().map(|f| self.file_item(f)),
                    reply_to: m.actions.reply_to.as_ref().map(|q| QuoteItem {
                        event_id: q.event_id.to_string(),
                        author: q.author.map(|a| a.to_string()).unwrap_or_default(),
                        author_name: q.author.map(|a| self.name_of(&a)).unwrap_or_default(),
                        text: q.snippet.clone(),
                        deleted: q.deleted,
                    }),
                    edited: m.actions.edited(),
                    deleted: m.actions.deleted,
                    reactions: m
                        .actions
                        .reactions
                        .iter()
                        .map(|(emoji, users)| ReactionItem {
                            emoji: emoji.clone(),
                            users: users.iter().map(|u| u.to_string()).collect(),
                            names: users.iter().map(|u| self.name_of(u)).collect(),
                        })
                        .collect(),
                    mentions_me: m.actions.mentions.contains(&me),
                    mentions: ids(m.actions.mentions.clone()),
                })
            })
            .collect()
    }

    pub(in crate::node) fn search_items(
        &mut self,
        query: &str,
        only: Option<ConversationId>,
        limit: usize,
    ) -> Result<Vec<SearchItem>, NodeError> {
        let hits = self.engine.search(query, only, limit)?;
        Ok(hits
            .into_iter()
            .map(|h| SearchItem {
                conversation: h.conversation.to_string(),
                conversation_name: self
                    .engine
                    .conversation(&h.conversation)
                    .map(|c| self.conversation_name(&c))
                    .unwrap_or_default(),
                event_id: h.event_id.to_string(),
                author: h.author.to_string(),
                author_name: self.name_of(&h.author),
                wall_ms: h.wall_ms,
                text: h.text,
            })
            .collect())
    }

    pub(in crate::node) fn notice_item(
        &self,
        conv: &ConversationId,
        m: &sync::MessageView,
        notice: &crate::conversation::Notice,
    ) -> MessageItem {
        use crate::conversation::Notice;
        let (kind, subject, text) = match notice {
            Notice::Created => ("created", None, String::new()),
            Notice::Added(u) => ("added", Some(*u), String::new()),
            Notice::Removed(u) => ("removed", Some(*u), String::new()),
            Notice::Left => ("left", None, String::new()),
            Notice::Promoted(u) => ("promoted", Some(*u), String::new()),
            Notice::Renamed(name) => ("renamed", None, name.clone()),
            Notice::KeyChanged => ("key_changed", None, String::new()),
        };
        MessageItem {
            conversation: conv.to_string(),
            event_id: m.event_id.to_string(),
            order: hex::encode(m.order.encode()),
            author: m.author.to_string(),
            author_name: self.name_of(&m.author),
            own: false,
            wall_ms: m.wall_ms,
            text,
            delivered_to: Vec::new(),
            read_by: Vec::new(),
            waiting_for: Vec::new(),
            for_some_members: false,
            notice: Some(kind.into()),
            subject: subject.map(|u| u.to_string()),
            subject_name: subject.map(|u| self.name_of(&u)),
            file: None,
            ..Default::default()
        }
    }

    pub(in crate::node) fn file_item(&mut self, file: &sync::MessageFile) -> crate::node::FileItem {
        let a = &file.attachment;
        crate::node::FileItem {
            name: a.name.clone(),
            mime: a.mime.clone(),
            size: a.size,
            blob: file.blob.id().to_hex(),
            here: self.file_here(&file.blob),
            fetching: self.fetching(&file.blob),
            width: a.image.as_ref().map(|i| i.width),
            height: a.image.as_ref().map(|i| i.height),
            thumbnail: a
                .image
                .as_ref()
                .filter(|i| !i.thumbnail.is_empty())
                .map(|i| i.thumbnail.as_slice().into()),
        }
    }

    pub(in crate::node) fn mark_all_read(
        &mut self,
        now: u64,
        conv: ConversationId,
    ) -> Result<(), NodeError> {
        if let Some(last) = self.engine.messages_before(&conv, None, 1)?.pop() {
            self.engine.mark_read(now, conv, last.order)?;
        }
        Ok(())
    }

    pub(in crate::node) fn set_display_name(
        &mut self,
        now: u64,
        name: &str,
    ) -> Result<(), NodeError> {
        self.engine.set_display_name(now, name)?;
        self.save_identity()
    }

    /// Replace this node's X25519 key with a fresh one from the operating system (a key
    /// update, `sync::key_update`), the key file saved first: if that fails, the key stays
    /// as it was. The updates and rekeys go out with the next commits.
    pub(in crate::node) fn update_key(&mut self, now: u64) -> Result<(), NodeError> {
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, secret.as_mut());
        let path = self.config.identity_path.clone();
        self.engine.update_key(now, secret, |me| match &path {
            Some(path) => me.save_replace(path),
            None => Ok(()),
        })?;
        self.engine.commit(now)?;
        Ok(())
    }

    /// Write the identity (name, keys) to the key file, if this node has one.
    pub(in crate::node) fn save_identity(&self) -> Result<(), NodeError> {
        if let Some(path) = &self.config.identity_path {
            self.engine
                .identity()
                .save_replace(path)
                .map_err(|e| NodeError::Other(e.to_string()))?;
        }
        Ok(())
    }
}
