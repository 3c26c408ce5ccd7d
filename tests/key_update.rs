//! Key updates (issue 19, item 7): a member replaces its X25519 key, so that a copy of its
//! key file taken before opens no key made after; history stays readable, also once the
//! old key is deleted and after a restart. The rules are in docs/PROTOCOL.md, "Key
//! updates".

mod common;

use flurfunk::conversation::MAX_EARLIER_KEYS;
use flurfunk::identity::{Identity, UserId};
use flurfunk::store::{MemoryStore, Store};
use flurfunk::sync::{Config, Engine, RETIRED_KEY_GRACE_MS, RngSeed};
use flurfunk::wire::{ConversationId, Event, EventKind, MembershipOp, SyncMessage};
use zeroize::Zeroizing;

type Eng = Engine<MemoryStore>;

const ANNA: u64 = 1;
const BERND: u64 = 2;
const CARLA: u64 = 3;

const NAMES: [&str; 4] = ["", "Anna", "Bernd", "Carla"];

fn ident(seed: u64) -> Identity {
    common::identity(seed, NAMES[seed as usize])
}

fn engine(seed: u64) -> Eng {
    common::standalone_engine(seed, NAMES[seed as usize], Config::default())
}

/// Restart `e[who]` from its key file (saved and loaded again) and its store; returns the
/// restarted engine and how many replaced keys the loaded file kept.
fn restart_from_key_file(e: &mut [Eng], who: usize, now: u64) -> (Eng, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.key");
    e[who].identity().save_new(&path).unwrap();
    let loaded = Identity::load(&path).unwrap();
    assert_eq!(loaded.dh_public(), e[who].identity().dh_public());
    let retired = loaded.retired_count();
    let seed = who as u64 + 1;
    let old = std::mem::replace(&mut e[who], engine(seed));
    let restarted = Engine::new(
        loaded,
        old.into_store(),
        Config::default(),
        RngSeed::fixed(9),
        now,
    )
    .unwrap();
    (restarted, retired)
}

/// `to` takes `events` from `from` in one frame, without committing (which would run
/// what is due: a thief's copy would sign a key update of its own).
fn take(to: &mut Eng, from: UserId, events: Vec<Event>, now: u64) {
    to.handle_connected(now, from);
    to.handle_message(now, from, SyncMessage::Events { events })
        .unwrap();
    while to.poll_transmit().is_some() {}
}

fn all_events(e: &Eng, conv: &ConversationId) -> Vec<Event> {
    e.store().events_in_order(conv).unwrap()
}

fn give(from: &Eng, to: &mut Eng, conv: &ConversationId, now: u64) {
    take(to, from.user_id(), all_events(from, conv), now);
    to.commit(now).unwrap();
    while to.poll_transmit().is_some() {}
}

/// The texts `e` can read in `conv`, oldest first.
fn texts(e: &Eng, conv: &ConversationId) -> Vec<String> {
    all_events(e, conv)
        .iter()
        .filter(|ev| ev.header.kind == EventKind::Text)
        .filter_map(|ev| match e.decrypt(ev)? {
            flurfunk::wire::Content::Text { text, .. } => Some(text),
            _ => None,
        })
        .collect()
}

fn rekeys_by(e: &Eng, conv: &ConversationId, author: &UserId) -> usize {
    all_events(e, conv)
        .iter()
        .filter(|ev| ev.header.kind == EventKind::Rekey && ev.header.author == *author)
        .count()
}

fn secret(byte: u8) -> Zeroizing<[u8; 32]> {
    Zeroizing::new([byte; 32])
}

/// Anna's group "Bauhof" with Bernd and Carla; everyone holds it and Bernd wrote "vorher".
fn bauhof() -> (Vec<Eng>, ConversationId) {
    let mut e: Vec<Eng> = [ANNA, BERND, CARLA].into_iter().map(engine).collect();
    let profiles = [ident(BERND).profile(0), ident(CARLA).profile(0)];
    let conv = e[0].create_group(1000, "Bauhof", &profiles).unwrap();
    e[0].commit(1000).unwrap();
    let (a, rest) = e.split_at_mut(1);
    for other in rest.iter_mut() {
        give(&a[0], other, &conv, 1001);
    }
    e[1].send_text(1002, conv, "vorher").unwrap();
    e[1].commit(1002).unwrap();
    let (first, rest) = e.split_at_mut(1);
    give(&rest[0], &mut first[0], &conv, 1003);
    let (b, c) = rest.split_at_mut(1);
    give(&b[0], &mut c[0], &conv, 1003);
    (e, conv)
}

