//! Which peers a node keeps connections to: a bounded set that still connects the members
//! of every conversation, because events only ever travel between members (and relays).
//!
//! Per conversation, members are placed on a ring by a hash of (conversation, member).
//! Each node links to the nearest reachable member on each side of itself (so the online
//! members of a conversation always form one connected ring, and both ends of a ring link
//! know of it: a member just added is dialled by its ring neighbours before it knows the
//! conversation exists), plus `RANDOM_PICKS` members ranked by a hash of (conversation,
//! self, member) (so the ring has shortcuts and the hop count stays about log(n)). A 1:1
//! chat links its two members, for the most recently active chats and those with
//! messages waiting. The result is a handful of links per conversation, whatever the size
//! of the network: about 6 for "Alle" with 1,000 members.

use super::*;
use crate::wire::hash32;

/// Shortcut links per conversation beyond the two ring neighbours.
pub const RANDOM_PICKS: usize = 2;
/// 1:1 chats whose partner is linked without a message waiting: the most recently active.
pub const MAX_IDLE_DIRECT_LINKS: usize = 16;

/// One conversation's candidates, in order of preference.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkCandidates {
    /// Members after this node on the ring, nearest first.
    pub successors: Vec<UserId>,
    /// Members before this node on the ring, nearest first.
    pub predecessors: Vec<UserId>,
    /// Members ranked for shortcut links.
    pub picks: Vec<UserId>,
    /// A 1:1 chat with messages waiting: its partner is the only way, so it is dialled
    /// even while it seems unreachable (the dial backoff limits how often).
    pub keep_trying: bool,
}

/// The candidates for every conversation this node should stay connected within.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkPlan {
    pub conversations: Vec<LinkCandidates>,
}

impl LinkPlan {
    /// At most `max` peers to be connected to, given which are reachable now: first, per
    /// conversation in the plan's order (chats with messages waiting, then groups by
    /// activity, then idle chats), the nearest reachable ring neighbour on each side
    /// (these keep each conversation connected); then the shortcut picks.
    ///
    /// An immediate ring neighbour that seems unreachable is kept in the result too (it
    /// does not count against `max`; the caller's dial backoff limits how often it is
    /// tried): a member that does not know the conversation yet can only be found by its
    /// ring neighbours, and views of who is reachable differ for a while after a failure.
    pub fn choose(&self, reachable: impl Fn(&UserId) -> bool, max: usize) -> BTreeSet<UserId> {
        let mut out = BTreeSet::new();
        let mut linked = 0;
        for c in &self.conversations {
            for side in [&c.successors, &c.predecessors] {
                if let Some(first) = side.first()
                    && (c.keep_trying || !reachable(first))
                {
                    out.insert(*first);
                }
                if let Some(u) = side.iter().find(|u| reachable(u)) {
                    if linked >= max {
                        return out;
                    }
                    if out.insert(*u) {
                        linked += 1;
                    }
                }
            }
        }
        for c in &self.conversations {
            for u in c.picks.iter().filter(|u| reachable(u)).take(RANDOM_PICKS) {
                if linked >= max {
                    return out;
                }
                if out.insert(*u) {
                    linked += 1;
                }
            }
        }
        out
    }
}

fn ring_position(conv: &ConversationId, user: &UserId) -> [u8; 32] {
    hash32(&[b"flurfunk/v1/link-ring", &conv.0, &user.0])
}

fn pick_rank(conv: &ConversationId, me: &UserId, user: &UserId) -> [u8; 32] {
    hash32(&[b"flurfunk/v1/link-pick", &conv.0, &me.0, &user.0])
}

impl<S: Store> Engine<S> {
    /// Where this node should hold connections (see the module comment). Costs a hash per
    /// member of each conversation; callers keep the plan until a membership changes.
    pub fn link_plan(&self) -> LinkPlan {
        let me = self.me.user_id();
        let mut plan = LinkPlan::default();
        if self.config.role == Role::Relay {
            return plan; // relays are linked by admins (`--peer`), not by conversations
        }
        let mut directs: Vec<(bool, u64, UserId)> = Vec::new();
        let mut groups: Vec<(u64, LinkCandidates)> = Vec::new();
        for (conv, state) in &self.convs {
            if !state.membership.is_member(&me) {
                continue;
            }
            let others: Vec<UserId> = state
                .members()
                .map(|m| m.profile.user_id)
                .filter(|u| *u != me)
                .collect();
            if state.kind() == Some(ConversationKind::Direct) {
                let waiting = self.outbox.values().any(|(c, _)| c == conv);
                if let Some(partner) = others.first() {
                    directs.push((waiting, state.last_activity_ms, *partner));
                }
                continue;
            }
            let mut ring: Vec<([u8; 32], UserId)> = others
                .iter()
                .map(|u| (ring_position(conv, u), *u))
                .collect();
            ring.sort();
            let mine = ring_position(conv, &me);
            let split = ring.partition_point(|(p, _)| *p < mine);
            let successors: Vec<UserId> = ring[split..]
                .iter()
                .chain(&ring[..split])
                .map(|(_, u)| *u)
                .collect();
            let predecessors: Vec<UserId> = successors.iter().rev().copied().collect();
            let mut picks: Vec<([u8; 32], UserId)> = others
                .iter()
                .map(|u| (pick_rank(conv, &me, u), *u))
                .collect();
            picks.sort();
            groups.push((
                state.last_activity_ms,
                LinkCandidates {
                    successors,
                    predecessors,
                    picks: picks.into_iter().map(|(_, u)| u).collect(),
                    keep_trying: false,
                },
            ));
        }
        // Chats with messages waiting first (they need the link), then groups by
        // activity, then the most recently active idle chats.
        directs.sort_by(|a, b| b.cmp(a));
        groups.sort_by_key(|g| std::cmp::Reverse(g.0));
        let direct = |partner: UserId, waiting: bool| LinkCandidates {
            successors: vec![partner],
            keep_trying: waiting,
            ..LinkCandidates::default()
        };
        for (_, _, partner) in directs.iter().filter(|d| d.0) {
            plan.conversations.push(direct(*partner, true));
        }
        plan.conversations
            .extend(groups.into_iter().map(|(_, candidates)| candidates));
        for (_, _, partner) in directs.iter().filter(|d| !d.0).take(MAX_IDLE_DIRECT_LINKS) {
            plan.conversations.push(direct(*partner, false));
        }
        plan
    }
}
