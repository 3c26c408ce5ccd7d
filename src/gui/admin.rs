//! The settings' section for the network's admin: shown only where the admin key of this
//! node's network is in the data directory (`DIR/admin.key`, the installation that made
//! the network). Sets the organisation's policy and a single group's retention, and
//! revokes a colleague who left, as `flurfunk admin policy`, `admin retention` and
//! `admin revoke` do, and shows the last lines of the audit log. Signing happens here;
//! the node checks and spreads what it is given.

use std::sync::Arc;

use egui::RichText;

use super::app::FlurfunkApp;
use super::bridge::Update;
use crate::admin::AdminKey;
use crate::wire::{AdminStatement, Policy, Presence, StatementKind};

/// Lines of the audit log shown.
const AUDIT_LINES: usize = 5;

/// What the admin section holds between frames.
#[derive(Default)]
pub struct AdminUi {
    /// The admin key, when it is this network's.
    pub key: Option<Arc<AdminKey>>,
    /// The policy being edited (`None`: not touched, the one in force is shown).
    draft: Option<Policy>,
    /// The colleague chosen to revoke, and whether "really?" was asked.
    revoke: Option<String>,
    confirm: bool,
    /// The group whose own retention is being set, and the period chosen (`None`: the
    /// network's, like every chat).
    group_keep: Option<(String, Option<u64>)>,
    /// Whether "really?" was asked for a shorter period.
    confirm_keep: bool,
    /// The colleague whose directory entry is being edited, with the official name and
    /// department typed.
    directory: Option<DirectoryDraft>,
    /// The audit log's last lines, and when they were read (not at every frame).
    audit: Vec<String>,
    audit_read: Option<std::time::Instant>,
}

/// A directory entry being edited in the admin section.
struct DirectoryDraft {
    user: String,
    name: String,
    department: String,
    /// Whether the colleague is in the directory now (the entry can be taken out).
    listed: bool,
}

impl AdminUi {
    /// The admin key in `dir` if it is the one `network` names; none otherwise (an
    /// unmanaged network, another network's key, no key here).
    pub fn load(dir: &crate::app::data_dir::DataDir, network: &crate::net::NetworkKey) -> Self {
        let key = network.admin().and_then(|public| {
            let path = dir.admin_key();
            if !path.exists() {
                return None;
            }
            match AdminKey::load(&path) {
                Ok(key) if key.public() == public => Some(Arc::new(key)),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "admin key not usable");
                    None
                }
            }
        });
        AdminUi {
            key,
            ..AdminUi::default()
        }
    }
}

