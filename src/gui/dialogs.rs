//! The windows above the main screen: people, new group, group info, safety number,
//! settings. Each draws its state and starts node actions through the bridge.

use std::collections::BTreeSet;

use egui::{RichText, Sense, vec2};

use super::app::FlurfunkApp;
use super::bridge::Update;
use super::i18n::{Lang, fill};
use super::style;
use crate::identity::{UserId, safety_number};
use crate::net::NetworkKey;
use crate::wire::ConversationId;

pub enum Dialog {
    People,
    NewGroup {
        name: String,
        members: BTreeSet<String>,
        error: Option<String>,
    },
    GroupInfo {
        conversation: String,
        rename: String,
    },
    Verify {
        user: String,
    },
    Settings {
        name: String,
        join_path: String,
        error: Option<String>,
    },
    /// Who has received and read one own message (as WhatsApp's "message info").
    MessageInfo {
        conversation: String,
        event_id: String,
    },
    /// A file to send to the open conversation (chosen by 📎, dropped on the window, or a
    /// picture pasted: then `path` is only its name).
    SendFile {
        conversation: String,
        path: String,
        caption: String,
        error: Option<String>,
        pasted: Option<super::files::Pasted>,
    },
    /// A picture as large as the window allows.
    Picture {
        conversation: String,
        event_id: String,
        name: String,
    },
    /// "Delete for everyone?"
    DeleteMessage(super::actions::DeleteChoice),
    /// Every version of an edited message (None: still loading).
    Versions {
        event_id: String,
        versions: Option<Vec<(u64, String)>>,
    },
    /// "This is a program: open it anyway?"
    OpenProgram {
        conversation: String,
        event_id: String,
        name: String,
    },
}

impl FlurfunkApp {
    pub(super) fn open_people(&mut self) {
        self.dialog = Some(Dialog::People);
    }

    pub(super) fn open_new_group(&mut self) {
        self.dialog = Some(Dialog::NewGroup {
            name: String::new(),
            members: BTreeSet::new(),
            error: None,
        });
    }

    pub(super) fn open_group_info(&mut self, conversation: &str) {
        let rename = self
            .conversations
            .iter()
            .find(|c| c.conversation == conversation)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        self.dialog = Some(Dialog::GroupInfo {
            conversation: conversation.to_string(),
            rename,
        });
    }

    pub(super) fn open_verify(&mut self, user: &str) {
        self.dialog = Some(Dialog::Verify {
            user: user.to_string(),
        });
    }

    pub(super) fn open_message_info(&mut self, conversation: &str, event_id: &str) {
        self.dialog = Some(Dialog::MessageInfo {
            conversation: conversation.to_string(),
            event_id: event_id.to_string(),
        });
    }

    pub(super) fn open_settings(&mut self) {
        let name = self
            .status
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        self.dialog = Some(Dialog::Settings {
            name,
            join_path: String::new(),
            error: None,
        });
    }