/// Bernd updates his key and everyone gets his update and rekey.
fn bernd_updates(e: &mut [Eng], conv: &ConversationId, now: u64) {
    e[1].update_key(now, secret(0x5a), |_| Ok::<(), String>(()))
        .unwrap();
    e[1].commit(now).unwrap();
    e[1].commit(now).unwrap();
    let (a, rest) = e.split_at_mut(1);
    let (b, c) = rest.split_at_mut(1);
    give(&b[0], &mut a[0], conv, now + 1);
    give(&b[0], &mut c[0], conv, now + 1);
}

#[test]
fn a_key_update_locks_a_copied_key_file_out_of_what_comes_after() {
    let (mut e, conv) = bauhof();
    let bernd = ident(BERND).user_id();
    let before = rekeys_by(&e[0], &conv, &bernd);
    bernd_updates(&mut e, &conv, 2000);
    assert_eq!(
        rekeys_by(&e[0], &conv, &bernd),
        before + 1,
        "Bernd's update brings a rekey of his"
    );
    let update = all_events(&e[0], &conv)
        .into_iter()
        .filter(|ev| ev.header.author == bernd && ev.header.kind == EventKind::Membership)
        .find_map(|ev| match MembershipOp::decode(&ev.public) {
            Ok(MembershipOp::KeyUpdate { profile }) => Some(profile),
            _ => None,
        })
        .expect("Bernd's key update is held by Anna");
    assert_eq!(update.dh_public, e[1].identity().dh_public());
    assert_ne!(update.dh_public, ident(BERND).dh_public());

    e[0].send_text(2100, conv, "nachher").unwrap();
    e[0].commit(2100).unwrap();
    let (a, rest) = e.split_at_mut(1);
    give(&a[0], &mut rest[0], &conv, 2101);
    give(&a[0], &mut rest[1], &conv, 2101);
    assert_eq!(
        texts(&e[1], &conv),
        ["vorher", "nachher"],
        "Bernd reads both"
    );
    assert_eq!(
        texts(&e[2], &conv),
        ["vorher", "nachher"],
        "Carla reads both"
    );

    // A copy of Bernd's key file from before the update, given everything Anna holds.
    let mut thief = engine(BERND);
    take(&mut thief, e[0].user_id(), all_events(&e[0], &conv), 2200);
    assert_eq!(
        texts(&thief, &conv),
        ["vorher"],
        "the old key file opens what was written after the update"
    );
}

#[test]
fn history_stays_readable_once_the_old_key_is_deleted_and_after_a_restart() {
    let (mut e, conv) = bauhof();
    bernd_updates(&mut e, &conv, 2000);
    e[0].send_text(2100, conv, "nachher").unwrap();
    e[0].commit(2100).unwrap();
    let (a, rest) = e.split_at_mut(1);
    give(&a[0], &mut rest[0], &conv, 2101);

    // Within the grace period nothing is deleted.
    assert!(
        !e[1]
            .drop_expired_keys(2000 + RETIRED_KEY_GRACE_MS - 1)
            .unwrap()
    );
    assert_eq!(e[1].identity().retired_count(), 1);
    let later = 2000 + RETIRED_KEY_GRACE_MS;
    assert!(e[1].drop_expired_keys(later).unwrap());
    assert_eq!(e[1].identity().retired_count(), 0, "the old key is deleted");
    // Sealed at rest: only keys the deleted key opened (a copy of the old key file
    // opens those anyway), none opened with the new key.
    let bernd = ident(BERND).user_id();
    let sealed: Vec<_> = e[1].store().sealed_keys().unwrap();
    assert!(!sealed.is_empty());
    for (id, _) in &sealed {
        let rekey = e[1].store().event(id).unwrap().unwrap();
        let body = flurfunk::wire::RekeyBody::decode(&rekey.public).unwrap();
        assert_eq!(
            body.wrap_for(&bernd).map(|w| w.dh),
            Some(ident(BERND).dh_public()),
            "a key opened with the new key is sealed at rest"
        );
    }
    assert_eq!(texts(&e[1], &conv), ["vorher", "nachher"]);

    // Restart from the key file and the store.
    let (restarted, retired) = restart_from_key_file(&mut e, 1, later);
    assert_eq!(retired, 0);
    assert_eq!(
        texts(&restarted, &conv),
        ["vorher", "nachher"],
        "history after deleting the old key and a restart"
    );
}

#[test]
fn the_old_key_is_kept_in_the_key_file_until_it_is_deleted() {
    let (mut e, conv) = bauhof();
    bernd_updates(&mut e, &conv, 2000);
    // A rekey Anna made before she saw the update, wrapped to Bernd's old key, opens for
    // the restarted Bernd from the retired key.
    let (restarted, retired) = restart_from_key_file(&mut e, 1, 2500);
    assert_eq!(retired, 1);
    assert_eq!(texts(&restarted, &conv), ["vorher"]);
    assert!(
        restarted
            .conversation(&conv)
            .is_some_and(|c| c.members.len() == 3)
    );
}

