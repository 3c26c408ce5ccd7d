//! Attachments: a file encrypted under a key of its own, its ciphertext content-addressed
//! and verified in 16 KiB groups while it streams in.
//!
//! - `seal`: the encryption (STREAM over ChaCha20-Poly1305, one record per 16 KiB of
//!   ciphertext) and the sizes it implies.
//! - `blobs`: the store on disk (ciphertext, its hash tree, the ranges held), outside
//!   sled; import of a local file, verified import of ranges from a peer, ranges served
//!   to peers, decryption to a file the user chose.
//! - `schedule`: whom a downloader asks for which blocks, and what an answer changes
//!   (pure, shared by the node and the file swarm simulator).
//!
//! The rules and their security argument are in `docs/PROTOCOL.md`, "Attachments". What
//! ties a blob to a conversation is the signed, sealed event that announces it
//! (`wire::Attachment`: name, size, hash, key); this module trusts nothing else.

pub mod blobs;
pub mod picture;
pub mod schedule;
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

/// The public part of a text event that carries a file: which blob, of what size. Public
/// so that relays, which cannot decrypt, can fetch, verify and serve it; the name, type,
/// key and thumbnail are sealed (`Attachment`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobRef {
    /// BLAKE3 (bao-tree) hash of the ciphertext.
    pub hash: [u8; 32],
    /// Bytes of ciphertext.
    pub ct_len: u64,
}

impl BlobRef {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(41);
        out.push(1);
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&self.ct_len.to_be_bytes());
        out
    }

    /// `None` for anything but a well-formed reference within the size limit; a text
    /// event's public part is not checked for validity (older nodes do not read it), so
    /// a bad one only means no attachment is shown.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (&1, rest) = bytes.split_first()? else {
            return None;
        };
        let (hash, len) = rest.split_first_chunk::<32>()?;
        let ct_len = u64::from_be_bytes(len.try_into().ok()?);
        let max = ciphertext_len(MAX_FILE_BYTES)?;
        (ct_len <= max).then_some(BlobRef {
            hash: *hash,
            ct_len,
        })
    }
}

impl BlobRef {
    /// The blob's id (its hash) for display and logs.
    pub fn id(&self) -> BlobId {
        BlobId(self.hash)
    }

    pub fn blocks(&self) -> u64 {
        blobs::blocks(self.ct_len)
    }
}

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
    #[error("the file is {}; files of at most {} are sent", human_size(*size), human_size(*limit))]
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
    #[error("too many files are being fetched; try again when some are done")]
    TooManyDownloads,
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
    // ENOSPC on Unix (with EDQUOT, a user's quota, and EFBIG, a file system's largest
    // file, e.g. FAT32: no fault of a peer either), ERROR_DISK_FULL (112) and
    // ERROR_HANDLE_DISK_FULL (39) on Windows.
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || e.kind() == std::io::ErrorKind::FileTooLarge
        || matches!(e.raw_os_error(), Some(28 | 27 | 122) if cfg!(unix))
        || matches!(e.raw_os_error(), Some(112 | 39) if cfg!(windows))
}

/// `name` cut to at most `max` bytes at a character boundary, keeping its extension.
pub fn shorten_name(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let ext = name
        .rfind('.')
        .map(|i| &name[i..])
        .filter(|e| e.len() <= 16)
        .unwrap_or("");
    let mut end = max.saturating_sub(ext.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ext}", &name[..end])
}

/// A size in words people read: "98 KB", "38.1 MB".
pub fn human_size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.0} KB", b as f64 / 1024.0),
        b if b < 1024 * 1024 * 1024 => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
        b => format!("{:.2} GB", b as f64 / (1024.0 * 1024.0 * 1024.0)),
    }
}

/// A size as people write it, counted as `human_size` shows it (1 KB = 1024 bytes, as
/// Windows does): "0", "800", "500 KB", "25MB", "25 MiB", "2.5G", "4 GiB".
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 25MB, 4GB)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("unknown unit {other:?} (B, KB, MB, GB or TB)")),
    };
    let bytes = number * factor as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(bytes as u64)
}

