//! Files and pictures in the conversation: a picture in its bubble (its preview at once,
//! the file itself once here), a file as a card, progress while either moves, the picture
//! viewer, opening a file with its program (a warning first for programs and scripts),
//! and a picture pasted from the clipboard.
//!
//! Pictures are decoded off the UI thread, within the bounds of `files::picture`, and only
//! as large as they are shown: egui keeps every pixel of a texture, so bubbles share a
//! budget and the least recently shown picture is dropped first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{RichText, Sense, vec2};

use super::app::FlurfunkApp;
use super::bridge::Update;
use super::dialogs::Dialog;
use super::i18n::{Texts, fill};
use crate::node::{DownloadView, FileItem, MessageItem, NodeHandle};
use crate::wire::{ConversationId, EventId};

/// The largest a picture is drawn in a bubble (logical pixels a side).
pub const BUBBLE_PICTURE: f32 = 260.0;
/// Pixels a side decoded for a bubble (twice the drawn size, for sharp screens).
const BUBBLE_DECODE_SIDE: u32 = 520;
/// Pixels a side decoded for the viewer.
const VIEWER_DECODE_SIDE: u32 = 2048;
/// GPU memory the pictures on screen may take together.
const TEXTURE_BUDGET: usize = 64 << 20;
/// How often the progress of files being fetched is asked for.
const PROGRESS_EVERY: Duration = Duration::from_millis(700);
/// A block of ciphertext (what the node counts progress in).
const BLOCK_BYTES: u64 = 16 * 1024;
/// Pictures decoded at once.
static DECODES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
/// A pasted picture's preview is made at most this large (the GPU refuses huge textures).
const PASTE_PREVIEW_SIDE: u32 = 1024;

/// Decoded pictures, by event id (and `<event id>/view` for the viewer).
#[derive(Default)]
pub struct Pictures {
    entries: HashMap<String, Picture>,
    frame: u64,
}

#[derive(Default)]
struct Picture {
    texture: Option<egui::TextureHandle>,
    /// Decoded from the whole file, not from the preview sent with it.
    full: bool,
    loading: bool,
    failed: bool,
    /// The preview sent with it did not decode (it is not tried again).
    preview_failed: bool,
    used: u64,
}

impl Picture {
    fn bytes(&self) -> usize {
        self.texture
            .as_ref()
            .map_or(0, |t| t.size()[0] * t.size()[1] * 4)
    }
}

impl Pictures {
    /// Once a frame: drop the least recently shown pictures over the budget.
    pub fn end_frame(&mut self) {
        self.frame += 1;
        let mut total: usize = self.entries.values().map(Picture::bytes).sum();
        if total <= TEXTURE_BUDGET {
            return;
        }
        let mut by_age: Vec<(u64, String)> = self
            .entries
            .iter()
            .filter(|(_, p)| !p.loading && p.texture.is_some())
            .map(|(k, p)| (p.used, k.clone()))
            .collect();
        by_age.sort();
        for (used, key) in by_age {
            if total <= TEXTURE_BUDGET || used + 1 >= self.frame {
                break;
            }
            if let Some(p) = self.entries.remove(&key) {
                total -= p.bytes();
            }
        }
    }

    /// A decode finished.
    pub fn loaded(&mut self, ctx: &egui::Context, key: String, picture: Result<Decoded, String>) {
        let entry = self.entries.entry(key.clone()).or_default();
        entry.loading = false;
        match picture {
            Ok(d) => {
                let image = egui::ColorImage::from_rgba_unmultiplied(
                    [d.width as usize, d.height as usize],
                    &d.rgba,
                );
                entry.texture = Some(ctx.load_texture(key, image, egui::TextureOptions::LINEAR));
                entry.full = true;
            }
            Err(_) => {
                // The sender's preview is not shown for a file that is no picture.
                entry.failed = true;
                entry.texture = None;
            }
        }
    }

    fn set_loading(&mut self, key: &str) {
        self.entries.entry(key.to_string()).or_default().loading = true;
    }

