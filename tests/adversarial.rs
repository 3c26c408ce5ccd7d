//! Hostile input: each forged, tampered, replayed or malformed event is rejected, counted,
//! never stored or forwarded, and nothing panics.

mod common;

use flurfunk::crypto::LABEL_EVENT_SIGNATURE;
use flurfunk::identity::Identity;
use flurfunk::store::{MemoryStore, Store};
use flurfunk::sync::{Config, Engine, RngSeed};
use flurfunk::wire::{ConversationId, Event, EventHeader, EventKind, MAX_FRAME_BYTES, SyncMessage};

struct Setup {
    anna: Engine<MemoryStore>,
    bernd: Engine<MemoryStore>,
    conv: ConversationId,
    text: Event,
    history: Vec<Event>,
}

/// Anna and Bernd share a group; `text` is a genuine message of Anna's that Bernd has
/// not seen yet; `history` is everything before it.
fn setup() -> Setup {
    let a = common::identity(1, "Anna");
    let b = common::identity(2, "Bernd");
    let pb = b.profile(0);
    let mut anna = Engine::new(
        a,
        MemoryStore::new(),
        Config::default(),
        RngSeed::fixed(1),
        1000,
    )
    .unwrap();
    let bernd = Engine::new(
        b,
        MemoryStore::new(),
        Config::default(),
        RngSeed::fixed(2),
        1000,
    )
    .unwrap();
    let conv = anna.create_group(1000, "Bauhof", &[pb]).unwrap();
    let history = anna.store().events_in_order(&conv).unwrap();
    let text_id = anna
        .send_text(1001, conv, "Schlüssel liegt beim Pförtner")
        .unwrap();
    let text = anna.store().event(&text_id).unwrap().unwrap();
    let mut s = Setup {
        anna,
        bernd,
        conv,
        text,
        history,
    };
    let uid = s.anna.user_id();
    s.bernd.handle_connected(1000, uid);
    s.bernd
        .handle_message(
            1000,
            uid,
            SyncMessage::Events {
                events: s.history.clone(),
            },
        )
        .unwrap();
    assert!(s.bernd.conversation(&conv).is_some());
    s
}

fn offer(s: &mut Setup, events: Vec<Event>) {
    let uid = s.anna.user_id();
    s.bernd
        .handle_message(2000, uid, SyncMessage::Events { events })
        .unwrap();
}

fn sign_as(signer: &Identity, header: EventHeader, public: Vec<u8>, sealed: Vec<u8>) -> Event {
    let sig = signer.sign(
        LABEL_EVENT_SIGNATURE,
        &Event::signed_bytes_of(&header, &public, &sealed),
    );
    Event::new(header, public, sealed, sig)
}

/// `event` with one bit of its signature flipped (rebuilt, so its id is computed afresh).
fn with_flipped_signature(event: &Event, byte: usize) -> Event {
    let mut signature = event.signature;
    signature[byte] ^= 0x40;
    Event::new(
        event.header.clone(),
        event.public.clone(),
        event.sealed.clone(),
        signature,
    )
}

#[test]
fn genuine_event_is_accepted() {
    let mut s = setup();
    let text = s.text.clone();
    offer(&mut s, vec![text]);
    assert_eq!(s.bernd.messages(&s.conv).unwrap().len(), 1);
    assert_eq!(s.bernd.stats().invalid_events, 0);
}

#[test]
fn forged_signature_is_rejected() {
    let mut s = setup();
    let e = with_flipped_signature(&s.text, 10);
    offer(&mut s, vec![e]);
    assert_eq!(s.bernd.stats().invalid_events, 1);
    assert!(s.bernd.messages(&s.conv).unwrap().is_empty());
}

#[test]
fn every_flipped_byte_is_rejected() {
    let mut s = setup();
    let bytes = s.text.encode();
    let mut rejected = 0;
    for i in 0..bytes.len() {
        let mut t = bytes.clone();
        t[i] ^= 0x01;
        match Event::decode(&t) {
            Err(_) => rejected += 1,
            Ok(e) => {
                offer(&mut s, vec![e]);
                // Rejected outright, or held back as pending (a flipped sequence number
                // looks like a gap): either way nothing is stored.
                assert_eq!(
                    s.bernd.store().event_count().unwrap(),
                    s.history.len(),
                    "flip at byte {i} was stored"
                );
                rejected += 1;
            }
        }
    }
    assert_eq!(rejected, bytes.len());
    assert!(s.bernd.messages(&s.conv).unwrap().is_empty());
}

