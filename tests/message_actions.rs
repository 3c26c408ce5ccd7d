//! Replies, edits, reactions and deletion for everyone (docs/PROTOCOL.md, "Replies, edits,
//! reactions and deletion"), proven by simulation: every member shows the same newest
//! text, the same reactions and the same deletions whatever the order of arrival; a
//! deletion purges the body from every node, also one that was away, and a late node gets
//! the purged event with its deletion; a peer that strips bodies is refused; nobody edits
//! or deletes what is not theirs.

mod common;

use common::*;
use flurfunk::store::Store;
use flurfunk::sync::SyncError;
use flurfunk::wire::{ConversationId, EventId, EventKind, Role, SyncMessage};

/// Anna (admin), Bernd and Carla in the group "Bauhof", created and synced.
fn group(seed: u64) -> (Sim, [usize; 3], ConversationId) {
    three_member_group(seed, "Bauhof")
}

fn view(
    sim: &mut Sim,
    node: usize,
    conv: ConversationId,
    id: EventId,
) -> flurfunk::sync::MessageView {
    sim.nodes[node]
        .engine()
        .messages(&conv)
        .unwrap()
        .into_iter()
        .find(|m| m.event_id == id)
        .expect("message shown")
}

#[test]
fn edits_reactions_replies_and_a_deletion_read_the_same_everywhere() {
    for seed in 0..8 {
        let (mut sim, [a, b, c], conv) = group(100 + seed);
        let salt = sim.send(a, conv, "Salz kommt Dienstag");
        let wrong = sim.send(a, conv, "Passwort Drucker: 1234");
        sim.settle(20_000);
        let now = sim.now;
        let carla = sim.nodes[c].user_id;
        let reply = sim.nodes[b]
            .engine()
            .send_message(now, conv, "Danke @Carla", Some(salt), vec![carla])
            .unwrap();
        // Two edits and reactions from both sides, partly while Carla is cut off, so
        // the edits and reactions reach her in another order.
        sim.set_partition(c, 1);
        sim.nodes[a]
            .engine()
            .edit(now, conv, salt, "Salz kommt Mittwoch", vec![])
            .unwrap();
        sim.run_ms(500);
        let now = sim.now;
        sim.nodes[a]
            .engine()
            .edit(now, conv, salt, "Salz kommt Donnerstag", vec![])
            .unwrap();
        sim.nodes[b].engine().react(now, conv, salt, "👍").unwrap();
        sim.nodes[c].engine().react(now, conv, salt, "😮").unwrap();
        sim.nodes[c]
            .engine()
            .react(now + 1, conv, salt, "👍")
            .unwrap();
        sim.nodes[a]
            .engine()
            .edit(now, conv, wrong, "(falsche Gruppe)", vec![])
            .unwrap();
        sim.nodes[b].engine().react(now, conv, wrong, "😂").unwrap();
        sim.run_ms(500);
        let now = sim.now;
        sim.nodes[a]
            .engine()
            .delete_for_everyone(now, conv, wrong)
            .unwrap();
        sim.heal();
        sim.settle(60_000);
        check_invariants(&sim, conv, &[]).unwrap();
        for n in [a, b, c] {
            let m = view(&mut sim, n, conv, salt);
            assert_eq!(m.text, "Salz kommt Donnerstag", "seed {seed}, node {n}");
            assert!(m.actions.edited());
            assert_eq!(m.actions.reactions.len(), 1, "seed {seed}: {:?}", m.actions);
            assert_eq!(m.actions.reactions[0].0, "👍");
            assert_eq!(m.actions.reactions[0].1.len(), 2);
            let w = view(&mut sim, n, conv, wrong);
            assert!(w.actions.deleted && w.text.is_empty(), "seed {seed}");
            let r = view(&mut sim, n, conv, reply);
            let quote = r.actions.reply_to.expect("quote");
            assert_eq!(quote.event_id, salt);
            assert_eq!(quote.snippet, "Salz kommt Donnerstag");
            assert_eq!(r.actions.mentions, vec![carla]);
            // The deleted message's body and everything that acted on it are gone from
            // the store, its event (and chain) stays.
            let store = sim.nodes[n].engine().store();
            let held = store.event(&wrong).unwrap().expect("event kept");
            assert!(held.is_purged());
            let acting: Vec<_> = store
                .events_in_order(&conv)
                .unwrap()
                .into_iter()
                .filter(|e| e.target() == Some(wrong) && e.header.kind != EventKind::Delete)
                .collect();
            assert_eq!(acting.len(), 2, "the edit and the reaction");
            assert!(acting.iter().all(|e| e.is_purged()));
        }
        // Earlier versions stay readable to members.
        let versions = sim.nodes[b].engine().versions(&conv, &salt).unwrap();
        let texts: Vec<&str> = versions.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Salz kommt Dienstag",
                "Salz kommt Mittwoch",
                "Salz kommt Donnerstag"
            ]
        );
    }
}

