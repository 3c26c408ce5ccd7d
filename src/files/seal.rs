//! An attachment's encryption: STREAM (Hoang, Reyhanitabar, Rogaway, Vizár 2015; as in
//! age and Tink) over ChaCha20-Poly1305 with a 32-bit big-endian record counter and a
//! last-record flag in the nonce (`aead::stream::StreamBE32`), under a key drawn from the
//! OS for this one file.
//!
//! A record is `RECORD_PLAIN_BYTES` of plaintext and its 16-byte tag: 16 KiB of
//! ciphertext, exactly one block of the hash tree, so a verified block decrypts on its
//! own. The last record (possibly empty) carries the flag, so a file cut at a record
//! boundary does not decrypt.

use std::io::{Read, Write};

use chacha20poly1305::aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use chacha20poly1305::{ChaCha20Poly1305, Key};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{FileError, MAX_FILE_BYTES};

/// Ciphertext bytes of one record (one hash-tree block).
pub const RECORD_BYTES: usize = 16 * 1024;
const TAG_BYTES: usize = 16;
/// Plaintext bytes of one record.
pub const RECORD_PLAIN_BYTES: usize = RECORD_BYTES - TAG_BYTES;

/// Bound into every record's tag: these are Flurfunk attachment records of this format.
const ASSOCIATED_DATA: &[u8] = b"flurfunk attachment v1";

/// Records of a file of `plain` bytes (an empty file has one, empty).
pub fn records(plain: u64) -> u64 {
    plain.div_ceil(RECORD_PLAIN_BYTES as u64).max(1)
}

/// Ciphertext bytes of a file of `plain` bytes; `None` beyond `MAX_FILE_BYTES`.
pub fn ciphertext_len(plain: u64) -> Option<u64> {
    (plain <= MAX_FILE_BYTES).then(|| plain + records(plain) * TAG_BYTES as u64)
}

/// A file's own key; never reused for another file.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct FileKey([u8; 32]);

impl FileKey {
    /// A fresh key from the OS's generator.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        FileKey(key)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        FileKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn stream(&self) -> StreamBE32<ChaCha20Poly1305> {
        // The nonce prefix may be fixed: the key encrypts this one file.
        StreamBE32::new(Key::from_slice(&self.0), &Default::default())
    }
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(..)")
    }
}

/// Encrypt `plain_len` bytes from `source` into `dest`; the source must hold exactly that
/// many (a file that grows or shrinks while it is read is refused).
pub fn encrypt(
    key: &FileKey,
    mut source: impl Read,
    plain_len: u64,
    mut dest: impl Write,
) -> Result<(), FileError> {
    let stream = key.stream();
    let n = records(plain_len);
    let position = |i: u64| {
        u32::try_from(i).map_err(|_| FileError::TooLarge {
            size: plain_len,
            limit: MAX_FILE_BYTES,
        })
    };
    let mut buf = Vec::with_capacity(RECORD_BYTES);
    for i in 0..n {
        let want = if i + 1 == n {
            (plain_len - i * RECORD_PLAIN_BYTES as u64) as usize
        } else {
            RECORD_PLAIN_BYTES
        };
        buf.clear();
        buf.resize(want, 0);
        source.read_exact(&mut buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                FileError::Changed
            } else {
                FileError::io("reading the file", e)
            }
        })?;
        stream
            .encrypt_in_place(position(i)?, i + 1 == n, ASSOCIATED_DATA, &mut buf)
            .map_err(|_| FileError::Corrupt("encryption failed".into()))?;
        dest.write_all(&buf)
            .map_err(|e| FileError::io("writing the encrypted file", e))?;
    }
    let mut probe = [0u8; 1];
    match source.read(&mut probe) {
        Ok(0) => Ok(()),
        Ok(_) => Err(FileError::Changed),
        Err(e) => Err(FileError::io("reading the file", e)),
    }
}

/// Decrypt record `index` of a file of `plain_len` bytes in place (`buf` holds its
/// ciphertext, and afterwards its plaintext).
pub fn decrypt_record(
    key: &FileKey,
    plain_len: u64,
    index: u64,
    buf: &mut Vec<u8>,
) -> Result<(), FileError> {
    let n = records(plain_len);
    let position = u32::try_from(index).map_err(|_| FileError::Decrypt { record: index })?;
    if index >= n {
        return Err(FileError::Decrypt { record: index });
    }
    key.stream()
        .decrypt_in_place(position, index + 1 == n, ASSOCIATED_DATA, buf)
        .map_err(|_| FileError::Decrypt { record: index })
}

