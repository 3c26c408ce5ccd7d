//! The desktop app driven through its real UI (egui_kittest, no window) against real
//! in-process nodes on loopback: what a user clicks and types, and what colleagues' nodes
//! receive.

mod support;

use std::time::{Duration, Instant};

use egui::{Key, Modifiers};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use flurfunk::app::data_dir::DataDir;
use flurfunk::app::launch::{self, LaunchOptions};
use flurfunk::gui::i18n::Lang;
use flurfunk::gui::{FlurfunkApp, GuiConfig, Phase};
use flurfunk::wire::Role;
use support::{TestNode, eventually, spawn, test_key};

type App = Option<FlurfunkApp>;

struct Fixture {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data_dir(&self) -> DataDir {
        DataDir::new(self.dir.path().join("app"))
    }

    /// A data directory that already has an identity and the test network's key.
    fn with_identity(&self, name: &str) {
        let dir = self.data_dir();
        launch::ensure_identity(&dir, name).unwrap();
        test_key().save_replace(&dir.network_key()).unwrap();
    }

    fn spawn(&self, name: &str, peers: &[&TestNode]) -> TestNode {
        self.rt.block_on(spawn(name, peers))
    }

    /// The app on a loopback-only node, dialling `peers`.
    fn open(&self, peers: &[&TestNode], lang: Lang) -> Harness<'static, App> {
        let config = GuiConfig {
            dir: self.data_dir(),
            launch: LaunchOptions {
                listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
                peers: peers.iter().map(|p| p.addr.clone()).collect(),
                mdns: false,
                role: Role::Member,
                ..LaunchOptions::default()
            },
            language: Some(lang),
            desktop_notifications: false,
            save_dir: Some(self.dir.path().join("Downloads")),
            native_dialogs: false,
        };
        let runtime = self.rt.handle().clone();
        Harness::builder()
            .with_size(egui::vec2(1100.0, 760.0))
            .build_ui_state(
                move |ui, slot: &mut App| {
                    let app = slot.get_or_insert_with(|| {
                        FlurfunkApp::new(ui.ctx(), runtime.clone(), config.clone())
                    });
                    app.logic(ui.ctx());
                    app.ui(ui);
                },
                None,
            )
    }
}

fn app<'h>(h: &'h Harness<'static, App>) -> &'h FlurfunkApp {
    h.state()
        .as_ref()
        .expect("the app exists after the first frame")
}

