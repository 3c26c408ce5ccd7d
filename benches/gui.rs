//! Desktop app benchmarks with 10,000 messages in the store, each next to a baseline
//! measured in the same run:
//! - cold start to the first drawn frame and to the chat list on screen (real window under
//!   Xvfb; baseline: the same with an empty store),
//! - UI time per frame while scrolling the whole 10,000-message conversation (in-process,
//!   egui_kittest; baseline: idle frames of the same app),
//! - idle CPU with the window open, and RSS after scrolling through all 10,000 messages
//!   (baseline: the headless node on the same data).
//!
//! Run: `cargo bench --bench gui` (the window parts need `Xvfb` and `xdotool`; without
//! them they are skipped with a note). Prints figures; asserts only that nothing was lost.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use flurfunk::app::data_dir::DataDir;
use flurfunk::app::launch::{self, LaunchOptions};
use flurfunk::gui::i18n::Lang;
use flurfunk::gui::{FlurfunkApp, GuiConfig, Phase};
use flurfunk::identity::Identity;
use flurfunk::net::NetworkKey;
use flurfunk::node::{self, NodeConfig, NodeHandle};
use flurfunk::store::SledStore;
use flurfunk::wire::Role;

const MESSAGES: usize = 10_000;
const BIN: &str = env!("CARGO_BIN_EXE_flurfunk");

const PHRASES: &[&str] = &[
    "Guten Morgen!",
    "Der Streuwagen ist wieder einsatzbereit, ich habe ihn gerade vom Hof geholt.",
    "Wer hat heute Bereitschaft?",
    "Die Sitzung des Bauausschusses ist auf Donnerstag, 14 Uhr verschoben. Bitte tragt \
     euch das ein, die Unterlagen kommen morgen.",
    "Danke dir!",
    "Straßenlaterne Am Markt 3 ist defekt.\nMeldung kam gerade rein, Foto folgt.",
    "Mittagessen um halb eins?",
    "Alles klar, mache ich.",
];

fn key() -> NetworkKey {
    NetworkKey::parse(
        &format!("/key/swarm/psk/1.0.0/\n/base16/\n{}\n", "43".repeat(32)),
        "bench",
    )
    .unwrap()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    pct(&v, 0.5)
}

