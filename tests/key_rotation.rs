//! Network key rotation between real nodes on 127.0.0.1 (mDNS off; docs/PROTOCOL.md,
//! "Network key rotation"): the admin revokes a colleague and rotates the key; a
//! colleague offline at the switch returns within the overlap, gets in with the old key,
//! is given the new one and caught up; after the overlap every node uses the new key,
//! and a node with only the old one (the revoked colleague, or a fresh identity of hers)
//! reaches nobody, while an installation made with the new key file gets in.

mod support;

use std::time::Duration;

use flurfunk::admin::AdminKey;
use flurfunk::identity::UserId;
use flurfunk::net::NetworkKey;
use flurfunk::node::now_ms;
use flurfunk::wire::Role;
use support::{eventually, spawn_with, wait_text};

async fn sleep_until(at_ms: u64) {
    let now = now_ms();
    if at_ms > now {
        tokio::time::sleep(Duration::from_millis(at_ms - now)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_shuts_out_the_old_key_and_a_colleague_back_within_the_overlap_is_caught_up() {
    let admin = AdminKey::generate(&mut rand::rngs::OsRng);
    let old = support::test_key().with_admin(admin.public());
    let anna = spawn_with("Anna", &[], old, Role::Member).await;
    let ben = spawn_with("Ben", &[&anna], old, Role::Member).await;
    let cora = spawn_with("Cora", &[&anna], old, Role::Member).await;
    let mallory = spawn_with("Mallory", &[&anna], old, Role::Member).await;
    anna.knows(&[&ben, &cora, &mallory]).await;
    ben.knows(&[&cora]).await;
    let to_cora = ben.handle.open_direct(cora.user()).await.unwrap();
    ben.handle
        .send_text(to_cora, "vor dem Wechsel".into())
        .await
        .unwrap();
    wait_text(&cora, to_cora, "vor dem Wechsel").await;

    // Mallory leaves: revoked, then the key is rotated without her.
    let now = now_ms();
    let revocation = admin
        .change_revocations(None, mallory.user(), true, now)
        .unwrap()
        .unwrap();
    anna.handle
        .publish_admin_statement(revocation)
        .await
        .unwrap();
    let cora_id = cora.user();
    let cora = cora.stop().await;
    let recipients: Vec<(UserId, [u8; 32])> = anna
        .handle
        .key_recipients()
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            let mut dh = [0u8; 32];
            hex::decode_to_slice(&r.dh_public, &mut dh).unwrap();
            (r.user_id.parse().unwrap(), dh)
        })
        .collect();
    let ids: Vec<UserId> = recipients.iter().map(|(u, _)| *u).collect();
    assert!(ids.contains(&anna.user()) && ids.contains(&ben.user()));
    assert!(ids.contains(&cora_id));
    assert!(
        !ids.contains(&mallory.user()),
        "the revoked are not sealed to"
    );
    let new = NetworkKey::generate(&mut rand::rngs::OsRng).with_admin(admin.public());
    let now = now_ms();
    let (switch_at, overlap_until) = (now + 2_000, now + 10_000);
    // The old key is accepted a quarter of the overlap longer (clocks differ).
    let old_refused_at = overlap_until + 2_000;
    let (rotation, left_out) = admin
        .rotate_network_key(
            &mut rand::rngs::OsRng,
            None,
            &new.file_key(),
            &recipients,
            flurfunk::wire::wire_key_id(&old.wire_key()),
            switch_at,
            overlap_until,
            now,
        )
        .unwrap();
    assert!(left_out.is_empty());
    anna.handle.publish_admin_statement(rotation).await.unwrap();
    for node in [&anna, &ben] {
        eventually(&format!("{} opened the new key", node.name), || async {
            let status = node.handle.status().await.unwrap();
            (status.key_rotation?.next_network? == new.fingerprint()).then_some(())
        })
        .await;
    }
    eventually("Mallory disconnected", || async {
        (mallory.handle.status().await.unwrap().peers_online == 0).then_some(())
    })
    .await;

    // Ben writes to Cora while she is away; she returns after the switch, with the old
    // key only.
    ben.handle
        .send_text(to_cora, "während du weg warst".into())
        .await
        .unwrap();
    sleep_until(switch_at + 500).await;
    let back_at = std::time::Instant::now();
    let back_ms = now_ms();
    let cora = cora.start_with_key(&[&anna], old).await;
    wait_text(&cora, to_cora, "während du weg warst").await;
    let caught_up = back_at.elapsed();
    eventually("Cora opened the new key", || async {
        let status = cora.handle.status().await.unwrap();
        (status.key_rotation?.next_network? == new.fingerprint()).then_some(())
    })
    .await;
    // During the overlap the old key still opens the door, but only for those the new
    // key was sealed to: a fresh identity of Mallory's is closed out at once.
    let sneaking = support::spawn_with("Mallory Neu", &[&anna, &ben], old, Role::Member).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        now_ms() < overlap_until,
        "the test was too slow for its overlap"
    );
    for node in [&anna, &ben] {
        let known = node.handle.profiles().await.unwrap();
        assert!(
            known.iter().all(|p| p.user_id != sneaking.user()),
            "{} heard of a fresh identity with the old key",
            node.name
        );
    }
    let seen = sneaking.handle.profiles().await.unwrap();
    assert!(seen.len() <= 1, "it saw {} profiles", seen.len());
    sneaking.stop().await;
    println!(
        "Cora, back {:.1} s after the switch, caught up in {:.2} s",
        back_ms.saturating_sub(switch_at) as f64 / 1000.0,
        caught_up.as_secs_f64()
    );

    // After the overlap: the new key everywhere, kept in each data directory.
    sleep_until(old_refused_at + 500).await;
    for node in [&anna, &ben, &cora] {
        let status = node.handle.status().await.unwrap();
        assert_eq!(status.network, new.fingerprint(), "{}", node.name);
        assert!(status.key_rotation.is_none());
        let kept = NetworkKey::load(&node.dir.path().join("network.key")).unwrap();
        assert_eq!(kept.fingerprint(), new.fingerprint(), "{}", node.name);
    }
    ben.handle
        .send_text(to_cora, "nach dem Wechsel".into())
        .await
        .unwrap();
    wait_text(&cora, to_cora, "nach dem Wechsel").await;

    // The old key reaches nobody: neither Mallory's node nor a fresh identity of hers.
    let stranger = support::spawn_with("Mallory2", &[&anna, &ben], old, Role::Member).await;
    // An installation made with the new key file gets in.
    let newcomer = support::spawn_with("Dora", &[&anna], new, Role::Member).await;
    anna.knows(&[&newcomer]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for outsider in [&stranger, &mallory] {
        let status = outsider.handle.status().await.unwrap();
        assert_eq!(status.peers_online, 0, "{} got in", outsider.name);
    }
    // The stranger's node can tell why: its dials end right at the key check.
    eventually("the stranger sees its key refused", || async {
        stranger
            .handle
            .status()
            .await
            .unwrap()
            .network_key_refused
            .then_some(())
    })
    .await;
    assert!(!ben.handle.status().await.unwrap().network_key_refused);
    let peers = anna.handle.peers().await.unwrap();
    assert!(
        peers.iter().all(|p| !p.online
            || (p.user_id != stranger.user().to_string()
                && p.user_id != mallory.user().to_string())),
        "{peers:?}"
    );
}
