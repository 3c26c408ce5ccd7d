//! Real `flurfunk node` processes in Linux network namespaces (see `tests/lab/`): mDNS
//! discovery, two users on one host (a terminal server), a pulled cable, SIGKILL, a wrong network key, two subnets joined by one
//! explicit address, a file through a certified relay across two subnets, and a packet
//! capture that must not contain any message text.

mod lab;
mod support;

use std::time::{Duration, Instant};

use lab::{Lab, PORT};

const LONG: Duration = Duration::from_secs(30);

/// Give every host the same fresh network key.
fn same_network(lab: &Lab, hosts: &[usize]) {
    let key = lab.dir.path().join("rathaus.key");
    let key = key.to_str().unwrap();
    let (ok, _, err) = lab.hosts[hosts[0]].cli(&["network", "new", "--out", key]);
    assert!(ok, "{err}");
    for h in &hosts[1..] {
        let (ok, _, err) = lab.hosts[*h].cli(&["network", "join", key]);
        assert!(ok, "{err}");
    }
}

fn count_text(lab: &Lab, host: usize, text: &str) -> usize {
    lab.hosts[host].count(|v| v["event"] == "message" && v["text"] == text)
}

#[test]
fn three_hosts_find_each_other_by_mdns_and_the_wire_shows_no_text() {
    if !lab::available() {
        return;
    }
    let mut lab = Lab::new(&[1]);
    let hosts: Vec<usize> = ["Anna Schmidt", "Ben Krüger", "Cora Weiß"]
        .iter()
        .enumerate()
        .map(|(i, n)| lab.add_host(n, 1, i as u8 + 1))
        .collect();
    same_network(&lab, &hosts);
    let pcap = lab.capture();
    for h in &hosts {
        lab.hosts[*h].start(&[]);
    }
    let users: Vec<String> = hosts.iter().map(|h| lab.hosts[*h].user_id()).collect();
    let mut discovery_ms = Vec::new();
    for a in &hosts {
        for b in &hosts {
            if a != b {
                let at = lab.hosts[*a].online(&users[*b]);
                discovery_ms.push(at.duration_since(lab.hosts[*a].started).as_millis());
            }
        }
    }
    discovery_ms.sort();
    println!(
        "mDNS discovery, start to peer online (ms): min {} median {} max {}",
        discovery_ms[0],
        discovery_ms[discovery_ms.len() / 2],
        discovery_ms[discovery_ms.len() - 1]
    );
    for h in &hosts {
        lab.hosts[*h].knows_name(if *h == 0 {
            "Ben Krüger"
        } else {
            "Anna Schmidt"
        });
    }
    lab.hosts[0].knows_name("Cora Weiß");

    let (ok, _, err) = lab.hosts[0].cli(&[
        "group", "create", "Bauhof", "--member", &users[1], "--member", &users[2],
    ]);
    assert!(ok, "{err}");
    let secrets = [
        "Streusalzlager Nord ist leer",
        "Kehrmaschine 3 steht in der Werkstatt",
        "Winterdienst ab 4 Uhr",
    ];
    for h in &hosts {
        lab.hosts[*h].wait_for("group", LONG, |v| {
            v["event"] == "conversation_created" && v["name"] == "Bauhof"
        });
    }
    for (h, text) in hosts.iter().zip(secrets) {
        lab.hosts[*h].send("Bauhof", text);
    }
    lab.hosts[0].send("Ben Krüger", "Geheimer Schlüsselcode 4711");
    for h in &hosts {
        let texts = lab.hosts[*h].wait_texts("Bauhof", 3, LONG);
        assert_eq!(texts.len(), 3, "{}: {texts:?}", lab.hosts[*h].name);
        for s in secrets {
            assert_eq!(
                texts.iter().filter(|t| *t == s).count(),
                1,
                "{s} exactly once"
            );
        }
    }
    lab.hosts[1].wait_for("1:1", LONG, |v| v["text"] == "Geheimer Schlüsselcode 4711");
    assert_eq!(count_text(&lab, 1, "Geheimer Schlüsselcode 4711"), 1);
    assert_eq!(count_text(&lab, 2, "Geheimer Schlüsselcode 4711"), 0);
    // Each text arrived as exactly one event at each other member.
    for (author, s) in hosts.iter().zip(secrets) {
        for h in &hosts {
            if h != author {
                assert_eq!(count_text(&lab, *h, s), 1, "{s} at {}", lab.hosts[*h].name);
            }
        }
    }

    lab.stop_captures();
    let capture = std::fs::read(&pcap).unwrap();
    // The capture really saw the conversation: mDNS and the node port.
    assert!(
        capture.len() > 20_000,
        "capture too small: {} bytes",
        capture.len()
    );
    assert!(
        capture.windows(10).any(|w| w == b"\x04_p2p\x04_udp"),
        "no mDNS query in the capture"
    );
    let port = PORT.to_be_bytes();
    assert!(
        capture.windows(2).any(|w| w == port),
        "no traffic on the node port"
    );
    for s in secrets
        .iter()
        .chain(["Geheimer Schlüsselcode 4711", "Bauhof"].iter())
    {
        assert!(
            !capture.windows(s.len()).any(|w| w == s.as_bytes()),
            "'{s}' visible on the wire"
        );
    }
    println!("capture: {} bytes, no message text in it", capture.len());
}