    /// The picture of `key` now, and whether its whole file should be decoded.
    fn get(
        &mut self,
        ctx: &egui::Context,
        key: &str,
        preview: Option<&[u8]>,
        file_here: bool,
    ) -> (Option<egui::TextureHandle>, bool) {
        let frame = self.frame;
        let entry = self.entries.entry(key.to_string()).or_default();
        entry.used = frame;
        if entry.texture.is_none()
            && !entry.failed
            && !entry.preview_failed
            && let Some(preview) = preview
        {
            match crate::files::picture::decode_thumbnail(preview) {
                Some(rgba) => {
                    let image = egui::ColorImage::from_rgba_unmultiplied(
                        [rgba.width() as usize, rgba.height() as usize],
                        rgba.as_raw(),
                    );
                    entry.texture = Some(ctx.load_texture(
                        format!("{key}/preview"),
                        image,
                        egui::TextureOptions::LINEAR,
                    ));
                }
                None => entry.preview_failed = true,
            }
        }
        let load = file_here && !entry.full && !entry.loading && !entry.failed;
        (entry.texture.clone(), load)
    }

    fn failed(&self, key: &str) -> bool {
        self.entries.get(key).is_some_and(|p| p.failed)
    }

    /// Forget the viewer's large picture (the dialog closed).
    pub fn forget(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

/// A picture decoded off the UI thread.
pub struct Decoded {
    width: u32,
    height: u32,
    rgba: Vec<u8>,
}

/// Progress of the files being fetched, asked of the node while any is on screen.
#[derive(Default)]
pub struct Transfers {
    by_blob: HashMap<String, Transfer>,
    next_poll: Option<Instant>,
    busy: bool,
}

struct Transfer {
    held: u64,
    total: u64,
    waiting: bool,
    /// Bytes a second, smoothed.
    speed: f64,
    seen: Instant,
}

impl Transfers {
    /// The node's answer arrived.
    pub fn update(&mut self, views: Vec<DownloadView>) {
        self.busy = false;
        let now = Instant::now();
        let mut next = HashMap::new();
        for v in views {
            let held = v.blocks_held * BLOCK_BYTES;
            let total = v.blocks * BLOCK_BYTES;
            let speed = match self.by_blob.get(&v.blob) {
                Some(old) => {
                    let secs = now.duration_since(old.seen).as_secs_f64().max(0.05);
                    let now_speed = held.saturating_sub(old.held) as f64 / secs;
                    0.6 * now_speed + 0.4 * old.speed
                }
                None => 0.0,
            };
            next.insert(
                v.blob,
                Transfer {
                    held,
                    total,
                    waiting: v.waiting,
                    speed,
                    seen: now,
                },
            );
        }
        self.by_blob = next;
    }

    pub fn failed_poll(&mut self) {
        self.busy = false;
    }
}

/// The chat list's and a notification's line for a message with a file: "📷 Foto",
/// "📄 Antrag.pdf", or the icon and the text sent with it.
pub fn preview_line(file: &FileItem, caption: &str, t: &Texts) -> String {
    let picture = is_picture(file);
    let icon = if picture {
        "📷"
    } else {
        icon_for(&file.mime)
    };
    if !caption.is_empty() {
        format!("{icon} {caption}")
    } else if picture {
        format!("{icon} {}", t.file_photo)
    } else {
        format!("{icon} {}", file.name)
    }
}

/// Shown as a picture: only a file named as one (a preview on a file named otherwise would
/// hide its name and type), and small enough to be decoded here.
fn is_picture(file: &FileItem) -> bool {
    crate::files::picture::is_picture_name(&file.name)
        && file.size <= crate::files::picture::MAX_PICTURE_BYTES
}

fn icon_for(mime: &str) -> &'static str {
    match mime {
        m if m.starts_with("image/") => "🖼",
        m if m.starts_with("video/") => "🎞",
        m if m.starts_with("audio/") => "🎵",
        "application/zip" => "🗄",
        _ => "📄",
    }
}

/// How large a picture is drawn in a bubble at most `max_w` wide.
pub fn picture_size(file: &FileItem, max_w: f32) -> egui::Vec2 {
    let (w, h) = match (file.width, file.height) {
        (Some(w), Some(h)) if w > 0 && h > 0 => (w as f32, h as f32),
        _ => (4.0, 3.0),
    };
    // Panoramas and receipts are shown cropped to at most 3:1, as phones do.
    let aspect = (w / h).clamp(1.0 / 3.0, 3.0);
    let side = BUBBLE_PICTURE.min(max_w);
    if aspect >= 1.0 {
        vec2(side, side / aspect)
    } else {
        vec2(side * aspect, side)
    }
}

/// The height a file adds to a bubble, for rows not drawn yet.
pub fn estimated_height(file: &FileItem, max_w: f32) -> f32 {
    if is_picture(file) {
        picture_size(file, max_w).y + 8.0
    } else {
        52.0
    }
}

impl FlurfunkApp {
    /// The node and the ids a file action on message `m` needs (none while no node runs).
    fn message_target(&self, m: &MessageItem) -> Option<(NodeHandle, ConversationId, EventId)> {
        Some((
            self.node().cloned()?,
            m.conversation.parse().ok()?,
            m.event_id.parse().ok()?,
        ))
    }

