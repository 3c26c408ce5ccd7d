//! Attachments in the node: files sent (imported on a blocking thread, then announced),
//! files fetched from connected members of the conversation (several at once, different
//! blocks from each), files served to them (`net::blob`), and the wish to fetch kept on
//! disk so a download survives a restart.
//!
//! Bounds: at most `MAX_DOWNLOADS` files being fetched (files arriving by themselves take
//! at most half, and only recent ones); `MAX_FETCHES` requests in flight in all,
//! `MAX_FETCHES_PER_FILE` per file, `MAX_FETCHES_PER_PEER` per peer; a peer that had
//! nothing, was busy or failed rests; a file nobody serves is tried less and less often
//! (up to every `MAX_BACKOFF_MS`) and given up, visibly, after `GIVE_UP_MS` without a
//! block; a peer whose blocks do not verify is penalised like one sending malformed
//! frames. What the event loop needs to know of a blob (whole here? recorded under which
//! conversations?) is kept in memory; records are written on blocking threads.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use libp2p::PeerId;
use rand::seq::SliceRandom;
use tokio::sync::mpsc;

use super::event_loop::Core;
use crate::files::{BlobRef, BlobStore, Blocks, FileError, Received, schedule};
use crate::identity::UserId;
use crate::net::blob::{self, BlobAsk, BlobReply, BlobRequest};
use crate::wire::ConversationId;

mod records;

use records::{Record, RecordWriter, spawn_record_writer};

/// Files up to this size are fetched by default as soon as their message arrives (if it
/// is recent, `AUTO_DOWNLOAD_MAX_AGE_MS`); larger ones when the user asks
/// (`NodeHandle::download`). A setting: [`FileLimits::auto_download_bytes`].
pub const DEFAULT_AUTO_DOWNLOAD_BYTES: u64 = 25 * 1024 * 1024;

/// The node's settings for files (`NodeConfig::file_limits`, changed while it runs with
/// `NodeHandle::set_file_limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileLimits {
    /// Files larger than this are refused when sent from here.
    pub max_send_bytes: u64,
    /// Files up to this size are fetched as soon as their (recent) message arrives; 0:
    /// only on request.
    pub auto_download_bytes: u64,
    /// Bytes of files kept here at most: beyond, others' files are evicted, least
    /// recently used first; files sent from here never.
    pub quota_bytes: u64,
}

impl Default for FileLimits {
    fn default() -> Self {
        FileLimits {
            max_send_bytes: crate::files::DEFAULT_SEND_LIMIT_BYTES,
            auto_download_bytes: DEFAULT_AUTO_DOWNLOAD_BYTES,
            quota_bytes: DEFAULT_FILES_QUOTA,
        }
    }
}
/// Older messages' files (a history caught up after weeks away) are fetched on request.
pub const AUTO_DOWNLOAD_MAX_AGE_MS: u64 = 3 * 24 * 3600 * 1000;
/// Files being fetched at most; those that arrive by themselves take at most half.
pub const MAX_DOWNLOADS: usize = 64;
/// Block requests in flight at once: in all and per peer (per file:
/// `schedule::MAX_FETCHES_PER_FILE`).
pub const MAX_FETCHES: usize = 8;
pub const MAX_FETCHES_PER_PEER: usize = 2;
/// Files sent from here whose rounds are kept (older ones are served as asked).
const MAX_ROUNDS_KEPT: usize = 64;
/// Files kept here at most by default (bytes); others' files beyond it are evicted,
/// least recently used first, and fetched again when asked for.
pub const DEFAULT_FILES_QUOTA: u64 = 4 << 30;
/// The quota is looked at no more often than this.
const EVICT_EVERY_MS: u64 = 5_000;
/// With the disk full, every download waits: 10 s at first, doubling up to 5 minutes
/// while it stays full; the user is told at most every 10 minutes.
const DISK_FULL_RETRY_MS: u64 = 10_000;
const DISK_FULL_MAX_RETRY_MS: u64 = 5 * 60_000;
const DISK_FULL_TELL_EVERY_MS: u64 = 10 * 60_000;
/// Progress of a download is reported (`NodeEvent::FileProgress`) at most this often.
const PROGRESS_EVERY_MS: u64 = 1_000;
/// A download with no new block for this long is given up (and said so).
pub const GIVE_UP_MS: u64 = 14 * 24 * 3600 * 1000;

