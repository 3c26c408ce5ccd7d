//! The engine's interface types: its errors, configuration, notifications, counters and
//! the read-only views it hands out.

use super::*;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("malformed frame from peer: {0}")]
    Wire(#[from] WireError),
    #[error("unknown conversation {0}")]
    UnknownConversation(ConversationId),
    #[error("you are not a member of this conversation")]
    NotMember,
    #[error("only admins may do this")]
    NotAdmin,
    #[error("no key for this conversation yet; waiting for a member to share it")]
    NoKey,
    #[error("message is empty or longer than {max} bytes")]
    BadText { max: usize },
    #[error("the file's description is malformed or over a limit")]
    BadAttachment,
    #[error("{0}")]
    Rejected(Rejection),
    #[error(
        "the key was replaced {} times within 7 days; try again once the oldest is deleted",
        crate::identity::MAX_RETIRED_DH_KEYS
    )]
    TooManyKeyUpdates,
    #[error("cannot save the key file: {0}")]
    KeyFile(String),
    #[error("this network is unmanaged: it has no admin key, so there are no admin statements")]
    Unmanaged,
    #[error("a newer admin statement of this kind is held already")]
    StaleStatement,
    #[error(
        "the statement is not signed by the admin key of the network this node runs in (restart the node after joining another network)"
    )]
    NotThisAdmin,
    #[error("this colleague has left the organisation")]
    LeftOrganisation,
    #[error(
        "this is one of the organisation's groups: its members are those of the directory, which IT keeps (mute it instead)"
    )]
    OrganisationGroup,
    #[error("no such message here (deleted, or not a text)")]
    NoSuchMessage,
    #[error("that is someone else's message")]
    NotYours,
    #[error("a message can be edited at most {max} times")]
    TooManyEdits { max: usize },
    #[error("a reaction is one emoji (at most {max} bytes, no spaces)")]
    BadReaction { max: usize },
    #[error(
        "your organisation does not allow deleting messages for everyone (retention); delete it for yourself instead"
    )]
    DeletionForbidden,
    #[error("too late: your organisation allows this only within {window} of sending")]
    TooLate { window: String },
    #[error("your organisation has turned off {what}")]
    FeatureOff { what: &'static str },
}

#[derive(Clone, Debug)]
pub struct Config {
    pub role: Role,
    /// How often a few connected peers (`anti_entropy_peers`) get a digest even without
    /// news.
    pub anti_entropy_interval_ms: u64,
    pub anti_entropy_peers: usize,
    /// Peers someone else's new event is pushed to at once (the rest hear of it by `Have`).
    pub push_fanout: usize,
    /// Threads that check a large frame's signatures side by side (a catch-up brings
    /// thousands). 1 in tests and the simulator; a node uses the machine's cores. The
    /// result is the same whatever the number: each signature is checked alone.
    pub verify_threads: usize,
    /// The network's admin key (a managed network): a peer counts as a relay only with
    /// a certificate it signed. `None`: unmanaged, the role is taken as claimed.
    pub admin_key: Option<[u8; 32]>,
    /// This node's certificate, when it runs as a relay of a managed network.
    pub relay_certificate: Option<crate::wire::RelayCertificate>,
    /// The machine's settings (`app::machine_policy`): in force where the network's
    /// policy statement sets nothing.
    pub machine_policy: crate::wire::Policy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            role: Role::Member,
            anti_entropy_interval_ms: 30_000,
            anti_entropy_peers: ANTI_ENTROPY_PEERS,
            push_fanout: PUSH_FANOUT,
            verify_threads: 1,
            admin_key: None,
            relay_certificate: None,
            machine_policy: crate::wire::Policy::default(),
        }
    }
}