/// Step frames until `done` holds (the node works on its own threads meanwhile).
fn settle(
    h: &mut Harness<'static, App>,
    what: &str,
    done: impl Fn(&Harness<'static, App>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        h.step();
        if h.state().is_some() && done(h) {
            h.step();
            return;
        }
        if Instant::now() >= deadline {
            // What was on screen instead, for the failure message.
            let seen = std::cell::RefCell::new(Vec::new());
            let _ = h
                .query_all_by(|n| {
                    if let Some(l) = n.label().or(n.value()) {
                        seen.borrow_mut().push(l);
                    }
                    false
                })
                .count();
            let seen = seen.into_inner();
            panic!("timed out waiting for: {what}; on screen: {seen:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn has_label(h: &Harness<'static, App>, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

/// Whether some text on screen (a label's value) contains `text`.
fn shows(h: &Harness<'static, App>, text: &str) -> bool {
    let text = text.to_string();
    h.query_all_by(move |n| n.value().is_some_and(|v| v.contains(text.as_str())))
        .next()
        .is_some()
}

/// A text field (the composer, the search box) by its placeholder, its accessible name.
fn composer<'h>(h: &'h Harness<'static, App>, hint: &str) -> egui_kittest::Node<'h> {
    let hint = hint.to_string();
    h.get_by(move |n| n.data().placeholder() == Some(hint.as_str()))
}

/// The app running with its node connected to all `peers`.
fn running(f: &Fixture, peers: &[&TestNode], lang: Lang) -> Harness<'static, App> {
    let mut h = f.open(peers, lang);
    settle(&mut h, "node running", |h| {
        matches!(app(h).phase(), Phase::Running)
    });
    let node = app(&h).node().unwrap().clone();
    for p in peers {
        let user = p.user();
        f.rt.block_on(eventually("peer's profile", || async {
            node.profiles()
                .await
                .unwrap()
                .iter()
                .any(|x| x.user_id == user)
                .then_some(())
        }));
    }
    h
}

#[test]
fn first_run_wizard_joins_the_network_from_a_pasted_key() {
    let f = Fixture::new();
    let ben = f.spawn("Ben Müller", &[]);
    let mut h = f.open(&[&ben], Lang::De);
    h.step();
    assert!(
        matches!(app(&h).phase(), Phase::Wizard(_)),
        "no identity yet: the wizard"
    );
    h.get_by_label("Ihr Name").click();
    h.run_steps(3);
    h.get_by_label("Ihr Name").type_text("Anna Schmidt");
    h.step();
    h.get_by_label("Weiter").click();
    h.run_steps(3);
    h.step();
    assert!(has_label(&h, "Einem Netzwerk beitreten"));
    assert!(has_label(&h, "Demo-Netzwerk ausprobieren"));
    h.get_by_label("… oder Schlüssel einfügen").click();
    h.run_steps(3);
    h.get_by_label("… oder Schlüssel einfügen")
        .type_text(&test_key().to_file_text());
    h.step();
    h.get_by_label("Los geht's").click();
    settle(&mut h, "node running", |h| {
        matches!(app(h).phase(), Phase::Running)
    });
    h.check_accessibility();

    let dir = f.data_dir();
    assert!(dir.identity().exists(), "identity written");
    let key = flurfunk::net::NetworkKey::load(&dir.network_key()).unwrap();
    assert_eq!(
        key.fingerprint(),
        test_key().fingerprint(),
        "joined the pasted network"
    );
    let node = app(&h).node().unwrap().clone();
    let status = f.rt.block_on(node.status()).unwrap();
    assert_eq!(status.name, "Anna Schmidt");
    // Ben's node sees Anna under her name: the wizard's network works.
    let anna = node.user_id();
    f.rt.block_on(eventually("Ben knows Anna", || async {
        ben.handle
            .profiles()
            .await
            .unwrap()
            .iter()
            .any(|p| p.user_id == anna && p.display_name == "Anna Schmidt")
            .then_some(())
    }));
}

#[test]
fn wizard_creates_a_network_and_saves_its_key_file() {
    let f = Fixture::new();
    let mut h = f.open(&[], Lang::En);
    h.step();
    h.get_by_label("Your name").click();
    h.run_steps(3);
    h.get_by_label("Your name").type_text("Jürgen Becker");
    h.step();
    h.get_by_label("Next").click();
    h.run_steps(3);
    h.get_by_label("Create a new network").click();
    h.run_steps(3);
    let key_file = f.dir.path().join("bauhof.key");
    let save_to = h.get_by_label("Save the key file to");
    save_to.click();
    h.run_steps(3);
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.step();
    h.get_by_label("Save the key file to")
        .type_text(&key_file.display().to_string());
    h.step();
    h.get_by_label("Let's go").click();
    settle(&mut h, "node running", |h| {
        matches!(app(h).phase(), Phase::Running)
    });
    let handed_out = flurfunk::net::NetworkKey::load(&key_file).expect("key file saved");
    let joined = flurfunk::net::NetworkKey::load(&f.data_dir().network_key()).unwrap();
    assert_eq!(handed_out.fingerprint(), joined.fingerprint());
    assert!(!joined.is_demo());
    // A managed network: the admin key stays here, its public half is in the file.
    let admin = flurfunk::admin::AdminKey::load(&f.data_dir().admin_key()).expect("admin key");
    assert_eq!(handed_out.admin(), Some(admin.public()));
    settle(&mut h, "notice shown", |h| has_label(h, "Key file saved"));
}

#[test]
fn enter_sends_and_shift_enter_breaks_the_line() {
    let f = Fixture::new();
    let ben = f.spawn("Ben Müller", &[]);
    f.with_identity("Anna Schmidt");
    let mut h = running(&f, &[&ben], Lang::De);
    let node = app(&h).node().unwrap().clone();
    let conv = f.rt.block_on(node.open_direct(ben.user())).unwrap();
    h.state_mut()
        .as_mut()
        .unwrap()
        .select_conversation(&conv.to_string());
    settle(&mut h, "conversation shown", |h| {
        app(h).chat().is_some_and(|c| c.is_loaded())
    });
    let hint = "Nachricht schreiben (Enter sendet, Umschalt+Enter neue Zeile)";
    composer(&h, hint).click();
    h.run_steps(3);
    composer(&h, hint).type_text("Zeile eins");
    h.step();
    h.key_press_modifiers(Modifiers::SHIFT, Key::Enter);
    h.step();
    composer(&h, hint).type_text("Zeile zwei");
    h.step();
    assert!(
        f.rt.block_on(ben.texts(conv)).is_empty(),
        "Shift+Enter must not send"
    );
    h.key_press(Key::Enter);
    h.step();
    f.rt.block_on(support::wait_texts(&ben, conv, &["Zeile eins\nZeile zwei"]));
    settle(&mut h, "own bubble", |h| {
        has_label(h, "Zeile eins\nZeile zwei")
    });
    let draft = composer(&h, hint).value().unwrap_or_default();
    assert!(
        draft.is_empty(),
        "composer cleared after sending, has {draft:?}"
    );
    h.check_accessibility();
}

#[test]
fn an_incoming_message_updates_list_preview_and_unread_badge() {
    let f = Fixture::new();
    let ben = f.spawn("Ben Müller", &[]);
    f.with_identity("Anna Schmidt");
    let mut h = running(&f, &[&ben], Lang::De);
    let anna = app(&h).node().unwrap().user_id();
    f.rt.block_on(ben.knows_user(anna));
    let conv = f.rt.block_on(ben.handle.open_direct(anna)).unwrap();
    f.rt.block_on(ben.handle.send_text(conv, "Streuwagen ist fertig".into()))
        .unwrap();
    f.rt.block_on(ben.handle.send_text(conv, "Kommst du vorbei?".into()))
        .unwrap();
    settle(&mut h, "chat row with badge and preview", |h| {
        has_label(h, "Ben Müller, 2 ungelesen, Kommst du vorbei?")
    });
    assert_eq!(app(&h).window_title(), "(2) Flurfunk");
    h.get_by_label_contains("Ben Müller, 2 ungelesen").click();
    settle(&mut h, "messages shown", |h| {
        has_label(h, "Streuwagen ist fertig")
    });
    settle(&mut h, "badge gone", |h| {
        has_label(h, "Ben Müller, Kommst du vorbei?")
    });
    assert_eq!(app(&h).window_title(), "Flurfunk");
    // Opening the chat told Ben: his messages show as read.
    f.rt.block_on(eventually("read receipt at Ben", || async {
        let items = ben.handle.messages(conv, None, 10).await.unwrap();
        items
            .iter()
            .all(|m| m.read_by.contains(&anna.to_string()))
            .then_some(())
    }));
    h.check_accessibility();
}

#[test]
fn creating_a_group_and_removing_a_member_rotates_the_key() {
    let f = Fixture::new();
    let ben = f.spawn("Ben Müller", &[]);
    let clara = f.spawn("Clara Wolf", &[&ben]);
    f.with_identity("Anna Schmidt");
    let mut h = running(&f, &[&ben, &clara], Lang::De);
    settle(&mut h, "peers listed", |h| {
        app(h).conversations().is_empty() && has_label(h, "2 online")
    });
    h.get_by_label("👥").click();
    // The status bar counts peers before the peer list (with names) has arrived.
    settle(&mut h, "colleagues in the dialog", |h| {
        has_label(h, "Ben Müller") && has_label(h, "Clara Wolf")
    });
    h.get_by_label("Gruppenname").click();
    h.run_steps(3);
    h.get_by_label("Gruppenname").type_text("Bauhof");
    h.step();
    h.get_by_label("Ben Müller").click();
    h.run_steps(3);
    h.get_by_label("Clara Wolf").click();
    h.run_steps(3);
    h.get_by_label("Gruppe erstellen").click();
    settle(&mut h, "group open", |h| {
        app(h)
            .conversations()
            .iter()
            .any(|c| c.name == "Bauhof" && c.members.len() == 3)
            && app(h).chat().is_some()
    });
    let conv: flurfunk::wire::ConversationId = app(&h)
        .conversations()
        .iter()
        .find(|c| c.name == "Bauhof")
        .unwrap()
        .conversation
        .parse()
        .unwrap();
    for n in [&ben, &clara] {
        f.rt.block_on(eventually("member has the group", || async {
            n.handle
                .conversation(conv)
                .await
                .unwrap()
                .filter(|c| c.is_member)
                .map(|_| ())
        }));
    }
    h.get_by_label("Gruppeninfo").click();
    h.run_steps(3);
    h.step();
    h.get_by_label("Entfernen Clara Wolf").click();
    settle(&mut h, "removal notice", |h| {
        has_label(h, "Der Gruppenschlüssel wurde erneuert")
    });
    // The chat says it, between the messages, as phone messengers do.
    settle(&mut h, "removal line in the chat", |h| {
        has_label(h, "Anna Schmidt hat Clara Wolf entfernt")
    });
    assert!(has_label(&h, "Anna Schmidt hat die Gruppe erstellt"));
    settle(&mut h, "Clara gone from the member list", |h| {
        app(h)
            .conversations()
            .iter()
            .any(|c| c.name == "Bauhof" && c.members.len() == 2)
    });
    f.rt.block_on(eventually("Clara's own node knows she is out", || async {
        clara
            .handle
            .conversation(conv)
            .await
            .unwrap()
            .filter(|c| !c.is_member)
            .map(|_| ())
    }));
    // A message after the removal reaches Ben, not Clara.
    f.rt.block_on(
        app(&h)
            .node()
            .unwrap()
            .send_text(conv, "Nur noch für Ben".into()),
    )
    .unwrap();
    f.rt.block_on(support::wait_texts(&ben, conv, &["Nur noch für Ben"]));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !f.rt
            .block_on(clara.texts(conv))
            .iter()
            .any(|t| t == "Nur noch für Ben")
    );
    // Ben's receipt (a group receipt, routed to Anna alone) shows as ticks; a click on
    // them opens the message info with his name.
    settle(&mut h, "Ben's receipt shown", |h| {
        has_label(h, "an alle zugestellt")
    });
    h.get_by_label("Close window").click(); // the group info, still open
    h.run_steps(3);
    h.get_by_label("an alle zugestellt").click();
    settle(&mut h, "message info open", |h| {
        has_label(h, "Nachrichteninfo") && has_label(h, "Zugestellt an 1 von 1")
    });
    assert!(has_label(&h, "  Ben Müller"));
    assert!(has_label(&h, "Gelesen von 0 von 1"));
    h.check_accessibility();
}

#[test]
fn switching_the_language_changes_every_label_and_is_saved() {
    let f = Fixture::new();
    f.with_identity("Anna Schmidt");
    let mut h = running(&f, &[], Lang::De);
    assert!(h.query_by_label("Chats").is_some());
    settle(&mut h, "status bar in German", |h| {
        has_label(h, "Netzwerk ")
    });
    h.get_by_label("⚙").click();
    h.run_steps(3);
    assert!(has_label(&h, "Einstellungen"));
    h.get_by_label("English").click();
    h.run_steps(3);
    h.step();
    assert!(has_label(&h, "Settings"), "dialog title now English");
    assert!(has_label(&h, "Display name"));
    assert!(!has_label(&h, "Anzeigename"));
    assert!(has_label(&h, "network "), "status bar in English");
    // Written off the UI thread: wait for it.
    let path = f.data_dir().root().join("app.json");
    let saved = f.rt.block_on(eventually("language saved", || async {
        std::fs::read_to_string(&path)
            .ok()
            .filter(|s| s.contains("\"language\": \"en\""))
    }));
    assert!(saved.contains("\"en\""));
    h.check_accessibility();
}

#[test]
fn the_settings_for_files_reach_the_node_and_are_saved() {
    let f = Fixture::new();
    f.with_identity("Anna Schmidt");
    let mut h = running(&f, &[], Lang::De);
    let node = app(&h).node().unwrap().clone();
    assert_eq!(
        f.rt.block_on(node.file_limits())
            .unwrap()
            .auto_download_bytes,
        25 << 20
    );
    h.get_by_label("⚙").click();
    h.run_steps(3);
    h.get_by_label("Dateien automatisch laden").click();
    h.run_steps(3);
    // Each list opens in a popup a frame or two later (under load, more).
    settle(&mut h, "the choices", |h| {
        has_label(h, "Nie (nur auf Klick)")
    });
    h.get_by_label("Nie (nur auf Klick)").click();
    h.run_steps(3);
    h.get_by_label("Speicher für Dateien").click();
    h.run_steps(3);
    settle(&mut h, "the sizes", |h| has_label(h, "16.00 GB"));
    h.get_by_label("16.00 GB").click();
    h.run_steps(3);
    // Each choice reaches the node by a call of its own: wait for both (CI once saw the
    // first arrive and the second not yet).
    f.rt.block_on(eventually("the node has the new settings", || async {
        let limits = node.file_limits().await.unwrap();
        (limits.auto_download_bytes == 0 && limits.quota_bytes == 16 << 30).then_some(())
    }));
    let combo = h.get_by_label("Dateien automatisch laden");
    assert_eq!(
        egui_kittest::kittest::NodeT::accesskit_node(&combo)
            .value()
            .as_deref(),
        Some("Nie (nur auf Klick)"),
        "the choice is shown"
    );
    // "Beim Anmelden starten" (on by default) turned off: what runs at log-on reads it.
    h.get_by_role_and_label(egui::accesskit::Role::CheckBox, "Beim Anmelden starten")
        .click();
    h.run_steps(3);
    let path = f.data_dir().root().join("app.json");
    f.rt.block_on(eventually("settings saved", || async {
        std::fs::read_to_string(&path).ok().filter(|s| {
            s.contains("\"auto_download_bytes\": 0")
                && s.contains("\"files_quota_bytes\": 17179869184")
                && s.contains("\"start_at_logon\": false")
        })
    }));
    h.check_accessibility();
}

#[test]
fn a_known_colleague_with_a_new_key_is_flagged() {
    let f = Fixture::new();
    let ben = f.spawn("Ben Müller", &[]);
    f.with_identity("Anna Schmidt");
    let mut h = running(&f, &[&ben], Lang::De);
    settle(&mut h, "Ben listed", |h| has_label(h, "1 online"));
    // Anna verifies Ben's safety number.
    h.get_by_label("✉").click();
    settle(&mut h, "Ben in the people list", |h| has_label(h, "🔐"));
    h.get_by_label("🔐").click();
    h.run_steps(3);
    h.step();
    assert!(has_label(&h, "Vergleichen Sie diese Nummer mit Ben Müller"));
    h.get_by_label("Als verifiziert markieren").click();
    h.run_steps(3);
    assert!(has_label(&h, "✔ verifiziert"));
    // "Ben" reinstalls (or someone poses as him): same name, new key.
    let impostor = f.spawn("Ben Müller", &[]);
    let addr = impostor.addr.clone();
    f.rt.block_on(app(&h).node().unwrap().dial(addr)).unwrap();
    settle(&mut h, "key change warning", |h| {
        has_label(h, "meldet sich mit einem neuen Schlüssel")
    });
    h.check_accessibility();
}

#[test]
fn a_script_reaches_the_running_app_through_the_control_socket() {
    let f = Fixture::new();
    let ben = f.spawn("Ben Müller", &[]);
    f.with_identity("Anna Schmidt");
    let mut h = running(&f, &[&ben], Lang::De);
    // What `flurfunk send --to ben ...` does while the app holds the database.
    let request = flurfunk::app::Request::Send {
        to: "ben".into(),
        text: "Aus dem Skript".into(),
    };
    let reply =
        f.rt.block_on(flurfunk::app::control::call(&f.data_dir(), &request))
            .unwrap();
    assert!(
        reply.is_some(),
        "the app's node answered on the control socket"
    );
    let anna = app(&h).node().unwrap().user_id();
    let conv = f.rt.block_on(ben.handle.open_direct(anna)).unwrap();
    f.rt.block_on(support::wait_texts(&ben, conv, &["Aus dem Skript"]));
    settle(&mut h, "the app lists the chat", |h| {
        has_label(h, "Ben Müller, Sie: Aus dem Skript")
    });
}

#[test]
fn a_file_arrives_as_a_bubble_is_saved_with_one_click_and_one_is_sent_by_the_clip() {
    let f = Fixture::new();
    let ben = f.spawn("Ben Müller", &[]);
    f.with_identity("Anna Schmidt");
    let mut h = running(&f, &[&ben], Lang::De);
    let node = app(&h).node().unwrap().clone();
    let conv = f.rt.block_on(node.open_direct(ben.user())).unwrap();
    f.rt.block_on(ben.knows_user(node.user_id()));
    let form: Vec<u8> = (0..50_000u32).map(|i| (i % 199) as u8).collect();
    let source = ben.dir.path().join("Dienstplan Dezember.pdf");
    std::fs::write(&source, &form).unwrap();
    f.rt.block_on(
        ben.handle
            .send_file(conv, source, "Für nächste Woche".into()),
    )
    .unwrap();
    h.state_mut()
        .as_mut()
        .unwrap()
        .select_conversation(&conv.to_string());
    settle(&mut h, "the file's bubble, fetched", |h| {
        has_label(h, "Dienstplan Dezember.pdf")
            && has_label(h, "Für nächste Woche")
            && h.query_by_label("Speichern").is_some()
    });
    h.get_by_label("Speichern").click();
    let saved = f
        .dir
        .path()
        .join("Downloads")
        .join("Dienstplan Dezember.pdf");
    settle(&mut h, "saved in the downloads folder", |h| {
        saved.exists() && has_label(h, "Gespeichert:")
    });
    assert_eq!(std::fs::read(&saved).unwrap(), form);

    // The clip opens the dialog; a path and a text send the file.
    h.get_by_label("📎").click();
    settle(&mut h, "send dialog", |h| has_label(h, "Datei senden"));
    let mine = f.dir.path().join("Foto Schild.jpg");
    std::fs::write(&mine, vec![7u8; 20_000]).unwrap();
    let path_field = "Datei hierher ziehen oder Pfad eingeben";
    h.get_by(|n| n.data().placeholder() == Some(path_field))
        .click();
    h.run_steps(3);
    h.get_by(|n| n.data().placeholder() == Some(path_field))
        .type_text(mine.to_str().unwrap());
    h.step();
    // The composer's button (its draft is empty: it sends nothing) and the dialog's.
    for button in h.get_all_by_label("Senden") {
        button.click();
    }
    settle(&mut h, "dialog closed", |h| {
        !has_label(h, "Text dazu (optional)")
    });
    let at_ben = f.rt.block_on(eventually("the photo at Ben", || async {
        ben.handle
            .messages(conv, None, 10)
            .await
            .unwrap()
            .into_iter()
            .find(|m| {
                m.file
                    .as_ref()
                    .is_some_and(|f| f.name == "Foto Schild.jpg" && f.here)
            })
    }));
    assert_eq!(at_ben.file.unwrap().mime, "image/jpeg");
    h.check_accessibility();
}

#[test]
fn a_photo_shows_in_its_bubble_opens_large_closes_with_esc_and_a_pasted_screenshot_is_sent() {
    let f = Fixture::new();
    let ben = f.spawn("Ben Müller", &[]);
    f.with_identity("Anna Schmidt");
    let mut h = running(&f, &[&ben], Lang::De);
    let node = app(&h).node().unwrap().clone();
    let conv = f.rt.block_on(node.open_direct(ben.user())).unwrap();
    f.rt.block_on(ben.knows_user(node.user_id()));
    // A real picture: 800 x 600 pixels.
    let rgba: Vec<u8> = (0..800 * 600u32)
        .flat_map(|i| [(i % 800 / 4) as u8, (i / 800 / 3) as u8, 120, 255])
        .collect();
    let png = flurfunk::files::picture::encode_png(800, 600, rgba).unwrap();
    let source = ben.dir.path().join("Schild.png");
    std::fs::write(&source, &png).unwrap();
    f.rt.block_on(ben.handle.send_file(conv, source, "Umgefahren".into()))
        .unwrap();
    h.state_mut()
        .as_mut()
        .unwrap()
        .select_conversation(&conv.to_string());
    // The picture itself (an image named by its file), no file card.
    settle(&mut h, "the photo in its bubble", |h| {
        h.query_by(|n| {
            n.role() == egui::accesskit::Role::Image && n.data().label() == Some("Schild.png")
        })
        .is_some()
            && has_label(h, "Umgefahren")
    });
    assert!(
        h.query_by_label("Speichern").is_none(),
        "a photo is no card"
    );
    let list = f.rt.block_on(node.conversations()).unwrap();
    let last = list[0].last_message.as_ref().unwrap();
    let file = last.file.as_ref().unwrap();
    assert_eq!((file.width, file.height), (Some(800), Some(600)));
    assert!(file.thumbnail.is_some(), "a preview came with the event");

    // A click opens it large, with save and open; Esc closes it.
    settle(&mut h, "the photo fetched", |h| {
        app(h).chat().is_some_and(|c| {
            c.items
                .iter()
                .any(|m| m.file.as_ref().is_some_and(|f| f.here))
        })
    });
    h.get_by(|n| {
        n.role() == egui::accesskit::Role::Image && n.data().label() == Some("Schild.png")
    })
    .click();
    settle(&mut h, "the viewer", |h| {
        has_label(h, "Schließen") && h.query_by_label("Speichern").is_some()
    });
    assert!(!has_label(&h, "lässt sich nicht anzeigen"));
    h.key_press(egui::Key::Escape);
    settle(&mut h, "the viewer closed by Esc", |h| {
        !has_label(h, "Schließen")
    });

    // Ctrl+V of a screenshot: the send dialog shows it; Senden sends it as a picture.
    let shot = egui::ColorImage::new(
        [64, 48],
        vec![egui::Color32::from_rgb(30, 90, 160); 64 * 48],
    );
    h.event(egui::Event::PasteImage(std::sync::Arc::new(shot)));
    settle(&mut h, "the send dialog with the pasted picture", |h| {
        has_label(h, "Datei senden") && has_label(h, "Bildschirmfoto")
    });
    for button in h.get_all_by_label("Senden") {
        button.click();
    }
    settle(&mut h, "dialog closed", |h| !has_label(h, "Datei senden"));
    let at_ben = f.rt.block_on(eventually("the screenshot at Ben", || async {
        ben.handle
            .messages(conv, None, 10)
            .await
            .unwrap()
            .into_iter()
            .find(|m| {
                m.file
                    .as_ref()
                    .is_some_and(|f| f.name.starts_with("Bildschirmfoto") && f.here)
            })
    }));
    let file = at_ben.file.unwrap();
    assert_eq!(file.mime, "image/png");
    assert_eq!((file.width, file.height), (Some(64), Some(48)));
    h.check_accessibility();
}

/// A file over the automatic size is fetched on a click: while it waits for a colleague
/// who has it, its card shows a progress bar and a cancel button; cancelled, it can be
/// asked for again, and arrives with Öffnen and Speichern. A program asks before it
/// opens, and Abbrechen opens nothing.
#[test]
fn a_large_file_shows_its_progress_can_be_cancelled_and_a_program_asks_before_it_opens() {
    let f = Fixture::new();
    let ben = f.spawn("Ben Müller", &[]);
    f.with_identity("Anna Schmidt");
    let mut h = running(&f, &[&ben], Lang::De);
    let node = app(&h).node().unwrap().clone();
    let conv = f.rt.block_on(node.open_direct(ben.user())).unwrap();
    f.rt.block_on(ben.knows_user(node.user_id()));
    let size = flurfunk::node::DEFAULT_AUTO_DOWNLOAD_BYTES as usize + 100_000;
    let plan: Vec<u8> = (0..size as u32).map(|i| (i % 251) as u8).collect();
    let source = ben.dir.path().join("Bauplan Rathaus.pdf");
    std::fs::write(&source, &plan).unwrap();
    f.rt.block_on(ben.handle.send_file(conv, source, String::new()))
        .unwrap();
    h.state_mut()
        .as_mut()
        .unwrap()
        .select_conversation(&conv.to_string());
    settle(&mut h, "the card, not fetched by itself", |h| {
        has_label(h, "Bauplan Rathaus.pdf") && h.query_by_label("Herunterladen").is_some()
    });
    let progress = |h: &Harness<'static, App>| {
        h.query_by(|n| n.role() == egui::accesskit::Role::ProgressIndicator)
            .is_some()
    };
    assert!(!progress(&h));

    // Ben goes home: the download waits, with its bar and a cancel button.
    let stopped = f.rt.block_on(ben.stop());
    h.get_by_label("Herunterladen").click();
    settle(&mut h, "the progress bar and the cancel button", |h| {
        progress(h) && h.query_by_label("✖").is_some()
    });
    assert!(!f.rt.block_on(node.downloads()).unwrap().is_empty());
    h.get_by_label("✖").click();
    settle(
        &mut h,
        "cancelled: the card offers the download again",
        |h| !progress(h) && h.query_by_label("Herunterladen").is_some(),
    );
    assert!(f.rt.block_on(node.downloads()).unwrap().is_empty());

    // Ben is back; asked again, the file arrives.
    let ben = f.rt.block_on(stopped.start(&[]));
    f.rt.block_on(node.dial(ben.addr.clone())).unwrap();
    h.get_by_label("Herunterladen").click();
    settle(&mut h, "the file here: Öffnen and Speichern", |h| {
        !progress(h)
            && h.query_by_label("Öffnen").is_some()
            && h.query_by_label("Speichern").is_some()
    });

    // A program: Öffnen warns first; Abbrechen closes the warning and opens nothing.
    let setup = ben.dir.path().join("Setup.exe");
    std::fs::write(&setup, b"MZ not really a program").unwrap();
    f.rt.block_on(ben.handle.send_file(conv, setup, String::new()))
        .unwrap();
    settle(&mut h, "the program's card, fetched by itself", |h| {
        has_label(h, "Setup.exe") && h.query_all_by_label("Öffnen").count() == 2
    });
    h.get_all_by_label("Öffnen").last().unwrap().click();
    settle(&mut h, "the warning", |h| {
        has_label(h, "ist ein Programm oder Skript")
    });
    h.get_by_label("Abbrechen").click();
    settle(&mut h, "the warning closed", |h| {
        !has_label(h, "ist ein Programm oder Skript")
    });
    h.check_accessibility();
}

/// A file dropped on the window, as the OS hands it over.
#[derive(Debug)]
struct Dropped(std::path::PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &std::path::Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn a_file_dropped_on_the_chat_opens_the_send_dialog_and_is_sent() {
    let f = Fixture::new();
    let ben = f.spawn("Ben Müller", &[]);
    f.with_identity("Anna Schmidt");
    let mut h = running(&f, &[&ben], Lang::De);
    let node = app(&h).node().unwrap().clone();
    let conv = f.rt.block_on(node.open_direct(ben.user())).unwrap();
    f.rt.block_on(ben.knows_user(node.user_id()));
    h.state_mut()
        .as_mut()
        .unwrap()
        .select_conversation(&conv.to_string());
    h.run_steps(3);
    let form = f.dir.path().join("Antrag Baumfällung.pdf");
    std::fs::write(&form, vec![3u8; 30_000]).unwrap();
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(Dropped(form.clone())));
    settle(&mut h, "the send dialog with the dropped file", |h| {
        has_label(h, "Datei senden")
    });
    for button in h.get_all_by_label("Senden") {
        button.click();
    }
    settle(&mut h, "dialog closed", |h| !has_label(h, "Datei senden"));
    let at_ben =
        f.rt.block_on(eventually("the dropped file at Ben", || async {
            ben.handle
                .messages(conv, None, 10)
                .await
                .unwrap()
                .into_iter()
                .find(|m| {
                    m.file
                        .as_ref()
                        .is_some_and(|f| f.name == "Antrag Baumfällung.pdf" && f.here)
                })
        }));
    assert_eq!(at_ben.file.unwrap().size, 30_000);
}

/// With this network's admin key in the data directory, the settings show the admin
/// section: read receipts and sending files turned off there reach a colleague's node
/// (which then refuses to send a file), and a colleague
/// revoked there is told "left the organisation" everywhere, and a group given a week of
/// its own keeps its messages a week at a colleague's node, and a colleague given a
/// department there has it at his own node; all are in the audit log.
/// Without the key the section is not there.
#[test]
fn the_admin_section_sets_the_policy_for_everyone_and_revokes_a_colleague() {
    let f = Fixture::new();
    let dir = f.data_dir();
    launch::ensure_identity(&dir, "IT-Service").unwrap();
    let admin = flurfunk::admin::AdminKey::generate(&mut rand::rngs::OsRng);
    let key = test_key().with_admin(admin.public());
    key.save_replace(&dir.network_key()).unwrap();
    // First without the admin key: no section.
    let mut h = running(&f, &[], Lang::De);
    h.get_by_label("⚙").click();
    h.run_steps(3);
    assert!(!has_label(&h, "Verwaltung (IT)"));
    let first = app(&h).node().unwrap().clone();
    drop(h);
    f.rt.block_on(first.shutdown()).unwrap();
    admin.save_new(&dir.admin_key()).unwrap();
    let bernd =
        f.rt.block_on(support::spawn_with("Bernd", &[], key, Role::Member));
    let dora =
        f.rt.block_on(support::spawn_with("Dora", &[&bernd], key, Role::Member));
    let mut h = running(&f, &[&bernd, &dora], Lang::De);
    let node = app(&h).node().unwrap().clone();
    f.rt.block_on(eventually("both colleagues online", || async {
        let peers = node.peers().await.unwrap();
        (peers.iter().filter(|p| p.online).count() == 2).then_some(())
    }));
    h.run_steps(5);
    h.get_by_label("⚙").click();
    h.run_steps(3);
    assert!(has_label(&h, "Verwaltung (IT)"));
    // The settings with the admin section are taller than the window and scroll: bring
    // each control into view before clicking it.
    h.get_by_label("Lesebestätigungen für alle").scroll_to_me();
    h.run_steps(3);
    h.get_by_label("Lesebestätigungen für alle").click();
    h.run_steps(3);
    h.get_by_label("Dateien und Fotos senden").scroll_to_me();
    h.run_steps(3);
    h.get_by_label("Dateien und Fotos senden").click();
    h.run_steps(3);
    h.get_by_label("Für alle festlegen").scroll_to_me();
    h.run_steps(3);
    h.get_by_label("Für alle festlegen").click();
    h.run_steps(3);
    f.rt.block_on(eventually("Bernd's node has the policy", || async {
        let status = bernd.handle.status().await.unwrap();
        status
            .policy
            .is_some_and(|p| !p.read_receipts && !p.allows(flurfunk::wire::FEATURE_FILES))
            .then_some(())
    }));
    // Sending files is off for everyone: Bernd's node refuses to, and says why.
    let to_dora =
        f.rt.block_on(bernd.handle.open_direct(dora.user()))
            .unwrap();
    let refused = f.rt.block_on(bernd.handle.send_file_bytes(
        to_dora,
        "Dienstplan.pdf".into(),
        vec![1; 1000],
        String::new(),
    ));
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("turned off sending files")),
        "{refused:?}"
    );
    // The notice that the policy went out moves the window's contents down: wait for it,
    // or the next click lands where the list was a frame before (a race seen under load).
    settle(&mut h, "the policy notice", |h| {
        shows(h, "Die Regeln gelten jetzt für alle")
    });
    h.run_steps(2);
    // The audit log's new line can still move the list under the pointer: click until
    // it opens (a click on an open list would close it, so only while it is closed).
    for _ in 0..40 {
        if has_label(&h, "Dora (") {
            break;
        }
        h.get_by_label("Hat die Organisation verlassen")
            .scroll_to_me();
        h.run_steps(2);
        h.get_by_label("Hat die Organisation verlassen").click();
        h.run_steps(3);
        std::thread::sleep(Duration::from_millis(50));
    }
    settle(&mut h, "colleagues to pick", |h| has_label(h, "Dora ("));
    h.get_by_label_contains("Dora (…").click();
    h.run_steps(3);
    h.get_by_label("Sperren …").scroll_to_me();
    h.run_steps(3);
    h.get_by_label("Sperren …").click();
    // One click is not enough: nothing is signed (the admin's own node holds no list,
    // and the audit log has no revocation) after a while.
    for _ in 0..20 {
        h.run_steps(1);
        std::thread::sleep(Duration::from_millis(25));
    }
    let dora_id = dora.user();
    assert!(
        !f.rt
            .block_on(node.admin_statements())
            .unwrap()
            .iter()
            .any(|s| s.kind == "revocations")
    );
    assert!(
        !std::fs::read_to_string(dir.admin_audit_log())
            .unwrap()
            .contains("revoke")
    );
    h.get_by_label_contains("Wirklich sperren?").scroll_to_me();
    h.run_steps(3);
    h.get_by_label_contains("Wirklich sperren?").click();
    h.run_steps(3);
    f.rt.block_on(eventually("Bernd's node refuses Dora", || async {
        let statements = bernd.handle.admin_statements().await.unwrap();
        statements
            .iter()
            .any(|s| {
                s.kind == "revocations"
                    && s.revoked.iter().any(|r| r.user_id == dora_id.to_string())
            })
            .then_some(())
    }));
    let log = std::fs::read_to_string(dir.admin_audit_log()).unwrap();
    assert!(
        log.contains("policy") && log.contains("revoke") && log.contains(&dora_id.to_string()),
        "{log}"
    );
    settle(&mut h, "the audit lines shown", |h| {
        has_label(h, "Admin-Protokoll")
    });
    // One group keeps its messages shorter: the admin picks "Personalrat" from the
    // groups its node is in and a week; Bernd's node then keeps that group a week.
    let council =
        f.rt.block_on(node.create_group("Personalrat".into(), vec![bernd.user()]))
            .unwrap();
    for _ in 0..40 {
        if has_label(&h, "Personalrat (2 Mitglieder, …") {
            break;
        }
        h.get_by_label("Aufbewahrung einer Gruppe").scroll_to_me();
        h.run_steps(2);
        h.get_by_label("Aufbewahrung einer Gruppe").click();
        h.run_steps(3);
        std::thread::sleep(Duration::from_millis(50));
    }
    h.get_by_label_contains("Personalrat (2 Mitglieder, …")
        .click();
    h.run_steps(3);
    for _ in 0..40 {
        if has_label(&h, "7 Tage") {
            break;
        }
        h.get_by_label("Aufbewahren").scroll_to_me();
        h.run_steps(2);
        h.get_by_label("Aufbewahren").click();
        h.run_steps(3);
        std::thread::sleep(Duration::from_millis(50));
    }
    h.get_by_label("7 Tage").click();
    h.run_steps(3);
    h.get_by_label("Festlegen").scroll_to_me();
    h.run_steps(3);
    h.get_by_label("Festlegen").click();
    h.run_steps(3);
    // A shorter period is asked twice (it deletes everywhere, for good).
    for _ in 0..20 {
        h.run_steps(1);
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(
        !f.rt
            .block_on(node.admin_statements())
            .unwrap()
            .iter()
            .any(|s| s.kind == "group retention")
    );
    h.get_by_label_contains("Wirklich festlegen?").click();
    h.run_steps(3);
    f.rt.block_on(eventually(
        "Bernd's node keeps the group a week",
        || async {
            let views = bernd.handle.conversations().await.unwrap();
            views
                .iter()
                .any(|c| {
                    c.conversation == council.to_string() && c.keep_messages_s == Some(7 * 86_400)
                })
                .then_some(())
        },
    ));
    settle(&mut h, "the group listed with its own period", |h| {
        shows(h, "Personalrat: 7 Tage")
    });
    let log = std::fs::read_to_string(dir.admin_audit_log()).unwrap();
    assert!(log.contains("group-retention"), "{log}");
    // The directory: Bernd, chosen from the colleagues, is given the official name
    // "Bernd Becker" and the department "Bauhof"; his own node then holds the entry.
    for _ in 0..40 {
        if has_label(&h, "Bernd (…") {
            break;
        }
        h.get_by_label("Verzeichnis (amtlicher Name)")
            .scroll_to_me();
        h.run_steps(2);
        h.get_by_label("Verzeichnis (amtlicher Name)").click();
        h.run_steps(3);
        std::thread::sleep(Duration::from_millis(50));
    }
    h.get_by_label_contains("Bernd (…").click();
    h.run_steps(3);
    // Not listed yet: the official name is typed (his self-chosen one is not offered).
    h.get_by_label("Amtlicher Name").scroll_to_me();
    h.run_steps(3);
    assert_eq!(
        h.get_by_label("Amtlicher Name").value().as_deref(),
        Some("")
    );
    h.get_by_label("Amtlicher Name").click();
    h.run_steps(3);
    h.get_by_label("Amtlicher Name").type_text("Bernd Becker");
    h.run_steps(3);
    h.get_by_label("Abteilung").scroll_to_me();
    h.run_steps(3);
    h.get_by_label("Abteilung").click();
    h.run_steps(3);
    h.get_by_label("Abteilung").type_text("Bauhof");
    h.run_steps(3);
    h.get_by_label("Im Verzeichnis speichern").scroll_to_me();
    h.run_steps(3);
    h.get_by_label("Im Verzeichnis speichern").click();
    h.run_steps(3);
    let bernd_id = bernd.user().to_string();
    f.rt.block_on(eventually(
        "Bernd's node holds his directory entry",
        || async {
            let statements = bernd.handle.admin_statements().await.unwrap();
            statements
                .iter()
                .flat_map(|s| s.directory.iter())
                .any(|d| {
                    d.user_id == bernd_id && d.name == "Bernd Becker" && d.department == "Bauhof"
                })
                .then_some(())
        },
    ));
    let log = std::fs::read_to_string(dir.admin_audit_log()).unwrap();
    assert!(
        log.contains("directory-set") && log.contains("Bauhof"),
        "{log}"
    );
    h.check_accessibility();
}