/// What a fetch task reports.
#[derive(Debug)]
pub(super) struct FetchDone {
    blob: BlobRef,
    /// The download it was for (a file cancelled and asked for again is a new one).
    generation: u64,
    peer: PeerId,
    asked: Blocks,
    /// Bytes of blocks that came (whether or not they were new or verified).
    bytes: u64,
    outcome: Outcome,
}

#[derive(Debug)]
enum Outcome {
    Received(Received),
    NotHere,
    /// None of the blocks asked for, but these.
    Held(Blocks),
    Busy,
    /// The connection or stream closed under the request (not the peer's data).
    Closed(String),
    Failed(String),
    /// This node's disk is full (no fault of the peer).
    DiskFull(String),
}

struct Download {
    generation: u64,
    conversation: ConversationId,
    /// Whom to ask for which blocks (`files::schedule`, pure).
    plan: schedule::Download<PeerId>,
    /// Blocks held when progress was last reported, and when.
    told_held: u64,
    told_ms: u64,
}

/// What the event loop knows of a blob without reading a file.
#[derive(Default)]
struct Known {
    complete: bool,
    conversations: Vec<[u8; 32]>,
}

/// The node's attachments: store, downloads, the serving task.
pub(super) struct Files {
    pub(super) store: Arc<BlobStore>,
    downloads: BTreeMap<BlobRef, Download>,
    known: HashMap<BlobRef, Known>,
    in_flight: usize,
    per_peer: HashMap<PeerId, usize>,
    done_tx: mpsc::UnboundedSender<FetchDone>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// Record writes, in order, on one thread of their own (a wish, then its end, never
    /// the other way round).
    records: RecordWriter,
    next_generation: u64,
    pub(super) limits: FileLimits,
    /// When the quota was last looked at, and whether it should be again.
    evicted_at_ms: u64,
    pub(super) evict_due: bool,
    /// Blobs the record writer removed for the quota (their cached state is stale).
    evicted: Arc<std::sync::Mutex<Vec<BlobRef>>>,
    /// When a full disk was last reported.
    disk_full_told_ms: Option<u64>,
    /// The disk is full: no fetch starts before `disk_full_until_ms`.
    disk_full: bool,
    disk_full_until_ms: u64,
    disk_full_backoff_ms: u64,
    /// Files sent from here while this node runs, served in rounds
    /// (`schedule::SenderRounds`), oldest first in `rounds_order`.
    rounds: HashMap<BlobRef, schedule::SenderRounds<PeerId>>,
    rounds_order: std::collections::VecDeque<BlobRef>,
    /// Bytes of blocks sent to peers, and received from them (duplicates included).
    pub(super) served_bytes: Arc<std::sync::atomic::AtomicU64>,
    pub(super) fetched_bytes: u64,
    pub(super) refused_answers: u64,
    /// Feature `fault-injection` only: serve blocks with one byte changed (a lying peer
    /// for tests of the downloader).
    pub(super) lie: Arc<std::sync::atomic::AtomicBool>,
}

/// Blobs whose state is cached at most; beyond, the cache starts again (it is only a
/// cache: the records on disk decide).
const MAX_KNOWN: usize = 100_000;

impl Drop for Files {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A download's state, for `flurfunk downloads` and the app.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DownloadView {
    pub conversation: String,
    pub blob: String,
    pub blocks_held: u64,
    pub blocks: u64,
    /// Peers asked right now.
    pub fetching_from: usize,
    /// No block came for a minute: nobody connected has it (yet).
    pub waiting: bool,
    /// It waits for room on the disk.
    #[serde(default)]
    pub disk_full: bool,
}

