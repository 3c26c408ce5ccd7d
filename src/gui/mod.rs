//! The desktop app (egui/eframe): a thin view over a [`crate::node::NodeHandle`].
//!
//! State lives in plain structs ([`FlurfunkApp`], [`chat::ChatState`]), drawing in `*_ui`
//! functions, and every node call runs on the tokio runtime through the `bridge`; nothing
//! is awaited inside a frame, and the window repaints only when an update arrives.
//!
//! ```text
//! app.rs      state, updates from the node, reload coalescing, title, notifications
//! bridge.rs   tasks on the runtime -> bounded channel -> App::logic
//! wizard.rs   first start: name, network (join / create / demo)
//! screen.rs   main screen: banners, status bar, panels
//! chat_list.rs the chat list and the search box
//! chat.rs     conversation (virtualised rows), composer, ticks
//! chat_prefs.rs  pin, mute, mark as unread (kept in app.json)
//! actions.rs  reply, edit, delete for everyone, reactions, @mentions
//! search.rs   messages found across all chats (the box above the chat list)
//! dialogs.rs  people, new group, group info, safety number + QR, settings
//! emoji.rs    emoji in colour (Twemoji pictures inline with the text)
//! i18n.rs     every string in German and English
//! settings.rs app.json: language, notifications, contact book, verified keys
//! ```

mod actions;
mod admin;
mod app;
mod bridge;
mod chat;
mod chat_list;
mod chat_prefs;
mod dialogs;
mod emoji;
mod files;
pub mod i18n;
mod notify;
mod screen;
mod search;
pub mod settings;
mod style;
mod wizard;

use std::time::Instant;

pub use app::{FlurfunkApp, GuiConfig, PAGE_MESSAGES, Phase};
pub use chat::ChatState;

#[derive(Debug, thiserror::Error)]
pub enum GuiError {
    #[error(
        "no graphical display found (DISPLAY and WAYLAND_DISPLAY are unset); \
         on a server run the headless node instead: flurfunk node"
    )]
    NoDisplay,
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error(
        "cannot open the window: {0} (another graphics backend may work: set \
         WGPU_BACKEND=gl or WGPU_BACKEND=vulkan)"
    )]
    Window(String),
    #[error("{0}")]
    OtherInstance(String),
}

/// What a start of the app found.
#[derive(Debug, PartialEq, Eq)]
pub enum Started {
    /// The window was open until the user closed it.
    Closed,
    /// The app already ran for this data directory; its window was brought forward.
    Raised,
}

/// Whether a window can be opened at all. Only X11/Wayland systems can lack a display;
/// Windows and macOS always have one for a logged-in user.
pub fn display_available() -> bool {
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
        set("DISPLAY") || set("WAYLAND_DISPLAY")
    }
    #[cfg(not(all(unix, not(target_os = "macos"))))]
    {
        true
    }
}

/// For the start-up benchmark: print when the first frame and the first frame with the
/// chat list were drawn (milliseconds since `since`), then close the window.
#[derive(Clone, Copy, Debug)]
pub struct StartupProbe {
    pub since: Instant,
}

struct ProbedApp {
    app: FlurfunkApp,
    probe: Option<StartupProbe>,
    first_frame: bool,
}

impl eframe::App for ProbedApp {
    fn logic(&mut self, ctx: &egui::Context, frame: &mut eframe::Frame) {
        eframe::App::logic(&mut self.app, ctx, frame);
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        eframe::App::ui(&mut self.app, ui, frame);
        let Some(probe) = self.probe else { return };
        let ms = probe.since.elapsed().as_secs_f64() * 1000.0;
        if !self.first_frame {
            self.first_frame = true;
            println!("first_frame_ms {ms:.1}");
        }
        if self.app.chat_shown() {
            println!("chat_shown_ms {ms:.1}");
            self.probe = None;
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }

    fn on_exit(&mut self) {
        eframe::App::on_exit(&mut self.app);
    }
}

/// The window's icon (also the installers' icon).
const ICON_PNG: &[u8] = include_bytes!("../../packaging/icons/flurfunk-256.png");

/// Open the window and run until it is closed, or bring forward the window of the app
/// that already runs for this data directory (a second start on a terminal server, a
/// double click on the shortcut).
pub fn run(config: GuiConfig, probe: Option<StartupProbe>) -> Result<Started, GuiError> {
    if !display_available() {
        return Err(GuiError::NoDisplay);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("flurfunk-node")
        .enable_all()
        .build()
        .map_err(GuiError::Runtime)?;
    let asked = runtime.block_on(crate::app::control::call(
        &config.dir,
        &crate::app::Request::Raise,
    ));
    match asked {
        Ok(Some(_)) => return Ok(Started::Raised),
        Err(crate::app::control::ControlError::Remote(e)) => {
            return Err(GuiError::OtherInstance(e));
        }
        // Nobody answers: this is the only start (a stale socket file is replaced later).
        Ok(None) | Err(_) => {}
    }
    crate::platform::set_app_user_model_id();
    let handle = runtime.handle().clone();
    crate::platform::on_session_end({
        let runtime = handle.clone();
        move || app::stop_for_session_end(&runtime)
    });
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("Flurfunk")
        .with_app_id("flurfunk")
        .with_inner_size([1040.0, 700.0])
        .with_min_inner_size([640.0, 420.0]);
    match eframe::icon_data::from_png_bytes(ICON_PNG) {
        Ok(icon) => viewport = viewport.with_icon(icon),
        Err(e) => tracing::warn!("window icon: {e}"),
    }
    let options = eframe::NativeOptions {
        viewport,
        ..Default::default()
    };
    let result = eframe::run_native(
        "Flurfunk",
        options,
        Box::new(move |cc| {
            let app = FlurfunkApp::new(&cc.egui_ctx, handle, config);
            Ok(Box::new(ProbedApp {
                app,
                probe,
                first_frame: false,
            }))
        }),
    );
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result
        .map(|()| Started::Closed)
        .map_err(|e| GuiError::Window(e.to_string()))
}
