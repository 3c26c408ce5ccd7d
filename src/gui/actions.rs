//! What a user does to one message, the way phones taught them: right-click (or the
//! small … beside a bubble) for reply, edit, delete (for everyone or for me) and reactions; the quote
//! above a reply (a click jumps to the original); reactions under a bubble (a click on
//! one's own takes it back); "@" in the composer offers the chat's members; the Up arrow
//! in an empty composer edits the last own message.
//!
//! It never decides who may do what: the engine refuses what is not allowed, and the menu
//! only hides what would be refused.

use egui::{Color32, RichText, Sense};

use super::app::FlurfunkApp;
use super::bridge::Update;
use super::dialogs::Dialog;
use super::i18n::{Texts, fill};
use super::style;
use crate::node::{ConversationView, MessageItem};
use crate::wire::{ConversationId, EventId};

/// The reactions offered at once; others can be typed in the menu.
pub const QUICK_REACTIONS: [&str; 6] = ["👍", "❤", "😂", "😮", "😢", "🙏"];
/// The emoji the composer's picker offers (what staff use most; all drawn by egui's font).
pub const PICKER_EMOJI: [&str; 24] = [
    "👍", "👎", "❤", "😂", "😮", "😢", "🙏", "👏", "😊", "😉", "😃", "🎉", "✅", "❌", "⚠", "❄",
    "☕", "🚗", "🚧", "📞", "📅", "⏰", "👋", "💪",
];
/// Members offered after "@" (the best matches).
const MENTION_SUGGESTIONS: usize = 6;

/// The message the delete dialog asks about, and which ways are open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteChoice {
    pub conversation: String,
    pub event_id: String,
    pub own: bool,
    /// The user may delete it for everyone (own, or as a group admin, within the
    /// organisation's rules).
    pub for_everyone: bool,
    /// Why not, where only the organisation's rules stop it.
    pub not_allowed: Option<String>,
    pub author_name: String,
}

/// What the composer of a chat is doing besides writing a new message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compose {
    Reply {
        event_id: String,
        author_name: String,
        snippet: String,
    },
    Edit {
        event_id: String,
    },
}

impl FlurfunkApp {
    /// The menu of one message (right-click on its bubble).
    pub(super) fn message_menu_ui(
        &mut self,
        ui: &mut egui::Ui,
        m: &MessageItem,
        view: Option<&ConversationView>,
    ) {
        let t = self.t();
        if m.deleted {
            ui.label(RichText::new(t.message_deleted).weak());
            // The line that remains can go from this computer.
            if ui.button(t.delete_for_me).clicked() {
                self.delete_for_me(&m.conversation, &m.event_id);
                ui.close();
            }
            return;
        }
        let me = self.own_user();
        // Reactions turned off by the organisation: no row to add one.
        if self.policy().allows(crate::wire::FEATURE_REACTIONS) {
            ui.horizontal(|ui| {
                for emoji in QUICK_REACTIONS {
                    let mine = m
                        .reactions
                        .iter()
                        .any(|r| r.emoji == emoji && r.users.contains(&me));
                    let button = super::emoji::emoji_button(ui, emoji, 22.0, mine);
                    if button.on_hover_text(t.react).clicked() {
                        let emoji = if mine { "" } else { emoji };
                        self.react(&m.conversation, &m.event_id, emoji);
                        ui.close();
                    }
                }
                // "+": the whole picker, as on a phone.
                let more = egui::Button::new(RichText::new("+").size(18.0));
                let (button, picked) = egui::containers::menu::SubMenuButton::from_button(more)
                    .ui(ui, |ui| emoji_grid(ui, "reaction_picker"));
                button.on_hover_text(t.more_reactions);
                if let Some(emoji) = picked.and_then(|p| p.inner) {
                    self.react(&m.conversation, &m.event_id, emoji);
                }
            });
            ui.separator();
        }
        if ui.button(t.reply).clicked() {
            self.start_reply(m);
            ui.close();
        }
        let policy = self.policy();
        let now = crate::node::now_ms();
        if m.own && policy.may_edit(m.wall_ms, now) && ui.button(t.edit).clicked() {
            self.start_edit(m);
            ui.close();
        }
        if m.edited && ui.button(t.versions).clicked() {
            self.open_versions(&m.conversation, &m.event_id);
            ui.close();
        }
        if ui.button(t.copy_text).clicked() {
            ui.ctx().copy_text(m.text.clone());
            ui.close();
        }
        let admin = view.is_some_and(|v| {
            v.kind == "group" && v.members.iter().any(|x| x.user_id == me && x.admin)
        });
        if ui.button(t.delete_menu).clicked() {
            // Where the organisation's rules stop it, the dialog says why.
            let (for_everyone, not_allowed) = if !(m.own || admin) {
                (false, None)
            } else if !policy.delete_for_everyone {
                (false, Some(t.delete_not_allowed.to_string()))
            } else if m.own && !policy.may_delete_for_everyone(m.wall_ms, now) {
                let time = super::dialogs::duration(t, policy.delete_window_s.unwrap_or_default());
                (false, Some(fill(t.delete_too_late, &[("time", &time)])))
            } else {
                (true, None)
            };
            self.dialog = Some(Dialog::DeleteMessage(DeleteChoice {
                conversation: m.conversation.clone(),
                event_id: m.event_id.clone(),
                own: m.own,
                for_everyone,
                not_allowed,
                author_name: m.author_name.clone(),
            }));
            ui.close();
        }
        if m.own {
            ui.separator();
            if ui.button(t.message_info).clicked() {
                self.open_message_info(&m.conversation, &m.event_id);
                ui.close();
            }
        }
    }