#[test]
fn tampered_ciphertext_with_valid_signature_cannot_be_read() {
    // A member re-signing someone else's ciphertext as their own: the body is bound to
    // its header, so it decrypts for nobody.
    let s = setup();
    let b = common::identity(2, "Bernd");
    let mut header = s.text.header.clone();
    header.author = b.user_id();
    header.seq = 1;
    let forged = sign_as(&b, header, Vec::new(), s.text.sealed.clone());
    assert!(s.anna.decrypt(&forged).is_none());
}

#[test]
fn replayed_event_is_a_silent_duplicate() {
    let mut s = setup();
    let text = s.text.clone();
    offer(&mut s, vec![text.clone()]);
    offer(&mut s, vec![text.clone(), text]);
    assert_eq!(s.bernd.messages(&s.conv).unwrap().len(), 1);
    assert_eq!(s.bernd.stats().duplicate_events, 2);
    assert_eq!(s.bernd.stats().invalid_events, 0);
}

#[test]
fn event_from_non_member_is_rejected() {
    let mut s = setup();
    let mallory = common::identity(9, "Mallory");
    let mut header = s.text.header.clone();
    header.author = mallory.user_id();
    header.seq = 1;
    let e = sign_as(&mallory, header, Vec::new(), s.text.sealed.clone());
    offer(&mut s, vec![e]);
    assert_eq!(s.bernd.stats().invalid_events, 1);
    assert_eq!(s.bernd.store().event_count().unwrap(), s.history.len());
}

#[test]
fn event_signed_by_one_user_claiming_another_is_rejected() {
    let mut s = setup();
    let mallory = common::identity(9, "Mallory");
    // Claims Anna as author but is signed with Mallory's key.
    let e = sign_as(
        &mallory,
        s.text.header.clone(),
        Vec::new(),
        s.text.sealed.clone(),
    );
    offer(&mut s, vec![e]);
    assert_eq!(s.bernd.stats().invalid_events, 1);
    assert!(s.bernd.messages(&s.conv).unwrap().is_empty());
}

#[test]
fn equivocation_is_settled_by_the_lower_id() {
    let mut s = setup();
    let text = s.text.clone();
    offer(&mut s, vec![text]);
    // Anna's key signs a second, different event with the same sequence number.
    let a = common::identity(1, "Anna");
    let mut header = s.text.header.clone();
    header.wall_ms += 1;
    let twin = sign_as(&a, header, Vec::new(), s.text.sealed.clone());
    offer(&mut s, vec![twin.clone()]);
    // Detected, and settled as everywhere: the version with the lower id is kept.
    assert_eq!(s.bernd.stats().equivocations, 1);
    let (keep, drop) = if twin.id() < s.text.id() {
        (twin.clone(), s.text.clone())
    } else {
        (s.text.clone(), twin.clone())
    };
    let store = s.bernd.store();
    assert!(store.event(&keep.id()).unwrap().is_some());
    assert!(store.event(&drop.id()).unwrap().is_none());
    // Offering the given-up version again changes nothing.
    offer(&mut s, vec![drop.clone()]);
    assert!(s.bernd.store().event(&drop.id()).unwrap().is_none());
    assert!(s.bernd.store().event(&keep.id()).unwrap().is_some());
}

#[test]
fn malformed_frames_are_errors_not_panics() {
    let mut s = setup();
    let uid = s.anna.user_id();
    let good = SyncMessage::Events {
        events: vec![s.text.clone()],
    }
    .encode();
    for cut in [0, 1, 2, 5, good.len() / 2, good.len() - 1] {
        assert!(s.bernd.handle_frame(3000, uid, &good[..cut]).is_err());
    }
    let huge = vec![1u8; MAX_FRAME_BYTES + 1];
    assert!(s.bernd.handle_frame(3000, uid, &huge).is_err());
    assert_eq!(s.bernd.stats().malformed_frames, 7);
    assert!(s.bernd.messages(&s.conv).unwrap().is_empty());
    // A rejected event is never forwarded: Bernd queued nothing but his hello for Anna.
    let mut sent = Vec::new();
    while let Some((_, msg)) = s.bernd.poll_transmit() {
        sent.push(msg);
    }
    assert!(
        sent.iter()
            .all(|m| !matches!(m, SyncMessage::Events { .. }))
    );
}

