//! `/flurfunk/blob/1`: blocks of attachments, on streams of their own (never on the sync
//! stream, so a text is not queued behind a file).
//!
//! One request per stream: the asker writes a `BlobRequest` (conversation, blob, at most
//! `MAX_BLOCKS_PER_REQUEST` blocks) and closes its side; the holder answers with the
//! blocks it holds of those and their bao encoding, or `NotHere`/`Busy`, and closes. The
//! asker verifies every block against the blob's hash before it keeps it
//! (`files::BlobStore::receive`); it never trusts the holder's list beyond that.
//!
//! Bounds: a request is at most `MAX_REQUEST_BYTES`, an answer at most
//! `MAX_RESPONSE_BYTES`, each read within `REQUEST_TIMEOUT`; a node serves at most
//! `MAX_SERVING` requests at once and `MAX_SERVING_PER_PEER` per peer; more streams are
//! dropped unread (the asker tries another peer or later).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::{Control, IncomingStreams};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::files::blobs::{Blocks, blocks};
use crate::files::schedule::Grant;
use crate::wire::{BlobRef, ConversationId};

pub const BLOB_PROTOCOL: StreamProtocol = StreamProtocol::new("/flurfunk/blob/1");

/// Blocks (16 KiB) one request may ask for: 1 MiB.
pub use crate::files::schedule::MAX_BLOCKS_PER_REQUEST;
/// Ranges one request or answer may list.
pub const MAX_RANGES_PER_REQUEST: usize = crate::files::blobs::MAX_RANGES;
const MAX_REQUEST_BYTES: usize = 1 + 32 + 32 + 8 + 2 + 16 * MAX_RANGES_PER_REQUEST;
/// An answer: 1 MiB of blocks and the hash pairs on their paths (64 bytes per tree level
/// per range), with room to spare.
pub const MAX_RESPONSE_BYTES: usize = 2 * 1024 * 1024;
/// A request or answer must be complete within this time.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A holder reads a request (612 bytes at most) for at most this long.
pub const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests served at once, and per peer.
pub const MAX_SERVING: usize = 8;
pub const MAX_SERVING_PER_PEER: usize = 2;

/// "Send me these blocks of this blob of that conversation."
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRequest {
    pub conversation: ConversationId,
    pub blob: BlobRef,
    pub blocks: Blocks,
}

impl BlobRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_REQUEST_BYTES);
        out.push(1);
        out.extend_from_slice(&self.conversation.0);
        out.extend_from_slice(&self.blob.hash);
        out.extend_from_slice(&self.blob.ct_len.to_be_bytes());
        let ranges = self.blocks.ranges();
        out.extend_from_slice(&(ranges.len() as u16).to_be_bytes());
        for &(a, b) in ranges {
            out.extend_from_slice(&a.to_be_bytes());
            out.extend_from_slice(&b.to_be_bytes());
        }
        out
    }

    /// A peer's request, checked: known version, size within the limit, ranges sorted,
    /// disjoint, at most `MAX_BLOCKS_PER_REQUEST` blocks within the blob.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (&version, rest) = bytes.split_first()?;
        if version != 1 || rest.len() < 32 + 32 + 8 + 2 {
            return None;
        }
        let conversation = ConversationId(rest[..32].try_into().ok()?);
        let mut blob_bytes = vec![1u8];
        blob_bytes.extend_from_slice(&rest[32..72]);
        let blob = BlobRef::decode(&blob_bytes)?;
        let n = u16::from_be_bytes(rest[72..74].try_into().ok()?) as usize;
        let body = &rest[74..];
        if n > MAX_RANGES_PER_REQUEST || body.len() != 16 * n {
            return None;
        }
        let ranges = decode_ranges(body);
        let blocks = Blocks::from_ranges(ranges, blocks(blob.ct_len))?;
        (blocks.count() <= MAX_BLOCKS_PER_REQUEST && !blocks.is_empty()).then_some(BlobRequest {
            conversation,
            blob,
            blocks,
        })
    }
}

/// The answer to a `BlobRequest`.
#[derive(Debug, PartialEq, Eq)]
pub enum BlobReply {
    /// These of the blocks asked for, bao-encoded.
    Blocks { blocks: Blocks, bytes: Vec<u8> },
    /// None of them here (or not for this asker).
    NotHere,
    /// None of them here, but these are (at most `MAX_RANGES_PER_REQUEST` ranges): a
    /// member fetching the same file says what it could give.
    Held { held: Blocks },
    /// Too many requests at once; ask again later.
    Busy,
}