    pub(super) fn dialog_ui(&mut self, ctx: &egui::Context) {
        let Some(mut dialog) = self.dialog.take() else {
            return;
        };
        // Esc closes any dialog, as everywhere else.
        if ctx.input_mut(|i| i.consume_key(egui::Modifiers::NONE, egui::Key::Escape)) {
            if let Dialog::Picture { event_id, .. } = &dialog {
                self.pictures.forget(&format!("{event_id}/view"));
            }
            return;
        }
        if let Dialog::Picture {
            conversation,
            event_id,
            name,
        } = &dialog
        {
            // Its own full-window layer, not a small window.
            let keep = self.picture_viewer_ui(ctx, conversation, event_id, name);
            if keep && self.dialog.is_none() {
                self.dialog = Some(dialog);
            }
            return;
        }
        let t = self.t();
        let title = match &dialog {
            Dialog::People => t.people_title,
            Dialog::NewGroup { .. } => t.new_group,
            Dialog::GroupInfo { .. } => t.group_info,
            Dialog::Verify { .. } => t.verify_title,
            Dialog::Settings { .. } => t.settings_title,
            Dialog::MessageInfo { .. } => t.message_info,
            Dialog::SendFile { .. } => t.send_file_title,
            Dialog::Picture { .. } => t.file_photo,
            Dialog::OpenProgram { .. } => t.open_program_title,
            Dialog::DeleteMessage(_) => t.delete_title,
            Dialog::Versions { .. } => t.versions,
        };
        let mut open = true;
        let mut keep = true;
        let mut window = egui::Window::new(title)
            .collapsible(false)
            .resizable(true)
            .default_width(420.0)
            .anchor(egui::Align2::CENTER_TOP, vec2(0.0, 60.0))
            // A dialog taller than the window (the settings with the admin section, on a
            // 768-pixel screen) scrolls instead of being cut off.
            .vscroll(true);
        // The long ones use the window's height (a scrolled list in a small box is hard
        // to read).
        if matches!(dialog, Dialog::Settings { .. } | Dialog::GroupInfo { .. }) {
            window = window.default_height((ctx.content_rect().height() - 120.0).max(300.0));
        }
        window.open(&mut open).show(ctx, |ui| {
            keep = match &mut dialog {
                Dialog::People => self.people_ui(ui),
                Dialog::NewGroup {
                    name,
                    members,
                    error,
                } => self.new_group_ui(ui, name, members, error),
                Dialog::GroupInfo {
                    conversation,
                    rename,
                } => self.group_info_ui(ui, conversation, rename),
                Dialog::Verify { user } => self.verify_ui(ui, user),
                Dialog::Settings {
                    name,
                    join_path,
                    error,
                } => self.settings_ui(ui, name, join_path, error),
                Dialog::MessageInfo {
                    conversation,
                    event_id,
                } => self.message_info_ui(ui, conversation, event_id),
                Dialog::SendFile {
                    conversation,
                    path,
                    caption,
                    error,
                    pasted,
                } => self.send_file_ui(ui, conversation, path, caption, error, pasted),
                Dialog::Picture { .. } => false,
                Dialog::OpenProgram {
                    conversation,
                    event_id,
                    name,
                } => self.open_program_ui(ui, conversation, event_id, name),
                Dialog::DeleteMessage(choice) => self.delete_message_ui(ui, choice),
                Dialog::Versions { versions, .. } => self.versions_ui(ui, versions),
            };
        });
        // An action inside may have opened another dialog (or closed this one).
        if open && keep && self.dialog.is_none() {
            self.dialog = Some(dialog);
        }
    }

    pub(super) fn open_send_file(&mut self, conversation: &str, path: String) {
        self.dialog = Some(Dialog::SendFile {
            conversation: conversation.to_string(),
            path,
            caption: String::new(),
            error: None,
            pasted: None,
        });
    }

    /// The warning before a program or script from a colleague is opened.
    fn open_program_ui(
        &mut self,
        ui: &mut egui::Ui,
        conversation: &str,
        event_id: &str,
        name: &str,
    ) -> bool {
        let t = self.t();
        ui.add(egui::Label::new(fill(t.open_program_warning, &[("name", name)])).wrap());
        ui.add_space(8.0);
        let mut keep = true;
        ui.horizontal(|ui| {
            if ui.button(t.cancel).clicked() {
                keep = false;
            }
            if ui
                .button(RichText::new(t.open_anyway).color(ui.visuals().warn_fg_color))
                .clicked()
            {
                keep = false;
                let message = self
                    .chat()
                    .filter(|c| c.conversation == conversation)
                    .and_then(|c| c.items.iter().find(|m| m.event_id == event_id))
                    .cloned();
                if let Some(m) = message
                    && let Some(file) = m.file.clone()
                {
                    self.open_file(&m, &file, true);
                }
            }
        });
        keep
    }

