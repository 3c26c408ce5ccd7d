//! Machine settings: what an administrator sets for every user of one computer, the way
//! Windows admins set such things (group policy in `HKLM\Software\Policies\Flurfunk`,
//! with the ADMX template in `packaging/windows/admx/`) and on Linux in
//! `/etc/flurfunk/policy.toml`. They win over each user's own settings; the network's
//! signed policy statement wins over them where both set a switch, except that deletion
//! for everyone and the features are off where either turns them off
//! (`wire::Policy::over`).
//!
//! Read only from places a user cannot write (the registry's machine hive, a root-owned
//! file); never written by Flurfunk. A file or value that is there but wrong is an error
//! that stops the program (fail closed: a lock that silently does not hold is worse than
//! none). Debug builds also read `FLURFUNK_MACHINE_POLICY` (a TOML file), for tests.

use std::path::PathBuf;

use serde::Deserialize;

use crate::wire::{Policy, Presence};

/// Largest policy file read (a few lines).
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Largest size in MB a setting may give (1 TiB).
const MAX_MB: u64 = 1 << 20;
/// Longest edit or delete window in minutes a setting may give (about ten years).
const MAX_WINDOW_MINUTES: u64 = 10 * 366 * 24 * 60;

/// The value names under `HKLM\Software\Policies\Flurfunk` (DWORDs, `DATA_FOLDER` text),
/// as the ADMX template writes them.
pub mod registry {
    pub const LOCK_NETWORK: &str = "LockNetwork";
    pub const READ_RECEIPTS: &str = "ReadReceipts";
    /// 0 full, 1 online only, 2 hidden.
    pub const PRESENCE: &str = "Presence";
    pub const MAX_FILE_MB: &str = "MaxFileSizeMB";
    pub const AUTO_DOWNLOAD_MB: &str = "AutoDownloadMB";
    /// 0: messages cannot be deleted for everyone; 1: they can.
    pub const DELETE_FOR_EVERYONE: &str = "DeleteForEveryone";
    pub const EDIT_WINDOW_MINUTES: &str = "EditWindowMinutes";
    pub const DELETE_WINDOW_MINUTES: &str = "DeleteWindowMinutes";
    pub const DATA_FOLDER: &str = "DataFolder";
    /// 1: the app starts at every user's log-on; 0: never (the installer registers it).
    pub const AUTOSTART: &str = "Autostart";
    /// Features (1 allowed, 0 turned off): sending files, reactions, editing, the
    /// message's text in notifications.
    pub const SEND_FILES: &str = "SendFiles";
    pub const REACTIONS: &str = "Reactions";
    pub const EDIT_MESSAGES: &str = "EditMessages";
    pub const NOTIFICATION_PREVIEW: &str = "NotificationPreview";
    pub const ALL: [&str; 14] = [
        SEND_FILES,
        REACTIONS,
        EDIT_MESSAGES,
        NOTIFICATION_PREVIEW,
        AUTOSTART,
        LOCK_NETWORK,
        READ_RECEIPTS,
        PRESENCE,
        MAX_FILE_MB,
        AUTO_DOWNLOAD_MB,
        DELETE_FOR_EVERYONE,
        EDIT_WINDOW_MINUTES,
        DELETE_WINDOW_MINUTES,
        DATA_FOLDER,
    ];
}

/// The machine's settings (all absent: nothing set, every user decides).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MachinePolicy {
    /// Where they were read from, for messages (`/etc/flurfunk/policy.toml`,
    /// `HKLM\Software\Policies\Flurfunk`). `None`: no machine settings.
    pub source: Option<String>,
    /// Only the network key IT installed for the machine: no demo network, no joining
    /// or making another network, a user's own key file ignored.
    pub lock_network: bool,
    /// Read receipts, presence, file sizes (absent switches at their defaults).
    pub policy: Policy,
    /// The data folder of every user, instead of the per-user default (e.g.
    /// `D:\Flurfunk\%USERNAME%` on a terminal server). A `--data-dir` given still wins.
    pub data_dir: Option<PathBuf>,
    /// Whether the app starts at log-on for every user (`None`: each user decides).
    pub autostart: Option<bool>,
}