impl Files {
    pub(super) fn open(
        dir: &std::path::Path,
        limits: FileLimits,
        done_tx: mpsc::UnboundedSender<FetchDone>,
        now: u64,
    ) -> Result<Self, FileError> {
        let store = Arc::new(BlobStore::open(dir)?);
        let records = spawn_record_writer(store.clone());
        let mut files = Files {
            records,
            next_generation: 0,
            store,
            downloads: BTreeMap::new(),
            known: HashMap::new(),
            in_flight: 0,
            per_peer: HashMap::new(),
            done_tx,
            server: None,
            limits,
            evicted_at_ms: 0,
            evict_due: true,
            evicted: Default::default(),
            disk_full_told_ms: None,
            disk_full: false,
            disk_full_until_ms: 0,
            disk_full_backoff_ms: DISK_FULL_RETRY_MS,
            rounds: HashMap::new(),
            rounds_order: Default::default(),
            served_bytes: Default::default(),
            fetched_bytes: 0,
            refused_answers: 0,
            lie: Default::default(),
        };
        for (blob, conv, moved_ms) in files.store.wanted() {
            let missing = Blocks::all(blob.blocks()).minus(&files.store.held(&blob));
            if missing.is_empty() {
                files.store.unwant(&blob);
            } else if files.downloads.len() < MAX_DOWNLOADS {
                files.add_download(blob, ConversationId(conv), missing, moved_ms.min(now));
            }
        }
        Ok(files)
    }

    /// A download of `missing` blocks; `moved_ms`: when it last made progress.
    fn add_download(
        &mut self,
        blob: BlobRef,
        conversation: ConversationId,
        missing: Blocks,
        moved_ms: u64,
    ) {
        self.next_generation += 1;
        let generation = self.next_generation;
        let told_held = blob.blocks() - missing.count();
        self.downloads.entry(blob).or_insert(Download {
            generation,
            conversation,
            plan: schedule::Download::new(missing, moved_ms),
            told_held,
            told_ms: 0,
        });
    }

    /// Look at the quota if it is due (at start, and after downloads complete).
    fn evict_if_due(&mut self, now: u64) {
        if !self.evict_due || now < self.evicted_at_ms + EVICT_EVERY_MS {
            return;
        }
        self.evict_due = false;
        self.evicted_at_ms = now;
        self.records.send(Record::Evict {
            quota: self.limits.quota_bytes,
            keep: self.downloads.keys().copied().collect(),
            evicted: self.evicted.clone(),
        });
    }

    /// Forget the cached state of blobs evicted since last time.
    fn forget_evicted(&mut self) {
        let evicted = std::mem::take(&mut *self.evicted.lock().unwrap_or_else(|e| e.into_inner()));
        for blob in evicted {
            self.known.remove(&blob);
        }
    }

    /// The cached state of `blob`, read from its records once.
    fn known(&mut self, blob: &BlobRef) -> &mut Known {
        if self.known.len() >= MAX_KNOWN && !self.known.contains_key(blob) {
            self.known.clear();
        }
        let store = &self.store;
        self.known.entry(*blob).or_insert_with(|| Known {
            complete: store.is_complete(blob),
            conversations: store.conversations(blob),
        })
    }

    /// Record `blob` under `conv` (in memory now, on disk on a blocking thread).
    fn note_conversation(&mut self, blob: &BlobRef, conv: ConversationId) {
        let known = self.known(blob);
        if known.conversations.contains(&conv.0)
            || known.conversations.len() >= crate::files::blobs::MAX_BLOB_CONVERSATIONS
        {
            return;
        }
        known.conversations.push(conv.0);
        self.records.send(Record::Conversation(*blob, conv.0));
    }
}

impl Core {
    /// Start serving blobs (called once the event loop runs).
    pub(super) fn start_files(&mut self, asks: mpsc::Sender<BlobAsk>) {
        let Some(files) = self.files.as_mut() else {
            return;
        };
        match self.control.accept(blob::BLOB_PROTOCOL) {
            Ok(incoming) => {
                files.server = Some(blob::spawn_server(
                    incoming,
                    asks,
                    files.store.clone(),
                    files.served_bytes.clone(),
                    files.lie.clone(),
                ));
            }
            Err(e) => tracing::warn!(error = %e, "files cannot be served"),
        }
    }

