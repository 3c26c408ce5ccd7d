//! depot_relay: the headless node an admin puts into an isolated depot network. It finds
//! the depot's desktops by mDNS, keeps one explicit link to the town hall, and stores and
//! forwards every conversation's (encrypted, unreadable to it) events in both directions,
//! so a message reaches the depot even when its sender in the town hall has gone home.
//!
//! ```text
//! cargo run --release --example depot_relay -- --data-dir /var/lib/flurfunk-relay \
//!     --network-key /etc/flurfunk/network.key --town-hall /ip4/10.1.0.5/tcp/47110
//! ```
//!
//! In a managed network (the key file names an admin key) it starts only with IT's
//! certificate in `DATA_DIR/relay.cert` (`flurfunk admin certify-relay` at IT, then
//! `flurfunk --data-dir DATA_DIR admin install-relay-cert FILE`); members give an
//! uncertified relay nothing but its own conversations.
//!
//! `examples/depot_relay.service` is the matching systemd unit.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Parser;
use flurfunk::app::data_dir::DataDir;
use flurfunk::app::launch;
use flurfunk::node::NodeEvent;
use flurfunk::wire::Role;
use libp2p::Multiaddr;
use tokio::sync::broadcast::error::RecvError;

#[derive(Parser)]
#[command(about = "Flurfunk depot relay: store-and-forward between a depot LAN and the town hall")]
struct Cli {
    /// Where the relay keeps its identity and the events it holds.
    #[arg(long, default_value = "depot-relay-data", value_name = "DIR")]
    data_dir: PathBuf,
    /// Display name, shown to colleagues as who is online.
    #[arg(long, default_value = "Relay Bauhof")]
    name: String,
    /// The town hall node (or relay) to keep a link to (repeatable).
    #[arg(long = "town-hall", value_name = "MULTIADDR", required = true)]
    town_hall: Vec<Multiaddr>,
    /// Network key file of the town hall's network (required: a relay never runs in the
    /// open demo network).
    #[arg(long, value_name = "FILE")]
    network_key: PathBuf,
    /// Address to listen on (repeatable). Default: /ip4/0.0.0.0/tcp/47110.
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<Multiaddr>,
    /// Do not use mDNS on the depot network.
    #[arg(long)]
    no_mdns: bool,
    /// Seconds between status lines in the log.
    #[arg(long, default_value_t = 60)]
    status_every: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    common::init_logging();
    if flurfunk::net::NetworkKey::load(&cli.network_key)?.is_demo() {
        bail!(
            "{} is the demo network key; a relay needs the town hall's own key",
            cli.network_key.display()
        );
    }
    let net = common::NetArgs {
        network_key: Some(cli.network_key.clone()),
        listen: cli.listen.clone(),
        peer: cli.town_hall.clone(),
        no_mdns: cli.no_mdns,
        max_peers: flurfunk::node::DEFAULT_MAX_PEERS,
    };
    let dir = DataDir::new(&cli.data_dir);
    let identity = common::prepare(&dir, &cli.name, &net)?;
    let options = net.launch_options(Role::Relay);
    let mut running = launch::launch(&dir, options).await?;
    let node = running.node.clone();
    println!(
        "depot_relay {} ({}) in network {}; town hall: {}",
        identity.display_name(),
        identity.user_id(),
        running.network_key.fingerprint(),
        cli.town_hall
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut status = tokio::time::interval(Duration::from_secs(cli.status_every.max(1)));
    let stop = launch::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = status.tick() => {
                match (node.status().await, node.stats().await) {
                    (Ok(s), Ok(stats)) => println!(
                        "status: {} peers online, {} events waiting for delivery, {stats:?}",
                        s.peers_online, s.outbox
                    ),
                    (Err(e), _) | (_, Err(e)) => eprintln!("status: {e}"),
                }
            }
            event = running.events.recv() => match event {
                Ok(NodeEvent::Listening { address }) => println!("listening on {address}"),
                Ok(NodeEvent::PeerOnline { name, user_id }) => println!("online: {name} ({})", &user_id[..12.min(user_id.len())]),
                Ok(NodeEvent::PeerOffline { name, .. }) => println!("offline: {name}"),
                Ok(NodeEvent::Warning { message }) => eprintln!("warning: {message}"),
                Ok(NodeEvent::Misbehaviour { what, conversation_name, name, .. }) => {
                    eprintln!("warning: {name}'s device misbehaved in {conversation_name}: {what}")
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
    }
    println!("stopping");
    node.shutdown().await?;
    Ok(())
}
