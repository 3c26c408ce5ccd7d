//! The layout of a data directory, in one place.
//!
//! ```text
//! DIR/identity.key   own keys (0600)
//! DIR/network.key    network pre-shared key (0600); absent: demo network
//! DIR/db/            sled database (one process at a time)
//! DIR/control.sock   control socket of the running node (Unix; 0600)
//! DIR/control.port   control port and token of the running node (other OSes; 0600)
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
    /// `%APPDATA%\flurfunk`).
    pub fn default_location() -> Option<Self> {
        dirs::data_dir().map(|d| DataDir::new(d.join("flurfunk")))
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

    pub fn control_socket(&self) -> PathBuf {
        self.root.join("control.sock")
    }

    pub fn control_port(&self) -> PathBuf {
        self.root.join("control.port")
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
