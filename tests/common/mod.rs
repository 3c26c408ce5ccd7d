//! A deterministic network simulator for sync engines: seeded RNG, virtual clock, and a
//! network that drops, duplicates, delays, reorders, partitions and crashes.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use flurfunk::conversation::ConversationState;
use flurfunk::identity::{Identity, Profile, UserId};
use flurfunk::store::{MemoryStore, Store};
use flurfunk::sync::{Config, Engine, Notification, RngSeed};
use flurfunk::wire::{Content, ConversationId, Event, EventId, EventKind, Role};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const TICK_MS: u64 = 10;

pub fn identity(seed: u64, name: &str) -> Identity {
    Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed), name).unwrap()
}

/// One engine outside a simulator, on a memory store, its identity and generator from
/// `seed` (the same identity as `identity(seed, name)`).
pub fn standalone_engine(seed: u64, name: &str, config: Config) -> Engine<MemoryStore> {
    Engine::new(
        identity(seed, name),
        MemoryStore::new(),
        config,
        RngSeed::fixed(seed),
        1000,
    )
    .unwrap()
}

/// Anna (seed 1) has opened a 1:1 chat with Bernd (seed 2) and written one text that
/// nobody holds yet; the two have just connected, and nothing is in flight.
pub fn direct_pair(
    anna: Config,
    bernd: Config,
) -> (Engine<MemoryStore>, Engine<MemoryStore>, ConversationId) {
    let mut a = standalone_engine(1, "Anna", anna);
    let mut b = standalone_engine(2, "Bernd", bernd);
    let conv = a
        .open_direct(1000, &identity(2, "Bernd").profile(0))
        .unwrap();
    a.send_text(1001, conv, "Kommst du zur Besprechung?")
        .unwrap();
    a.commit(1002).unwrap();
    while a.poll_transmit().is_some() {}
    let (ua, ub) = (a.user_id(), b.user_id());
    a.handle_connected(2000, ub);
    b.handle_connected(2000, ua);
    (a, b, conv)
}

pub struct Node {
    pub name: String,
    pub key_seed: u64,
    pub role: Role,
    pub engine: Option<Engine<MemoryStore>>,
    /// The store of a crashed node, as the restarted process will find it.
    pub crashed_store: Option<MemoryStore>,
    pub partition: u32,
    /// Own events the engine reported as durably saved.
    pub saved: BTreeSet<EventId>,
    pub retracted: BTreeSet<EventId>,
    pub received_texts: Vec<EventId>,
    /// Files the engine said to remove (their message was deleted for everyone).
    pub files_purged: Vec<flurfunk::wire::BlobRef>,
    /// Messages an edit newly called this node's user in (`Notification::Mentioned`).
    pub mentioned: Vec<EventId>,
    pub user_id: UserId,
    pub profile: Profile,
}

impl Node {
    pub fn online(&self) -> bool {
        self.engine.is_some()
    }
    pub fn engine(&mut self) -> &mut Engine<MemoryStore> {
        self.engine.as_mut().expect("node is offline")
    }
    pub fn identity(&self) -> Identity {
        identity(self.key_seed, &self.name)
    }
}

struct Flight {
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    pub max_delay_ms: u64,
}

impl Faults {
    pub fn none() -> Self {
        Faults {
            drop: 0.0,
            duplicate: 0.0,
            max_delay_ms: 5,
        }
    }
}

/// What one node sent: the engine's frames, as encoded for the wire.
#[derive(Clone, Copy, Debug, Default)]
pub struct Traffic {
    pub bytes: u64,
    pub frames: u64,
}

/// Delivery times of tracked texts to the members online when they were sent.
#[derive(Debug, Default)]
pub struct LatencyLog {
    /// Text -> (sent at, the recipients online then that have not received it yet).
    pub sent: HashMap<EventId, (u64, BTreeSet<usize>)>,
    /// Recipients expected in all.
    pub expected: usize,
    /// Milliseconds from sending to arrival, one per delivery to an expected recipient.
    pub deliveries: Vec<u64>,
}

impl LatencyLog {
    pub fn expected(&self) -> usize {
        self.expected
    }
}

