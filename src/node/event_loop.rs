//! The node task: owns the swarm and the engine, and is the only place they meet.
//!
//! Each loop turn handles whatever is ready (commands, swarm events, the tick), then
//! commits once (group commit: one fsync for everything that arrived together), and only
//! then sends frames, answers callers and publishes events, so nothing is acknowledged
//! before it is durable.

use std::collections::HashSet;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm, ping};
use tokio::sync::{broadcast, mpsc};

use super::peers::{AddressBook, Verdict};
use super::views::{
    ConversationView, LoadStats, MemberView, MessageItem, NodeEvent, NodeStatus, PeerView,
    QuoteItem, ReactionItem, SearchItem,
};
use super::{Command, NodeConfig, NodeError, Reply};
use crate::conversation::ConversationKind;
use crate::identity::{Identity, Profile, UserId};
use crate::net::{self, Behaviour, BehaviourEvent, NetFrame, NetIo, NetworkKey};
use crate::store::DynStore;
use crate::sync::{self, Engine, Notification, SyncError};
use crate::wire::{ConversationId, OrderKey, Role, WireError};

mod answers;
mod rotation;

/// How often timers run: redials, anti-entropy, rekeys.
const TICK: Duration = Duration::from_millis(250);
/// Inputs handled per loop turn before committing: bounds the latency one busy turn adds.
const MAX_INPUTS_PER_TURN: usize = 256;
/// Idle connections are kept open (pings keep them alive anyway); presence needs them.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);
/// How often the node looks for replaced X25519 keys whose grace period is over.
const KEY_CHECK_INTERVAL_MS: u64 = 3600 * 1000;