/// Replies, reactions, edits and deletion as on a phone: the bubble's menu (…) gives a
/// 👍 and "Antworten" (the answer carries the quote), the Up arrow edits the last own
/// message, and a colleague's edit and deletion show as "bearbeitet" and "Nachricht
/// gelöscht", also in the quote of the answer.
#[test]
fn replies_reactions_edits_and_deletion_from_the_bubble_menu() {
    let f = Fixture::new();
    let ben = f.spawn("Ben Müller", &[]);
    f.with_identity("Anna Schmidt");
    let mut h = running(&f, &[&ben], Lang::De);
    let anna = app(&h).node().unwrap().user_id();
    f.rt.block_on(ben.knows_user(anna));
    let conv = f.rt.block_on(ben.handle.open_direct(anna)).unwrap();
    let original =
        f.rt.block_on(ben.handle.send_text(conv, "Streuwagen ist fertig".into()))
            .unwrap();
    settle(&mut h, "the chat", |h| has_label(h, "Ben Müller"));
    h.get_by_label_contains("Ben Müller").click();
    settle(&mut h, "Ben's message", |h| {
        shows(h, "Streuwagen ist fertig")
    });
    // 👍 from the menu reaches Ben.
    h.get_by_label("…").click();
    h.run_steps(2);
    h.get_by_label("👍").click();
    h.run_steps(2);
    f.rt.block_on(eventually("reaction at Ben", || async {
        let items = ben.handle.messages(conv, None, 10).await.unwrap();
        items
            .iter()
            .any(|m| {
                m.reactions
                    .iter()
                    .any(|r| r.emoji == "👍" && r.users == [anna.to_string()])
            })
            .then_some(())
    }));
    settle(&mut h, "the reaction under the bubble", |h| {
        has_label(h, "👍 1") || shows(h, "👍 1")
    });
    // "+" opens the whole picker; 🎉 replaces her 👍 (one reaction per person).
    h.get_by_label("…").click();
    settle(&mut h, "the menu", |h| has_label(h, "+"));
    h.get_by_label("+").click();
    settle(&mut h, "the picker", |h| has_label(h, "🎉"));
    h.get_by_label("🎉").click();
    h.run_steps(2);
    f.rt.block_on(eventually("🎉 at Ben", || async {
        let items = ben.handle.messages(conv, None, 10).await.unwrap();
        items
            .iter()
            .any(|m| m.reactions.len() == 1 && m.reactions[0].emoji == "🎉")
            .then_some(())
    }));
    settle(&mut h, "the menu closed and 🎉 under the bubble", |h| {
        !has_label(h, "Antworten") && (has_label(h, "🎉 1") || shows(h, "🎉 1"))
    });
    // "Antworten": the answer quotes the original.
    h.get_by_label("…").click();
    h.run_steps(2);
    h.get_by_label("Antworten").click();
    settle(&mut h, "the reply bar", |h| {
        shows(h, "Antwort an Ben Müller")
    });
    let hint = "Nachricht schreiben (Enter sendet, Umschalt+Enter neue Zeile)";
    composer(&h, hint).type_text("Bin gleich da");
    h.step();
    // An emoji from the picker beside the composer goes into the draft.
    h.get_by_label("☺").click();
    h.run_steps(2);
    h.get_by_label("🙏").click();
    h.run_steps(2);
    h.key_press(Key::Enter);
    h.step();
    f.rt.block_on(eventually("the answer at Ben, with its quote", || async {
        let items = ben.handle.messages(conv, None, 10).await.unwrap();
        items
            .iter()
            .find(|m| m.text == "Bin gleich da🙏")
            .and_then(|m| m.reply_to.as_ref())
            .filter(|q| q.event_id == original.to_string() && q.text == "Streuwagen ist fertig")
            .map(|_| ())
    }));
    // The Up arrow in the empty composer edits the answer.
    // The emoji is drawn as a picture beside the words, named by the emoji.
    settle(&mut h, "own answer shown", |h| {
        shows(h, "Bin gleich da") && h.query_all_by_label("🙏").next().is_some()
    });
    composer(&h, hint).click();
    h.step();
    h.key_press(Key::ArrowUp);
    settle(&mut h, "editing bar", |h| shows(h, "Nachricht bearbeiten"));
    composer(&h, hint).type_text("!");
    h.step();
    h.key_press(Key::Enter);
    h.step();
    f.rt.block_on(support::wait_texts(
        &ben,
        conv,
        &["Streuwagen ist fertig", "Bin gleich da🙏!"],
    ));
    // Ben edits, then deletes his message: Anna sees both, the quote too.
    f.rt.block_on(ben.handle.edit(
        conv,
        original,
        "Streuwagen ist fertig und getankt".into(),
        vec![],
    ))
    .unwrap();
    settle(&mut h, "Ben's edit", |h| {
        shows(h, "Streuwagen ist fertig und getankt") && shows(h, "bearbeitet")
    });
    f.rt.block_on(ben.handle.delete_for_everyone(conv, original))
        .unwrap();
    settle(&mut h, "Ben's deletion", |h| {
        let text = "Nachricht gelöscht";
        !shows(h, "Streuwagen ist fertig und getankt")
            && h.query_all_by(|n| n.value().is_some_and(|v| v.contains(text)))
                .count()
                >= 2
    });
    // Anna deletes her answer for herself alone (the only bubble with a menu left):
    // the dialog offers both ways, she takes "Für mich löschen"; Ben keeps it.
    h.get_by_label("…").click();
    settle(&mut h, "the menu", |h| has_label(h, "Löschen …"));
    h.get_by_label("Löschen …").click();
    settle(&mut h, "the delete dialog", |h| {
        has_label(h, "Für mich löschen") && has_label(h, "Für alle löschen")
    });
    h.get_by_label("Für mich löschen").click();
    settle(&mut h, "the answer gone here", |h| {
        h.query_all_by_label("🙏").next().is_none()
    });
    let items = f.rt.block_on(ben.handle.messages(conv, None, 10)).unwrap();
    assert!(items.iter().any(|m| m.text == "Bin gleich da🙏!"));
    h.check_accessibility();
}

