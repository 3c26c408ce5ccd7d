//! What differs between operating systems, in one place: where the data lives, how key
//! files are protected at rest, which machine-wide files an administrator may provide, and
//! the Windows pieces (DPAPI, the AppUserModelID, a user-only security descriptor for the
//! control pipe).
//!
//! Must never decide anything about the protocol; everything here is about the machine.

use std::io;
use std::path::PathBuf;

/// Windows: the id under which the taskbar groups Flurfunk's window and toasts appear.
/// The installer's Start-menu shortcut carries the same id (packaging/windows/flurfunk.wxs).
pub const APP_USER_MODEL_ID: &str = "Flurfunk.Messenger";

/// Key files protected with DPAPI start with this line; plain key files never do.
const PROTECTED_MAGIC: &[u8] = b"FLURFUNK-DPAPI-1\n";

/// The per-user data directory of this OS: Windows `%LOCALAPPDATA%\Flurfunk` (local, not
/// roaming: a roaming profile on a terminal server must not copy the database and keys
/// around), Linux `~/.local/share/flurfunk`.
pub fn user_data_dir() -> Option<PathBuf> {
    #[cfg(windows)]
    {
        dirs::data_local_dir().map(|d| d.join("Flurfunk"))
    }
    #[cfg(not(windows))]
    {
        dirs::data_local_dir().map(|d| d.join("flurfunk"))
    }
}

/// Where the network key the administrator installed for every user of this machine lives
/// (the MSI's `NETWORKKEYFILE`, `flurfunk admin install-network-key`): Windows: next to the
/// installed program (`C:\Program Files\Flurfunk\network.key`: only administrators can
/// write there, unlike ProgramData, where any user may create the folder first); Linux:
/// `/etc/flurfunk/network.key`.
pub fn machine_network_key_path() -> Option<PathBuf> {
    #[cfg(windows)]
    {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("network.key")))
    }
    #[cfg(not(windows))]
    {
        Some(PathBuf::from("/etc/flurfunk/network.key"))
    }
}

/// The machine's network key file if there is one that only administrators could have
/// put there. Linux: the file and its folder owned by root and not writable by group or
/// others; a key anyone could have planted is ignored (with a warning), since it would
/// silently move every user of the machine into someone else's network.
pub fn machine_network_key() -> Option<PathBuf> {
    let path = machine_network_key_path()?;
    if !path.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let trusted = |p: &std::path::Path| {
            std::fs::metadata(p).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o022 == 0)
        };
        let dir_trusted = path.parent().is_none_or(trusted);
        if !(trusted(&path) && dir_trusted) {
            tracing::warn!(
                "ignoring {}: it must be owned by root and writable by root only",
                path.display()
            );
            return None;
        }
    }
    Some(path)
}

/// Protect secret file contents at rest for the current user. Windows: DPAPI (the file
/// is useless to another account or machine). Elsewhere the file's mode (0600) is the
/// protection and the bytes are returned as they are.
pub fn protect(plain: &[u8]) -> io::Result<Vec<u8>> {
    #[cfg(windows)]
    {
        let mut out = PROTECTED_MAGIC.to_vec();
        out.extend_from_slice(&windows::dpapi_protect(plain)?);
        Ok(out)
    }
    #[cfg(not(windows))]
    {
        Ok(plain.to_vec())
    }
}

/// The inverse of [`protect`]; plain contents (a key file written elsewhere) pass through.
pub fn unprotect(stored: &[u8]) -> io::Result<zeroize::Zeroizing<Vec<u8>>> {
    match stored.strip_prefix(PROTECTED_MAGIC) {
        None => Ok(zeroize::Zeroizing::new(stored.to_vec())),
        Some(_blob) => {
            #[cfg(windows)]
            {
                windows::dpapi_unprotect(_blob).map(zeroize::Zeroizing::new)
            }
            #[cfg(not(windows))]
            {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "this key file is protected with Windows DPAPI and can only be read by \
                     the Windows account that wrote it",
                ))
            }
        }
    }
}

