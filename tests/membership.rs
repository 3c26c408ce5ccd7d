//! Membership and keys against a dishonest member and against admins acting at once
//! (issue 12; the rules are in docs/PROTOCOL.md, "Events, membership and keys"). Each
//! test plays one scenario of the issue with real engines; a dishonest member signs with
//! its own key whatever it likes (any seq, clock, epoch, recipients, `seen`).

mod common;

use flurfunk::conversation::max_lamport;
use flurfunk::identity::{Identity, UserId};
use flurfunk::store::{MemoryStore, Store};
use flurfunk::sync::{Config, Engine, RngSeed};
use flurfunk::wire::{
    ComplaintBody, ConversationId, Event, EventId, EventKind, MembershipOp, RekeyBody, SyncMessage,
};
use rand::SeedableRng;

type Eng = Engine<MemoryStore>;

const ANNA: u64 = 1;
const BERND: u64 = 2;
const CARLA: u64 = 3;
const DORA: u64 = 4;
const EVE: u64 = 5;

fn ident(seed: u64) -> Identity {
    let name = ["", "Anna", "Bernd", "Carla", "Dora", "Eve"][seed as usize];
    common::identity(seed, name)
}

fn engine(seed: u64) -> Eng {
    Engine::new(
        ident(seed),
        MemoryStore::new(),
        Config::default(),
        RngSeed::fixed(seed),
        1000,
    )
    .unwrap()
}

/// Hand everything `from` holds of `conv` to `to` (as a peer would, in one frame), then
/// let `to` commit (which runs due rekeys).
fn give(from: &Eng, to: &mut Eng, conv: ConversationId, now: u64) {
    let events = from.store().events_in_order(&conv).unwrap();
    hand(to, from.user_id(), events, now);
}

fn hand(to: &mut Eng, from: UserId, events: Vec<Event>, now: u64) {
    to.handle_connected(now, from);
    to.handle_message(now, from, SyncMessage::Events { events })
        .unwrap();
    to.commit(now).unwrap();
    while to.poll_transmit().is_some() {}
}

fn members(e: &Eng, conv: &ConversationId) -> Vec<String> {
    let mut m: Vec<String> = e
        .conversation(conv)
        .map(|c| {
            c.members
                .iter()
                .map(|(p, _)| p.display_name.clone())
                .collect()
        })
        .unwrap_or_default();
    m.sort();
    m
}

fn ids(e: &Eng, conv: &ConversationId) -> Vec<EventId> {
    e.store()
        .events_in_order(conv)
        .unwrap()
        .iter()
        .map(Event::id)
        .collect()
}

/// The last event `author` holds of its own chain in `conv` (as seen by `holder`).
fn head(holder: &Eng, conv: &ConversationId, author: &UserId) -> Option<Event> {
    holder
        .store()
        .events_in_order(conv)
        .unwrap()
        .into_iter()
        .filter(|e| e.header.author == *author)
        .max_by_key(|e| e.header.seq)
}

#[allow(clippy::too_many_arguments)]
/// An event signed by `signer` as the next of its chain (as `holder` holds it), with the
/// given kind, clock and bodies: what a dishonest member can always produce.
fn forge(
    signer: &Identity,
    holder: &Eng,
    conv: ConversationId,
    kind: EventKind,
    lamport: u64,
    epoch: u32,
    public: Vec<u8>,
    sealed: Vec<u8>,
) -> Event {
    let last = head(holder, &conv, &signer.user_id());
    common::forge(
        signer,
        last.as_ref(),
        conv,
        kind,
        lamport,
        epoch,
        public,
        sealed,
    )
}

/// Let `e`'s clock pass the longest wait before a complaint (`complaint_wait_steps`: the
/// last of this group's recipients waits 2 steps) and run what is due.
fn complaints_turn(e: &mut Eng, now: u64) {
    let later = now + 10 * flurfunk::sync::COMPLAINT_STEP_MS;
    e.handle_tick(later).unwrap();
    e.commit(later).unwrap();
    while e.poll_transmit().is_some() {}
}

fn lamport_of(holder: &Eng, id: &EventId) -> u64 {
    holder
        .store()
        .event(id)
        .unwrap()
        .map(|e| e.header.lamport)
        .unwrap_or_else(|| panic!("{id:?} not held"))
}

/// Anna (admin) created "Bauhof" with Bernd, Carla and Dora, and promoted Dora; every
/// engine holds all of it.
struct Town {
    e: Vec<Eng>,
    conv: ConversationId,
}

impl Town {
    fn new() -> Town {
        let mut e: Vec<Eng> = (1..=5).map(engine).collect();
        let profiles: Vec<_> = [BERND, CARLA, DORA]
            .iter()
            .map(|s| ident(*s).profile(0))
            .collect();
        let conv = e[0].create_group(1000, "Bauhof", &profiles).unwrap();
        e[0].promote(1001, conv, &ident(DORA).user_id()).unwrap();
        e[0].commit(1001).unwrap();
        let mut t = Town { e, conv };
        t.spread(ANNA, 1002);
        t
    }

    fn i(seed: u64) -> usize {
        seed as usize - 1
    }

    /// Everyone in `to` gets what `from` holds.
    fn give(&mut self, from: u64, to: &[u64], now: u64) {
        for t in to {
            let (a, b) = (Self::i(from), Self::i(*t));
            let events = self.e[a].store().events_in_order(&self.conv).unwrap();
            let uid = self.e[a].user_id();
            hand(&mut self.e[b], uid, events, now);
        }
    }

    fn spread(&mut self, from: u64, now: u64) {
        let all: Vec<u64> = [ANNA, BERND, CARLA, DORA]
            .into_iter()
            .filter(|s| *s != from)
            .collect();
        self.give(from, &all, now);
    }

    fn eng(&mut self, seed: u64) -> &mut Eng {
        &mut self.e[Self::i(seed)]
    }

    fn text(&mut self, seed: u64, text: &str, now: u64) -> EventId {
        let conv = self.conv;
        let id = self.eng(seed).send_text(now, conv, text).unwrap();
        self.eng(seed).commit(now).unwrap();
        id
    }
}

#[test]
fn a_removed_admin_cannot_undo_its_removal_by_backdating() {
    // Dora (admin) is removed by Anna. Having seen that, Dora signs "remove Anna" with a
    // clock just before her own removal and a `seen` that claims she had not seen it.
    let mut t = Town::new();
    let conv = t.conv;
    let dora = ident(DORA).user_id();
    let anna = ident(ANNA).user_id();
    t.eng(ANNA).remove_member(2000, conv, &dora).unwrap();
    t.eng(ANNA).commit(2000).unwrap();
    t.give(ANNA, &[DORA], 2001);
    assert!(!members(&t.e[3], &conv).contains(&"Dora".to_string()));

    let removal = head(&t.e[0], &conv, &anna).unwrap(); // Anna's rekey after the removal
    let removal_lamport = lamport_of(&t.e[0], &removal.id()) - 1;
    let anna_seen = removal.header.seq - 2; // Anna's events before the removal
    let back = forge(
        &ident(DORA),
        &t.e[3],
        conv,
        EventKind::Membership,
        removal_lamport - 1,
        0,
        MembershipOp::Remove {
            user: anna,
            seen: anna_seen,
        }
        .encode(),
        Vec::new(),
    );
    let text = forge(
        &ident(DORA),
        &{
            let mut h = engine(DORA);
            hand(
                &mut h,
                dora,
                t.e[3].store().events_in_order(&conv).unwrap(),
                2002,
            );
            hand(&mut h, dora, vec![back.clone()], 2002);
            h
        },
        conv,
        EventKind::Text,
        removal_lamport - 1 + 1,
        1,
        Vec::new(),
        vec![7; 40],
    );
    // Bernd gets the backdated events first, Carla last: both end the same.
    hand(&mut t.e[1], dora, vec![back.clone(), text.clone()], 2003);
    t.give(ANNA, &[BERND, CARLA], 2004);
    hand(&mut t.e[2], dora, vec![back.clone(), text.clone()], 2005);
    for who in [BERND, CARLA] {
        let e = &t.e[Town::i(who)];
        let m = members(e, &conv);
        assert!(
            !m.contains(&"Dora".to_string()),
            "{who}: Dora is back: {m:?}"
        );
        assert!(
            !e.counts(&text.id()).unwrap(),
            "{who}: Dora's backdated text counts"
        );
    }
    assert_eq!(ids(&t.e[1], &conv), ids(&t.e[2], &conv));
    assert_eq!(members(&t.e[1], &conv), members(&t.e[2], &conv));
    // Dora cannot post either: a text of hers after the removal is outside.
    let later = forge(
        &ident(DORA),
        &t.e[3],
        conv,
        EventKind::Text,
        max_lamport(50),
        1,
        Vec::new(),
        vec![1; 40],
    );
    hand(&mut t.e[1], dora, vec![later.clone()], 2006);
    assert!(!t.e[1].counts(&later.id()).unwrap());
}