#[test]
fn a_cut_link_heals_and_everything_arrives_exactly_once() {
    if !lab::available() {
        return;
    }
    let mut lab = Lab::new(&[1]);
    let hosts: Vec<usize> = ["Anna", "Ben", "Cora"]
        .iter()
        .enumerate()
        .map(|(i, n)| lab.add_host(n, 1, i as u8 + 1))
        .collect();
    same_network(&lab, &hosts);
    for h in &hosts {
        lab.hosts[*h].start(&[]);
    }
    let users: Vec<String> = hosts.iter().map(|h| lab.hosts[*h].user_id()).collect();
    lab.hosts[0].knows_name("Ben");
    lab.hosts[0].knows_name("Cora");
    let (ok, _, err) = lab.hosts[0].cli(&[
        "group", "create", "IT", "--member", &users[1], "--member", &users[2],
    ]);
    assert!(ok, "{err}");
    for h in &hosts {
        lab.hosts[*h].wait_for("group", LONG, |v| v["event"] == "conversation_created");
    }

    lab.set_link(2, false);
    let cut_at = Instant::now();
    let mut sent = Vec::new();
    for i in 0..3 {
        let t = format!("Anna während der Störung {i}");
        lab.hosts[0].send("IT", &t);
        sent.push(t);
    }
    for i in 0..2 {
        let t = format!("Cora offline {i}");
        lab.hosts[2].send("IT", &t);
        sent.push(t);
    }
    // 20 s: TCP's retransmissions go unanswered meanwhile; pings (every 15 s, 20 s
    // timeout) may or may not have closed the connection by then. Either way each message
    // must arrive exactly once after the cable is back.
    std::thread::sleep(Duration::from_secs(20));
    lab.set_link(2, true);
    let healed = Instant::now();
    for h in &hosts {
        let texts = lab.hosts[*h].wait_texts("IT", sent.len(), LONG);
        for t in &sent {
            assert_eq!(
                texts.iter().filter(|x| *x == t).count(),
                1,
                "{}: '{t}' exactly once in {texts:?}",
                lab.hosts[*h].name
            );
        }
    }
    println!(
        "link cut for {:.1} s; all {} messages everywhere {:.1} s after it returned",
        healed.duration_since(cut_at).as_secs_f64(),
        sent.len(),
        healed.elapsed().as_secs_f64()
    );
    for (author, range) in [(0usize, 0..3), (2usize, 3..5)] {
        for h in &hosts {
            if *h != author {
                for t in &sent[range.clone()] {
                    assert_eq!(count_text(&lab, *h, t), 1, "event for '{t}' once");
                }
            }
        }
    }
}

