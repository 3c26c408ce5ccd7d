//! Helpers for in-process node tests: real nodes on 127.0.0.1 with mDNS off, each with its
//! own sled database in a temporary directory.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use flurfunk::identity::Identity;
use flurfunk::net::NetworkKey;
use flurfunk::node::{self, MessageItem, NodeConfig, NodeHandle};
use flurfunk::store::SledStore;
use flurfunk::wire::{ConversationId, Role};
use libp2p::Multiaddr;

/// The `flurfunk` binary of this build.
pub const BIN: &str = env!("CARGO_BIN_EXE_flurfunk");

/// Run `flurfunk --data-dir DIR ARGS...`: (success, stdout, stderr).
pub fn flurfunk(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The user id `flurfunk whoami` prints for a data directory.
pub fn user_id(dir: &std::path::Path) -> String {
    let (_, out, _) = flurfunk(dir, &["whoami"]);
    out.lines()
        .find_map(|l| l.strip_prefix("user id:"))
        .unwrap()
        .trim()
        .to_string()
}

pub struct TestNode {
    pub handle: NodeHandle,
    pub dir: tempfile::TempDir,
    pub addr: Multiaddr,
    pub name: String,
}

pub fn test_key() -> NetworkKey {
    NetworkKey::parse(
        "/key/swarm/psk/1.0.0/\n/base16/\n\
         0101010101010101010101010101010101010101010101010101010101010101\n",
        "test",
    )
    .unwrap()
}

fn key_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("identity.key")
}

pub async fn spawn(name: &str, peers: &[&TestNode]) -> TestNode {
    spawn_with(name, peers, test_key(), Role::Member).await
}

pub async fn spawn_with(name: &str, peers: &[&TestNode], key: NetworkKey, role: Role) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::generate(&mut rand::rngs::OsRng, name).unwrap();
    identity.save_new(&key_path(&dir)).unwrap();
    let peer_addrs = peers.iter().map(|p| p.addr.clone()).collect();
    start_in(
        dir,
        name,
        peer_addrs,
        key,
        role,
        node::DEFAULT_FILES_QUOTA,
        None,
    )
    .await
}

/// A member node that dials `peers` (addresses with `/p2p/`) at start.
pub async fn spawn_dialling(name: &str, peers: Vec<Multiaddr>) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::generate(&mut rand::rngs::OsRng, name).unwrap();
    identity.save_new(&key_path(&dir)).unwrap();
    start_in(
        dir,
        name,
        peers,
        test_key(),
        Role::Member,
        node::DEFAULT_FILES_QUOTA,
        None,
    )
    .await
}

/// A member node in `dir` (prepared by the caller, e.g. a small file system mounted at
/// `dir/files`).
pub async fn spawn_in(dir: tempfile::TempDir, name: &str, peers: &[&TestNode]) -> TestNode {
    let identity = Identity::generate(&mut rand::rngs::OsRng, name).unwrap();
    identity.save_new(&key_path(&dir)).unwrap();
    let peer_addrs = peers.iter().map(|p| p.addr.clone()).collect();
    start_in(
        dir,
        name,
        peer_addrs,
        test_key(),
        Role::Member,
        node::DEFAULT_FILES_QUOTA,
        None,
    )
    .await
}

/// A relay of a managed network (`key` names `admin`'s public key), certified by it.
pub async fn spawn_certified_relay(
    name: &str,
    peers: &[&TestNode],
    key: NetworkKey,
    admin: &flurfunk::admin::AdminKey,
) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::generate(&mut rand::rngs::OsRng, name).unwrap();
    identity.save_new(&key_path(&dir)).unwrap();
    let certificate = admin
        .certify_relay(identity.user_id(), node::now_ms(), 24 * 3600 * 1000)
        .unwrap();
    let peer_addrs = peers.iter().map(|p| p.addr.clone()).collect();
    start_in(
        dir,
        name,
        peer_addrs,
        key,
        Role::Relay,
        node::DEFAULT_FILES_QUOTA,
        Some(certificate),
    )
    .await
}

/// A member node that keeps at most `quota` bytes of files.
pub async fn spawn_with_quota(name: &str, peers: &[&TestNode], quota: u64) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::generate(&mut rand::rngs::OsRng, name).unwrap();
    identity.save_new(&key_path(&dir)).unwrap();
    let peer_addrs = peers.iter().map(|p| p.addr.clone()).collect();
    start_in(dir, name, peer_addrs, test_key(), Role::Member, quota, None).await
}