#[test]
fn kind_confusion_is_rejected() {
    // A text event whose header says it is a membership change must not pass as one.
    let mut s = setup();
    let a = common::identity(1, "Anna");
    let mut header = s.text.header.clone();
    header.kind = EventKind::Membership;
    let e = sign_as(&a, header, Vec::new(), s.text.sealed.clone());
    offer(&mut s, vec![e]);
    assert_eq!(s.bernd.stats().invalid_events, 1);
}

#[test]
fn offences_name_the_sending_peer() {
    let mut s = setup();
    let anna = s.anna.user_id();
    let text = s.text.clone();
    offer(&mut s, vec![text]);
    assert!(
        s.bernd.take_offences().is_empty(),
        "a genuine event is no offence"
    );

    let forged = with_flipped_signature(&s.text, 3);
    let mallory = common::identity(9, "Mallory");
    let mut header = s.text.header.clone();
    header.author = mallory.user_id();
    header.seq = 1;
    let outsider = sign_as(&mallory, header, Vec::new(), s.text.sealed.clone());
    offer(&mut s, vec![forged, outsider]);
    let offences = s.bernd.take_offences();
    assert_eq!(offences.len(), 1);
    let (peer, o) = offences[0];
    assert_eq!(peer, anna, "counted against the peer that sent them");
    assert_eq!((o.forged, o.invalid, o.frames_with_invalid), (1, 1, 1));
    assert!(s.bernd.take_offences().is_empty(), "taken once");
}

#[test]
fn held_back_events_are_bounded_per_peer_and_expire() {
    use flurfunk::sync::{MAX_PENDING_PER_PEER, PENDING_TTL_MS};
    let mut s = setup();
    // Mallory signs a long chain of its own and sends all but the first event: none can
    // fit, so all would wait for the missing one.
    let mallory = common::identity(9, "Mallory");
    let mut chain: Vec<Event> = Vec::new();
    for i in 0..(MAX_PENDING_PER_PEER as u64 + 500) {
        let e = common::forge(
            &mallory,
            chain.last(),
            s.conv,
            EventKind::Text,
            10 + i,
            0,
            Vec::new(),
            vec![1],
        );
        chain.push(e);
    }
    let from = mallory.user_id();
    s.bernd.handle_connected(2000, from);
    for part in chain[1..].chunks(1000) {
        s.bernd
            .handle_message(
                2000,
                from,
                SyncMessage::Events {
                    events: part.to_vec(),
                },
            )
            .unwrap();
    }
    let st = s.bernd.stats();
    assert_eq!(st.pending_events, MAX_PENDING_PER_PEER);
    assert_eq!(st.pending_dropped, 499);

    // Another peer's event that waits for its predecessor is still held back.
    let a = common::identity(1, "Anna");
    let after_text = common::forge(
        &a,
        Some(&s.text),
        s.conv,
        EventKind::Text,
        s.text.header.lamport + 1,
        s.text.header.epoch,
        Vec::new(),
        vec![2],
    );
    offer(&mut s, vec![after_text]);
    assert_eq!(s.bernd.stats().pending_events, MAX_PENDING_PER_PEER + 1);

    // And all of it expires.
    s.bernd.handle_tick(2000 + PENDING_TTL_MS + 1_000).unwrap();
    let st = s.bernd.stats();
    assert_eq!(st.pending_events, 0);
    assert_eq!(st.pending_expired, MAX_PENDING_PER_PEER as u64 + 1);
    // Nothing of it was stored.
    assert_eq!(s.bernd.store().event_count().unwrap(), s.history.len());
}

