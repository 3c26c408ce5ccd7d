//! The app's state and its non-drawing half: applying updates from the node, deciding what
//! to reload, notifications and the window title. Drawing lives in the `*_ui` modules.
//!
//! Nothing here waits: every node call is a task on the bridge, and reloads are coalesced
//! (at most one of each kind in flight), so a burst of events costs one reload.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::bridge::{Bridge, Update};
use super::chat::ChatState;
use super::dialogs::Dialog;
use super::i18n::{Lang, Texts, fill};
use super::settings::{KeyChange, Settings};
use super::wizard::Wizard;
use crate::app::control::RaiseHook;
use crate::app::data_dir::DataDir;
use crate::app::launch::{self, LaunchOptions, Running};
use crate::node::{ConversationView, NodeEvent, NodeHandle, NodeStatus, PeerView};
use crate::wire::ConversationId;

/// Messages loaded when a conversation opens, and per page when scrolling back.
pub const PAGE_MESSAGES: usize = 200;
/// Banners and notices kept on screen at once; older ones are dropped.
pub const MAX_NOTICES: usize = 4;
/// With nobody online for this long, the status bar says so.
pub const ALONE_AFTER: Duration = Duration::from_secs(60);
/// While nobody is reachable, the status is asked again this often: no node event says
/// that dials are refused at the key check (`NodeStatus::network_key_refused`).
const ALONE_STATUS_EVERY: Duration = Duration::from_secs(5);
/// Files opened from the app are removed this much later.
const ONE_DAY: Duration = Duration::from_secs(24 * 3600);
/// How often a start is retried while the previous node still holds the database.
const START_RETRIES: u32 = 20;

/// How the app was started.
#[derive(Clone, Debug)]
pub struct GuiConfig {
    pub dir: DataDir,
    pub launch: LaunchOptions,
    /// Overrides the saved and the system language (tests, screenshots).
    pub language: Option<Lang>,
    /// Show desktop notifications at all (off in tests).
    pub desktop_notifications: bool,
    /// Where "Save" puts a received file; `None`: the user's Downloads folder.
    pub save_dir: Option<std::path::PathBuf>,
    /// 📎 opens the system's file dialog (off in tests: they type the path).
    pub native_dialogs: bool,
}

pub enum Phase {
    Starting,
    Wizard(Box<Wizard>),
    Failed(String),
    Running,
}

/// Reloads that are wanted (`dirty`) and running (`busy`).
#[derive(Default, Clone, Copy)]
struct Refresh {
    dirty: bool,
    busy: bool,
}

impl Refresh {
    /// True (and now busy) if a reload is wanted and none is running.
    fn start(&mut self) -> bool {
        let go = self.dirty && !self.busy;
        if go {
            *self = Refresh {
                dirty: false,
                busy: true,
            };
        }
        go
    }
}

#[derive(Default)]
struct Reloads {
    status: Refresh,
    conversations: Refresh,
    peers: Refresh,
    messages: Refresh,
}

/// The node the app runs now, for the one thing that cannot reach the app: Windows'
/// log-off notice, which stops it before the process is ended ([`stop_for_session_end`]).
static SESSION_NODE: std::sync::Mutex<Option<NodeHandle>> = std::sync::Mutex::new(None);

/// Stop the app's node (everything written, connections closed) within a few seconds;
/// called from the log-off notice's thread, never from the runtime.
pub fn stop_for_session_end(runtime: &tokio::runtime::Handle) {
    let node = SESSION_NODE.lock().ok().and_then(|n| n.clone());
    if let Some(node) = node {
        let _ = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(8), node.shutdown()).await
        });
    }
}

