//! The sled 0.34 store of a real node.
//!
//! Trees: `events` (event id -> encoded event), `by_seq` (conversation|author|seq -> id),
//! `order` (conversation|lamport|author|seq -> id), `vv` (conversation|author -> seq),
//! `outbox` (id -> conversation), `read` (conversation -> order key of the own read
//! marker; conversation|reader -> that reader's position with own messages), `profiles`
//! (user -> profile), `forks` (conversation|author|seq -> the winning version of an
//! equivocation), `lost_rekeys` (id -> a rekey that lost an equivocation, kept read-only),
//! `sealed_keys` (rekey id -> its epoch key sealed at rest), `admin` (statement kind -> the
//! admin statement held), `hidden` (conversation|id of a message deleted for this node
//! only -> nothing). A `Batch` is one multi-tree transaction, except one of records that
//! stand alone (profiles, reader positions, read markers, hidden), which is plain inserts
//! (see `apply_records`); `flush` is the fsync.

use std::path::Path;

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::{Batch, ReaderPosition, Store, StoreError, order_index_key, seq_key, vv_after_removal};
use crate::identity::{Profile, UserId};
use crate::wire::{self, AdminStatement, ConversationId, Event, EventId, OrderKey, VersionVector};

/// sled defaults to a 1 GiB page cache; a desktop messenger needs a fraction of that.
/// (8 MiB was tried: resident memory of a node with 10,000 messages did not change, the
/// start-up rebuild dominates it.)
const CACHE_CAPACITY_BYTES: u64 = 32 * 1024 * 1024;

/// Free space a write must leave on the disk. sled 0.34 does not recover from running out
/// of space in the middle of writing its log: a buffer whose write failed is never written
/// again, and the next flush (closing the database, too) then waits for it for ever, even
/// once space is freed (seen with the full-disk test). So a batch that would leave less
/// than this is refused before sled sees it, with the same clear error. Two of sled's
/// 512 KiB log segments, so the log can always close the segment it is in.
pub const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// How long opening waits for a lock that a just-closed database may still hold.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub struct SledStore {
    dir: std::path::PathBuf,
    db: sled::Db,
    events: sled::Tree,
    by_seq: sled::Tree,
    order: sled::Tree,
    vv: sled::Tree,
    outbox: sled::Tree,
    read: sled::Tree,
    profiles: sled::Tree,
    forks: sled::Tree,
    lost_rekeys: sled::Tree,
    sealed_keys: sled::Tree,
    admin: sled::Tree,
    hidden: sled::Tree,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        reason: e.to_string(),
    }
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt { what: what.into() }
}

fn id32(bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| corrupt("index entry"))
}

