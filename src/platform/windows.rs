//! Windows: the per-user data folder, DPAPI for key files at rest, the AppUserModelID, a
//! named mutex for the port claim, the log-off notice, an error box for the app without
//! a console, and a user-only security descriptor for the control pipe.

use std::io;

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, HLOCAL, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
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

/// `%LOCALAPPDATA%\Flurfunk` (local, not roaming: a roaming profile on a terminal server
/// must not copy the database and keys around).
pub(super) const DATA_DIR_NAME: &str = "Flurfunk";

/// Next to the installed program (`C:\Program Files\Flurfunk\network.key`): only
/// administrators can write there, unlike ProgramData, where any user may create the
/// folder first.
pub(super) fn machine_network_key_path() -> Option<std::path::PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("network.key")))
}

/// Where the MSI puts the machine's key, found by the OS's Program Files folder, not by
/// where this program runs from: on a locked machine a copy of `flurfunk.exe` in a user's
/// folder, with a key file of the user's beside it, must not count.
pub(super) fn installed_network_key_path() -> Option<std::path::PathBuf> {
    use windows_sys::Win32::System::Com::CoTaskMemFree;
    use windows_sys::Win32::UI::Shell::{FOLDERID_ProgramFiles, SHGetKnownFolderPath};
    let mut path: windows_sys::core::PWSTR = std::ptr::null_mut();
    let hr =
        unsafe { SHGetKnownFolderPath(&FOLDERID_ProgramFiles, 0, std::ptr::null_mut(), &mut path) };
    if hr < 0 || path.is_null() {
        if !path.is_null() {
            unsafe { CoTaskMemFree(path as *const core::ffi::c_void) };
        }
        return None;
    }
    let mut len = 0usize;
    // SAFETY: the OS returned a NUL-terminated UTF-16 string, freed below.
    while unsafe { *path.add(len) } != 0 {
        len += 1;
    }
    let folder = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(path, len) });
    unsafe { CoTaskMemFree(path as *const core::ffi::c_void) };
    Some(
        std::path::PathBuf::from(folder)
            .join("Flurfunk")
            .join("network.key"),
    )
}

/// The program's folder is writable by administrators only (the installer's ACLs).
pub(super) fn machine_file_trusted(_path: &std::path::Path) -> bool {
    true
}

pub(super) fn protect(plain: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = super::PROTECTED_MAGIC.to_vec();
    out.extend_from_slice(&dpapi_protect(plain)?);
    Ok(out)
}

/// What holds a port claim: a named mutex in the global namespace (across
/// terminal-server sessions).
pub(super) type PortHold = OwnedHandle;

pub(super) fn claim_port(port: u16) -> Option<PortHold> {
    claim_mutex(&format!("Global\\flurfunk-tcp-{port}"))
}