/// A summary costs its sender a few bytes and can ask for a whole history. Each one is
/// answered with at most one batch (`BATCH_BYTES`); while the node's queue towards the
/// peer is long (congestion, told by the node), summaries and wants go unanswered.
#[test]
fn summaries_cannot_pull_more_than_a_batch_each_nor_past_congestion() {
    use flurfunk::sync::BATCH_BYTES;
    use std::collections::BTreeMap;
    let mut s = setup();
    let text = "x".repeat(2000);
    for i in 0..1500 {
        s.anna.send_text(3000 + i, s.conv, &text).unwrap();
    }
    s.anna.commit(5000).unwrap();
    while s.anna.poll_transmit().is_some() {}
    let bernd = s.bernd.user_id();
    s.anna.handle_connected(5000, bernd);
    let hello = SyncMessage::Hello {
        role: flurfunk::wire::Role::Member,
        profile: common::identity(2, "Bernd").profile(0),
    };
    s.anna.handle_message(5000, bernd, hello).unwrap();
    while s.anna.poll_transmit().is_some() {}
    let nothing_held = SyncMessage::Summary {
        conversations: vec![(s.conv, BTreeMap::new(), BTreeMap::new())],
    };
    let sent_bytes = |e: &mut Engine<MemoryStore>| {
        let mut bytes = 0;
        while let Some((_, m)) = e.poll_transmit() {
            if let SyncMessage::Events { events } = m {
                bytes += events.iter().map(Event::encoded_len).sum::<usize>();
            }
        }
        bytes
    };
    for _ in 0..3 {
        s.anna
            .handle_message(5000, bernd, nothing_held.clone())
            .unwrap();
        let bytes = sent_bytes(&mut s.anna);
        assert!(bytes > BATCH_BYTES / 2, "answered with a batch: {bytes} B");
        assert!(bytes <= BATCH_BYTES + 4096, "at most one batch: {bytes} B");
    }
    s.anna.set_peer_congested(bernd, true);
    while s.anna.poll_transmit().is_some() {}
    for _ in 0..10 {
        s.anna
            .handle_message(5000, bernd, nothing_held.clone())
            .unwrap();
    }
    assert_eq!(sent_bytes(&mut s.anna), 0, "nothing while congested");
    assert_eq!(s.anna.stats().requests_deferred, 10);
}

/// Regression (issue 19, item 2): intake accepted a frame when a cofactorless batch check
/// passed, so a signature with a torsion component was valid in about half the frames it
/// came in and invalid alone; honest nodes disagreed, and one that passed it on was
/// charged as a forger. Now it is refused alone and in every position of every frame, so
/// no honest node stores it and none ever forwards it.
#[test]
fn a_signature_with_torsion_is_refused_alone_and_in_every_batch_position() {
    let anna_key_seed = 1;
    let mut stored_anywhere = 0;
    for genuine in 0..=4usize {
        for position in 0..=genuine {
            let mut s = setup();
            let mut texts = vec![s.text.clone()];
            for i in 0..genuine {
                let id = s
                    .anna
                    .send_text(1002 + i as u64, s.conv, &format!("Nachricht {i}"))
                    .unwrap();
                texts.push(s.anna.store().event(&id).unwrap().unwrap());
            }
            let last = texts.pop().unwrap();
            let msg = flurfunk::crypto::labelled(LABEL_EVENT_SIGNATURE, &last.signed_bytes());
            let crafted = Event::new(
                last.header.clone(),
                last.public.clone(),
                last.sealed.clone(),
                common::sign_with_torsion(anna_key_seed, &msg),
            );
            assert!(
                flurfunk::crypto::verify(
                    &crafted.header.author,
                    LABEL_EVENT_SIGNATURE,
                    &crafted.signed_bytes(),
                    &crafted.signature
                )
                .is_err(),
                "the strict check refuses a torsion component"
            );
            let mut frame = texts.clone();
            frame.insert(position, crafted.clone());
            offer(&mut s, frame);
            let held = s.bernd.store().event(&crafted.id()).unwrap();
            if held.is_some_and(|e| e.signature == crafted.signature) {
                stored_anywhere += 1;
            }
            assert_eq!(
                s.bernd.stats().invalid_events,
                1,
                "{genuine} genuine events, the crafted one at {position}"
            );
            assert_eq!(
                s.bernd.messages(&s.conv).unwrap().len(),
                texts.len(),
                "the genuine events around it are kept"
            );
        }
    }
    assert_eq!(stored_anywhere, 0, "stored in some frames");
}

/// Regression (issue 19, item 1): a node seeded its one generator with 64 bits from the OS,
/// and that generator makes every epoch key, ephemeral secret, group nonce and (public)
/// body nonce, so a recorded nonce let anyone search the seed and replay every key. The
/// seed is a 32-byte type now, and two engines built the way a node builds its own
/// (`Engine::open`), from the same identity, store and clock, share nothing.
#[test]
fn engines_built_as_a_node_builds_them_make_unrelated_keys() {
    use flurfunk::wire::RekeyBody;
    assert_eq!(std::mem::size_of::<RngSeed>(), 32, "a full 256-bit seed");
    let make = || {
        let anna = common::identity(1, "Anna");
        let mut engine = Engine::open(anna, MemoryStore::new(), Config::default(), 1000).unwrap();
        let bernd = common::identity(2, "Bernd").profile(0);
        let conv = engine.create_group(1000, "Bauhof", &[bernd]).unwrap();
        let id = engine.send_text(1001, conv, "gleicher Text").unwrap();
        let text = engine.store().event(&id).unwrap().unwrap();
        let rekey = engine
            .store()
            .events_in_order(&conv)
            .unwrap()
            .into_iter()
            .find(|e| e.header.kind == EventKind::Rekey)
            .unwrap();
        let body = RekeyBody::decode(&rekey.public).unwrap();
        (
            conv,
            text.sealed[..24].to_vec(),
            body.ephemeral,
            body.commitment,
        )
    };
    let (a, b) = (make(), make());
    assert_ne!(a.0, b.0, "group ids (from the creation nonce)");
    assert_ne!(a.1, b.1, "body nonces");
    assert_ne!(a.2, b.2, "ephemeral keys of the rekey");
    assert_ne!(a.3, b.3, "epoch keys (their commitments)");
}

