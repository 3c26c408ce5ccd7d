//! The sync engine: a pure state machine, one per node.
//!
//! Inputs arrive through `handle_*` methods that take the current time as an argument;
//! outputs leave through `poll_transmit` (frames for peers) and `poll_notification` (for the
//! app). There is no networking, no clock and no task in here, so the simulator in
//! `tests/` can drive a thousand engines through drops, partitions and crashes.
//!
//! Delivery guarantee: peers compare digests of per-conversation version vectors, then
//! whole vectors where they differ (`Summary`), and answer with exactly the events the
//! other lacks, in bounded batches, until equal. New events are pushed at once to a few
//! peers and announced to the rest (`gossip`), so any member or relay that holds an event
//! hands it on (store-and-forward) at a cost per event that does not grow with the
//! network. Events are only ever sent to members of their conversation or to relays; which
//! peers a node stays connected to is planned per conversation (`links`). The rules, their
//! parameters and the attacks they stop are in `docs/PROTOCOL.md`.

mod actions;
mod admin;
mod gossip;
mod intake;
mod key_update;
mod links;
mod local;
mod org_groups;
mod pending;
mod profiles;
mod receipts;
mod retention;
mod search;
mod search_index;
mod types;

pub use actions::{MessageActions, QUOTE_CHARS, Quote, snippet};
pub use admin::{REVOCATION_CATCH_UP_MS, REVOCATION_REMOVAL_STEP_MS};
pub use gossip::{ANTI_ENTROPY_PEERS, OWN_PUSH_FANOUT, PUSH_FANOUT};
pub use key_update::RETIRED_KEY_GRACE_MS;
pub use links::{LinkCandidates, LinkPlan, MAX_IDLE_DIRECT_LINKS, RANDOM_PICKS};
pub use receipts::MAX_RECEIPT_HOPS;
pub use search::{MAX_SEARCH_SCAN, SearchHit};
pub use types::*;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::conversation::{
    Authority, ConversationKind, ConversationState, Rebuild, Rejection, direct_conversation_id,
    group_conversation_id,
};
use crate::crypto::{self, EpochKey, LABEL_EVENT_SIGNATURE};
use crate::identity::{Identity, Profile, UserId};
use crate::store::{Batch, Store, StoreError};
use crate::wire::{
    self, ComplaintBody, Content, ConversationId, Event, EventHeader, EventId, EventKind,
    MAX_TEXT_BYTES, MembershipOp, OrderKey, Receipt, RekeyBody, Role, SyncMessage, VersionVector,
    WireError,
};

/// Encoded bytes of events per sync frame. Large enough that catching up on 10,000 events
/// takes about ten round trips, small enough that one frame never stalls a connection.
pub const BATCH_BYTES: usize = 1024 * 1024;
/// How long a summary's answer counts as on its way (`Peer::sent`): a batch of
/// `BATCH_BYTES` crosses a slow office LAN in about a second; a later summary that still
/// does not show it gets it again.
pub const SENT_MEMORY_MS: u64 = 5_000;
/// Authors' runs remembered as sent per peer (a catch-up of 1,000 conversations fits).
pub const MAX_SENT_PER_PEER: usize = 4096;
/// New events not pushed to a peer are announced to it (`Have`) at most this often: one
/// small frame per peer and interval however busy the network, while a peer that missed
/// every push still hears of an event within about this long.
pub const FORWARD_INTERVAL_MS: u64 = 100;
/// A peer's hellos are answered with a digest at most this often (an honest node says
/// hello when it connects and at a resync, which its driver allows every 2 s at most).
pub const HELLO_DIGEST_MIN_INTERVAL_MS: u64 = 1_000;
/// Victims of one rekey complain one rank per step (`complaint_wait_steps`): a complaint
/// crosses an office LAN in a few hundred ms at most, so about that many / 20 victims
/// complain before the rest hear of it; the last of 1,500 recipients waits 30 s.
pub const COMPLAINT_STEP_MS: u64 = 20;
/// A complaint that could not be made (a store error) is tried again after this long.
pub const COMPLAINT_RETRY_MS: u64 = 10_000;
/// A member acknowledges deliveries in one conversation at most this often. The first
/// receipt after a quiet spell goes out with the commit that stored the message; during a
/// burst the receipts are held and one covers them all. (Every receipt is an event that
/// each member stores, so in a group of n a receipt per message costs n-1 events per
/// member per message.)
pub const RECEIPT_INTERVAL_MS: u64 = 1_000;

/// Reader positions (who holds and read own group messages) stored from receipts are
/// flushed by the next commit, and at the latest this long after the first: an author
/// is sent receipts for one message by dozens of readers in as many frames, and a flush
/// (an fsync) for each was about 5 % of an office's CPU. A crash loses at most this
/// much of "delivered/read by"; the next receipt of each reader makes it good, and an
/// outbox entry kept by it is sent once more (a duplicate, ignored).
pub const POSITIONS_FLUSH_MS: u64 = 1_000;

/// Others' events stored are flushed at once after a quiet spell, and during a burst at
/// most this often (one flush, an fsync, covers them all). Own events are flushed at
/// once ("saved" follows the flush), and receipts are sent only after a flush, so a crash
/// meanwhile loses nothing the senders would not send again. The node's tick (250 ms)
/// runs a commit that comes due.
pub const COMMIT_INTERVAL_MS: u64 = 200;
/// Equivocations remembered, in memory and on disk (author and seq with the lowest version
/// seen; events are up to 448 KiB, so few).
const MAX_FORKS: usize = 256;