pub struct Sim {
    pub rng: ChaCha8Rng,
    pub now: u64,
    pub nodes: Vec<Node>,
    flights: BTreeMap<(u64, u64), Flight>,
    counter: u64,
    pub faults: Faults,
    /// Chance that a node crashes right after handling a frame, before its engine commits:
    /// what it stored but had not flushed is lost (a crash between storing and
    /// committing, not only between steps).
    pub mid_step_crash: f64,
    /// Nodes crashed that way (a schedule restarts them).
    pub mid_step_crashes: u64,
    /// A slow disk: these nodes do not commit until the given virtual time, and then
    /// crash instead (everything stored since the last commit is lost, while the node
    /// went on answering peers meanwhile).
    pub commit_held_until: BTreeMap<usize, u64>,
    connected: BTreeSet<(usize, usize)>,
    pub frames_delivered: u64,
    /// The engine configuration every node starts with.
    pub config: Config,
    /// false: every pair of reachable nodes is connected (small tests). true: each node
    /// holds only the links its engine's `link_plan` chooses, as a real node does.
    pub bounded_links: bool,
    /// The most links a node chooses (a node's `max_peers`).
    pub max_links: usize,
    plans: Vec<Option<flurfunk::sync::LinkPlan>>,
    /// Whether a node links to the partners of its 1:1 chats with messages waiting
    /// whatever its plan says, as a node does (`Engine::waiting_direct_partners`); false
    /// switches that off (to show what it is for).
    pub link_waiting_partners: bool,
    last_links_ms: u64,
    by_user: HashMap<UserId, usize>,
    pub traffic: Vec<Traffic>,
    pub bytes_by_kind: BTreeMap<&'static str, u64>,
    inflight_to: Vec<usize>,
    /// Most frames ever in flight towards one node.
    pub max_inflight_to: usize,
    pub latency: Option<LatencyLog>,
    /// (from, to): every frame `from`'s engine sends to `to` is dropped (a node that
    /// withholds events from some peers).
    pub withhold: BTreeSet<(usize, usize)>,
    /// Relays' certificates (a managed network: `config.admin_key`), given to a relay's
    /// engine when it starts.
    pub relay_certificates: HashMap<UserId, flurfunk::wire::RelayCertificate>,
    /// Relay certificates refused as forged or another node's (the frame was an error).
    pub certificates_refused: u64,
    /// Admin statements refused (forged), as `certificates_refused`.
    pub statements_refused: u64,
}

/// Links are re-chosen this often in bounded mode (a real node re-chooses on its tick).
const RELINK_MS: u64 = 1_000;

fn kind_of(bytes: &[u8]) -> &'static str {
    match bytes.get(1) {
        Some(1) => "hello",
        Some(2) => "summary",
        Some(3) => "events",
        Some(4) => "profiles",
        Some(5) => "digest",
        Some(6) => "have",
        Some(7) => "want",
        Some(8) => "receipts",
        Some(9) => "profile digest",
        Some(10) => "relay certificate",
        Some(11) => "admin serials",
        Some(12) => "admin statement",
        _ => "other",
    }
}

impl Sim {
    pub fn new(seed: u64) -> Self {
        Sim {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 1_764_000_000_000,
            nodes: Vec::new(),
            flights: BTreeMap::new(),
            counter: 0,
            faults: Faults::none(),
            mid_step_crash: 0.0,
            mid_step_crashes: 0,
            commit_held_until: BTreeMap::new(),
            connected: BTreeSet::new(),
            frames_delivered: 0,
            config: Config {
                anti_entropy_interval_ms: 2_000,
                ..Config::default()
            },
            bounded_links: false,
            max_links: flurfunk::node::DEFAULT_MAX_PEERS,
            plans: Vec::new(),
            link_waiting_partners: true,
            last_links_ms: 0,
            by_user: HashMap::new(),
            traffic: Vec::new(),
            bytes_by_kind: BTreeMap::new(),
            inflight_to: Vec::new(),
            max_inflight_to: 0,
            latency: None,
            withhold: BTreeSet::new(),
            relay_certificates: HashMap::new(),
            certificates_refused: 0,
            statements_refused: 0,
        }
    }

    fn engine_config(&self, role: Role, user: &UserId) -> Config {
        Config {
            role,
            relay_certificate: self.relay_certificates.get(user).cloned(),
            ..self.config.clone()
        }
    }