pub struct FlurfunkApp {
    pub(super) bridge: Bridge,
    pub(super) config: GuiConfig,
    pub(super) settings: Settings,
    pub(super) phase: Phase,
    pub(super) running: Option<Box<Running>>,
    pub(super) status: Option<NodeStatus>,
    pub(super) conversations: Vec<ConversationView>,
    pub(super) peers: Vec<PeerView>,
    pub(super) selected: Option<String>,
    pub(super) chat: Option<ChatState>,
    pub(super) drafts: HashMap<String, String>,
    /// Per chat: answering or editing a message (`actions::Compose`).
    pub(super) compose: HashMap<String, super::actions::Compose>,
    /// Put the keyboard in the composer at the next frame (after "reply", "edit").
    pub(super) focus_composer: bool,
    pub(super) dialog: Option<Dialog>,
    pub(super) notices: Vec<String>,
    pub(super) key_changes: Vec<KeyChange>,
    pub(super) search: String,
    /// Messages found for `search` (`search::SearchState`).
    pub(super) found: super::search::SearchState,
    pub(super) alone_since: Option<Instant>,
    /// When the status was last asked for because nobody is reachable.
    alone_polled: Option<Instant>,
    pub(super) pictures: super::files::Pictures,
    pub(super) transfers: super::files::Transfers,
    /// The system's file dialog is open.
    pub(super) picking: bool,
    /// This machine's settings (group policy, `/etc/flurfunk/policy.toml`), read at start.
    pub(super) machine: crate::app::machine_policy::MachinePolicy,
    /// File settings on their way to the node, and changed again meanwhile: one call at a
    /// time, so two quick changes cannot reach it in the wrong order.
    limits_busy: bool,
    limits_dirty: bool,
    /// The admin section of the settings (with this network's admin key only).
    pub(super) admin: super::admin::AdminUi,
    reloads: Reloads,
    settings_writer: tokio::sync::watch::Sender<Option<Settings>>,
    title: String,
    focused: bool,
    reported_focus: Option<bool>,
    frames: u64,
    /// Set when a second start of the app asked for this window (control socket).
    raise_requested: Arc<AtomicBool>,
}

impl FlurfunkApp {
    /// Open the app for a data directory: the wizard if it has no identity yet, else start
    /// its node in the background (the first frame does not wait for it).
    pub fn new(
        ctx: &egui::Context,
        runtime: tokio::runtime::Handle,
        mut config: GuiConfig,
    ) -> Self {
        super::style::apply(ctx);
        let raise_requested = Arc::new(AtomicBool::new(false));
        config.launch.raise = Some(RaiseHook::new({
            let raise = raise_requested.clone();
            let ctx = ctx.clone();
            move || {
                raise.store(true, Ordering::Relaxed);
                ctx.request_repaint();
            }
        }));
        let settings = Settings::load(&Settings::path(&config.dir));
        // Both an identity and a network key (never the demo network because a key file
        // is missing): otherwise the wizard asks, at the network step if the identity is
        // there (e.g. the key file was removed).
        let has_identity = config.dir.identity().exists();
        let ready = has_identity && launch::has_network_key(&config.dir);
        let (settings_writer, mut latest) = tokio::sync::watch::channel(None::<Settings>);
        let path = Settings::path(&config.dir);
        runtime.spawn(async move {
            while latest.changed().await.is_ok() {
                let Some(settings) = latest.borrow_and_update().clone() else {
                    continue;
                };
                let path = path.clone();
                let written = tokio::task::spawn_blocking(move || settings.save(&path)).await;
                if let Ok(Err(e)) = written {
                    tracing::warn!("cannot save settings: {e}");
                }
            }
        });
        let mut app = FlurfunkApp {
            bridge: Bridge::new(runtime, ctx.clone()),
            config,
            settings,
            phase: Phase::Starting,
            running: None,
            status: None,
            conversations: Vec::new(),
            peers: Vec::new(),
            selected: None,
            chat: None,
            drafts: HashMap::new(),
            compose: HashMap::new(),
            found: Default::default(),
            focus_composer: false,
            dialog: None,
            notices: Vec::new(),
            key_changes: Vec::new(),
            search: String::new(),
            alone_since: None,
            alone_polled: None,
            pictures: Default::default(),
            transfers: Default::default(),
            picking: false,
            // Invalid settings stop the node's start with their message; here only what
            // the settings page shows.
            machine: crate::app::machine_policy::MachinePolicy::load().unwrap_or_default(),
            limits_busy: false,
            limits_dirty: false,
            admin: Default::default(),
            reloads: Reloads::default(),
            settings_writer,
            title: String::new(),
            focused: true,
            reported_focus: None,
            frames: 0,
            raise_requested,
        };
        // Files opened with their program a day ago or earlier are no longer needed.
        let opened = app.config.dir.opened();
        app.bridge
            .runtime()
            .spawn_blocking(move || remove_older(&opened, ONE_DAY));
        if ready {
            app.start_node(0);
        } else {
            let mut wizard = Wizard::default();
            if let Ok(identity) = launch::load_identity(&app.config.dir) {
                wizard.name = identity.display_name().to_string();
                wizard.step = super::wizard::Step::Network;
            }
            app.phase = Phase::Wizard(Box::new(wizard));
        }
        app
    }

