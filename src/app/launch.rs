//! Starting a node from a data directory: the one path shared by `flurfunk node`, the
//! desktop app and the example nodes, so they all open the same files the same way.
//!
//! It never creates an identity or joins a network on its own; that is a user's decision
//! (`flurfunk init`, the app's first-run wizard, an example's `--name`).

use libp2p::Multiaddr;
use tokio::sync::broadcast;

use super::control::{self, ControlError, ControlServer, RaiseHook};
use super::data_dir::DataDir;
use crate::identity::{Identity, IdentityError};
use crate::net::{NetError, NetworkKey};
use crate::node::{self, NodeConfig, NodeError, NodeEvent, NodeHandle};
use crate::store::{SledStore, StoreError};
use crate::wire::Role;

/// The port a node listens on unless told otherwise; admins open it in the firewall.
pub const DEFAULT_PORT: u16 = 47110;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "no identity yet in {dir}; create one with: flurfunk init --name \"Your Name\" \
         (or start the desktop app)"
    )]
    NoIdentity { dir: String },
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("cannot create {dir}: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error(
        "this relay has no certificate of the network's admin: members give it only their \
         own conversations. Ask IT for one (flurfunk admin certify-relay {user}) and \
         install it: flurfunk admin install-relay-cert FILE"
    )]
    NoRelayCertificate { user: String },
    #[error("the relay certificate {path} cannot be used: {reason}")]
    RelayCertificate { path: String, reason: String },
    #[error(
        "no network key in {dir} and none installed for this machine: ask IT for the key \
         file and run: flurfunk network join FILE (to try Flurfunk alone: flurfunk network \
         demo, or --demo)"
    )]
    NoNetworkKey { dir: String },
    #[error(transparent)]
    MachinePolicy(#[from] super::machine_policy::MachinePolicyError),
    #[error(
        "IT locked this computer to the organisation's network ({source_name}), but no \
         network key is installed for the machine: ask IT to install it (the MSI's \
         NETWORKKEYFILE, or flurfunk admin install-network-key FILE)"
    )]
    LockedWithoutKey { source_name: String },
    #[error(transparent)]
    Locked(#[from] super::machine_policy::LockedError),
}

/// How the node should reach the network.
#[derive(Clone, Debug)]
pub struct LaunchOptions {
    /// Empty: [`default_listen`].
    pub listen: Vec<Multiaddr>,
    pub peers: Vec<Multiaddr>,
    pub mdns: bool,
    pub role: Role,
    /// Connections kept at most (see [`node::DEFAULT_MAX_PEERS`]).
    pub max_peers: usize,
    /// The desktop app's answer when a second start asks for its window.
    pub raise: Option<RaiseHook>,
    /// The largest file sent, the largest fetched by itself, the quota.
    pub file_limits: node::FileLimits,
    /// Without a network key file (in the data directory or for the machine), start in
    /// the open demo network instead of refusing (`--demo`).
    pub demo: bool,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions {
            listen: Vec::new(),
            peers: Vec::new(),
            mdns: true,
            role: Role::Member,
            max_peers: node::DEFAULT_MAX_PEERS,
            raise: None,
            file_limits: node::FileLimits::default(),
            demo: false,
        }
    }
}

/// A node running for a data directory, with its control socket.
pub struct Running {
    pub node: NodeHandle,
    /// Every event from the start (listening addresses, first peers).
    pub events: broadcast::Receiver<NodeEvent>,
    pub control: ControlServer,
    pub network_key: NetworkKey,
    /// The default port, claimed on this machine while the node runs.
    _port_claim: Option<crate::platform::PortClaim>,
}

