//! `flurfunk`: glue only. Parses arguments, sets up logging, runs one command against the
//! library, and maps every error to one line and a non-zero exit code.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use flurfunk::app::control;
use flurfunk::app::data_dir::DataDir;
use flurfunk::app::launch::{self, LaunchOptions};
use flurfunk::app::{self, Request, Response};
#[cfg(feature = "gui")]
use flurfunk::gui;
use flurfunk::identity::{Identity, safety_number};
use flurfunk::net::NetworkKey;
use flurfunk::node::{self, MessageItem, NodeConfig, NodeEvent};
use flurfunk::store::{SledStore, StoreError};
use flurfunk::wire::Role;
use libp2p::Multiaddr;

/// `println!` for the terminal: a reader that went away (`flurfunk peers | grep -q ..`,
/// `| head -1`) ends the program quietly instead of a panic.
macro_rules! outln {
    () => {
        $crate::output::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` with the same care as `outln!`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!($($arg)*))
    };
}

#[path = "cli/admin.rs"]
mod admin_cli;
#[path = "cli/messages.rs"]
mod messages_cli;
#[path = "cli/output.rs"]
mod output;

use output::{
    fingerprint, history_line, human_event, local_time, network_label, one_line, printable,
};

/// How often a command retries the control socket of a node that is still starting.
const CONTROL_RETRIES: u32 = 15;

#[derive(Parser)]
#[command(
    name = "flurfunk",
    version,
    about = "Serverless, end-to-end encrypted messenger for the local network",
    after_help = "The data directory defaults to the OS's per-user data directory \
                  (Linux: ~/.local/share/flurfunk, Windows: %LOCALAPPDATA%\\Flurfunk)."
)]
struct Cli {
    /// Data directory (identity, network key, messages).
    #[arg(long, global = true, env = "FLURFUNK_DATA_DIR", value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// How a node (headless or in the app) reaches the network.
#[derive(clap::Args, Default)]
struct NetOpts {
    /// Address to listen on (repeatable). Default: /ip4/0.0.0.0/tcp/47110.
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<Multiaddr>,
    /// Peer to dial and keep dialling, e.g. across subnets (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    peer: Vec<Multiaddr>,
    /// Do not use mDNS discovery.
    #[arg(long)]
    no_mdns: bool,
    /// Connections to keep at most (besides --peer links); the node chooses which, so
    /// that everyone in each conversation stays reachable.
    #[arg(long, value_name = "N", default_value_t = flurfunk::node::DEFAULT_MAX_PEERS)]
    max_peers: usize,
    /// Largest file sent from here [default: 2GB].
    #[arg(long, value_name = "SIZE", value_parser = flurfunk::files::parse_size)]
    max_file_size: Option<u64>,
    /// Files up to this size are fetched as soon as their message arrives; 0: only on
    /// request [default: 25MB].
    #[arg(long, value_name = "SIZE", value_parser = flurfunk::files::parse_size)]
    auto_download: Option<u64>,
    /// Space for files: beyond it, colleagues' files not used for an hour are removed,
    /// least recently used first, and fetched again when opened [default: 4GB].
    #[arg(long, value_name = "SIZE", value_parser = flurfunk::files::parse_size)]
    files_quota: Option<u64>,
    /// Without a network key file, start in the open demo network (anyone running
    /// Flurfunk can join it) instead of refusing.
    #[arg(long)]
    demo: bool,
}

impl NetOpts {
    fn launch_options(self, role: Role) -> LaunchOptions {
        let default = flurfunk::node::FileLimits::default();
        LaunchOptions {
            listen: self.listen,
            peers: self.peer,
            mdns: !self.no_mdns,
            role,
            max_peers: self.max_peers,
            raise: None,
            demo: self.demo,
            file_limits: flurfunk::node::FileLimits {
                max_send_bytes: self.max_file_size.unwrap_or(default.max_send_bytes),
                auto_download_bytes: self.auto_download.unwrap_or(default.auto_download_bytes),
                quota_bytes: self.files_quota.unwrap_or(default.quota_bytes),
            },
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Open the desktop app (the default without a command).
    App {
        #[command(flatten)]
        net: NetOpts,
        /// Language of this session (de, en); default: the saved one, else the system's.
        #[arg(long, value_parser = ["de", "en"])]
        lang: Option<String>,
        /// Benchmark: print when the first frame and the chat list were drawn, then quit.
        #[arg(long, hide = true)]
        startup_probe: bool,
        /// Started at log-on (the installers register this): opens the app only where the
        /// machine's settings, else the user's own setting, want it.
        #[arg(long)]
        autostart: bool,
    },
    /// Create this installation's identity (refuses to overwrite one).
    Init {
        #[arg(long)]
        name: String,
    },
    /// Show user id, name, fingerprint and network.
    Whoami,
    /// Create or join a network (its key keeps everyone else out).
    Network {
        #[command(subcommand)]
        action: NetworkAction,
    },
    /// Run a headless node until SIGINT/SIGTERM.
    Node {
        #[command(flatten)]
        net: NetOpts,
        /// Store and forward every conversation's (encrypted) events for others.
        #[arg(long)]
        relay: bool,
        /// One JSON object per line for every event, on stdout.
        #[arg(long)]
        json: bool,
    },
    /// People seen on the network.
    Peers {
        #[arg(long)]
        json: bool,
    },
    /// Your conversations, newest first.
    Conversations {
        #[arg(long)]
        json: bool,
    },
    /// Send a message (it waits in the outbox if nobody is reachable).
    Send {
        /// User id, name, group name or conversation id (or its first 8+ characters).
        #[arg(long)]
        to: String,
        /// A file to send (photo, PDF, anything up to 2 GiB); TEXT then goes with it.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        #[arg(required_unless_present = "file")]
        text: Option<String>,
    },
    /// Send a file (photo, PDF, anything up to 2 GiB), with an optional text.
    SendFile {
        /// User id, name, group name or conversation id (or its first 8+ characters).
        #[arg(long)]
        to: String,
        path: std::path::PathBuf,
        /// Text sent with the file.
        #[arg(long, default_value = "")]
        text: String,
    },
    /// Save the file of a message (its id from `history --json`, or the first 8+
    /// characters) to DEST (a folder: the file keeps its name there; default: here);
    /// a file not here yet is fetched first, with a progress line.
    #[command(alias = "save")]
    SaveFile {
        conversation: String,
        event: String,
        dest: Option<std::path::PathBuf>,
    },
    /// Fetch the file of a message now (files over 25 MB are fetched only on request).
    Download { conversation: String, event: String },
    /// Files being fetched and how far they are.
    Downloads {
        #[arg(long)]
        json: bool,
    },
    /// The node: who, which network, colleagues online, messages waiting, load figures
    /// (`--json`: everything, e.g. `load.file_bytes_served`).
    Status {
        #[arg(long)]
        json: bool,
    },
    #[command(flatten)]
    Message(messages_cli::MessageAction),
    /// Messages of one conversation.
    History {
        conversation: String,
        #[arg(long, default_value_t = app::DEFAULT_HISTORY_LIMIT)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Create and manage groups.
    Group {
        #[command(subcommand)]
        action: GroupAction,
    },
    /// Replace this installation's conversation key (X25519), e.g. after its key file may
    /// have been copied: keys made from now on are wrapped to the new key; the old one is
    /// deleted after 7 days, history stays readable.
    KeyUpdate,
    /// Machine setup for administrators and installers (network key for all users,
    /// Windows Firewall rules).
    Admin {
        #[command(subcommand)]
        action: admin_cli::AdminAction,
    },
}

#[derive(Subcommand)]
enum NetworkAction {
    /// Create a new network key file to hand to colleagues (and join it).
    New {
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
        /// Where the admin key goes (default: admin.key in this data directory, never
        /// beside FILE, which is handed out). Keep it with IT; never hand it out.
        #[arg(long, value_name = "FILE", conflicts_with = "unmanaged")]
        admin_key: Option<std::path::PathBuf>,
        /// No admin key: anyone holding the network key may act as a relay.
        #[arg(long)]
        unmanaged: bool,
    },
    /// Join the network of a key file.
    Join { file: std::path::PathBuf },
    /// Join the open demo network on purpose (to try Flurfunk; anyone running Flurfunk can
    /// join it).
    Demo,
}

#[derive(Subcommand)]
enum GroupAction {
    Create {
        name: String,
        #[arg(long = "member", value_name = "USER")]
        members: Vec<String>,
    },
    Add {
        group: String,
        user: String,
    },
    Remove {
        group: String,
        user: String,
    },
    Leave {
        group: String,
    },
}

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The desktop app runs its own runtime next to the window's event loop.
    if matches!(cli.command, None | Some(Command::App { .. })) {
        return match run_app(cli, started) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("flurfunk: {e:#}");
                flurfunk::platform::show_error_without_console(&format!("{e:#}"));
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("flurfunk: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flurfunk: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--data-dir`, else the folder the machine settings give, else the OS's per-user one.
fn data_dir(cli: &Cli) -> Result<DataDir> {
    if let Some(d) = &cli.data_dir {
        return Ok(DataDir::new(d));
    }
    if let Some(d) = machine_policy()?.data_dir {
        return Ok(DataDir::new(d));
    }
    DataDir::default_location()
        .context("cannot determine the per-user data directory; pass --data-dir")
}

/// This machine's settings (`app::machine_policy`); invalid ones stop every command.
fn machine_policy() -> Result<flurfunk::app::machine_policy::MachinePolicy> {
    Ok(flurfunk::app::machine_policy::MachinePolicy::load()?)
}

fn load_identity(dir: &DataDir) -> Result<Identity> {
    Ok(launch::load_identity(dir)?)
}

fn load_network_key(dir: &DataDir) -> Result<NetworkKey> {
    Ok(launch::load_network_key(dir)?)
}

#[cfg(not(feature = "gui"))]
fn run_app(_cli: Cli, _started: std::time::Instant) -> Result<()> {
    bail!(
        "this build of Flurfunk has no desktop app (built without the `gui` feature); \
         run the headless node: flurfunk node"
    )
}

#[cfg(feature = "gui")]
fn run_app(cli: Cli, started: std::time::Instant) -> Result<()> {
    let dir = data_dir(&cli)?;
    let (net, lang, probe) = match cli.command {
        Some(Command::App {
            net,
            lang,
            startup_probe,
            autostart,
        }) => {
            if autostart {
                let user_wants =
                    gui::settings::Settings::load(&gui::settings::Settings::path(&dir))
                        .start_at_logon;
                if !machine_policy()?.autostart_wanted(user_wants) {
                    return Ok(());
                }
            }
            (net, lang, startup_probe)
        }
        _ => (NetOpts::default(), None, false),
    };
    let config = gui::GuiConfig {
        dir,
        launch: net.launch_options(Role::Member),
        language: lang.map(|l| gui::i18n::Lang::from_locale(&l)),
        desktop_notifications: true,
        save_dir: None,
        native_dialogs: true,
    };
    let probe = probe.then_some(gui::StartupProbe { since: started });
    if gui::run(config, probe)? == gui::Started::Raised {
        outln!("Flurfunk already runs for this data directory; its window was brought forward.");
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<()> {
    let dir = data_dir(&cli)?;
    let Some(command) = cli.command else {
        bail!("no command");
    };
    match command {
        Command::App { .. } => bail!("the desktop app does not run inside the CLI runtime"),
        Command::Init { name } => {
            dir.create()
                .with_context(|| format!("cannot create {}", dir.root().display()))?;
            let id = Identity::generate(&mut rand::rngs::OsRng, &name)?;
            id.save_new(&dir.identity())?;
            outln!("created identity {} ({})", id.user_id(), id.display_name());
            Ok(())
        }
        Command::Whoami => {
            let id = load_identity(&dir)?;
            let network = match launch::load_network_key(&dir) {
                Ok(key) => network_label(&key),
                Err(launch::LaunchError::NoNetworkKey { .. }) => {
                    "none yet (flurfunk network join FILE)".into()
                }
                Err(e) => return Err(e.into()),
            };
            outln!("user id:     {}", id.user_id());
            outln!("name:        {}", id.display_name());
            outln!("fingerprint: {}", fingerprint(&id));
            outln!("network:     {network}");
            Ok(())
        }
        Command::Network { action } => network(&dir, action),
        Command::Admin { action } => admin_cli::admin(&dir, action).await,
        Command::Message(action) => messages_cli::run(&dir, action).await,
        Command::Node { net, relay, json } => {
            let role = if relay { Role::Relay } else { Role::Member };
            run_node(&dir, net.launch_options(role), json).await
        }
        Command::Status { json } => {
            let Response::Status { status } = request(&dir, Request::Status).await? else {
                bail!("unexpected reply");
            };
            if json {
                outln!("{}", serde_json::to_string(&status)?);
            } else {
                outln!("name:      {}", status.name);
                outln!("user id:   {}", status.user_id);
                outln!(
                    "network:   {}{}",
                    status.network,
                    if status.demo_network {
                        " (demo, open to anyone)".to_string()
                    } else if let Some(admin) = &status.network_admin {
                        format!(" (managed, admin {admin})")
                    } else {
                        " (unmanaged: any node may act as a relay)".to_string()
                    }
                );
                if let Some(r) = &status.key_rotation {
                    match &r.next_network {
                        Some(next) => outln!(
                            "rotation:  network key {next} from {}; the old one accepted until {}",
                            local_time(r.switch_at_ms, true),
                            local_time(r.overlap_until_ms, true)
                        ),
                        None => outln!(
                            "rotation:  the network key is being changed, and this installation was not given the new one: nodes that know of it refuse this one; install the new key file from IT (flurfunk network join FILE)"
                        ),
                    }
                }
                if status.network_key_refused {
                    outln!(
                        "warning:   other nodes refuse this network key; it was most likely rotated while this node was away: install the current key file from IT (flurfunk network join FILE)"
                    );
                }
                outln!("role:      {}", status.role);
                let machine = machine_policy()?;
                if let Some(source) = &machine.source {
                    outln!(
                        "machine:   settings from {source}{}",
                        if machine.lock_network {
                            " (network locked)"
                        } else {
                            ""
                        }
                    );
                }
                if let Some(p) = &status.policy {
                    let size = |v: Option<u64>| {
                        v.map_or("own setting".into(), flurfunk::files::human_size)
                    };
                    let window =
                        |v: Option<u64>| v.map_or("any time".into(), flurfunk::wire::human_window);
                    outln!(
                        "policy:    read receipts {}, presence {:?}, files up to {}, automatic up to {}, delete for everyone {}, edit within {}, delete within {}, messages kept {}, turned off: {} (set by the organisation or this machine)",
                        if p.read_receipts { "on" } else { "off" },
                        p.presence,
                        size(p.max_file_bytes),
                        size(p.auto_download_bytes),
                        if p.delete_for_everyone {
                            "allowed"
                        } else {
                            "not allowed"
                        },
                        window(p.edit_window_s),
                        window(p.delete_window_s),
                        p.keep_messages_s
                            .map_or("for good".into(), flurfunk::wire::human_window),
                        flurfunk::wire::features_named(p.features_off)
                    );
                }
                outln!("online:    {} colleagues", status.peers_online);
                outln!("outbox:    {} messages waiting", status.outbox);
                outln!(
                    "files:     {} sent to colleagues, {} received",
                    flurfunk::files::human_size(status.load.file_bytes_served),
                    flurfunk::files::human_size(status.load.file_bytes_fetched)
                );
            }
            Ok(())
        }
        Command::Peers { json } => {
            let Response::Peers { peers } = request(&dir, Request::Peers).await? else {
                bail!("unexpected reply");
            };
            if !json && peers.is_empty() {
                outln!("nobody seen yet");
            }
            for p in &peers {
                if json {
                    outln!("{}", serde_json::to_string(p)?);
                } else {
                    let state = if p.online {
                        "online".to_string()
                    } else {
                        match p.last_seen_ms {
                            Some(ms) => format!("last seen {}", local_time(ms, true)),
                            None => "offline".to_string(),
                        }
                    };
                    outln!("{:<24} {:<22} {}", printable(&p.name), state, p.user_id);
                }
            }
            Ok(())
        }
        Command::Conversations { json } => {
            let Response::Conversations { conversations } =
                request(&dir, Request::Conversations).await?
            else {
                bail!("unexpected reply");
            };
            for c in &conversations {
                if json {
                    outln!("{}", serde_json::to_string(c)?);
                    continue;
                }
                let last = c
                    .last_message
                    .as_ref()
                    .map(|m| format!("{}: {}", m.author_name, one_line(&m.text, 40)))
                    .unwrap_or_default();
                let unread = if c.unread > 0 {
                    format!("({} new)", c.unread)
                } else {
                    String::new()
                };
                outln!(
                    "{}  {:<6} {:<24} {:<9} {}",
                    &c.conversation[..12],
                    c.kind,
                    printable(&c.name),
                    unread,
                    printable(&last)
                );
            }
            if !json && conversations.is_empty() {
                outln!("no conversations yet");
            }
            Ok(())
        }
        Command::Send {
            to,
            file: Some(path),
            text,
        } => send_file(&dir, to, path, text.unwrap_or_default()).await,
        Command::Send {
            to,
            file: None,
            text,
        } => {
            let text = text.unwrap_or_default();
            let Response::Sent {
                conversation,
                peers_online,
                ..
            } = request(&dir, Request::Send { to, text }).await?
            else {
                bail!("unexpected reply");
            };
            if peers_online == 0 {
                outln!(
                    "saved in {}; nobody reachable now, it waits in the outbox",
                    &conversation[..12]
                );
            } else {
                outln!("saved in {}; sending", &conversation[..12]);
            }
            Ok(())
        }
        Command::SendFile { to, path, text } => send_file(&dir, to, path, text).await,
        Command::SaveFile {
            conversation,
            event,
            dest,
        } => {
            let dest = std::path::absolute(dest.unwrap_or_else(|| ".".into()))?;
            save_file(&dir, conversation, event, dest).await
        }
        Command::Download {
            conversation,
            event,
        } => {
            request(
                &dir,
                Request::Download {
                    conversation,
                    event,
                },
            )
            .await?;
            outln!("fetching; `flurfunk downloads` shows how far it is");
            Ok(())
        }
        Command::Downloads { json } => {
            let Response::Downloads { downloads } = request(&dir, Request::Downloads).await? else {
                bail!("unexpected reply");
            };
            for d in &downloads {
                if json {
                    outln!("{}", serde_json::to_string(d)?);
                } else {
                    let state = if d.disk_full {
                        "waiting for room on the disk"
                    } else if d.waiting {
                        "waiting for a colleague who has it"
                    } else if d.fetching_from > 0 {
                        "fetching"
                    } else {
                        "queued"
                    };
                    outln!(
                        "{}  {:>3} %  {state}",
                        &d.blob[..12],
                        d.blocks_held * 100 / d.blocks.max(1)
                    );
                }
            }
            if downloads.is_empty() && !json {
                outln!("no files being fetched");
            }
            Ok(())
        }
        Command::History {
            conversation,
            limit,
            json,
        } => {
            let Response::History {
                conversation,
                messages,
            } = request(
                &dir,
                Request::History {
                    conversation,
                    limit,
                },
            )
            .await?
            else {
                bail!("unexpected reply");
            };
            if !json {
                outln!(
                    "== {} ({})",
                    printable(&conversation.name),
                    conversation.kind
                );
            }
            for m in &messages {
                if json {
                    outln!("{}", serde_json::to_string(m)?);
                } else {
                    outln!(
                        "{}",
                        printable(&history_line(m, conversation.members.len()))
                    );
                }
            }
            Ok(())
        }
        Command::KeyUpdate => {
            request(&dir, Request::KeyUpdate).await?;
            outln!(
                "new key made; every conversation gets a key wrapped to it as soon as its members are reachable"
            );
            Ok(())
        }
        Command::Group { action } => {
            let req = match action {
                GroupAction::Create { name, members } => Request::GroupCreate { name, members },
                GroupAction::Add { group, user } => Request::GroupAdd { group, user },
                GroupAction::Remove { group, user } => Request::GroupRemove { group, user },
                GroupAction::Leave { group } => Request::GroupLeave { group },
            };
            let removing = matches!(req, Request::GroupRemove { .. });
            match request(&dir, req).await? {
                Response::Group { conversation } => outln!("created group {conversation}"),
                _ if removing => outln!("removed; the group key was rotated"),
                _ => outln!("done"),
            }
            Ok(())
        }
    }
}

/// Send a file (an absolute path: the node may run in another directory).
async fn send_file(
    dir: &DataDir,
    to: String,
    path: std::path::PathBuf,
    text: String,
) -> Result<()> {
    let path =
        std::path::absolute(&path).with_context(|| format!("cannot find {}", path.display()))?;
    let request_ = Request::SendFile {
        to,
        path: path.display().to_string(),
        text,
    };
    let Response::Sent {
        conversation,
        peers_online,
        ..
    } = request(dir, request_).await?
    else {
        bail!("unexpected reply");
    };
    if peers_online == 0 {
        outln!(
            "file saved in {}; nobody reachable now, it waits in the outbox",
            &conversation[..12]
        );
    } else {
        outln!("file saved in {}; sending", &conversation[..12]);
    }
    Ok(())
}

/// How long `save` waits for a file that makes no progress.
const SAVE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(300);

/// Save a message's file; one not here yet is fetched first, with a progress line.
async fn save_file(
    dir: &DataDir,
    conversation: String,
    event: String,
    dest: std::path::PathBuf,
) -> Result<()> {
    use std::io::Write;
    // Fetching needs the running node (an offline one fetches nothing).
    let call = |req: Request| async move {
        control::call(dir, &req).await?.ok_or_else(|| {
            anyhow::anyhow!(
                "the file is not here yet, and fetching it needs the running node: start `flurfunk node` or the app"
            )
        })
    };
    let mut asked = false;
    let mut missing_polls = 0;
    let mut progress = (0u64, std::time::Instant::now());
    loop {
        let save = Request::SaveFile {
            conversation: conversation.clone(),
            event: event.clone(),
            dest: dest.display().to_string(),
        };
        let response = if asked {
            call(save).await?
        } else {
            request(dir, save).await?
        };
        let blob = match response {
            Response::SavedFile { path } => {
                if asked {
                    outln!();
                }
                outln!("saved {path}");
                return Ok(());
            }
            Response::NotHere { blob } => blob,
            _ => bail!("unexpected reply"),
        };
        if !asked {
            let fetch = Request::Download {
                conversation: conversation.clone(),
                event: event.clone(),
            };
            call(fetch).await?;
            asked = true;
        }
        let Response::Downloads { downloads } = call(Request::Downloads).await? else {
            bail!("unexpected reply");
        };
        match downloads.iter().find(|d| d.blob == blob) {
            Some(d) => {
                missing_polls = 0;
                if d.disk_full {
                    outln!();
                    bail!(
                        "the disk is full: the file waits for room (the node goes on by itself once there is some)"
                    );
                }
                if d.blocks_held > progress.0 {
                    progress = (d.blocks_held, std::time::Instant::now());
                } else if progress.1.elapsed() > SAVE_PATIENCE {
                    outln!();
                    bail!(
                        "no colleague who has the file was reachable for {} minutes; the node keeps trying (`flurfunk downloads`), save it later",
                        SAVE_PATIENCE.as_secs() / 60
                    );
                }
                let percent = d.blocks_held * 100 / d.blocks.max(1);
                let state = if d.waiting {
                    "waiting for a colleague who has it"
                } else {
                    "fetching"
                };
                out!("\r{percent:>3} %  {state}          ");
                std::io::stdout().flush()?;
            }
            // Done between the two requests, or given up (then the node said why).
            None if missing_polls < 3 => missing_polls += 1,
            None => bail!("the file could not be fetched; `flurfunk download` tries again"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Send a request to the running node, or, if none runs, do it on the store directly
/// (a message then waits in the outbox until a node runs).
async fn request(dir: &DataDir, req: Request) -> Result<Response> {
    if let Some(response) = control::call(dir, &req).await? {
        return Ok(response);
    }
    let identity = load_identity(dir)?;
    let key = load_network_key(dir)?;
    let mut attempts = 0;
    let store = loop {
        match SledStore::open(&dir.database()) {
            Ok(store) => break store,
            // A node that is starting holds the database a moment before its control
            // socket is up; ask it once it is.
            Err(StoreError::Locked { .. }) if attempts < CONTROL_RETRIES => {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                if let Some(response) = control::call(dir, &req).await? {
                    return Ok(response);
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    let config = NodeConfig {
        // A key update is saved to the key file.
        identity_path: Some(dir.identity()),
        // A file sent while no node runs is taken in now and announced on the next start.
        files_dir: Some(dir.files()),
        machine_policy: machine_policy()?.policy,
        ..NodeConfig::offline(key)
    };
    let (handle, _) = node::start(identity, Box::new(store), config).await?;
    let result = app::execute(&handle, req).await;
    handle.shutdown().await?;
    Ok(result?)
}

fn network(dir: &DataDir, action: NetworkAction) -> Result<()> {
    match action {
        NetworkAction::New {
            out,
            admin_key,
            unmanaged,
        } => {
            machine_policy()?.check_unlocked("Making another network")?;
            let mut key = NetworkKey::generate(&mut rand::rngs::OsRng);
            let admin_path = (!unmanaged).then(|| admin_key.unwrap_or_else(|| dir.admin_key()));
            // Refuse before anything is made: no admin key is left for a network that was
            // never created.
            if out.exists() {
                bail!("{} exists already; refusing to overwrite it", out.display());
            }
            dir.create()?;
            if let Some(path) = &admin_path {
                if path.exists() {
                    bail!(
                        "{} exists already; refusing to overwrite an admin key",
                        path.display()
                    );
                }
                let admin = flurfunk::admin::AdminKey::generate(&mut rand::rngs::OsRng);
                key = key.with_admin(admin.public());
                // The admin key first: a network file naming a key nobody has is useless.
                admin.save_new(path)?;
            }
            key.save_new(&out)?;
            key.save_replace(&dir.network_key())?;
            outln!(
                "created network {} in {}; this node joined it.\n\
                 Hand the file to colleagues (USB stick, not e-mail): flurfunk network join FILE",
                key.fingerprint(),
                out.display()
            );
            match &admin_path {
                Some(path) => outln!(
                    "The network's admin key is in {} (admin {}). Keep it with IT, never hand \
                     it out: it certifies relays (flurfunk admin certify-relay).",
                    path.display(),
                    flurfunk::admin::fingerprint(&key.admin().unwrap_or_default())
                ),
                None => outln!("The network is unmanaged: any node may act as a relay."),
            }
            Ok(())
        }
        NetworkAction::Demo => {
            machine_policy()?.check_unlocked("Joining the demo network")?;
            dir.create()?;
            NetworkKey::demo().save_replace(&dir.network_key())?;
            outln!(
                "joined the DEMO network: anyone running Flurfunk can join it; for real use ask IT for the key file (flurfunk network join FILE)"
            );
            Ok(())
        }
        NetworkAction::Join { file } => {
            machine_policy()?.check_unlocked("Joining another network")?;
            let key = NetworkKey::load(&file)?;
            dir.create()?;
            key.save_replace(&dir.network_key())?;
            outln!(
                "joined network {}; restart the node to use it",
                network_label(&key)
            );
            Ok(())
        }
    }
}

async fn run_node(dir: &DataDir, options: LaunchOptions, json: bool) -> Result<()> {
    let mdns = options.mdns;
    // Holds the control socket and the port claim until the node stops.
    let mut running = launch::launch(dir, options).await?;
    let handle = running.node.clone();
    // Windows log-off or shutdown: stop the node before the process is ended.
    let session_end = std::sync::Arc::new(tokio::sync::Notify::new());
    let (stopped_tx, stopped_rx) = std::sync::mpsc::channel::<()>();
    flurfunk::platform::on_session_end({
        let session_end = session_end.clone();
        let stopped = std::sync::Mutex::new(stopped_rx);
        move || {
            session_end.notify_one();
            if let Ok(stopped) = stopped.lock() {
                let _ = stopped.recv_timeout(std::time::Duration::from_secs(10));
            }
        }
    });
    let key = running.network_key;
    let events = &mut running.events;
    let status = handle.status().await?;
    eprintln!("flurfunk node: {} ({})", status.name, status.user_id);
    eprintln!("network: {}", network_label(&key));
    if key.is_demo() {
        eprintln!(
            "WARNING: demo network. Anyone running Flurfunk can join it. \
             Create a real one with: flurfunk network new --out network.key"
        );
    }
    if !mdns {
        eprintln!("mDNS discovery is off");
    }
    let mut stdout = std::io::stdout();
    let stop = launch::shutdown_signal();
    tokio::pin!(stop);
    let mut stats_every = tokio::time::interval(std::time::Duration::from_secs(60));
    stats_every.tick().await;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = session_end.notified() => break,
            _ = stats_every.tick(), if json => {
                let load = handle.status().await?.load;
                writeln!(stdout, "{}", serde_json::to_string(&NodeEvent::Stats { load })?)?;
                stdout.flush()?;
            }
            event = events.recv() => match event {
                Ok(event) => {
                    let line = if json {
                        serde_json::to_string(&event)?
                    } else {
                        match human_event(&event) {
                            Some(l) => printable(&l),
                            None => continue,
                        }
                    };
                    writeln!(stdout, "{line}")?;
                    stdout.flush()?;
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("output fell behind; {n} events not shown");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    eprintln!("stopping");
    handle.shutdown().await?;
    let _ = stopped_tx.send(());
    Ok(())
}