#[test]
fn a_key_update_for_someone_else_is_refused_and_a_stale_one_changes_nothing() {
    let (mut e, conv) = bauhof();
    let carla = ident(CARLA);
    let mut last = all_events(&e[0], &conv)
        .into_iter()
        .filter(|ev| ev.header.author == carla.user_id())
        .max_by_key(|ev| ev.header.seq);
    let mut anna = ident(ANNA);
    anna.replace_dh(secret(7), 5000);
    let mut old_carla = ident(CARLA);
    old_carla.replace_dh(secret(8), 0);
    let update = |profile, last: Option<&Event>, lamport| {
        common::forge(
            &carla,
            last,
            conv,
            EventKind::Membership,
            lamport,
            0,
            MembershipOp::KeyUpdate { profile }.encode(),
            Vec::new(),
        )
    };
    let forged = update(anna.profile(5000), last.as_ref(), 900_000);
    let invalid = e[0].stats().invalid_events;
    take(&mut e[0], carla.user_id(), vec![forged.clone()], 3000);
    assert!(
        e[0].store().event(&forged.id()).unwrap().is_none(),
        "a key update carrying someone else's profile was stored"
    );
    assert!(e[0].stats().invalid_events > invalid);
    // Not newer than the profile held, or the same key: valid (an add may have carried
    // the newest profile already), and nothing changes.
    for (why, profile, lamport) in [
        ("not newer", old_carla.profile(0), 900_001),
        ("the same key", ident(CARLA).profile(5000), 900_002),
    ] {
        let stale = update(profile, last.as_ref(), lamport);
        take(&mut e[0], carla.user_id(), vec![stale.clone()], 3000);
        assert!(e[0].store().event(&stale.id()).unwrap().is_some(), "{why}");
        last = Some(stale);
    }
    let key = e[0]
        .conversation(&conv)
        .unwrap()
        .members
        .iter()
        .find(|(p, _)| p.user_id == carla.user_id())
        .map(|(p, _)| p.dh_public);
    assert_eq!(
        key,
        Some(carla.dh_public()),
        "a stale update changed the key"
    );
}

#[test]
fn key_updates_in_a_row_make_nobody_else_rotate() {
    let (mut e, conv) = bauhof();
    let anna = e[0].user_id();
    let carla = ident(CARLA);
    let before = rekeys_by(&e[0], &conv, &anna);
    let mut last = all_events(&e[0], &conv)
        .into_iter()
        .filter(|ev| ev.header.author == carla.user_id())
        .max_by_key(|ev| ev.header.seq);
    let mut flooder = ident(CARLA);
    for i in 0..MAX_EARLIER_KEYS as u8 {
        let lamport = 10_000 + u64::from(i);
        flooder.replace_dh(secret(0x20 + i), 0);
        let update = common::forge(
            &carla,
            last.as_ref(),
            conv,
            EventKind::Membership,
            lamport,
            0,
            MembershipOp::KeyUpdate {
                profile: flooder.profile(5000 + u64::from(i)),
            }
            .encode(),
            Vec::new(),
        );
        take(&mut e[0], carla.user_id(), vec![update.clone()], 3000);
        e[0].commit(3000).unwrap();
        assert!(e[0].store().event(&update.id()).unwrap().is_some());
        last = Some(update);
    }
    assert_eq!(
        rekeys_by(&e[0], &conv, &anna),
        before,
        "Anna rotated for Carla's key updates"
    );
    // Anna still writes under the key Carla can open with her earlier key.
    e[0].send_text(3100, conv, "weiter").unwrap();
    e[0].commit(3100).unwrap();
    assert_eq!(rekeys_by(&e[0], &conv, &anna), before);
}

