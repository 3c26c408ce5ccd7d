//! The Windows build under Wine, next to the Linux build, on loopback (mDNS off).
//!
//! Needs `FLURFUNK_WINDOWS_EXE` (the cross-built `flurfunk.exe`) and `WINEPREFIX` (a prefix
//! with the ProcessPrng shim), both made by `packaging/build-windows.sh --wine-prefix DIR`;
//! `.ci/run` sets them. Without them the tests say so and pass, except when `CI` is set:
//! then they fail, so CI cannot skip them silently.
//!
//! One test, in steps, because every Wine process start costs ~0.1 s and the nodes are
//! shared: `--version`, `init`, `whoami`, joining a network (the key file is protected
//! with DPAPI in the Windows data folder), 1:1 and group messages both ways through the
//! Windows control pipe, store-and-forward while the Windows node is stopped (from the
//! Linux node's outbox, and through a Linux member from a third node that went away), and
//! a catch-up of 1,000 messages. It prints the figures.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const LINUX: &str = env!("CARGO_BIN_EXE_flurfunk");
const CATCH_UP_MESSAGES: usize = 1_000;

/// How to run one side: the Linux program, or `flurfunk.exe` under Wine.
#[derive(Clone)]
enum Side {
    Linux,
    Windows(PathBuf),
}

struct Host {
    side: Side,
    dir: PathBuf,
}

impl Host {
    fn command(&self) -> Command {
        let mut cmd = match &self.side {
            Side::Linux => Command::new(LINUX),
            Side::Windows(exe) => {
                let mut c = Command::new("wine");
                c.arg(exe).env("WINEDEBUG", "-all");
                c
            }
        };
        cmd.arg("--data-dir").arg(self.data_dir_arg());
        cmd
    }

    /// Wine sees the Linux file system as drive Z:.
    fn data_dir_arg(&self) -> String {
        match self.side {
            Side::Linux => self.dir.display().to_string(),
            Side::Windows(_) => format!("Z:{}", self.dir.display()).replace('/', "\\"),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{:?} {args:?} failed: {stdout}{stderr}",
            self.label()
        );
        stdout
    }

    fn label(&self) -> &'static str {
        match self.side {
            Side::Linux => "linux",
            Side::Windows(_) => "windows",
        }
    }

    fn start(&self, extra: &[&str]) -> Node {
        let mut child = self
            .command()
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
                let Ok(value) = serde_json::from_str::<Value>(line.trim()) else {
                    continue;
                };
                if tx.send((Instant::now(), value)).is_err() {
                    break;
                }
            }
        });
        Node { child, lines }
    }
}

struct Node {
    child: Child,
    lines: mpsc::Receiver<(Instant, Value)>,
}

impl Node {
    fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> (Instant, Value) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok((at, v)) if pred(&v) => return (at, v),
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        panic!("timed out after {secs} s waiting for {what}");
    }

    /// Wait until a message with each of `texts` has arrived, in any order.
    fn wait_for_texts(&self, what: &str, secs: u64, texts: &[&str]) {
        let mut missing: Vec<&str> = texts.to_vec();
        while !missing.is_empty() {
            let (_, v) = self.wait_for(what, secs, |v| v["event"] == "message");
            missing.retain(|t| v["text"] != *t);
        }
    }

    fn address(&self) -> String {
        let (_, v) = self.wait_for("listening", 60, |v| v["event"] == "listening");
        v["address"].as_str().unwrap().to_string()
    }

    /// Hard stop, as a power cut or a killed process: what was acknowledged must survive.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn message(text: &str) -> impl Fn(&Value) -> bool + '_ {
    move |v| v["event"] == "message" && v["text"] == text
}

fn windows_exe() -> Option<PathBuf> {
    let exe = std::env::var_os("FLURFUNK_WINDOWS_EXE").map(PathBuf::from);
    let prefix = std::env::var_os("WINEPREFIX");
    match (exe, prefix) {
        (Some(exe), Some(_)) if exe.is_file() => Some(exe),
        _ if std::env::var_os("CI").is_some() => panic!(
            "the Wine tests need FLURFUNK_WINDOWS_EXE and WINEPREFIX \
             (packaging/build-windows.sh --wine-prefix DIR); CI may not skip them"
        ),
        _ => {
            eprintln!(
                "skipped: set FLURFUNK_WINDOWS_EXE and WINEPREFIX \
                 (packaging/build-windows.sh --wine-prefix DIR)"
            );
            None
        }
    }
}

