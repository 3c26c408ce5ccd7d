//! The layout of a data directory, in one place.
//!
//! ```text
//! DIR/identity.key   own keys (0600)
//! DIR/network.key    network pre-shared key (0600); absent: demo network
//! DIR/db/            sled database (one process at a time)
//! DIR/control.sock   control socket of the running node (Unix; 0600)
//! DIR/control.port   control port and token (loopback TCP; tested on Linux, unused)
//! DIR/control.pipe   name of the running node's control pipe (Windows; user only)
//! ```

use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// The OS's per-user data directory (Linux `~/.local/share/flurfunk`, Windows
    /// `%LOCALAPPDATA%\Flurfunk`: local, so a roaming profile does not carry it around).
    pub fn default_location() -> Option<Self> {
        crate::platform::user_data_dir().map(DataDir::new)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn identity(&self) -> PathBuf {
        self.root.join("identity.key")
    }

    pub fn network_key(&self) -> PathBuf {
        self.root.join("network.key")
    }

    pub fn database(&self) -> PathBuf {
        self.root.join("db")
    }

    /// Attachments: encrypted, content-addressed (`files::BlobStore`).
    /// The network's admin key, when this installation made a managed network
    /// (`flurfunk network new`); never read by the node.
    pub fn admin_key(&self) -> PathBuf {
        self.root.join("admin.key")
    }

    /// What this installation's admin did with the network's admin key, one line per
    /// action (certify, revoke...): the audit trail IT prints or exports.
    pub fn admin_audit_log(&self) -> PathBuf {
        self.root.join("admin-audit.log")
    }

    /// A relay's certificate from the network's admin key (`flurfunk admin
    /// install-relay-cert`).
    pub fn relay_certificate(&self) -> PathBuf {
        self.root.join("relay.cert")
    }

    pub fn files(&self) -> PathBuf {
        self.root.join("files")
    }

    /// Decrypted copies of files opened from the app (with their program); removed a
    /// day later.
    pub fn opened(&self) -> PathBuf {
        self.root.join("opened")
    }

    pub fn control_socket(&self) -> PathBuf {
        self.root.join("control.sock")
    }

    pub fn control_port(&self) -> PathBuf {
        self.root.join("control.port")
    }

    pub fn control_pipe(&self) -> PathBuf {
        self.root.join("control.pipe")
    }

    /// Create the directory, readable by its owner only.
    pub fn create(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
}
