//! The rules of one conversation, as a pure state machine: who is a member at each point
//! of the total order, which events are valid there, and which epoch keys this node holds.
//!
//! It never touches storage or the network. `sync` feeds it events; a full `rebuild`
//! replays a conversation's stored events in order, which is how a node starts up and how
//! it re-decides validity when a membership event arrives late.

use std::collections::{BTreeMap, BTreeSet};

use crate::crypto::{self, EpochKey, LABEL_DIRECT_CONVERSATION, LABEL_GROUP_CONVERSATION};
use crate::identity::{Identity, Profile, UserId};
use crate::wire::{
    self, Content, ConversationId, Event, EventKind, MAX_MEMBERS, MembershipOp, OrderKey,
    RekeyBody, VersionVector, hash32,
};

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

    fn is_admin(&self, user: &UserId) -> bool {
        self.members.get(user).is_some_and(|m| m.admin)
    }

    /// Apply one membership operation authored by `author`, or say why it is invalid.
    pub fn apply(
        &mut self,
        conversation: &ConversationId,
        author: &UserId,
        op: &MembershipOp,
    ) -> Result<(), Rejection> {
        use Rejection::Invalid;
        if let MembershipOp::Create {
            nonce,
            members,
            admins,
        } = op
        {
            return self.apply_create(conversation, author, nonce, members, admins);
        }
        if self.kind.is_none() {
            return Err(Rejection::NotCreated);
        }
        if self.kind == Some(ConversationKind::Direct) {
            return Err(Invalid("1:1 conversations have fixed members"));
        }
        if !self.is_member(author) {
            return Err(Invalid("author is not a member"));
        }
        match op {
            MembershipOp::Create { .. } => unreachable!("handled above"),
            MembershipOp::Add { profile } => {
                if !self.is_admin(author) {
                    return Err(Invalid("only admins add members"));
                }
                if profile.verify().is_err() {
                    return Err(Invalid("added profile does not verify"));
                }
                if self.is_member(&profile.user_id) {
                    return Err(Invalid("already a member"));
                }
                if self.members.len() >= MAX_MEMBERS {
                    return Err(Invalid("group is full"));
                }
                self.members.insert(
                    profile.user_id,
                    Member {
                        profile: profile.clone(),
                        admin: false,
                    },
                );
            }
            MembershipOp::Remove { user } => {
                if !self.is_admin(author) {
                    return Err(Invalid("only admins remove members"));
                }
                if user == author || self.members.remove(user).is_none() {
                    return Err(Invalid("remove target is not another member"));
                }
                self.ensure_admin();
            }
            MembershipOp::Leave => {
                self.members.remove(author);
                self.ensure_admin();
            }
            MembershipOp::Promote { user } => {
                if !self.is_admin(author) {
                    return Err(Invalid("only admins promote"));
                }
                match self.members.get_mut(user) {
                    Some(m) => m.admin = true,
                    None => return Err(Invalid("promote target is not a member")),
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
    ) -> Result<(), Rejection> {
        use Rejection::Invalid;
        let ids: BTreeSet<UserId> = members.iter().map(|p| p.user_id).collect();
        if ids.len() != members.len() || members.len() > MAX_MEMBERS {
            return Err(Invalid("create lists duplicate or too many members"));
        }
        if members.iter().any(|p| p.verify().is_err()) {
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
                    self.members.insert(
                        p.user_id,
                        Member {
                            profile: p.clone(),
                            admin: kind == ConversationKind::Direct
                                || admin_set.contains(&p.user_id),
                        },
                    );
                }
                Ok(())
            }
            // Both sides of a 1:1 chat may create it concurrently; the second is a no-op.
            Some(ConversationKind::Direct) if kind == ConversationKind::Direct => Ok(()),
            Some(_) => Err(Invalid("conversation already created")),
        }
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
    keys: BTreeMap<u32, Vec<(OrderKey, EpochKey)>>,
    pub vv: VersionVector,
    last_lamport: BTreeMap<UserId, u64>,
    pub max_key: Option<OrderKey>,
    pub name: Option<String>,
    /// Latest delivery receipt per member.
    pub delivered: BTreeMap<UserId, VersionVector>,
    /// Latest read receipt per member.
    pub read: BTreeMap<UserId, OrderKey>,
    /// Wall clock of the newest text, for sorting chat lists.
    pub last_activity_ms: u64,
}

impl ConversationState {
    pub fn new(id: ConversationId) -> Self {
        ConversationState {
            id,
            control: Vec::new(),
            membership: Membership::default(),
            keys: BTreeMap::new(),
            vv: VersionVector::new(),
            last_lamport: BTreeMap::new(),
            max_key: None,
            name: None,
            delivered: BTreeMap::new(),
            read: BTreeMap::new(),
            last_activity_ms: 0,
        }
    }

    pub fn next_seq(&self, author: &UserId) -> u64 {
        self.vv.get(author).copied().unwrap_or(0) + 1
    }

    pub fn next_lamport(&self) -> u64 {
        self.max_key.map_or(1, |k| k.lamport.saturating_add(1))
    }

    /// The newest epoch and its key, if this node holds one. Among concurrent rekeys to
    /// the same epoch, the one latest in the total order wins, on every member alike.
    pub fn current_key(&self) -> Option<(u32, &EpochKey)> {
        let (epoch, keys) = self.keys.iter().next_back()?;
        keys.iter()
            .max_by_key(|(k, _)| *k)
            .map(|(_, key)| (*epoch, key))
    }

    pub fn has_epoch(&self, epoch: u32) -> bool {
        self.keys.contains_key(&epoch)
    }

    /// The highest epoch any rekey event announced (whether or not we can open it).
    pub fn latest_epoch(&self) -> u32 {
        self.control
            .iter()
            .filter(|e| e.header.kind == EventKind::Rekey)
            .map(|e| e.header.epoch)
            .max()
            .unwrap_or(0)
    }

    /// Decrypt the sealed part of an event, if we hold its epoch key.
    pub fn decrypt(&self, event: &Event) -> Option<Content> {
        if event.sealed.is_empty() {
            return None;
        }
        let aad = Event::body_aad(&event.header, &event.public);
        self.keys
            .get(&event.header.epoch)?
            .iter()
            .rev()
            .find_map(|(_, key)| key.decrypt(&aad, &event.sealed).ok())
            .and_then(|plain| Content::decode(&plain).ok())
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
            {
                let _ = m.apply(&self.id, &e.header.author, &op);
            }
        }
        std::borrow::Cow::Owned(m)
    }

    /// Decide whether a signature-checked event is acceptable now. Does not change state.
    pub fn check(&self, event: &Event, known_id: Option<wire::EventId>) -> Result<(), Rejection> {
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
                Some(id) if id != event.id() => {
                    Err(Invalid("equivocation: two events share a sequence number"))
                }
                _ => Err(Rejection::Duplicate),
            };
        }
        if h.seq > have + 1 {
            return Err(Rejection::Gap {
                expected: have + 1,
                got: h.seq,
            });
        }
        if h.lamport == u64::MAX
            || h.lamport <= self.last_lamport.get(&h.author).copied().unwrap_or(0)
        {
            return Err(Invalid("lamport clock did not advance"));
        }
        let key = event.order_key();
        let membership = self.membership_before(&key);
        match h.kind {
            EventKind::Membership => {
                let op = MembershipOp::decode(&event.public)
                    .map_err(|_| Invalid("membership op does not decode"))?;
                if matches!(op, MembershipOp::Create { .. }) && h.epoch != 0 {
                    return Err(Invalid("create carries no sealed content"));
                }
                if matches!(op, MembershipOp::Rename) && event.sealed.is_empty() {
                    return Err(Invalid("rename without a name"));
                }
                let mut m = membership.into_owned();
                m.apply(&self.id, &h.author, &op)
            }
            EventKind::Rekey => {
                if membership.kind.is_none() {
                    return Err(Rejection::NotCreated);
                }
                if !membership.is_member(&h.author) {
                    return Err(Invalid("rekey author is not a member"));
                }
                if h.epoch == 0 || !event.sealed.is_empty() {
                    return Err(Invalid("rekey epoch must be positive and nothing sealed"));
                }
                let body = RekeyBody::decode(&event.public)
                    .map_err(|_| Invalid("rekey body does not decode"))?;
                let recipients: BTreeSet<UserId> =
                    body.recipients.iter().map(|(u, _)| *u).collect();
                let members: BTreeSet<UserId> = membership.members.keys().copied().collect();
                // Sealing to anyone but exactly the current members would leak the key.
                if recipients.len() != body.recipients.len() || recipients != members {
                    return Err(Invalid("rekey recipients are not exactly the members"));
                }
                Ok(())
            }
            _ => {
                if membership.kind.is_none() {
                    return Err(Rejection::NotCreated);
                }
                if !membership.is_member(&h.author) {
                    return Err(Invalid("author is not a member at this point"));
                }
                if matches!(h.kind, EventKind::Text) && (h.epoch == 0 || event.sealed.is_empty()) {
                    return Err(Invalid("text must be encrypted"));
                }
                Ok(())
            }
        }
    }

    /// Whether accepting `event` requires re-deciding later events (a control event that
    /// sorts before something already stored).
    pub fn needs_rebuild(&self, event: &Event) -> bool {
        event.header.kind.is_control() && self.max_key.is_some_and(|m| event.order_key() < m)
    }

    /// Take an accepted event into the state. `me` opens rekeys sealed to this node.
    /// Returns the decrypted content, if any.
    pub fn apply(&mut self, event: &Event, me: Option<&Identity>) -> Option<Content> {
        let h = &event.header;
        self.vv.insert(h.author, h.seq);
        self.last_lamport.insert(h.author, h.lamport);
        let key = event.order_key();
        if self.max_key.is_none_or(|m| key > m) {
            self.max_key = Some(key);
        }
        match h.kind {
            EventKind::Membership => {
                if let Ok(op) = MembershipOp::decode(&event.public) {
                    let _ = self.membership.apply(&self.id, &h.author, &op);
                }
                self.insert_control(event);
            }
            EventKind::Rekey => {
                self.insert_control(event);
                if let Some(me) = me {
                    self.open_rekey(event, me);
                }
                return None;
            }
            _ => {}
        }
        let content = self.decrypt(event)?;
        match &content {
            Content::Text { .. } => self.last_activity_ms = self.last_activity_ms.max(h.wall_ms),
            Content::GroupName { name } if h.kind == EventKind::Membership => {
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

    fn open_rekey(&mut self, event: &Event, me: &Identity) {
        let Ok(body) = RekeyBody::decode(&event.public) else {
            return;
        };
        let Some((_, sealed)) = body.recipients.iter().find(|(u, _)| *u == me.user_id()) else {
            return;
        };
        let Ok((sender_dh, payload)) = crypto::open(me, sealed) else {
            return;
        };
        // The key must come from the author's profile key, for this conversation and epoch.
        let author_dh = self
            .membership_before(&event.order_key())
            .members
            .get(&event.header.author)
            .map(|m| m.profile.dh_public);
        if author_dh != Some(sender_dh) {
            return;
        }
        if let Ok((conv, epoch, key)) = wire::decode_sealed_key(&payload)
            && conv == self.id
            && epoch == event.header.epoch
        {
            let list = self.keys.entry(epoch).or_default();
            list.push((event.order_key(), EpochKey::from_bytes(key)));
            list.sort_by_key(|(k, _)| *k);
        }
    }

    /// Re-decide a whole conversation from its events in total order. Returns the state
    /// and the events that are no longer valid (each author's chain is cut at its first
    /// invalid event, so version vectors stay contiguous).
    pub fn rebuild(
        id: ConversationId,
        events: impl IntoIterator<Item = Event>,
        me: Option<&Identity>,
    ) -> (Self, Vec<Event>) {
        let mut events: Vec<Event> = events.into_iter().collect();
        events.sort_by_key(|e| e.order_key());
        let mut rebuild = Rebuild::new(id);
        for event in events {
            rebuild.push(event, me);
        }
        rebuild.finish()
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

    /// (author, seq) of the event that last removed `user`, if `user` is not a member now.
    pub fn removal_of(&self, user: &UserId) -> Option<(UserId, u64)> {
        if self.membership.is_member(user) {
            return None;
        }
        self.control.iter().rev().find_map(|e| {
            let removes = e.header.kind == EventKind::Membership
                && matches!(MembershipOp::decode(&e.public), Ok(MembershipOp::Remove { user: u }) if u == *user);
            removes.then_some((e.header.author, e.header.seq))
        })
    }
}

/// Replays a conversation from events fed in total order, one at a time, so a caller can
/// page through a large store without holding it all (see `ConversationState::rebuild`).
pub struct Rebuild {
    state: ConversationState,
    cut: BTreeSet<UserId>,
    dropped: Vec<Event>,
    deferred: Vec<Event>,
}

impl Rebuild {
    pub fn new(id: ConversationId) -> Self {
        Rebuild {
            state: ConversationState::new(id),
            cut: BTreeSet::new(),
            dropped: Vec::new(),
            deferred: Vec::new(),
        }
    }

    /// The next event; events must come in ascending order key.
    pub fn push(&mut self, event: Event, me: Option<&Identity>) {
        if self.cut.contains(&event.header.author) {
            self.dropped.push(event);
            return;
        }
        match self.state.check(&event, None) {
            Ok(()) => {
                self.state.apply(&event, me);
            }
            // A gap in total order can happen when an author's earlier event sorts
            // later (clock skew is impossible here since lamport advances per author),
            // so treat gaps and anything else as invalid.
            Err(_) => {
                self.cut.insert(event.header.author);
                self.deferred.push(event);
            }
        }
    }

    /// The rebuilt state and the events that are no longer valid.
    pub fn finish(mut self) -> (ConversationState, Vec<Event>) {
        self.dropped.extend(self.deferred);
        (self.state, self.dropped)
    }
}