/// Events read per page when rebuilding a conversation at start-up.
const RELOAD_PAGE_EVENTS: usize = 512;
pub use pending::{
    MAX_PENDING_EVENTS, MAX_PENDING_PER_CONVERSATION, MAX_PENDING_PER_PEER, PENDING_TTL_MS,
};
/// Peers remembered as told of our known profiles (beyond this, the oldest-keyed one is
/// forgotten and told everything again next time).
const MAX_PROFILE_PEERS: usize = 4096;
/// Before inserting `key` into a table bounded at `max`: if it is new and the table is
/// full, forget the entry with the lowest key (what a peer can grow stays bounded).
fn make_room<K: Ord, V>(map: &mut BTreeMap<K, V>, key: &K, max: usize) {
    if map.len() >= max && !map.contains_key(key) {
        map.pop_first();
    }
}

/// Frames queued for peers before the node drains them; a slow peer cannot grow this
/// without bound because the node disconnects peers that fall behind.
pub const MAX_QUEUED_FRAMES: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Peer {
    role: Option<Role>,
    /// A managed network's relay: until when its certificate holds (`admin`).
    certified_until: Option<u64>,
    /// The signature of the last certificate checked for this peer (one check each).
    certificate_checked: Option<[u8; 64]>,
    /// The node's queue towards this peer is long (see `set_peer_congested`).
    congested: bool,
    /// The peer sent something that shows it knows our hello.
    heard_from: bool,
    /// We sent the peer a hello (also as an answer) and have had none from it since: its
    /// next hello crossed or answered ours, and is not answered (see `SyncMessage::Hello`).
    hello_unanswered: bool,
    /// When a hello of this peer was last answered with a digest (see
    /// `HELLO_DIGEST_MIN_INTERVAL_MS`).
    hello_digest_at: Option<u64>,
    /// What a summary's answer sent this peer lately: (conversation, author) -> the seq
    /// sent up to, and when. A summary that does not show it yet (it was written before
    /// the batch arrived: frames travel on separate streams, and a small one overtakes a
    /// batch of 1 MiB) is answered from there on, not with the same batch again. At most
    /// `MAX_SENT_PER_PEER`; forgotten after `SENT_MEMORY_MS`, at a disconnect and at a
    /// resync (a lost batch costs a gap, which the peer's `Want` repairs, or a duplicate).
    sent: BTreeMap<(ConversationId, UserId), (u64, u64)>,
    /// A summary was answered from `sent`: when to compare digests again, in case what
    /// was sent never arrived (dropped on the way, or held back and dropped by the peer),
    /// since nothing else would ask for it before the next anti-entropy round.
    recheck_at: Option<u64>,
    /// The rank (`AdminStatement::rank`) of each statement kind (by code) the peer is
    /// known to hold: the better of its claims and what it was sent.
    admin_serials: BTreeMap<u8, (u64, std::cmp::Reverse<[u8; 8]>)>,
    /// The highest statement kind the peer understands (none until it says).
    admin_known_kinds: u8,
    /// When a statement of each kind was last sent to it from its serials.
    admin_sent_ms: BTreeMap<u8, u64>,
}

/// The seed of an engine's generator: 32 bytes, the full strength of ChaCha20. Every epoch
/// key, every ephemeral secret of a rekey, every group-creation nonce and every body nonce
/// a node makes comes from this one generator, and the nonces are public, so a seed any
/// smaller could be searched from recorded traffic and every key replayed. A real node
/// takes it from the operating system (`from_os`, which `Engine::open` uses); only tests
/// and the simulator fix it (`fixed`).
pub struct RngSeed(zeroize::Zeroizing<[u8; 32]>);

impl RngSeed {
    /// 32 bytes from the operating system's generator.
    pub fn from_os() -> Self {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(seed.as_mut());
        RngSeed(seed)
    }

    /// A reproducible seed for tests and the simulator (a schedule must replay exactly).
    /// Never for a real node: its keys would follow from `n`.
    pub fn fixed(n: u64) -> Self {
        RngSeed(zeroize::Zeroizing::new(wire::hash32(&[
            b"flurfunk/test-only-rng-seed",
            &n.to_le_bytes(),
        ])))
    }
}

impl std::fmt::Debug for RngSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RngSeed(..)")
    }
}

