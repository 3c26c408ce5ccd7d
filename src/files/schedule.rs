//! Which peer is asked for which blocks of a file, and what an answer changes: the
//! downloader's rules (docs/PROTOCOL.md, "Who is asked for what"). Pure: no I/O, no
//! clock (`now` is passed in), randomness passed in, generic over the peer's id, so the
//! node (`node::files`) and the file swarm simulator (`tests/file_swarm.rs`) run the
//! same code.
//!
//! The node adds what spans downloads: requests in flight in all and per peer, the
//! downloads' turns, giving up, progress reports, the disk.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use rand::Rng;
use rand::seq::SliceRandom;

use super::Blocks;

/// Blocks (16 KiB) one request may ask for: 1 MiB (the wire's limit, `net::blob`).
pub const MAX_BLOCKS_PER_REQUEST: u64 = 64;
/// Requests in flight at once for one file.
pub const MAX_FETCHES_PER_FILE: usize = 4;
/// How long a peer is not asked again for a file after it had none of the blocks, was
/// busy, or failed. A member with none of a file may be fetching it too: it is asked
/// again after `REST_NOT_HERE_FIRST_MS`, doubling with each "none" in a row up to
/// `REST_NOT_HERE_MS`, so members of a group fetching one file soon find each other's
/// blocks (before, they rested 2 s and took nearly all from the sender), and one that
/// never fetches it is asked every 2 s at most.
pub const REST_NOT_HERE_MS: u64 = 2_000;
pub const REST_NOT_HERE_FIRST_MS: u64 = 250;
pub const REST_BUSY_MS: u64 = 2_000;
pub const REST_FAILED_MS: u64 = 10_000;
/// A request whose connection closed under it (a member often has two connections to a
/// peer for a moment, and the plan closes connections): asked again soon, and at once
/// when it connects anew.
pub const REST_CLOSED_MS: u64 = 500;
/// A file nobody connected serves is tried again after 1 s, doubling up to this.
pub const MAX_BACKOFF_MS: u64 = 5 * 60_000;
/// A download with no new block for this long is reported (once) as waiting.
pub const STALLED_MS: u64 = 60_000;
/// What a peer said it holds is trusted for this long (it fetches on meanwhile).
pub const HOLDINGS_FRESH_MS: u64 = 3_000;

/// An id of a peer: `libp2p::PeerId` in the node, a number in the simulator.
pub trait PeerKey: Copy + Eq + Hash + Ord + std::fmt::Debug {}
impl<T: Copy + Eq + Hash + Ord + std::fmt::Debug> PeerKey for T {}

/// How a request ended, as far as the schedule cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Blocks came: these were new and verified; `refused`: some failed their hash.
    Received {
        added: Blocks,
        refused: bool,
    },
    /// None of the blocks asked for.
    NotHere,
    /// None of the blocks asked for, but these.
    Held(Blocks),
    Busy,
    /// The connection or stream closed under the request (not the peer's data).
    Closed,
    Failed,
    /// This node's disk is full (no fault of the peer): nobody rests.
    DiskFull,
}

/// One file being fetched.
#[derive(Debug)]
pub struct Download<P: PeerKey> {
    /// Blocks not here yet.
    pub missing: Blocks,
    /// Requests in flight: peer and the blocks asked of it.
    pub asked: HashMap<P, Blocks>,
    /// Peers not asked again before this time.
    resting: HashMap<P, u64>,
    /// When a new block last came (or the download began).
    pub last_progress_ms: u64,
    /// No request before this time (grows while nobody serves the file).
    next_try_ms: u64,
    backoff_ms: u64,
    stalled_told: bool,
    /// Members connected when it last looked: a new one is asked at once.
    seen: HashSet<P>,
    /// What peers hold as far as known, since when, and whether they said so (a `Held`
    /// answer: all they hold) or it is only what they sent: asked for that first.
    holdings: HashMap<P, (Blocks, u64, bool)>,
    /// Answers with no block in a row, per peer (see `REST_NOT_HERE_FIRST_MS`), and of
    /// those the `Held` ones.
    not_here: HashMap<P, u32>,
    held_in_a_row: HashMap<P, u32>,
    /// The sender of the file: asked last, so that members who have blocks serve each
    /// other and the sender does not upload a copy per member.
    pub author: Option<P>,
    /// This node's place among the conversation's members and their number: where it
    /// starts asking the sender (`sync::Engine::member_place`); the caller fills it in.
    pub slot: Option<(u32, u32)>,
}

