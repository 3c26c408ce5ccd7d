//! One suite, run against both `Store` implementations; plus sled's error paths.

mod common;

use flurfunk::conversation::direct_conversation_id;
use flurfunk::crypto::LABEL_EVENT_SIGNATURE;
use flurfunk::identity::Identity;
use flurfunk::store::{Batch, MemoryStore, ReaderPosition, SledStore, Store, StoreError};
use flurfunk::wire::{ConversationId, Event, EventHeader, EventKind, OrderKey};

fn event(author: &Identity, conv: ConversationId, seq: u64, lamport: u64) -> Event {
    let header = EventHeader {
        conversation: conv,
        author: author.user_id(),
        seq,
        prev: flurfunk::wire::EventId([0; 32]),
        lamport,
        wall_ms: 1000 + seq,
        epoch: 1,
        key: flurfunk::wire::EventId([7; 32]),
        kind: EventKind::Text,
    };
    let sealed = vec![seq as u8; 40];
    let sig = author.sign(
        LABEL_EVENT_SIGNATURE,
        &Event::signed_bytes_of(&header, &[], &sealed),
    );
    Event::new(header, Vec::new(), sealed, sig)
}

fn suite(store: &mut dyn Store) {
    let a = common::identity(1, "Anna");
    let b = common::identity(2, "Bernd");
    let conv = direct_conversation_id(&a.user_id(), &b.user_id());
    let events: Vec<Event> = (1..=5)
        .map(|i| event(&a, conv, i, i * 2))
        .chain((1..=3).map(|i| event(&b, conv, i, i * 2 + 1)))
        .collect();
    store
        .apply(Batch {
            insert_events: events.clone(),
            outbox_add: vec![(conv, events[0].id())],
            read_markers: vec![(conv, events[1].order_key())],
            profiles: vec![a.profile(5), b.profile(6)],
            ..Batch::default()
        })
        .unwrap();
    store.flush().unwrap();

    assert_eq!(store.conversations().unwrap(), vec![conv]);
    let vv = store.version_vector(&conv).unwrap();
    assert_eq!(vv.get(&a.user_id()), Some(&5));
    assert_eq!(vv.get(&b.user_id()), Some(&3));
    let ordered = store.events_in_order(&conv).unwrap();
    let keys: Vec<OrderKey> = ordered.iter().map(Event::order_key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(ordered.len(), 8);
    // Paging forward in pages of 3 gives the same events in the same order.
    let mut paged: Vec<Event> = Vec::new();
    loop {
        let page = store
            .events_after_key(&conv, paged.last().map(Event::order_key), 3)
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        paged.extend(page);
    }
    assert_eq!(paged, ordered);
    assert_eq!(store.event(&events[2].id()).unwrap().unwrap(), events[2]);
    assert_eq!(
        store.event_id_by_seq(&conv, &a.user_id(), 3).unwrap(),
        Some(events[2].id())
    );
    let after = store
        .events_after(&conv, &a.user_id(), 2, usize::MAX)
        .unwrap();
    assert_eq!(
        after.iter().map(|e| e.header.seq).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    // A byte budget cuts the batch but always yields at least one event.
    let one = store.events_after(&conv, &a.user_id(), 0, 1).unwrap();
    assert_eq!(one.len(), 1);
    let last_two = store.events_before(&conv, None, 2).unwrap();
    assert_eq!(last_two, ordered[6..].to_vec());
    let before = store
        .events_before(&conv, Some(ordered[3].order_key()), 10)
        .unwrap();
    assert_eq!(before, ordered[..3].to_vec());
    assert_eq!(store.outbox().unwrap(), vec![(conv, events[0].id())]);
    assert_eq!(
        store.read_marker(&conv).unwrap(),
        Some(events[1].order_key())
    );
    assert_eq!(store.profiles().unwrap().len(), 2);

    // Group receipts: the latest position per reader, beside (not instead of) the own
    // read marker, which shares their tree in sled.
    let position = |seq, read| ReaderPosition {
        conversation: conv,
        reader: b.user_id(),
        delivered_seq: seq,
        read,
    };
    store
        .apply(Batch {
            reader_positions: vec![position(2, None)],
            ..Batch::default()
        })
        .unwrap();
    store
        .apply(Batch {
            reader_positions: vec![position(4, Some(events[3].order_key()))],
            ..Batch::default()
        })
        .unwrap();
    assert_eq!(
        store.reader_positions(&conv).unwrap(),
        vec![position(4, Some(events[3].order_key()))]
    );
    assert_eq!(
        store.read_marker(&conv).unwrap(),
        Some(events[1].order_key())
    );
    let other = ConversationId([0xee; 32]);
    assert!(store.reader_positions(&other).unwrap().is_empty());

    // Removing a chain suffix lowers the version vector to what remains.
    store
        .apply(Batch {
            remove_events: vec![events[3].clone(), events[4].clone()],
            outbox_remove: vec![events[0].id()],
            ..Batch::default()
        })
        .unwrap();
    assert_eq!(
        store.version_vector(&conv).unwrap().get(&a.user_id()),
        Some(&3)
    );
    assert!(store.event(&events[4].id()).unwrap().is_none());
    assert!(store.outbox().unwrap().is_empty());
    assert_eq!(store.event_count().unwrap(), 6);

    // Settled equivocations: one winner per (conversation, author, seq), replaced and
    // forgotten by key; not events of the conversation.
    store
        .apply(Batch {
            forks: vec![events[2].clone(), events[1].clone()],
            ..Batch::default()
        })
        .unwrap();
    store
        .apply(Batch {
            forks: vec![events[2].clone()],
            forks_forget: vec![{
                let h = &events[1].header;
                (h.conversation, h.author, h.seq)
            }],
            ..Batch::default()
        })
        .unwrap();
    assert_eq!(store.forks().unwrap(), vec![events[2].clone()]);
    assert_eq!(store.event_count().unwrap(), 6);

    // Rekeys that lost an equivocation: kept by id, apart from the conversation.
    store
        .apply(Batch {
            lost_rekeys: vec![events[3].clone(), events[3].clone()],
            ..Batch::default()
        })
        .unwrap();
    assert_eq!(store.lost_rekeys().unwrap(), vec![events[3].clone()]);
    assert_eq!(store.event_count().unwrap(), 6);
}

#[test]
fn memory_store_passes_the_suite() {
    suite(&mut MemoryStore::new());
}

#[test]
fn sled_store_passes_the_suite_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let mut store = SledStore::open(&path).unwrap();
        suite(&mut store);
    }
    let store = SledStore::open(&path).unwrap();
    assert_eq!(store.event_count().unwrap(), 6);
    assert_eq!(store.forks().unwrap().len(), 1);
    assert_eq!(store.lost_rekeys().unwrap().len(), 1);
}