/// Issue 20, item 2: a catch-up moved nearly every event twice. Each frame travels on its
/// own stream, so the small summary that asks for more overtakes the 1 MiB batch it comes
/// with, the peer's answer does not show the batch yet, and the same batch was sent again.
/// Here every round delivers Anna's frames with the batches last; Bernd must still get
/// each of 3,000 events once (the sender continues after what it sent lately).
#[test]
fn a_catch_up_whose_summaries_overtake_their_batches_sends_each_event_once() {
    const TEXTS: u64 = 3000;
    let mut s = setup();
    let text = "x".repeat(1000);
    for i in 0..TEXTS {
        s.anna.send_text(3000 + i, s.conv, &text).unwrap();
    }
    s.anna.commit(5000).unwrap();
    while s.anna.poll_transmit().is_some() {}
    let (anna, bernd) = (s.anna.user_id(), s.bernd.user_id());
    s.anna.handle_connected(5000, bernd);
    s.bernd.handle_connected(5000, anna);
    let before = s.bernd.stats().duplicate_events;
    let mut now = 5000;
    for _ in 0..200 {
        now += 10;
        let mut to_bernd: Vec<SyncMessage> = Vec::new();
        while let Some((_, m)) = s.anna.poll_transmit() {
            to_bernd.push(m);
        }
        // Small frames first: they overtake the batches.
        to_bernd.sort_by_key(|m| matches!(m, SyncMessage::Events { .. }));
        let mut to_anna: Vec<SyncMessage> = Vec::new();
        while let Some((_, m)) = s.bernd.poll_transmit() {
            to_anna.push(m);
        }
        if to_bernd.is_empty() && to_anna.is_empty() {
            break;
        }
        for m in to_bernd {
            s.bernd.handle_message(now, anna, m).unwrap();
        }
        s.bernd.commit(now).unwrap();
        for m in to_anna {
            s.anna.handle_message(now, bernd, m).unwrap();
        }
        s.anna.commit(now).unwrap();
    }
    let held = s.bernd.store().events_in_order(&s.conv).unwrap().len() as u64;
    let all = s.anna.store().events_in_order(&s.conv).unwrap().len() as u64;
    assert_eq!(held, all, "Bernd caught up");
    let duplicates = s.bernd.stats().duplicate_events - before;
    assert!(
        duplicates * 100 < TEXTS,
        "{duplicates} of {TEXTS} events arrived twice"
    );
}

/// Found by review: a batch answered from the sender's memory of what it sent, then lost
/// (dropped on the way, or held back and dropped by the peer), stalled the catch-up until
/// the next anti-entropy round, since the peer's summaries were answered with nothing.
/// The sender now compares digests again once the memory runs out.
#[test]
fn a_lost_batch_is_sent_again_once_the_senders_memory_runs_out() {
    use flurfunk::sync::SENT_MEMORY_MS;
    let mut s = setup();
    let text = "x".repeat(1000);
    for i in 0..500 {
        s.anna.send_text(3000 + i, s.conv, &text).unwrap();
    }
    s.anna.commit(5000).unwrap();
    while s.anna.poll_transmit().is_some() {}
    let (anna, bernd) = (s.anna.user_id(), s.bernd.user_id());
    s.anna.handle_connected(5000, bernd);
    s.bernd.handle_connected(5000, anna);
    let mut now = 5000;
    let mut lost_one = false;
    // Well before the next anti-entropy round (10 s): only the memory's recheck helps.
    while now < 5000 + SENT_MEMORY_MS + 2000 {
        now += 100;
        s.anna.handle_tick(now).unwrap();
        let mut to_bernd: Vec<SyncMessage> = Vec::new();
        while let Some((_, m)) = s.anna.poll_transmit() {
            // The first batch never arrives.
            if !lost_one && matches!(m, SyncMessage::Events { .. }) {
                lost_one = true;
                continue;
            }
            to_bernd.push(m);
        }
        for m in to_bernd {
            s.bernd.handle_message(now, anna, m).unwrap();
        }
        s.bernd.commit(now).unwrap();
        while let Some((_, m)) = s.bernd.poll_transmit() {
            s.anna.handle_message(now, bernd, m).unwrap();
        }
        s.anna.commit(now).unwrap();
    }
    assert!(lost_one);
    let held = s.bernd.store().events_in_order(&s.conv).unwrap().len();
    let all = s.anna.store().events_in_order(&s.conv).unwrap().len();
    assert_eq!(held, all, "the lost batch was never sent again");
}

