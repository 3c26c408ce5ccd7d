//! Attachments on disk, outside sled: per blob its ciphertext (`<hash>.data`, sparse while
//! partial), its hash tree (`<hash>.obao`, bao-tree pre-order outboard) and the blocks
//! held (`<hash>.have`, checksummed, replaced atomically after the data it describes is
//! synced). Plaintext is written only where the user saves a file (`export`).
//!
//! Blocks are the hash tree's 16 KiB groups, one encryption record each; a block counts
//! as held only once verified against the blob's hash, so a partial blob is served to
//! others as safely as a whole one.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Cursor, Write};
use std::path::{Path, PathBuf};

use bao_tree::io::outboard::PreOrderOutboard;
use bao_tree::io::sync::{DecodeResponseIter, OutboardMut, WriteAt, encode_ranges_validated};
use bao_tree::io::{BaoContentItem, Leaf, Parent};
use bao_tree::{BaoTree, ChunkNum, ChunkRanges, blake3};

use super::seal::{self, FileKey, RECORD_BYTES};
use super::{BLOCK, BlobRef, FileError};

/// Ranges one request or answer lists at most (`net::blob`).
pub const MAX_RANGES: usize = 32;

/// Chunks (1 KiB) per block.
const CHUNKS_PER_BLOCK: u64 = (RECORD_BYTES / 1024) as u64;
const HAVE_MAGIC: &[u8; 8] = b"FFHAVE1\n";

/// Blocks of a blob of `ct_len` ciphertext bytes.
pub fn blocks(ct_len: u64) -> u64 {
    ct_len.div_ceil(RECORD_BYTES as u64).max(1)
}

/// Sorted, disjoint, non-empty ranges of block numbers (`start..end`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blocks(Vec<(u64, u64)>);

impl Blocks {
    pub fn all(n: u64) -> Self {
        Blocks(if n == 0 { vec![] } else { vec![(0, n)] })
    }

    pub fn range(start: u64, end: u64) -> Self {
        Blocks(if start < end {
            vec![(start, end)]
        } else {
            vec![]
        })
    }

    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn count(&self) -> u64 {
        self.0.iter().map(|(a, b)| b - a).sum()
    }

    pub fn contains(&self, block: u64) -> bool {
        self.0.iter().any(|&(a, b)| a <= block && block < b)
    }

    /// Ranges from a peer: sorted and disjoint checked, clipped to `n` blocks.
    pub fn from_ranges(ranges: Vec<(u64, u64)>, n: u64) -> Option<Self> {
        let mut last_end = 0;
        let mut out = Vec::with_capacity(ranges.len());
        for (i, &(a, b)) in ranges.iter().enumerate() {
            if a >= b || (i > 0 && a <= last_end) {
                return None;
            }
            last_end = b;
            if a < n {
                out.push((a, b.min(n)));
            }
        }
        Some(Blocks(out))
    }

    pub fn union(&self, other: &Blocks) -> Blocks {
        let mut all: Vec<(u64, u64)> = self.0.iter().chain(&other.0).copied().collect();
        all.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(all.len());
        for (a, b) in all {
            match out.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        Blocks(out)
    }

    pub fn intersect(&self, other: &Blocks) -> Blocks {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            let (start, end) = (a.0.max(b.0), a.1.min(b.1));
            if start < end {
                out.push((start, end));
            }
            if a.1 < b.1 { i += 1 } else { j += 1 }
        }
        Blocks(out)
    }

    /// These blocks without `other`'s, in one pass over both (sorted, disjoint) lists.
    pub fn minus(&self, other: &Blocks) -> Blocks {
        let mut out = Vec::new();
        let mut j = 0;
        for &(a, b) in &self.0 {
            let mut start = a;
            // Ranges of `other` that end before this one starts end before every later one.
            while j < other.0.len() && other.0[j].1 <= start {
                j += 1;
            }
            let mut k = j;
            while k < other.0.len() && other.0[k].0 < b {
                let (c, d) = other.0[k];
                if c > start {
                    out.push((start, c));
                }
                start = start.max(d);
                if d >= b {
                    // It may cover the next range too: looked at again from there.
                    break;
                }
                k += 1;
            }
            if start < b {
                out.push((start, b));
            }
        }
        Blocks(out)
    }