    /// A peer asks for blocks: only a member of the conversation it names (as this node
    /// sees it; in a managed network a self-declared relay is not served), and only of a
    /// blob recorded under that conversation here.
    pub(super) fn handle_blob_ask(&mut self, ask: BlobAsk) {
        // Members of the conversation, and the relays that carry every conversation's
        // events and can read none (certified ones in a managed network).
        let member = UserId::from_peer_id(&ask.peer).is_some_and(|user| {
            self.engine.is_member_peer(&ask.request.conversation, &user)
                || self.engine.is_carrying_relay(&user)
        });
        let allowed = member
            && self.files.as_mut().is_some_and(|files| {
                files
                    .known(&ask.request.blob)
                    .conversations
                    .contains(&ask.request.conversation.0)
            });
        let grant = if !allowed {
            schedule::Grant::Nothing
        } else if let Some(rounds) = self
            .files
            .as_mut()
            .and_then(|files| files.rounds.get_mut(&ask.request.blob))
        {
            // A file sent from here: served in rounds.
            rounds.grant(
                ask.peer,
                &ask.request.blocks,
                super::now_ms(),
                blob::MAX_RANGES_PER_REQUEST,
            )
        } else {
            schedule::Grant::Serve(ask.request.blocks.clone())
        };
        let _ = ask.allow.send(grant);
    }

    /// Whether a file of `size` bytes in a message written at `wall_ms` is fetched as
    /// soon as it arrives: recent, and within the automatic size.
    pub(super) fn fetch_by_itself(&self, wall_ms: u64, size: u64, now: u64) -> Fetch {
        let recent = wall_ms.saturating_add(AUTO_DOWNLOAD_MAX_AGE_MS) > now;
        let auto = self
            .files
            .as_ref()
            .map_or(0, |files| files.limits.auto_download_bytes);
        // The organisation's cap (members; a relay keeps what its own setting says).
        let auto = match self.engine.policy().auto_download_bytes {
            Some(cap) if self.config.role == crate::wire::Role::Member => auto.min(cap),
            _ => auto,
        };
        if recent && size <= auto {
            Fetch::Auto
        } else {
            Fetch::No
        }
    }

    /// A file of a message in `conversation` arrived or was sent: it is recorded under the
    /// conversation, and fetched if `fetch` (kept across restarts until it is here).
    pub(super) fn want_file(
        &mut self,
        conversation: ConversationId,
        blob: BlobRef,
        fetch: Fetch,
        author: Option<UserId>,
        now: u64,
    ) -> Result<(), FileError> {
        let Some(files) = self.files.as_mut() else {
            return Err(FileError::Missing);
        };
        files.note_conversation(&blob, conversation);
        if fetch == Fetch::No || files.known(&blob).complete || files.downloads.contains_key(&blob)
        {
            return Ok(());
        }
        let limit = match fetch {
            Fetch::Auto => MAX_DOWNLOADS / 2,
            _ => MAX_DOWNLOADS,
        };
        if files.downloads.len() >= limit {
            return Err(FileError::TooManyDownloads);
        }
        files.records.send(Record::Want(blob, conversation.0));
        // What is here stays (a download cancelled at 90 % and asked for again).
        let missing = Blocks::all(blob.blocks()).minus(&files.store.held(&blob));
        files.add_download(blob, conversation, missing, now);
        if let Some(download) = files.downloads.get_mut(&blob) {
            download.plan.author = author.and_then(|a| a.to_peer_id());
        }
        self.pump_downloads(now);
        Ok(())
    }

    /// The message that carried `blob` was deleted for everyone: stop fetching it and
    /// remove every block of it here (on the records thread).
    pub(super) fn purge_file(&mut self, blob: &BlobRef) {
        if let Some(files) = self.files.as_mut() {
            files.downloads.remove(blob);
            // Not here, and under no conversation, before the records thread removes it.
            *files.known(blob) = Known::default();
            files.records.send(Record::Purge(*blob));
        }
    }

    /// Stop fetching `blob` (what is here stays, and is served).
    pub(super) fn cancel_download(&mut self, blob: &BlobRef) {
        if let Some(files) = self.files.as_mut()
            && files.downloads.remove(blob).is_some()
        {
            files.records.send(Record::Unwant(*blob));
        }
    }