/// The texts `host` holds in its conversation with `peer` that `peer_id` acknowledged.
fn acked_by(lab: &Lab, host: usize, peer: &str, peer_id: &str) -> Vec<String> {
    let (ok, out, err) = lab.hosts[host].cli(&["history", peer, "--json", "--limit", "1000"]);
    assert!(ok, "{err}");
    out.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|m| {
            m["delivered_to"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u == peer_id)
        })
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_killed_node_loses_nothing_it_acknowledged_and_catches_up() {
    if !lab::available() {
        return;
    }
    let mut lab = Lab::new(&[1]);
    let a = lab.add_host("Anna", 1, 1);
    let b = lab.add_host("Ben", 1, 2);
    same_network(&lab, &[a, b]);
    lab.hosts[a].start(&[]);
    lab.hosts[b].start(&[]);
    let ben = lab.hosts[b].user_id();
    lab.hosts[a].knows_name("Ben");
    const N: usize = 60;
    let mut sent = Vec::new();
    for i in 0..N {
        let t = format!("Meldung {i:03}");
        lab.hosts[a].send("Ben", &t);
        sent.push(t);
        if i == N / 2 - 5 {
            // The kill must come while Ben acknowledges: on a loaded machine the
            // first receipts can take longer than the sends, so wait for one (the
            // next five sends are then in flight when Ben dies).
            let deadline = Instant::now() + LONG;
            while acked_by(&lab, a, "Ben", &ben).is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "Ben acknowledged nothing in 30 s"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if i == N / 2 {
            lab.hosts[b].kill();
        }
    }
    // What Anna's node holds as acknowledged by Ben (delivery receipts are sent only
    // after Ben's node flushed).
    let acked = acked_by(&lab, a, "Ben", &ben);
    assert!(
        !acked.is_empty(),
        "some messages were acknowledged before the kill"
    );

    // Restart Ben with the cable pulled: what is on disk is all he has.
    lab.set_link(b, false);
    lab.hosts[b].start(&[]);
    lab.hosts[b].wait_for("listening", LONG, |v| v["event"] == "listening");
    let on_disk = lab.hosts[b].texts("Anna");
    for t in &acked {
        assert!(on_disk.contains(t), "acknowledged '{t}' lost after SIGKILL");
    }
    println!(
        "SIGKILL after {} sends: {} acknowledged, {} on disk after restart",
        N / 2 + 1,
        acked.len(),
        on_disk.len()
    );
    lab.set_link(b, true);
    let texts = lab.hosts[b].wait_texts("Anna", N, LONG);
    assert_eq!(texts, sent, "all messages, once each, in order");
}

#[test]
fn a_host_with_the_wrong_network_key_sees_nothing() {
    if !lab::available() {
        return;
    }
    let mut lab = Lab::new(&[1]);
    let a = lab.add_host("Anna", 1, 1);
    let b = lab.add_host("Ben", 1, 2);
    let m = lab.add_host("Mallory", 1, 3);
    same_network(&lab, &[a, b]);
    let other = lab.dir.path().join("other.key");
    let (ok, _, err) = lab.hosts[m].cli(&["network", "new", "--out", other.to_str().unwrap()]);
    assert!(ok, "{err}");
    for h in [a, b, m] {
        lab.hosts[h].start(&[]);
    }
    let ben = lab.hosts[b].user_id();
    lab.hosts[a].online(&ben);
    lab.hosts[a].knows_name("Ben");
    lab.hosts[a].send("Ben", "Nur für Ben");
    lab.hosts[b].wait_for("message", LONG, |v| v["text"] == "Nur für Ben");
    // Mallory hears the mDNS announcements and dials, but the pnet handshake fails.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(lab.hosts[m].count(|v| v["event"] == "peer_online"), 0);
    assert_eq!(lab.hosts[m].count(|v| v["event"] == "message"), 0);
    assert_eq!(lab.hosts[m].count(|v| v["event"] == "profile"), 0);
    let mallory = lab.hosts[m].user_id();
    for h in [a, b] {
        assert_eq!(
            lab.hosts[h].count(|v| v["event"] == "peer_online" && v["user_id"] == mallory),
            0
        );
    }
}

#[test]
fn two_subnets_joined_by_one_explicit_address_talk() {
    if !lab::available() {
        return;
    }
    let mut lab = Lab::new(&[1, 2]);
    let hosts = [
        lab.add_host("Rathaus Anna", 1, 1),
        lab.add_host("Rathaus Ben", 1, 2),
        lab.add_host("Bauhof Cora", 2, 1),
        lab.add_host("Bauhof Dirk", 2, 2),
    ];
    same_network(&lab, &hosts);
    lab.hosts[hosts[0]].start(&[]);
    lab.hosts[hosts[1]].start(&[]);
    // Only Cora knows one address on the other side.
    let link = format!("/ip4/10.77.1.1/tcp/{PORT}");
    lab.hosts[hosts[2]].start(&["--peer", &link]);
    lab.hosts[hosts[3]].start(&[]);
    let users: Vec<String> = hosts.iter().map(|h| lab.hosts[*h].user_id()).collect();
    // Everyone reaches everyone: addresses travel over the one link.
    for a in &hosts {
        for b in &hosts {
            if a != b {
                lab.hosts[*a].online(&users[*b]);
            }
        }
    }
    lab.hosts[hosts[1]].knows_name("Bauhof Dirk");
    let (ok, _, err) = lab.hosts[hosts[1]].cli(&[
        "group",
        "create",
        "Winterdienst",
        "--member",
        &users[3],
        "--member",
        &users[0],
    ]);
    assert!(ok, "{err}");
    lab.hosts[hosts[3]].wait_for("group", LONG, |v| v["event"] == "conversation_created");
    lab.hosts[hosts[1]].send("Winterdienst", "Räumen ab 5 Uhr");
    lab.hosts[hosts[3]].send("Winterdienst", "Verstanden, Dirk");
    for h in [hosts[0], hosts[1], hosts[3]] {
        let texts = lab.hosts[h].wait_texts("Winterdienst", 2, LONG);
        assert_eq!(texts.len(), 2, "{}: {texts:?}", lab.hosts[h].name);
    }
    assert_eq!(
        lab.hosts[hosts[2]].count(|v| v["event"] == "message"),
        0,
        "not a member"
    );
}

/// Thirty hosts on one bridge with mDNS on and `--max-peers 6`: each finds the others but
/// holds a bounded number of connections (not all 29), and one message to a group of all
/// thirty reaches every member through the links the nodes chose.
#[test]
fn thirty_hosts_on_one_segment_hold_few_links_and_a_group_message_reaches_all() {
    if !lab::available() {
        return;
    }
    const HOSTS: usize = 30;
    const MAX_PEERS: usize = 6;
    let mut lab = Lab::new(&[1]);
    let hosts: Vec<usize> = (0..HOSTS)
        .map(|i| lab.add_host(&format!("Kollege {i:02}"), 1, i as u8 + 1))
        .collect();
    same_network(&lab, &hosts);
    let max_peers = MAX_PEERS.to_string();
    for h in &hosts {
        lab.hosts[*h].start(&["--max-peers", &max_peers]);
    }
    let users: Vec<String> = hosts.iter().map(|h| lab.hosts[*h].user_id()).collect();
    // The creator learns every name (profiles travel from node to node).
    for h in &hosts[1..] {
        lab.hosts[0].knows_name(&lab.hosts[*h].name.clone());
    }
    let mut args: Vec<&str> = vec!["group", "create", "Alle"];
    for u in &users[1..] {
        args.extend(["--member", u.as_str()]);
    }
    let (ok, _, err) = lab.hosts[0].cli(&args);
    assert!(ok, "{err}");
    for h in &hosts {
        // Its events may arrive in pieces (created first, named once the key is there).
        lab.hosts[*h].wait_for("group", LONG, |v| {
            (v["event"] == "conversation_created" || v["event"] == "conversation_changed")
                && v["name"] == "Alle"
        });
    }
    let started = Instant::now();
    lab.hosts[0].send("Alle", "Betriebsversammlung um 14 Uhr");
    for h in &hosts[1..] {
        lab.hosts[*h].wait_for("the group message", LONG, |v| {
            v["event"] == "message" && v["text"] == "Betriebsversammlung um 14 Uhr"
        });
    }
    println!(
        "{HOSTS} hosts: the group message reached all in {} ms",
        started.elapsed().as_millis()
    );
    let count_links = || {
        let mut links = Vec::new();
        for h in &hosts {
            let (ok, out, err) = lab.hosts[*h].cli(&["peers", "--json"]);
            assert!(ok, "{err}");
            let online = out
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["online"] == true)
                .count();
            links.push(online);
        }
        links.sort();
        links
    };
    let mut links = count_links();
    if links[HOSTS - 1] > MAX_PEERS + 8 {
        // Under a loaded CI machine a count once caught a host at 15 while it was still
        // closing the surplus (it had 11-13 in nine runs alone). What must hold is the
        // settled state: counted again after 3 s, the same bound applies.
        println!(
            "links per host at first: max {}; counted again",
            links[HOSTS - 1]
        );
        std::thread::sleep(std::time::Duration::from_secs(3));
        links = count_links();
    }
    println!(
        "links per host: min {} median {} max {}",
        links[0],
        links[HOSTS / 2],
        links[HOSTS - 1]
    );
    // The swarm refuses beyond max_peers + 8 (room to take a wanted link first).
    assert!(
        links[HOSTS - 1] <= MAX_PEERS + 8,
        "a host holds {} links with --max-peers {MAX_PEERS}",
        links[HOSTS - 1]
    );
    assert!(
        links[HOSTS / 2] < HOSTS - 1,
        "median {} links: everyone connected to everyone",
        links[HOSTS / 2]
    );
    for h in &hosts[1..] {
        assert_eq!(
            count_text(&lab, *h, "Betriebsversammlung um 14 Uhr"),
            1,
            "exactly once at {}",
            lab.hosts[*h].name
        );
    }
}