#[test]
fn a_removed_member_cannot_post_under_an_earlier_clock_in_either_order() {
    let mut t = Town::new();
    let conv = t.conv;
    let bernd = ident(BERND).user_id();
    t.text(BERND, "Bin gleich da", 1500);
    t.spread(BERND, 1501);
    // Talk moves the clock on, so there is room to date an event between Bernd's last
    // one and his removal.
    for i in 0..3 {
        t.text(CARLA, &format!("Noch {i}"), 1600 + i);
    }
    t.spread(CARLA, 1700);
    t.eng(ANNA).remove_member(2000, conv, &bernd).unwrap();
    t.eng(ANNA).commit(2000).unwrap();
    t.give(ANNA, &[BERND], 2001);
    // Bernd, removed, signs a text dated before his removal.
    let own_last = head(&t.e[1], &conv, &bernd).unwrap().header.lamport;
    let back = forge(
        &ident(BERND),
        &t.e[1],
        conv,
        EventKind::Text,
        own_last + 1,
        1,
        Vec::new(),
        vec![9; 40],
    );
    // Carla sees the backdated text before the removal, Dora after it.
    hand(&mut t.e[2], bernd, vec![back.clone()], 2002);
    t.give(ANNA, &[CARLA, DORA], 2003);
    hand(&mut t.e[3], bernd, vec![back.clone()], 2004);
    for who in [CARLA, DORA] {
        let e = &t.e[Town::i(who)];
        assert!(
            !e.counts(&back.id()).unwrap(),
            "{who}: the backdated text counts"
        );
        assert!(!members(e, &conv).contains(&"Bernd".to_string()));
    }
    assert_eq!(ids(&t.e[2], &conv), ids(&t.e[3], &conv));
    // The backdated text really sorts before the removal.
    let removal = head(&t.e[0], &conv, &ident(ANNA).user_id()).unwrap();
    assert!(back.header.lamport < removal.header.lamport - 1);
    // His text from before the removal stays: the remover had seen it.
    assert_eq!(t.e[2].messages(&conv).unwrap().len(), 4);
}

#[test]
fn a_member_cannot_switch_off_key_rotation_with_a_huge_epoch() {
    let mut t = Town::new();
    let conv = t.conv;
    let bernd = ident(BERND).user_id();
    let rekey = forge(
        &ident(BERND),
        &t.e[1],
        conv,
        EventKind::Rekey,
        100,
        u32::MAX,
        // A well-formed rekey, sealed to no one.
        RekeyBody::seal(
            &mut rand_chacha::ChaCha20Rng::seed_from_u64(7),
            &conv,
            &bernd,
            u32::MAX,
            &[0; 32],
            [],
        )
        .encode(),
        Vec::new(),
    );
    hand(&mut t.e[0], bernd, vec![rekey.clone()], 1500);
    hand(&mut t.e[2], bernd, vec![rekey.clone()], 1500);
    // The epoch is only a label: nobody writes under that rekey (it is sealed to no one),
    // and the next rotation still works.
    // Anna removes Bernd; the new key is sealed without him and he cannot open it.
    t.eng(ANNA).remove_member(2000, conv, &bernd).unwrap();
    t.eng(ANNA).commit(2000).unwrap();
    let secret = t.text(ANNA, "Neuer Schlüssel", 2001);
    t.spread(ANNA, 2002);
    let event = t.e[0].store().event(&secret).unwrap().unwrap();
    assert!(
        t.e[1].decrypt(&event).is_none(),
        "Bernd reads after removal"
    );
    assert!(t.e[2].decrypt(&event).is_some(), "Carla cannot read");
}

#[test]
fn an_extreme_clock_does_not_freeze_the_group() {
    let mut t = Town::new();
    let conv = t.conv;
    let bernd = ident(BERND).user_id();
    // The old attack: a clock of u64::MAX - 1. Rejected outright.
    let frozen = forge(
        &ident(BERND),
        &t.e[1],
        conv,
        EventKind::Text,
        u64::MAX - 1,
        1,
        Vec::new(),
        vec![1; 40],
    );
    hand(&mut t.e[0], bernd, vec![frozen.clone()], 1500);
    assert!(t.e[0].store().event(&frozen.id()).unwrap().is_none());
    // The highest clock the rules allow: accepted, and everyone keeps talking.
    let high = forge(
        &ident(BERND),
        &t.e[1],
        conv,
        EventKind::Text,
        max_lamport(1),
        1,
        Vec::new(),
        vec![1; 40],
    );
    hand(&mut t.e[0], bernd, vec![high.clone()], 1501);
    hand(&mut t.e[2], bernd, vec![high.clone()], 1501);
    assert!(t.e[0].store().event(&high.id()).unwrap().is_some());
    let after = t.text(ANNA, "Geht noch", 1600);
    t.give(ANNA, &[CARLA], 1601);
    assert!(t.e[2].store().event(&after).unwrap().is_some());
    let reply = t.text(CARLA, "Ja", 1602);
    t.give(CARLA, &[ANNA], 1603);
    assert!(t.e[0].store().event(&reply).unwrap().is_some());
    // And the offender can still be removed, with the key rotated.
    t.eng(ANNA).remove_member(1700, conv, &bernd).unwrap();
    t.eng(ANNA).commit(1700).unwrap();
    let secret = t.text(ANNA, "Ohne Bernd", 1701);
    t.give(ANNA, &[CARLA], 1702);
    assert!(!members(&t.e[2], &conv).contains(&"Bernd".to_string()));
    let event = t.e[0].store().event(&secret).unwrap().unwrap();
    assert!(t.e[2].decrypt(&event).is_some());
    assert!(t.e[1].decrypt(&event).is_none());
}

#[test]
fn two_admins_removing_at_once_both_take_effect_and_lock_both_out() {
    // Anna removes Bernd while Dora removes Carla; neither has seen the other's change.
    let mut t = Town::new();
    let conv = t.conv;
    let (bernd, carla) = (ident(BERND).user_id(), ident(CARLA).user_id());
    let a_before = t.text(ANNA, "Vor der Änderung (Anna)", 1500);
    let d_before = t.text(DORA, "Vor der Änderung (Dora)", 1500);
    t.spread(ANNA, 1501);
    t.spread(DORA, 1501);
    t.eng(ANNA).remove_member(2000, conv, &bernd).unwrap();
    t.eng(ANNA).commit(2000).unwrap();
    t.eng(DORA).remove_member(2000, conv, &carla).unwrap();
    t.eng(DORA).commit(2000).unwrap();
    let a_during = t.text(ANNA, "Während (Anna)", 2001);
    let d_during = t.text(DORA, "Während (Dora)", 2001);
    // They sync, in opposite orders.
    t.give(ANNA, &[DORA], 2100);
    t.give(DORA, &[ANNA], 2101);
    t.give(ANNA, &[DORA], 2102);
    for who in [ANNA, DORA] {
        let e = &t.e[Town::i(who)];
        assert_eq!(members(e, &conv), vec!["Anna", "Dora"], "{who}");
        // No honest message was withdrawn.
        for id in [a_before, d_before, a_during, d_during] {
            assert!(e.store().event(&id).unwrap().is_some(), "{who} lost {id:?}");
        }
    }
    assert_eq!(ids(&t.e[0], &conv), ids(&t.e[3], &conv));
    // After both changes, what either writes is sealed to neither Bernd nor Carla.
    let a_after = t.text(ANNA, "Danach (Anna)", 2200);
    let d_after = t.text(DORA, "Danach (Dora)", 2201);
    t.give(ANNA, &[DORA, BERND, CARLA], 2202);
    t.give(DORA, &[ANNA, BERND, CARLA], 2203);
    for id in [a_after, d_after] {
        let event = t.e[0]
            .store()
            .event(&id)
            .unwrap()
            .or_else(|| t.e[3].store().event(&id).unwrap())
            .unwrap();
        assert!(t.e[0].decrypt(&event).is_some() && t.e[3].decrypt(&event).is_some());
        assert!(t.e[1].decrypt(&event).is_none(), "Bernd reads {id:?}");
        assert!(t.e[2].decrypt(&event).is_none(), "Carla reads {id:?}");
    }
}

