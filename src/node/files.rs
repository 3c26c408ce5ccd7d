//! Attachments in the node: files sent (imported on a blocking thread, then announced),
//! files fetched from whichever connected peers share the conversation (several at
//! once, different blocks from each), files served to them (`net::blob`), and the wish
//! to fetch kept on disk so a download survives a restart.
//!
//! Bounds: `MAX_FETCHES` requests in flight in all, `MAX_FETCHES_PER_FILE` per file, one
//! per peer and file; a peer that had nothing, was busy or failed rests for a while; a
//! peer whose blocks did not verify is penalised like a peer sending malformed frames.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use libp2p::PeerId;
use tokio::sync::mpsc;

use super::event_loop::Core;
use crate::files::{BlobId, BlobStore, Blocks, Received};
use crate::identity::UserId;
use crate::net::blob::{self, BlobAsk, BlobReply, BlobRequest, MAX_BLOCKS_PER_REQUEST};
use crate::wire::{BlobRef, ConversationId};

/// Files up to this size are fetched as soon as their message arrives; larger ones when
/// the user asks (`NodeHandle::download`).
pub const AUTO_DOWNLOAD_BYTES: u64 = 25 * 1024 * 1024;
/// Block requests in flight at once, in all and per file.
pub const MAX_FETCHES: usize = 8;
pub const MAX_FETCHES_PER_FILE: usize = 4;
/// How long a peer is not asked again for a file after it had none of the blocks, was
/// busy, or failed.
const REST_NOT_HERE_MS: u64 = 30_000;
const REST_BUSY_MS: u64 = 2_000;
const REST_FAILED_MS: u64 = 10_000;
/// A download with no new block for this long is reported (once) as waiting.
const STALLED_MS: u64 = 60_000;

/// What a fetch task reports.
#[derive(Debug)]
pub(super) struct FetchDone {
    id: BlobId,
    peer: PeerId,
    asked: Blocks,
    outcome: Outcome,
}

#[derive(Debug)]
enum Outcome {
    Received(Received),
    NotHere,
    Busy,
    Failed(String),
}

struct Download {
    conversation: ConversationId,
    blob: BlobRef,
    missing: Blocks,
    /// Requests in flight: peer and the blocks asked of it.
    asked: HashMap<PeerId, Blocks>,
    /// Peers not asked again before this time.
    resting: HashMap<PeerId, u64>,
    last_progress_ms: u64,
    stalled_told: bool,
}

/// The node's attachments: store, downloads, the serving task.
pub(super) struct Files {
    pub(super) store: Arc<BlobStore>,
    downloads: BTreeMap<BlobId, Download>,
    in_flight: usize,
    done_tx: mpsc::UnboundedSender<FetchDone>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Files {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A download's state, for `flurfunk files` and the app.
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
}

impl Files {
    pub(super) fn open(
        dir: &std::path::Path,
        done_tx: mpsc::UnboundedSender<FetchDone>,
        now: u64,
    ) -> Result<Self, crate::files::FileError> {
        let store = Arc::new(BlobStore::open(dir)?);
        let mut files = Files {
            store,
            downloads: BTreeMap::new(),
            in_flight: 0,
            done_tx,
            server: None,
        };
        for (id, conv, ct_len) in files.store.wanted() {
            files.add_download(
                id,
                ConversationId(conv),
                BlobRef { hash: id.0, ct_len },
                now,
            );
        }
        Ok(files)
    }

