//! The `flurfunk` program end to end on loopback (mDNS off): two headless nodes, the
//! control socket, `--json` output, the offline path and the one-line errors.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod support;

use support::{BIN, flurfunk, user_id};

struct RunningNode {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
}

impl RunningNode {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .args([
                "node",
                "--no-mdns",
                "--json",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value: serde_json::Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        RunningNode { child, lines }
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        panic!("timed out waiting for {what}");
    }

    fn stop(mut self) {
        // SIGTERM: the node shuts down cleanly and exits 0.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    }
}

/// Anna Schmidt and Ben Krüger in the demo network, each running a node on loopback,
/// Ben linked to Anna, Anna knowing Ben's profile: (Anna's dir, Ben's dir, Anna, Ben,
/// Anna's address).
fn anna_and_ben() -> (
    tempfile::TempDir,
    tempfile::TempDir,
    RunningNode,
    RunningNode,
    String,
) {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    assert!(flurfunk(a.path(), &["init", "--name", "Anna Schmidt"]).0);
    assert!(flurfunk(b.path(), &["init", "--name", "Ben Krüger"]).0);
    for d in [&a, &b] {
        assert!(flurfunk(d.path(), &["network", "demo"]).0);
    }
    let anna = RunningNode::start(a.path(), &[]);
    let listening = anna.wait_for("anna listening", |v| v["event"] == "listening");
    let addr = listening["address"].as_str().unwrap().to_string();
    let ben = RunningNode::start(b.path(), &["--peer", &addr]);
    anna.wait_for("ben's profile at anna", |v| {
        v["event"] == "profile" && v["name"] == "Ben Krüger"
    });
    (a, b, anna, ben, addr)
}

#[test]
fn two_nodes_talk_through_the_control_socket_and_json_output() {
    let (a, b, anna, ben, addr) = anna_and_ben();

    // Partial names resolve when unique.
    let (ok, out, err) = flurfunk(
        a.path(),
        &["send", "--to", "ben", "Treffen um 10 im Bauhof?"],
    );
    assert!(ok, "{out}{err}");
    let msg = ben.wait_for("message at ben", |v| v["event"] == "message");
    assert_eq!(msg["text"], "Treffen um 10 im Bauhof?");
    assert_eq!(msg["author_name"], "Anna Schmidt");
    assert_eq!(msg["author"], user_id(a.path()));

    let (ok, _, err) = flurfunk(
        a.path(),
        &["group", "create", "Bauhof", "--member", &user_id(b.path())],
    );
    assert!(ok, "{err}");
    assert!(
        flurfunk(b.path(), &["send", "--to", "Anna", "Passt!"]).0 || {
            // Ben may not have Anna's name yet only if profiles failed; that is a bug.
            panic!("ben cannot address anna by name")
        }
    );
    anna.wait_for("reply at anna", |v| {
        v["event"] == "message" && v["text"] == "Passt!"
    });

    let (ok, out, _) = flurfunk(a.path(), &["history", "Ben Krüger", "--json"]);
    assert!(ok);
    let texts: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(texts, ["Treffen um 10 im Bauhof?", "Passt!"]);

    // The running node holds the database: a second node on it is refused in one line.
    let (ok, _, err) = flurfunk(
        a.path(),
        &["node", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"],
    );
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("in use by another Flurfunk process"), "{err}");

    ben.stop();
    // With Ben's node stopped, his CLI works on the store; the message waits in the outbox.
    // So does a key update (saved to his key file).
    let (ok, out, err) = flurfunk(b.path(), &["key-update"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = flurfunk(b.path(), &["send", "--to", "Bauhof", "Salz ist alle"]);
    assert!(ok, "{err}");
    assert!(out.contains("outbox"), "{out}");
    let ben = RunningNode::start(b.path(), &["--peer", &addr]);
    anna.wait_for("queued message", |v| {
        v["event"] == "message" && v["text"] == "Salz ist alle"
    });
    // A second key update through the running node; Anna's next message is for his new key.
    let (ok, out, err) = flurfunk(b.path(), &["key-update"]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = flurfunk(
        a.path(),
        &["send", "--to", "Bauhof", "Streugut kommt Montag"],
    );
    assert!(ok, "{err}");
    ben.wait_for("message after the key update", |v| {
        v["event"] == "message" && v["text"] == "Streugut kommt Montag"
    });
    // Anna removes Ben: his CLI says he is out (not "unknown"), and his history stays.
    let (ok, out, err) = flurfunk(a.path(), &["group", "remove", "Bauhof", "Ben"]);
    assert!(ok, "{out}{err}");
    ben.wait_for("ben learns he is out", |v| {
        v["event"] == "conversation_changed" && v["is_member"] == false
    });
    let (ok, _, err) = flurfunk(b.path(), &["send", "--to", "Bauhof", "Noch da?"]);
    assert!(!ok);
    assert!(err.contains("no longer a member of 'Bauhof'"), "{err}");
    let (ok, out, err) = flurfunk(b.path(), &["history", "Bauhof"]);
    assert!(ok, "{err}");
    assert!(out.contains("Salz ist alle"), "{out}");
    ben.stop();
    anna.stop();
}

#[test]
fn errors_are_one_clear_line_and_a_failure_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = flurfunk(dir.path(), &["send", "--to", "x", "y"]);
    assert!(!ok);
    assert!(err.contains("no identity yet"), "{err}");
    assert_eq!(err.lines().count(), 1);

    assert!(flurfunk(dir.path(), &["init", "--name", "Anna"]).0);
    let (ok, _, err) = flurfunk(dir.path(), &["init", "--name", "Anna"]);
    assert!(!ok && err.contains("refusing to overwrite"), "{err}");

    // No network key: a clear error, never the demo network by itself (issue 23).
    let (ok, _, err) = flurfunk(dir.path(), &["send", "--to", "Niemand", "Hallo"]);
    assert!(!ok && err.contains("no network key"), "{err}");
    let (ok, _, err) = flurfunk(
        dir.path(),
        &["node", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"],
    );
    assert!(!ok && err.contains("flurfunk network join FILE"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (_, out, _) = flurfunk(dir.path(), &["whoami"]);
    assert!(out.contains("none yet"), "{out}");
    // Asked for, it is the demo network.
    assert!(flurfunk(dir.path(), &["network", "demo"]).0);
    let (_, out, _) = flurfunk(dir.path(), &["whoami"]);
    assert!(out.contains("DEMO"), "{out}");

    let (ok, _, err) = flurfunk(dir.path(), &["send", "--to", "Niemand", "Hallo"]);
    assert!(!ok && err.contains("unknown recipient 'Niemand'"), "{err}");
    assert_eq!(err.lines().count(), 1);

    // A size it cannot read is refused before anything starts.
    let (ok, _, err) = flurfunk(dir.path(), &["node", "--files-quota", "5 parsecs"]);
    assert!(!ok && err.contains("unknown unit \"parsecs\""), "{err}");

    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "not a key").unwrap();
    let (ok, _, err) = flurfunk(dir.path(), &["network", "join", bad.to_str().unwrap()]);
    assert!(
        !ok && err.contains("is not a Flurfunk network key"),
        "{err}"
    );

    std::fs::write(dir.path().join("identity.key"), b"garbage").unwrap();
    let (ok, _, err) = flurfunk(dir.path(), &["whoami"]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");

    // A real network key file: created 0600, joinable, shown by fingerprint.
    let other = tempfile::tempdir().unwrap();
    let key = other.path().join("rathaus.key");
    assert!(flurfunk(other.path(), &["init", "--name", "Admin"]).0);
    let (ok, _, err) = flurfunk(
        other.path(),
        &["network", "new", "--out", key.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let (_, out, _) = flurfunk(other.path(), &["whoami"]);
    assert!(!out.contains("DEMO"), "{out}");
}

#[test]
fn without_a_display_the_app_says_so_and_points_to_the_headless_node() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&[][..], &["app"][..]] {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        // A headless build (`--no-default-features`) has no app to start at all.
        let why = if cfg!(feature = "gui") {
            "no graphical display"
        } else {
            "no desktop app"
        };
        assert!(stderr.contains(why), "{stderr}");
        assert!(stderr.contains("flurfunk node"), "{stderr}");
    }
    // At log-on (`app --autostart`, what the installers register) with the user's "start
    // at log-on" off: nothing opens and nothing is said, display or not.
    if cfg!(feature = "gui") {
        std::fs::write(dir.path().join("app.json"), r#"{"start_at_logon": false}"#).unwrap();
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["app", "--autostart"])
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
        // Left on (the default): it tries to open the app (and says there is no display).
        std::fs::write(dir.path().join("app.json"), r#"{"start_at_logon": true}"#).unwrap();
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["app", "--autostart"])
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("no graphical display"),
            "{stderr}"
        );
    }
}

#[test]
fn a_file_is_sent_fetched_and_saved_through_the_cli() {
    let (a, b, anna, ben, _) = anna_and_ben();

    let form: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
    let source = a.path().join("Antrag Sondernutzung.pdf");
    std::fs::write(&source, &form).unwrap();
    let (ok, out, err) = flurfunk(
        a.path(),
        &[
            "send-file",
            "--to",
            "ben",
            source.to_str().unwrap(),
            "--text",
            "Bitte ausfüllen",
        ],
    );
    assert!(ok, "{out}{err}");
    let msg = ben.wait_for("message with a file", |v| v["event"] == "message");
    assert_eq!(msg["text"], "Bitte ausfüllen");
    assert_eq!(msg["file"]["name"], "Antrag Sondernutzung.pdf");
    assert_eq!(msg["file"]["size"], 100_000);
    ben.wait_for("file ready", |v| v["event"] == "file_ready");

    let (ok, out, err) = flurfunk(b.path(), &["history", "Anna", "--json"]);
    assert!(ok, "{err}");
    let item: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(item["file"]["here"], true);
    let id = item["event_id"].as_str().unwrap()[..10].to_string();
    let (ok, out, _) = flurfunk(b.path(), &["history", "Anna"]);
    assert!(
        ok && out.contains("[file Antrag Sondernutzung.pdf (98 KB) id"),
        "{out}"
    );

    // Saved into a folder under its name, a second time numbered; never over a file.
    let folder = tempfile::tempdir().unwrap();
    for expected in ["Antrag Sondernutzung.pdf", "Antrag Sondernutzung (2).pdf"] {
        let (ok, out, err) = flurfunk(
            b.path(),
            &["save-file", "Anna", &id, folder.path().to_str().unwrap()],
        );
        assert!(ok, "{out}{err}");
        assert_eq!(std::fs::read(folder.path().join(expected)).unwrap(), form);
    }
    let (ok, _, err) = flurfunk(b.path(), &["save-file", "Anna", "deadbeef00"]);
    assert!(!ok && err.contains("no message 'deadbeef00'"), "{err}");
    let (ok, out, _) = flurfunk(b.path(), &["downloads"]);
    assert!(ok && out.contains("no files being fetched"), "{out}");

    // `send --file` with a text; a file over the automatic limit is not fetched by
    // itself, and `save` fetches it first, with a progress line.
    let big: Vec<u8> = (0..26_000_000u32).map(|i| (i % 253) as u8).collect();
    let source = a.path().join("Luftbild.tif");
    std::fs::write(&source, &big).unwrap();
    let (ok, out, err) = flurfunk(
        a.path(),
        &[
            "send",
            "--to",
            "ben",
            "--file",
            source.to_str().unwrap(),
            "Das Luftbild",
        ],
    );
    assert!(ok, "{out}{err}");
    let msg = ben.wait_for("message with the big file", |v| {
        v["event"] == "message" && v["text"] == "Das Luftbild"
    });
    assert_eq!(msg["file"]["name"], "Luftbild.tif");
    let (ok, out, _) = flurfunk(b.path(), &["history", "Anna", "--json"]);
    assert!(ok);
    let item: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(item["file"]["here"], false, "not fetched by itself: {item}");
    let id = item["event_id"].as_str().unwrap()[..10].to_string();
    let (ok, out, err) = flurfunk(
        b.path(),
        &["save", "Anna", &id, folder.path().to_str().unwrap()],
    );
    assert!(ok && out.contains("saved "), "{out}{err}");
    assert_eq!(
        std::fs::read(folder.path().join("Luftbild.tif")).unwrap(),
        big
    );
    ben.stop();
    anna.stop();
}

/// A download killed with SIGKILL after half the file resumes after a restart from the
/// blocks on disk: the sender sends again only what was on the way at the kill.
#[test]
fn a_download_killed_halfway_resumes_after_a_restart_from_what_is_on_disk() {
    let (a, b, anna, ben, addr) = anna_and_ben();
    // Over the automatic limit: fetched only when asked.
    let size = 120_000_000usize;
    let plan: Vec<u8> = (0..size)
        .map(|i| (i % 239) as u8 ^ (i >> 16) as u8)
        .collect();
    let source = a.path().join("Kanalkataster.bin");
    std::fs::write(&source, &plan).unwrap();
    let (ok, out, err) = flurfunk(
        a.path(),
        &["send", "--to", "ben", "--file", source.to_str().unwrap()],
    );
    assert!(ok, "{out}{err}");
    ben.wait_for("the message", |v| v["event"] == "message");
    let (_, out, _) = flurfunk(b.path(), &["history", "Anna", "--json"]);
    let item: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let id = item["event_id"].as_str().unwrap()[..12].to_string();
    let (ok, out, err) = flurfunk(b.path(), &["download", "Anna", &id]);
    assert!(ok, "{out}{err}");
    // SIGKILL once half is here.
    let deadline = Instant::now() + Duration::from_secs(60);
    let held_at_kill = loop {
        let (_, out, _) = flurfunk(b.path(), &["downloads", "--json"]);
        let progress = out
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|d| {
                (
                    d["blocks_held"].as_u64().unwrap(),
                    d["blocks"].as_u64().unwrap(),
                )
            })
            .next();
        if let Some((held, blocks)) = progress
            && held * 2 >= blocks
        {
            break (held, blocks);
        }
        assert!(
            progress.is_some(),
            "the download finished before it was killed"
        );
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut ben = ben;
    ben.child.kill().unwrap();
    ben.child.wait().unwrap();
    drop(ben);
    // Restarted, it goes on from the blocks on disk.
    let ben = RunningNode::start(b.path(), &["--peer", &addr]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, out, _) = flurfunk(b.path(), &["history", "Anna", "--json"]);
        let here = out
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|m| m["file"]["here"] == true);
        if here {
            break;
        }
        assert!(Instant::now() < deadline, "the file never arrived whole");
        std::thread::sleep(Duration::from_millis(100));
    }
    let folder = tempfile::tempdir().unwrap();
    let (ok, out, err) = flurfunk(
        b.path(),
        &["save", "Anna", &id, folder.path().to_str().unwrap()],
    );
    assert!(ok, "{out}{err}");
    assert!(std::fs::read(folder.path().join("Kanalkataster.bin")).unwrap() == plan);
    let (ok, out, _) = flurfunk(a.path(), &["status", "--json"]);
    assert!(ok);
    let status: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let served = status["load"]["file_bytes_served"].as_u64().unwrap();
    let ciphertext = held_at_kill.1 * 16_384; // within one block of it
    let again = served.saturating_sub(ciphertext);
    eprintln!(
        "killed at {} of {} blocks; served {served} bytes for {ciphertext}: {again} again ({:.2} %)",
        held_at_kill.0,
        held_at_kill.1,
        again as f64 * 100.0 / ciphertext as f64
    );
    // At most what was on the way at the kill (2 requests of at most 1 MiB from the one
    // peer), plus the hash tree's parent nodes that travel with the blocks (~0.4 %).
    assert!(again <= 4 << 20, "sent again: {again} bytes");
    ben.stop();
    anna.stop();
}

/// IT makes a managed network (an admin key beside the key file), a relay without a
/// certificate refuses to start with a clear error, a certificate for it is issued and
/// installed, one for another node is refused, and the relay then runs.
#[test]
fn a_managed_network_certifies_its_relays_through_the_cli() {
    let it = tempfile::tempdir().unwrap();
    let relay = tempfile::tempdir().unwrap();
    assert!(flurfunk(it.path(), &["init", "--name", "IT-Service"]).0);
    assert!(flurfunk(relay.path(), &["init", "--name", "Bauhof-Relay"]).0);
    let key = it.path().join("rathaus.key");
    let (ok, out, err) = flurfunk(
        it.path(),
        &["network", "new", "--out", key.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    // The admin key stays in IT's data directory, not beside the file handed out.
    let admin_key = it.path().join("admin.key");
    assert!(out.contains("admin.key"), "{out}");
    assert!(!it.path().join("rathaus-admin.key").exists());
    assert!(admin_key.exists());
    assert_eq!(std::fs::read_to_string(&key).unwrap().lines().count(), 4);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&admin_key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // A second network never overwrites the admin key.
    let (ok, _, err) = flurfunk(
        it.path(),
        &[
            "network",
            "new",
            "--out",
            it.path().join("x.key").to_str().unwrap(),
            "--admin-key",
            admin_key.to_str().unwrap(),
        ],
    );
    assert!(!ok && err.contains("refusing to overwrite"), "{err}");

    assert!(flurfunk(relay.path(), &["network", "join", key.to_str().unwrap()]).0);
    let (_, out, _) = flurfunk(relay.path(), &["whoami"]);
    assert!(out.contains("managed, admin"), "{out}");
    let listen = [
        "node",
        "--relay",
        "--no-mdns",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
    ];
    let (ok, _, err) = flurfunk(relay.path(), &listen);
    assert!(!ok && err.contains("no certificate"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let cert = it.path().join("relay.cert");
    let (ok, out, err) = flurfunk(
        it.path(),
        &[
            "admin",
            "certify-relay",
            &user_id(relay.path()),
            "--admin-key",
            admin_key.to_str().unwrap(),
            "--out",
            cert.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("90 days"), "{out}");
    // Not for IT's own node: it names another.
    let (ok, _, err) = flurfunk(
        it.path(),
        &["admin", "install-relay-cert", cert.to_str().unwrap()],
    );
    assert!(!ok && err.contains("for another relay"), "{err}");
    let (ok, _, err) = flurfunk(
        relay.path(),
        &["admin", "install-relay-cert", cert.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    let node = RunningNode::start(relay.path(), &["--relay"]);
    let listening = node.wait_for("relay listening", |v| v["event"] == "listening");
    let addr = listening["address"].as_str().unwrap().to_string();
    let (ok, out, err) = flurfunk(relay.path(), &["status"]);
    assert!(ok && out.contains("role:      relay"), "{out}{err}");

    // The relay is taken out of service: IT revokes it from its own running node. The
    // relay is disconnected for good, and the action is in IT's audit log.
    assert!(flurfunk(it.path(), &["network", "join", key.to_str().unwrap()]).0);
    let it_node = RunningNode::start(it.path(), &["--peer", &addr]);
    let relay_id = user_id(relay.path());
    it_node.wait_for("the relay online at IT", |v| {
        v["event"] == "peer_online" && v["user_id"] == relay_id.as_str()
    });
    // An admin key of another network (made elsewhere) is refused.
    let elsewhere = tempfile::tempdir().unwrap();
    let stranger = elsewhere.path().join("admin.key");
    assert!(
        flurfunk(
            elsewhere.path(),
            &[
                "network",
                "new",
                "--out",
                elsewhere.path().join("y.key").to_str().unwrap(),
            ],
        )
        .0
    );
    let (ok, _, err) = flurfunk(
        it.path(),
        &[
            "admin",
            "revoke",
            &relay_id,
            "--admin-key",
            stranger.to_str().unwrap(),
        ],
    );
    assert!(
        !ok && err.contains("is not this network's admin key"),
        "{err}"
    );
    let (ok, out, err) = flurfunk(it.path(), &["admin", "revoke", "Bauhof-Relay"]);
    assert!(ok && out.contains("revoked Bauhof-Relay"), "{out}{err}");
    it_node.wait_for("the relay left", |v| {
        v["event"] == "left_organisation" && v["user_id"] == relay_id.as_str()
    });
    it_node.wait_for("the relay disconnected", |v| {
        v["event"] == "peer_offline" && v["user_id"] == relay_id.as_str()
    });
    let (ok, out, _) = flurfunk(it.path(), &["admin", "revoke", &relay_id]);
    assert!(ok && out.contains("already revoked"), "{out}");
    let (ok, out, err) = flurfunk(it.path(), &["admin", "statements", "--json"]);
    assert!(ok, "{err}");
    let statements: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(statements[0]["kind"], "revocations");
    assert_eq!(statements[0]["revoked"][0]["user_id"], relay_id.as_str());
    // A part of a name is not enough to revoke someone.
    let (ok, _, err) = flurfunk(it.path(), &["admin", "reinstate", "Bauhof"]);
    assert!(
        !ok && err.contains("give the full name or the user id"),
        "{err}"
    );
    // The organisation's policy: read receipts off, presence online only.
    let (ok, out, err) = flurfunk(
        it.path(),
        &[
            "admin",
            "policy",
            "--read-receipts",
            "off",
            "--presence",
            "online",
            "--delete-for-everyone",
            "off",
            "--edit-window",
            "15m",
            "--turn-off",
            "reactions,previews",
        ],
    );
    assert!(ok && out.contains("policy no. 1"), "{out}{err}");
    let (ok, out, _) = flurfunk(it.path(), &["admin", "policy"]);
    assert!(ok && out.contains("read receipts: off"), "{out}");
    assert!(out.contains("presence: online only"), "{out}");
    assert!(out.contains("delete for everyone: not allowed"), "{out}");
    assert!(out.contains("edit within: 15 minutes"), "{out}");
    assert!(out.contains("turned off: reactions, previews"), "{out}");
    assert!(
        out.contains("delete for everyone within: any time"),
        "{out}"
    );
    let (ok, _, err) = flurfunk(it.path(), &["admin", "policy", "--edit-window", "15 weeks"]);
    assert!(!ok && err.contains("use m, h or d"), "{err}");
    // An unknown feature is refused.
    let (ok, out, err) = flurfunk(it.path(), &["admin", "policy", "--turn-off", "bogus"]);
    assert!(!ok && err.contains("unknown feature"), "{out}{err}");
    let (ok, out, _) = flurfunk(it.path(), &["admin", "audit"]);
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "certify, revoke, policy: {out}");
    assert!(
        lines[0].contains("certify-relay") && lines[1].contains("revoke"),
        "{out}"
    );
    assert!(lines[1].contains(&relay_id), "{out}");
    assert!(
        lines[2].contains("policy") && lines[2].contains("read receipts: off"),
        "{out}"
    );
    it_node.stop();
    node.stop();
}

/// The directory: IT gives a colleague the official name "Bürgermeisteramt"; every node
/// shows it with its mark, and a colleague who calls itself "Bürgermeister-Amt" is shown
/// as doubtful. A file with a bad line changes nothing and names the line.
#[test]
fn directory_names_show_with_their_mark_and_a_look_alike_does_not() {
    let it = tempfile::tempdir().unwrap();
    let anna = tempfile::tempdir().unwrap();
    let mallory = tempfile::tempdir().unwrap();
    assert!(flurfunk(it.path(), &["init", "--name", "IT-Service"]).0);
    assert!(flurfunk(anna.path(), &["init", "--name", "Anna"]).0);
    assert!(flurfunk(mallory.path(), &["init", "--name", "Bürgermeister-Amt"]).0);
    let key = it.path().join("rathaus.key");
    assert!(
        flurfunk(
            it.path(),
            &["network", "new", "--out", key.to_str().unwrap()]
        )
        .0
    );
    for dir in [&it, &anna, &mallory] {
        assert!(flurfunk(dir.path(), &["network", "join", key.to_str().unwrap()]).0);
    }
    let it_node = RunningNode::start(it.path(), &[]);
    let listening = it_node.wait_for("IT listening", |v| v["event"] == "listening");
    let addr = listening["address"].as_str().unwrap().to_string();
    let anna_node = RunningNode::start(anna.path(), &["--peer", &addr]);
    let mallory_node = RunningNode::start(mallory.path(), &["--peer", &addr]);
    let (anna_id, mallory_id) = (user_id(anna.path()), user_id(mallory.path()));
    // Both online at IT, in whichever order.
    let seen = std::cell::RefCell::new(std::collections::BTreeSet::new());
    it_node.wait_for("both colleagues online at IT", |v| {
        if v["event"] == "peer_online" {
            seen.borrow_mut()
                .insert(v["user_id"].as_str().unwrap_or("").to_string());
        }
        let seen = seen.borrow();
        seen.contains(&anna_id) && seen.contains(&mallory_id)
    });
    let list = it.path().join("verzeichnis.csv");
    std::fs::write(
        &list,
        format!("# user id;name;department\n{anna_id};Bürgermeisteramt;Büro des Bürgermeisters\nnot-an-id;Bauhof;\n"),
    )
    .unwrap();
    let (ok, _, err) = flurfunk(
        it.path(),
        &["admin", "directory", "import", list.to_str().unwrap()],
    );
    assert!(
        !ok && err.contains("line 3") && err.contains("nothing changed"),
        "{err}"
    );
    let (_, out, _) = flurfunk(it.path(), &["admin", "directory", "show"]);
    assert!(out.contains("no directory"), "{out}");
    std::fs::write(
        &list,
        format!("{anna_id};Bürgermeisteramt;Büro des Bürgermeisters\n"),
    )
    .unwrap();
    let (ok, out, err) = flurfunk(
        it.path(),
        &["admin", "directory", "import", list.to_str().unwrap()],
    );
    assert!(
        ok && out.contains("directory no. 1 with 1 colleagues"),
        "{out}{err}"
    );
    for node in [&anna_node, &mallory_node] {
        node.wait_for("the directory arrived", |v| {
            v["event"] == "admin_statement" && v["kind"] == "directory"
        });
    }
    // At every node: Anna by her official name with the mark, Mallory's look-alike with
    // the doubtful one.
    for (dir, whom) in [
        (&it, vec![&anna_id, &mallory_id]),
        (&mallory, vec![&anna_id]),
    ] {
        let (ok, out, err) = flurfunk(dir.path(), &["peers", "--json"]);
        assert!(ok, "{err}");
        // One JSON object per line.
        let peers = serde_json::Value::Array(
            out.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
        );
        let name = |id: &str| {
            peers
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["user_id"] == id)
                .map(|p| (p["name"].clone(), p["department"].clone()))
                .unwrap_or_else(|| panic!("{id} not among {peers}"))
        };
        if whom.contains(&&anna_id) {
            let (n, d) = name(&anna_id);
            assert_eq!(n, "Bürgermeisteramt \u{2714}", "{peers}");
            assert_eq!(d, "Büro des Bürgermeisters");
        }
        if whom.contains(&&mallory_id) {
            let (n, d) = name(&mallory_id);
            assert_eq!(n, "Bürgermeister-Amt \u{26A0}", "{peers}");
            assert!(d.is_null());
        }
    }
    // An unrelated name is shown as chosen, without a mark.
    let (_, out, _) = flurfunk(mallory.path(), &["peers"]);
    let it_line = out
        .lines()
        .find(|l| l.contains("IT-Service"))
        .unwrap_or_default();
    assert!(
        !it_line.contains('\u{26A0}') && !it_line.contains('\u{2714}'),
        "{out}"
    );
    // The 1:1 chat with Anna is named by her official name, mark included.
    let (ok, _, err) = flurfunk(mallory.path(), &["send", "--to", &anna_id, "Guten Tag"]);
    assert!(ok, "{err}");
    let (_, out, _) = flurfunk(mallory.path(), &["conversations", "--json"]);
    assert!(out.contains("Bürgermeisteramt \u{2714}"), "{out}");
    // Typing the official name reaches its holder, never the look-alike.
    let (ok, _, err) = flurfunk(it.path(), &["send", "--to", "Bürgermeisteramt", "Termin"]);
    assert!(ok, "{err}");
    let (_, out, _) = flurfunk(it.path(), &["conversations", "--json"]);
    assert!(
        out.contains("Bürgermeisteramt \u{2714}") && !out.contains("Bürgermeister-Amt"),
        "{out}"
    );
    // A self-chosen name cannot carry the mark.
    let other = tempfile::tempdir().unwrap();
    let (ok, _, err) = flurfunk(
        other.path(),
        &["init", "--name", "Bürgermeisteramt \u{2714}"],
    );
    assert!(!ok, "{err}");
    // One entry changed by name; the audit log has both.
    let (ok, out, err) = flurfunk(
        it.path(),
        &[
            "admin",
            "directory",
            "set",
            &anna_id,
            "Bürgermeisteramt",
            "--department",
            "Referat 1",
        ],
    );
    assert!(ok && out.contains("directory no. 2"), "{out}{err}");
    let (_, out, _) = flurfunk(it.path(), &["admin", "directory", "show"]);
    assert!(out.contains("Referat 1") && out.contains(&anna_id), "{out}");
    let (_, out, _) = flurfunk(it.path(), &["admin", "audit"]);
    assert!(
        out.contains("directory-import") && out.contains("directory-set"),
        "{out}"
    );
    // Organisation groups: "Alle" and one for Anna's department, made and kept by IT's
    // node. Anna is in both and cannot leave them; Mallory, not in the directory, is in
    // neither.
    let (ok, out, err) = flurfunk(it.path(), &["admin", "org-groups"]);
    assert!(
        ok && out.contains("2 groups") && out.contains("Alle") && out.contains("Referat 1"),
        "{out}{err}"
    );
    let (ok, out, _) = flurfunk(it.path(), &["admin", "org-groups"]);
    assert!(ok && out.contains("unchanged"), "{out}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let groups = loop {
        let (_, out, _) = flurfunk(anna.path(), &["conversations", "--json"]);
        let groups: Vec<serde_json::Value> = out
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|c| c["organisation"].is_string())
            .collect();
        if groups.len() == 2 {
            break groups;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        groups
            .iter()
            .any(|g| g["name"] == "Alle" && g["organisation"] == ""),
        "{groups:?}"
    );
    assert!(
        groups
            .iter()
            .any(|g| g["name"] == "Referat 1" && g["organisation"] == "Referat 1"),
        "{groups:?}"
    );
    let (ok, _, err) = flurfunk(anna.path(), &["group", "leave", "Alle"]);
    assert!(!ok && err.contains("organisation's groups"), "{err}");
    let (_, out, _) = flurfunk(mallory.path(), &["conversations", "--json"]);
    assert!(!out.contains("\"organisation\""), "{out}");
    let (_, out, _) = flurfunk(it.path(), &["admin", "statements"]);
    assert!(out.contains("organisation groups no. 1"), "{out}");
    let (_, out, _) = flurfunk(it.path(), &["admin", "audit"]);
    assert!(out.contains("org-groups"), "{out}");
    // One group keeps its messages shorter: "Referat 1" 30 days. Anna's node says so for
    // that group and not for "Alle"; under a day is refused.
    let (ok, out, err) = flurfunk(it.path(), &["admin", "retention", "Referat 1", "30d"]);
    assert!(
        ok && out.contains("group retention no. 1") && out.contains("Referat 1: 30 days"),
        "{out}{err}"
    );
    let (ok, _, err) = flurfunk(it.path(), &["admin", "retention", "Referat 1", "12h"]);
    assert!(!ok && err.contains("at least a day"), "{err}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, out, _) = flurfunk(anna.path(), &["conversations", "--json"]);
        let kept: Vec<(String, serde_json::Value)> = out
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|c| c["organisation"].is_string())
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or("").to_string(),
                    c["keep_messages_s"].clone(),
                )
            })
            .collect();
        if kept.contains(&("Referat 1".into(), serde_json::json!(30 * 86_400))) {
            assert!(
                kept.contains(&("Alle".into(), serde_json::Value::Null)),
                "{kept:?}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, out, _) = flurfunk(it.path(), &["admin", "retention"]);
    assert!(
        ok && out.contains("every conversation: kept for good")
            && out.contains("Referat 1: 30 days"),
        "{out}"
    );
    let (_, out, _) = flurfunk(it.path(), &["admin", "statements"]);
    assert!(
        out.contains("group retention no. 1") && out.contains("messages kept 30 days"),
        "{out}"
    );
    for node in [it_node, anna_node, mallory_node] {
        node.stop();
    }
}

/// Machine settings (`/etc/flurfunk/policy.toml`; here the debug build's
/// `FLURFUNK_MACHINE_POLICY`): a locked network refuses the demo network and joining,
/// and without a key installed for the machine nothing starts; the switches reach the
/// node; a wrong file stops every command with a message naming it. (Release builds do not
/// read the variable.)
#[cfg(debug_assertions)]
#[test]
fn machine_settings_lock_the_network_and_set_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let admin = tempfile::tempdir().unwrap();
    assert!(flurfunk(dir.path(), &["init", "--name", "Emil"]).0);
    let policy = admin.path().join("policy.toml");
    let with_policy = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env("FLURFUNK_MACHINE_POLICY", &policy)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let key = admin.path().join("rathaus.key");
    assert!(
        flurfunk(
            admin.path(),
            &["network", "new", "--out", key.to_str().unwrap()]
        )
        .0
    );

    std::fs::write(&policy, "lock_network = true\n").unwrap();
    let (ok, _, err) = with_policy(&["network", "demo"]);
    assert!(!ok && err.contains("locked"), "{err}");
    let (ok, _, err) = with_policy(&["network", "join", key.to_str().unwrap()]);
    assert!(!ok && err.contains("locked"), "{err}");
    assert!(!dir.path().join("network.key").exists());
    if !std::path::Path::new("/etc/flurfunk/network.key").exists() {
        let (ok, _, err) = with_policy(&["node", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"]);
        assert!(
            !ok && err.contains("no network key is installed for the machine"),
            "{err}"
        );
    }

    // Not locked: the switches hold at the node (no network statement overrides them).
    std::fs::write(
        &policy,
        "read_receipts = false\npresence = \"online_only\"\nmax_file_mb = 5\n",
    )
    .unwrap();
    assert!(with_policy(&["network", "join", key.to_str().unwrap()]).0);
    let (ok, out, err) = with_policy(&["status"]);
    assert!(ok, "{err}");
    assert!(out.contains("machine:   settings from"), "{out}");
    assert!(
        out.contains("read receipts off") && out.contains("files up to 5.0 MB"),
        "{out}"
    );
    let (ok, out, _) = with_policy(&["status", "--json"]);
    assert!(ok);
    let status: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(status["policy"]["presence"], "online_only", "{status}");

    std::fs::write(&policy, "lock_netwrok = true\n").unwrap();
    let (ok, _, err) = with_policy(&["whoami"]);
    assert!(
        !ok && err.contains("ask IT") && err.contains("policy.toml"),
        "{err}"
    );
}

/// Reply, react, edit, delete for everyone and search from the command line, through the
/// running nodes' control sockets: the other node sees each (`message_changed`, the quote,
/// "(edited)", "(message deleted)"), and search folds case and umlauts.
#[test]
fn reply_react_edit_delete_and_search_from_the_command_line() {
    let (a, b, anna, ben, _) = anna_and_ben();
    let (ok, out, err) = flurfunk(
        a.path(),
        &["send", "--to", "ben", "Die Straße am Bauhof ist gesperrt"],
    );
    assert!(ok, "{out}{err}");
    let msg = ben.wait_for("message", |v| v["event"] == "message");
    let id = msg["event_id"].as_str().unwrap()[..8].to_string();

    // Ben answers (the answer names what it answers) and reacts.
    let (ok, out, err) = flurfunk(b.path(), &["reply", "Anna", &id, "@Anna Schmidt danke!"]);
    assert!(ok, "{out}{err}");
    let answer = anna.wait_for("the answer", |v| {
        v["event"] == "message" && v["text"] == "@Anna Schmidt danke!"
    });
    assert_eq!(answer["reply_to"], msg["event_id"]);
    assert_eq!(answer["mentions_me"], true);
    let (ok, out, err) = flurfunk(b.path(), &["react", "Anna", &id, "👍"]);
    assert!(ok, "{out}{err}");
    anna.wait_for("the reaction", |v| v["event"] == "message_changed");
    // Ben cannot edit Anna's message; Anna can.
    let (ok, _, err) = flurfunk(b.path(), &["edit", "Anna", &id, "Unsinn"]);
    assert!(!ok && err.lines().count() == 1, "{err}");
    let (ok, out, err) = flurfunk(
        a.path(),
        &["edit", "ben", &id, "Die Straße am Bauhof ist wieder frei"],
    );
    assert!(ok, "{out}{err}");
    ben.wait_for("the edit", |v| v["event"] == "message_changed");
    let (ok, out, _) = flurfunk(b.path(), &["history", "Anna"]);
    assert!(ok);
    assert!(out.contains("ist wieder frei (edited)  [👍 1]"), "{out}");
    assert!(
        out.contains("[re Anna Schmidt: \"Die Straße am Bauhof ist wieder frei\"]"),
        "{out}"
    );
    let (ok, out, _) = flurfunk(b.path(), &["versions", "Anna", &id, "--json"]);
    assert!(ok);
    assert_eq!(out.lines().count(), 2, "{out}");

    // Search: case and umlauts folded, every word needed, newest first.
    let (ok, out, err) = flurfunk(b.path(), &["search", "STRASSE", "frei", "--json"]);
    assert!(ok, "{err}");
    let hits: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hits.len(), 1, "{out}");
    assert_eq!(hits[0]["conversation_name"], "Anna Schmidt");
    assert_eq!(hits[0]["event_id"], msg["event_id"]);
    let (ok, out, _) = flurfunk(b.path(), &["search", "gesperrt"]);
    assert!(
        ok && out.trim() == "nothing found",
        "the old version is not found: {out}"
    );

    // Anna deletes her message for everyone.
    let (ok, out, err) = flurfunk(a.path(), &["delete", "ben", &id]);
    assert!(ok, "{out}{err}");
    ben.wait_for("the deletion", |v| v["event"] == "message_changed");
    let (ok, out, _) = flurfunk(b.path(), &["history", "Anna"]);
    assert!(ok);
    assert!(out.contains("Anna Schmidt: (message deleted)"), "{out}");
    assert!(
        out.contains("[re: deleted message] @Anna Schmidt danke!"),
        "{out}"
    );
    assert!(!out.contains("wieder frei"), "{out}");
    let (ok, out, _) = flurfunk(b.path(), &["search", "strasse"]);
    assert!(ok && out.trim() == "nothing found", "{out}");

    // Ben deletes the line that remains, and his own answer, for himself alone: gone
    // from his history (sled keeps the list), still in Anna's.
    let (ok, out, err) = flurfunk(b.path(), &["delete", "--for-me", "Anna", &id]);
    assert!(ok && out.contains("deleted here"), "{out}{err}");
    let answer_id = answer["event_id"].as_str().unwrap()[..8].to_string();
    let (ok, out, err) = flurfunk(b.path(), &["delete", "Anna", &answer_id, "--for-me"]);
    assert!(ok, "{out}{err}");
    let (ok, out, _) = flurfunk(b.path(), &["history", "Anna"]);
    assert!(ok);
    assert!(
        !out.contains("message deleted") && !out.contains("danke"),
        "{out}"
    );
    let (ok, out, _) = flurfunk(a.path(), &["history", "ben"]);
    assert!(ok && out.contains("danke!"), "{out}");
    ben.stop();
    anna.stop();
}

/// A reader that goes away (`flurfunk peers | grep -q ..`) ends a command quietly: no
/// panic about a broken pipe (found by the screenshot script).
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let d = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(d.path())
        .args(["init", "--name", "Anna Schmidt"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}