    /// A file in a bubble: a picture, or a card with name, size and what can be done now.
    pub(super) fn file_ui(&mut self, ui: &mut egui::Ui, m: &MessageItem, file: &FileItem) {
        let t = self.t();
        if is_picture(file) && self.picture_ui(ui, m, file, t) {
            return;
        }
        ui.horizontal(|ui| {
            ui.label(RichText::new(icon_for(&file.mime)).size(26.0));
            ui.vertical(|ui| {
                ui.add(
                    egui::Label::new(
                        RichText::new(&file.name)
                            .strong()
                            .color(ui.visuals().strong_text_color()),
                    )
                    .wrap(),
                );
                self.file_state_ui(ui, m, file, t);
            });
        });
    }

    /// A picture in its bubble; false if it cannot be shown (then it is a card).
    fn picture_ui(
        &mut self,
        ui: &mut egui::Ui,
        m: &MessageItem,
        file: &FileItem,
        t: &Texts,
    ) -> bool {
        if self.pictures.failed(&m.event_id) {
            return false;
        }
        let size = picture_size(file, ui.available_width());
        let (texture, load) =
            self.pictures
                .get(ui.ctx(), &m.event_id, file.thumbnail.as_deref(), file.here);
        if load {
            self.decode_picture(m, &m.event_id, BUBBLE_DECODE_SIDE);
        }
        let (rect, response) = ui.allocate_exact_size(size, Sense::click());
        let response = response.on_hover_cursor(if file.here {
            egui::CursorIcon::PointingHand
        } else {
            egui::CursorIcon::Default
        });
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, &file.name));
        match &texture {
            Some(texture) => {
                // Cover the frame (cropping the middle), as phone messengers do.
                let tex = texture.size_vec2();
                let scale = (size.x / tex.x).max(size.y / tex.y);
                let shown = size / (tex * scale);
                let uv = egui::Rect::from_center_size(egui::pos2(0.5, 0.5), shown);
                egui::Image::from_texture(texture)
                    .uv(uv)
                    .corner_radius(6)
                    .paint_at(ui, rect);
            }
            None => {
                ui.painter()
                    .rect_filled(rect, 6.0, ui.visuals().extreme_bg_color);
                ui.painter().text(
                    rect.center(),
                    egui::Align2::CENTER_CENTER,
                    "📷",
                    egui::FontId::proportional(32.0),
                    ui.visuals().weak_text_color(),
                );
            }
        }
        if response.clicked() && file.here {
            self.dialog = Some(Dialog::Picture {
                conversation: m.conversation.clone(),
                event_id: m.event_id.clone(),
                name: file.name.clone(),
            });
        }
        if !file.here {
            ui.add_space(2.0);
            self.file_state_ui(ui, m, file, t);
        }
        true
    }

    /// Size and state of a file: progress and cancel while it moves, open and save once
    /// here, download (again) when it is not.
    fn file_state_ui(&mut self, ui: &mut egui::Ui, m: &MessageItem, file: &FileItem, t: &Texts) {
        let Some((node, conv, event)) = self.message_target(m) else {
            return;
        };
        let size = crate::files::human_size(file.size);
        if file.fetching {
            let transfer = self.transfers.by_blob.get(&file.blob);
            let fraction = transfer
                .filter(|p| p.total > 0)
                .map_or(0.0, |p| p.held as f32 / p.total as f32);
            let status = match transfer {
                Some(p) if p.waiting => t.file_waiting.to_string(),
                Some(p) if p.speed >= 1.0 => format!(
                    "{} / {size} · {}/s",
                    crate::files::human_size(p.held.min(file.size)),
                    crate::files::human_size(p.speed as u64)
                ),
                _ => format!("{size} · {}", t.file_loading),
            };
            ui.horizontal(|ui| {
                ui.add(
                    egui::ProgressBar::new(fraction)
                        .desired_width(150.0)
                        .desired_height(6.0),
                );
                if ui.small_button("✖").on_hover_text(t.cancel).clicked() {
                    self.bridge.act(
                        &node,
                        move |n| async move { n.cancel_download(conv, event).await },
                        |_| Update::Reload,
                    );
                }
            });
            ui.label(RichText::new(status).size(11.5).weak());
            return;
        }
        ui.horizontal(|ui| {
            ui.label(RichText::new(&size).size(11.5).weak());
            if file.here {
                if ui.small_button(t.file_open).clicked() {
                    self.open_file(m, file, false);
                }
                if ui.small_button(t.file_save).clicked() {
                    self.save_file(m, file);
                }
            } else if ui.small_button(t.file_download).clicked() {
                // Also after the node gave up: asking again starts from what is here.
                self.bridge.act(
                    &node,
                    move |n| async move { n.download(conv, event).await },
                    |_| Update::Reload,
                );
            }
        });
    }

    /// Decode the picture of message `m` off the UI thread, at most `side` pixels a side;
    /// one at a time (a chat full of large photos must not decode them all at once).
    fn decode_picture(&mut self, m: &MessageItem, key: &str, side: u32) {
        let Some((node, conv, event)) = self.message_target(m) else {
            return;
        };
        self.pictures.set_loading(key);
        let key = key.to_string();
        self.bridge.spawn(async move {
            let _one_at_a_time = DECODES.acquire().await;
            let picture = match node.read_picture(conv, event).await {
                Ok(bytes) => tokio::task::spawn_blocking(move || {
                    crate::files::picture::decode_for_screen(&bytes, side)
                        .map(|p| Decoded {
                            width: p.width(),
                            height: p.height(),
                            rgba: p.into_raw(),
                        })
                        .map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string())),
                Err(e) => Err(e.to_string()),
            };
            Update::Picture { key, picture }
        });
    }

    /// Save a file that is here into the save folder (the user's Downloads).
    fn save_file(&self, m: &MessageItem, file: &FileItem) {
        let Some((node, conv, event)) = self.message_target(m) else {
            return;
        };
        let name = file.name.clone();
        let saved = self.t().file_saved;
        let folder = self.config.save_dir.clone();
        self.bridge.act(
            &node,
            move |n| async move {
                let folder = folder
                    .or_else(dirs::download_dir)
                    .or_else(dirs::home_dir)
                    .unwrap_or_else(|| ".".into());
                std::fs::create_dir_all(&folder).map_err(|e| {
                    crate::node::NodeError::Other(format!("{}: {e}", folder.display()))
                })?;
                let path = crate::app::save_path(&folder, &name)
                    .map_err(|e| crate::node::NodeError::Other(e.to_string()))?;
                n.save_file(conv, event, path.clone()).await?;
                Ok(path)
            },
            move |path| Update::Notice(fill(saved, &[("path", &path.display().to_string())])),
        );
    }

    /// Open a file that is here with its program: decrypted into the data folder's
    /// `opened` (removed a day later). Programs and scripts only after a warning.
    pub(super) fn open_file(&mut self, m: &MessageItem, file: &FileItem, confirmed: bool) {
        if !confirmed && crate::files::is_program_name(&file.name) {
            self.dialog = Some(Dialog::OpenProgram {
                conversation: m.conversation.clone(),
                event_id: m.event_id.clone(),
                name: file.name.clone(),
            });
            return;
        }
        let Some((node, conv, event)) = self.message_target(m) else {
            return;
        };
        // One folder per message: the file keeps its own name (programs show it).
        let folder = self
            .config
            .dir
            .opened()
            .join(m.event_id.chars().take(32).collect::<String>());
        let path = folder.join(crate::files::safe_file_name(&file.name));
        self.bridge.act(
            &node,
            move |n| async move {
                let other = |e: String| crate::node::NodeError::Other(e);
                if !path.is_file() {
                    std::fs::create_dir_all(&folder)
                        .map_err(|e| other(format!("{}: {e}", folder.display())))?;
                    n.save_file(conv, event, path.clone()).await?;
                    // Read-only: an edit is saved under another name, not lost with
                    // this copy a day later.
                    if let Ok(meta) = std::fs::metadata(&path) {
                        let mut perms = meta.permissions();
                        perms.set_readonly(true);
                        let _ = std::fs::set_permissions(&path, perms);
                    }
                }
                tokio::task::spawn_blocking(move || opener::open(&path))
                    .await
                    .map_err(|e| other(e.to_string()))?
                    .map_err(|e| other(e.to_string()))
            },
            |_| Update::Reload,
        );
    }

    /// 📎: the system's file dialog, then the send dialog with the file (and a text to go
    /// with it); where no dialog exists, the send dialog with a typed path.
    pub(super) fn pick_file(&mut self, conversation: &str) {
        // A second 📎 while the system's dialog is open (or lost behind the window), or
        // no system dialog: the send dialog, where a path can be typed.
        if !self.config.native_dialogs || self.picking {
            self.picking = false;
            self.open_send_file(conversation, String::new());
            return;
        }
        self.picking = true;
        let conversation = conversation.to_string();
        let title = self.t().send_file_title;
        self.bridge.spawn(async move {
            let started = Instant::now();
            let picked = rfd::AsyncFileDialog::new()
                .set_title(title)
                .pick_file()
                .await;
            Update::Picked {
                conversation,
                path: picked.map(|f| f.path().to_path_buf()),
                // A dialog that closed within a second was never shown (no portal, no
                // zenity): a person takes longer to cancel.
                quick: started.elapsed() < Duration::from_secs(1),
            }
        });
    }

    /// Ask for the progress of files being fetched, while any is on screen.
    pub(super) fn poll_transfers(&mut self, ctx: &egui::Context) {
        let fetching = self.chat.as_ref().is_some_and(|c| {
            c.items
                .iter()
                .any(|m| m.file.as_ref().is_some_and(|f| f.fetching))
        });
        if !fetching {
            self.transfers.next_poll = None;
            return;
        }
        let now = Instant::now();
        let due = self.transfers.next_poll.is_none_or(|at| now >= at);
        if due
            && !self.transfers.busy
            && let Some(node) = self.node().cloned()
        {
            self.transfers.busy = true;
            self.transfers.next_poll = Some(now + PROGRESS_EVERY);
            self.bridge.spawn(async move {
                match node.downloads().await {
                    Ok(list) => Update::Downloads(list),
                    Err(_) => Update::DownloadsFailed,
                }
            });
        }
        ctx.request_repaint_after(PROGRESS_EVERY);
    }

    /// The picture viewer: the picture as large as the window allows; Esc or a click
    /// beside it closes it.
    pub(super) fn picture_viewer_ui(
        &mut self,
        ctx: &egui::Context,
        conversation: &str,
        event_id: &str,
        name: &str,
    ) -> bool {
        let t = self.t();
        let key = format!("{event_id}/view");
        let message = self
            .chat
            .as_ref()
            .filter(|c| c.conversation == conversation)
            .and_then(|c| c.items.iter().find(|m| m.event_id == event_id))
            .cloned();
        let Some(m) = message else {
            self.pictures.forget(&key);
            return false;
        };
        let (texture, load) = self.pictures.get(ctx, &key, None, true);
        if load {
            self.decode_picture(&m, &key, VIEWER_DECODE_SIDE);
        }
        let screen = ctx.content_rect().size();
        let mut keep = true;
        let modal = egui::Modal::new(egui::Id::unique("picture-viewer")).show(ctx, |ui| {
            ui.horizontal(|ui| {
                ui.label(RichText::new(name).strong());
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui.button(t.close).clicked() {
                        keep = false;
                    }
                    if let Some(file) = &m.file {
                        if ui.button(t.file_save).clicked() {
                            self.save_file(&m, file);
                        }
                        if ui.button(t.file_open).clicked() {
                            self.open_file(&m, file, false);
                        }
                    }
                });
            });
            let room = (screen - vec2(80.0, 140.0)).max(vec2(200.0, 150.0));
            match &texture {
                Some(texture) => {
                    // At most its own size (in screen pixels), at most the room there is.
                    let native = texture.size_vec2() / ui.pixels_per_point();
                    let scale = (room.x / native.x).min(room.y / native.y).min(1.0);
                    ui.add(egui::Image::from_texture(texture).fit_to_exact_size(native * scale));
                }
                None if self.pictures.failed(&key) => {
                    ui.label(t.file_picture_unreadable);
                }
                None => {
                    ui.add_sized(room.min(vec2(400.0, 300.0)), egui::Spinner::new());
                }
            }
        });
        if modal.should_close() {
            keep = false;
        }
        if !keep {
            self.pictures.forget(&key);
        }
        keep
    }

    /// A picture pasted (Ctrl+V) into an open conversation: the send dialog with it.
    pub(super) fn take_pasted_picture(&mut self, ui: &egui::Ui, conversation: &str) {
        let pasted = ui.input(|i| {
            i.events.iter().find_map(|e| match e {
                egui::Event::PasteImage(image) => Some(image.clone()),
                _ => None,
            })
        });
        let Some(image) = pasted else {
            return;
        };
        let [w, h] = image.size;
        if w == 0 || h == 0 {
            return;
        }
        let preview = ui.ctx().load_texture(
            "pasted-picture",
            small_copy(&image, PASTE_PREVIEW_SIDE),
            egui::TextureOptions::LINEAR,
        );
        let name = format!(
            "{} {}.png",
            self.t().file_pasted_name,
            chrono::Local::now().format("%Y-%m-%d %H.%M.%S")
        );
        self.dialog = Some(Dialog::SendFile {
            conversation: conversation.to_string(),
            path: name,
            caption: String::new(),
            error: None,
            pasted: Some(Pasted { image, preview }),
        });
    }
}

