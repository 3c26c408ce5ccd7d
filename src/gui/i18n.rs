//! Every string the desktop app shows, in German and English.
//!
//! One struct with one field per string: a string missing in a language is a compile error,
//! not a blank button. Placeholders are `{name}`-style and filled with [`fill`].

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lang {
    #[serde(rename = "de")]
    De,
    #[serde(rename = "en")]
    En,
}

impl Lang {
    /// German when the system locale is German, English otherwise.
    pub fn from_system() -> Lang {
        Lang::from_locale(sys_locale::get_locale().as_deref().unwrap_or(""))
    }

    pub fn from_locale(locale: &str) -> Lang {
        if locale.to_ascii_lowercase().starts_with("de") {
            Lang::De
        } else {
            Lang::En
        }
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::De => &DE,
            Lang::En => &EN,
        }
    }

    /// The language's own name, for the language picker.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::De => "Deutsch",
            Lang::En => "English",
        }
    }
}

/// Replace `{key}` placeholders.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (key, value) in values {
        out = out.replace(&format!("{{{key}}}"), value);
    }
    out
}

pub struct Texts {
    pub app_name: &'static str,
    pub starting: &'static str,
    pub start_failed: &'static str,
    // Wizard
    pub wizard_welcome: &'static str,
    pub wizard_intro: &'static str,
    pub wizard_your_name: &'static str,
    pub wizard_name_hint: &'static str,
    pub wizard_next: &'static str,
    pub wizard_back: &'static str,
    pub wizard_network_title: &'static str,
    pub wizard_network_intro: &'static str,
    pub wizard_join: &'static str,
    pub wizard_join_hint: &'static str,
    pub wizard_key_file: &'static str,
    pub wizard_key_paste: &'static str,
    pub wizard_drop_hint: &'static str,
    pub wizard_create: &'static str,
    pub wizard_create_hint: &'static str,
    pub wizard_create_save_to: &'static str,
    pub wizard_demo: &'static str,
    pub wizard_demo_hint: &'static str,
    pub wizard_finish: &'static str,
    pub wizard_key_saved: &'static str,
    // Main window
    pub chats: &'static str,
    pub search_hint: &'static str,
    pub new_chat: &'static str,
    pub new_group: &'static str,
    pub people: &'static str,
    pub settings: &'static str,
    pub no_chats: &'static str,
    pub pick_chat: &'static str,
    pub composer_hint: &'static str,
    pub send: &'static str,
    pub today: &'static str,
    pub yesterday: &'static str,
    pub you: &'static str,
    pub online: &'static str,
    pub offline: &'static str,
    pub last_seen: &'static str,
    pub members_count: &'static str,
    pub unread_n: &'static str,
    pub load_older: &'static str,
    pub not_member: &'static str,
    /// A colleague the network's admin revoked ({name}).
    pub left_organisation: &'static str,
    pub jump_to_newest: &'static str,
    // Ticks
    pub state_saved: &'static str,
    /// Under a message written under a key not every member was given.
    pub for_some_members: &'static str,
    pub for_some_members_hint: &'static str,
    pub state_delivered: &'static str,
    pub state_read: &'static str,
    pub state_partly: &'static str,
    pub delivered_to: &'static str,
    pub read_by: &'static str,
    pub waiting_for: &'static str,
    pub count_of: &'static str,
    pub click_for_details: &'static str,
    pub message_info: &'static str,
    // Files
    pub attach: &'static str,
    pub send_file_title: &'static str,
    pub send_file_to: &'static str,
    pub file_path: &'static str,
    pub file_path_hint: &'static str,
    pub file_caption: &'static str,
    pub file_save: &'static str,
    pub file_download: &'static str,
    pub file_loading: &'static str,
    pub file_saved: &'static str,
    pub file_not_found: &'static str,
    pub file_open: &'static str,
    pub file_waiting: &'static str,
    pub file_photo: &'static str,
    pub file_pasted_name: &'static str,
    pub file_picture_unreadable: &'static str,
    pub open_program_title: &'static str,
    pub open_program_warning: &'static str,
    pub open_anyway: &'static str,
    // People
    pub people_title: &'static str,
    pub people_empty: &'static str,
    pub start_chat: &'static str,
    pub verified: &'static str,
    // Groups
    pub group_title: &'static str,
    pub group_name: &'static str,
    pub group_members: &'static str,
    pub group_create: &'static str,
    pub group_rename: &'static str,
    pub group_add: &'static str,
    pub group_remove: &'static str,
    pub group_leave: &'static str,
    pub group_admin: &'static str,
    pub group_member: &'static str,
    pub group_removed_rotated: &'static str,
    pub group_need_name: &'static str,
    pub group_info: &'static str,
    pub group_make_admin: &'static str,
    pub close: &'static str,
    pub cancel: &'static str,
    // Verification
    pub verify_title: &'static str,
    pub verify_intro: &'static str,
    pub verify_mark: &'static str,
    pub verify_unmark: &'static str,
    pub verify_is_verified: &'static str,
    pub key_changed: &'static str,
    pub key_changed_ack: &'static str,
    pub notice_created: &'static str,
    pub notice_added: &'static str,
    pub notice_removed: &'static str,
    pub notice_left: &'static str,
    pub notice_promoted: &'static str,
    pub notice_key_changed: &'static str,
    pub notice_renamed: &'static str,
    pub misbehaviour_two_versions: &'static str,
    pub misbehaviour_wrong_key: &'static str,
    pub disk_full_files: &'static str,
    // Settings
    pub settings_title: &'static str,
    pub settings_name: &'static str,
    pub settings_save_name: &'static str,
    pub settings_language: &'static str,
    pub settings_network: &'static str,
    pub settings_join_other: &'static str,
    pub settings_join_apply: &'static str,
    pub settings_data_dir: &'static str,
    pub settings_notifications: &'static str,
    pub settings_managed: &'static str,
    pub settings_unmanaged: &'static str,
    /// What the organisation's policy sets, listed after this.
    pub policy_set: &'static str,
    pub policy_no_read_receipts: &'static str,
    pub policy_online_only: &'static str,
    pub policy_presence_hidden: &'static str,
    /// {size}
    pub policy_max_file: &'static str,
    /// {size}
    pub policy_auto_download: &'static str,
    pub settings_auto_download: &'static str,
    pub settings_auto_never: &'static str,
    pub settings_up_to: &'static str,
    pub settings_files_space: &'static str,
    pub settings_files_space_hint: &'static str,
    pub settings_key: &'static str,
    pub settings_key_update: &'static str,
    pub settings_key_hint: &'static str,
    pub settings_key_done: &'static str,
    pub settings_user_id: &'static str,
    pub settings_restarting: &'static str,
    // Status
    pub status_peers: &'static str,
    pub status_network: &'static str,
    pub status_outbox: &'static str,
    pub demo_banner: &'static str,
    pub alone_banner: &'static str,
    pub notification_title: &'static str,
    pub error_prefix: &'static str,
}

