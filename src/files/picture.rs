//! Pictures: the small preview made when a photo is sent (it travels sealed inside the
//! announcing event, so the picture shows before the file is here), and bounded decoding
//! of every picture that arrives from a peer or a file.
//!
//! Every decode goes through [`decode`]: the header's dimensions are checked and the
//! pixel buffer is sized before a single byte is allocated for it, so a small file that
//! claims 60,000 × 60,000 pixels is refused instead of allocating gigabytes. Pixels are
//! turned upright by the photo's EXIF orientation (phones store them sideways).

use std::io::{BufRead, Cursor, Seek};

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbaImage};

use crate::wire::{ImageInfo, MAX_THUMBNAIL_BYTES};

/// Longest side of a preview sent with a photo (pixels).
pub const THUMBNAIL_SIDE: u32 = 320;
/// Pictures larger than this (bytes) are sent without a preview and not shown in the app.
pub const MAX_PICTURE_BYTES: u64 = 64 << 20;
/// Widest or tallest picture decoded (pixels).
const MAX_SIDE: u32 = 16_384;
/// The most a decoded picture may take in memory: 40 megapixels of RGB (a decoder needs
/// up to twice that again while it works).
const MAX_DECODED_BYTES: u64 = 120 << 20;
/// A preview from a peer: at most this side and this much memory once decoded.
const MAX_THUMBNAIL_SIDE: u32 = 640;
const MAX_THUMBNAIL_DECODED: u64 = 2 << 20;

/// Why a picture could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PictureError(String);

