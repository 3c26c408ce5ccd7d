//! Core benchmarks: catch-up through the sync engine into sled, durable write throughput
//! with group commit, per-event crypto cost next to its floor, and one removal and one text
//! in groups of 1,000 and 1,500 next to 10, and the pnet stream of the key ring next to
//! libp2p's. Prints figures; asserts nothing about time. Run: `cargo bench --bench core`
//! (`-- group` for the group sizes alone, `-- pnet` for the stream alone).

use std::time::{Duration, Instant};

use flurfunk::crypto::{self, EpochKey, LABEL_EVENT_SIGNATURE};
use flurfunk::identity::Identity;
use flurfunk::store::{Batch, MemoryStore, SledStore, Store};
use flurfunk::sync::{Config, Engine, RngSeed};
use flurfunk::wire::{Event, EventHeader, EventKind, SyncMessage};
use rand::SeedableRng;

const RUNS: usize = 5;
const EVENTS: usize = 10_000;

fn id(seed: u64, name: &str) -> Identity {
    Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed), name).unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn text_1k(i: usize) -> String {
    let mut s = format!("Meldung {i}: ");
    while s.len() < 1024 {
        s.push_str("Streudienst ab 4 Uhr, Bauhof Nord. ");
    }
    s.truncate(1024);
    s
}

/// Returns (time from connect until all 10,000 are durably stored, round trips).
fn catch_up_once(sender: &Engine<MemoryStore>, run: usize) -> (Duration, usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("db")).unwrap();
    let mut b = Engine::new(
        id(2, "Bernd"),
        store,
        Config::default(),
        RngSeed::fixed(run as u64),
        0,
    )
    .unwrap();
    // A fresh sender engine over a copy of the sender's store, so every run starts equal.
    let mut a = Engine::new(
        id(1, "Anna"),
        sender.store().crash_copy(),
        Config::default(),
        RngSeed::fixed(9),
        0,
    )
    .unwrap();
    let (ua, ub) = (a.user_id(), b.user_id());
    let start = Instant::now();
    a.handle_connected(0, ub);
    b.handle_connected(0, ua);
    let mut round_trips = 0;
    loop {
        let mut moved = false;
        while let Some((_, msg)) = a.poll_transmit() {
            if matches!(msg, SyncMessage::Events { .. }) {
                round_trips += 1;
            }
            let bytes = msg.encode();
            b.handle_frame(0, ua, &bytes).unwrap();
            moved = true;
        }
        b.commit(0).unwrap();
        while let Some((_, msg)) = b.poll_transmit() {
            let bytes = msg.encode();
            a.handle_frame(0, ub, &bytes).unwrap();
            moved = true;
        }
        a.commit(0).unwrap();
        if !moved {
            break;
        }
    }
    let took = start.elapsed();
    let conv = b.conversation_ids()[0];
    assert_eq!(
        b.messages(&conv).unwrap().len(),
        EVENTS,
        "catch-up incomplete"
    );
    (took, round_trips)
}

fn bench_catch_up() {
    let mut a = Engine::new(
        id(1, "Anna"),
        MemoryStore::new(),
        Config::default(),
        RngSeed::fixed(1),
        0,
    )
    .unwrap();
    let conv = a.open_direct(0, &id(2, "Bernd").profile(0)).unwrap();
    for i in 0..EVENTS {
        a.send_text(i as u64, conv, &text_1k(i)).unwrap();
    }
    a.commit(0).unwrap();
    let mut times = Vec::new();
    let mut trips = 0;
    for run in 0..RUNS {
        let (t, r) = catch_up_once(&a, run);
        times.push(t);
        trips = r;
    }
    println!(
        "catch-up: {EVENTS} x 1 KiB events, verify + decrypt + durable sled store: median {:.0} ms over {RUNS} runs ({} sync round trips, {:.0} events/s)",
        median(times.clone()).as_secs_f64() * 1e3,
        trips,
        EVENTS as f64 / median(times).as_secs_f64()
    );
}