#[test]
fn a_rekey_that_sorts_after_the_update_but_wraps_the_old_key_is_not_used() {
    let (mut e, conv) = bauhof();
    let old_bernd = ident(BERND).dh_public();
    bernd_updates(&mut e, &conv, 2000);
    // Carla (who did not see the update, or pretends not to) rotates with Bernd's old key
    // and a clock far ahead: her rekey sorts after his update and his rekey.
    let carla = ident(CARLA);
    let last = all_events(&e[0], &conv)
        .into_iter()
        .filter(|ev| ev.header.author == carla.user_id())
        .max_by_key(|ev| ev.header.seq);
    let seq = last.as_ref().map_or(1, |l| l.header.seq + 1);
    let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(77);
    let members = [
        (ident(ANNA).user_id(), ident(ANNA).dh_public()),
        (ident(BERND).user_id(), old_bernd),
        (carla.user_id(), carla.dh_public()),
    ];
    let body =
        flurfunk::wire::RekeyBody::seal(&mut rng, &conv, &carla.user_id(), 50, &[9; 32], members);
    let rekey = common::forge(
        &carla,
        last.as_ref(),
        conv,
        EventKind::Rekey,
        flurfunk::conversation::max_lamport(seq),
        50,
        body.encode(),
        Vec::new(),
    );
    take(&mut e[0], carla.user_id(), vec![rekey.clone()], 2100);
    e[0].commit(2100).unwrap();
    assert!(e[0].store().event(&rekey.id()).unwrap().is_some());
    let text = e[0].send_text(2200, conv, "an alle").unwrap();
    let text = e[0].store().event(&text).unwrap().unwrap();
    assert_ne!(
        text.header.key,
        rekey.id(),
        "Anna writes under a key wrapped to Bernd's replaced key"
    );
    let used = e[0].store().event(&text.header.key).unwrap().unwrap();
    let body = flurfunk::wire::RekeyBody::decode(&used.public).unwrap();
    assert_eq!(
        body.wrap_for(&ident(BERND).user_id()).map(|w| w.dh),
        Some(e[1].identity().dh_public())
    );
}

#[test]
fn a_key_file_that_cannot_be_saved_leaves_the_key_as_it_was() {
    let (mut e, conv) = bauhof();
    let before = e[1].identity().dh_public();
    let failed = e[1].update_key(2000, secret(0x5a), |_| Err("disk full"));
    assert!(failed.is_err());
    assert_eq!(e[1].identity().dh_public(), before);
    assert_eq!(e[1].identity().retired_count(), 0);
    e[1].commit(2000).unwrap();
    let bernd = e[1].user_id();
    assert!(
        !all_events(&e[1], &conv)
            .iter()
            .any(|ev| ev.header.author == bernd
                && matches!(
                    MembershipOp::decode(&ev.public),
                    Ok(MembershipOp::KeyUpdate { .. })
                )),
        "an update signed for a key that was never saved"
    );
}

#[test]
fn a_key_update_is_shown_in_the_chat() {
    let (mut e, conv) = bauhof();
    bernd_updates(&mut e, &conv, 2000);
    let lines = e[0].timeline_before(&conv, None, 50).unwrap();
    assert!(
        lines.iter().any(|m| m.author == ident(BERND).user_id()
            && m.notice == Some(flurfunk::conversation::Notice::KeyChanged)),
        "Anna is not told that Bernd has a new key"
    );
}

#[test]
fn an_update_after_an_add_with_the_newest_profile_is_a_valid_no_op() {
    // Anna removes Bernd and adds him back with his newest profile (which already holds
    // his new key) while Bernd, unaware, signs his update, which sorts after the add: it
    // is then not newer than what the add put in. Invalid, it would cut Bernd's chain and
    // withdraw everything he writes after it; it must be a no-op.
    let (mut e, conv) = bauhof();
    let bernd = ident(BERND);
    e[1].update_key(2000, secret(0x5a), |_| Ok::<(), String>(()))
        .unwrap();
    let newest = e[1].profile().clone();
    e[0].remove_member(2001, conv, &bernd.user_id()).unwrap();
    e[0].commit(2001).unwrap();
    e[0].add_member(2002, conv, &newest).unwrap();
    e[0].commit(2002).unwrap();
    let last = all_events(&e[0], &conv)
        .into_iter()
        .filter(|ev| ev.header.author == bernd.user_id())
        .max_by_key(|ev| ev.header.seq);
    let seq = last.as_ref().map_or(1, |l| l.header.seq + 1);
    let update = common::forge(
        &bernd,
        last.as_ref(),
        conv,
        EventKind::Membership,
        flurfunk::conversation::max_lamport(seq),
        0,
        MembershipOp::KeyUpdate { profile: newest }.encode(),
        Vec::new(),
    );
    let invalid = e[0].stats().invalid_events;
    take(&mut e[0], bernd.user_id(), vec![update.clone()], 2003);
    assert_eq!(
        e[0].stats().invalid_events,
        invalid,
        "the update was refused"
    );
    assert!(e[0].store().event(&update.id()).unwrap().is_some());
    assert!(members_of(&e[0], &conv).contains(&bernd.user_id()));
}

fn members_of(e: &Eng, conv: &ConversationId) -> Vec<UserId> {
    e.conversation(conv)
        .map(|c| c.members.iter().map(|(p, _)| p.user_id).collect())
        .unwrap_or_default()
}