/// Decrypt a whole file's ciphertext from `source` into `dest`.
pub fn decrypt(
    key: &FileKey,
    plain_len: u64,
    mut source: impl Read,
    mut dest: impl Write,
) -> Result<(), FileError> {
    let ct_len = ciphertext_len(plain_len).ok_or(FileError::TooLarge {
        size: plain_len,
        limit: MAX_FILE_BYTES,
    })?;
    let n = records(plain_len);
    let mut buf = Vec::with_capacity(RECORD_BYTES);
    for i in 0..n {
        let len = (ct_len - i * RECORD_BYTES as u64).min(RECORD_BYTES as u64) as usize;
        buf.clear();
        buf.resize(len, 0);
        source.read_exact(&mut buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                FileError::Incomplete
            } else {
                FileError::io("reading the encrypted file", e)
            }
        })?;
        decrypt_record(key, plain_len, i, &mut buf)?;
        dest.write_all(&buf)
            .map_err(|e| FileError::io("writing the file", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn sealed(key: &FileKey, plain: &[u8]) -> Vec<u8> {
        let mut ct = Vec::new();
        encrypt(key, plain, plain.len() as u64, &mut ct).unwrap();
        ct
    }

    #[test]
    fn files_of_every_record_boundary_round_trip() {
        let key = FileKey::generate();
        for len in [
            0,
            1,
            RECORD_PLAIN_BYTES - 1,
            RECORD_PLAIN_BYTES,
            RECORD_PLAIN_BYTES + 1,
            3 * RECORD_PLAIN_BYTES + 5,
        ] {
            let plain = sample(len);
            let ct = sealed(&key, &plain);
            assert_eq!(
                ct.len() as u64,
                ciphertext_len(len as u64).unwrap(),
                "len {len}"
            );
            let mut back = Vec::new();
            decrypt(&key, len as u64, &ct[..], &mut back).unwrap();
            assert_eq!(back, plain, "len {len}");
        }
    }

    #[test]
    fn a_record_cut_off_swapped_or_flipped_does_not_decrypt() {
        let key = FileKey::generate();
        let plain = sample(3 * RECORD_PLAIN_BYTES);
        let ct = sealed(&key, &plain);
        // Cut after two whole records, told as a file of two records' length.
        let two = 2 * RECORD_PLAIN_BYTES as u64;
        let mut out = Vec::new();
        assert!(matches!(
            decrypt(&key, two, &ct[..2 * RECORD_BYTES], &mut out),
            Err(FileError::Decrypt { record: 1 })
        ));
        // Records swapped.
        let mut swapped = ct.clone();
        swapped[..RECORD_BYTES].copy_from_slice(&ct[RECORD_BYTES..2 * RECORD_BYTES]);
        swapped[RECORD_BYTES..2 * RECORD_BYTES].copy_from_slice(&ct[..RECORD_BYTES]);
        assert!(matches!(
            decrypt(&key, plain.len() as u64, &swapped[..], &mut Vec::new()),
            Err(FileError::Decrypt { record: 0 })
        ));
        // One bit flipped in the last record.
        let mut flipped = ct.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            decrypt(&key, plain.len() as u64, &flipped[..], &mut Vec::new()),
            Err(FileError::Decrypt { record: 2 })
        ));
        // Another key.
        assert!(matches!(
            decrypt(
                &FileKey::generate(),
                plain.len() as u64,
                &ct[..],
                &mut Vec::new()
            ),
            Err(FileError::Decrypt { record: 0 })
        ));
        // Short ciphertext.
        assert!(matches!(
            decrypt(
                &key,
                plain.len() as u64,
                &ct[..ct.len() - 1],
                &mut Vec::new()
            ),
            Err(FileError::Incomplete)
        ));
    }

    #[test]
    fn a_file_that_changes_while_it_is_read_is_refused() {
        let key = FileKey::generate();
        let plain = sample(100);
        assert!(matches!(
            encrypt(&key, &plain[..], 101, Vec::new()),
            Err(FileError::Changed)
        ));
        assert!(matches!(
            encrypt(&key, &plain[..], 99, Vec::new()),
            Err(FileError::Changed)
        ));
    }

    #[test]
    fn two_keys_never_match_and_the_debug_form_hides_the_key() {
        let (a, b) = (FileKey::generate(), FileKey::generate());
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "FileKey(..)");
    }
}
