//! Frames on one long-lived stream per peer and direction.
//!
//! A node opens one outbound stream to each peer it sends to and writes length-prefixed
//! frames on it, in order, with no answer per frame; the peer reads its newest inbound
//! stream from each peer in a task of its own and hands the frames to the event loop.
//! Before (`/flurfunk/sync/1`) every frame was a request on a new stream with its own
//! protocol negotiation, acknowledgement and timeout timer: about four TCP writes and two
//! timer wake-ups per frame on each side, more than half of a busy office's CPU
//! (`docs/FIGURES.md`).
//!
//! Hostile input: a length over `MAX_NET_FRAME_BYTES` ends the stream before anything is
//! allocated; a frame's bytes are read only once they fit in the peer's budget
//! (`INBOUND_BYTES_PER_PEER`) and the node's (`INBOUND_BYTES`), which the event loop
//! gives back when it has handled the frame, so what waits for the loop is bounded in
//! bytes and a flooding peer is slowed by TCP, not by the loop dropping others' frames; a
//! frame must arrive within `FRAME_READ_TIMEOUT` once begun; a peer's new stream is read
//! beside the one before it until that ends, and replaces any older (two readers per peer
//! at most).
//!
//! Lost frames: a writer reports a frame written once yamux took it, which is not the same
//! as read. The receiver never writes on the stream, so the writer also waits for it to
//! end: a stream the peer dropped or reset (one replaced twice over, a closed connection)
//! fails within a round trip, also when nothing more is to be written, and the event loop
//! resyncs the peer (hello and digest) on a new stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::{Control, IncomingStreams, OpenStreamError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

/// The sync protocol: a sequence of frames, each a 4-byte big-endian length and the frame.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/flurfunk/sync/4");

/// A sync frame (4 MiB, see `wire::MAX_FRAME_BYTES`) plus the frame tag.
pub const MAX_NET_FRAME_BYTES: usize = crate::wire::MAX_FRAME_BYTES + 16;

/// Bytes of one peer's frames read and not yet handled by the event loop.
pub const INBOUND_BYTES_PER_PEER: usize = 2 * MAX_NET_FRAME_BYTES;
/// Bytes of all peers' frames read and not yet handled by the event loop.
pub const INBOUND_BYTES: usize = 64 * 1024 * 1024;

