//! The records thread: wishes to fetch, the conversations a blob belongs to and what
//! was evicted, written to the blob store off the event loop, in order; what a full disk
//! refused is kept (bounded) and written again once there is room.

use super::*;

/// The thread that writes records; dropping it writes what is queued before the node
/// says it stopped (a wish recorded just before a restart is there after it).
pub(super) struct RecordWriter {
    tx: Option<std::sync::mpsc::Sender<Record>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RecordWriter {
    pub(super) fn send(&self, record: Record) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(record);
        }
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A record to write: in the order given.
pub(super) enum Record {
    Want(BlobRef, [u8; 32]),
    Unwant(BlobRef),
    /// Its message was deleted for everyone: data, hash tree and records go.
    Purge(BlobRef),
    Conversation(BlobRef, [u8; 32]),
    /// Keep the store within `quota`, never touching `keep` (being fetched).
    Evict {
        quota: u64,
        keep: std::collections::HashSet<BlobRef>,
        evicted: Arc<std::sync::Mutex<Vec<BlobRef>>>,
    },
}

/// Records that could not be written (a full disk) are tried again this often, and
/// at most this many are kept for it (a wish or a conversation each; the oldest go first).
const RECORD_RETRY_MS: u64 = 10_000;
const MAX_RECORDS_TO_RETRY: usize = 4_096;

/// Wishes and conversations whose record failed, to be written once there is room: a
/// wish made while the disk was full is not lost at the next restart.
#[derive(Default)]
struct Retry {
    records: std::collections::VecDeque<(BlobRef, [u8; 32], bool)>,
    dropped: u64,
}

impl Retry {
    /// Keep a failed wish (`want`) or conversation record.
    fn keep(&mut self, blob: BlobRef, conv: [u8; 32], want: bool) {
        if self.records.contains(&(blob, conv, want)) {
            return;
        }
        if self.records.len() >= MAX_RECORDS_TO_RETRY {
            self.records.pop_front();
            self.dropped += 1;
        }
        self.records.push_back((blob, conv, want));
    }

    /// A wish dropped (done or cancelled) before it could be written.
    fn forget_wish(&mut self, blob: &BlobRef) {
        self.records.retain(|(b, _, want)| !(*want && b == blob));
    }

    /// Write what waits, in order, with `write`; stop at the first failure (the disk is
    /// still full). Returns how many were written.
    fn run(
        &mut self,
        mut write: impl FnMut(&BlobRef, [u8; 32], bool) -> Result<(), FileError>,
    ) -> usize {
        let mut written = 0;
        while let Some(&(blob, conv, want)) = self.records.front() {
            if write(&blob, conv, want).is_err() {
                break;
            }
            self.records.pop_front();
            written += 1;
        }
        written
    }
}

fn write_record(
    store: &BlobStore,
    blob: &BlobRef,
    conv: [u8; 32],
    want: bool,
) -> Result<(), FileError> {
    if want {
        store.want(blob, conv)
    } else {
        store.note_conversation(blob, conv)
    }
}

/// Write records as they come, until the node's files are dropped; failed wishes and
/// conversations are tried again every `RECORD_RETRY_MS` and once more at the end.
pub(super) fn spawn_record_writer(store: Arc<BlobStore>) -> RecordWriter {
    let (tx, rx) = std::sync::mpsc::channel::<Record>();
    let spawned = std::thread::Builder::new()
        .name("flurfunk-files".into())
        .spawn(move || {
            let mut retry = Retry::default();
            let wait = std::time::Duration::from_millis(RECORD_RETRY_MS);
            loop {
                let record = match rx.recv_timeout(wait) {
                    Ok(record) => record,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        retry.run(|b, c, w| write_record(&store, b, c, w));
                        continue;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                };
                let result = match record {
                    Record::Want(blob, conv) => {
                        let result = write_record(&store, &blob, conv, true);
                        if result.is_err() {
                            retry.keep(blob, conv, true);
                        }
                        result
                    }
                    Record::Unwant(blob) => {
                        retry.forget_wish(&blob);
                        store.unwant(&blob);
                        Ok(())
                    }
                    Record::Purge(blob) => {
                        retry.forget_wish(&blob);
                        store.remove(&blob);
                        Ok(())
                    }
                    Record::Conversation(blob, conv) => {
                        let result = write_record(&store, &blob, conv, false);
                        if result.is_err() {
                            retry.keep(blob, conv, false);
                        }
                        result
                    }
                    Record::Evict {
                        quota,
                        keep,
                        evicted,
                    } => {
                        let removed = store.evict(quota, &keep);
                        if !removed.is_empty() {
                            tracing::info!(
                                files = removed.len(),
                                "others' files evicted for the quota"
                            );
                            evicted
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .extend(removed);
                        }
                        // Room was made: what waits may fit now.
                        retry.run(|b, c, w| write_record(&store, b, c, w));
                        Ok(())
                    }
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "cannot write a file's record; tried again later");
                }
            }
            retry.run(|b, c, w| write_record(&store, b, c, w));
            if !retry.records.is_empty() || retry.dropped > 0 {
                tracing::error!(
                    records = retry.records.len() as u64 + retry.dropped,
                    "records of files could not be written (disk full): those downloads are not resumed after the restart"
                );
            }
        });
    match spawned {
        Ok(thread) => RecordWriter {
            tx: Some(tx),
            thread: Some(thread),
        },
        Err(e) => {
            tracing::error!(error = %e, "no thread for the files' records");
            RecordWriter {
                tx: None,
                thread: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u8) -> BlobRef {
        BlobRef {
            hash: [n; 32],
            ct_len: 1000,
        }
    }

    #[test]
    fn records_that_failed_are_written_in_order_once_there_is_room() {
        let mut retry = Retry::default();
        retry.keep(blob(1), [1; 32], false);
        retry.keep(blob(1), [1; 32], true);
        retry.keep(blob(1), [1; 32], true); // the same wish once
        retry.keep(blob(2), [2; 32], true);
        retry.keep(blob(3), [3; 32], true);
        retry.forget_wish(&blob(3)); // cancelled before it was written
        assert_eq!(retry.records.len(), 3);
        // Still full: nothing is lost, the first failure stops the round.
        let mut tried = 0;
        assert_eq!(
            retry.run(|_, _, _| {
                tried += 1;
                Err(FileError::DiskFull {
                    what: "test".into(),
                })
            }),
            0
        );
        assert_eq!((tried, retry.records.len()), (1, 3));
        // Room again: all of them, in the order they were made.
        let mut written = Vec::new();
        assert_eq!(
            retry.run(|b, _, want| {
                written.push((b.hash[0], want));
                Ok(())
            }),
            3
        );
        assert_eq!(written, vec![(1, false), (1, true), (2, true)]);
        assert!(retry.records.is_empty());
        // Bounded: the oldest go first, and are counted.
        for n in 0..(MAX_RECORDS_TO_RETRY + 5) {
            retry.keep(
                BlobRef {
                    hash: [(n % 251) as u8; 32],
                    ct_len: n as u64,
                },
                [0; 32],
                true,
            );
        }
        assert_eq!(retry.records.len(), MAX_RECORDS_TO_RETRY);
        assert_eq!(retry.dropped, 5);
    }
}
