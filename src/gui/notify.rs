//! Desktop notifications through the OS (notify-rust: D-Bus on Linux, the notification
//! centre on Windows and macOS). Shown from a blocking task: the D-Bus call may take a
//! while and must never stall a frame. No notification daemon is not an error worth a
//! dialog; it is logged.

pub fn show(runtime: &tokio::runtime::Handle, summary: String, body: String) {
    // A long message is cut: notifications are a hint to look, not a reader.
    let body: String = body.chars().take(200).collect();
    runtime.spawn_blocking(move || {
        let mut notification = notify_rust::Notification::new();
        notification
            .appname("Flurfunk")
            .summary(&summary)
            .body(&body);
        // Windows: under Flurfunk's own name and icon (the id the installer's Start-menu
        // shortcut registers), not PowerShell's.
        #[cfg(windows)]
        notification.app_id(crate::platform::APP_USER_MODEL_ID);
        if let Err(e) = notification.show() {
            tracing::debug!("desktop notification not shown: {e}");
        }
    });
}
