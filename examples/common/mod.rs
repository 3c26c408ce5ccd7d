//! Command-line options and set-up shared by the example nodes. Everything here goes
//! through the library's public API, as a program of a tester or an admin would.
#![allow(dead_code)] // each example uses a different part

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use flurfunk::app::data_dir::DataDir;
use flurfunk::app::launch::{self, LaunchOptions};
use flurfunk::identity::Identity;
use flurfunk::net::NetworkKey;
use flurfunk::wire::Role;
use libp2p::Multiaddr;

/// How an example node reaches the network.
#[derive(Args, Clone, Debug)]
pub struct NetArgs {
    /// Network key file (from `flurfunk network new`); without it: the demo network.
    #[arg(long, value_name = "FILE")]
    pub network_key: Option<PathBuf>,
    /// Address to listen on (repeatable). Default: /ip4/0.0.0.0/tcp/47110 or a free port.
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<Multiaddr>,
    /// Peer to dial and keep dialling (repeatable), e.g. /ip4/127.0.0.1/tcp/47110.
    #[arg(long, value_name = "MULTIADDR")]
    pub peer: Vec<Multiaddr>,
    /// Do not use mDNS discovery (loopback tests, networks without multicast).
    #[arg(long)]
    pub no_mdns: bool,
    /// Connections to keep at most (besides --peer links).
    #[arg(long, value_name = "N", default_value_t = flurfunk::node::DEFAULT_MAX_PEERS)]
    pub max_peers: usize,
}

impl NetArgs {
    pub fn launch_options(&self, role: Role) -> LaunchOptions {
        LaunchOptions {
            listen: self.listen.clone(),
            peers: self.peer.clone(),
            mdns: !self.no_mdns,
            role,
            max_peers: self.max_peers,
            ..LaunchOptions::default()
        }
    }
}

/// Create (or reuse) the identity in `dir` and put the network key file there.
pub fn prepare(dir: &DataDir, name: &str, net: &NetArgs) -> Result<Identity> {
    let identity = launch::ensure_identity(dir, name)?;
    // Without --network-key the examples use the demo network, as their help says (a node
    // itself never falls back to it).
    let key = match &net.network_key {
        Some(file) => NetworkKey::load(file)?,
        None if launch::has_network_key(dir) => return Ok(identity),
        None => NetworkKey::demo(),
    };
    key.save_replace(&dir.network_key())
        .with_context(|| format!("cannot write {}", dir.network_key().display()))?;
    Ok(identity)
}

/// Log warnings (or what `RUST_LOG` asks for) to stderr.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Quantile of a sorted slice (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