/// The search box finds messages in every chat (case and umlauts folded, inside German
/// compounds), and a click opens the chat at the message.
#[test]
fn the_search_box_finds_messages_and_opens_their_chat() {
    let f = Fixture::new();
    let ben = f.spawn("Ben Müller", &[]);
    f.with_identity("Anna Schmidt");
    let mut h = running(&f, &[&ben], Lang::De);
    let anna = app(&h).node().unwrap().user_id();
    f.rt.block_on(ben.knows_user(anna));
    let conv = f.rt.block_on(ben.handle.open_direct(anna)).unwrap();
    for text in ["Die Streusalz-Lieferung kommt Dienstag", "Kaffee ist alle"] {
        f.rt.block_on(ben.handle.send_text(conv, text.into()))
            .unwrap();
    }
    settle(&mut h, "the chat", |h| {
        has_label(h, "Ben Müller, 2 ungelesen")
    });
    composer(&h, "Suchen").click();
    h.step();
    composer(&h, "Suchen").type_text("SALZ dienst");
    settle(&mut h, "the message found", |h| {
        has_label(h, "Die Streusalz-Lieferung kommt Dienstag")
    });
    assert!(
        !has_label(&h, "Kaffee ist alle"),
        "only what matches every word"
    );
    // The result is a button named by chat, author, day and the message.
    h.get_by_label_contains(": Die Streusalz-Lieferung").click();
    settle(&mut h, "the chat open at the message", |h| {
        app(h)
            .chat()
            .is_some_and(|c| c.conversation == conv.to_string() && c.is_loaded())
            && shows(h, "Kaffee ist alle")
    });
    h.check_accessibility();
}