/// At most one resync per peer in this interval after failed requests.
const RESYNC_MIN_INTERVAL_MS: u64 = 2_000;
/// Frames handed to a peer's stream writer and not yet written. Beyond this, frames wait
/// in the peer's queue, where the congestion rules below see them.
const MAX_IN_FLIGHT_PER_PEER: usize = 16;
/// After a peer's stream failed, a new one is opened no sooner than this (a peer speaking
/// another protocol version fails every attempt).
const WRITER_RETRY_MS: u64 = 1_000;
const WRITER_RETRY_MAX_MS: u64 = 5 * 60_000;
/// Messages from the stream tasks waiting for the event loop.
const NET_IO_CAPACITY: usize = 4096;
/// Frames and bytes waiting for one peer. A peer this far behind gets the newest frames
/// dropped and is resynced by digest when it catches up (counted in the stats).
const MAX_QUEUED_PER_PEER: usize = 1024;
const MAX_QUEUED_BYTES_PER_PEER: usize = 8 * 1024 * 1024;
/// Above this the engine stops answering the peer's requests for bulk (`Want`, `Summary`,
/// `Digest`) until the queue is below `UNCONGESTED_BYTES` again.
const CONGESTED_BYTES: usize = MAX_QUEUED_BYTES_PER_PEER / 2;
const UNCONGESTED_BYTES: usize = MAX_QUEUED_BYTES_PER_PEER / 8;
/// Links chosen again at most this often (the plan only when a conversation changed).
const RELINK_INTERVAL_MS: u64 = 1_000;
/// A node with fewer connections dials this many other known peers, so that a node with
/// no conversations yet still meets someone who can tell it about them.
const MIN_LINKS: usize = 4;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub struct Core {
    pub(super) engine: Engine<DynStore>,
    swarm: Swarm<Behaviour>,
    events: broadcast::Sender<NodeEvent>,
    book: AddressBook,
    listen_addrs: Vec<Multiaddr>,
    known_conversations: HashSet<ConversationId>,
    pub(super) config: NodeConfig,
    network: NetworkKey,
    /// The wire keys the transport accepts and dials with (two during a rotation).
    ring: net::pnet_ring::KeyRing,
    /// The network key rotation held, as opened here.
    rotation: Option<rotation::RotationHere>,
    dirty: bool,
    last_resync_ms: std::collections::HashMap<PeerId, u64>,
    /// Peers whose frames failed again within `RESYNC_MIN_INTERVAL_MS` of their last
    /// resync: they get one when the interval is over (a tick), not never.
    resync_deferred: HashSet<PeerId>,
    /// Peers already reported as speaking another protocol version (said once each).
    other_version: std::collections::HashSet<PeerId>,
    /// Misbehaviour already reported, by kind and author: said once per author and run.
    misbehaviour_told: std::collections::HashSet<(&'static str, UserId)>,
    /// Users whose revocation this loop has acted on (closed, banned for good, told).
    revoked_here: std::collections::BTreeSet<UserId>,
    /// The engine's link plan, recomputed when a conversation changed.
    plan: Option<sync::LinkPlan>,
    /// The peers the plan chose from those reachable: dialled and never trimmed.
    wanted: HashSet<PeerId>,
    /// Peers connected because this node dialled them: only these are trimmed (a peer that
    /// dialled us may want the link; beyond the swarm's limit it is refused instead).
    dialled: HashSet<PeerId>,
    last_relink_ms: u64,
    /// Frames waiting for the peer's stream writer, per peer, and frames handed to it.
    queues: std::collections::HashMap<PeerId, PeerQueue>,
    in_flight: std::collections::HashMap<PeerId, usize>,
    /// One outbound stream per peer (`net::spawn_writer`), opened with its first frame.
    writers: std::collections::HashMap<PeerId, net::Writer>,
    next_writer: u64,
    /// Peers whose stream failed: no new writer before this time.
    writer_retry_at: std::collections::HashMap<PeerId, u64>,
    /// Writers replaced by one on a newer connection, finishing their frames: one per
    /// peer at most (a later one aborts it), each until its deadline.
    retired: std::collections::HashMap<PeerId, (tokio::task::AbortHandle, u64)>,
    /// When to look next for replaced X25519 keys due for deletion (hourly).
    next_key_check_ms: u64,
    /// Failures of a peer's streams in a row (the wait before the next grows with them).
    writer_failures: std::collections::HashMap<PeerId, u32>,
    pub(super) control: libp2p_stream::Control,
    /// Attachments (`None` for a node without a files directory: tests, tools).
    pub(super) files: Option<super::files::Files>,
    file_done_rx: Option<mpsc::UnboundedReceiver<super::files::FetchDone>>,
    /// Streams from peers, registered at once (a peer's stream that arrives before the
    /// event loop runs waits instead of being refused as an unknown protocol).
    incoming: Option<libp2p_stream::IncomingStreams>,
    net_tx: mpsc::Sender<NetIo>,
    net_rx: Option<mpsc::Receiver<NetIo>>,
    writer_tx: mpsc::UnboundedSender<NetIo>,
    writer_rx: Option<mpsc::UnboundedReceiver<NetIo>>,
    inbound: Option<tokio::task::JoinHandle<()>>,
    pub(super) net_stats: NetStats,
}

/// Frames waiting for the stream writer towards one peer.
#[derive(Default)]
struct PeerQueue {
    frames: std::collections::VecDeque<Vec<u8>>,
    bytes: usize,
    congested: bool,
    /// A frame was dropped: once the queue has room again, the peer is resynced (a
    /// resync queued at once would be dropped into the same full queue).
    resync_due: bool,
}

/// Transport figures for `flurfunk node --json` and the status view.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct NetStats {
    /// Frames dropped because a peer's queue was full (the peer is resynced later).
    pub frames_dropped: u64,
    /// Outbound streams that failed (write timeout, closed connection, refused protocol);
    /// the frames handed to them are lost and the peer is resynced.
    pub requests_failed: u64,
    pub resyncs: u64,
    /// Largest queue towards one peer seen.
    pub max_queue: usize,
    /// Connections closed because they were beyond `max_peers` and not wanted.
    pub trimmed: u64,
    /// Streams retired for a peer's newer connection (the peer resynced on it).
    pub streams_moved: u64,
}