impl BlobReply {
    fn encode(&self) -> Vec<u8> {
        match self {
            BlobReply::Blocks { blocks, bytes } => {
                let mut out = Vec::with_capacity(7 + 16 * blocks.ranges().len() + bytes.len());
                out.push(0);
                out.extend_from_slice(&(blocks.ranges().len() as u16).to_be_bytes());
                for &(a, b) in blocks.ranges() {
                    out.extend_from_slice(&a.to_be_bytes());
                    out.extend_from_slice(&b.to_be_bytes());
                }
                out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                out.extend_from_slice(bytes);
                out
            }
            BlobReply::NotHere => vec![1],
            BlobReply::Busy => vec![2],
            BlobReply::Held { held } => {
                let mut out = Vec::with_capacity(3 + 16 * held.ranges().len());
                out.push(3);
                out.extend_from_slice(&(held.ranges().len() as u16).to_be_bytes());
                for &(a, b) in held.ranges() {
                    out.extend_from_slice(&a.to_be_bytes());
                    out.extend_from_slice(&b.to_be_bytes());
                }
                out
            }
        }
    }

    /// A holder's answer to `request`: the blocks must be among those asked for.
    fn decode(bytes: &[u8], request: &BlobRequest) -> Option<Self> {
        let (&status, rest) = bytes.split_first()?;
        match status {
            1 if rest.is_empty() => return Some(BlobReply::NotHere),
            2 if rest.is_empty() => return Some(BlobReply::Busy),
            3 => {
                // Held: within the blob, none of the blocks asked for (it said it has none
                // of them), never empty.
                let n = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
                let body = rest.get(2..)?;
                if n > MAX_RANGES_PER_REQUEST || body.len() != 16 * n {
                    return None;
                }
                let held = Blocks::from_ranges(
                    decode_ranges(body),
                    crate::files::blobs::blocks(request.blob.ct_len),
                )?;
                let disjoint = held.intersect(&request.blocks).is_empty();
                return (disjoint && !held.is_empty()).then_some(BlobReply::Held { held });
            }
            0 => {}
            _ => return None,
        }
        let n = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
        if n > MAX_RANGES_PER_REQUEST {
            return None;
        }
        let ranges_end = 2 + 16 * n;
        let ranges = decode_ranges(rest.get(2..ranges_end)?);
        let blocks = Blocks::from_ranges(ranges, crate::files::blobs::blocks(request.blob.ct_len))?;
        if blocks.minus(&request.blocks) != Blocks::default() || blocks.is_empty() {
            return None;
        }
        let len = u32::from_be_bytes(rest.get(ranges_end..ranges_end + 4)?.try_into().ok()?);
        let bytes = rest.get(ranges_end + 4..)?;
        (bytes.len() == len as usize).then(|| BlobReply::Blocks {
            blocks,
            bytes: bytes.to_vec(),
        })
    }
}

/// Ranges as written on the wire: pairs of big-endian u64 (`bytes` a multiple of 16).
fn decode_ranges(bytes: &[u8]) -> Vec<(u64, u64)> {
    bytes
        .chunks_exact(16)
        .map(|c| {
            let a = u64::from_be_bytes(c[..8].try_into().unwrap_or_default());
            let b = u64::from_be_bytes(c[8..].try_into().unwrap_or_default());
            (a, b)
        })
        .collect()
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum FetchError {
    /// The connection under the stream closed (the plan dropped it, one of two
    /// connections to the peer was closed, the peer stopped): no fault of the holder's
    /// data, ask again soon. (A stream the holder closed without a word is `Failed`.)
    Closed(String),
    /// No answer in time, an answer over the limit or malformed, another I/O error.
    Failed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Closed(e) | FetchError::Failed(e) => f.write_str(e),
        }
    }
}

fn io_error(e: std::io::Error) -> FetchError {
    use std::io::ErrorKind::*;
    match e.kind() {
        // yamux says WriteZero for a stream whose connection is closed.
        WriteZero | BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof => {
            FetchError::Closed(e.to_string())
        }
        _ => FetchError::Failed(e.to_string()),
    }
}