fn user_id(whoami: &str) -> String {
    whoami
        .lines()
        .find_map(|l| l.strip_prefix("user id:"))
        .unwrap()
        .trim()
        .to_string()
}

fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

#[test]
fn windows_and_linux_nodes_exchange_messages_under_wine() {
    let Some(exe) = windows_exe() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let win = Host {
        side: Side::Windows(exe),
        dir: tmp.path().join("windows-anna"),
    };
    let bernd = Host {
        side: Side::Linux,
        dir: tmp.path().join("linux-bernd"),
    };
    let carla = Host {
        side: Side::Linux,
        dir: tmp.path().join("linux-carla"),
    };

    // The program starts, makes an identity, says who it is.
    let version = win.run(&["--version"]);
    assert!(version.starts_with("flurfunk "), "{version}");
    win.run(&["init", "--name", "Anna (Windows)"]);
    let whoami = win.run(&["whoami"]);
    assert!(whoami.contains("Anna (Windows)"), "{whoami}");
    let anna_id = user_id(&whoami);
    assert!(anna_id.starts_with("12D3KooW"), "{whoami}");
    let stored = std::fs::read(win.dir.join("identity.key")).unwrap();
    assert!(
        stored.starts_with(b"FLURFUNK-DPAPI-1\n"),
        "the Windows key file is DPAPI-protected"
    );

    // A real network: Bernd creates it, Anna (Windows) and Carla join with the key file.
    bernd.run(&["init", "--name", "Bernd (Linux)"]);
    carla.run(&["init", "--name", "Carla (Linux)"]);
    let key_file = tmp.path().join("rathaus.key");
    bernd.run(&["network", "new", "--out", key_file.to_str().unwrap()]);
    let key_arg = format!("Z:{}", key_file.display()).replace('/', "\\");
    win.run(&["network", "join", &key_arg]);
    carla.run(&["network", "join", key_file.to_str().unwrap()]);
    let fingerprint = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("network:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        fingerprint(&win.run(&["whoami"])),
        fingerprint(&bernd.run(&["whoami"]))
    );

    let b = bernd.start(&[]);
    let b_addr = b.address();
    let w = win.start(&["--peer", &b_addr]);
    let started = Instant::now();
    b.wait_for("anna's profile at bernd", 60, |v| {
        v["event"] == "profile" && v["name"] == "Anna (Windows)"
    });
    w.wait_for("bernd's profile at anna", 60, |v| {
        v["event"] == "profile" && v["name"] == "Bernd (Linux)"
    });
    eprintln!(
        "windows node connected and exchanged profiles in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );

    // 1:1 both ways; the Windows side goes through its control pipe. One-way latency:
    // from the sender's "saved" to the receiver's "message" (both nodes' stdout here).
    let mut to_linux = Vec::new();
    let mut to_windows = Vec::new();
    for i in 0..5 {
        let text = format!("Windows an Linux {i}");
        win.run(&["send", "--to", "Bernd", &text]);
        let (saved, _) = w.wait_for("saved at anna", 20, |v| v["event"] == "saved");
        let (arrived, _) = b.wait_for(&text, 20, message(&text));
        to_linux.push(arrived.saturating_duration_since(saved));

        let text = format!("Linux an Windows {i}");
        bernd.run(&["send", "--to", "Anna", &text]);
        let (saved, _) = b.wait_for("saved at bernd", 20, |v| v["event"] == "saved");
        let (arrived, _) = w.wait_for(&text, 20, message(&text));
        to_windows.push(arrived.saturating_duration_since(saved));
    }
    eprintln!(
        "one-way latency, median of 5: windows -> linux {:.1} ms, linux -> windows {:.1} ms",
        median_ms(to_linux),
        median_ms(to_windows)
    );

    // A group with a third member on Linux; messages both ways.
    let c = carla.start(&["--peer", &b_addr]);
    c.wait_for("anna's profile at carla", 60, |v| {
        v["event"] == "profile" && v["name"] == "Anna (Windows)"
    });
    let carla_id = user_id(&carla.run(&["whoami"]));
    win.run(&[
        "group", "create", "Bauhof", "--member", "Bernd", "--member", &carla_id,
    ]);
    b.wait_for("group at bernd", 30, |v| {
        v["event"] == "conversation_created" && v["name"] == "Bauhof"
    });
    c.wait_for("group at carla", 30, |v| {
        v["event"] == "conversation_created" && v["name"] == "Bauhof"
    });
    win.run(&["send", "--to", "Bauhof", "Streusalz bestellt (Windows)"]);
    b.wait_for(
        "group text at bernd",
        30,
        message("Streusalz bestellt (Windows)"),
    );
    c.wait_for(
        "group text at carla",
        30,
        message("Streusalz bestellt (Windows)"),
    );
    bernd.run(&["send", "--to", "Bauhof", "Danke (Linux)"]);
    w.wait_for("group text at anna", 30, message("Danke (Linux)"));

    // The Windows node stops hard. Bernd's 1:1 message waits in his outbox; Carla writes
    // in the group and goes home: Bernd, a member, holds it for Anna.
    w.kill();
    bernd.run(&["send", "--to", "Anna", "Bitte zurückrufen"]);
    carla.run(&["send", "--to", "Bauhof", "Bin weg, Schlüssel liegt im Büro"]);
    b.wait_for(
        "carla's text at bernd",
        30,
        message("Bin weg, Schlüssel liegt im Büro"),
    );
    c.kill();
    let w = win.start(&["--peer", &b_addr]);
    // Both arrive in either order.
    w.wait_for_texts(
        "the outbox message and carla's group text through bernd",
        60,
        &["Bitte zurückrufen", "Bin weg, Schlüssel liegt im Büro"],
    );
    let history = win.run(&["history", "Bauhof", "--json"]);
    assert!(history.contains("Bin weg"), "{history}");
    w.kill();

    // Catch-up: 1,000 messages written while the Windows node is away.
    let written = Instant::now();
    for i in 0..CATCH_UP_MESSAGES {
        bernd.run(&["send", "--to", "Anna", &format!("Nachricht {i}")]);
    }
    eprintln!(
        "wrote {CATCH_UP_MESSAGES} messages at bernd in {:.1} s",
        written.elapsed().as_secs_f64()
    );
    let restarted = Instant::now();
    let w = win.start(&["--peer", &b_addr]);
    let (online, _) = w.wait_for("bernd online at anna", 60, |v| v["event"] == "peer_online");
    let mut done = online;
    for _ in 0..CATCH_UP_MESSAGES {
        let (at, _) = w.wait_for("the catch-up", 120, |v| {
            v["event"] == "message"
                && v["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Nachricht "))
        });
        done = at;
    }
    eprintln!(
        "catch-up of {CATCH_UP_MESSAGES} messages under wine: {:.2} s after the node \
         started, {:.2} s after bernd was online",
        done.duration_since(restarted).as_secs_f64(),
        done.saturating_duration_since(online).as_secs_f64()
    );
    let history = win.run(&["history", "Bernd", "--limit", "2000", "--json"]);
    assert_eq!(
        history
            .lines()
            .filter(|l| l.contains("\"Nachricht "))
            .count(),
        CATCH_UP_MESSAGES
    );
    assert_eq!(anna_id, user_id(&win.run(&["whoami"])));
    drop(w);
    drop(b);
}