/// All interfaces on [`DEFAULT_PORT`]; if another program or another user's node on this
/// machine (a terminal server) holds it, any free port, which still works with mDNS. The
/// claim (see [`crate::platform::claim_port`]) must be held while the node runs.
pub fn default_listen() -> (Multiaddr, Option<crate::platform::PortClaim>) {
    let claim = crate::platform::claim_port(DEFAULT_PORT)
        .filter(|_| std::net::TcpListener::bind(("0.0.0.0", DEFAULT_PORT)).is_ok());
    let port = if claim.is_some() { DEFAULT_PORT } else { 0 };
    let addr = Multiaddr::empty()
        .with(libp2p::multiaddr::Protocol::Ip4(
            std::net::Ipv4Addr::UNSPECIFIED,
        ))
        .with(libp2p::multiaddr::Protocol::Tcp(port));
    (addr, claim)
}

pub fn load_identity(dir: &DataDir) -> Result<Identity, LaunchError> {
    let path = dir.identity();
    if !path.exists() {
        return Err(LaunchError::NoIdentity {
            dir: dir.root().display().to_string(),
        });
    }
    Ok(Identity::load(&path)?)
}

/// The data directory's network key; else the one the administrator installed for the
/// machine ([`machine_network_key`]); without either an error: the demo network only
/// when asked for ([`load_network_key_or_demo`], `flurfunk network demo`), never because
/// a file is missing. An unreadable or malformed file is an error too.
pub fn load_network_key(dir: &DataDir) -> Result<NetworkKey, LaunchError> {
    load_network_key_or_demo(dir, false)
}

/// [`load_network_key`], with the demo network when there is no key and `demo` is asked.
pub fn load_network_key_or_demo(dir: &DataDir, demo: bool) -> Result<NetworkKey, LaunchError> {
    let machine = super::machine_policy::MachinePolicy::load()?;
    if machine.lock_network {
        // Only the machine's key, from the installed program's folder: a user's own key
        // file (another network), or one beside a copy of the program, is ignored.
        let Some(path) = crate::platform::installed_network_key() else {
            return Err(LaunchError::LockedWithoutKey {
                source_name: machine.source.unwrap_or_default(),
            });
        };
        if dir.network_key().exists() {
            tracing::warn!(
                file = %dir.network_key().display(),
                "ignoring this user's own network key: IT locked the machine to its network"
            );
        }
        return Ok(NetworkKey::load(&path)?);
    }
    let path = dir.network_key();
    if path.exists() {
        Ok(NetworkKey::load(&path)?)
    } else if let Some(machine) = machine_network_key() {
        Ok(NetworkKey::load(&machine)?)
    } else if demo {
        Ok(NetworkKey::demo())
    } else {
        Err(LaunchError::NoNetworkKey {
            dir: dir.root().display().to_string(),
        })
    }
}

/// Whether a network key is there to start with (the data directory's or the machine's;
/// only the machine's where IT locked the machine to it).
pub fn has_network_key(dir: &DataDir) -> bool {
    let locked = super::machine_policy::MachinePolicy::load().is_ok_and(|m| m.lock_network);
    if locked {
        return crate::platform::installed_network_key().is_some();
    }
    dir.network_key().exists() || machine_network_key().is_some()
}

/// A relay's certificate in `dir`, checked against the network and the relay's own id: a
/// relay of a managed network without a valid one is an error, not a relay that silently
/// gets nothing. `None` in an unmanaged network (and for members).
pub fn relay_certificate(
    dir: &DataDir,
    identity: &Identity,
    network_key: &NetworkKey,
    role: Role,
) -> Result<Option<crate::wire::RelayCertificate>, LaunchError> {
    let Some(admin) = network_key.admin() else {
        return Ok(None);
    };
    if role != Role::Relay {
        return Ok(None);
    }
    let path = dir.relay_certificate();
    let refused = |reason: String| LaunchError::RelayCertificate {
        path: path.display().to_string(),
        reason,
    };
    let read = std::fs::File::open(&path).and_then(|f| {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, 4097), &mut bytes)?;
        Ok(bytes)
    });
    let text = match read {
        Ok(bytes) if bytes.len() <= 4096 => {
            String::from_utf8(bytes).map_err(|_| refused("not a certificate file".into()))?
        }
        Ok(_) => return Err(refused("not a certificate file".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LaunchError::NoRelayCertificate {
                user: identity.user_id().to_string(),
            });
        }
        Err(e) => return Err(refused(e.to_string())),
    };
    let certificate =
        crate::wire::RelayCertificate::from_text(&text).map_err(|e| refused(e.to_string()))?;
    certificate
        .check(&admin, &identity.user_id(), crate::node::now_ms())
        .map_err(|e| refused(e.to_string()))?;
    Ok(Some(certificate))
}