    pub fn add_node(&mut self, name: &str, role: Role) -> usize {
        let key_seed = 1000 + self.nodes.len() as u64;
        let id = identity(key_seed, name);
        let profile = id.profile(0);
        let engine = Engine::new(
            id,
            MemoryStore::new(),
            self.engine_config(role, &profile.user_id),
            RngSeed::fixed(self.rng.r#gen()),
            self.now,
        )
        .unwrap();
        self.by_user.insert(profile.user_id, self.nodes.len());
        self.nodes.push(Node {
            name: name.into(),
            key_seed,
            role,
            user_id: profile.user_id,
            profile,
            engine: Some(engine),
            crashed_store: None,
            partition: 0,
            saved: BTreeSet::new(),
            retracted: BTreeSet::new(),
            received_texts: Vec::new(),
            files_purged: Vec::new(),
            mentioned: Vec::new(),
        });
        self.plans.push(None);
        self.traffic.push(Traffic::default());
        self.inflight_to.push(0);
        if !self.bounded_links {
            self.update_links();
        }
        self.nodes.len() - 1
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        a != b
            && self.nodes[a].online()
            && self.nodes[b].online()
            && self.nodes[a].partition == self.nodes[b].partition
    }

    /// The links that should be up now.
    fn wanted_links(&mut self) -> BTreeSet<(usize, usize)> {
        let n = self.nodes.len();
        let mut out = BTreeSet::new();
        if !self.bounded_links {
            for a in 0..n {
                for b in (a + 1)..n {
                    if self.reachable(a, b) {
                        out.insert((a, b));
                    }
                }
            }
            return out;
        }
        for a in 0..n {
            let Some(engine) = self.nodes[a].engine.as_ref() else {
                continue;
            };
            let plan = self.plans[a]
                .get_or_insert_with(|| engine.link_plan())
                .clone();
            let mut chosen = plan.choose(
                |u| self.by_user.get(u).is_some_and(|b| self.reachable(a, *b)),
                self.max_links,
            );
            if self.link_waiting_partners {
                chosen.extend(engine.waiting_direct_partners());
            }
            for u in chosen {
                // A plan may keep trying a partner that is away; the dial fails.
                let b = self.by_user[&u];
                if self.reachable(a, b) {
                    out.insert((a.min(b), a.max(b)));
                }
            }
        }
        out
    }

    /// Tell engines about connections that came up or went down.
    pub fn update_links(&mut self) {
        let wanted = self.wanted_links();
        let down: Vec<(usize, usize)> = self
            .connected
            .iter()
            .filter(|l| !wanted.contains(l) || !self.reachable(l.0, l.1))
            .copied()
            .collect();
        let up: Vec<(usize, usize)> = wanted
            .iter()
            .filter(|l| !self.connected.contains(l))
            .copied()
            .collect();
        let now = self.now;
        for (a, b) in down {
            self.connected.remove(&(a, b));
            let (ua, ub) = (self.nodes[a].user_id, self.nodes[b].user_id);
            if let Some(e) = self.nodes[a].engine.as_mut() {
                e.handle_disconnected(now, ub);
            }
            if let Some(e) = self.nodes[b].engine.as_mut() {
                e.handle_disconnected(now, ua);
            }
        }
        let mut touched = BTreeSet::new();
        for (a, b) in up {
            self.connected.insert((a, b));
            let (ua, ub) = (self.nodes[a].user_id, self.nodes[b].user_id);
            self.nodes[a].engine().handle_connected(now, ub);
            self.nodes[b].engine().handle_connected(now, ua);
            touched.insert(a);
            touched.insert(b);
        }
        if self.bounded_links {
            for i in touched {
                self.pump(i);
            }
        } else {
            for i in 0..self.nodes.len() {
                self.pump(i);
            }
        }
    }

    /// Links per node now: (largest, mean).
    pub fn degree(&self) -> (usize, f64) {
        let mut deg = vec![0usize; self.nodes.len()];
        for (a, b) in &self.connected {
            deg[*a] += 1;
            deg[*b] += 1;
        }
        let max = deg.iter().copied().max().unwrap_or(0);
        let mean = deg.iter().sum::<usize>() as f64 / deg.len().max(1) as f64;
        (max, mean)
    }

    pub fn set_partition(&mut self, node: usize, group: u32) {
        self.nodes[node].partition = group;
        self.update_links();
    }

    pub fn heal(&mut self) {
        for n in &mut self.nodes {
            n.partition = 0;
        }
        self.update_links();
    }

    /// Crash: whatever was not flushed is lost; the node is offline until `restart`.
    pub fn crash(&mut self, node: usize) {
        if std::env::var("FLURFUNK_SIM_SEED").is_ok()
            && let Some(engine) = self.nodes[node].engine.as_ref()
        {
            let durable = engine.store().durable_event_ids();
            let me = self.nodes[node].user_id;
            for conv in engine.store().conversations().unwrap() {
                for e in engine.store().events_in_order(&conv).unwrap() {
                    if e.header.author == me && !durable.contains(&e.id()) {
                        let holders: Vec<String> = self
                            .nodes
                            .iter()
                            .filter(|n| {
                                n.user_id != me
                                    && n.engine.as_ref().is_some_and(|x| {
                                        x.store().event(&e.id()).unwrap().is_some()
                                    })
                            })
                            .map(|n| n.name.clone())
                            .collect();
                        eprintln!(
                            "t={} crash {} loses own seq {} {:?} held by {:?}",
                            self.now, self.nodes[node].name, e.header.seq, e.header.kind, holders
                        );
                    }
                }
            }
        }
        if let Some(engine) = self.nodes[node].engine.take() {
            self.nodes[node].crashed_store = Some(engine.store().crash_copy());
        }
        self.plans[node] = None;
        self.update_links();
    }

    /// Graceful stop: commit, then go offline.
    pub fn stop(&mut self, node: usize) {
        if let Some(engine) = self.nodes[node].engine.as_mut() {
            engine.commit_before_stop(self.now).unwrap();
        }
        self.collect(node);
        self.crash(node);
    }

    pub fn restart(&mut self, node: usize) {
        let Some(store) = self.nodes[node].crashed_store.take() else {
            return;
        };
        let id = self.nodes[node].identity();
        let engine = Engine::new(
            id,
            store,
            self.engine_config(self.nodes[node].role, &self.nodes[node].user_id),
            RngSeed::fixed(self.rng.r#gen()),
            self.now,
        )
        .unwrap();
        self.nodes[node].engine = Some(engine);
        self.update_links();
    }

    /// Move frames from a node's engine into the network and notifications into records.
    pub fn pump(&mut self, i: usize) {
        loop {
            let Some(engine) = self.nodes[i].engine.as_mut() else {
                return;
            };
            let Some((to_user, msg)) = engine.poll_transmit() else {
                break;
            };
            let Some(&to) = self.by_user.get(&to_user) else {
                continue;
            };
            if std::env::var("FLURFUNK_SIM_SEED").is_ok()
                && let flurfunk::wire::SyncMessage::Events { events } = &msg
            {
                let durable = engine.store().durable_event_ids();
                let me = self.nodes[i].user_id;
                for e in events
                    .iter()
                    .filter(|e| e.header.author == me && !durable.contains(&e.id()))
                {
                    eprintln!(
                        "t={} {} sends unsaved own seq {} to {:?} (batch of {})",
                        self.now,
                        self.nodes[i].name,
                        e.header.seq,
                        to_user,
                        events.len()
                    );
                }
            }
            let bytes = msg.encode();
            self.traffic[i].bytes += bytes.len() as u64;
            self.traffic[i].frames += 1;
            *self.bytes_by_kind.entry(kind_of(&bytes)).or_default() += bytes.len() as u64;
            if self.rng.gen_bool(self.faults.drop) || self.withhold.contains(&(i, to)) {
                continue;
            }
            let copies = if self.rng.gen_bool(self.faults.duplicate) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = self.rng.gen_range(1..=self.faults.max_delay_ms.max(1));
                self.counter += 1;
                self.inflight_to[to] += 1;
                self.max_inflight_to = self.max_inflight_to.max(self.inflight_to[to]);
                self.flights.insert(
                    (self.now + delay, self.counter),
                    Flight {
                        from: i,
                        to,
                        bytes: bytes.clone(),
                    },
                );
            }
        }
        self.collect(i);
    }

    fn collect(&mut self, i: usize) {
        let now = self.now;
        let node = &mut self.nodes[i];
        let Some(engine) = node.engine.as_mut() else {
            return;
        };
        while let Some(n) = engine.poll_notification() {
            match n {
                Notification::Saved { event_id, .. } => {
                    node.saved.insert(event_id);
                }
                Notification::Retracted { event_id, .. } => {
                    node.retracted.insert(event_id);
                }
                Notification::Message { event_id, .. } => {
                    if let Some(log) = self.latency.as_mut()
                        && let Some((sent, waiting)) = log.sent.get_mut(&event_id)
                        && waiting.remove(&i)
                    {
                        log.deliveries.push(now - *sent);
                    }
                    node.received_texts.push(event_id);
                }
                Notification::ConversationChanged { .. } => self.plans[i] = None,
                Notification::FilePurged { blob } => node.files_purged.push(blob),
                Notification::Mentioned { target, .. } => node.mentioned.push(target),
                _ => {}
            }
        }
    }

    /// Advance virtual time by one tick: deliver due frames, tick and commit engines.
    pub fn step(&mut self) {
        self.now += TICK_MS;
        let now = self.now;
        while let Some(entry) = self.flights.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let f = entry.remove();
            self.inflight_to[f.to] -= 1;
            // A frame only arrives over a connection that is still up.
            let link = (f.from.min(f.to), f.from.max(f.to));
            if !self.reachable(f.from, f.to) || !self.connected.contains(&link) {
                continue;
            }
            let from_user = self.nodes[f.from].user_id;
            let engine = self.nodes[f.to].engine();
            match engine.handle_frame(now, from_user, &f.bytes) {
                Ok(()) => {}
                // A relay showing a certificate that is not valid here (a test of a
                // managed network): refused and counted, as a node penalises it.
                Err(flurfunk::sync::SyncError::Wire(flurfunk::wire::WireError::Invalid {
                    what: "relay certificate",
                })) => self.certificates_refused += 1,
                // A forged admin statement (a test of a managed network): refused and
                // counted, as a node penalises it.
                Err(flurfunk::sync::SyncError::Wire(flurfunk::wire::WireError::Invalid {
                    what: "admin statement signature",
                })) => self.statements_refused += 1,
                Err(e) => panic!("an engine refused a frame of another: {e}"),
            }
            self.frames_delivered += 1;
            self.pump(f.to);
            if self.mid_step_crash > 0.0 && self.rng.gen_bool(self.mid_step_crash) {
                self.mid_step_crashes += 1;
                self.crash(f.to);
            }
        }
        for i in 0..self.nodes.len() {
            let held = self.commit_held_until.get(&i).copied();
            if held.is_some_and(|until| now >= until) {
                self.commit_held_until.remove(&i);
                self.mid_step_crashes += 1;
                self.crash(i);
                continue;
            }
            if let Some(engine) = self.nodes[i].engine.as_mut() {
                engine.handle_tick(now).unwrap();
                if held.is_none() && engine.needs_commit(now) {
                    engine.commit(now).unwrap();
                }
            }
            self.pump(i);
        }
        if self.bounded_links && now.saturating_sub(self.last_links_ms) >= RELINK_MS {
            self.last_links_ms = now;
            self.update_links();
        }
    }

