//! The chat list (left): chats by newest activity (pinned first), each with avatar,
//! name, marks, time, preview and unread badge; the search box above it (messages found
//! follow the chats, `search.rs`); a chat's right-click menu (`chat_prefs.rs`).

use chrono::Local;
use egui::{Align, Color32, Key, Layout, RichText, Sense, vec2};

use super::app::FlurfunkApp;
use super::chat::{day_label, elide, local_day, time_of_day};
use super::i18n::{Texts, fill};
use super::style;
use crate::node::ConversationView;

/// Time for the chat list: the time today, else the date.
fn list_time(t: &Texts, german: bool, ms: u64) -> String {
    if local_day(ms) == Some(Local::now().date_naive()) {
        time_of_day(ms)
    } else {
        day_label(t, german, ms)
    }
}

impl FlurfunkApp {
    pub(super) fn chat_list_ui(&mut self, ui: &mut egui::Ui) {
        let t = self.t();
        let german = self.lang() == super::i18n::Lang::De;
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            ui.heading(t.chats);
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                if ui.button("⚙").on_hover_text(t.settings).clicked() {
                    self.open_settings();
                }
                if ui.button("👥").on_hover_text(t.new_group).clicked() {
                    self.open_new_group();
                }
                if ui.button("✉").on_hover_text(t.people).clicked() {
                    self.open_people();
                }
            });
        });
        let search = ui.add(
            egui::TextEdit::singleline(&mut self.search)
                .hint_text(t.search_hint)
                .desired_width(f32::INFINITY),
        );
        // Ctrl+F searches, as everywhere; Esc in the box clears it.
        if ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, Key::F)) {
            search.request_focus();
        }
        if search.has_focus() && ui.input(|i| i.key_pressed(Key::Escape)) {
            self.search.clear();
        }
        self.search_if_changed();
        ui.add_space(4.0);
        if self.conversations.is_empty() {
            ui.add_space(20.0);
            ui.label(RichText::new(t.no_chats).weak());
            if ui.button(t.people).clicked() {
                self.open_people();
            }
            return;
        }
        let needle = self.search.to_lowercase();
        let mut clicked = None;
        let mut found = None;
        let mut chat_action = None;
        let chats = self.ordered_chats();
        egui::ScrollArea::vertical()
            .auto_shrink(false)
            .show(ui, |ui| {
                for c in &chats {
                    if !needle.is_empty() && !c.name.to_lowercase().contains(&needle) {
                        continue;
                    }
                    let selected = self.selected.as_deref() == Some(c.conversation.as_str());
                    let row = self.chat_row_ui(ui, c, selected, t, german);
                    if row.clicked() {
                        clicked = Some(c.conversation.clone());
                    }
                    row.context_menu(|ui| {
                        if let Some(a) = self.chat_menu_ui(ui, c) {
                            chat_action = Some((c.conversation.clone(), a));
                        }
                    });
                }
                found = self.search_results_ui(ui);
            });
        if let Some((conversation, action)) = chat_action {
            self.apply_chat_action(conversation, action);
        }
        if let Some(c) = clicked {
            self.select(c);
        }
        if let Some((conversation, event_id)) = found {
            self.open_found(conversation, event_id);
        }
    }

    fn chat_row_ui(
        &self,
        ui: &mut egui::Ui,
        c: &ConversationView,
        selected: bool,
        t: &Texts,
        german: bool,
    ) -> egui::Response {
        let width = ui.available_width();
        let (rect, response) = ui.allocate_exact_size(vec2(width, 58.0), Sense::click());
        let preview = c
            .last_message
            .as_ref()
            .map(|m| {
                // A line about the group itself ("IT-Service hat die Gruppe erstellt") as
                // the chat shows it, not as an empty message of its author.
                if m.notice.is_some() {
                    return super::chat::notice_text(t, m);
                }
                let caption = m.text.lines().next().unwrap_or_default();
                let text = match &m.file {
                    Some(f) => super::files::preview_line(f, caption, t),
                    None => caption.to_string(),
                };
                if m.own {
                    format!("{}: {text}", t.you)
                } else if c.kind == "group" {
                    format!("{}: {text}", m.author_name)
                } else {
                    text
                }
            })
            .unwrap_or_default();
        let online = c.kind == "direct" && self.direct_partner(c).is_some_and(|p| p.online);
        // Marked as unread by hand: a badge of one until opened.
        let unread = if c.unread == 0 && self.is_marked_unread(&c.conversation) {
            1
        } else {
            c.unread
        };
        let mut marks = String::new();
        if self.is_pinned(&c.conversation) {
            marks.push_str(", ");
            marks.push_str(t.pinned);
        }
        if self.is_muted(&c.conversation) {
            marks.push_str(", ");
            marks.push_str(t.muted);
        }
        let label = if unread > 0 {
            format!(
                "{}{marks}, {}, {preview}",
                c.name,
                fill(t.unread_n, &[("n", &unread.to_string())])
            )
        } else {
            format!("{}{marks}, {preview}", c.name)
        };
        response
            .widget_info(|| egui::WidgetInfo::selected(egui::Role::Button, true, selected, &label));
        if !ui.is_rect_visible(rect) {
            return response;
        }
        let visuals = ui.visuals();
        let painter = ui.painter_at(rect);
        if selected {
            painter.rect_filled(rect, 6.0, visuals.selection.bg_fill.gamma_multiply(0.5));
        } else if response.hovered() {
            painter.rect_filled(rect, 6.0, visuals.widgets.hovered.weak_bg_fill);
        }
        let avatar = rect.left_center() + vec2(26.0, 0.0);
        style::avatar(&painter, avatar, 20.0, &c.name, &c.conversation);
        if online {
            painter.circle_filled(avatar + vec2(14.0, 14.0), 6.0, visuals.panel_fill);
            painter.circle_filled(avatar + vec2(14.0, 14.0), 4.5, style::ONLINE);
        }
        let text_left = rect.left() + 56.0;
        let right = rect.right() - 8.0;
        let strong = visuals.strong_text_color();
        let weak = visuals.weak_text_color();
        let time = c
            .last_message
            .as_ref()
            .map(|m| list_time(t, german, m.wall_ms))
            .unwrap_or_default();
        let time_galley = painter.layout_no_wrap(time, egui::FontId::proportional(11.0), weak);
        let time_w = time_galley.size().x;
        painter.galley(
            egui::pos2(right - time_w, rect.top() + 10.0),
            time_galley,
            weak,
        );
        // 📌 and 🔕 beside the time, as phones show them.
        let icons = format!(
            "{}{}",
            if self.is_muted(&c.conversation) {
                "🔕"
            } else {
                ""
            },
            if self.is_pinned(&c.conversation) {
                "📌"
            } else {
                ""
            }
        );
        let time_w = if icons.is_empty() {
            time_w
        } else {
            let g = painter.layout_no_wrap(icons, egui::FontId::proportional(11.0), weak);
            let w = g.size().x;
            painter.galley(
                egui::pos2(right - time_w - w - 4.0, rect.top() + 10.0),
                g,
                weak,
            );
            time_w + w + 4.0
        };
        let name_w = (right - time_w - 8.0 - text_left).max(10.0);
        let name = painter.layout(
            c.name.clone(),
            egui::FontId::proportional(15.0),
            strong,
            name_w,
        );
        let name = elide(
            ui,
            name,
            &c.name,
            egui::FontId::proportional(15.0),
            strong,
            name_w,
        );
        painter.galley(egui::pos2(text_left, rect.top() + 8.0), name, strong);
        let mut preview_right = right;
        if unread > 0 {
            let badge = painter.layout_no_wrap(
                unread.to_string(),
                egui::FontId::proportional(11.0),
                Color32::WHITE,
            );
            let w = (badge.size().x + 10.0).max(20.0);
            let badge_rect =
                egui::Rect::from_min_size(egui::pos2(right - w, rect.top() + 31.0), vec2(w, 18.0));
            painter.rect_filled(badge_rect, 9.0, style::UNREAD);
            painter.galley(
                badge_rect.center() - badge.size() / 2.0,
                badge,
                Color32::WHITE,
            );
            preview_right -= w + 6.0;
        }
        let preview_w = (preview_right - text_left).max(10.0);
        let preview_galley = elide(
            ui,
            painter.layout_no_wrap(preview.clone(), egui::FontId::proportional(13.0), weak),
            &preview,
            egui::FontId::proportional(13.0),
            weak,
            preview_w,
        );
        painter.galley(
            egui::pos2(text_left, rect.top() + 32.0),
            preview_galley,
            weak,
        );
        response
    }
}