#[test]
fn a_removal_racing_an_add_or_a_leave_converges_in_either_order() {
    let mut t = Town::new();
    let conv = t.conv;
    let bernd = ident(BERND).user_id();
    // Anna removes Bernd; at the same time Dora adds Eve and Carla leaves.
    t.eng(ANNA).remove_member(2000, conv, &bernd).unwrap();
    t.eng(ANNA).commit(2000).unwrap();
    let eve = ident(EVE).profile(0);
    t.eng(DORA).add_member(2000, conv, &eve).unwrap();
    t.eng(DORA).commit(2000).unwrap();
    t.eng(CARLA).leave(2000, conv).unwrap();
    t.eng(CARLA).commit(2000).unwrap();
    // Two observers get the three changes in opposite orders.
    let mut x = engine(BERND); // an honest copy standing in for a relay: sees all
    let mut y = engine(BERND);
    for from in [ANNA, DORA, CARLA] {
        give(&t.e[Town::i(from)], &mut x, conv, 2100);
    }
    for from in [CARLA, DORA, ANNA] {
        give(&t.e[Town::i(from)], &mut y, conv, 2100);
    }
    assert_eq!(members(&x, &conv), vec!["Anna", "Dora", "Eve"]);
    assert_eq!(members(&x, &conv), members(&y, &conv));
    assert_eq!(ids(&x, &conv), ids(&y, &conv));
    // Anna, having seen all of it, writes under a key neither Bernd nor Carla holds.
    for from in [DORA, CARLA] {
        let events = t.e[Town::i(from)].store().events_in_order(&conv).unwrap();
        let uid = t.e[Town::i(from)].user_id();
        hand(&mut t.e[0], uid, events, 2200);
    }
    let after = t.text(ANNA, "Alle ohne Bernd und Carla", 2300);
    let event = t.e[0].store().event(&after).unwrap().unwrap();
    t.give(ANNA, &[BERND, CARLA, DORA], 2301);
    assert!(t.e[1].decrypt(&event).is_none(), "Bernd reads");
    assert!(t.e[2].decrypt(&event).is_none(), "Carla reads");
    assert!(t.e[3].decrypt(&event).is_some(), "Dora cannot read");
}

#[test]
fn a_rekey_with_a_key_that_does_not_match_its_commitment_is_not_opened() {
    // Bernd seals a rekey whose commitment names another key than the one he seals:
    // nobody takes that key, and Anna (lowest-id admin or writer) rotates again.
    let mut t = Town::new();
    let conv = t.conv;
    let bernd_id = ident(BERND);
    let members_now: Vec<_> = [ANNA, BERND, CARLA, DORA]
        .iter()
        .map(|s| ident(*s).profile(0))
        .collect();
    let epoch = 2; // Anna's rekey at creation was epoch 1
    // Wraps of [42; 32], a commitment to another key, and a valid proof of the
    // ephemeral key: well-formed, but nobody's wrap holds the committed key.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(13);
    let wrapper = flurfunk::crypto::KeyWrapper::new(&mut rng);
    let context = flurfunk::wire::wrap_context(&conv, &bernd_id.user_id(), epoch);
    let commitment = [7; 32];
    let body = RekeyBody {
        commitment,
        ephemeral: wrapper.ephemeral,
        possession: wrapper.prove_possession(
            &mut rng,
            &flurfunk::wire::possession_context(&context, &commitment),
        ),
        recipients: members_now
            .iter()
            .map(|p| flurfunk::wire::Wrap {
                user: p.user_id,
                dh: p.dh_public,
                wrapped: wrapper.wrap(&context, &p.dh_public, &[42; 32]).unwrap(),
            })
            .collect(),
    };
    let rekey = forge(
        &bernd_id,
        &t.e[1],
        conv,
        EventKind::Rekey,
        100,
        epoch,
        body.encode(),
        Vec::new(),
    );
    hand(&mut t.e[0], bernd_id.user_id(), vec![rekey.clone()], 1500);
    hand(&mut t.e[2], bernd_id.user_id(), vec![rekey.clone()], 1500);
    // Valid (a member may rekey) but opened by nobody; Anna writes under a new key.
    assert!(t.e[0].store().event(&rekey.id()).unwrap().is_some());
    let after = t.text(ANNA, "Nach dem falschen Schlüssel", 1600);
    t.give(ANNA, &[CARLA], 1601);
    let event = t.e[0].store().event(&after).unwrap().unwrap();
    assert!(t.e[2].decrypt(&event).is_some(), "Carla cannot read Anna");
    assert_ne!(
        event.header.epoch, epoch,
        "written under the uncommitted key"
    );
}

/// Bernd's rekey to all four members under key [42; 32], with Dora's wrap flipped (she gets
/// another key), dated as far ahead as his next seq allows: honest rekeys cannot sort
/// after it.
fn split_rekey(t: &Town, victim: u64) -> Event {
    split_rekey_for(t, &[victim])
}

/// As `split_rekey`, with every one of `victims` handed another key.
fn split_rekey_for(t: &Town, victims: &[u64]) -> Event {
    let conv = t.conv;
    let bernd = ident(BERND);
    let members = [ANNA, BERND, CARLA, DORA]
        .iter()
        .map(|s| ident(*s).profile(0))
        .map(|p| (p.user_id, p.dh_public));
    let epoch = 2;
    let mut body = RekeyBody::seal(
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(11),
        &conv,
        &bernd.user_id(),
        epoch,
        &[42; 32],
        members,
    );
    let victims: Vec<UserId> = victims.iter().map(|v| ident(*v).user_id()).collect();
    for r in body.recipients.iter_mut() {
        if victims.contains(&r.user) {
            r.wrapped[0] ^= 1;
        }
    }
    let seq = head(&t.e[1], &conv, &bernd.user_id()).map_or(1, |e| e.header.seq + 1);
    forge(
        &bernd,
        &t.e[1],
        conv,
        EventKind::Rekey,
        max_lamport(seq),
        epoch,
        body.encode(),
        Vec::new(),
    )
}

#[test]
fn a_key_split_with_a_far_ahead_clock_is_proven_wrong_and_used_by_no_one() {
    // Bernd hands Dora a different key than Anna and Carla, far ahead in the order. Dora
    // proves it (a complaint with her disclosed shared secret); from then on nobody writes
    // under Bernd's key, and Dora reads what Anna and Carla write.
    let mut t = Town::new();
    let conv = t.conv;
    let rekey = split_rekey(&t, DORA);
    let bernd = ident(BERND).user_id();
    for to in [ANNA, CARLA, DORA] {
        hand(t.eng(to), bernd, vec![rekey.clone()], 1500);
    }
    // Anna and Carla opened it; Dora did not, and complained when her turn came.
    complaints_turn(t.eng(DORA), 1500);
    let complaint = head(&t.e[3], &conv, &ident(DORA).user_id()).unwrap();
    assert_eq!(complaint.header.kind, EventKind::KeyComplaint);
    // Anna and Carla have not heard yet: they would write under Bernd's key.
    let early = t.text(CARLA, "Noch unter Bernds Schlüssel", 1550);
    let early = t.e[2].store().event(&early).unwrap().unwrap();
    assert_eq!(early.header.epoch, 2, "Carla took Bernd's key");
    for i in [0, 2] {
        while t.e[i].poll_notification().is_some() {}
    }
    t.give(DORA, &[ANNA, CARLA], 1600);
    for (i, who) in [(0, "Anna"), (2, "Carla"), (3, "Dora")] {
        assert_eq!(
            t.e[i].conversation(&conv).unwrap().wrong_keys_from,
            vec![bernd],
            "{who} does not name Bernd"
        );
    }
    // Anna and Carla are told, naming Bernd, when Dora's complaint comes in.
    for i in [0, 2] {
        let mut named = false;
        while let Some(n) = t.e[i].poll_notification() {
            if let flurfunk::sync::Notification::WrongKey { author, .. } = n {
                named |= author == bernd;
            }
        }
        assert!(named, "{} was not told", ["Anna", "", "Carla"][i]);
    }
    let from_anna = t.text(ANNA, "Für alle lesbar", 1700);
    let from_carla = t.text(CARLA, "Auch für Dora", 1701);
    t.give(ANNA, &[DORA], 1702);
    t.give(CARLA, &[DORA], 1703);
    for (i, id) in [(0, from_anna), (2, from_carla)] {
        let event = t.e[i].store().event(&id).unwrap().unwrap();
        assert_ne!(event.header.epoch, 2, "written under the split key");
        assert!(t.e[3].decrypt(&event).is_some(), "Dora cannot read");
    }
    // What Carla wrote before she heard stays unreadable for Dora (the window between a
    // split rekey and its complaint), but Anna still reads it.
    assert!(t.e[0].decrypt(&early).is_some());
    assert!(t.e[3].decrypt(&early).is_none());
}