impl Core {
    pub(super) fn new(
        identity: Identity,
        store: DynStore,
        config: NodeConfig,
        events: broadcast::Sender<NodeEvent>,
    ) -> Result<Self, NodeError> {
        let now = now_ms();
        let ring = net::pnet_ring::KeyRing::new(config.network_key.wire_key());
        let mut swarm = net::build_swarm(
            &identity,
            ring.clone(),
            config.mdns,
            IDLE_CONNECTION_TIMEOUT,
            u32::try_from(config.max_peers).unwrap_or(u32::MAX),
        )?;
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NodeError::Listen {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })?;
        }
        let engine = Engine::open(
            identity,
            store,
            sync::Config {
                role: config.role,
                anti_entropy_interval_ms: config.anti_entropy_interval_ms,
                verify_threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
                admin_key: config.network_key.admin(),
                relay_certificate: config.relay_certificate.clone(),
                machine_policy: config.machine_policy,
                ..sync::Config::default()
            },
            now,
        )?;
        let known_conversations = engine.conversation_ids().into_iter().collect();
        let mut book = AddressBook::default();
        for addr in &config.peers {
            book.add_explicit(addr.clone(), now);
        }
        let mut control = swarm.behaviour().sync.new_control();
        let incoming = control
            .accept(net::SYNC_PROTOCOL)
            .map_err(|e| NodeError::Other(e.to_string()))?;
        let (net_tx, net_rx) = mpsc::channel(NET_IO_CAPACITY);
        let (writer_tx, writer_rx) = mpsc::unbounded_channel();
        let (file_done_tx, file_done_rx) = mpsc::unbounded_channel();
        let files = match &config.files_dir {
            Some(dir) => Some(
                super::files::Files::open(dir, config.file_limits, file_done_tx, now)
                    .map_err(|e| NodeError::Other(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Core {
            files,
            file_done_rx: Some(file_done_rx),
            engine,
            swarm,
            writers: Default::default(),
            next_writer: 0,
            writer_retry_at: Default::default(),
            retired: Default::default(),
            // Not at start: a node back after a long absence first hears of rekeys made
            // meanwhile (wrapped to a key it would otherwise delete now).
            next_key_check_ms: now.saturating_add(KEY_CHECK_INTERVAL_MS),
            writer_failures: Default::default(),
            control,
            incoming: Some(incoming),
            net_tx,
            net_rx: Some(net_rx),
            writer_tx,
            writer_rx: Some(writer_rx),
            inbound: None,
            events,
            book,
            listen_addrs: Vec::new(),
            known_conversations,
            network: config.network_key,
            ring,
            rotation: None,
            config,
            dirty: false,
            last_resync_ms: Default::default(),
            resync_deferred: Default::default(),
            other_version: Default::default(),
            misbehaviour_told: Default::default(),
            revoked_here: Default::default(),
            plan: None,
            wanted: HashSet::new(),
            dialled: HashSet::new(),
            last_relink_ms: 0,
            queues: Default::default(),
            in_flight: Default::default(),
            net_stats: NetStats::default(),
        })
    }

    pub(super) fn emit(&self, event: NodeEvent) {
        // No subscriber is fine: the events are also in the store.
        let _ = self.events.send(event);
    }

    fn me(&self) -> UserId {
        self.engine.user_id()
    }

    // ----- the swarm ------------------------------------------------------------------

    fn handle_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>, now: u64) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.listen_addrs.push(address.clone());
                self.emit(NodeEvent::Listening {
                    address: address.to_string(),
                });
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| *a != address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                connection_id,
                ..
            } => {
                let Some(user) = UserId::from_peer_id(&peer_id) else {
                    self.swarm.close_connection(connection_id);
                    return;
                };
                if self.book.is_banned(&peer_id, now)
                    || peer_id == *self.swarm.local_peer_id()
                    || self.engine.is_revoked(&user)
                {
                    self.swarm.close_connection(connection_id);
                    return;
                }
                let remote = endpoint.get_remote_address().clone();
                let dialled = endpoint.is_dialer().then_some(connection_id);
                if endpoint.is_dialer() {
                    self.book.learn(peer_id, &remote, now);
                    self.dialled.insert(peer_id);
                }
                self.book.on_connected(peer_id, &remote, dialled, now);
                if num_established.get() == 1 {
                    tracing::info!(peer = %user, %remote, "peer online");
                    self.engine.handle_connected(now, user);
                    self.send_peer_records(peer_id);
                    if self.engine.policy().presence != crate::wire::Presence::Hidden {
                        let name = self.name_of(&user);
                        self.emit(NodeEvent::PeerOnline {
                            user_id: user.to_string(),
                            name,
                        });
                    }
                } else if let Some(old) = self.writers.remove(&peer_id) {
                    // A second connection: the peer may have been killed and restarted,
                    // and the older one only looks alive until its pings fail (20 s
                    // and more). Frames go on a stream over the newest connection from
                    // now on (libp2p-stream is patched to open there). The old writer
                    // finishes what it holds, and the peer reads the old stream to its
                    // end, so two peers that dialled each other at once (common with
                    // mDNS) lose nothing; after a restart those frames are lost, and a
                    // digest exchange repairs them.
                    if let Some(task) = old.retire()
                        && let Some((before, _)) =
                            self.retired.insert(peer_id, (task, now + net::RETIRED_MS))
                    {
                        before.abort();
                    }
                    self.in_flight.remove(&peer_id);
                    self.writer_retry_at.remove(&peer_id);
                    self.net_stats.streams_moved += 1;
                    self.resync_later(peer_id, now);
                    self.flush_queue(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                self.book
                    .on_disconnected(peer_id, num_established as usize, now);
                if num_established == 0 {
                    self.queues.remove(&peer_id);
                    self.in_flight.remove(&peer_id);
                    self.writers.remove(&peer_id);
                    if let Some((task, _)) = self.retired.remove(&peer_id) {
                        task.abort();
                    }
                    self.writer_retry_at.remove(&peer_id);
                    self.writer_failures.remove(&peer_id);
                    self.dialled.remove(&peer_id);
                    self.resync_deferred.remove(&peer_id);
                }
                if num_established == 0
                    && let Some(user) = UserId::from_peer_id(&peer_id)
                {
                    tracing::info!(peer = %user, "peer offline");
                    self.engine.handle_disconnected(now, user);
                    if self.engine.policy().presence != crate::wire::Presence::Hidden {
                        let name = self.name_of(&user);
                        self.emit(NodeEvent::PeerOffline {
                            user_id: user.to_string(),
                            name,
                        });
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id,
                connection_id,
                error,
                ..
            } => {
                tracing::debug!(?peer_id, %error, "dial failed");
                if matches!(error, libp2p::swarm::DialError::Denied { .. }) {
                    // Refused here (connection limit), not by the peer: it is not dead.
                    self.book.on_dial_denied(peer_id, connection_id, now);
                } else {
                    self.book.on_dial_failed(peer_id, connection_id, now);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(libp2p::mdns::Event::Discovered(list))) => {
                for (peer, addr) in list {
                    if peer != *self.swarm.local_peer_id() {
                        tracing::debug!(%peer, %addr, "found by mDNS");
                        self.book.learn(peer, &addr, now);
                        self.book.rediscovered(&peer);
                    }
                }
                self.dial_due(now);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                connection,
                result: Err(error),
                peer,
            })) => {
                // A dead link (cable pulled, host frozen) shows up here long before TCP
                // gives up; closing lets presence and redial react.
                tracing::info!(%peer, %error, "ping failed; closing connection");
                self.swarm.close_connection(connection);
            }
            _ => {}
        }
    }

    /// `first` and what else is waiting on its channel (`next`), at most a turn's worth.
    fn handle_net_io_burst(&mut self, first: NetIo, mut next: impl FnMut() -> Option<NetIo>) {
        self.handle_net_io(first, now_ms());
        for _ in 0..MAX_INPUTS_PER_TURN {
            let Some(io) = next() else { break };
            self.handle_net_io(io, now_ms());
        }
    }

    /// What a stream task reports: a frame in, a frame out, a stream lost.
    pub(super) fn handle_net_io(&mut self, io: NetIo, now: u64) {
        match io {
            // The permit goes back to the budgets once the frame is handled.
            NetIo::Frame {
                peer,
                bytes,
                permit,
            } => {
                self.handle_frame(peer, &bytes, now);
                drop(permit);
            }
            NetIo::Oversized { peer, len } => {
                tracing::warn!(%peer, len, "frame over the limit; stream closed");
                if self
                    .book
                    .penalize(peer, super::peers::MALFORMED_PENALTY, now)
                    == Verdict::Ban
                {
                    self.ban(peer);
                }
            }
            NetIo::Written {
                peer,
                writer,
                frames,
            } => {
                if self.writers.get(&peer).is_some_and(|w| w.id == writer) {
                    self.writer_failures.remove(&peer);
                    self.request_done(peer, frames as usize);
                }
            }
            NetIo::Failed {
                peer,
                writer,
                error,
                unsupported,
            } => {
                if self.writers.get(&peer).is_none_or(|w| w.id != writer) {
                    return;
                }
                self.writers.remove(&peer);
                self.in_flight.remove(&peer);
                // The wait before a new stream doubles with each failure in a row (a peer
                // on another protocol version fails every time), up to 5 minutes.
                let failures = self.writer_failures.entry(peer).or_insert(0);
                *failures = failures.saturating_add(1);
                let failures = *failures;
                let wait = WRITER_RETRY_MS.saturating_mul(1 << (failures - 1).min(8));
                self.writer_retry_at
                    .insert(peer, now + wait.min(WRITER_RETRY_MAX_MS));
                self.net_stats.requests_failed += 1;
                if unsupported {
                    // A node stopping or starting refuses the protocol for a moment: only
                    // refusals in a row mean another version.
                    if failures >= 3 && self.other_version.insert(peer) {
                        let user = UserId::from_peer_id(&peer);
                        let message = format!(
                            "{} speaks another Flurfunk protocol version: update Flurfunk on both",
                            user.map(|u| self.name_of(&u))
                                .unwrap_or_else(|| peer.to_string()),
                        );
                        tracing::warn!(%peer, "{message}");
                        self.emit(NodeEvent::Warning { message });
                    }
                    return;
                }
                tracing::debug!(%peer, %error, "stream to peer failed");
                // The frames handed to it may be lost; a fresh digest exchange repairs them.
                self.resync_later(peer, now);
            }
        }
    }

    fn handle_frame(&mut self, peer: PeerId, bytes: &[u8], now: u64) {
        let Some(user) = UserId::from_peer_id(&peer) else {
            return;
        };
        match self.book.check_frame(peer, bytes.len(), now) {
            Verdict::Accept => {}
            Verdict::Drop => return,
            Verdict::Ban => return self.ban(peer),
        }
        let frame = match NetFrame::decode(bytes) {
            Ok(frame) => frame,
            Err(WireError::Version { version })
                if (1..32).contains(&version) && !self.other_version.contains(&peer) =>
            {
                // Likely an older or newer Flurfunk, not an attack: say so once, plainly.
                // (Further frames count as malformed, as garbage would.)
                if self.other_version.insert(peer) {
                    let message = format!(
                        "{} speaks Flurfunk protocol version {version}, this node version {}: update Flurfunk on both",
                        self.name_of(&user),
                        crate::wire::WIRE_VERSION
                    );
                    tracing::warn!(%peer, "{message}");
                    self.emit(NodeEvent::Warning { message });
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%peer, %error, "malformed frame");
                if self
                    .book
                    .penalize(peer, super::peers::MALFORMED_PENALTY, now)
                    == Verdict::Ban
                {
                    self.ban(peer);
                }
                return;
            }
        };
        match frame {
            NetFrame::Sync(msg) => match self.engine.handle_message(now, user, msg) {
                Ok(()) => self.weigh_offences(now),
                Err(SyncError::Store(e)) => {
                    tracing::error!(error = %e, "store failed");
                    self.emit(NodeEvent::Warning {
                        message: e.to_string(),
                    });
                }
                Err(error) => {
                    tracing::warn!(%peer, %error, "bad sync message");
                    if self
                        .book
                        .penalize(peer, super::peers::MALFORMED_PENALTY, now)
                        == Verdict::Ban
                    {
                        self.ban(peer);
                    }
                }
            },
            NetFrame::Peers(records) => {
                let me = *self.swarm.local_peer_id();
                let mut news = Vec::new();
                for record in records {
                    if record.peer == me {
                        continue;
                    }
                    let mut new = false;
                    for addr in &record.addrs {
                        new |= self.book.learn(record.peer, addr, now);
                    }
                    if new && record.peer == peer {
                        news.push(record);
                    }
                }
                // A peer's own new addresses go on to everyone else, so a node behind
                // the one explicit link becomes known on both sides.
                if !news.is_empty() {
                    let others: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                    for other in others {
                        if other == peer {
                            continue;
                        }
                        let to_other = self.book.visible_to(other, news.clone());
                        if !to_other.is_empty() {
                            self.enqueue(other, NetFrame::Peers(to_other).encode());
                        }
                    }
                }
                self.dial_due(now);
            }
        }
    }

    /// A request to `peer` ended (answered or failed): send what waits for the slot.
    fn request_done(&mut self, peer: PeerId, frames: usize) {
        if let Some(n) = self.in_flight.get_mut(&peer) {
            *n = n.saturating_sub(frames);
        }
        self.flush_queue(peer);
    }

    fn resync_later(&mut self, peer: PeerId, now: u64) {
        let last = self.last_resync_ms.get(&peer).copied().unwrap_or(0);
        if now.saturating_sub(last) < RESYNC_MIN_INTERVAL_MS {
            // A frame lost after the last resync started is not repaired by it.
            self.resync_deferred.insert(peer);
        } else if let Some(user) = UserId::from_peer_id(&peer) {
            self.resync_deferred.remove(&peer);
            self.last_resync_ms.insert(peer, now);
            self.net_stats.resyncs += 1;
            self.engine.resync(user);
        }
    }

    /// Queue a frame for a peer; it goes out when a request slot is free.
    fn enqueue(&mut self, peer: PeerId, bytes: Vec<u8>) {
        let queue = self.queues.entry(peer).or_default();
        if queue.frames.len() >= MAX_QUEUED_PER_PEER
            || queue.bytes + bytes.len() > MAX_QUEUED_BYTES_PER_PEER
        {
            self.net_stats.frames_dropped += 1;
            queue.resync_due = true;
            return;
        }
        queue.bytes += bytes.len();
        queue.frames.push_back(bytes);
        self.net_stats.max_queue = self.net_stats.max_queue.max(queue.frames.len());
        self.flush_queue(peer);
    }

    fn flush_queue(&mut self, peer: PeerId) {
        let Some(queue) = self.queues.get_mut(&peer) else {
            return;
        };
        // The clock and the connection are looked at only when a writer is missing (not
        // for every frame written).
        if !self.writers.contains_key(&peer)
            && !queue.frames.is_empty()
            && self.swarm.is_connected(&peer)
            && self
                .writer_retry_at
                .get(&peer)
                .is_none_or(|t| *t <= now_ms())
        {
            self.next_writer += 1;
            let writer = net::spawn_writer(
                self.control.clone(),
                peer,
                self.next_writer,
                MAX_IN_FLIGHT_PER_PEER,
                self.writer_tx.clone(),
            );
            self.writers.insert(peer, writer);
            self.writer_retry_at.remove(&peer);
        }
        if let Some(writer) = self.writers.get(&peer) {
            let in_flight = self.in_flight.entry(peer).or_insert(0);
            while *in_flight < MAX_IN_FLIGHT_PER_PEER {
                let Some(bytes) = queue.frames.pop_front() else {
                    break;
                };
                let len = bytes.len();
                match writer.frames.try_send(bytes) {
                    Ok(()) => {
                        queue.bytes -= len;
                        *in_flight += 1;
                    }
                    Err(e) => {
                        // Full cannot happen (the count above); closed: its failure is
                        // on its way to the event loop.
                        queue.frames.push_front(e.into_inner());
                        break;
                    }
                }
            }
        }
        // Tell the engine when the peer falls behind, and when it has caught up.
        let congested = if queue.congested {
            queue.bytes > UNCONGESTED_BYTES
        } else {
            queue.bytes > CONGESTED_BYTES
        };
        let changed = congested != queue.congested;
        queue.congested = congested;
        let resync = queue.resync_due
            && queue.frames.len() < MAX_QUEUED_PER_PEER / 2
            && queue.bytes < UNCONGESTED_BYTES;
        if resync {
            queue.resync_due = false;
        }
        let done = queue.frames.is_empty() && !queue.congested && !queue.resync_due;
        if done {
            self.queues.remove(&peer);
        }
        if resync && let Some(user) = UserId::from_peer_id(&peer) {
            // What was dropped is found again by comparing digests.
            self.net_stats.resyncs += 1;
            self.engine.resync(user);
        }
        if changed && let Some(user) = UserId::from_peer_id(&peer) {
            self.engine.set_peer_congested(user, congested);
        }
    }

    /// Frames queued towards all peers now.
    pub(super) fn queued_frames(&self) -> usize {
        self.queues.values().map(|q| q.frames.len()).sum()
    }

    /// Choose links again: the plan's choice among reachable peers is dialled; beyond
    /// `max_peers`, connections this node dialled that it no longer wants (and no admin
    /// gave) are closed.
    fn relink(&mut self, now: u64) {
        if now.saturating_sub(self.last_relink_ms) < RELINK_INTERVAL_MS {
            return;
        }
        self.last_relink_ms = now;
        let plan = self.plan.get_or_insert_with(|| self.engine.link_plan());
        let book = &self.book;
        let chosen = plan.choose(
            |u| u.to_peer_id().is_some_and(|p| book.is_reachable(&p, now)),
            self.config.max_peers,
        );
        self.wanted = chosen.iter().filter_map(UserId::to_peer_id).collect();
        // Partners of 1:1 chats with messages waiting are the only other holders: linked
        // (dialled, never trimmed) whatever the plan says. The plan is made when a
        // membership changes; a text in a chat that was idle then left its partner out
        // (links taken by groups, or trimmed) until the next change. Making the plan again
        // instead changed every node's links every second at 20 messages/s.
        for partner in self.engine.waiting_direct_partners() {
            if let Some(peer) = partner.to_peer_id() {
                self.wanted.insert(peer);
            }
        }
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        let mut excess = connected.len().saturating_sub(self.config.max_peers);
        for peer in connected {
            if excess == 0 {
                break;
            }
            if self.dialled.contains(&peer)
                && !self.wanted.contains(&peer)
                && !self.book.is_explicit(&peer)
            {
                let _ = self.swarm.disconnect_peer_id(peer);
                self.net_stats.trimmed += 1;
                excess -= 1;
            }
        }
    }

    /// Events a peer should not have sent count towards its ban (`sync::Offence`).
    fn weigh_offences(&mut self, now: u64) {
        for (user, o) in self.engine.take_offences() {
            let points = super::peers::offence_points(&o);
            if points <= 0.0 {
                continue;
            }
            let Some(peer) = user.to_peer_id() else {
                continue;
            };
            tracing::debug!(%peer, forged = o.forged, invalid = o.invalid, "peer sent events no honest node would");
            if self.book.penalize(peer, points, now) == Verdict::Ban {
                self.ban(peer);
            }
        }
    }

    /// A peer sent what no honest node sends (a malformed frame, a block that fails its
    /// hash): penalised, banned when it adds up.
    pub(super) fn penalize_peer(&mut self, peer: PeerId, now: u64) {
        if self
            .book
            .penalize(peer, super::peers::MALFORMED_PENALTY, now)
            == Verdict::Ban
        {
            self.ban(peer);
        }
    }

    fn ban(&mut self, peer: PeerId) {
        tracing::warn!(%peer, "peer misbehaves; disconnected for a while");
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    fn send_peer_records(&mut self, to: PeerId) {
        let me = *self.swarm.local_peer_id();
        let records = self.book.records_for(me, &self.listen_addrs, to);
        if !records.is_empty() {
            self.enqueue(to, NetFrame::Peers(records).encode());
        }
    }

    fn dial_due(&mut self, now: u64) {
        let bootstrap =
            MIN_LINKS.saturating_sub(self.swarm.connected_peers().count() + self.book.dialing());
        let (peers, explicit) = self.book.due_dials(now, &self.wanted, bootstrap);
        for (peer, addrs) in peers {
            // A fresh local port for every dial: binding the listening port first (libp2p's
            // default, for NAT hole punching, useless on a LAN) fails under Wine and where a
            // listener holds the port exclusively. Peers learn our address from the address
            // records we send, never from a connection's source port.
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .allocate_new_port()
                .build();
            if let Err(error) = self.swarm.dial(opts) {
                tracing::debug!(%peer, %error, "cannot dial");
                self.book.on_dial_failed(
                    Some(peer),
                    libp2p::swarm::ConnectionId::new_unchecked(0),
                    now,
                );
            }
        }
        for index in explicit {
            let Some(addr) = self.book.explicit.get(index).map(|e| e.addr.clone()) else {
                continue;
            };
            let opts = DialOpts::unknown_peer_id()
                .address(addr.clone())
                .allocate_new_port()
                .build();
            let connection = opts.connection_id();
            self.book.mark_explicit_dialing(index, connection);
            if let Err(error) = self.swarm.dial(opts) {
                tracing::debug!(%addr, %error, "cannot dial");
                self.book.on_dial_failed(None, connection, now);
            }
        }
    }

    pub(super) fn add_explicit_peer(&mut self, addr: Multiaddr, now: u64) {
        self.book.add_explicit(addr, now);
        self.dial_due(now);
    }

    fn handle_tick(&mut self, now: u64) {
        if let Err(e) = self.engine.handle_tick(now) {
            tracing::error!(error = %e, "tick failed");
        }
        self.apply_network_key(now);
        self.pump_downloads(now);
        if now >= self.next_key_check_ms {
            self.next_key_check_ms = now.saturating_add(KEY_CHECK_INTERVAL_MS);
            match self.engine.drop_expired_keys(now) {
                Ok(true) => {
                    if let Err(e) = self.save_identity() {
                        tracing::error!(error = %e, "cannot save the key file after deleting old keys");
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot keep the epoch keys of old X25519 keys")
                }
            }
        }
        self.retired.retain(|_, (task, until)| {
            let keep = *until > now && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        // Queues that waited for a failed stream's retry time.
        let retry: Vec<PeerId> = self
            .writer_retry_at
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in retry {
            self.writer_retry_at.remove(&peer);
            self.flush_queue(peer);
        }
        let deferred: Vec<PeerId> = self.resync_deferred.iter().copied().collect();
        for peer in deferred {
            self.resync_later(peer, now);
        }
        self.relink(now);
        self.dial_due(now);
    }

    // ----- after each turn ------------------------------------------------------------

    /// Commit what the turn stored, then send frames and publish events.
    fn drive(&mut self, now: u64) -> Result<(), String> {
        let mut result = Ok(());
        // Committing can author receipts, which need one more commit; bounded.
        for _ in 0..3 {
            // The engine knows what it stored since its last commit.
            if !(self.dirty || self.engine.needs_commit(now)) {
                break;
            }
            self.dirty = false;
            if let Err(e) = self.engine.commit(now) {
                tracing::error!(error = %e, "commit failed");
                self.emit(NodeEvent::Warning {
                    message: e.to_string(),
                });
                result = Err(e.to_string());
                break;
            }
        }
        while let Some((user, msg)) = self.engine.poll_transmit() {
            let Some(peer) = user.to_peer_id() else {
                continue;
            };
            if self.swarm.is_connected(&peer) {
                self.enqueue(peer, NetFrame::Sync(msg).encode());
            }
        }
        while let Some(n) = self.engine.poll_notification() {
            if matches!(n, Notification::ConversationChanged { .. }) {
                // Membership may have changed: the links are planned again.
                self.plan = None;
                self.last_relink_ms = 0;
            }
            if let Some(event) = self.node_event(n) {
                self.emit(event);
            }
        }
        result
    }

    /// The notice naming `author`'s device, unless it was given already this run.
    fn misbehaviour(
        &mut self,
        what: &'static str,
        conversation: &ConversationId,
        author: &UserId,
    ) -> Option<NodeEvent> {
        if !self.misbehaviour_told.insert((what, *author)) {
            return None;
        }
        Some(NodeEvent::Misbehaviour {
            what: what.into(),
            conversation: conversation.to_string(),
            conversation_name: self
                .engine
                .conversation(conversation)
                .map(|c| self.conversation_name(&c))
                .unwrap_or_default(),
            user_id: author.to_string(),
            name: self.name_of(author),
        })
    }

    /// Act on the revocation list: a colleague who left is disconnected and never dialled
    /// again (one taken off the list may be again); `tell`: say so to the app.
    pub(super) fn apply_revocations(&mut self, now: u64, tell: bool) {
        let revoked: std::collections::BTreeSet<UserId> =
            self.engine.revoked_users().keys().copied().collect();
        for user in revoked.difference(&self.revoked_here) {
            let Some(peer) = user.to_peer_id() else {
                continue;
            };
            self.book.ban_for_good(peer, now);
            let _ = self.swarm.disconnect_peer_id(peer);
            tracing::info!(user = %user.short(), "revoked by the network's admin: disconnected for good");
            if tell {
                let name = self.name_of(user);
                self.emit(NodeEvent::LeftOrganisation {
                    user_id: user.to_string(),
                    name,
                });
            }
        }
        for user in self.revoked_here.difference(&revoked) {
            if let Some(peer) = user.to_peer_id() {
                self.book.unban(&peer);
            }
        }
        self.revoked_here = revoked;
    }

    fn finish(&mut self) {
        if let Err(e) = self.engine.commit_before_stop(now_ms()) {
            tracing::error!(error = %e, "final commit failed");
        }
        self.writers.clear();
        if let Some(inbound) = self.inbound.take() {
            inbound.abort();
        }
    }
}

fn kind_name(kind: ConversationKind) -> &'static str {
    match kind {
        ConversationKind::Direct => "direct",
        ConversationKind::Group => "group",
    }
}

pub(super) async fn run(mut core: Core, mut commands: mpsc::Receiver<Command>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    core.apply_revocations(now_ms(), false);
    core.apply_network_key(now_ms());
    core.dial_due(now_ms());
    let mut replies: Vec<Reply> = Vec::new();
    let mut shutdown = None;
    let (Some(mut net_rx), Some(mut writer_rx)) = (core.net_rx.take(), core.writer_rx.take())
    else {
        tracing::error!("the event loop was started twice");
        return;
    };
    if let Some(incoming) = core.incoming.take() {
        core.inbound = Some(net::spawn_inbound(incoming, core.net_tx.clone()));
    }
    let (asks_tx, mut asks_rx) = mpsc::channel(net::blob::MAX_SERVING);
    core.start_files(asks_tx);
    let Some(mut file_done_rx) = core.file_done_rx.take() else {
        return;
    };
    loop {
        tokio::select! {
            Some(ask) = asks_rx.recv() => core.handle_blob_ask(ask),
            Some(done) = file_done_rx.recv() => core.handle_fetch_done(done, now_ms()),
            Some(io) = writer_rx.recv() => {
                core.handle_net_io_burst(io, || writer_rx.try_recv().ok());
            }
            Some(io) = net_rx.recv() => {
                core.handle_net_io_burst(io, || net_rx.try_recv().ok());
            }
            command = commands.recv() => {
                let mut next = command;
                let mut handled = 0;
                loop {
                    match next {
                        Some(Command::Run(job)) => {
                            replies.push(job(&mut core, now_ms()));
                            core.dirty = true;
                        }
                        Some(Command::Shutdown(tx)) => {
                            shutdown = Some(Some(tx));
                            break;
                        }
                        None => {
                            shutdown = Some(None);
                            break;
                        }
                    }
                    handled += 1;
                    if handled >= MAX_INPUTS_PER_TURN {
                        break;
                    }
                    match commands.try_recv() {
                        Ok(c) => next = Some(c),
                        Err(_) => break,
                    }
                }
            }
            event = core.swarm.select_next_some() => {
                core.handle_swarm_event(event, now_ms());
                for _ in 0..MAX_INPUTS_PER_TURN {
                    match core.swarm.next().now_or_never() {
                        Some(Some(event)) => core.handle_swarm_event(event, now_ms()),
                        _ => break,
                    }
                }
            }
            _ = tick.tick() => core.handle_tick(now_ms()),
        }
        let committed = core.drive(now_ms());
        for reply in replies.drain(..) {
            reply(committed.clone());
        }
        if let Some(tx) = shutdown {
            core.finish();
            // The store (and its file lock) goes before the caller hears "stopped", so the
            // same data directory can be opened again right away.
            drop(core);
            tracing::info!("node stopped");
            if let Some(tx) = tx {
                let _ = tx.send(());
            }
            return;
        }
    }
}
