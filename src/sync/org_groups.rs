//! Organisation groups (docs/PROTOCOL.md, "Organisation groups"): "Alle" and a group per
//! department, whose membership the directory decides. The steward's node (IT's, named
//! in the signed statement) created them and is their only admin; it keeps them in line
//! with the directory: a colleague added to it joins, one moved to another department
//! changes group, one taken out or revoked leaves. Every other node marks them and
//! refuses to leave them (a colleague who leaves anyway by a modified node is added
//! again, after a wait that doubles each time).

use std::collections::HashMap;

use super::*;
use crate::wire::{MAX_MEMBERS, OrgGroup, OrgGroups};

/// Between two passes of the steward at least this long: colleagues whose profiles
/// arrive one by one (a town hall starting work) join in batches, one key rotation per
/// group and pass.
pub const ORG_PASS_MIN_MS: u64 = 10_000;
/// Without news, the steward looks again this often.
pub const ORG_PASS_IDLE_MS: u64 = 10 * 60_000;
/// The steward's first pass waits this long after it starts: the relays it knows
/// connect and say they are relays (relays are never members), and it catches up.
pub const ORG_START_GRACE_MS: u64 = 60_000;
/// Colleagues added to one group in one pass at most (each Add event carries a profile).
pub const ORG_BATCH: usize = 256;
/// A colleague added again to a group (who left it by a modified node, or was moved
/// back) waits this long, doubling with each time: leaving and rejoining cannot make
/// the steward rotate a large group's key over and over.
pub const ORG_READD_WAIT_MS: u64 = 60 * 60_000;
/// Relays remembered (by their hellos) at most.
const MAX_RELAYS_SEEN: usize = 4096;

/// What the engine keeps of the organisation groups.
#[derive(Debug, Default)]
pub(super) struct OrgState {
    pub groups: Option<OrgGroups>,
    /// When the steward's next pass is due.
    pub due_ms: Option<u64>,
    pub last_pass_ms: u64,
    /// The first tick this run (the start-up grace counts from it).
    pub started_ms: Option<u64>,
    /// A profile of a directory colleague, or a relay's hello, arrived since the last
    /// pass.
    pub news: bool,
    /// Users whose hello said they are relays (this run).
    pub relays: BTreeSet<UserId>,
    /// Per group and colleague added by a pass: how often, and not again before when.
    pub added: HashMap<(ConversationId, UserId), (u32, u64)>,
    /// Groups named whose admin this node is not (logged once).
    pub not_admin: BTreeSet<ConversationId>,
}

impl<S: Store> Engine<S> {
    /// The organisation groups the admin named, if any.
    pub fn org_groups(&self) -> Option<&OrgGroups> {
        self.admin.org.groups.as_ref()
    }

    /// `conv` as an organisation group in force: named by the statement, and its
    /// steward, not revoked, is an admin of it here. (One whose steward left or lost the
    /// group is an ordinary group again: members may leave it.)
    pub fn org_group(&self, conv: &ConversationId) -> Option<&OrgGroup> {
        let org = self.admin.org.groups.as_ref()?;
        let group = org.group(conv)?;
        let kept = !self.is_revoked(&org.steward)
            && self
                .convs
                .get(conv)
                .is_some_and(|s| s.membership.is_admin(&org.steward));
        kept.then_some(group)
    }

    /// Members of an organisation group in force are the directory's: refused by hand.
    pub(super) fn refuse_org_group(&self, conv: &ConversationId) -> Result<(), SyncError> {
        if self.org_group(conv).is_some() {
            return Err(SyncError::OrganisationGroup);
        }
        Ok(())
    }

    fn is_steward(&self) -> bool {
        self.admin
            .org
            .groups
            .as_ref()
            .is_some_and(|g| g.steward == self.me.user_id())
    }

    /// Whether `conv` is an organisation group this node keeps (its pass, not
    /// `remove_revoked_members`, removes the revoked there).
    pub(super) fn keeps_org_group(&self, conv: &ConversationId) -> bool {
        self.is_steward() && self.org_group(conv).is_some()
    }

    /// A peer said it is a relay: never a member of an organisation group.
    pub(super) fn note_relay(&mut self, peer: UserId) {
        if self.admin.org.relays.len() < MAX_RELAYS_SEEN && self.admin.org.relays.insert(peer) {
            self.admin.org.news |= self.is_steward();
        }
    }

    /// A newer profile: news for the steward if the directory names its owner (whom it
    /// can now add; a fresh identity is nobody's business).
    pub(super) fn org_profile_learned(&mut self, user: &UserId) {
        if self.is_steward() && self.admin.directory.contains_key(user) {
            self.admin.org.news = true;
        }
    }

    /// Something the groups' membership depends on changed: the steward passes over them
    /// at `at_ms` or soon after (not sooner than `ORG_PASS_MIN_MS` after the last pass).
    pub(super) fn org_groups_changed(&mut self, at_ms: u64) {
        if !self.is_steward() {
            return;
        }
        let soon = at_ms.max(self.admin.org.last_pass_ms.saturating_add(ORG_PASS_MIN_MS));
        self.admin.org.due_ms = Some(self.admin.org.due_ms.map_or(soon, |t| t.min(soon)));
    }