/// Decode a picture (PNG, JPEG, GIF's first frame, WebP) within `max_side` pixels a side
/// and `max_bytes` of decoded memory, upright.
pub fn decode<R: BufRead + Seek>(
    source: R,
    max_side: u32,
    max_bytes: u64,
) -> Result<DynamicImage, PictureError> {
    let mut reader = ImageReader::new(source)
        .with_guessed_format()
        .map_err(|e| PictureError(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    limits.max_alloc = Some(max_bytes);
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| PictureError(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        // A GPU texture of no pixels is a crash, not an empty picture.
        return Err(PictureError("the picture has no pixels".into()));
    }
    if decoder.total_bytes() > max_bytes {
        return Err(PictureError("the picture is too large".into()));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut picture =
        DynamicImage::from_decoder(decoder).map_err(|e| PictureError(e.to_string()))?;
    picture.apply_orientation(orientation);
    if picture.width() == 0 || picture.height() == 0 {
        return Err(PictureError("the picture has no pixels".into()));
    }
    Ok(picture)
}

/// The preview and dimensions for a picture about to be sent; `None` for anything that
/// is not a picture this program reads (it is then sent as a plain file).
pub fn describe(bytes: &[u8]) -> Option<ImageInfo> {
    if bytes.len() as u64 > MAX_PICTURE_BYTES {
        return None;
    }
    let picture = decode(Cursor::new(bytes), MAX_SIDE, MAX_DECODED_BYTES).ok()?;
    let (width, height) = (picture.width(), picture.height());
    if width == 0 || height == 0 {
        return None;
    }
    let thumbnail = preview_jpeg(&picture)?;
    Some(ImageInfo {
        width,
        height,
        thumbnail,
    })
}

/// A JPEG of at most `MAX_THUMBNAIL_BYTES`: smaller and coarser until it fits.
fn preview_jpeg(picture: &DynamicImage) -> Option<Vec<u8>> {
    for (side, quality) in [
        (THUMBNAIL_SIDE, 70),
        (THUMBNAIL_SIDE, 50),
        (240, 45),
        (160, 40),
    ] {
        let small = flatten(&picture.thumbnail(side, side));
        let mut out = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
        small.write_with_encoder(encoder).ok()?;
        if out.len() <= MAX_THUMBNAIL_BYTES {
            return Some(out);
        }
    }
    None
}

/// RGB on white: JPEG has no transparency (a screenshot's transparent corners stay light).
fn flatten(picture: &DynamicImage) -> DynamicImage {
    if !picture.color().has_alpha() {
        return DynamicImage::ImageRgb8(picture.to_rgb8());
    }
    let rgba = picture.to_rgba8();
    let rgb = image::RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over = |c: u8| ((c as u32 * a as u32 + 255 * (255 - a as u32)) / 255) as u8;
        image::Rgb([over(r), over(g), over(b)])
    });
    DynamicImage::ImageRgb8(rgb)
}

/// A preview that came with an event (from a peer: at most 16 KiB, decoded small).
pub fn decode_thumbnail(bytes: &[u8]) -> Option<RgbaImage> {
    if bytes.len() > MAX_THUMBNAIL_BYTES {
        return None;
    }
    decode(
        Cursor::new(bytes),
        MAX_THUMBNAIL_SIDE,
        MAX_THUMBNAIL_DECODED,
    )
    .ok()
    .map(|p| p.to_rgba8())
}

/// A picture to show on screen: decoded within bounds and scaled to at most `side`
/// pixels a side (the screen needs no more, and the GPU keeps every pixel).
pub fn decode_for_screen(bytes: &[u8], side: u32) -> Result<RgbaImage, PictureError> {
    if bytes.len() as u64 > MAX_PICTURE_BYTES {
        return Err(PictureError("the picture is too large".into()));
    }
    let picture = decode(Cursor::new(bytes), MAX_SIDE, MAX_DECODED_BYTES)?;
    let picture = if picture.width() > side || picture.height() > side {
        picture.thumbnail(side, side)
    } else {
        picture
    };
    Ok(picture.to_rgba8())
}

/// Whether a file's name says it is a picture this program shows.
pub fn is_picture_name(name: &str) -> bool {
    matches!(
        crate::files::guess_mime(name),
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

/// A picture (e.g. pasted from the clipboard) as a PNG file's bytes.
pub fn encode_png(width: u32, height: u32, rgba: Vec<u8>) -> Result<Vec<u8>, PictureError> {
    let picture = RgbaImage::from_raw(width, height, rgba)
        .ok_or_else(|| PictureError("the picture's pixels do not fit its size".into()))?;
    let mut out = Cursor::new(Vec::new());
    picture
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| PictureError(e.to_string()))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let rgba: Vec<u8> = (0..width * height)
            .flat_map(|i| [(i % 251) as u8, (i / 7 % 256) as u8, 90, 255])
            .collect();
        encode_png(width, height, rgba).unwrap()
    }

    #[test]
    fn a_photo_gets_a_small_preview_and_its_dimensions() {
        let info = describe(&png(1200, 800)).expect("a picture");
        assert_eq!((info.width, info.height), (1200, 800));
        assert!(info.thumbnail.len() <= MAX_THUMBNAIL_BYTES);
        let thumb = decode_thumbnail(&info.thumbnail).expect("the preview decodes");
        assert_eq!((thumb.width(), thumb.height()), (THUMBNAIL_SIDE, 213));
    }

    #[test]
    fn noise_still_gets_a_preview_that_fits() {
        // Random pixels compress worst; the preview shrinks until it fits.
        let mut x = 0x2545_f491_u32;
        let rgba: Vec<u8> = (0..800 * 800 * 4)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let info = describe(&encode_png(800, 800, rgba).unwrap()).expect("a picture");
        assert!(info.thumbnail.len() <= MAX_THUMBNAIL_BYTES);
    }

    #[test]
    fn what_is_not_a_picture_gets_no_preview() {
        assert!(describe(b"%PDF-1.7 not a picture").is_none());
        assert!(describe(&[]).is_none());
        assert!(decode_thumbnail(b"\x89PNG\r\n\x1a\n garbage").is_none());
    }

    /// A small PNG whose header (with a correct checksum) claims `width` x `height`.
    fn claiming(width: u32, height: u32) -> Vec<u8> {
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&width.to_be_bytes());
        bomb[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        bomb
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn a_picture_that_claims_huge_dimensions_is_refused_before_allocating() {
        let header_ok = claiming(1, 1);
        assert!(
            decode_thumbnail(&header_ok).is_some(),
            "the checksum helper is right"
        );
        // 60,000 x 60,000: over the side limit.
        let bomb = claiming(60_000, 60_000);
        assert!(describe(&bomb).is_none());
        let err = decode_for_screen(&bomb, 2048).unwrap_err().to_string();
        assert!(err.contains("limit"), "{err}");
        // 16,000 x 16,000 (within the side limit, 1 GiB of pixels): over the memory limit.
        let err = decode_for_screen(&claiming(16_000, 16_000), 2048)
            .unwrap_err()
            .to_string();
        assert!(err.contains("too large"), "{err}");
        // A preview from a peer may claim no more than 640 a side.
        assert!(decode_thumbnail(&claiming(641, 10)).is_none());
        // No pixels at all is refused (a texture of no pixels crashes the GPU layer).
        assert!(decode_thumbnail(&claiming(0, 0)).is_none());
        assert!(decode_for_screen(&claiming(5, 0), 100).is_err());
    }

    #[test]
    fn pictures_are_scaled_for_the_screen() {
        let shown = decode_for_screen(&png(3000, 1000), 1500).unwrap();
        assert_eq!((shown.width(), shown.height()), (1500, 500));
        let small = decode_for_screen(&png(40, 30), 1500).unwrap();
        assert_eq!((small.width(), small.height()), (40, 30));
    }

    #[test]
    fn cut_or_corrupt_pictures_are_errors() {
        let full = png(300, 300);
        for cut in [8, 30, full.len() / 2, full.len() - 5] {
            let _ = decode_for_screen(&full[..cut], 512);
        }
        let mut bad = full.clone();
        for i in (40..bad.len()).step_by(97) {
            bad[i] ^= 0x5a;
        }
        assert!(decode_for_screen(&bad, 512).is_err());
        assert!(decode_for_screen(&full[..full.len() / 2], 512).is_err());
    }
}
