//! The control socket: how `flurfunk send`, scripts and tools reach the node that runs
//! (headless or inside the desktop app) for the same data directory.
//!
//! One JSON request per line, one JSON reply per line. On Unix it is a socket file in the
//! data directory (mode 0600 in a 0700 directory), so only the owner can connect. Elsewhere
//! it is a loopback TCP port plus a random token, both in a file only the owner can read;
//! that variant is compiled and tested on Linux too.

use std::io;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;

use super::data_dir::DataDir;
use super::{Request, Response};
use crate::node::NodeHandle;

/// Longest request line: a maximal text message, JSON-escaped, with room to spare.
pub const MAX_REQUEST_BYTES: u64 = 512 * 1024;
/// Longest reply line a client reads (a long history as JSON).
pub const MAX_REPLY_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Remote(String),
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
    #[error("control socket: malformed reply ({0})")]
    Malformed(String),
    #[error("another Flurfunk node already runs for this data directory")]
    AlreadyRunning,
}

#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    #[serde(skip_serializing_if = "Option::is_none")]
    ok: Option<Response>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A running control server; stops and removes its socket file when dropped.
pub struct ControlServer {
    task: JoinHandle<()>,
    cleanup: std::path::PathBuf,
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.cleanup);
    }
}

async fn serve_connection<S>(stream: S, node: NodeHandle, token: Option<String>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read.take(MAX_REQUEST_BYTES));
    if let Some(token) = token {
        let mut given = String::new();
        if lines.read_line(&mut given).await.is_err() || given.trim() != token {
            return;
        }
    }
    let mut line = String::new();
    let reply = match lines.read_line(&mut line).await {
        Ok(0) => return,
        Ok(_) => match serde_json::from_str::<Request>(&line) {
            Ok(request) => match super::execute(&node, request).await {
                Ok(response) => Reply {
                    ok: Some(response),
                    error: None,
                },
                Err(e) => Reply {
                    ok: None,
                    error: Some(e.to_string()),
                },
            },
            Err(e) => Reply {
                ok: None,
                error: Some(format!("bad request: {e}")),
            },
        },
        Err(e) => Reply {
            ok: None,
            error: Some(format!("bad request: {e}")),
        },
    };
    if let Ok(mut text) = serde_json::to_string(&reply) {
        text.push('\n');
        let _ = write.write_all(text.as_bytes()).await;
        let _ = write.shutdown().await;
    }
}

async fn call_over<S>(
    stream: S,
    token: Option<&str>,
    request: &Request,
) -> Result<Response, ControlError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut out = String::new();
    if let Some(token) = token {
        out.push_str(token);
        out.push('\n');
    }
    out.push_str(
        &serde_json::to_string(request).map_err(|e| ControlError::Malformed(e.to_string()))?,
    );
    out.push('\n');
    write.write_all(out.as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(read.take(MAX_REPLY_BYTES))
        .read_line(&mut line)
        .await?;
    let reply: Reply =
        serde_json::from_str(&line).map_err(|e| ControlError::Malformed(e.to_string()))?;
    match (reply.ok, reply.error) {
        (Some(response), None) => Ok(response),
        (_, Some(error)) => Err(ControlError::Remote(error)),
        (None, None) => Err(ControlError::Malformed("empty reply".into())),
    }
}

/// Serve the control socket for `node` until the returned server is dropped.
pub async fn serve(dir: &DataDir, node: NodeHandle) -> Result<ControlServer, ControlError> {
    #[cfg(unix)]
    {
        serve_unix(dir, node).await
    }
    #[cfg(not(unix))]
    {
        serve_tcp(dir, node).await
    }
}

/// Ask the node running for `dir`. `Ok(None)`: no node runs (the caller may then open the
/// store itself).
pub async fn call(dir: &DataDir, request: &Request) -> Result<Option<Response>, ControlError> {
    #[cfg(unix)]
    {
        call_unix(dir, request).await
    }
    #[cfg(not(unix))]
    {
        call_tcp(dir, request).await
    }
}

#[cfg(unix)]
async fn serve_unix(dir: &DataDir, node: NodeHandle) -> Result<ControlServer, ControlError> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.control_socket();
    if path.exists() {
        if tokio::net::UnixStream::connect(&path).await.is_ok() {
            return Err(ControlError::AlreadyRunning);
        }
        // Left behind by a node that was killed.
        std::fs::remove_file(&path)?;
    }
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_connection(stream, node.clone(), None));
        }
    });
    Ok(ControlServer {
        task,
        cleanup: path,
    })
}

#[cfg(unix)]
async fn call_unix(dir: &DataDir, request: &Request) -> Result<Option<Response>, ControlError> {
    let stream = match tokio::net::UnixStream::connect(dir.control_socket()).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    call_over(stream, None, request).await.map(Some)
}

/// Loopback TCP with a token: the control channel where Unix sockets are not available.
#[cfg_attr(unix, allow(dead_code))]
pub(crate) async fn serve_tcp(
    dir: &DataDir,
    node: NodeHandle,
) -> Result<ControlServer, ControlError> {
    let path = dir.control_port();
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Some((port, _)) = text.trim().split_once(' ')
        && tokio::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap_or(0)))
            .await
            .is_ok()
    {
        return Err(ControlError::AlreadyRunning);
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let mut raw = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    let token = hex::encode(raw);
    crate::identity::write_private_file(&path, format!("{port} {token}\n").as_bytes(), true)?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_connection(stream, node.clone(), Some(token.clone())));
        }
    });
    Ok(ControlServer {
        task,
        cleanup: path,
    })
}

#[cfg_attr(unix, allow(dead_code))]
pub(crate) async fn call_tcp(
    dir: &DataDir,
    request: &Request,
) -> Result<Option<Response>, ControlError> {
    let Ok(text) = std::fs::read_to_string(dir.control_port()) else {
        return Ok(None);
    };
    let Some((port, token)) = text.trim().split_once(' ') else {
        return Ok(None);
    };
    let Ok(port) = port.parse::<u16>() else {
        return Ok(None);
    };
    let stream = match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    call_over(stream, Some(token), request).await.map(Some)
}