fn signed_events(n: usize) -> Vec<Event> {
    let a = id(1, "Anna");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let key = EpochKey::generate(&mut rng);
    (0..n)
        .map(|i| {
            let header = EventHeader {
                conversation: flurfunk::wire::ConversationId([7; 32]),
                author: a.user_id(),
                seq: i as u64 + 1,
                prev: flurfunk::wire::EventId([0; 32]),
                lamport: i as u64 + 1,
                wall_ms: 0,
                epoch: 1,
                key: flurfunk::wire::EventId([1; 32]),
                kind: EventKind::Text,
            };
            let aad = Event::body_aad(&header, &[]);
            let sealed = key.encrypt(&mut rng, &aad, text_1k(i).as_bytes());
            let sig = a.sign(
                LABEL_EVENT_SIGNATURE,
                &Event::signed_bytes_of(&header, &[], &sealed),
            );
            Event::new(header, Vec::new(), sealed, sig)
        })
        .collect()
}

fn bench_store() {
    let events = signed_events(EVENTS);
    let mut group = Vec::new();
    for _ in 0..RUNS {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SledStore::open(&dir.path().join("db")).unwrap();
        let start = Instant::now();
        for chunk in events.chunks(256) {
            store
                .apply(Batch {
                    insert_events: chunk.to_vec(),
                    ..Batch::default()
                })
                .unwrap();
            store.flush().unwrap();
        }
        group.push(start.elapsed());
    }
    // Baseline in the same run: one fsync per event.
    let mut single = Vec::new();
    for _ in 0..RUNS {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SledStore::open(&dir.path().join("db")).unwrap();
        let start = Instant::now();
        for e in &events[..500] {
            store
                .apply(Batch {
                    insert_events: vec![e.clone()],
                    ..Batch::default()
                })
                .unwrap();
            store.flush().unwrap();
        }
        single.push(start.elapsed() * (EVENTS as u32 / 500));
    }
    let g = EVENTS as f64 / median(group).as_secs_f64();
    let s = EVENTS as f64 / median(single).as_secs_f64();
    println!(
        "store: durable writes with group commit (256 per fsync): median {g:.0} events/s; one fsync per event: {s:.0} events/s; ratio {:.1}x",
        g / s
    );
}

fn per_event(label: &str, n: usize, f: impl Fn(usize)) -> f64 {
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        for i in 0..n {
            f(i);
        }
        times.push(start.elapsed());
    }
    let us = median(times).as_secs_f64() * 1e6 / n as f64;
    println!("  {label:<42} {us:8.2} µs/event");
    us
}

fn bench_crypto() {
    let a = id(1, "Anna");
    let ua = a.user_id();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let key = EpochKey::generate(&mut rng);
    let events = signed_events(2000);
    let body = text_1k(0);
    println!("crypto, 1 KiB text events (median of {RUNS} runs):");
    let seal = per_event("sign + encrypt (event authoring)", 2000, |i| {
        let e = &events[i];
        let mut r = rand_chacha::ChaCha20Rng::seed_from_u64(i as u64);
        let aad = Event::body_aad(&e.header, &[]);
        let sealed = key.encrypt(&mut r, &aad, body.as_bytes());
        std::hint::black_box(a.sign(
            LABEL_EVENT_SIGNATURE,
            &Event::signed_bytes_of(&e.header, &[], &sealed),
        ));
    });
    let open = per_event("verify (strict) + decrypt, as sync does", 2000, |i| {
        let e = &events[i];
        crypto::verify(&ua, LABEL_EVENT_SIGNATURE, &e.signed_bytes(), &e.signature).unwrap();
        let aad = Event::body_aad(&e.header, &[]);
        std::hint::black_box(key.decrypt(&aad, &e.sealed).unwrap());
    });
    // The floor: raw primitives on the same bytes.
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&ua.0).unwrap();
    let msgs: Vec<Vec<u8>> = events
        .iter()
        .map(|e| crypto::labelled(LABEL_EVENT_SIGNATURE, &e.signed_bytes()))
        .collect();
    let ed = per_event("floor: raw Ed25519 verify", 2000, |i| {
        let sig = ed25519_dalek::Signature::from_bytes(&events[i].signature);
        vk.verify_strict(&msgs[i], &sig).unwrap();
    });
    use chacha20poly1305::aead::{Aead, KeyInit};
    let cipher = chacha20poly1305::ChaCha20Poly1305::new(key.as_bytes().into());
    let ct = cipher.encrypt(&[0u8; 12].into(), body.as_bytes()).unwrap();
    let cc = per_event("floor: raw ChaCha20-Poly1305 decrypt 1 KiB", 2000, |_| {
        std::hint::black_box(cipher.decrypt(&[0u8; 12].into(), ct.as_slice()).unwrap());
    });
    println!(
        "  ratios to floor (Ed25519 verify + ChaCha20-Poly1305): authoring {:.2}x, opening {:.2}x",
        seal / (ed + cc),
        open / (ed + cc)
    );
}

