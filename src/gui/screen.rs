//! The main screen: banners on top, status bar at the bottom, chat list on the left, the
//! open conversation in the middle, dialogs above.

use egui::RichText;

use super::app::{ALONE_AFTER, FlurfunkApp};
use super::i18n::fill;
use super::style;

impl FlurfunkApp {
    pub(super) fn main_ui(&mut self, ui: &mut egui::Ui) {
        let t = self.t();
        let ctx = ui.ctx().clone();
        self.banners_ui(ui);
        egui::Panel::bottom("status_bar").show(ui, |ui| {
            ui.horizontal(|ui| {
                if let Some(s) = &self.status {
                    let dot = if s.peers_online > 0 {
                        style::ONLINE
                    } else {
                        ui.visuals().weak_text_color()
                    };
                    let (r, _) =
                        ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
                    ui.painter().circle_filled(r.center(), 4.5, dot);
                    ui.label(RichText::new(&s.name).strong());
                    ui.separator();
                    let network = if s.demo_network {
                        format!("Demo {}", s.network)
                    } else {
                        s.network.clone()
                    };
                    ui.label(fill(t.status_network, &[("fp", &network)]));
                    ui.separator();
                    ui.label(fill(t.status_peers, &[("n", &s.peers_online.to_string())]));
                    if s.outbox > 0 {
                        ui.separator();
                        ui.label(fill(t.status_outbox, &[("n", &s.outbox.to_string())]));
                    }
                }
            });
        });
        egui::Panel::left("chat_list")
            .resizable(true)
            .default_size(300.0)
            .min_size(220.0)
            .show(ui, |ui| self.chat_list_ui(ui));
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE)
            .show(ui, |ui| self.conversation_ui(ui));
        self.dialog_ui(&ctx);
    }

    fn banners_ui(&mut self, ui: &mut egui::Ui) {
        let t = self.t();
        let demo = self.status.as_ref().is_some_and(|s| s.demo_network);
        let alone = self.alone_since.is_some_and(|s| s.elapsed() >= ALONE_AFTER);
        let key_outdated = self.status.as_ref().is_some_and(|s| s.network_key_refused);
        // A rotation under way whose new key this node was not given.
        let not_given = self
            .status
            .as_ref()
            .and_then(|s| s.key_rotation.as_ref())
            .is_some_and(|r| r.next_network.is_none());
        if !demo
            && !alone
            && !key_outdated
            && !not_given
            && self.notices.is_empty()
            && self.key_changes.is_empty()
        {
            return;
        }
        let mut dismiss_notice = None;
        let mut dismiss_change = None;
        let mut verify = None;
        egui::Panel::top("banners")
            .frame(egui::Frame::NONE)
            .show(ui, |ui| {
                let banner = |ui: &mut egui::Ui,
                              fill_color,
                              text_color,
                              text: &str,
                              add: &mut dyn FnMut(&mut egui::Ui)| {
                    egui::Frame::NONE
                        .fill(fill_color)
                        .inner_margin(egui::Margin::symmetric(12, 6))
                        .show(ui, |ui| {
                            ui.set_width(ui.available_width());
                            ui.horizontal_wrapped(|ui| {
                                ui.label(RichText::new(text).color(text_color));
                                add(ui);
                            });
                        });
                };
                if demo {
                    banner(
                        ui,
                        style::DEMO_FILL,
                        style::DEMO_TEXT,
                        t.demo_banner,
                        &mut |_| {},
                    );
                }
                for (i, change) in self.key_changes.iter().enumerate() {
                    let text = fill(t.key_changed, &[("name", &change.name)]);
                    banner(ui, style::DEMO_FILL, style::DEMO_TEXT, &text, &mut |ui| {
                        if ui.button(t.verify_title).clicked() {
                            verify = Some(change.new_user.clone());
                        }
                        if ui.button(t.key_changed_ack).clicked() {
                            dismiss_change = Some(i);
                        }
                    });
                }
                if not_given {
                    banner(
                        ui,
                        style::WARNING_FILL,
                        style::WARNING_TEXT,
                        t.key_not_given_banner,
                        &mut |_| {},
                    );
                }
                if key_outdated {
                    banner(
                        ui,
                        style::WARNING_FILL,
                        style::WARNING_TEXT,
                        t.key_outdated_banner,
                        &mut |_| {},
                    );
                } else if alone {
                    banner(
                        ui,
                        style::WARNING_FILL,
                        style::WARNING_TEXT,
                        t.alone_banner,
                        &mut |_| {},
                    );
                }
                for (i, n) in self.notices.iter().enumerate() {
                    banner(ui, style::WARNING_FILL, style::WARNING_TEXT, n, &mut |ui| {
                        if ui.small_button("✖").on_hover_text(t.close).clicked() {
                            dismiss_notice = Some(i);
                        }
                    });
                }
            });
        if let Some(i) = dismiss_notice {
            self.notices.remove(i);
        }
        if let Some(i) = dismiss_change {
            self.key_changes.remove(i);
        }
        if let Some(user) = verify {
            self.open_verify(&user);
        }
    }
}

/// A tooltip on a shown name that ends in one of the directory's marks: what the mark
/// means (an official name, or a self-chosen one that looks like someone's official one).
pub(super) fn explain_marks(t: &super::i18n::Texts, label: egui::Response, name: &str) {
    use crate::identity::{DOUBTFUL_MARK, OFFICIAL_MARK};
    if name.ends_with(OFFICIAL_MARK) {
        label.on_hover_text(t.mark_official);
    } else if name.ends_with(DOUBTFUL_MARK) {
        label.on_hover_text(t.mark_doubtful);
    }
}
