//! Desktop notifications through the OS (notify-rust: D-Bus on Linux, the notification
//! centre on Windows and macOS). Shown from a blocking task: the D-Bus call may take a
//! while and must never stall a frame. No notification daemon is not an error worth a
//! dialog; it is logged.

pub fn show(runtime: &tokio::runtime::Handle, summary: String, body: String) {
    // A long message is cut: notifications are a hint to look, not a reader.
    let body: String = body.chars().take(200).collect();
    runtime.spawn_blocking(move || {
        if let Err(e) = notify_rust::Notification::new()
            .appname("Flurfunk")
            .summary(&summary)
            .body(&body)
            .show()
        {
            tracing::debug!("desktop notification not shown: {e}");
        }
    });
}