/// Windows: mark this process as Flurfunk for the taskbar and for notifications. Nothing
/// elsewhere.
pub fn set_app_user_model_id() {
    #[cfg(windows)]
    windows::set_app_user_model_id();
}

/// A machine-wide claim on a TCP port number among Flurfunk nodes, held while the node
/// runs and released when the process ends, however it ends. Two users on a terminal
/// server who log in at the same moment must not both take the default port: the
/// listening socket allows port sharing (libp2p sets SO_REUSEPORT / SO_REUSEADDR), and a
/// shared port hands each incoming connection to either node at random.
pub struct PortClaim {
    #[cfg(target_os = "linux")]
    _socket: std::os::unix::net::UnixListener,
    #[cfg(windows)]
    _mutex: windows::OwnedHandle,
}

/// Claim `port` for this process, or `None` if another Flurfunk node on this machine holds
/// it. Linux: an abstract Unix socket name (per network namespace, like the port itself);
/// Windows: a named mutex in the global namespace (across terminal-server sessions);
/// elsewhere no claim is needed beyond the bind itself.
pub fn claim_port(port: u16) -> Option<PortClaim> {
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("flurfunk-tcp-{port}");
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?;
        std::os::unix::net::UnixListener::bind_addr(&addr)
            .ok()
            .map(|socket| PortClaim { _socket: socket })
    }
    #[cfg(windows)]
    {
        windows::claim_mutex(&format!("Global\\flurfunk-tcp-{port}"))
            .map(|mutex| PortClaim { _mutex: mutex })
    }
    #[cfg(not(any(target_os = "linux", windows)))]
    {
        let _ = port;
        Some(PortClaim {})
    }
}

/// Windows: call `on_end` when the user logs off or the system shuts down, before Windows
/// ends the process. The only notice a program that loads user32 gets is WM_ENDSESSION to
/// its top-level windows (no console event), so a hidden top-level window on a thread of
/// its own listens for it. `on_end` may block for a few seconds to stop the node cleanly.
/// Once per process; elsewhere nothing (systemd and desktops send SIGTERM).
pub fn on_session_end(on_end: impl Fn() + Send + Sync + 'static) {
    #[cfg(windows)]
    windows::on_session_end(Box::new(on_end));
    #[cfg(not(windows))]
    drop(on_end);
}

/// Windows: the desktop app is started without a console (by `flurfunk-app.exe`), so an
/// error that ends it is also shown in a message box; a console program prints only.
pub fn show_error_without_console(message: &str) {
    #[cfg(windows)]
    windows::message_box_without_console(message);
    #[cfg(not(windows))]
    let _ = message;
}

#[cfg(windows)]
pub(crate) use windows::{UserOnlySecurity, pipe_server_is_current_user};