/// Right-click on a chat: pin it to the top, mute it, mark it as unread; all three are
/// kept in app.json (which the next start reads), opening the chat ends the mark.
#[test]
fn chats_can_be_pinned_muted_and_marked_unread_and_stay_so() {
    let f = Fixture::new();
    let ben = f.spawn("Ben Müller", &[]);
    let clara = f.spawn("Clara Wolf", &[]);
    f.with_identity("Anna Schmidt");
    let mut h = running(&f, &[&ben, &clara], Lang::De);
    let anna = app(&h).node().unwrap().user_id();
    for (node, text) in [(&clara, "Hallo von Clara"), (&ben, "Hallo von Ben")] {
        f.rt.block_on(node.knows_user(anna));
        let conv = f.rt.block_on(node.handle.open_direct(anna)).unwrap();
        f.rt.block_on(node.handle.send_text(conv, text.into()))
            .unwrap();
    }
    settle(&mut h, "both chats", |h| {
        has_label(h, "Ben Müller, 1 ungelesen") && has_label(h, "Clara Wolf, 1 ungelesen")
    });
    // Read both, so "mark as unread" is offered.
    for name in ["Ben Müller", "Clara Wolf"] {
        h.get_by_label_contains(&format!("{name}, 1 ungelesen"))
            .click();
        settle(&mut h, "read", |h| {
            !has_label(h, &format!("{name}, 1 ungelesen"))
        });
    }
    use egui_kittest::kittest::NodeT;
    let order = |h: &Harness<'static, App>| -> Vec<String> {
        h.query_all_by(|n| {
            n.role() == egui::Role::Button
                && n.label()
                    .is_some_and(|l| l.starts_with("Ben Müller") || l.starts_with("Clara Wolf"))
        })
        .filter_map(|n| n.accesskit_node().label())
        .collect()
    };
    // Ben wrote last, so he is on top; pinned, Clara comes first.
    assert!(order(&h)[0].starts_with("Ben Müller"), "{:?}", order(&h));
    h.get_by_label_contains("Clara Wolf, Hallo")
        .click_secondary();
    h.run_steps(2);
    h.get_by_label("Anheften").click();
    settle(&mut h, "Clara pinned on top", |h| {
        order(h)
            .first()
            .is_some_and(|l| l.starts_with("Clara Wolf, angeheftet"))
    });
    // Ben muted for an hour, then marked unread.
    h.get_by_label_contains("Ben Müller, Hallo")
        .click_secondary();
    h.run_steps(2);
    h.get_by_label("Stummschalten").click();
    h.run_steps(2);
    h.get_by_label("1 Stunde").click();
    settle(&mut h, "Ben muted", |h| has_label(h, "Ben Müller, stumm"));
    h.get_by_label_contains("Ben Müller, stumm")
        .click_secondary();
    h.run_steps(2);
    h.get_by_label("Als ungelesen markieren").click();
    settle(&mut h, "Ben marked unread", |h| {
        has_label(h, "Ben Müller, stumm, 1 ungelesen")
    });
    // Kept in app.json, which the next start reads.
    let path = f.data_dir().root().join("app.json");
    let (bens, claras) = (ben.user(), clara.user());
    let kept = move || {
        let s = flurfunk::gui::settings::Settings::load(&path);
        let conv_of = |u: flurfunk::identity::UserId, me: flurfunk::identity::UserId| {
            flurfunk::conversation::direct_conversation_id(&u, &me).to_string()
        };
        s.pinned.contains(&conv_of(claras, anna))
            && s.muted.contains_key(&conv_of(bens, anna))
            && s.marked_unread.contains(&conv_of(bens, anna))
    };
    settle(&mut h, "app.json written", |_| kept());
    // Opening Ben's chat ends the mark.
    h.get_by_label_contains("Ben Müller, stumm, 1 ungelesen")
        .click();
    settle(&mut h, "mark gone", |h| {
        has_label(h, "Ben Müller, stumm, Hallo")
    });
    h.check_accessibility();
}