/// One removal and one text in a group of 10, 1,000 and 1,500: bytes on the wire and time at
/// the author and at a member (the removal makes every member re-decide the group).
fn bench_group_size() {
    for n in [10usize, 1000, 1500] {
        let profiles: Vec<_> = (1..n as u64)
            .map(|i| id(1000 + i, &format!("Kollege {i}")).profile(0))
            .collect();
        let mut admin = Engine::new(
            id(1, "Anna"),
            MemoryStore::new(),
            Config::default(),
            RngSeed::fixed(1),
            0,
        )
        .unwrap();
        let t = Instant::now();
        let conv = admin.create_group(1, "Alle", &profiles).unwrap();
        admin.commit(1).unwrap();
        let create_ms = t.elapsed().as_secs_f64() * 1e3;
        let history = admin.store().events_in_order(&conv).unwrap();
        let create_bytes: usize = history.iter().map(Event::encoded_len).sum();
        let member_id = id(1001, "Kollege 1");
        let mut member = Engine::new(
            member_id,
            MemoryStore::new(),
            Config::default(),
            RngSeed::fixed(2),
            0,
        )
        .unwrap();
        let anna = admin.user_id();
        member.handle_connected(0, anna);
        member
            .handle_message(2, anna, SyncMessage::Events { events: history })
            .unwrap();
        member.commit(2).unwrap();

        let events_after = |e: &Engine<MemoryStore>, before: usize| {
            e.store().events_in_order(&conv).unwrap()[before..].to_vec()
        };
        let before = admin.store().events_in_order(&conv).unwrap().len();
        let t = Instant::now();
        admin.send_text(3, conv, &text_1k(0)[..200]).unwrap();
        admin.commit(3).unwrap();
        let text_author_ms = t.elapsed().as_secs_f64() * 1e3;
        let text = events_after(&admin, before);
        let text_bytes: usize = text.iter().map(Event::encoded_len).sum();
        let t = Instant::now();
        member
            .handle_message(4, anna, SyncMessage::Events { events: text })
            .unwrap();
        member.commit(4).unwrap();
        let text_member_ms = t.elapsed().as_secs_f64() * 1e3;

        let before = admin.store().events_in_order(&conv).unwrap().len();
        let target = profiles.last().unwrap().user_id;
        let t = Instant::now();
        admin.remove_member(5, conv, &target).unwrap();
        admin.commit(5).unwrap();
        let remove_author_ms = t.elapsed().as_secs_f64() * 1e3;
        let removal = events_after(&admin, before);
        let remove_bytes: usize = removal.iter().map(Event::encoded_len).sum();
        let t = Instant::now();
        member
            .handle_message(6, anna, SyncMessage::Events { events: removal })
            .unwrap();
        member.commit(6).unwrap();
        let remove_member_ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(member.conversation(&conv).unwrap().members.len(), n - 1);
        println!(
            "group of {n:>4}: create {create_bytes:>7} B {create_ms:>7.1} ms | text {text_bytes:>5} B, author {text_author_ms:.2} ms, member {text_member_ms:.2} ms | removal + rekey {remove_bytes:>7} B, author {remove_author_ms:.1} ms, member {remove_member_ms:.1} ms"
        );
    }
}

