//! A running node: one tokio task owns the libp2p swarm and the sync engine; the rest of
//! the program (CLI, control socket, desktop app) holds a cheap, cloneable [`NodeHandle`].
//!
//! Commands go in over a bounded channel and are answered through a oneshot once their
//! effects are durable; events come out through a bounded broadcast channel. Nothing here
//! blocks the caller on the network, and nothing here parses user input (that is `app`).

mod event_loop;
mod files;
mod peers;
mod views;

use std::sync::Arc;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::files::FileError;
use crate::identity::{Identity, Profile, UserId};
use crate::net::NetworkKey;
use crate::store::DynStore;
use crate::sync::SyncError;
use crate::wire::{ConversationId, EventId, Role};

pub use event_loop::{Core, now_ms};
pub use files::{DEFAULT_AUTO_DOWNLOAD_BYTES, DEFAULT_FILES_QUOTA, DownloadView, FileLimits};
pub use views::{
    ConversationView, DirectoryView, FileItem, GroupRetentionView, KeyRotationStatus, LoadStats,
    MemberView, MessageItem, NodeEvent, NodeStatus, OrgGroupView, PeerView, QuoteItem,
    ReactionItem, RecipientView, RevokedView, RotationView, SearchItem, StatementView,
    held_statement, statement_kind_name,
};

/// Commands waiting for the node task. A caller that outruns the node waits (back-pressure)
/// instead of growing a queue.
pub const COMMAND_QUEUE: usize = 256;
/// Events buffered per subscriber; a subscriber that falls further behind misses events
/// (and is told so by the broadcast channel) instead of slowing the node down.
pub const EVENT_QUEUE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("unknown user {0}: no profile seen yet (has their node been online?)")]
    UnknownUser(String),
    #[error("the node has stopped")]
    Stopped,
    #[error("saving failed: {0}")]
    Commit(String),
    #[error("{0}")]
    Other(String),
}

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub listen: Vec<Multiaddr>,
    /// Peers dialled explicitly (other subnets, depots): kept and redialled forever.
    pub peers: Vec<Multiaddr>,
    pub mdns: bool,
    pub role: Role,
    pub network_key: NetworkKey,
    /// Where the data directory's network key file is: a rotation's new key replaces it
    /// at the end of the overlap. `None`: not kept (tests; a machine locked to IT's key,
    /// where the key in the store is used on each start).
    pub network_key_path: Option<std::path::PathBuf>,
    pub anti_entropy_interval_ms: u64,
    /// Connections kept at most (beyond admin-given `peers`); the engine chooses which
    /// (`sync::LinkPlan`) so that every conversation's members stay connected.
    pub max_peers: usize,
    /// Where the identity file lives, so a name change is persisted; `None` in tests.
    pub identity_path: Option<std::path::PathBuf>,
    /// Where attachments are kept (`files::BlobStore`); `None`: no files sent, fetched or
    /// served (tools that only read or queue).
    pub files_dir: Option<std::path::PathBuf>,
    /// The largest file sent, the largest fetched by itself, the quota.
    pub file_limits: FileLimits,
    /// A relay's certificate from the network's admin key (managed networks).
    pub relay_certificate: Option<crate::wire::RelayCertificate>,
    /// The machine's settings (`app::machine_policy`), where the network's policy
    /// statement sets nothing.
    pub machine_policy: crate::wire::Policy,
}

impl NodeConfig {
    /// A node that neither listens nor discovers: for tools that only read or queue.
    pub fn offline(network_key: NetworkKey) -> Self {
        NodeConfig {
            listen: Vec::new(),
            peers: Vec::new(),
            mdns: false,
            role: Role::Member,
            network_key,
            network_key_path: None,
            anti_entropy_interval_ms: DEFAULT_ANTI_ENTROPY_MS,
            max_peers: DEFAULT_MAX_PEERS,
            identity_path: None,
            files_dir: None,
            file_limits: FileLimits::default(),
            relay_certificate: None,
            machine_policy: crate::wire::Policy::default(),
        }
    }
}