    /// The file to send and a text with it; false once sent.
    fn send_file_ui(
        &mut self,
        ui: &mut egui::Ui,
        conversation: &str,
        path: &mut String,
        caption: &mut String,
        error: &mut Option<String>,
        pasted: &mut Option<super::files::Pasted>,
    ) -> bool {
        let t = self.t();
        // Whom it goes to, always in sight (the chat behind may have changed).
        if let Some(name) = self
            .conversations
            .iter()
            .find(|c| c.conversation == conversation)
            .map(|c| c.name.clone())
        {
            ui.label(RichText::new(fill(t.send_file_to, &[("name", &name)])).strong());
        }
        if let Some(dropped) =
            ui.input(|i| i.raw.dropped_files.first().map(|f| f.path().to_path_buf()))
        {
            *path = dropped.display().to_string();
            *pasted = None;
        }
        match pasted {
            Some(picture) => {
                let size = picture.preview.size_vec2();
                let scale = (380.0 / size.x).min(260.0 / size.y).min(1.0);
                ui.add(egui::Image::from_texture(&picture.preview).fit_to_exact_size(size * scale));
                ui.label(RichText::new(path.as_str()).weak());
            }
            None => {
                ui.label(t.file_path);
                ui.add(
                    egui::TextEdit::singleline(path)
                        .hint_text(t.file_path_hint)
                        .desired_width(f32::INFINITY),
                );
            }
        }
        ui.label(t.file_caption);
        ui.add(
            egui::TextEdit::multiline(caption)
                .desired_rows(2)
                .desired_width(f32::INFINITY),
        );
        if let Some(e) = error {
            ui.colored_label(ui.visuals().error_fg_color, e.as_str());
        }
        ui.add_space(6.0);
        if !ui.button(t.send).clicked() {
            return true;
        }
        if let Some(picture) = pasted.take() {
            let (Some(node), Ok(id)) =
                (self.node().cloned(), conversation.parse::<ConversationId>())
            else {
                return false;
            };
            let (name, caption) = (path.clone(), caption.trim().to_string());
            let png = picture.to_png();
            if let Some(chat) = self.chat.as_mut() {
                chat.stick_to_bottom();
            }
            self.bridge.act(
                &node,
                move |n| async move {
                    let bytes = tokio::task::spawn_blocking(png)
                        .await
                        .map_err(|e| crate::node::NodeError::Other(e.to_string()))?
                        .map_err(crate::node::NodeError::Other)?;
                    n.send_file_bytes(id, name, bytes, caption).await
                },
                |_| Update::Reload,
            );
            return false;
        }
        let file = std::path::PathBuf::from(path.trim().trim_matches('"'));
        if !file.is_file() {
            *error = Some(t.file_not_found.to_string());
            return true;
        }
        let (Some(node), Ok(id)) = (self.node().cloned(), conversation.parse::<ConversationId>())
        else {
            return false;
        };
        let caption = caption.trim().to_string();
        if let Some(chat) = self.chat.as_mut() {
            chat.stick_to_bottom();
        }
        self.bridge.act(
            &node,
            move |n| async move { n.send_file(id, file, caption).await },
            |_| Update::Reload,
        );
        false
    }

    /// Every reader, receiver and member still waiting for one own message, from the loaded
    /// history (kept current by the receipts that arrive while it is open).
    fn message_info_ui(&mut self, ui: &mut egui::Ui, conversation: &str, event_id: &str) -> bool {
        let t = self.t();
        let Some(m) = self
            .chat()
            .filter(|c| c.conversation == conversation)
            .and_then(|c| c.items.iter().find(|m| m.event_id == event_id))
            .cloned()
        else {
            return false; // the chat was closed or the message is gone
        };
        ui.label(RichText::new(&m.text).italics());
        ui.separator();
        let of = super::chat::recipients(&m).to_string();
        egui::ScrollArea::vertical()
            .max_height(420.0)
            .show(ui, |ui| {
                for (heading, users) in [
                    (t.read_by, &m.read_by),
                    (t.delivered_to, &m.delivered_to),
                    (t.waiting_for, &m.waiting_for),
                ] {
                    let count = fill(t.count_of, &[("n", &users.len().to_string()), ("m", &of)]);
                    ui.label(RichText::new(format!("{heading} {count}")).strong());
                    let mut names: Vec<String> = users.iter().map(|u| self.name_of(u)).collect();
                    names.sort();
                    for name in names {
                        ui.label(format!("  {name}"));
                    }
                    ui.add_space(6.0);
                }
            });
        true
    }

