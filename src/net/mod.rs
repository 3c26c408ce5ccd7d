//! The libp2p side of a node: transport (TCP + pnet + Noise + yamux), the network key,
//! the behaviours, and the frames nodes exchange.
//!
//! Nothing in here decides what to send; that is the sync engine's job, driven by
//! [`crate::node`]. This module must never touch the store or decrypt anything.

pub mod blob;
mod frame;
pub mod pnet_ring;
mod streams;

use std::path::Path;
use std::time::Duration;

use blake2::{Blake2b512, Digest};
use libp2p::core::transport::Transport as _;
use libp2p::core::transport::timeout::TransportTimeout;
use libp2p::core::upgrade::Version;
use libp2p::pnet::PreSharedKey;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{Swarm, connection_limits, mdns, noise, ping, tcp, yamux};

use crate::identity::Identity;

pub use frame::{MAX_ADDRS_PER_PEER, MAX_PEER_RECORDS, NetFrame, PeerRecord};
pub use streams::{
    FramePermit, MAX_NET_FRAME_BYTES, NetIo, RETIRED_MS, SYNC_PROTOCOL, Writer, spawn_inbound,
    spawn_writer,
};

/// Name the demo network's key is derived from. Anyone can derive it: the demo network
/// keeps strangers with a different key out, not attackers.
pub const DEMO_NETWORK_NAME: &str = "flurfunk demo network v1";

/// Established connections per peer: one each way when both dial at once, plus one spare.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 3;
/// Half-open incoming connections: enough for a whole office starting at once, small enough
/// that a scanner cannot exhaust file descriptors.
pub const MAX_PENDING_INCOMING: u32 = 64;
/// Established connections beyond the node's `max_peers`: room to take a wanted link
/// before an unwanted one is trimmed.
pub const ESTABLISHED_HEADROOM: u32 = 8;

/// Connections a node accepts in all: its own `max_peers` links, as many again from
/// peers whose plans want it (ring neighbours and shortcuts are not symmetric, and two
/// peers dialling each other at once hold two connections), plus headroom. At exactly
/// `max_peers + headroom`, a well-linked node refused everyone else, so a 1:1 message
/// to it waited for ever (the office lost two deliveries that way under overload).
pub fn max_established(max_peers: u32) -> u32 {
    max_peers
        .saturating_mul(2)
        .saturating_add(ESTABLISHED_HEADROOM)
}
/// mDNS: every node answers every query, and a multicast answer resets every listener's
/// query timer, so the segment sees about one query (and n answers) per interval. Nodes
/// pass addresses on to their peers anyway; mDNS is for finding the first ones.
pub const MDNS_QUERY_INTERVAL: Duration = Duration::from_secs(15 * 60);
pub const MDNS_TTL: Duration = Duration::from_secs(60 * 60);
/// Pings detect a dead link (cable pulled, host frozen) long before TCP would: within
/// this interval plus libp2p's 20 s timeout. At 5 s they cost an office of 100 nodes about
/// 5 % of its CPU. 15 s once made the Wine test's store-and-forward after a hard kill miss
/// its 60 s: the survivor kept writing into the connection the killed node left open
/// until a ping failed. A peer's newer connection now takes its stream at once (see
/// `node::event_loop`, `ConnectionEstablished`), so pings only find links that died with
/// nothing to replace them.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot read network key file {path}: {source}")]
    KeyFileRead {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a Flurfunk network key file ({reason})")]
    KeyFileFormat { path: String, reason: String },
    #[error("cannot write network key file {path}: {source}")]
    KeyFileWrite {
        path: String,
        source: std::io::Error,
    },
    #[error("network setup failed: {0}")]
    Setup(String),
}

/// The pre-shared key that admits a node to one Flurfunk network.
#[derive(Clone, Copy)]
pub struct NetworkKey {
    /// The file's key (in a managed network, not the key used on the wire: `wire_key`).
    key: [u8; 32],
    demo: bool,
    /// The admin's public key: a managed network (docs/PROTOCOL.md, "Administration").
    admin: Option<[u8; 32]>,
}