pub static DE: Texts = Texts {
    app_name: "Flurfunk",
    starting: "Flurfunk startet …",
    start_failed: "Flurfunk konnte nicht starten",
    wizard_welcome: "Willkommen bei Flurfunk",
    wizard_intro: "Der Messenger für das Haus: ohne Server, ohne Cloud, verschlüsselt. \
                   Zuerst: Wie sollen die Kolleginnen und Kollegen Sie sehen?",
    wizard_your_name: "Ihr Name",
    wizard_name_hint: "z. B. Anna Schmidt, Bürgerbüro",
    wizard_next: "Weiter",
    wizard_back: "Zurück",
    wizard_network_title: "Netzwerk wählen",
    wizard_network_intro: "Ein Netzwerkschlüssel hält alle anderen draußen. Ihre IT oder \
                           ein Kollege gibt Ihnen die Schlüsseldatei.",
    wizard_join: "Einem Netzwerk beitreten",
    wizard_join_hint: "Schlüsseldatei öffnen oder ihren Inhalt einfügen",
    wizard_key_file: "Pfad zur Schlüsseldatei",
    wizard_key_paste: "… oder Schlüssel einfügen",
    wizard_drop_hint: "Tipp: Datei einfach ins Fenster ziehen.",
    wizard_create: "Neues Netzwerk gründen",
    wizard_create_hint: "Erstellt eine Schlüsseldatei, die Sie an Kollegen weitergeben \
                         (USB-Stick, nicht per E-Mail).",
    wizard_create_save_to: "Schlüsseldatei speichern unter",
    wizard_demo: "Demo-Netzwerk ausprobieren",
    wizard_demo_hint: "Nur zum Ausprobieren: jeder mit Flurfunk kann hier mitlesen.",
    wizard_finish: "Los geht's",
    wizard_key_saved: "Schlüsseldatei gespeichert: {path}",
    chats: "Chats",
    search_hint: "Suchen",
    new_chat: "Neuer Chat",
    new_group: "Neue Gruppe",
    people: "Personen",
    settings: "Einstellungen",
    no_chats: "Noch keine Chats. Unter „Personen“ finden Sie Ihre Kollegen.",
    pick_chat: "Wählen Sie links einen Chat aus.",
    composer_hint: "Nachricht schreiben (Enter sendet, Umschalt+Enter neue Zeile)",
    send: "Senden",
    today: "Heute",
    yesterday: "Gestern",
    you: "Sie",
    online: "online",
    offline: "offline",
    last_seen: "zuletzt online {time}",
    members_count: "{n} Mitglieder",
    unread_n: "{n} ungelesen",
    load_older: "Ältere Nachrichten laden",
    not_member: "Sie sind nicht mehr Mitglied dieser Gruppe.",
    left_organisation: "{name} hat die Organisation verlassen.",
    jump_to_newest: "⬇ Neueste",
    state_saved: "gespeichert",
    for_some_members: "⚠ nicht für alle in der Gruppe lesbar",
    for_some_members_hint: "Diese Nachricht wurde mit einem Schlüssel geschrieben, den nicht alle Mitglieder bekommen haben. Manche sehen sie nicht.",
    state_delivered: "an alle zugestellt",
    state_read: "von allen gelesen",
    state_partly: "an {n} von {m} zugestellt",
    delivered_to: "Zugestellt an",
    read_by: "Gelesen von",
    waiting_for: "Noch nicht zugestellt",
    count_of: "{n} von {m}",
    click_for_details: "Klicken für alle Namen",
    message_info: "Nachrichteninfo",
    attach: "Datei senden (oder in das Fenster ziehen)",
    send_file_title: "Datei senden",
    send_file_to: "An: {name}",
    file_path: "Datei",
    file_path_hint: "Datei hierher ziehen oder Pfad eingeben",
    file_caption: "Text dazu (optional)",
    file_save: "Speichern",
    file_download: "Herunterladen",
    file_loading: "wird geladen …",
    file_saved: "Gespeichert: {path}",
    file_not_found: "Unter diesem Pfad ist keine Datei.",
    file_open: "Öffnen",
    file_waiting: "wartet auf einen Kollegen, der sie hat",
    file_photo: "Foto",
    file_pasted_name: "Bildschirmfoto",
    file_picture_unreadable: "Das Bild lässt sich nicht anzeigen.",
    open_program_title: "Programm öffnen?",
    open_program_warning: "„{name}“ ist ein Programm oder Skript. Öffnen Sie es nur, wenn Sie es erwartet haben: so verbreiten sich Schadprogramme.",
    open_anyway: "Trotzdem öffnen",
    people_title: "Personen im Netzwerk",
    people_empty: "Noch niemand gesehen. Andere Flurfunk-Rechner im Netz erscheinen hier \
                   automatisch.",
    start_chat: "Chat starten",
    verified: "verifiziert",
    group_title: "Gruppe",
    group_name: "Gruppenname",
    group_members: "Mitglieder",
    group_create: "Gruppe erstellen",
    group_rename: "Umbenennen",
    group_add: "Hinzufügen",
    group_remove: "Entfernen",
    group_leave: "Gruppe verlassen",
    group_admin: "Admin",
    group_member: "Mitglied",
    group_removed_rotated: "{name} wurde entfernt. Der Gruppenschlüssel wurde erneuert: \
                            {name} kann neue Nachrichten nicht mehr lesen.",
    group_need_name: "Bitte einen Namen und mindestens ein Mitglied wählen.",
    group_info: "Gruppeninfo",
    group_make_admin: "Zum Admin machen",
    close: "Schließen",
    cancel: "Abbrechen",
    verify_title: "Sicherheitsnummer",
    verify_intro: "Vergleichen Sie diese Nummer mit {name} (persönlich oder am Telefon). \
                   Stimmt sie überein, ist die Verbindung nicht manipuliert.",
    verify_mark: "Als verifiziert markieren",
    verify_unmark: "Verifizierung aufheben",
    verify_is_verified: "✔ verifiziert",
    key_changed: "Achtung: „{name}“ meldet sich mit einem neuen Schlüssel. Das kann eine \
                  Neuinstallation sein – oder jemand gibt sich als {name} aus. Prüfen Sie die \
                  Sicherheitsnummer, bevor Sie Vertrauliches schreiben.",
    key_changed_ack: "Verstanden",
    notice_created: "{by} hat die Gruppe erstellt",
    notice_added: "{by} hat {user} hinzugefügt",
    notice_removed: "{by} hat {user} entfernt",
    notice_left: "{by} hat die Gruppe verlassen",
    notice_promoted: "{by} hat {user} zum Admin gemacht",
    notice_key_changed: "{by} hat einen neuen Schlüssel",
    notice_renamed: "{by} hat die Gruppe in „{name}“ umbenannt",
    misbehaviour_two_versions: "Das Gerät von {name} hat in „{group}“ zwei verschiedene Fassungen \
                                einer Nachricht geschickt; Flurfunk behält für alle dieselbe. Bitte \
                                das Gerät prüfen lassen (kopiertes Profil, zurückgespielte \
                                Sicherung oder Manipulation).",
    disk_full_files: "Der Speicher ist voll: Dateien werden erst wieder geladen, wenn Platz frei ist. Gespeichertes bleibt erhalten.",
    misbehaviour_wrong_key: "Das Gerät von {name} hat in „{group}“ einen Schlüssel geschickt, der \
                             nicht für alle passt. Ein Mitglied hat das nachgewiesen; niemand \
                             benutzt diesen Schlüssel. Bitte das Gerät prüfen lassen \
                             (Manipulation oder fehlerhafte Installation).",
    settings_title: "Einstellungen",
    settings_name: "Anzeigename",
    settings_save_name: "Namen speichern",
    settings_language: "Sprache",
    settings_network: "Netzwerk",
    settings_join_other: "Anderem Netzwerk beitreten (Schlüsseldatei)",
    settings_join_apply: "Beitreten und neu verbinden",
    settings_data_dir: "Datenordner",
    settings_notifications: "Desktop-Benachrichtigungen",
    settings_managed: "Von der IT verwaltet, Admin-Schlüssel",
    settings_unmanaged: "Nicht verwaltet: jeder Teilnehmer kann als Relay auftreten",
    policy_set: "Von Ihrer Organisation festgelegt:",
    policy_no_read_receipts: "keine Lesebestätigungen",
    policy_online_only: "„Zuletzt online“ wird nicht angezeigt",
    policy_presence_hidden: "wer online ist, wird nicht angezeigt",
    policy_max_file: "Dateien bis {size}",
    policy_auto_download: "automatisch geladen bis {size}",
    settings_auto_download: "Dateien automatisch laden",
    settings_auto_never: "Nie (nur auf Klick)",
    settings_up_to: "bis",
    settings_files_space: "Speicher für Dateien",
    settings_files_space_hint: "Darüber hinaus werden Dateien von Kolleginnen und Kollegen entfernt, die seit einer Stunde niemand geöffnet hat, und bei Bedarf neu geladen. Eigene Dateien bleiben.",
    settings_key: "Schlüssel",
    settings_key_update: "Schlüssel erneuern",
    settings_key_hint: "Falls die Schlüsseldatei kopiert worden sein könnte: Was ab jetzt geschrieben wird, öffnet die Kopie nicht mehr.",
    settings_key_done: "Neuer Schlüssel erstellt. Die Gruppen bekommen ihn, sobald ihre Mitglieder erreichbar sind.",
    settings_user_id: "Ihre Benutzer-ID",
    settings_restarting: "Verbinde neu …",
    status_peers: "{n} online",
    status_network: "Netzwerk {fp}",
    status_outbox: "{n} warten auf Zustellung",
    demo_banner: "Demo-Netzwerk: Jeder mit Flurfunk kann beitreten. Nicht für dienstliche \
                  Inhalte. (Einstellungen → Netzwerk)",
    alone_banner: "Seit einer Weile ist niemand erreichbar. Nachrichten werden zugestellt, \
                   sobald Kollegen online sind.",
    notification_title: "{name} in {chat}",
    error_prefix: "Fehler",
};

