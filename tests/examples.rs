//! The example nodes, run as the programs testers and admins start: `office` under load,
//! `echo_bot` answering an in-process node, `depot_relay` carrying messages for a depot
//! while the sender is gone. Loopback only, mDNS off.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flurfunk::wire::Role;
use support::{eventually, spawn, spawn_with, test_key};

/// `cargo test` builds the examples next to the test binaries: target/<profile>/examples.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} not built (plain `cargo test` builds examples)",
        path.display()
    );
    // `cargo test --test examples` alone does not rebuild them: refuse a stale binary.
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    for source in [root.join(format!("{name}.rs")), root.join("common/mod.rs")] {
        assert!(
            modified(&path) >= modified(&source),
            "{} is older than {}: run `cargo build --examples` (or plain `cargo test`)",
            path.display(),
            source.display()
        );
    }
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child process if a test fails half-way.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn key_file(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("network.key");
    std::fs::write(&path, test_key().to_file_text()).unwrap();
    path
}

#[test]
fn office_20_colleagues_30_seconds_every_message_exactly_once() {
    let out = Command::new(example("office"))
        .args([
            "--colleagues",
            "20",
            "--duration",
            "30",
            "--rate",
            "20",
            "--churn-every",
            "40",
        ])
        .args(["--no-mdns", "--json", "--settle", "90"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON report");
    let n = |k: &str| {
        report[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} in {report}"))
    };
    assert!(
        n("messages_sent") >= 100.0,
        "the office barely talked: {report}"
    );
    assert_eq!(n("deliveries_lost"), 0.0, "{report}");
    assert_eq!(n("event_duplicates"), 0.0, "{report}");
    assert_eq!(n("history_missing"), 0.0, "{report}");
    assert_eq!(n("history_duplicates"), 0.0, "{report}");
    assert!(out.status.success(), "office reported a failure: {report}");
    // Events feed only the latency figures; a reader that fell behind is reported here.
    println!(
        "office: {} deliveries without an event in the report, {} events lagged",
        n("events_missed"),
        n("events_lagged")
    );
    println!(
        "office: {} sends failed (sender went offline meanwhile), {} ticks skipped (too many sends under way)",
        n("sends_failed"),
        n("sends_skipped")
    );
    println!(
        "office: {:.1} messages/s sent (asked for {}/s), delivery p50 {:.1} ms, p99 {:.1} ms (online recipients p99 {:.1} ms)",
        n("messages_per_second"),
        n("messages_requested_per_second"),
        n("latency_ms_p50"),
        n("latency_ms_p99"),
        n("latency_online_ms_p99")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_bot_answers_direct_messages_and_greets_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let bot = Command::new(example("echo_bot"))
        .arg("--data-dir")
        .arg(tmp.path().join("bot"))
        .arg("--network-key")
        .arg(key_file(tmp.path()))
        .args([
            "--no-mdns",
            "--listen",
            &format!("/ip4/127.0.0.1/tcp/{port}"),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _bot = Guard(bot);
    let anna = spawn("Anna", &[]).await;
    anna.handle
        .dial(format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap())
        .await
        .unwrap();
    let bot_id = eventually("the bot's profile", || async {
        anna.handle
            .profiles()
            .await
            .unwrap()
            .into_iter()
            .find(|p| p.display_name == "Echo-Bot")
            .map(|p| p.user_id)
    })
    .await;
    let conv = anna.handle.open_direct(bot_id).await.unwrap();
    anna.handle
        .send_text(conv, "Hallo Bot".into())
        .await
        .unwrap();
    let echo = eventually("the echo", || async {
        anna.texts(conv)
            .await
            .into_iter()
            .find(|t| t.starts_with("Echo: Hallo Bot"))
    })
    .await;
    assert!(echo.contains("Laufzeit"), "{echo}");
    // The second answer reports the round trip of the first one.
    anna.handle.send_text(conv, "Nochmal".into()).await.unwrap();
    let second = eventually("the second echo", || async {
        anna.texts(conv)
            .await
            .into_iter()
            .find(|t| t.starts_with("Echo: Nochmal"))
    })
    .await;
    assert!(second.contains(" ms)"), "no round trip measured: {second}");
    // Marked as read by the bot.
    eventually("read receipt", || async {
        let items = anna.handle.messages(conv, None, 10).await.unwrap();
        items
            .iter()
            .find(|m| m.text == "Hallo Bot")
            .filter(|m| !m.read_by.is_empty())
            .map(|_| ())
    })
    .await;
    let group = anna
        .handle
        .create_group("Testgruppe".into(), vec![bot_id])
        .await
        .unwrap();
    eventually("the bot greets the group", || async {
        anna.texts(group)
            .await
            .into_iter()
            .find(|t| t.starts_with("Hallo! Ich bin der Echo-Bot"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depot_relay_delivers_after_the_sender_has_gone() {
    // A managed network: the relay runs with IT's certificate, as the .deb's unit does.
    let tmp = tempfile::tempdir().unwrap();
    let admin = flurfunk::admin::AdminKey::generate(&mut rand::rngs::OsRng);
    let key = test_key().with_admin(admin.public());
    let key_path = tmp.path().join("rathaus.key");
    std::fs::write(&key_path, key.to_file_text()).unwrap();
    let relay_dir = flurfunk::app::data_dir::DataDir::new(tmp.path().join("relay"));
    let relay_id = flurfunk::app::launch::ensure_identity(&relay_dir, "Depot-Relay")
        .unwrap()
        .user_id();
    let certificate = admin
        .certify_relay(relay_id, flurfunk::node::now_ms(), 24 * 3600 * 1000)
        .unwrap();
    std::fs::write(relay_dir.relay_certificate(), certificate.to_text()).unwrap();
    let town_hall = spawn_with("Anna (Rathaus)", &[], key, Role::Member).await;
    let relay_port = free_port();
    let relay = Command::new(example("depot_relay"))
        .arg("--data-dir")
        .arg(relay_dir.root())
        .arg("--network-key")
        .arg(&key_path)
        .args([
            "--no-mdns",
            "--listen",
            &format!("/ip4/127.0.0.1/tcp/{relay_port}"),
        ])
        .args(["--town-hall", &town_hall.addr.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _relay = Guard(relay);
    // The depot desktop knows only the relay.
    let depot = spawn_with("Jürgen (Bauhof)", &[], key, Role::Member).await;
    depot
        .handle
        .dial(format!("/ip4/127.0.0.1/tcp/{relay_port}").parse().unwrap())
        .await
        .unwrap();
    depot.knows(&[&town_hall]).await;
    town_hall.knows(&[&depot]).await;
    let conv = town_hall.handle.open_direct(depot.user()).await.unwrap();
    town_hall
        .handle
        .send_text(conv, "Streuwagen bitte tanken".into())
        .await
        .unwrap();
    support::wait_texts(&depot, conv, &["Streuwagen bitte tanken"]).await;

    // The depot goes offline; the town hall sends and goes home; the depot comes back.
    let stopped_depot = depot.stop().await;
    town_hall
        .handle
        .send_text(conv, "Morgen 6 Uhr Winterdienst".into())
        .await
        .unwrap();
    // The relay is told at once (own events are pushed to connected relays) and again
    // by the next summary; the relay's database is its own process's, so wait a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _gone = town_hall.stop().await;
    let depot = stopped_depot.start_with_key(&[], key).await;
    depot
        .handle
        .dial(format!("/ip4/127.0.0.1/tcp/{relay_port}").parse().unwrap())
        .await
        .unwrap();
    support::wait_texts(
        &depot,
        conv,
        &["Streuwagen bitte tanken", "Morgen 6 Uhr Winterdienst"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office_welcomes_a_tester_and_answers() {
    let tester = spawn("Tina Tester", &[]).await;
    let tmp = tempfile::tempdir().unwrap();
    let office = Command::new(example("office"))
        .args([
            "--colleagues",
            "4",
            "--duration",
            "25",
            "--rate",
            "1",
            "--no-churn",
            "--no-mdns",
        ])
        .arg("--network-key")
        .arg(key_file(tmp.path()))
        .args(["--peer", &tester.addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _office = Guard(office);
    // Added to the office-wide group and greeted in a 1:1 chat.
    let all = eventually("added to Alle", || async {
        let convs = tester.handle.conversations().await.unwrap();
        convs.into_iter().find(|c| c.name == "Alle" && c.is_member)
    })
    .await;
    assert_eq!(all.members.len(), 5, "4 colleagues and the tester");
    let direct = eventually("welcome message", || async {
        let convs = tester.handle.conversations().await.unwrap();
        convs.into_iter().find(|c| {
            c.kind == "direct"
                && c.last_message
                    .as_ref()
                    .is_some_and(|m| m.text.contains("Hallo Tina Tester, willkommen"))
        })
    })
    .await;
    let conv = direct.conversation.parse().unwrap();
    tester
        .handle
        .send_text(conv, "Hallo zusammen!".into())
        .await
        .unwrap();
    eventually("an answer", || async {
        let items = tester.handle.messages(conv, None, 10).await.unwrap();
        items
            .last()
            .filter(|m| !m.own && m.text != direct.last_message.as_ref().unwrap().text)
            .map(|_| ())
    })
    .await;
}
