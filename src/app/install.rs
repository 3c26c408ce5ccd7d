//! Machine setup that installers run as an administrator (`flurfunk admin ...`): the
//! town hall's network key for every user of the machine, and the Windows Firewall rules.
//! The MSI's custom actions and the .deb's maintainer scripts call these, so the rules are
//! written once, in Rust, and a wrong key file fails the installation with a clear line.
//!
//! Never touches a user's data directory.

use std::path::{Path, PathBuf};

use crate::net::{NetError, NetworkKey};

/// Names of the firewall rules (to find them again on uninstall).
pub const FIREWALL_RULE_TCP: &str = "Flurfunk (TCP, peers)";
pub const FIREWALL_RULE_MDNS: &str = "Flurfunk (UDP 5353, mDNS)";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Key(#[from] NetError),
    #[error("cannot tell where this program is installed")]
    NoMachinePath,
    #[error("{0} is not a key file (give the full path of a file, readable by this machine)")]
    NotAFile(String),
    #[error("that is the demo network's key; give the town hall's key file")]
    DemoKey,
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "firewall rules are set by the installer on Windows only; on Linux open TCP \
             47110 and UDP 5353 in your firewall (the .deb leaves the firewall alone)"
    )]
    FirewallNotWindows,
    #[error("netsh failed ({what}): {detail}")]
    Netsh { what: String, detail: String },
}

/// Check `file` is a network key and install it for every user of this machine. Returns
/// the path written and the network's fingerprint.
pub fn install_machine_key(file: &Path) -> Result<(PathBuf, String), InstallError> {
    let target = crate::platform::machine_network_key_path().ok_or(InstallError::NoMachinePath)?;
    install_key_at(file, target)
}

fn install_key_at(file: &Path, target: PathBuf) -> Result<(PathBuf, String), InstallError> {
    // Run as SYSTEM by the MSI: only a plain local file, never a device or a pipe.
    let shown = file.display().to_string();
    if shown.starts_with(r"\\.\") || shown.starts_with(r"\\?\") || !file.is_file() {
        return Err(InstallError::NotAFile(shown));
    }
    let key = NetworkKey::load(file)?;
    if key.is_demo() {
        return Err(InstallError::DemoKey);
    }
    let write_error = |source| InstallError::Write {
        path: target.display().to_string(),
        source,
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(write_error)?;
    }
    // Readable by every local user (each one's node reads it); written by administrators,
    // in a folder only administrators can write (Program Files, /etc).
    let tmp = target.with_extension("key.new");
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(key.to_file_text().as_bytes())?;
            f.sync_all()
        })
        .map_err(write_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
            .map_err(write_error)?;
    }
    std::fs::rename(&tmp, &target).map_err(write_error)?;
    Ok((target, key.fingerprint()))
}

/// The `netsh` commands that open Flurfunk to the network: inbound TCP on any port for the
/// program (a second user on a terminal server listens on another port than 47110) and
/// mDNS, both for the domain and private profiles only.
pub fn firewall_add_commands(program: &Path) -> Vec<Vec<String>> {
    let program = program.display().to_string();
    let rule = |name: &str, protocol: &str, port: Option<&str>| {
        let mut args = vec![
            "advfirewall".to_string(),
            "firewall".into(),
            "add".into(),
            "rule".into(),
            format!("name={name}"),
            "dir=in".into(),
            "action=allow".into(),
            format!("protocol={protocol}"),
            format!("program={program}"),
            "profile=domain,private".into(),
            "enable=yes".into(),
        ];
        if let Some(port) = port {
            args.push(format!("localport={port}"));
        }
        args
    };
    // Deleting first makes a repair or reinstall replace the rules instead of doubling them.
    let mut commands = firewall_remove_commands();
    commands.push(rule(FIREWALL_RULE_TCP, "TCP", None));
    commands.push(rule(FIREWALL_RULE_MDNS, "UDP", Some("5353")));
    commands
}

pub fn firewall_remove_commands() -> Vec<Vec<String>> {
    [FIREWALL_RULE_TCP, FIREWALL_RULE_MDNS]
        .iter()
        .map(|name| {
            vec![
                "advfirewall".to_string(),
                "firewall".into(),
                "delete".into(),
                "rule".into(),
                format!("name={name}"),
            ]
        })
        .collect()
}

/// Run `netsh` (from the system folder, never a search) with each argument list
/// (Windows only). Every command runs even if one fails; the first failed `add` is
/// returned (a `delete` of a rule that is not there fails too and means nothing).
pub fn run_netsh(commands: &[Vec<String>]) -> Result<(), InstallError> {
    if !cfg!(windows) {
        return Err(InstallError::FirewallNotWindows);
    }
    let system_root = std::env::var_os("SystemRoot").unwrap_or_else(|| r"C:\Windows".into());
    let netsh = PathBuf::from(system_root)
        .join("System32")
        .join("netsh.exe");
    let mut first_error = None;
    for args in commands {
        let what = args.get(2).cloned().unwrap_or_default();
        if what == "delete" {
            let _ = std::process::Command::new(&netsh).args(args).output();
            continue;
        }
        let result = std::process::Command::new(&netsh).args(args).output();
        let error = match result {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(String::from_utf8_lossy(&out.stdout).trim().to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(detail) = error {
            first_error.get_or_insert(InstallError::Netsh { what, detail });
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firewall_rules_name_the_program_and_mdns_port_and_are_removed_by_name() {
        let all = firewall_add_commands(Path::new(r"C:\Program Files\Flurfunk\flurfunk.exe"));
        assert_eq!(
            all.len(),
            4,
            "two deletes first (a repair replaces), then two adds"
        );
        assert!(all[..2].iter().all(|c| c[2] == "delete"));
        let add = &all[2..];
        assert!(add[0].contains(&r"program=C:\Program Files\Flurfunk\flurfunk.exe".to_string()));
        assert!(add[0].contains(&"protocol=TCP".to_string()));
        assert!(!add[0].iter().any(|a| a.starts_with("localport=")));
        assert!(add[1].contains(&"localport=5353".to_string()));
        let removed: Vec<String> = firewall_remove_commands()
            .into_iter()
            .map(|c| c[4].clone())
            .collect();
        for cmd in add {
            assert!(removed.contains(&cmd[4]), "{} is never removed", cmd[4]);
        }
    }

    #[test]
    fn a_machine_key_is_checked_then_installed_readable() {
        let dir = tempfile::tempdir().unwrap();
        let machine = dir.path().join("etc").join("network.key");
        let not_a_key = dir.path().join("readme.txt");
        std::fs::write(&not_a_key, "hello").unwrap();
        assert!(matches!(
            install_key_at(&not_a_key, machine.clone()),
            Err(InstallError::Key(_))
        ));
        assert!(matches!(
            install_key_at(dir.path(), machine.clone()),
            Err(InstallError::NotAFile(_))
        ));
        let demo = dir.path().join("demo.key");
        NetworkKey::demo().save_new(&demo).unwrap();
        assert!(matches!(
            install_key_at(&demo, machine.clone()),
            Err(InstallError::DemoKey)
        ));
        assert!(!machine.exists(), "a wrong file must not be installed");
        let key = NetworkKey::generate(&mut rand::rngs::OsRng);
        let file = dir.path().join("rathaus.key");
        key.save_new(&file).unwrap();
        let (path, fingerprint) = install_key_at(&file, machine.clone()).unwrap();
        assert_eq!(path, machine);
        assert_eq!(fingerprint, key.fingerprint());
        assert_eq!(
            NetworkKey::load(&machine).unwrap().fingerprint(),
            key.fingerprint()
        );
    }
}