/// What a rekey's proofs cost each node: checking the proof of its ephemeral key (every
/// rekey), and judging one complaint (proof of the shared secret, unwrap, commitment).
fn bench_key_proofs() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    let anna = id(1, "Anna");
    let bernd = id(2, "Bernd");
    let wrapper = crypto::KeyWrapper::new(&mut rng);
    let possession = wrapper.prove_possession(&mut rng, b"rekey");
    let shared =
        crypto::prove_shared(&mut rng, bernd.dh_key(), b"complaint", &wrapper.ephemeral).unwrap();
    let wrapped = wrapper.wrap(b"ctx", &bernd.dh_public(), &[7; 32]).unwrap();
    let (mut wrap, mut own, mut complaint) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..200 {
        let t = Instant::now();
        std::hint::black_box(wrapper.wrap(b"ctx", &anna.dh_public(), &[7; 32]).unwrap());
        wrap.push(t.elapsed());
        let t = Instant::now();
        assert!(crypto::verify_possession(
            &wrapper.ephemeral,
            b"rekey",
            &possession
        ));
        own.push(t.elapsed());
        let t = Instant::now();
        let s = crypto::verify_shared(
            &bernd.dh_public(),
            b"complaint",
            &wrapper.ephemeral,
            &shared,
        )
        .unwrap();
        std::hint::black_box(crypto::unwrap_with_shared(
            &s,
            b"ctx",
            &wrapper.ephemeral,
            &bernd.dh_public(),
            &wrapped,
        ));
        complaint.push(t.elapsed());
    }
    println!(
        "key proofs (medians of 200): one wrap {:.0} µs; ephemeral key's proof checked {:.0} µs (each rekey); one complaint judged {:.0} µs",
        median(wrap).as_secs_f64() * 1e6,
        median(own).as_secs_f64() * 1e6,
        median(complaint).as_secs_f64() * 1e6
    );
}

/// Search over 100,000 short texts: the scan a node does until its index is ready
/// (decrypt newest first, at most `MAX_SEARCH_SCAN`) against the in-memory index (the
/// index proposes, each proposal is opened and checked), and the index's build time and
/// size, with listing the same texts as the baseline, all in this run.
fn bench_search() {
    const TEXTS: usize = 100_000;
    let mut a = Engine::new(
        id(1, "Anna"),
        MemoryStore::new(),
        Config::default(),
        RngSeed::fixed(3),
        0,
    )
    .unwrap();
    let conv = a.open_direct(0, &id(2, "Bernd").profile(0)).unwrap();
    let phrases = [
        "Streusalz kommt am Dienstag, bitte Tor 3 offen lassen",
        "Wer übernimmt die Bereitschaft am Wochenende?",
        "Die Straße am Bauhof ist gesperrt bis Freitag",
        "Kaffee ist alle, ich bringe morgen welchen mit",
    ];
    a.send_text(
        0,
        conv,
        "Der Schlüssel zum Archivkeller liegt beim Hausmeister",
    )
    .unwrap();
    for i in 1..TEXTS {
        let text = format!("{} ({i})", phrases[i % phrases.len()]);
        a.send_text(i as u64, conv, &text).unwrap();
    }
    a.commit(0).unwrap();
    // The same store opened again: the index starts empty and is built in slices.
    let mut b = Engine::new(
        id(1, "Anna"),
        a.store().crash_copy(),
        Config::default(),
        RngSeed::fixed(4),
        0,
    )
    .unwrap();
    drop(a);
    let time = |f: &mut dyn FnMut() -> usize| {
        let mut runs = Vec::new();
        let mut n = 0;
        for _ in 0..RUNS {
            let start = Instant::now();
            n = f();
            runs.push(start.elapsed());
        }
        (median(runs), n)
    };
    let (listing, shown) = time(&mut || b.messages(&conv).unwrap().len());
    let (scan_miss, _) = time(&mut || b.search("Gehaltsliste", None, 50).unwrap().len());
    let (scan_hit, some) = time(&mut || b.search("salz dienst", None, 50).unwrap().len());
    let scan_old = b.search("archivkeller", None, 50).unwrap().len();
    let start = Instant::now();
    let mut steps = 0;
    while !b.index_step(2_000).unwrap() {
        steps += 1;
    }
    let build = start.elapsed();
    let (ready, (docs, words, postings)) = b.search_index_state();
    assert!(ready);
    let (miss, none) = time(&mut || b.search("Gehaltsliste", None, 50).unwrap().len());
    let (hit, _) = time(&mut || b.search("salz dienst", None, 50).unwrap().len());
    let (old, found_old) = time(&mut || b.search("archivkeller", None, 50).unwrap().len());
    let (inner, _) = time(&mut || b.search("salz", None, 50).unwrap().len());
    // Postings 4 bytes, a word its bytes plus about 48 in the tree, a text 72 plus about
    // 48 in the id map.
    let approx_mb = (postings * 4 + words * 56 + docs * 120) as f64 / 1e6;
    println!(
        "search over {TEXTS} texts, listing them all {:.0} ms ({shown}):\n  \
         scan (before the index is ready): nothing found {:.0} ms ({:.2}x listing), 50 newest hits {:.1} ms ({some}), a word only in the oldest text: {scan_old} found (the scan stops at {})\n  \
         index: built in {:.0} ms ({steps} steps of 2,000 events; {docs} texts, {words} words, {postings} postings, about {approx_mb:.1} MB); nothing found {:.2} ms ({none}), 50 newest hits {:.1} ms, the oldest text {:.2} ms ({found_old} found), a word inside compounds (\"salz\", 25,000 texts) {:.1} ms\n  \
         medians of {RUNS}",
        listing.as_secs_f64() * 1e3,
        scan_miss.as_secs_f64() * 1e3,
        scan_miss.as_secs_f64() / listing.as_secs_f64(),
        scan_hit.as_secs_f64() * 1e3,
        flurfunk::sync::MAX_SEARCH_SCAN,
        build.as_secs_f64() * 1e3,
        miss.as_secs_f64() * 1e3,
        hit.as_secs_f64() * 1e3,
        old.as_secs_f64() * 1e3,
        inner.as_secs_f64() * 1e3,
    );
}