    pub fn run_ms(&mut self, ms: u64) {
        for _ in 0..(ms / TICK_MS) {
            self.step();
        }
    }

    pub fn idle(&self) -> bool {
        self.flights.is_empty()
    }

    /// Run until nothing is in flight and two anti-entropy rounds changed nothing.
    pub fn settle(&mut self, max_ms: u64) {
        let start = self.now;
        let mut quiet_since = None;
        while self.now - start < max_ms {
            let before = self.fingerprint();
            self.step();
            // Five anti-entropy rounds without a new event anywhere: converged.
            if self.fingerprint() == before {
                let since = *quiet_since.get_or_insert(self.now);
                if self.now - since > 5 * self.config.anti_entropy_interval_ms {
                    return;
                }
            } else {
                quiet_since = None;
            }
        }
    }

    fn fingerprint(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .map(|n| {
                n.engine
                    .as_ref()
                    .map_or(0, |e| e.store().event_count().unwrap_or(0))
            })
            .collect()
    }

    /// A frame from `from` to `to` as a dishonest node would send it (not through its
    /// engine); it travels like any other, subject to partitions and links.
    pub fn inject(&mut self, from: usize, to: usize, msg: flurfunk::wire::SyncMessage) {
        self.counter += 1;
        self.inflight_to[to] += 1;
        self.flights.insert(
            (self.now + 1, self.counter),
            Flight {
                from,
                to,
                bytes: msg.encode(),
            },
        );
    }