pub static EN: Texts = Texts {
    app_name: "Flurfunk",
    starting: "Flurfunk is starting …",
    start_failed: "Flurfunk could not start",
    wizard_welcome: "Welcome to Flurfunk",
    wizard_intro: "The messenger for the building: no server, no cloud, encrypted. \
                   First: how should your colleagues see you?",
    wizard_your_name: "Your name",
    wizard_name_hint: "e.g. Anna Schmidt, citizens' office",
    wizard_next: "Next",
    wizard_back: "Back",
    wizard_network_title: "Choose a network",
    wizard_network_intro: "A network key keeps everyone else out. Your IT or a colleague \
                           gives you the key file.",
    wizard_join: "Join a network",
    wizard_join_hint: "Open the key file or paste its content",
    wizard_key_file: "Path to the key file",
    wizard_key_paste: "… or paste the key",
    wizard_drop_hint: "Tip: just drag the file into the window.",
    wizard_create: "Create a new network",
    wizard_create_hint: "Creates a key file to hand to colleagues (USB stick, not e-mail).",
    wizard_create_save_to: "Save the key file to",
    wizard_demo: "Try the demo network",
    wizard_demo_hint: "For trying out only: anyone running Flurfunk can read along.",
    wizard_finish: "Let's go",
    wizard_key_saved: "Key file saved: {path}",
    chats: "Chats",
    search_hint: "Search",
    new_chat: "New chat",
    new_group: "New group",
    people: "People",
    settings: "Settings",
    no_chats: "No chats yet. Find your colleagues under “People”.",
    pick_chat: "Pick a chat on the left.",
    composer_hint: "Write a message (Enter sends, Shift+Enter new line)",
    send: "Send",
    today: "Today",
    yesterday: "Yesterday",
    you: "You",
    online: "online",
    offline: "offline",
    last_seen: "last seen {time}",
    members_count: "{n} members",
    unread_n: "{n} unread",
    load_older: "Load older messages",
    not_member: "You are no longer a member of this group.",
    left_organisation: "{name} has left the organisation.",
    jump_to_newest: "⬇ Newest",
    state_saved: "saved",
    for_some_members: "⚠ not readable by everyone in the group",
    for_some_members_hint: "This message was written under a key that not every member was given. Some do not see it.",
    state_delivered: "delivered to all",
    state_read: "read by all",
    state_partly: "delivered to {n} of {m}",
    delivered_to: "Delivered to",
    read_by: "Read by",
    waiting_for: "Not delivered yet",
    count_of: "{n} of {m}",
    click_for_details: "Click for every name",
    message_info: "Message info",
    attach: "Send a file (or drag it into the window)",
    send_file_title: "Send a file",
    send_file_to: "To: {name}",
    file_path: "File",
    file_path_hint: "Drag a file here or type its path",
    file_caption: "Text with it (optional)",
    file_save: "Save",
    file_download: "Download",
    file_loading: "loading …",
    file_saved: "Saved: {path}",
    file_not_found: "There is no file at this path.",
    file_open: "Open",
    file_waiting: "waiting for a colleague who has it",
    file_photo: "Photo",
    file_pasted_name: "Screenshot",
    file_picture_unreadable: "This picture cannot be shown.",
    open_program_title: "Open a program?",
    open_program_warning: "“{name}” is a program or script. Open it only if you expected it: this is how malware spreads.",
    open_anyway: "Open anyway",
    people_title: "People on the network",
    people_empty: "Nobody seen yet. Other Flurfunk computers on the network show up here \
                   by themselves.",
    start_chat: "Start chat",
    verified: "verified",
    group_title: "Group",
    group_name: "Group name",
    group_members: "Members",
    group_create: "Create group",
    group_rename: "Rename",
    group_add: "Add",
    group_remove: "Remove",
    group_leave: "Leave group",
    group_admin: "Admin",
    group_member: "Member",
    group_removed_rotated: "{name} was removed. The group key was rotated: {name} cannot \
                            read new messages.",
    group_need_name: "Please enter a name and pick at least one member.",
    group_info: "Group info",
    group_make_admin: "Make admin",
    close: "Close",
    cancel: "Cancel",
    verify_title: "Safety number",
    verify_intro: "Compare this number with {name} (in person or on the phone). If it \
                   matches, nobody is in between.",
    verify_mark: "Mark as verified",
    verify_unmark: "Clear verification",
    verify_is_verified: "✔ verified",
    key_changed: "Warning: “{name}” appears with a new key. This may be a reinstall – or \
                  someone posing as {name}. Check the safety number before you write \
                  anything confidential.",
    key_changed_ack: "Understood",
    notice_created: "{by} created the group",
    notice_added: "{by} added {user}",
    notice_removed: "{by} removed {user}",
    notice_left: "{by} left the group",
    notice_promoted: "{by} made {user} an admin",
    notice_key_changed: "{by} has a new key",
    notice_renamed: "{by} renamed the group to “{name}”",
    misbehaviour_two_versions: "{name}'s device sent two different versions of one message in \
                                “{group}”; Flurfunk keeps the same one for everyone. Have that \
                                device checked (a copied profile, a restored backup, or \
                                tampering).",
    disk_full_files: "The disk is full: files are fetched again once there is room. Nothing saved is lost.",
    misbehaviour_wrong_key: "{name}'s device sent a key in “{group}” that does not fit for \
                             everyone. A member proved it, and nobody uses that key. Have that \
                             device checked (tampering or a faulty installation).",
    settings_title: "Settings",
    settings_name: "Display name",
    settings_save_name: "Save name",
    settings_language: "Language",
    settings_network: "Network",
    settings_join_other: "Join another network (key file)",
    settings_join_apply: "Join and reconnect",
    settings_data_dir: "Data folder",
    settings_notifications: "Desktop notifications",
    settings_managed: "Managed by IT, admin key",
    settings_unmanaged: "Unmanaged: any participant can act as a relay",
    policy_set: "Set by your organisation:",
    policy_no_read_receipts: "no read receipts",
    policy_online_only: "\"last seen\" is not shown",
    policy_presence_hidden: "who is online is not shown",
    policy_max_file: "files up to {size}",
    policy_auto_download: "fetched automatically up to {size}",
    settings_auto_download: "Download files automatically",
    settings_auto_never: "Never (on click only)",
    settings_up_to: "up to",
    settings_files_space: "Space for files",
    settings_files_space_hint: "Beyond it, colleagues' files nobody opened for an hour are removed and fetched again when needed. Your own files stay.",
    settings_key: "Key",
    settings_key_update: "Renew key",
    settings_key_hint: "If the key file may have been copied: the copy opens nothing written from now on.",
    settings_key_done: "New key made. Your chats get it as soon as their members are reachable.",
    settings_user_id: "Your user id",
    settings_restarting: "Reconnecting …",
    status_peers: "{n} online",
    status_network: "network {fp}",
    status_outbox: "{n} waiting for delivery",
    demo_banner: "Demo network: anyone running Flurfunk can join. Not for work content. \
                  (Settings → Network)",
    alone_banner: "Nobody has been reachable for a while. Messages are delivered as soon as \
                   colleagues are online.",
    notification_title: "{name} in {chat}",
    error_prefix: "Error",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn german_locales_pick_german_everything_else_english() {
        assert_eq!(Lang::from_locale("de-DE"), Lang::De);
        assert_eq!(Lang::from_locale("de_AT.UTF-8"), Lang::De);
        assert_eq!(Lang::from_locale("en-US"), Lang::En);
        assert_eq!(Lang::from_locale("fr-FR"), Lang::En);
        assert_eq!(Lang::from_locale(""), Lang::En);
    }

    #[test]
    fn fill_replaces_every_placeholder() {
        assert_eq!(fill("{n} von {m}", &[("n", "2"), ("m", "3")]), "2 von 3");
        assert_eq!(
            fill(DE.group_removed_rotated, &[("name", "Ben")])
                .matches("Ben")
                .count(),
            2
        );
    }
}
