//! The network lab: Linux network namespaces (one per host, bridges in their own
//! namespace, veth links, 10.77.0.0/16) with real `flurfunk node` processes, torn down on
//! drop, also when a test fails. Real mDNS runs only inside these namespaces.
//!
//! Needs root and iproute2 (and tcpdump for the capture). Without them a test skips with a
//! message, unless `CI` is set: then it fails.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use crate::support::BIN;
pub const PORT: u16 = 47110;
static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(args: &[&str]) {
    if let Err(e) = sh(args) {
        panic!("{e}");
    }
}

/// Whether the lab can run here; panics under CI when it cannot.
pub fn available() -> bool {
    let n = NEXT_LAB.fetch_add(1, Ordering::SeqCst);
    let probe = format!("ffprobe{}x{n}", std::process::id() % 100_000);
    if sh(&["ip", "netns", "add", &probe]).is_ok() {
        let _ = sh(&["ip", "netns", "del", &probe]);
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but network namespaces are unavailable (need root and iproute2)");
    }
    eprintln!("skipping: network namespaces unavailable (need root and iproute2)");
    false
}

pub struct Lab {
    pub prefix: String,
    namespaces: Vec<String>,
    pub hosts: Vec<Host>,
    captures: Vec<Child>,
    pub dir: tempfile::TempDir,
    subnets: Vec<u8>,
}

pub struct Host {
    pub name: String,
    pub ns: String,
    pub ip: String,
    pub veth: String,
    pub dir: PathBuf,
    /// `--listen` address; `None`: the program's default (47110, or any free port when
    /// another user's node on this host holds it).
    listen: Option<String>,
    child: Option<Child>,
    pub events: Arc<Mutex<Vec<(Instant, Value)>>>,
    pub started: Instant,
}

impl Lab {
    /// A lab with the given subnets (10.77.S.0/24 each, one bridge each). With more than
    /// one subnet, a router namespace joins them (unicast only: mDNS stays in its subnet).
    pub fn new(subnets: &[u8]) -> Lab {
        let n = NEXT_LAB.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("ff{}x{n}", std::process::id() % 100_000);
        let mut lab = Lab {
            prefix,
            namespaces: Vec::new(),
            hosts: Vec::new(),
            captures: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            subnets: subnets.to_vec(),
        };
        let br = lab.ns_name("br");
        lab.add_ns(&br);
        for s in subnets {
            must(&[
                "ip",
                "-n",
                &br,
                "link",
                "add",
                &format!("br{s}"),
                "type",
                "bridge",
            ]);
            must(&["ip", "-n", &br, "link", "set", &format!("br{s}"), "up"]);
        }
        if subnets.len() > 1 {
            let router = lab.ns_name("rt");
            lab.add_ns(&router);
            for s in subnets {
                let outer = format!("{}r{s}", lab.short());
                let inner = lab.plug(&router, &outer, *s, &format!("10.77.{s}.254/24"));
                must(&["ip", "-n", &router, "link", "set", &inner, "up"]);
            }
            must(&[
                "ip",
                "netns",
                "exec",
                &router,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ]);
        }
        lab
    }

    fn short(&self) -> String {
        // Interface names are limited to 15 bytes.
        let p = &self.prefix;
        p[p.len().saturating_sub(7)..].to_string()
    }

    fn ns_name(&self, what: &str) -> String {
        format!("{}{what}", self.prefix)
    }

    fn add_ns(&mut self, name: &str) {
        must(&["ip", "netns", "add", name]);
        self.namespaces.push(name.to_string());
        must(&["ip", "-n", name, "link", "set", "lo", "up"]);
    }

    /// A veth pair from namespace `ns` to bridge `brS`: the bridge side `outer` is attached
    /// and up, the inner side (returned) has `addr` but is still down.
    fn plug(&self, ns: &str, outer: &str, subnet: u8, addr: &str) -> String {
        let inner = format!("{outer}i");
        let br = self.ns_name("br");
        let bridge = format!("br{subnet}");
        must(&[
            "ip", "link", "add", outer, "type", "veth", "peer", "name", &inner,
        ]);
        must(&["ip", "link", "set", &inner, "netns", ns]);
        must(&["ip", "link", "set", outer, "netns", &br]);
        must(&["ip", "-n", &br, "link", "set", outer, "master", &bridge]);
        must(&["ip", "-n", &br, "link", "set", outer, "up"]);
        must(&["ip", "-n", ns, "addr", "add", addr, "dev", &inner]);
        inner
    }

    /// A host `10.77.S.I` with its own data directory and identity.
    pub fn add_host(&mut self, name: &str, subnet: u8, index: u8) -> usize {
        let ns = self.ns_name(&format!("h{subnet}x{index}"));
        self.add_ns(&ns);
        let outer = format!("{}v{subnet}x{index}", self.short());
        let ip = format!("10.77.{subnet}.{index}");
        let inner = self.plug(&ns, &outer, subnet, &format!("{ip}/24"));
        must(&["ip", "-n", &ns, "link", "set", &inner, "name", "eth0"]);
        must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        must(&[
            "ip",
            "-n",
            &ns,
            "route",
            "add",
            "224.0.0.0/4",
            "dev",
            "eth0",
        ]);
        if self.subnets.len() > 1 {
            let gw = format!("10.77.{subnet}.254");
            must(&["ip", "-n", &ns, "route", "add", "default", "via", &gw]);
        }
        let host = Host {
            name: name.to_string(),
            ns,
            ip,
            veth: outer,
            dir: self.dir.path().join(name),
            listen: Some(format!("/ip4/0.0.0.0/tcp/{PORT}")),
            child: None,
            events: Arc::new(Mutex::new(Vec::new())),
            started: Instant::now(),
        };
        let (ok, _, err) = host.cli(&["init", "--name", name]);
        assert!(ok, "{err}");
        // The demo network until a test hands out a key (`network join`): chosen, as a
        // node never falls back to it by itself.
        let (ok, _, err) = host.cli(&["network", "demo"]);
        assert!(ok, "{err}");
        self.hosts.push(host);
        self.hosts.len() - 1
    }