#[test]
fn a_member_away_at_the_deletion_purges_when_it_comes_back_and_a_late_one_gets_it_purged() {
    let mut sim = Sim::new(7);
    let a = sim.add_node("Anna", Role::Member);
    let b = sim.add_node("Bernd", Role::Member);
    let c = sim.add_node("Carla", Role::Member);
    let d = sim.add_node("Dieter", Role::Member);
    let profiles = [sim.profile(b), sim.profile(c), sim.profile(d)];
    let now = sim.now;
    let conv = sim.nodes[a]
        .engine()
        .create_group(now, "Bauhof", &profiles)
        .unwrap();
    sim.settle(20_000);
    // Dieter is away from here on; Carla gets the message, then goes away too.
    sim.stop(d);
    let wrong = sim.send(a, conv, "Gehaltsliste.xlsx ist im Anhang");
    sim.settle(20_000);
    sim.stop(c);
    let now = sim.now;
    sim.nodes[a]
        .engine()
        .delete_for_everyone(now, conv, wrong)
        .unwrap();
    let after = sim.send(a, conv, "Sorry, falsche Gruppe");
    sim.settle(20_000);
    // Anna goes home: Bernd alone holds the conversation for the others.
    sim.stop(a);
    sim.restart(c);
    sim.restart(d);
    sim.settle(60_000);
    for n in [c, d] {
        let held = sim.nodes[n].engine().store().event(&wrong).unwrap();
        assert!(
            held.as_ref().is_some_and(|e| e.is_purged()),
            "{}: {held:?}",
            sim.nodes[n].name
        );
        let texts = sim.nodes[n].engine().messages(&conv).unwrap();
        let shown: Vec<(&str, bool)> = texts
            .iter()
            .map(|m| (m.text.as_str(), m.actions.deleted))
            .collect();
        assert_eq!(shown, [("", true), ("Sorry, falsche Gruppe", false)]);
        assert_eq!(texts[1].event_id, after);
        assert_eq!(sim.nodes[n].engine().stats().withheld_bodies, 0);
    }
    check_invariants(&sim, conv, &[]).unwrap();
}

#[test]
fn a_peer_that_strips_a_body_is_refused_and_the_message_still_arrives() {
    let (mut sim, [a, b, c], conv) = group(11);
    sim.set_partition(c, 1);
    let text = sim.send(a, conv, "Streudienst ab 4 Uhr");
    sim.settle(20_000);
    // Bernd (dishonest) hands Carla the event without its body, and no deletion.
    let stripped = sim.nodes[b]
        .engine()
        .store()
        .event(&text)
        .unwrap()
        .unwrap()
        .purge();
    sim.set_partition(c, 0);
    sim.inject(
        b,
        c,
        SyncMessage::Events {
            events: vec![stripped],
        },
    );
    sim.run_ms(50);
    let refused = sim.nodes[c].engine().stats().withheld_bodies;
    assert!(refused >= 1, "the stripped event was taken");
    sim.settle(30_000);
    let held = sim.nodes[c].engine().store().event(&text).unwrap().unwrap();
    assert!(!held.is_purged());
    let m = view(&mut sim, c, conv, text);
    assert_eq!(m.text, "Streudienst ab 4 Uhr");
    check_invariants(&sim, conv, &[]).unwrap();
}