impl FlurfunkApp {
    /// The admin rows of the settings grid (nothing without the admin key).
    pub(super) fn admin_settings_ui(&mut self, ui: &mut egui::Ui) {
        let Some(key) = self.admin.key.clone() else {
            return;
        };
        let t = self.t();
        ui.label(RichText::new(t.admin_title).strong());
        ui.vertical(|ui| {
            ui.label(RichText::new(t.admin_hint).small().weak());
            let older = self.status.as_ref().map_or(0, |s| s.peers_on_older_builds);
            if older > 0 {
                ui.label(
                    RichText::new(super::i18n::fill(
                        t.admin_older_builds,
                        &[("n", &older.to_string())],
                    ))
                    .small()
                    .color(super::style::DEMO_TEXT),
                );
            }
            // The network's own statement, not what is in force here: this machine's
            // settings must not be signed into everyone's policy.
            let in_force = self
                .status
                .as_ref()
                .and_then(|s| s.network_policy)
                .unwrap_or_default();
            let mut draft = self.admin.draft.unwrap_or(in_force);
            ui.checkbox(&mut draft.read_receipts, t.admin_read_receipts);
            ui.horizontal(|ui| {
                let l = ui.label(t.admin_presence);
                let label = |p: Presence| match p {
                    Presence::Full => t.admin_presence_full,
                    Presence::OnlineOnly => t.admin_presence_online,
                    Presence::Hidden => t.admin_presence_hidden,
                };
                egui::ComboBox::from_id_salt("admin-presence")
                    .selected_text(label(draft.presence))
                    .show_ui(ui, |ui| {
                        for p in [Presence::Full, Presence::OnlineOnly, Presence::Hidden] {
                            ui.selectable_value(&mut draft.presence, p, label(p));
                        }
                    })
                    .response
                    .labelled_by(l.id);
            });
            ui.checkbox(&mut draft.delete_for_everyone, t.admin_delete_for_everyone);
            ui.label(t.admin_features);
            for (bit, label) in feature_labels(t) {
                let mut on = draft.features_off & bit == 0;
                if ui.checkbox(&mut on, label).changed() {
                    draft.features_off ^= bit;
                }
            }
            window_choice(
                ui,
                t,
                "admin-edit-window",
                t.admin_edit_window,
                &mut draft.edit_window_s,
            );
            if draft.delete_for_everyone {
                window_choice(
                    ui,
                    t,
                    "admin-delete-window",
                    t.admin_delete_window,
                    &mut draft.delete_window_s,
                );
            }
            time_choice(
                ui,
                t,
                "admin-keep-messages",
                t.admin_keep_messages,
                &mut draft.keep_messages_s,
                &KEEP,
                t.keep_for_good,
            );
            if draft != in_force || self.admin.draft.is_some() {
                self.admin.draft = Some(draft);
            }
            let changed = draft != in_force;
            if ui
                .add_enabled(changed, egui::Button::new(t.admin_apply_policy))
                .clicked()
            {
                self.publish_policy(key.clone(), draft);
            }

            self.group_keep_ui(ui, key.clone(), in_force.keep_messages_s);

            ui.add_space(6.0);
            // Name and the end of the user id: two colleagues called alike stay apart.
            let others: Vec<(String, String)> = self
                .peers
                .iter()
                .map(|p| {
                    let tail: String = p
                        .user_id
                        .chars()
                        .skip(p.user_id.chars().count().saturating_sub(6))
                        .collect();
                    let department = p
                        .department
                        .as_deref()
                        .map(|d| format!(", {d}"))
                        .unwrap_or_default();
                    (
                        p.user_id.clone(),
                        format!("{} (…{tail}{department})", p.name),
                    )
                })
                .collect();
            self.directory_ui(ui, key.clone(), &others);
            ui.add_space(6.0);
            ui.horizontal(|ui| {
                let l = ui.label(t.admin_revoke);
                let shown = self
                    .admin
                    .revoke
                    .as_ref()
                    .and_then(|u| others.iter().find(|(id, _)| id == u))
                    .map_or(t.admin_choose.to_string(), |(_, name)| name.clone());
                egui::ComboBox::from_id_salt("admin-revoke")
                    .selected_text(shown)
                    .show_ui(ui, |ui| {
                        for (id, name) in &others {
                            if ui
                                .selectable_label(self.admin.revoke.as_ref() == Some(id), name)
                                .clicked()
                            {
                                self.admin.revoke = Some(id.clone());
                                self.admin.confirm = false;
                            }
                        }
                    })
                    .response
                    .labelled_by(l.id);
            });
            if let Some(user) = self.admin.revoke.clone() {
                let text = if self.admin.confirm {
                    t.admin_revoke_confirm
                } else {
                    t.admin_revoke_button
                };
                if ui
                    .button(RichText::new(text).color(super::style::DEMO_TEXT))
                    .clicked()
                {
                    if self.admin.confirm {
                        self.revoke(key.clone(), user);
                        self.admin.revoke = None;
                        self.admin.confirm = false;
                    } else {
                        self.admin.confirm = true;
                    }
                }
            }

            if self
                .admin
                .audit_read
                .is_none_or(|at| at.elapsed() > std::time::Duration::from_secs(2))
            {
                self.admin.audit = read_audit_tail(&self.config.dir.admin_audit_log());
                self.admin.audit_read = Some(std::time::Instant::now());
            }
            if !self.admin.audit.is_empty() {
                ui.add_space(6.0);
                ui.label(RichText::new(t.admin_audit).small());
                for line in &self.admin.audit {
                    ui.label(RichText::new(line).small().weak());
                }
            }
        });
        ui.end_row();
    }