/// A terminal server: two users logged in on one machine each run their own node (one
/// address, mDNS on, the second on another port), find each other and the other hosts by
/// mDNS, and talk to both.
#[test]
fn two_users_on_one_terminal_server_find_each_other_and_the_others() {
    if !lab::available() {
        return;
    }
    let mut lab = Lab::new(&[1]);
    let server = lab.add_host("Anna Terminalserver", 1, 1);
    let second = lab.add_user(server, "Bernd Terminalserver");
    let desktop = lab.add_host("Cora Desktop", 1, 2);
    let all = [server, second, desktop];
    same_network(&lab, &all);
    // Both users log in at the same moment and leave the port to the program.
    lab.hosts[server].use_default_listen();
    for h in all {
        lab.hosts[h].start(&[]);
    }
    let users: Vec<String> = all.iter().map(|h| lab.hosts[*h].user_id()).collect();
    for (i, a) in all.iter().enumerate() {
        for (j, _) in all.iter().enumerate() {
            if i != j {
                lab.hosts[*a].online(&users[j]);
            }
        }
    }
    let ports: Vec<u16> = [server, second]
        .iter()
        .map(|h| {
            let at = lab.hosts[*h].wait_for("listening", LONG, |v| v["event"] == "listening");
            let events = lab.hosts[*h].events.lock().unwrap();
            let v = &events.iter().find(|(t, _)| *t == at).unwrap().1;
            let address = v["address"].as_str().unwrap();
            address.rsplit('/').next().unwrap().parse::<u16>().unwrap()
        })
        .collect();
    assert!(
        ports.contains(&PORT) && ports[0] != ports[1],
        "one user's node takes the default port, the other another one: {ports:?}"
    );
    lab.hosts[server].knows_name("Bernd Terminalserver");
    lab.hosts[second].knows_name("Cora Desktop");
    lab.hosts[desktop].knows_name("Anna Terminalserver");

    lab.hosts[server].send(&users[1], "Kaffee im 2. Stock?");
    lab.hosts[second].send(&users[2], "Akte liegt bei dir");
    lab.hosts[desktop].send(&users[0], "Termin verschoben");
    lab.hosts[second].wait_for("anna's text", LONG, |v| {
        v["event"] == "message" && v["text"] == "Kaffee im 2. Stock?"
    });
    lab.hosts[desktop].wait_for("bernd's text", LONG, |v| {
        v["event"] == "message" && v["text"] == "Akte liegt bei dir"
    });
    lab.hosts[server].wait_for("cora's text", LONG, |v| {
        v["event"] == "message" && v["text"] == "Termin verschoben"
    });
}