#[test]
fn nobody_edits_or_deletes_what_is_not_theirs() {
    let (mut sim, [a, b, c], conv) = group(12);
    let annas = sim.send(a, conv, "Treffen 10 Uhr");
    let bernds = sim.send(b, conv, "Ich bringe Kaffee");
    sim.settle(20_000);
    let now = sim.now;
    // Through the API: refused.
    assert!(matches!(
        sim.nodes[b]
            .engine()
            .edit(now, conv, annas, "Treffen 11 Uhr", vec![]),
        Err(SyncError::NotYours)
    ));
    assert!(matches!(
        sim.nodes[c].engine().delete_for_everyone(now, conv, annas),
        Err(SyncError::NotYours)
    ));
    // Signed anyway (a dishonest Bernd): stored, but counts for nothing anywhere.
    let last = sim.nodes[b]
        .engine()
        .store()
        .event(&bernds)
        .unwrap()
        .unwrap();
    let lamport = last.header.lamport + 1;
    let key = last.header.key;
    let bernd = sim.nodes[b].identity();
    let forged_delete = forge(
        &bernd,
        Some(&last),
        conv,
        EventKind::Delete,
        lamport,
        0,
        annas.0.to_vec(),
        Vec::new(),
    );
    sim.inject(
        b,
        c,
        SyncMessage::Events {
            events: vec![forged_delete.clone()],
        },
    );
    sim.inject(
        b,
        a,
        SyncMessage::Events {
            events: vec![forged_delete],
        },
    );
    let _ = key;
    sim.settle(30_000);
    for n in [a, c] {
        let m = view(&mut sim, n, conv, annas);
        assert!(!m.actions.deleted);
        assert_eq!(m.text, "Treffen 10 Uhr");
        let held = sim.nodes[n]
            .engine()
            .store()
            .event(&annas)
            .unwrap()
            .unwrap();
        assert!(!held.is_purged());
    }
    // Anna, an admin of the group, may delete Bernd's message.
    let now = sim.now;
    sim.nodes[a]
        .engine()
        .delete_for_everyone(now, conv, bernds)
        .unwrap();
    sim.settle(30_000);
    for n in [a, b, c] {
        assert!(view(&mut sim, n, conv, bernds).actions.deleted);
    }
    check_invariants(&sim, conv, &[]).unwrap();
}

#[test]
fn an_edit_that_arrives_before_its_message_waits_for_it() {
    let (mut sim, [a, _b, c], conv) = group(13);
    sim.set_partition(c, 1);
    let text = sim.send(a, conv, "Abfahrt 7:00");
    sim.settle(5_000);
    let now = sim.now;
    let edit = sim.nodes[a]
        .engine()
        .edit(now, conv, text, "Abfahrt 7:30", vec![])
        .unwrap();
    sim.settle(5_000);
    // Carla gets the edit first (it waits for its chain), then everything.
    let edit_event = sim.nodes[a].engine().store().event(&edit).unwrap().unwrap();
    sim.set_partition(c, 0);
    sim.inject(
        a,
        c,
        SyncMessage::Events {
            events: vec![edit_event],
        },
    );
    sim.run_ms(20);
    sim.settle(30_000);
    let m = view(&mut sim, c, conv, text);
    assert_eq!(m.text, "Abfahrt 7:30");
    assert!(m.actions.edited());
    check_invariants(&sim, conv, &[]).unwrap();
}

/// A file in a group, as its sender announces it (the blob need not exist for the engine).
fn file_message(
    sim: &mut Sim,
    node: usize,
    conv: ConversationId,
    name: &str,
) -> (EventId, flurfunk::wire::BlobRef) {
    let size = 40_000;
    let blob = flurfunk::wire::BlobRef {
        hash: [name.len() as u8; 32],
        ct_len: flurfunk::files::ciphertext_len(size).unwrap(),
    };
    let attachment = flurfunk::wire::Attachment {
        name: name.into(),
        mime: "application/pdf".into(),
        size,
        key: flurfunk::files::FileKey::from_bytes([7; 32]),
        caption: String::new(),
        image: None,
    };
    let now = sim.now;
    let id = sim.nodes[node]
        .engine()
        .send_attachment(now, conv, blob, attachment)
        .unwrap();
    (id, blob)
}