    fn people_ui(&mut self, ui: &mut egui::Ui) -> bool {
        let t = self.t();
        let german = self.lang() == Lang::De;
        if self.peers.is_empty() {
            ui.label(RichText::new(t.people_empty).weak());
            return true;
        }
        let mut peers = self.peers.clone();
        peers.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.name.cmp(&b.name)));
        let mut start = None;
        let mut verify = None;
        egui::ScrollArea::vertical()
            .max_height(420.0)
            .show(ui, |ui| {
                for p in &peers {
                    ui.horizontal(|ui| {
                        let (r, _) = ui.allocate_exact_size(vec2(34.0, 34.0), Sense::hover());
                        style::avatar(ui.painter(), r.center(), 16.0, &p.name, &p.user_id);
                        if p.online {
                            ui.painter().circle_filled(
                                r.center() + vec2(11.0, 11.0),
                                4.5,
                                style::ONLINE,
                            );
                        }
                        ui.vertical(|ui| {
                            ui.horizontal(|ui| {
                                let name = ui.label(RichText::new(&p.name).strong());
                                super::screen::explain_marks(t, name, &p.name);
                                if self.settings.is_verified(&p.user_id) {
                                    ui.label(
                                        RichText::new(t.verify_is_verified)
                                            .small()
                                            .color(style::UNREAD),
                                    );
                                }
                                if let Some(department) = &p.department {
                                    ui.label(RichText::new(department).small().weak());
                                }
                            });
                            let state = if p.online {
                                t.online.to_string()
                            } else if let Some(ms) = p.last_seen_ms {
                                fill(
                                    t.last_seen,
                                    &[(
                                        "time",
                                        &format!(
                                            "{} {}",
                                            super::chat::day_label(t, german, ms),
                                            super::chat::time_of_day(ms)
                                        ),
                                    )],
                                )
                            } else {
                                t.offline.to_string()
                            };
                            ui.label(RichText::new(state).weak().small());
                        });
                        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                            if ui.button(t.start_chat).clicked() {
                                start = Some(p.user_id.clone());
                            }
                            if ui
                                .small_button("🔐")
                                .on_hover_text(t.verify_title)
                                .clicked()
                            {
                                verify = Some(p.user_id.clone());
                            }
                        });
                    });
                    ui.separator();
                }
            });
        if let Some(user) = verify {
            self.open_verify(&user);
            return false;
        }
        if let Some(user) = start
            && let (Some(node), Ok(id)) = (self.node().cloned(), user.parse::<UserId>())
        {
            self.bridge.act(
                &node,
                move |n| async move { n.open_direct(id).await },
                |c| Update::Open(c.to_string()),
            );
        }
        true
    }

    fn new_group_ui(
        &mut self,
        ui: &mut egui::Ui,
        name: &mut String,
        members: &mut BTreeSet<String>,
        error: &mut Option<String>,
    ) -> bool {
        let t = self.t();
        let l = ui.label(t.group_name);
        ui.add(egui::TextEdit::singleline(name).desired_width(300.0))
            .labelled_by(l.id);
        ui.add_space(6.0);
        ui.label(RichText::new(t.group_members).strong());
        if self.peers.is_empty() {
            ui.label(RichText::new(t.people_empty).weak());
        }
        egui::ScrollArea::vertical()
            .max_height(260.0)
            .show(ui, |ui| {
                for p in &self.peers {
                    let mut on = members.contains(&p.user_id);
                    if ui.checkbox(&mut on, &p.name).changed() {
                        if on {
                            members.insert(p.user_id.clone());
                        } else {
                            members.remove(&p.user_id);
                        }
                    }
                }
            });
        if let Some(e) = error {
            ui.colored_label(style::DEMO_TEXT, e.as_str());
        }
        ui.add_space(6.0);
        if ui.button(RichText::new(t.group_create).strong()).clicked() {
            let ids: Vec<UserId> = members.iter().filter_map(|u| u.parse().ok()).collect();
            if name.trim().is_empty() || ids.is_empty() {
                *error = Some(t.group_need_name.to_string());
            } else if let Some(node) = self.node().cloned() {
                let group = name.trim().to_string();
                self.bridge.act(
                    &node,
                    move |n| async move { n.create_group(group, ids).await },
                    |c| Update::Open(c.to_string()),
                );
            }
        }
        true
    }

    fn group_info_ui(
        &mut self,
        ui: &mut egui::Ui,
        conversation: &str,
        rename: &mut String,
    ) -> bool {
        let t = self.t();
        let Some(view) = self
            .conversations
            .iter()
            .find(|c| c.conversation == conversation)
            .cloned()
        else {
            return false;
        };
        let Ok(conv) = conversation.parse::<ConversationId>() else {
            return false;
        };
        let Some(node) = self.node().cloned() else {
            return false;
        };
        let me = self.own_user();
        let organisation = view.organisation.is_some();
        if organisation {
            ui.label(RichText::new(t.org_group_mark).strong());
            ui.label(RichText::new(t.org_group_hint).weak());
        }
        if let Some(s) = view.keep_messages_s {
            let time = duration(t, s);
            ui.label(
                RichText::new(super::i18n::fill(t.group_keep_messages, &[("time", &time)])).weak(),
            );
        }
        if organisation || view.keep_messages_s.is_some() {
            ui.separator();
        }
        // In an organisation's group the directory decides who is in it: no adding or
        // removing by hand (the steward would undo it), and no leaving.
        let admin = view.members.iter().any(|m| m.user_id == me && m.admin) && !organisation;
        if admin && view.is_member {
            ui.horizontal(|ui| {
                let l = ui.label(t.group_name);
                ui.add(egui::TextEdit::singleline(rename).desired_width(200.0))
                    .labelled_by(l.id);
                if ui.button(t.group_rename).clicked() && !rename.trim().is_empty() {
                    let new_name = rename.trim().to_string();
                    self.bridge.act(
                        &node,
                        move |n| async move { n.rename(conv, new_name).await },
                        |_| Update::Reload,
                    );
                }
            });
            ui.separator();
        }
        ui.label(
            RichText::new(fill(
                t.members_count,
                &[("n", &view.members.len().to_string())],
            ))
            .strong(),
        );
        for m in &view.members {
            ui.horizontal(|ui| {
                let (r, _) = ui.allocate_exact_size(vec2(26.0, 26.0), Sense::hover());
                style::avatar(ui.painter(), r.center(), 12.0, &m.name, &m.user_id);
                let who = if m.user_id == me {
                    format!("{} ({})", m.name, t.you)
                } else {
                    m.name.clone()
                };
                ui.label(who);
                if let Some(department) = &m.department {
                    ui.label(RichText::new(department).small().weak());
                }
                ui.label(
                    RichText::new(if m.admin {
                        t.group_admin
                    } else {
                        t.group_member
                    })
                    .weak()
                    .small(),
                );
                if admin && view.is_member && m.user_id != me {
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        let remove = ui.button(t.group_remove);
                        let who = format!("{} {}", t.group_remove, m.name);
                        remove.widget_info(|| {
                            egui::WidgetInfo::labeled(egui::Role::Button, true, &who)
                        });
                        if remove.clicked()
                            && let Ok(user) = m.user_id.parse::<UserId>()
                        {
                            let notice = fill(t.group_removed_rotated, &[("name", &m.name)]);
                            self.bridge.act(
                                &node,
                                move |n| async move { n.remove_member(conv, user).await },
                                move |_| Update::Notice(notice),
                            );
                        }
                        if !m.admin
                            && ui.small_button(t.group_make_admin).clicked()
                            && let Ok(user) = m.user_id.parse::<UserId>()
                        {
                            self.bridge.act(
                                &node,
                                move |n| async move { n.promote(conv, user).await },
                                |_| Update::Reload,
                            );
                        }
                    });
                }
            });
        }
        if admin && view.is_member {
            let candidates: Vec<(String, String)> = self
                .peers
                .iter()
                .filter(|p| !view.members.iter().any(|m| m.user_id == p.user_id))
                .map(|p| (p.user_id.clone(), p.name.clone()))
                .collect();
            if !candidates.is_empty() {
                ui.separator();
                ui.label(RichText::new(t.group_add).strong());
                ui.horizontal_wrapped(|ui| {
                    for (user, name) in candidates {
                        if ui.button(format!("+ {name}")).clicked()
                            && let Ok(user) = user.parse::<UserId>()
                        {
                            self.bridge.act(
                                &node,
                                move |n| async move { n.add_member(conv, user).await },
                                |_| Update::Reload,
                            );
                        }
                    }
                });
            }
        }
        ui.separator();
        let mut keep = true;
        if view.is_member
            && !organisation
            && ui
                .button(RichText::new(t.group_leave).color(style::DEMO_TEXT))
                .clicked()
        {
            self.bridge.act(
                &node,
                move |n| async move { n.leave(conv).await },
                |_| Update::Reload,
            );
            keep = false;
        }
        keep
    }

    fn verify_ui(&mut self, ui: &mut egui::Ui, user: &str) -> bool {
        let t = self.t();
        let name = self.name_of(user);
        let (Ok(them), Some(me)) = (user.parse::<UserId>(), self.node().map(|n| n.user_id()))
        else {
            return false;
        };
        let number = safety_number(&me, &them);
        ui.label(fill(t.verify_intro, &[("name", &name)]));
        ui.add_space(8.0);
        ui.vertical_centered(|ui| {
            ui.label(RichText::new(&number).monospace().size(18.0).strong());
            ui.add_space(8.0);
            qr_ui(
                ui,
                &format!("FLURFUNK-SAFETY:{}", number.replace(' ', "")),
                180.0,
            );
        });
        ui.add_space(8.0);
        let verified = self.settings.is_verified(user);
        if verified {
            ui.label(
                RichText::new(t.verify_is_verified)
                    .color(style::UNREAD)
                    .strong(),
            );
            if ui.button(t.verify_unmark).clicked() {
                self.settings.verified.remove(user);
                self.save_settings();
            }
        } else if ui.button(RichText::new(t.verify_mark).strong()).clicked() {
            self.settings.verified.insert(user.to_string(), name);
            self.key_changes.retain(|k| k.new_user != user);
            self.save_settings();
        }
        true
    }

    fn settings_ui(
        &mut self,
        ui: &mut egui::Ui,
        name: &mut String,
        join_path: &mut String,
        error: &mut Option<String>,
    ) -> bool {
        let t = self.t();
        egui::Grid::new("settings")
            .num_columns(2)
            .spacing(vec2(12.0, 10.0))
            .show(ui, |ui| {
                let l = ui.label(t.settings_name);
                ui.horizontal(|ui| {
                    ui.add(egui::TextEdit::singleline(name).desired_width(200.0))
                        .labelled_by(l.id);
                    if ui.button(t.settings_save_name).clicked()
                        && let Some(node) = self.node().cloned()
                    {
                        let new_name = name.trim().to_string();
                        self.bridge.act(
                            &node,
                            move |n| async move { n.set_display_name(new_name).await },
                            |_| Update::Reload,
                        );
                    }
                });
                ui.end_row();

                ui.label(t.settings_language);
                ui.horizontal(|ui| {
                    for l in [Lang::De, Lang::En] {
                        if ui
                            .selectable_label(self.lang() == l, l.native_name())
                            .clicked()
                        {
                            self.settings.language = Some(l);
                            self.config.language = None;
                            self.save_settings();
                        }
                    }
                });
                ui.end_row();

                ui.label(t.settings_key);
                ui.vertical(|ui| {
                    if ui.button(t.settings_key_update).clicked()
                        && let Some(node) = self.node().cloned()
                    {
                        let done = t.settings_key_done.to_string();
                        self.bridge.act(
                            &node,
                            move |n| async move { n.update_key().await },
                            move |_| Update::Notice(done),
                        );
                    }
                    ui.label(RichText::new(t.settings_key_hint).small());
                });
                ui.end_row();

                let l = ui.label(t.settings_notifications);
                let mut on = self.settings.notifications;
                if ui.checkbox(&mut on, "").labelled_by(l.id).changed() {
                    self.settings.notifications = on;
                    self.save_settings();
                }
                ui.end_row();

                // Read at log-on by `flurfunk app --autostart` (what the installers
                // register); the machine's setting, where there is one, decides instead.
                let l = ui.label(t.settings_autostart);
                ui.horizontal(|ui| match self.machine.autostart {
                    Some(mut set) => {
                        ui.add_enabled(false, egui::Checkbox::without_text(&mut set))
                            .labelled_by(l.id);
                        ui.label(RichText::new(t.settings_autostart_machine).small().weak());
                    }
                    None => {
                        let mut on = self.settings.start_at_logon;
                        if ui.checkbox(&mut on, "").labelled_by(l.id).changed() {
                            self.settings.start_at_logon = on;
                            self.save_settings();
                        }
                    }
                });
                ui.end_row();

                ui.label(t.settings_network);
                ui.vertical(|ui| {
                    if let Some(r) = &self.running {
                        let key = r.network_key;
                        let label = if key.is_demo() {
                            format!("Demo ({})", key.fingerprint())
                        } else {
                            key.fingerprint()
                        };
                        ui.label(RichText::new(label).monospace());
                        if !key.is_demo() {
                            let managed = match key.admin() {
                                Some(admin) => format!(
                                    "{} {}",
                                    t.settings_managed,
                                    crate::admin::fingerprint(&admin)
                                ),
                                None => t.settings_unmanaged.to_string(),
                            };
                            ui.label(RichText::new(managed).small());
                        }
                    }
                    if let Some(policy) = self.status.as_ref().and_then(|s| s.policy) {
                        ui.label(RichText::new(policy_lines(t, &policy)).small().weak());
                    }
                    if self.machine.lock_network {
                        ui.label(RichText::new(t.settings_network_locked).small().weak());
                    } else {
                        ui.label(RichText::new(t.settings_join_other).small());
                        ui.add(
                            egui::TextEdit::singleline(join_path)
                                .desired_width(260.0)
                                .hint_text("…/network.key"),
                        );
                        if ui.button(t.settings_join_apply).clicked() {
                            match NetworkKey::load(std::path::Path::new(join_path.trim())) {
                                Ok(key) => match key.save_replace(&self.config.dir.network_key()) {
                                    Ok(()) => {
                                        *error = None;
                                        self.notice(t.settings_restarting.to_string());
                                        self.restart_node();
                                    }
                                    Err(e) => *error = Some(e.to_string()),
                                },
                                Err(e) => *error = Some(e.to_string()),
                            }
                        }
                        if let Some(e) = error {
                            ui.colored_label(style::DEMO_TEXT, e.as_str());
                        }
                    }
                });
                ui.end_row();

                self.file_settings_ui(ui);
                self.admin_settings_ui(ui);

                ui.label(t.settings_data_dir);
                ui.label(
                    RichText::new(self.config.dir.root().display().to_string())
                        .monospace()
                        .small(),
                );
                ui.end_row();

                ui.label(t.settings_user_id);
                ui.label(RichText::new(self.own_user()).monospace().small());
                ui.end_row();
            });
        self.running.is_some()
    }
}