impl SledStore {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.display().to_string();
        if let Some(parent) = dir.parent()
            && !parent.as_os_str().is_empty()
            && !parent.is_dir()
        {
            return Err(StoreError::Open {
                path,
                reason: "the parent directory does not exist".into(),
            });
        }
        // sled lets go of its file lock only when its background threads have finished with
        // a closed database, shortly after the last handle is dropped. A restart in the same
        // process (rejoining, a test) waits that moment out instead of failing.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match Self::open_db(dir, &path) {
                Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        let tree = |name: &str| db.open_tree(name).map_err(io);
        let events = tree("events")?;
        // Events are stored as they travel, version byte first. Data of another wire
        // version cannot be read by this program: say so, and change nothing.
        if let Some(Ok((_, first))) = events.iter().next()
            && first.first().is_some_and(|v| *v != wire::WIRE_VERSION)
        {
            return Err(StoreError::Open {
                path,
                reason: format!(
                    "it holds data of wire version {} and this Flurfunk reads version {}; \
                     start the version that wrote it, or move the folder aside to start afresh",
                    first[0],
                    wire::WIRE_VERSION
                ),
            });
        }
        Ok(SledStore {
            dir: dir.to_path_buf(),
            events,
            by_seq: tree("by_seq")?,
            order: tree("order")?,
            vv: tree("vv")?,
            outbox: tree("outbox")?,
            read: tree("read")?,
            profiles: tree("profiles")?,
            forks: tree("forks")?,
            lost_rekeys: tree("lost_rekeys")?,
            sealed_keys: tree("sealed_keys")?,
            admin: tree("admin")?,
            hidden: tree("hidden")?,
            db,
        })
    }

    fn open_db(dir: &Path, path: &str) -> Result<sled::Db, StoreError> {
        // sled panics on some damaged files instead of returning an error; a damaged
        // database must give the user a clear message, never a crash.
        let opened = std::panic::catch_unwind(|| {
            sled::Config::new()
                .path(dir)
                .cache_capacity(CACHE_CAPACITY_BYTES)
                // The engine flushes (fsyncs) at every commit, before it calls anything
                // saved, so sled's own flusher thread runs every 5 s instead of every
                // 0.5 s (its wake-ups were 2-3 % of an office's CPU). It stays for what
                // else it does: segment garbage collection, which nothing else starts,
                // and a bound on how long the few writes no commit follows (profiles
                // learned, outbox entries cleared) stay in memory.
                .flush_every_ms(Some(5_000))
                .open()
        });
        match opened {
            Ok(Ok(db)) => Ok(db),
            Ok(Err(sled::Error::Io(e)))
                if e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock") =>
            {
                Err(StoreError::Locked { path: path.into() })
            }
            Ok(Err(e)) => Err(StoreError::Open {
                path: path.into(),
                reason: e.to_string(),
            }),
            Err(_) => Err(StoreError::Open {
                path: path.into(),
                reason: "the database files are damaged".into(),
            }),
        }
    }

    /// Refuse a batch that would leave less than `MIN_FREE_BYTES` free (see there). Where
    /// the free space cannot be read, the write goes ahead.
    fn check_space(&self, batch: &Batch) -> Result<(), StoreError> {
        let Ok(free) = fs2::available_space(&self.dir) else {
            return Ok(());
        };
        // sled writes each value about twice (log and index pages) before compaction.
        let need = MIN_FREE_BYTES
            + 2 * batch
                .insert_events
                .iter()
                .chain(&batch.forks)
                .map(|e| e.encoded_len() as u64)
                .sum::<u64>();
        if free < need {
            return Err(io(format!(
                "No space left on device ({} KiB free at {}, {} KiB needed); nothing was written",
                free / 1024,
                self.dir.display(),
                need / 1024
            )));
        }
        Ok(())
    }

    fn decode_event(bytes: &[u8]) -> Result<Event, StoreError> {
        Event::decode(bytes).map_err(|e| corrupt(format!("stored event: {e}")))
    }

    fn load(&self, id: &[u8]) -> Result<Event, StoreError> {
        let bytes = self
            .events
            .get(id)
            .map_err(io)?
            .ok_or_else(|| corrupt("index points to a missing event"))?;
        Self::decode_event(&bytes)
    }
}

type Tx = ConflictableTransactionError<()>;

fn vv_key(conv: &ConversationId, author: &UserId) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(&conv.0);
    k[32..].copy_from_slice(&author.0);
    k
}

fn hidden_key(conv: &ConversationId, id: &EventId) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(&conv.0);
    k[32..].copy_from_slice(&id.0);
    k
}

/// The views of the twelve trees inside one transaction, in `apply`'s order.
type Trees = (
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
);