    pub(super) fn start_reply(&mut self, m: &MessageItem) {
        let snippet = if m.text.is_empty() {
            m.file.as_ref().map(|f| f.name.clone()).unwrap_or_default()
        } else {
            crate::sync::snippet(&m.text)
        };
        self.compose.insert(
            m.conversation.clone(),
            Compose::Reply {
                event_id: m.event_id.clone(),
                author_name: m.author_name.clone(),
                snippet,
            },
        );
        self.focus_composer = true;
    }

    pub(super) fn start_edit(&mut self, m: &MessageItem) {
        self.compose.insert(
            m.conversation.clone(),
            Compose::Edit {
                event_id: m.event_id.clone(),
            },
        );
        self.drafts.insert(m.conversation.clone(), m.text.clone());
        self.focus_composer = true;
    }

    /// The rules in force (the organisation's, over this machine's).
    pub(super) fn policy(&self) -> crate::wire::Policy {
        self.status
            .as_ref()
            .and_then(|s| s.policy)
            .unwrap_or_default()
    }

    /// The Up arrow in an empty composer: edit the last own message, as in Element.
    pub(super) fn edit_last_own(&mut self, conv: &str) {
        let now = crate::node::now_ms();
        let policy = self.policy();
        let last = self.chat.as_ref().and_then(|c| {
            (c.conversation == conv)
                .then(|| {
                    c.items
                        .iter()
                        .rev()
                        .find(|m| m.own && !m.deleted && m.notice.is_none())
                })
                .flatten()
                .cloned()
        });
        if let Some(m) = last
            && policy.may_edit(m.wall_ms, now)
        {
            self.start_edit(&m);
        }
    }

