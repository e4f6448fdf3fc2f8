//! Safe decoding: bytes of any common format → an upright RGB8 image, or a typed error.
//!
//! The order of checks is the point of this module: byte count, then format signature, then the
//! header's dimensions, and only then the pixel buffer is allocated. A 50-byte PNG that claims to
//! be 100000×100000 is refused before a single row is inflated.
//!
//! Choices, in one place:
//! - **Formats**: JPEG, PNG, GIF (first frame), WebP, BMP, TIFF — sniffed from the bytes, never from
//!   a file name. Other formats `image` knows (ICO, QOI, PNM, EXR, HDR, DDS, TGA, …) and some it
//!   does not (HEIC, AVIF, JPEG XL, PSD, PDF, SVG) are refused as `unsupported_format`: they are
//!   rare in photo uploads and each extra decoder is extra attack surface.
//! - **Alpha** is composited over white. Transparent regions of product shots and logos are
//!   designed to sit on a light page; dropping alpha instead exposes whatever colour happens to be
//!   stored under transparent pixels (often black or junk), which the model would learn from.
//! - **EXIF orientation** (1–8) is applied, so the pixels are what a viewer shows. Unreadable
//!   EXIF is ignored rather than refused: the image is still an image.
//! - **Truncation**: a cut-off file is refused as `truncated`, never decoded into half a picture
//!   padded with grey. JPEG needs its own marker walk for this (`crate::jpeg`) because the decoder
//!   is lenient; WebP is checked against its RIFF length; the other decoders report short reads.
//!   A baseline JPEG that lacks only its final EOI marker is therefore refused too.
//! - **Panics** inside a decoder are caught and reported as `corrupt`.
//! - **Size**: [`decode_for_input`] may decode a large JPEG at 1/2, 1/4 or 1/8 size in the DCT domain, keeping
//!   the shorter side at least twice what the network's resize needs ([`input_min_side`]); see `crate::jpeg`.
//!   Every check above happens first, exactly as for [`decode`].

use std::io::{Cursor, Read};
use std::path::Path;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage};

use crate::error::{Result, VisionError};
use crate::jpeg::{self, JpegTail};

/// Bounds on what [`decode`] accepts. The defaults suit photo uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most pixels (width × height) accepted; 40 MP covers current phone and most DSLR cameras.
    pub max_pixels: u64,
    /// Shortest side accepted: below this there is nothing left to classify (icons, tracking pixels).
    pub min_side: u32,
    /// Most encoded bytes accepted.
    pub max_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self { max_pixels: 40_000_000, min_side: 16, max_bytes: 20 * 1024 * 1024 }
    }
}

/// Decodes `bytes` into an upright RGB8 image (EXIF orientation applied, alpha composited over white).
///
/// The format is sniffed from the bytes. Errors, by [`VisionError::code`]: `empty`, `too_large`
/// (over `max_bytes`), `not_an_image`, `unsupported_format`, `too_many_pixels` (decided from the
/// header, before the pixel buffer exists), `too_small`, `truncated`, `corrupt`.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage> {
    decode_at_least(bytes, limits, None).map(|(img, _)| img)
}

/// [`decode`] for a network input of `size` pixels ([`crate::to_input`]): a large JPEG may come back at 1/2, 1/4
/// or 1/8 of its size, decoded that small in the DCT domain, but its shorter side is never below
/// [`input_min_side`]`(size)`. Other formats, and JPEGs that no reduction keeps that large, decode as [`decode`].
pub fn decode_for_input(bytes: &[u8], limits: &DecodeLimits, size: u32) -> Result<RgbImage> {
    decode_for_input_sized(bytes, limits, size).map(|(img, _)| img)
}

/// [`decode_for_input`], with the upright width and height of the full-size image (what a catalog records, even
/// when the pixels came back reduced).
pub fn decode_for_input_sized(bytes: &[u8], limits: &DecodeLimits, size: u32) -> Result<(RgbImage, (u32, u32))> {
    decode_at_least(bytes, limits, Some(input_min_side(size)))
}

/// The shorter side a reduced-size JPEG decode keeps for a network input of `size` pixels: twice the side
/// [`crate::to_input`] resizes to (512 for 224), the same gap Pillow's `reducing_gap = 2` leaves and the one
/// `to_input`'s own box pre-reduction keeps. The filtered resize from there still sees at least two source pixels per
/// output pixel, so the result stays close to the full decode's (the tests check both). Measured on a 12 MP photo,
/// this picks 1/4 (750 rows).
pub fn input_min_side(size: u32) -> u32 {
    crate::resize_size(size).saturating_mul(2)
}