impl std::fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NetworkKey({})", self.fingerprint())
    }
}

impl NetworkKey {
    pub fn generate<R: rand::RngCore + rand::CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        NetworkKey {
            key: bytes,
            demo: false,
            admin: None,
        }
    }

    /// A key from its 32 bytes (a rotation's new key, `admin` kept), never the demo.
    pub fn from_bytes(key: [u8; 32], admin: Option<[u8; 32]>) -> Self {
        NetworkKey {
            key,
            demo: false,
            admin,
        }
    }

    /// The file's 32 bytes (what a rotation hands on).
    pub fn file_key(&self) -> [u8; 32] {
        self.key
    }

    /// The same key, managed by the admin key whose public half is `admin`.
    pub fn with_admin(self, admin: [u8; 32]) -> Self {
        NetworkKey {
            admin: Some(admin),
            ..self
        }
    }

    /// The admin's public key, in a managed network.
    pub fn admin(&self) -> Option<[u8; 32]> {
        self.admin
    }

    /// The clearly labelled demo network every unconfigured node joins.
    pub fn demo() -> Self {
        let digest = Blake2b512::digest(DEMO_NETWORK_NAME.as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&digest[..32]);
        NetworkKey {
            key: bytes,
            demo: true,
            admin: None,
        }
    }

    pub fn is_demo(&self) -> bool {
        self.demo
    }

    /// Short public fingerprint of the key used on the wire: tells networks apart
    /// without revealing the key.
    pub fn fingerprint(&self) -> String {
        self.psk().fingerprint().to_string()
    }

    /// The key used on the wire. A managed network's is derived from the file's key and
    /// the admin's public key, so a copy of the file without its admin line (or a build
    /// that ignores it) is another network and connects to nobody, instead of joining as
    /// "unmanaged", where any node may pose as a relay.
    pub fn psk(&self) -> PreSharedKey {
        PreSharedKey::new(self.wire_key())
    }

    /// The bytes of `psk`.
    pub fn wire_key(&self) -> [u8; 32] {
        match self.admin {
            None => self.key,
            Some(admin) => {
                let key_text = PreSharedKey::new(self.key).to_string();
                let mut input = key_text.into_bytes();
                input.extend_from_slice(&admin);
                let digest = crate::crypto::labelled(crate::crypto::LABEL_MANAGED_NETWORK, &input);
                let digest = Blake2b512::digest(&digest);
                let mut bytes = [0u8; 32];
                bytes.copy_from_slice(&digest[..32]);
                bytes
            }
        }
    }

    /// The standard `swarm.key` text (`/key/swarm/psk/1.0.0/`, base16), as IPFS tools use,
    /// and in a managed network a fourth line with the admin's public key (which those
    /// tools and older Flurfunk builds ignore).
    pub fn to_file_text(&self) -> String {
        match self.admin {
            Some(admin) => format!(
                "{}{ADMIN_LINE}{}\n",
                PreSharedKey::new(self.key),
                hex::encode(admin)
            ),
            None => format!("{}\n", PreSharedKey::new(self.key)),
        }
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, NetError> {
        let format = |reason: String| NetError::KeyFileFormat {
            path: path.to_string(),
            reason,
        };
        let text = text.trim();
        let psk: PreSharedKey = text.parse().map_err(|e| format(format!("{e}")))?;
        let demo = psk.fingerprint().to_string() == NetworkKey::demo().fingerprint();
        // A fourth line, if any, must be the admin's key: never "unmanaged" by mistake.
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let admin = match lines.get(3) {
            None => None,
            Some(line) if lines.len() == 4 => {
                let hex_key = line
                    .strip_prefix(ADMIN_LINE)
                    .ok_or_else(|| format(format!("the fourth line is not {ADMIN_LINE}<key>")))?;
                let mut admin = [0u8; 32];
                hex::decode_to_slice(hex_key, &mut admin)
                    .map_err(|_| format("the admin key is not 64 hex digits".into()))?;
                if ed25519_dalek::VerifyingKey::from_bytes(&admin).is_err() {
                    return Err(format("the admin key is not a valid Ed25519 key".into()));
                }
                Some(admin)
            }
            _ => return Err(format("more lines than a network key has".into())),
        };
        if demo && admin.is_some() {
            return Err(format("the demo network has no admin".into()));
        }
        // libp2p keeps the bytes to itself; its text form ends with them in hex.
        let mut key = [0u8; 32];
        let hex_key = psk.to_string();
        hex::decode_to_slice(hex_key.lines().last().unwrap_or_default().trim(), &mut key)
            .map_err(|_| format("the key is not 64 hex digits".into()))?;
        Ok(NetworkKey { key, demo, admin })
    }

    /// Read a key file: one handed out (plain text) or a data directory's copy (protected
    /// at rest on Windows). A file far larger than a key is refused unread.
    pub fn load(path: &Path) -> Result<Self, NetError> {
        use std::io::Read;
        let read_error = |source| NetError::KeyFileRead {
            path: path.display().to_string(),
            source,
        };
        let mut stored = Vec::new();
        std::fs::File::open(path)
            .map_err(read_error)?
            .take(KEY_FILE_MAX_BYTES + 1)
            .read_to_end(&mut stored)
            .map_err(read_error)?;
        let format_error = |reason: String| NetError::KeyFileFormat {
            path: path.display().to_string(),
            reason,
        };
        if stored.len() as u64 > KEY_FILE_MAX_BYTES {
            return Err(format_error("far too large for a network key".into()));
        }
        let bytes = crate::platform::unprotect(&stored).map_err(read_error)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| format_error("not a text file (a network key is text)".into()))?;
        Self::parse(text, &path.display().to_string())
    }

    /// Write a key file to hand to colleagues (plain text, readable by its owner only);
    /// never overwrites.
    pub fn save_new(&self, path: &Path) -> Result<(), NetError> {
        self.save(path, self.to_file_text().into_bytes(), false)
    }

    /// Write the key into a data directory, replacing an older one (`network join`);
    /// protected at rest for the current user (DPAPI on Windows).
    pub fn save_replace(&self, path: &Path) -> Result<(), NetError> {
        let bytes = crate::platform::protect(self.to_file_text().as_bytes()).map_err(|source| {
            NetError::KeyFileWrite {
                path: path.display().to_string(),
                source,
            }
        })?;
        self.save(path, bytes, true)
    }

    fn save(&self, path: &Path, bytes: Vec<u8>, replace: bool) -> Result<(), NetError> {
        crate::identity::write_private_file(path, &bytes, replace).map_err(|source| {
            NetError::KeyFileWrite {
                path: path.display().to_string(),
                source,
            }
        })
    }
}

