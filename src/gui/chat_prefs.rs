//! What a user sets per chat, as on a phone: pin to the top, mute (1 hour, 8 hours, until
//! turned on; a message that calls the user with @ still notifies), mark as unread. Kept
//! in `app.json` (`settings::Settings`), so they survive restarts; right-click a chat in
//! the list for them.

use super::app::FlurfunkApp;
use crate::node::ConversationView;

/// Mute choices offered, in hours; `None`: until turned on again.
const MUTE_HOURS: [Option<u64>; 3] = [Some(1), Some(8), None];

/// What the chat menu asked for.
pub(super) enum ChatAction {
    Pin(bool),
    /// Until this time (ms since 1970); `None`: turn sound on again.
    Mute(Option<u64>),
    MarkUnread,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl FlurfunkApp {
    pub(super) fn is_pinned(&self, conversation: &str) -> bool {
        self.settings.pinned.contains(conversation)
    }

    pub(super) fn is_muted(&self, conversation: &str) -> bool {
        self.settings
            .muted
            .get(conversation)
            .is_some_and(|until| *until > now_ms())
    }

    pub(super) fn is_marked_unread(&self, conversation: &str) -> bool {
        self.settings.marked_unread.contains(conversation)
    }

    /// The chats in list order: pinned first, each part by newest activity (as the node
    /// sorted them).
    pub(super) fn ordered_chats(&self) -> Vec<ConversationView> {
        let (mut pinned, rest): (Vec<_>, Vec<_>) = self
            .conversations
            .iter()
            .cloned()
            .partition(|c| self.is_pinned(&c.conversation));
        pinned.extend(rest);
        pinned
    }

    /// The right-click menu of a chat in the list.
    pub(super) fn chat_menu_ui(
        &self,
        ui: &mut egui::Ui,
        c: &ConversationView,
    ) -> Option<ChatAction> {
        let t = self.t();
        let mut action = None;
        let pinned = self.is_pinned(&c.conversation);
        if ui.button(if pinned { t.unpin } else { t.pin }).clicked() {
            action = Some(ChatAction::Pin(!pinned));
        }
        if self.is_muted(&c.conversation) {
            if ui.button(t.unmute).clicked() {
                action = Some(ChatAction::Mute(None));
            }
        } else {
            ui.menu_button(t.mute, |ui| {
                for hours in MUTE_HOURS {
                    let label = match hours {
                        Some(1) => t.mute_1h,
                        Some(_) => t.mute_8h,
                        None => t.mute_always,
                    };
                    if ui.button(label).clicked() {
                        let until = hours.map_or(u64::MAX, |h| now_ms() + h * 3_600_000);
                        action = Some(ChatAction::Mute(Some(until)));
                    }
                }
            });
        }
        if c.unread == 0
            && !self.is_marked_unread(&c.conversation)
            && ui.button(t.mark_unread).clicked()
        {
            action = Some(ChatAction::MarkUnread);
        }
        if action.is_some() {
            ui.close();
        }
        action
    }

    pub(super) fn apply_chat_action(&mut self, conversation: String, action: ChatAction) {
        match action {
            ChatAction::Pin(true) => {
                self.settings.pinned.insert(conversation);
            }
            ChatAction::Pin(false) => {
                self.settings.pinned.remove(&conversation);
            }
            ChatAction::Mute(Some(until)) => {
                self.settings.muted.insert(conversation, until);
            }
            ChatAction::Mute(None) => {
                self.settings.muted.remove(&conversation);
            }
            ChatAction::MarkUnread => {
                if self.selected.as_deref() == Some(conversation.as_str()) {
                    // Marked while open: it stays marked once the user looks elsewhere.
                    self.selected = None;
                    self.chat = None;
                }
                self.settings.marked_unread.insert(conversation);
            }
        }
        self.save_settings();
    }

    /// Opening a chat ends "marked as unread".
    pub(super) fn clear_marked_unread(&mut self, conversation: &str) {
        if self.settings.marked_unread.remove(conversation) {
            self.save_settings();
        }
    }
}