/// Retention: 100,000 texts of one chat, a policy keeping messages 30 days, then the
/// node's passes (`sync::retention`, driven by its tick a second apart): one where
/// nothing is due (every event read), and one where everything is (each text deleted
/// with its edits, reactions and file), next to listing the messages once.
fn bench_retention() {
    use flurfunk::wire::{Policy, StatementKind};
    const TEXTS: usize = 100_000;
    const DAY: u64 = 86_400_000;
    let admin = flurfunk::admin::AdminKey::generate(&mut rand::rngs::OsRng);
    let config = Config {
        admin_key: Some(admin.public()),
        ..Config::default()
    };
    let mut a = Engine::new(
        id(1, "Anna"),
        MemoryStore::new(),
        config,
        RngSeed::fixed(5),
        0,
    )
    .unwrap();
    let conv = a.open_direct(0, &id(2, "Bernd").profile(0)).unwrap();
    for i in 0..TEXTS {
        a.send_text(i as u64, conv, &format!("Dienstplan Woche {i}"))
            .unwrap();
    }
    a.commit(0).unwrap();
    let policy = Policy {
        keep_messages_s: Some(30 * 86_400),
        ..Policy::default()
    };
    let statement = admin
        .sign_statement(StatementKind::Policy, 1, 1, policy.encode())
        .unwrap();
    a.publish_admin_statement(1, statement).unwrap();
    let start = Instant::now();
    let shown = a.messages(&conv).unwrap().len();
    let listing = start.elapsed();
    // Nothing due: a whole pass reads every event.
    let mut now = 10 * DAY;
    let mut turns = Vec::new();
    let mut pass = Duration::ZERO;
    for _ in 0..8 {
        let start = Instant::now();
        a.handle_tick(now).unwrap();
        let took = start.elapsed();
        pass += took;
        turns.push(took);
        now += 1_000;
    }
    let kept = a.messages(&conv).unwrap().len();
    // All due: a pass deletes them all, 256 a turn.
    now = 40 * DAY;
    let mut busy = Vec::new();
    let mut total = Duration::ZERO;
    let mut n = 0;
    while a.stats().messages_expired < TEXTS as u64 && n < 2 * TEXTS / 256 + 10 {
        let start = Instant::now();
        a.handle_tick(now).unwrap();
        a.commit(now).unwrap();
        let took = start.elapsed();
        total += took;
        busy.push(took);
        now += 1_000;
        n += 1;
    }
    let left = a.messages(&conv).unwrap().len();
    println!(
        "retention over {TEXTS} texts (listing them all {:.0} ms, {shown}):\n  \
         nothing due: a pass of 8 ticks {:.0} ms in all (ticks: median {:.0} ms, max {:.0} ms), {kept} kept\n  \
         all due: {n} ticks a second apart deleted {} ({left} left), {:.0} ms in all, median tick {:.1} ms, max {:.1} ms",
        listing.as_secs_f64() * 1e3,
        pass.as_secs_f64() * 1e3,
        median(turns.clone()).as_secs_f64() * 1e3,
        turns.iter().max().unwrap().as_secs_f64() * 1e3,
        a.stats().messages_expired,
        total.as_secs_f64() * 1e3,
        median(busy.clone()).as_secs_f64() * 1e3,
        busy.iter().max().unwrap().as_secs_f64() * 1e3,
    );
}

