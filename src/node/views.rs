//! Plain data the node hands out: for the desktop app, the control socket and `--json`.
//!
//! Field names are a public interface (documented in docs/GUIDE.md); ids are strings in the
//! same form the CLI prints and accepts.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub user_id: String,
    pub name: String,
    /// Fingerprint of the network key (not the key).
    pub network: String,
    /// The id a network key rotation names the key in use by (`wire::wire_key_id`, hex):
    /// the key this node runs with, which after a rotation need not be the one in a
    /// machine's installed key file.
    #[serde(default)]
    pub network_key_id: String,
    pub demo_network: bool,
    /// The fingerprint of the network's admin key; `None`: an unmanaged network (any node
    /// may act as a relay).
    #[serde(default)]
    pub network_admin: Option<String>,
    /// The policy in force, if the network's admin or the machine's settings set one
    /// (docs/PROTOCOL.md, "Admin statements"; docs/ADMIN.md, "Machine settings").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::wire::Policy>,
    /// The network's own policy statement, if its admin set one (without the machine's
    /// settings): what the admin tools change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<crate::wire::Policy>,
    /// A network key rotation this node knows of, until its overlap is over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_rotation: Option<KeyRotationStatus>,
    /// The last few dials were refused right at the network key check and nobody is
    /// connected: this installation's network key is most likely out of date (rotated
    /// while it was away); it needs the current key file from IT.
    #[serde(default)]
    pub network_key_refused: bool,
    pub role: String,
    pub listen: Vec<String>,
    pub peers_online: usize,
    /// Of them, those whose build does not know every admin statement this one does
    /// (managed networks; `Engine::peers_on_older_builds`).
    #[serde(default)]
    pub peers_on_older_builds: usize,
    pub outbox: usize,
    /// How the node copes with its load: queues, drops and retries.
    #[serde(default)]
    pub load: LoadStats,
}

/// A network key rotation under way, as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotationStatus {
    /// The new key's fingerprint; `None`: the admin did not seal it to this
    /// installation: nodes that know of the rotation refuse it, and it needs the new key
    /// file from IT.
    pub next_network: Option<String>,
    pub switch_at_ms: u64,
    pub overlap_until_ms: u64,
}

/// Figures that show overload before it hurts: frames waiting and dropped, requests
/// failed and resyncs, events held for gaps. All counters since start-up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadStats {
    pub connections: usize,
    /// Links the node's plan wants (it dials these).
    pub wanted_links: usize,
    pub queued_frames: usize,
    pub max_queue: usize,
    pub frames_dropped: u64,
    pub requests_failed: u64,
    pub resyncs: u64,
    pub trimmed_connections: u64,
    /// Streams moved to a peer's newer connection (the older one may be dead).
    #[serde(default)]
    pub streams_moved: u64,
    pub pending_events: usize,
    pub pending_dropped: u64,
    pub events_stored: u64,
    pub duplicate_events: u64,
    pub invalid_events: u64,
    pub events_pushed: u64,
    pub haves_sent: u64,
    pub wants_sent: u64,
    pub digests_sent: u64,
    pub summaries_sent: u64,
    pub receipts_forwarded: u64,
    pub receipts_dropped: u64,
    /// Bytes of files' blocks sent to colleagues, and received (repeats included).
    #[serde(default)]
    pub file_bytes_served: u64,
    #[serde(default)]
    pub file_bytes_fetched: u64,
    /// Answers with a block that failed its hash (the sender was penalised for each).
    #[serde(default)]
    pub file_answers_refused: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    pub user_id: String,
    /// As shown: an official name from the network's directory ends in
    /// `identity::OFFICIAL_MARK`, a self-chosen one that looks like someone else's
    /// official name in `identity::DOUBTFUL_MARK`.
    pub name: String,
    /// The department from the network's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// In the network's directory (also a colleague who left, shown without the mark).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub official: bool,
    pub online: bool,
    /// Milliseconds since the Unix epoch when last connected; `None`: never this run.
    pub last_seen_ms: Option<u64>,
    pub addresses: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub user_id: String,
    /// As shown (see `PeerView::name`).
    pub name: String,
    /// The department from the network's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    pub admin: bool,
    /// The network's admin revoked this colleague (it left the organisation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub left_organisation: bool,
}

/// A statement of the network's admin key, as `flurfunk admin statements` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementView {
    /// "revocations" or "policy".
    pub kind: String,
    pub serial: u64,
    pub issued_ms: u64,
    /// For revocations: who left, and since when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked: Vec<RevokedView>,
    /// For a policy: its switches (`read_receipts`, `presence`: `full`, `online_only` or
    /// `hidden`, `max_file_bytes`, `auto_download_bytes`: null when each node decides;
    /// `delete_for_everyone`, `edit_window_s`, `delete_window_s`: seconds after sending,
    /// null for any time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::wire::Policy>,
    /// For a directory: the official names and departments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directory: Vec<DirectoryView>,
    /// For a network key rotation: its phases and how many colleagues it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationView>,
    /// For organisation groups: each group as this node knows it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub org_groups: Vec<OrgGroupView>,
    /// For group retention: each group's own period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_retention: Vec<GroupRetentionView>,
    /// The whole signed statement (hex), for tools that build the next one.
    pub encoded: String,
}

