//! What differs between operating systems, in one place: where the data lives, how key
//! files are protected at rest, which machine-wide files an administrator may provide, and
//! the Windows pieces (DPAPI, the AppUserModelID, a user-only security descriptor for the
//! control pipe). This file is the interface; `windows.rs` and `unix.rs` implement it.
//!
//! Must never decide anything about the protocol; everything here is about the machine.

use std::io;
use std::path::PathBuf;

#[cfg(not(windows))]
mod unix;
#[cfg(not(windows))]
use unix as os;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as os;

#[cfg(windows)]
pub(crate) use windows::{UserOnlySecurity, pipe_server_is_current_user};

/// Windows: the id under which the taskbar groups Flurfunk's window and toasts appear.
/// The installer's Start-menu shortcut carries the same id (packaging/windows/flurfunk.wxs).
pub const APP_USER_MODEL_ID: &str = "Flurfunk.Messenger";

/// Key files protected with DPAPI start with this line; plain key files never do.
const PROTECTED_MAGIC: &[u8] = b"FLURFUNK-DPAPI-1\n";

/// The per-user data directory of this OS: Windows `%LOCALAPPDATA%\Flurfunk` (local, not
/// roaming: a roaming profile on a terminal server must not copy the database and keys
/// around), Linux `~/.local/share/flurfunk`.
pub fn user_data_dir() -> Option<PathBuf> {
    dirs::data_local_dir().map(|d| d.join(os::DATA_DIR_NAME))
}

/// Where the network key the administrator installed for every user of this machine lives
/// (the MSI's `NETWORKKEYFILE`, `flurfunk admin install-network-key`): Windows: next to the
/// installed program (`C:\Program Files\Flurfunk\network.key`: only administrators can
/// write there, unlike ProgramData, where any user may create the folder first); Linux:
/// `/etc/flurfunk/network.key`.
pub fn machine_network_key_path() -> Option<PathBuf> {
    os::machine_network_key_path()
}

/// The machine's network key file if there is one that only administrators could have
/// put there. Linux: the file and its folder owned by root and not writable by group or
/// others; a key anyone could have planted is ignored (with a warning), since it would
/// silently move every user of the machine into someone else's network.
pub fn machine_network_key() -> Option<PathBuf> {
    let path = machine_network_key_path()?;
    (path.is_file() && os::machine_file_trusted(&path)).then_some(path)
}

/// Where this machine's settings come from (`app::machine_policy`): Linux
/// `/etc/flurfunk/policy.toml` (owned by root and writable by root only, else ignored
/// with a warning, like the machine's network key); Windows the values under
/// `HKLM\Software\Policies\Flurfunk` (group policy). `Ok(None)`: nothing set. `Err`:
/// (where, why) when it is there but cannot be read.
pub(crate) fn machine_settings() -> Result<Option<MachineSource>, (String, String)> {
    os::machine_settings()
}

/// What [`machine_settings`] found.
pub(crate) enum MachineSource {
    /// A TOML file to read.
    #[cfg_attr(windows, allow(dead_code))]
    File(PathBuf),
    /// Values already read (the registry), and where from.
    #[cfg_attr(not(windows), allow(dead_code))]
    Values {
        source_name: String,
        settings: crate::app::machine_policy::MachineSettings,
    },
}

/// The machine's network key where a locked machine takes it from: Windows the installed
/// program's folder found by the OS (`%ProgramFiles%\Flurfunk\network.key` by its known
/// folder, not beside whichever copy of the program runs), Linux `/etc/flurfunk/network.key`;
/// under the same trust rule as [`machine_network_key`].
pub fn installed_network_key() -> Option<PathBuf> {
    let path = os::installed_network_key_path()?;
    (path.is_file() && os::machine_file_trusted(&path)).then_some(path)
}

/// Protect secret file contents at rest for the current user. Windows: DPAPI (the file
/// is useless to another account or machine). Elsewhere the file's mode (0600) is the
/// protection and the bytes are returned as they are.
pub fn protect(plain: &[u8]) -> io::Result<Vec<u8>> {
    os::protect(plain)
}

/// The inverse of [`protect`]; plain contents (a key file written elsewhere) pass through.
/// A DPAPI file outside Windows is a clear error.
pub fn unprotect(stored: &[u8]) -> io::Result<zeroize::Zeroizing<Vec<u8>>> {
    match stored.strip_prefix(PROTECTED_MAGIC) {
        None => Ok(zeroize::Zeroizing::new(stored.to_vec())),
        Some(blob) => os::dpapi_unprotect(blob).map(zeroize::Zeroizing::new),
    }
}

/// Windows: mark this process as Flurfunk for the taskbar and for notifications. Nothing
/// elsewhere.
pub fn set_app_user_model_id() {
    os::set_app_user_model_id();
}

/// A machine-wide claim on a TCP port number among Flurfunk nodes, held while the node
/// runs and released when the process ends, however it ends. Two users on a terminal
/// server who log in at the same moment must not both take the default port: the
/// listening socket allows port sharing (libp2p sets SO_REUSEPORT / SO_REUSEADDR), and a
/// shared port hands each incoming connection to either node at random.
pub struct PortClaim {
    _held: os::PortHold,
}

/// Claim `port` for this process, or `None` if another Flurfunk node on this machine holds
/// it. Linux: an abstract Unix socket name (per network namespace, like the port itself);
/// Windows: a named mutex in the global namespace (across terminal-server sessions);
/// elsewhere no claim is needed beyond the bind itself.
pub fn claim_port(port: u16) -> Option<PortClaim> {
    os::claim_port(port).map(|held| PortClaim { _held: held })
}

/// Windows: call `on_end` when the user logs off or the system shuts down, before Windows
/// ends the process. The only notice a program that loads user32 gets is WM_ENDSESSION to
/// its top-level windows (no console event), so a hidden top-level window on a thread of
/// its own listens for it. `on_end` may block for a few seconds to stop the node cleanly.
/// Once per process; elsewhere nothing (systemd and desktops send SIGTERM).
pub fn on_session_end(on_end: impl Fn() + Send + Sync + 'static) {
    os::on_session_end(Box::new(on_end));
}

/// Windows: the desktop app is started without a console (by `flurfunk-app.exe`), so an
/// error that ends it is also shown in a message box; a console program prints only.
pub fn show_error_without_console(message: &str) {
    os::message_box_without_console(message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_claimed_once_per_machine_until_released() {
        // A port number no test listens on; the claim is about the name, not the port.
        let first = claim_port(1);
        assert!(first.is_some());
        #[cfg(any(target_os = "linux", windows))]
        assert!(
            claim_port(1).is_none(),
            "a second claim must fail while the first holds"
        );
        drop(first);
        assert!(claim_port(1).is_some(), "released with its holder");
    }

    #[test]
    fn protected_bytes_come_back_and_plain_ones_pass_through() {
        let secret = b"FLURFUNK-KEY-v1 not really a key".to_vec();
        let stored = protect(&secret).unwrap();
        assert_eq!(&*unprotect(&stored).unwrap(), &secret);
        assert_eq!(&*unprotect(&secret).unwrap(), &secret);
        #[cfg(windows)]
        assert!(stored.starts_with(PROTECTED_MAGIC) && !stored.ends_with(&secret));
    }

    #[cfg(not(windows))]
    #[test]
    fn a_dpapi_file_outside_windows_is_a_clear_error() {
        let mut stored = PROTECTED_MAGIC.to_vec();
        stored.extend_from_slice(&[1, 2, 3]);
        let e = unprotect(&stored).unwrap_err();
        assert!(e.to_string().contains("DPAPI"), "{e}");
    }
}
