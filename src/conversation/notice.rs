//! What a membership event did, as a line in the chat ("Anna removed Bernd"): shown
//! between the messages, so members (and a removed member) see who changed the group.
//! Decided when the event is applied, in total order (a late one triggers a rebuild), so
//! reading a page of the chat costs no replay.

use super::*;

/// A change a member is told about in the chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The group was created (by the event's author).
    Created,
    Added(UserId),
    Removed(UserId),
    /// The event's author left.
    Left,
    Promoted(UserId),
    /// The group got a new name (not the name repeated after an add).
    Renamed(String),
    /// The event's author replaced its X25519 key (a key update): shown, so that a key
    /// replaced by someone else holding the user's key file does not go unnoticed.
    KeyChanged,
}

/// Whom a membership op is about.
fn subject(author: &UserId, op: &MembershipOp) -> Option<UserId> {
    match op {
        MembershipOp::Add { profile, .. } => Some(profile.user_id),
        MembershipOp::Remove { user, .. } | MembershipOp::Promote { user } => Some(*user),
        MembershipOp::Leave => Some(*author),
        MembershipOp::KeyUpdate { .. } => Some(*author),
        MembershipOp::Create { .. } | MembershipOp::Rename => None,
    }
}

/// The op's subject as it stood before the op: (member, admin, created, its X25519 key).
pub(super) struct Before(bool, bool, bool, Option<[u8; 32]>);

impl Before {
    pub(super) fn of(m: &Membership, author: &UserId, op: &MembershipOp) -> Before {
        let s = subject(author, op);
        Before(
            s.is_some_and(|u| m.is_member(&u)),
            s.is_some_and(|u| m.is_admin(&u)),
            m.kind.is_some(),
            s.and_then(|u| m.members.get(&u))
                .map(|m| m.profile.dh_public),
        )
    }

    /// What changed, given the membership after the op: no-ops (two admins doing the
    /// same thing at once) say nothing.
    pub(super) fn notice(
        &self,
        m: &Membership,
        author: &UserId,
        op: &MembershipOp,
    ) -> Option<Notice> {
        let s = subject(author, op);
        let member = s.is_some_and(|u| m.is_member(&u));
        let admin = s.is_some_and(|u| m.is_admin(&u));
        if let MembershipOp::Create { .. } = op {
            return (!self.2 && m.kind == Some(ConversationKind::Group)).then_some(Notice::Created);
        }
        let s = s?;
        match op {
            MembershipOp::Create { .. } | MembershipOp::Rename => None,
            MembershipOp::KeyUpdate { .. } => (self.3
                != m.members.get(&s).map(|m| m.profile.dh_public))
            .then_some(Notice::KeyChanged),
            MembershipOp::Add { .. } => (!self.0 && member).then_some(Notice::Added(s)),
            MembershipOp::Remove { .. } => (self.0 && !member).then_some(Notice::Removed(s)),
            MembershipOp::Leave => (self.0 && !member).then_some(Notice::Left),
            MembershipOp::Promote { .. } => (!self.1 && admin).then_some(Notice::Promoted(s)),
        }
    }
}

impl ConversationState {
    /// What a stored membership event did, if it counts and changed something a member
    /// is told about: the group's creation, an add of someone new, a removal that holds, a
    /// leave, a promotion, a new name.
    pub fn notice(&self, event: &Event) -> Option<Notice> {
        self.notices.get(&event.id()).cloned()
    }
}