#[cfg(windows)]
mod windows {
    use std::io;

    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, HLOCAL, LocalFree};
    use windows_sys::Win32::Security::Authorization::{
        ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW,
        SDDL_REVISION_1,
    };
    use windows_sys::Win32::Security::Cryptography::{
        CRYPT_INTEGER_BLOB, CRYPTPROTECT_UI_FORBIDDEN, CryptProtectData, CryptUnprotectData,
    };
    use windows_sys::Win32::Security::{
        GetTokenInformation, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES, TOKEN_QUERY, TOKEN_USER,
        TokenUser,
    };
    use windows_sys::Win32::System::Pipes::GetNamedPipeServerProcessId;
    use windows_sys::Win32::System::Threading::{
        GetCurrentProcess, OpenProcess, OpenProcessToken, PROCESS_QUERY_LIMITED_INFORMATION,
    };

    fn wide(s: &str) -> Vec<u16> {
        s.encode_utf16().chain(std::iter::once(0)).collect()
    }

    fn blob(bytes: &[u8]) -> io::Result<CRYPT_INTEGER_BLOB> {
        Ok(CRYPT_INTEGER_BLOB {
            cbData: u32::try_from(bytes.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too large"))?,
            pbData: bytes.as_ptr() as *mut u8,
        })
    }

    /// Copies a blob that DPAPI allocated and frees it.
    fn take(out: CRYPT_INTEGER_BLOB) -> Vec<u8> {
        if out.pbData.is_null() {
            return Vec::new();
        }
        // SAFETY: DPAPI returned `cbData` bytes at `pbData`, allocated with LocalAlloc.
        let bytes = unsafe { std::slice::from_raw_parts(out.pbData, out.cbData as usize) }.to_vec();
        // SAFETY: the same block, wiped (it may hold a secret key), then freed once.
        unsafe {
            std::ptr::write_bytes(out.pbData, 0, out.cbData as usize);
            LocalFree(out.pbData as HLOCAL);
        }
        bytes
    }

    pub(super) fn dpapi_protect(plain: &[u8]) -> io::Result<Vec<u8>> {
        let input = blob(plain)?;
        let description = wide("Flurfunk key");
        let mut out = CRYPT_INTEGER_BLOB {
            cbData: 0,
            pbData: std::ptr::null_mut(),
        };
        // SAFETY: all pointers are valid for the call; `out` is written by DPAPI.
        let ok = unsafe {
            CryptProtectData(
                &input,
                description.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                CRYPTPROTECT_UI_FORBIDDEN,
                &mut out,
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(take(out))
    }

    pub(super) fn dpapi_unprotect(stored: &[u8]) -> io::Result<Vec<u8>> {
        let input = blob(stored)?;
        let mut out = CRYPT_INTEGER_BLOB {
            cbData: 0,
            pbData: std::ptr::null_mut(),
        };
        // SAFETY: as above.
        let ok = unsafe {
            CryptUnprotectData(
                &input,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                CRYPTPROTECT_UI_FORBIDDEN,
                &mut out,
            )
        };
        if ok == 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "this key file was protected for another Windows account or machine \
                     ({e})"
                ),
            ));
        }
        Ok(take(out))
    }

    pub(super) fn set_app_user_model_id() {
        let id = wide(super::APP_USER_MODEL_ID);
        // SAFETY: a valid NUL-terminated wide string.
        let hr = unsafe {
            windows_sys::Win32::UI::Shell::SetCurrentProcessExplicitAppUserModelID(id.as_ptr())
        };
        if hr < 0 {
            tracing::debug!("SetCurrentProcessExplicitAppUserModelID failed: {hr:#x}");
        }
    }

    pub(super) fn message_box_without_console(message: &str) {
        use windows_sys::Win32::UI::WindowsAndMessaging::{MB_ICONERROR, MB_OK, MessageBoxW};
        // SAFETY: plain query.
        if !unsafe { windows_sys::Win32::System::Console::GetConsoleWindow() }.is_null() {
            return;
        }
        let text = wide(message);
        let title = wide("Flurfunk");
        // SAFETY: NUL-terminated wide strings that outlive the call.
        unsafe {
            MessageBoxW(
                std::ptr::null_mut(),
                text.as_ptr(),
                title.as_ptr(),
                MB_OK | MB_ICONERROR,
            )
        };
    }

    type SessionEnd = Box<dyn Fn() + Send + Sync>;
    static SESSION_END: std::sync::OnceLock<SessionEnd> = std::sync::OnceLock::new();

    pub(super) fn on_session_end(on_end: SessionEnd) {
        if SESSION_END.set(on_end).is_err() {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("flurfunk-session".into())
            .spawn(session_window);
        if let Err(e) = spawned {
            tracing::warn!("no log-off notice: {e}");
        }
    }

    /// A hidden top-level window (message-only windows get no broadcasts) and its loop.
    fn session_window() {
        use windows_sys::Win32::UI::WindowsAndMessaging::{
            CreateWindowExW, DispatchMessageW, GetMessageW, MSG, RegisterClassW, TranslateMessage,
            WNDCLASSW,
        };
        let class = wide("FlurfunkSessionEnd");
        // SAFETY: NULL asks for this program's own module.
        let instance = unsafe {
            windows_sys::Win32::System::LibraryLoader::GetModuleHandleW(std::ptr::null())
        };
        let window_class = WNDCLASSW {
            lpfnWndProc: Some(session_proc),
            hInstance: instance,
            lpszClassName: class.as_ptr(),
            ..Default::default()
        };
        // SAFETY: the class struct and its name outlive the window, which lives as long
        // as this thread.
        if unsafe { RegisterClassW(&window_class) } == 0 {
            tracing::warn!("no log-off notice: {}", io::Error::last_os_error());
            return;
        }
        // SAFETY: as above; no parent (top-level), never shown.
        let window = unsafe {
            CreateWindowExW(
                0,
                class.as_ptr(),
                class.as_ptr(),
                0,
                0,
                0,
                0,
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                instance,
                std::ptr::null(),
            )
        };
        if window.is_null() {
            tracing::warn!("no log-off notice: {}", io::Error::last_os_error());
            return;
        }
        let mut message = MSG::default();
        // SAFETY: the standard message loop of this thread's window.
        while unsafe { GetMessageW(&mut message, std::ptr::null_mut(), 0, 0) } > 0 {
            unsafe {
                TranslateMessage(&message);
                DispatchMessageW(&message);
            }
        }
    }

    unsafe extern "system" fn session_proc(
        window: windows_sys::Win32::Foundation::HWND,
        message: u32,
        wparam: windows_sys::Win32::Foundation::WPARAM,
        lparam: windows_sys::Win32::Foundation::LPARAM,
    ) -> windows_sys::Win32::Foundation::LRESULT {
        use windows_sys::Win32::UI::WindowsAndMessaging::{
            DefWindowProcW, WM_ENDSESSION, WM_QUERYENDSESSION,
        };
        match message {
            // Never hold up a log-off: everything acknowledged is on disk already.
            WM_QUERYENDSESSION => 1,
            WM_ENDSESSION => {
                if wparam != 0
                    && let Some(on_end) = SESSION_END.get()
                {
                    on_end();
                }
                0
            }
            // SAFETY: the default handling for everything else.
            _ => unsafe { DefWindowProcW(window, message, wparam, lparam) },
        }
    }

    /// A handle closed when dropped.
    pub(crate) struct OwnedHandle(HANDLE);

    // SAFETY: a kernel handle may be used and closed from any thread.
    unsafe impl Send for OwnedHandle {}
    unsafe impl Sync for OwnedHandle {}

    impl Drop for OwnedHandle {
        fn drop(&mut self) {
            // SAFETY: owned, closed once.
            unsafe { CloseHandle(self.0) };
        }
    }

    /// Create the named mutex, or `None` if it exists already (another process holds it).
    pub(super) fn claim_mutex(name: &str) -> Option<OwnedHandle> {
        use windows_sys::Win32::Foundation::{ERROR_ALREADY_EXISTS, GetLastError};
        let name = wide(name);
        // SAFETY: a NUL-terminated wide name; default security.
        let handle = unsafe {
            windows_sys::Win32::System::Threading::CreateMutexW(std::ptr::null(), 0, name.as_ptr())
        };
        if handle.is_null() {
            return None;
        }
        let handle = OwnedHandle(handle);
        // SAFETY: plain query of this thread's last error, right after the call.
        if unsafe { GetLastError() } == ERROR_ALREADY_EXISTS {
            return None;
        }
        Some(handle)
    }

    /// The current user's SID as text ("S-1-5-21-...").
    fn current_user_sid() -> io::Result<String> {
        // SAFETY: the pseudo handle of this process needs no closing.
        process_user_sid(unsafe { GetCurrentProcess() })
    }

    /// Whether the server end of a connected pipe runs as the current user: a pipe name
    /// left behind by a node that died could be taken over by another user's process.
    pub(crate) fn pipe_server_is_current_user(pipe: HANDLE) -> io::Result<bool> {
        let mut pid = 0u32;
        // SAFETY: `pipe` is a connected client handle; `pid` is written on success.
        if unsafe { GetNamedPipeServerProcessId(pipe, &mut pid) } == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: plain call; the handle is closed below.
        let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
        if process.is_null() {
            return Err(io::Error::last_os_error());
        }
        let sid = process_user_sid(process);
        // SAFETY: opened above, closed once.
        unsafe { CloseHandle(process) };
        Ok(sid? == current_user_sid()?)
    }

    /// The SID of the user a process runs as, as text.
    fn process_user_sid(process: HANDLE) -> io::Result<String> {
        let mut token: HANDLE = std::ptr::null_mut();
        // SAFETY: a process handle with query rights; `token` is written on success.
        if unsafe { OpenProcessToken(process, TOKEN_QUERY, &mut token) } == 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buffer = vec![0u64; 64]; // 512 bytes, aligned: TOKEN_USER + SID fit
        let mut needed = 0u32;
        // SAFETY: `buffer` is writable for its length in bytes.
        let ok = unsafe {
            GetTokenInformation(
                token,
                TokenUser,
                buffer.as_mut_ptr().cast(),
                (buffer.len() * 8) as u32,
                &mut needed,
            )
        };
        // SAFETY: opened above, closed once.
        unsafe { CloseHandle(token) };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: GetTokenInformation wrote a TOKEN_USER at the start of the buffer.
        let sid = unsafe { (*(buffer.as_ptr() as *const TOKEN_USER)).User.Sid };
        let mut text: windows_sys::core::PWSTR = std::ptr::null_mut();
        // SAFETY: `sid` points into `buffer`, which lives until the end of this function.
        if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a NUL-terminated wide string allocated with LocalAlloc.
        let len = (0..).take_while(|&i| unsafe { *text.add(i) } != 0).count();
        let out = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, len) });
        // SAFETY: allocated by ConvertSidToStringSidW, freed once.
        unsafe { LocalFree(text as HLOCAL) };
        Ok(out)
    }

    /// Security attributes that let only the current user (and nobody else, not even
    /// other administrators' processes by default) open an object: the control pipe.
    pub(crate) struct UserOnlySecurity {
        descriptor: PSECURITY_DESCRIPTOR,
        attributes: SECURITY_ATTRIBUTES,
    }

    // SAFETY: the descriptor is an immutable LocalAlloc'd block owned by this value.
    unsafe impl Send for UserOnlySecurity {}
    unsafe impl Sync for UserOnlySecurity {}

    impl UserOnlySecurity {
        pub(crate) fn new() -> io::Result<Self> {
            let sddl = wide(&format!("D:P(A;;GA;;;{})", current_user_sid()?));
            let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
            // SAFETY: a valid SDDL string; `descriptor` is written on success.
            let ok = unsafe {
                ConvertStringSecurityDescriptorToSecurityDescriptorW(
                    sddl.as_ptr(),
                    SDDL_REVISION_1,
                    &mut descriptor,
                    std::ptr::null_mut(),
                )
            };
            if ok == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(UserOnlySecurity {
                descriptor,
                attributes: SECURITY_ATTRIBUTES {
                    nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
                    lpSecurityDescriptor: descriptor,
                    bInheritHandle: 0,
                },
            })
        }

        /// For `CreateNamedPipeW` (via tokio's `create_with_security_attributes_raw`).
        pub(crate) fn as_ptr(&self) -> *mut core::ffi::c_void {
            &self.attributes as *const SECURITY_ATTRIBUTES as *mut core::ffi::c_void
        }
    }

    impl Drop for UserOnlySecurity {
        fn drop(&mut self) {
            // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
            unsafe { LocalFree(self.descriptor as HLOCAL) };
        }
    }
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
