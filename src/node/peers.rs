//! Who we know, where they listen, when to dial them again, and how much we accept from
//! each. Pure bookkeeping with `now` passed in; the event loop acts on its answers.

use std::collections::HashMap;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use crate::net::{MAX_ADDRS_PER_PEER, MAX_PEER_RECORDS, PeerRecord};

/// First redial after a lost connection or failed dial; doubles up to the cap. Half a
/// second finds a restarted peer almost at once; the 10 s cap means a peer that returns
/// after an outage is connected again within seconds, not after mDNS's 5-minute query.
pub const REDIAL_INITIAL_MS: u64 = 500;
pub const REDIAL_MAX_MS: u64 = 10_000;
/// A discovered (not explicitly configured) peer unreachable this long is forgotten.
pub const FORGET_AFTER_MS: u64 = 24 * 3600 * 1000;
/// Peers tracked at most; addresses learned beyond that are ignored (a peer cannot make
/// us remember without bound).
pub const MAX_KNOWN_PEERS: usize = 4096;
/// A peer whose dials failed is passed over when choosing links (the next candidate is
/// taken), and tried again after this long: short, because a node that passes over its
/// ring neighbour leaves that neighbour to be found by the other side alone.
pub const RETRY_FAILED_PEER_MS: u64 = 30 * 1000;

/// Frames per second one peer may send us on average, and the burst allowed. A busy group
/// of 20 forwarding to each other stays far below; a flood does not.
pub const FRAME_RATE_PER_S: f64 = 1000.0;
pub const FRAME_BURST: f64 = 5000.0;
/// Bytes per second one peer may send us, and the burst: a 10,000-message catch-up (about
/// 12 MiB) fits in the burst.
pub const BYTE_RATE_PER_S: f64 = 32.0 * 1024.0 * 1024.0;
pub const BYTE_BURST: f64 = 64.0 * 1024.0 * 1024.0;
/// Misbehaviour points: a malformed frame costs this much, a frame over the rate limit 1.
pub const MALFORMED_PENALTY: f64 = 20.0;
/// An event with a forged signature (no honest node passes one on) costs as much as a
/// malformed frame; a frame with events invalid here costs a little (an honest peer whose
/// view lags ours sends a few such frames before it catches up).
pub const FORGED_EVENT_PENALTY: f64 = 20.0;
pub const INVALID_FRAME_PENALTY: f64 = 4.0;

/// What a peer's offences (counted by the engine) cost it.
pub fn offence_points(o: &crate::sync::Offence) -> f64 {
    f64::from(o.forged) * FORGED_EVENT_PENALTY
        + f64::from(o.frames_with_invalid) * INVALID_FRAME_PENALTY
}
/// Points decay by this much per second; above the threshold the peer is banned.
pub const PENALTY_DECAY_PER_S: f64 = 1.0;
pub const BAN_THRESHOLD: f64 = 100.0;
pub const BAN_MS: u64 = 60_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last_ms: u64,
}

impl Bucket {
    fn new(burst: f64, now_ms: u64) -> Self {
        Bucket {
            tokens: burst,
            last_ms: now_ms,
        }
    }