impl FlurfunkApp {
    /// Two rows of the settings grid: what is fetched by itself, and the space for files.
    fn file_settings_ui(&mut self, ui: &mut egui::Ui) {
        let t = self.t();
        let limits = self.file_limits();
        let size = crate::files::human_size;
        let label = |bytes: u64| {
            if bytes == 0 {
                t.settings_auto_never.to_string()
            } else {
                format!("{} {}", t.settings_up_to, size(bytes))
            }
        };
        let l = ui.label(t.settings_auto_download);
        let mut chosen = None;
        egui::ComboBox::from_id_salt("auto-download")
            .selected_text(label(limits.auto_download_bytes))
            .show_ui(ui, |ui| {
                for bytes in [0, 5 << 20, 25 << 20, 100 << 20, 500 << 20] {
                    if ui
                        .selectable_label(limits.auto_download_bytes == bytes, label(bytes))
                        .clicked()
                    {
                        chosen = Some(bytes);
                    }
                }
            })
            .response
            .labelled_by(l.id);
        if let Some(bytes) = chosen {
            self.settings.auto_download_bytes = Some(bytes);
            self.apply_file_limits();
        }
        ui.end_row();

        let l = ui.label(t.settings_files_space);
        let mut chosen = None;
        ui.vertical(|ui| {
            egui::ComboBox::from_id_salt("files-quota")
                .selected_text(size(limits.quota_bytes))
                .show_ui(ui, |ui| {
                    for bytes in [1u64 << 30, 4 << 30, 16 << 30, 64 << 30] {
                        if ui
                            .selectable_label(limits.quota_bytes == bytes, size(bytes))
                            .clicked()
                        {
                            chosen = Some(bytes);
                        }
                    }
                })
                .response
                .labelled_by(l.id);
            ui.label(RichText::new(t.settings_files_space_hint).small());
        });
        if let Some(bytes) = chosen {
            self.settings.files_quota_bytes = Some(bytes);
            self.apply_file_limits();
        }
        ui.end_row();
    }
}