/// Ask `peer` for `request`'s blocks.
pub async fn fetch(
    mut control: Control,
    peer: PeerId,
    request: &BlobRequest,
) -> Result<BlobReply, FetchError> {
    let work = async {
        let mut stream = control
            .open_stream(peer, BLOB_PROTOCOL)
            .await
            .map_err(|e| match e {
                libp2p_stream::OpenStreamError::Io(e) => io_error(e),
                e => FetchError::Failed(e.to_string()),
            })?;
        stream
            .write_all(&request.encode())
            .await
            .map_err(io_error)?;
        stream.close().await.map_err(io_error)?;
        let mut bytes = Vec::new();
        let read = (&mut stream)
            .take(MAX_RESPONSE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(io_error)?;
        if read > MAX_RESPONSE_BYTES {
            return Err(FetchError::Failed("the answer is over the limit".into()));
        }
        BlobReply::decode(&bytes, request)
            .ok_or_else(|| FetchError::Failed("a malformed answer".into()))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .map_err(|_| FetchError::Failed("no answer in time".into()))?
}

/// A request that passed the stream's checks, for the event loop to decide: `allow`
/// gets which of the blocks to serve (`Nothing` unless the asker shares one of the blob's
/// conversations; of a file sent from here, what its rounds grant).
#[derive(Debug)]
pub struct BlobAsk {
    pub peer: PeerId,
    pub request: BlobRequest,
    pub allow: oneshot::Sender<Grant>,
}

/// Serve `/flurfunk/blob/1` for as long as the node runs: each stream is read, asked
/// about (`asks`), answered from `store` on a blocking thread, and closed.
pub fn spawn_server(
    mut incoming: IncomingStreams,
    asks: mpsc::Sender<BlobAsk>,
    store: Arc<crate::files::BlobStore>,
    served_bytes: Arc<std::sync::atomic::AtomicU64>,
    lie: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let all = Arc::new(Semaphore::new(MAX_SERVING));
        let per_peer: Arc<Mutex<HashMap<PeerId, usize>>> = Arc::default();
        while let Some((peer, mut stream)) = incoming.next().await {
            let Ok(permit) = all.clone().try_acquire_owned() else {
                tokio::spawn(busy(stream));
                continue;
            };
            let admitted = {
                let mut map = per_peer.lock().unwrap_or_else(|e| e.into_inner());
                let n = map.entry(peer).or_insert(0);
                let admitted = *n < MAX_SERVING_PER_PEER;
                if admitted {
                    *n += 1;
                }
                admitted
            };
            if !admitted {
                tokio::spawn(busy(stream));
                continue;
            }
            let (asks, store, per_peer) = (asks.clone(), store.clone(), per_peer.clone());
            let served_bytes = served_bytes.clone();
            let lie = lie.load(std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(async move {
                let served = tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    serve_one(peer, &mut stream, &asks, store, lie),
                )
                .await;
                match served {
                    Ok(Ok(bytes)) => {
                        served_bytes.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "blob request not served"),
                    Err(_) => {}
                }
                let _ = stream.close().await;
                let mut map = per_peer.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(n) = map.get_mut(&peer) {
                    *n -= 1;
                    if *n == 0 {
                        map.remove(&peer);
                    }
                }
                drop(permit);
            });
        }
    })
}

/// Answer "busy" without reading (in a task of its own: the accept loop never waits for
/// a peer).
async fn busy(mut stream: libp2p::swarm::Stream) {
    let _ = tokio::time::timeout(REQUEST_READ_TIMEOUT, async {
        let _ = stream.write_all(&BlobReply::Busy.encode()).await;
        let _ = stream.close().await;
    })
    .await;
}