#[test]
fn a_false_complaint_blames_no_honest_rekey() {
    // Anna rotates honestly. Bernd complains with a true proof of his own shared secret
    // (his wrap holds the committed key); Dora complains with Carla's proof claimed as
    // hers. Neither holds: everyone keeps writing under Anna's key. A second complaint of
    // Bernd's about the same rekey is refused (no one verifies proofs without end).
    let mut t = Town::new();
    let conv = t.conv;
    let rekey = t.eng(ANNA).rekey(1500, conv).unwrap();
    t.eng(ANNA).commit(1500).unwrap();
    t.spread(ANNA, 1501);
    let body = RekeyBody::decode(&rekey.public).unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
    let mut proof = |who: u64| {
        flurfunk::crypto::prove_shared(
            &mut rng,
            ident(who).dh_key(),
            &flurfunk::wire::complaint_context(&rekey.id(), &ident(who).user_id()),
            &body.ephemeral,
        )
        .unwrap()
    };
    let (bernds, carlas) = (proof(BERND), proof(CARLA));
    let complaint = |signer: u64, last: Option<&Event>, shared, lamport| {
        common::forge(
            &ident(signer),
            last,
            conv,
            EventKind::KeyComplaint,
            lamport,
            0,
            ComplaintBody {
                rekey: rekey.id(),
                shared,
            }
            .encode(),
            Vec::new(),
        )
    };
    let lamport = rekey.header.lamport + 1;
    let from_bernd = complaint(
        BERND,
        head(&t.e[1], &conv, &ident(BERND).user_id()).as_ref(),
        bernds.clone(),
        lamport,
    );
    let again = complaint(BERND, Some(&from_bernd), bernds, lamport + 1);
    let from_dora = complaint(
        DORA,
        head(&t.e[3], &conv, &ident(DORA).user_id()).as_ref(),
        carlas,
        lamport,
    );
    for to in [ANNA, CARLA] {
        hand(
            t.eng(to),
            ident(BERND).user_id(),
            vec![from_bernd.clone(), again.clone()],
            1600,
        );
        hand(
            t.eng(to),
            ident(DORA).user_id(),
            vec![from_dora.clone()],
            1600,
        );
        // Stored (well-formed), but they prove nothing; the repeat is refused.
        let store = t.e[Town::i(to)].store();
        assert!(store.event(&from_bernd.id()).unwrap().is_some());
        assert!(store.event(&from_dora.id()).unwrap().is_some());
        assert!(store.event(&again.id()).unwrap().is_none());
    }
    let after = t.text(CARLA, "Weiter mit Annas Schlüssel", 1700);
    let after = t.e[2].store().event(&after).unwrap().unwrap();
    assert_eq!(after.header.epoch, rekey.header.epoch);
    t.give(CARLA, &[DORA], 1701);
    assert!(t.e[3].decrypt(&after).is_some());
    for i in [0, 2] {
        assert!(
            t.e[i]
                .conversation(&conv)
                .unwrap()
                .wrong_keys_from
                .is_empty()
        );
    }
}

#[test]
fn a_rekey_with_a_borrowed_ephemeral_key_is_invalid() {
    // Bernd copies Anna's ephemeral key (and its proof) into a rekey of his own, hoping
    // a victim's complaint discloses its shared secret with Anna's key: refused by all.
    let mut t = Town::new();
    let conv = t.conv;
    let anna_rekey = t.eng(ANNA).rekey(1500, conv).unwrap();
    t.eng(ANNA).commit(1500).unwrap();
    t.spread(ANNA, 1501);
    let mut body = RekeyBody::decode(&anna_rekey.public).unwrap();
    body.recipients[0].wrapped[0] ^= 1;
    let bernd = ident(BERND);
    let borrowed = forge(
        &bernd,
        &t.e[1],
        conv,
        EventKind::Rekey,
        anna_rekey.header.lamport + 1,
        anna_rekey.header.epoch + 1,
        body.encode(),
        Vec::new(),
    );
    hand(t.eng(CARLA), bernd.user_id(), vec![borrowed.clone()], 1600);
    assert!(t.e[2].store().event(&borrowed.id()).unwrap().is_none());
}

#[test]
fn a_second_version_of_an_event_is_detected_by_its_chain() {
    let mut t = Town::new();
    let conv = t.conv;
    let anna = ident(ANNA).user_id();
    let first = t.text(BERND, "Version eins", 1500);
    t.give(BERND, &[ANNA], 1501);
    // Bernd's key signs another event with the same seq.
    let without_first: Vec<Event> = t.e[0]
        .store()
        .events_in_order(&conv)
        .unwrap()
        .into_iter()
        .filter(|e| e.id() != first)
        .collect();
    let mut fork_base = engine(BERND);
    hand(&mut fork_base, anna, without_first, 1503);
    let twin = forge(
        &ident(BERND),
        &fork_base,
        conv,
        EventKind::Text,
        max_lamport(1),
        1,
        Vec::new(),
        vec![2; 40],
    );
    hand(
        &mut t.e[0],
        ident(BERND).user_id(),
        vec![twin.clone()],
        1504,
    );
    // The lower id wins (which one that is depends on the generator's draws, so both
    // ways are asserted by the rule, not by a lucky seed).
    let (winner, loser) = if twin.id() < first {
        (twin.id(), first)
    } else {
        (first, twin.id())
    };
    assert!(t.e[0].store().event(&winner).unwrap().is_some());
    assert!(t.e[0].store().event(&loser).unwrap().is_none());
    assert_eq!(t.e[0].stats().equivocations, 1);
}

#[test]
fn a_removed_admin_cannot_remove_anyone_but_its_remover() {
    // Dora, removed by Anna, answers by removing Anna (a counter-removal looks exactly
    // like honest concurrency, so both hold) and also Bernd and Carla: those two must
    // stay, and so must the history of everyone.
    let mut t = Town::new();
    let conv = t.conv;
    let dora = ident(DORA).user_id();
    let before = t.text(BERND, "Vorher", 1500);
    t.spread(BERND, 1501);
    t.eng(ANNA).remove_member(2000, conv, &dora).unwrap();
    t.eng(ANNA).commit(2000).unwrap();
    t.give(ANNA, &[DORA, BERND, CARLA], 2001);
    let mut dora_view = engine(DORA);
    hand(
        &mut dora_view,
        dora,
        t.e[3].store().events_in_order(&conv).unwrap(),
        2002,
    );
    let mut forged: Vec<Event> = Vec::new();
    let dora_last = head(&dora_view, &conv, &dora);
    // What Dora had seen of each: Anna up to just before the removal, Bernd's text.
    // Dated just before her removal (after her promotion, or they would not count at all).
    let anna_last = head(&t.e[0], &conv, &ident(ANNA).user_id()).unwrap();
    let (anna_seen, l) = (anna_last.header.seq - 2, anna_last.header.lamport - 2);
    for (target, seen, lamport) in [(ANNA, anna_seen, l), (BERND, 1, l + 1), (CARLA, 0, l + 2)] {
        let e = common::forge(
            &ident(DORA),
            forged.last().or(dora_last.as_ref()),
            conv,
            EventKind::Membership,
            lamport,
            0,
            MembershipOp::Remove {
                user: ident(target).user_id(),
                seen,
            }
            .encode(),
            Vec::new(),
        );
        forged.push(e);
    }
    assert_eq!(forged.len(), 3);
    hand(&mut t.e[1], dora, forged.clone(), 2004);
    hand(
        &mut t.e[2],
        dora,
        forged.clone().into_iter().rev().collect(),
        2004,
    );
    // Dora's counter-removal of Anna holds (it cannot be told from concurrency); her
    // removals of Bernd and Carla do not.
    assert!(t.e[1].store().event(&forged[0].id()).unwrap().is_some());
    // Whoever is admin now rotates the key (Anna is gone too); they compare notes.
    t.give(BERND, &[CARLA], 2005);
    t.give(CARLA, &[BERND], 2006);
    for who in [BERND, CARLA] {
        let e = &t.e[Town::i(who)];
        let m = members(e, &conv);
        assert!(m.contains(&"Bernd".to_string()), "{who}: {m:?}");
        assert!(m.contains(&"Carla".to_string()), "{who}: {m:?}");
        assert!(!m.contains(&"Dora".to_string()), "{who}: {m:?}");
        assert!(e.store().event(&before).unwrap().is_some(), "{who}");
    }
    assert_eq!(members(&t.e[1], &conv), members(&t.e[2], &conv));
    assert_eq!(ids(&t.e[1], &conv), ids(&t.e[2], &conv));
}

