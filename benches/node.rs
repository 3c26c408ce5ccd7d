//! Network node benchmarks on loopback, every figure next to a floor measured in the same
//! run: delivery latency (vs a plain TCP round trip and an fdatasync), fan-out to a group
//! of 20, catch-up of 10,000 events over the network, and the headless node's memory.
//!
//! Run: `cargo bench --bench node`. Prints figures; asserts only that nothing was lost.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use flurfunk::identity::Identity;
use flurfunk::net::NetworkKey;
use flurfunk::node::{self, NodeConfig, NodeEvent, NodeHandle};
use flurfunk::store::SledStore;
use flurfunk::wire::{ConversationId, Role};
use libp2p::Multiaddr;
use tokio::sync::broadcast;

const TEXT_BYTES: usize = 1024;

struct BenchNode {
    handle: NodeHandle,
    events: broadcast::Receiver<NodeEvent>,
    addr: Multiaddr,
    dir: tempfile::TempDir,
}

fn key() -> NetworkKey {
    NetworkKey::parse(
        &format!("/key/swarm/psk/1.0.0/\n/base16/\n{}\n", "42".repeat(32)),
        "bench",
    )
    .unwrap()
}

async fn start_in(dir: tempfile::TempDir, peers: Vec<Multiaddr>) -> BenchNode {
    let identity = Identity::load(&dir.path().join("identity.key")).unwrap();
    let store = SledStore::open(&dir.path().join("db")).unwrap();
    let config = NodeConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        peers,
        mdns: false,
        role: Role::Member,
        network_key: key(),
        network_key_path: None,
        anti_entropy_interval_ms: node::DEFAULT_ANTI_ENTROPY_MS,
        max_peers: node::DEFAULT_MAX_PEERS,
        identity_path: None,
        files_dir: Some(dir.path().join("files")),
        file_limits: flurfunk::node::FileLimits::default(),
        relay_certificate: None,
        machine_policy: flurfunk::wire::Policy::default(),
    };
    let (handle, mut events) = node::start(identity, Box::new(store), config)
        .await
        .unwrap();
    let addr = loop {
        if let Ok(NodeEvent::Listening { address }) = events.recv().await {
            break address.parse::<Multiaddr>().unwrap();
        }
    };
    let addr = addr.with(libp2p::multiaddr::Protocol::P2p(handle.peer_id()));
    BenchNode {
        handle,
        events,
        addr,
        dir,
    }
}

async fn spawn(name: &str, peers: Vec<Multiaddr>) -> BenchNode {
    let dir = tempfile::tempdir().unwrap();
    Identity::generate(&mut rand::rngs::OsRng, name)
        .unwrap()
        .save_new(&dir.path().join("identity.key"))
        .unwrap();
    start_in(dir, peers).await
}

async fn wait_profiles(node: &BenchNode, n: usize) {
    while node.handle.profiles().await.unwrap().len() < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait for the next message event (skipping everything else).
async fn next_message(events: &mut broadcast::Receiver<NodeEvent>) -> String {
    loop {
        match events.recv().await {
            Ok(NodeEvent::Message { text, .. }) => return text,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => panic!("lagged {n}"),
            Err(e) => panic!("{e}"),
        }
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn text(i: usize) -> String {
    let mut t = format!("{i:06} ");
    while t.len() < TEXT_BYTES {
        t.push('x');
    }
    t
}

fn tcp_round_trip_us(samples: usize) -> f64 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = vec![0u8; TEXT_BYTES];
        while s.read_exact(&mut buf).is_ok() {
            if s.write_all(&buf[..1]).is_err() {
                break;
            }
        }
    });
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    let buf = vec![7u8; TEXT_BYTES];
    let mut ack = [0u8; 1];
    let mut t = Vec::new();
    for _ in 0..samples {
        let start = Instant::now();
        c.write_all(&buf).unwrap();
        c.read_exact(&mut ack).unwrap();
        t.push(start.elapsed().as_secs_f64() * 1e6);
    }
    t.sort_by(f64::total_cmp);
    pct(&t, 0.5)
}