/// What `Download::choose` decided.
#[derive(Debug)]
pub struct Choice<P> {
    /// Requests to start now: whom, for which blocks.
    pub starts: Vec<(P, Blocks)>,
    /// It has had no block for `STALLED_MS` and nobody to ask: say so (once).
    pub stalled: bool,
}

/// The rest after the `n`th answer in a row that brought nothing (n >= 1): 250 ms,
/// doubling up to `REST_NOT_HERE_MS`.
fn rest_after_nothing(n: u32) -> u64 {
    (REST_NOT_HERE_FIRST_MS << (n - 1).min(8)).min(REST_NOT_HERE_MS)
}

impl<P: PeerKey> Download<P> {
    /// A download of `missing` blocks; `moved_ms`: when it last made progress.
    pub fn new(missing: Blocks, moved_ms: u64) -> Self {
        Download {
            missing,
            asked: HashMap::new(),
            resting: HashMap::new(),
            last_progress_ms: moved_ms,
            next_try_ms: 0,
            backoff_ms: 1_000,
            stalled_told: false,
            seen: HashSet::new(),
            holdings: HashMap::new(),
            not_here: HashMap::new(),
            held_in_a_row: HashMap::new(),
            author: None,
            slot: None,
        }
    }

    /// It has had no block for `STALLED_MS` with nobody to ask (told once by `choose`).
    pub fn stalled(&self) -> bool {
        self.stalled_told
    }

    /// Requests to start for a file of `total` blocks. `peers`: the connected members of
    /// its conversation and the relays that carry it; `free(peer)`: whether the node has
    /// room for another request to it; `budget`: requests the node may still start.
    pub fn choose(
        &mut self,
        total: u64,
        mut peers: Vec<P>,
        now: u64,
        budget: usize,
        free: impl Fn(&P) -> bool,
        rng: &mut impl Rng,
    ) -> Choice<P> {
        let mut starts: Vec<(P, Blocks)> = Vec::new();
        let ids: HashSet<P> = peers.iter().copied().collect();
        if ids.iter().any(|p| !self.seen.contains(p)) {
            // A member who was not there before may have it: ask now (also one that
            // failed on a connection since closed: it rests no longer).
            self.next_try_ms = now;
            self.backoff_ms = 1_000;
            let seen = &self.seen;
            self.resting
                .retain(|p, _| !ids.contains(p) || seen.contains(p));
        }
        self.seen = ids;
        if self.next_try_ms > now || self.asked.len() >= MAX_FETCHES_PER_FILE || budget == 0 {
            return Choice {
                starts,
                stalled: false,
            };
        }
        self.resting.retain(|_, until| *until > now);
        self.holdings
            .retain(|_, (_, at, _)| now.saturating_sub(*at) < HOLDINGS_FRESH_MS);
        peers.shuffle(rng);
        // Members who said they hold blocks still missing first, the sender last: a file
        // to a group is then passed on among the members, and the sender does not upload
        // a copy to each of them.
        let rank = |peer: &P| -> u8 {
            if Some(*peer) == self.author {
                2
            } else if self
                .holdings
                .get(peer)
                .is_some_and(|(held, ..)| !held.intersect(&self.missing).is_empty())
            {
                0
            } else {
                1
            }
        };
        peers.sort_by_key(rank);
        let slot = self.slot.unwrap_or((0, 1));
        let total = total.max(1);
        for peer in peers {
            if self.asked.len() >= MAX_FETCHES_PER_FILE || starts.len() >= budget {
                break;
            }
            if !free(&peer) || self.asked.contains_key(&peer) || self.resting.contains_key(&peer) {
                continue;
            }
            let taken = self
                .asked
                .values()
                .fold(Blocks::default(), |all, b| all.union(b));
            let wanted = self.missing.minus(&taken);
            if wanted.is_empty() {
                break;
            }
            // From a random place: members fetching one file at once then hold different
            // blocks and serve each other, not all the sender. Of a peer that said what
            // it holds, only that. Of the sender, what no member is known to hold, from
            // this member's own share of the file (its place among the members): the
            // sender's first answers to a group are then different blocks, which the
            // members pass on.
            let (from, wanted) = if Some(peer) == self.author {
                let held_by_members = self
                    .holdings
                    .iter()
                    .filter(|(p, _)| Some(**p) != self.author)
                    .fold(Blocks::default(), |all, (_, (held, ..))| all.union(held));
                let nobody_has = wanted.minus(&held_by_members);
                let start = u64::from(slot.0) * total / u64::from(slot.1.max(1));
                (
                    start,
                    if nobody_has.is_empty() {
                        wanted
                    } else {
                        nobody_has
                    },
                )
            } else {
                (rng.gen_range(0..total), wanted)
            };
            let next = match self.holdings.get(&peer) {
                Some((held, _, true)) => wanted.intersect(held),
                _ => wanted,
            }
            .take_from(from, MAX_BLOCKS_PER_REQUEST);
            if next.is_empty() {
                continue;
            }
            self.asked.insert(peer, next.clone());
            starts.push((peer, next));
        }
        if starts.is_empty() && self.asked.is_empty() {
            if self.seen.is_empty() {
                // Nobody to ask: try again later, less often each time (a member who
                // connects is asked at once, above).
                self.next_try_ms = now + self.backoff_ms;
                self.backoff_ms = (self.backoff_ms * 2).min(MAX_BACKOFF_MS);
            } else {
                // Members are there but resting or busy: ask when the first may answer.
                self.next_try_ms = self.resting.values().copied().min().unwrap_or(now + 1_000);
            }
        }
        let stalled = !self.stalled_told
            && self.asked.is_empty()
            && now.saturating_sub(self.last_progress_ms) > STALLED_MS;
        self.stalled_told |= stalled;
        Choice { starts, stalled }
    }

