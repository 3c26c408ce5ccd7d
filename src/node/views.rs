//! Plain data the node hands out: for the desktop app, the control socket and `--json`.
//!
//! Field names are a public interface (documented in the README); ids are strings in the
//! same form the CLI prints and accepts.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub user_id: String,
    pub name: String,
    /// Fingerprint of the network key (not the key).
    pub network: String,
    pub demo_network: bool,
    pub role: String,
    pub listen: Vec<String>,
    pub peers_online: usize,
    pub outbox: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    pub user_id: String,
    pub name: String,
    pub online: bool,
    /// Milliseconds since the Unix epoch when last connected; `None`: never this run.
    pub last_seen_ms: Option<u64>,
    pub addresses: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub user_id: String,
    pub name: String,
    pub admin: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Everything a node reports as it happens; one JSON object per line with `--json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum NodeEvent {
    Listening {
        address: String,
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
    /// Something went wrong that the user should know (disk full, ...).
    Warning {
        message: String,
    },
}