/// A picture from the clipboard, waiting in the send dialog.
pub struct Pasted {
    pub image: Arc<egui::ColorImage>,
    pub preview: egui::TextureHandle,
}

impl Pasted {
    /// The picture as a PNG file's bytes (on a blocking thread: a screenshot of a large
    /// screen takes a moment).
    pub fn to_png(&self) -> impl FnOnce() -> Result<Vec<u8>, String> + Send + 'static {
        let image = self.image.clone();
        move || {
            let rgba: Vec<u8> = image
                .pixels
                .iter()
                .flat_map(|c| c.to_srgba_unmultiplied())
                .collect();
            crate::files::picture::encode_png(image.size[0] as u32, image.size[1] as u32, rgba)
                .map_err(|e| e.to_string())
        }
    }
}

/// A copy of `image` at most `side` pixels a side (a screenshot of three screens is wider
/// than a GPU texture may be).
fn small_copy(image: &egui::ColorImage, side: u32) -> egui::ColorImage {
    let [w, h] = image.size;
    if w as u32 <= side && h as u32 <= side {
        return image.clone();
    }
    let rgba: Vec<u8> = image
        .pixels
        .iter()
        .flat_map(|c| c.to_srgba_unmultiplied())
        .collect();
    match image::RgbaImage::from_raw(w as u32, h as u32, rgba) {
        Some(full) => {
            let small = image::DynamicImage::ImageRgba8(full)
                .thumbnail(side, side)
                .to_rgba8();
            egui::ColorImage::from_rgba_unmultiplied(
                [small.width() as usize, small.height() as usize],
                small.as_raw(),
            )
        }
        None => egui::ColorImage::new([1, 1], vec![egui::Color32::GRAY]),
    }
}