/// Digests to a few peers this often even without news: repairs frames lost when a link
/// broke mid-request, at the cost of one small frame per chosen peer.
pub const DEFAULT_ANTI_ENTROPY_MS: u64 = 10_000;
/// Connections a node keeps by default. The engine's link plan needs about six per group
/// conversation and one per active 1:1 chat; 30 leaves room for a few groups and chats.
pub const DEFAULT_MAX_PEERS: usize = 30;

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&mut Core, u64) -> Reply + Send>;

enum Command {
    Run(Job),
    Shutdown(oneshot::Sender<()>),
}

/// The cheap, cloneable way to talk to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<NodeEvent>,
    user_id: UserId,
    peer_id: PeerId,
    network: Arc<NetworkKey>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeHandle({})", self.user_id.short())
    }
}

/// Start a node on the current tokio runtime. The receiver gets every event from the very
/// start (listening addresses, first peers); later subscribers use [`NodeHandle::subscribe`].
pub async fn start(
    identity: Identity,
    store: DynStore,
    config: NodeConfig,
) -> Result<(NodeHandle, broadcast::Receiver<NodeEvent>), NodeError> {
    let user_id = identity.user_id();
    let peer_id = identity.libp2p_keypair().public().to_peer_id();
    let network = Arc::new(config.network_key);
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (events, first_subscriber) = broadcast::channel(EVENT_QUEUE);
    let core = Core::new(identity, store, config, events.clone())?;
    tokio::spawn(event_loop::run(core, command_rx));
    let handle = NodeHandle {
        commands,
        events,
        user_id,
        peer_id,
        network,
    };
    Ok((handle, first_subscriber))
}

impl NodeHandle {
    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    pub fn network_key(&self) -> NetworkKey {
        *self.network
    }