/// A frame begun must be complete within this time (a peer trickling bytes holds a
/// budget and a buffer meanwhile).
pub const FRAME_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A write that does not finish in this time fails (the peer stopped reading, or the link
/// is dead); the event loop resyncs the peer on a new stream.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Opening a stream (negotiation) takes at most this long.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A retired writer (see `Writer::retire`) is aborted after this long at the latest.
pub const RETIRED_MS: u64 = 2 * WRITE_TIMEOUT.as_millis() as u64;

/// A writer puts frames that wait for it into one write until it holds this many bytes.
pub const COALESCE_BYTES: usize = 64 * 1024;

/// What the stream tasks tell the event loop.
#[derive(Debug)]
pub enum NetIo {
    /// A frame from a peer; `permit` holds its bytes in the budgets until dropped.
    Frame {
        peer: PeerId,
        bytes: Vec<u8>,
        permit: FramePermit,
    },
    /// A peer's inbound stream announced a frame over the limit; the stream was closed.
    Oversized { peer: PeerId, len: usize },
    /// Writer `writer` put `frames` more frames on the wire.
    Written {
        peer: PeerId,
        writer: u64,
        frames: u32,
    },
    /// Writer `writer` stopped; the frames handed to it may be lost.
    Failed {
        peer: PeerId,
        writer: u64,
        error: String,
        /// The peer does not speak this protocol (another Flurfunk version).
        unsupported: bool,
    },
}

/// A frame's share of the inbound budgets, given back when dropped.
#[derive(Debug)]
pub struct FramePermit {
    _peer: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

/// The sending half of one peer's outbound stream; dropping it stops the task.
pub struct Writer {
    pub id: u64,
    pub frames: mpsc::Sender<Vec<u8>>,
    task: Option<JoinHandle<()>>,
}

impl Writer {
    /// Stop taking frames but write those handed over already, then close the stream:
    /// for a stream replaced by one on a newer connection, whose reader the peer keeps
    /// until the stream ends. The caller keeps the handle and aborts the task after
    /// `RETIRED_MS` at the latest (each write may take `WRITE_TIMEOUT`).
    pub fn retire(mut self) -> Option<tokio::task::AbortHandle> {
        // Detached: it ends once its channel is empty and closed, or when aborted.
        self.task.take().map(|t| t.abort_handle())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Start writing frames to `peer` on a new stream; at most `capacity` frames wait in it.
/// Its reports go to `events`, unbounded because each writer has at most `capacity`
/// reports outstanding (the event loop hands it a frame per report) and one failure.
pub fn spawn_writer(
    mut control: Control,
    peer: PeerId,
    id: u64,
    capacity: usize,
    events: mpsc::UnboundedSender<NetIo>,
) -> Writer {
    let (frames, mut rx) = mpsc::channel::<Vec<u8>>(capacity.max(1));
    let task = tokio::spawn(async move {
        let result: Result<(), (String, bool)> = async {
            let stream =
                match tokio::time::timeout(OPEN_TIMEOUT, control.open_stream(peer, SYNC_PROTOCOL))
                    .await
                {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        let unsupported = matches!(e, OpenStreamError::UnsupportedProtocol(_));
                        return Err((e.to_string(), unsupported));
                    }
                    Err(_) => return Err(("opening a stream timed out".to_string(), false)),
                };
            let (mut reader, mut writer) = stream.split();
            let mut probe = [0u8; 1];
            let mut buf = Vec::new();
            loop {
                tokio::select! {
                    frame = rx.recv() => {
                        let Some(frame) = frame else {
                            let _ = tokio::time::timeout(WRITE_TIMEOUT, writer.close()).await;
                            return Ok(());
                        };
                        // The frame and what else waits (up to `COALESCE_BYTES`) in one
                        // write, each as its length and bytes: yamux makes a data frame of
                        // every write, and each is a socket call and a wake-up on both
                        // sides.
                        buf.clear();
                        let mut frames = 1u32;
                        put_frame(&mut buf, frame);
                        while buf.len() < COALESCE_BYTES {
                            let Ok(next) = rx.try_recv() else { break };
                            put_frame(&mut buf, next);
                            frames += 1;
                        }
                        let write = async {
                            writer.write_all(&buf).await?;
                            writer.flush().await
                        };
                        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => return Err((e.to_string(), false)),
                            Err(_) => return Err(("write timed out".to_string(), false)),
                        }
                        if buf.capacity() > 4 * COALESCE_BYTES {
                            buf = Vec::new(); // a batch of 1 MiB is not kept for small frames
                        }
                        if events.send(NetIo::Written { peer, writer: id, frames }).is_err() {
                            return Ok(()); // the node stops
                        }
                    }
                    read = reader.read(&mut probe) => {
                        let why = match read {
                            Ok(0) => "the peer closed the stream".to_string(),
                            Ok(_) => "the peer wrote on a stream it only reads".to_string(),
                            Err(e) => e.to_string(),
                        };
                        return Err((why, false));
                    }
                }
            }
        }
        .await;
        if let Err((error, unsupported)) = result {
            let _ = events.send(NetIo::Failed {
                peer,
                writer: id,
                error,
                unsupported,
            });
        }
    });
    Writer {
        id,
        frames,
        task: Some(task),
    }
}

/// `frame` as its 4-byte big-endian length and its bytes.
fn put_frame(buf: &mut Vec<u8>, frame: Vec<u8>) {
    buf.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    buf.extend_from_slice(&frame);
}

/// One peer's reader and budget.
struct InboundPeer {
    id: u64,
    budget: Arc<Semaphore>,
    reader: tokio::task::AbortHandle,
    /// The reader of the stream before (its id), read until it ends: the peer moved its
    /// writer to a newer connection and finishes the frames it had on the old one. If the
    /// newest stream ends first, this one becomes the peer's reader again: a reader is
    /// never left running without an entry (a peer opening and resetting streams in a
    /// loop would otherwise get a fresh budget each time).
    older: Option<(u64, tokio::task::AbortHandle)>,
}

/// Accept the peers' streams for as long as the node runs: each peer's newest stream is
/// read in a task of its own, and the one before it until it ends (a peer that moved to
/// a newer connection finishes writing there); an older one still is dropped. So a peer
/// holds at most two readers however many streams it opens.
pub fn spawn_inbound(mut incoming: IncomingStreams, events: mpsc::Sender<NetIo>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let all = Arc::new(Semaphore::new(INBOUND_BYTES));
        let peers: Arc<Mutex<HashMap<PeerId, InboundPeer>>> = Arc::default();
        let mut next_id = 0u64;
        while let Some((peer, stream)) = incoming.next().await {
            next_id += 1;
            let id = next_id;
            let mut map = peers.lock().unwrap_or_else(|e| e.into_inner());
            let (budget, older) = match map.remove(&peer) {
                Some(old) => {
                    if let Some((_, oldest)) = old.older {
                        oldest.abort();
                    }
                    (old.budget, Some((old.id, old.reader)))
                }
                None => (Arc::new(Semaphore::new(INBOUND_BYTES_PER_PEER)), None),
            };
            let task = {
                let (events, all, budget, peers) =
                    (events.clone(), all.clone(), budget.clone(), peers.clone());
                tokio::spawn(async move {
                    read_frames(peer, stream, &budget, &all, &events).await;
                    let mut map = peers.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(entry) = map.get_mut(&peer) {
                        if entry.id == id {
                            match entry.older.take() {
                                // The older stream is still read: it is the peer's now.
                                Some((older_id, reader)) => {
                                    entry.id = older_id;
                                    entry.reader = reader;
                                }
                                None => {
                                    map.remove(&peer);
                                }
                            }
                        } else if entry.older.as_ref().is_some_and(|(o, _)| *o == id) {
                            entry.older = None;
                        }
                    }
                })
            };
            map.insert(
                peer,
                InboundPeer {
                    id,
                    budget,
                    reader: task.abort_handle(),
                    older,
                },
            );
        }
    })
}