/// Paint a QR code of `text`, `size` points wide.
pub fn qr_ui(ui: &mut egui::Ui, text: &str, size: f32) {
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return;
    };
    let modules = code.width();
    let colors = code.to_colors();
    let quiet = 2;
    let n = modules + 2 * quiet;
    let cell = size / n as f32;
    let (rect, _) = ui.allocate_exact_size(vec2(size, size), Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 4.0, egui::Color32::WHITE);
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let x = (i % modules + quiet) as f32 * cell;
            let y = (i / modules + quiet) as f32 * cell;
            painter.rect_filled(
                egui::Rect::from_min_size(rect.min + vec2(x, y), vec2(cell + 0.3, cell + 0.3)),
                0.0,
                egui::Color32::BLACK,
            );
        }
    }
}

/// Seconds in the largest whole unit: "15 Minuten", "2 Tage".
pub(super) fn duration(t: &super::i18n::Texts, s: u64) -> String {
    let (n, one, many) = match s {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, t.day, t.days),
        s if s >= 3_600 && s % 3_600 == 0 => (s / 3_600, t.hour, t.hours),
        s => (s / 60, t.minute, t.minutes),
    };
    if n == 1 {
        return one.to_string();
    }
    super::i18n::fill(many, &[("n", &n.to_string())])
}