    /// The rows for one group's own retention (admin statement kind 6): choose a group
    /// this node is in and a period (shorter than `network_keep` to make a difference;
    /// "like every chat" takes it away), and the groups that have one.
    fn group_keep_ui(&mut self, ui: &mut egui::Ui, key: Arc<AdminKey>, network_keep: Option<u64>) {
        let t = self.t();
        ui.add_space(6.0);
        // Each group with its member count and the end of its id (two groups of one
        // name stay apart), and its own period as the organisation set it.
        let groups: Vec<(String, String, Option<u64>)> = self
            .conversations
            .iter()
            .filter(|c| c.kind == "group" && c.is_member)
            .map(|c| {
                let tail = &c.conversation[c.conversation.len().saturating_sub(6)..];
                let count =
                    super::i18n::fill(t.members_count, &[("n", &c.members.len().to_string())]);
                let label = format!("{} ({count}, …{tail})", c.name);
                (c.conversation.clone(), label, c.group_keep_messages_s)
            })
            .collect();
        let chosen = self.admin.group_keep.clone();
        ui.horizontal(|ui| {
            let l = ui.label(t.admin_group_keep);
            let shown = chosen
                .as_ref()
                .and_then(|(c, _)| groups.iter().find(|g| &g.0 == c))
                .map_or(t.admin_group_choose.to_string(), |g| g.1.clone());
            egui::ComboBox::from_id_salt("admin-group-keep")
                .selected_text(shown)
                .show_ui(ui, |ui| {
                    for (id, name, own) in &groups {
                        let on = chosen.as_ref().is_some_and(|(c, _)| c == id);
                        if ui.selectable_label(on, name).clicked() {
                            self.admin.group_keep = Some((id.clone(), *own));
                            self.admin.confirm_keep = false;
                        }
                    }
                })
                .response
                .labelled_by(l.id);
        });
        if let Some((conv, mut keep)) = self.admin.group_keep.clone() {
            let own = groups.iter().find(|g| g.0 == conv).and_then(|g| g.2);
            ui.horizontal(|ui| {
                time_choice(
                    ui,
                    t,
                    "admin-group-keep-time",
                    t.admin_group_keep_for,
                    &mut keep,
                    &GROUP_KEEP,
                    t.keep_like_all,
                );
                if keep != self.admin.group_keep.as_ref().and_then(|g| g.1) {
                    self.admin.confirm_keep = false;
                }
                // Shortening deletes on every computer within the hour, for good: asked
                // twice.
                let shortens = keep.is_some_and(|k| own.is_none_or(|o| k < o));
                let text = if self.admin.confirm_keep {
                    t.admin_group_keep_confirm
                } else {
                    t.admin_group_keep_set
                };
                if ui
                    .add_enabled(keep != own, egui::Button::new(text))
                    .clicked()
                {
                    if shortens && !self.admin.confirm_keep {
                        self.admin.confirm_keep = true;
                    } else {
                        self.admin.confirm_keep = false;
                        self.publish_group_keep(key, conv.clone(), keep);
                        return;
                    }
                }
                self.admin.group_keep = Some((conv, keep));
            });
            if keep.is_some_and(|k| network_keep.is_some_and(|n| k >= n)) {
                ui.label(RichText::new(t.admin_group_keep_longer).small().weak());
            }
        }
        let own: Vec<String> = self
            .conversations
            .iter()
            .filter_map(|c| {
                let s = c.group_keep_messages_s?;
                Some(format!("{}: {}", c.name, super::dialogs::duration(t, s)))
            })
            .collect();
        if !own.is_empty() {
            ui.label(
                RichText::new(format!("{} {}", t.admin_group_keep_own, own.join(", ")))
                    .small()
                    .weak(),
            );
        }
    }