/// `msiexec /i flurfunk.msi /qn NETWORKKEYFILE=...` under Wine, in a prefix of its own:
/// the program, the launcher and the Start-menu shortcut are installed per machine, the
/// network key lands next to the program and a new user's node uses it; `msiexec /x`
/// removes the program and leaves the user's data and the machine's key. Then that user's
/// node is told of a log-off (`wineboot --end-session`) and stops cleanly.
#[test]
fn the_msi_installs_silently_with_a_network_key_and_uninstalls_under_wine() {
    let Some(exe) = windows_exe() else { return };
    let msi = match std::env::var_os("FLURFUNK_MSI").map(PathBuf::from) {
        Some(msi) if msi.is_file() => msi,
        _ if std::env::var_os("CI").is_some() => {
            panic!("FLURFUNK_MSI must name the MSI (packaging/build-msi.sh); CI may not skip")
        }
        _ => {
            eprintln!("skipped: set FLURFUNK_MSI (packaging/build-msi.sh)");
            return;
        }
    };
    let shim = exe
        .parent()
        .unwrap()
        .join("wine")
        .join("bcryptprimitives.dll");
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("prefix");
    let wine = |args: &[&str]| {
        let out = Command::new("wine")
            .args(args)
            .env("WINEPREFIX", &prefix)
            .env("WINEDEBUG", "-all")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let boot = Command::new("wineboot")
        .arg("-i")
        .env("WINEPREFIX", &prefix)
        .env("WINEDLLOVERRIDES", "mscoree=d;mshtml=d")
        .env("WINEDEBUG", "-all")
        .output()
        .unwrap();
    assert!(boot.status.success(), "wineboot: {boot:?}");
    let system32 = prefix.join("drive_c/windows/system32");
    std::fs::copy(&shim, system32.join("bcryptprimitives.dll")).unwrap();
    // Windows without a display: Wine's null graphics driver, so that windows (the
    // hidden one that hears of a log-off) can be created at all.
    let (ok, out) = wine(&[
        "reg",
        "add",
        r"HKCU\Software\Wine\Drivers",
        "/v",
        "Graphics",
        "/d",
        "null",
        "/f",
    ]);
    assert!(ok, "{out}");

    let linux_dir = tmp.path().join("admin");
    let key_file = tmp.path().join("rathaus.key");
    let made = Command::new(LINUX)
        .arg("--data-dir")
        .arg(&linux_dir)
        .args(["network", "new", "--out"])
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let z = |p: &std::path::Path| format!("Z:{}", p.display()).replace('/', "\\");

    let (ok, out) = wine(&[
        "msiexec",
        "/i",
        &z(&msi),
        "/qn",
        &format!("NETWORKKEYFILE={}", z(&key_file)),
        // No log-on entry here: Wine would start the app at its next boot of the prefix.
        "AUTOSTART=0",
    ]);
    assert!(ok, "msiexec /i: {out}");
    let (registered, _) = wine(&[
        "reg",
        "query",
        r"HKLM\Software\Microsoft\Windows\CurrentVersion\Run",
        "/v",
        "Flurfunk",
    ]);
    assert!(
        !registered,
        "AUTOSTART=0 registers nothing to start at log-on"
    );
    let program_dir = prefix.join("drive_c/Program Files/Flurfunk");
    assert!(program_dir.join("flurfunk.exe").is_file(), "{out}");
    assert!(program_dir.join("flurfunk-app.exe").is_file());
    // Windows puts a per-machine shortcut under ProgramData; Wine 8 under the user's
    // profile.
    let shortcut = [
        "drive_c/ProgramData/Microsoft/Windows/Start Menu/Programs/Flurfunk.lnk",
        "drive_c/users/root/AppData/Roaming/Microsoft/Windows/Start Menu/Programs/Flurfunk.lnk",
    ]
    .iter()
    .map(|p| prefix.join(p))
    .find(|p| p.is_file())
    .expect("a Start-menu shortcut");
    let machine_key = program_dir.join("network.key");
    let want = flurfunk::net::NetworkKey::load(&key_file)
        .unwrap()
        .fingerprint();
    let got = flurfunk::net::NetworkKey::load(&machine_key)
        .unwrap_or_else(|e| panic!("machine key not installed: {e}"))
        .fingerprint();
    assert_eq!(got, want);

    // A new user on this machine: the installed program, no key of their own.
    let user_dir = tmp.path().join("user");
    let installed = r"C:\Program Files\Flurfunk\flurfunk.exe";
    let (ok, out) = wine(&[
        installed,
        "--data-dir",
        &z(&user_dir),
        "init",
        "--name",
        "Dora",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = wine(&[installed, "--data-dir", &z(&user_dir), "whoami"]);
    assert!(ok, "{out}");
    assert!(out.contains(&want), "the machine's network is used: {out}");

    // Group policy (HKLM\Software\Policies\Flurfunk, as the ADMX template writes it):
    // the network locked, a data folder per user. No demo network, no other network, a
    // user's own key file of another network ignored; a value of the wrong type stops
    // the program with its name instead of being ignored.
    let policy_key = r"HKLM\Software\Policies\Flurfunk";
    let shared = tmp.path().join("shared");
    for (name, kind, data) in [
        ("LockNetwork", "REG_DWORD", "1".to_string()),
        ("ReadReceipts", "REG_DWORD", "0".to_string()),
        ("DeleteForEveryone", "REG_DWORD", "0".to_string()),
        ("EditWindowMinutes", "REG_DWORD", "15".to_string()),
        ("Autostart", "REG_DWORD", "0".to_string()),
        (
            "DataFolder",
            "REG_EXPAND_SZ",
            format!("{}\\%USERNAME%", z(&shared)),
        ),
    ] {
        let (ok, out) = wine(&[
            "reg", "add", policy_key, "/v", name, "/t", kind, "/d", &data, "/f",
        ]);
        assert!(ok, "{out}");
    }
    let (ok, out) = wine(&[installed, "--data-dir", &z(&user_dir), "network", "demo"]);
    assert!(!ok && out.contains("locked"), "demo refused: {out}");
    // Autostart 0: what the log-on entry starts opens nothing and ends at once (the
    // values above are read, or the program would stop with their name).
    // Under a time limit: were the program to fail here, it would show its error in a
    // message box that nobody closes.
    let autostart = Command::new("timeout")
        .args([
            "60",
            "wine",
            installed,
            "--data-dir",
            &z(&user_dir),
            "app",
            "--autostart",
        ])
        .env("WINEPREFIX", &prefix)
        .env("WINEDEBUG", "-all")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&autostart.stderr);
    assert!(
        autostart.status.success() && autostart.stdout.is_empty() && !said.contains("flurfunk"),
        "autostart off: {autostart:?}"
    );
    let (ok, out) = wine(&[
        installed,
        "--data-dir",
        &z(&user_dir),
        "network",
        "join",
        &z(&key_file),
    ]);
    assert!(!ok && out.contains("locked"), "join refused: {out}");
    flurfunk::net::NetworkKey::demo()
        .save_new(&user_dir.join("network.key"))
        .unwrap();
    let (ok, out) = wine(&[installed, "--data-dir", &z(&user_dir), "whoami"]);
    assert!(
        ok && out.contains(&want),
        "the user's own key is ignored: {out}"
    );
    std::fs::remove_file(user_dir.join("network.key")).unwrap();
    // A copy of the program in the user's folder, with a key of the user's beside it,
    // does not count as the machine's key on a locked machine.
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(program_dir.join("flurfunk.exe"), copy.join("flurfunk.exe")).unwrap();
    flurfunk::net::NetworkKey::demo()
        .save_new(&copy.join("network.key"))
        .unwrap();
    let copied = z(&copy.join("flurfunk.exe"));
    let (ok, out) = wine(&[&copied, "--data-dir", &z(&user_dir), "whoami"]);
    assert!(
        ok && out.contains(&want),
        "the copy's key is ignored: {out}"
    );
    // No --data-dir: the machine's data folder, one per user.
    let (ok, out) = wine(&[installed, "init", "--name", "Emil"]);
    assert!(ok, "{out}");
    let made: Vec<PathBuf> = std::fs::read_dir(&shared)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        made.len() == 1
            && made[0].join("identity.key").is_file()
            && !made[0].ends_with("%USERNAME%"),
        "one folder for this user under {}: {made:?} {out}",
        shared.display()
    );
    let (ok, out) = wine(&[
        "reg", "add", policy_key, "/v", "Presence", "/t", "REG_SZ", "/d", "x", "/f",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = wine(&[installed, "--data-dir", &z(&user_dir), "whoami"]);
    assert!(
        !ok && out.contains("Presence"),
        "a wrong value is an error: {out}"
    );
    let (ok, out) = wine(&["reg", "delete", policy_key, "/v", "Presence", "/f"]);
    assert!(ok, "{out}");

    // Log-off: the installed node (the machine's key, no key of the user's own) stops
    // cleanly before Windows ends it (a console event never comes to a program that loads
    // user32; its hidden window gets WM_ENDSESSION). This prefix is the test's own, so
    // ending its session touches nothing else.
    let mut node = Command::new("wine")
        .arg(installed)
        .args(["--data-dir", &z(&user_dir), "node", "--no-mdns", "--json"])
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .env("WINEPREFIX", &prefix)
        .env("WINEDEBUG", "-all")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read its output to the end: a closed pipe would fail the node's next line.
    let stdout = BufReader::new(node.stdout.take().unwrap());
    let (started_tx, started) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if line.contains("\"listening\"") {
                let _ = started_tx.send(());
            }
        }
    });
    started
        .recv_timeout(Duration::from_secs(60))
        .expect("the node started");
    let (ok, out) = wine(&["wineboot", "--end-session"]);
    assert!(ok, "wineboot --end-session: {out}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = node.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not stop at log-off"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut node.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        status.success() && stderr.contains("stopping"),
        "a clean stop at log-off, not a kill: {status:?} {stderr}"
    );

    let (ok, out) = wine(&["msiexec", "/x", &z(&msi), "/qn"]);
    assert!(ok, "msiexec /x: {out}");
    assert!(!program_dir.join("flurfunk.exe").exists(), "uninstalled");
    assert!(!shortcut.exists(), "shortcut removed");
    assert!(machine_key.is_file(), "the machine's network key stays");
    assert!(user_dir.join("identity.key").is_file(), "users' data stays");
}