/// The group-policy values under `HKLM\Software\Policies\Flurfunk` (the ADMX template
/// in packaging/windows/admx writes them). A value of the wrong type is an error.
pub(super) fn machine_settings() -> Result<Option<super::MachineSource>, (String, String)> {
    use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_SUCCESS};
    use windows_sys::Win32::System::Registry::{
        HKEY, HKEY_LOCAL_MACHINE, KEY_READ, RRF_RT_REG_DWORD, RRF_RT_REG_SZ, RegCloseKey,
        RegGetValueW, RegOpenKeyExW,
    };
    const KEY: &str = r"Software\Policies\Flurfunk";
    let source_name = format!(r"HKLM\{KEY}");
    let mut key: HKEY = std::ptr::null_mut();
    let name = wide(KEY);
    let rc = unsafe { RegOpenKeyExW(HKEY_LOCAL_MACHINE, name.as_ptr(), 0, KEY_READ, &mut key) };
    if rc == ERROR_FILE_NOT_FOUND {
        return Ok(None);
    }
    if rc != ERROR_SUCCESS {
        return Err((source_name, format!("cannot open the key (error {rc})")));
    }
    struct Key(HKEY);
    impl Drop for Key {
        fn drop(&mut self) {
            unsafe { RegCloseKey(self.0) };
        }
    }
    let key = Key(key);
    let dword = |value: &str| -> Result<Option<u32>, String> {
        let mut data: u32 = 0;
        let mut size = 4u32;
        let name = wide(value);
        let rc = unsafe {
            RegGetValueW(
                key.0,
                std::ptr::null(),
                name.as_ptr(),
                RRF_RT_REG_DWORD,
                std::ptr::null_mut(),
                (&mut data as *mut u32).cast(),
                &mut size,
            )
        };
        match rc {
            ERROR_SUCCESS => Ok(Some(data)),
            ERROR_FILE_NOT_FOUND => Ok(None),
            e => Err(format!("{value}: not a DWORD value (error {e})")),
        }
    };
    let string = |value: &str| -> Result<Option<String>, String> {
        let name = wide(value);
        // A REG_EXPAND_SZ is expanded by RegGetValueW and then counts as REG_SZ (asking
        // for REG_EXPAND_SZ itself is allowed only without expanding: error 87).
        let flags = RRF_RT_REG_SZ;
        let mut size = 0u32;
        let rc = unsafe {
            RegGetValueW(
                key.0,
                std::ptr::null(),
                name.as_ptr(),
                flags,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut size,
            )
        };
        match rc {
            ERROR_SUCCESS => {}
            ERROR_FILE_NOT_FOUND => return Ok(None),
            e => return Err(format!("{value}: not a text value (error {e})")),
        }
        if size > 64 * 1024 {
            return Err(format!("{value}: longer than 64 KiB"));
        }
        let mut buf = vec![0u16; (size as usize).div_ceil(2) + 1];
        let mut size = (buf.len() * 2) as u32;
        let rc = unsafe {
            RegGetValueW(
                key.0,
                std::ptr::null(),
                name.as_ptr(),
                flags,
                std::ptr::null_mut(),
                buf.as_mut_ptr().cast(),
                &mut size,
            )
        };
        if rc != ERROR_SUCCESS {
            return Err(format!("{value}: cannot be read (error {rc})"));
        }
        let len = buf.iter().position(|c| *c == 0).unwrap_or(buf.len());
        String::from_utf16(&buf[..len])
            .map(Some)
            .map_err(|_| format!("{value}: not valid text"))
    };
    let read = || -> Result<crate::app::machine_policy::MachineSettings, String> {
        use crate::app::machine_policy::registry;
        // On or off: 1 or 0, anything else is an error (as a wrong value in the file).
        let flag = |name: &str| -> Result<Option<bool>, String> {
            match dword(name)? {
                None => Ok(None),
                Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                Some(n) => Err(format!("{name}: {n} (use 0 or 1)")),
            }
        };
        Ok(crate::app::machine_policy::MachineSettings {
            lock_network: flag(registry::LOCK_NETWORK)?,
            read_receipts: flag(registry::READ_RECEIPTS)?,
            presence: match dword(registry::PRESENCE)? {
                None => None,
                Some(0) => Some("full".into()),
                Some(1) => Some("online_only".into()),
                Some(2) => Some("hidden".into()),
                Some(n) => Some(format!("value {n}")),
            },
            max_file_mb: dword(registry::MAX_FILE_MB)?.map(u64::from),
            auto_download_mb: dword(registry::AUTO_DOWNLOAD_MB)?.map(u64::from),
            delete_for_everyone: flag(registry::DELETE_FOR_EVERYONE)?,
            edit_window_minutes: dword(registry::EDIT_WINDOW_MINUTES)?.map(u64::from),
            delete_window_minutes: dword(registry::DELETE_WINDOW_MINUTES)?.map(u64::from),
            data_dir: string(registry::DATA_FOLDER)?,
            autostart: flag(registry::AUTOSTART)?,
            send_files: flag(registry::SEND_FILES)?,
            reactions: flag(registry::REACTIONS)?,
            edit_messages: flag(registry::EDIT_MESSAGES)?,
            notification_preview: flag(registry::NOTIFICATION_PREVIEW)?,
        })
    };
    match read() {
        Ok(settings) => Ok(Some(super::MachineSource::Values {
            source_name,
            settings,
        })),
        Err(reason) => Err((source_name, reason)),
    }
}

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

fn dpapi_protect(plain: &[u8]) -> io::Result<Vec<u8>> {
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
    let instance =
        unsafe { windows_sys::Win32::System::LibraryLoader::GetModuleHandleW(std::ptr::null()) };
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
fn claim_mutex(name: &str) -> Option<OwnedHandle> {
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