    pub fn lang(&self) -> Lang {
        self.config
            .language
            .or(self.settings.language)
            .unwrap_or_else(Lang::from_system)
    }

    pub fn t(&self) -> &'static Texts {
        self.lang().texts()
    }

    /// The running node, once started (tests use it to reach the app's node).
    pub fn node(&self) -> Option<&NodeHandle> {
        self.running.as_ref().map(|r| &r.node)
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    pub fn conversations(&self) -> &[ConversationView] {
        &self.conversations
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The chat list and (if one is open) the conversation's messages are on screen.
    pub fn chat_shown(&self) -> bool {
        matches!(self.phase, Phase::Running)
            && self.status.is_some()
            && !self.reloads.conversations.busy
            && !self.reloads.conversations.dirty
            && self.chat.as_ref().is_none_or(|c| c.is_loaded())
    }

    /// The open conversation, if any.
    pub fn chat(&self) -> Option<&ChatState> {
        self.chat.as_ref()
    }

    pub fn select_conversation(&mut self, conversation: &str) {
        self.select(conversation.to_string());
    }

    pub(super) fn start_node(&mut self, delay_ms: u64) {
        self.phase = Phase::Starting;
        let dir = self.config.dir.clone();
        let mut options = self.config.launch.clone();
        options.file_limits = self.file_limits();
        self.bridge.spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let mut attempt = 0;
            loop {
                match launch::launch(&dir, options.clone()).await {
                    Ok(running) => return Update::Started(Box::new(running)),
                    // The previous node (or a `flurfunk node`) still holds the database.
                    Err(launch::LaunchError::Store(e)) if attempt < START_RETRIES => {
                        tracing::debug!("start: {e}; retrying");
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(e) => return Update::StartFailed(e.to_string()),
                }
            }
        });
    }

    /// Stop the node and start it again (after joining another network).
    pub(super) fn restart_node(&mut self) {
        if let Some(running) = self.running.take() {
            let node = running.node.clone();
            drop(running); // stops the control socket
            self.bridge.spawn(async move {
                let _ = node.shutdown().await;
                Update::Stopped
            });
        }
        self.phase = Phase::Starting;
        self.conversations.clear();
        self.peers.clear();
        self.status = None;
        self.selected = None;
        self.chat = None;
    }

    /// Apply every update that has arrived and start the reloads they call for.
    pub fn logic(&mut self, ctx: &egui::Context) {
        // The window system's word on focus counts when it changes; a click into the
        // window counts too (some systems never report focus).
        let reported = ctx.input(|i| i.viewport().focused);
        let clicked = ctx.input(|i| i.pointer.any_pressed());
        let mut focused = self.focused;
        if reported != self.reported_focus {
            self.reported_focus = reported;
            focused = reported.unwrap_or(true);
        }
        if clicked {
            focused = true;
        }
        if focused && !self.focused {
            self.focused = true;
            self.mark_selected_read();
        }
        self.focused = focused;
        if self.raise_requested.swap(false, Ordering::Relaxed) {
            ctx.send_viewport_cmd(egui::ViewportCommand::Visible(true));
            ctx.send_viewport_cmd(egui::ViewportCommand::Minimized(false));
            ctx.send_viewport_cmd(egui::ViewportCommand::Focus);
        }
        while let Some(update) = self.bridge.try_next() {
            self.apply(update);
        }
        self.start_reloads();
        self.poll_transfers(ctx);
        self.pictures.end_frame();
        self.update_title(ctx);
        if let Some(since) = self.alone_since {
            let left = ALONE_AFTER.saturating_sub(since.elapsed());
            if !left.is_zero() {
                // One wake-up when the "nobody reachable" banner is due, not a busy loop.
                ctx.request_repaint_after(left);
            }
            if self
                .alone_polled
                .is_none_or(|at| at.elapsed() >= ALONE_STATUS_EVERY)
            {
                self.alone_polled = Some(Instant::now());
                self.reloads.status.dirty = true;
            }
            ctx.request_repaint_after(ALONE_STATUS_EVERY);
        }
    }

    fn apply(&mut self, update: Update) {
        match update {
            Update::Started(mut running) => {
                let events = std::mem::replace(&mut running.events, running.node.subscribe());
                self.bridge.follow(events);
                if let Ok(mut node) = SESSION_NODE.lock() {
                    *node = Some(running.node.clone());
                }
                self.admin = super::admin::AdminUi::load(&self.config.dir, &running.network_key);
                self.running = Some(running);
                self.phase = Phase::Running;
                self.alone_since = Some(Instant::now());
                // The file settings as they are now: a change made while the node was
                // starting found no node to tell (it started with the older values).
                self.limits_busy = false;
                self.apply_file_limits();
                self.reload_all();
            }
            Update::StartFailed(e) => self.phase = Phase::Failed(e),
            Update::Stopped => self.start_node(100),
            Update::Status(s) => {
                self.reloads.status.busy = false;
                if s.peers_online > 0 {
                    self.alone_since = None;
                } else if self.alone_since.is_none() {
                    self.alone_since = Some(Instant::now());
                }
                self.status = Some(s);
            }
            Update::Conversations(list) => {
                self.reloads.conversations.busy = false;
                self.conversations = list;
                self.mark_selected_read();
            }
            Update::Peers(list) => {
                self.reloads.peers.busy = false;
                for p in &list {
                    self.observe(&p.user_id, &p.name);
                }
                self.peers = list;
            }
            Update::Messages {
                conversation,
                items,
                older,
                limit,
            } => {
                if !older {
                    self.reloads.messages.busy = false;
                }
                if let Some(chat) = self
                    .chat
                    .as_mut()
                    .filter(|c| c.conversation == conversation)
                {
                    if older {
                        chat.prepend(items, limit);
                    } else {
                        chat.merge_tail(items, limit);
                    }
                }
            }
            Update::Event(event) => self.on_event(event),
            Update::Lagged | Update::Reload => self.reload_all(),
            Update::LimitsApplied(error) => {
                self.limits_busy = false;
                if let Some(e) = error {
                    let prefix = self.t().error_prefix;
                    self.notice(format!("{prefix}: {e}"));
                }
                if std::mem::take(&mut self.limits_dirty) {
                    self.apply_file_limits();
                }
                self.reload_all();
            }
            Update::Open(conv) => {
                self.dialog = None;
                self.reloads.conversations.dirty = true;
                self.select(conv);
            }
            Update::Picture { key, picture } => {
                let ctx = self.bridge.ctx().clone();
                self.pictures.loaded(&ctx, key, picture);
            }
            Update::Downloads(list) => self.transfers.update(list),
            Update::Picked {
                conversation,
                path,
                quick,
            } => {
                let asked = std::mem::replace(&mut self.picking, false);
                // Nothing replaces a dialog opened meanwhile (e.g. the typed path).
                if !asked || self.dialog.is_some() {
                    return;
                }
                match path {
                    Some(path) => {
                        self.open_send_file(&conversation, path.display().to_string());
                    }
                    // No dialog on this system: the send dialog, where a path can be typed.
                    None if quick => self.open_send_file(&conversation, String::new()),
                    None => {} // the user cancelled
                }
            }
            Update::DownloadsFailed => self.transfers.failed_poll(),
            Update::Notice(text) => self.notice(text),
            Update::Found { query, results } => self.found(query, results),
            Update::Versions {
                event_id,
                versions: loaded,
            } => {
                if let Some(Dialog::Versions {
                    event_id: shown,
                    versions,
                    ..
                }) = self.dialog.as_mut()
                    && *shown == event_id
                {
                    *versions = Some(loaded);
                }
            }
            Update::Error(e) => {
                // A failed reload must not block the next one.
                self.reloads.status.busy = false;
                self.reloads.conversations.busy = false;
                self.reloads.peers.busy = false;
                self.reloads.messages.busy = false;
                let prefix = self.t().error_prefix;
                self.notice(format!("{prefix}: {e}"));
            }
        }
    }

    fn on_event(&mut self, event: NodeEvent) {
        let selected = self.selected.clone();
        let is_selected = |c: &str| selected.as_deref() == Some(c);
        match event {
            NodeEvent::Message {
                conversation,
                conversation_name,
                author_name,
                text,
                for_some_members,
                file,
                mentions_me,
                ..
            } => {
                let text = match file {
                    Some(f) => super::files::preview_line(&f, &text, self.t()),
                    None => text,
                };
                self.reloads.conversations.dirty = true;
                if is_selected(&conversation) {
                    self.reloads.messages.dirty = true;
                }
                // A muted chat is quiet, unless the message calls the user with @.
                let quiet = self.is_muted(&conversation) && !mentions_me;
                if !quiet && (!self.focused || !is_selected(&conversation)) {
                    let text = if for_some_members {
                        format!("{}\n{}", text, self.t().for_some_members)
                    } else {
                        text
                    };
                    self.notify(&author_name, &conversation_name, &text);
                }
            }
            NodeEvent::Mentioned {
                conversation,
                conversation_name,
                author_name,
                text,
                ..
            } => {
                // An @ added by an edit: told even in a muted chat, as a new mention is.
                if !self.focused || !is_selected(&conversation) {
                    self.notify(&author_name, &conversation_name, &text);
                }
            }
            NodeEvent::FileReady { conversation, .. } => {
                if is_selected(&conversation) {
                    self.reloads.messages.dirty = true;
                }
            }
            NodeEvent::Saved { conversation, .. }
            | NodeEvent::MessageChanged { conversation, .. }
            | NodeEvent::Receipt { conversation }
            | NodeEvent::Retracted { conversation, .. } => {
                self.reloads.conversations.dirty = true;
                // The outbox count in the status bar changes with these.
                self.reloads.status.dirty = true;
                if is_selected(&conversation) {
                    self.reloads.messages.dirty = true;
                }
            }
            NodeEvent::ConversationCreated { conversation, .. }
            | NodeEvent::ConversationChanged { conversation, .. } => {
                self.reloads.conversations.dirty = true;
                if is_selected(&conversation) {
                    self.reloads.messages.dirty = true;
                }
            }
            NodeEvent::PeerOnline { .. } | NodeEvent::PeerOffline { .. } => {
                self.reloads.peers.dirty = true;
                self.reloads.status.dirty = true;
            }
            NodeEvent::Profile { user_id, name } => {
                self.observe(&user_id, &name);
                self.reloads.peers.dirty = true;
                self.reloads.conversations.dirty = true;
            }
            NodeEvent::AdminStatement { .. } => {
                // Official names, the policy or who left may have changed.
                self.reloads.peers.dirty = true;
                self.reloads.conversations.dirty = true;
                self.reloads.messages.dirty = true;
                self.reloads.status.dirty = true;
            }
            NodeEvent::LeftOrganisation { name, .. } => {
                self.reloads.peers.dirty = true;
                self.reloads.conversations.dirty = true;
                self.reloads.messages.dirty = true;
                let text = super::i18n::fill(self.t().left_organisation, &[("name", &name)]);
                self.notice(text);
            }
            NodeEvent::Listening { .. } => self.reloads.status.dirty = true,
            NodeEvent::Stats { .. } => {}
            NodeEvent::Warning { message } => self.notice(message),
            // Progress is asked for while a file is on screen (`poll_transfers`).
            NodeEvent::FileProgress { .. } => {}
            NodeEvent::DiskFull { .. } => {
                let text = self.t().disk_full_files;
                self.notice(text.to_string());
            }
            NodeEvent::Misbehaviour {
                what,
                conversation_name,
                name,
                ..
            } => {
                let t = self.t();
                let text = if what == "wrong_key" {
                    t.misbehaviour_wrong_key
                } else {
                    t.misbehaviour_two_versions
                };
                self.notice(super::i18n::fill(
                    text,
                    &[("name", &name), ("group", &conversation_name)],
                ));
            }
        }
    }

    fn reload_all(&mut self) {
        self.reloads.status.dirty = true;
        self.reloads.conversations.dirty = true;
        self.reloads.peers.dirty = true;
        self.reloads.messages.dirty = self.selected.is_some();
    }

    fn start_reloads(&mut self) {
        let Some(node) = self.node().cloned() else {
            return;
        };
        if self.reloads.status.start() {
            self.bridge
                .act(&node, |n| async move { n.status().await }, Update::Status);
        }
        if self.reloads.conversations.start() {
            self.bridge.act(
                &node,
                |n| async move { n.conversations().await },
                Update::Conversations,
            );
        }
        if self.reloads.peers.start() {
            self.bridge
                .act(&node, |n| async move { n.peers().await }, Update::Peers);
        }
        if self.reloads.messages.start() {
            let Some((conv, id)) = self
                .selected
                .clone()
                .and_then(|c| c.parse::<ConversationId>().ok().map(|id| (c, id)))
            else {
                self.reloads.messages.busy = false;
                return;
            };
            let limit = PAGE_MESSAGES;
            self.bridge.act(
                &node,
                move |n| async move { n.messages(id, None, limit).await },
                move |items| Update::Messages {
                    conversation: conv,
                    items,
                    older: false,
                    limit,
                },
            );
        }
    }

    /// Open a conversation: show what is known at once, load its newest messages.
    pub(super) fn select(&mut self, conversation: String) {
        if self.selected.as_deref() == Some(conversation.as_str()) {
            return;
        }
        self.clear_marked_unread(&conversation);
        self.selected = Some(conversation.clone());
        self.chat = Some(ChatState::new(conversation));
        self.reloads.messages = Refresh {
            dirty: true,
            busy: false,
        };
        self.mark_selected_read();
    }

    /// Load the page before the oldest loaded message.
    pub(super) fn load_older(&mut self) {
        let Some(node) = self.node().cloned() else {
            return;
        };
        let Some(chat) = self.chat.as_mut() else {
            return;
        };
        if chat.loading_older || !chat.has_older {
            return;
        }
        let Some(before) = chat.items.first().and_then(|m| m.order_key()) else {
            return;
        };
        let Ok(id) = chat.conversation.parse::<ConversationId>() else {
            return;
        };
        chat.loading_older = true;
        let conv = chat.conversation.clone();
        self.bridge.act(
            &node,
            move |n| async move { n.messages(id, Some(before), PAGE_MESSAGES).await },
            move |items| Update::Messages {
                conversation: conv,
                items,
                older: true,
                limit: PAGE_MESSAGES,
            },
        );
    }

    fn mark_selected_read(&mut self) {
        if !self.focused {
            return;
        }
        let Some(node) = self.node().cloned() else {
            return;
        };
        let Some(conv) = self.selected.clone() else {
            return;
        };
        let unread = self
            .conversations
            .iter()
            .any(|c| c.conversation == conv && c.unread > 0);
        if !unread {
            return;
        }
        if let Some(c) = self
            .conversations
            .iter_mut()
            .find(|c| c.conversation == conv)
        {
            c.unread = 0; // shown at once; the node's answer confirms
        }
        if let Ok(id) = conv.parse::<ConversationId>() {
            self.bridge.act(
                &node,
                move |n| async move { n.mark_read(id).await },
                |_| Update::Reload,
            );
        }
    }

    pub(super) fn send_draft(&mut self) {
        let Some(conv) = self.selected.clone() else {
            return;
        };
        let Some(node) = self.node().cloned() else {
            return;
        };
        let text = self.drafts.remove(&conv).unwrap_or_default();
        let text = text
            .trim_end_matches(['\n', '\r', ' '])
            .trim_start_matches('\n')
            .to_string();
        if text.trim().is_empty() {
            return;
        }
        let Ok(id) = conv.parse::<ConversationId>() else {
            return;
        };
        if let Some(chat) = self.chat.as_mut() {
            chat.stick_to_bottom();
        }
        let members = self
            .conversations
            .iter()
            .find(|c| c.conversation == conv)
            .map(|c| c.members.clone())
            .unwrap_or_default();
        let mentions = crate::app::messages::mentioned(&text, &members);
        let target = |event_id: &str| event_id.parse::<crate::wire::EventId>().ok();
        match self.compose.remove(&conv) {
            Some(super::actions::Compose::Edit { event_id }) => {
                let Some(target) = target(&event_id) else {
                    return;
                };
                // Editing turned off while the edit was open: the text stays in the
                // composer (to send as a new message or copy), and the reason is told.
                if !self.policy().allows(crate::wire::FEATURE_EDITS) {
                    self.drafts.insert(conv, text);
                    let t = self.t();
                    self.notice(fill(t.feature_off_notice, &[("feature", t.feature_edits)]));
                    return;
                }
                self.bridge.act(
                    &node,
                    move |n| async move { n.edit(id, target, text, mentions).await },
                    |_| Update::Reload,
                );
            }
            Some(super::actions::Compose::Reply { event_id, .. }) => {
                let reply_to = target(&event_id);
                self.bridge.act(
                    &node,
                    move |n| async move { n.send_message(id, text, reply_to, mentions).await },
                    |_| Update::Reload,
                );
            }
            None => self.bridge.act(
                &node,
                move |n| async move { n.send_message(id, text, None, mentions).await },
                |_| Update::Reload,
            ),
        }
    }

    pub(super) fn notice(&mut self, text: String) {
        if self.notices.len() >= MAX_NOTICES {
            self.notices.remove(0);
        }
        self.notices.push(text);
    }

    pub(super) fn own_user(&self) -> String {
        self.node()
            .map(|n| n.user_id().to_string())
            .unwrap_or_default()
    }

    /// Record a colleague's name and key in the contact book (saved only when it changed);
    /// a known name with a new key becomes a warning banner.
    fn observe(&mut self, user: &str, name: &str) {
        if self.settings.contacts.get(user).is_some_and(|n| n == name) {
            return;
        }
        let me = self.own_user();
        if let Some(change) = self.settings.observe(&me, user, name) {
            if self.key_changes.len() >= MAX_NOTICES {
                self.key_changes.remove(0);
            }
            self.key_changes.push(change);
        }
        self.save_settings();
    }

    /// Hand the settings to the writer task: the file is written (and synced) off the UI
    /// thread; of several quick changes only the latest is written.
    /// The settings for files: what the user chose here, else what the app was started
    /// with.
    pub(super) fn file_limits(&self) -> crate::node::FileLimits {
        let mut limits = self.config.launch.file_limits;
        if let Some(bytes) = self.settings.auto_download_bytes {
            limits.auto_download_bytes = bytes;
        }
        if let Some(bytes) = self.settings.files_quota_bytes {
            limits.quota_bytes = bytes;
        }
        limits
    }

    /// Tell the running node the settings for files (after a change).
    pub(super) fn apply_file_limits(&mut self) {
        self.save_settings();
        if self.limits_busy {
            self.limits_dirty = true;
            return;
        }
        let limits = self.file_limits();
        if let Some(node) = self.node().cloned() {
            self.limits_busy = true;
            self.bridge.spawn(async move {
                Update::LimitsApplied(
                    node.set_file_limits(limits)
                        .await
                        .err()
                        .map(|e| e.to_string()),
                )
            });
        }
    }

    pub(super) fn save_settings(&mut self) {
        let _ = self.settings_writer.send(Some(self.settings.clone()));
    }

    pub(super) fn peer(&self, user: &str) -> Option<&PeerView> {
        self.peers.iter().find(|p| p.user_id == user)
    }

    /// A display name for a user id: members of the open chat, peers, the contact book.
    pub(super) fn name_of(&self, user: &str) -> String {
        if let Some(p) = self.peer(user) {
            return p.name.clone();
        }
        for c in &self.conversations {
            if let Some(m) = c.members.iter().find(|m| m.user_id == user) {
                return m.name.clone();
            }
        }
        self.settings
            .contacts
            .get(user)
            .cloned()
            .unwrap_or_else(|| user.chars().take(8).collect())
    }

    pub(super) fn total_unread(&self) -> usize {
        self.conversations.iter().map(|c| c.unread).sum()
    }

    fn update_title(&mut self, ctx: &egui::Context) {
        let unread = self.total_unread();
        let title = if unread > 0 {
            format!("({unread}) {}", self.t().app_name)
        } else {
            self.t().app_name.to_string()
        };
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
    }

    pub fn window_title(&self) -> &str {
        &self.title
    }

    fn notify(&self, author: &str, chat: &str, text: &str) {
        if !self.config.desktop_notifications || !self.settings.notifications {
            return;
        }
        let summary = fill(
            self.t().notification_title,
            &[("name", author), ("chat", chat)],
        );
        // The organisation turned previews off (screens visitors see): who and where only.
        // Until the node's policy is known (start-up, a restart) only this machine's
        // settings are, and its "off" must hold from the first message: no text then.
        let previews = self.status.is_some()
            && self.policy().allows(crate::wire::FEATURE_PREVIEWS)
            && self.machine.policy.allows(crate::wire::FEATURE_PREVIEWS);
        let text = if previews {
            text
        } else {
            self.t().notification_hidden
        };
        super::notify::show(self.bridge.runtime(), summary, text.to_string());
    }

    /// Draw one frame (the eframe `App::ui` and the tests call this).
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.frames += 1;
        match &mut self.phase {
            Phase::Starting => {
                let text = self.t().starting;
                egui::CentralPanel::default().show(ui, |ui| {
                    ui.centered_and_justified(|ui| ui.heading(text));
                });
            }
            Phase::Failed(e) => {
                let e = e.clone();
                let t = self.t();
                egui::CentralPanel::default().show(ui, |ui| {
                    ui.vertical_centered(|ui| {
                        ui.add_space(80.0);
                        ui.heading(t.start_failed);
                        ui.add_space(12.0);
                        ui.label(e);
                    });
                });
            }
            Phase::Wizard(_) => self.wizard_ui(ui),
            Phase::Running => self.main_ui(ui),
        }
    }
}