pub struct Engine<S: Store> {
    me: Identity,
    profile: Profile,
    config: Config,
    store: S,
    rng: ChaCha20Rng,
    convs: BTreeMap<ConversationId, ConversationState>,
    peers: BTreeMap<UserId, Peer>,
    profiles: BTreeMap<UserId, Profile>,
    transmit: VecDeque<(UserId, SyncMessage)>,
    notifications: VecDeque<Notification>,
    pending: pending::Pending,
    /// What peers sent that no honest node would (see `Offence`), since the node last
    /// asked (`take_offences`).
    offences: BTreeMap<UserId, Offence>,
    /// Where an author equivocated: the lowest event id seen at that seq. A version with a
    /// higher id is refused from then on, so a node never takes back a version it already
    /// gave up (when the winning version turns out invalid, the chain ends there).
    /// The version itself is kept, to be sent to peers that offer a losing one (it may be
    /// invalid here, yet they must learn that their version lost).
    forks: BTreeMap<(ConversationId, UserId, u64), Event>,
    /// Rekeys that lost an equivocation, per conversation, kept read-only (at most
    /// `MAX_FORKS` in all; on disk too).
    lost_rekeys: BTreeMap<ConversationId, Vec<Event>>,
    /// Own events stored but not yet durable. They are neither announced nor sent until
    /// `commit` has flushed them: a crash could otherwise make us reuse their sequence
    /// numbers for different events, and peers would hold two versions.
    unsaved_own: Vec<Event>,
    receipt_due: BTreeSet<ConversationId>,
    /// When this node last acknowledged deliveries in a conversation (not persisted).
    last_receipt_ms: BTreeMap<ConversationId, u64>,
    /// `stats.events_stored` at the last commit: anything stored since needs a flush.
    stored_at_commit: u64,
    /// When the last commit ran (see `COMMIT_INTERVAL_MS`).
    last_commit_ms: u64,
    rekey_due: BTreeSet<ConversationId>,
    /// Complaints waiting for their turn (`ConversationState::complaint_wait_steps`):
    /// rekey -> its conversation and when this node complains unless it is blamed first.
    complaint_waits: BTreeMap<EventId, (ConversationId, u64)>,
    outbox: BTreeMap<EventId, (ConversationId, u64)>,
    last_anti_entropy_ms: u64,
    /// Announcements for the next forward tick: (conversation, author) -> newest seq and
    /// the peers known to hold it (they are not told).
    have_due: BTreeMap<(ConversationId, UserId), (u64, BTreeSet<UserId>)>,
    /// Too much to announce one by one: the next forward tick sends digests instead (at
    /// most once per anti-entropy interval).
    digest_due: bool,
    last_digest_flood_ms: u64,
    /// Wants in flight: (conversation, author) -> seq asked up to, and when.
    wants: BTreeMap<(ConversationId, UserId), (u64, u64)>,
    /// The peer an author's events last came from: group receipts for that author go back
    /// that way.
    routes: BTreeMap<(ConversationId, UserId), UserId>,
    /// Own group receipts that found no route yet (latest per conversation and author).
    receipts_out: BTreeMap<(ConversationId, UserId), Receipt>,
    /// Receipts to send at the next forward tick, per peer.
    receipts_next: BTreeMap<UserId, Vec<Receipt>>,
    /// Newest receipt passed on per (conversation, author, reader).
    receipts_seen: BTreeMap<(ConversationId, UserId, UserId), (u64, Option<OrderKey>)>,
    /// Authors of texts stored since this node last acknowledged them, per group.
    receipt_authors: BTreeMap<ConversationId, BTreeSet<UserId>>,
    /// Something stored since the last commit must be flushed by the next (admin
    /// statements).
    flush_due: bool,
    /// When the first reader position not yet flushed was stored (see
    /// `POSITIONS_FLUSH_MS`).
    positions_pending_since: Option<u64>,
    /// Conversations in which the frame being handled carried an invalid event.
    rejected_in: BTreeSet<ConversationId>,
    /// Deletions in the frame being handled, by target: (conversation, signer).
    deletions_seen: BTreeMap<EventId, Vec<(ConversationId, UserId)>>,
    /// (conversation, author, seq we hold) of events in this frame whose `prev` names
    /// another version of our head: ask the sender for its version.
    forks_in: BTreeSet<(ConversationId, UserId, u64)>,
    /// Our version of an equivocated event, where the sender's lost to it: sent back, so
    /// the sender replaces its version too.
    winners_out: Vec<Event>,
    /// Counts profiles learned; `profile_learned` says when each was, `profiles_sent` up
    /// to which count each peer has been told (so a peer met again hears only news).
    profile_clock: u64,
    /// Profiles whose signature and key this node checked (hellos, profile exchanges,
    /// groups' members): a colleague's profile is checked once, not once per group, per
    /// replay and per reconnect. Shared by every conversation's state; bounded.
    profiles_ok: std::sync::Arc<crate::conversation::VerifiedProfiles>,
    profile_learned: BTreeMap<UserId, u64>,
    profiles_sent: BTreeMap<UserId, u64>,
    last_forward_ms: u64,
    /// The admin's statements and what follows from them (`admin`).
    admin: admin::AdminState,
    /// Messages deleted for this node only: no view shows them (`delete_for_me`).
    hidden: BTreeSet<EventId>,
    /// Words of the texts this node can read, in memory only (`search_index`).
    search_index: search_index::SearchIndex,
    stats: Stats,
}

impl<S: Store> Engine<S> {
    /// Build a real node's engine from whatever the store holds (also after a crash), its
    /// generator seeded from the operating system.
    pub fn open(me: Identity, store: S, config: Config, now_ms: u64) -> Result<Self, SyncError> {
        Self::new(me, store, config, RngSeed::from_os(), now_ms)
    }