fn decode_at_least(bytes: &[u8], limits: &DecodeLimits, min_side: Option<u32>) -> Result<(RgbImage, (u32, u32))> {
    if bytes.is_empty() {
        return Err(VisionError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(VisionError::TooLarge { bytes: bytes.len() as u64, max: limits.max_bytes as u64 });
    }
    let format = sniff(bytes)?;
    let name = format_name(format);
    if is_cut_short(bytes, format) {
        return Err(VisionError::Truncated { format: name });
    }

    // Decoders are written to return errors, but a panic on hostile input has happened in the
    // past in every image library; one bad upload must not take a worker thread down with it.
    std::panic::catch_unwind(|| decode_pixels(bytes, format, limits, min_side)).unwrap_or_else(|_| {
        Err(VisionError::Corrupt { format: name, detail: "the decoder failed on malformed data".to_string() })
    })
}

/// Header check, then pixels (JPEG at a reduced size when `min_side` allows), orientation and colour conversion, for
/// an already sniffed format.
fn decode_pixels(
    bytes: &[u8],
    format: ImageFormat,
    limits: &DecodeLimits,
    min_side: Option<u32>,
) -> Result<(RgbImage, (u32, u32))> {
    let name = format_name(format);
    let max_alloc = usize::try_from(image_limits(limits).max_alloc.unwrap_or(u64::MAX)).unwrap_or(usize::MAX);
    if let (ImageFormat::Jpeg, Some(min_side)) = (format, min_side) {
        let fits = |w, h| check_dimensions(w, h, limits).is_ok();
        if let Some((img, (width, height), orientation)) = jpeg::reduced(bytes, min_side, max_alloc, fits) {
            let orientation = orientation.unwrap_or(Orientation::NoTransforms);
            return Ok(turn_upright(DynamicImage::ImageRgb8(img), (width, height), orientation));
        }
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(image_limits(limits));
    let mut decoder = match reader.into_decoder() {
        Ok(d) => d,
        // `image` may refuse huge dimensions itself while building the decoder; re-read the header
        // without limits (no pixels are allocated) so the error can name the real size.
        Err(ImageError::Limits(_)) => {
            let (width, height) = header_dimensions(bytes, format)?;
            check_dimensions(width, height, limits)?;
            return Err(too_many_pixels(width, height, limits));
        }
        Err(e) => return Err(map_image_error(e, name)),
    };
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;

    // A broken EXIF block must not cost the user their upload: fall back to "as stored".
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    if let (ImageFormat::Jpeg, Some(min_side)) = (format, min_side) {
        let eighths = jpeg::scale_eighths(width, height, min_side);
        if eighths < 8 {
            if let Some(img) = jpeg::decode_scaled(bytes, width, height, eighths, max_alloc) {
                return Ok(turn_upright(DynamicImage::ImageRgb8(img), (width, height), orientation));
            }
        }
    }
    let img = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        ImageError::Limits(_) => too_many_pixels(width, height, limits),
        e => map_image_error(e, name),
    })?;
    Ok(turn_upright(img, (width, height), orientation))
}

/// `img` (stored `width x height` before any reduction) turned upright and flattened to RGB, with the upright
/// full size (what a catalog records, even when the pixels came back reduced).
fn turn_upright(
    mut img: DynamicImage,
    (width, height): (u32, u32),
    orientation: Orientation,
) -> (RgbImage, (u32, u32)) {
    use Orientation::{Rotate270, Rotate270FlipH, Rotate90, Rotate90FlipH};
    let size = match orientation {
        Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH => (height, width),
        _ => (width, height),
    };
    img.apply_orientation(orientation);
    (flatten_to_rgb8(img), size)
}

/// Reads and decodes a file. The size is checked from the metadata before reading, and the read
/// itself is capped, so a huge (or growing) file is never pulled into memory.
pub fn decode_file(path: &Path, limits: &DecodeLimits) -> Result<RgbImage> {
    let bytes = read_capped(path, limits)?;
    decode(&bytes, limits)
}

fn read_capped(path: &Path, limits: &DecodeLimits) -> Result<Vec<u8>> {
    let io_err = |source| VisionError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    if len > limits.max_bytes as u64 {
        return Err(VisionError::TooLarge { bytes: len, max: limits.max_bytes as u64 });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limits.max_bytes as u64 + 1).read_to_end(&mut bytes).map_err(io_err)?;
    Ok(bytes)
}

/// [`decode_file`] with [`decode_for_input`]'s reduced-size JPEG decoding for a network input of `size` pixels.
pub fn decode_file_for_input(path: &Path, limits: &DecodeLimits, size: u32) -> Result<RgbImage> {
    let bytes = read_capped(path, limits)?;
    decode_for_input(&bytes, limits, size)
}