    /// `peer` answered the request for `asked`: keep what it says about its copy, rest it
    /// if it had nothing, was busy or failed. Returns whether the file is complete.
    pub fn answer(&mut self, peer: P, asked: &Blocks, answer: Answer, now: u64) -> bool {
        self.asked.remove(&peer);
        // A peer with none of the blocks: asked again soon at first (it may be fetching
        // the file too), then less often.
        let not_here = |download: &mut Self| {
            let n = download.not_here.entry(peer).or_insert(0);
            *n = n.saturating_add(1);
            Some(rest_after_nothing(*n))
        };
        let rest = match answer {
            Answer::Received { added, refused } => {
                // It holds (at least) what it sent.
                let (had, ..) = self.holdings.remove(&peer).unwrap_or_default();
                self.holdings.insert(peer, (had.union(&added), now, false));
                if !added.is_empty() {
                    self.not_here.remove(&peer);
                    self.held_in_a_row.remove(&peer);
                    self.missing = self.missing.minus(&added);
                    self.last_progress_ms = now;
                    self.backoff_ms = 1_000;
                    self.stalled_told = false;
                }
                if refused {
                    Some(REST_FAILED_MS)
                } else if added.is_empty() && !asked.is_empty() {
                    not_here(self)
                } else {
                    None
                }
            }
            Answer::NotHere => not_here(self),
            Answer::Held(held) => {
                // Asked again at once, for what it has; but a peer that says so again
                // instead of sending it rests like one with nothing (a claim that never
                // delivers must not keep this node asking at round-trip speed).
                self.holdings.insert(peer, (held, now, true));
                self.not_here.remove(&peer);
                let n = self.held_in_a_row.entry(peer).or_insert(0);
                *n = n.saturating_add(1);
                (*n > 1).then(|| rest_after_nothing(*n - 1))
            }
            Answer::Busy => Some(REST_BUSY_MS),
            // Closed again and again: rests like a peer with nothing, 0.5 s at least.
            Answer::Closed => not_here(self).map(|ms| ms.max(REST_CLOSED_MS)),
            Answer::Failed => Some(REST_FAILED_MS),
            Answer::DiskFull => None,
        };
        if let Some(ms) = rest {
            self.resting.insert(peer, now + ms);
        }
        self.missing.is_empty()
    }
}

