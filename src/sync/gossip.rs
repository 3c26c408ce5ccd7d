//! Dissemination at town-hall scale: how new events travel, and how two peers find out
//! that they differ, at a cost per event and node that does not grow with the network.
//!
//! - **Push**: a node that stores a new event sends it at once to at most `push_fanout`
//!   connected peers that may hold it (members of its conversation, or relays), chosen at
//!   random, never back to where it came from (`OWN_PUSH_FANOUT` for its own events).
//! - **Lazy announcement**: every `FORWARD_INTERVAL_MS` the other such peers get a `Have`
//!   (conversation, author, newest seq; 72 bytes instead of the event); a peer that lacks
//!   it answers with a `Want`, and at most one `Want` per author is in flight.
//! - **Anti-entropy**: every interval a node sends a `Digest` (16 bytes per conversation)
//!   to `anti_entropy_peers` random peers; only conversations whose digests differ are
//!   compared by whole version vectors (`Summary`).
//! - **Gaps**: an event whose predecessors are missing makes the node ask the sender for
//!   that author's events after the last one it holds (`Want`), not for whole vectors.
//!
//! Every table here is bounded; what overflows falls back to the digest exchange, which
//! repairs anything.

use rand::seq::SliceRandom;

use super::*;
use crate::wire::Announce;

/// Peers a node pushes someone else's new event to at once. With announcements to the
/// rest, 4 is enough for a hop count of about log4(n); each node receives about this many
/// copies of each event, so it is also the main term of the traffic per event.
pub const PUSH_FANOUT: usize = 4;
/// Peers a node pushes its own new event to at once: the first hop decides the latency,
/// and this costs only the author.
pub const OWN_PUSH_FANOUT: usize = 8;
/// Peers sent a digest per anti-entropy round. Over a few rounds every connection is
/// compared; a node is chosen by about as many peers per round as it chooses.
pub const ANTI_ENTROPY_PEERS: usize = 3;
/// Announcements waiting for the next forward tick, per (conversation, author). Beyond
/// this the node sends digests instead (a flood of authors cannot grow it).
pub const MAX_HAVE_DUE: usize = 4096;
/// A `Want` not answered within this is sent again to whoever announces next.
pub const WANT_RETRY_MS: u64 = 1_000;
/// Wants in flight, and routes back to authors (for receipts), kept at most.
pub const MAX_WANTS: usize = 4096;
pub const MAX_ROUTES: usize = 16 * 1024;
/// Extra digests per anti-entropy round, to connected members of conversations whose own
/// events wait in the outbox.
pub const MAX_WAITING_RESYNCS: usize = 8;

/// The key under which a request for a whole unknown conversation is deduplicated.
pub(super) const WHOLE_CONVERSATION: UserId = UserId([0; 32]);

impl<S: Store> Engine<S> {
    /// A digest of every conversation this peer may hold, or None if there is none.
    pub(super) fn digest_for(&self, peer: &UserId) -> Option<SyncMessage> {
        let conversations: Vec<(ConversationId, [u8; wire::DIGEST_BYTES])> = self
            .convs
            .iter()
            .filter(|(id, _)| self.is_shareable(id, peer))
            .map(|(id, state)| {
                (
                    *id,
                    self.conv_digest(id, state, &self.durable_vv(id, state)),
                )
            })
            .take(wire::MAX_SUMMARY_CONVERSATIONS)
            .collect();
        if conversations.is_empty() {
            return None;
        }
        Some(SyncMessage::Digest { conversations })
    }

    pub(super) fn send_digest(&mut self, peer: UserId) {
        if let Some(digest) = self.digest_for(&peer) {
            self.stats.digests_sent += 1;
            self.send(peer, digest);
        }
    }