    /// Blobs whose copy here was found damaged (serving or opening them): fetched again
    /// from whoever has them, under the first conversation they are recorded in.
    fn refetch_damaged(&mut self, now: u64) {
        let Some(files) = self.files.as_mut() else {
            return;
        };
        let mut again = Vec::new();
        for (blob, was_complete) in files.store.take_damaged() {
            let known = files.known(&blob);
            known.complete = false;
            let conversation = known.conversations.first().copied();
            if let Some(download) = files.downloads.get_mut(&blob) {
                // Being fetched: the dropped blocks are missing again.
                download.plan.missing = Blocks::all(blob.blocks()).minus(&files.store.held(&blob));
            } else if was_complete && let Some(conv) = conversation {
                // A file that was whole here (a partial one, cancelled or given up, is
                // left as it is); not one purged meanwhile (its conversations are gone
                // from the cache at once).
                again.push((ConversationId(conv), blob));
            }
        }
        for (conversation, blob) in again {
            tracing::warn!(blob = %blob.id(), "a file here is damaged on disk: fetching it again");
            if let Err(e) = self.want_file(conversation, blob, Fetch::Asked, None, now) {
                tracing::warn!(blob = %blob.id(), error = %e, "a damaged file is not fetched again");
            }
        }
    }

    /// Ask peers for missing blocks, within the bounds; downloads take turns.
    pub(super) fn pump_downloads(&mut self, now: u64) {
        self.refetch_damaged(now);
        let Some(files) = self.files.as_mut() else {
            return;
        };
        files.forget_evicted();
        files.evict_if_due(now);
        if now < files.disk_full_until_ms {
            // Fetching now would only throw the blocks away.
            return;
        }
        let mut starts = Vec::new();
        let mut given_up = Vec::new();
        let mut order: Vec<BlobRef> = files.downloads.keys().copied().collect();
        order.shuffle(&mut rand::thread_rng());
        for blob in order {
            if files.in_flight + starts.len() >= MAX_FETCHES {
                break;
            }
            let Some(download) = files.downloads.get_mut(&blob) else {
                continue;
            };
            if now.saturating_sub(download.plan.last_progress_ms) > GIVE_UP_MS {
                given_up.push((blob, download.conversation));
                continue;
            }
            // Members, and the relays that carry conversations (they keep their files).
            let mut peers = self.engine.member_peers(&download.conversation);
            peers.extend(self.engine.carrying_relays());
            let peers: Vec<PeerId> = peers.iter().filter_map(|u| u.to_peer_id()).collect();
            // This node's place among the members and their number (looked up once).
            if download.plan.slot.is_none() {
                download.plan.slot = Some(
                    self.engine
                        .member_place(&download.conversation)
                        .unwrap_or((0, 1)),
                );
            }
            let per_peer = &files.per_peer;
            let choice = download.plan.choose(
                blob.blocks(),
                peers,
                now,
                MAX_FETCHES - files.in_flight - starts.len(),
                |peer| per_peer.get(peer).copied().unwrap_or(0) < MAX_FETCHES_PER_PEER,
                &mut rand::thread_rng(),
            );
            if choice.stalled {
                tracing::info!(blob = %blob.id(), "a file waits for a colleague who has it");
            }
            for (peer, blocks) in choice.starts {
                *files.per_peer.entry(peer).or_insert(0) += 1;
                starts.push((
                    blob,
                    download.generation,
                    peer,
                    BlobRequest {
                        conversation: download.conversation,
                        blob,
                        blocks,
                    },
                ));
            }
        }
        files.in_flight += starts.len();
        for (blob, generation, peer, request) in starts {
            let control = self.control.clone();
            let store = files.store.clone();
            let done = files.done_tx.clone();
            tokio::spawn(async move {
                let asked = request.blocks.clone();
                let mut got = 0;
                let outcome = match blob::fetch(control, peer, &request).await {
                    Ok(BlobReply::Blocks { blocks, bytes }) => {
                        got = bytes.len() as u64;
                        match tokio::task::spawn_blocking(move || {
                            store.receive(&blob, &blocks, &bytes)
                        })
                        .await
                        {
                            Ok(Ok(received)) => Outcome::Received(received),
                            Ok(Err(FileError::DiskFull { what })) => Outcome::DiskFull(what),
                            Ok(Err(e)) => Outcome::Failed(e.to_string()),
                            Err(e) => Outcome::Failed(e.to_string()),
                        }
                    }
                    Ok(BlobReply::NotHere) => Outcome::NotHere,
                    Ok(BlobReply::Held { held }) => Outcome::Held(held),
                    Ok(BlobReply::Busy) => Outcome::Busy,
                    Err(blob::FetchError::Closed(e)) => Outcome::Closed(e),
                    Err(blob::FetchError::Failed(e)) => Outcome::Failed(e),
                };
                let _ = done.send(FetchDone {
                    blob,
                    generation,
                    peer,
                    asked,
                    bytes: got,
                    outcome,
                });
            });
        }
        for (blob, conversation) in given_up {
            self.cancel_download(&blob);
            let name = self
                .engine
                .conversation(&conversation)
                .map(|c| c.name)
                .unwrap_or_default();
            self.emit(crate::node::NodeEvent::Warning {
                message: format!(
                    "a file in \"{name}\" could not be fetched: nobody who has it was reachable for 14 days"
                ),
            });
        }
    }