    /// Build an engine from whatever the store holds (also after a crash), with a given
    /// seed (`RngSeed::fixed` in tests and the simulator; a node uses `open`).
    pub fn new(
        me: Identity,
        store: S,
        config: Config,
        seed: RngSeed,
        now_ms: u64,
    ) -> Result<Self, SyncError> {
        let profile = me.profile(now_ms);
        let mut engine = Engine {
            me,
            profile,
            config,
            store,
            rng: ChaCha20Rng::from_seed(*seed.0),
            convs: BTreeMap::new(),
            peers: BTreeMap::new(),
            profiles: BTreeMap::new(),
            transmit: VecDeque::new(),
            notifications: VecDeque::new(),
            pending: pending::Pending::default(),
            offences: BTreeMap::new(),
            forks: BTreeMap::new(),
            lost_rekeys: BTreeMap::new(),
            unsaved_own: Vec::new(),
            receipt_due: BTreeSet::new(),
            last_receipt_ms: BTreeMap::new(),
            stored_at_commit: 0,
            last_commit_ms: 0,
            rekey_due: BTreeSet::new(),
            complaint_waits: BTreeMap::new(),
            outbox: BTreeMap::new(),
            last_anti_entropy_ms: now_ms,
            have_due: BTreeMap::new(),
            digest_due: false,
            last_digest_flood_ms: 0,
            wants: BTreeMap::new(),
            routes: BTreeMap::new(),
            receipts_out: BTreeMap::new(),
            receipts_next: BTreeMap::new(),
            receipts_seen: BTreeMap::new(),
            receipt_authors: BTreeMap::new(),
            flush_due: false,
            positions_pending_since: None,
            rejected_in: BTreeSet::new(),
            deletions_seen: BTreeMap::new(),
            forks_in: BTreeSet::new(),
            winners_out: Vec::new(),
            profile_clock: 1,
            profiles_ok: Default::default(),
            profile_learned: BTreeMap::new(),
            profiles_sent: BTreeMap::new(),
            last_forward_ms: now_ms,
            admin: admin::AdminState::default(),
            hidden: BTreeSet::new(),
            search_index: search_index::SearchIndex::default(),
            stats: Stats::default(),
        };
        engine.load_admin_statements(now_ms)?;
        engine.recall_sealed_keys()?;
        engine.reload()?;
        // A relay reads no bodies: nothing to index, nothing to read for it at start.
        let backlog = match engine.config.role {
            Role::Relay => Vec::new(),
            Role::Member => engine.convs.keys().copied().collect(),
        };
        engine.search_index = search_index::SearchIndex::new(backlog);
        engine.keep_own_profile()?;
        engine.receipts_after_start()?;
        Ok(engine)
    }

    /// Every stored event of `conv` in total order, a page at a time.
    fn for_each_page(
        &self,
        conv: &ConversationId,
        mut f: impl FnMut(Vec<Event>),
    ) -> Result<(), SyncError> {
        let mut after = None;
        loop {
            let page = self
                .store
                .events_after_key(conv, after, RELOAD_PAGE_EVENTS)?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = Some(last.order_key());
            f(page);
        }
    }

    /// Rebuild every in-memory cache from the store.
    fn reload(&mut self) -> Result<(), SyncError> {
        self.convs.clear();
        self.lost_rekeys.clear();
        for rekey in self.store.lost_rekeys()? {
            self.lost_rekeys
                .entry(rekey.header.conversation)
                .or_default()
                .push(rekey);
        }
        for conv in self.store.conversations()? {
            // Paged, so start-up memory does not grow with the history. A first pass
            // decides which removals hold from the membership events alone.
            let mut membership = Vec::new();
            self.for_each_page(&conv, |page| {
                membership.extend(
                    page.into_iter()
                        .filter(|e| e.header.kind == EventKind::Membership),
                );
            })?;
            let mut rebuild = Rebuild::new(
                conv,
                Authority::from_events(&membership),
                self.profiles_ok.clone(),
            );
            drop(membership);
            self.for_each_page(&conv, |page| {
                for event in page {
                    rebuild.push(event, Some(&self.me));
                }
            })?;
            let (mut state, dropped) = rebuild.finish();
            self.reopen_lost_rekeys(&mut state);
            // Blamed before this run: told then.
            state.take_newly_blamed();
            let me = self.me.user_id();
            for p in self.store.reader_positions(&conv)? {
                state.apply_reader_position(&me, &p.reader, p.delivered_seq, p.read);
            }
            if !dropped.is_empty() {
                tracing::warn!(conversation = %conv, count = dropped.len(), "stored events no longer valid; removing");
                self.store.apply(Batch {
                    remove_events: dropped,
                    ..Batch::default()
                })?;
            }
            let due = state.rekey_needed_by(&me) || !state.complaints_due(&me).is_empty();
            self.convs.insert(conv, state);
            if due || self.key_update_due(&conv) {
                self.rekey_due.insert(conv);
            }
        }
        // Settled equivocations (at most `MAX_FORKS` are kept on disk).
        self.forks = self
            .store
            .forks()?
            .into_iter()
            .map(|e| ((e.header.conversation, e.header.author, e.header.seq), e))
            .collect();
        while self.forks.len() > MAX_FORKS {
            self.forks.pop_first();
        }
        self.hidden = self.store.hidden()?.into_iter().map(|(_, id)| id).collect();
        self.outbox.clear();
        for (conv, id) in self.store.outbox()? {
            if let Some(e) = self.store.event(&id)? {
                self.outbox.insert(id, (conv, e.header.seq));
            }
        }
        let me = self.me.user_id();
        self.profiles = self
            .store
            .profiles()?
            .into_iter()
            .filter(|p| p.user_id != me)
            .map(|p| (p.user_id, p))
            .collect();
        for user in self.profiles.keys() {
            // Known before this run: news to every peer not told since start-up.
            self.profile_learned.entry(*user).or_insert(1);
        }
        Ok(())
    }

    pub fn user_id(&self) -> UserId {
        self.me.user_id()
    }

    pub fn identity(&self) -> &Identity {
        &self.me
    }

    pub fn role(&self) -> Role {
        self.config.role
    }