impl eframe::App for FlurfunkApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        FlurfunkApp::logic(self, ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        FlurfunkApp::ui(self, ui);
    }

    fn on_exit(&mut self) {
        // The writer task may not get to the last change before the process ends.
        if let Err(e) = self.settings.save(&Settings::path(&self.config.dir)) {
            tracing::warn!("cannot save settings: {e}");
        }
        if let Some(running) = self.running.take() {
            let node = running.node.clone();
            drop(running);
            // Flush before the process ends; the runtime is still alive here.
            let _ = self.bridge.runtime().block_on(async {
                tokio::time::timeout(Duration::from_secs(5), node.shutdown()).await
            });
        }
    }
}

/// Remove what in `dir` was last changed more than `age` ago (opened files; a file still
/// open in its program on Windows stays until next time).
fn remove_older(dir: &std::path::Path, age: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|e| e > age);
        if old {
            let path = entry.path();
            // Opened files are read-only (so edits are saved elsewhere), and Windows
            // removes no read-only file: clear the flag of plain files (never through a
            // link), on Windows only (on Unix it would make them writable by everyone).
            #[cfg(windows)]
            for file in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                if let Ok(meta) = std::fs::symlink_metadata(file.path())
                    && meta.is_file()
                {
                    let mut perms = meta.permissions();
                    #[allow(clippy::permissions_set_readonly_false)]
                    perms.set_readonly(false);
                    let _ = std::fs::set_permissions(file.path(), perms);
                }
            }
            // `DirEntry::file_type` does not follow a link (a link is removed, not
            // what it points to).
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let _ = if is_dir {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}