/// A media type from a file name's extension (what the sender's side says; receivers
/// never open a file by it).
pub fn guess_mime(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "odt" => "application/vnd.oasis.opendocument.text",
        "ods" => "application/vnd.oasis.opendocument.spreadsheet",
        "zip" => "application/zip",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

/// Whether a file of this name may be opened without a warning: only documents,
/// pictures and media of the kinds offices exchange; everything else (programs, scripts,
/// shortcuts, installers, web pages, documents with macros, anything unknown) gets one.
/// Decided on the name made safe, as the file is written under it.
pub fn is_program_name(name: &str) -> bool {
    let safe = safe_file_name(name);
    let ext = safe
        .rsplit_once('.')
        .map(|(_, e)| e.trim_end_matches([' ', '.']).to_ascii_lowercase())
        .unwrap_or_default();
    !matches!(
        ext.as_str(),
        "pdf"
            | "txt"
            | "csv"
            | "docx"
            | "xlsx"
            | "pptx"
            | "odt"
            | "ods"
            | "odp"
            | "rtf"
            | "jpg"
            | "jpeg"
            | "png"
            | "gif"
            | "webp"
            | "bmp"
            | "tif"
            | "tiff"
            | "heic"
            | "mp3"
            | "m4a"
            | "wav"
            | "ogg"
            | "mp4"
            | "mov"
            | "m4v"
            | "webm"
            | "zip"
    )
}

/// A sender's file name made safe to name a file here: no directories, no control or
/// reserved characters, no Windows device names, never empty or hidden.
pub fn safe_file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| !is_invisible(*c))
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    let trimmed = cleaned
        .trim()
        .trim_start_matches('.')
        .trim_end_matches(['.', ' ']);
    // Windows maps "CON.txt" and "CON .txt" alike to the device.
    let stem = trimmed
        .split('.')
        .next()
        .unwrap_or("")
        .trim_end()
        .to_uppercase();
    let numbered = |prefix: &str| {
        stem.strip_prefix(prefix).is_some_and(|n| {
            matches!(
                n,
                "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³"
            )
        })
    };
    let reserved = matches!(
        stem.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    ) || numbered("COM")
        || numbered("LPT");
    if trimmed.is_empty() {
        "file".to_string()
    } else if reserved {
        format!("_{trimmed}")
    } else {
        shorten_name(trimmed, 200)
    }
}

/// Characters that change how a name reads without showing: bidirectional overrides
/// ("Rechnung\u{202E}fdp.exe" reads as "Rechnungexe.pdf"), zero-width and other format
/// characters (Unicode category Cf).
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E007F}')
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn a_senders_file_name_cannot_leave_the_folder_or_name_a_device() {
        assert_eq!(safe_file_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(
            safe_file_name("..\\..\\Windows\\x.dll"),
            "_.._Windows_x.dll"
        );
        assert_eq!(safe_file_name("CON.txt"), "_CON.txt");
        assert_eq!(safe_file_name("com1"), "_com1");
        assert_eq!(safe_file_name("..."), "file");
        assert_eq!(safe_file_name(".bashrc"), "bashrc");
        assert_eq!(safe_file_name("a\u{0}b\nc.pdf"), "a_b_c.pdf");
        assert_eq!(safe_file_name("Straßenschild.jpg"), "Straßenschild.jpg");
        assert_eq!(safe_file_name("Rechnung\u{202E}fdp.exe"), "Rechnungfdp.exe");
        assert_eq!(safe_file_name("CON .txt"), "_CON .txt");
        assert_eq!(safe_file_name("conout$"), "_conout$");
        assert_eq!(safe_file_name("LPT¹.doc"), "_LPT¹.doc");
        assert_eq!(safe_file_name("COM10"), "COM10");
        assert!(safe_file_name(&"ä".repeat(300)).len() <= 200);
    }

    #[test]
    fn programs_and_scripts_are_told_apart_from_documents() {
        for name in [
            "setup.exe",
            "Rechnung.PDF.exe",
            "Rechnung\u{202E}fdp.exe",
            "run.bat ",
            "x.ps1.",
            "Makro.xlsm",
            "link.lnk",
        ] {
            assert!(is_program_name(name), "{name}");
        }
        for name in [
            "Teamfoto.html",
            "bild.svg",
            "konsole.msc",
            "Liste.xls",
            "ohne",
        ] {
            assert!(is_program_name(name), "{name}");
        }
        for name in ["Antrag.pdf", "Foto.JPG", "Liste.xlsx", "notes.txt"] {
            assert!(!is_program_name(name), "{name}");
        }
    }

    #[test]
    fn long_names_keep_their_extension_and_whole_characters() {
        let long = format!("{}.pdf", "ü".repeat(200));
        let short = shorten_name(&long, 255);
        assert!(short.len() <= 255 && short.ends_with(".pdf"));
        assert_eq!(guess_mime("Foto.JPG"), "image/jpeg");
        assert_eq!(guess_mime("noext"), "application/octet-stream");
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn sizes_parse_as_they_are_shown() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("800"), Ok(800));
        assert_eq!(parse_size("500 KB"), Ok(500 * 1024));
        assert_eq!(parse_size("25MB"), Ok(25 << 20));
        assert_eq!(parse_size("25 mib"), Ok(25 << 20));
        assert_eq!(parse_size("2.5G"), Ok(5 << 29));
        assert_eq!(parse_size(" 4 GiB "), Ok(4 << 30));
        assert_eq!(human_size(parse_size("38.1 MB").unwrap()), "38.1 MB");
        for bad in [
            "",
            "MB",
            "-5MB",
            "5 parsecs",
            "1e30",
            "99999999999 TB",
            "1.2.3",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