    /// The steward's pass: each organisation group gets the directory's colleagues whose
    /// profiles are known (no relays; at most `ORG_BATCH` a pass; one added before waits
    /// `ORG_READD_WAIT_MS`, doubling) and loses members the directory no longer puts
    /// there and the revoked (after the catch-up round), with one key rotation.
    /// Cost: groups x members and directory entries, every `ORG_PASS_MIN_MS` at most.
    pub(super) fn keep_org_groups(&mut self, now_ms: u64) {
        let started = *self.admin.org.started_ms.get_or_insert(now_ms);
        if std::mem::take(&mut self.admin.org.news) {
            self.org_groups_changed(now_ms);
        }
        if self.admin.org.due_ms.is_none_or(|t| now_ms < t) {
            return;
        }
        let grace_end = started.saturating_add(ORG_START_GRACE_MS);
        if now_ms < grace_end {
            self.admin.org.due_ms = Some(grace_end);
            return;
        }
        self.admin.org.last_pass_ms = now_ms;
        self.admin.org.due_ms = Some(now_ms.saturating_add(ORG_PASS_IDLE_MS));
        let Some(org) = self
            .admin
            .org
            .groups
            .clone()
            .filter(|g| g.steward == self.me.user_id())
        else {
            self.admin.org.due_ms = None;
            return;
        };
        // No directory (or one that does not decode): nobody to keep, and nobody removed.
        if self.admin.directory.is_empty() {
            return;
        }
        let me = self.me.user_id();
        let revocations_settled =
            now_ms >= self.admin.learned_ms.saturating_add(REVOCATION_CATCH_UP_MS);
        let mut next_ms: Option<u64> = None;
        for group in &org.groups {
            let Some(state) = self.convs.get(&group.conversation) else {
                continue;
            };
            if state.kind() != Some(ConversationKind::Group) || !state.membership.is_admin(&me) {
                if self.admin.org.not_admin.insert(group.conversation) {
                    tracing::warn!(conversation = %group.conversation, "an organisation group this node keeps is not one it administers: its members are not kept (flurfunk admin org-groups --take-over makes new ones)");
                }
                continue;
            }
            let seen = &self.admin.org;
            let wanted: BTreeSet<UserId> = self
                .admin
                .directory
                .iter()
                .filter(|(u, e)| {
                    (group.department.is_empty() || e.department == group.department)
                        && !self.is_revoked(u)
                        && !seen.relays.contains(u)
                })
                .map(|(u, _)| *u)
                .collect();
            let room = MAX_MEMBERS.saturating_sub(state.membership.members.len());
            let mut add: Vec<Profile> = Vec::new();
            for user in wanted
                .iter()
                .filter(|u| **u != me && !state.membership.is_member(u))
            {
                let Some(profile) = self.profiles.get(user) else {
                    continue;
                };
                if let Some((_, not_before)) = seen.added.get(&(group.conversation, *user))
                    && now_ms < *not_before
                {
                    next_ms = Some(next_ms.map_or(*not_before, |t| t.min(*not_before)));
                    continue;
                }
                if add.len() == ORG_BATCH.min(room) {
                    next_ms = Some(now_ms);
                    break;
                }
                add.push(profile.clone());
            }
            let remove: Vec<UserId> = state
                .membership
                .members
                .keys()
                .filter(|u| {
                    **u != me && !wanted.contains(u) && (revocations_settled || !self.is_revoked(u))
                })
                .copied()
                .collect();
            if !revocations_settled {
                let settled = self.admin.learned_ms.saturating_add(REVOCATION_CATCH_UP_MS);
                next_ms = Some(next_ms.map_or(settled, |t| t.min(settled)));
            }
            if add.is_empty() && remove.is_empty() {
                continue;
            }
            match self.change_members(now_ms, group.conversation, &add, &remove) {
                Ok(()) => {
                    for p in &add {
                        let n = self
                            .admin
                            .org
                            .added
                            .get(&(group.conversation, p.user_id))
                            .map_or(0, |(n, _)| *n);
                        let wait = ORG_READD_WAIT_MS.saturating_mul(1 << n.min(10));
                        self.admin.org.added.insert(
                            (group.conversation, p.user_id),
                            (n + 1, now_ms.saturating_add(wait)),
                        );
                    }
                    tracing::info!(
                        conversation = %group.conversation,
                        added = add.len(),
                        removed = remove.len(),
                        "organisation group follows the directory"
                    );
                }
                Err(e) => {
                    tracing::warn!(conversation = %group.conversation, error = %e, "could not bring an organisation group in line with the directory");
                    let again = now_ms.saturating_add(REVOCATION_CATCH_UP_MS);
                    next_ms = Some(next_ms.map_or(again, |t| t.min(again)));
                }
            }
        }
        if let Some(at) = next_ms {
            self.org_groups_changed(at);
        }
    }
}
