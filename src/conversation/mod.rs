//! The rules of one conversation, as a pure state machine: who is a member at each point
//! of the total order, which events are valid there, and which epoch keys this node holds.
//!
//! It never touches storage or the network. `sync` feeds it events; a full `rebuild`
//! replays a conversation's stored events in order, which is how a node starts up and how
//! it re-decides validity when a membership event arrives late.

mod actions;
mod authority;
mod keys;
mod notice;
mod profiles;
mod rebuild;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::crypto::{EpochKey, LABEL_DIRECT_CONVERSATION, LABEL_GROUP_CONVERSATION};
use crate::identity::{Identity, Profile, UserId};
use crate::wire::{
    self, ComplaintBody, Content, ConversationId, Event, EventId, EventKind, MAX_MEMBERS,
    MembershipOp, OpenError, OrderKey, RekeyBody, VersionVector, hash32,
};

pub use actions::{Actions, Deletion, MAX_EDITS};
pub use authority::Authority;
pub use notice::Notice;
pub use profiles::VerifiedProfiles;
pub use rebuild::Rebuild;

/// How far one event may move its author's Lamport clock: an event with sequence number
/// `seq` carries a clock of at most `seq * LAMPORT_STEP`. A member cannot push the
/// conversation's clock beyond what honest members can follow (they fall back to their
/// own bound, which always lies above their last clock).
pub const LAMPORT_STEP: u64 = 1 << 32;

/// The largest Lamport clock an event with sequence number `seq` may carry.
pub fn max_lamport(seq: u64) -> u64 {
    seq.saturating_mul(LAMPORT_STEP)
}

/// Events a member signs *outside* its chain (after a removal that holds cut it there)
/// that are still kept, inert: stored and passed on so the chain stays whole, but never
/// shown, applied or opened. They carry what the decision may need later (a counter-removal
/// by an admin who was removed concurrently, or the history of a member who is added again),
/// and nothing is lost if a removal is refuted later. Beyond this many per member and
/// conversation, its chain is cut: a removed member cannot make others store more.
pub const MAX_OUTSIDE_EVENTS: u64 = 64;

/// How an acceptable event stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// It counts: applied, shown, opened.
    Inside,
    /// Kept inert (`MAX_OUTSIDE_EVENTS`).
    Outside,
}

pub fn direct_conversation_id(a: &UserId, b: &UserId) -> ConversationId {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    ConversationId(hash32(&[LABEL_DIRECT_CONVERSATION, &x.0, &y.0]))
}