    /// The first `max` blocks of these ranges, in at most `MAX_RANGES` ranges.
    pub fn take(&self, max: u64) -> Blocks {
        let mut left = max;
        let mut out = Vec::new();
        for &(a, b) in &self.0 {
            if left == 0 || out.len() == MAX_RANGES {
                break;
            }
            let end = b.min(a.saturating_add(left));
            out.push((a, end));
            left -= end - a;
        }
        Blocks(out)
    }

    /// At most `max` blocks of this set from the first one at or after `from` on, wrapping
    /// round to the start (in at most `MAX_RANGES` ranges). Downloaders of one file start
    /// at different places, so that they soon hold blocks to give each other.
    pub fn take_from(&self, from: u64, max: u64) -> Blocks {
        let after = self.minus(&Blocks::range(0, from));
        let first = after.take(max);
        let left = max - first.count();
        if left == 0 {
            return first;
        }
        let wrapped = first.union(&self.minus(&after).take(left));
        if wrapped.0.len() > MAX_RANGES {
            first
        } else {
            wrapped
        }
    }

    /// The same blocks as chunk ranges of a blob of `ct_len` bytes (the last block runs
    /// to the end, so its size proof is included).
    pub fn to_chunks(&self, ct_len: u64) -> ChunkRanges {
        let n = blocks(ct_len);
        let mut out = ChunkRanges::empty();
        for &(a, b) in &self.0 {
            let start = ChunkNum(a * CHUNKS_PER_BLOCK);
            out |= if b >= n {
                ChunkRanges::from(start..)
            } else {
                ChunkRanges::from(start..ChunkNum(b * CHUNKS_PER_BLOCK))
            };
        }
        out
    }
}

/// What `receive` took from a peer's response.
#[derive(Debug, Default)]
pub struct Received {
    /// Blocks verified and written now.
    pub added: Blocks,
    /// All blocks are here.
    pub complete: bool,
    /// Why the rest of the response was refused (bad hash, cut short, extra bytes).
    pub refused: Option<String>,
}

/// The blobs of one node, in one directory. Shared by the node's tasks: each method
/// does its own file I/O; records that are read, changed and written back (blocks held,
/// conversations) are changed under one lock.
pub struct BlobStore {
    dir: PathBuf,
    records: std::sync::Mutex<()>,
    /// Blobs found damaged on disk since the node last looked (`take_damaged`).
    damaged: std::sync::Mutex<Vec<(BlobRef, bool)>>,
}

/// Conversations a blob is recorded under at most (a blob forwarded into more is served
/// for the first ones).
pub const MAX_BLOB_CONVERSATIONS: usize = 16;
const WANT_MAGIC: &[u8; 8] = b"FFWANT1\n";

/// Damaged blobs told at most between two looks of the node (more are found again when
/// next served or opened).
const MAX_DAMAGED_TOLD: usize = 1_024;

/// Others' files used more recently than this are not evicted for the quota.
pub const EVICT_IDLE: std::time::Duration = std::time::Duration::from_secs(3600);

/// A blob on disk (`BlobStore::stored`).
#[derive(Clone, Debug)]
pub struct Stored {
    pub blob: BlobRef,
    /// Bytes of ciphertext on disk.
    pub bytes: u64,
    /// Sent from here.
    pub own: bool,
    /// Still being fetched (a wish is recorded).
    pub wanted: bool,
    /// Last written, opened, saved or shown.
    pub used: std::time::SystemTime,
}

/// A local file taken in (`BlobStore::import`).
#[derive(Debug)]
pub struct Imported {
    pub blob: BlobRef,
    pub key: FileKey,
    pub plain_len: u64,
}

