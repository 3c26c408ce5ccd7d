//! The open conversation (right): bubbles, day separators, ticks, quotes, reactions, and
//! the composer (the chat list is `chat_list.rs`).
//!
//! Long histories: only rows inside the viewport are laid out. Row heights are measured
//! when a row is drawn and estimated from the text length before that, so a 10,000-message
//! conversation costs a prefix sum per frame, not 10,000 layouts.

use std::collections::HashMap;

use chrono::{Datelike, Local, TimeZone};
use egui::{Align, Color32, CornerRadius, Key, Layout, RichText, Sense, UiBuilder, vec2};

use super::app::FlurfunkApp;
use super::i18n::{Texts, fill};
use super::style;
use crate::node::{ConversationView, MessageItem};

/// Pixels from the top of the loaded history at which the previous page is requested.
const LOAD_OLDER_MARGIN: f32 = 600.0;
/// How long a message jumped to stays highlighted.
const HIGHLIGHT_FOR: std::time::Duration = std::time::Duration::from_millis(1500);

/// What was clicked in a row.
enum RowAction {
    None,
    /// The ticks of an own message: open the message info.
    Info,
    /// The quote of a reply: go to the original.
    Jump(String),
}

/// The loaded part of the open conversation.
pub struct ChatState {
    pub conversation: String,
    /// Oldest first.
    pub items: Vec<MessageItem>,
    pub has_older: bool,
    pub loading_older: bool,
    loaded: bool,
    heights: HashMap<String, f32>,
    width: f32,
    last_offset: f32,
    /// Content added above the viewport: scroll down by this much to stay in place.
    prepend_adjust: Option<f32>,
    to_bottom: bool,
    /// A message to scroll to (a quote was clicked); older pages load until it is found.
    pub jump_to: Option<String>,
    /// The message jumped to, shown highlighted for a moment.
    highlight: Option<(String, std::time::Instant)>,
}