/// Retention of one group (statement kind 6) next to the network's: 100,000 texts of a
/// 1:1 chat and 1,000 of a group, the group keeping its messages 7 days. A pass with
/// nothing due reads only the group's events; under a network-wide period of 30 days
/// (the same store) it reads every event. When the group's fall due, only they go.
fn bench_group_retention() {
    use flurfunk::wire::{Policy, StatementKind};
    const TEXTS: usize = 100_000;
    const GROUP_TEXTS: usize = 1_000;
    const DAY: u64 = 86_400_000;
    let admin = flurfunk::admin::AdminKey::generate(&mut rand::rngs::OsRng);
    let config = Config {
        admin_key: Some(admin.public()),
        ..Config::default()
    };
    let mut a = Engine::new(
        id(1, "Anna"),
        MemoryStore::new(),
        config,
        RngSeed::fixed(6),
        0,
    )
    .unwrap();
    let bernd = id(2, "Bernd").profile(0);
    let direct = a.open_direct(0, &bernd).unwrap();
    let group = a.create_group(0, "Personalrat", &[bernd]).unwrap();
    for i in 0..TEXTS {
        a.send_text(i as u64, direct, &format!("Dienstplan Woche {i}"))
            .unwrap();
    }
    for i in 0..GROUP_TEXTS {
        a.send_text(i as u64, group, &format!("Sitzung {i}"))
            .unwrap();
    }
    a.commit(0).unwrap();
    // One pass with nothing due, ticks a second apart until it is done (at most 20).
    let pass = |a: &mut Engine<MemoryStore>, mut now: u64| {
        let mut total = Duration::ZERO;
        let mut ticks = 0;
        for _ in 0..20 {
            let start = Instant::now();
            a.handle_tick(now).unwrap();
            total += start.elapsed();
            ticks += 1;
            now += 1_000;
        }
        (total, ticks)
    };
    let statement = admin
        .change_group_retention(None, group, Some(7 * 86_400), 1)
        .unwrap()
        .unwrap();
    a.publish_admin_statement(1, statement).unwrap();
    let (group_only, _) = pass(&mut a, 2 * DAY);
    let policy = Policy {
        keep_messages_s: Some(30 * 86_400),
        ..Policy::default()
    };
    let statement = admin
        .sign_statement(StatementKind::Policy, 1, 3, policy.encode())
        .unwrap();
    a.publish_admin_statement(3 * DAY, statement).unwrap();
    let (everything, _) = pass(&mut a, 3 * DAY);
    // Ten days on: the group's are due (7 days), the chat's not (30 days).
    let mut now = 10 * DAY;
    let mut n = 0;
    while a.stats().messages_expired < GROUP_TEXTS as u64 && n < 100 {
        a.handle_tick(now).unwrap();
        a.commit(now).unwrap();
        now += 1_000;
        n += 1;
    }
    println!(
        "group retention, {TEXTS} texts of a 1:1 chat and {GROUP_TEXTS} of a group kept 7 days:\n  \
         a pass with nothing due: {:.1} ms of ticks with only the group's period, {:.0} ms with 30 days for every chat ({:.3}x)\n  \
         ten days on: {} of the group's deleted in {n} ticks, {} of the chat's kept",
        group_only.as_secs_f64() * 1e3,
        everything.as_secs_f64() * 1e3,
        group_only.as_secs_f64() / everything.as_secs_f64(),
        a.stats().messages_expired,
        a.messages(&direct).unwrap().len(),
    );
}

/// A tokio in-memory pipe as the futures-io stream libp2p's transports hand over.
struct Pipe(tokio::io::DuplexStream);

impl futures::io::AsyncRead for Pipe {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut b = tokio::io::ReadBuf::new(buf);
        match tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut self.0), cx, &mut b) {
            std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(Ok(b.filled().len())),
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl futures::io::AsyncWrite for Pipe {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write(std::pin::Pin::new(&mut self.0), cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        tokio::io::AsyncWrite::poll_flush(std::pin::Pin::new(&mut self.0), cx)
    }
    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        tokio::io::AsyncWrite::poll_shutdown(std::pin::Pin::new(&mut self.0), cx)
    }
}

