//! Attachments: a file encrypted under a key of its own, its ciphertext content-addressed
//! and verified in 16 KiB groups while it streams in.
//!
//! - `seal`: the encryption (STREAM over ChaCha20-Poly1305, one record per 16 KiB of
//!   ciphertext) and the sizes it implies.
//! - `blobs`: the store on disk (ciphertext, its hash tree, the ranges held), outside
//!   sled; import of a local file, verified import of ranges from a peer, ranges served
//!   to peers, decryption to a file the user chose.
//!
//! The rules and their security argument are in `docs/PROTOCOL.md`, "Attachments". What
//! ties a blob to a conversation is the signed, sealed event that announces it
//! (`wire::Attachment`: name, size, hash, key); this module trusts nothing else.

pub mod blobs;
pub mod seal;

use std::fmt;

pub use blobs::{BlobStore, Blocks, Imported, Received};
pub use seal::{FileKey, RECORD_BYTES, RECORD_PLAIN_BYTES, ciphertext_len, records};

/// The hash tree's block: 16 chunks of 1 KiB, one ciphertext record.
pub const BLOCK: bao_tree::BlockSize = bao_tree::BlockSize::from_chunk_log(4);

/// The largest attachment the wire accepts (a sender's own limit is a setting below it).
pub const MAX_FILE_BYTES: u64 = 1 << 40;

/// The default of the sender's limit (a setting).
pub const DEFAULT_SEND_LIMIT_BYTES: u64 = 2 << 30;

/// A blob: the BLAKE3 hash of an attachment's ciphertext (its bao-tree root).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    pub fn hash(&self) -> bao_tree::blake3::Hash {
        bao_tree::blake3::Hash::from_bytes(self.0)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", &self.to_hex()[..16])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the disk is full: {what}")]
    DiskFull { what: String },
    #[error("the file has {size} bytes; the limit is {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("the file changed while it was read")]
    Changed,
    #[error("the data does not match its hash: {0}")]
    Corrupt(String),
    #[error("record {record} does not decrypt (wrong key or damaged)")]
    Decrypt { record: u64 },
    #[error("not all of the file is here yet")]
    Incomplete,
    #[error("no such file here")]
    Missing,
}

impl FileError {
    /// An I/O error in words, a full disk told apart.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        let what = what.into();
        if is_disk_full(&source) {
            FileError::DiskFull { what }
        } else {
            FileError::Io { what, source }
        }
    }
}

fn is_disk_full(e: &std::io::Error) -> bool {
    // ENOSPC on Unix, ERROR_DISK_FULL (112) and ERROR_HANDLE_DISK_FULL (39) on Windows.
    e.kind() == std::io::ErrorKind::StorageFull
        || matches!(e.raw_os_error(), Some(28) if cfg!(unix))
        || matches!(e.raw_os_error(), Some(112 | 39) if cfg!(windows))
}