fn apply_tx(batch: &Batch, trees: &Trees) -> Result<(), Tx> {
    let (
        events,
        by_seq,
        order,
        vv,
        outbox,
        read,
        profiles,
        forks,
        lost_rekeys,
        sealed_keys,
        admin,
        hidden,
    ) = trees;
    for e in &batch.remove_events {
        let h = &e.header;
        events.remove(&e.id().0[..])?;
        by_seq.remove(&seq_key(&h.conversation, &h.author, h.seq)[..])?;
        order.remove(&order_index_key(&h.conversation, &e.order_key())[..])?;
    }
    for (conv, author, seq) in vv_after_removal(&batch.remove_events) {
        if seq == 0 {
            vv.remove(&vv_key(&conv, &author)[..])?;
        } else {
            vv.insert(&vv_key(&conv, &author)[..], &seq.to_be_bytes()[..])?;
        }
    }
    for e in &batch.insert_events {
        let h = &e.header;
        let id = e.id();
        events.insert(&id.0[..], e.encode())?;
        by_seq.insert(&seq_key(&h.conversation, &h.author, h.seq)[..], &id.0[..])?;
        order.insert(
            &order_index_key(&h.conversation, &e.order_key())[..],
            &id.0[..],
        )?;
        let key = vv_key(&h.conversation, &h.author);
        let old = vv
            .get(&key[..])?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        if h.seq > old {
            vv.insert(&key[..], &h.seq.to_be_bytes()[..])?;
        }
    }
    for (conv, id) in &batch.outbox_add {
        outbox.insert(&id.0[..], &conv.0[..])?;
    }
    for id in &batch.outbox_remove {
        outbox.remove(&id.0[..])?;
    }
    put_records(batch, |tree, key, value| -> Result<(), Tx> {
        match tree {
            RecordTree::Read => read.insert(key, value)?,
            RecordTree::Profiles => profiles.insert(key, value)?,
            RecordTree::Hidden => hidden.insert(key, value)?,
        };
        Ok(())
    })?;
    for e in &batch.forks {
        let h = &e.header;
        forks.insert(&seq_key(&h.conversation, &h.author, h.seq)[..], e.encode())?;
    }
    for (conv, author, seq) in &batch.forks_forget {
        forks.remove(&seq_key(conv, author, *seq)[..])?;
    }
    for e in &batch.lost_rekeys {
        lost_rekeys.insert(&e.id().0[..], e.encode())?;
    }
    for (id, sealed) in &batch.sealed_keys {
        sealed_keys.insert(&id.0[..], &sealed[..])?;
    }
    for statement in &batch.admin_statements {
        admin.insert(&[statement.kind.code()][..], statement.encode())?;
    }
    Ok(())
}

/// The trees of records that stand alone.
enum RecordTree {
    Read,
    Profiles,
    Hidden,
}