    pub fn stats(&self) -> Stats {
        Stats {
            pending_events: self.pending.len(),
            ..self.stats.clone()
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn into_store(self) -> S {
        self.store
    }

    pub fn poll_transmit(&mut self) -> Option<(UserId, SyncMessage)> {
        let out = self.transmit.pop_front();
        if out.is_some() {
            self.stats.frames_sent += 1;
        }
        out
    }

    pub fn poll_notification(&mut self) -> Option<Notification> {
        self.notifications.pop_front()
    }

    /// What peers sent since the last call that no honest node would send, per peer.
    pub fn take_offences(&mut self) -> Vec<(UserId, Offence)> {
        std::mem::take(&mut self.offences).into_iter().collect()
    }

    fn send(&mut self, peer: UserId, mut msg: SyncMessage) {
        if self.transmit.len() >= MAX_QUEUED_FRAMES {
            // The driver is not draining; the periodic digests repair whatever is lost.
            self.stats.frames_dropped += 1;
            return;
        }
        if let SyncMessage::Events { events } = &mut msg
            && events.iter().any(Event::is_purged)
        {
            self.add_deletions(events);
        }
        self.transmit.push_back((peer, msg));
    }

    // ----- peers --------------------------------------------------------------------

    pub fn handle_connected(&mut self, _now_ms: u64, peer: UserId) {
        self.peers.insert(peer, Peer::default());
        self.send_hello(peer);
    }

    /// Our hello, which the peer answers with its own unless the two crossed.
    pub(super) fn send_hello(&mut self, peer: UserId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.hello_unanswered = true;
        }
        let hello = self.hello();
        self.send(peer, hello);
        self.send_certificate(peer);
        self.send_admin_serials(peer);
    }

    pub fn handle_disconnected(&mut self, _now_ms: u64, peer: UserId) {
        self.peers.remove(&peer);
    }

    pub fn connected_peers(&self) -> Vec<UserId> {
        self.peers.keys().copied().collect()
    }

    /// Decode and handle one frame. A malformed frame is counted and reported; the caller
    /// may disconnect the peer. Nothing is stored from it.
    pub fn handle_frame(
        &mut self,
        now_ms: u64,
        peer: UserId,
        bytes: &[u8],
    ) -> Result<(), SyncError> {
        match SyncMessage::decode(bytes) {
            Ok(msg) => self.handle_message(now_ms, peer, msg),
            Err(e) => {
                self.stats.malformed_frames += 1;
                Err(SyncError::Wire(e))
            }
        }
    }

    pub fn handle_message(
        &mut self,
        now_ms: u64,
        peer: UserId,
        msg: SyncMessage,
    ) -> Result<(), SyncError> {
        if self.is_revoked(&peer) {
            // Whoever left the organisation is told nothing and heard from no more.
            self.stats.revoked_frames += 1;
            return Ok(());
        }
        match msg {
            SyncMessage::Hello { role, profile } => {
                if profile.user_id != peer || !self.profiles_ok.verify(&profile) {
                    self.stats.malformed_frames += 1;
                    return Ok(());
                }
                let first_hello = self.peers.get(&peer).is_none_or(|p| p.role.is_none());
                if role == Role::Relay {
                    self.note_relay(peer);
                }
                let p = self.peers.entry(peer).or_default();
                p.role = Some(role);
                // A hello that does not answer ours is answered: the peer says hello when
                // it connects or starts over (a resync), and ours may have been lost. Without
                // it the peer cannot tell what it may share with us, and ignores our digests
                // and summaries; only its own random anti-entropy picks would repair that.
                // Our answer waits for an answer too, so two hellos end the exchange (a
                // duplicated frame can prolong it by one round, never start a loop).
                let answer = !std::mem::take(&mut p.hello_unanswered);
                // A digest goes with a first hello and with an answer. A hello that answers
                // ours (a resync of ours, which carried our digest) needs none: the peer's
                // answer brought its digest, and a third would repeat the comparison. A
                // peer repeating hellos gets at most one digest a second (each costs a hash
                // per shared conversation and up to a few hundred KB for a relay).
                let digest = first_hello
                    || (answer
                        && p.hello_digest_at.is_none_or(|t| {
                            now_ms.saturating_sub(t) >= HELLO_DIGEST_MIN_INTERVAL_MS
                        }));
                if digest {
                    p.hello_digest_at = Some(now_ms);
                }
                if answer {
                    self.send_hello(peer);
                }
                if self.learn_profile(profile.clone())? {
                    self.spread_profiles(Some(peer), vec![profile]);
                }
                if first_hello {
                    // Compare the profiles both know; only if they differ does each side
                    // send what it knows (so names reach nodes that never meet directly).
                    let digest = self.profile_digest();
                    self.send(peer, SyncMessage::ProfileDigest { digest });
                }
                if digest {
                    self.send_digest(peer);
                }
                Ok(())
            }
            SyncMessage::Summary { conversations } => {
                self.handle_summary(now_ms, peer, conversations)
            }
            SyncMessage::Events { events } => {
                self.knows_role(&peer);
                self.handle_events(now_ms, Some(peer), events)
            }
            SyncMessage::Digest { conversations } => self.handle_digest(peer, conversations),
            SyncMessage::Have { items } => self.handle_have(now_ms, peer, items),
            SyncMessage::Want { items } => self.handle_want(peer, items),
            SyncMessage::Receipts { receipts } => self.handle_receipts(now_ms, peer, receipts),
            SyncMessage::ProfileDigest { digest } => {
                if self.knows_role(&peer) && digest != self.profile_digest() {
                    self.send_profiles_to(peer);
                }
                Ok(())
            }
            SyncMessage::RelayCertificate { certificate } => {
                self.handle_relay_certificate(now_ms, peer, certificate)
            }
            SyncMessage::AdminSerials {
                known_kinds,
                serials,
            } => {
                self.handle_admin_serials(now_ms, peer, known_kinds, serials);
                Ok(())
            }
            SyncMessage::AdminStatement { statement } => {
                self.handle_admin_statement(now_ms, peer, statement)
            }
            SyncMessage::Profiles { profiles } => {
                // Most copies a node receives are ones it has: those cost no signature
                // check, and the new ones are stored in one batch.
                let mut newer: Vec<Profile> = Vec::new();
                for profile in profiles {
                    if !self.is_newer_profile(&profile)
                        || newer.iter().any(|p| p.user_id == profile.user_id)
                    {
                        continue;
                    }
                    if !self.profiles_ok.verify(&profile) {
                        self.stats.malformed_frames += 1;
                        continue;
                    }
                    newer.push(profile);
                }
                self.learn_profiles(newer.clone())?;
                self.spread_profiles(Some(peer), newer);
                Ok(())
            }
        }
    }

    /// Start a fresh comparison with a connected peer, e.g. after frames to it were lost in
    /// transit. Cheap: one hello and one digest.
    pub fn resync(&mut self, peer: UserId) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        // Frames to it were lost: what they carried is sent again on request.
        p.sent.clear();
        p.recheck_at = None;
        // The hello goes first because a lost one would leave the peer unable to tell
        // what it may share with us; it is small, and answered by the peer's hello (ours
        // of the last time may be what it lacks) and a digest.
        self.send_hello(peer);
        if self.peers.get(&peer).and_then(|p| p.role).is_some() {
            self.send_digest(peer);
        }
    }