    /// Compare digests; answer with whole vectors for the conversations that differ,
    /// including those the peer may hold but did not list (it lacks them).
    pub(super) fn handle_digest(
        &mut self,
        peer: UserId,
        conversations: Vec<(ConversationId, [u8; wire::DIGEST_BYTES])>,
    ) -> Result<(), SyncError> {
        if !self.knows_role(&peer) || self.is_congested(&peer) {
            return Ok(());
        }
        let mut listed = BTreeSet::new();
        let mut differ = BTreeSet::new();
        let me = self.me.user_id();
        let mut held_by_peer: Vec<(ConversationId, u64)> = Vec::new();
        let mut removals: Vec<Announce> = Vec::new();
        for (conv, digest) in conversations {
            if !listed.insert(conv) {
                continue; // listed twice: once is enough (each costs a hash of a vector)
            }
            match self.convs.get(&conv) {
                Some(state) if !self.is_shareable(&conv, &peer) => {
                    // A former member: it may learn of its removal (the remover's events
                    // up to it, which it could read as a member), nothing after.
                    let marks = state.removal_marks(&peer);
                    for &(author, seq) in &marks {
                        removals.push(Announce {
                            conversation: conv,
                            author,
                            seq,
                        });
                    }
                    if marks.is_empty() {
                        // Anyone else is answered as if it were unknown here: whether a
                        // node holds a conversation is not told to strangers.
                        differ.insert(conv);
                    }
                }
                Some(state) => {
                    let ours = self.durable_vv(&conv, state);
                    if self.conv_digest(&conv, state, &ours) == digest {
                        // Equal: the peer holds our own events of it too.
                        if let Some(seq) = ours.get(&me)
                            && self.is_shareable(&conv, &peer)
                        {
                            held_by_peer.push((conv, *seq));
                        }
                    } else {
                        differ.insert(conv);
                    }
                }
                None => {
                    differ.insert(conv);
                }
            }
        }
        for (conv, seq) in held_by_peer {
            self.outbox_held(conv, seq)?;
        }
        if !removals.is_empty() {
            self.send(peer, SyncMessage::Have { items: removals });
        }
        for (conv, state) in &self.convs {
            if !listed.contains(conv) && !state.vv.is_empty() && self.is_shareable(conv, &peer) {
                differ.insert(*conv);
            }
        }
        if !differ.is_empty() {
            let summary = self.summary_for(&peer, Some(&differ));
            self.stats.summaries_sent += 1;
            self.send(peer, summary);
        }
        Ok(())
    }

    /// A peer announces what it holds: ask for what is missing, once per author at a time.
    pub(super) fn handle_have(
        &mut self,
        now_ms: u64,
        peer: UserId,
        items: Vec<Announce>,
    ) -> Result<(), SyncError> {
        if !self.knows_role(&peer) {
            return Ok(());
        }
        let mut want = Vec::new();
        let mut ask = BTreeSet::new();
        for a in items {
            // The announcer holds it: it need not hear of it from us.
            if let Some((seq, holders)) = self.have_due.get_mut(&(a.conversation, a.author))
                && *seq <= a.seq
            {
                holders.insert(peer);
            }
            let shareable = self.is_shareable(&a.conversation, &peer);
            let have = match self.convs.get(&a.conversation) {
                // Only from a peer that may see the conversation, for the chain of a member
                // or of someone removed (whose chain may hold a removal that holds, which
                // would take us out): anything else would let a stranger steer requests.
                Some(state)
                    if shareable
                        && !(state.membership.is_member(&a.author)
                            || state.removal_of(&a.author).is_some()) =>
                {
                    continue;
                }
                Some(state) if shareable => state.vv.get(&a.author).copied().unwrap_or(0),
                // A stranger is answered as if the conversation were unknown here (the
                // same empty summary, as rarely): whether a node holds it is not told.
                _ => {
                    if self.want_due(now_ms, a.conversation, WHOLE_CONVERSATION, u64::MAX) {
                        tracing::debug!(conversation = %a.conversation, %peer, "announced conversation unknown here; asking");
                        ask.insert(a.conversation);
                    }
                    continue;
                }
            };
            if have < a.seq && self.want_due(now_ms, a.conversation, a.author, a.seq) {
                want.push(Announce { seq: have, ..a });
            }
        }
        if !want.is_empty() {
            self.stats.wants_sent += 1;
            self.send(peer, SyncMessage::Want { items: want });
        }
        if !ask.is_empty() {
            let summary = self.summary_for(&peer, Some(&ask));
            self.send(peer, summary);
        }
        Ok(())
    }

    /// Whether to ask for `author`'s events up to `seq` now (not asked for exactly this
    /// recently); records the request if so. Only the same seq is suppressed, so a peer
    /// that announces a huge seq cannot silence honest announcements.
    pub(super) fn want_due(
        &mut self,
        now_ms: u64,
        conv: ConversationId,
        author: UserId,
        seq: u64,
    ) -> bool {
        let key = (conv, author);
        if let Some((upto, at)) = self.wants.get(&key)
            && *upto == seq
            && now_ms.saturating_sub(*at) < WANT_RETRY_MS
        {
            return false;
        }
        // Beyond the bound the oldest-keyed request is forgotten; at worst it is asked twice.
        make_room(&mut self.wants, &key, MAX_WANTS);
        self.wants.insert(key, (seq, now_ms));
        true
    }