/// Batches of records that stand alone (profiles, reader positions, read markers, hidden
/// messages) are written without a sled transaction; they are read back, replace older
/// values, and survive a flush and reopen like everything else.
#[test]
fn sled_records_without_a_transaction_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let a = common::identity(1, "Anna");
    let b = common::identity(2, "Bernd");
    let conv = direct_conversation_id(&a.user_id(), &b.user_id());
    let e = event(&a, conv, 1, 2);
    let position = ReaderPosition {
        conversation: conv,
        reader: b.user_id(),
        delivered_seq: 1,
        read: Some(e.order_key()),
    };
    {
        let mut store = SledStore::open(&path).unwrap();
        for batch in [
            Batch {
                profiles: vec![a.profile(5)],
                ..Batch::default()
            },
            Batch {
                profiles: vec![a.profile(7), b.profile(6)],
                reader_positions: vec![position],
                read_markers: vec![(conv, e.order_key())],
                hidden: vec![(conv, e.id())],
                ..Batch::default()
            },
        ] {
            store.apply(batch).unwrap();
        }
        store.flush().unwrap();
    }
    let store = SledStore::open(&path).unwrap();
    let mut profiles: Vec<(String, u64)> = store
        .profiles()
        .unwrap()
        .into_iter()
        .map(|p| (p.display_name, p.updated_ms))
        .collect();
    profiles.sort();
    assert_eq!(
        profiles,
        vec![("Anna".to_string(), 7), ("Bernd".to_string(), 6)]
    );
    assert_eq!(store.reader_positions(&conv).unwrap(), vec![position]);
    assert_eq!(store.read_marker(&conv).unwrap(), Some(e.order_key()));
    assert_eq!(store.hidden().unwrap(), vec![(conv, e.id())]);
    assert_eq!(store.event_count().unwrap(), 0);
}

