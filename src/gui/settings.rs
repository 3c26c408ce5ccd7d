//! The desktop app's own settings and contact book, a small JSON file in the data directory
//! (`DIR/app.json`, 0600). The node never reads it.
//!
//! The contact book remembers the key (user id) behind each name seen, and which ones the
//! user verified, so that a known name arriving with a different key can be flagged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::i18n::Lang;
use crate::app::data_dir::DataDir;

/// Names remembered in the contact book; a town hall has hundreds of staff, not tens of
/// thousands, and a flood of fake profiles must not grow the file without limit.
pub const MAX_CONTACTS: usize = 5_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    /// `None`: follow the system locale.
    #[serde(default)]
    pub language: Option<Lang>,
    #[serde(default = "yes")]
    pub notifications: bool,
    /// user id -> name, for every colleague seen.
    #[serde(default)]
    pub contacts: BTreeMap<String, String>,
    /// user ids the user verified by comparing safety numbers.
    #[serde(default)]
    pub verified: BTreeMap<String, String>,
    /// Files up to this size are fetched by themselves; `None`: the node's default.
    #[serde(default)]
    pub auto_download_bytes: Option<u64>,
    /// Space for files; `None`: the node's default.
    #[serde(default)]
    pub files_quota_bytes: Option<u64>,
    /// Chats pinned to the top of the list (conversation ids).
    #[serde(default)]
    pub pinned: std::collections::BTreeSet<String>,
    /// Chats muted until (ms since 1970; `u64::MAX`: until turned on again).
    #[serde(default)]
    pub muted: BTreeMap<String, u64>,
    /// Chats marked as unread by hand (until opened).
    #[serde(default)]
    pub marked_unread: std::collections::BTreeSet<String>,
    /// Open the app when the user logs on (unless the machine's settings decide).
    #[serde(default = "yes")]
    pub start_at_logon: bool,
}

fn yes() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            language: None,
            notifications: true,
            contacts: BTreeMap::new(),
            verified: BTreeMap::new(),
            auto_download_bytes: None,
            files_quota_bytes: None,
            pinned: Default::default(),
            muted: BTreeMap::new(),
            marked_unread: Default::default(),
            start_at_logon: true,
        }
    }
}

/// A known name now used by a different key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyChange {
    pub name: String,
    pub old_user: String,
    pub new_user: String,
    pub was_verified: bool,
}

impl Settings {
    pub fn path(dir: &DataDir) -> PathBuf {
        dir.root().join("app.json")
    }

    /// Missing or unreadable file: defaults (the app must start; the problem is logged).
    pub fn load(path: &Path) -> Settings {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!("{}: {e}; using default settings", path.display());
                Settings::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Settings::default(),
            Err(e) => {
                tracing::warn!("{}: {e}; using default settings", path.display());
                Settings::default()
            }
        }
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::identity::write_private_file(path, &bytes, true)
    }

    pub fn language(&self) -> Lang {
        self.language.unwrap_or_else(Lang::from_system)
    }

    /// Remember `user` as `name`. Returns the key change if this name belonged to another
    /// key before (a reinstall, or an impostor).
    pub fn observe(&mut self, own_user: &str, user: &str, name: &str) -> Option<KeyChange> {
        if user == own_user || name.trim().is_empty() {
            return None;
        }
        if self.contacts.get(user).is_some_and(|n| n == name) {
            return None;
        }
        let previous = self
            .contacts
            .iter()
            .find(|(u, n)| u.as_str() != user && n.as_str() == name)
            .map(|(u, _)| u.clone());
        if self.contacts.len() < MAX_CONTACTS || self.contacts.contains_key(user) {
            self.contacts.insert(user.to_string(), name.to_string());
        }
        previous.map(|old_user| KeyChange {
            name: name.to_string(),
            was_verified: self.verified.contains_key(&old_user),
            old_user,
            new_user: user.to_string(),
        })
    }

    pub fn is_verified(&self, user: &str) -> bool {
        self.verified.contains_key(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_name_with_a_new_key_is_a_key_change() {
        let mut s = Settings::default();
        assert_eq!(s.observe("me", "aaaa", "Anna Schmidt"), None);
        s.verified.insert("aaaa".into(), "Anna Schmidt".into());
        assert_eq!(
            s.observe("me", "aaaa", "Anna Schmidt"),
            None,
            "same key again"
        );
        let change = s.observe("me", "bbbb", "Anna Schmidt").expect("key change");
        assert_eq!(change.old_user, "aaaa");
        assert!(change.was_verified);
        assert_eq!(
            s.observe("me", "cccc", "Ben Müller"),
            None,
            "a new name is fine"
        );
        assert_eq!(
            s.observe("me", "me", "Anna Schmidt"),
            None,
            "own profile ignored"
        );
    }

    #[test]
    fn settings_survive_a_round_trip_and_a_broken_file_gives_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.json");
        let mut s = Settings {
            language: Some(Lang::En),
            notifications: false,
            ..Settings::default()
        };
        s.observe("me", "aaaa", "Anna");
        s.save(&path).unwrap();
        let loaded = Settings::load(&path);
        assert_eq!(loaded.language, Some(Lang::En));
        assert!(!loaded.notifications);
        assert_eq!(
            loaded.contacts.get("aaaa").map(String::as_str),
            Some("Anna")
        );
        std::fs::write(&path, b"{ not json").unwrap();
        assert!(Settings::load(&path).notifications);
    }
}
