//! Real nodes in one process on 127.0.0.1 (mDNS off): delivery, history, outbox,
//! store-and-forward, admission by network key, profile spreading.

mod support;

use std::time::Duration;

use flurfunk::net::NetworkKey;
use flurfunk::node::NodeEvent;
use flurfunk::wire::Role;
use support::{eventually, spawn, spawn_with, wait_texts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_and_group_messages_arrive_in_one_order_everywhere() {
    let anna = spawn("Anna", &[]).await;
    let ben = spawn("Ben", &[&anna]).await;
    let cora = spawn("Cora", &[&anna]).await;
    // Ben and Cora never dial each other: they learn of each other through Anna
    // (addresses and profiles are passed on).
    anna.knows(&[&ben, &cora]).await;
    ben.knows(&[&cora]).await;
    cora.knows(&[&ben]).await;

    let direct = anna.handle.open_direct(ben.user()).await.unwrap();
    anna.handle
        .send_text(direct, "Hallo Ben, hast du den Schlüssel?".into())
        .await
        .unwrap();
    wait_texts(&ben, direct, &["Hallo Ben, hast du den Schlüssel?"]).await;
    ben.handle
        .send_text(direct, "Ja, liegt im Bauhof.".into())
        .await
        .unwrap();
    let both = ["Hallo Ben, hast du den Schlüssel?", "Ja, liegt im Bauhof."];
    wait_texts(&anna, direct, &both).await;
    let unread = |node: &support::TestNode| {
        let handle = node.handle.clone();
        async move { handle.conversation(direct).await.unwrap().unwrap().unread }
    };
    assert_eq!(unread(&ben).await, 1, "Anna's message is unread at Ben");
    assert_eq!(unread(&anna).await, 1, "own messages never count");
    ben.handle.mark_read(direct).await.unwrap();
    assert_eq!(unread(&ben).await, 0);
    anna.handle
        .send_text(direct, "Und die Leiter?".into())
        .await
        .unwrap();
    wait_texts(&ben, direct, &[both[0], both[1], "Und die Leiter?"]).await;
    assert_eq!(unread(&ben).await, 1, "only what came after the marker");
    assert!(
        cora.texts(direct).await.is_empty(),
        "a third party never sees a 1:1"
    );

    let group = cora
        .handle
        .create_group("Bauhof".into(), vec![anna.user(), ben.user()])
        .await
        .unwrap();
    for (node, text) in [(&anna, "eins"), (&ben, "zwei"), (&cora, "drei")] {
        eventually("group known", || async {
            node.handle.conversation(group).await.unwrap().map(|_| ())
        })
        .await;
        node.handle.send_text(group, text.into()).await.unwrap();
    }
    let cora_view = eventually("three texts at cora", || async {
        let t = cora.texts(group).await;
        (t.len() == 3).then_some(t)
    })
    .await;
    wait_texts(
        &anna,
        group,
        &cora_view.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    wait_texts(
        &ben,
        group,
        &cora_view.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;

    // Delivery state of Anna's own message: both others have stored it.
    let items = anna.handle.messages(group, None, 10).await.unwrap();
    let own = items.iter().find(|m| m.own).unwrap();
    let own_id = own.event_id.clone();
    eventually("delivered to all", || async {
        let items = anna.handle.messages(group, None, 10).await.unwrap();
        let m = items.iter().find(|m| m.event_id == own_id).unwrap();
        (m.delivered_to.len() == 2 && m.waiting_for.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_offline_at_sending_time_gets_the_history_when_it_starts() {
    let (anna, ben, cora) = trio().await;
    let cora = cora.stop().await;

    let group = anna
        .handle
        .create_group("Bürgerbüro".into(), vec![ben.user(), cora_user(&cora)])
        .await
        .unwrap();
    let texts: Vec<String> = (0..20).map(|i| format!("Nachricht {i}")).collect();
    for t in &texts {
        anna.handle.send_text(group, t.clone()).await.unwrap();
    }
    let want: Vec<&str> = texts.iter().map(String::as_str).collect();
    wait_texts(&ben, group, &want).await;

    let cora = cora.start(&[&ben]).await;
    wait_texts(&cora, group, &want).await;
}

/// Anna, and Ben and Cora who dialled her; Anna knows both profiles.
async fn trio() -> (support::TestNode, support::TestNode, support::TestNode) {
    let anna = spawn("Anna", &[]).await;
    let ben = spawn("Ben", &[&anna]).await;
    let cora = spawn("Cora", &[&anna]).await;
    anna.knows(&[&ben, &cora]).await;
    (anna, ben, cora)
}

fn cora_user(stopped: &support::StoppedNode) -> flurfunk::identity::UserId {
    flurfunk::identity::Identity::load(&stopped.dir.path().join("identity.key"))
        .unwrap()
        .user_id()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_delivers_when_the_recipient_starts_later() {
    let anna = spawn("Anna", &[]).await;
    let ben = spawn("Ben", &[&anna]).await;
    anna.knows(&[&ben]).await;
    let ben = ben.stop().await;
    let ben_user = cora_user(&ben);

    let direct = anna.handle.open_direct(ben_user).await.unwrap();
    anna.handle
        .send_text(direct, "Bist du da?".into())
        .await
        .unwrap();
    assert!(
        anna.handle.status().await.unwrap().outbox >= 1,
        "waits in the outbox"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let ben = ben.start(&[&anna]).await;
    wait_texts(&ben, direct, &["Bist du da?"]).await;
    eventually("outbox empty", || async {
        (anna.handle.status().await.unwrap().outbox == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_member_delivers_after_the_sender_is_gone() {
    let (anna, ben, cora) = trio().await;
    let cora_stopped = cora.stop().await;
    let cora_id = cora_user(&cora_stopped);
    let group = anna
        .handle
        .create_group("IT".into(), vec![ben.user(), cora_id])
        .await
        .unwrap();
    anna.handle
        .send_text(group, "Server neu gestartet".into())
        .await
        .unwrap();
    wait_texts(&ben, group, &["Server neu gestartet"]).await;
    anna.stop().await;

    // Cora comes back knowing only Ben's address; Anna is gone for good.
    let cora = cora_stopped.start(&[&ben]).await;
    wait_texts(&cora, group, &["Server neu gestartet"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_network_key_never_connects() {
    let anna = spawn("Anna", &[]).await;
    let mallory = spawn_with(
        "Mallory",
        &[&anna],
        NetworkKey::generate(&mut rand::rngs::OsRng),
        Role::Member,
    )
    .await;
    let mut events = anna.handle.subscribe();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(anna.handle.status().await.unwrap().peers_online, 0);
    assert_eq!(mallory.handle.status().await.unwrap().peers_online, 0);
    assert!(anna.handle.profiles().await.unwrap().is_empty());
    while let Ok(e) = events.try_recv() {
        assert!(!matches!(e, NodeEvent::PeerOnline { .. }), "{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_change_reaches_everyone() {
    let anna = spawn("Anna", &[]).await;
    let ben = spawn("Ben", &[&anna]).await;
    let cora = spawn("Cora", &[&anna]).await;
    ben.knows(&[&cora]).await;
    ben.handle
        .set_display_name("Ben Krüger".into())
        .await
        .unwrap();
    eventually("new name at cora", || async {
        cora.handle
            .profiles()
            .await
            .unwrap()
            .iter()
            .any(|p| p.display_name == "Ben Krüger")
            .then_some(())
    })
    .await;
    // The new name is persisted in Ben's identity file.
    let saved = flurfunk::identity::Identity::load(&ben.dir.path().join("identity.key")).unwrap();
    assert_eq!(saved.display_name(), "Ben Krüger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_garbage_is_disconnected_while_others_are_served() {
    use futures::StreamExt;
    use libp2p::swarm::SwarmEvent;

    let anna = spawn("Anna", &[]).await;
    let ben = spawn("Ben", &[&anna]).await;
    anna.knows(&[&ben]).await;
    let direct = anna.handle.open_direct(ben.user()).await.unwrap();

    // A raw libp2p peer with the right network key that speaks nonsense.
    let mallory = flurfunk::identity::Identity::generate(&mut rand::rngs::OsRng, "M").unwrap();
    let mut swarm = flurfunk::net::build_swarm(
        &mallory,
        flurfunk::net::pnet_ring::KeyRing::new(support::test_key().wire_key()),
        false,
        Duration::from_secs(60),
        30,
    )
    .unwrap();
    swarm.dial(anna.addr.clone()).unwrap();
    let anna_peer = anna.handle.peer_id();
    // Garbage frames (well-formed lengths, nonsense inside) on the sync stream.
    let mut control = swarm.behaviour().sync.new_control();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            use futures::AsyncWriteExt;
            loop {
                let Ok(mut stream) = control
                    .open_stream(anna_peer, flurfunk::net::SYNC_PROTOCOL)
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let garbage = [0, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef];
                while stream.write_all(&garbage).await.is_ok() && stream.flush().await.is_ok() {
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };
    let mut closed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline && !closed {
        let event =
            tokio::time::timeout(Duration::from_millis(200), swarm.select_next_some()).await;
        if let Ok(SwarmEvent::ConnectionClosed {
            num_established: 0, ..
        }) = event
            && sent.load(std::sync::atomic::Ordering::Relaxed) > 0
        {
            closed = true;
        }
    }
    writer.abort();
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        closed,
        "the node must drop a peer that sends only garbage ({sent} frames sent)"
    );
    // Ben is still served.
    anna.handle
        .send_text(direct, "Noch da?".into())
        .await
        .unwrap();
    wait_texts(&ben, direct, &["Noch da?"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_later_learns_the_group_name() {
    let (anna, ben, cora) = trio().await;
    let group = anna
        .handle
        .create_group("Bauhof".into(), vec![ben.user()])
        .await
        .unwrap();
    anna.handle.send_text(group, "vorher".into()).await.unwrap();
    anna.handle.add_member(group, cora.user()).await.unwrap();
    // Adding rotates the key, so Cora cannot read the creation event with the name.
    let view = eventually("Cora has the group with its name", || async {
        cora.handle
            .conversation(group)
            .await
            .unwrap()
            .filter(|c| c.is_member && c.name == "Bauhof")
    })
    .await;
    assert_eq!(view.members.len(), 3);
    assert!(
        cora.texts(group).await.is_empty(),
        "history before joining stays sealed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_is_told_and_reads_nothing_after() {
    let (anna, ben, cora) = trio().await;
    let group = anna
        .handle
        .create_group("Bauhof".into(), vec![ben.user(), cora.user()])
        .await
        .unwrap();
    anna.handle
        .send_text(group, "für alle".into())
        .await
        .unwrap();
    wait_texts(&cora, group, &["für alle"]).await;
    // Cora is away when she is removed; she learns it when she is back.
    let away = cora.stop().await;
    anna.handle
        .remove_member(group, cora_user(&away))
        .await
        .unwrap();
    anna.handle
        .send_text(group, "nur noch für Ben".into())
        .await
        .unwrap();
    wait_texts(&ben, group, &["für alle", "nur noch für Ben"]).await;
    let cora = away.start(&[&anna]).await;
    let view = eventually("Cora sees that she was removed", || async {
        cora.handle
            .conversation(group)
            .await
            .unwrap()
            .filter(|c| !c.is_member)
    })
    .await;
    assert_eq!(view.members.len(), 2);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        cora.texts(group).await,
        ["für alle"],
        "nothing after the removal"
    );
}

/// A TCP relay on 127.0.0.1 to `target` that can be frozen: from then on it passes no
/// byte either way and closes nothing, as a host that froze or was killed without its
/// sockets being closed (seen under Wine) leaves a connection that looks alive.
async fn freezable_proxy(
    target: std::net::SocketAddr,
) -> (u16, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let frozen = std::sync::Arc::new(AtomicBool::new(false));
    let flag = frozen.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            for (mut r, mut w) in [
                (
                    Box::new(ri) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                    Box::new(wo) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                ),
                (Box::new(ro), Box::new(wi)),
            ] {
                let flag = flag.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = r.read(&mut buf).await.unwrap_or(0);
                        if flag.load(Ordering::SeqCst) {
                            // Keep both sockets open and pass nothing, for ever.
                            std::future::pending::<()>().await;
                        }
                        if n == 0 || w.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
    });
    (port, frozen)
}

/// Ben's node is killed while its connection to Anna stays open (frozen) and starts again
/// at once: Anna must send on the new connection, not into the old one until its pings
/// fail (libp2p's ping timeout is 20 s). The Wine test lost its 60 s that way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_is_served_on_its_new_connection_at_once() {
    use libp2p::multiaddr::Protocol;
    let anna = spawn("Anna", &[]).await;
    let port = anna
        .addr
        .iter()
        .find_map(|p| match p {
            Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    let (proxy, frozen) = freezable_proxy(([127, 0, 0, 1], port).into()).await;
    let via_proxy: libp2p::Multiaddr =
        format!("/ip4/127.0.0.1/tcp/{proxy}/p2p/{}", anna.handle.peer_id())
            .parse()
            .unwrap();
    let ben = support::spawn_dialling("Ben", vec![via_proxy]).await;
    anna.knows(&[&ben]).await;
    ben.knows(&[&anna]).await;
    let direct = anna.handle.open_direct(ben.user()).await.unwrap();
    anna.handle
        .send_text(direct, "Vor dem Absturz".into())
        .await
        .unwrap();
    wait_texts(&ben, direct, &["Vor dem Absturz"]).await;

    frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    let ben = ben.stop().await;
    anna.handle
        .send_text(direct, "Nach dem Absturz".into())
        .await
        .unwrap();
    let restarted = std::time::Instant::now();
    let ben = ben.start(&[&anna]).await;
    wait_texts(&ben, direct, &["Vor dem Absturz", "Nach dem Absturz"]).await;
    let took = restarted.elapsed();
    println!("delivered {:.1} s after the restart", took.as_secs_f64());
    assert!(
        took < Duration::from_secs(10),
        "{took:?}: Anna kept writing into the dead connection"
    );
    let load = anna.handle.status().await.unwrap().load;
    assert!(load.streams_moved >= 1, "{load:?}");
}

/// `shutdown` returns only after the store (and its file lock) is closed, so a restart in
/// the same directory (the app joining another network, the office's churn, a script)
/// never finds the database "in use".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_can_be_started_again_at_once() {
    let ben = spawn("Ben", &[]).await;
    let mut anna = spawn("Anna", &[&ben]).await;
    anna.knows(&[&ben]).await;
    let direct = anna.handle.open_direct(ben.user()).await.unwrap();
    let mut want = Vec::new();
    for round in 0..20 {
        let text = format!("Neustart {round}");
        anna.handle.send_text(direct, text.clone()).await.unwrap();
        want.push(text);
        anna = anna.stop().await.start(&[&ben]).await;
    }
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    wait_texts(&ben, direct, &want).await;
}