/// Move frames between two engines until both are quiet, with anti-entropy ticks.
fn converse(a: &mut Eng, b: &mut Eng, mut now: u64) -> u64 {
    let (ua, ub) = (a.user_id(), b.user_id());
    a.handle_connected(now, ub);
    b.handle_connected(now, ua);
    for _ in 0..40 {
        let mut moved = false;
        while let Some((to, msg)) = a.poll_transmit() {
            if to == ub {
                b.handle_message(now, ua, msg).unwrap();
                moved = true;
            }
        }
        while let Some((to, msg)) = b.poll_transmit() {
            if to == ua {
                a.handle_message(now, ub, msg).unwrap();
                moved = true;
            }
        }
        a.commit(now).unwrap();
        b.commit(now).unwrap();
        now += 1_000;
        if !moved {
            // Let anti-entropy compare digests again.
            now += 30_000;
            a.handle_tick(now).unwrap();
            b.handle_tick(now).unwrap();
        }
    }
    now
}

#[test]
fn two_halves_holding_different_versions_settle_on_one_through_digests() {
    // Bernd's key signs two versions of his next message (and a follow-up on each);
    // Anna gets one version, Carla the other. They only compare digests and summaries,
    // as in normal anti-entropy, and must end with the same events, and both name Bernd.
    let mut t = Town::new();
    let conv = t.conv;
    let bernd = ident(BERND);
    let last = head(&t.e[1], &conv, &bernd.user_id());
    let fork = |text: u8, lamport: u64| {
        let first = common::forge(
            &bernd,
            last.as_ref(),
            conv,
            EventKind::Text,
            lamport,
            1,
            Vec::new(),
            vec![text; 40],
        );
        let second = common::forge(
            &bernd,
            Some(&first),
            conv,
            EventKind::Text,
            lamport + 1,
            1,
            Vec::new(),
            vec![text + 1; 40],
        );
        (first, second)
    };
    let (a1, a2) = fork(10, 100);
    let (b1, b2) = fork(20, 101);
    hand(
        &mut t.e[0],
        bernd.user_id(),
        vec![a1.clone(), a2.clone()],
        1500,
    );
    hand(
        &mut t.e[2],
        bernd.user_id(),
        vec![b1.clone(), b2.clone()],
        1500,
    );
    let (mut anna, mut carla) = (t.e.remove(0), t.e.remove(1));
    while anna.poll_notification().is_some() {}
    while carla.poll_notification().is_some() {}
    converse(&mut anna, &mut carla, 2000);
    assert_eq!(ids(&anna, &conv), ids(&carla, &conv));
    let carla_lost = a1.id() < b1.id();
    let (win, lose) = if carla_lost {
        ((a1, a2), (b1, b2))
    } else {
        ((b1, b2), (a1, a2))
    };
    for e in [&anna, &carla] {
        assert!(e.store().event(&win.0.id()).unwrap().is_some());
        assert!(e.store().event(&lose.0.id()).unwrap().is_none());
        assert!(e.store().event(&lose.1.id()).unwrap().is_none());
    }
    // The one that held the losing version names Bernd.
    let loser_side = if carla_lost { &mut carla } else { &mut anna };
    let mut named = false;
    while let Some(n) = loser_side.poll_notification() {
        if let flurfunk::sync::Notification::Equivocation { author, .. } = n {
            named |= author == bernd.user_id();
        }
    }
    assert!(named, "the equivocating author was not named");
}

/// Bernd pushes the clock to the cap of a long chain; Anna removes Carla and adds her
/// back. Carla's next seq is low, yet her message must sort after her add and count
/// everywhere (before: she could not write at all, "you are not a member").
#[test]
fn a_member_added_back_after_a_pushed_clock_can_write() {
    let mut t = Town::new();
    let conv = t.conv;
    let bernd = ident(BERND).user_id();
    let carla = ident(CARLA).user_id();
    // Bernd, with a long chain, pushes the clock as far as the rules allow.
    for i in 0..5 {
        t.text(BERND, &format!("Meldung {i}"), 1100 + i);
    }
    let seq = head(&t.e[1], &conv, &bernd).unwrap().header.seq + 1;
    let high = forge(
        &ident(BERND),
        &t.e[1],
        conv,
        EventKind::Text,
        max_lamport(seq),
        1,
        Vec::new(),
        vec![1; 40],
    );
    let chain = t.e[1].store().events_in_order(&conv).unwrap();
    hand(&mut t.e[0], bernd, chain, 1200);
    hand(&mut t.e[0], bernd, vec![high], 1200);
    t.spread(ANNA, 1201);
    t.eng(ANNA).remove_member(1300, conv, &carla).unwrap();
    t.eng(ANNA).commit(1300).unwrap();
    t.spread(ANNA, 1301);
    assert!(!members(&t.e[0], &conv).contains(&"Carla".to_string()));
    let profile = ident(CARLA).profile(0);
    t.eng(ANNA).add_member(1400, conv, &profile).unwrap();
    t.eng(ANNA).commit(1400).unwrap();
    t.spread(ANNA, 1401);
    assert!(members(&t.e[2], &conv).contains(&"Carla".to_string()));
    // Carla's clock for her next event lies far below the add's: the cap lets her follow.
    let id = t.text(CARLA, "Wieder da", 1500);
    t.spread(CARLA, 1501);
    for who in [ANNA, BERND, CARLA, DORA] {
        let e = &t.e[Town::i(who)];
        assert!(
            e.counts(&id).unwrap(),
            "{who}: Carla's message does not count"
        );
        assert!(
            e.messages(&conv).unwrap().iter().any(|m| m.event_id == id),
            "{who}: Carla's message is not shown"
        );
    }
}

/// Dora (admin) adds Eve while Anna removes Dora, having seen nothing of that add: the add
/// is refuted. Eve, who heard only of her add, must be told (as a removed member is), or
/// she believes herself a member for good.
#[test]
fn a_member_whose_add_was_refuted_is_told() {
    let mut t = Town::new();
    let conv = t.conv;
    let dora = ident(DORA).user_id();
    t.eng(DORA)
        .add_member(1100, conv, &ident(EVE).profile(0))
        .unwrap();
    t.eng(DORA).commit(1100).unwrap();
    let events = t.e[3].store().events_in_order(&conv).unwrap();
    hand(&mut t.e[4], dora, events, 1101);
    assert!(t.e[4].conversation(&conv).is_some_and(|c| c.is_member));
    // Anna removes Dora without having seen the add.
    t.eng(ANNA).remove_member(1102, conv, &dora).unwrap();
    t.eng(ANNA).commit(1102).unwrap();
    t.give(DORA, &[ANNA], 1103);
    assert!(!members(&t.e[0], &conv).contains(&"Eve".to_string()));
    // Eve and Anna compare what they hold; Anna answers with what tells her.
    let (left, right) = t.e.split_at_mut(4);
    converse(&mut left[0], &mut right[0], 1200);
    assert!(
        !t.e[4].conversation(&conv).is_some_and(|c| c.is_member),
        "Eve still believes herself a member"
    );
}

/// The chat says who changed the group (`Engine::timeline_before`), the same on every
/// member and on the member who was removed; renames that repeat the name say nothing.
#[test]
fn the_chat_says_who_added_removed_and_promoted_whom() {
    use flurfunk::conversation::Notice;
    let mut t = Town::new();
    let conv = t.conv;
    let (anna, carla, dora) = (
        ident(ANNA).user_id(),
        ident(CARLA).user_id(),
        ident(DORA).user_id(),
    );
    let notices = |e: &Eng| -> Vec<(UserId, Notice)> {
        e.timeline_before(&conv, None, 100)
            .unwrap()
            .into_iter()
            .filter_map(|m| m.notice.map(|n| (m.author, n)))
            .collect()
    };
    let mut expected = vec![(anna, Notice::Created), (anna, Notice::Promoted(dora))];
    assert_eq!(notices(&t.e[1]), expected);
    t.eng(ANNA).remove_member(2000, conv, &carla).unwrap();
    t.eng(ANNA).commit(2000).unwrap();
    t.spread(ANNA, 2001);
    expected.push((anna, Notice::Removed(carla)));
    for (i, who) in [(1, "Bernd"), (2, "Carla (removed)"), (3, "Dora")] {
        assert_eq!(notices(&t.e[i]), expected, "{who}");
    }
    t.eng(ANNA)
        .add_member(2100, conv, &ident(CARLA).profile(0))
        .unwrap();
    t.eng(ANNA).commit(2100).unwrap();
    t.eng(ANNA).rename(2200, conv, "Bauhof Nord").unwrap();
    t.eng(ANNA).commit(2200).unwrap();
    t.spread(ANNA, 2201);
    expected.push((anna, Notice::Added(carla)));
    expected.push((anna, Notice::Renamed("Bauhof Nord".into())));
    for i in 0..4 {
        assert_eq!(notices(&t.e[i]), expected, "engine {i}");
    }
    // The message list without notices is unchanged.
    assert!(
        t.e[1]
            .messages(&conv)
            .unwrap()
            .iter()
            .all(|m| m.notice.is_none())
    );
}