    /// The rows for one colleague's directory entry: choose a colleague (`others`: user
    /// id and label), type the official name and department, save it for everyone or take
    /// the colleague out of the directory. (A whole directory is imported with
    /// `flurfunk admin directory import`.)
    fn directory_ui(&mut self, ui: &mut egui::Ui, key: Arc<AdminKey>, others: &[(String, String)]) {
        let t = self.t();
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            let l = ui.label(t.admin_directory);
            let shown = self
                .admin
                .directory
                .as_ref()
                .and_then(|d| others.iter().find(|(id, _)| *id == d.user))
                .map_or(t.admin_choose.to_string(), |(_, label)| label.clone());
            egui::ComboBox::from_id_salt("admin-directory")
                .selected_text(shown)
                .show_ui(ui, |ui| {
                    for (id, label) in others {
                        let on = self.admin.directory.as_ref().is_some_and(|d| d.user == *id);
                        if ui.selectable_label(on, label).clicked() {
                            let peer = self.peers.iter().find(|p| p.user_id == *id);
                            let listed = peer.is_some_and(|p| p.official);
                            // A listed colleague's official name, less its mark, to
                            // change; none for one not listed: the admin types it (a
                            // self-chosen name, a look-alike's, must not become
                            // official by one click).
                            let name = peer
                                .filter(|_| listed)
                                .map(|p| {
                                    p.name
                                        .trim_end_matches(crate::identity::OFFICIAL_MARK)
                                        .trim_end()
                                        .to_string()
                                })
                                .unwrap_or_default();
                            self.admin.directory = Some(DirectoryDraft {
                                user: id.clone(),
                                name,
                                department: peer
                                    .and_then(|p| p.department.clone())
                                    .unwrap_or_default(),
                                listed,
                            });
                        }
                    }
                })
                .response
                .labelled_by(l.id);
        });
        let Some(mut draft) = self.admin.directory.take() else {
            return;
        };
        ui.horizontal(|ui| {
            let l = ui.label(t.admin_official_name);
            ui.add(egui::TextEdit::singleline(&mut draft.name).desired_width(200.0))
                .labelled_by(l.id);
        });
        ui.horizontal(|ui| {
            let l = ui.label(t.admin_department);
            ui.add(egui::TextEdit::singleline(&mut draft.department).desired_width(200.0))
                .labelled_by(l.id);
        });
        let name_ok = crate::identity::validate_name(draft.name.trim()).is_ok();
        let department_ok = draft.department.trim().is_empty()
            || crate::identity::validate_name(draft.department.trim()).is_ok();
        let mut done = false;
        ui.horizontal(|ui| {
            if ui
                .add_enabled(
                    name_ok && department_ok,
                    egui::Button::new(t.admin_directory_save),
                )
                .clicked()
            {
                let entry = crate::wire::DirectoryEntry {
                    name: draft.name.trim().to_string(),
                    department: draft.department.trim().to_string(),
                };
                self.publish_directory(key.clone(), draft.user.clone(), Some(entry));
                done = true;
            }
            if draft.listed && ui.button(t.admin_directory_remove).clicked() {
                self.publish_directory(key.clone(), draft.user.clone(), None);
                done = true;
            }
        });
        if !done {
            self.admin.directory = Some(draft);
        }
    }

    /// Sign the next directory with `user`'s entry set (`None`: taken out) and hand it to
    /// the node; the audit log gets a line.
    fn publish_directory(
        &mut self,
        key: Arc<AdminKey>,
        user: String,
        entry: Option<crate::wire::DirectoryEntry>,
    ) {
        let Some(node) = self.node().cloned() else {
            return;
        };
        let audit = self.config.dir.admin_audit_log();
        let done = self.t().admin_directory_done.to_string();
        let unchanged = self.t().admin_directory_unchanged.to_string();
        self.bridge.spawn(async move {
            let result = async {
                let id: crate::identity::UserId =
                    user.parse().map_err(|_| "user id".to_string())?;
                let current = held(&node, StatementKind::Directory).await?;
                let mut directory = current
                    .as_ref()
                    .map(|s| crate::wire::Directory::decode(&s.body))
                    .transpose()
                    .map_err(|e| format!("the node holds a malformed directory: {e}"))?
                    .unwrap_or_default();
                let before = directory.clone();
                match &entry {
                    Some(e) => directory.entries.insert(id, e.clone()),
                    None => directory.entries.remove(&id),
                };
                if directory == before {
                    return Ok(false);
                }
                if directory.entries.len() > crate::wire::MAX_DIRECTORY_ENTRIES {
                    return Err(format!(
                        "the directory holds at most {} colleagues",
                        crate::wire::MAX_DIRECTORY_ENTRIES
                    ));
                }
                let next = key
                    .sign_next(
                        current.as_ref(),
                        StatementKind::Directory,
                        crate::node::now_ms(),
                        directory.encode(),
                    )
                    .map_err(|e| e.to_string())?;
                publish_logged(&node, &key, &audit, Some(next), |serial| match &entry {
                    Some(e) => format!(
                        "directory-set\t{user}\t{}\t{}\tserial={serial} (app)",
                        e.name, e.department
                    ),
                    None => format!("directory-remove\t{user}\tserial={serial} (app)"),
                })
                .await
                .map(|()| true)
            }
            .await;
            match result {
                Ok(true) => Update::Notice(done),
                Ok(false) => Update::Notice(unchanged),
                Err(e) => Update::Error(e),
            }
        });
    }

    /// Sign the next group-retention statement with `conv`'s own period set to `keep`
    /// (`None`: taken away) and hand it to the node; the audit log gets a line.
    fn publish_group_keep(&mut self, key: Arc<AdminKey>, conv: String, keep: Option<u64>) {
        let Some(node) = self.node().cloned() else {
            return;
        };
        let audit = self.config.dir.admin_audit_log();
        let done = self.t().admin_group_keep_done.to_string();
        let name = self
            .conversations
            .iter()
            .find(|c| c.conversation == conv)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        self.admin.group_keep = None;
        self.bridge.spawn(async move {
            let result = async {
                let id: crate::wire::ConversationId =
                    conv.parse().map_err(|_| "conversation id".to_string())?;
                let current = held(&node, StatementKind::GroupRetention).await?;
                let next = key
                    .change_group_retention(current.as_ref(), id, keep, crate::node::now_ms())
                    .map_err(|e| e.to_string())?;
                publish_logged(&node, &key, &audit, next, |serial| {
                    format!(
                        "group-retention\tserial={serial}\t{conv}\t{name}: {} (app)",
                        keep.map_or(
                            "the network's period".to_string(),
                            crate::wire::human_window
                        )
                    )
                })
                .await
            }
            .await;
            match result {
                Ok(()) => Update::Notice(done),
                Err(e) => Update::Error(e),
            }
        });
    }

    /// Sign the next policy (the switches shown here changed, the rest of the held
    /// statement kept) and hand it to the node; the audit log gets a line.
    fn publish_policy(&mut self, key: Arc<AdminKey>, draft: Policy) {
        let Some(node) = self.node().cloned() else {
            return;
        };
        let audit = self.config.dir.admin_audit_log();
        let done = self.t().admin_policy_done.to_string();
        self.admin.draft = None;
        self.bridge.spawn(async move {
            let result = async {
                let current = held(&node, StatementKind::Policy).await?;
                let held_policy = current
                    .as_ref()
                    .and_then(|s| Policy::decode(&s.body).ok())
                    .unwrap_or_default();
                let policy = Policy {
                    read_receipts: draft.read_receipts,
                    presence: draft.presence,
                    delete_for_everyone: draft.delete_for_everyone,
                    edit_window_s: draft.edit_window_s,
                    delete_window_s: draft.delete_window_s,
                    keep_messages_s: draft.keep_messages_s,
                    features_off: draft.features_off,
                    ..held_policy
                }
                .carry_retention(&held_policy, crate::node::now_ms());
                let next = key
                    .change_policy(current.as_ref(), policy, crate::node::now_ms())
                    .map_err(|e| e.to_string())?;
                publish_logged(&node, &key, &audit, next, |serial| {
                    format!(
                        "policy\tserial={serial}\tread receipts {}; presence {:?}; delete for everyone {}; edit window {:?} s; delete window {:?} s; messages kept {:?} s; turned off: {} (app)",
                        if policy.read_receipts { "on" } else { "off" },
                        policy.presence,
                        if policy.delete_for_everyone { "allowed" } else { "not allowed" },
                        policy.edit_window_s,
                        policy.delete_window_s,
                        policy.keep_messages_s,
                        crate::wire::features_named(policy.features_off)
                    )
                })
                .await
            }
            .await;
            match result {
                Ok(()) => Update::Notice(done),
                Err(e) => Update::Error(e),
            }
        });
    }

    /// Sign the next revocation list with `user` on it and hand it to the node.
    fn revoke(&mut self, key: Arc<AdminKey>, user: String) {
        let Some(node) = self.node().cloned() else {
            return;
        };
        let audit = self.config.dir.admin_audit_log();
        let name = self.name_of(&user);
        self.bridge.spawn(async move {
            let result = async {
                let id: crate::identity::UserId =
                    user.parse().map_err(|_| "user id".to_string())?;
                let current = held(&node, StatementKind::Revocations).await?;
                let next = key
                    .change_revocations(current.as_ref(), id, true, crate::node::now_ms())
                    .map_err(|e| e.to_string())?;
                publish_logged(&node, &key, &audit, next, |serial| {
                    format!("revoke\t{user}\t{name}\tserial={serial} (app)")
                })
                .await
            }
            .await;
            match result {
                // The node says "left the organisation" itself (an event).
                Ok(()) => Update::Reload,
                Err(e) => Update::Error(e),
            }
        });
    }
}

