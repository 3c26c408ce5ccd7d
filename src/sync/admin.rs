//! The network's admin key at the engine (docs/PROTOCOL.md, "Administration"): relay
//! certificates (in a managed network a peer that claims the relay role counts as one
//! only while it holds a certificate of the admin key; until then it is treated like a
//! member, `Engine::is_shareable`) and admin statements (newest per kind wins, spread by
//! serial: revocations, policy, directory).

use super::*;
use crate::wire::{
    AdminStatement, CertificateError, Directory, DirectoryEntry, KNOWN_STATEMENT_KINDS,
    MAX_STATEMENT_KINDS, Policy, RelayCertificate, Revocations, StatementKind,
};
use std::collections::HashMap;

impl<S: Store> Engine<S> {
    /// Our certificate goes after each hello of ours (when this node is a certified relay).
    pub(super) fn send_certificate(&mut self, peer: UserId) {
        if self.config.role != Role::Relay {
            return;
        }
        if let Some(certificate) = self.config.relay_certificate.clone() {
            self.send(peer, SyncMessage::RelayCertificate { certificate });
        }
    }

    /// A peer that said hello as a relay shows its certificate: checked once per distinct
    /// certificate; accepted, the peer is a relay from now on, and gets a digest so that
    /// the sync starts. A forged one, or one of another node, is an offence (the node
    /// penalises the sender); one out of its time is refused without blame (an admin's
    /// clock or a renewal), and checked again if shown again.
    pub(super) fn handle_relay_certificate(
        &mut self,
        now_ms: u64,
        peer: UserId,
        certificate: RelayCertificate,
    ) -> Result<(), SyncError> {
        let Some(admin) = self.config.admin_key else {
            // Unmanaged: relays are taken as they claim; nothing to check.
            return Ok(());
        };
        let Some(p) = self.peers.get_mut(&peer) else {
            return Ok(());
        };
        if p.role != Some(Role::Relay) || p.certificate_checked == Some(certificate.signature) {
            return Ok(());
        }
        let result = certificate.check(&admin, &peer, now_ms);
        if matches!(
            result,
            Ok(()) | Err(CertificateError::BadSignature | CertificateError::OtherRelay(_))
        ) {
            p.certificate_checked = Some(certificate.signature);
        }
        match result {
            Ok(()) => {
                let newly = p.certified_until.is_none();
                p.certified_until = Some(certificate.expires_ms);
                if newly {
                    self.send_digest(peer);
                }
                Ok(())
            }
            Err(e) => {
                p.certified_until = None;
                self.stats.certificates_refused += 1;
                tracing::warn!(peer = %peer.short(), error = %e, "relay certificate refused");
                match e {
                    CertificateError::BadSignature | CertificateError::OtherRelay(_) => {
                        self.stats.malformed_frames += 1;
                        Err(SyncError::Wire(crate::wire::WireError::Invalid {
                            what: "relay certificate",
                        }))
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    /// Certificates that ran out: those relays are members from now on.
    pub(super) fn expire_certificates(&mut self, now_ms: u64) {
        for p in self.peers.values_mut() {
            if p.certified_until.is_some_and(|t| now_ms >= t) {
                p.certified_until = None;
            }
        }
    }

    /// Whether `peer` is connected as a relay this node shares every conversation with:
    /// in a managed network one with a certificate this node accepted; in an unmanaged
    /// network (no admin key, nothing to check a claim against) any peer that says it is
    /// a relay, as `is_shareable` does for events. Such a relay is asked for files and
    /// served them (ciphertext: it holds no conversation key).
    pub fn is_carrying_relay(&self, peer: &UserId) -> bool {
        !self.is_revoked(peer)
            && self.peers.get(peer).is_some_and(|p| {
                p.role == Some(Role::Relay)
                    && (self.config.admin_key.is_none() || p.certified_until.is_some())
            })
    }

    /// The carrying relays connected now (`is_carrying_relay`).
    pub fn carrying_relays(&self) -> Vec<UserId> {
        self.peers
            .keys()
            .filter(|p| self.is_carrying_relay(p))
            .copied()
            .collect()
    }
}

/// The non-revoked admins of a group remove a revoked member one after the other, this
/// long apart in ascending user-id order: the first admin online does it, and the others
/// find it done (docs/PROTOCOL.md, "Admin statements").
pub const REVOCATION_REMOVAL_STEP_MS: u64 = 60_000;
/// An admin removes nobody until this long after it learned of the revocation list (or
/// started): a round of catching up with the group first, which may show the removal done.
pub const REVOCATION_CATCH_UP_MS: u64 = 10_000;
/// A statement is sent to one peer at most this often per kind (a peer that claims an
/// older one again, e.g. because the last copy was lost, gets it again after this).
pub const ADMIN_RESEND_MS: u64 = 10_000;

impl<S: Store> Engine<S> {
    /// The admin statements kept in the store, applied at start-up. One that no longer
    /// checks (another network's key file was put in place) is ignored.
    pub(super) fn load_admin_statements(&mut self, now_ms: u64) -> Result<(), SyncError> {
        let Some(admin) = self.config.admin_key else {
            return Ok(());
        };
        for statement in self.store.admin_statements()? {
            if statement.check(&admin).is_ok() {
                self.admin.statements.insert(statement.kind, statement);
            }
        }
        self.apply_statements(now_ms);
        Ok(())
    }

    /// Derived state from the statements held: who is revoked (and, when that changed,
    /// a pass over the groups to remove them), the policy, the directory.
    fn apply_statements(&mut self, now_ms: u64) {
        let revoked = self
            .admin
            .statements
            .get(&StatementKind::Revocations)
            .and_then(|s| Revocations::decode(&s.body).ok())
            .map(|list| list.revoked)
            .unwrap_or_default();
        let directory = self
            .admin
            .statements
            .get(&StatementKind::Directory)
            .and_then(|s| Directory::decode(&s.body).ok())
            .map(|d| d.entries)
            .unwrap_or_default();
        let org = self
            .admin
            .statements
            .get(&StatementKind::OrgGroups)
            .and_then(|s| crate::wire::OrgGroups::decode(&s.body).ok());
        let mut org_changed = org != self.admin.org.groups;
        self.admin.org.groups = org;
        if directory != self.admin.directory {
            org_changed = true;
            self.admin.official_keys = directory
                .iter()
                .map(|(user, entry)| (crate::identity::name_key(&entry.name), *user))
                .collect();
            self.admin.directory = directory;
        }
        let periods = (
            self.admin.policy.keep_messages_s,
            std::mem::take(&mut self.admin.group_retention),
        );
        self.admin.policy = self
            .admin
            .statements
            .get(&StatementKind::Policy)
            .and_then(|s| Policy::decode(&s.body).ok())
            .unwrap_or_default();
        self.admin.group_retention = self
            .admin
            .statements
            .get(&StatementKind::GroupRetention)
            .and_then(|s| crate::wire::GroupRetention::decode(&s.body).ok())
            .unwrap_or_default();
        if periods
            != (
                self.admin.policy.keep_messages_s,
                self.admin.group_retention.clone(),
            )
        {
            // A period set, shortened or taken away: a new pass at the next tick, over
            // the conversations that have one now (not an hour later).
            self.admin.retention = Default::default();
        }
        if revoked != self.admin.revoked || self.admin.learned_ms == 0 {
            self.admin.revoked = revoked;
            self.admin.learned_ms = now_ms;
            self.admin.removals_due_ms = (!self.admin.revoked.is_empty()).then_some(now_ms);
            org_changed = true;
        }
        if org_changed {
            self.org_groups_changed(now_ms);
        }
    }

    /// Connected colleagues whose build does not know every admin statement this one
    /// does (by the highest kind they announced): they keep messages a group's period
    /// would delete, and do not know the newest policy switches. The admin tools warn.
    pub fn peers_on_older_builds(&self) -> usize {
        self.peers
            .values()
            .filter(|p| {
                p.role.is_some()
                    && p.admin_known_kinds > 0
                    && p.admin_known_kinds < KNOWN_STATEMENT_KINDS
            })
            .count()
    }

    /// Our serials go after each hello of ours, in a managed network.
    pub(super) fn send_admin_serials(&mut self, peer: UserId) {
        if self.config.admin_key.is_none() {
            return;
        }
        let serials = self
            .admin
            .statements
            .values()
            .map(|s| {
                let (serial, hash) = s.rank();
                (s.kind.code(), serial, hash.0)
            })
            .collect();
        self.send(
            peer,
            SyncMessage::AdminSerials {
                known_kinds: KNOWN_STATEMENT_KINDS,
                serials,
            },
        );
    }

    /// A peer's serials: whatever we hold that beats them goes to it, and again (at most
    /// every `ADMIN_RESEND_MS` per kind) while it still claims an older one, since a
    /// statement sent may have been lost on the way.
    pub(super) fn handle_admin_serials(
        &mut self,
        now_ms: u64,
        peer: UserId,
        known_kinds: u8,
        serials: Vec<(u8, u64, [u8; 8])>,
    ) {
        if self.config.admin_key.is_none() {
            return;
        }
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.admin_known_kinds = known_kinds;
        // What it says it holds now (a statement sent may have been lost on the way).
        p.admin_serials.clear();
        for (code, serial, hash) in serials.into_iter().take(MAX_STATEMENT_KINDS) {
            p.admin_serials
                .insert(code, (serial, std::cmp::Reverse(hash)));
        }
        let mut out = Vec::new();
        for s in self.admin.statements.values() {
            let code = s.kind.code();
            if code > known_kinds {
                continue;
            }
            let rank = s.rank();
            // Sent again at most every `ADMIN_RESEND_MS` per kind, however often a peer
            // repeats an old list.
            let recently = p
                .admin_sent_ms
                .get(&code)
                .is_some_and(|t| now_ms.saturating_sub(*t) < ADMIN_RESEND_MS);
            if p.admin_serials.get(&code).is_none_or(|known| *known < rank) && !recently {
                p.admin_serials.insert(code, rank);
                p.admin_sent_ms.insert(code, now_ms);
                out.push(s.clone());
            }
        }
        for statement in out {
            self.send(peer, SyncMessage::AdminStatement { statement });
        }
    }

    /// A statement from a peer: a newer one is checked, kept and passed on; an older or
    /// equal one costs a comparison; a forged or malformed one is an offence.
    pub(super) fn handle_admin_statement(
        &mut self,
        now_ms: u64,
        peer: UserId,
        statement: AdminStatement,
    ) -> Result<(), SyncError> {
        let Some(admin) = self.config.admin_key else {
            return Ok(());
        };
        let code = statement.kind.code();
        if !self.is_newer_statement(&statement) {
            // The peer is behind (or equal): it gets ours, at most every
            // `ADMIN_RESEND_MS` per kind (an unsigned old statement costs the sender a
            // frame; it must not buy a large answer each time).
            if let Some(ours) = self.admin.statements.get(&statement.kind)
                && ours.beats(&statement)
                && let Some(p) = self.peers.get_mut(&peer)
                && p.admin_serials.get(&code).is_none_or(|k| *k < ours.rank())
                && p.admin_sent_ms
                    .get(&code)
                    .is_none_or(|t| now_ms.saturating_sub(*t) >= ADMIN_RESEND_MS)
            {
                let ours = ours.clone();
                p.admin_serials.insert(code, ours.rank());
                p.admin_sent_ms.insert(code, now_ms);
                self.send(peer, SyncMessage::AdminStatement { statement: ours });
            }
            return Ok(());
        }
        if let Err(e) = statement.check(&admin) {
            self.stats.malformed_frames += 1;
            tracing::warn!(peer = %peer.short(), error = %e, "admin statement refused");
            return Err(SyncError::Wire(e));
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            // It holds this one: not sent back.
            let rank = statement.rank();
            let known = p.admin_serials.entry(code).or_insert(rank);
            *known = (*known).max(rank);
        }
        self.accept_statement(now_ms, statement)
    }

    /// A statement made here (`flurfunk admin revoke`): checked like one from a peer, and
    /// it must be newer than the one held.
    pub fn publish_admin_statement(
        &mut self,
        now_ms: u64,
        statement: AdminStatement,
    ) -> Result<(), SyncError> {
        let Some(admin) = self.config.admin_key else {
            return Err(SyncError::Unmanaged);
        };
        statement
            .check(&admin)
            .map_err(|_| SyncError::NotThisAdmin)?;
        if !self.is_newer_statement(&statement) {
            return Err(SyncError::StaleStatement);
        }
        self.accept_statement(now_ms, statement)
    }

    fn is_newer_statement(&self, statement: &AdminStatement) -> bool {
        self.admin
            .statements
            .get(&statement.kind)
            .is_none_or(|held| statement.beats(held))
    }

    fn accept_statement(
        &mut self,
        now_ms: u64,
        statement: AdminStatement,
    ) -> Result<(), SyncError> {
        // What revoked colleagues signed after their revocation goes in the same batch:
        // every node that holds the list drops the same chain suffixes, also of events it
        // took before it heard of the revocation, so all converge.
        let purged = match statement.kind {
            StatementKind::Revocations => Revocations::decode(&statement.body)
                .map(|l| self.signed_after_revocation(&l.revoked))
                .unwrap_or(Ok(Vec::new()))?,
            StatementKind::Policy
            | StatementKind::Directory
            | StatementKind::NetworkKey
            | StatementKind::OrgGroups
            | StatementKind::GroupRetention => Vec::new(),
        };
        let touched: BTreeSet<ConversationId> =
            purged.iter().map(|e| e.header.conversation).collect();
        self.store.apply(Batch {
            admin_statements: vec![statement.clone()],
            remove_events: purged.clone(),
            ..Batch::default()
        })?;
        // Durable with the next commit (the flag makes it flush).
        self.flush_due = true;
        tracing::info!(kind = ?statement.kind, serial = statement.serial, purged = purged.len(), "admin statement accepted");
        if !purged.is_empty() {
            self.reload()?;
            for e in &purged {
                self.notifications.push_back(Notification::Retracted {
                    conversation: e.header.conversation,
                    event_id: e.id(),
                });
            }
            for conversation in touched {
                self.notifications
                    .push_back(Notification::ConversationChanged { conversation });
            }
        }
        let kind = statement.kind;
        self.admin.statements.insert(kind, statement.clone());
        self.apply_statements(now_ms);
        self.notifications
            .push_back(Notification::AdminStatement { kind });
        let (code, rank) = (kind.code(), statement.rank());
        let behind: Vec<UserId> = self
            .peers
            .iter_mut()
            .filter(|(_, p)| p.role.is_some() && code <= p.admin_known_kinds)
            .filter(|(_, p)| p.admin_serials.get(&code).is_none_or(|s| *s < rank))
            .map(|(u, p)| {
                p.admin_serials.insert(code, rank);
                *u
            })
            .collect();
        for peer in behind {
            if !self.is_revoked(&peer) {
                self.send(
                    peer,
                    SyncMessage::AdminStatement {
                        statement: statement.clone(),
                    },
                );
            }
        }
        Ok(())
    }

    /// The stored events revoked colleagues signed after their revocation: per
    /// conversation and author, the chain from its first event stamped later than the
    /// revocation on (a suffix, as `Batch::remove_events` needs). Reads the revoked
    /// authors' events once, when a list arrives.
    fn signed_after_revocation(
        &self,
        revoked: &BTreeMap<UserId, u64>,
    ) -> Result<Vec<Event>, SyncError> {
        let mut out = Vec::new();
        for (conv, state) in &self.convs {
            for (user, at) in revoked {
                let head = state.vv.get(user).copied().unwrap_or(0);
                let mut cut = false;
                for seq in 1..=head {
                    let Some(id) = self.store.event_id_by_seq(conv, user, seq)? else {
                        continue;
                    };
                    let Some(event) = self.store.event(&id)? else {
                        continue;
                    };
                    cut |= event.header.wall_ms > *at;
                    if cut {
                        out.push(event);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether the network's admin revoked `user` (it left the organisation).
    pub fn is_revoked(&self, user: &UserId) -> bool {
        self.admin.revoked.contains_key(user)
    }

    /// Revoked users and since when (ms since the epoch).
    pub fn revoked_users(&self) -> &BTreeMap<UserId, u64> {
        &self.admin.revoked
    }

    /// The policy in force: the network's signed statement, over the machine's settings
    /// (`Config::machine_policy`) where the statement sets nothing.
    pub fn policy(&self) -> Policy {
        self.admin.policy.over(self.config.machine_policy)
    }

    /// `user`'s official name and department from the network's directory.
    pub fn directory_entry(&self, user: &UserId) -> Option<&DirectoryEntry> {
        self.admin.directory.get(user)
    }

    /// Whether `name`, chosen by `user`, looks like the official name of someone else
    /// (`identity::name_key`): the app marks it as doubtful.
    pub fn looks_official(&self, user: &UserId, name: &str) -> bool {
        let key = crate::identity::name_key(name);
        // A name of symbols only has no letters to compare.
        !key.is_empty()
            && self
                .admin
                .official_keys
                .get(&key)
                .is_some_and(|official| official != user)
    }

    /// The statement of `kind` held, if any.
    pub fn admin_statement(&self, kind: StatementKind) -> Option<&AdminStatement> {
        self.admin.statements.get(&kind)
    }

    /// The statements held, one per kind.
    pub fn admin_statements(&self) -> Vec<AdminStatement> {
        self.admin.statements.values().cloned().collect()
    }

    /// An event of a revoked author signed after its revocation (and not held): refused.
    /// An event a revoked colleague authored that this node does not hold yet: refused,
    /// unless it is a group text or receipt stamped before the revocation (what the
    /// colleague wrote before leaving still reaches those who were away; in a group the
    /// removal cuts its chain anyway). Everything else is refused whatever its stamp,
    /// since the author chooses it: membership changes, rekeys and complaints (a
    /// backdated Add of a new identity would keep it reading), and anything in a 1:1
    /// chat, where no removal ever cuts the chain.
    pub(super) fn is_refused_as_revoked(&self, event: &Event) -> bool {
        let h = &event.header;
        let Some(at) = self.admin.revoked.get(&h.author) else {
            return false;
        };
        let group =
            self.convs.get(&h.conversation).and_then(|s| s.kind()) == Some(ConversationKind::Group);
        let harmless = matches!(h.kind, EventKind::Text) || h.kind.is_receipt();
        !(group && harmless && h.wall_ms <= *at)
    }

    /// Sending into a 1:1 chat with a colleague who left is refused (nobody would carry it).
    pub(super) fn refuse_left_partner(&self, conv: &ConversationId) -> Result<(), SyncError> {
        let Some(state) = self.convs.get(conv) else {
            return Ok(());
        };
        if state.kind() == Some(ConversationKind::Direct)
            && state.members().any(|m| self.is_revoked(&m.profile.user_id))
        {
            return Err(SyncError::LeftOrganisation);
        }
        Ok(())
    }

    /// Remove revoked users from the groups this node administers, when it is this node's
    /// turn (`REVOCATION_REMOVAL_STEP_MS`). Checked when the list changes and then once a
    /// minute while some removal waits for another admin: revoked users x conversations.
    pub(super) fn remove_revoked_members(&mut self, now_ms: u64) {
        if self.admin.removals_due_ms.is_none_or(|t| now_ms < t) {
            return;
        }
        self.admin.removals_due_ms = None;
        let me = self.me.user_id();
        let mut due = Vec::new();
        let mut waiting = false;
        for (conv, state) in &self.convs {
            // An organisation group this node keeps: its pass removes them.
            if state.kind() != Some(ConversationKind::Group) || self.keeps_org_group(conv) {
                continue;
            }
            let revoked_members: Vec<UserId> = self
                .admin
                .revoked
                .keys()
                .filter(|u| state.membership.is_member(u))
                .copied()
                .collect();
            if revoked_members.is_empty() {
                continue;
            }
            let admins: Vec<UserId> = state
                .members()
                .filter(|m| m.admin && !self.is_revoked(&m.profile.user_id))
                .map(|m| m.profile.user_id)
                .collect();
            let Some(rank) = admins.iter().position(|a| *a == me) else {
                continue;
            };
            // Turns count from the revocation itself, so an admin who comes online late
            // finds the removal done by the next one; and nobody acts before a round of
            // catching up after it learned of the list (or started).
            let settled = self.admin.learned_ms.saturating_add(REVOCATION_CATCH_UP_MS);
            for user in revoked_members {
                let since = self.admin.revoked.get(&user).copied().unwrap_or(0);
                let turn = since
                    .saturating_add(rank as u64 * REVOCATION_REMOVAL_STEP_MS)
                    .max(settled);
                if now_ms >= turn {
                    due.push((*conv, user));
                } else {
                    waiting = true;
                }
            }
        }
        for (conv, user) in due {
            match self.change_members(now_ms, conv, &[], std::slice::from_ref(&user)) {
                Ok(()) => {
                    tracing::info!(conversation = %conv, user = %user.short(), "removed a colleague who left the organisation")
                }
                Err(e) => {
                    waiting = true;
                    tracing::warn!(conversation = %conv, user = %user.short(), error = %e, "could not remove a colleague who left")
                }
            }
        }
        if waiting {
            self.admin.removals_due_ms = Some(now_ms.saturating_add(REVOCATION_CATCH_UP_MS));
        }
    }
}

/// What the engine holds of the admin's statements.
#[derive(Debug, Default)]
pub(super) struct AdminState {
    pub statements: BTreeMap<StatementKind, AdminStatement>,
    /// Derived from the revocation statement: user -> revoked since (ms).
    pub revoked: BTreeMap<UserId, u64>,
    /// Derived from the policy statement.
    pub policy: Policy,
    /// When this node learned the revocation list it holds (start-up counts).
    pub learned_ms: u64,
    /// When to look at the groups for revoked members next.
    pub removals_due_ms: Option<u64>,
    /// Derived from the directory statement: official names and departments.
    pub directory: BTreeMap<UserId, DirectoryEntry>,
    /// The directory's names by `identity::name_key`, to find look-alikes.
    pub official_keys: HashMap<String, UserId>,
    /// Derived from the organisation-groups statement.
    pub org: super::org_groups::OrgState,
    /// Derived from the group-retention statement: single groups' periods.
    pub group_retention: crate::wire::GroupRetention,
    /// How far the retention sweep got (`sync::retention`).
    pub retention: super::retention::RetentionState,
}
