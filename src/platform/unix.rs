//! Linux and other Unix systems: the data folder, the machine's key file and when to trust
//! it, and the port claim. Key files are protected by their mode (0600); the Windows-only
//! pieces do nothing here.

use std::io;
use std::path::{Path, PathBuf};

/// `~/.local/share/flurfunk`.
pub(super) const DATA_DIR_NAME: &str = "flurfunk";

pub(super) fn machine_network_key_path() -> Option<PathBuf> {
    Some(PathBuf::from("/etc/flurfunk/network.key"))
}

/// The same file as `machine_network_key_path` (it does not depend on the program's path).
pub(super) fn installed_network_key_path() -> Option<PathBuf> {
    machine_network_key_path()
}

/// `/etc/flurfunk/policy.toml`. Fails closed: a file (or folder) that is there but cannot
/// be looked at, or that is not owned and writable by root only, is an error, never "no
/// settings" (a lock that silently does not hold is worse than none).
pub(super) fn machine_settings() -> Result<Option<super::MachineSource>, (String, String)> {
    let path = Path::new("/etc/flurfunk/policy.toml");
    let shown = path.display().to_string();
    match std::fs::metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err((shown, e.to_string())),
    }
    if !machine_file_trusted(path) {
        return Err((
            shown,
            "it and /etc/flurfunk must be owned by root and writable by root only (mode 0644)"
                .into(),
        ));
    }
    Ok(Some(super::MachineSource::File(path.to_path_buf())))
}

/// The file and its folder owned by root and not writable by group or others; a key
/// anyone could have planted is ignored (with a warning), since it would silently move
/// every user of the machine into someone else's network.
pub(super) fn machine_file_trusted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let trusted =
        |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o022 == 0);
    let dir_trusted = path.parent().is_none_or(trusted);
    if !(trusted(path) && dir_trusted) {
        tracing::warn!(
            "ignoring {}: it must be owned by root and writable by root only",
            path.display()
        );
        return false;
    }
    true
}

/// The file's mode is the protection: the bytes are stored as they are.
pub(super) fn protect(plain: &[u8]) -> io::Result<Vec<u8>> {
    Ok(plain.to_vec())
}

pub(super) fn dpapi_unprotect(_blob: &[u8]) -> io::Result<Vec<u8>> {
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "this key file is protected with Windows DPAPI and can only be read by the Windows \
         account that wrote it",
    ))
}

pub(super) fn set_app_user_model_id() {}

/// Linux: an abstract Unix socket name (per network namespace, like the port itself).
#[cfg(target_os = "linux")]
pub(super) type PortHold = std::os::unix::net::UnixListener;
/// Elsewhere no claim is needed beyond the bind itself.
#[cfg(not(target_os = "linux"))]
pub(super) type PortHold = ();

pub(super) fn claim_port(port: u16) -> Option<PortHold> {
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("flurfunk-tcp-{port}");
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?;
        std::os::unix::net::UnixListener::bind_addr(&addr).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = port;
        Some(())
    }
}

/// systemd and desktops send SIGTERM, which the node handles.
pub(super) fn on_session_end(on_end: Box<dyn Fn() + Send + Sync>) {
    drop(on_end);
}

/// A console program prints its errors; there is no console-less start here.
pub(super) fn message_box_without_console(_message: &str) {}