/// What the app hears from the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    Message {
        conversation: ConversationId,
        event_id: EventId,
        author: UserId,
        order: OrderKey,
        wall_ms: u64,
        text: String,
        /// Written under a key not every member was given
        /// (`ConversationState::for_some_members`, as decided when it arrived).
        for_some_members: bool,
        /// A file sent with it (`text` is then its caption).
        file: Option<Box<MessageFile>>,
        /// Colleagues called with @ in it.
        mentions: Vec<UserId>,
        /// The message it answers.
        reply_to: Option<EventId>,
    },
    /// Own event is durably stored.
    Saved {
        conversation: ConversationId,
        event_id: EventId,
    },
    /// Membership, name or key of a conversation changed.
    ConversationChanged {
        conversation: ConversationId,
    },
    /// Delivery or read receipts changed.
    ReceiptsChanged {
        conversation: ConversationId,
    },
    /// An event stored earlier turned out invalid (e.g. its author had been removed).
    Retracted {
        conversation: ConversationId,
        event_id: EventId,
    },
    PeerProfile {
        profile: Profile,
    },
    /// `author`'s device signed two different events with one sequence number. Every
    /// node keeps the version with the lower id (and drops the other with what followed
    /// it in the author's chain), so all settle on the same one.
    Equivocation {
        conversation: ConversationId,
        author: UserId,
    },
    /// A member proved that `author`'s rekey handed it another key than the others: nobody
    /// writes under that key (every node with the complaint decides the same).
    WrongKey {
        conversation: ConversationId,
        author: UserId,
    },
    /// A certified relay stored a text event that carries a file (its public
    /// `BlobRef`): the relay keeps the file's ciphertext too, within its quota.
    FileCarried {
        conversation: ConversationId,
        blob: crate::wire::BlobRef,
        author: UserId,
        wall_ms: u64,
    },
    /// A newer statement of the network's admin key holds (e.g. someone was revoked).
    AdminStatement {
        kind: crate::wire::StatementKind,
    },
    /// A message was edited, reacted to or deleted.
    MessageChanged {
        conversation: ConversationId,
        target: EventId,
    },
    /// Someone else's edit calls this node's user with @, and neither the message nor an
    /// earlier edit of it did: told once, like a new message that mentions one.
    Mentioned {
        conversation: ConversationId,
        target: EventId,
        author: UserId,
        wall_ms: u64,
        /// The message's text as edited.
        text: String,
    },
    /// A deleted message carried this file: its ciphertext goes too.
    FilePurged {
        blob: crate::wire::BlobRef,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub events_stored: u64,
    pub invalid_events: u64,
    /// Events that conflict with another event of the same author and seq (also counted
    /// in `invalid_events`).
    pub equivocations: u64,
    pub duplicate_events: u64,
    /// Bodies dropped because their message was deleted for everyone.
    pub bodies_purged: u64,
    /// Messages deleted for their age (`Policy::keep_messages_s`).
    pub messages_expired: u64,
    /// Purged events refused: no deletion of them was known (a peer withheld a body).
    pub withheld_bodies: u64,
    pub malformed_frames: u64,
    /// Relay certificates refused (also counted in `malformed_frames`).
    pub certificates_refused: u64,
    pub pending_events: usize,
    /// Events not held back because a bound was reached, and held-back ones that expired.
    pub pending_dropped: u64,
    pub pending_expired: u64,
    pub frames_sent: u64,
    /// Copies of events pushed to peers (own and forwarded).
    pub events_pushed: u64,
    pub haves_sent: u64,
    pub wants_sent: u64,
    pub digests_sent: u64,
    /// Whole version vectors sent because digests differed.
    pub summaries_sent: u64,
    /// Own group receipts handed to a peer; others' passed on towards their author, and
    /// dropped for want of a route.
    pub receipts_sent: u64,
    pub receipts_forwarded: u64,
    pub receipts_dropped: u64,
    /// Frames dropped because the queue towards the driver was full.
    pub frames_dropped: u64,
    /// Requests from congested peers left unanswered (digests repair later).
    pub requests_deferred: u64,
    /// Frames from revoked users' nodes dropped unread, and events revoked users signed
    /// after their revocation refused.
    pub revoked_frames: u64,
    pub revoked_events: u64,
}

/// What one peer sent since the node last asked (`Engine::take_offences`), for the node to
/// weigh towards a ban. The engine only counts; the node decides what it costs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offence {
    /// Events whose signature does not verify. An honest node checks every signature
    /// before storing or passing an event on, so it never sends one.
    pub forged: u32,
    /// Events invalid here (an author outside the conversation at that point, a clock
    /// beyond its bound, a rekey that does not fit...). An honest peer whose view lags
    /// ours sends some while it catches up, so these weigh little.
    pub invalid: u32,
    /// Frames that carried at least one invalid event.
    pub frames_with_invalid: u32,
}

/// A file sent with a message: the public reference and the sealed description, which
/// fit each other (`Attachment::fits`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageFile {
    pub blob: crate::wire::BlobRef,
    pub attachment: crate::wire::Attachment,
}

impl MessageFile {
    /// The file of a text event, if it carries a well-formed one.
    pub fn of(event: &Event, content: &Content) -> Option<Self> {
        let Content::Attachment(attachment) = content else {
            return None;
        };
        let blob = crate::wire::BlobRef::decode(&event.public)?;
        attachment.fits(&blob).then(|| MessageFile {
            blob,
            attachment: (**attachment).clone(),
        })
    }
}

/// One decrypted text message, for display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageView {
    pub event_id: EventId,
    pub author: UserId,
    pub order: OrderKey,
    pub wall_ms: u64,
    pub text: String,
    /// Written under a key not every member at its place was given
    /// (`ConversationState::for_some_members`).
    pub for_some_members: bool,
    /// For a line about the group itself (`Engine::timeline_before`): what changed.
    pub notice: Option<crate::conversation::Notice>,
    /// A file sent with it (`text` is then its caption).
    pub file: Option<MessageFile>,
    /// Reply, edits, reactions, deletion.
    pub actions: MessageActions,
}

/// Delivery state of one own message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryState {
    pub delivered_to: Vec<UserId>,
    pub read_by: Vec<UserId>,
    pub waiting_for: Vec<UserId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationSummary {
    pub conversation: ConversationId,
    pub kind: ConversationKind,
    pub name: String,
    pub members: Vec<(Profile, bool)>,
    pub last_activity_ms: u64,
    pub is_member: bool,
    /// Authors of rekeys a recipient proved wrong (their devices handed members
    /// different keys); nobody writes under those keys.
    pub wrong_keys_from: Vec<UserId>,
}