/// 64 MiB through libp2p's pnet and through the node's key ring (`net::pnet_ring`, two
/// keys accepted, as during a rotation), in 16 KiB writes over an in-memory pipe: the
/// cipher and buffering cost alone, side by side.
fn bench_pnet() {
    use flurfunk::net::pnet_ring::{KeyRing, NextKey, handshake};
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    use libp2p::core::transport::PortUse;
    use libp2p::core::{ConnectedPoint, Endpoint};
    use libp2p::pnet::{PnetConfig, PreSharedKey};

    const TOTAL: usize = 64 * 1024 * 1024;
    const CHUNK: usize = 16 * 1024;
    const HEADER: &[u8; 20] = b"\x13/multistream/1.0.0\n";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let key = [7u8; 32];
    let ring = KeyRing::new([6u8; 32]);
    ring.set_keys(
        [6u8; 32],
        Some(NextKey {
            key: zeroize::Zeroizing::new(key),
            switch_at_ms: 0,
            overlap_until_ms: u64::MAX / 2,
        }),
    );
    let now = || 1;
    let dialer = ConnectedPoint::Dialer {
        address: "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
        role_override: Endpoint::Dialer,
        port_use: PortUse::New,
    };
    let listener = ConnectedPoint::Listener {
        local_addr: "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
        send_back_addr: "/ip4/127.0.0.1/tcp/2".parse().unwrap(),
    };
    let chunk = vec![0x5au8; CHUNK];
    let mut stock = Vec::new();
    let mut ours = Vec::new();
    for _ in 0..RUNS {
        for with_ring in [false, true] {
            let (a, b) = tokio::io::duplex(256 * 1024);
            let (a, b) = (Pipe(a), Pipe(b));
            let chunk = chunk.clone();
            let (ring, dialer, listener) = (ring.clone(), dialer.clone(), listener.clone());
            let took = rt.block_on(async move {
                let start = Instant::now();
                let send = async {
                    let mut w: Box<dyn futures::io::AsyncWrite + Unpin + Send> = if with_ring {
                        // After the switch: the ring dials with the new key.
                        Box::new(handshake(a, dialer, ring.clone(), now).await.unwrap())
                    } else {
                        Box::new(
                            PnetConfig::new(PreSharedKey::new(key))
                                .handshake(a)
                                .await
                                .unwrap(),
                        )
                    };
                    w.write_all(HEADER).await.unwrap();
                    for _ in 0..TOTAL / CHUNK {
                        w.write_all(&chunk).await.unwrap();
                    }
                    w.flush().await.unwrap();
                    w
                };
                let receive = async {
                    let mut r: Box<dyn futures::io::AsyncRead + Unpin + Send> = if with_ring {
                        Box::new(handshake(b, listener, ring.clone(), now).await.unwrap())
                    } else {
                        Box::new(
                            PnetConfig::new(PreSharedKey::new(key))
                                .handshake(b)
                                .await
                                .unwrap(),
                        )
                    };
                    let mut buf = vec![0u8; CHUNK];
                    let mut got = 0;
                    while got < TOTAL + HEADER.len() {
                        got += r.read(&mut buf).await.unwrap();
                    }
                };
                let (_w, ()) = futures::join!(send, receive);
                start.elapsed()
            });
            if with_ring {
                ours.push(took)
            } else {
                stock.push(took)
            }
        }
    }
    let (stock, ours) = (median(stock), median(ours));
    let mib_s = |d: Duration| TOTAL as f64 / 1_048_576.0 / d.as_secs_f64();
    println!(
        "pnet, 64 MiB each way in 16 KiB writes (median of {RUNS}): libp2p {:.0} MiB/s, key ring with two keys {:.0} MiB/s ({:.2}x)",
        mib_s(stock),
        mib_s(ours),
        mib_s(ours) / mib_s(stock)
    );
}

fn main() {
    if std::env::args().any(|a| a == "pnet") {
        return bench_pnet(); // `cargo bench --bench core -- pnet`
    }
    if std::env::args().any(|a| a == "search") {
        return bench_search(); // `cargo bench --bench core -- search`
    }
    if std::env::args().any(|a| a == "retention") {
        bench_retention(); // `cargo bench --bench core -- retention`
        return bench_group_retention();
    }
    bench_group_size();
    bench_key_proofs();
    if std::env::args().any(|a| a == "group") {
        return; // `cargo bench --bench core -- group`: only the group sizes
    }
    bench_crypto();
    bench_store();
    bench_catch_up();
    bench_search();
    bench_retention();
    bench_group_retention();
    bench_pnet();
}