impl ChatState {
    pub fn new(conversation: String) -> ChatState {
        ChatState {
            conversation,
            items: Vec::new(),
            has_older: false,
            loading_older: false,
            loaded: false,
            heights: HashMap::new(),
            width: 0.0,
            last_offset: 0.0,
            prepend_adjust: None,
            to_bottom: true,
            jump_to: None,
            highlight: None,
        }
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    pub fn stick_to_bottom(&mut self) {
        self.to_bottom = true;
    }

    /// Merge the newest `limit` messages (oldest first) into what is loaded: everything
    /// from the tail's first message on is replaced (receipts change, messages are
    /// retracted); if the tail does not reach back to what is loaded, older rows are
    /// dropped rather than shown with a hole.
    pub fn merge_tail(&mut self, tail: Vec<MessageItem>, limit: usize) {
        let first_load = !self.loaded;
        self.loaded = true;
        let Some(first) = tail.first() else {
            self.items.clear();
            self.has_older = false;
            return;
        };
        let connected = self.items.iter().any(|m| m.event_id == first.event_id)
            || self.items.last().is_none_or(|m| m.order >= first.order);
        if first_load || !connected {
            self.has_older = tail.len() >= limit;
            self.items = tail;
            return;
        }
        let keep = self.items.partition_point(|m| m.order < first.order);
        self.items.truncate(keep);
        self.items.extend(tail);
    }

    /// Put a page of older messages in front.
    pub fn prepend(&mut self, page: Vec<MessageItem>, limit: usize) {
        self.loading_older = false;
        self.has_older = page.len() >= limit;
        let oldest = self.items.first().map(|m| m.order.clone());
        let page: Vec<MessageItem> = page
            .into_iter()
            .filter(|m| oldest.as_ref().is_none_or(|o| &m.order < o))
            .collect();
        let added: f32 = page.iter().map(|m| estimate_height(m, self.width)).sum();
        if !page.is_empty() {
            self.prepend_adjust = Some(added);
        }
        let mut items = page;
        items.append(&mut self.items);
        self.items = items;
    }
}

/// A height guess for a row not drawn yet: text lines at the bubble width, plus padding
/// (a notice is one quiet line).
fn estimate_height(m: &MessageItem, width: f32) -> f32 {
    if m.notice.is_some() {
        return 24.0;
    }
    let file = m.file.as_ref().map_or(0.0, |f| {
        super::files::estimated_height(f, width * style::BUBBLE_WIDTH_FRACTION - 20.0)
    });
    let chars_per_line = ((width * style::BUBBLE_WIDTH_FRACTION - 20.0) / 7.0).max(10.0);
    let lines: f32 = m
        .text
        .lines()
        .map(|l| (l.chars().count() as f32 / chars_per_line).ceil().max(1.0))
        .sum::<f32>()
        .max(1.0);
    let quote = if m.reply_to.is_some() { 44.0 } else { 0.0 };
    let reactions = if m.reactions.is_empty() { 0.0 } else { 28.0 };
    lines * 18.0 + 46.0 + file + quote + reactions
}

pub fn local_day(ms: u64) -> Option<chrono::NaiveDate> {
    Local
        .timestamp_millis_opt(ms as i64)
        .single()
        .map(|t| t.date_naive())
}

pub fn time_of_day(ms: u64) -> String {
    Local
        .timestamp_millis_opt(ms as i64)
        .single()
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_default()
}

/// "Heute", "Gestern" or a date in the user's language.
pub fn day_label(t: &Texts, german: bool, ms: u64) -> String {
    let Some(day) = local_day(ms) else {
        return String::new();
    };
    let today = Local::now().date_naive();
    if day == today {
        t.today.to_string()
    } else if today.pred_opt() == Some(day) {
        t.yesterday.to_string()
    } else if german {
        format!("{:02}.{:02}.{}", day.day(), day.month(), day.year())
    } else {
        day.format("%Y-%m-%d").to_string()
    }
}

/// Tick marks for an own message and the tooltip title.
pub enum Ticks {
    Saved,
    Partly { delivered: usize, of: usize },
    Delivered,
    Read,
}

/// Names listed when hovering over ticks; beyond this, counts (the message info lists all).
const HOVER_NAMES: usize = 8;

/// Everyone else a message was for, once each.
fn recipient_ids(m: &MessageItem) -> Vec<&String> {
    let mut all: Vec<&String> = m
        .delivered_to
        .iter()
        .chain(&m.read_by)
        .chain(&m.waiting_for)
        .collect();
    all.sort();
    all.dedup();
    all
}

/// How many others a message was for.
pub fn recipients(m: &MessageItem) -> usize {
    recipient_ids(m).len()
}

pub fn ticks(m: &MessageItem) -> Ticks {
    let recipients = recipient_ids(m);
    let of = recipients.len();
    let delivered = recipients
        .iter()
        .filter(|u| !m.waiting_for.contains(u))
        .count();
    if of > 0 && m.read_by.len() >= of {
        Ticks::Read
    } else if of > 0 && m.waiting_for.is_empty() {
        Ticks::Delivered
    } else if delivered > 0 {
        Ticks::Partly { delivered, of }
    } else {
        Ticks::Saved
    }
}

impl FlurfunkApp {
    pub(super) fn direct_partner(&self, c: &ConversationView) -> Option<&crate::node::PeerView> {
        let me = self.own_user();
        let other = c.members.iter().find(|m| m.user_id != me)?;
        self.peer(&other.user_id)
    }