/// Bernd signs a second, invalid version of a message Anna holds, with the lower id: it
/// wins (the chain ends before it) and Anna gives hers up. After a restart Anna must not
/// take the given-up version back when Bernd offers it again (before, the winner was
/// remembered in memory only).
#[test]
fn a_given_up_version_stays_given_up_after_a_restart() {
    let mut t = Town::new();
    let conv = t.conv;
    let bernd = ident(BERND);
    let before = head(&t.e[1], &conv, &bernd.user_id());
    let kept = t.text(BERND, "Die erste Fassung", 1500);
    let kept = t.e[1].store().event(&kept).unwrap().unwrap();
    t.give(BERND, &[ANNA], 1501);
    // A twin at the same seq that no one may accept (a text without encryption), with
    // a lower id than the one Anna holds.
    let twin = (0..64)
        .map(|n| {
            common::forge(
                &bernd,
                before.as_ref(),
                conv,
                EventKind::Text,
                kept.header.lamport + n,
                0,
                Vec::new(),
                Vec::new(),
            )
        })
        .find(|e| e.id() < kept.id())
        .expect("a lower id within 64 tries");
    hand(&mut t.e[0], bernd.user_id(), vec![twin.clone()], 1600);
    assert!(t.e[0].store().event(&kept.id()).unwrap().is_none());
    assert!(t.e[0].store().event(&twin.id()).unwrap().is_none());
    // Anna restarts from what is on disk.
    let disk = t.e[0].store().crash_copy();
    let mut anna = Engine::new(
        ident(ANNA),
        disk,
        Config::default(),
        RngSeed::fixed(1),
        1700,
    )
    .unwrap();
    hand(&mut anna, bernd.user_id(), vec![kept.clone()], 1700);
    assert!(
        anna.store().event(&kept.id()).unwrap().is_none(),
        "the given-up version was taken back after the restart"
    );
}

/// Regression (issue 19, item 9): while still a member, Carla signs a valid rekey under a
/// key she chose, sealed to the members she expects after her removal and not to herself,
/// so nobody writes under it while she is in. Anna removes her. Bernd hears of the
/// removal before Anna's rotation (through anyone who holds it): the members were then
/// exactly Carla's recipient list, her rekey was picked as the current key, and Bernd
/// wrote under a key Carla knows. A rekey whose author is not among its recipients (so
/// not among the members) is never the current key.
#[test]
fn a_key_planted_before_a_removal_is_not_used_after_it() {
    let mut t = Town::new();
    let conv = t.conv;
    let carla = ident(CARLA);
    let planted = [66u8; 32];
    let expected_after: Vec<(UserId, [u8; 32])> = [ANNA, BERND, DORA]
        .iter()
        .map(|s| ident(*s).profile(0))
        .map(|p| (p.user_id, p.dh_public))
        .collect();
    let epoch = 2;
    let body = RekeyBody::seal(
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(21),
        &conv,
        &carla.user_id(),
        epoch,
        &planted,
        expected_after,
    );
    let seq = head(&t.e[2], &conv, &carla.user_id()).map_or(1, |e| e.header.seq + 1);
    let rekey = forge(
        &carla,
        &t.e[2],
        conv,
        EventKind::Rekey,
        max_lamport(seq).min(1_500),
        epoch,
        body.encode(),
        Vec::new(),
    );
    for to in [ANNA, BERND, DORA] {
        hand(t.eng(to), carla.user_id(), vec![rekey.clone()], 1500);
    }
    assert!(
        t.e[1].store().event(&rekey.id()).unwrap().is_some(),
        "valid"
    );
    // While Carla is in, nobody writes under it (it is not sealed to her).
    let before = t.text(BERND, "Carla ist noch da", 1600);
    let planted_key = flurfunk::crypto::EpochKey::from_bytes(planted);
    let opens = |e: &Event| {
        planted_key
            .decrypt(&Event::body_aad(&e.header, &e.public), &e.sealed)
            .is_ok()
    };
    assert!(!opens(&t.e[1].store().event(&before).unwrap().unwrap()));

    t.eng(ANNA)
        .remove_member(2000, conv, &carla.user_id())
        .unwrap();
    t.eng(ANNA).commit(2000).unwrap();
    // Bernd gets Anna's removal, not yet the rotation that follows it.
    let anna = ident(ANNA).user_id();
    let removal: Vec<Event> = t.e[0]
        .store()
        .events_in_order(&conv)
        .unwrap()
        .into_iter()
        .filter(|e| {
            !(e.header.author == anna
                && e.header.kind == EventKind::Rekey
                && e.header.wall_ms >= 2000)
        })
        .collect();
    hand(t.eng(BERND), anna, removal, 2001);
    assert!(!members(&t.e[1], &conv).contains(&"Carla".to_string()));
    let after = t.text(BERND, "Carla ist weg", 2002);
    let event = t.e[1].store().event(&after).unwrap().unwrap();
    assert!(
        !opens(&event),
        "Bernd wrote under the key Carla planted before her removal"
    );
    // And it reaches the others under a key they share.
    t.give(BERND, &[ANNA, DORA], 2003);
    assert!(t.e[0].decrypt(&event).is_some(), "Anna cannot read Bernd");
    assert!(t.e[3].decrypt(&event).is_some(), "Dora cannot read Bernd");
}

/// Regression (issue 19, item 10): a removed plain member can make others store at most
/// `MAX_OUTSIDE_EVENTS` more events, but a removed admin's counter-removals of its
/// remover each held (they cannot be told from honest concurrency), so all 150 were
/// stored, each with a full rebuild. They count against the same bound now.
#[test]
fn a_removed_admin_cannot_make_others_store_more_than_the_outside_bound() {
    use flurfunk::conversation::MAX_OUTSIDE_EVENTS;
    let mut t = Town::new();
    let conv = t.conv;
    let dora = ident(DORA).user_id();
    t.eng(ANNA).remove_member(2000, conv, &dora).unwrap();
    t.eng(ANNA).commit(2000).unwrap();
    t.give(ANNA, &[DORA, BERND], 2001);
    let dora_last = head(&t.e[3], &conv, &dora);
    let dora_seq_before = dora_last.as_ref().map_or(0, |e| e.header.seq);
    let anna_last = head(&t.e[0], &conv, &ident(ANNA).user_id()).unwrap();
    let (anna_seen, l) = (anna_last.header.seq - 2, anna_last.header.lamport - 2);
    let mut forged: Vec<Event> = Vec::new();
    for i in 0..150u64 {
        let e = common::forge(
            &ident(DORA),
            forged.last().or(dora_last.as_ref()),
            conv,
            EventKind::Membership,
            l + i,
            0,
            MembershipOp::Remove {
                user: ident(ANNA).user_id(),
                seen: anna_seen,
            }
            .encode(),
            Vec::new(),
        );
        forged.push(e);
    }
    for chunk in forged.chunks(10) {
        hand(&mut t.e[1], dora, chunk.to_vec(), 2004);
    }
    let stored = t.e[1]
        .store()
        .events_in_order(&conv)
        .unwrap()
        .into_iter()
        .filter(|e| e.header.author == dora && e.header.seq > dora_seq_before)
        .count() as u64;
    // The first "remove the remover" is free (an honest mutual removal must never fail
    // at the bound); every repeat counts.
    assert!(
        stored <= MAX_OUTSIDE_EVENTS + 1,
        "a removed admin made Bernd store {stored} events (bound {MAX_OUTSIDE_EVENTS} + 1)"
    );
    assert!(
        stored >= 1,
        "the first counter-removal is kept (it may be honest)"
    );
    assert!(!members(&t.e[1], &conv).contains(&"Dora".to_string()));
}