/// A file across two subnets through a certified relay, in a managed network: Anna (town
/// hall, subnet 1) knows only the depot relay's address (subnet 2); Cora (depot, subnet 2)
/// is away when Anna sends a plan to their group, and Anna has gone home when Cora comes
/// back. The relay fetched the ciphertext and serves it; Cora's copy is the plan.
#[test]
fn a_file_crosses_two_subnets_through_a_certified_relay_after_the_sender_left() {
    if !lab::available() {
        return;
    }
    let mut lab = Lab::new(&[1, 2]);
    let anna = lab.add_host("Rathaus Anna", 1, 1);
    let relay = lab.add_host("Bauhof Relay", 2, 1);
    let cora = lab.add_host("Bauhof Cora", 2, 2);
    same_network(&lab, &[anna, relay, cora]);
    // The admin key stays where the network was made (Anna's data directory).
    let admin_key = lab.hosts[anna].dir.join("admin.key");
    let cert = lab.dir.path().join("relay.cert");
    let relay_id = lab.hosts[relay].user_id();
    let (ok, _, err) = lab.hosts[anna].cli(&[
        "admin",
        "certify-relay",
        "--admin-key",
        admin_key.to_str().unwrap(),
        &relay_id,
        "--out",
        cert.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) =
        lab.hosts[relay].cli(&["admin", "install-relay-cert", cert.to_str().unwrap()]);
    assert!(ok, "{err}");
    lab.hosts[relay].start(&["--relay"]);
    let to_relay = format!("/ip4/10.77.2.1/tcp/{PORT}");
    lab.hosts[anna].start(&["--peer", &to_relay]);
    // To be introduced, Cora dials Anna once; later she knows only what mDNS finds at the
    // depot (the relay), and Anna will have gone home.
    let to_anna = format!("/ip4/10.77.1.1/tcp/{PORT}");
    lab.hosts[cora].start(&["--peer", &to_anna]);
    let cora_id = lab.hosts[cora].user_id();
    lab.hosts[anna].online(&relay_id);
    lab.hosts[anna].online(&cora_id);
    let (ok, _, err) = lab.hosts[anna].cli(&["group", "create", "Bauhof", "--member", &cora_id]);
    assert!(ok, "{err}");
    lab.hosts[cora].wait_for("group", LONG, |v| v["event"] == "conversation_created");
    lab.hosts[cora].kill();

    // 3 MB of noise: fetched by itself (under 25 MB), no compression helps.
    let plan: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let path = lab.dir.path().join("Streuplan.pdf");
    std::fs::write(&path, &plan).unwrap();
    let (ok, _, err) = lab.hosts[anna].cli(&[
        "send",
        "--to",
        "Bauhof",
        "--file",
        path.to_str().unwrap(),
        "Streuplan",
    ]);
    assert!(ok, "{err}");
    lab.hosts[relay].wait_for("the relay holds the file", LONG, |v| {
        v["event"] == "file_ready"
    });
    lab.hosts[anna].kill();

    let back = Instant::now();
    lab.hosts[cora].start(&[]);
    let ready = lab.hosts[cora].wait_for("the file at Cora", LONG, |v| v["event"] == "file_ready");
    let (ok, out, err) = lab.hosts[cora].cli(&["history", "Bauhof", "--json"]);
    assert!(ok, "{err}");
    let message: serde_json::Value = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|m| m["text"] == "Streuplan")
        .expect("the message at Cora");
    let dest = lab.dir.path().join("at-cora.pdf");
    let event = message["event_id"].as_str().unwrap();
    let (ok, _, err) = lab.hosts[cora].cli(&["save-file", "Bauhof", event, dest.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        std::fs::read(&dest).unwrap() == plan,
        "Cora's copy is the plan"
    );
    let (ok, out, err) = lab.hosts[relay].cli(&["status", "--json"]);
    assert!(ok, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let served = status["load"]["file_bytes_served"].as_u64().unwrap();
    // Once to Cora (not a copy per block asked again).
    assert!(
        (plan.len() as u64..2 * plan.len() as u64).contains(&served),
        "the relay served {served} bytes"
    );
    println!(
        "3 MB through the relay: at Cora {:.1} s after she started (Anna gone)",
        ready.duration_since(back).as_secs_f64()
    );
}

/// `flurfunk status --json` of a host.
fn status(lab: &Lab, host: usize) -> serde_json::Value {
    let (ok, out, err) = lab.hosts[host].cli(&["status", "--json"]);
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// The offboarding story with real processes: four hosts, Mallory leaves. IT revokes her
/// and rotates the network key while Cora is on holiday; Cora returns within the
/// overlap, with the old key, and is caught up and given the new one; after the overlap
/// every node uses the new key, and Mallory, even under a fresh identity, reaches nobody.
#[test]
fn offboarding_a_colleague_shuts_her_out_and_a_colleague_on_holiday_rejoins() {
    if !lab::available() {
        return;
    }
    let mut lab = Lab::new(&[1]);
    let anna = lab.add_host("Anna IT", 1, 1);
    let ben = lab.add_host("Ben", 1, 2);
    let cora = lab.add_host("Cora", 1, 3);
    let mallory = lab.add_host("Mallory", 1, 4);
    same_network(&lab, &[anna, ben, cora, mallory]);
    for h in [anna, ben, cora, mallory] {
        lab.hosts[h].start(&[]);
    }
    let ids: Vec<String> = [ben, cora, mallory]
        .iter()
        .map(|h| lab.hosts[*h].user_id())
        .collect();
    for id in &ids {
        lab.hosts[anna].online(id);
    }
    for name in ["Ben", "Cora", "Mallory"] {
        lab.hosts[anna].knows_name(name);
    }
    lab.hosts[ben].knows_name("Cora");
    lab.hosts[cora].kill();

    // Mallory leaves: revoked.
    let revoked_at = Instant::now();
    let (ok, out, err) = lab.hosts[anna].cli(&["admin", "revoke", "Mallory"]);
    assert!(ok && out.contains("revoked"), "{out}{err}");
    let cli_took = revoked_at.elapsed();
    let refused = lab.hosts[ben].wait_for("Ben hears Mallory left", LONG, |v| {
        v["event"] == "left_organisation" && v["user_id"] == ids[2].as_str()
    });
    let new_key = lab.dir.path().join("rathaus-neu.key");
    let (ok, out, err) = lab.hosts[anna].cli(&[
        "admin",
        "rotate-network-key",
        "--out",
        new_key.to_str().unwrap(),
        "--switch-in",
        "3s",
        "--overlap",
        "12s",
        // No directory in this lab: every colleague Anna's node knows, less Mallory.
        "--all-known",
    ]);
    assert!(ok, "{out}{err}");
    let rotated_at = Instant::now();
    // "network key OLD -> NEW (statement no. 1), sealed to 3 colleague(s): ..."
    let new_fingerprint = out
        .split("-> ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the new key's fingerprint")
        .to_string();
    assert!(
        out.contains("sealed to 3 colleague(s)"),
        "Anna, Ben, Cora: {out}"
    );
    let (switch, overlap_end) = (Duration::from_secs(3), Duration::from_secs(15));
    // The old key is accepted a quarter of the overlap longer.
    let old_refused = overlap_end + Duration::from_secs(3);
    let deadline = Instant::now() + LONG;
    while status(&lab, ben)["key_rotation"]["next_network"] != new_fingerprint.as_str() {
        assert!(Instant::now() < deadline, "Ben never opened the new key");
        std::thread::sleep(Duration::from_millis(200));
    }
    lab.hosts[ben].send("Cora", "Während deines Urlaubs");

    // Cora is back after the switch, with the old key only.
    std::thread::sleep(
        (rotated_at + switch + Duration::from_secs(1)).saturating_duration_since(Instant::now()),
    );
    let back = Instant::now();
    lab.hosts[cora].start(&[]);
    let caught_up = lab.hosts[cora].wait_for("Cora is caught up", LONG, |v| {
        v["event"] == "message" && v["text"] == "Während deines Urlaubs"
    });
    let deadline = Instant::now() + LONG;
    while status(&lab, cora)["key_rotation"]["next_network"] != new_fingerprint.as_str() {
        assert!(Instant::now() < deadline, "Cora never opened the new key");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        rotated_at.elapsed() < old_refused,
        "the test was too slow for its overlap"
    );

    // After the overlap: the new key everywhere; Mallory's node, and a fresh identity of
    // hers with the old key file, reach nobody.
    std::thread::sleep(
        (rotated_at + old_refused + Duration::from_secs(1))
            .saturating_duration_since(Instant::now()),
    );
    for h in [anna, ben, cora] {
        assert_eq!(
            status(&lab, h)["network"],
            new_fingerprint.as_str(),
            "{}",
            lab.hosts[h].name
        );
    }
    assert_eq!(status(&lab, mallory)["peers_online"], 0);
    lab.hosts[mallory].kill();
    let fresh = lab.add_user(mallory, "Mallory Neu");
    let old_key = lab.dir.path().join("rathaus.key");
    let (ok, _, err) = lab.hosts[fresh].cli(&["network", "join", old_key.to_str().unwrap()]);
    assert!(ok, "{err}");
    lab.hosts[fresh].start(&[]);
    lab.hosts[ben].send("Cora", "Nach dem Wechsel");
    lab.hosts[cora].wait_for("the new key carries", LONG, |v| {
        v["event"] == "message" && v["text"] == "Nach dem Wechsel"
    });
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        lab.hosts[fresh].count(|v| v["event"] == "peer_online"),
        0,
        "a fresh identity with the old key got in"
    );
    assert_eq!(status(&lab, fresh)["peers_online"], 0);
    println!(
        "revocation refused at Ben {:.0} ms after IT started the CLI (which took {:.0} ms); Cora, back {:.1} s after the switch, caught up in {:.2} s",
        refused.saturating_duration_since(revoked_at).as_secs_f64() * 1000.0,
        cli_took.as_secs_f64() * 1000.0,
        back.saturating_duration_since(rotated_at + switch)
            .as_secs_f64(),
        caught_up.duration_since(back).as_secs_f64()
    );
}