/// The format named by the leading bytes, if it is one we decode.
fn sniff(bytes: &[u8]) -> Result<ImageFormat> {
    match image::guess_format(bytes) {
        Ok(
            f @ (ImageFormat::Jpeg
            | ImageFormat::Png
            | ImageFormat::Gif
            | ImageFormat::WebP
            | ImageFormat::Bmp
            | ImageFormat::Tiff),
        ) => Ok(f),
        Ok(other) => Err(VisionError::UnsupportedFormat { format: format!("{other:?}").to_uppercase() }),
        Err(_) => match sniff_unsupported(bytes) {
            Some(format) => Err(VisionError::UnsupportedFormat { format: format.to_string() }),
            None => Err(VisionError::NotAnImage),
        },
    }
}

/// Recognises common image formats that `image` does not, so the user hears "unsupported format"
/// (convert it) rather than "not an image" (wrong file) — phones upload HEIC all the time.
fn sniff_unsupported(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return match &bytes[8..12] {
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" => Some("HEIC/HEIF"),
            b"avif" | b"avis" => Some("AVIF"),
            _ => None,
        };
    }
    if bytes.starts_with(&[0xFF, 0x0A]) || bytes.starts_with(b"\0\0\0\x0cJXL \r\n\x87\n") {
        return Some("JPEG XL");
    }
    if bytes.starts_with(b"8BPS") {
        return Some("PSD");
    }
    if bytes.starts_with(b"%PDF") {
        return Some("PDF");
    }
    let head = &bytes[..bytes.len().min(1024)];
    let text = String::from_utf8_lossy(head);
    if text.trim_start().starts_with('<') && text.contains("<svg") {
        return Some("SVG");
    }
    None
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::Gif => "GIF",
        ImageFormat::WebP => "WebP",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Tiff => "TIFF",
        _ => "image",
    }
}

/// Structural truncation checks for formats whose decoders report a short file only as a vague
/// "corrupt" (WebP) or not at all (zune-jpeg pads missing rows with grey).
fn is_cut_short(bytes: &[u8], format: ImageFormat) -> bool {
    match format {
        ImageFormat::Jpeg => jpeg::tail(bytes) == JpegTail::Truncated,
        // RIFF declares its payload length at offset 4; a file shorter than that was cut off.
        ImageFormat::WebP => bytes.get(4..8).is_some_and(|b| {
            let riff_len = u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            riff_len + 8 > bytes.len() as u64
        }),
        _ => false,
    }
}

/// `image`'s own allocation cap, a second line of defence behind our header check (some decoders
/// allocate intermediate buffers that the header check cannot see). Sized so that any image within
/// `max_pixels` fits even as 16-bit RGBA with a decoder-side copy.
fn image_limits(limits: &DecodeLimits) -> image::Limits {
    let mut l = image::Limits::default();
    l.max_alloc = Some(limits.max_pixels.saturating_mul(16).saturating_add(64 * 1024 * 1024));
    l
}

/// Dimensions from the header only, with no limits (used on the error path to name the size).
fn header_dimensions(bytes: &[u8], format: ImageFormat) -> Result<(u32, u32)> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.no_limits();
    let decoder = reader.into_decoder().map_err(|e| map_image_error(e, format_name(format)))?;
    Ok(decoder.dimensions())
}

fn check_dimensions(width: u32, height: u32, limits: &DecodeLimits) -> Result<()> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(too_many_pixels(width, height, limits));
    }
    if width < limits.min_side || height < limits.min_side {
        return Err(VisionError::TooSmall { width, height, min: limits.min_side });
    }
    Ok(())
}

fn too_many_pixels(width: u32, height: u32, limits: &DecodeLimits) -> VisionError {
    VisionError::TooManyPixels { width, height, pixels: u64::from(width) * u64::from(height), max: limits.max_pixels }
}

/// Sorts `image`'s errors into ours. Decoders report a short read in several ways (an io error, a
/// wrapped io error, or only a message), so all three are checked.
fn map_image_error(err: ImageError, format: &'static str) -> VisionError {
    if is_truncation(&err) {
        return VisionError::Truncated { format };
    }
    match err {
        ImageError::Unsupported(u) => VisionError::UnsupportedFormat { format: format!("{format} variant ({u})") },
        other => VisionError::Corrupt { format, detail: other.to_string() },
    }
}

fn is_truncation(err: &ImageError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::UnexpectedEof {
                return true;
            }
        }
        let msg = e.to_string().to_ascii_lowercase();
        if [
            "eof",
            "end of file",
            "unexpected end",
            "truncated",
            "no more data",
            // std's message for `read_exact` hitting the end, when a decoder stringifies the io error.
            "failed to fill whole buffer",
        ]
        .iter()
        .any(|needle| msg.contains(needle))
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// Converts any colour type to RGB8; images with an alpha channel are composited over white.
fn flatten_to_rgb8(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            // c·α + 255·(1−α), rounded; exact for α ∈ {0, 255}.
            let v = (u32::from(src[c]) * a + 255 * (255 - a) + 127) / 255;
            dst[c] = v as u8;
        }
    }
    out
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "scaled_tests.rs"]
mod scaled_tests;