/// Issue 19, item 6: a complaint discloses the complainer's shared secret with the rekey's
/// ephemeral key, so where an author used one ephemeral key in two rekeys, a complaint
/// about one would open the complainer's wrap in the other for anyone. Dora does not
/// complain then; instead both rekeys are blamed by everyone who holds both (else the
/// split would never be blamed: found by a review of the first version of this rule), and
/// nobody writes under either.
#[test]
fn no_complaint_about_a_rekey_whose_ephemeral_key_was_used_twice() {
    let mut t = Town::new();
    let conv = t.conv;
    let bernd = ident(BERND);
    let members: Vec<(UserId, [u8; 32])> = [ANNA, BERND, CARLA, DORA]
        .iter()
        .map(|s| ident(*s).profile(0))
        .map(|p| (p.user_id, p.dh_public))
        .collect();
    // The same generator state: the same ephemeral key in both.
    let seal = |epoch, key: &[u8; 32]| {
        RekeyBody::seal(
            &mut rand_chacha::ChaCha20Rng::seed_from_u64(11),
            &conv,
            &bernd.user_id(),
            epoch,
            key,
            members.clone(),
        )
    };
    let first = seal(2, &[42; 32]);
    let mut second = seal(3, &[43; 32]);
    assert_eq!(first.ephemeral, second.ephemeral);
    let dora = ident(DORA).user_id();
    for r in second.recipients.iter_mut() {
        if r.user == dora {
            r.wrapped[0] ^= 1;
        }
    }
    let seq = head(&t.e[1], &conv, &bernd.user_id()).map_or(1, |e| e.header.seq + 1);
    let r1 = common::forge(
        &bernd,
        head(&t.e[1], &conv, &bernd.user_id()).as_ref(),
        conv,
        EventKind::Rekey,
        max_lamport(seq),
        2,
        first.encode(),
        Vec::new(),
    );
    let r2 = common::forge(
        &bernd,
        Some(&r1),
        conv,
        EventKind::Rekey,
        max_lamport(seq + 1),
        3,
        second.encode(),
        Vec::new(),
    );
    for to in [ANNA, CARLA, DORA] {
        hand(
            t.eng(to),
            bernd.user_id(),
            vec![r1.clone(), r2.clone()],
            1500,
        );
    }
    complaints_turn(t.eng(DORA), 1500);
    let complained = t.e[3]
        .store()
        .events_in_order(&conv)
        .unwrap()
        .into_iter()
        .any(|e| e.header.author == dora && e.header.kind == EventKind::KeyComplaint);
    assert!(
        !complained,
        "Dora disclosed her shared secret with a reused key"
    );
    assert!(
        t.e[0]
            .conversation(&conv)
            .unwrap()
            .wrong_keys_from
            .contains(&bernd.user_id()),
        "Bernd's reused ephemeral key is not blamed"
    );
    // Anna opened both, yet writes under neither: Dora reads her.
    let text = t.text(ANNA, "Für alle lesbar", 1600);
    t.give(ANNA, &[DORA], 1601);
    let event = t.e[0].store().event(&text).unwrap().unwrap();
    assert_ne!(event.header.key, r1.id());
    assert_ne!(event.header.key, r2.id());
    assert!(t.e[3].decrypt(&event).is_some(), "Dora cannot read Anna");
}

/// Regression (issue 19, item 3): a body was opened with any key held under its epoch
/// label, so a member could make a rekey sealed to some members only (with the group's
/// epoch label) and write under it: those members saw an ordinary group message, the
/// others nothing. A body names its key now, is opened with that key only, and a text
/// under a key that did not reach every member is marked as such, the same on every node.
#[test]
fn a_text_under_a_key_sealed_to_some_members_is_not_shown_as_a_group_message() {
    let mut t = Town::new();
    let conv = t.conv;
    let bernd = ident(BERND);
    let honest = t.text(ANNA, "An alle", 1400);
    t.spread(ANNA, 1401);
    let some: Vec<(UserId, [u8; 32])> = [ANNA, BERND]
        .iter()
        .map(|s| ident(*s).profile(0))
        .map(|p| (p.user_id, p.dh_public))
        .collect();
    let key = [77u8; 32];
    let epoch = 2;
    let body = RekeyBody::seal(
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(31),
        &conv,
        &bernd.user_id(),
        epoch,
        &key,
        some,
    );
    let last = head(&t.e[1], &conv, &bernd.user_id());
    let seq = last.as_ref().map_or(1, |e| e.header.seq + 1);
    let rekey = common::forge(
        &bernd,
        last.as_ref(),
        conv,
        EventKind::Rekey,
        max_lamport(seq).min(1_500),
        epoch,
        body.encode(),
        Vec::new(),
    );
    let text = common::forge_text_under(
        &bernd,
        Some(&rekey),
        conv,
        1_501,
        epoch,
        rekey.id(),
        &flurfunk::crypto::EpochKey::from_bytes(key),
        "Nur für Anna",
    );
    for to in [ANNA, CARLA] {
        hand(
            t.eng(to),
            bernd.user_id(),
            vec![rekey.clone(), text.clone()],
            1600,
        );
    }
    // The live notification carries the mark too (the app's toast, the CLI line).
    let mut told = None;
    while let Some(n) = t.e[0].poll_notification() {
        if let flurfunk::sync::Notification::Message {
            event_id,
            for_some_members,
            ..
        } = n
            && event_id == text.id()
        {
            told = Some(for_some_members);
        }
    }
    assert_eq!(told, Some(true), "Anna was told of it as a group message");
    let shown = |e: &Eng| e.messages(&conv).unwrap();
    let anna_view = shown(&t.e[0]);
    let partial = anna_view
        .iter()
        .find(|m| m.event_id == text.id())
        .expect("Anna can read it");
    assert!(
        partial.for_some_members,
        "shown to Anna as a message to the whole group"
    );
    let honest_view = anna_view.iter().find(|m| m.event_id == honest).unwrap();
    assert!(!honest_view.for_some_members, "an honest message is marked");
    assert!(
        shown(&t.e[2]).iter().all(|m| m.event_id != text.id()),
        "Carla cannot read it (she was not given the key)"
    );
    // Every node decides the same: also after a rebuild from the store.
    let rebuilt = flurfunk::conversation::ConversationState::rebuild(
        conv,
        t.e[2].store().events_in_order(&conv).unwrap(),
        None,
    )
    .0;
    assert!(rebuilt.for_some_members(&text));
    assert!(!rebuilt.for_some_members(&t.e[2].store().event(&honest).unwrap().unwrap()));
}

/// Regression (issue 19, item 11): a member who signs two versions of one rekey made what
/// others wrote under the losing version's key unreadable for everyone, its writers
/// included (the losing version was deleted with its key). The losing rekey is kept apart,
/// read-only, also across a restart: what was written under it stays readable (marked, as
/// not every member holds that key).
#[test]
fn what_was_written_under_a_rekey_that_lost_an_equivocation_stays_readable() {
    let mut t = Town::new();
    let conv = t.conv;
    let bernd = ident(BERND);
    let members: Vec<(UserId, [u8; 32])> = [ANNA, BERND, CARLA, DORA]
        .iter()
        .map(|s| ident(*s).profile(0))
        .map(|p| (p.user_id, p.dh_public))
        .collect();
    let last = head(&t.e[1], &conv, &bernd.user_id());
    let seq = last.as_ref().map_or(1, |e| e.header.seq + 1);
    let version = |rng_seed: u64, key: &[u8; 32]| {
        let body = RekeyBody::seal(
            &mut rand_chacha::ChaCha20Rng::seed_from_u64(rng_seed),
            &conv,
            &bernd.user_id(),
            2,
            key,
            members.clone(),
        );
        common::forge(
            &bernd,
            last.as_ref(),
            conv,
            EventKind::Rekey,
            max_lamport(seq),
            2,
            body.encode(),
            Vec::new(),
        )
    };
    let (a, b) = (version(41, &[41; 32]), version(42, &[42; 32]));
    let (winner, loser) = if a.id() < b.id() { (a, b) } else { (b, a) };
    for to in [ANNA, CARLA] {
        hand(t.eng(to), bernd.user_id(), vec![loser.clone()], 1500);
    }
    let text = t.text(ANNA, "Unter dem verlorenen Schlüssel", 1600);
    t.give(ANNA, &[CARLA], 1601);
    let event = t.e[0].store().event(&text).unwrap().unwrap();
    assert_eq!(
        event.header.key,
        loser.id(),
        "written under the losing version"
    );
    for to in [ANNA, CARLA] {
        hand(t.eng(to), bernd.user_id(), vec![winner.clone()], 1700);
    }
    for who in [ANNA, CARLA] {
        let e = &t.e[Town::i(who)];
        assert!(
            e.store().event(&loser.id()).unwrap().is_none(),
            "{who}: kept the loser"
        );
        assert!(
            e.decrypt(&event).is_some(),
            "{who}: the text became unreadable"
        );
        let shown = e.messages(&conv).unwrap();
        let m = shown.iter().find(|m| m.event_id == text).expect("shown");
        assert!(m.for_some_members, "{who}: not every member holds that key");
    }
    // After a restart too.
    let anna = std::mem::replace(&mut t.e[0], engine(ANNA));
    let restarted = Engine::new(
        ident(ANNA),
        anna.into_store(),
        Config::default(),
        RngSeed::fixed(9),
        1800,
    )
    .unwrap();
    assert!(
        restarted.decrypt(&event).is_some(),
        "unreadable after a restart"
    );
}