    fn add_download(&mut self, id: BlobId, conversation: ConversationId, blob: BlobRef, now: u64) {
        let all = Blocks::all(crate::files::blobs::blocks(blob.ct_len));
        let missing = all.minus(&self.store.held(&id, blob.ct_len));
        if missing.is_empty() {
            self.store.unwant(&id);
            return;
        }
        self.downloads.entry(id).or_insert(Download {
            conversation,
            blob,
            missing,
            asked: HashMap::new(),
            resting: HashMap::new(),
            last_progress_ms: now,
            stalled_told: false,
        });
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
                files.server = Some(blob::spawn_server(incoming, asks, files.store.clone()));
            }
            Err(e) => tracing::warn!(error = %e, "files cannot be served"),
        }
    }

    /// A peer asks for blocks: only of a blob recorded under the conversation it names,
    /// and only if this node shares that conversation with it.
    pub(super) fn handle_blob_ask(&mut self, ask: BlobAsk) {
        let allowed = self.files.as_ref().is_some_and(|files| {
            let id = BlobId(ask.request.blob.hash);
            UserId::from_peer_id(&ask.peer).is_some_and(|user| {
                self.engine.shares(&ask.request.conversation, &user)
                    && files
                        .store
                        .conversations(&id)
                        .contains(&ask.request.conversation.0)
            })
        });
        let _ = ask.allow.send(allowed);
    }

    /// Fetch the file of a message (kept across restarts until it is here).
    pub(super) fn want_file(
        &mut self,
        conversation: ConversationId,
        blob: BlobRef,
        now: u64,
    ) -> Result<(), crate::files::FileError> {
        let Some(files) = self.files.as_mut() else {
            return Err(crate::files::FileError::Missing);
        };
        let id = BlobId(blob.hash);
        if files.downloads.contains_key(&id) {
            return Ok(());
        }
        files.store.note_conversation(&id, conversation.0)?;
        if files.store.is_complete(&id, blob.ct_len) {
            return Ok(());
        }
        files.store.want(&id, conversation.0, blob.ct_len)?;
        files.add_download(id, conversation, blob, now);
        self.pump_downloads(now);
        Ok(())
    }

    /// Ask peers for missing blocks, within the bounds.
    pub(super) fn pump_downloads(&mut self, now: u64) {
        let Some(files) = self.files.as_mut() else {
            return;
        };
        let mut starts = Vec::new();
        for (id, download) in files.downloads.iter_mut() {
            if files.in_flight + starts.len() >= MAX_FETCHES {
                break;
            }
            download.resting.retain(|_, until| *until > now);
            let mut peers = self.engine.peers_sharing(&download.conversation);
            // Spread files over peers: start with a different peer for each file.
            peers.sort_by_key(|p| (p.0[0] ^ id.0[0], p.0));
            for user in peers {
                if download.asked.len() >= MAX_FETCHES_PER_FILE
                    || files.in_flight + starts.len() >= MAX_FETCHES
                {
                    break;
                }
                let Some(peer) = user.to_peer_id() else {
                    continue;
                };
                if download.asked.contains_key(&peer) || download.resting.contains_key(&peer) {
                    continue;
                }
                let taken = download
                    .asked
                    .values()
                    .fold(Blocks::default(), |all, b| all.union(b));
                let next = download.missing.minus(&taken).take(MAX_BLOCKS_PER_REQUEST);
                if next.is_empty() {
                    break;
                }
                download.asked.insert(peer, next.clone());
                starts.push((
                    *id,
                    peer,
                    BlobRequest {
                        conversation: download.conversation,
                        blob: download.blob,
                        blocks: next,
                    },
                ));
            }
            if !download.stalled_told
                && download.asked.is_empty()
                && now.saturating_sub(download.last_progress_ms) > STALLED_MS
            {
                download.stalled_told = true;
                tracing::info!(blob = %id, "a file waits for a colleague who has it");
            }
        }
        files.in_flight += starts.len();
        for (id, peer, request) in starts {
            let control = self.control.clone();
            let store = files.store.clone();
            let done = files.done_tx.clone();
            tokio::spawn(async move {
                let asked = request.blocks.clone();
                let outcome = match blob::fetch(control, peer, &request).await {
                    Ok(BlobReply::Blocks { blocks, bytes }) => {
                        let ct_len = request.blob.ct_len;
                        match tokio::task::spawn_blocking(move || {
                            store.receive(&id, ct_len, &blocks, &bytes)
                        })
                        .await
                        {
                            Ok(Ok(received)) => Outcome::Received(received),
                            Ok(Err(e)) => Outcome::Failed(e.to_string()),
                            Err(e) => Outcome::Failed(e.to_string()),
                        }
                    }
                    Ok(BlobReply::NotHere) => Outcome::NotHere,
                    Ok(BlobReply::Busy) => Outcome::Busy,
                    Err(e) => Outcome::Failed(e),
                };
                let _ = done.send(FetchDone {
                    id,
                    peer,
                    asked,
                    outcome,
                });
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
        let Some(download) = files.downloads.get_mut(&done.id) else {
            return;
        };
        download.asked.remove(&done.peer);
        let mut complete = false;
        let mut corrupt = false;
        match done.outcome {
            Outcome::Received(received) => {
                if !received.added.is_empty() {
                    download.missing = download.missing.minus(&received.added);
                    download.last_progress_ms = now;
                    download.stalled_told = false;
                }
                complete = received.complete || download.missing.is_empty();
                if let Some(why) = received.refused {
                    tracing::warn!(peer = %done.peer, blob = %done.id, %why, "blocks refused");
                    download.resting.insert(done.peer, now + REST_NOT_HERE_MS);
                    corrupt = true;
                } else if received.added.is_empty() && !done.asked.is_empty() {
                    download.resting.insert(done.peer, now + REST_NOT_HERE_MS);
                }
            }
            Outcome::NotHere => {
                download.resting.insert(done.peer, now + REST_NOT_HERE_MS);
            }
            Outcome::Busy => {
                download.resting.insert(done.peer, now + REST_BUSY_MS);
            }
            Outcome::Failed(e) => {
                tracing::debug!(peer = %done.peer, blob = %done.id, error = %e, "fetch failed");
                download.resting.insert(done.peer, now + REST_FAILED_MS);
            }
        }
        if complete {
            let conversation = download.conversation;
            files.downloads.remove(&done.id);
            files.store.unwant(&done.id);
            self.emit(crate::node::NodeEvent::FileReady {
                conversation: conversation.to_string(),
                blob: done.id.to_hex(),
            });
        }
        if corrupt {
            self.penalize_peer(done.peer, now);
        }
        self.pump_downloads(now);
    }

    pub(super) fn download_views(&self) -> Vec<DownloadView> {
        let Some(files) = self.files.as_ref() else {
            return Vec::new();
        };
        files
            .downloads
            .iter()
            .map(|(id, d)| {
                let n = crate::files::blobs::blocks(d.blob.ct_len);
                DownloadView {
                    conversation: d.conversation.to_string(),
                    blob: id.to_hex(),
                    blocks_held: n - d.missing.count(),
                    blocks: n,
                    fetching_from: d.asked.len(),
                    waiting: d.stalled_told,
                }
            })
            .collect()
    }

    /// Whether blob `id` is being fetched.
    pub(super) fn fetching(&self, id: &BlobId) -> bool {
        self.files
            .as_ref()
            .is_some_and(|f| f.downloads.contains_key(id))
    }

    /// Whether the file of blob `id` (of `ct_len` bytes) is wholly here.
    pub(super) fn file_here(&self, blob: &BlobRef) -> bool {
        self.files
            .as_ref()
            .is_some_and(|f| f.store.is_complete(&BlobId(blob.hash), blob.ct_len))
    }
}