/// Found by review: a deletion names its target by id only, and an index that did not
/// check the conversation let an admin of one group delete a text of another.
#[test]
fn a_deletion_in_one_conversation_cannot_purge_a_message_of_another() {
    let (mut sim, [a, b, c], conv) = group(21);
    let text = sim.send(a, conv, "Protokoll der Sitzung");
    // Bernd makes a group of his own with Anna (he is its admin) and deletes Anna's
    // text of the other group from there.
    let now = sim.now;
    let pa = sim.profile(a);
    let own = sim.nodes[b]
        .engine()
        .create_group(now, "Bernds Gruppe", &[pa])
        .unwrap();
    sim.settle(20_000);
    sim.send(b, own, "Hallo");
    sim.settle(5_000);
    let last = sim.nodes[b].engine().store().events_in_order(&own).unwrap();
    let last = last
        .iter()
        .rfind(|e| e.header.author == sim.nodes[b].user_id)
        .unwrap()
        .clone();
    let bernd = sim.nodes[b].identity();
    let forged = forge(
        &bernd,
        Some(&last),
        own,
        EventKind::Delete,
        last.header.lamport + 1,
        0,
        text.0.to_vec(),
        Vec::new(),
    );
    sim.inject(
        b,
        a,
        SyncMessage::Events {
            events: vec![forged],
        },
    );
    sim.settle(30_000);
    for n in [a, b, c] {
        let held = sim.nodes[n].engine().store().event(&text).unwrap().unwrap();
        assert!(!held.is_purged(), "{}", sim.nodes[n].name);
        assert_eq!(view(&mut sim, n, conv, text).text, "Protokoll der Sitzung");
    }
    check_invariants(&sim, conv, &[]).unwrap();
}

/// Found by review: anyone can name anyone's file in a text of their own; deleting that
/// text must not remove the file the real message still carries.
#[test]
fn deleting_a_copy_of_a_file_reference_keeps_the_file() {
    let (mut sim, [a, b, _c], conv) = group(22);
    let (original, blob) = file_message(&mut sim, a, conv, "Haushaltsplan.pdf");
    sim.settle(20_000);
    // Bernd posts the same file reference himself, then deletes his message.
    let held = sim.nodes[b]
        .engine()
        .store()
        .event(&original)
        .unwrap()
        .unwrap();
    let attachment = match sim.nodes[b].engine().decrypt(&held) {
        Some(flurfunk::wire::Content::Attachment(a)) => *a,
        other => panic!("{other:?}"),
    };
    let now = sim.now;
    let copy = sim.nodes[b]
        .engine()
        .send_attachment(now, conv, blob, attachment)
        .unwrap();
    sim.settle(20_000);
    let now = sim.now;
    sim.nodes[b]
        .engine()
        .delete_for_everyone(now, conv, copy)
        .unwrap();
    sim.settle(20_000);
    for n in 0..3 {
        assert!(
            sim.nodes[n].files_purged.is_empty(),
            "{} was told to remove the file",
            sim.nodes[n].name
        );
        assert!(view(&mut sim, n, conv, copy).actions.deleted);
    }
    // Anna deletes the real message: now the file goes everywhere.
    let now = sim.now;
    sim.nodes[a]
        .engine()
        .delete_for_everyone(now, conv, original)
        .unwrap();
    sim.settle(20_000);
    for n in 0..3 {
        assert_eq!(
            sim.nodes[n].files_purged,
            vec![blob],
            "{}",
            sim.nodes[n].name
        );
    }
    check_invariants(&sim, conv, &[]).unwrap();
}