/// The machine-wide network key file, if an administrator installed one (next to the
/// installed `flurfunk.exe`, `/etc/flurfunk/network.key`).
pub fn machine_network_key() -> Option<std::path::PathBuf> {
    crate::platform::machine_network_key()
}

/// Create the data directory with a new identity unless it has one; returns the identity.
pub fn ensure_identity(dir: &DataDir, name: &str) -> Result<Identity, LaunchError> {
    dir.create().map_err(|source| LaunchError::DataDir {
        dir: dir.root().display().to_string(),
        source,
    })?;
    if dir.identity().exists() {
        return load_identity(dir);
    }
    let identity = Identity::generate(&mut rand::rngs::OsRng, name)?;
    identity.save_new(&dir.identity())?;
    Ok(identity)
}

/// Open the store, start the node and serve the control socket.
pub async fn launch(dir: &DataDir, options: LaunchOptions) -> Result<Running, LaunchError> {
    let machine = super::machine_policy::MachinePolicy::load()?;
    if options.demo {
        machine.check_unlocked("The demo network")?;
    }
    let identity = load_identity(dir)?;
    let network_key = load_network_key_or_demo(dir, options.demo)?;
    let relay_certificate = relay_certificate(dir, &identity, &network_key, options.role)?;
    let (listen, port_claim) = if options.listen.is_empty() {
        let (addr, claim) = default_listen();
        (vec![addr], claim)
    } else {
        (options.listen, None)
    };
    let store = SledStore::open(&dir.database())?;
    let config = NodeConfig {
        listen,
        peers: options.peers,
        mdns: options.mdns,
        role: options.role,
        network_key,
        // Replaced at the end of a rotation, unless IT locked the machine to its key.
        network_key_path: (!machine.lock_network).then(|| dir.network_key()),
        anti_entropy_interval_ms: node::DEFAULT_ANTI_ENTROPY_MS,
        max_peers: options.max_peers,
        identity_path: Some(dir.identity()),
        files_dir: Some(dir.files()),
        file_limits: options.file_limits,
        relay_certificate,
        machine_policy: machine.policy,
    };
    let (node, events) = node::start(identity, Box::new(store), config).await?;
    let control = match control::serve(dir, node.clone(), options.raise).await {
        Ok(c) => c,
        Err(e) => {
            let _ = node.shutdown().await;
            return Err(e.into());
        }
    };
    Ok(Running {
        node,
        events,
        control,
        network_key,
        _port_claim: port_claim,
    })
}

/// Resolves on Ctrl+C (SIGINT); on Unix also SIGTERM (systemd's stop); on Windows also
/// Ctrl+Break and the console window closing. Log-off and shutdown events are asked for
/// too, but Windows does not deliver them to a program that loads user32: that notice
/// comes through [`crate::platform::on_session_end`].
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(windows)]
    {
        use tokio::signal::windows::{ctrl_break, ctrl_close, ctrl_logoff, ctrl_shutdown};
        let (Ok(mut brk), Ok(mut close), Ok(mut logoff), Ok(mut shutdown)) =
            (ctrl_break(), ctrl_close(), ctrl_logoff(), ctrl_shutdown())
        else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = brk.recv() => {}
            _ = close.recv() => {}
            _ = logoff.recv() => {}
            _ = shutdown.recv() => {}
        }
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