/// Found by the review of issue 19: Dora, removed by Anna, counter-removes Anna with
/// `seen` 0. Both removals hold (mutual), so Anna's whole chain is outside; when every
/// event outside counted against `MAX_OUTSIDE_EVENTS`, Anna's chain was cut at her 65th
/// event, which dropped her removal of Dora itself, and Dora was back in with Anna out.
/// Still open: the bound must not cut the chain of a member who is outside only by a
/// counter-removal, but while Anna's history streams in, nothing yet shows that Dora's
/// removal of her is a counter-removal (Anna's removal of Dora comes last), and a node that
/// cut the chain cannot serve the rest. The planned fix keeps the header of each event
/// beyond the bound (a header that commits to its body's hash, issue 22), so the chain is
/// never cut. This test fails today (Bernd drops Anna's removal of Dora).
#[test]
#[ignore = "open flaw, see docs/PROTOCOL.md: 'A removed admin and a remover with a long history'"]
fn a_counter_removal_cannot_cut_the_removers_long_history() {
    use flurfunk::conversation::MAX_OUTSIDE_EVENTS;
    let mut t = Town::new();
    let conv = t.conv;
    let (anna, dora) = (ident(ANNA).user_id(), ident(DORA).user_id());
    let mut now = 1500;
    for i in 0..MAX_OUTSIDE_EVENTS + 36 {
        t.text(ANNA, &format!("Dienstplan {i}"), now);
        now += 1;
    }
    t.spread(ANNA, now);
    t.eng(ANNA).remove_member(now + 1, conv, &dora).unwrap();
    t.eng(ANNA).commit(now + 1).unwrap();
    t.give(ANNA, &[BERND, CARLA], now + 2);
    let removal = t.e[0]
        .store()
        .events_in_order(&conv)
        .unwrap()
        .into_iter()
        .find(|e| {
            e.header.author == anna
                && matches!(MembershipOp::decode(&e.public), Ok(MembershipOp::Remove { user, .. }) if user == dora)
        })
        .expect("Anna's removal of Dora");
    // Dora never saw Anna's removal and claims she saw nothing of Anna either.
    let counter = common::forge(
        &ident(DORA),
        head(&t.e[3], &conv, &dora).as_ref(),
        conv,
        EventKind::Membership,
        removal.header.lamport - 1,
        0,
        MembershipOp::Remove {
            user: anna,
            seen: 0,
        }
        .encode(),
        Vec::new(),
    );
    hand(&mut t.e[1], dora, vec![counter.clone()], now + 3);
    let mut late = engine(CARLA);
    hand(&mut late, dora, vec![], now + 3);
    // A node that gets the counter-removal first and Anna's history after it.
    let mut events = t.e[0].store().events_in_order(&conv).unwrap();
    events.insert(0, counter.clone());
    hand(&mut late, anna, events.clone(), now + 4);
    for (who, e) in [("Bernd", &t.e[1]), ("late", &late)] {
        let held = e.store().events_in_order(&conv).unwrap();
        assert!(
            held.iter().any(|x| x.id() == removal.id()),
            "{who}: Anna's removal of Dora was dropped"
        );
        let anna_held = held.iter().filter(|x| x.header.author == anna).count();
        assert!(
            anna_held >= events.iter().filter(|x| x.header.author == anna).count(),
            "{who}: Anna's chain was cut ({anna_held} held)"
        );
        assert!(
            !members(e, &conv).contains(&"Dora".to_string()),
            "{who}: Dora is back in: {:?}",
            members(e, &conv)
        );
    }
    assert_eq!(ids(&t.e[1], &conv), ids(&late, &conv));
}

/// Issue 19, item 6: a rekey with n wrong wraps made all n victims complain at once (n
/// proofs for every member to check, n events). Victims now wait their turn by rank and
/// stop once the rekey is blamed: here all three others are wronged, the first in rank
/// complains at once, and the two others, who hear of it within their wait, never do.
#[test]
fn victims_of_one_rekey_complain_in_turn_and_stop_once_it_is_blamed() {
    let victims = [ANNA, CARLA, DORA];
    let count = |e: &Eng, conv: &ConversationId, who: u64| {
        e.store()
            .events_in_order(conv)
            .unwrap()
            .into_iter()
            .filter(|e| {
                e.header.author == ident(who).user_id() && e.header.kind == EventKind::KeyComplaint
            })
            .count()
    };
    // Without news of each other, every victim complains once its turn has come.
    let mut t = Town::new();
    let conv = t.conv;
    let rekey = split_rekey_for(&t, &victims);
    let bernd = ident(BERND).user_id();
    for v in victims {
        hand(t.eng(v), bernd, vec![rekey.clone()], 1500);
    }
    let at_once: Vec<u64> = victims
        .into_iter()
        .filter(|v| count(&t.e[Town::i(*v)], &conv, *v) == 1)
        .collect();
    assert_eq!(
        at_once.len(),
        1,
        "exactly the first in rank complains at once: {at_once:?}"
    );
    for v in victims {
        complaints_turn(t.eng(v), 1500);
        assert_eq!(count(&t.e[Town::i(v)], &conv, v), 1, "{v} never complained");
    }
    // With news: the first complaint reaches the others before their turn.
    let mut t = Town::new();
    let rekey = split_rekey_for(&t, &victims);
    for v in victims {
        hand(t.eng(v), bernd, vec![rekey.clone()], 1500);
    }
    let first = at_once[0];
    let first_uid = ident(first).user_id();
    let complaint = head(&t.e[Town::i(first)], &conv, &first_uid).unwrap();
    assert_eq!(complaint.header.kind, EventKind::KeyComplaint);
    for v in victims.into_iter().filter(|v| *v != first) {
        hand(t.eng(v), first_uid, vec![complaint.clone()], 1600);
        complaints_turn(t.eng(v), 1600);
        assert_eq!(
            count(&t.e[Town::i(v)], &conv, v),
            0,
            "{v} complained after the rekey was blamed"
        );
        assert_eq!(
            t.e[Town::i(v)].conversation(&conv).unwrap().wrong_keys_from,
            vec![bernd],
            "{v} does not name Bernd"
        );
    }
}

/// Found by the review of the wait above: Bernd wrongs Dora and himself, complains about
/// his own rekey (his complaint holds, so it is blamed and Dora, waiting her turn, drops
/// her complaint), then equivocates the complaint away with another event of lower id.
/// The rekey is current again for Anna and Carla; Dora must complain after all.
#[test]
fn a_complaint_equivocated_away_makes_the_victims_complain_after_all() {
    let mut t = Town::new();
    let conv = t.conv;
    let bernd = ident(BERND);
    let rekey = split_rekey_for(&t, &[BERND, DORA]);
    let body = RekeyBody::decode(&rekey.public).unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(21);
    let own = ComplaintBody {
        rekey: rekey.id(),
        shared: flurfunk::crypto::prove_shared(
            &mut rng,
            bernd.dh_key(),
            &flurfunk::wire::complaint_context(&rekey.id(), &bernd.user_id()),
            &body.ephemeral,
        )
        .unwrap(),
    };
    let lamport = rekey.header.lamport + 1;
    let complaint = common::forge(
        &bernd,
        Some(&rekey),
        conv,
        EventKind::KeyComplaint,
        lamport,
        0,
        own.encode(),
        Vec::new(),
    );
    // The same seq again: a text under his rekey's key (no control event, so nothing but
    // the replacement itself can make Dora look again), with a lower id.
    let mut other = None;
    let key = flurfunk::crypto::EpochKey::from_bytes([42; 32]);
    for l in lamport..lamport + 1000 {
        let e = common::forge_text_under(
            &bernd,
            Some(&rekey),
            conv,
            l,
            rekey.header.epoch,
            rekey.id(),
            &key,
            "Alles gut",
        );
        if e.id() < complaint.id() {
            other = Some(e);
            break;
        }
    }
    let other = other.expect("a version with a lower id");
    let dora = ident(DORA).user_id();
    let complained = |e: &Eng| {
        e.store().events_in_order(&conv).unwrap().iter().any(|c| {
            c.header.author == dora
                && c.header.kind == EventKind::KeyComplaint
                && ComplaintBody::decode(&c.public).is_ok_and(|b| b.rekey == rekey.id())
        })
    };
    hand(
        t.eng(DORA),
        bernd.user_id(),
        vec![rekey.clone(), complaint],
        1500,
    );
    complaints_turn(t.eng(DORA), 1500);
    assert!(
        !complained(&t.e[3]),
        "Dora complained about a rekey already blamed"
    );
    hand(t.eng(DORA), bernd.user_id(), vec![other.clone()], 1600);
    assert!(
        t.e[3].store().event(&other.id()).unwrap().is_some(),
        "the lower id won"
    );
    complaints_turn(t.eng(DORA), 1600);
    assert!(
        complained(&t.e[3]),
        "Dora stays silent about a split key no longer blamed"
    );
}