/// The settings as written (TOML on Linux; Windows' registry values are read into the
/// same shape).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MachineSettings {
    pub lock_network: Option<bool>,
    pub read_receipts: Option<bool>,
    /// "full", "online_only" or "hidden".
    pub presence: Option<String>,
    pub max_file_mb: Option<u64>,
    pub auto_download_mb: Option<u64>,
    pub delete_for_everyone: Option<bool>,
    pub edit_window_minutes: Option<u64>,
    pub delete_window_minutes: Option<u64>,
    pub data_dir: Option<String>,
    pub autostart: Option<bool>,
    /// Features (`false`: turned off for every user of the machine).
    pub send_files: Option<bool>,
    pub reactions: Option<bool>,
    pub edit_messages: Option<bool>,
    pub notification_preview: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum MachinePolicyError {
    #[error("cannot read the machine settings {source_name}: {reason}")]
    Unreadable { source_name: String, reason: String },
    #[error("the machine settings {source_name} are not valid ({reason}); ask IT")]
    Invalid { source_name: String, reason: String },
}

impl MachinePolicy {
    /// This machine's settings: the registry (Windows) or `/etc/flurfunk/policy.toml`.
    pub fn load() -> Result<Self, MachinePolicyError> {
        if cfg!(debug_assertions)
            && let Some(path) = std::env::var_os("FLURFUNK_MACHINE_POLICY")
        {
            return Self::from_file(&PathBuf::from(path));
        }
        use crate::platform::MachineSource;
        match crate::platform::machine_settings() {
            Ok(None) => Ok(MachinePolicy::default()),
            Ok(Some(MachineSource::File(path))) => Self::from_file(&path),
            Ok(Some(MachineSource::Values {
                source_name,
                settings,
            })) => Self::from_settings(source_name, settings),
            Err((source_name, reason)) => Err(MachinePolicyError::Unreadable {
                source_name,
                reason,
            }),
        }
    }

    /// Settings from a TOML file (the Linux location, or a test's).
    pub fn from_file(path: &std::path::Path) -> Result<Self, MachinePolicyError> {
        let source_name = path.display().to_string();
        let unreadable = |reason: String| MachinePolicyError::Unreadable {
            source_name: source_name.clone(),
            reason,
        };
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(
                std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?,
                MAX_FILE_BYTES + 1,
            ),
            &mut bytes,
        )
        .map_err(|e| unreadable(e.to_string()))?;
        Self::from_toml(source_name.clone(), &bytes)
    }

    /// Settings from the bytes of a TOML file.
    pub fn from_toml(source_name: String, bytes: &[u8]) -> Result<Self, MachinePolicyError> {
        let invalid = |reason: String| MachinePolicyError::Invalid {
            source_name: source_name.clone(),
            reason,
        };
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(invalid("larger than 64 KiB".into()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text".into()))?;
        let settings: MachineSettings =
            toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;
        Self::from_settings(source_name, settings)
    }

    pub(crate) fn from_settings(
        source_name: String,
        settings: MachineSettings,
    ) -> Result<Self, MachinePolicyError> {
        let invalid = |reason: String| MachinePolicyError::Invalid {
            source_name: source_name.clone(),
            reason,
        };
        let presence = match settings.presence.as_deref().map(str::trim) {
            None | Some("full") => Presence::Full,
            Some("online_only") => Presence::OnlineOnly,
            Some("hidden") => Presence::Hidden,
            Some(other) => {
                return Err(invalid(format!(
                    "presence \"{other}\": use full, online_only or hidden"
                )));
            }
        };
        let mb = |name: &str, value: Option<u64>| match value {
            Some(n) if n > MAX_MB => Err(invalid(format!("{name} {n} is more than 1 TiB"))),
            v => Ok(v.map(|n| n << 20)),
        };
        let minutes = |name: &str, value: Option<u64>| match value {
            Some(n) if n > MAX_WINDOW_MINUTES => {
                Err(invalid(format!("{name} {n} is more than ten years")))
            }
            v => Ok(v.map(|n| n * 60)),
        };
        let data_dir = match settings.data_dir.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(dir) => {
                let expanded = expand_user(dir);
                let path = PathBuf::from(&expanded);
                if !path.is_absolute() {
                    return Err(invalid(format!(
                        "data_dir \"{expanded}\" is not an absolute path"
                    )));
                }
                Some(path)
            }
        };
        Ok(MachinePolicy {
            source: Some(source_name.clone()),
            lock_network: settings.lock_network.unwrap_or(false),
            policy: Policy {
                read_receipts: settings.read_receipts.unwrap_or(true),
                presence,
                max_file_bytes: mb("max_file_mb", settings.max_file_mb)?,
                auto_download_bytes: mb("auto_download_mb", settings.auto_download_mb)?,
                delete_for_everyone: settings.delete_for_everyone.unwrap_or(true),
                edit_window_s: minutes("edit_window_minutes", settings.edit_window_minutes)?,
                delete_window_s: minutes("delete_window_minutes", settings.delete_window_minutes)?,
                // The network's alone: every node must judge a message's age alike.
                keep_messages_s: None,
                dropped_before_ms: None,
                features_off: [
                    (settings.send_files, crate::wire::FEATURE_FILES),
                    (settings.reactions, crate::wire::FEATURE_REACTIONS),
                    (settings.edit_messages, crate::wire::FEATURE_EDITS),
                    (settings.notification_preview, crate::wire::FEATURE_PREVIEWS),
                ]
                .into_iter()
                .filter(|(allowed, _)| *allowed == Some(false))
                .fold(0, |off, (_, bit)| off | bit),
            },
            data_dir,
            autostart: settings.autostart,
        })
    }

    /// Whether `flurfunk app --autostart` (what the installer registers to run at log-on)
    /// opens the app: this machine's setting where it has one, else the user's own.
    pub fn autostart_wanted(&self, user_wants: bool) -> bool {
        self.autostart.unwrap_or(user_wants)
    }

    /// Whether anything is set.
    pub fn is_set(&self) -> bool {
        self.source.is_some()
    }

    /// Why an action is refused on a locked machine, or `Ok` where the network is not
    /// locked.
    pub fn check_unlocked(&self, action: &str) -> Result<(), LockedError> {
        if self.lock_network {
            return Err(LockedError {
                action: action.to_string(),
                source_name: self.source.clone().unwrap_or_default(),
            });
        }
        Ok(())
    }
}