    /// Header, history and composer of the open conversation.
    pub(super) fn conversation_ui(&mut self, ui: &mut egui::Ui) {
        let t = self.t();
        let Some(conv) = self.selected.clone() else {
            // The panel has no frame of its own: paint the chat background, or the
            // window's clear colour (black) shows.
            ui.painter()
                .rect_filled(ui.max_rect(), 0.0, style::chat_background(ui.visuals()));
            ui.centered_and_justified(|ui| ui.label(RichText::new(t.pick_chat).weak()));
            return;
        };
        let view = self
            .conversations
            .iter()
            .find(|c| c.conversation == conv)
            .cloned();
        egui::Panel::top("chat_header").show(ui, |ui| {
            ui.add_space(4.0);
            ui.horizontal(|ui| {
                let name = view.as_ref().map(|v| v.name.clone()).unwrap_or_default();
                let (avatar_rect, _) = ui.allocate_exact_size(vec2(36.0, 36.0), Sense::hover());
                style::avatar(ui.painter(), avatar_rect.center(), 17.0, &name, &conv);
                ui.vertical(|ui| {
                    ui.label(RichText::new(&name).strong().size(16.0));
                    if let Some(v) = &view {
                        ui.label(RichText::new(self.subtitle(v)).weak().size(12.0));
                    }
                });
                ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                    if let Some(v) = &view {
                        if v.kind == "group" {
                            if ui.button(t.group_info).clicked() {
                                self.open_group_info(&conv);
                            }
                        } else if let Some(other) =
                            v.members.iter().find(|m| m.user_id != self.own_user())
                        {
                            let verified = self.settings.is_verified(&other.user_id);
                            let label = if verified {
                                t.verify_is_verified
                            } else {
                                t.verify_title
                            };
                            if ui.button(label).clicked() {
                                self.open_verify(&other.user_id);
                            }
                        }
                    }
                });
            });
            ui.add_space(4.0);
        });
        // A 1:1 partner the network's admin revoked: nothing can be sent there any more.
        let left = view.as_ref().and_then(|v| {
            let me = self.own_user();
            (v.kind == "direct")
                .then(|| {
                    v.members
                        .iter()
                        .find(|m| m.user_id != me && m.left_organisation)
                })
                .flatten()
                .map(|m| m.name.clone())
        });
        let is_member = view.as_ref().is_none_or(|v| v.is_member) && left.is_none();
        // A file dragged onto the chat opens the send dialog with it (a text can go with
        // it, and nothing is sent by a slip of the mouse).
        // Sending files turned off by the organisation: a dropped or pasted file is told
        // so, no dialog opens.
        let files = self.policy().allows(crate::wire::FEATURE_FILES);
        if is_member
            && self.dialog.is_none()
            && let Some(path) =
                ui.input(|i| i.raw.dropped_files.first().map(|f| f.path().to_path_buf()))
        {
            if files {
                self.open_send_file(&conv, path.display().to_string());
            } else {
                self.notice(super::i18n::fill(
                    t.feature_off_notice,
                    &[("feature", t.feature_files)],
                ));
            }
        }
        if is_member && self.dialog.is_none() {
            if files {
                self.take_pasted_picture(ui, &conv);
            } else if ui.input(|i| {
                i.events
                    .iter()
                    .any(|e| matches!(e, egui::Event::PasteImage(_)))
            }) {
                self.notice(super::i18n::fill(
                    t.feature_off_notice,
                    &[("feature", t.feature_files)],
                ));
            }
        }
        egui::Panel::bottom("composer").show(ui, |ui| {
            ui.add_space(6.0);
            if let Some(name) = &left {
                ui.label(
                    RichText::new(super::i18n::fill(t.left_organisation, &[("name", name)])).weak(),
                );
            } else if is_member {
                self.composer_ui(ui, &conv);
            } else {
                ui.label(RichText::new(t.not_member).weak());
            }
            ui.add_space(6.0);
        });
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE.fill(style::chat_background(ui.visuals())))
            .show(ui, |ui| self.history_ui(ui, view.as_ref()));
    }

    fn subtitle(&self, v: &ConversationView) -> String {
        let t = self.t();
        if v.kind == "group" {
            let me = self.own_user();
            let names: Vec<String> = v
                .members
                .iter()
                .map(|m| {
                    if m.user_id == me {
                        t.you.to_string()
                    } else {
                        m.name.clone()
                    }
                })
                .collect();
            format!(
                "{}{} · {}",
                if v.organisation.is_some() {
                    format!("{} · ", t.org_group_mark)
                } else {
                    String::new()
                },
                fill(t.members_count, &[("n", &v.members.len().to_string())]),
                names.join(", ")
            )
        } else {
            match self.direct_partner(v) {
                Some(p) if p.online => t.online.to_string(),
                Some(p) => match p.last_seen_ms {
                    Some(ms) => fill(
                        t.last_seen,
                        &[(
                            "time",
                            &format!(
                                "{} {}",
                                day_label(t, self.lang() == super::i18n::Lang::De, ms),
                                time_of_day(ms)
                            ),
                        )],
                    ),
                    None => t.offline.to_string(),
                },
                None => t.offline.to_string(),
            }
        }
    }

    fn composer_ui(&mut self, ui: &mut egui::Ui, conv: &str) {
        let t = self.t();
        let mut send = false;
        let mut attach = false;
        let mut edit_last = false;
        let view = self
            .conversations
            .iter()
            .find(|c| c.conversation == conv)
            .cloned();
        self.compose_bar_ui(ui, conv);
        self.mention_suggestions_ui(ui, conv, view.as_ref());
        let focus = std::mem::take(&mut self.focus_composer);
        // Sending files turned off by the organisation: no clip.
        let files = self.policy().allows(crate::wire::FEATURE_FILES);
        ui.horizontal(|ui| {
            attach = files
                && ui
                    .add_sized(vec2(30.0, 30.0), egui::Button::new("📎"))
                    .on_hover_text(t.attach)
                    .clicked();
            let picked = self.emoji_picker_ui(ui);
            let draft = self.drafts.entry(conv.to_string()).or_default();
            if let Some(emoji) = picked {
                draft.push_str(emoji);
            }
            let empty = draft.is_empty();
            let send_w = 80.0;
            let edit = egui::TextEdit::multiline(draft)
                .id_salt(("composer", conv))
                .hint_text(t.composer_hint)
                .desired_rows(1)
                .desired_width(ui.available_width() - send_w)
                // Shift+Enter breaks the line; plain Enter is ours (send).
                .return_key(egui::KeyboardShortcut::new(
                    egui::Modifiers::SHIFT,
                    Key::Enter,
                ));
            let response = ui.add(edit);
            let enter = response.has_focus()
                && ui.input(|i| i.key_pressed(Key::Enter) && !i.modifiers.shift);
            if enter {
                send = true;
            }
            // The Up arrow in an empty composer edits the last own message.
            if response.has_focus() && empty && ui.input(|i| i.key_pressed(Key::ArrowUp)) {
                edit_last = true;
            }
            if focus || picked.is_some() {
                // Reply or edit chosen: the keyboard goes here, the cursor after the text.
                response.request_focus();
                if let Some(mut state) = egui::TextEdit::load_state(ui.ctx(), response.id) {
                    let end = egui::text::CCursor::new(
                        self.drafts.get(conv).map_or(0, |d| d.chars().count()),
                    );
                    state
                        .cursor
                        .set_char_range(Some(egui::text::CCursorRange::one(end)));
                    state.store(ui.ctx(), response.id);
                }
            }
            if ui
                .add_sized(vec2(send_w - 8.0, 30.0), egui::Button::new(t.send))
                .clicked()
            {
                send = true;
                response.request_focus();
            }
            if self
                .chat
                .as_ref()
                .is_some_and(|c| c.conversation == conv && !c.is_loaded())
            {
                response.request_focus();
            }
        });
        if send {
            self.send_draft();
        }
        if edit_last {
            self.edit_last_own(conv);
        }
        if attach {
            self.pick_file(conv);
        }
    }

    fn history_ui(&mut self, ui: &mut egui::Ui, view: Option<&ConversationView>) {
        let Some(mut chat) = self.chat.take() else {
            return;
        };
        let width = ui.available_width();
        if (chat.width - width).abs() > 0.5 {
            chat.heights.clear();
            chat.width = width;
        }
        let n = chat.items.len();
        let mut tops = Vec::with_capacity(n + 1);
        let mut y = 8.0;
        for (i, m) in chat.items.iter().enumerate() {
            tops.push(y);
            y += chat.heights.get(&m.event_id).copied().unwrap_or_else(|| {
                estimate_height(m, width) + if new_day(&chat.items, i) { 30.0 } else { 0.0 }
            });
        }
        let total = y + 8.0;
        // A quote was clicked: scroll to its original, loading older pages until it is
        // here (or there are none).
        let mut jump_offset = None;
        if let Some(target) = chat.jump_to.clone() {
            match chat.items.iter().position(|m| m.event_id == target) {
                Some(i) => {
                    jump_offset = Some((tops[i] - 60.0).max(0.0));
                    chat.to_bottom = false;
                    chat.highlight = Some((target, std::time::Instant::now()));
                    chat.jump_to = None;
                }
                None if !chat.has_older => chat.jump_to = None,
                None => {}
            }
        }
        let mut area = egui::ScrollArea::vertical()
            .id_salt(("history", &chat.conversation))
            .auto_shrink(false)
            .stick_to_bottom(true);
        if let Some(offset) = jump_offset {
            area = area.vertical_scroll_offset(offset);
        } else if let Some(adjust) = chat.prepend_adjust.take() {
            area = area.vertical_scroll_offset(chat.last_offset + adjust);
        } else if chat.to_bottom && chat.loaded {
            area = area.vertical_scroll_offset(total);
            chat.to_bottom = false;
        }
        let t = self.t();
        let german = self.lang() == super::i18n::Lang::De;
        let mut measured = Vec::new();
        let mut info = None;
        let mut jump = None;
        let highlighted = chat
            .highlight
            .as_ref()
            .filter(|(_, at)| at.elapsed() < HIGHLIGHT_FOR)
            .map(|(id, _)| id.clone());
        let output = area.show_viewport(ui, |ui, viewport| {
            ui.set_min_height(total);
            let origin = ui.min_rect().min;
            let first = tops
                .partition_point(|&top| top <= viewport.min.y)
                .saturating_sub(1);
            for (i, &top) in tops.iter().enumerate().skip(first) {
                if top > viewport.max.y {
                    break;
                }
                let rect =
                    egui::Rect::from_min_size(origin + vec2(0.0, tops[i]), vec2(width, 10_000.0));
                let lit = highlighted.as_deref() == Some(chat.items[i].event_id.as_str());
                let drawn = ui.scope_builder(UiBuilder::new().max_rect(rect).id_salt(i), |ui| {
                    self.row_ui(ui, &chat.items, i, view, lit, t, german)
                });
                match drawn.inner {
                    RowAction::Info => info = Some(chat.items[i].event_id.clone()),
                    RowAction::Jump(id) => jump = Some(id),
                    RowAction::None => {}
                }
                measured.push((chat.items[i].event_id.clone(), drawn.response.rect.height()));
            }
        });
        let mut moved = false;
        for (id, h) in measured {
            moved |= chat
                .heights
                .insert(id, h)
                .is_none_or(|old| (old - h).abs() > 0.5);
        }
        if moved {
            // Rows were placed by estimates (or sizes changed): place them again at once,
            // or they overlap until the next input.
            ui.ctx().request_repaint();
        }
        chat.last_offset = output.state.clamped_offset().y;
        let near_top = output.state.clamped_offset().y < LOAD_OLDER_MARGIN;
        if let Some(id) = jump {
            chat.jump_to = Some(id);
            ui.ctx().request_repaint();
        }
        if highlighted.is_some() {
            ui.ctx().request_repaint_after(HIGHLIGHT_FOR);
        }
        let searching = chat.jump_to.is_some();
        let wants_older =
            (near_top || searching) && chat.has_older && !chat.loading_older && chat.loaded;
        let conversation = chat.conversation.clone();
        self.chat = Some(chat);
        if wants_older {
            self.load_older();
        }
        if let Some(event_id) = info {
            self.open_message_info(&conversation, &event_id);
        }
    }

    /// One row of the history; what was clicked in it.
    #[allow(clippy::too_many_arguments)]
    fn row_ui(
        &mut self,
        ui: &mut egui::Ui,
        items: &[MessageItem],
        i: usize,
        view: Option<&ConversationView>,
        highlighted: bool,
        t: &Texts,
        german: bool,
    ) -> RowAction {
        let group = view.is_some_and(|v| v.kind == "group");
        let mut action = RowAction::None;
        let m = &items[i];
        let day_changed = new_day(items, i);
        if day_changed {
            // A small centred pill with the day, as phone messengers show it.
            let label = day_label(t, german, m.wall_ms);
            let color = ui.visuals().text_color();
            let galley =
                ui.painter()
                    .layout_no_wrap(label.clone(), egui::FontId::proportional(12.0), color);
            let width = ui.available_width();
            let (row, response) =
                ui.allocate_exact_size(vec2(width, galley.size().y + 8.0), Sense::hover());
            response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, &label));
            let pill = egui::Rect::from_center_size(row.center(), galley.size() + vec2(20.0, 6.0));
            ui.painter()
                .rect_filled(pill, 8.0, style::day_fill(ui.visuals()));
            ui.painter()
                .galley(pill.center() - galley.size() / 2.0, galley, color);
            ui.add_space(6.0);
        }
        if m.notice.is_some() {
            // A line about the group itself, centred and quiet, as phone messengers show it.
            let text = notice_text(t, m);
            ui.vertical_centered(|ui| {
                ui.add(egui::Label::new(RichText::new(text).size(12.5).weak()).wrap());
            });
            ui.add_space(6.0);
            return RowAction::None;
        }
        let show_name = group
            && !m.own
            && (i == 0
                || day_changed
                || items[i - 1].author != m.author
                || items[i - 1].notice.is_some());
        let layout = if m.own {
            Layout::right_to_left(Align::Min)
        } else {
            Layout::left_to_right(Align::Min)
        };
        let max_w = (ui.available_width() * style::BUBBLE_WIDTH_FRACTION).max(160.0);
        let stroke = if highlighted {
            egui::Stroke::new(2.0, ui.visuals().selection.stroke.color)
        } else if m.mentions_me {
            egui::Stroke::new(1.5, style::MENTION)
        } else {
            egui::Stroke::NONE
        };
        ui.with_layout(layout, |ui| {
            ui.add_space(10.0);
            // Sensing clicks below its contents: buttons inside keep theirs, a right-click
            // anywhere else on the bubble opens its menu (as a long press on a phone).
            let bubble = ui.scope_builder(UiBuilder::new().sense(Sense::click()), |ui| {
                egui::Frame::NONE
                    .fill(style::bubble_fill(ui.visuals(), m.own))
                    .stroke(stroke)
                    .corner_radius(CornerRadius::same(10))
                    .inner_margin(egui::Margin::symmetric(10, 6))
                    .show(ui, |ui| {
                        ui.set_max_width(max_w);
                        ui.vertical(|ui| {
                            if show_name {
                                ui.label(
                                    RichText::new(&m.author_name)
                                        .strong()
                                        .size(12.5)
                                        .color(style::name_color(&m.author)),
                                );
                            }
                            if m.deleted {
                                ui.label(
                                    RichText::new(t.message_deleted).size(13.5).weak().italics(),
                                );
                            }
                            if self.quote_ui(ui, m, t)
                                && let Some(q) = &m.reply_to
                            {
                                action = RowAction::Jump(q.event_id.clone());
                            }
                            if let Some(file) = &m.file {
                                self.file_ui(ui, m, file);
                            }
                            if !m.deleted && (!m.text.is_empty() || m.file.is_none()) {
                                let color = ui.visuals().strong_text_color();
                                super::emoji::text_label(ui, &m.text, 14.5, color);
                            }
                            if m.for_some_members {
                                ui.add(
                                    egui::Label::new(
                                        RichText::new(t.for_some_members)
                                            .size(11.5)
                                            .color(ui.visuals().warn_fg_color),
                                    )
                                    .wrap(),
                                )
                                .on_hover_text(t.for_some_members_hint);
                            }
                            self.reactions_ui(ui, m);
                            ui.horizontal(|ui| {
                                if m.edited && !m.deleted {
                                    ui.label(RichText::new(t.edited).size(11.0).weak().italics());
                                }
                                ui.label(RichText::new(time_of_day(m.wall_ms)).size(11.0).weak());
                                if m.own && !m.deleted && self.ticks_ui(ui, m, t) {
                                    action = RowAction::Info;
                                }
                                if !m.deleted {
                                    // Quiet (no frame), as the chevron on a phone's bubble.
                                    let dots =
                                        egui::Button::new(RichText::new("…").size(13.0).weak())
                                            .frame(false);
                                    egui::containers::menu::MenuButton::from_button(dots)
                                        .ui(ui, |ui| self.message_menu_ui(ui, m, view))
                                        .0
                                        .on_hover_text(t.message_menu);
                                }
                            });
                        });
                    });
            });
            if !m.deleted {
                bubble
                    .response
                    .context_menu(|ui| self.message_menu_ui(ui, m, view));
            }
        });
        ui.add_space(6.0);
        action
    }

    /// The ticks of an own message; hovering shows counts (and names, when few), a click
    /// opens the message info with every name. True if clicked.
    fn ticks_ui(&self, ui: &mut egui::Ui, m: &MessageItem, t: &Texts) -> bool {
        let (text, color, title) = match ticks(m) {
            Ticks::Saved => (
                "✔",
                ui.visuals().weak_text_color(),
                t.state_saved.to_string(),
            ),
            Ticks::Partly { delivered, of } => (
                "✔",
                ui.visuals().weak_text_color(),
                fill(
                    t.state_partly,
                    &[("n", &delivered.to_string()), ("m", &of.to_string())],
                ),
            ),
            Ticks::Delivered => (
                "✔✔",
                ui.visuals().weak_text_color(),
                t.state_delivered.to_string(),
            ),
            Ticks::Read => ("✔✔", style::READ, t.state_read.to_string()),
        };
        let response = ui
            .add(
                egui::Label::new(RichText::new(text).size(13.0).color(color)).sense(Sense::click()),
            )
            .on_hover_ui(|ui| {
                ui.label(RichText::new(&title).strong());
                let of = recipients(m).to_string();
                for (heading, users) in [
                    (t.read_by, &m.read_by),
                    (t.delivered_to, &m.delivered_to),
                    (t.waiting_for, &m.waiting_for),
                ] {
                    if users.is_empty() {
                        continue;
                    }
                    let count = fill(t.count_of, &[("n", &users.len().to_string()), ("m", &of)]);
                    if users.len() <= HOVER_NAMES {
                        let names: Vec<String> = users.iter().map(|u| self.name_of(u)).collect();
                        ui.label(format!("{heading} ({count}): {}", names.join(", ")));
                    } else {
                        ui.label(format!("{heading}: {count}"));
                    }
                }
                ui.label(RichText::new(t.click_for_details).weak());
            });
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &title));
        response.clicked()
    }
}