#[test]
fn delete_for_me_hides_a_message_here_only_and_survives_a_restart() {
    let (mut sim, [a, b, c], conv) = group(31);
    let private = sim.send(a, conv, "Zahnarzttermin Dienstag 8 Uhr");
    sim.settle(20_000);
    let now = sim.now;
    let reply = sim.nodes[c]
        .engine()
        .send_message(now, conv, "Gute Besserung", Some(private), vec![])
        .unwrap();
    let (file, blob) = file_message(&mut sim, a, conv, "Dienstplan.pdf");
    sim.settle(20_000);
    let unread_before = sim.nodes[b].engine().unread_count(&conv).unwrap();
    // Bernd deletes Anna's text and her file for himself alone.
    sim.nodes[b].engine().delete_for_me(conv, private).unwrap();
    sim.nodes[b].engine().delete_for_me(conv, file).unwrap();
    let now = sim.now;
    sim.nodes[b].engine().commit(now).unwrap();
    sim.settle(5_000);
    assert_eq!(
        sim.nodes[b].files_purged,
        vec![blob],
        "his copy of the file"
    );
    assert!(sim.nodes[a].files_purged.is_empty() && sim.nodes[c].files_purged.is_empty());
    assert_eq!(
        sim.nodes[b].engine().unread_count(&conv).unwrap(),
        unread_before - 2
    );
    sim.stop(b);
    sim.restart(b);
    let shown = |sim: &mut Sim, n: usize| -> Vec<EventId> {
        sim.nodes[n]
            .engine()
            .messages(&conv)
            .unwrap()
            .iter()
            .map(|m| m.event_id)
            .collect()
    };
    let bernd = shown(&mut sim, b);
    assert!(!bernd.contains(&private) && !bernd.contains(&file) && bernd.contains(&reply));
    for n in [a, c] {
        let others = shown(&mut sim, n);
        assert!(others.contains(&private) && others.contains(&file));
        assert_eq!(
            sim.nodes[n]
                .engine()
                .search("zahnarzt", None, 10)
                .unwrap()
                .len(),
            1
        );
    }
    assert!(
        sim.nodes[b]
            .engine()
            .search("zahnarzt", None, 10)
            .unwrap()
            .is_empty()
    );
    // The quote of Carla's answer no longer shows the text on Bernd's screen.
    let quote = view(&mut sim, b, conv, reply).actions.reply_to.unwrap();
    assert!(quote.deleted && quote.snippet.is_empty());
    // The event stays whole in his store: he still passes it on.
    let held = sim.nodes[b]
        .engine()
        .store()
        .event(&private)
        .unwrap()
        .unwrap();
    assert!(!held.is_purged());
    assert!(matches!(
        sim.nodes[b].engine().delete_for_me(conv, private),
        Err(SyncError::NoSuchMessage)
    ));
    // Anna deletes her own file for herself: she sent it, so she keeps serving it.
    sim.nodes[a].engine().delete_for_me(conv, file).unwrap();
    sim.settle(5_000);
    assert!(sim.nodes[a].files_purged.is_empty());
    check_invariants(&sim, conv, &[]).unwrap();
}

#[test]
fn an_edit_that_adds_a_mention_tells_only_the_newly_called_once() {
    for seed in 0..4 {
        let (mut sim, [a, b, c], conv) = group(40 + seed);
        let (bernd, carla) = (sim.nodes[b].user_id, sim.nodes[c].user_id);
        let msg = sim.send(a, conv, "Wer hat den Schlüssel zum Streugutlager?");
        sim.settle(20_000);
        // Carla is away while Anna edits twice, so the edits may reach her in any order.
        sim.set_partition(c, 1);
        let now = sim.now;
        sim.nodes[a]
            .engine()
            .edit(now, conv, msg, "@Bernd wer hat den Schlüssel?", vec![bernd])
            .unwrap();
        sim.run_ms(500);
        let now = sim.now;
        sim.nodes[a]
            .engine()
            .edit(
                now,
                conv,
                msg,
                "@Bernd @Carla wer hat den Schlüssel?",
                vec![bernd, carla],
            )
            .unwrap();
        sim.run_ms(500);
        let now = sim.now;
        sim.nodes[a]
            .engine()
            .edit(
                now,
                conv,
                msg,
                "@Bernd @Carla wer hat ihn?",
                vec![bernd, carla],
            )
            .unwrap();
        sim.heal();
        sim.settle(30_000);
        assert_eq!(sim.nodes[b].mentioned, vec![msg], "seed {seed}: Bernd once");
        assert_eq!(sim.nodes[c].mentioned, vec![msg], "seed {seed}: Carla once");
        assert!(sim.nodes[a].mentioned.is_empty(), "the author is not told");
        check_invariants(&sim, conv, &[]).unwrap();
    }
}