/// A node passing group receipts on checks a signature only for a receipt that says
/// something new, and records it as seen only once it verifies: a forged copy sent first
/// must not make the genuine receipt look old (it would be dropped on the way to its
/// author, who would never see the message as delivered).
#[test]
fn a_forged_receipt_does_not_shadow_the_genuine_one() {
    use flurfunk::crypto::LABEL_RECEIPT;
    use flurfunk::wire::{Receipt, Role};
    let mut anna = common::standalone_engine(1, "Anna", Config::default());
    let mut carla = common::standalone_engine(3, "Carla", Config::default());
    let bernd = common::identity(2, "Bernd");
    let (pa, pb, pc) = (
        common::identity(1, "Anna").profile(0),
        bernd.profile(0),
        common::identity(3, "Carla").profile(0),
    );
    let conv = anna
        .create_group(1000, "Bauhof", &[pb.clone(), pc])
        .unwrap();
    anna.send_text(1001, conv, "Das Salz kommt Montag").unwrap();
    anna.commit(1002).unwrap();
    let events = anna.store().events_in_order(&conv).unwrap();
    let seq = events.last().unwrap().header.seq;
    let (ua, ub) = (anna.user_id(), bernd.user_id());
    // Carla, between Bernd and Anna, holds the group.
    for (user, profile) in [(ua, pa), (ub, pb)] {
        carla.handle_connected(2000, user);
        let hello = SyncMessage::Hello {
            role: Role::Member,
            profile,
        };
        carla.handle_message(2000, user, hello).unwrap();
    }
    carla
        .handle_message(2000, ua, SyncMessage::Events { events })
        .unwrap();
    carla.commit(2000).unwrap();
    while carla.poll_transmit().is_some() {}

    let mut receipt = Receipt {
        conversation: conv,
        author: ua,
        reader: ub,
        delivered_seq: seq,
        read: None,
        hops_left: 3,
        signature: [7; 64],
    };
    let forged = SyncMessage::Receipts {
        receipts: vec![receipt.clone()],
    };
    assert!(carla.handle_message(2001, ub, forged).is_err());
    receipt.signature = bernd.sign(LABEL_RECEIPT, &receipt.signed_bytes());
    let genuine = SyncMessage::Receipts {
        receipts: vec![receipt.clone()],
    };
    carla.handle_message(2002, ub, genuine).unwrap();
    carla.handle_tick(3000).unwrap();
    let mut passed_on = false;
    while let Some((to, m)) = carla.poll_transmit() {
        if let SyncMessage::Receipts { receipts } = m {
            passed_on |= to == ua && receipts.iter().any(|r| r.signature == receipt.signature);
        }
    }
    assert!(passed_on, "the genuine receipt was dropped as old news");
}