    pub fn send(&mut self, node: usize, conv: ConversationId, text: &str) -> EventId {
        let now = self.now;
        let id = self.nodes[node]
            .engine()
            .send_text(now, conv, text)
            .unwrap();
        if self.latency.is_some() {
            let me = self.nodes[node].user_id;
            let members: Vec<UserId> = self.nodes[node]
                .engine()
                .conversation(&conv)
                .map(|c| c.members.iter().map(|(p, _)| p.user_id).collect())
                .unwrap_or_default();
            let expected: BTreeSet<usize> = members
                .iter()
                .filter(|u| **u != me)
                .filter_map(|u| self.by_user.get(u).copied())
                .filter(|i| self.nodes[*i].online())
                .collect();
            if let Some(log) = self.latency.as_mut() {
                log.expected += expected.len();
                log.sent.insert(id, (now, expected));
            }
        }
        self.pump(node);
        id
    }

    pub fn index_of(&self, user: &UserId) -> Option<usize> {
        self.by_user.get(user).copied()
    }

    pub fn profile(&self, node: usize) -> Profile {
        self.nodes[node].profile.clone()
    }
}

/// Ids of all stored events of a conversation, in total order.
fn event_ids(engine: &Engine<MemoryStore>, conv: ConversationId) -> Result<Vec<EventId>, String> {
    let events = engine
        .store()
        .events_in_order(&conv)
        .map_err(|e| e.to_string())?;
    Ok(events.iter().map(Event::id).collect())
}