/// Read frames until the stream ends, fails or breaks the rules.
async fn read_frames(
    peer: PeerId,
    mut stream: libp2p::swarm::Stream,
    budget: &Arc<Semaphore>,
    all: &Arc<Semaphore>,
    events: &mpsc::Sender<NetIo>,
) {
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_NET_FRAME_BYTES {
            let _ = events.send(NetIo::Oversized { peer, len }).await;
            return;
        }
        // Both budgets before the bytes: while they are spent, this peer's stream is not
        // read and TCP slows it down.
        let permits = len as u32; // at most MAX_NET_FRAME_BYTES
        let Ok(peer_permit) = budget.clone().acquire_many_owned(permits).await else {
            return;
        };
        let Ok(all_permit) = all.clone().acquire_many_owned(permits).await else {
            return;
        };
        let bytes =
            match tokio::time::timeout(FRAME_READ_TIMEOUT, read_body(&mut stream, len)).await {
                Ok(Some(bytes)) => bytes,
                _ => return,
            };
        let frame = NetIo::Frame {
            peer,
            bytes,
            permit: FramePermit {
                _peer: peer_permit,
                _all: all_permit,
            },
        };
        if events.send(frame).await.is_err() {
            return;
        }
    }
}

/// A frame's `len` bytes; the buffer grows (doubling, never beyond `len`) as they arrive,
/// so a peer that announces 4 MiB and sends nothing more holds no 4 MiB here.
async fn read_body(stream: &mut libp2p::swarm::Stream, len: usize) -> Option<Vec<u8>> {
    let mut bytes: Vec<u8> = Vec::new();
    while bytes.len() < len {
        let target = (bytes.len().max(32 * 1024) * 2).min(len);
        bytes.reserve_exact(target - bytes.len());
        let start = bytes.len();
        bytes.resize(target, 0);
        stream.read_exact(&mut bytes[start..]).await.ok()?;
    }
    Some(bytes)
}

// Each budget holds at least one frame of the largest size, and a frame's length fits
// the semaphores' u32 permit count.
const _: () = assert!(INBOUND_BYTES_PER_PEER >= MAX_NET_FRAME_BYTES);
const _: () = assert!(INBOUND_BYTES >= INBOUND_BYTES_PER_PEER);
const _: () = assert!(MAX_NET_FRAME_BYTES <= u32::MAX as usize);
