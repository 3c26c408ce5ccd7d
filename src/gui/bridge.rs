//! The only road between the UI thread and the node: requests run as tokio tasks on the
//! node's runtime, and their results come back as [`Update`]s over a bounded channel that
//! the UI drains in `App::logic`. Every task asks egui for one repaint when it is done, so
//! the window redraws when something happened and sleeps otherwise.

use std::future::Future;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::app::launch::Running;
use crate::node::{ConversationView, MessageItem, NodeEvent, NodeHandle, NodeStatus, PeerView};

/// Results waiting for the UI. Each request in flight sends one; node events are coalesced
/// by the UI, so a few hundred is plenty, and a full queue makes the node's event reader
/// wait (the node itself never waits for the UI: its broadcast channel drops instead).
pub const UPDATE_QUEUE: usize = 1024;

/// What a finished request or the node tells the UI.
// The status (about 0.5 KB) is the largest; a few updates a second pass through a
// bounded queue of `UPDATE_QUEUE`, so boxing it would save nothing that matters.
#[allow(clippy::large_enum_variant)]
pub enum Update {
    Started(Box<Running>),
    /// The node took the file settings sent last (`FlurfunkApp::apply_file_limits`), or
    /// refused them (the error).
    LimitsApplied(Option<String>),
    StartFailed(String),
    Status(NodeStatus),
    Conversations(Vec<ConversationView>),
    Messages {
        conversation: String,
        items: Vec<MessageItem>,
        /// A page before the loaded ones (scrolling back), not the newest.
        older: bool,
        limit: usize,
    },
    Peers(Vec<PeerView>),
    Event(NodeEvent),
    /// Something changed that events do not report (an own action finished): reload.
    Reload,
    /// The event reader fell behind the node and missed events: reload everything.
    Lagged,
    /// A conversation to open (new chat, new group).
    Open(String),
    /// A picture decoded for the screen (key: event id, or `<event id>/view`).
    Picture {
        key: String,
        picture: Result<super::files::Decoded, String>,
    },
    /// The system's file dialog closed: the file chosen, or none (`quick`: it closed at
    /// once, so there is no dialog here, e.g. no desktop portal).
    Picked {
        conversation: String,
        path: Option<std::path::PathBuf>,
        quick: bool,
    },
    /// Progress of the files being fetched.
    Downloads(Vec<crate::node::DownloadView>),
    DownloadsFailed,
    /// Messages found for a query (the search box).
    Found {
        query: String,
        results: Vec<crate::node::SearchItem>,
    },
    /// Every version of an edited message (for the versions dialog).
    Versions {
        event_id: String,
        versions: Vec<(u64, String)>,
    },
    /// A finished action with something to tell the user.
    Notice(String),
    Error(String),
    /// The node stopped (before joining another network).
    Stopped,
}

pub struct Bridge {
    runtime: tokio::runtime::Handle,
    tx: mpsc::Sender<Update>,
    rx: mpsc::Receiver<Update>,
    ctx: egui::Context,
    forwarder: Option<JoinHandle<()>>,
}

impl Bridge {
    pub fn new(runtime: tokio::runtime::Handle, ctx: egui::Context) -> Bridge {
        let (tx, rx) = mpsc::channel(UPDATE_QUEUE);
        Bridge {
            runtime,
            tx,
            rx,
            ctx,
            forwarder: None,
        }
    }

    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    pub fn ctx(&self) -> &egui::Context {
        &self.ctx
    }

    /// Run `task` on the runtime; its result reaches the UI as an update.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = Update> + Send + 'static,
    {
        let tx = self.tx.clone();
        let ctx = self.ctx.clone();
        self.runtime.spawn(async move {
            let update = task.await;
            if tx.send(update).await.is_ok() {
                ctx.request_repaint();
            }
        });
    }

    /// Next update, without waiting.
    pub fn try_next(&mut self) -> Option<Update> {
        self.rx.try_recv().ok()
    }

    /// Forward the node's events to the UI (replacing the reader of a previous node).
    pub fn follow(&mut self, mut events: tokio::sync::broadcast::Receiver<NodeEvent>) {
        if let Some(old) = self.forwarder.take() {
            old.abort();
        }
        let tx = self.tx.clone();
        let ctx = self.ctx.clone();
        self.forwarder = Some(self.runtime.spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let update = match events.recv().await {
                    // The app asks for progress while a file is on screen; a repaint per
                    // block answer would be wasted.
                    Ok(NodeEvent::FileProgress { .. }) => continue,
                    Ok(event) => Update::Event(event),
                    Err(RecvError::Lagged(_)) => Update::Lagged,
                    Err(RecvError::Closed) => break,
                };
                if tx.send(update).await.is_err() {
                    break;
                }
                ctx.request_repaint();
            }
        }));
    }

    /// Run a node action; errors become an `Update::Error`, success `ok`.
    pub fn act<T, F, Fut>(
        &self,
        node: &NodeHandle,
        action: F,
        ok: impl FnOnce(T) -> Update + Send + 'static,
    ) where
        T: Send + 'static,
        F: FnOnce(NodeHandle) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, crate::node::NodeError>> + Send + 'static,
    {
        let node = node.clone();
        self.spawn(async move {
            match action(node).await {
                Ok(v) => ok(v),
                Err(e) => Update::Error(e.to_string()),
            }
        });
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(f) = self.forwarder.take() {
            f.abort();
        }
    }
}