#[test]
fn the_organisation_s_rules_stop_late_edits_and_deletion_for_everyone() {
    let (mut sim, [a, _b, _c], conv) = group(50);
    let first = sim.send(a, conv, "Sitzung um 10");
    let second = sim.send(a, conv, "Raum 2.14");
    sim.settle(5_000);
    // This computer's settings: edits within a minute, deletion within two.
    sim.config.machine_policy = flurfunk::wire::Policy {
        edit_window_s: Some(60),
        delete_window_s: Some(120),
        ..flurfunk::wire::Policy::default()
    };
    sim.stop(a);
    sim.restart(a);
    let now = sim.now;
    sim.nodes[a]
        .engine()
        .edit(now, conv, first, "Sitzung um 11", vec![])
        .unwrap();
    sim.run_ms(61_000);
    let now = sim.now;
    assert!(matches!(
        sim.nodes[a]
            .engine()
            .edit(now, conv, first, "Sitzung um 12", vec![]),
        Err(SyncError::TooLate { window }) if window == "1 minute"
    ));
    sim.nodes[a]
        .engine()
        .delete_for_everyone(now, conv, first)
        .unwrap();
    sim.run_ms(60_000);
    let now = sim.now;
    assert!(matches!(
        sim.nodes[a].engine().delete_for_everyone(now, conv, second),
        Err(SyncError::TooLate { window }) if window == "2 minutes"
    ));
    // Retention: no deletion for everyone at all; deleting for oneself stays.
    sim.config.machine_policy.delete_for_everyone = false;
    sim.config.machine_policy.delete_window_s = None;
    sim.stop(a);
    sim.restart(a);
    let now = sim.now;
    assert!(matches!(
        sim.nodes[a].engine().delete_for_everyone(now, conv, second),
        Err(SyncError::DeletionForbidden)
    ));
    sim.nodes[a].engine().delete_for_me(conv, second).unwrap();
    sim.settle(10_000);
    check_invariants(&sim, conv, &[]).unwrap();
}

/// The in-memory search index proposes and the message as it reads now decides: after
/// edits, a deletion for everyone, a deletion for me and a restart (the index rebuilt in
/// slices on the tick), the index finds exactly what the scan found before it was ready.
#[test]
fn the_search_index_finds_what_the_scan_finds() {
    let (mut sim, [a, b, c], conv) = group(60);
    let salt = sim.send(a, conv, "Streusalz kommt Dienstag");
    let road = sim.send(b, conv, "Die Straße am Bauhof ist gesperrt");
    let wrong = sim.send(a, conv, "Passwort Drucker: 1234");
    let coffee = sim.send(c, conv, "Kaffee ist alle, ich bringe Salz mit");
    let (plan, _) = file_message(&mut sim, b, conv, "Haushaltsplan.pdf");
    sim.settle(20_000);
    let now = sim.now;
    sim.nodes[a]
        .engine()
        .edit(now, conv, salt, "Streusalz kommt Mittwoch", vec![])
        .unwrap();
    sim.nodes[a]
        .engine()
        .delete_for_everyone(now, conv, wrong)
        .unwrap();
    sim.settle(20_000);
    sim.nodes[c].engine().delete_for_me(conv, road).unwrap();
    let now = sim.now;
    sim.nodes[c].engine().commit(now).unwrap();
    let queries = [
        "salz",
        "streu",
        "dienstag",
        "mittwoch",
        "strasse",
        "passwort",
        "haushalt",
        "salz kaffee",
        "al",
        "nichts",
    ];
    let found = |sim: &mut Sim, n: usize| -> Vec<Vec<EventId>> {
        queries
            .iter()
            .map(|q| {
                let mut ids: Vec<EventId> = sim.nodes[n]
                    .engine()
                    .search(q, None, 50)
                    .unwrap()
                    .iter()
                    .map(|h| h.event_id)
                    .collect();
                ids.sort();
                ids
            })
            .collect()
    };
    sim.stop(c);
    sim.restart(c);
    assert!(
        !sim.nodes[c].engine().search_index_state().0,
        "not ready at start"
    );
    let scanned = found(&mut sim, c);
    sim.run_ms(2_000);
    assert!(
        sim.nodes[c].engine().search_index_state().0,
        "built on the tick"
    );
    assert_eq!(found(&mut sim, c), scanned, "index and scan agree");
    // What they agree on is right: the newest text counts, deleted and hidden never.
    let sorted = |mut v: Vec<EventId>| {
        v.sort();
        v
    };
    assert_eq!(scanned[0], sorted(vec![salt, coffee]));
    assert!(scanned[2].is_empty(), "an old version is not found");
    assert_eq!(scanned[3], vec![salt]);
    assert!(scanned[4].is_empty(), "deleted for me");
    assert!(scanned[5].is_empty(), "deleted for everyone");
    assert_eq!(scanned[6], vec![plan]);
    assert_eq!(scanned[7], vec![coffee]);
    // Live: the others' indexes were kept up to date as the texts and the edit came in.
    for n in [a, b] {
        assert!(sim.nodes[n].engine().search_index_state().0);
        let live = found(&mut sim, n);
        assert_eq!(live[3], vec![salt], "the edit's words");
        assert_eq!(live[4], vec![road], "only Carla deleted it for herself");
        assert!(live[2].is_empty() && live[5].is_empty());
    }
}