/// A receipt that came the long way round (the reader is not connected to the author)
/// still tells the author that a member holds its events: they leave its outbox. Before,
/// only a directly connected reader's receipt counted, and a later direct copy at the same
/// seq was no news, so the outbox kept them until the next digest comparison.
#[test]
fn a_receipt_passed_on_by_another_member_empties_the_outbox() {
    use flurfunk::crypto::LABEL_RECEIPT;
    use flurfunk::wire::{Receipt, Role};
    let mut anna = common::standalone_engine(1, "Anna", Config::default());
    let (bernd, carla) = (common::identity(2, "Bernd"), common::identity(3, "Carla"));
    let conv = anna
        .create_group(1000, "Bauhof", &[bernd.profile(0), carla.profile(0)])
        .unwrap();
    anna.send_text(1001, conv, "Das Salz kommt Montag").unwrap();
    anna.commit(1002).unwrap();
    let seq = anna
        .store()
        .events_in_order(&conv)
        .unwrap()
        .last()
        .unwrap()
        .header
        .seq;
    assert!(anna.outbox_len() > 0, "nobody holds Anna's events yet");
    // Bernd is connected; Carla is not, her receipt comes through him.
    let ub = bernd.user_id();
    anna.handle_connected(2000, ub);
    let hello = SyncMessage::Hello {
        role: Role::Member,
        profile: bernd.profile(0),
    };
    anna.handle_message(2000, ub, hello).unwrap();
    while anna.poll_transmit().is_some() {}
    let mut receipt = Receipt {
        conversation: conv,
        author: anna.user_id(),
        reader: carla.user_id(),
        delivered_seq: seq,
        read: None,
        hops_left: 7,
        signature: [0; 64],
    };
    receipt.signature = carla.sign(LABEL_RECEIPT, &receipt.signed_bytes());
    anna.handle_message(
        2001,
        ub,
        SyncMessage::Receipts {
            receipts: vec![receipt],
        },
    )
    .unwrap();
    assert_eq!(anna.outbox_len(), 0, "Carla holds every event of Anna's");
}

/// A catch-up frame's signatures are checked on several threads (`Config::verify_threads`):
/// a forged signature in the middle of 200 events is refused alone, counted once, and the
/// receiver ends up with exactly what a single-threaded check leaves it.
#[test]
fn a_forged_signature_in_a_large_frame_is_refused_the_same_on_any_number_of_threads() {
    let mut outcomes = Vec::new();
    for threads in [1, 2, 3] {
        let bernd_cfg = Config {
            verify_threads: threads,
            ..Config::default()
        };
        let (mut a, mut b, conv) = common::direct_pair(Config::default(), bernd_cfg);
        for i in 0..200 {
            a.send_text(3000 + i, conv, &format!("Zeile {i}")).unwrap();
        }
        a.commit(3300).unwrap();
        while a.poll_transmit().is_some() {}
        let mut events = a.store().events_in_order(&conv).unwrap();
        let forged = events.len() / 2;
        events[forged].signature[10] ^= 1;
        let forged = events[forged].id();
        let before = b.stats().invalid_events;
        b.handle_message(3400, a.user_id(), SyncMessage::Events { events })
            .unwrap();
        assert_eq!(b.stats().invalid_events, before + 1, "{threads} threads");
        assert!(b.store().event(&forged).unwrap().is_none());
        let held: Vec<_> = b
            .store()
            .events_in_order(&conv)
            .unwrap()
            .iter()
            .map(Event::id)
            .collect();
        outcomes.push(held);
    }
    assert!(outcomes.windows(2).all(|w| w[0] == w[1]));
    assert!(outcomes[0].len() > 90, "held {}", outcomes[0].len());
}