/// The last `AUDIT_LINES` lines of the audit log, newest first (read from its end: the
/// log only grows).
fn read_audit_tail(path: &std::path::Path) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL_BYTES: u64 = 4096;
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)));
    let mut bytes = Vec::new();
    let _ = file.take(TAIL_BYTES).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if len > TAIL_BYTES && !lines.is_empty() {
        lines.remove(0); // cut off at its start
    }
    lines
        .into_iter()
        .rev()
        .take(AUDIT_LINES)
        .map(|l| l.replace('\t', "  "))
        .collect()
}

/// The statement of `kind` the node holds.
async fn held(
    node: &crate::node::NodeHandle,
    kind: StatementKind,
) -> Result<Option<AdminStatement>, String> {
    let views = node.admin_statements().await.map_err(|e| e.to_string())?;
    crate::node::held_statement(&views, kind)
        .map_err(|e| format!("the node holds a malformed statement: {e}"))
}

/// Hand `next` (when there is a change) to the node, then write `what(serial)` to the
/// audit log: the tail both admin actions share.
async fn publish_logged(
    node: &crate::node::NodeHandle,
    key: &AdminKey,
    audit: &std::path::Path,
    next: Option<AdminStatement>,
    what: impl FnOnce(u64) -> String,
) -> Result<(), String> {
    let Some(next) = next else {
        return Ok(());
    };
    let serial = next.serial;
    node.publish_admin_statement(next)
        .await
        .map_err(|e| e.to_string())?;
    crate::admin::append_audit(audit, key, &what(serial)).map_err(|e| e.to_string())
}