    /// A fetch ended: keep what verified, rest the peer if it had nothing, penalise it if
    /// its blocks did not verify; announce a file that is complete.
    pub(super) fn handle_fetch_done(&mut self, done: FetchDone, now: u64) {
        let Some(files) = self.files.as_mut() else {
            return;
        };
        files.in_flight = files.in_flight.saturating_sub(1);
        files.fetched_bytes += done.bytes;
        if let Some(n) = files.per_peer.get_mut(&done.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                files.per_peer.remove(&done.peer);
            }
        }
        // What arrived counts whether or not the download is still wanted (cancelled
        // while this request ran, or asked for again).
        let mut corrupt = false;
        let mut complete = false;
        let mut disk_full = None;
        let mut progressed = false;
        if let Outcome::Received(received) = &done.outcome {
            corrupt = received.refused.is_some();
            files.refused_answers += u64::from(corrupt);
            progressed = !received.added.is_empty();
            if received.complete {
                files.known(&done.blob).complete = true;
            }
        }
        if let Some(download) = files
            .downloads
            .get_mut(&done.blob)
            .filter(|d| d.generation == done.generation)
        {
            let answer = match done.outcome {
                Outcome::Received(received) => {
                    if let Some(why) = &received.refused {
                        tracing::warn!(peer = %done.peer, blob = %done.blob.id(), %why, "blocks refused");
                    }
                    complete |= received.complete;
                    schedule::Answer::Received {
                        added: received.added,
                        refused: received.refused.is_some(),
                    }
                }
                Outcome::NotHere => schedule::Answer::NotHere,
                Outcome::Held(held) => schedule::Answer::Held(held),
                Outcome::Busy => schedule::Answer::Busy,
                Outcome::Closed(e) => {
                    tracing::debug!(peer = %done.peer, blob = %done.blob.id(), error = %e, "fetch cut off");
                    schedule::Answer::Closed
                }
                Outcome::DiskFull(what) => {
                    // Not the peer's fault: nobody rests; every download waits.
                    disk_full = Some(what);
                    schedule::Answer::DiskFull
                }
                Outcome::Failed(e) => {
                    tracing::debug!(peer = %done.peer, blob = %done.blob.id(), error = %e, "fetch failed");
                    schedule::Answer::Failed
                }
            };
            complete |= download.plan.answer(done.peer, &done.asked, answer, now);
        }
        if disk_full.is_some() {
            files.disk_full = true;
            // Answers still on their way when it filled up do not prolong the wait.
            if now >= files.disk_full_until_ms {
                files.disk_full_until_ms = now + files.disk_full_backoff_ms;
                files.disk_full_backoff_ms =
                    (files.disk_full_backoff_ms * 2).min(DISK_FULL_MAX_RETRY_MS);
            }
        } else if progressed {
            files.disk_full = false;
            files.disk_full_backoff_ms = DISK_FULL_RETRY_MS;
        }
        if complete && let Some(download) = files.downloads.remove(&done.blob) {
            files.evict_due = true;
            files.known(&done.blob).complete = true;
            files.records.send(Record::Unwant(done.blob));
            self.emit(crate::node::NodeEvent::FileReady {
                conversation: download.conversation.to_string(),
                blob: done.blob.id().to_hex(),
            });
        }
        if corrupt {
            self.penalize_peer(done.peer, now);
        }
        self.report_progress(now);
        if let Some(what) = disk_full
            && let Some(files) = self.files.as_mut()
            && files
                .disk_full_told_ms
                .is_none_or(|at| now >= at + DISK_FULL_TELL_EVERY_MS)
        {
            files.disk_full_told_ms = Some(now);
            tracing::warn!(%what, "the disk is full: files wait until there is room");
            self.emit(crate::node::NodeEvent::DiskFull { what });
        }
        self.pump_downloads(now);
    }

    /// `FileProgress` for the downloads that moved, at most once a second each.
    fn report_progress(&mut self, now: u64) {
        let Some(files) = self.files.as_mut() else {
            return;
        };
        let mut events = Vec::new();
        for (blob, d) in files.downloads.iter_mut() {
            let blocks = blob.blocks();
            let held = blocks - d.plan.missing.count();
            if held != d.told_held && now >= d.told_ms + PROGRESS_EVERY_MS {
                d.told_held = held;
                d.told_ms = now;
                events.push(crate::node::NodeEvent::FileProgress {
                    conversation: d.conversation.to_string(),
                    blob: blob.id().to_hex(),
                    blocks_held: held,
                    blocks,
                });
            }
        }
        for event in events {
            self.emit(event);
        }
    }

    /// An own file just imported: whole here.
    pub(super) fn file_sent(&mut self, conversation: ConversationId, blob: BlobRef) {
        if let Some(files) = self.files.as_mut() {
            files.known(&blob).complete = true;
            files.note_conversation(&blob, conversation);
            if files.rounds.len() >= MAX_ROUNDS_KEPT
                && let Some(oldest) = files.rounds_order.pop_front()
            {
                files.rounds.remove(&oldest);
            }
            if !files.rounds.contains_key(&blob) {
                files.rounds_order.push_back(blob);
            }
            files.rounds.insert(
                blob,
                schedule::SenderRounds::new(blob.blocks(), super::now_ms()),
            );
        }
    }

    pub(super) fn download_views(&self) -> Vec<DownloadView> {
        let Some(files) = self.files.as_ref() else {
            return Vec::new();
        };
        files
            .downloads
            .iter()
            .map(|(blob, d)| {
                let n = blob.blocks();
                DownloadView {
                    conversation: d.conversation.to_string(),
                    blob: blob.id().to_hex(),
                    blocks_held: n - d.plan.missing.count(),
                    blocks: n,
                    fetching_from: d.plan.asked.len(),
                    waiting: d.plan.stalled() && !files.disk_full,
                    disk_full: files.disk_full,
                }
            })
            .collect()
    }

    /// Whether `blob` is being fetched.
    pub(super) fn fetching(&self, blob: &BlobRef) -> bool {
        self.files
            .as_ref()
            .is_some_and(|f| f.downloads.contains_key(blob))
    }

    /// Whether `blob` is wholly here (cached; read from its record once).
    pub(super) fn file_here(&mut self, blob: &BlobRef) -> bool {
        // A copy found damaged a moment ago is not here (and is being fetched again).
        self.refetch_damaged(super::now_ms());
        self.files.as_mut().is_some_and(|f| {
            f.forget_evicted();
            f.known(blob).complete
        })
    }
}

/// Whether a file is fetched when its message is taken in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fetch {
    /// Only recorded under the conversation (it is large, or old).
    No,
    /// It arrived by itself (small and recent).
    Auto,
    /// The user asked.
    Asked,
}