    pub fn known_profiles(&self) -> Vec<Profile> {
        self.profiles.values().cloned().collect()
    }

    /// Whether the connected `peer` (with hello) is a member of `conv` as this node sees
    /// it, not merely a self-declared relay: whom it serves the conversation's files.
    pub fn is_member_peer(&self, conv: &ConversationId, peer: &UserId) -> bool {
        !self.is_revoked(peer)
            && self
                .peers
                .get(peer)
                .is_some_and(|p| p.role == Some(Role::Member))
            && self
                .convs
                .get(conv)
                .is_some_and(|s| s.membership.is_member(peer))
    }

    /// This node's place among the members of `conv` (in user-id order) and their number:
    /// the same order on every member, so each can take a different share of a task.
    pub fn member_place(&self, conv: &ConversationId) -> Option<(u32, u32)> {
        let members = &self.convs.get(conv)?.membership.members;
        let me = self.me.user_id();
        let place = members.range(..me).count();
        Some((
            u32::try_from(place).ok()?,
            u32::try_from(members.len()).ok()?,
        ))
    }

    /// The connected members of `conv` (`is_member_peer`).
    pub fn member_peers(&self, conv: &ConversationId) -> Vec<UserId> {
        self.peers
            .keys()
            .filter(|p| self.is_member_peer(conv, p))
            .copied()
            .collect()
    }

    /// The file of message `event_id` in `conv`, if it is one this node can read.
    pub fn message_file(
        &self,
        conv: &ConversationId,
        event_id: &EventId,
    ) -> Result<Option<MessageFile>, SyncError> {
        let Some(state) = self.convs.get(conv) else {
            return Ok(None);
        };
        let Some(event) = self.store.event(event_id)? else {
            return Ok(None);
        };
        if event.header.conversation != *conv
            || state.is_outside(&event)
            || self.hidden.contains(event_id)
        {
            return Ok(None);
        }
        Ok(state
            .decrypt(&event)
            .and_then(|content| MessageFile::of(&event, &content)))
    }

    fn is_shareable(&self, conv: &ConversationId, peer: &UserId) -> bool {
        let Some(p) = self.peers.get(peer) else {
            return false;
        };
        if self.is_revoked(peer) {
            return false;
        }
        match p.role {
            // In a managed network only with a certificate; otherwise as a member.
            Some(Role::Relay) if self.config.admin_key.is_none() || p.certified_until.is_some() => {
                true
            }
            Some(Role::Relay | Role::Member) => self
                .convs
                .get(conv)
                .is_some_and(|s| s.membership.is_member(peer)),
            None => false,
        }
    }

    /// The version vector we may announce: own events count only once durable.
    fn durable_vv(&self, conv: &ConversationId, state: &ConversationState) -> VersionVector {
        let mut vv = state.vv.clone();
        let me = self.me.user_id();
        if let Some(first_unsaved) = self
            .unsaved_own
            .iter()
            .filter(|e| e.header.conversation == *conv)
            .map(|e| e.header.seq)
            .min()
        {
            if first_unsaved > 1 {
                vv.insert(me, first_unsaved - 1);
            } else {
                vv.remove(&me);
            }
        }
        vv
    }

    /// Per author of `vv`, a prefix of the id of the event at its seq.
    pub(super) fn heads_of(
        &self,
        conv: &ConversationId,
        state: &ConversationState,
        vv: &VersionVector,
    ) -> wire::Heads {
        vv.iter()
            .filter_map(|(author, seq)| {
                let id = if state.vv.get(author) == Some(seq) {
                    state.head_of(author)
                } else {
                    self.store
                        .event_id_by_seq(conv, author, *seq)
                        .ok()
                        .flatten()
                };
                id.map(|id| (*author, wire::head_prefix(&id)))
            })
            .collect()
    }

    /// The digest of what we hold durably of a conversation, heads included.
    /// `vv`: what we hold durably of it (`durable_vv`).
    pub(super) fn conv_digest(
        &self,
        conv: &ConversationId,
        state: &ConversationState,
        vv: &VersionVector,
    ) -> [u8; wire::DIGEST_BYTES] {
        wire::vv_heads_digest(vv, &self.heads_of(conv, state, vv))
    }