/// One organisation group, as the node that shows it knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgGroupView {
    pub conversation: String,
    /// Empty: everyone in the directory.
    pub department: String,
    /// The group's name here (empty where this node is not in it).
    pub name: String,
    /// Its members as this node knows them (0 where it is not in it).
    pub members: usize,
    /// The node that keeps the group in line with the directory.
    pub steward: String,
}

/// One group's own retention period, as the node that shows it knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRetentionView {
    pub conversation: String,
    /// The group's name here (empty where this node is not in it).
    pub name: String,
    /// Its own period (absent: taken away, the network's holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_messages_s: Option<u64>,
    /// Its messages stamped before this may have lost their bodies to an earlier period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_before_ms: Option<u64>,
}

/// A colleague a network key rotation can be sealed to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientView {
    pub user_id: String,
    /// Its self-chosen name (for the admin's list; not shown to anyone else).
    pub name: String,
    /// Its X25519 public key (hex), as its newest profile says.
    pub dh_public: String,
    /// Whether the directory names it (this installation counts as named).
    pub in_directory: bool,
    /// A certified relay connected now (sealed to as well: relays are rarely in the
    /// directory).
    #[serde(default)]
    pub relay: bool,
}

/// A network key rotation as `flurfunk admin statements` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationView {
    pub switch_at_ms: u64,
    pub overlap_until_ms: u64,
    pub recipients: usize,
}

/// How a statement kind is named in views and events.
pub fn statement_kind_name(kind: crate::wire::StatementKind) -> &'static str {
    use crate::wire::StatementKind;
    match kind {
        StatementKind::Revocations => "revocations",
        StatementKind::Policy => "policy",
        StatementKind::Directory => "directory",
        StatementKind::NetworkKey => "network key",
        StatementKind::OrgGroups => "organisation groups",
        StatementKind::GroupRetention => "group retention",
    }
}

/// One colleague in the network's directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryView {
    pub user_id: String,
    pub name: String,
    /// Empty: none given.
    pub department: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedView {
    pub user_id: String,
    pub name: String,
    pub since_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageItem {
    pub conversation: String,
    pub event_id: String,
    /// Position in the conversation (hex of [`crate::wire::OrderKey::encode`]), for paging
    /// back with [`crate::node::NodeHandle::messages`].
    pub order: String,
    pub author: String,
    pub author_name: String,
    pub own: bool,
    pub wall_ms: u64,
    pub text: String,
    /// For own messages: who has it stored, who has read it, who has neither yet.
    pub delivered_to: Vec<String>,
    pub read_by: Vec<String>,
    pub waiting_for: Vec<String>,
    /// Written under a key not every member was given (a member sealed a key to some
    /// only, or the writer had not yet seen a change): not a message to the whole group.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub for_some_members: bool,
    /// A line about the group itself instead of a message: "created", "added",
    /// "removed", "left", "promoted", "renamed" (then `text` is the new name) or
    /// "key_changed" (the author replaced its key: `flurfunk key-update`). The
    /// author did it; `subject` (user id) and `subject_name` say to whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_name: Option<String>,
    /// A file sent with the message (`text` is then its caption).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileItem>,
    /// The message this one answers, as it reads now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<QuoteItem>,
    /// Edited by its author: `text` is the newest version.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub edited: bool,
    /// Deleted for everyone: `text` is empty and there is no file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Each emoji given, with who gave it (user ids), in order of first use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionItem>,
    /// Colleagues called with @ (user ids).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// This node's user is among `mentions`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mentions_me: bool,
}

/// A message found by `flurfunk search` (newest first).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchItem {
    pub conversation: String,
    pub conversation_name: String,
    pub event_id: String,
    pub author: String,
    pub author_name: String,
    pub wall_ms: u64,
    /// The message as it reads now (newest edit; a file: its name, then the caption).
    pub text: String,
}

/// What a reply shows of the message it answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteItem {
    pub event_id: String,
    /// Empty when the original is not held here.
    pub author: String,
    pub author_name: String,
    /// The start of its text (newest version) or its file's name.
    pub text: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// One emoji under a message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionItem {
    pub emoji: String,
    pub users: Vec<String>,
    pub names: Vec<String>,
}

/// A file sent with a message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileItem {
    /// As the sender named it (shown; made safe before it names a file here).
    pub name: String,
    /// Media type as the sender guessed it.
    pub mime: String,
    /// Bytes.
    pub size: u64,
    /// The blob's hash (hex): `NodeEvent::FileReady` names it.
    pub blob: String,
    /// Wholly here: it can be opened or saved.
    pub here: bool,
    /// Being fetched now (or waiting for a colleague who has it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fetching: bool,
    /// For a picture: its width and height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// For a picture: the small preview sent with it (JPEG, at most 16 KiB; decode with
    /// `files::picture::decode_thumbnail`). Kept in the process: `--json` leaves it out.
    #[serde(skip)]
    pub thumbnail: Option<std::sync::Arc<[u8]>>,
}