    /// Send the events a peer asked for, within one batch; own events only once durable.
    pub(super) fn handle_want(
        &mut self,
        peer: UserId,
        items: Vec<Announce>,
    ) -> Result<(), SyncError> {
        if !self.knows_role(&peer) || self.is_congested(&peer) {
            return Ok(());
        }
        let me = self.me.user_id();
        let items: BTreeSet<Announce> = items.into_iter().collect();
        // The peer misses these runs from its seq on: what a summary's answer sent lately
        // did not all arrive, so it no longer counts.
        if let Some(p) = self.peers.get_mut(&peer) {
            for a in &items {
                p.sent.remove(&(a.conversation, a.author));
            }
        }
        let mut budget = BATCH_BYTES;
        let mut out: Vec<Event> = Vec::new();
        for a in items {
            if a.author == me && self.is_shareable(&a.conversation, &peer) {
                // The peer holds our events up to here.
                self.outbox_held(a.conversation, a.seq)?;
            }
            if budget == 0 {
                break;
            }
            let Some(state) = self.convs.get(&a.conversation) else {
                continue;
            };
            let held = if self.is_shareable(&a.conversation, &peer) {
                self.durable_vv(&a.conversation, state)
                    .get(&a.author)
                    .copied()
                    .unwrap_or(0)
            } else {
                // A former member gets the remover's events up to its removal, no more.
                match state
                    .removal_marks(&peer)
                    .into_iter()
                    .find(|(author, _)| *author == a.author)
                {
                    Some((author, seq)) => seq.min(
                        self.durable_vv(&a.conversation, state)
                            .get(&author)
                            .copied()
                            .unwrap_or(0),
                    ),
                    None => continue,
                }
            };
            if held <= a.seq {
                continue;
            }
            let batch = self
                .store
                .events_after(&a.conversation, &a.author, a.seq, budget)?;
            for e in batch {
                if e.header.seq > held {
                    break;
                }
                budget = budget.saturating_sub(e.encoded_len());
                out.push(e);
            }
        }
        if !out.is_empty() {
            self.send(peer, SyncMessage::Events { events: out });
        }
        Ok(())
    }

    /// Hand newly stored events on: pushed to a few peers that may hold them, announced to
    /// the others at the next forward tick. `from` is the peer they came from (None: own
    /// events, just made durable).
    pub(super) fn after_accept(&mut self, from: Option<UserId>, accepted: Vec<Event>) {
        if accepted.is_empty() {
            return;
        }
        let fanout = match from {
            Some(_) => self.config.push_fanout,
            None => OWN_PUSH_FANOUT.max(self.config.push_fanout),
        };
        let mut out: BTreeMap<UserId, Vec<Event>> = BTreeMap::new();
        for e in accepted {
            let (conv, author, seq) = (e.header.conversation, e.header.author, e.header.seq);
            if let Some(source) = from {
                make_room(&mut self.routes, &(conv, author), MAX_ROUTES);
                self.routes.insert((conv, author), source);
            }
            let mut candidates: Vec<UserId> = self
                .peers
                .keys()
                .filter(|p| Some(**p) != from && **p != author && self.is_shareable(&conv, p))
                .copied()
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let (pushed, rest) = candidates.partial_shuffle(&mut self.rng, fanout);
            let has_rest = !rest.is_empty();
            let mut holders: BTreeSet<UserId> = pushed.iter().copied().collect();
            for p in pushed.iter() {
                out.entry(*p).or_default().push(e.clone());
            }
            self.stats.events_pushed += pushed.len() as u64;
            if !has_rest {
                continue;
            }
            let key = (conv, author);
            if !self.have_due.contains_key(&key) && self.have_due.len() >= MAX_HAVE_DUE {
                self.digest_due = true;
                continue;
            }
            holders.extend(from);
            let entry = self.have_due.entry(key).or_insert((0, BTreeSet::new()));
            if seq > entry.0 {
                *entry = (seq, holders);
            }
        }
        for (peer, events) in out {
            let mut batch: Vec<Event> = Vec::new();
            let mut bytes = 0;
            for e in events {
                bytes += e.encoded_len();
                batch.push(e);
                if bytes >= BATCH_BYTES {
                    self.send(
                        peer,
                        SyncMessage::Events {
                            events: std::mem::take(&mut batch),
                        },
                    );
                    bytes = 0;
                }
            }
            if !batch.is_empty() {
                self.send(peer, SyncMessage::Events { events: batch });
            }
        }
    }