    /// Above the composer: what is being answered or edited, with ✕ to stop.
    pub(super) fn compose_bar_ui(&mut self, ui: &mut egui::Ui, conv: &str) {
        let t = self.t();
        let Some(compose) = self.compose.get(conv).cloned() else {
            return;
        };
        let mut cancel = false;
        egui::Frame::NONE
            .fill(style::day_fill(ui.visuals()))
            .corner_radius(6)
            .inner_margin(egui::Margin::symmetric(8, 4))
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    let (title, body) = match &compose {
                        Compose::Reply {
                            author_name,
                            snippet,
                            ..
                        } => (
                            fill(t.replying_to, &[("name", author_name)]),
                            snippet.clone(),
                        ),
                        Compose::Edit { .. } => (t.editing.to_string(), String::new()),
                    };
                    ui.vertical(|ui| {
                        ui.label(RichText::new(title).strong().size(12.5));
                        if !body.is_empty() {
                            ui.label(RichText::new(body).size(12.5).weak());
                        }
                    });
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        cancel = ui.button("✖").on_hover_text(t.cancel).clicked();
                    });
                });
            });
        if cancel || ui.input(|i| i.key_pressed(egui::Key::Escape)) && self.dialog.is_none() {
            if matches!(compose, Compose::Edit { .. }) {
                self.drafts.remove(conv);
            }
            self.compose.remove(conv);
        }
    }

    /// After "@" at the end of the draft: the chat's members that match, as buttons.
    pub(super) fn mention_suggestions_ui(
        &mut self,
        ui: &mut egui::Ui,
        conv: &str,
        view: Option<&ConversationView>,
    ) {
        let Some(view) = view else { return };
        let Some(draft) = self.drafts.get(conv) else {
            return;
        };
        let Some(at) = draft.rfind('@') else { return };
        let typed = &draft[at + 1..];
        let before_ok = draft[..at]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace);
        if !before_ok || typed.contains('\n') || typed.chars().count() > 24 {
            return;
        }
        let me = self.own_user();
        let typed_lower = typed.to_lowercase();
        let matches: Vec<String> = view
            .members
            .iter()
            .filter(|m| m.user_id != me)
            .map(|m| m.name.trim_end_matches('✔').trim().to_string())
            .filter(|name| {
                let lower = name.to_lowercase();
                typed_lower.is_empty()
                    || lower.starts_with(&typed_lower)
                    || lower
                        .split_whitespace()
                        .any(|w| w.starts_with(typed_lower.as_str()))
            })
            .take(MENTION_SUGGESTIONS)
            .collect();
        if matches.is_empty() || matches.iter().any(|n| n.eq_ignore_ascii_case(typed)) {
            return;
        }
        let mut chosen = None;
        ui.horizontal_wrapped(|ui| {
            for name in &matches {
                if ui.button(format!("@{name}")).clicked() {
                    chosen = Some(name.clone());
                }
            }
        });
        if let Some(name) = chosen
            && let Some(draft) = self.drafts.get_mut(conv)
        {
            draft.truncate(at);
            draft.push('@');
            draft.push_str(&name);
            draft.push(' ');
            self.focus_composer = true;
        }
    }

    /// ☺ beside the composer: a grid of emoji; the one clicked is added to the draft.
    pub(super) fn emoji_picker_ui(&self, ui: &mut egui::Ui) -> Option<&'static str> {
        let t = self.t();
        let mut picked = None;
        let button = egui::Button::new("☺").min_size(egui::vec2(30.0, 30.0));
        egui::containers::menu::MenuButton::from_button(button)
            .ui(ui, |ui| picked = emoji_grid(ui, "emoji_picker"))
            .0
            .on_hover_text(t.emoji);
        picked
    }

    /// The quote above a reply; true if clicked (jump to the original).
    pub(super) fn quote_ui(&self, ui: &mut egui::Ui, m: &MessageItem, t: &Texts) -> bool {
        let Some(q) = &m.reply_to else { return false };
        let (name, text) = if q.deleted {
            (q.author_name.clone(), t.message_deleted.to_string())
        } else if q.author_name.is_empty() {
            (String::new(), t.quote_not_here.to_string())
        } else {
            (q.author_name.clone(), q.text.clone())
        };
        let color = style::name_color(&q.author);
        let response = egui::Frame::NONE
            .fill(style::day_fill(ui.visuals()))
            .corner_radius(6)
            .inner_margin(egui::Margin {
                left: 8,
                right: 6,
                top: 3,
                bottom: 3,
            })
            .show(ui, |ui| {
                ui.vertical(|ui| {
                    if !name.is_empty() {
                        ui.label(RichText::new(&name).strong().size(12.0).color(color));
                    }
                    ui.add(
                        egui::Label::new(RichText::new(&text).size(12.5).weak().italics())
                            .truncate(),
                    );
                });
            })
            .response;
        let bar =
            egui::Rect::from_min_size(response.rect.min, egui::vec2(3.0, response.rect.height()));
        ui.painter().rect_filled(bar, 1.0, color);
        let response = response.interact(Sense::click());
        response.widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::Button, true, format!("{}: {text}", t.quote))
        });
        response.on_hover_text(t.jump_to_original).clicked()
    }

    /// The reactions under a bubble: "👍 2"; hover names who; a click on one gives or
    /// takes back one's own.
    pub(super) fn reactions_ui(&mut self, ui: &mut egui::Ui, m: &MessageItem) {
        if m.reactions.is_empty() || m.deleted {
            return;
        }
        let me = self.own_user();
        let mut clicked = None;
        ui.horizontal_wrapped(|ui| {
            ui.spacing_mut().item_spacing.x = 4.0;
            for r in &m.reactions {
                let mine = r.users.contains(&me);
                let label = format!("{} {}", r.emoji, r.users.len());
                let count = RichText::new(r.users.len().to_string()).size(12.5);
                let chip = match super::emoji::image_of(ui.ctx(), &r.emoji, 16.0) {
                    Some(image) => egui::Button::image_and_text(image, count),
                    None => egui::Button::new(RichText::new(&label).size(12.5)),
                }
                .selected(mine)
                .corner_radius(10);
                let names = r.names.join(", ");
                let response = ui.add(chip);
                // Named "👍 2" for screen readers, as it reads.
                response.widget_info(|| {
                    egui::WidgetInfo::labeled(egui::Role::Button, true, label.clone())
                });
                if response.on_hover_text(names).clicked() {
                    clicked = Some((r.emoji.clone(), mine));
                }
            }
        });
        if let Some((emoji, mine)) = clicked {
            if mine {
                self.react(&m.conversation, &m.event_id, "");
            } else if self.policy().allows(crate::wire::FEATURE_REACTIONS) {
                self.react(&m.conversation, &m.event_id, &emoji);
            } else {
                let t = self.t();
                self.notice(super::i18n::fill(
                    t.feature_off_notice,
                    &[("feature", t.feature_reactions)],
                ));
            }
        }
    }

    /// The node and a message named by the ids the views carry (None: no node yet).
    fn message_ref(
        &self,
        conv: &str,
        event_id: &str,
    ) -> Option<(crate::node::NodeHandle, ConversationId, EventId)> {
        Some((
            self.node()?.clone(),
            conv.parse().ok()?,
            event_id.parse().ok()?,
        ))
    }

    pub(super) fn react(&mut self, conv: &str, event_id: &str, emoji: &str) {
        let Some((node, conv, target)) = self.message_ref(conv, event_id) else {
            return;
        };
        let emoji = emoji.to_string();
        self.bridge.act(
            &node,
            move |n| async move { n.react(conv, target, emoji).await },
            |_| Update::Reload,
        );
    }

    pub(super) fn delete_for_everyone(&mut self, conv: &str, event_id: &str) {
        let Some((node, conv, target)) = self.message_ref(conv, event_id) else {
            return;
        };
        self.bridge.act(
            &node,
            move |n| async move { n.delete_for_everyone(conv, target).await },
            |_| Update::Reload,
        );
    }

    pub(super) fn delete_for_me(&mut self, conv: &str, event_id: &str) {
        let Some((node, conv, target)) = self.message_ref(conv, event_id) else {
            return;
        };
        self.bridge.act(
            &node,
            move |n| async move { n.delete_for_me(conv, target).await },
            |_| Update::Reload,
        );
    }

    fn open_versions(&mut self, conv: &str, event_id: &str) {
        let Some((node, c, target)) = self.message_ref(conv, event_id) else {
            return;
        };
        self.dialog = Some(Dialog::Versions {
            event_id: event_id.to_string(),
            versions: None,
        });
        let event_id = event_id.to_string();
        self.bridge.act(
            &node,
            move |n| async move { n.versions(c, target).await },
            move |versions| Update::Versions { event_id, versions },
        );
    }

    /// "Delete the message?": for everyone (where allowed) or for me, with what each means.
    pub(super) fn delete_message_ui(&mut self, ui: &mut egui::Ui, choice: &DeleteChoice) -> bool {
        let DeleteChoice {
            conversation,
            event_id,
            own,
            for_everyone,
            not_allowed,
            author_name,
        } = choice;
        let (own, for_everyone) = (*own, *for_everyone);
        let t = self.t();
        if let Some(why) = not_allowed {
            ui.label(RichText::new(why.as_str()).weak());
            ui.add_space(4.0);
        }
        if for_everyone {
            let text = if own {
                t.delete_explain.to_string()
            } else {
                fill(t.delete_explain_admin, &[("name", author_name)])
            };
            ui.label(text);
            ui.add_space(4.0);
        }
        ui.label(t.delete_for_me_explain);
        ui.add_space(8.0);
        let mut keep = true;
        ui.horizontal(|ui| {
            if for_everyone {
                let delete =
                    egui::Button::new(RichText::new(t.delete_for_everyone).color(Color32::WHITE))
                        .fill(ui.visuals().error_fg_color);
                if ui.add(delete).clicked() {
                    self.delete_for_everyone(conversation, event_id);
                    keep = false;
                }
            }
            if ui.button(t.delete_for_me).clicked() {
                self.delete_for_me(conversation, event_id);
                keep = false;
            }
            if ui.button(t.cancel).clicked() {
                keep = false;
            }
        });
        keep
    }

    pub(super) fn versions_ui(
        &self,
        ui: &mut egui::Ui,
        versions: &Option<Vec<(u64, String)>>,
    ) -> bool {
        let t = self.t();
        match versions {
            None => {
                ui.spinner();
            }
            Some(versions) => {
                egui::ScrollArea::vertical()
                    .max_height(360.0)
                    .show(ui, |ui| {
                        for (i, (ms, text)) in versions.iter().enumerate() {
                            let label = if i == 0 {
                                t.version_original
                            } else {
                                t.version_edited
                            };
                            ui.label(
                                RichText::new(format!(
                                    "{label} · {}",
                                    super::chat::time_of_day(*ms)
                                ))
                                .weak()
                                .size(12.0),
                            );
                            ui.label(text);
                            ui.add_space(6.0);
                        }
                    });
            }
        }
        true
    }
}

/// The picker's emoji in rows of six; the one clicked (the menu closes).
fn emoji_grid(ui: &mut egui::Ui, id: &str) -> Option<&'static str> {
    let mut picked = None;
    egui::Grid::new(id).show(ui, |ui| {
        for (i, emoji) in PICKER_EMOJI.iter().enumerate() {
            if super::emoji::emoji_button(ui, emoji, 22.0, false).clicked() {
                picked = Some(*emoji);
                ui.close();
            }
            if i % 6 == 5 {
                ui.end_row();
            }
        }
    });
    picked
}