    fn summary_for(&self, peer: &UserId, only: Option<&BTreeSet<ConversationId>>) -> SyncMessage {
        let mut conversations = Vec::new();
        for (id, state) in &self.convs {
            if only.is_some_and(|o| !o.contains(id)) {
                continue;
            }
            if self.is_shareable(id, peer) {
                let vv = self.durable_vv(id, state);
                let heads = self.heads_of(id, state, &vv);
                conversations.push((*id, vv, heads));
            }
        }
        if let Some(only) = only {
            // Conversations we do not hold at all: ask with an empty vector. Those held but
            // not shared with this peer look the same (whether a node holds a conversation
            // is not told to strangers).
            for id in only {
                if !self.convs.contains_key(id) || !self.is_shareable(id, peer) {
                    conversations.push((*id, VersionVector::new(), wire::Heads::new()));
                }
            }
        }
        conversations.truncate(wire::MAX_SUMMARY_CONVERSATIONS);
        SyncMessage::Summary { conversations }
    }

    fn handle_summary(
        &mut self,
        now_ms: u64,
        peer: UserId,
        conversations: Vec<(ConversationId, VersionVector, wire::Heads)>,
    ) -> Result<(), SyncError> {
        if !self.knows_role(&peer) {
            return Ok(()); // no hello yet: we do not know what the peer may see
        }
        if self.is_congested(&peer) {
            return Ok(()); // answered at a later digest, when its queue has drained
        }
        let mut to_send: Vec<Event> = Vec::new();
        let mut budget = BATCH_BYTES;
        let mut ask: BTreeSet<ConversationId> = BTreeSet::new();
        let me = self.me.user_id();
        for (conv, theirs, their_heads) in conversations {
            if !self.convs.contains_key(&conv) {
                // Members learn a conversation only from its events, so they ask for it.
                if !theirs.is_empty() {
                    ask.insert(conv);
                }
                continue;
            }
            let shareable = self.is_shareable(&conv, &peer);
            // The peer holds our events up to this seq: they have left the outbox. Only a
            // peer we share the conversation with says so; anyone else's word (a node that
            // merely claims to be a relay) clears nothing.
            if shareable && let Some(seq) = theirs.get(&me) {
                self.outbox_held(conv, *seq)?;
            }
            let Some(state) = self.convs.get(&conv) else {
                continue;
            };
            if shareable
                && theirs
                    .iter()
                    .any(|(a, s)| state.vv.get(a).copied().unwrap_or(0) < *s)
            {
                ask.insert(conv);
            }
            if !shareable && !theirs.is_empty() && state.removal_of(&peer).is_none() {
                // As for a conversation unknown here (above): asked with an empty vector.
                ask.insert(conv);
            }
            if !shareable {
                // A removed member is told of its own removal and nothing after it: the
                // remover's events up to the removal, which it could read as a member.
                for (author, removal_seq) in state.removal_marks(&peer) {
                    let removal_seq = removal_seq.min(
                        self.durable_vv(&conv, state)
                            .get(&author)
                            .copied()
                            .unwrap_or(0),
                    );
                    let their_seq = theirs.get(&author).copied().unwrap_or(0);
                    if their_seq >= removal_seq || budget == 0 {
                        continue;
                    }
                    let batch = self.store.events_after(&conv, &author, their_seq, budget)?;
                    let batch: Vec<Event> = batch
                        .into_iter()
                        .filter(|e| e.header.seq <= removal_seq)
                        .collect();
                    budget = budget.saturating_sub(batch.iter().map(Event::encoded_len).sum());
                    to_send.extend(batch);
                }
                continue;
            }
            for (author, my_seq) in self.durable_vv(&conv, state) {
                let mut their_seq = theirs.get(&author).copied().unwrap_or(0);
                // Another version of their head than ours (equivocation): send ours of it
                // too; the lower id wins on both sides.
                let mut forked = false;
                if their_seq > 0
                    && their_seq <= my_seq
                    && let Some(head) = their_heads.get(&author)
                    && self
                        .store
                        .event_id_by_seq(&conv, &author, their_seq)?
                        .is_some_and(|ours| wire::head_prefix(&ours) != *head)
                {
                    their_seq -= 1;
                    forked = true;
                }
                // Sent lately and not shown yet: on its way, so continue after it.
                if !forked
                    && let Some(p) = self.peers.get_mut(&peer)
                    && let Some(&(sent, at)) = p.sent.get(&(conv, author))
                {
                    // (A clock that went back expires it too.)
                    if sent <= their_seq
                        || now_ms < at
                        || now_ms.saturating_sub(at) >= SENT_MEMORY_MS
                    {
                        p.sent.remove(&(conv, author));
                    } else {
                        their_seq = sent;
                        p.recheck_at
                            .get_or_insert(at.saturating_add(SENT_MEMORY_MS));
                    }
                }
                if my_seq <= their_seq {
                    continue;
                }
                if budget == 0 {
                    ask.insert(conv); // more to come: the peer will ask again
                    break;
                }
                let mut batch = self.store.events_after(&conv, &author, their_seq, budget)?;
                // Only what is durable: own events stored but not yet flushed would be
                // lost in a crash, and their seq reused (found by the simulator's crashes
                // between storing and committing).
                batch.retain(|e| e.header.seq <= my_seq);
                let used: usize = batch.iter().map(Event::encoded_len).sum();
                budget = budget.saturating_sub(used);
                if batch.last().is_some_and(|e| e.header.seq < my_seq) {
                    ask.insert(conv);
                    budget = 0;
                }
                if let Some(last) = batch.last()
                    && let Some(p) = self.peers.get_mut(&peer)
                {
                    make_room(&mut p.sent, &(conv, author), MAX_SENT_PER_PEER);
                    p.sent.insert((conv, author), (last.header.seq, now_ms));
                }
                to_send.extend(batch);
            }
        }
        if !to_send.is_empty() {
            self.send(peer, SyncMessage::Events { events: to_send });
        }
        if !ask.is_empty() {
            let summary = self.summary_for(&peer, Some(&ask));
            self.send(peer, summary);
        }
        Ok(())
    }

