//! Colours and small painted pieces (avatars) shared by the screens: the look people know
//! from phone messengers, in light and dark mode.

use egui::{Color32, Painter, Pos2, Visuals};

/// Bubbles take at most this share of the conversation's width.
pub const BUBBLE_WIDTH_FRACTION: f32 = 0.72;
pub const ONLINE: Color32 = Color32::from_rgb(0x25, 0xD3, 0x66);
pub const UNREAD: Color32 = Color32::from_rgb(0x1F, 0xA8, 0x55);
pub const READ: Color32 = Color32::from_rgb(0x34, 0xB7, 0xF1);
/// The edge of a bubble that calls this user with @.
pub const MENTION: Color32 = Color32::from_rgb(0xF2, 0xA9, 0x00);
pub const WARNING_FILL: Color32 = Color32::from_rgb(0xFF, 0xF3, 0xCD);
pub const WARNING_TEXT: Color32 = Color32::from_rgb(0x66, 0x4D, 0x03);
pub const DEMO_FILL: Color32 = Color32::from_rgb(0xFD, 0xE2, 0xE1);
pub const DEMO_TEXT: Color32 = Color32::from_rgb(0x8A, 0x1C, 0x1C);

pub fn apply(ctx: &egui::Context) {
    // Follow the system's light or dark mode; where it says nothing, light, as office
    // desktops and phone messengers are.
    ctx.options_mut(|o| o.fallback_theme = egui::Theme::Light);
    ctx.all_styles_mut(|style| {
        style.spacing.item_spacing = egui::vec2(8.0, 6.0);
        style.spacing.button_padding = egui::vec2(10.0, 5.0);
    });
}

pub fn chat_background(v: &Visuals) -> Color32 {
    if v.dark_mode {
        Color32::from_rgb(0x0B, 0x14, 0x1A)
    } else {
        Color32::from_rgb(0xEF, 0xEA, 0xE2)
    }
}

pub fn bubble_fill(v: &Visuals, own: bool) -> Color32 {
    match (v.dark_mode, own) {
        (false, true) => Color32::from_rgb(0xD9, 0xFD, 0xD3),
        (false, false) => Color32::WHITE,
        (true, true) => Color32::from_rgb(0x00, 0x5C, 0x4B),
        (true, false) => Color32::from_rgb(0x20, 0x2C, 0x33),
    }
}

pub fn day_fill(v: &Visuals) -> Color32 {
    if v.dark_mode {
        Color32::from_rgb(0x18, 0x22, 0x29)
    } else {
        Color32::from_rgb(0xFF, 0xFF, 0xFF)
    }
}

const PALETTE: [Color32; 8] = [
    Color32::from_rgb(0xC2, 0x4E, 0x1B),
    Color32::from_rgb(0x1B, 0x7F, 0xC2),
    Color32::from_rgb(0x7B, 0x3F, 0xB5),
    Color32::from_rgb(0x1E, 0x8E, 0x5A),
    Color32::from_rgb(0xB5, 0x3F, 0x7B),
    Color32::from_rgb(0x8E, 0x6E, 0x1E),
    Color32::from_rgb(0x2E, 0x6F, 0x8E),
    Color32::from_rgb(0xA8, 0x32, 0x32),
];

/// A stable colour per user or conversation id.
pub fn name_color(id: &str) -> Color32 {
    let h = id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    PALETTE[h as usize % PALETTE.len()]
}

/// Initials of up to two words.
pub fn initials(name: &str) -> String {
    name.split_whitespace()
        // Not the directory's marks after a name (`identity::OFFICIAL_MARK`).
        .filter_map(|w| {
            w.chars()
                .next()
                .filter(|c| !crate::identity::is_mark_char(*c))
        })
        .take(2)
        .flat_map(char::to_uppercase)
        .collect()
}

/// A round avatar with initials.
pub fn avatar(painter: &Painter, center: Pos2, radius: f32, name: &str, id: &str) {
    painter.circle_filled(center, radius, name_color(id));
    painter.text(
        center,
        egui::Align2::CENTER_CENTER,
        initials(name),
        egui::FontId::proportional(radius * 0.8),
        Color32::WHITE,
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn initials_take_two_words() {
        assert_eq!(super::initials("Anna Schmidt"), "AS");
        assert_eq!(super::initials("Bauhof"), "B");
        assert_eq!(super::initials("jürgen becker müller"), "JB");
        assert_eq!(super::initials(""), "");
        assert_eq!(super::initials("Bürgermeisteramt \u{2714}"), "B");
        assert_eq!(super::initials("Bauamt \u{26A0}"), "B");
    }
}