    fn take(&mut self, amount: f64, rate: f64, burst: f64, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last_ms = now_ms;
        if self.tokens >= amount {
            self.tokens -= amount;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
pub struct PeerEntry {
    pub addrs: Vec<Multiaddr>,
    pub connections: usize,
    pub over_loopback: bool,
    pub last_seen_ms: Option<u64>,
    backoff_ms: u64,
    next_dial_ms: u64,
    failing_since_ms: Option<u64>,
    pub dialing: bool,
    frames: Bucket,
    bytes: Bucket,
    penalty: f64,
    penalty_ms: u64,
    banned_until_ms: u64,
}

impl PeerEntry {
    fn new(now_ms: u64) -> Self {
        PeerEntry {
            addrs: Vec::new(),
            connections: 0,
            over_loopback: false,
            last_seen_ms: None,
            backoff_ms: REDIAL_INITIAL_MS,
            next_dial_ms: now_ms,
            failing_since_ms: None,
            dialing: false,
            frames: Bucket::new(FRAME_BURST, now_ms),
            bytes: Bucket::new(BYTE_BURST, now_ms),
            penalty: 0.0,
            penalty_ms: now_ms,
            banned_until_ms: 0,
        }
    }
}

/// An address given by the admin (`--peer`); it may not name the peer.
#[derive(Debug)]
pub struct Explicit {
    pub addr: Multiaddr,
    pub peer: Option<PeerId>,
    backoff_ms: u64,
    next_dial_ms: u64,
    pub dialing: Option<libp2p::swarm::ConnectionId>,
}

#[derive(Debug, Default)]
pub struct AddressBook {
    pub peers: HashMap<PeerId, PeerEntry>,
    pub explicit: Vec<Explicit>,
}

/// What the caller should do after a frame was checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Ban,
}

pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

pub fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

fn is_unspecified(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

/// The address without a trailing `/p2p/...`.
pub fn without_peer(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

impl AddressBook {
    pub fn add_explicit(&mut self, addr: Multiaddr, now_ms: u64) {
        if self.explicit.iter().any(|e| e.addr == addr) {
            return;
        }
        self.explicit.push(Explicit {
            peer: peer_of(&addr),
            addr,
            backoff_ms: REDIAL_INITIAL_MS,
            next_dial_ms: now_ms,
            dialing: None,
        });
    }

    fn entry(&mut self, peer: PeerId, now_ms: u64) -> Option<&mut PeerEntry> {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_KNOWN_PEERS {
            return None;
        }
        Some(
            self.peers
                .entry(peer)
                .or_insert_with(|| PeerEntry::new(now_ms)),
        )
    }

    /// Remember where a peer listens (found by mDNS, told by a peer, or dialled). True if
    /// this is news.
    pub fn learn(&mut self, peer: PeerId, addr: &Multiaddr, now_ms: u64) -> bool {
        let addr = without_peer(addr);
        if is_unspecified(&addr) {
            return false;
        }
        let Some(entry) = self.entry(peer, now_ms) else {
            return false;
        };
        if entry.addrs.contains(&addr) {
            return false;
        }
        entry.addrs.insert(0, addr);
        entry.addrs.truncate(MAX_ADDRS_PER_PEER);
        true
    }

    pub fn on_connected(
        &mut self,
        peer: PeerId,
        remote: &Multiaddr,
        dialled: Option<libp2p::swarm::ConnectionId>,
        now_ms: u64,
    ) {
        for e in &mut self.explicit {
            if dialled.is_some() && e.dialing == dialled {
                e.peer = Some(peer);
                e.dialing = None;
                e.backoff_ms = REDIAL_INITIAL_MS;
            }
        }
        if let Some(entry) = self.entry(peer, now_ms) {
            entry.connections += 1;
            entry.over_loopback = is_loopback(remote);
            entry.last_seen_ms = Some(now_ms);
            entry.dialing = false;
            entry.backoff_ms = REDIAL_INITIAL_MS;
            entry.failing_since_ms = None;
        }
    }

    pub fn on_disconnected(&mut self, peer: PeerId, remaining: usize, now_ms: u64) {
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.connections = remaining;
            entry.last_seen_ms = Some(now_ms);
            if remaining == 0 {
                entry.next_dial_ms = now_ms + REDIAL_INITIAL_MS;
            }
        }
        for e in &mut self.explicit {
            if e.peer == Some(peer) && remaining == 0 {
                e.next_dial_ms = now_ms + REDIAL_INITIAL_MS;
            }
        }
    }

    /// A dial this node refused itself (its connection limit): try again later, without
    /// counting the peer as unreachable.
    pub fn on_dial_denied(
        &mut self,
        peer: Option<PeerId>,
        connection: libp2p::swarm::ConnectionId,
        now_ms: u64,
    ) {
        for e in &mut self.explicit {
            if e.dialing == Some(connection) {
                e.dialing = None;
                e.next_dial_ms = now_ms + REDIAL_MAX_MS;
            }
        }
        if let Some(entry) = peer.and_then(|p| self.peers.get_mut(&p)) {
            entry.dialing = false;
            entry.next_dial_ms = now_ms + REDIAL_MAX_MS;
        }
    }

    pub fn on_dial_failed(
        &mut self,
        peer: Option<PeerId>,
        connection: libp2p::swarm::ConnectionId,
        now_ms: u64,
    ) {
        for e in &mut self.explicit {
            if e.dialing == Some(connection) {
                e.dialing = None;
                e.next_dial_ms = now_ms + e.backoff_ms;
                e.backoff_ms = (e.backoff_ms * 2).min(REDIAL_MAX_MS);
            }
        }
        if let Some(entry) = peer.and_then(|p| self.peers.get_mut(&p)) {
            entry.dialing = false;
            entry.next_dial_ms = now_ms + entry.backoff_ms;
            entry.backoff_ms = (entry.backoff_ms * 2).min(REDIAL_MAX_MS);
            // A peer retried after a long failure counts as failing from now on.
            if entry
                .failing_since_ms
                .is_none_or(|since| now_ms.saturating_sub(since) >= RETRY_FAILED_PEER_MS)
            {
                entry.failing_since_ms = Some(now_ms);
            }
        }
    }

    /// Whether a link to this peer can be chosen now: connected, or known where it listens,
    /// not banned, and not failing recently.
    pub fn is_reachable(&self, peer: &PeerId, now_ms: u64) -> bool {
        self.peers.get(peer).is_some_and(|e| {
            e.connections > 0
                || (!e.addrs.is_empty()
                    && now_ms >= e.banned_until_ms
                    && e.failing_since_ms
                        .is_none_or(|since| now_ms.saturating_sub(since) >= RETRY_FAILED_PEER_MS))
        })
    }

    /// Peers to dial now (by id, with their addresses), and explicit addresses to dial.
    /// Only `wanted` peers are dialled (the links the engine chose), plus up to `bootstrap`
    /// other known peers, so a node that knows a thousand peers holds a few dozen links.
    pub fn due_dials(
        &mut self,
        now_ms: u64,
        wanted: &std::collections::HashSet<PeerId>,
        bootstrap: usize,
    ) -> (Vec<(PeerId, Vec<Multiaddr>)>, Vec<usize>) {
        self.peers.retain(|_, e| {
            e.connections > 0
                || e.failing_since_ms
                    .is_none_or(|since| now_ms.saturating_sub(since) < FORGET_AFTER_MS)
        });
        let mut by_peer = Vec::new();
        let mut extra = bootstrap;
        // Wanted peers, then peers to bootstrap from: first those not failing, then (with
        // their backoff) those that failed, e.g. because they were not listening yet.
        for pass in 0..3 {
            for (peer, e) in &mut self.peers {
                let due = e.connections == 0
                    && !e.dialing
                    && !e.addrs.is_empty()
                    && now_ms >= e.next_dial_ms
                    && now_ms >= e.banned_until_ms;
                if !due {
                    continue;
                }
                let take = match pass {
                    0 => wanted.contains(peer),
                    1 => extra > 0 && e.failing_since_ms.is_none(),
                    _ => extra > 0,
                };
                if take {
                    if pass > 0 {
                        extra -= 1;
                    }
                    e.dialing = true;
                    by_peer.push((*peer, e.addrs.clone()));
                }
            }
        }
        let mut explicit = Vec::new();
        for (i, e) in self.explicit.iter().enumerate() {
            let connected = e
                .peer
                .and_then(|p| self.peers.get(&p))
                .is_some_and(|p| p.connections > 0 || p.dialing);
            if !connected && e.dialing.is_none() && now_ms >= e.next_dial_ms {
                explicit.push(i);
            }
        }
        (by_peer, explicit)
    }

    /// Dials under way (they count towards the links a node is about to have).
    pub fn dialing(&self) -> usize {
        self.peers.values().filter(|e| e.dialing).count()
            + self.explicit.iter().filter(|e| e.dialing.is_some()).count()
    }

    /// Whether this peer was given by the admin (`--peer`): never trimmed.
    pub fn is_explicit(&self, peer: &PeerId) -> bool {
        self.explicit.iter().any(|e| e.peer == Some(*peer))
    }

    /// The peer announced itself again (mDNS): forget past dial failures.
    pub fn rediscovered(&mut self, peer: &PeerId) {
        if let Some(e) = self.peers.get_mut(peer) {
            e.failing_since_ms = None;
        }
    }

    /// Account for one inbound frame of `len` bytes.
    pub fn check_frame(&mut self, peer: PeerId, len: usize, now_ms: u64) -> Verdict {
        let Some(e) = self.entry(peer, now_ms) else {
            return Verdict::Drop;
        };
        let frames_ok = e.frames.take(1.0, FRAME_RATE_PER_S, FRAME_BURST, now_ms);
        let bytes_ok = e
            .bytes
            .take(len as f64, BYTE_RATE_PER_S, BYTE_BURST, now_ms);
        if frames_ok && bytes_ok {
            return Verdict::Accept;
        }
        self.penalize(peer, 1.0, now_ms)
    }

    pub fn penalize(&mut self, peer: PeerId, points: f64, now_ms: u64) -> Verdict {
        let Some(e) = self.entry(peer, now_ms) else {
            return Verdict::Drop;
        };
        let elapsed = now_ms.saturating_sub(e.penalty_ms) as f64 / 1000.0;
        e.penalty = (e.penalty - elapsed * PENALTY_DECAY_PER_S).max(0.0) + points;
        e.penalty_ms = now_ms;
        if e.penalty >= BAN_THRESHOLD {
            e.banned_until_ms = now_ms + BAN_MS;
            e.penalty = 0.0;
            Verdict::Ban
        } else {
            Verdict::Drop
        }
    }

    /// Never dialled or accepted again (a colleague the admin revoked).
    pub fn ban_for_good(&mut self, peer: PeerId, now_ms: u64) {
        if let Some(e) = self.entry(peer, now_ms) {
            e.banned_until_ms = u64::MAX;
        }
    }

    /// Lift a ban (a revocation the admin took back).
    pub fn unban(&mut self, peer: &PeerId) {
        if let Some(e) = self.peers.get_mut(peer) {
            e.banned_until_ms = 0;
        }
    }

    pub fn is_banned(&self, peer: &PeerId, now_ms: u64) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|e| now_ms < e.banned_until_ms)
    }

    /// The address records to tell `to` about: ourselves first, then everyone we know.
    pub fn records_for(&self, me: PeerId, own: &[Multiaddr], to: PeerId) -> Vec<PeerRecord> {
        let mut out = vec![PeerRecord {
            peer: me,
            addrs: own.to_vec(),
        }];
        for (peer, e) in &self.peers {
            if *peer == to || e.addrs.is_empty() || out.len() >= MAX_PEER_RECORDS {
                continue;
            }
            out.push(PeerRecord {
                peer: *peer,
                addrs: e.addrs.clone(),
            });
        }
        self.visible_to(to, out)
    }

    /// Cut records down to what `to` may use: loopback addresses only go to peers that
    /// reach us over loopback, unspecified ones to nobody; records left empty are dropped.
    pub fn visible_to(&self, to: PeerId, mut records: Vec<PeerRecord>) -> Vec<PeerRecord> {
        let loopback_ok = self.peers.get(&to).is_some_and(|e| e.over_loopback);
        for r in &mut records {
            r.addrs
                .retain(|a| (loopback_ok || !is_loopback(a)) && !is_unspecified(a));
            r.addrs.truncate(MAX_ADDRS_PER_PEER);
        }
        records.retain(|r| !r.addrs.is_empty());
        records
    }

    pub fn mark_explicit_dialing(&mut self, index: usize, connection: libp2p::swarm::ConnectionId) {
        if let Some(e) = self.explicit.get_mut(index) {
            e.dialing = Some(connection);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid() -> PeerId {
        libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
    }

    #[test]
    fn redial_backs_off_and_resets_on_success() {
        let mut book = AddressBook::default();
        let p = pid();
        let addr: Multiaddr = "/ip4/10.77.1.2/tcp/1".parse().unwrap();
        assert!(book.learn(p, &addr, 0));
        assert!(!book.learn(p, &addr, 0), "same address is no news");
        let wanted: std::collections::HashSet<PeerId> = [p].into();
        let (due, _) = book.due_dials(0, &wanted, 0);
        assert_eq!(due.len(), 1);
        assert!(
            book.due_dials(0, &wanted, 0).0.is_empty(),
            "not twice while dialling"
        );
        let conn = libp2p::swarm::ConnectionId::new_unchecked(1);
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            book.on_dial_failed(Some(p), conn, now);
            let mut t = now;
            while book.due_dials(t, &wanted, 0).0.is_empty() {
                t += 100;
            }
            waits.push(t - now);
            now = t;
        }
        assert_eq!(waits[0], 500);
        assert_eq!(waits[1], 1000);
        assert_eq!(*waits.last().unwrap(), REDIAL_MAX_MS);
        book.on_connected(p, &addr, None, now);
        book.on_disconnected(p, 0, now);
        assert!(book.due_dials(now, &wanted, 0).0.is_empty());
        assert_eq!(
            book.due_dials(now + REDIAL_INITIAL_MS, &wanted, 0).0.len(),
            1
        );
    }

    #[test]
    fn only_wanted_peers_and_a_few_others_are_dialled() {
        let mut book = AddressBook::default();
        let peers: Vec<PeerId> = (0..100).map(|_| pid()).collect();
        for (i, p) in peers.iter().enumerate() {
            let addr: Multiaddr = format!("/ip4/10.77.1.{}/tcp/1", i + 2).parse().unwrap();
            book.learn(*p, &addr, 0);
        }
        let wanted: std::collections::HashSet<PeerId> = peers[..5].iter().copied().collect();
        let (due, _) = book.due_dials(0, &wanted, 3);
        assert_eq!(
            due.len(),
            8,
            "five wanted and three to bootstrap, not all 100"
        );
        for p in &peers[..5] {
            assert!(due.iter().any(|(d, _)| d == p));
        }
        // A wanted peer whose dial failed is passed over until it is retried later.
        let conn = libp2p::swarm::ConnectionId::new_unchecked(1);
        book.on_dial_failed(Some(peers[0]), conn, 10);
        assert!(!book.is_reachable(&peers[0], 20));
        assert!(book.is_reachable(&peers[1], 20));
        assert!(book.is_reachable(&peers[0], 10 + RETRY_FAILED_PEER_MS));
        book.rediscovered(&peers[0]);
        assert!(book.is_reachable(&peers[0], 20));
    }

    #[test]
    fn forged_events_end_in_a_ban_a_lagging_peer_does_not() {
        use crate::sync::Offence;
        let mut book = AddressBook::default();
        let forger = PeerId::random();
        let lagging = PeerId::random();
        let forged = Offence {
            forged: 1,
            ..Offence::default()
        };
        let stale = Offence {
            invalid: 300,
            frames_with_invalid: 1,
            ..Offence::default()
        };
        let mut banned_after = None;
        for i in 0..10u64 {
            if book.penalize(forger, offence_points(&forged), 1_000) == Verdict::Ban {
                banned_after = Some(i + 1);
                break;
            }
        }
        assert_eq!(
            banned_after,
            Some(5),
            "five frames with a forged event each"
        );
        // A peer that has not heard of a removal yet sends a few frames of the removed
        // member's events before our summary reaches it: no ban.
        for i in 0..5u64 {
            let v = book.penalize(lagging, offence_points(&stale), 1_000 + i * 500);
            assert_ne!(v, Verdict::Ban);
        }
        assert!(!book.is_banned(&lagging, 4_000));
        // One that keeps sending them, frame after frame, is banned.
        let mut t = 4_000;
        while book.penalize(lagging, offence_points(&stale), t) != Verdict::Ban {
            t += 100;
            assert!(t < 10_000, "a stream of invalid frames must end in a ban");
        }
    }

    #[test]
    fn flooding_peer_is_banned_and_others_are_not() {
        let mut book = AddressBook::default();
        let (flooder, quiet) = (pid(), pid());
        let mut banned_at = None;
        for i in 0..20_000u64 {
            // 20,000 frames within 2 s: ten times the allowed rate.
            if book.check_frame(flooder, 100, i / 10) == Verdict::Ban {
                banned_at = Some(i);
                break;
            }
        }
        assert!(banned_at.is_some(), "a flood must end in a ban");
        assert!(book.is_banned(&flooder, 2_000));
        assert!(!book.is_banned(&flooder, 2_000 + BAN_MS + 1_000));
        for i in 0..1000u64 {
            assert_eq!(book.check_frame(quiet, 1000, i * 2), Verdict::Accept);
        }
    }

    #[test]
    fn loopback_addresses_only_go_to_loopback_peers() {
        let mut book = AddressBook::default();
        let (me, lan_peer, local_peer) = (pid(), pid(), pid());
        let lo: Multiaddr = "/ip4/127.0.0.1/tcp/5".parse().unwrap();
        let lan: Multiaddr = "/ip4/10.77.1.5/tcp/5".parse().unwrap();
        book.on_connected(lan_peer, &lan, None, 0);
        book.on_connected(local_peer, &lo, None, 0);
        let own = vec![lo.clone(), lan.clone()];
        let to_lan = book.records_for(me, &own, lan_peer);
        assert_eq!(to_lan[0].addrs, vec![lan.clone()]);
        let to_local = book.records_for(me, &own, local_peer);
        assert_eq!(to_local[0].addrs, own);
    }
}