impl BlobStore {
    /// Open (and create) the store in `dir`; leftovers of interrupted imports are removed.
    pub fn open(dir: &Path) -> Result<Self, FileError> {
        let tmp = dir.join("tmp");
        if tmp.exists() {
            let _ = fs::remove_dir_all(&tmp);
        }
        fs::create_dir_all(&tmp)
            .map_err(|e| FileError::io(format!("creating {}", tmp.display()), e))?;
        Ok(BlobStore {
            dir: dir.to_path_buf(),
            records: std::sync::Mutex::new(()),
            damaged: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// A blob's files are named by its hash *and* length: an announcement of a known
    /// hash with another length (which verifies block by block up to the last one) is
    /// another blob here and cannot touch the real one.
    fn path(&self, blob: &BlobRef, ext: &str) -> PathBuf {
        self.dir
            .join(format!("{}-{}.{ext}", hex::encode(blob.hash), blob.ct_len))
    }

    fn temp_path(&self, what: &str) -> PathBuf {
        self.dir
            .join("tmp")
            .join(format!("{what}-{:016x}", rand::random::<u64>()))
    }

    /// Encrypt the file at `source` under a fresh key into the store.
    pub fn import(&self, source: &Path, limit: u64) -> Result<Imported, FileError> {
        let file = File::open(source)
            .map_err(|e| FileError::io(format!("opening {}", source.display()), e))?;
        let meta = file
            .metadata()
            .map_err(|e| FileError::io(format!("reading {}", source.display()), e))?;
        if !meta.is_file() {
            return Err(FileError::Io {
                what: format!("{} is not a file", source.display()),
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            });
        }
        self.import_from(BufReader::new(file), meta.len(), limit)
    }

    /// Encrypt `bytes` (a picture pasted, a file read whole) under a fresh key.
    pub fn import_bytes(&self, bytes: &[u8], limit: u64) -> Result<Imported, FileError> {
        self.import_from(bytes, bytes.len() as u64, limit)
    }

    /// Encrypt exactly `plain_len` bytes from `source` into the store.
    fn import_from(
        &self,
        source: impl std::io::Read,
        plain_len: u64,
        limit: u64,
    ) -> Result<Imported, FileError> {
        if plain_len > limit.min(super::MAX_FILE_BYTES) {
            return Err(FileError::TooLarge {
                size: plain_len,
                limit: limit.min(super::MAX_FILE_BYTES),
            });
        }
        let ct_len = seal::ciphertext_len(plain_len).ok_or(FileError::TooLarge {
            size: plain_len,
            limit,
        })?;
        let key = FileKey::generate();
        let data_tmp = self.temp_path("data");
        let obao_tmp = self.temp_path("obao");
        let result = (|| {
            let mut out = BufWriter::with_capacity(
                256 * 1024,
                create(&data_tmp, "creating the encrypted file")?,
            );
            seal::encrypt(&key, source, plain_len, &mut out)?;
            let data = out
                .into_inner()
                .map_err(|e| FileError::io("writing the encrypted file", e.into_error()))?;
            sync(&data, "saving the encrypted file")?;
            let tree = BaoTree::new(ct_len, BLOCK);
            let mut outboard = PreOrderOutboard {
                root: blake3::hash(&[]),
                tree,
                data: create(&obao_tmp, "creating the hash tree")?,
            };
            let reader = BufReader::with_capacity(
                256 * 1024,
                File::open(&data_tmp).map_err(|e| FileError::io("reading back", e))?,
            );
            let root = bao_tree::io::sync::outboard(reader, tree, &mut outboard)
                .map_err(|e| FileError::io("hashing the encrypted file", e))?;
            sync(&outboard.data, "saving the hash tree")?;
            Ok::<_, FileError>(BlobRef {
                hash: *root.as_bytes(),
                ct_len,
            })
        })();
        let blob = match result {
            Ok(blob) => blob,
            Err(e) => {
                let _ = fs::remove_file(&data_tmp);
                let _ = fs::remove_file(&obao_tmp);
                return Err(e);
            }
        };
        fs::rename(&data_tmp, self.path(&blob, "data"))
            .map_err(|e| FileError::io("storing the encrypted file", e))?;
        fs::rename(&obao_tmp, self.path(&blob, "obao"))
            .map_err(|e| FileError::io("storing the hash tree", e))?;
        self.write_have(&blob, &Blocks::all(blob.blocks()))?;
        // Sent from here: never evicted for the quota.
        let _ = create(
            &self.path(&blob, "own"),
            "marking the file as sent from here",
        );
        Ok(Imported {
            blob,
            key,
            plain_len,
        })
    }

    /// The blocks of blob `id` (of `ct_len` bytes) held and verified here.
    pub fn held(&self, blob: &BlobRef) -> Blocks {
        let Ok(bytes) = fs::read(self.path(blob, "have")) else {
            return Blocks::default();
        };
        parse_have(&bytes, blob.ct_len).unwrap_or_default()
    }

    pub fn is_complete(&self, blob: &BlobRef) -> bool {
        self.held(blob) == Blocks::all(blob.blocks())
    }

    /// The response to a peer asking for `wanted` blocks: the blocks of those held here,
    /// and their bao encoding (verified against the hash tree as it is read).
    pub fn encode(
        &self,
        blob: &BlobRef,
        wanted: &Blocks,
        out: &mut Vec<u8>,
    ) -> Result<Blocks, FileError> {
        let served = self.held(blob).intersect(wanted).take(u64::MAX);
        if served.is_empty() {
            return Ok(served);
        }
        let data = File::open(self.path(blob, "data")).map_err(|_| FileError::Missing)?;
        let outboard = PreOrderOutboard {
            root: blob.id().hash(),
            tree: BaoTree::new(blob.ct_len, BLOCK),
            data: File::open(self.path(blob, "obao")).map_err(|_| FileError::Missing)?,
        };
        if let Err(e) =
            encode_ranges_validated(&data, &outboard, &served.to_chunks(blob.ct_len), out)
        {
            // The copy here is damaged: those blocks are no longer held or served. Only
            // the blocks asked for are checked (a request costs at most 1 MiB of reading).
            let dropped = self
                .drop_damaged(blob, &served)
                .map(|bad| bad.count())
                .unwrap_or(0);
            return Err(FileError::Corrupt(format!(
                "serving {:?}: {e} ({dropped} damaged blocks dropped, to be fetched again)",
                blob.id()
            )));
        }
        Ok(served)
    }

    /// Check the blocks of `within` held of `blob` against its hash. Those that fail (the
    /// disk damaged them, or someone edited the file) are held no longer: never served,
    /// and fetched again by the node (`take_damaged`). Returns them.
    pub fn drop_damaged(&self, blob: &BlobRef, within: &Blocks) -> Result<Blocks, FileError> {
        const GROUP: u64 = 64;
        let held = self.held(blob).intersect(within);
        let data = File::open(self.path(blob, "data")).map_err(|_| FileError::Missing)?;
        let outboard = PreOrderOutboard {
            root: blob.id().hash(),
            tree: BaoTree::new(blob.ct_len, BLOCK),
            data: File::open(self.path(blob, "obao")).map_err(|_| FileError::Missing)?,
        };
        let sound = |blocks: &Blocks, sink: &mut Vec<u8>| {
            sink.clear();
            encode_ranges_validated(&data, &outboard, &blocks.to_chunks(blob.ct_len), sink).is_ok()
        };
        let mut sink = Vec::new();
        let mut bad = Vec::new();
        for &(a, b) in held.ranges() {
            for start in (a..b).step_by(GROUP as usize) {
                let end = (start + GROUP).min(b);
                if !sound(&Blocks::range(start, end), &mut sink) {
                    bad.extend(
                        (start..end).filter(|&i| !sound(&Blocks::range(i, i + 1), &mut sink)),
                    );
                }
            }
        }
        let bad = bad.into_iter().fold(Blocks::default(), |all, i| {
            all.union(&Blocks::range(i, i + 1))
        });
        if !bad.is_empty() {
            let _records = self.records.lock().unwrap_or_else(|e| e.into_inner());
            let before = self.held(blob);
            let complete = before == Blocks::all(blob.blocks());
            self.write_have(blob, &before.minus(&bad))?;
            let mut damaged = self.damaged.lock().unwrap_or_else(|e| e.into_inner());
            if damaged.len() < MAX_DAMAGED_TOLD {
                damaged.push((*blob, complete));
            }
        }
        Ok(bad)
    }

    /// Blobs found damaged (`drop_damaged`) since the last call, and whether each was
    /// whole here before.
    pub fn take_damaged(&self) -> Vec<(BlobRef, bool)> {
        std::mem::take(&mut *self.damaged.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A decryption failed: if the copy here is damaged, say so (its blocks are dropped
    /// and fetched again); otherwise the key does not fit. The record that failed is
    /// checked first: if it is sound the key is wrong, and nothing more is read.
    fn damaged_or(&self, blob: &BlobRef, e: FileError) -> FileError {
        let FileError::Decrypt { record } = e else {
            return e;
        };
        let first = Blocks::range(record, record + 1);
        let bad = match self.drop_damaged(blob, &first) {
            Ok(bad) if !bad.is_empty() => self
                .drop_damaged(blob, &Blocks::all(blob.blocks()))
                .map(|more| bad.union(&more)),
            other => other,
        };
        match bad {
            Ok(bad) if !bad.is_empty() => FileError::Corrupt(format!(
                "{} blocks of the copy here are damaged; they are fetched again",
                bad.count()
            )),
            _ => e,
        }
    }

    /// Take in a peer's `response` for `blocks` of blob `id`: every block is verified
    /// against the hash before it is written; what verified stays, whatever follows.
    pub fn receive(
        &self,
        blob: &BlobRef,
        blocks_sent: &Blocks,
        response: &[u8],
    ) -> Result<Received, FileError> {
        let (id, ct_len) = (blob.id(), blob.ct_len);
        let n = blob.blocks();
        let tree = BaoTree::new(ct_len, BLOCK);
        let mut data = open_rw(&self.path(blob, "data"))?;
        let mut outboard = PreOrderOutboard {
            root: id.hash(),
            tree,
            data: open_rw(&self.path(blob, "obao"))?,
        };
        let chunks = blocks_sent.to_chunks(ct_len);
        let mut reader = Cursor::new(response);
        let mut added = Blocks::default();
        let mut refused = None;
        for item in DecodeResponseIter::new(id.hash(), tree, &mut reader, &chunks) {
            match item {
                Ok(BaoContentItem::Parent(Parent { node, pair })) => outboard
                    .save(node, &pair)
                    .map_err(|e| FileError::io("saving the hash tree", e))?,
                Ok(BaoContentItem::Leaf(Leaf {
                    offset,
                    data: bytes,
                })) => {
                    data.write_all_at(offset, &bytes)
                        .map_err(|e| FileError::io("saving a received block", e))?;
                    let whole = offset % RECORD_BYTES as u64 == 0
                        && (bytes.len() == RECORD_BYTES || offset + bytes.len() as u64 == ct_len);
                    if whole {
                        let block = offset / RECORD_BYTES as u64;
                        added = added.union(&Blocks::range(block, block + 1));
                    }
                }
                Err(e) => {
                    refused = Some(e.to_string());
                    break;
                }
            }
        }
        if refused.is_none() && reader.position() != response.len() as u64 {
            refused = Some("extra bytes after the blocks".into());
        }
        if !added.is_empty() {
            sync(&data, "saving received blocks")?;
            sync(&outboard.data, "saving the hash tree")?;
        }
        let _records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let held = self.held(blob).union(&added);
        if !added.is_empty() {
            self.write_have(blob, &held)?;
        }
        Ok(Received {
            added,
            complete: held == Blocks::all(n),
            refused,
        })
    }

    /// Decrypt a whole blob into `dest` (written beside it first, then renamed).
    pub fn export(
        &self,
        blob: &BlobRef,
        plain_len: u64,
        key: &FileKey,
        dest: &Path,
    ) -> Result<(), FileError> {
        if seal::ciphertext_len(plain_len) != Some(blob.ct_len) {
            return Err(FileError::Missing);
        }
        if !self.is_complete(blob) {
            return Err(FileError::Incomplete);
        }
        let source = File::open(self.path(blob, "data")).map_err(|_| FileError::Missing)?;
        self.touch(blob);
        let parent = dest.parent().unwrap_or(Path::new("."));
        let tmp = parent.join(format!(
            ".{}.flurfunk-{:08x}.part",
            dest.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
            rand::random::<u32>()
        ));
        let result = (|| {
            // A new file: never one that is there (or a link someone placed there).
            let part = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(|e| FileError::io("creating the file", e))?;
            let mut out = BufWriter::with_capacity(256 * 1024, part);
            seal::decrypt(key, plain_len, BufReader::new(source), &mut out)
                .map_err(|e| self.damaged_or(blob, e))?;
            let file = out
                .into_inner()
                .map_err(|e| FileError::io("writing the file", e.into_error()))?;
            sync(&file, "saving the file")?;
            drop(file);
            place_new(&tmp, dest)?;
            mark_from_elsewhere(dest);
            Ok(())
        })();
        let _ = fs::remove_file(&tmp);
        result
    }

    /// Decrypt a whole blob of at most `max` bytes of plaintext into memory (a picture
    /// to show).
    pub fn read_plain(
        &self,
        blob: &BlobRef,
        plain_len: u64,
        key: &FileKey,
        max: u64,
    ) -> Result<Vec<u8>, FileError> {
        if plain_len > max {
            return Err(FileError::TooLarge {
                size: plain_len,
                limit: max,
            });
        }
        if seal::ciphertext_len(plain_len) != Some(blob.ct_len) {
            return Err(FileError::Missing);
        }
        if !self.is_complete(blob) {
            return Err(FileError::Incomplete);
        }
        let source = File::open(self.path(blob, "data")).map_err(|_| FileError::Missing)?;
        self.touch(blob);
        let mut plain = Vec::with_capacity(plain_len as usize);
        seal::decrypt(key, plain_len, BufReader::new(source), &mut plain)
            .map_err(|e| self.damaged_or(blob, e))?;
        Ok(plain)
    }

    /// Forget blob `id` (its data, hash tree and records).
    pub fn remove(&self, blob: &BlobRef) {
        for ext in ["have", "want", "conv", "data", "obao", "own"] {
            let _ = fs::remove_file(self.path(blob, ext));
        }
    }

    /// The user looked at blob `id` (opened, saved, shown): it is evicted last.
    fn touch(&self, blob: &BlobRef) {
        if let Ok(file) = OpenOptions::new().write(true).open(self.path(blob, "data")) {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
    }

    /// Every blob with data here: its size on disk, whether it was sent from here or is
    /// being fetched, and when it was last used.
    pub fn stored(&self) -> Vec<Stored> {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some((hex_id, len)) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".data"))
                .and_then(|n| n.split_once('-'))
            else {
                continue;
            };
            let mut hash = [0u8; 32];
            let (Ok(()), Ok(ct_len)) = (hex::decode_to_slice(hex_id, &mut hash), len.parse())
            else {
                continue;
            };
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            let blob = BlobRef { hash, ct_len };
            out.push(Stored {
                blob,
                bytes: meta.len(),
                own: self.path(&blob, "own").exists(),
                wanted: self.path(&blob, "want").exists(),
                used: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
            });
        }
        out
    }

    /// Keep the files here within `quota` bytes: while over it, remove the least recently
    /// used whole blobs fetched from others until a tenth of the quota is free again.
    /// Never one sent from here, one partly here or being fetched, one in `keep`, or one
    /// used in the last hour (just fetched or opened: not removed under the user's hands,
    /// and no fetch can still be writing to it). Returns what was removed.
    pub fn evict(&self, quota: u64, keep: &std::collections::HashSet<BlobRef>) -> Vec<BlobRef> {
        let stored = self.stored();
        let mut total: u64 = stored.iter().map(|s| s.bytes).sum();
        if total <= quota {
            return Vec::new();
        }
        let target = quota - quota / 10;
        let mut candidates: Vec<Stored> = stored
            .into_iter()
            .filter(|s| {
                !s.own
                    && !s.wanted
                    && !keep.contains(&s.blob)
                    && s.used.elapsed().is_ok_and(|idle| idle >= EVICT_IDLE)
            })
            .collect();
        candidates.sort_by_key(|s| s.used);
        let mut removed = Vec::new();
        for c in candidates {
            if total <= target {
                break;
            }
            // Checked again under the records' lock: a wish recorded since, or blocks
            // being received, keep it.
            let _records = self.records.lock().unwrap_or_else(|e| e.into_inner());
            if self.path(&c.blob, "want").exists() || !self.is_complete(&c.blob) {
                continue;
            }
            self.remove(&c.blob);
            total = total.saturating_sub(c.bytes);
            removed.push(c.blob);
        }
        removed
    }

    /// Record that blob `id` belongs to conversation `conv` (it is served only to peers
    /// that share one of its conversations).
    pub fn note_conversation(&self, blob: &BlobRef, conv: [u8; 32]) -> Result<(), FileError> {
        let _records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let mut convs = self.conversations(blob);
        if convs.contains(&conv) || convs.len() >= MAX_BLOB_CONVERSATIONS {
            return Ok(());
        }
        convs.push(conv);
        let mut bytes = convs.concat();
        bytes.extend_from_slice(blake3::hash(&bytes).as_bytes());
        self.replace(
            &self.path(blob, "conv"),
            &bytes,
            "recording the file's conversation",
        )
    }

    /// The conversations blob `id` is recorded under.
    pub fn conversations(&self, blob: &BlobRef) -> Vec<[u8; 32]> {
        let Ok(bytes) = fs::read(self.path(blob, "conv")) else {
            return Vec::new();
        };
        let Some((body, sum)) = bytes.split_at_checked(bytes.len().saturating_sub(32)) else {
            return Vec::new();
        };
        if body.len() % 32 != 0 || blake3::hash(body).as_bytes() != sum {
            return Vec::new();
        }
        body.chunks_exact(32)
            .take(MAX_BLOB_CONVERSATIONS)
            .filter_map(|c| c.try_into().ok())
            .collect()
    }

    /// Record the wish to fetch blob `id` of `ct_len` bytes for `conv`, so it survives a
    /// restart (`wanted`).
    pub fn want(&self, blob: &BlobRef, conv: [u8; 32]) -> Result<(), FileError> {
        self.note_conversation(blob, conv)?;
        let mut bytes = WANT_MAGIC.to_vec();
        bytes.extend_from_slice(&conv);
        bytes.extend_from_slice(&blob.ct_len.to_be_bytes());
        bytes.extend_from_slice(blake3::hash(&bytes).as_bytes());
        self.replace(&self.path(blob, "want"), &bytes, "recording the download")
    }

    /// The wish to fetch blob `id` is done (or dropped).
    pub fn unwant(&self, blob: &BlobRef) {
        let _ = fs::remove_file(self.path(blob, "want"));
    }

    /// Every recorded wish to fetch: blob, conversation, and when it last moved (ms since
    /// 1970: the newer of the wish's and the blocks' records), so that giving up after
    /// long without progress is not put off by restarts.
    pub fn wanted(&self) -> Vec<(BlobRef, [u8; 32], u64)> {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some((hex_id, _len)) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".want"))
                .and_then(|n| n.split_once('-'))
            else {
                continue;
            };
            let mut hash = [0u8; 32];
            if hex::decode_to_slice(hex_id, &mut hash).is_err() {
                continue;
            }
            let Ok(bytes) = fs::read(entry.path()) else {
                continue;
            };
            if bytes.len() != 8 + 32 + 8 + 32 || !bytes.starts_with(WANT_MAGIC) {
                continue;
            }
            let (body, sum) = bytes.split_at(48);
            if blake3::hash(body).as_bytes() != sum {
                continue;
            }
            let conv: [u8; 32] = body[8..40].try_into().unwrap_or_default();
            let ct_len = u64::from_be_bytes(body[40..48].try_into().unwrap_or_default());
            let blob = BlobRef { hash, ct_len };
            if entry.path() == self.path(&blob, "want") {
                let modified = |ext| {
                    fs::metadata(self.path(&blob, ext))
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_millis() as u64)
                };
                out.push((blob, conv, modified("want").max(modified("have"))));
            }
        }
        out.sort_unstable_by_key(|(blob, ..)| *blob);
        out
    }