/// The line for a notice item ("Anna hat Bernd entfernt").
pub fn notice_text(t: &Texts, m: &MessageItem) -> String {
    let template = match m.notice.as_deref() {
        Some("created") => t.notice_created,
        Some("added") => t.notice_added,
        Some("removed") => t.notice_removed,
        Some("left") => t.notice_left,
        Some("promoted") => t.notice_promoted,
        Some("renamed") => t.notice_renamed,
        Some("key_changed") => t.notice_key_changed,
        _ => return m.text.clone(),
    };
    super::i18n::fill(
        template,
        &[
            ("by", &m.author_name),
            ("user", m.subject_name.as_deref().unwrap_or("?")),
            ("name", &m.text),
        ],
    )
}

fn new_day(items: &[MessageItem], i: usize) -> bool {
    i == 0 || local_day(items[i - 1].wall_ms) != local_day(items[i].wall_ms)
}

/// `galley` if it fits in `width`, else the text cut with an ellipsis.
pub(super) fn elide(
    ui: &egui::Ui,
    galley: std::sync::Arc<egui::Galley>,
    text: &str,
    font: egui::FontId,
    color: Color32,
    width: f32,
) -> std::sync::Arc<egui::Galley> {
    if galley.size().x <= width && galley.rows.len() <= 1 {
        return galley;
    }
    let mut job = egui::text::LayoutJob::simple_singleline(text.to_string(), font, color);
    job.wrap = egui::text::TextWrapping::truncate_at_width(width);
    ui.painter().layout_job(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(order: u64, id: &str) -> MessageItem {
        MessageItem {
            conversation: "c".into(),
            event_id: id.into(),
            order: format!("{order:016x}"),
            author: "a".into(),
            author_name: "A".into(),
            own: false,
            wall_ms: 0,
            text: id.into(),
            delivered_to: vec![],
            read_by: vec![],
            waiting_for: vec![],
            for_some_members: false,
            notice: None,
            subject: None,
            subject_name: None,
            file: None,
            ..Default::default()
        }
    }

    fn ids(c: &ChatState) -> Vec<&str> {
        c.items.iter().map(|m| m.event_id.as_str()).collect()
    }

    #[test]
    fn merging_the_newest_page_keeps_older_rows_and_replaces_the_rest() {
        let mut c = ChatState::new("c".into());
        c.merge_tail(vec![item(1, "a"), item(2, "b"), item(3, "c")], 3);
        assert!(c.has_older, "a full page may have more before it");
        c.prepend(vec![item(0, "z")], 3);
        assert!(!c.has_older);
        assert_eq!(ids(&c), ["z", "a", "b", "c"]);
        // New message d; b was retracted.
        c.merge_tail(vec![item(1, "a"), item(3, "c"), item(4, "d")], 3);
        assert_eq!(ids(&c), ["z", "a", "c", "d"]);
        // A tail that does not reach back: drop the rest rather than show a hole.
        c.merge_tail(vec![item(10, "x"), item(11, "y"), item(12, "w")], 3);
        assert_eq!(ids(&c), ["x", "y", "w"]);
        assert!(c.has_older);
        c.merge_tail(vec![], 3);
        assert!(c.items.is_empty());
    }

    #[test]
    fn ticks_follow_delivery_and_reading() {
        let mut m = item(1, "a");
        m.own = true;
        m.waiting_for = vec!["b".into(), "c".into()];
        assert!(matches!(ticks(&m), Ticks::Saved));
        m.waiting_for = vec!["c".into()];
        m.delivered_to = vec!["b".into()];
        assert!(matches!(
            ticks(&m),
            Ticks::Partly {
                delivered: 1,
                of: 2
            }
        ));
        m.waiting_for.clear();
        m.delivered_to.push("c".into());
        assert!(matches!(ticks(&m), Ticks::Delivered));
        m.read_by = vec!["b".into(), "c".into()];
        assert!(matches!(ticks(&m), Ticks::Read));
    }
}