    /// Some other node holds our events of `conv` up to `seq`: they leave the outbox.
    pub(super) fn outbox_held(&mut self, conv: ConversationId, seq: u64) -> Result<(), SyncError> {
        let done: Vec<EventId> = self
            .outbox
            .iter()
            .filter(|(_, (c, s))| *c == conv && *s <= seq)
            .map(|(id, _)| *id)
            .collect();
        if !done.is_empty() {
            for id in &done {
                self.outbox.remove(id);
            }
            self.store.apply(Batch {
                outbox_remove: done,
                ..Batch::default()
            })?;
        }
        Ok(())
    }

    /// Periodic work: announcements, anti-entropy digests, due rekeys.
    pub fn handle_tick(&mut self, now_ms: u64) -> Result<(), SyncError> {
        if !self.search_index.is_ready() {
            self.index_step(search::INDEX_STEP_EVENTS)?;
        }
        self.expire_certificates(now_ms);
        self.remove_revoked_members(now_ms);
        self.keep_org_groups(now_ms);
        self.expire_messages(now_ms);
        self.forward_tick(now_ms);
        self.anti_entropy_tick(now_ms);
        self.stats.pending_expired += self.pending.expire(now_ms) as u64;
        let recheck: Vec<UserId> = self
            .peers
            .iter_mut()
            .filter(|(_, p)| p.recheck_at.is_some_and(|t| t <= now_ms))
            .map(|(u, p)| {
                p.recheck_at = None;
                *u
            })
            .collect();
        for peer in recheck {
            self.resync(peer);
        }
        let turn: Vec<ConversationId> = self
            .complaint_waits
            .values()
            .filter(|(_, due)| *due <= now_ms)
            .map(|(c, _)| *c)
            .collect();
        self.rekey_due.extend(turn);
        self.run_due_rekeys(now_ms)
    }

    /// Make everything stored so far durable, then tell the app which own events are saved
    /// and send delivery receipts (a receipt promises durability, so it comes after).
    pub fn commit(&mut self, now_ms: u64) -> Result<(), SyncError> {
        self.store.flush()?;
        self.stored_at_commit = self.stats.events_stored;
        self.last_commit_ms = now_ms;
        self.flush_due = false;
        self.positions_pending_since = None;
        let saved = std::mem::take(&mut self.unsaved_own);
        for e in &saved {
            if !e.header.kind.is_receipt() {
                self.notifications.push_back(Notification::Saved {
                    conversation: e.header.conversation,
                    event_id: e.id(),
                });
            }
        }
        self.after_accept(None, saved);
        self.run_due_rekeys(now_ms)?;
        let due: Vec<ConversationId> = self
            .receipt_due
            .iter()
            .copied()
            .filter(|c| self.receipt_ready(c, now_ms))
            .collect();
        for conv in due {
            self.receipt_due.remove(&conv);
            self.last_receipt_ms.insert(conv, now_ms);
            let Some(state) = self.convs.get(&conv) else {
                continue;
            };
            if !state.membership.is_member(&self.me.user_id()) || state.current_key().is_none() {
                continue;
            }
            if state.kind() == Some(ConversationKind::Group) {
                self.send_group_receipts(conv)?;
                continue;
            }
            let upto = state.vv.clone();
            self.author_event(
                now_ms,
                conv,
                EventKind::DeliveryReceipt,
                Vec::new(),
                Some(Content::Delivered { upto }),
                None,
            )?;
        }
        Ok(())
    }

    /// Whether `commit` has work: stored events not yet durable, receipts whose interval
    /// has passed, due rekeys.
    pub fn needs_commit(&self, now_ms: u64) -> bool {
        !self.unsaved_own.is_empty()
            || (self.stats.events_stored != self.stored_at_commit
                && now_ms.saturating_sub(self.last_commit_ms) >= COMMIT_INTERVAL_MS)
            || self.flush_due
            || self
                .positions_pending_since
                .is_some_and(|t| now_ms.saturating_sub(t) >= POSITIONS_FLUSH_MS)
            || !self.rekey_due.is_empty()
            || self
                .receipt_due
                .iter()
                .any(|c| self.receipt_ready(c, now_ms))
    }

    /// The last commit before stopping: held receipts are written now instead of being
    /// forgotten, and made durable by a second commit (they are sent at the next start).
    pub fn commit_before_stop(&mut self, now_ms: u64) -> Result<(), SyncError> {
        self.last_receipt_ms.clear();
        self.commit(now_ms)?;
        self.commit(now_ms)
    }

    fn receipt_ready(&self, conv: &ConversationId, now_ms: u64) -> bool {
        self.last_receipt_ms
            .get(conv)
            .is_none_or(|last| now_ms.saturating_sub(*last) >= RECEIPT_INTERVAL_MS)
    }
}