pub fn group_conversation_id(creator: &UserId, nonce: &[u8; 16]) -> ConversationId {
    ConversationId(hash32(&[LABEL_GROUP_CONVERSATION, &creator.0, nonce]))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConversationKind {
    Direct,
    Group,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub profile: Profile,
    pub admin: bool,
    /// X25519 keys this member replaced by key updates (newest last, at most
    /// `MAX_EARLIER_KEYS`), each with the place of the update that replaced it: a rekey
    /// that sorts before that place may be wrapped to it (`Member::holds_key`).
    pub earlier_keys: Vec<([u8; 32], OrderKey)>,
}

/// Earlier X25519 keys remembered per member (`Member::earlier_keys`). A member who
/// updates its key more often makes the key older than these stale, which costs a rekey.
pub const MAX_EARLIER_KEYS: usize = 8;

/// Key updates one member may sign in one conversation (its own chain decides): each
/// costs every node a profile check whenever the membership is replayed. Monthly updates
/// last more than ten years.
pub const MAX_KEY_UPDATES: usize = 128;

impl Member {
    fn new(profile: Profile, admin: bool) -> Self {
        Member {
            profile,
            admin,
            earlier_keys: Vec::new(),
        }
    }

    /// Whether a rekey at `place` in the order may wrap this member's key to `dh`: the
    /// member's key now, or one it replaced after `place`.
    pub fn holds_key(&self, dh: &[u8; 32], place: &OrderKey) -> bool {
        self.profile.dh_public == *dh
            || self
                .earlier_keys
                .iter()
                .any(|(k, replaced)| k == dh && place < replaced)
    }
}

/// Why an event is not accepted (yet).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("conversation has no create event yet")]
    NotCreated,
    #[error("sequence gap: expected {expected}, got {got}")]
    Gap { expected: u64, got: u64 },
    #[error("duplicate")]
    Duplicate,
    #[error("equivocation: two different events with one author and sequence number")]
    Equivocation,
    #[error("invalid: {0}")]
    Invalid(&'static str),
}

impl Rejection {
    /// Pending events may become valid once missing events arrive.
    pub fn is_pending(&self) -> bool {
        matches!(self, Rejection::NotCreated | Rejection::Gap { .. })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    pub kind: Option<ConversationKind>,
    pub members: BTreeMap<UserId, Member>,
}

impl Membership {
    pub fn is_member(&self, user: &UserId) -> bool {
        self.members.contains_key(user)
    }

    pub fn is_admin(&self, user: &UserId) -> bool {
        self.members.get(user).is_some_and(|m| m.admin)
    }

    /// Apply one membership operation authored by `author` at `place` in the order, or
    /// say why it is invalid. A removal is not judged here (`Authority` decides which
    /// removals hold); applying one only takes its effect. Adding a member, or promoting
    /// or removing a non-member, is a valid no-op: two admins doing the same thing at once
    /// withdraw nothing.
    pub fn apply(
        &mut self,
        conversation: &ConversationId,
        author: &UserId,
        op: &MembershipOp,
        place: &OrderKey,
        profiles: &VerifiedProfiles,
    ) -> Result<(), Rejection> {
        use Rejection::Invalid;
        if let MembershipOp::Create {
            nonce,
            members,
            admins,
        } = op
        {
            return self.apply_create(conversation, author, nonce, members, admins, profiles);
        }
        if self.kind.is_none() {
            return Err(Rejection::NotCreated);
        }
        if let MembershipOp::KeyUpdate { profile } = op {
            return self.update_key(author, profile, place, profiles);
        }
        if self.kind == Some(ConversationKind::Direct) {
            return Err(Invalid("1:1 conversations have fixed members"));
        }
        if let MembershipOp::Remove { user, .. } = op {
            if user != author && self.members.remove(user).is_some() {
                self.ensure_admin();
            }
            return Ok(());
        }
        if !self.is_member(author) {
            return Err(Invalid("author is not a member"));
        }
        match op {
            MembershipOp::Create { .. }
            | MembershipOp::Remove { .. }
            | MembershipOp::KeyUpdate { .. } => {
                unreachable!("handled above")
            }
            // By a non-admin (its rights taken away concurrently): a no-op.
            MembershipOp::Add { .. } | MembershipOp::Promote { .. } if !self.is_admin(author) => {}
            MembershipOp::Add { profile, .. } => {
                if !profiles.verify(profile) {
                    return Err(Invalid("added profile does not verify"));
                }
                if self.is_member(&profile.user_id) {
                    return Ok(());
                }
                if self.members.len() >= MAX_MEMBERS {
                    return Err(Invalid("group is full"));
                }
                self.members
                    .insert(profile.user_id, Member::new(profile.clone(), false));
            }
            MembershipOp::Leave => {
                self.members.remove(author);
                self.ensure_admin();
            }
            MembershipOp::Promote { user } => {
                if let Some(m) = self.members.get_mut(user) {
                    m.admin = true;
                }
            }
            MembershipOp::Rename => {}
        }
        Ok(())
    }

    fn apply_create(
        &mut self,
        conversation: &ConversationId,
        author: &UserId,
        nonce: &[u8; 16],
        members: &[Profile],
        admins: &[UserId],
        profiles: &VerifiedProfiles,
    ) -> Result<(), Rejection> {
        use Rejection::Invalid;
        let ids: BTreeSet<UserId> = members.iter().map(|p| p.user_id).collect();
        if ids.len() != members.len() || members.len() > MAX_MEMBERS {
            return Err(Invalid("create lists duplicate or too many members"));
        }
        if members.iter().any(|p| !profiles.verify(p)) {
            return Err(Invalid("create carries a profile that does not verify"));
        }
        if !ids.contains(author) || admins.iter().any(|a| !ids.contains(a)) {
            return Err(Invalid("creator or admin not among members"));
        }
        let kind = if *conversation == group_conversation_id(author, nonce) {
            if !admins.contains(author) {
                return Err(Invalid("group creator must be admin"));
            }
            ConversationKind::Group
        } else {
            let pair: Vec<&UserId> = ids.iter().collect();
            if pair.len() != 2 || *conversation != direct_conversation_id(pair[0], pair[1]) {
                return Err(Invalid("conversation id does not match its create event"));
            }
            ConversationKind::Direct
        };
        match self.kind {
            None => {
                self.kind = Some(kind);
                let admin_set: BTreeSet<&UserId> = admins.iter().collect();
                for p in members {
                    let admin = kind == ConversationKind::Direct || admin_set.contains(&p.user_id);
                    self.members
                        .insert(p.user_id, Member::new(p.clone(), admin));
                }
                Ok(())
            }
            // Both sides of a 1:1 chat may create it concurrently; the second is a no-op.
            Some(ConversationKind::Direct) if kind == ConversationKind::Direct => Ok(()),
            Some(_) => Err(Invalid("conversation already created")),
        }
    }

    /// A member's own profile with a new X25519 key, verified (which refuses weak keys).
    /// One not newer than the profile held, or for the same key, is a valid no-op: an
    /// add with the member's newest profile may sort before its concurrent update.
    fn update_key(
        &mut self,
        author: &UserId,
        profile: &Profile,
        place: &OrderKey,
        profiles: &VerifiedProfiles,
    ) -> Result<(), Rejection> {
        use Rejection::Invalid;
        let Some(m) = self.members.get_mut(author) else {
            return Err(Invalid("author is not a member"));
        };
        if profile.user_id != *author {
            return Err(Invalid("a key update for someone else"));
        }
        if !profiles.verify(profile) {
            return Err(Invalid("key update profile does not verify"));
        }
        if profile.updated_ms <= m.profile.updated_ms || profile.dh_public == m.profile.dh_public {
            return Ok(());
        }
        let old = std::mem::replace(&mut m.profile, profile.clone());
        m.earlier_keys.push((old.dh_public, *place));
        if m.earlier_keys.len() > MAX_EARLIER_KEYS {
            m.earlier_keys.remove(0);
        }
        Ok(())
    }

    /// A group never stays without an admin: the member with the lowest id takes over.
    fn ensure_admin(&mut self) {
        if !self.members.values().any(|m| m.admin)
            && let Some(m) = self.members.values_mut().next()
        {
            m.admin = true;
        }
    }
}

/// Everything a node derives from a conversation's events.
#[derive(Debug)]
pub struct ConversationState {
    pub id: ConversationId,
    /// Membership and rekey events, in total order.
    control: Vec<Event>,
    /// Membership after the last control event.
    pub membership: Membership,
    /// Keys this node opened, by the rekey that carried them (inside, or read-only
    /// outside). A body is opened with the key its header names, and no other.
    keys: BTreeMap<EventId, EpochKey>,
    /// The own X25519 key each of `keys` was opened with (not for keys recalled from the
    /// store): `Engine::drop_expired_keys` seals those of a key it deletes.
    opened_with: BTreeMap<EventId, [u8; 32]>,
    /// Texts whose named key did not reach every member at their place
    /// (`for_some_members`), decided when each is applied.
    partial: BTreeSet<EventId>,
    /// Whether a rekey reached every member (its recipients hold their profile keys) after
    /// the first `n` control events, by (rekey, n): a text costs a lookup, not a pass over
    /// the members. A control event that arrives between others forces a rebuild, which
    /// starts afresh, so an entry never outlives the order it was computed in.
    coverage: BTreeMap<(EventId, usize), bool>,
    /// Complaints held (`EventKind::KeyComplaint`), those kept outside included, by the
    /// rekey they name.
    complaints: BTreeMap<EventId, Vec<Event>>,
    /// Rekeys some recipient proved wrong (a complaint that holds): never the current key.
    blamed: BTreeSet<EventId>,
    /// Rekeys whose wrap for this node did not hold the committed key.
    mismatched: BTreeSet<EventId>,
    /// The well-formed rekeys held (inside or outside) by ephemeral key. One key in two
    /// rekeys blames both (`register_ephemeral`).
    ephemerals: BTreeMap<[u8; 32], Vec<(EventId, UserId)>>,
    /// Rekeys blamed since the caller last looked (`take_newly_blamed`), with authors.
    newly_blamed: Vec<(EventId, UserId)>,
    /// Lines for the chat: what each membership event did (`notice::Notice`).
    notices: BTreeMap<EventId, Notice>,
    pub vv: VersionVector,
    last_lamport: BTreeMap<UserId, u64>,
    /// The id of each author's last event: the next one must name it as `prev`.
    heads: BTreeMap<UserId, EventId>,
    /// Which removals hold and the marks they leave (decided from membership events,
    /// those kept outside included).
    authority: Authority,
    /// Profiles checked once: the node's memory, shared by all its conversations and
    /// their rebuilds.
    profiles: Arc<VerifiedProfiles>,
    /// Events kept outside per author (`MAX_OUTSIDE_EVENTS`).
    outside: BTreeMap<UserId, u64>,
    pub max_key: Option<OrderKey>,
    pub name: Option<String>,
    /// Latest delivery receipt per member.
    pub delivered: BTreeMap<UserId, VersionVector>,
    /// Latest read receipt per member.
    pub read: BTreeMap<UserId, OrderKey>,
    /// Wall clock of the newest text, for sorting chat lists.
    pub last_activity_ms: u64,
    /// Edits, reactions and deletions by the text they act on.
    pub actions: Actions,
}

impl ConversationState {
    pub fn new(id: ConversationId) -> Self {
        Self::with_profiles(id, Arc::default())
    }

    /// A new state that remembers checked profiles in `profiles` (the node's, shared by
    /// all its conversations).
    pub fn with_profiles(id: ConversationId, profiles: Arc<VerifiedProfiles>) -> Self {
        ConversationState {
            id,
            control: Vec::new(),
            membership: Membership::default(),
            keys: BTreeMap::new(),
            opened_with: BTreeMap::new(),
            partial: BTreeSet::new(),
            coverage: BTreeMap::new(),
            complaints: BTreeMap::new(),
            blamed: BTreeSet::new(),
            mismatched: BTreeSet::new(),
            ephemerals: BTreeMap::new(),
            newly_blamed: Vec::new(),
            notices: BTreeMap::new(),
            vv: VersionVector::new(),
            last_lamport: BTreeMap::new(),
            heads: BTreeMap::new(),
            authority: Authority::default(),
            outside: BTreeMap::new(),
            max_key: None,
            name: None,
            delivered: BTreeMap::new(),
            read: BTreeMap::new(),
            last_activity_ms: 0,
            actions: Actions::new(id),
            profiles,
        }
    }

    pub fn next_seq(&self, author: &UserId) -> u64 {
        self.vv.get(author).copied().unwrap_or(0) + 1
    }

    /// The clock for `author`'s next event: after everything seen, unless a member pushed
    /// the clock beyond what `author`'s next seq allows; always above its own last clock.
    pub fn next_lamport(&self, author: &UserId) -> u64 {
        let own = self.last_lamport.get(author).copied().unwrap_or(0) + 1;
        let follow = self.max_key.map_or(1, |k| k.lamport.saturating_add(1));
        own.max(follow.min(self.lamport_cap(author, self.next_seq(author))))
    }

    /// The largest Lamport clock `author`'s event `seq` may carry: `max_lamport(seq)`, or,
    /// for a member admitted by an add, the add's clock plus `max_lamport` of the events
    /// since the add's mark, if that is more. (Otherwise a member added after someone
    /// pushed the clock to its cap could not date its next event after its add, and could
    /// never write; an admin can lend its puppet no more than its own cap.)
    pub fn lamport_cap(&self, author: &UserId, seq: u64) -> u64 {
        let own = max_lamport(seq);
        match self.authority.admitted_by(author, seq) {
            Some((at, pos)) => own.max(at.lamport.saturating_add(max_lamport(seq - pos))),
            None => own,
        }
    }

    /// The id of `author`'s last event held.
    pub fn head_of(&self, author: &UserId) -> Option<EventId> {
        self.heads.get(author).copied()
    }

    /// The id the next event of `author` names as its predecessor.
    pub fn prev_of_next(&self, author: &UserId) -> EventId {
        self.heads.get(author).copied().unwrap_or(EventId([0; 32]))
    }

    /// Decrypt the sealed part of an event with the key its header names, if this node
    /// opened that key. No other key is tried: XChaCha20-Poly1305 does not commit to its
    /// key, so a body built to open under two keys would otherwise read differently for
    /// members holding different keys.
    pub fn decrypt(&self, event: &Event) -> Option<Content> {
        if event.sealed.is_empty() {
            return None;
        }
        let aad = Event::body_aad(&event.header, &event.public);
        self.keys
            .get(&event.header.key)?
            .decrypt(&aad, &event.sealed)
            .ok()
            .and_then(|plain| Content::decode(&plain).ok())
    }

    /// Whether a text was written under a key that not every member at its place was
    /// given (a rekey sealed to some members only, one whose author is not among its
    /// recipients, one kept outside its author's chain, one a member proved wrong, or a
    /// concurrent add the writer had not seen): shown marked, not as a message to the
    /// whole group. Every node holding the same events decides the same.
    pub fn for_some_members(&self, event: &Event) -> bool {
        self.partial.contains(&event.id()) || self.blamed.contains(&event.header.key)
    }

    /// Whether a stored membership event changes membership: a removal only if it holds.
    fn takes_effect(&self, event: &Event, op: &MembershipOp) -> bool {
        !matches!(op, MembershipOp::Remove { .. }) || self.authority.holds(&event.id())
    }

    /// Membership in force just before `key` in the total order.
    fn membership_before(&self, key: &OrderKey) -> std::borrow::Cow<'_, Membership> {
        if self
            .control
            .last()
            .is_none_or(|last| last.order_key() < *key)
        {
            return std::borrow::Cow::Borrowed(&self.membership);
        }
        let mut m = Membership::default();
        for e in self.control.iter().take_while(|e| e.order_key() < *key) {
            if e.header.kind == EventKind::Membership
                && let Ok(op) = MembershipOp::decode(&e.public)
                && self.takes_effect(e, &op)
            {
                let _ = m.apply(
                    &self.id,
                    &e.header.author,
                    &op,
                    &e.order_key(),
                    &self.profiles,
                );
            }
        }
        std::borrow::Cow::Owned(m)
    }

    /// Decide whether a signature-checked event is acceptable now. Does not change state.
    pub fn check(
        &self,
        event: &Event,
        known_id: Option<wire::EventId>,
    ) -> Result<Standing, Rejection> {
        use Rejection::Invalid;
        let h = &event.header;
        if h.conversation != self.id {
            return Err(Invalid("wrong conversation"));
        }
        let have = self.vv.get(&h.author).copied().unwrap_or(0);
        if h.seq == 0 {
            return Err(Invalid("sequence numbers start at 1"));
        }
        if h.seq <= have {
            return match known_id {
                Some(id) if id != event.id() => Err(Rejection::Equivocation),
                _ => Err(Rejection::Duplicate),
            };
        }
        if h.seq > have + 1 {
            return Err(Rejection::Gap {
                expected: have + 1,
                got: h.seq,
            });
        }
        if h.prev != self.prev_of_next(&h.author) {
            return Err(if h.seq == 1 {
                Invalid("the first event names a predecessor")
            } else {
                Rejection::Equivocation
            });
        }
        if h.lamport <= self.last_lamport.get(&h.author).copied().unwrap_or(0) {
            return Err(Invalid("lamport clock did not advance"));
        }
        if h.lamport > self.lamport_cap(&h.author, h.seq) {
            return Err(Invalid("lamport clock jumps too far"));
        }
        let op = match h.kind {
            EventKind::Membership => Some(
                MembershipOp::decode(&event.public)
                    .map_err(|_| Invalid("membership op does not decode"))?,
            ),
            _ => None,
        };
        if event.has_body() == (h.key == EventId([0; 32])) {
            return Err(Invalid("a sealed body names its key, nothing else does"));
        }
        let key = event.order_key();
        if let Some(MembershipOp::Remove { .. }) = op
            && self.authority.holds_with(event)
        {
            // Which removals hold is decided over all of them (a later removal may refute
            // this one); one that holds is valid even where its author is already out (two
            // admins who removed each other). One that does not hold is a no-op, judged
            // like any other event of its author. Where its author is out, it counts
            // against the same bound as anything else it signs there: a removed admin's
            // counter-removals each hold, and each costs every holder a rebuild.
            if self.counts_outside(event)
                && self.repeats_a_removal(event)
                && self.outside.get(&h.author).copied().unwrap_or(0) >= MAX_OUTSIDE_EVENTS
            {
                return Err(Invalid("author was removed before this event"));
            }
            return Ok(Standing::Inside);
        }
        if self.is_outside(event) {
            return if self.outside.get(&h.author).copied().unwrap_or(0) < MAX_OUTSIDE_EVENTS {
                Ok(Standing::Outside)
            } else {
                Err(Invalid("author was removed before this event"))
            };
        }
        let membership = self.membership_before(&key);
        match h.kind {
            EventKind::Membership => {
                let Some(op) = op else {
                    return Err(Invalid("membership op does not decode"));
                };
                if let MembershipOp::Remove { .. } = op {
                    // Does not hold (see above): a no-op by a member.
                    return if membership.is_member(&h.author) {
                        Ok(Standing::Inside)
                    } else {
                        Err(Invalid("author is not a member at this point"))
                    };
                }
                if matches!(op, MembershipOp::Create { .. }) && h.epoch != 0 {
                    return Err(Invalid("create carries no sealed content"));
                }
                if matches!(op, MembershipOp::Rename) && !event.has_body() {
                    return Err(Invalid("rename without a name"));
                }
                if matches!(op, MembershipOp::KeyUpdate { .. })
                    && self.key_updates_before(&h.author, h.seq) >= MAX_KEY_UPDATES
                {
                    return Err(Invalid("too many key updates"));
                }
                let mut m = membership.into_owned();
                m.apply(&self.id, &h.author, &op, &key, &self.profiles)
                    .map(|()| Standing::Inside)
            }
            EventKind::Rekey => {
                if membership.kind.is_none() {
                    return Err(Rejection::NotCreated);
                }
                if !membership.is_member(&h.author) {
                    return Err(Invalid("rekey author is not a member"));
                }
                Self::rekey_rules(&self.id, event)?;
                // Recipients need not be exactly the members (a concurrent change makes an
                // honest rekey differ); nobody writes under a key whose recipients differ
                // from the members they see (`current_key`).
                Ok(Standing::Inside)
            }
            _ => {
                if membership.kind.is_none() {
                    return Err(Rejection::NotCreated);
                }
                if !membership.is_member(&h.author) {
                    return Err(Invalid("author is not a member at this point"));
                }
                if matches!(
                    h.kind,
                    EventKind::Text | EventKind::Edit | EventKind::Reaction
                ) && (h.epoch == 0 || !event.has_body())
                {
                    return Err(Invalid("text must be encrypted"));
                }
                if h.kind.has_target() && event.target().is_none() {
                    return Err(Invalid("names no message it acts on"));
                }
                if h.kind == EventKind::Delete && (h.epoch != 0 || event.has_body()) {
                    return Err(Invalid("a deletion carries nothing sealed"));
                }
                if h.kind == EventKind::KeyComplaint {
                    let body = ComplaintBody::decode(&event.public)
                        .ok()
                        .filter(|_| h.epoch == 0 && !event.has_body())
                        .ok_or(Invalid("complaint does not decode"))?;
                    // One per author and rekey: a member cannot make others verify
                    // proofs without end. (Its own chain decides, so every node agrees.)
                    if self.complained(&h.author, &body.rekey) {
                        return Err(Invalid("a second complaint about one rekey"));
                    }
                }
                Ok(Standing::Inside)
            }
        }
    }

    /// What makes a rekey well-formed wherever it stands: a positive epoch, nothing
    /// sealed, a body that decodes, a proven ephemeral key, distinct recipients.
    fn rekey_rules(conversation: &ConversationId, event: &Event) -> Result<(), Rejection> {
        use Rejection::Invalid;
        let h = &event.header;
        if h.epoch == 0 || event.has_body() {
            return Err(Invalid("rekey epoch must be positive and nothing sealed"));
        }
        let body =
            RekeyBody::decode(&event.public).map_err(|_| Invalid("rekey body does not decode"))?;
        if !body.ephemeral_is_proven(conversation, &h.author, h.epoch) {
            return Err(Invalid("rekey's ephemeral key is not proven"));
        }
        let recipients: BTreeSet<UserId> = body.recipients.iter().map(|r| r.user).collect();
        if recipients.len() != body.recipients.len() {
            return Err(Invalid("rekey names a recipient twice"));
        }
        Ok(())
    }

    /// Whether an event falls where its author's chain is cut (a removal that holds lies
    /// below its seq), whatever its kind: it counts against `MAX_OUTSIDE_EVENTS`, also a
    /// removal that holds there (a removed admin's counter-removal).
    fn counts_outside(&self, event: &Event) -> bool {
        let h = &event.header;
        let create = h.kind == EventKind::Membership
            && matches!(
                MembershipOp::decode(&event.public),
                Ok(MembershipOp::Create { .. })
            );
        !create && !self.authority.inside(&h.author, h.seq, &event.order_key())
    }

    /// Whether a removal removes someone its author already removed earlier in its chain
    /// (held inside: a removal that holds is). The first "remove the remover" of an admin
    /// removed concurrently is free (honest mutual removals must not fail at the bound);
    /// every repeat counts against `MAX_OUTSIDE_EVENTS`.
    fn repeats_a_removal(&self, event: &Event) -> bool {
        let Ok(MembershipOp::Remove { user, .. }) = MembershipOp::decode(&event.public) else {
            return false;
        };
        let h = &event.header;
        self.control.iter().any(|e| {
            e.header.author == h.author
                && e.header.seq < h.seq
                && matches!(MembershipOp::decode(&e.public), Ok(MembershipOp::Remove { user: u, .. }) if u == user)
        })
    }

    /// Key updates `author` signed in its chain before `seq` (held inside).
    fn key_updates_before(&self, author: &UserId, seq: u64) -> usize {
        self.control
            .iter()
            .filter(|e| {
                e.header.author == *author
                    && e.header.seq < seq
                    && matches!(
                        MembershipOp::decode(&e.public),
                        Ok(MembershipOp::KeyUpdate { .. })
                    )
            })
            .count()
    }

    /// Whether a held event is kept outside its author's chain (`MAX_OUTSIDE_EVENTS`):
    /// stored, but not applied, shown or opened.
    pub fn is_outside(&self, event: &Event) -> bool {
        // Only removals hold: one that holds counts even where its author is cut.
        self.counts_outside(event) && !self.authority.holds(&event.id())
    }

    /// Whether accepting `event` requires re-deciding later events (a control event that
    /// sorts before something already stored).
    pub fn needs_rebuild(&self, event: &Event) -> bool {
        // A removal or an add changes marks on a member's chain: events already held may
        // fall outside (or, for an add, the replay must see it in place).
        let marks = event.header.kind == EventKind::Membership
            && matches!(
                MembershipOp::decode(&event.public),
                Ok(MembershipOp::Remove { .. } | MembershipOp::Add { .. })
            );
        marks
            || (event.header.kind.is_control()
                && self.max_key.is_some_and(|m| event.order_key() < m))
    }

    /// Take an accepted event into the state. `me` opens rekeys sealed to this node.
    /// Returns the decrypted content, if any.
    pub fn apply(&mut self, event: &Event, me: Option<&Identity>) -> Option<Content> {
        let h = &event.header;
        self.vv.insert(h.author, h.seq);
        self.last_lamport.insert(h.author, h.lamport);
        self.heads.insert(h.author, event.id());
        let key = event.order_key();
        if self.max_key.is_none_or(|m| key > m) {
            self.max_key = Some(key);
        }
        if h.kind == EventKind::Membership {
            self.authority.insert(event);
        }
        if h.kind == EventKind::KeyComplaint {
            // Its proof is evidence whoever holds it, inside or outside.
            self.take_complaint(event);
        }
        let cut = self.counts_outside(event);
        let holds = self.authority.holds(&event.id());
        // The first removal of someone that holds where its author is cut is free.
        if cut && (!holds || self.repeats_a_removal(event)) {
            *self.outside.entry(h.author).or_default() += 1;
        }
        if cut && !holds {
            if h.kind == EventKind::Delete {
                // An author's deletion of its own message counts wherever its chain is
                // cut (it signed it; the message is its own), so whether a removal is
                // learned before or after it never changes what is purged. As an admin
                // it counts only inside.
                self.actions.record(event, false);
            }
            if h.kind == EventKind::Rekey {
                // Read-only: members may have written under this key before they learned
                // that its author was out (`current_key` never picks it for writing).
                self.open_read_only(event, me);
            }
            return None;
        }
        match h.kind {
            EventKind::Membership => {
                self.insert_control(event);
                if let Ok(op) = MembershipOp::decode(&event.public)
                    && self.takes_effect(event, &op)
                {
                    let before = notice::Before::of(&self.membership, &h.author, &op);
                    let _ = self.membership.apply(
                        &self.id,
                        &h.author,
                        &op,
                        &event.order_key(),
                        &self.profiles,
                    );
                    if let Some(n) = before.notice(&self.membership, &h.author, &op) {
                        self.notices.insert(event.id(), n);
                    }
                }
            }
            EventKind::Rekey => {
                self.insert_control(event);
                self.register_ephemeral(event);
                self.blame_from_complaints(event);
                if let Some(me) = me {
                    self.open_rekey(event, me);
                }
                return None;
            }
            _ => {}
        }
        if h.kind.has_target() || h.kind == EventKind::Text {
            let by_admin = h.kind == EventKind::Delete && {
                let m = self.membership_before(&event.order_key());
                m.kind == Some(ConversationKind::Group) && m.is_admin(&h.author)
            };
            self.actions.record(event, by_admin);
        }
        if h.kind == EventKind::Text && !self.key_reaches_members(event) {
            self.partial.insert(event.id());
        }
        let content = self.decrypt(event)?;
        match &content {
            Content::Text { .. } | Content::Attachment(_) => {
                self.last_activity_ms = self.last_activity_ms.max(h.wall_ms)
            }
            Content::GroupName { name } if h.kind == EventKind::Membership => {
                if self.name.as_ref().is_some_and(|old| old != name) {
                    self.notices
                        .insert(event.id(), Notice::Renamed(name.clone()));
                }
                self.name = Some(name.clone());
            }
            Content::Delivered { upto } if h.kind == EventKind::DeliveryReceipt => {
                self.delivered.insert(h.author, upto.clone());
            }
            Content::Read { upto } if h.kind == EventKind::ReadReceipt => {
                let entry = self.read.entry(h.author).or_insert(*upto);
                *entry = (*entry).max(*upto);
            }
            _ => {}
        }
        Some(content)
    }

    /// Take a group receipt for this node's own messages (`me` is their author) into the
    /// delivery state. Positions only move forward.
    /// How far `reader` holds `me`'s events (seq) and has read (order key), as far as
    /// its receipts told us.
    pub fn reader_position(&self, me: &UserId, reader: &UserId) -> (u64, Option<OrderKey>) {
        let delivered = self
            .delivered
            .get(reader)
            .and_then(|vv| vv.get(me))
            .copied()
            .unwrap_or(0);
        (delivered, self.read.get(reader).copied())
    }

    pub fn apply_reader_position(
        &mut self,
        me: &UserId,
        reader: &UserId,
        delivered_seq: u64,
        read: Option<OrderKey>,
    ) {
        let delivered = self
            .delivered
            .entry(*reader)
            .or_default()
            .entry(*me)
            .or_insert(0);
        *delivered = (*delivered).max(delivered_seq);
        if let Some(read) = read {
            let entry = self.read.entry(*reader).or_insert(read);
            *entry = (*entry).max(read);
        }
    }

    fn insert_control(&mut self, event: &Event) {
        let key = event.order_key();
        let pos = self.control.partition_point(|e| e.order_key() < key);
        self.control.insert(pos, event.clone());
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.membership.members.values()
    }

    pub fn kind(&self) -> Option<ConversationKind> {
        self.membership.kind
    }

    pub fn control_events(&self) -> &[Event] {
        &self.control
    }

    /// (author, removed member) of every removal that holds.
    pub fn removals_that_hold(&self) -> Vec<(UserId, UserId)> {
        self.control
            .iter()
            .filter(|e| self.authority.holds(&e.id()))
            .filter_map(|e| match MembershipOp::decode(&e.public) {
                Ok(MembershipOp::Remove { user, .. }) => Some((e.header.author, user)),
                _ => None,
            })
            .collect()
    }

    /// What tells `user`, who is not a member now, that it is out: (author, seq) of the
    /// last removal of `user` that holds, or, if `user`'s last add sorts after it and was
    /// refuted, of the removal that refuted the add. (A removal that does not hold would
    /// not tell it; a member added by an admin whose rights were taken away concurrently
    /// would otherwise believe itself a member for good.)
    pub fn removal_of(&self, user: &UserId) -> Option<(UserId, u64)> {
        if self.membership.is_member(user) {
            return None;
        }
        let removal = self.control.iter().rev().find(|e| {
            e.header.kind == EventKind::Membership
                && matches!(MembershipOp::decode(&e.public), Ok(MembershipOp::Remove { user: u, .. }) if u == *user)
                && self.authority.holds(&e.id())
        });
        let refuted = self.authority.refuted_add_of(user);
        match (removal, refuted) {
            (Some(r), Some((add, _))) if add < r.order_key() => {
                Some((r.header.author, r.header.seq))
            }
            (_, Some((_, refuter))) => Some((refuter.author, refuter.seq)),
            (Some(r), None) => Some((r.header.author, r.header.seq)),
            (None, None) => None,
        }
    }

    /// Every chain a former member must see up to a point to learn that it is out, as
    /// (author, seq), one per author: the removal that holds, and the refuter of an add
    /// after it. `removal_of` names only the one that decides; sending only that one left
    /// a member that was removed, added again and had the add refuted without the removal
    /// itself, so it never learned it was out (dishonest schedules, counter-removals seed
    /// 446, after wire version 5 changed every event id).
    pub fn removal_marks(&self, user: &UserId) -> Vec<(UserId, u64)> {
        if self.membership.is_member(user) {
            return Vec::new();
        }
        let mut marks: BTreeMap<UserId, u64> = BTreeMap::new();
        let removal = self.control.iter().rev().find(|e| {
            e.header.kind == EventKind::Membership
                && matches!(MembershipOp::decode(&e.public), Ok(MembershipOp::Remove { user: u, .. }) if u == *user)
                && self.authority.holds(&e.id())
        });
        if let Some(r) = removal {
            marks.insert(r.header.author, r.header.seq);
        }
        // The refuter of an add that came after the removal (as `removal_of` decides);
        // one of an earlier add says nothing the removal does not.
        if let Some((add, refuter)) = self.authority.refuted_add_of(user)
            && removal.is_none_or(|r| add >= r.order_key())
        {
            let seq = marks.entry(refuter.author).or_insert(refuter.seq);
            *seq = (*seq).max(refuter.seq);
        }
        marks.into_iter().collect()
    }
}