/// IT rotated the network key while this computer was off: the colleagues' nodes refuse
/// its old key at once, and the app says why and what to do, instead of "nobody
/// reachable".
#[test]
fn a_computer_whose_network_key_is_refused_says_to_get_the_new_file_from_it() {
    let f = Fixture::new();
    f.with_identity("Anna");
    let current = flurfunk::net::NetworkKey::generate(&mut rand::rngs::OsRng);
    let ben =
        f.rt.block_on(support::spawn_with("Ben", &[], current, Role::Member));
    let cora =
        f.rt.block_on(support::spawn_with("Cora", &[], current, Role::Member));
    let mut h = f.open(&[&ben, &cora], Lang::De);
    settle(&mut h, "the banner about the old key", |h| {
        shows(
            h,
            "Netzwerkschlüssel dieses Arbeitsplatzes ist nicht mehr gültig",
        )
    });
    assert!(!shows(&h, "Seit einer Weile ist niemand erreichbar"));
}

/// One of the organisation's groups (IT's node made "Alle" and named it, itself as
/// steward, in a signed statement): the chat's header says so, the group info says why
/// and offers no leaving, adding or removing.
#[test]
fn an_organisation_group_is_marked_and_cannot_be_left() {
    use flurfunk::wire::{Directory, DirectoryEntry, OrgGroup, OrgGroups, StatementKind};
    let f = Fixture::new();
    let dir = f.data_dir();
    launch::ensure_identity(&dir, "Anna Schmidt").unwrap();
    let admin = flurfunk::admin::AdminKey::generate(&mut rand::rngs::OsRng);
    let key = test_key().with_admin(admin.public());
    key.save_replace(&dir.network_key()).unwrap();
    let it =
        f.rt.block_on(support::spawn_with("IT-Service", &[], key, Role::Member));
    let ben =
        f.rt.block_on(support::spawn_with("Ben", &[&it], key, Role::Member));
    let mut h = running(&f, &[&it, &ben], Lang::De);
    let anna = app(&h).node().unwrap().user_id();
    f.rt.block_on(it.knows_user(anna));
    f.rt.block_on(it.knows_user(ben.user()));
    let now = flurfunk::node::now_ms();
    let mut directory = Directory::default();
    for user in [anna, ben.user()] {
        directory.entries.insert(
            user,
            DirectoryEntry {
                name: if user == anna {
                    "Anna Schmidt"
                } else {
                    "Ben Keller"
                }
                .into(),
                department: "Bauamt".into(),
            },
        );
    }
    let statement = admin
        .sign_statement(StatementKind::Directory, 1, now, directory.encode())
        .unwrap();
    f.rt.block_on(it.handle.publish_admin_statement(statement))
        .unwrap();
    let alle =
        f.rt.block_on(
            it.handle
                .create_group("Alle".into(), vec![anna, ben.user()]),
        )
        .unwrap();
    let org = OrgGroups {
        steward: it.user(),
        groups: vec![OrgGroup {
            conversation: alle,
            department: String::new(),
        }],
    };
    let statement = admin
        .sign_statement(StatementKind::OrgGroups, 1, now, org.encode())
        .unwrap();
    f.rt.block_on(it.handle.publish_admin_statement(statement))
        .unwrap();
    settle(&mut h, "Alle marked as the organisation's", |h| {
        app(h)
            .conversations()
            .iter()
            .any(|c| c.name == "Alle" && c.organisation.as_deref() == Some(""))
    });
    h.state_mut()
        .as_mut()
        .unwrap()
        .select_conversation(&alle.to_string());
    settle(&mut h, "the mark in the header", |h| {
        shows(h, "Gruppe der Organisation")
    });
    h.get_by_label("Gruppeninfo").click();
    h.run_steps(3);
    settle(&mut h, "the reason in the group info", |h| {
        shows(h, "kommen aus dem Verzeichnis der IT")
    });
    assert!(!has_label(&h, "Gruppe verlassen"));
    assert!(!has_label(&h, "Entfernen Ben Keller ✔"));
    assert!(!has_label(&h, "Umbenennen"));
}