async fn serve_one(
    peer: PeerId,
    stream: &mut libp2p::swarm::Stream,
    asks: &mpsc::Sender<BlobAsk>,
    store: Arc<crate::files::BlobStore>,
    lie: bool,
) -> Result<u64, String> {
    let mut bytes = Vec::new();
    // A slot is held while the request is read: it must come at once.
    let read = tokio::time::timeout(
        REQUEST_READ_TIMEOUT,
        (&mut *stream)
            .take(MAX_REQUEST_BYTES as u64 + 1)
            .read_to_end(&mut bytes),
    )
    .await
    .map_err(|_| "the request did not come in time".to_string())?
    .map_err(|e| e.to_string())?;
    if read > MAX_REQUEST_BYTES {
        return Err("request over the limit".into());
    }
    let request = BlobRequest::decode(&bytes).ok_or("malformed request")?;
    let (allow, allowed) = oneshot::channel();
    asks.send(BlobAsk {
        peer,
        request: request.clone(),
        allow,
    })
    .await
    .map_err(|_| "the node stops")?;
    let grant = allowed.await.unwrap_or(Grant::Nothing);
    let reply = if let Grant::Serve(granted) = grant {
        tokio::task::spawn_blocking(move || {
            let id = request.blob.id();
            let mut bytes = Vec::new();
            match store.encode(&request.blob, &granted, &mut bytes) {
                Ok(blocks) if !blocks.is_empty() => {
                    // Only a build with the feature `fault-injection` can be told to lie
                    // (`NodeHandle::lie_in_served_blocks`, for tests); the first byte
                    // is the first hash pair or block the asker checks.
                    if cfg!(feature = "fault-injection") && lie {
                        bytes[0] ^= 0x55;
                    }
                    BlobReply::Blocks { blocks, bytes }
                }
                Ok(_) => {
                    // Fetching it too: say what is here, so the asker can come back for it.
                    let held = store
                        .held(&request.blob)
                        .minus(&request.blocks)
                        .take(u64::MAX);
                    if held.is_empty() {
                        BlobReply::NotHere
                    } else {
                        BlobReply::Held { held }
                    }
                }
                Err(e) => {
                    tracing::warn!(blob = %id, error = %e, "a stored file could not be served");
                    BlobReply::NotHere
                }
            }
        })
        .await
        .map_err(|e| e.to_string())?
    } else if let Grant::Offer(held) = grant {
        // The sender's rounds: not those this round, but these.
        BlobReply::Held { held }
    } else {
        BlobReply::NotHere
    };
    let sent = match &reply {
        BlobReply::Blocks { bytes, .. } => bytes.len() as u64,
        _ => 0,
    };
    stream
        .write_all(&reply.encode())
        .await
        .map_err(|e| e.to_string())?;
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_cut_off_with_its_connection_is_told_from_a_failed_answer() {
        use std::io::{Error, ErrorKind};
        // yamux's own words for a stream whose connection closed.
        let closed = Error::new(ErrorKind::WriteZero, "1a2b/5: connection is closed");
        assert!(matches!(io_error(closed), FetchError::Closed(_)));
        assert!(matches!(
            io_error(Error::from(ErrorKind::ConnectionReset)),
            FetchError::Closed(_)
        ));
        assert!(matches!(
            io_error(Error::from(ErrorKind::InvalidData)),
            FetchError::Failed(_)
        ));
    }

    fn request() -> BlobRequest {
        BlobRequest {
            conversation: ConversationId([3; 32]),
            blob: BlobRef {
                hash: [9; 32],
                ct_len: 100 * 16 * 1024,
            },
            blocks: Blocks::from_ranges(vec![(0, 10), (20, 30)], 100).unwrap(),
        }
    }

    #[test]
    fn a_peer_without_the_blocks_may_say_what_it_holds_and_nothing_else() {
        let r = request();
        let held = BlobReply::Held {
            held: Blocks::from_ranges(vec![(10, 20), (40, 100)], 100).unwrap(),
        };
        assert_eq!(BlobReply::decode(&held.encode(), &r), Some(held));
        // Holding a block it said it lacks, nothing at all, only past the end of the blob,
        // more ranges than a request may have, a trailing byte.
        for bad in [
            vec![(5u64, 6u64)],
            vec![],
            vec![(100, 110)],
            (0..33).map(|i| (40 + i, 40 + i + 1)).collect::<Vec<_>>(),
        ] {
            let mut bytes = vec![3];
            bytes.extend_from_slice(&(bad.len() as u16).to_be_bytes());
            for (a, b) in &bad {
                bytes.extend_from_slice(&a.to_be_bytes());
                bytes.extend_from_slice(&b.to_be_bytes());
            }
            assert_eq!(BlobReply::decode(&bytes, &r), None, "{bad:?}");
        }
        let mut bytes = BlobReply::Held {
            held: Blocks::range(50, 60),
        }
        .encode();
        bytes.push(0);
        assert_eq!(BlobReply::decode(&bytes, &r), None);
    }

    #[test]
    fn requests_and_answers_round_trip_and_refuse_what_breaks_the_rules() {
        let r = request();
        assert_eq!(BlobRequest::decode(&r.encode()), Some(r.clone()));
        // Over the block limit, unsorted, empty, a trailing byte, another version.
        let mut big = r.clone();
        big.blocks = Blocks::range(0, MAX_BLOCKS_PER_REQUEST + 1);
        assert_eq!(BlobRequest::decode(&big.encode()), None);
        let mut bytes = r.encode();
        bytes.push(0);
        assert_eq!(BlobRequest::decode(&bytes), None);
        let mut bytes = r.encode();
        bytes[0] = 2;
        assert_eq!(BlobRequest::decode(&bytes), None);
        let mut empty = r.clone();
        empty.blocks = Blocks::default();
        assert_eq!(BlobRequest::decode(&empty.encode()), None);
        let mut bytes = r.encode();
        let n = bytes.len();
        bytes[n - 32..n - 16].copy_from_slice(&[0; 16]); // second range now (0, 0)..
        assert_eq!(BlobRequest::decode(&bytes), None);

        let reply = BlobReply::Blocks {
            blocks: Blocks::range(20, 25),
            bytes: vec![1, 2, 3],
        };
        assert_eq!(BlobReply::decode(&reply.encode(), &r), Some(reply));
        assert_eq!(
            BlobReply::decode(&BlobReply::Busy.encode(), &r),
            Some(BlobReply::Busy)
        );
        // Blocks not asked for, a length that lies.
        let other = BlobReply::Blocks {
            blocks: Blocks::range(12, 14),
            bytes: vec![],
        };
        assert_eq!(BlobReply::decode(&other.encode(), &r), None);
        let mut lying = BlobReply::Blocks {
            blocks: Blocks::range(0, 1),
            bytes: vec![5; 10],
        }
        .encode();
        lying.pop();
        assert_eq!(BlobReply::decode(&lying, &r), None);
    }
}