/// Ids of the readable text messages of a conversation, in display order.
fn text_ids(engine: &Engine<MemoryStore>, conv: ConversationId) -> Result<Vec<EventId>, String> {
    let texts = engine.messages(&conv).map_err(|e| e.to_string())?;
    Ok(texts.iter().map(|m| m.event_id).collect())
}

/// Invariants after healing. Returns a description of the first violation.
/// Run `schedule` for every seed of `range` and fail with the list of failing seeds;
/// with `FLURFUNK_SIM_SEED` set, run only that seed (if in range) and panic on failure.
/// `replay`: the command that replays one, for the failure message.
pub fn run_seeds(
    range: std::ops::Range<u64>,
    replay: &str,
    schedule: impl Fn(u64) -> Result<(), String> + std::panic::RefUnwindSafe,
) {
    if let Ok(seed) = std::env::var("FLURFUNK_SIM_SEED") {
        let seed: u64 = seed.parse().expect("FLURFUNK_SIM_SEED must be a number");
        if range.contains(&seed)
            && let Err(e) = schedule(seed)
        {
            panic!("schedule seed {seed} failed: {e}");
        }
        return;
    }
    let mut failures = Vec::new();
    for seed in range {
        match std::panic::catch_unwind(|| schedule(seed)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("seed {seed}: {e}")),
            Err(_) => failures.push(format!("seed {seed}: panicked")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} schedules failed; replay one with FLURFUNK_SIM_SEED=<seed> {replay}\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A text signed by `signer` as the next of its chain, sealed with `key` (the key of
/// the rekey `rekey`, which the header names): what a dishonest member can write under a
/// key it chose.
#[allow(clippy::too_many_arguments)]
pub fn forge_text_under(
    signer: &Identity,
    last: Option<&Event>,
    conv: ConversationId,
    lamport: u64,
    epoch: u32,
    rekey: EventId,
    key: &flurfunk::crypto::EpochKey,
    text: &str,
) -> Event {
    let header = flurfunk::wire::EventHeader {
        conversation: conv,
        author: signer.user_id(),
        seq: last.map_or(1, |e| e.header.seq + 1),
        prev: last.map_or(EventId([0; 32]), Event::id),
        lamport,
        wall_ms: 5000,
        epoch,
        key: rekey,
        kind: EventKind::Text,
    };
    let content = Content::Text {
        text: text.into(),
        reply_to: None,
        mentions: Vec::new(),
    };
    let sealed = key.encrypt(
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(lamport),
        &Event::body_aad(&header, &[]),
        &content.encode(),
    );
    let sig = signer.sign(
        flurfunk::crypto::LABEL_EVENT_SIGNATURE,
        &Event::signed_bytes_of(&header, &[], &sealed),
    );
    Event::new(header, Vec::new(), sealed, sig)
}

/// The key a forged event names: none when nothing is sealed; otherwise an arbitrary one
/// (forged bodies are not meant to be read; `forge_text_under` names a real one).
fn key_of(sealed: &[u8]) -> EventId {
    if sealed.is_empty() {
        EventId([0; 32])
    } else {
        EventId([0xf0; 32])
    }
}

/// An event signed by `signer` after `last` of its own chain (seq, prev follow from it),
/// with whatever kind, clock, epoch and bodies: what a dishonest member can always sign.
#[allow(clippy::too_many_arguments)]
pub fn forge(
    signer: &Identity,
    last: Option<&Event>,
    conv: ConversationId,
    kind: EventKind,
    lamport: u64,
    epoch: u32,
    public: Vec<u8>,
    sealed: Vec<u8>,
) -> Event {
    let header = flurfunk::wire::EventHeader {
        conversation: conv,
        author: signer.user_id(),
        seq: last.map_or(1, |e| e.header.seq + 1),
        prev: last.map_or(EventId([0; 32]), Event::id),
        lamport,
        wall_ms: 5000,
        epoch,
        key: key_of(&sealed),
        kind,
    };
    let sig = signer.sign(
        flurfunk::crypto::LABEL_EVENT_SIGNATURE,
        &Event::signed_bytes_of(&header, &public, &sealed),
    );
    Event::new(header, public, sealed, sig)
}

pub fn check_invariants(sim: &Sim, conv: ConversationId, removed: &[usize]) -> Result<(), String> {
    let online: Vec<usize> = (0..sim.nodes.len())
        .filter(|i| sim.nodes[*i].online())
        .collect();
    // Holders: every online node except removed members (callers put every node of the
    // simulation in the conversation, or make it a relay). (A removed member never hears of its
    // removal, so its own view cannot decide this.)
    let holders: Vec<usize> = online
        .iter()
        .copied()
        .filter(|i| !removed.contains(i))
        .collect();
    if holders.is_empty() {
        return Err("no holders".into());
    }
    let reference = holders[0];
    let ref_engine = sim.nodes[reference].engine.as_ref().unwrap();
    let ref_events = event_ids(ref_engine, conv)?;
    let ref_texts = text_ids(ref_engine, conv)?;
    let unique: BTreeSet<&EventId> = ref_texts.iter().collect();
    if unique.len() != ref_texts.len() {
        return Err("duplicate message in view".into());
    }
    for &h in &holders[1..] {
        let e = sim.nodes[h].engine.as_ref().unwrap();
        let events = event_ids(e, conv)?;
        if events != ref_events {
            return Err(format!(
                "{} holds {} events, {} holds {} (or in another order); vv {:?} vs {:?}; stats {:?}",
                sim.nodes[h].name,
                events.len(),
                sim.nodes[reference].name,
                ref_events.len(),
                e.version_vector(&conv),
                ref_engine.version_vector(&conv),
                e.stats(),
            ));
        }
        if sim.nodes[h].role == Role::Member {
            // Messages either node deleted for itself alone are left out on both sides.
            let shared = |ids: &[EventId]| -> Vec<EventId> {
                ids.iter()
                    .copied()
                    .filter(|id| !e.is_hidden(id) && !ref_engine.is_hidden(id))
                    .collect()
            };
            let texts = shared(&text_ids(e, conv)?);
            if texts != shared(&ref_texts) && sim.nodes[reference].role == Role::Member {
                return Err(format!(
                    "{} sees a different message list",
                    sim.nodes[h].name
                ));
            }
        }
    }
    // A message deleted for everyone (a deletion that counts) is held purged by every
    // holder, with every edit and reaction of it: no body of it is left anywhere.
    {
        let all = ref_engine.store().events_in_order(&conv).unwrap();
        let (state, _) = ConversationState::rebuild(conv, all.clone(), None);
        for target in all.iter().filter(|e| e.header.kind == EventKind::Text) {
            if state.actions.deletion_of(target).is_none() {
                continue;
            }
            let mut gone = state.actions.all_of(&target.id());
            gone.push(target.id());
            for &h in &holders {
                let store = sim.nodes[h].engine.as_ref().unwrap().store();
                for id in &gone {
                    if let Some(held) = store.event(id).map_err(|e| e.to_string())?
                        && !held.is_purged()
                    {
                        return Err(format!(
                            "{} keeps the body of a message deleted for everyone",
                            sim.nodes[h].name
                        ));
                    }
                }
            }
        }
    }
    // Every event a node acknowledged as saved is still held by it (unless retracted
    // because its author had been removed), and by every holder.
    // (A removed member's messages after its removal are rejected by design.)
    for &i in online.iter().filter(|i| !removed.contains(i)) {
        let n = &sim.nodes[i];
        let e = n.engine.as_ref().unwrap();
        for id in &n.saved {
            if n.retracted.contains(id) {
                continue;
            }
            let Some(ev) = e.store().event(id).map_err(|e| e.to_string())? else {
                // Events of other conversations are checked by their own call.
                let anywhere = holders.iter().any(|h| {
                    sim.nodes[*h]
                        .engine
                        .as_ref()
                        .unwrap()
                        .store()
                        .event(id)
                        .ok()
                        .flatten()
                        .is_some()
                });
                if anywhere {
                    return Err(format!("{} lost its own saved event", n.name));
                }
                continue;
            };
            if ev.header.conversation == conv && !ref_events.contains(id) {
                return Err(format!("saved event of {} missing at holders", n.name));
            }
        }
    }
    // Nobody outside the conversation can read it: relays never, and a removed member,
    // even given every ciphertext, only what was encrypted with keys it held before its
    // removal (messages sent concurrently with the removal, before the senders knew).
    let all_events = ref_engine.store().events_in_order(&conv).unwrap();
    for (i, n) in sim.nodes.iter().enumerate() {
        let is_relay = n.role == Role::Relay;
        if !is_relay && !removed.contains(&i) {
            continue;
        }
        let id = n.identity();
        // Removed by an admin, or left on its own.
        let removal = all_events.iter().find(|e| {
            e.header.kind == EventKind::Membership
                && match flurfunk::wire::MembershipOp::decode(&e.public) {
                    Ok(flurfunk::wire::MembershipOp::Remove { user, .. }) => user == n.user_id,
                    Ok(flurfunk::wire::MembershipOp::Leave) => e.header.author == n.user_id,
                    _ => false,
                }
        });
        for e in all_events
            .iter()
            .filter(|e| e.header.kind == EventKind::Rekey)
        {
            let opens = flurfunk::wire::RekeyBody::decode(&e.public)
                .map(|b| b.open(&id, &conv, &e.header.author, e.header.epoch).is_ok())
                .unwrap_or(false);
            if opens && (is_relay || removal.is_some_and(|r| e.order_key() > r.order_key())) {
                return Err(format!(
                    "{} can open a key sealed after its removal",
                    n.name
                ));
            }
        }
        let (state, _) = ConversationState::rebuild(conv, all_events.clone(), Some(&id));
        for ev in all_events
            .iter()
            .filter(|e| e.header.kind == EventKind::Text)
        {
            let readable = matches!(state.decrypt(ev), Some(Content::Text { .. }));
            if is_relay && readable {
                return Err(format!("relay {} can read a message", n.name));
            }
        }
        if removal.is_none() && !is_relay {
            return Err(format!(
                "{} was to be removed but no removal event exists",
                n.name
            ));
        }
    }
    Ok(())
}

pub fn vv_map(sim: &Sim, conv: ConversationId) -> BTreeMap<String, usize> {
    sim.nodes
        .iter()
        .filter_map(|n| {
            n.engine.as_ref().map(|e| {
                (
                    n.name.clone(),
                    e.version_vector(&conv).values().sum::<u64>() as usize,
                )
            })
        })
        .collect()
}

/// An Ed25519 signature over `msg` by the identity `common::identity(key_seed, _)`, made
/// with its secret key but with a point of order 2 added to R: it satisfies the cofactored equation (8SB = 8R + 8kA) but not the strict
/// one, so a cofactorless batch check passes it about half the time.
pub fn sign_with_torsion(key_seed: u64, msg: &[u8]) -> [u8; 64] {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use curve25519_dalek::scalar::Scalar;
    use rand::SeedableRng;
    use sha2::{Digest, Sha512};
    // `common::identity` draws the signing key first from this generator.
    let signing =
        ed25519_dalek::SigningKey::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(key_seed));
    let public = signing.verifying_key().to_bytes();
    // (0, -1), the point of order 2: y = p - 1, sign bit 0.
    let mut encoded = [0xffu8; 32];
    encoded[0] = 0xec;
    encoded[31] = 0x7f;
    let torsion = CompressedEdwardsY(encoded).decompress().unwrap();
    assert!(torsion.is_small_order() && torsion != curve25519_dalek::EdwardsPoint::default());
    let r = Scalar::from_bytes_mod_order([42u8; 32]);
    let big_r = (r * ED25519_BASEPOINT_POINT + torsion).compress();
    let hash: [u8; 64] = Sha512::new()
        .chain_update(big_r.as_bytes())
        .chain_update(public)
        .chain_update(msg)
        .finalize()
        .into();
    let k = Scalar::from_bytes_mod_order_wide(&hash);
    let s = r + k * signing.to_scalar();
    // It is a genuine signature up to the torsion: the cofactored equation holds.
    let a = curve25519_dalek::edwards::CompressedEdwardsY(public)
        .decompress()
        .unwrap();
    assert_eq!(
        (s * ED25519_BASEPOINT_POINT).mul_by_cofactor(),
        (big_r.decompress().unwrap() + k * a).mul_by_cofactor()
    );
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(big_r.as_bytes());
    signature[32..].copy_from_slice(s.as_bytes());
    signature
}

/// Anna (admin), Bernd and Carla in a group, created and synced.
pub fn three_member_group(seed: u64, name: &str) -> (Sim, [usize; 3], ConversationId) {
    let mut sim = Sim::new(seed);
    let a = sim.add_node("Anna", Role::Member);
    let b = sim.add_node("Bernd", Role::Member);
    let c = sim.add_node("Carla", Role::Member);
    let (pb, pc) = (sim.profile(b), sim.profile(c));
    let now = sim.now;
    let conv = sim.nodes[a]
        .engine()
        .create_group(now, name, &[pb, pc])
        .unwrap();
    sim.settle(20_000);
    (sim, [a, b, c], conv)
}