async fn start_in(
    dir: tempfile::TempDir,
    name: &str,
    peers: Vec<Multiaddr>,
    key: NetworkKey,
    role: Role,
    files_quota: u64,
    relay_certificate: Option<flurfunk::wire::RelayCertificate>,
) -> TestNode {
    let identity = Identity::load(&key_path(&dir)).unwrap();
    let store = SledStore::open(&dir.path().join("db")).unwrap();
    let config = NodeConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        peers,
        mdns: false,
        role,
        network_key: key,
        network_key_path: Some(dir.path().join("network.key")),
        anti_entropy_interval_ms: 1_000,
        max_peers: node::DEFAULT_MAX_PEERS,
        identity_path: Some(key_path(&dir)),
        files_dir: Some(dir.path().join("files")),
        file_limits: node::FileLimits {
            quota_bytes: files_quota,
            ..node::FileLimits::default()
        },
        relay_certificate,
        machine_policy: flurfunk::wire::Policy::default(),
    };
    let (handle, _) = node::start(identity, Box::new(store), config)
        .await
        .unwrap();
    let addr = eventually("listening", || async {
        handle.listen_addrs().await.unwrap().first().cloned()
    })
    .await;
    let addr = addr.with(libp2p::multiaddr::Protocol::P2p(handle.peer_id()));
    TestNode {
        handle,
        dir,
        addr,
        name: name.to_string(),
    }
}

impl TestNode {
    pub async fn stop(self) -> StoppedNode {
        // `shutdown` returns once the store is closed: the directory can be reopened at once.
        self.handle.shutdown().await.unwrap();
        StoppedNode {
            dir: self.dir,
            name: self.name,
        }
    }

    pub fn user(&self) -> flurfunk::identity::UserId {
        self.handle.user_id()
    }

    pub async fn texts(&self, conv: ConversationId) -> Vec<String> {
        self.handle
            .messages(conv, None, 100_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|m: &MessageItem| m.notice.is_none())
            .map(|m: MessageItem| m.text)
            .collect()
    }

    /// Wait until this node knows `user`'s profile.
    pub async fn knows_user(&self, user: flurfunk::identity::UserId) {
        eventually("profile known", || async {
            let known = self.handle.profiles().await.unwrap();
            known.iter().any(|p| p.user_id == user).then_some(())
        })
        .await
    }

    /// Wait until this node knows the profiles of all `others`.
    pub async fn knows(&self, others: &[&TestNode]) {
        let want: Vec<_> = others.iter().map(|o| o.user()).collect();
        eventually("profiles known", || async {
            let known = self.handle.profiles().await.unwrap();
            want.iter()
                .all(|u| known.iter().any(|p| p.user_id == *u))
                .then_some(())
        })
        .await
    }
}

pub struct StoppedNode {
    pub dir: tempfile::TempDir,
    pub name: String,
}

impl StoppedNode {
    pub async fn start(self, peers: &[&TestNode]) -> TestNode {
        self.start_with_quota(peers, node::DEFAULT_FILES_QUOTA)
            .await
    }

    pub async fn start_with_quota(self, peers: &[&TestNode], quota: u64) -> TestNode {
        self.start_as_member(peers, test_key(), quota).await
    }

    /// Start again in the network of `key` (a managed network's members).
    pub async fn start_with_key(self, peers: &[&TestNode], key: NetworkKey) -> TestNode {
        self.start_as_member(peers, key, node::DEFAULT_FILES_QUOTA)
            .await
    }

    async fn start_as_member(self, peers: &[&TestNode], key: NetworkKey, quota: u64) -> TestNode {
        let peer_addrs = peers.iter().map(|p| p.addr.clone()).collect();
        start_in(
            self.dir,
            &self.name,
            peer_addrs,
            key,
            Role::Member,
            quota,
            None,
        )
        .await
    }
}

/// Poll `f` until it returns `Some`, for at most 20 s.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Wait until `node` holds a message with text `text` in `conv` (among others).
pub async fn wait_text(node: &TestNode, conv: ConversationId, text: &str) {
    let label = format!("{} has {text:?}", node.name);
    eventually(&label, || async {
        node.texts(conv)
            .await
            .iter()
            .any(|t| t == text)
            .then_some(())
    })
    .await
}

/// Wait until `node` holds exactly `want` (in this order) in `conv`.
pub async fn wait_texts(node: &TestNode, conv: ConversationId, want: &[&str]) {
    let label = format!("{} has {want:?}", node.name);
    eventually(&label, || async {
        let have = node.texts(conv).await;
        (have == want).then_some(())
    })
    .await
}
