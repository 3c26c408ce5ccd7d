//! Organisation groups (docs/PROTOCOL.md, "Organisation groups"): "Alle" and a group per
//! department, whose membership the directory decides. The steward's node (IT's, named
//! in the signed statement) created them and is their only admin; it keeps them in line
//! with the directory: a colleague added to it joins, one moved to another department
//! changes group, one taken out leaves. Every other node marks them and refuses to leave
//! them (a colleague who leaves anyway by a forged path is added again at the next pass).

use super::*;
use crate::wire::{OrgGroup, OrgGroups};

/// Between two passes of the steward at least this long: colleagues whose profiles
/// arrive one by one (a town hall starting work) join in batches, one key rotation per
/// group and pass.
pub const ORG_PASS_MIN_MS: u64 = 10_000;
/// Without news, the steward looks again this often (a member who left by itself).
pub const ORG_PASS_IDLE_MS: u64 = 10 * 60_000;
/// Colleagues added to one group in one pass at most (each Add event carries a profile).
pub const ORG_BATCH: usize = 256;

/// What the engine keeps of the organisation groups.
#[derive(Debug, Default)]
pub(super) struct OrgState {
    pub groups: Option<OrgGroups>,
    /// When the steward's next pass is due.
    pub due_ms: Option<u64>,
    pub last_pass_ms: u64,
    /// `Engine::profile_clock` at the last look: a newly learned profile may be a
    /// colleague of the directory who can now be added.
    pub profiles_seen: u64,
}

impl<S: Store> Engine<S> {
    /// The organisation groups the admin named, if any.
    pub fn org_groups(&self) -> Option<&OrgGroups> {
        self.admin.org.groups.as_ref()
    }

    /// Whether `conv` is an organisation group (its members are the directory's).
    pub fn org_group(&self, conv: &ConversationId) -> Option<&OrgGroup> {
        self.org_groups().and_then(|g| g.group(conv))
    }

    fn is_steward(&self) -> bool {
        self.admin
            .org
            .groups
            .as_ref()
            .is_some_and(|g| g.steward == self.me.user_id())
    }

    /// Something the groups' membership depends on changed: the steward passes over them
    /// soon (not sooner than `ORG_PASS_MIN_MS` after the last pass).
    pub(super) fn org_groups_changed(&mut self, now_ms: u64) {
        if !self.is_steward() {
            return;
        }
        let soon = now_ms.max(self.admin.org.last_pass_ms.saturating_add(ORG_PASS_MIN_MS));
        self.admin.org.due_ms = Some(self.admin.org.due_ms.map_or(soon, |t| t.min(soon)));
    }

    /// The steward's pass: each organisation group gets the directory's colleagues whose
    /// profiles are known (at most `ORG_BATCH` a pass) and loses members the directory no
    /// longer puts there, with one key rotation. Revoked colleagues are left to
    /// `remove_revoked_members`. Cost: groups x directory entries, every
    /// `ORG_PASS_MIN_MS` at most.
    pub(super) fn keep_org_groups(&mut self, now_ms: u64) {
        if self.admin.org.profiles_seen != self.profile_clock {
            self.admin.org.profiles_seen = self.profile_clock;
            self.org_groups_changed(now_ms);
        }
        if self.admin.org.due_ms.is_none_or(|t| now_ms < t) {
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
        for group in &org.groups {
            let Some(state) = self.convs.get(&group.conversation) else {
                continue;
            };
            if state.kind() != Some(ConversationKind::Group) || !state.membership.is_admin(&me) {
                continue;
            }
            let wanted: BTreeSet<UserId> = self
                .admin
                .directory
                .iter()
                .filter(|(u, e)| {
                    (group.department.is_empty() || e.department == group.department)
                        && !self.is_revoked(u)
                })
                .map(|(u, _)| *u)
                .collect();
            let mut add: Vec<Profile> = wanted
                .iter()
                .filter(|u| **u != me && !state.membership.is_member(u))
                .filter_map(|u| self.profiles.get(u).cloned())
                .collect();
            let remove: Vec<UserId> = state
                .membership
                .members
                .keys()
                .filter(|u| **u != me && !wanted.contains(u) && !self.is_revoked(u))
                .copied()
                .collect();
            if add.len() > ORG_BATCH {
                add.truncate(ORG_BATCH);
                self.org_groups_changed(now_ms);
            }
            if add.is_empty() && remove.is_empty() {
                continue;
            }
            match self.change_members(now_ms, group.conversation, &add, &remove) {
                Ok(()) => tracing::info!(
                    conversation = %group.conversation,
                    added = add.len(),
                    removed = remove.len(),
                    "organisation group follows the directory"
                ),
                Err(e) => {
                    tracing::warn!(conversation = %group.conversation, error = %e, "could not bring an organisation group in line with the directory");
                    self.org_groups_changed(now_ms.saturating_add(REVOCATION_CATCH_UP_MS));
                }
            }
        }
    }
}
