//! First start: the user's name, then a network (join with a key file or pasted key,
//! create one and save its key file, or the clearly labelled demo network).

use std::path::PathBuf;

use egui::RichText;

use super::app::FlurfunkApp;
use super::i18n::fill;
use super::style;
use crate::app::launch;
use crate::identity::validate_name;
use crate::net::NetworkKey;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Step {
    #[default]
    Name,
    Network,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Choice {
    #[default]
    Join,
    Create,
    Demo,
    /// The network key the administrator installed for this machine.
    Machine,
}

pub struct Wizard {
    pub step: Step,
    pub name: String,
    pub choice: Choice,
    pub key_path: String,
    pub key_text: String,
    pub save_path: String,
    pub error: Option<String>,
}

impl Default for Wizard {
    fn default() -> Self {
        let save = dirs::document_dir()
            .or_else(dirs::home_dir)
            .unwrap_or_else(|| PathBuf::from("."))
            .join("flurfunk-netzwerk.key");
        Wizard {
            step: Step::Name,
            name: String::new(),
            choice: Choice::Join,
            key_path: String::new(),
            key_text: String::new(),
            save_path: save.display().to_string(),
            error: None,
        }
    }
}

/// What the wizard decided, ready to be written.
enum NetworkSetup {
    Join(NetworkKey),
    Create(NetworkKey, PathBuf),
    Demo,
    Machine,
}

impl Wizard {
    fn network(&self) -> Result<NetworkSetup, String> {
        match self.choice {
            Choice::Join => {
                let key = if !self.key_text.trim().is_empty() {
                    NetworkKey::parse(self.key_text.trim(), "pasted key")
                } else {
                    NetworkKey::load(std::path::Path::new(self.key_path.trim()))
                };
                key.map(NetworkSetup::Join).map_err(|e| e.to_string())
            }
            Choice::Create => Ok(NetworkSetup::Create(
                NetworkKey::generate(&mut rand::rngs::OsRng),
                PathBuf::from(self.save_path.trim()),
            )),
            Choice::Demo => Ok(NetworkSetup::Demo),
            Choice::Machine => Ok(NetworkSetup::Machine),
        }
    }
}

impl FlurfunkApp {
    pub(super) fn wizard_ui(&mut self, ui: &mut egui::Ui) {
        let t = self.t();
        let dropped: Option<PathBuf> =
            ui.input(|i| i.raw.dropped_files.first().map(|f| f.path().to_path_buf()));
        let mut finish = false;
        let lang = self.lang();
        let mut new_lang = None;
        egui::CentralPanel::default().show(ui, |ui| {
            let super::app::Phase::Wizard(w) = &mut self.phase else {
                return;
            };
            if let Some(path) = dropped {
                w.key_path = path.display().to_string();
                w.key_text.clear();
                w.choice = Choice::Join;
                w.step = Step::Network;
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Min), |ui| {
                for l in [super::i18n::Lang::En, super::i18n::Lang::De] {
                    if ui.selectable_label(lang == l, l.native_name()).clicked() {
                        new_lang = Some(l);
                    }
                }
            });
            ui.vertical_centered(|ui| {
                ui.set_max_width(520.0);
                ui.add_space(30.0);
                ui.heading(RichText::new(t.wizard_welcome).size(26.0));
                ui.add_space(16.0);
                match w.step {
                    Step::Name => {
                        ui.label(t.wizard_intro);
                        ui.add_space(12.0);
                        let label = ui.label(RichText::new(t.wizard_your_name).strong());
                        let edit = ui
                            .add(
                                egui::TextEdit::singleline(&mut w.name)
                                    .hint_text(t.wizard_name_hint)
                                    .desired_width(360.0),
                            )
                            .labelled_by(label.id);
                        if w.name.is_empty() && !edit.has_focus() {
                            edit.request_focus();
                        }
                        let enter =
                            edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                        ui.add_space(12.0);
                        let ok = validate_name(w.name.trim()).is_ok();
                        let next = ui
                            .add_enabled(ok, egui::Button::new(t.wizard_next))
                            .clicked();
                        if ok && (next || enter) {
                            w.error = None;
                            let locked = crate::app::machine_policy::MachinePolicy::load()
                                .is_ok_and(|m| m.lock_network);
                            if launch::machine_network_key().is_some() || locked {
                                // IT installed the town hall's key for everyone here (or
                                // locked the machine to it: then no other choice, and the
                                // start says what is missing).
                                w.choice = Choice::Machine;
                                finish = true;
                            } else {
                                w.step = Step::Network;
                            }
                        }
                    }
                    Step::Network => {
                        ui.heading(t.wizard_network_title);
                        ui.label(t.wizard_network_intro);
                        ui.add_space(10.0);
                        ui.radio_value(
                            &mut w.choice,
                            Choice::Join,
                            RichText::new(t.wizard_join).strong(),
                        );
                        if w.choice == Choice::Join {
                            ui.label(RichText::new(t.wizard_join_hint).weak());
                            let l = ui.label(t.wizard_key_file);
                            ui.add(
                                egui::TextEdit::singleline(&mut w.key_path).desired_width(420.0),
                            )
                            .labelled_by(l.id);
                            let l = ui.label(t.wizard_key_paste);
                            ui.add(
                                egui::TextEdit::multiline(&mut w.key_text)
                                    .desired_rows(3)
                                    .desired_width(420.0)
                                    .font(egui::TextStyle::Monospace),
                            )
                            .labelled_by(l.id);
                            ui.label(RichText::new(t.wizard_drop_hint).weak().small());
                        }
                        ui.add_space(6.0);
                        ui.radio_value(
                            &mut w.choice,
                            Choice::Create,
                            RichText::new(t.wizard_create).strong(),
                        );
                        if w.choice == Choice::Create {
                            ui.label(RichText::new(t.wizard_create_hint).weak());
                            let l = ui.label(t.wizard_create_save_to);
                            ui.add(
                                egui::TextEdit::singleline(&mut w.save_path).desired_width(420.0),
                            )
                            .labelled_by(l.id);
                        }
                        ui.add_space(6.0);
                        ui.radio_value(
                            &mut w.choice,
                            Choice::Demo,
                            RichText::new(t.wizard_demo).strong(),
                        );
                        if w.choice == Choice::Demo {
                            ui.label(RichText::new(t.wizard_demo_hint).color(style::DEMO_TEXT));
                        }
                        ui.add_space(14.0);
                        if let Some(e) = &w.error {
                            ui.colored_label(style::DEMO_TEXT, e);
                        }
                        ui.horizontal(|ui| {
                            if ui.button(t.wizard_back).clicked() {
                                w.step = Step::Name;
                            }
                            if ui.button(RichText::new(t.wizard_finish).strong()).clicked() {
                                finish = true;
                            }
                        });
                    }
                }
            });
        });
        if let Some(l) = new_lang {
            self.settings.language = Some(l);
            self.config.language = None;
        }
        if finish {
            self.finish_wizard();
        }
    }

    /// Write identity and network key, then start the node.
    fn finish_wizard(&mut self) {
        let t = self.t();
        let super::app::Phase::Wizard(w) = &mut self.phase else {
            return;
        };
        let dir = self.config.dir.clone();
        let result = (|| -> Result<Option<String>, String> {
            let network = w.network()?;
            dir.create()
                .map_err(|e| format!("{}: {e}", dir.root().display()))?;
            let mut saved = None;
            match &network {
                NetworkSetup::Join(key) => key
                    .save_replace(&dir.network_key())
                    .map_err(|e| e.to_string())?,
                NetworkSetup::Create(key, path) => {
                    // A managed network, as `flurfunk network new` makes: the admin key
                    // stays in this data directory (the settings' admin section), its
                    // public half goes into the key file handed out.
                    if dir.admin_key().exists() {
                        return Err(format!(
                            "{} exists already; refusing to overwrite an admin key",
                            dir.admin_key().display()
                        ));
                    }
                    let admin = crate::admin::AdminKey::generate(&mut rand::rngs::OsRng);
                    let key = key.with_admin(admin.public());
                    key.save_new(path).map_err(|e| e.to_string())?;
                    admin
                        .save_new(&dir.admin_key())
                        .map_err(|e| e.to_string())?;
                    key.save_replace(&dir.network_key())
                        .map_err(|e| e.to_string())?;
                    saved = Some(fill(
                        t.wizard_key_saved,
                        &[("path", &path.display().to_string())],
                    ));
                }
                NetworkSetup::Machine => {}
                // Chosen, so written down: a missing file never means the demo network.
                NetworkSetup::Demo => NetworkKey::demo()
                    .save_replace(&dir.network_key())
                    .map_err(|e| e.to_string())?,
            }
            // Last, so a failed network step can be retried with another name.
            launch::ensure_identity(&dir, w.name.trim()).map_err(|e| e.to_string())?;
            Ok(saved)
        })();
        match result {
            Ok(saved) => {
                self.save_settings();
                if let Some(s) = saved {
                    self.notice(s);
                }
                self.start_node(0);
            }
            Err(e) => w.error = Some(e),
        }
    }
}