fn fdatasync_us(dir: &Path, samples: usize) -> f64 {
    let mut f = std::fs::File::create(dir.join("sync-probe")).unwrap();
    let buf = vec![1u8; TEXT_BYTES];
    let mut t = Vec::new();
    for _ in 0..samples {
        let start = Instant::now();
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
        t.push(start.elapsed().as_secs_f64() * 1e6);
    }
    t.sort_by(f64::total_cmp);
    pct(&t, 0.5)
}

async fn latency() {
    let a = spawn("Anna", vec![]).await;
    let mut b = spawn("Ben", vec![a.addr.clone()]).await;
    wait_profiles(&a, 1).await;
    let conv = a.handle.open_direct(b.handle.user_id()).await.unwrap();
    // Warm up: the conversation and its key reach Ben first.
    a.handle.send_text(conv, "warm".into()).await.unwrap();
    next_message(&mut b.events).await;
    let mut t = Vec::new();
    for i in 0..300 {
        let start = Instant::now();
        a.handle.send_text(conv, text(i)).await.unwrap();
        let got = next_message(&mut b.events).await;
        assert!(got.starts_with(&format!("{i:06}")));
        t.push(start.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    let rtt = tcp_round_trip_us(300);
    let sync = fdatasync_us(a.dir.path(), 300);
    println!(
        "delivery latency, 1 KiB, durable on both ends (300 sequential): p50 {:.2} ms, p99 {:.2} ms",
        pct(&t, 0.5),
        pct(&t, 0.99)
    );
    println!(
        "  floor in the same run: TCP round trip {:.0} µs, fdatasync {:.0} µs \
         (two fsyncs + one round trip = {:.2} ms) -> p50 is {:.1}x that floor",
        rtt,
        sync,
        (2.0 * sync + rtt) / 1000.0,
        pct(&t, 0.5) / ((2.0 * sync + rtt) / 1000.0)
    );
    a.handle.shutdown().await.unwrap();
    b.handle.shutdown().await.unwrap();
}

async fn fan_out() {
    const MEMBERS: usize = 20;
    const MESSAGES: usize = 100;
    let sender = spawn("Sender", vec![]).await;
    let mut members = Vec::new();
    for i in 1..MEMBERS {
        members.push(spawn(&format!("Kollege {i}"), vec![sender.addr.clone()]).await);
    }
    wait_profiles(&sender, MEMBERS - 1).await;
    let ids = members.iter().map(|m| m.handle.user_id()).collect();
    let group = sender
        .handle
        .create_group("Alle".into(), ids)
        .await
        .unwrap();
    for m in &members {
        while m.handle.conversation(group).await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut t = Vec::new();
    let mut received = vec![0usize; members.len()];
    for i in 0..MESSAGES {
        let start = Instant::now();
        sender.handle.send_text(group, text(i)).await.unwrap();
        for (k, m) in members.iter_mut().enumerate() {
            let got = tokio::time::timeout(Duration::from_secs(30), next_message(&mut m.events))
                .await
                .expect("message lost");
            assert!(
                got.starts_with(&format!("{i:06}")),
                "order/loss at member {k}"
            );
            received[k] += 1;
        }
        t.push(start.elapsed().as_secs_f64() * 1e3);
    }
    assert!(
        received.iter().all(|r| *r == MESSAGES),
        "loss: {received:?}"
    );
    t.sort_by(f64::total_cmp);
    println!(
        "fan-out to a group of {MEMBERS} on loopback, until the last member has it \
         ({MESSAGES} messages): p50 {:.1} ms, p99 {:.1} ms, lost 0",
        pct(&t, 0.5),
        pct(&t, 0.99)
    );
    sender.handle.shutdown().await.unwrap();
    for m in members {
        m.handle.shutdown().await.unwrap();
    }
}

async fn catch_up() -> tempfile::TempDir {
    const EVENTS: usize = 10_000;
    let a = spawn("Anna", vec![]).await;
    let b = spawn("Ben", vec![a.addr.clone()]).await;
    wait_profiles(&a, 1).await;
    let conv: ConversationId = a.handle.open_direct(b.handle.user_id()).await.unwrap();
    b.handle.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b_dir = b.dir;
    // Fill Anna's store concurrently so group commit keeps this quick.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let h = a.handle.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..EVENTS).step_by(8) {
                h.send_text(conv, text(i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut b = start_in(b_dir, vec![a.addr.clone()]).await;
    let mut connected = None;
    let mut got = 0;
    let start = Instant::now();
    while got < EVENTS {
        match b.events.recv().await {
            Ok(NodeEvent::PeerOnline { .. }) => connected = Some(Instant::now()),
            Ok(NodeEvent::Message { .. }) => got += 1,
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let from_connect = connected.unwrap_or(start).elapsed();
    println!(
        "catch-up over the network: {EVENTS} x 1 KiB missed, connect to all stored: {:.0} ms \
         (start to all stored {:.0} ms)",
        from_connect.as_secs_f64() * 1e3,
        start.elapsed().as_secs_f64() * 1e3
    );
    let stats = b.handle.stats().await.unwrap();
    println!(
        "  receiver: {} events stored, {} duplicates received, {} frames sent",
        stats.events_stored, stats.duplicate_events, stats.frames_sent
    );
    b.handle.shutdown().await.unwrap();
    a.handle.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.dir
}

fn headless_rss(dir: &Path, label: &str) {
    let mut child = common::spawn_settled(
        &mut common::headless_node(env!("CARGO_BIN_EXE_flurfunk"), dir),
        Duration::from_secs(3),
    );
    let kib = common::rss_kib(child.id());
    let (anon, file) = common::rss_split_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "headless node RSS {label}: {:.1} MB (heap and stacks {:.1} MB, program and library pages {:.1} MB)",
        kib as f64 / 1024.0,
        anon as f64 / 1024.0,
        file as f64 / 1024.0
    );
}

/// `n` texts from `a` to `b`, one after the other, `gap` apart: delivery latencies (ms).
async fn text_latencies(
    a: &BenchNode,
    b: &mut BenchNode,
    conv: flurfunk::wire::ConversationId,
    n: usize,
    gap: Duration,
) -> Vec<f64> {
    let mut t = Vec::new();
    for i in 0..n {
        let start = Instant::now();
        a.handle.send_text(conv, text(i)).await.unwrap();
        let got = next_message(&mut b.events).await;
        assert!(got.starts_with(&format!("{i:06}")));
        t.push(start.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(gap).await;
    }
    t.sort_by(f64::total_cmp);
    t
}

/// A large file fetched over the same link as texts: throughput, and the texts' latency
/// during the transfer next to without (files travel on streams of their own).
async fn file_transfer() {
    // `NODE_BENCH_FILE_MB=1024` for the 1 GiB figure.
    let file_mb: usize = std::env::var("NODE_BENCH_FILE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let a = spawn("Anna", vec![]).await;
    let mut b = spawn("Ben", vec![a.addr.clone()]).await;
    wait_profiles(&a, 1).await;
    let conv = a.handle.open_direct(b.handle.user_id()).await.unwrap();
    a.handle.send_text(conv, "warm".into()).await.unwrap();
    next_message(&mut b.events).await;
    let gap = Duration::from_millis(20);
    let alone = text_latencies(&a, &mut b, conv, 100, gap).await;

    let path = a.dir.path().join("Vermessung.bin");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..file_mb {
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut chunk);
            out.write_all(&chunk).unwrap();
        }
        out.flush().unwrap();
    }
    // The baseline, in the same run: the same bytes over plain TCP on loopback, written
    // to a file and made durable with one fsync.
    let tcp_s = tcp_copy(&path, &b.dir.path().join("tcp-copy.bin")).await;
    let _ = std::fs::remove_file(b.dir.path().join("tcp-copy.bin"));
    let rss_before = common::rss_kib(std::process::id());
    let import = Instant::now();
    a.handle.send_file(conv, path, String::new()).await.unwrap();
    let import_s = import.elapsed().as_secs_f64();
    let event_id = loop {
        match b.events.recv().await {
            Ok(NodeEvent::Message {
                event_id,
                file: Some(_),
                ..
            }) => break event_id,
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    };
    let cpu_before = common::cpu_ticks(std::process::id());
    let transfer = Instant::now();
    b.handle
        .download(conv, event_id.parse().unwrap())
        .await
        .unwrap();
    // The process's memory while the file moves (both nodes live in it).
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let kib = common::rss_kib(std::process::id());
                peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let during = text_latencies(&a, &mut b, conv, 100, gap).await;
    let mut ready = b.handle.subscribe();
    let still_running = b.handle.downloads().await.unwrap().len();
    if still_running > 0 {
        loop {
            match ready.recv().await {
                Ok(NodeEvent::FileReady { .. }) => break,
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
    let transfer_s = transfer.elapsed().as_secs_f64();
    let cpu_s = (common::cpu_ticks(std::process::id()) - cpu_before) as f64 / 100.0;
    sampler.abort();
    let peak_kib = peak.load(std::sync::atomic::Ordering::Relaxed);
    let served = a.handle.status().await.unwrap().load.file_bytes_served;
    let fetched = b.handle.status().await.unwrap().load.file_bytes_fetched;
    let mib = file_mb as f64;
    println!(
        "file of {file_mb} MiB, 1:1 on loopback: import (encrypt + hash) {import_s:.2} s ({:.0} MiB/s), fetch {transfer_s:.2} s ({:.0} MiB/s){}",
        mib / import_s,
        mib / transfer_s,
        if still_running == 0 {
            " (done before the texts)"
        } else {
            ""
        }
    );
    println!(
        "  plain TCP copy + one fsync: {tcp_s:.2} s ({:.0} MiB/s); Flurfunk's fetch {:.2}x of it; CPU {:.1} s per GiB (both nodes)",
        mib / tcp_s,
        tcp_s / transfer_s,
        cpu_s * 1024.0 / mib
    );
    println!(
        "  sender uploaded {:.1} MiB ({:.3}x the file), receiver got {:.1} MiB; process RSS {} MiB before, peak {} MiB while it moved",
        served as f64 / 1048576.0,
        served as f64 / (mib * 1048576.0),
        fetched as f64 / 1048576.0,
        rss_before / 1024,
        peak_kib / 1024
    );
    println!(
        "  texts 1 KiB every 20 ms: alone p50 {:.2} ms, p99 {:.2} ms; during the transfer p50 {:.2} ms, p99 {:.2} ms (p50 {:.2}x)",
        pct(&alone, 0.5),
        pct(&alone, 0.99),
        pct(&during, 0.5),
        pct(&during, 0.99),
        pct(&during, 0.5) / pct(&alone, 0.5)
    );
    a.handle.shutdown().await.unwrap();
    b.handle.shutdown().await.unwrap();
}

/// One file to a group on loopback, every member fetching it: what the sender uploads
/// (the rest comes from members who already have blocks), each member's download, and
/// the time until the last member has it, next to sequential plain TCP copies to all.
/// `NODE_BENCH_GROUP` members (default 20), `NODE_BENCH_GROUP_FILE_MB` (default 20).
async fn group_file() {
    let n: usize = std::env::var("NODE_BENCH_GROUP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let file_mb: usize = std::env::var("NODE_BENCH_GROUP_FILE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let sender = spawn("Sender", vec![]).await;
    let mut members: Vec<BenchNode> = Vec::new();
    for i in 1..n {
        // As on a LAN found by mDNS, members know each other, not only the sender.
        let mut peers = vec![sender.addr.clone()];
        peers.extend(members.iter().rev().take(4).map(|m| m.addr.clone()));
        members.push(spawn(&format!("Kollege {i}"), peers).await);
    }
    wait_profiles(&sender, n - 1).await;
    let ids = members.iter().map(|m| m.handle.user_id()).collect();
    let group = sender
        .handle
        .create_group("Alle".into(), ids)
        .await
        .unwrap();
    for m in &members {
        while m.handle.conversation(group).await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let path = sender.dir.path().join("Streuplan.bin");
    let mut bytes = vec![0u8; file_mb << 20];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    drop(bytes);
    let tcp_one = tcp_copy(&path, &sender.dir.path().join("tcp-copy.bin")).await;
    let _ = std::fs::remove_file(sender.dir.path().join("tcp-copy.bin"));
    let start = Instant::now();
    sender
        .handle
        .send_file(group, path, String::new())
        .await
        .unwrap();
    let mut asked = vec![false; members.len()];
    let mut done = vec![None; members.len()];
    while done.iter().any(Option::is_none) {
        for (k, m) in members.iter().enumerate() {
            if done[k].is_some() {
                continue;
            }
            let messages = m.handle.messages(group, None, 10).await.unwrap();
            let Some(item) = messages.iter().find(|i| i.file.is_some()) else {
                continue;
            };
            let file = item.file.as_ref().unwrap();
            if file.here {
                done[k] = Some(start.elapsed().as_secs_f64());
            } else if !file.fetching && !asked[k] {
                asked[k] = true;
                m.handle
                    .download(group, item.event_id.parse().unwrap())
                    .await
                    .unwrap();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the group never got it"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = done.iter().flatten().copied().fold(0.0, f64::max);
    let file_bytes = (file_mb << 20) as f64;
    let uploaded = sender.handle.status().await.unwrap().load.file_bytes_served as f64;
    let mut fetched = Vec::new();
    for m in &members {
        fetched.push(m.handle.status().await.unwrap().load.file_bytes_fetched as f64 / file_bytes);
    }
    fetched.sort_by(f64::total_cmp);
    println!(
        "file of {file_mb} MiB to a group of {n} on loopback (members dial the sender and up to 4 others): \
         the last member has it after {last:.2} s; {} sequential TCP copies would take {:.2} s ({:.2}x)",
        n - 1,
        tcp_one * (n - 1) as f64,
        last / (tcp_one * (n - 1) as f64)
    );
    println!(
        "  the sender uploaded {:.2}x the file; each member downloaded median {:.3}x, at most {:.3}x",
        uploaded / file_bytes,
        pct(&fetched, 0.5),
        fetched.last().copied().unwrap_or(0.0)
    );
    sender.handle.shutdown().await.unwrap();
    for m in members {
        m.handle.shutdown().await.unwrap();
    }
}

/// Copy `from` to `to` over a TCP connection on loopback, the receiver writing to a file
/// and syncing it once: seconds from connect to durable.
async fn tcp_copy(from: &Path, to: &Path) -> f64 {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let to = to.to_path_buf();
    let receiver = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut file = tokio::io::BufWriter::with_capacity(
            256 * 1024,
            tokio::fs::File::create(&to).await.unwrap(),
        );
        tokio::io::copy(&mut socket, &mut file).await.unwrap();
        file.flush().await.unwrap();
        file.into_inner().sync_all().await.unwrap();
    });
    let start = Instant::now();
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut source = tokio::fs::File::open(from).await.unwrap();
    tokio::io::copy(&mut source, &mut socket).await.unwrap();
    socket.shutdown().await.unwrap();
    drop(socket);
    receiver.await.unwrap();
    start.elapsed().as_secs_f64()
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // `NODE_BENCH=catch-up` runs the catch-up alone (for a profile of it).
    if std::env::var("NODE_BENCH").as_deref() == Ok("catch-up") {
        rt.block_on(catch_up());
        return;
    }
    // `NODE_BENCH=file` runs the file transfer alone.
    if std::env::var("NODE_BENCH").as_deref() == Ok("file") {
        rt.block_on(file_transfer());
        return;
    }
    // `NODE_BENCH=group-file` runs the file to a group alone.
    if std::env::var("NODE_BENCH").as_deref() == Ok("group-file") {
        rt.block_on(group_file());
        return;
    }
    rt.block_on(latency());
    rt.block_on(fan_out());
    rt.block_on(file_transfer());
    rt.block_on(group_file());
    let full = rt.block_on(catch_up());
    let empty = tempfile::tempdir().unwrap();
    Identity::generate(&mut rand::rngs::OsRng, "Depot")
        .unwrap()
        .save_new(&empty.path().join("identity.key"))
        .unwrap();
    headless_rss(empty.path(), "after start-up, empty store");
    headless_rss(full.path(), "with 10,000 stored events");
}