    /// Announce what was stored since the last forward tick to the peers it was not
    /// pushed to; after an overflow, send digests instead.
    pub(super) fn forward_tick(&mut self, now_ms: u64) {
        if now_ms.saturating_sub(self.last_forward_ms) < FORWARD_INTERVAL_MS {
            return;
        }
        self.last_forward_ms = now_ms;
        let peers: Vec<UserId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.role.is_some())
            .map(|(u, _)| *u)
            .collect();
        if self.digest_due
            && now_ms.saturating_sub(self.last_digest_flood_ms)
                >= self.config.anti_entropy_interval_ms
        {
            self.digest_due = false;
            self.last_digest_flood_ms = now_ms;
            self.have_due.clear();
            for peer in &peers {
                self.send_digest(*peer);
            }
        }
        if !self.have_due.is_empty() {
            let due = std::mem::take(&mut self.have_due);
            for peer in peers {
                let items: Vec<Announce> = due
                    .iter()
                    .filter(|((conv, author), (_, holders))| {
                        *author != peer
                            && !holders.contains(&peer)
                            && self.is_shareable(conv, &peer)
                    })
                    .map(|((conv, author), (seq, _))| Announce {
                        conversation: *conv,
                        author: *author,
                        seq: *seq,
                    })
                    .collect();
                for chunk in items.chunks(wire::MAX_ANNOUNCE_ITEMS) {
                    self.stats.haves_sent += 1;
                    self.send(
                        peer,
                        SyncMessage::Have {
                            items: chunk.to_vec(),
                        },
                    );
                }
            }
        }
        self.retry_receipts();
    }

    /// Every anti-entropy interval: a hello and a digest to a few random peers, and a hello
    /// to any peer that has not shown it knows ours (its hello or ours may have been lost).
    pub(super) fn anti_entropy_tick(&mut self, now_ms: u64) {
        if now_ms.saturating_sub(self.last_anti_entropy_ms) < self.config.anti_entropy_interval_ms {
            return;
        }
        self.last_anti_entropy_ms = now_ms;
        let mut peers: Vec<UserId> = self.peers.keys().copied().collect();
        let k = self.config.anti_entropy_peers;
        let (chosen, rest) = peers.partial_shuffle(&mut self.rng, k);
        let mut chosen: Vec<UserId> = chosen.to_vec();
        // Connected partners of 1:1 chats whose own events still wait in the outbox (the
        // only other holder): a random pick may miss them for minutes.
        for peer in self.waiting_partners() {
            if chosen.len() >= k + MAX_WAITING_RESYNCS {
                break;
            }
            if !chosen.contains(&peer) {
                chosen.push(peer);
            }
        }
        let unheard: Vec<UserId> = rest
            .iter()
            .filter(|p| self.peers.get(p).is_some_and(|p| !p.heard_from))
            .copied()
            .collect();
        for peer in chosen {
            self.resync(peer);
        }
        for peer in unheard {
            self.send_hello(peer);
        }
    }

    /// The node says this peer's queue is long: requests that would make us send much
    /// (`Want`, `Summary`, `Digest`) are not answered until it drains; digests repair later.
    pub fn set_peer_congested(&mut self, peer: UserId, congested: bool) {
        let was = self.peers.get(&peer).is_some_and(|p| p.congested);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.congested = congested;
        }
        if was && !congested {
            // Requests left unanswered while it was congested are not sent again by the
            // peer; compare digests now instead of at a random later round.
            self.resync(peer);
        }
    }

    /// Connected partners of 1:1 chats with own events in the outbox.
    fn waiting_partners(&self) -> Vec<UserId> {
        let convs: BTreeSet<ConversationId> = self.outbox.values().map(|(c, _)| *c).collect();
        let mut out = Vec::new();
        for conv in convs {
            // Only 1:1 chats: a group event has many holders and leaves the outbox as soon
            // as one of them holds it (digests to many more peers cost too much under load).
            let Some(state) = self
                .convs
                .get(&conv)
                .filter(|s| s.kind() == Some(ConversationKind::Direct))
            else {
                continue;
            };
            for m in state.members() {
                let u = m.profile.user_id;
                if u != self.me.user_id() && self.peers.contains_key(&u) && !out.contains(&u) {
                    out.push(u);
                }
            }
        }
        out
    }

    pub(super) fn is_congested(&mut self, peer: &UserId) -> bool {
        let congested = self.peers.get(peer).is_some_and(|p| p.congested);
        if congested {
            self.stats.requests_deferred += 1;
        }
        congested
    }

    pub(super) fn knows_role(&mut self, peer: &UserId) -> bool {
        match self.peers.get_mut(peer) {
            Some(p) if p.role.is_some() => {
                p.heard_from = true;
                true
            }
            _ => false,
        }
    }
}