/// Each record of `batch` that stands alone (read markers, reader positions, profiles,
/// hidden messages), as its tree, key and value: written in a transaction by `apply_tx`,
/// plainly by `SledStore::apply_records`.
fn put_records<E>(
    batch: &Batch,
    mut put: impl FnMut(RecordTree, &[u8], &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    for (conv, key) in &batch.read_markers {
        put(RecordTree::Read, &conv.0, &key.encode())?;
    }
    for p in &batch.reader_positions {
        put(RecordTree::Read, &p.key(), &p.encode_value())?;
    }
    for p in &batch.profiles {
        put(
            RecordTree::Profiles,
            &p.user_id.0,
            &wire::profile_to_bytes(p),
        )?;
    }
    for (conv, id) in &batch.hidden {
        put(RecordTree::Hidden, &hidden_key(conv, id), &[])?;
    }
    Ok(())
}

/// Whether `batch` holds only records that stand alone (one key each, no other tree to
/// agree with): profiles, reader positions, read markers and hidden messages.
fn only_records(batch: &Batch) -> bool {
    let Batch {
        insert_events,
        remove_events,
        outbox_add,
        outbox_remove,
        read_markers: _,
        profiles: _,
        reader_positions: _,
        forks,
        forks_forget,
        lost_rekeys,
        sealed_keys,
        admin_statements,
        hidden: _,
    } = batch;
    insert_events.is_empty()
        && remove_events.is_empty()
        && outbox_add.is_empty()
        && outbox_remove.is_empty()
        && forks.is_empty()
        && forks_forget.is_empty()
        && lost_rekeys.is_empty()
        && sealed_keys.is_empty()
        && admin_statements.is_empty()
}

impl SledStore {
    /// Records that stand alone, written without a transaction: a sled transaction
    /// writes out and syncs (`sync_file_range`) the log buffer twice, and profiles and
    /// reader positions arrive a few at a time, so they were about two fifths of an
    /// office's disk syncs. Each insert is atomic on its own; all are durable with the
    /// next `flush`, as a transaction's are.
    fn apply_records(&self, batch: &Batch) -> Result<(), StoreError> {
        put_records(batch, |tree, key, value| {
            let tree = match tree {
                RecordTree::Read => &self.read,
                RecordTree::Profiles => &self.profiles,
                RecordTree::Hidden => &self.hidden,
            };
            tree.insert(key, value).map(|_| ()).map_err(io)
        })
    }
}

impl Store for SledStore {
    fn apply(&mut self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.check_space(&batch)?;
        if only_records(&batch) {
            return self.apply_records(&batch);
        }
        let trees = (
            &self.events,
            &self.by_seq,
            &self.order,
            &self.vv,
            &self.outbox,
            &self.read,
            &self.profiles,
            &self.forks,
            &self.lost_rekeys,
            &self.sealed_keys,
            &self.admin,
            &self.hidden,
        );
        trees
            .transaction(|t| apply_tx(&batch, t))
            .map_err(|e: TransactionError<()>| io(format!("{e:?}")))
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(io)
    }

    fn conversations(&self) -> Result<Vec<ConversationId>, StoreError> {
        let mut out: Vec<ConversationId> = Vec::new();
        for item in self.vv.iter() {
            let (k, _) = item.map_err(io)?;
            let conv = ConversationId(id32(&k[..32])?);
            if out.last() != Some(&conv) {
                out.push(conv);
            }
        }
        Ok(out)
    }

    fn events_in_order(&self, conversation: &ConversationId) -> Result<Vec<Event>, StoreError> {
        self.order
            .scan_prefix(conversation.0)
            .map(|item| {
                let (_, id) = item.map_err(io)?;
                self.load(&id)
            })
            .collect()
    }

    fn events_before(
        &self,
        conversation: &ConversationId,
        before: Option<OrderKey>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let start = conversation.0.to_vec();
        let end = match before {
            Some(b) => order_index_key(conversation, &b).to_vec(),
            None => {
                let mut e = conversation.0.to_vec();
                e.extend_from_slice(&[0xff; 49]);
                e
            }
        };
        let mut out = Vec::new();
        for item in self.order.range(start..end).rev().take(limit) {
            let (_, id) = item.map_err(io)?;
            out.push(self.load(&id)?);
        }
        out.reverse();
        Ok(out)
    }

    fn events_after_key(
        &self,
        conversation: &ConversationId,
        after: Option<OrderKey>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        use std::ops::Bound;
        let start = match after {
            Some(a) => Bound::Excluded(order_index_key(conversation, &a).to_vec()),
            None => Bound::Included(conversation.0.to_vec()),
        };
        let mut end = conversation.0.to_vec();
        end.extend_from_slice(&[0xff; 49]);
        self.order
            .range((start, Bound::Excluded(end)))
            .take(limit)
            .map(|item| {
                let (_, id) = item.map_err(io)?;
                self.load(&id)
            })
            .collect()
    }

    fn event(&self, event_id: &EventId) -> Result<Option<Event>, StoreError> {
        match self.events.get(event_id.0).map_err(io)? {
            Some(bytes) => Ok(Some(Self::decode_event(&bytes)?)),
            None => Ok(None),
        }
    }

    fn event_id_by_seq(
        &self,
        conversation: &ConversationId,
        author: &UserId,
        seq: u64,
    ) -> Result<Option<EventId>, StoreError> {
        match self
            .by_seq
            .get(seq_key(conversation, author, seq))
            .map_err(io)?
        {
            Some(id) => Ok(Some(EventId(id32(&id)?))),
            None => Ok(None),
        }
    }

    fn events_after(
        &self,
        conversation: &ConversationId,
        author: &UserId,
        after_seq: u64,
        max_bytes: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let start = seq_key(conversation, author, after_seq.saturating_add(1));
        let end = seq_key(conversation, author, u64::MAX);
        let mut out = Vec::new();
        let mut bytes = 0;
        for item in self.by_seq.range(start..=end) {
            let (_, id) = item.map_err(io)?;
            let e = self.load(&id)?;
            bytes += e.encoded_len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(e);
        }
        Ok(out)
    }

    fn version_vector(&self, conversation: &ConversationId) -> Result<VersionVector, StoreError> {
        let mut vv = VersionVector::new();
        for item in self.vv.scan_prefix(conversation.0) {
            let (k, v) = item.map_err(io)?;
            let author = UserId(id32(&k[32..])?);
            let seq: [u8; 8] = v.as_ref().try_into().map_err(|_| corrupt("vv entry"))?;
            vv.insert(author, u64::from_be_bytes(seq));
        }
        Ok(vv)
    }

    fn outbox(&self) -> Result<Vec<(ConversationId, EventId)>, StoreError> {
        self.outbox
            .iter()
            .map(|item| {
                let (k, v) = item.map_err(io)?;
                Ok((ConversationId(id32(&v)?), EventId(id32(&k)?)))
            })
            .collect()
    }

    fn read_marker(&self, conversation: &ConversationId) -> Result<Option<OrderKey>, StoreError> {
        match self.read.get(conversation.0).map_err(io)? {
            Some(v) => Ok(Some(
                OrderKey::decode(&v).ok_or_else(|| corrupt("read marker"))?,
            )),
            None => Ok(None),
        }
    }

    fn reader_positions(
        &self,
        conversation: &ConversationId,
    ) -> Result<Vec<ReaderPosition>, StoreError> {
        let mut out = Vec::new();
        for item in self.read.scan_prefix(conversation.0) {
            let (k, v) = item.map_err(io)?;
            if k.len() == 32 {
                continue; // the own read marker
            }
            out.push(ReaderPosition::decode(&k, &v).ok_or_else(|| corrupt("reader position"))?);
        }
        Ok(out)
    }

    fn profiles(&self) -> Result<Vec<Profile>, StoreError> {
        self.profiles
            .iter()
            .map(|item| {
                let (_, v) = item.map_err(io)?;
                wire::profile_from_bytes(&v).map_err(|e| corrupt(format!("profile: {e}")))
            })
            .collect()
    }

    fn event_count(&self) -> Result<usize, StoreError> {
        Ok(self.events.len())
    }

    fn forks(&self) -> Result<Vec<Event>, StoreError> {
        self.forks
            .iter()
            .map(|item| {
                let (_, v) = item.map_err(io)?;
                Self::decode_event(&v)
            })
            .collect()
    }

    fn lost_rekeys(&self) -> Result<Vec<Event>, StoreError> {
        self.lost_rekeys
            .iter()
            .map(|item| {
                let (_, v) = item.map_err(io)?;
                Self::decode_event(&v)
            })
            .collect()
    }

    fn admin_statements(&self) -> Result<Vec<AdminStatement>, StoreError> {
        let mut out = Vec::new();
        for item in self.admin.iter() {
            let (_, v) = item.map_err(io)?;
            // One this build cannot read (a later kind, or damage) is skipped, not fatal:
            // peers send the statement again.
            match AdminStatement::decode(&v) {
                Ok(s) => out.push(s),
                Err(e) => tracing::warn!(error = %e, "a stored admin statement is skipped"),
            }
        }
        Ok(out)
    }

    fn sealed_keys(&self) -> Result<Vec<(EventId, Vec<u8>)>, StoreError> {
        self.sealed_keys
            .iter()
            .map(|item| {
                let (k, v) = item.map_err(io)?;
                Ok((EventId(id32(&k)?), v.to_vec()))
            })
            .collect()
    }

    fn hidden(&self) -> Result<Vec<(ConversationId, EventId)>, StoreError> {
        self.hidden
            .iter()
            .map(|item| {
                let (k, _) = item.map_err(io)?;
                if k.len() != 64 {
                    return Err(corrupt("hidden message"));
                }
                Ok((ConversationId(id32(&k[..32])?), EventId(id32(&k[32..])?)))
            })
            .collect()
    }
}