/// Review of issue 23, part 1: a stranger (any holder of the network key, here one that
/// claims to be a relay without a certificate, in a managed network) cannot tell which
/// conversations a node holds (a digest or a `Have` for a held conversation is answered
/// exactly as for an unknown one), nor clear the node's outbox with a summary that
/// claims to hold everything.
#[test]
fn a_stranger_learns_not_which_conversations_exist_nor_clears_an_outbox() {
    use std::collections::BTreeMap;
    let admin = flurfunk::admin::AdminKey::generate(&mut rand::rngs::OsRng);
    let anna_id = common::identity(1, "Anna");
    let anna_user = anna_id.user_id();
    let mut anna = Engine::new(
        anna_id,
        MemoryStore::new(),
        Config {
            admin_key: Some(admin.public()),
            ..Config::default()
        },
        RngSeed::fixed(1),
        1000,
    )
    .unwrap();
    let bernd = common::identity(2, "Bernd").profile(0);
    let held = anna.create_group(1000, "Bauhof", &[bernd]).unwrap();
    anna.send_text(1001, held, "Streugut ist bestellt").unwrap();
    anna.commit(1002).unwrap();
    while anna.poll_transmit().is_some() {}
    let waiting = anna.outbox_len();
    assert!(waiting > 0);
    let unknown = ConversationId([7; 32]);

    let mallory = common::identity(9, "Mallory");
    let m_user = mallory.user_id();
    anna.handle_connected(2000, m_user);
    anna.handle_message(
        2000,
        m_user,
        SyncMessage::Hello {
            role: flurfunk::wire::Role::Relay,
            profile: mallory.profile(0),
        },
    )
    .unwrap();
    while anna.poll_transmit().is_some() {}
    // What Anna answers about each conversation, by kind of frame.
    let answers = |e: &mut Engine<MemoryStore>| {
        let mut out: BTreeMap<ConversationId, usize> = BTreeMap::new();
        while let Some((to, m)) = e.poll_transmit() {
            assert_eq!(to, m_user);
            if let SyncMessage::Summary { conversations } = m {
                for (conv, vv, heads) in conversations {
                    assert!(vv.is_empty() && heads.is_empty(), "a summary shows {conv}");
                    *out.entry(conv).or_default() += 1;
                }
            }
        }
        out
    };
    anna.handle_message(
        2001,
        m_user,
        SyncMessage::Digest {
            conversations: vec![(held, [1; 16]), (unknown, [1; 16])],
        },
    )
    .unwrap();
    let by_digest = answers(&mut anna);
    assert_eq!(
        by_digest.get(&held),
        by_digest.get(&unknown),
        "{by_digest:?}"
    );
    let have = |conv| flurfunk::wire::Announce {
        conversation: conv,
        author: anna_user,
        seq: 5,
    };
    anna.handle_message(
        2002,
        m_user,
        SyncMessage::Have {
            items: vec![have(held), have(unknown)],
        },
    )
    .unwrap();
    let by_have = answers(&mut anna);
    assert_eq!(by_have.get(&held), by_have.get(&unknown), "{by_have:?}");
    // "I hold all of your events": nothing leaves the outbox.
    let all: BTreeMap<_, _> = [(anna_user, u64::MAX)].into_iter().collect();
    anna.handle_message(
        2003,
        m_user,
        SyncMessage::Summary {
            conversations: vec![(held, all.clone(), BTreeMap::new())],
        },
    )
    .unwrap();
    let by_summary = answers(&mut anna);
    anna.handle_message(
        2004,
        m_user,
        SyncMessage::Summary {
            conversations: vec![(unknown, all, BTreeMap::new())],
        },
    )
    .unwrap();
    assert_eq!(
        by_summary,
        answers(&mut anna)
            .into_values()
            .map(|n| (held, n))
            .collect()
    );
    assert_eq!(
        anna.outbox_len(),
        waiting,
        "the outbox was cleared by a stranger"
    );
}

/// Others' events are flushed at once after a quiet spell (with the receipt that follows
/// the first text) and at most every `COMMIT_INTERVAL_MS` during a burst; own events are
/// flushed at once (they are "saved" only after it).
#[test]
fn a_burst_of_others_events_shares_one_flush_and_own_events_do_not_wait() {
    use flurfunk::sync::COMMIT_INTERVAL_MS;
    let mut s = setup();
    let uid = s.anna.user_id();
    let second = s
        .anna
        .send_text(1002, s.conv, "Und der Transporter?")
        .unwrap();
    let second = s.anna.store().event(&second).unwrap().unwrap();
    let commit = |bernd: &mut Engine<MemoryStore>, now| {
        for _ in 0..3 {
            if bernd.needs_commit(now) {
                bernd.commit(now).unwrap();
            }
        }
        while bernd.poll_transmit().is_some() {}
        assert!(!bernd.needs_commit(now));
    };
    // The group's history arrived at 1000 after a quiet spell: due at once.
    assert!(s.bernd.needs_commit(1000));
    commit(&mut s.bernd, 1000);
    // The first text (2 s later) is due at once, and acknowledged.
    let text = s.text.clone();
    s.bernd
        .handle_message(3000, uid, SyncMessage::Events { events: vec![text] })
        .unwrap();
    assert!(s.bernd.needs_commit(3000));
    commit(&mut s.bernd, 3000);
    // The next one 50 ms later waits for the interval, then is due.
    s.bernd
        .handle_message(
            3050,
            uid,
            SyncMessage::Events {
                events: vec![second],
            },
        )
        .unwrap();
    assert!(!s.bernd.needs_commit(3050));
    assert!(!s.bernd.needs_commit(3000 + COMMIT_INTERVAL_MS - 1));
    assert!(s.bernd.needs_commit(3000 + COMMIT_INTERVAL_MS));
    // An own text within the interval is due at once.
    s.bernd
        .send_text(3060, s.conv, "Danke, hole ich ab")
        .unwrap();
    assert!(s.bernd.needs_commit(3060));
}
