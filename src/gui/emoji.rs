//! Emoji in colour, as phones draw them: egui's fonts draw emoji as grey outlines, so the
//! app draws each emoji it knows as a Twemoji picture (72×72 PNG compiled into the
//! program; graphics by Twitter and contributors, CC-BY 4.0) inline with the text.
//!
//! Pictures are decoded once per emoji and context on first use and kept as textures
//! (20 KiB each; at most `MAX_TEXTURES`, then the cache starts afresh). A text without
//! any emoji (no character from U+2000 on, nor © or ®) is one plain label, as before; a
//! text with more than `MAX_PICTURES` emoji too (a flood of emoji would otherwise be
//! thousands of widgets per frame).

use std::collections::HashMap;
use std::sync::Arc;

use egui::{Color32, ColorImage, Image, RichText, TextureHandle, TextureOptions, Vec2};
use twemoji_assets::png::PngTwemojiAsset;
use unicode_segmentation::UnicodeSegmentation;

/// Distinct emoji kept as textures per context (about 5 MiB at most).
const MAX_TEXTURES: usize = 256;
/// Emoji drawn as pictures in one text at most.
const MAX_PICTURES: usize = 64;
/// A message of at most this many emoji and nothing else is drawn large, as on a phone.
const BIG_EMOJI_COUNT: usize = 3;

/// One piece of a text: words, or an emoji with a picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Emoji(&'static PngTwemojiAsset),
}

/// The picture of one grapheme (an emoji with its modifiers, joiners and variation
/// selectors), if Twemoji has one. Twemoji names most emoji without U+FE0F.
pub fn picture(grapheme: &str) -> Option<&'static PngTwemojiAsset> {
    let first = grapheme.chars().next()?;
    // Letters, digits and punctuation are never looked up ("1" alone is no emoji; the
    // keycap "1️⃣" is).
    if (first as u32) < 0x80 && grapheme.chars().count() == 1 {
        return None;
    }
    PngTwemojiAsset::from_emoji(grapheme).or_else(|| {
        if grapheme.contains('\u{FE0F}') {
            let bare: String = grapheme.chars().filter(|c| *c != '\u{FE0F}').collect();
            PngTwemojiAsset::from_emoji(&bare)
        } else {
            None
        }
    })
}

/// A text cut into words and emoji (in order; the words keep their spaces).
pub fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (at, grapheme) in text.grapheme_indices(true) {
        if let Some(asset) = picture(grapheme) {
            if start < at {
                out.push(Piece::Text(&text[start..at]));
            }
            out.push(Piece::Emoji(asset));
            start = at + grapheme.len();
        }
    }
    if start < text.len() {
        out.push(Piece::Text(&text[start..]));
    }
    out
}

/// Whether `text` may hold an emoji: a character from U+2000 on, or © or ® (letters
/// with umlauts and accents do not count). Cheap, so plain texts skip the cutting.
fn may_have_emoji(text: &str) -> bool {
    !text.is_ascii()
        && text
            .chars()
            .any(|c| c as u32 >= 0x2000 || c == '\u{a9}' || c == '\u{ae}')
}

/// Whether anything in `text` is drawn as a picture.
#[cfg(test)]
fn has_emoji(text: &str) -> bool {
    may_have_emoji(text) && pieces(text).iter().any(|p| matches!(p, Piece::Emoji(_)))
}

#[derive(Clone, Default)]
struct Cache(Arc<std::sync::Mutex<HashMap<&'static str, TextureHandle>>>);

/// The texture of one emoji in this context (None: its picture did not decode).
fn texture(ctx: &egui::Context, asset: &'static PngTwemojiAsset) -> Option<TextureHandle> {
    let cache = ctx.data_mut(|d| d.get_temp_mut_or_default::<Cache>(egui::Id::NULL).clone());
    let mut map = cache.0.lock().ok()?;
    let key: &'static str = asset.emoji;
    if let Some(t) = map.get(key) {
        return Some(t.clone());
    }
    if map.len() >= MAX_TEXTURES {
        // Bounded: start afresh (what is on screen is loaded again as it is drawn).
        map.clear();
    }
    let bytes: &[u8] = asset;
    let rgba = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .ok()?
        .to_rgba8();
    let size = [rgba.width() as usize, rgba.height() as usize];
    let image = ColorImage::from_rgba_unmultiplied(size, rgba.as_raw());
    let handle = ctx.load_texture(format!("emoji-{key}"), image, TextureOptions::LINEAR);
    map.insert(key, handle.clone());
    Some(handle)
}

/// One emoji as a picture `size` points high, named by the emoji for screen readers; the
/// font's outline where no picture is at hand.
pub fn emoji_image(ui: &mut egui::Ui, asset: &'static PngTwemojiAsset, size: f32) {
    match texture(ui.ctx(), asset) {
        Some(t) => {
            let response = ui.add(Image::new(&t).fit_to_exact_size(Vec2::splat(size)));
            let name = asset.emoji.to_string();
            response
                .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, name.clone()));
        }
        None => {
            ui.label(RichText::new(asset.emoji).size(size));
        }
    }
}

