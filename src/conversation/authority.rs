//! Which removals hold, decided from a conversation's membership events alone, whatever
//! their clocks say (`docs/PROTOCOL.md`, "Which removals hold" and "Membership marks").
//!
//! A removal carries the position in the removed member's own chain up to which the
//! remover had seen it. Everything the removed member signs after that position is
//! *outside*, so backdating (a small Lamport clock) cannot move an event before its own
//! sequence number. A removal attacks the removals and adds whose authority rests on a
//! signature its target gave after being cut; the removals that hold are the grounded
//! labelling of that graph, with admins who removed each other concurrently both holding.

use std::collections::{BTreeMap, BTreeSet};

use crate::identity::UserId;
use crate::wire::{Event, EventId, EventKind, MembershipOp, OrderKey};

/// A removal or an add as the decision sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Change {
    id: EventId,
    key: OrderKey,
    target: UserId,
    seen: u64,
    /// Whose signatures its authority rests on: the promotions that made its author an
    /// admin (author and seq of each), then its own author and seq. A removal of any of
    /// them at a position below that seq takes the authority away.
    signers: Vec<(UserId, u64)>,
}

impl Change {
    /// Whether `removal` removes one of this change's signers before it signed.
    fn attacked_by(&self, removal: &Change) -> bool {
        self.signers
            .iter()
            .any(|(u, seq)| removal.target == *u && removal.seen < *seq)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Op {
    id: EventId,
    key: OrderKey,
    op: MembershipOp,
}

/// The decided removals of one conversation and the marks they leave on members' chains.
#[derive(Clone, Debug, Default)]
pub struct Authority {
    /// Every decodable membership op, in total order.
    ops: Vec<Op>,
    holding: BTreeSet<EventId>,
    /// Per member: (order key, position in the member's chain, true for a removal that
    /// holds, false for an add), sorted by order key.
    marks: BTreeMap<UserId, Vec<(OrderKey, u64, bool)>>,
    /// Per user: the last add of that user in the order and the removal that refuted it,
    /// if it was refuted (the user must be told, as a removed member is).
    refuted_adds: BTreeMap<UserId, (OrderKey, OrderKey)>,
}

impl Authority {
    /// Decide from a conversation's events (only membership events are looked at).
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut a = Authority::default();
        for e in events {
            a.insert_op(e);
        }
        a.decide();
        a
    }

    /// Take one more membership event into account and decide again.
    pub fn insert(&mut self, event: &Event) {
        if self.insert_op(event) {
            self.decide();
        }
    }

    /// Whether the removal `event` holds, deciding again with it added if it is new here
    /// (during a rebuild it is already part of the decision, and nothing is copied).
    pub fn holds_with(&self, event: &Event) -> bool {
        let id = event.id();
        if self.ops.iter().any(|o| o.id == id) {
            return self.holds(&id);
        }
        let mut a = self.clone();
        a.insert(event);
        a.holds(&id)
    }

    fn insert_op(&mut self, event: &Event) -> bool {
        if event.header.kind != EventKind::Membership {
            return false;
        }
        let Ok(op) = MembershipOp::decode(&event.public) else {
            return false;
        };
        let key = event.order_key();
        let id = event.id();
        if self.ops.iter().any(|o| o.id == id) {
            return false;
        }
        let pos = self.ops.partition_point(|o| o.key < key);
        self.ops.insert(pos, Op { id, key, op });
        true
    }

    /// Whether two decisions agree on which removals hold.
    pub fn same_decision(&self, other: &Authority) -> bool {
        self.holding == other.holding && self.marks == other.marks
    }

    /// Whether the removal `id` holds.
    pub fn holds(&self, id: &EventId) -> bool {
        self.holding.contains(id)
    }

    /// Whether `user`'s event with sequence number `seq` at `key` is inside. A removal
    /// that holds cuts the event if the remover had not seen it (`seq` above the mark) or
    /// if it sorts before the event (an event the remover saw can sort after the removal
    /// once a member has pushed the clock to its cap: it must not count at a place where
    /// its author is out); an add admits it if the adder had not seen it. Among the marks
    /// that cut or admit it, the last in the total order must not be a removal, and an add
    /// must come before the event.
    pub fn inside(&self, user: &UserId, seq: u64, key: &OrderKey) -> bool {
        self.marks.get(user).is_none_or(|marks| {
            marks
                .iter()
                .rev()
                .find(|(at, pos, removal)| *pos < seq || (*removal && at < key))
                .is_none_or(|(at, _, removal)| !removal && at < key)
        })
    }

    /// The last add of `user` and the removal that refuted it (their order keys), if it
    /// was refuted.
    pub fn refuted_add_of(&self, user: &UserId) -> Option<(OrderKey, OrderKey)> {
        self.refuted_adds.get(user).copied()
    }

    /// The add that admits `user`'s event with sequence number `seq` (the last in the
    /// order among those that count and whose mark lies below `seq`): its order key and
    /// mark. None for a member since creation.
    pub fn admitted_by(&self, user: &UserId, seq: u64) -> Option<(OrderKey, u64)> {
        self.marks.get(user).and_then(|marks| {
            marks
                .iter()
                .rev()
                .find(|(_, pos, removal)| !removal && *pos < seq)
                .map(|(at, pos, _)| (*at, *pos))
        })
    }

    fn decide(&mut self) {
        let (removals, adds) = self.candidates();
        self.holding = grounded(&removals);
        self.marks.clear();
        for r in removals.iter().filter(|r| self.holding.contains(&r.id)) {
            self.marks
                .entry(r.target)
                .or_default()
                .push((r.key, r.seen, true));
        }
        // An add counts unless a removal that holds takes its authority away.
        self.refuted_adds.clear();
        for a in &adds {
            let refuter = removals
                .iter()
                .find(|r| self.holding.contains(&r.id) && a.attacked_by(r));
            match refuter {
                Some(r) => {
                    self.refuted_adds.insert(a.target, (a.key, r.key));
                }
                None => {
                    self.refuted_adds.remove(&a.target);
                }
            }
            if refuter.is_none() {
                self.marks
                    .entry(a.target)
                    .or_default()
                    .push((a.key, a.seen, false));
            }
        }
        for marks in self.marks.values_mut() {
            marks.sort();
        }
    }

    /// Walk the ops in order: removals and adds by someone who was an admin before them.
    /// Removals do not take admin rights away here (the attack graph decides that), so
    /// the graph is fixed by the events alone and its grounded labelling is unique.
    fn candidates(&self) -> (Vec<Change>, Vec<Change>) {
        // Admin -> the signers its rights rest on (the first promotion wins).
        let mut admins: BTreeMap<UserId, Vec<(UserId, u64)>> = BTreeMap::new();
        let mut created = false;
        let mut removals = Vec::new();
        let mut adds = Vec::new();
        for o in &self.ops {
            let author = o.key.author;
            let signers = |admins: &BTreeMap<UserId, Vec<(UserId, u64)>>| {
                admins.get(&author).map(|chain| {
                    let mut s = chain.clone();
                    s.push((author, o.key.seq));
                    s
                })
            };
            match &o.op {
                MembershipOp::Create {
                    members, admins: a, ..
                } => {
                    if !created {
                        created = true;
                        for u in a
                            .iter()
                            .filter(|u| members.iter().any(|p| p.user_id == **u))
                        {
                            admins.insert(*u, Vec::new());
                        }
                    }
                }
                MembershipOp::Promote { user } => {
                    if !admins.contains_key(user)
                        && let Some(s) = signers(&admins)
                    {
                        admins.insert(*user, s);
                    }
                }
                MembershipOp::Leave => {
                    admins.remove(&author);
                }
                MembershipOp::Add { profile, seen } => {
                    if profile.user_id != author
                        && let Some(signers) = signers(&admins)
                    {
                        adds.push(Change {
                            id: o.id,
                            key: o.key,
                            target: profile.user_id,
                            seen: *seen,
                            signers,
                        });
                    }
                }
                MembershipOp::Remove { user, seen } => {
                    if *user != author
                        && let Some(signers) = signers(&admins)
                    {
                        removals.push(Change {
                            id: o.id,
                            key: o.key,
                            target: *user,
                            seen: *seen,
                            signers,
                        });
                    }
                }
                MembershipOp::Rename | MembershipOp::KeyUpdate { .. } => {}
            }
        }
        (removals, adds)
    }
}

/// The grounded labelling of the attack graph (`Change::attacked_by`): a removal whose
/// attackers are all refuted holds; one attacked by a removal that holds is refuted.
/// What stays undecided: removals whose only undecided attackers they attack in turn
/// (admins who removed each other, neither having seen the other's removal) hold; then
/// the labelling goes on, and whatever is still undecided at the end is refuted.
fn grounded(removals: &[Change]) -> BTreeSet<EventId> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Label {
        In,
        Out,
        Undecided,
    }
    let attackers: Vec<Vec<usize>> = removals
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (0..removals.len())
                .filter(|&j| j != i && r.attacked_by(&removals[j]))
                .collect()
        })
        .collect();
    let mut label = vec![Label::Undecided; removals.len()];
    loop {
        // Propagate.
        loop {
            let mut changed = false;
            for i in 0..removals.len() {
                if label[i] != Label::Undecided {
                    continue;
                }
                if attackers[i].iter().any(|&j| label[j] == Label::In) {
                    label[i] = Label::Out;
                    changed = true;
                } else if attackers[i].iter().all(|&j| label[j] == Label::Out) {
                    label[i] = Label::In;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let undecided: Vec<usize> = (0..removals.len())
            .filter(|&i| label[i] == Label::Undecided)
            .collect();
        if undecided.is_empty() {
            break;
        }
        let mutual: Vec<usize> = undecided
            .iter()
            .copied()
            .filter(|&i| {
                attackers[i]
                    .iter()
                    .filter(|&&j| label[j] == Label::Undecided)
                    .all(|&j| removals[j].attacked_by(&removals[i]))
            })
            .collect();
        if mutual.is_empty() {
            for i in undecided {
                label[i] = Label::Out;
            }
        } else {
            for i in mutual {
                label[i] = Label::In;
            }
        }
    }
    removals
        .iter()
        .zip(label)
        .filter(|(_, l)| *l == Label::In)
        .map(|(r, _)| r.id)
        .collect()
}