    /// A second user logged in on `host` (a terminal server): same namespace and address,
    /// own data directory and identity, the program's default port choice.
    pub fn add_user(&mut self, host: usize, name: &str) -> usize {
        let on = &self.hosts[host];
        let user = Host {
            name: name.to_string(),
            ns: on.ns.clone(),
            ip: on.ip.clone(),
            veth: on.veth.clone(),
            dir: self.dir.path().join(name),
            listen: None,
            child: None,
            events: Arc::new(Mutex::new(Vec::new())),
            started: Instant::now(),
        };
        let (ok, _, err) = user.cli(&["init", "--name", name]);
        assert!(ok, "{err}");
        // The demo network until a test hands out a key (`network join`): chosen, as a
        // node never falls back to it by itself.
        let (ok, _, err) = user.cli(&["network", "demo"]);
        assert!(ok, "{err}");
        self.hosts.push(user);
        self.hosts.len() - 1
    }

    /// Take a host's link down or up (from the bridge side), as a pulled cable would.
    pub fn set_link(&self, host: usize, up: bool) {
        let br = self.ns_name("br");
        let state = if up { "up" } else { "down" };
        must(&[
            "ip",
            "-n",
            &br,
            "link",
            "set",
            &self.hosts[host].veth,
            state,
        ]);
    }

    /// Capture everything crossing the bridges (all their ports) into a pcap file until
    /// `stop_captures`. Bridged frames never reach the bridge device itself, so the capture
    /// listens on every interface of the bridge namespace.
    pub fn capture(&mut self) -> PathBuf {
        let file = self.dir.path().join("bridge.pcap");
        let br = self.ns_name("br");
        let child = Command::new("ip")
            .args(["netns", "exec", &br, "tcpdump", "-i", "any"])
            // Immediate mode: without it libpcap hands packets over in blocks (or after
            // a second), and a run shorter than that was stopped with nothing captured.
            .args(["-U", "--immediate-mode", "-s", "0", "-w"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump must be installed");
        self.captures.push(child);
        std::thread::sleep(Duration::from_millis(700));
        file
    }

    pub fn stop_captures(&mut self) {
        for mut c in self.captures.drain(..) {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            h.kill();
        }
        self.stop_captures();
        for ns in self.namespaces.iter().rev() {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
    }
}

impl Host {
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        crate::support::flurfunk(&self.dir, args)
    }

    pub fn user_id(&self) -> String {
        crate::support::user_id(&self.dir)
    }

    /// Start `flurfunk node --json` inside the host's namespace.
    pub fn start(&mut self, extra: &[&str]) {
        let listen: Vec<&str> = match &self.listen {
            Some(addr) => vec!["--listen", addr],
            None => vec![],
        };
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns, BIN, "--data-dir"])
            .arg(&self.dir)
            .args(["node", "--json"])
            .args(&listen)
            .env(
                "RUST_LOG",
                std::env::var("FLURFUNK_LAB_RUST_LOG").unwrap_or_default(),
            )
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(match std::env::var_os("FLURFUNK_LAB_LOG") {
                // Debugging a lab test: each node's log next to its data directory.
                Some(logs) => Stdio::from(
                    std::fs::File::create(
                        std::path::Path::new(&logs).join(format!("{}.log", self.name)),
                    )
                    .unwrap(),
                ),
                None => Stdio::null(),
            })
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Events of a previous run of this host are not this run's.
        self.events.lock().unwrap().clear();
        let events = self.events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    events.lock().unwrap().push((Instant::now(), v));
                }
            }
        });
        self.started = Instant::now();
        self.child = Some(child);
    }

    /// Start with the program's own choice of port (no `--listen`).
    pub fn use_default_listen(&mut self) {
        self.listen = None;
    }

    /// SIGKILL: no clean shutdown at all.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((at, _)) = self.events.lock().unwrap().iter().find(|(_, v)| pred(v)) {
                return *at;
            }
            if Instant::now() > deadline {
                panic!("{}: timed out waiting for {what}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn count(&self, pred: impl Fn(&Value) -> bool) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, v)| pred(v))
            .count()
    }

    /// Wait until `user` is online here; returns when it happened.
    pub fn online(&self, user: &str) -> Instant {
        self.wait_for(&format!("{user} online"), Duration::from_secs(30), |v| {
            v["event"] == "peer_online" && v["user_id"] == user
        })
    }

    pub fn knows_name(&self, name: &str) {
        self.wait_for(
            &format!("profile of {name}"),
            Duration::from_secs(30),
            |v| v["event"] == "profile" && v["name"] == name,
        );
    }

    pub fn texts(&self, conversation: &str) -> Vec<String> {
        let (ok, out, err) = self.cli(&["history", conversation, "--json", "--limit", "100000"]);
        assert!(ok, "{}: history: {err}", self.name);
        // Messages only: lines about the group itself ("created", "added", ...) carry a
        // `notice`.
        out.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|m| m.get("notice").is_none())
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect()
    }

    /// Poll the history until it holds at least `want` texts (or time runs out).
    pub fn wait_texts(&self, conversation: &str, want: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.texts(conversation);
            if t.len() >= want || Instant::now() > deadline {
                return t;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn send(&self, to: &str, text: &str) {
        let (ok, _, err) = self.cli(&["send", "--to", to, text]);
        assert!(ok, "{}: send: {err}", self.name);
    }
}