    /// Write `bytes` to `path` as a whole: beside it, synced, then renamed over it.
    fn replace(&self, path: &Path, bytes: &[u8], what: &str) -> Result<(), FileError> {
        let tmp = self.temp_path("record");
        let result = (|| {
            let mut file = create(&tmp, what)?;
            file.write_all(bytes).map_err(|e| FileError::io(what, e))?;
            sync(&file, what)?;
            fs::rename(&tmp, path).map_err(|e| FileError::io(what, e))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_have(&self, blob: &BlobRef, held: &Blocks) -> Result<(), FileError> {
        let mut bytes = Vec::with_capacity(52 + 16 * held.0.len());
        bytes.extend_from_slice(HAVE_MAGIC);
        bytes.extend_from_slice(&blob.ct_len.to_be_bytes());
        bytes.extend_from_slice(&(held.0.len() as u64).to_be_bytes());
        for &(a, b) in &held.0 {
            bytes.extend_from_slice(&a.to_be_bytes());
            bytes.extend_from_slice(&b.to_be_bytes());
        }
        let sum = blake3::hash(&bytes);
        bytes.extend_from_slice(sum.as_bytes());
        self.replace(
            &self.path(blob, "have"),
            &bytes,
            "recording the blocks held",
        )
    }
}

/// A `.have` record; `None` if damaged or for another size (the blocks are fetched again).
fn parse_have(bytes: &[u8], ct_len: u64) -> Option<Blocks> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let mut r = body.strip_prefix(HAVE_MAGIC)?;
    let mut u64_at = || -> Option<u64> {
        let (head, rest) = r.split_first_chunk::<8>()?;
        r = rest;
        Some(u64::from_be_bytes(*head))
    };
    if u64_at()? != ct_len {
        return None;
    }
    let count = u64_at()?;
    // As many ranges as the bytes hold, never more than the count the file claims.
    if count > blocks(ct_len) || count.checked_mul(16)? != (body.len() - 24) as u64 {
        return None;
    }
    let mut ranges = Vec::with_capacity(count as usize);
    for _ in 0..count {
        ranges.push((u64_at()?, u64_at()?));
    }
    Blocks::from_ranges(ranges, blocks(ct_len))
}

/// Put the finished file `tmp` at `dest`, never over a file there: a hard link fails if
/// `dest` exists; where links are not supported (FAT), a rename if `dest` is still free.
fn place_new(tmp: &Path, dest: &Path) -> Result<(), FileError> {
    let exists = || FileError::Io {
        what: format!("{} exists already", dest.display()),
        source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
    };
    match fs::hard_link(tmp, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists()),
        Err(_) if dest.symlink_metadata().is_ok() => Err(exists()),
        Err(_) => fs::rename(tmp, dest)
            .map_err(|e| FileError::io(format!("saving {}", dest.display()), e)),
    }
}

/// On Windows, mark a saved file as coming from another computer (the "Mark of the Web",
/// zone 3), so SmartScreen and Office's Protected View treat it as a download.
fn mark_from_elsewhere(path: &Path) {
    if cfg!(windows) {
        let mut stream = path.as_os_str().to_os_string();
        stream.push(":Zone.Identifier");
        let _ = fs::write(stream, "[ZoneTransfer]\r\nZoneId=3\r\n");
    }
}

fn create(path: &Path, what: &str) -> Result<File, FileError> {
    File::create(path).map_err(|e| FileError::io(what, e))
}

fn open_rw(path: &Path) -> Result<File, FileError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| FileError::io(format!("opening {}", path.display()), e))
}

fn sync(file: &File, what: &str) -> Result<(), FileError> {
    file.sync_data().map_err(|e| FileError::io(what, e))
}

#[cfg(test)]
mod tests;