/// What the organisation's policy sets, in one line for the settings ("Set by your
/// organisation: no read receipts; files up to 100 MB").
fn policy_lines(t: &super::i18n::Texts, policy: &crate::wire::Policy) -> String {
    use crate::wire::Presence;
    let mut parts: Vec<String> = Vec::new();
    if !policy.read_receipts {
        parts.push(t.policy_no_read_receipts.into());
    }
    match policy.presence {
        Presence::Full => {}
        Presence::OnlineOnly => parts.push(t.policy_online_only.into()),
        Presence::Hidden => parts.push(t.policy_presence_hidden.into()),
    }
    let size = |n: u64| crate::files::human_size(n);
    if let Some(n) = policy.max_file_bytes {
        parts.push(super::i18n::fill(t.policy_max_file, &[("size", &size(n))]));
    }
    if let Some(n) = policy.auto_download_bytes {
        parts.push(super::i18n::fill(
            t.policy_auto_download,
            &[("size", &size(n))],
        ));
    }
    if !policy.delete_for_everyone {
        parts.push(t.policy_no_delete_for_everyone.into());
    }
    if let Some(s) = policy.edit_window_s {
        let time = duration(t, s);
        parts.push(super::i18n::fill(t.policy_edit_window, &[("time", &time)]));
    }
    if let Some(s) = policy.delete_window_s
        && policy.delete_for_everyone
    {
        let time = duration(t, s);
        parts.push(super::i18n::fill(
            t.policy_delete_window,
            &[("time", &time)],
        ));
    }
    if let Some(s) = policy.keep_messages_s {
        let time = duration(t, s);
        parts.push(super::i18n::fill(
            t.policy_keep_messages,
            &[("time", &time)],
        ));
    }
    let off: Vec<&str> = super::admin::feature_labels(t)
        .into_iter()
        .filter(|(bit, _)| policy.features_off & bit != 0)
        .map(|(_, label)| label)
        .collect();
    if !off.is_empty() {
        parts.push(super::i18n::fill(
            t.policy_features_off,
            &[("features", &off.join(", "))],
        ));
    }
    if parts.is_empty() {
        return String::new();
    }
    format!("{} {}", t.policy_set, parts.join("; "))
}