/// Of the statements a node holds (`NodeHandle::admin_statements`), the one of `kind`,
/// decoded from its `encoded` form (for tools that make the next one). `Err`: the node
/// holds one that does not decode.
pub fn held_statement(
    views: &[StatementView],
    kind: crate::wire::StatementKind,
) -> Result<Option<crate::wire::AdminStatement>, crate::wire::WireError> {
    let name = statement_kind_name(kind);
    views
        .iter()
        .find(|v| v.kind == name)
        .map(|v| {
            hex::decode(&v.encoded)
                .map_err(|_| crate::wire::WireError::Invalid {
                    what: "admin statement (hex)",
                })
                .and_then(|b| crate::wire::AdminStatement::decode(&b))
        })
        .transpose()
}

impl MessageItem {
    pub fn order_key(&self) -> Option<crate::wire::OrderKey> {
        crate::wire::OrderKey::decode(&hex::decode(&self.order).ok()?)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationView {
    pub conversation: String,
    /// "direct" or "group".
    pub kind: String,
    pub name: String,
    pub members: Vec<MemberView>,
    pub is_member: bool,
    pub unread: usize,
    pub last_activity_ms: u64,
    pub last_message: Option<MessageItem>,
    /// One of the organisation's groups, whose members are the directory's: `""` for
    /// everyone in it, else the department. Nobody leaves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
    /// Seconds after which every node deletes a message here (the organisation's
    /// retention: the network's, or this group's own if shorter); absent: kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_messages_s: Option<u64>,
    /// The group's own period as the organisation set it (also where the network's,
    /// shorter, holds); for the admin's tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_keep_messages_s: Option<u64>,
}

/// Everything a node reports as it happens; one JSON object per line with `--json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum NodeEvent {
    Listening {
        address: String,
    },
    /// Printed by `flurfunk node --json` every minute: the node's load figures.
    Stats {
        load: LoadStats,
    },
    /// A text message from someone else, durably stored.
    Message {
        conversation: String,
        conversation_name: String,
        event_id: String,
        author: String,
        author_name: String,
        wall_ms: u64,
        text: String,
        /// Written under a key not every member was given: not a message to the whole
        /// group (`MessageItem::for_some_members`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        for_some_members: bool,
        /// A file sent with it (`text` is then its caption).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<FileItem>,
        /// This node's user is called with @ in it (notify even in a muted chat).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        mentions_me: bool,
        /// The id of the message it answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
    },
    /// A message was edited, reacted to or deleted for everyone: read it again.
    MessageChanged {
        conversation: String,
        event_id: String,
    },
    /// Someone's edit calls this node's user with @ for the first time in that message
    /// (follows its `message_changed`; notify even in a muted chat).
    Mentioned {
        conversation: String,
        conversation_name: String,
        event_id: String,
        author: String,
        author_name: String,
        wall_ms: u64,
        /// The message's text as edited.
        text: String,
    },
    /// An own message is durably stored (one tick).
    Saved {
        conversation: String,
        event_id: String,
    },
    /// Delivery or read receipts of a conversation changed.
    Receipt {
        conversation: String,
    },
    PeerOnline {
        user_id: String,
        name: String,
    },
    PeerOffline {
        user_id: String,
        name: String,
    },
    ConversationCreated {
        conversation: String,
        kind: String,
        name: String,
    },
    ConversationChanged {
        conversation: String,
        name: String,
        members: Vec<String>,
        is_member: bool,
    },
    /// A stored message turned out invalid (its author had been removed) and is gone.
    Retracted {
        conversation: String,
        event_id: String,
    },
    Profile {
        user_id: String,
        name: String,
    },
    /// A file being fetched moved on (at most once a second per file; blocks of 16 KiB).
    FileProgress {
        conversation: String,
        blob: String,
        blocks_held: u64,
        blocks: u64,
    },
    /// A file of a message is wholly here now (it can be opened or saved).
    FileReady {
        conversation: String,
        /// The blob (hex), as in `MessageItem::file`.
        blob: String,
    },
    /// The disk holding the files is full: files are not fetched until there is room
    /// again (they continue by themselves; nothing saved before is touched). Said at
    /// most every ten minutes.
    DiskFull {
        /// What could not be written, in words.
        what: String,
    },
    /// Something went wrong that the user should know (disk full, ...).
    Warning {
        message: String,
    },
    /// The network's admin revoked this colleague: it left the organisation. Its node
    /// is disconnected for good and removed from groups by their admins.
    LeftOrganisation {
        user_id: String,
        name: String,
    },
    /// The network's admin issued a new statement: `kind` "revocations", "policy" or
    /// "directory" (official names: names shown may have changed).
    AdminStatement {
        kind: String,
    },
    /// A member's device did what no honest installation does; said once per author and
    /// run. `what`: "two_versions" (two different versions of one message; one is kept
    /// for everyone) or "wrong_key" (a key that did not fit for everyone; a member proved
    /// it and nobody uses it).
    Misbehaviour {
        what: String,
        conversation: String,
        conversation_name: String,
        user_id: String,
        name: String,
    },
}