async fn start(
    dir: &Path,
    name: &str,
    peers: Vec<libp2p::Multiaddr>,
) -> (NodeHandle, libp2p::Multiaddr) {
    let d = DataDir::new(dir);
    let identity = launch::ensure_identity(&d, name).unwrap();
    key().save_replace(&d.network_key()).unwrap();
    let store = SledStore::open(&d.database()).unwrap();
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
        files_dir: Some(d.files()),
        file_limits: flurfunk::node::FileLimits::default(),
        relay_certificate: None,
        machine_policy: flurfunk::wire::Policy::default(),
    };
    let (handle, _) = node::start(identity, Box::new(store), config)
        .await
        .unwrap();
    let addr = loop {
        if let Some(a) = handle.listen_addrs().await.unwrap().first() {
            break a
                .clone()
                .with(libp2p::multiaddr::Protocol::P2p(handle.peer_id()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    (handle, addr)
}

/// Anna's data directory with a 1:1 conversation of 10,000 messages, both sides writing.
async fn fill(anna_dir: &Path, ben_dir: &Path) {
    let (anna, anna_addr) = start(anna_dir, "Anna Schmidt", vec![]).await;
    let (ben, _) = start(ben_dir, "Ben Müller", vec![anna_addr]).await;
    let ben_id = ben.user_id();
    while !anna
        .profiles()
        .await
        .unwrap()
        .iter()
        .any(|p| p.user_id == ben_id)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let conv = anna.open_direct(ben_id).await.unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let h = if w % 2 == 0 {
            anna.clone()
        } else {
            ben.clone()
        };
        tasks.push(tokio::spawn(async move {
            for i in (w..MESSAGES).step_by(8) {
                let text = format!("{} ({i})", PHRASES[i % PHRASES.len()]);
                // Ben may not have the conversation yet: retry until it arrived.
                while h.send_text(conv, text.clone()).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    loop {
        let n = anna
            .messages(conv, None, usize::MAX)
            .await
            .unwrap()
            .iter()
            .filter(|m| m.notice.is_none())
            .count();
        if n >= MESSAGES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "store: {MESSAGES} messages written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    ben.shutdown().await.unwrap();
    anna.shutdown().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
}

struct Xvfb {
    child: Child,
    display: String,
    runtime_dir: tempfile::TempDir,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn xvfb() -> Option<Xvfb> {
    let display = ":93".to_string();
    let child = Command::new("Xvfb")
        .args([display.as_str(), "-screen", "0", "1040x700x24"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(800));
    Some(Xvfb {
        child,
        display,
        runtime_dir: tempfile::tempdir().unwrap(),
    })
}

fn app_command(x: &Xvfb, dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("DISPLAY", &x.display)
        .env("XDG_RUNTIME_DIR", x.runtime_dir.path())
        .env_remove("WAYLAND_DISPLAY")
        .arg("--data-dir")
        .arg(dir)
        .args([
            "app",
            "--no-mdns",
            "--lang",
            "de",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ]);
    c
}

/// (first frame, chat list shown) in ms since process start.
fn cold_start(x: &Xvfb, dir: &Path) -> Option<(f64, f64)> {
    let out = app_command(x, dir)
        .arg("--startup-probe")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some((value("first_frame_ms")?, value("chat_shown_ms")?))
}

/// (RSS in KiB, CPU ticks so far) of a process.
fn proc_stat(pid: u32) -> (u64, u64) {
    (common::rss_kib(pid), common::cpu_ticks(pid))
}

fn xdotool(x: &Xvfb, args: &[&str]) -> bool {
    Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

fn window_benchmarks(full: &Path, empty: &Path) {
    let Some(x) = xvfb() else {
        println!("window benchmarks skipped: Xvfb not found (apt-get install xvfb xdotool)");
        return;
    };
    let mut base = (Vec::new(), Vec::new());
    let mut with = (Vec::new(), Vec::new());
    for _ in 0..5 {
        if let Some((a, b)) = cold_start(&x, empty) {
            base.0.push(a);
            base.1.push(b);
        }
        if let Some((a, b)) = cold_start(&x, full) {
            with.0.push(a);
            with.1.push(b);
        }
    }
    if with.0.is_empty() || base.0.is_empty() {
        println!("cold start: the app did not report frames (no GPU/GL under Xvfb?)");
        return;
    }
    let (b0, b1, w0, w1) = (
        median(base.0),
        median(base.1),
        median(with.0),
        median(with.1),
    );
    println!(
        "cold start, median of 5 (process start ->): first frame {w0:.0} ms, chat list {w1:.0} ms \
         with {MESSAGES} messages; empty store {b0:.0} / {b1:.0} ms (ratio {:.2} / {:.2})",
        w0 / b0,
        w1 / b1
    );

    // Memory of the app itself (window, renderer, fonts) with nothing stored.
    let mut bare = common::spawn_settled(&mut app_command(&x, empty), Duration::from_secs(4));
    let (rss_bare, _) = proc_stat(bare.id());
    let _ = bare.kill();
    let _ = bare.wait();

    // Idle CPU and memory with the conversation open and scrolled through.
    let mut app = common::spawn_settled(&mut app_command(&x, full), Duration::from_secs(4));
    let clicked = xdotool(&x, &["mousemove", "150", "95", "click", "1"]);
    std::thread::sleep(Duration::from_secs(2));
    let (rss_open, _) = proc_stat(app.id());
    let scrolled = clicked
        && xdotool(
            &x,
            &[
                "mousemove",
                "600",
                "300",
                "click",
                "--repeat",
                "1500",
                "--delay",
                "4",
                "4",
            ],
        );
    std::thread::sleep(Duration::from_secs(3));
    let (rss_scrolled, t0) = proc_stat(app.id());
    let idle = Duration::from_secs(10);
    std::thread::sleep(idle);
    let (_, t1) = proc_stat(app.id());
    let hz = 100.0; // USER_HZ on Linux
    let cpu = (t1 - t0) as f64 / hz / idle.as_secs_f64() * 100.0;
    let _ = app.kill();
    let _ = app.wait();
    println!(
        "window open: idle CPU {cpu:.2} % of one core over {} s; RSS {:.1} MB with the chat open{}, \
         {:.1} MB after scrolling up{}",
        idle.as_secs(),
        rss_open as f64 / 1024.0,
        if clicked {
            ""
        } else {
            " (xdotool missing: no chat opened)"
        },
        rss_scrolled as f64 / 1024.0,
        if scrolled {
            " 1,500 wheel steps"
        } else {
            " (not scrolled)"
        },
    );
    let mut headless = common::spawn_settled(
        &mut common::headless_node(BIN, full),
        Duration::from_secs(3),
    );
    let (rss_headless, h0) = proc_stat(headless.id());
    std::thread::sleep(idle);
    let (_, h1) = proc_stat(headless.id());
    let headless_cpu = (h1 - h0) as f64 / hz / idle.as_secs_f64() * 100.0;
    let _ = headless.kill();
    let _ = headless.wait();
    println!(
        "  baselines: the app with an empty store {:.1} MB; the headless node on the same data \
         {:.1} MB (app/headless {:.1}x), idle CPU {headless_cpu:.2} %",
        rss_bare as f64 / 1024.0,
        rss_headless as f64 / 1024.0,
        rss_scrolled as f64 / rss_headless.max(1) as f64
    );
}

/// UI time per frame (logic + ui, no GPU) while scrolling from the newest message to the
/// oldest, pages of older messages loading on the way.
fn scrolling(dir: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = GuiConfig {
        dir: DataDir::new(dir),
        launch: LaunchOptions {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            peers: vec![],
            mdns: false,
            role: Role::Member,
            ..LaunchOptions::default()
        },
        language: Some(Lang::De),
        desktop_notifications: false,
        save_dir: None,
        native_dialogs: false,
    };
    let handle = rt.handle().clone();
    struct State {
        app: Option<FlurfunkApp>,
        frame_ms: Vec<f64>,
    }
    let mut h = Harness::builder()
        .with_size(egui::vec2(1040.0, 700.0))
        .build_ui_state(
            move |ui, s: &mut State| {
                let t = Instant::now();
                let app = s.app.get_or_insert_with(|| {
                    FlurfunkApp::new(ui.ctx(), handle.clone(), config.clone())
                });
                app.logic(ui.ctx());
                app.ui(ui);
                s.frame_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            },
            State {
                app: None,
                frame_ms: Vec::new(),
            },
        );
    let app = |h: &Harness<'_, State>| h.state().app.as_ref().unwrap().conversations().len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while h
        .state()
        .app
        .as_ref()
        .is_none_or(|a| !matches!(a.phase(), Phase::Running))
        || app(&h) == 0
    {
        h.step();
        std::thread::sleep(Duration::from_millis(10));
        assert!(Instant::now() < deadline, "app did not start");
    }
    for _ in 0..200 {
        h.step();
    }
    let idle = std::mem::take(&mut h.state_mut().frame_ms);
    let conv = h.state().app.as_ref().unwrap().conversations()[0]
        .conversation
        .clone();
    h.state_mut()
        .app
        .as_mut()
        .unwrap()
        .select_conversation(&conv);
    while !h
        .state()
        .app
        .as_ref()
        .unwrap()
        .chat()
        .is_some_and(|c| c.is_loaded())
    {
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    h.state_mut().frame_ms.clear();
    let started = Instant::now();
    let mut frames = 0;
    h.hover_at(egui::pos2(650.0, 300.0));
    loop {
        h.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: egui::vec2(0.0, 600.0),
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Unknown,
            modifiers: egui::Modifiers::NONE,
        });
        h.step();
        frames += 1;
        let chat = h.state().app.as_ref().unwrap().chat().unwrap();
        if (chat.items.len() >= MESSAGES && !chat.has_older && frames > 50) || frames > 20_000 {
            break;
        }
    }
    // A few more to reach the very top.
    for _ in 0..100 {
        h.step();
    }
    let loaded = h.state().app.as_ref().unwrap().chat().unwrap().items.len();
    let mut scroll = std::mem::take(&mut h.state_mut().frame_ms);
    scroll.sort_by(f64::total_cmp);
    let mut idle_sorted = idle.clone();
    idle_sorted.sort_by(f64::total_cmp);
    println!(
        "scrolling {loaded} messages top to bottom in {frames} frames ({:.1} s): UI time per frame \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; idle chat-list frame p50 {:.2} ms (p99 ratio {:.1}x)",
        started.elapsed().as_secs_f64(),
        pct(&scroll, 0.5),
        pct(&scroll, 0.99),
        scroll.last().copied().unwrap_or(0.0),
        pct(&idle_sorted, 0.5),
        pct(&scroll, 0.99) / pct(&idle_sorted, 0.5).max(1e-6)
    );
    assert_eq!(loaded, MESSAGES, "every message reachable by scrolling");
    if let Some(node) = h.state().app.as_ref().unwrap().node().cloned() {
        rt.block_on(node.shutdown()).unwrap();
    }
    drop(h);
}

fn main() {
    let root = tempfile::tempdir().unwrap();
    let full = root.path().join("anna");
    let ben = root.path().join("ben");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(fill(&full, &ben));
    drop(rt);
    let empty: PathBuf = root.path().join("empty");
    launch::ensure_identity(&DataDir::new(&empty), "Leer").unwrap();
    key()
        .save_replace(&DataDir::new(&empty).network_key())
        .unwrap();
    let _ = Identity::load(&DataDir::new(&empty).identity()).unwrap();
    window_benchmarks(&full, &empty);
    scrolling(&full);
}