    /// A new stream of events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// Run `f` on the node task; the answer comes once everything it stored is durable.
    async fn run<R, F>(&self, f: F) -> Result<R, NodeError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Core, u64) -> Result<R, NodeError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |core, now_ms| {
            let result = f(core, now_ms);
            Box::new(move |committed: Result<(), String>| {
                let _ = tx.send(match (result, committed) {
                    (Ok(r), Ok(())) => Ok(r),
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(NodeError::Commit(e)),
                });
            })
        });
        self.commands
            .send(Command::Run(job))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        self.run(|core, _| Ok(core.status())).await
    }

    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NodeError> {
        self.run(|core, _| Ok(core.listen_addrs())).await
    }

    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NodeError> {
        self.run(move |core, now_ms| {
            core.add_explicit_peer(addr, now_ms);
            Ok(())
        })
        .await
    }

    pub async fn peers(&self) -> Result<Vec<PeerView>, NodeError> {
        self.run(|core, _| Ok(core.peer_views())).await
    }

    pub async fn profiles(&self) -> Result<Vec<Profile>, NodeError> {
        self.run(|core, _| Ok(core.engine.known_profiles())).await
    }

    pub async fn conversations(&self) -> Result<Vec<ConversationView>, NodeError> {
        self.run(|core, _| core.conversation_views()).await
    }

    pub async fn conversation(
        &self,
        conversation: ConversationId,
    ) -> Result<Option<ConversationView>, NodeError> {
        self.run(move |core, _| core.conversation_view(&conversation))
            .await
    }

    /// Up to `limit` messages before `before` (None: the newest), oldest first.
    pub async fn messages(
        &self,
        conversation: ConversationId,
        before: Option<crate::wire::OrderKey>,
        limit: usize,
    ) -> Result<Vec<MessageItem>, NodeError> {
        self.run(move |core, _| core.message_items(&conversation, before, limit))
            .await
    }

    /// Send a text; returns once it is durably saved (it then waits in the outbox until a
    /// member or relay has it).
    pub async fn send_text(
        &self,
        conversation: ConversationId,
        text: String,
    ) -> Result<EventId, NodeError> {
        self.run(move |core, now_ms| Ok(core.engine.send_text(now_ms, conversation, &text)?))
            .await
    }

    /// Send a text answering `reply_to` (None: a plain message) and calling `mentions`
    /// with @; returns once it is durably saved.
    pub async fn send_message(
        &self,
        conversation: ConversationId,
        text: String,
        reply_to: Option<EventId>,
        mentions: Vec<UserId>,
    ) -> Result<EventId, NodeError> {
        self.run(move |core, now_ms| {
            Ok(core
                .engine
                .send_message(now_ms, conversation, &text, reply_to, mentions)?)
        })
        .await
    }

    /// Replace the text (or caption) of an own message; shown as "edited" everywhere.
    pub async fn edit(
        &self,
        conversation: ConversationId,
        target: EventId,
        text: String,
        mentions: Vec<UserId>,
    ) -> Result<EventId, NodeError> {
        self.run(move |core, now_ms| {
            Ok(core
                .engine
                .edit(now_ms, conversation, target, &text, mentions)?)
        })
        .await
    }

    /// Delete a message for everyone (own ones; others' as a group admin): its text,
    /// edits, reactions and file are purged here and on every node that learns of it.
    pub async fn delete_for_everyone(
        &self,
        conversation: ConversationId,
        target: EventId,
    ) -> Result<EventId, NodeError> {
        self.run(move |core, now_ms| {
            Ok(core
                .engine
                .delete_for_everyone(now_ms, conversation, target)?)
        })
        .await
    }

    /// Delete a message for this user only: it no longer shows here; the others keep it.
    /// A file someone else sent goes from this computer too.
    pub async fn delete_for_me(
        &self,
        conversation: ConversationId,
        target: EventId,
    ) -> Result<(), NodeError> {
        self.run(move |core, _| Ok(core.engine.delete_for_me(conversation, target)?))
            .await
    }

    /// React with one emoji (empty: take the reaction back).
    pub async fn react(
        &self,
        conversation: ConversationId,
        target: EventId,
        emoji: String,
    ) -> Result<EventId, NodeError> {
        self.run(move |core, now_ms| Ok(core.engine.react(now_ms, conversation, target, &emoji)?))
            .await
    }

    /// Messages containing every word of `query` (prefixes; umlauts and case folded),
    /// newest first, in one conversation or all (`sync::MAX_SEARCH_SCAN` texts at most).
    pub async fn search(
        &self,
        query: String,
        only: Option<ConversationId>,
        limit: usize,
    ) -> Result<Vec<SearchItem>, NodeError> {
        self.run(move |core, _| core.search_items(&query, only, limit))
            .await
    }

    /// Every version of a message, oldest first: (wall clock ms, text).
    pub async fn versions(
        &self,
        conversation: ConversationId,
        target: EventId,
    ) -> Result<Vec<(u64, String)>, NodeError> {
        self.run(move |core, _| Ok(core.engine.versions(&conversation, &target)?))
            .await
    }

    /// Send the file at `path` (with `caption`, which may be empty): encrypted into the
    /// files directory on a blocking thread, then announced like a text. Files over
    /// `FileLimits::max_send_bytes` are refused. A picture gets a small preview in the
    /// announcement.
    pub async fn send_file(
        &self,
        conversation: ConversationId,
        path: std::path::PathBuf,
        caption: String,
    ) -> Result<EventId, NodeError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        let (store, limit) = self.file_store().await?;
        let picture = crate::files::picture::is_picture_name(&name);
        let (imported, image) = blocking(move || {
            let small = std::fs::metadata(&path)
                .is_ok_and(|m| m.len() <= crate::files::picture::MAX_PICTURE_BYTES);
            if picture && small {
                // Read once: the preview and the ciphertext come from the same bytes.
                let bytes = std::fs::read(&path)
                    .map_err(|e| FileError::io(format!("reading {}", path.display()), e))?;
                let image = crate::files::picture::describe(&bytes);
                Ok((store.import_bytes(&bytes, limit)?, image))
            } else {
                Ok((store.import(&path, limit)?, None))
            }
        })
        .await?;
        self.announce_file(conversation, name, imported, image, caption)
            .await
    }

    /// Send `bytes` as a file named `name` (a picture pasted from the clipboard).
    pub async fn send_file_bytes(
        &self,
        conversation: ConversationId,
        name: String,
        bytes: Vec<u8>,
        caption: String,
    ) -> Result<EventId, NodeError> {
        let (store, limit) = self.file_store().await?;
        let picture = crate::files::picture::is_picture_name(&name);
        let (imported, image) = blocking(move || {
            let image = picture
                .then(|| crate::files::picture::describe(&bytes))
                .flatten();
            Ok((store.import_bytes(&bytes, limit)?, image))
        })
        .await?;
        self.announce_file(conversation, name, imported, image, caption)
            .await
    }

    /// The node's files and the largest it sends.
    async fn file_store(&self) -> Result<(Arc<crate::files::blobs::BlobStore>, u64), NodeError> {
        self.run(|core, _| {
            let policy = core.engine.policy();
            if !policy.allows(crate::wire::FEATURE_FILES) {
                return Err(NodeError::Sync(SyncError::FeatureOff {
                    what: "sending files",
                }));
            }
            // The organisation's cap, if it set one, below the node's own.
            let cap = policy.max_file_bytes.unwrap_or(u64::MAX);
            core.files
                .as_ref()
                .map(|f| (f.store.clone(), f.limits.max_send_bytes.min(cap)))
                .ok_or_else(|| NodeError::Other("this node keeps no files".into()))
        })
        .await
    }

    /// The settings for files in force.
    pub async fn file_limits(&self) -> Result<FileLimits, NodeError> {
        self.run(|core, _| {
            core.files
                .as_ref()
                .map(|f| f.limits)
                .ok_or_else(|| NodeError::Other("this node keeps no files".into()))
        })
        .await
    }

    /// Change the settings for files: a smaller quota evicts at once (within its rules),
    /// the automatic limit counts for messages that arrive from now on.
    pub async fn set_file_limits(&self, limits: FileLimits) -> Result<(), NodeError> {
        self.run(move |core, now| {
            let files = core
                .files
                .as_mut()
                .ok_or_else(|| NodeError::Other("this node keeps no files".into()))?;
            files.limits = limits;
            files.evict_due = true;
            core.pump_downloads(now);
            Ok(())
        })
        .await
    }

    async fn announce_file(
        &self,
        conversation: ConversationId,
        name: String,
        imported: crate::files::blobs::Imported,
        image: Option<crate::wire::ImageInfo>,
        caption: String,
    ) -> Result<EventId, NodeError> {
        let name = crate::files::shorten_name(&name, crate::wire::MAX_FILE_NAME_BYTES);
        let attachment = crate::wire::Attachment {
            mime: crate::files::guess_mime(&name).to_string(),
            name,
            size: imported.plain_len,
            key: imported.key,
            caption,
            image,
        };
        let blob = imported.blob;
        self.run(move |core, now_ms| {
            core.file_sent(conversation, blob);
            Ok(core
                .engine
                .send_attachment(now_ms, conversation, blob, attachment)?)
        })
        .await
    }

    /// The whole picture of message `event_id` (decrypted in memory, to be shown); it
    /// must be here and at most `files::picture::MAX_PICTURE_BYTES`.
    pub async fn read_picture(
        &self,
        conversation: ConversationId,
        event_id: EventId,
    ) -> Result<Vec<u8>, NodeError> {
        let (store, file) = self.file_of(conversation, event_id).await?;
        blocking(move || {
            store.read_plain(
                &file.blob,
                file.attachment.size,
                &file.attachment.key,
                crate::files::picture::MAX_PICTURE_BYTES,
            )
        })
        .await
    }

    async fn file_of(
        &self,
        conversation: ConversationId,
        event_id: EventId,
    ) -> Result<
        (
            Arc<crate::files::blobs::BlobStore>,
            crate::sync::MessageFile,
        ),
        NodeError,
    > {
        self.run(move |core, _| {
            let file = core
                .engine
                .message_file(&conversation, &event_id)?
                .ok_or_else(|| NodeError::Other("no file in that message".into()))?;
            let store = core
                .files
                .as_ref()
                .map(|f| f.store.clone())
                .ok_or_else(|| NodeError::Other("this node keeps no files".into()))?;
            Ok((store, file))
        })
        .await
    }

    /// Fetch the file of message `event_id` (also one over the automatic limit); it
    /// keeps being fetched across restarts until it is here (`NodeEvent::FileReady`).
    pub async fn download(
        &self,
        conversation: ConversationId,
        event_id: EventId,
    ) -> Result<(), NodeError> {
        self.run(move |core, now_ms| {
            let file = core
                .engine
                .message_file(&conversation, &event_id)?
                .ok_or_else(|| NodeError::Other("no file in that message".into()))?;
            core.want_file(conversation, file.blob, files::Fetch::Asked, None, now_ms)
                .map_err(|e| NodeError::Other(e.to_string()))
        })
        .await
    }

    /// Stop fetching the file of message `event_id` (what is here stays).
    /// Tests only (feature `fault-injection`): from now on, every block this node serves
    /// has one byte changed, so a downloader's checks can be tried against a real node.
    #[cfg(feature = "fault-injection")]
    pub async fn lie_in_served_blocks(&self) -> Result<(), NodeError> {
        self.run(|core, _| {
            if let Some(files) = core.files.as_ref() {
                files.lie.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        })
        .await
    }

    pub async fn cancel_download(
        &self,
        conversation: ConversationId,
        event_id: EventId,
    ) -> Result<(), NodeError> {
        self.run(move |core, _| {
            if let Some(file) = core.engine.message_file(&conversation, &event_id)? {
                core.cancel_download(&file.blob);
            }
            Ok(())
        })
        .await
    }

    /// Decrypt the file of message `event_id` into `dest` (written beside it, then
    /// renamed); it must be wholly here.
    pub async fn save_file(
        &self,
        conversation: ConversationId,
        event_id: EventId,
        dest: std::path::PathBuf,
    ) -> Result<(), NodeError> {
        let (store, file) = self.file_of(conversation, event_id).await?;
        blocking(move || {
            store.export(
                &file.blob,
                file.attachment.size,
                &file.attachment.key,
                &dest,
            )
        })
        .await
    }

    /// Files being fetched, with their progress.
    pub async fn downloads(&self) -> Result<Vec<DownloadView>, NodeError> {
        self.run(|core, _| Ok(core.download_views())).await
    }

    /// The 1:1 conversation with a user whose profile is known, created on first use.
    pub async fn open_direct(&self, user: UserId) -> Result<ConversationId, NodeError> {
        self.run(move |core, now_ms| {
            let profile = core.profile_of(&user)?;
            Ok(core.engine.open_direct(now_ms, &profile)?)
        })
        .await
    }

    pub async fn create_group(
        &self,
        name: String,
        members: Vec<UserId>,
    ) -> Result<ConversationId, NodeError> {
        self.run(move |core, now_ms| {
            let profiles = members
                .iter()
                .map(|u| core.profile_of(u))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(core.engine.create_group(now_ms, &name, &profiles)?)
        })
        .await
    }

    pub async fn add_member(
        &self,
        conversation: ConversationId,
        user: UserId,
    ) -> Result<(), NodeError> {
        self.run(move |core, now_ms| {
            let profile = core.profile_of(&user)?;
            Ok(core.engine.add_member(now_ms, conversation, &profile)?)
        })
        .await
    }

    /// Remove a member; the group key is rotated so they read nothing sent afterwards.
    pub async fn remove_member(
        &self,
        conversation: ConversationId,
        user: UserId,
    ) -> Result<(), NodeError> {
        self.run(move |core, now_ms| Ok(core.engine.remove_member(now_ms, conversation, &user)?))
            .await
    }

    pub async fn promote(
        &self,
        conversation: ConversationId,
        user: UserId,
    ) -> Result<(), NodeError> {
        self.run(move |core, now_ms| Ok(core.engine.promote(now_ms, conversation, &user)?))
            .await
    }

    pub async fn leave(&self, conversation: ConversationId) -> Result<(), NodeError> {
        self.run(move |core, now_ms| Ok(core.engine.leave(now_ms, conversation)?))
            .await
    }

    pub async fn rename(
        &self,
        conversation: ConversationId,
        name: String,
    ) -> Result<(), NodeError> {
        self.run(move |core, now_ms| Ok(core.engine.rename(now_ms, conversation, &name)?))
            .await
    }

    /// Mark everything in the conversation as read (and tell the others).
    pub async fn mark_read(&self, conversation: ConversationId) -> Result<(), NodeError> {
        self.run(move |core, now_ms| core.mark_all_read(now_ms, conversation))
            .await
    }

    pub async fn set_display_name(&self, name: String) -> Result<(), NodeError> {
        self.run(move |core, now_ms| core.set_display_name(now_ms, &name))
            .await
    }

    /// Replace this installation's X25519 key (a key update): keys made from now on are
    /// wrapped to the new key, so a copy of the key file taken before opens none of them.
    pub async fn update_key(&self) -> Result<(), NodeError> {
        self.run(move |core, now_ms| core.update_key(now_ms)).await
    }

    /// The statements of the network's admin key this node holds.
    pub async fn admin_statements(&self) -> Result<Vec<StatementView>, NodeError> {
        self.run(|core, _| Ok(core.statement_views())).await
    }

    /// Whom a network key rotation can be sealed to: this installation and every
    /// colleague whose profile it holds, less the revoked.
    pub async fn key_recipients(&self) -> Result<Vec<RecipientView>, NodeError> {
        self.run(|core, _| {
            let me = core.engine.identity();
            let mut profiles = core.engine.known_profiles();
            profiles.retain(|p| p.user_id != me.user_id());
            let mut out = vec![RecipientView {
                user_id: me.user_id().to_string(),
                name: me.display_name().to_string(),
                dh_public: hex::encode(me.dh_public()),
                in_directory: true,
                relay: false,
            }];
            out.extend(
                profiles
                    .into_iter()
                    .filter(|p| !core.engine.is_revoked(&p.user_id))
                    .map(|p| RecipientView {
                        user_id: p.user_id.to_string(),
                        name: p.display_name.clone(),
                        dh_public: hex::encode(p.dh_public),
                        in_directory: core.engine.directory_entry(&p.user_id).is_some(),
                        relay: core.engine.is_carrying_relay(&p.user_id),
                    }),
            );
            Ok(out)
        })
        .await
    }

    /// Hand a statement signed with the admin key (`admin::AdminKey`) to the network:
    /// checked, kept (durable when this returns) and passed on to every peer.
    pub async fn publish_admin_statement(
        &self,
        statement: crate::wire::AdminStatement,
    ) -> Result<(), NodeError> {
        self.run(move |core, now_ms| Ok(core.engine.publish_admin_statement(now_ms, statement)?))
            .await
    }

    /// Engine counters (stored, invalid, malformed, ...), for tests and diagnostics.
    pub async fn stats(&self) -> Result<crate::sync::Stats, NodeError> {
        self.run(|core, _| Ok(core.engine.stats())).await
    }

    /// Stop: the last changes are flushed, connections closed, the task ends.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Shutdown(tx))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }
}

/// Run file work (disk, decryption) on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FileError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| NodeError::Other(e.to_string()))?
        .map_err(|e| NodeError::Other(e.to_string()))
}