/// The fourth line of a managed network's key file, before the admin's public key.
const ADMIN_LINE: &str = "/flurfunk/admin/ed25519/";

/// A network key file is ~100 bytes; anything beyond this is not one.
const KEY_FILE_MAX_BYTES: u64 = 64 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub limits: connection_limits::Behaviour,
    pub sync: libp2p_stream::Behaviour,
    pub ping: ping::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Build the swarm: TCP, then the pnet handshake with the network key (a node without the
/// key fails here and sees nothing; during a rotation `keys` holds two), then Noise
/// (authenticates the user id), then yamux. QUIC is never enabled: pnet cannot cover it.
pub fn build_swarm(
    identity: &Identity,
    keys: pnet_ring::KeyRing,
    mdns_enabled: bool,
    idle_timeout: Duration,
    max_peers: u32,
) -> Result<Swarm<Behaviour>, NetError> {
    let keypair = identity.libp2p_keypair();
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(move |kp| -> Result<_, BoxError> {
            let noise = noise::Config::new(kp)?;
            let admit = keys.clone();
            let upgraded = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                .and_then(move |socket, point| {
                    pnet_ring::handshake(socket, point, keys, crate::node::now_ms)
                })
                .upgrade(Version::V1Lazy)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                // During a rotation, a connection made with the old key is taken only
                // from a colleague the new key was sealed to (Noise told who it is);
                // others never reach the swarm.
                .and_then(move |(peer, muxer), point| {
                    let admitted = admit.admits(&point, &peer);
                    async move {
                        if admitted {
                            Ok((peer, muxer))
                        } else {
                            Err(pnet_ring::RingError::NotSealed)
                        }
                    }
                });
            Ok(TransportTimeout::new(upgraded, Duration::from_secs(20)))
        })
        .map_err(|e| setup(&e))?
        .with_behaviour(|kp| -> Result<Behaviour, BoxError> {
            let peer_id = kp.public().to_peer_id();
            let limits = connection_limits::ConnectionLimits::default()
                .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
                .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
                .with_max_established(Some(max_established(max_peers)));
            let sync = libp2p_stream::Behaviour::new();
            let mdns = if mdns_enabled {
                Some(mdns::tokio::Behaviour::new(
                    mdns::Config {
                        ttl: MDNS_TTL,
                        query_interval: MDNS_QUERY_INTERVAL,
                        enable_ipv6: false,
                    },
                    peer_id,
                )?)
            } else {
                None
            };
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                sync,
                ping: ping::Behaviour::new(ping::Config::new().with_interval(PING_INTERVAL)),
                mdns: Toggle::from(mdns),
            })
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle_timeout))
        .build();
    Ok(swarm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_roundtrip_and_demo_label() {
        let key = NetworkKey::generate(&mut rand::rngs::OsRng);
        let back = NetworkKey::parse(&key.to_file_text(), "x").unwrap();
        assert_eq!(back.fingerprint(), key.fingerprint());
        assert!(!back.is_demo());
        let demo = NetworkKey::parse(&NetworkKey::demo().to_file_text(), "x").unwrap();
        assert!(demo.is_demo());
        assert_ne!(demo.fingerprint(), key.fingerprint());
    }

    #[test]
    fn a_managed_key_file_carries_the_admin_key_and_a_bad_fourth_line_is_an_error() {
        let admin = crate::admin::AdminKey::generate(&mut rand::rngs::OsRng).public();
        let key = NetworkKey::generate(&mut rand::rngs::OsRng).with_admin(admin);
        let text = key.to_file_text();
        assert_eq!(text.lines().count(), 4);
        let back = NetworkKey::parse(&text, "x").unwrap();
        assert_eq!(back.admin(), Some(admin));
        assert_eq!(back.fingerprint(), key.fingerprint());
        // libp2p's own parser (older builds) reads the file's PSK and ignores the line:
        // that is another network on the wire, so such a node (or a copy of the file
        // without the admin line) connects to nobody rather than joining unmanaged.
        let psk: PreSharedKey = text.parse().unwrap();
        assert_ne!(psk.fingerprint().to_string(), key.fingerprint());
        let stripped: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
        let stripped = NetworkKey::parse(&stripped, "x").unwrap();
        assert_eq!(stripped.admin(), None);
        assert_ne!(stripped.fingerprint(), key.fingerprint());
        assert_eq!(stripped.fingerprint(), psk.fingerprint().to_string());
        let psk_lines: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
        for bad in [
            format!("{psk_lines}/flurfunk/admin/ed25519/1234\n"),
            format!("{psk_lines}something else\n"),
            format!("{psk_lines}{}\nmore\n", text.lines().nth(3).unwrap()),
            // y = 2 is not on the curve (x² would be a non-square).
            format!("{psk_lines}/flurfunk/admin/ed25519/02{}\n", "00".repeat(31)),
        ] {
            let err = NetworkKey::parse(&bad, "net.key").unwrap_err().to_string();
            assert!(
                err.contains("net.key is not a Flurfunk network key"),
                "{err}"
            );
        }
        let demo = NetworkKey::demo().with_admin(admin).to_file_text();
        assert!(NetworkKey::parse(&demo, "x").is_err());
    }

    #[test]
    fn bad_key_file_is_a_clear_error() {
        let err = NetworkKey::parse("hello", "net.key").unwrap_err();
        assert!(
            err.to_string()
                .contains("net.key is not a Flurfunk network key")
        );
    }
}
