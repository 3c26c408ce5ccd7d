//! The control socket: how `flurfunk send`, scripts and tools reach the node that runs
//! (headless or inside the desktop app) for the same data directory.
//!
//! One JSON request per line, one JSON reply per line. On Unix it is a socket file in the
//! data directory (mode 0600 in a 0700 directory), so only the owner can connect. On
//! Windows it is a named pipe whose security descriptor admits the current user only,
//! under a random name kept in the data directory (so nobody can squat on it in advance).
//! Elsewhere it is a loopback TCP port plus a random token, both in a file only the owner
//! can read; that variant is compiled and tested on Linux too.
//!
//! The desktop app also answers [`Request::Raise`]: a second start for the same user brings
//! the running window forward instead of failing on the locked database.

use std::io;
use std::sync::Arc;

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

/// What the desktop app does when another start of it asks for its window.
#[derive(Clone)]
pub struct RaiseHook(Arc<dyn Fn() + Send + Sync>);

impl RaiseHook {
    pub fn new(raise: impl Fn() + Send + Sync + 'static) -> Self {
        RaiseHook(Arc::new(raise))
    }
}

impl std::fmt::Debug for RaiseHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaiseHook(..)")
    }
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

async fn serve_connection<S>(
    stream: S,
    node: NodeHandle,
    token: Option<String>,
    raise: Option<RaiseHook>,
) where
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
            Ok(Request::Raise) => match &raise {
                Some(hook) => {
                    (hook.0)();
                    Reply {
                        ok: Some(Response::Done),
                        error: None,
                    }
                }
                None => Reply {
                    ok: None,
                    error: Some(super::AppError::NoWindow.to_string()),
                },
            },
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

/// Serve the control socket for `node` until the returned server is dropped. `raise`:
/// the desktop app's answer to [`Request::Raise`]; a headless node has none.
pub async fn serve(
    dir: &DataDir,
    node: NodeHandle,
    raise: Option<RaiseHook>,
) -> Result<ControlServer, ControlError> {
    #[cfg(unix)]
    {
        serve_unix(dir, node, raise).await
    }
    #[cfg(windows)]
    {
        serve_pipe(dir, node, raise).await
    }
    #[cfg(not(any(unix, windows)))]
    {
        serve_tcp(dir, node, raise).await
    }
}

/// Ask the node running for `dir`. `Ok(None)`: no node runs (the caller may then open the
/// store itself).
pub async fn call(dir: &DataDir, request: &Request) -> Result<Option<Response>, ControlError> {
    #[cfg(unix)]
    {
        call_unix(dir, request).await
    }
    #[cfg(windows)]
    {
        call_pipe(dir, request).await
    }
    #[cfg(not(any(unix, windows)))]
    {
        call_tcp(dir, request).await
    }
}

#[cfg(unix)]
async fn serve_unix(
    dir: &DataDir,
    node: NodeHandle,
    raise: Option<RaiseHook>,
) -> Result<ControlServer, ControlError> {
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
            tokio::spawn(serve_connection(stream, node.clone(), None, raise.clone()));
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

/// A client for the pipe `name` if a node of the current user serves it, or `None` (no
/// such pipe, or a name that is not ours, or a server run by someone else).
#[cfg(windows)]
async fn open_pipe(
    name: &str,
) -> io::Result<Option<tokio::net::windows::named_pipe::NamedPipeClient>> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Foundation::ERROR_PIPE_BUSY;
    let ours = name
        .strip_prefix(PIPE_PREFIX)
        .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ours {
        return Ok(None);
    }
    // All instances busy: another client is being served; it takes milliseconds.
    for _ in 0..100 {
        match tokio::net::windows::named_pipe::ClientOptions::new().open(name) {
            Ok(client) => {
                let handle = client.as_raw_handle();
                return match crate::platform::pipe_server_is_current_user(handle) {
                    Ok(true) => Ok(Some(client)),
                    Ok(false) | Err(_) => {
                        tracing::warn!("control pipe {name} is served by another user; ignored");
                        Ok(None)
                    }
                };
            }
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "the control pipe stayed busy for 2 s",
    ))
}

#[cfg(windows)]
const PIPE_PREFIX: &str = r"\\.\pipe\flurfunk-";

#[cfg(windows)]
async fn serve_pipe(
    dir: &DataDir,
    node: NodeHandle,
    raise: Option<RaiseHook>,
) -> Result<ControlServer, ControlError> {
    use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
    let path = dir.control_pipe();
    if let Ok(name) = std::fs::read_to_string(&path)
        && let Ok(Some(_)) = open_pipe(name.trim()).await
    {
        return Err(ControlError::AlreadyRunning);
    }
    let mut raw = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    let name = format!("{PIPE_PREFIX}{}", hex::encode(raw));
    let security = Arc::new(crate::platform::UserOnlySecurity::new()?);
    let create = {
        let name = name.clone();
        move |first: bool| -> io::Result<NamedPipeServer> {
            let mut options = ServerOptions::new();
            options
                .first_pipe_instance(first)
                .reject_remote_clients(true);
            // SAFETY: `security` holds a valid SECURITY_ATTRIBUTES for this call.
            unsafe { options.create_with_security_attributes_raw(&name, security.as_ptr()) }
        }
    };
    let mut server = create(true)?;
    crate::identity::write_private_file(&path, name.as_bytes(), true)?;
    let task = tokio::spawn(async move {
        loop {
            let connected = server.connect().await;
            let next = match create(false) {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!("control pipe: cannot create the next instance: {e}");
                    return;
                }
            };
            let stream = std::mem::replace(&mut server, next);
            if connected.is_ok() {
                tokio::spawn(serve_connection(stream, node.clone(), None, raise.clone()));
            }
        }
    });
    Ok(ControlServer {
        task,
        cleanup: path,
    })
}

#[cfg(windows)]
async fn call_pipe(dir: &DataDir, request: &Request) -> Result<Option<Response>, ControlError> {
    let Ok(name) = std::fs::read_to_string(dir.control_pipe()) else {
        return Ok(None);
    };
    match open_pipe(name.trim()).await? {
        Some(client) => call_over(client, None, request).await.map(Some),
        None => Ok(None),
    }
}

/// Loopback TCP with a token: the control channel where Unix sockets are not available.
#[cfg_attr(any(unix, windows), allow(dead_code))]
pub(crate) async fn serve_tcp(
    dir: &DataDir,
    node: NodeHandle,
    raise: Option<RaiseHook>,
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
            tokio::spawn(serve_connection(
                stream,
                node.clone(),
                Some(token.clone()),
                raise.clone(),
            ));
        }
    });
    Ok(ControlServer {
        task,
        cleanup: path,
    })
}

#[cfg_attr(any(unix, windows), allow(dead_code))]
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
