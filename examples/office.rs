//! office: a simulated town hall. N colleagues (default 10) run in one process, each a full
//! node with its own identity and database. They sit in groups ("Bauhof", "Bürgerbüro",
//! "IT", "Alle"), chat among themselves at a configurable rate, greet and answer whoever
//! else joins the network (the tester), and go offline and come back at random.
//!
//! At the end (after `--duration` seconds, or on Ctrl+C) everyone comes back online, the
//! office waits until every message reached every member, checks each member's history for
//! exactly one copy of each message, and prints a report (rate, delivery latency, losses,
//! duplicates). The exit code is 1 if anything was lost or duplicated.
//!
//! ```text
//! cargo run --release --example office -- --no-mdns --peer /ip4/127.0.0.1/tcp/47110
//! cargo run --release --example office -- --colleagues 20 --duration 30 --rate 20 --no-mdns
//! ```

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use flurfunk::app::data_dir::DataDir;
use flurfunk::app::launch::{self, LaunchOptions, Running};
use flurfunk::identity::UserId;
use flurfunk::node::{NodeEvent, NodeHandle};
use flurfunk::wire::{ConversationId, Role};
use libp2p::Multiaddr;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::{broadcast, mpsc};

/// (first name, last name, department) of the simulated staff; more colleagues than names
/// get a number.
const STAFF: &[(&str, &str, Dept)] = &[
    ("Anna", "Schmidt", Dept::Buergerbuero),
    ("Jürgen", "Becker", Dept::Bauhof),
    ("Sabine", "Wagner", Dept::It),
    ("Thomas", "Müller", Dept::Bauhof),
    ("Petra", "Hoffmann", Dept::Buergerbuero),
    ("Stefan", "Schäfer", Dept::It),
    ("Monika", "Koch", Dept::Buergerbuero),
    ("Klaus", "Richter", Dept::Bauhof),
    ("Claudia", "Klein", Dept::Buergerbuero),
    ("Markus", "Wolf", Dept::Bauhof),
    ("Andrea", "Schröder", Dept::Buergerbuero),
    ("Frank", "Neumann", Dept::Bauhof),
    ("Birgit", "Schwarz", Dept::It),
    ("Uwe", "Zimmermann", Dept::Bauhof),
    ("Martina", "Braun", Dept::Buergerbuero),
    ("Dieter", "Krüger", Dept::Bauhof),
    ("Silke", "Hofmann", Dept::Buergerbuero),
    ("Ralf", "Hartmann", Dept::It),
    ("Heike", "Lange", Dept::Buergerbuero),
    ("Bernd", "Schmitt", Dept::Bauhof),
    ("Karin", "Werner", Dept::Buergerbuero),
    ("Wolfgang", "Krause", Dept::Bauhof),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dept {
    Bauhof,
    Buergerbuero,
    It,
}

const GROUPS: &[(&str, Option<Dept>)] = &[
    ("Bauhof", Some(Dept::Bauhof)),
    ("Bürgerbüro", Some(Dept::Buergerbuero)),
    ("IT", Some(Dept::It)),
    ("Alle", None),
];

const PHRASES: &[&str] = &[
    "Guten Morgen zusammen!",
    "Der Streuwagen ist wieder einsatzbereit.",
    "Wer hat heute Bereitschaft?",
    "Die Sitzung des Bauausschusses ist auf Donnerstag, 14 Uhr verschoben.",
    "Im Bürgerbüro ist heute viel los, bitte Rückrufe erst ab 15 Uhr.",
    "Der Drucker im 2. OG streikt schon wieder.",
    "Kann jemand die Schlüssel für die Turnhalle vorbeibringen?",
    "Laubsammlung Lindenstraße ist erledigt.",
    "Bitte denkt an die Zeiterfassung bis Freitag.",
    "Straßenlaterne Am Markt 3 ist defekt, Meldung kam gerade rein.",
    "Ich bin ab 12 Uhr beim Außentermin.",
    "Das neue Passfoto-Terminal ist eingerichtet.",
    "Mittagessen um halb eins?",
    "Die Kehrmaschine braucht einen Ölwechsel.",
    "Kurze Info: Server-Update heute Abend ab 18 Uhr.",
    "Danke dir!",
    "Alles klar, mache ich.",
    "Bin gleich da.",
    "Hat jemand die Unterlagen zum Bauantrag Meier gesehen?",
    "Winterdienst-Plan für Dezember hängt aus.",
];

const ANSWERS: &[&str] = &[
    "Alles klar, danke!",
    "Verstanden, kümmere mich drum.",
    "Moin! Schön, dass du dabei bist.",
    "Gute Frage, ich schaue nach.",
    "Passt, bis später.",
];

/// Node events the office's readers missed because they fell behind (reported).
static LAGGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Sends under way at once; a tick beyond this is skipped (and counted), so a machine
/// that cannot keep up shows it in the report instead of queueing without bound.
const MAX_IN_FLIGHT: usize = 256;

/// Messages waiting in the collector before colleagues' event readers wait (back-pressure).
const COLLECTOR_QUEUE: usize = 8192;

#[derive(Parser)]
#[command(about = "Flurfunk office: simulated colleagues who chat, come and go; a load test")]
struct Cli {
    /// Number of simulated colleagues.
    #[arg(long, default_value_t = 10)]
    colleagues: usize,
    /// Messages per second across the whole office.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Seconds to run; 0: until Ctrl+C.
    #[arg(long, default_value_t = 0)]
    duration: u64,
    /// Nobody goes offline.
    #[arg(long)]
    no_churn: bool,
    /// Mean seconds between a colleague's absences.
    #[arg(long, default_value_t = 60.0)]
    churn_every: f64,
    /// Seconds to wait at the end for every message to arrive everywhere.
    #[arg(long, default_value_t = 60)]
    settle: u64,
    /// Keep the colleagues' data here (default: a temporary directory, removed at the end).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Random seed (names of groups are fixed; who says what when is random).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the final report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    net: common::NetArgs,
}

struct Colleague {
    name: String,
    dept: Dept,
    dir: DataDir,
    user: UserId,
    listen: Multiaddr,
    peers: Vec<Multiaddr>,
    running: Option<Running>,
    back_at: Option<Instant>,
}

/// One message the office sent and whom it must reach.
struct Sent {
    from: Option<usize>,
    at: Instant,
    recipients: Vec<usize>,
    online_at_send: HashSet<usize>,
}

/// What the office learns from its colleagues' events, and whom it must answer.
struct Listener {
    users: HashSet<UserId>,
    groups: Vec<(ConversationId, Vec<usize>)>,
    received: Received,
    testers: BTreeMap<UserId, String>,
    /// (when, which colleague, in which conversation) answers to newcomers are due.
    answers: Vec<(Instant, usize, ConversationId)>,
}

#[derive(Default)]
struct Received {
    first: HashMap<(usize, String), Instant>,
    count: HashMap<(usize, String), u32>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    common::init_logging();
    if cli.colleagues < 2 {
        bail!("an office needs at least 2 colleagues");
    }
    if !(cli.rate > 0.0 && cli.rate.is_finite()) {
        bail!("--rate must be a positive number of messages per second");
    }
    let temp;
    let root = match &cli.data_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let seed = cli.seed.unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    let host = if cli.net.no_mdns {
        "127.0.0.1"
    } else {
        "0.0.0.0"
    };

    // Fixed ports, so a colleague who comes back is found at the same address.
    let mut colleagues = Vec::new();
    for i in 0..cli.colleagues {
        let (first, last, dept) = STAFF[i % STAFF.len()];
        let name = if i < STAFF.len() {
            format!("{first} {last}")
        } else {
            format!("{first} {last} {}", i / STAFF.len() + 1)
        };
        let dir = DataDir::new(root.join(format!("colleague-{i:02}")));
        let identity = common::prepare(&dir, &name, &cli.net)?;
        let port = std::net::TcpListener::bind((host, 0))?.local_addr()?.port();
        let listen: Multiaddr = format!("/ip4/{host}/tcp/{port}").parse()?;
        colleagues.push(Colleague {
            name,
            dept,
            dir,
            user: identity.user_id(),
            listen,
            peers: Vec::new(),
            running: None,
            back_at: None,
        });
    }
    // Everyone dials the first colleague and two others; address exchange does the rest.
    let loopback = |c: &Colleague| -> Multiaddr {
        c.listen
            .to_string()
            .replace("/ip4/0.0.0.0/", "/ip4/127.0.0.1/")
            .parse()
            .expect("a multiaddr with the address replaced is still one")
    };
    let addrs: Vec<Multiaddr> = colleagues.iter().map(loopback).collect();
    for (i, c) in colleagues.iter_mut().enumerate() {
        // Three random colleagues as explicit links: they connect the office (a random
        // 3-out graph is connected) and pass on everyone's addresses; which links each
        // node then holds is its own choice (`sync::LinkPlan`), as on a real LAN.
        let mut peers: Vec<Multiaddr> = cli.net.peer.clone();
        for _ in 0..3 {
            let j = rng.gen_range(0..addrs.len());
            if j != i {
                peers.push(addrs[j].clone());
            }
        }
        c.peers = peers;
    }

    let (collect_tx, mut collect_rx) = mpsc::channel::<(usize, NodeEvent)>(COLLECTOR_QUEUE);
    let started = Instant::now();
    for i in 0..colleagues.len() {
        go_online(&mut colleagues, i, &cli, &collect_tx).await?;
    }
    eprintln!(
        "office: {} colleagues online in {:.1} s (data in {}, seed {seed})",
        colleagues.len(),
        started.elapsed().as_secs_f64(),
        root.display()
    );

    // Groups need every member's profile: wait until the founders know everyone.
    let users: HashSet<UserId> = colleagues.iter().map(|c| c.user).collect();
    wait_for_profiles(&colleagues, &users).await?;
    let mut groups: Vec<(ConversationId, Vec<usize>)> = Vec::new();
    for (name, dept) in GROUPS {
        let members: Vec<usize> = (0..colleagues.len())
            .filter(|&i| dept.is_none_or(|d| colleagues[i].dept == d))
            .collect();
        if members.len() < 2 {
            continue;
        }
        let founder = node(&colleagues, members[0])?;
        let existing = founder
            .conversations()
            .await?
            .into_iter()
            .find(|c| c.kind == "group" && c.name == *name && c.is_member);
        let conv = match existing {
            Some(c) => c.conversation.parse()?,
            None => {
                let others = members[1..].iter().map(|&i| colleagues[i].user).collect();
                founder.create_group(name.to_string(), others).await?
            }
        };
        groups.push((conv, members));
    }
    // Nobody writes into a group their node has not heard of yet (a person could not).
    wait_for_groups(&colleagues, &groups).await?;
    eprintln!(
        "office: groups {}",
        GROUPS.iter().map(|g| g.0).collect::<Vec<_>>().join(", ")
    );

    let mut sent: HashMap<String, Sent> = HashMap::new();
    let mut directs: HashMap<(usize, usize), ConversationId> = HashMap::new();
    let mut office = Listener {
        users,
        groups,
        received: Received::default(),
        testers: BTreeMap::new(),
        answers: Vec::new(),
    };
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / cli.rate));
    // A tick missed while a colleague's node starts is made up for: the rate is an average.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut in_flight: tokio::task::JoinSet<Option<(String, Sent)>> = tokio::task::JoinSet::new();
    let (mut skipped, mut failed) = (0u64, 0u64);
    let mut churn_tick = tokio::time::interval(Duration::from_secs(1));
    let stop = launch::shutdown_signal();
    tokio::pin!(stop);
    let run_until = (cli.duration > 0).then(|| Instant::now() + Duration::from_secs(cli.duration));
    let chat_started = Instant::now();
    loop {
        let deadline = async {
            match run_until {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut stop => break,
            _ = deadline => break,
            Some((i, event)) = collect_rx.recv() => {
                office.on_event(i, event, &colleagues, &mut rng).await;
            }
            _ = ticker.tick() => {
                let online: Vec<usize> = (0..colleagues.len()).filter(|&i| colleagues[i].running.is_some()).collect();
                let Some(&from) = online.choose(&mut rng) else { continue };
                let (conv, recipients) = if rng.gen_bool(0.6) {
                    let mine: Vec<&(ConversationId, Vec<usize>)> = office.groups.iter().filter(|g| g.1.contains(&from)).collect();
                    let Some(g) = mine.choose(&mut rng) else { continue };
                    (g.0, g.1.iter().copied().filter(|&m| m != from).collect::<Vec<_>>())
                } else {
                    let to = loop {
                        let t = rng.gen_range(0..colleagues.len());
                        if t != from { break t; }
                    };
                    // Opened by the sender every time: whoever wrote first created the
                    // chat, and the other side may not have heard of it yet.
                    let Ok(conv) = node(&colleagues, from)?.open_direct(colleagues[to].user).await else { continue };
                    directs.insert((from.min(to), from.max(to)), conv);
                    (conv, vec![to])
                };
                if in_flight.len() >= MAX_IN_FLIGHT {
                    skipped += 1;
                    continue;
                }
                let text = PHRASES.choose(&mut rng).copied().unwrap_or("Hallo");
                let pending = Sent { from: Some(from), at: Instant::now(), recipients, online_at_send: online.iter().copied().collect() };
                // Sends run beside the loop: a durable send waits for the disk, and the
                // ticker must not wait with it, or the office falls short of its rate.
                let sender = node(&colleagues, from)?.clone();
                let name = colleagues[from].name.clone();
                in_flight.spawn(async move {
                    match sender.send_text(conv, text.to_string()).await {
                        Ok(id) => Some((id.to_string(), pending)),
                        Err(e) => {
                            eprintln!("{name}: cannot send: {e}");
                            None
                        }
                    }
                });
                let due: Vec<(usize, ConversationId)> = office.answers.iter().filter(|a| a.0 <= Instant::now()).map(|a| (a.1, a.2)).collect();
                office.answers.retain(|a| a.0 > Instant::now());
                for (who, conv) in due {
                    if let Some(r) = &colleagues[who].running {
                        let text = ANSWERS.choose(&mut rng).copied().unwrap_or("Ok");
                        let node = r.node.clone();
                        tokio::spawn(async move { node.send_text(conv, text.to_string()).await });
                    }
                }
            }
            Some(done) = in_flight.join_next() => record_send(done, &mut sent, &mut failed)?,
            _ = churn_tick.tick() => {
                for i in 0..colleagues.len() {
                    match colleagues[i].back_at {
                        Some(t) if t <= Instant::now() => go_online(&mut colleagues, i, &cli, &collect_tx).await?,
                        Some(_) => {}
                        None if !cli.no_churn && rng.gen_bool((1.0 / cli.churn_every).clamp(0.0, 1.0)) => {
                            go_offline(&mut colleagues[i]).await;
                            colleagues[i].back_at = Some(Instant::now() + Duration::from_secs(rng.gen_range(3..=15)));
                        }
                        None => {}
                    }
                }
            }
        }
    }
    let chat_secs = chat_started.elapsed().as_secs_f64();
    while let Some(done) = in_flight.join_next().await {
        record_send(done, &mut sent, &mut failed)?;
    }

    // Everyone back, then wait until every message is everywhere.
    for i in 0..colleagues.len() {
        if colleagues[i].running.is_none() {
            go_online(&mut colleagues, i, &cli, &collect_tx).await?;
        }
    }
    let settle_start = Instant::now();
    let settle_deadline = settle_start + Duration::from_secs(cli.settle);
    let convs: Vec<ConversationId> = office
        .groups
        .iter()
        .map(|g| g.0)
        .chain(directs.values().copied())
        .collect();
    let events_missing = |received: &Received| -> usize {
        sent.iter()
            .map(|(id, s)| {
                s.recipients
                    .iter()
                    .filter(|&&r| !received.first.contains_key(&(r, id.clone())))
                    .count()
            })
            .sum()
    };
    // The stored histories are the truth; events (for latency) can be missed if a reader
    // fell behind. Wait until the histories are complete and the events had a moment.
    let mut history = history_check(&colleagues, &sent, &convs).await?;
    let mut complete_since: Option<Instant> = None;
    let mut last_check = Instant::now();
    while Instant::now() < settle_deadline {
        if history.0 == 0 {
            let since = *complete_since.get_or_insert_with(Instant::now);
            if events_missing(&office.received) == 0 || since.elapsed() > Duration::from_secs(2) {
                break;
            }
        }
        match tokio::time::timeout(Duration::from_millis(200), collect_rx.recv()).await {
            Ok(Some((i, event))) => office.on_event(i, event, &colleagues, &mut rng).await,
            Ok(None) => break,
            Err(_) => {}
        }
        if last_check.elapsed() > Duration::from_secs(1) || events_missing(&office.received) == 0 {
            history = history_check(&colleagues, &sent, &convs).await?;
            last_check = Instant::now();
        }
    }
    let settle_secs = settle_start.elapsed().as_secs_f64();
    // Let late duplicates show up before counting them.
    let grace = Instant::now() + Duration::from_secs(2);
    while let Ok(Some((i, event))) = tokio::time::timeout_at(grace.into(), collect_rx.recv()).await
    {
        office.on_event(i, event, &colleagues, &mut rng).await;
    }
    // Each member's stored history: every message exactly once.
    let (history_missing, history_duplicates) = history_check(&colleagues, &sent, &convs).await?;
    let event_duplicates = office
        .received
        .count
        .iter()
        .filter(|(k, n)| **n > 1 && sent.contains_key(&k.1))
        .count();
    let events_missed = events_missing(&office.received);

    let mut all = Vec::new();
    let mut online_only = Vec::new();
    for (id, s) in &sent {
        for &r in &s.recipients {
            if let Some(t) = office.received.first.get(&(r, id.clone())) {
                let ms = t.saturating_duration_since(s.at).as_secs_f64() * 1000.0;
                all.push(ms);
                if s.online_at_send.contains(&r) {
                    online_only.push(ms);
                }
            }
        }
    }
    all.sort_by(f64::total_cmp);
    online_only.sort_by(f64::total_cmp);
    let deliveries: usize = sent.values().map(|s| s.recipients.len()).sum();
    let report = serde_json::json!({
        "colleagues": colleagues.len(),
        "seconds": chat_secs,
        "messages_sent": sent.len(),
        "messages_per_second": sent.len() as f64 / chat_secs,
        "messages_requested_per_second": cli.rate,
        "sends_failed": failed,
        "sends_skipped": skipped,
        "deliveries_expected": deliveries,
        "deliveries_lost": history_missing,
        "events_missed": events_missed,
        "events_lagged": LAGGED.load(std::sync::atomic::Ordering::Relaxed),
        "event_duplicates": event_duplicates,
        "history_missing": history_missing,
        "history_duplicates": history_duplicates,
        "settle_seconds": settle_secs,
        "latency_ms_p50": common::quantile(&all, 0.5),
        "latency_ms_p99": common::quantile(&all, 0.99),
        "latency_online_ms_p50": common::quantile(&online_only, 0.5),
        "latency_online_ms_p99": common::quantile(&online_only, 0.99),
        "testers": office.testers.values().collect::<Vec<_>>(),
        "seed": seed,
    });
    if cli.json {
        println!("{report}");
    } else {
        println!(
            "office: {} messages in {:.1} s ({:.1}/s, asked for {}/s; {} sends failed, {} skipped) to {} deliveries; lost {}, duplicates {} (events) / {} (history); events missed by the report {}\n\
             delivery latency p50 {:.1} ms, p99 {:.1} ms (recipients online when sent: p50 {:.1} ms, p99 {:.1} ms); all delivered {:.1} s after the end",
            sent.len(),
            chat_secs,
            sent.len() as f64 / chat_secs,
            cli.rate,
            failed,
            skipped,
            deliveries,
            history_missing,
            event_duplicates,
            history_duplicates,
            events_missed,
            common::quantile(&all, 0.5),
            common::quantile(&all, 0.99),
            common::quantile(&online_only, 0.5),
            common::quantile(&online_only, 0.99),
            settle_secs,
        );
    }
    for c in colleagues.iter_mut() {
        go_offline(c).await;
    }
    if event_duplicates > 0 || history_missing > 0 || history_duplicates > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// Book a finished send task: a message that must now reach its recipients, or a failure.
fn record_send(
    done: Result<Option<(String, Sent)>, tokio::task::JoinError>,
    sent: &mut HashMap<String, Sent>,
    failed: &mut u64,
) -> Result<()> {
    match done {
        Ok(Some((id, s))) => {
            sent.insert(id, s);
        }
        Ok(None) => *failed += 1,
        Err(e) => bail!("a send task failed: {e}"),
    }
    Ok(())
}

/// (deliveries missing, deliveries stored more than once) over every member's history.
async fn history_check(
    colleagues: &[Colleague],
    sent: &HashMap<String, Sent>,
    convs: &[ConversationId],
) -> Result<(usize, usize)> {
    let mut missing = 0;
    let mut duplicates = 0;
    for i in 0..colleagues.len() {
        let node = node(colleagues, i)?;
        let mut seen: HashMap<String, u32> = HashMap::new();
        for conv in convs {
            for m in node.messages(*conv, None, usize::MAX).await? {
                *seen.entry(m.event_id).or_default() += 1;
            }
        }
        for (id, s) in sent {
            if s.recipients.contains(&i) {
                match seen.get(id) {
                    None => {
                        missing += 1;
                        // What the recipient's node says about its links, to tell an
                        // unreachable node from a slow one.
                        let load = node.status().await.map(|st| st.load).unwrap_or_default();
                        // Whether the sender still waits for a holder of its message.
                        let sender = s.from.and_then(|f| colleagues[f].running.as_ref());
                        let outbox = match sender {
                            Some(r) => r.node.status().await.map(|st| st.outbox).ok(),
                            None => None,
                        };
                        eprintln!(
                            "office: {} lacks {id} (a message to {} recipients; from {}, whose outbox holds {}; recipient holds {} connections, wants {}, {} events held back)",
                            colleagues[i].name,
                            s.recipients.len(),
                            s.from
                                .map_or("?".to_string(), |f| colleagues[f].name.clone()),
                            outbox.map_or("?".to_string(), |n| n.to_string()),
                            load.connections,
                            load.wanted_links,
                            load.pending_events
                        );
                    }
                    Some(&n) if n > 1 => duplicates += 1,
                    _ => {}
                }
            }
        }
    }
    Ok((missing, duplicates))
}

fn node(colleagues: &[Colleague], i: usize) -> Result<&NodeHandle> {
    colleagues[i]
        .running
        .as_ref()
        .map(|r| &r.node)
        .with_context(|| format!("{} is offline", colleagues[i].name))
}

async fn go_online(
    colleagues: &mut [Colleague],
    i: usize,
    cli: &Cli,
    collect: &mpsc::Sender<(usize, NodeEvent)>,
) -> Result<()> {
    let c = &mut colleagues[i];
    let options = LaunchOptions {
        listen: vec![c.listen.clone()],
        peers: c.peers.clone(),
        mdns: !cli.net.no_mdns,
        role: Role::Member,
        max_peers: cli.net.max_peers,
        ..LaunchOptions::default()
    };
    let mut running = launch::launch(&c.dir, options)
        .await
        .with_context(|| format!("{} cannot start", c.name))?;
    let mut events = running.node.subscribe();
    std::mem::swap(&mut events, &mut running.events);
    let collect = collect.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                // Only what the office acts on; receipts and the like would just crowd the
                // queue (a full queue makes this reader fall behind the node).
                Ok(
                    e @ (NodeEvent::Message { .. }
                    | NodeEvent::Profile { .. }
                    | NodeEvent::PeerOnline { .. }),
                ) => {
                    if collect.send((i, e)).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    LAGGED.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    eprintln!("office: event reader of colleague {i} fell behind by {n}");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    c.running = Some(running);
    c.back_at = None;
    Ok(())
}

async fn go_offline(c: &mut Colleague) {
    if let Some(r) = c.running.take()
        && let Err(e) = r.node.shutdown().await
    {
        eprintln!("{}: shutdown: {e}", c.name);
    }
}

async fn wait_for_profiles(colleagues: &[Colleague], users: &HashSet<UserId>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut complete = true;
        for i in 0..colleagues.len() {
            let known: HashSet<UserId> = node(colleagues, i)?
                .profiles()
                .await?
                .iter()
                .map(|p| p.user_id)
                .collect();
            let me = colleagues[i].user;
            if !users.iter().all(|u| *u == me || known.contains(u)) {
                complete = false;
                break;
            }
        }
        if complete {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("colleagues did not find each other within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_groups(
    colleagues: &[Colleague],
    groups: &[(ConversationId, Vec<usize>)],
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..colleagues.len() {
        let mine: HashSet<String> = groups
            .iter()
            .filter(|g| g.1.contains(&i))
            .map(|g| g.0.to_string())
            .collect();
        loop {
            let known: HashSet<String> = node(colleagues, i)?
                .conversations()
                .await?
                .into_iter()
                .filter(|c| c.is_member)
                .map(|c| c.conversation)
                .collect();
            if mine.is_subset(&known) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not learn of its groups within 60 s",
                    colleagues[i].name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

impl Listener {
    /// Record a delivery; answer and welcome whoever is not an office colleague.
    async fn on_event(
        &mut self,
        i: usize,
        event: NodeEvent,
        colleagues: &[Colleague],
        rng: &mut StdRng,
    ) {
        let Listener {
            users,
            groups,
            received,
            testers,
            answers,
        } = self;
        match event {
            NodeEvent::Message {
                event_id,
                author,
                conversation,
                ..
            } => {
                let key = (i, event_id);
                received
                    .first
                    .entry(key.clone())
                    .or_insert_with(Instant::now);
                *received.count.entry(key).or_default() += 1;
                // Someone outside the office wrote: the one addressed answers after a moment.
                let Ok(author) = author.parse::<UserId>() else {
                    return;
                };
                if !users.contains(&author)
                    && let Ok(conv) = conversation.parse()
                    && !answers.iter().any(|a| a.2 == conv)
                {
                    answers.push((
                        Instant::now() + Duration::from_millis(rng.gen_range(800..3000)),
                        i,
                        conv,
                    ));
                }
            }
            NodeEvent::Profile { user_id, name } | NodeEvent::PeerOnline { user_id, name } => {
                let Ok(user) = user_id.parse::<UserId>() else {
                    return;
                };
                if users.contains(&user) || testers.contains_key(&user) || i != 0 {
                    return;
                }
                // A tester: colleague 0 adds them to the office-wide group and says hello.
                testers.insert(user, name.clone());
                eprintln!("office: someone new: {name}");
                let Some(node) = colleagues[0].running.as_ref().map(|r| r.node.clone()) else {
                    return;
                };
                let all = groups
                    .iter()
                    .find(|g| g.1.len() == colleagues.len())
                    .map(|g| g.0);
                tokio::spawn(async move {
                    // `peer_online` can come before the profile, which adding needs.
                    let mut name = name;
                    for _ in 0..100 {
                        match node.profiles().await {
                            Ok(p) if p.iter().any(|p| p.user_id == user) => {
                                if let Some(p) = p.iter().find(|p| p.user_id == user) {
                                    name = p.display_name.clone();
                                }
                                break;
                            }
                            _ => tokio::time::sleep(Duration::from_millis(100)).await,
                        }
                    }
                    if let Some(conv) = all
                        && let Err(e) = node.add_member(conv, user).await
                    {
                        eprintln!("office: cannot add {name} to Alle: {e}");
                    }
                    if let Ok(conv) = node.open_direct(user).await {
                        let hello = format!(
                            "Hallo {name}, willkommen im Flurfunk-Testbüro! Schreib uns einfach."
                        );
                        let _ = node.send_text(conv, hello).await;
                    }
                });
            }
            _ => {}
        }
    }
}