/// A message's text, wrapped, with its emoji in colour; a text of one to three emoji
/// alone is drawn large.
pub fn text_label(ui: &mut egui::Ui, text: &str, size: f32, color: Color32) {
    let pieces = if may_have_emoji(text) {
        pieces(text)
    } else {
        Vec::new()
    };
    let pictures = pieces
        .iter()
        .filter(|p| matches!(p, Piece::Emoji(_)))
        .count();
    if pictures == 0 || pictures > MAX_PICTURES {
        ui.add(egui::Label::new(RichText::new(text).size(size).color(color)).wrap());
        return;
    }
    let only_emoji = pieces.iter().all(|p| match p {
        Piece::Emoji(_) => true,
        Piece::Text(t) => t.trim().is_empty(),
    });
    let emoji_size = if only_emoji && pictures <= BIG_EMOJI_COUNT {
        size * 2.6
    } else {
        size * 1.25
    };
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing.x = 0.0;
        for piece in pieces {
            match piece {
                Piece::Text(t) => {
                    ui.add(egui::Label::new(RichText::new(t).size(size).color(color)).wrap());
                }
                Piece::Emoji(asset) => emoji_image(ui, asset, emoji_size),
            }
        }
    });
}

/// The picture of `emoji` at `size` points, if there is one.
pub fn image_of(ctx: &egui::Context, emoji: &str, size: f32) -> Option<Image<'static>> {
    let texture = texture(ctx, picture(emoji)?)?;
    Some(Image::new(&texture).fit_to_exact_size(Vec2::splat(size)))
}

/// A button showing one emoji in colour (the picker, quick reactions); its text for
/// screen readers and tests is the emoji.
pub fn emoji_button(ui: &mut egui::Ui, emoji: &str, size: f32, selected: bool) -> egui::Response {
    let button = match picture(emoji).and_then(|a| texture(ui.ctx(), a)) {
        Some(t) => egui::Button::image(Image::new(&t).fit_to_exact_size(Vec2::splat(size))),
        None => egui::Button::new(RichText::new(emoji).size(size)),
    };
    let response = ui.add(button.selected(selected));
    let name = emoji.to_string();
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, name.clone()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_cut_into_words_and_known_emoji() {
        let p = pieces("Danke 👍🏽 und ❤️!");
        assert_eq!(p.len(), 5, "{p:?}");
        assert_eq!(p[0], Piece::Text("Danke "));
        assert!(matches!(p[1], Piece::Emoji(a) if a.emoji == "👍🏽"));
        assert_eq!(p[2], Piece::Text(" und "));
        assert!(matches!(p[3], Piece::Emoji(a) if a.emoji == "❤"));
        assert_eq!(p[4], Piece::Text("!"));
        // A family joined by ZWJ is one picture; digits, letters and umlauts are text.
        assert_eq!(pieces("👨‍👩‍👧").len(), 1);
        assert_eq!(
            pieces("Straße 12 #3 ©"),
            vec![Piece::Text("Straße 12 #3 "), pieces("©")[0]]
        );
        assert!(!has_emoji("Grüße aus dem Bauhof"));
        assert!(has_emoji("🚧 Baustelle"));
        // Every emoji the app offers has a picture.
        for e in super::super::actions::PICKER_EMOJI
            .iter()
            .chain(super::super::actions::QUICK_REACTIONS.iter())
        {
            assert!(picture(e).is_some(), "{e}");
        }
    }
}