/// A database written by another wire version (an older Flurfunk) is refused with a
/// message that names both versions, and is left as it was.
#[test]
fn sled_store_of_another_wire_version_is_a_clear_error_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let raw = sled::open(&path).unwrap();
        let events = raw.open_tree("events").unwrap();
        let mut old = event(&common::identity(1, "Anna"), ConversationId([1; 32]), 1, 1).encode();
        old[0] = 3;
        events.insert([9u8; 32], old).unwrap();
        raw.flush().unwrap();
    }
    let err = match SledStore::open(&path) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("opened a database of wire version 3"),
    };
    assert!(err.contains("wire version 3"), "{err}");
    assert!(
        err.contains(&flurfunk::wire::WIRE_VERSION.to_string()),
        "{err}"
    );
    let raw = sled::open(&path).unwrap();
    assert_eq!(
        raw.open_tree("events").unwrap().len(),
        1,
        "nothing was changed"
    );
}

#[test]
fn memory_store_crash_loses_only_unflushed_writes() {
    let a = common::identity(1, "Anna");
    let conv = ConversationId([1; 32]);
    let mut store = MemoryStore::new();
    let e1 = event(&a, conv, 1, 1);
    let e2 = event(&a, conv, 2, 2);
    store
        .apply(Batch {
            insert_events: vec![e1.clone()],
            ..Batch::default()
        })
        .unwrap();
    store.flush().unwrap();
    store
        .apply(Batch {
            insert_events: vec![e2.clone()],
            ..Batch::default()
        })
        .unwrap();
    let after = store.crash_copy();
    assert!(after.event(&e1.id()).unwrap().is_some());
    assert!(after.event(&e2.id()).unwrap().is_none());
}

#[test]
fn sled_second_process_gets_a_clear_in_use_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let _first = SledStore::open(&path).unwrap();
    // sled's file lock is per process; a child process must be refused.
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "open_locked_child", "--nocapture", "--ignored"])
        .env("FLURFUNK_LOCKED_DB", &path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("LOCKED-OK"), "child said: {text}");
}

#[test]
#[ignore = "run as a child process by sled_second_process_gets_a_clear_in_use_error"]
fn open_locked_child() {
    let Ok(path) = std::env::var("FLURFUNK_LOCKED_DB") else {
        return;
    };
    match SledStore::open(std::path::Path::new(&path)) {
        Err(StoreError::Locked { .. }) => println!("LOCKED-OK"),
        Err(other) => println!("other error: {other}"),
        Ok(_) => println!("opened a locked database"),
    }
}

#[test]
fn sled_missing_parent_and_garbage_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/db");
    assert!(matches!(
        SledStore::open(&missing),
        Err(StoreError::Open { .. })
    ));
    // A file where the database directory should be.
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a database").unwrap();
    assert!(SledStore::open(&file).is_err());
    // Garbage in the database's own files.
    let db = dir.path().join("db");
    drop(SledStore::open(&db).unwrap());
    for entry in std::fs::read_dir(&db).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::write(&p, vec![0xA5u8; 4096]).unwrap();
        }
    }
    match SledStore::open(&db) {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(store) => {
            // If sled accepts the files, reading must still not panic.
            let _ = store.conversations();
        }
    }
}

#[test]
fn failing_writes_lose_nothing_already_saved() {
    use flurfunk::sync::{Config, Engine, RngSeed};
    let a = common::identity(1, "Anna");
    let b = common::identity(2, "Bernd");
    let mut engine = Engine::new(
        a,
        MemoryStore::new(),
        Config::default(),
        RngSeed::fixed(1),
        1000,
    )
    .unwrap();
    let conv = engine.open_direct(1000, &b.profile(0)).unwrap();
    let first = engine.send_text(1001, conv, "gespeichert").unwrap();
    engine.commit(1002).unwrap();
    // Disk full from here on: every write fails with a clear error, nothing panics.
    let mut store = engine.into_store();
    store.fail_writes = true;
    let a = common::identity(1, "Anna");
    let mut engine = Engine::new(a, store, Config::default(), RngSeed::fixed(2), 2000).unwrap();
    let err = engine.send_text(2001, conv, "geht nicht").unwrap_err();
    assert!(
        err.to_string().contains("disk full") || err.to_string().contains("no space"),
        "{err}"
    );
    let texts = engine.messages(&conv).unwrap();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].event_id, first);
}
