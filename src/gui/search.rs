//! Search across all chats from the box above the chat list: chats whose name matches,
//! then the messages found by the node (`NodeHandle::search`: every word, prefixes, case
//! and umlauts folded), newest first, with the chat, author, date and the words in bold; a
//! click opens the chat at that message. Ctrl+F puts the keyboard in the box.
//!
//! The node searches; nothing here reads messages itself or keeps them beyond the results.

use egui::{RichText, Sense, text::LayoutJob};

use super::app::FlurfunkApp;
use super::bridge::Update;
use crate::node::SearchItem;

/// Messages shown for a search (the newest).
pub const SEARCH_RESULTS: usize = 50;
/// Characters typed before messages are searched (one letter finds everything).
const MIN_QUERY_CHARS: usize = 2;

/// The last search asked of the node and its results.
#[derive(Default)]
pub struct SearchState {
    /// The query whose results are shown (or are being fetched).
    pub query: String,
    pub results: Vec<SearchItem>,
    pub busy: bool,
}

impl FlurfunkApp {
    /// Ask the node when the query changed (one search in flight; the newest query wins
    /// when it comes back).
    pub(super) fn search_if_changed(&mut self) {
        let query = self.search.trim().to_string();
        if query.chars().count() < MIN_QUERY_CHARS {
            self.found = SearchState::default();
            return;
        }
        if query == self.found.query || self.found.busy {
            return;
        }
        let Some(node) = self.node().cloned() else {
            return;
        };
        self.found.busy = true;
        self.found.query = query.clone();
        self.bridge.act(
            &node,
            move |n| async move {
                n.search(query.clone(), None, SEARCH_RESULTS)
                    .await
                    .map(|r| (query, r))
            },
            |(query, results)| Update::Found { query, results },
        );
    }

    pub(super) fn found(&mut self, query: String, results: Vec<SearchItem>) {
        self.found.busy = false;
        if query == self.found.query {
            self.found.results = results;
        }
        // Typed on meanwhile: ask again for what the box says now.
        self.search_if_changed();
    }

    /// The messages found, under the chats; returns (conversation, event id) clicked.
    pub(super) fn search_results_ui(&self, ui: &mut egui::Ui) -> Option<(String, String)> {
        let t = self.t();
        if self.found.query.is_empty() {
            return None;
        }
        ui.add_space(8.0);
        ui.label(RichText::new(t.search_messages).strong().size(13.0));
        if self.found.results.is_empty() {
            let text = if self.found.busy {
                t.searching
            } else {
                t.nothing_found
            };
            ui.label(RichText::new(text).weak());
            return None;
        }
        let german = self.lang() == super::i18n::Lang::De;
        let mut clicked = None;
        for hit in &self.found.results {
            let day = super::chat::day_label(t, german, hit.wall_ms);
            let head = format!(
                "{} · {} · {} {}",
                hit.conversation_name,
                hit.author_name,
                day,
                super::chat::time_of_day(hit.wall_ms)
            );
            let response = egui::Frame::NONE
                .inner_margin(egui::Margin::symmetric(6, 4))
                .show(ui, |ui| {
                    ui.set_width(ui.available_width());
                    ui.label(RichText::new(&head).size(11.5).weak());
                    let job = highlighted(
                        &crate::sync::snippet(&hit.text),
                        &self.found.query,
                        ui.visuals().text_color(),
                        ui.visuals().strong_text_color(),
                    );
                    ui.add(egui::Label::new(job).truncate());
                })
                .response
                .interact(Sense::click());
            let response = response.on_hover_cursor(egui::CursorIcon::PointingHand);
            response.widget_info(|| {
                egui::WidgetInfo::labeled(egui::Role::Button, true, format!("{head}: {}", hit.text))
            });
            if response.clicked() {
                clicked = Some((hit.conversation.clone(), hit.event_id.clone()));
            }
        }
        clicked
    }

    /// Open a message found: its chat, scrolled to it (older pages load as needed).
    pub(super) fn open_found(&mut self, conversation: String, event_id: String) {
        self.select(conversation);
        if let Some(chat) = self.chat.as_mut() {
            chat.jump_to = Some(event_id);
        }
    }
}

/// `text` with the words of `query` (matched ignoring case) drawn strong.
fn highlighted(text: &str, query: &str, normal: egui::Color32, strong: egui::Color32) -> LayoutJob {
    let font = egui::FontId::proportional(13.5);
    let plain = egui::TextFormat::simple(font.clone(), normal);
    let bold = egui::TextFormat::simple(font, strong);
    let mut job = LayoutJob::default();
    let lower = text.to_lowercase();
    // Positions only carry over where lower-casing kept every byte length.
    if lower.len() != text.len() {
        job.append(text, 0.0, plain);
        return job;
    }
    let mut marks = vec![false; text.len()];
    for word in query.split_whitespace().map(str::to_lowercase) {
        for (at, _) in lower.match_indices(word.as_str()) {
            marks[at..at + word.len()]
                .iter_mut()
                .for_each(|m| *m = true);
        }
    }
    let mut start = 0;
    while start < text.len() {
        let on = marks[start];
        let mut end = start;
        while end < text.len() && marks[end] == on {
            end += 1;
        }
        while !text.is_char_boundary(end) {
            end += 1;
        }
        job.append(
            &text[start..end],
            0.0,
            if on { bold.clone() } else { plain.clone() },
        );
        start = end;
    }
    job
}