/// A sender's own file is served in rounds: within a round each block goes out once, to
/// whoever asks first; when all have gone out, the sender pauses `NEXT_ROUND_AFTER_MS`
/// times the rounds done (at most `MAX_ROUND_PAUSE_MS`) while the members pass the blocks
/// on among themselves, then a new round begins. So the sender of a file to a group of
/// 1,000, linked to a handful of them, uploads about one copy per round, not one per
/// neighbour.
pub const NEXT_ROUND_AFTER_MS: u64 = 2_000;
pub const MAX_ROUND_PAUSE_MS: u64 = 10_000;
/// A round ends after this long without a block granted, even if not every block went
/// out: blocks granted but lost on the way (a cut connection, an asker that went away)
/// go out again by then. (A large file's first round, granting all along, goes on.)
pub const MAX_ROUND_MS: u64 = 10_000;
/// Each asker's first request in a round (or in the pause after it) gets up to this many
/// of the blocks it asked for, whatever went out before: one member grabbing every block
/// of each round cannot starve the others.
pub const FIRST_GRANT_BLOCKS: u64 = 16;
/// A round whose record of blocks out has more ranges than this ends early (requests for
/// scattered blocks cannot make each grant costly).
pub const MAX_ROUND_RANGES: usize = 256;
/// Askers remembered per round; beyond, a new asker gets no first grant.
pub const MAX_ROUND_ASKERS: usize = 4_096;

/// What the sender grants a request for blocks of its own file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// These of the blocks asked for.
    Serve(Blocks),
    /// None of those this round, but these (not asked for; answered `Held`).
    Offer(Blocks),
    /// None this round: the members have them (answered `NotHere`).
    Nothing,
}

/// The rounds of one own file (`NEXT_ROUND_AFTER_MS`).
#[derive(Clone, Debug)]
pub struct SenderRounds<P: PeerKey> {
    total: u64,
    /// Blocks granted in this round.
    served: Blocks,
    /// When this round began, when it last granted a block, and when every block had
    /// gone out in it.
    started_ms: u64,
    last_grant_ms: u64,
    round_done_ms: Option<u64>,
    /// Rounds whose every block went out.
    rounds: u64,
    /// Who had its first grant this round.
    askers: HashSet<P>,
}

impl<P: PeerKey> SenderRounds<P> {
    pub fn new(total: u64, now: u64) -> Self {
        SenderRounds {
            total,
            served: Blocks::default(),
            started_ms: now,
            last_grant_ms: now,
            round_done_ms: None,
            rounds: 0,
            askers: HashSet::new(),
        }
    }

    fn new_round(&mut self, now: u64) {
        self.served = Blocks::default();
        self.started_ms = now;
        self.last_grant_ms = now;
        self.round_done_ms = None;
        self.askers.clear();
    }