/// The features a policy can turn off, as the app names them.
pub(super) fn feature_labels(t: &super::i18n::Texts) -> [(u64, &'static str); 4] {
    use crate::wire::{FEATURE_EDITS, FEATURE_FILES, FEATURE_PREVIEWS, FEATURE_REACTIONS};
    [
        (FEATURE_FILES, t.feature_files),
        (FEATURE_REACTIONS, t.feature_reactions),
        (FEATURE_EDITS, t.feature_edits),
        (FEATURE_PREVIEWS, t.feature_previews),
    ]
}

/// Windows offered for editing and deleting (seconds; `None`: any time).
const WINDOWS: [Option<u64>; 7] = [
    None,
    Some(15 * 60),
    Some(3_600),
    Some(24 * 3_600),
    Some(2 * 86_400),
    Some(7 * 86_400),
    Some(30 * 86_400),
];

/// One row: a label and a choice of windows (a window set elsewhere is offered too).
fn window_choice(
    ui: &mut egui::Ui,
    t: &super::i18n::Texts,
    id: &str,
    label: &str,
    value: &mut Option<u64>,
) {
    time_choice(ui, t, id, label, value, &WINDOWS, t.any_time);
}

/// How long messages are kept (`Policy::keep_messages_s`), or for good.
const KEEP: [Option<u64>; 6] = [
    None,
    Some(30 * 86_400),
    Some(90 * 86_400),
    Some(180 * 86_400),
    Some(365 * 86_400),
    Some(730 * 86_400),
];

/// A single group's own period (`None`: the network's, like every chat).
const GROUP_KEEP: [Option<u64>; 7] = [
    None,
    Some(86_400),
    Some(7 * 86_400),
    Some(30 * 86_400),
    Some(90 * 86_400),
    Some(180 * 86_400),
    Some(365 * 86_400),
];

fn time_choice(
    ui: &mut egui::Ui,
    t: &super::i18n::Texts,
    id: &str,
    label: &str,
    value: &mut Option<u64>,
    choices: &[Option<u64>],
    none: &str,
) {
    let name = |w: Option<u64>| match w {
        None => none.to_string(),
        Some(s) => super::dialogs::duration(t, s),
    };
    ui.horizontal(|ui| {
        let l = ui.label(label);
        egui::ComboBox::from_id_salt(id)
            .selected_text(name(*value))
            .show_ui(ui, |ui| {
                let mut offered = choices.to_vec();
                if !offered.contains(value) {
                    offered.push(*value);
                }
                for w in offered {
                    ui.selectable_value(value, w, name(w));
                }
            })
            .response
            .labelled_by(l.id);
    });
}