/// An action the machine settings forbid.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{action} is not possible on this computer: IT locked it to the organisation's network \
     ({source_name})"
)]
pub struct LockedError {
    pub action: String,
    pub source_name: String,
}

/// `%USERNAME%`, `%USER%`, `$USER` and `${USER}` in a data folder: the user's name (one
/// folder per user on a shared machine). Windows expands the registry's own variables
/// already.
fn expand_user(dir: &str) -> String {
    let user = std::env::var("USERNAME")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_default();
    let mut out = dir.to_string();
    for var in ["%USERNAME%", "%USER%", "${USER}", "$USER"] {
        out = out.replace(var, &user);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MachinePolicy, MachinePolicyError> {
        MachinePolicy::from_toml("policy.toml".into(), text.as_bytes())
    }

    #[test]
    fn settings_are_read_and_nothing_set_is_the_default() {
        let p = parse(
            "lock_network = true\nread_receipts = false\npresence = \"online_only\"\n\
             max_file_mb = 100\nauto_download_mb = 0\ndata_dir = \"/srv/flurfunk/$USER\"\n\
             delete_for_everyone = false\nedit_window_minutes = 15\ndelete_window_minutes = 2880\n\
             autostart = false\nsend_files = false\nreactions = true\nnotification_preview = false\n",
        )
        .unwrap();
        assert_eq!(
            p.policy.features_off,
            crate::wire::FEATURE_FILES | crate::wire::FEATURE_PREVIEWS
        );
        assert!(p.lock_network && p.is_set());
        assert!(!p.policy.read_receipts);
        assert_eq!(p.policy.presence, Presence::OnlineOnly);
        assert_eq!(p.policy.max_file_bytes, Some(100 << 20));
        assert_eq!(p.policy.auto_download_bytes, Some(0));
        assert!(!p.policy.delete_for_everyone);
        assert_eq!(p.policy.edit_window_s, Some(15 * 60));
        assert_eq!(p.policy.delete_window_s, Some(2 * 86_400));
        assert!(!p.autostart_wanted(true), "the machine's \"never\" wins");
        let dir = p.data_dir.clone().unwrap();
        assert!(dir.starts_with("/srv/flurfunk") && !dir.to_string_lossy().contains('$'));
        assert!(p.check_unlocked("joining").is_err());
        let empty = parse("").unwrap();
        assert_eq!(empty.policy, Policy::default());
        assert!(!empty.lock_network && empty.check_unlocked("joining").is_ok());
        assert_eq!(MachinePolicy::default().policy, Policy::default());
        assert!(empty.autostart_wanted(true) && !empty.autostart_wanted(false));
        assert!(parse("autostart = true").unwrap().autostart_wanted(false));
    }

    #[test]
    fn a_wrong_setting_is_an_error_not_ignored() {
        for bad in [
            "lock_netwrok = true",
            "lock_network = \"yes\"",
            "presence = \"invisible\"",
            "max_file_mb = -1",
            "max_file_mb = 2000000",
            "edit_window_minutes = 99999999",
            "delete_for_everyone = 0",
            "data_dir = \"relative/path\"",
            "lock_network = true\nlock_network = false",
            "[section]\nx = 1",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().contains("ask IT"), "{bad}: {e}");
        }
        assert!(MachinePolicy::from_toml("p".into(), &[0xff, 0xfe]).is_err());
        assert!(
            MachinePolicy::from_toml("p".into(), &vec![b' '; 70_000]).is_err(),
            "too large"
        );
        assert!(
            MachinePolicy::from_file(std::path::Path::new("/nonexistent/policy.toml")).is_err()
        );
    }

    /// The ADMX template writes exactly the values Flurfunk reads, and both language files
    /// name every string and presentation it refers to.
    #[test]
    fn the_admx_template_matches_the_values_read_and_its_translations() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/windows/admx");
        let admx = std::fs::read_to_string(dir.join("flurfunk.admx")).unwrap();
        let attr = |text: &str, name: &str| -> Vec<String> {
            text.split(&format!("{name}=\""))
                .skip(1)
                .map(|rest| rest.split('"').next().unwrap_or_default().to_string())
                .collect()
        };
        let mut written = attr(&admx, "valueName");
        written.sort();
        written.dedup();
        let mut read: Vec<String> = registry::ALL.iter().map(|s| s.to_string()).collect();
        read.sort();
        assert_eq!(written, read);
        for key in attr(&admx, "key") {
            assert_eq!(key, "Software\\Policies\\Flurfunk");
        }
        let refs = |prefix: &str| -> Vec<String> {
            admx.split(&format!("$({prefix}."))
                .skip(1)
                .map(|rest| rest.split(')').next().unwrap_or_default().to_string())
                .collect()
        };
        for lang in ["de-DE", "en-US"] {
            let adml = std::fs::read_to_string(dir.join(lang).join("flurfunk.adml")).unwrap();
            let strings = attr(&adml, "string id");
            let presentations = attr(&adml, "presentation id");
            for s in refs("string") {
                assert!(strings.contains(&s), "{lang}: string {s} missing");
            }
            for p in refs("presentation") {
                assert!(
                    presentations.contains(&p),
                    "{lang}: presentation {p} missing"
                );
            }
        }
    }

    #[test]
    fn the_network_statement_wins_where_it_sets_a_switch() {
        let machine = Policy {
            read_receipts: false,
            presence: Presence::Hidden,
            max_file_bytes: Some(10),
            auto_download_bytes: Some(5),
            ..Policy::default()
        };
        // Nothing set by the network: the machine's settings hold.
        assert_eq!(Policy::default().over(machine), machine);
        let network = Policy {
            read_receipts: true,
            presence: Presence::OnlineOnly,
            max_file_bytes: Some(100),
            auto_download_bytes: None,
            ..Policy::default()
        };
        let both = network.over(machine);
        assert_eq!(both.presence, Presence::OnlineOnly);
        assert_eq!(both.max_file_bytes, Some(100));
        assert_eq!(both.auto_download_bytes, Some(5));
        // "On" is the default, so it cannot turn the machine's "off" back on.
        assert!(!both.read_receipts);
        assert_eq!(network.over(Policy::default()), network);
    }
}