    /// `peer` asks for `asked` (at most `MAX_BLOCKS_PER_REQUEST` blocks); what is granted
    /// counts as out this round.
    pub fn grant(&mut self, peer: P, asked: &Blocks, now: u64, max_offer_ranges: usize) -> Grant {
        let all = Blocks::all(self.total);
        let asked = asked.intersect(&all);
        if now < self.started_ms || self.round_done_ms.is_some_and(|done| now < done) {
            // The clock went back: start afresh rather than wait for it.
            self.new_round(now);
        }
        if let Some(done) = self.round_done_ms {
            let pause = (NEXT_ROUND_AFTER_MS * self.rounds).min(MAX_ROUND_PAUSE_MS);
            if now < done + pause {
                let first = self.askers.len() < MAX_ROUND_ASKERS && self.askers.insert(peer);
                return if first && !asked.is_empty() {
                    Grant::Serve(asked.take(FIRST_GRANT_BLOCKS))
                } else {
                    Grant::Nothing
                };
            }
            self.new_round(now);
        } else if now >= self.last_grant_ms + MAX_ROUND_MS
            || self.served.ranges().len() > MAX_ROUND_RANGES
        {
            self.new_round(now);
        }
        let first = self.askers.len() < MAX_ROUND_ASKERS && self.askers.insert(peer);
        let fresh = asked.minus(&self.served);
        let granted = if first {
            fresh.union(&asked.minus(&fresh).take(FIRST_GRANT_BLOCKS))
        } else {
            fresh
        };
        if granted.is_empty() {
            let left = all.minus(&self.served).minus(&asked);
            let ranges: Vec<(u64, u64)> = left
                .ranges()
                .iter()
                .take(max_offer_ranges)
                .copied()
                .collect();
            return match Blocks::from_ranges(ranges, self.total) {
                Some(offer) if !offer.is_empty() => Grant::Offer(offer),
                _ => Grant::Nothing,
            };
        }
        self.served = self.served.union(&granted);
        self.last_grant_ms = now;
        if self.served == all {
            self.round_done_ms = Some(now);
            self.rounds += 1;
        }
        Grant::Serve(granted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    #[test]
    fn the_sender_is_asked_last_and_for_this_members_share_first() {
        let mut d: Download<u32> = Download::new(Blocks::all(640), 0);
        d.author = Some(0);
        d.slot = Some((3, 10));
        // Only the sender connected: it is asked, from this member's share (3/10).
        let c = d.choose(640, vec![0], 0, 8, |_| true, &mut rng());
        assert_eq!(c.starts, vec![(0, Blocks::range(192, 256))]);
        // With members there, they come first (the sender only once four are asked).
        let mut d: Download<u32> = Download::new(Blocks::all(640), 0);
        d.author = Some(0);
        let c = d.choose(640, vec![0, 1, 2, 3, 4], 0, 8, |_| true, &mut rng());
        let asked: Vec<u32> = c.starts.iter().map(|(p, _)| *p).collect();
        assert_eq!(asked.len(), 4);
        assert!(!asked.contains(&0), "{asked:?}");
    }

    #[test]
    fn a_peer_that_had_nothing_rests_longer_each_time_and_a_closed_one_briefly() {
        let mut d: Download<u32> = Download::new(Blocks::all(100), 0);
        let mut at = 0;
        for rest in [250, 500, 1_000, 2_000, 2_000] {
            let c = d.choose(100, vec![1], at, 8, |_| true, &mut rng());
            assert_eq!(c.starts.len(), 1, "asked at {at}");
            let asked = c.starts[0].1.clone();
            d.answer(1, &asked, Answer::NotHere, at);
            assert!(
                d.choose(100, vec![1], at + rest - 1, 8, |_| true, &mut rng())
                    .starts
                    .is_empty()
            );
            at += rest;
        }
        // Cut off: 0.5 s, then like a peer with nothing (cut off again and again).
        let mut d: Download<u32> = Download::new(Blocks::all(100), 0);
        let mut at = 0;
        for rest in [500, 500, 1_000, 2_000] {
            let c = d.choose(100, vec![1], at, 8, |_| true, &mut rng());
            assert_eq!(c.starts.len(), 1, "asked at {at}");
            d.answer(1, &c.starts[0].1, Answer::Closed, at);
            assert!(
                d.choose(100, vec![1], at + rest - 1, 8, |_| true, &mut rng())
                    .starts
                    .is_empty()
            );
            at += rest;
        }
    }

    #[test]
    fn a_peer_that_claims_blocks_and_never_sends_them_rests_like_one_with_nothing() {
        let mut d: Download<u32> = Download::new(Blocks::all(1_000), 0);
        let mut rests = Vec::new();
        let mut at = 0;
        let mut next = 0;
        for _ in 0..6 {
            while d
                .choose(1_000, vec![1], next, 8, |_| true, &mut rng())
                .starts
                .is_empty()
            {
                next += 10;
            }
            rests.push(next - at);
            at = next;
            // "None of those, but these": others, which it never sends.
            let asked = d.asked[&1].clone();
            let claim = d.missing.minus(&asked).take(10);
            d.answer(1, &asked, Answer::Held(claim), at);
        }
        // Asked again at once after the first claim only; then 250 ms doubling to 2 s.
        assert_eq!(rests[..2], [0, 0], "{rests:?}");
        assert!(rests[2..].iter().all(|&r| r >= 250), "{rests:?}");
        assert!(rests.last() >= Some(&2_000), "{rests:?}");
    }

    #[test]
    fn the_sender_serves_each_block_once_a_round_and_offers_the_others() {
        let mut r: SenderRounds<u32> = SenderRounds::new(100, 0);
        assert_eq!(
            r.grant(1, &Blocks::range(0, 60), 0, 32),
            Grant::Serve(Blocks::range(0, 60))
        );
        // Peer 1 again, for blocks out this round: some that are not, instead.
        assert_eq!(
            r.grant(1, &Blocks::range(20, 50), 1, 32),
            Grant::Offer(Blocks::range(60, 100))
        );
        // Peer 2's first request: 16 of what it asked although they are out.
        assert_eq!(
            r.grant(2, &Blocks::range(0, 30), 2, 32),
            Grant::Serve(Blocks::range(0, 16))
        );
        assert_eq!(
            r.grant(2, &Blocks::range(50, 100), 3, 32),
            Grant::Serve(Blocks::range(60, 100))
        );
        // Every block out: a pause of 2 s; a newcomer still gets its first 16.
        assert_eq!(r.grant(1, &Blocks::range(0, 1), 4, 32), Grant::Nothing);
        assert_eq!(
            r.grant(3, &Blocks::range(0, 64), 5, 32),
            Grant::Serve(Blocks::range(0, 16))
        );
        assert_eq!(r.grant(3, &Blocks::range(16, 64), 6, 32), Grant::Nothing);
        assert_eq!(r.grant(1, &Blocks::range(0, 1), 2_002, 32), Grant::Nothing);
        assert_eq!(
            r.grant(1, &Blocks::range(0, 1), 2_003, 32),
            Grant::Serve(Blocks::range(0, 1))
        );
    }

    #[test]
    fn a_round_with_blocks_lost_on_the_way_ends_after_ten_seconds() {
        // A 1:1 chat: block 5's grant is lost; the round never completes by itself.
        let mut r: SenderRounds<u32> = SenderRounds::new(10, 0);
        assert_eq!(
            r.grant(1, &Blocks::range(0, 10), 0, 32),
            Grant::Serve(Blocks::range(0, 10))
        );
        let rest = |r: &mut SenderRounds<u32>, at| r.grant(1, &Blocks::range(5, 6), at, 32);
        // All out: the pause; then round 2 grants block 5, which is lost again.
        assert_eq!(rest(&mut r, 100), Grant::Nothing);
        assert_eq!(rest(&mut r, 2_000), Grant::Serve(Blocks::range(5, 6)));
        assert_ne!(rest(&mut r, 5_000), Grant::Serve(Blocks::range(5, 6)));
        // Round 2 is not done (nobody asked for the rest), but it ends 10 s after its last
        // grant.
        assert_ne!(rest(&mut r, 11_999), Grant::Serve(Blocks::range(5, 6)));
        assert_eq!(rest(&mut r, 12_000), Grant::Serve(Blocks::range(5, 6)));
        // A round that keeps granting goes on past 10 s (a large file's first round).
        let mut r: SenderRounds<u32> = SenderRounds::new(1_000, 0);
        for (i, at) in (0..15u64).map(|i| (i, i * 1_000)) {
            assert_eq!(
                r.grant(1, &Blocks::range(i * 64, i * 64 + 64), at, 32),
                Grant::Serve(Blocks::range(i * 64, (i * 64 + 64).min(1_000)))
            );
        }
        // Still the first round at 14.5 s: block 0 is out in it.
        assert_ne!(
            r.grant(1, &Blocks::range(0, 1), 14_500, 32),
            Grant::Serve(Blocks::range(0, 1))
        );
    }

    #[test]
    fn a_clock_that_goes_back_starts_a_round_rather_than_a_long_wait() {
        let mut r: SenderRounds<u32> = SenderRounds::new(4, 1_000_000);
        r.grant(1, &Blocks::range(0, 4), 1_000_000, 32);
        assert_eq!(
            r.grant(1, &Blocks::range(0, 4), 5_000, 32),
            Grant::Serve(Blocks::range(0, 4))
        );
    }

    #[test]
    fn a_peer_that_failed_is_asked_at_once_when_it_connects_anew() {
        let mut d: Download<u32> = Download::new(Blocks::all(100), 0);
        let c = d.choose(100, vec![1], 0, 8, |_| true, &mut rng());
        d.answer(1, &c.starts[0].1, Answer::Failed, 0);
        assert!(
            d.choose(100, vec![1], 1_000, 8, |_| true, &mut rng())
                .starts
                .is_empty()
        );
        // Gone, then back.
        assert!(
            d.choose(100, vec![], 1_100, 8, |_| true, &mut rng())
                .starts
                .is_empty()
        );
        assert_eq!(
            d.choose(100, vec![1], 1_200, 8, |_| true, &mut rng())
                .starts
                .len(),
            1
        );
    }

    #[test]
    fn blocks_received_are_no_longer_missing_and_the_last_completes_it() {
        let mut d: Download<u32> = Download::new(Blocks::all(10), 0);
        let c = d.choose(10, vec![1], 0, 8, |_| true, &mut rng());
        assert_eq!(c.starts[0].1.count(), 10);
        let done = d.answer(
            1,
            &Blocks::all(10),
            Answer::Received {
                added: Blocks::range(0, 4),
                refused: false,
            },
            5,
        );
        assert!(!done);
        assert_eq!(d.missing, Blocks::range(4, 10));
        assert!(d.answer(
            1,
            &Blocks::range(4, 10),
            Answer::Received {
                added: Blocks::range(4, 10),
                refused: false,
            },
            6,
        ));
    }
}
