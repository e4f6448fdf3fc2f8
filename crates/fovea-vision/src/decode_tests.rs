//! Decoding tests. Fixtures are encoded in memory (see `crate::fixtures`); only the CMYK files,
//! which `image` cannot write, live under `tests/data/` (regenerate with `make_cmyk.py` there).

use std::time::{Duration, Instant};

use super::*;
use crate::fixtures::*;
use image::codecs::gif::GifEncoder;
use image::{DynamicImage, Frame, GrayAlphaImage, GrayImage, ImageBuffer, ImageFormat, LumaA, Rgb, Rgba, RgbaImage};

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

fn code(bytes: &[u8]) -> &'static str {
    decode(bytes, &limits()).unwrap_err().code()
}

fn close(a: Rgb<u8>, b: [u8; 3], tol: u8) -> bool {
    a.0.iter().zip(b).all(|(&x, y)| x.abs_diff(y) <= tol)
}

/// 64×32, top-left quadrant red, top-right green, bottom half blue: tells apart all 8 orientations.
fn quadrants() -> RgbImage {
    RgbImage::from_fn(64, 32, |x, y| match (x < 32, y < 16) {
        (true, true) => Rgb([255, 0, 0]),
        (false, true) => Rgb([0, 255, 0]),
        _ => Rgb([0, 0, 255]),
    })
}

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const WHITE: [u8; 3] = [255, 255, 255];

// ---- every format decodes ------------------------------------------------------------------

#[test]
fn lossless_formats_roundtrip_exactly() {
    let img = gradient(40, 30);
    for format in [ImageFormat::Png, ImageFormat::WebP, ImageFormat::Bmp, ImageFormat::Tiff] {
        let bytes = encode(&DynamicImage::ImageRgb8(img.clone()), format);
        let out = decode(&bytes, &limits()).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(out, img, "{format:?}");
    }
}

#[test]
fn jpeg_decodes_close_to_source() {
    let img = quadrants();
    let bytes = encode(&DynamicImage::ImageRgb8(img), ImageFormat::Jpeg);
    let out = decode(&bytes, &limits()).unwrap();
    assert_eq!(out.dimensions(), (64, 32));
    assert!(close(*out.get_pixel(8, 8), RED, 40));
    assert!(close(*out.get_pixel(56, 8), GREEN, 40));
    assert!(close(*out.get_pixel(32, 28), BLUE, 40));
}

#[test]
fn grayscale_becomes_equal_rgb() {
    let gray = GrayImage::from_fn(32, 24, |x, y| image::Luma([(x * 7 + y) as u8]));
    for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Tiff] {
        let bytes = encode(&DynamicImage::ImageLuma8(gray.clone()), format);
        let out = decode(&bytes, &limits()).unwrap();
        for (x, y, p) in out.enumerate_pixels() {
            assert!(p[0] == p[1] && p[1] == p[2], "{format:?} not gray at {x},{y}");
            if format != ImageFormat::Jpeg {
                assert_eq!(p[0], gray.get_pixel(x, y)[0]);
            }
        }
    }
}

#[test]
fn sixteen_bit_is_scaled_not_truncated() {
    // 0xABCD must become 0xAB (value / 257, rounded), not the low byte 0xCD.
    let rgb16: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_pixel(20, 20, Rgb([0xABCD, 0xFFFF, 0x0000]));
    let gray16: ImageBuffer<image::Luma<u16>, Vec<u16>> = ImageBuffer::from_pixel(20, 20, image::Luma([0x8080]));
    for format in [ImageFormat::Png, ImageFormat::Tiff] {
        let out = decode(&encode(&DynamicImage::ImageRgb16(rgb16.clone()), format), &limits()).unwrap();
        assert_eq!(*out.get_pixel(3, 3), Rgb([0xAB, 0xFF, 0x00]), "{format:?}");
        let out = decode(&encode(&DynamicImage::ImageLuma16(gray16.clone()), format), &limits()).unwrap();
        assert_eq!(*out.get_pixel(3, 3), Rgb([0x80, 0x80, 0x80]), "{format:?}");
    }
}

#[test]
fn alpha_is_composited_over_white() {
    let rgba = RgbaImage::from_fn(30, 20, |x, _| match x / 10 {
        0 => Rgba([255, 0, 0, 255]), // opaque red stays red
        1 => Rgba([0, 0, 0, 0]),     // fully transparent becomes white
        _ => Rgba([0, 0, 255, 128]), // half blue over white
    });
    for format in [ImageFormat::Png, ImageFormat::WebP, ImageFormat::Tiff] {
        let out = decode(&encode(&DynamicImage::ImageRgba8(rgba.clone()), format), &limits()).unwrap();
        assert_eq!(out.get_pixel(5, 5).0, RED, "{format:?}");
        assert_eq!(out.get_pixel(15, 5).0, WHITE, "{format:?}");
        assert_eq!(out.get_pixel(25, 5).0, [127, 127, 255], "{format:?}");
    }
}

#[test]
fn gray_alpha_is_composited_over_white() {
    let la = GrayAlphaImage::from_fn(20, 20, |x, _| if x < 10 { LumaA([0, 0]) } else { LumaA([40, 255]) });
    let out = decode(&encode(&DynamicImage::ImageLumaA8(la), ImageFormat::Png), &limits()).unwrap();
    assert_eq!(out.get_pixel(2, 2).0, WHITE);
    assert_eq!(out.get_pixel(15, 2).0, [40, 40, 40]);
}

#[test]
fn palette_png_with_transparency() {
    // image's encoder never writes palettes, so use the png crate directly: 2-colour palette,
    // entry 1 transparent through tRNS.
    let (w, h) = (20u32, 20u32);
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(vec![10, 200, 30, 0, 0, 0]);
        enc.set_trns(vec![255, 0]);
        let data: Vec<u8> = (0..w * h).map(|i| u8::from(i % w >= 10)).collect();
        let mut writer = enc.write_header().unwrap();
        writer.write_image_data(&data).unwrap();
    }
    let out = decode(&bytes, &limits()).unwrap();
    assert_eq!(out.get_pixel(2, 2).0, [10, 200, 30]);
    assert_eq!(out.get_pixel(15, 2).0, WHITE);
}

#[test]
fn gif_first_frame_with_transparency() {
    let frame =
        |c: Rgba<u8>| Frame::new(RgbaImage::from_fn(24, 24, |x, _| if x < 12 { c } else { Rgba([0, 0, 0, 0]) }));
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut bytes);
        enc.encode_frames([frame(Rgba([255, 0, 0, 255])), frame(Rgba([0, 255, 0, 255]))]).unwrap();
    }
    let out = decode(&bytes, &limits()).unwrap();
    assert_eq!(out.dimensions(), (24, 24));
    assert!(close(*out.get_pixel(3, 3), RED, 8), "first frame, not the second");
    assert_eq!(out.get_pixel(20, 3).0, WHITE);
}

fn cmyk_fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    std::fs::read(path).unwrap()
}

#[test]
fn cmyk_jpeg_converts_to_rgb() {
    // Adobe-style (inverted) CMYK written by Pillow: quadrants red, green / blue, white.
    let out = decode(&cmyk_fixture("cmyk.jpg"), &limits()).unwrap();
    assert_eq!(out.dimensions(), (32, 32));
    for (x, y, want) in [(6, 6, RED), (26, 6, GREEN), (6, 26, BLUE), (26, 26, WHITE)] {
        let got = *out.get_pixel(x, y);
        assert!(close(got, want, 24), "at {x},{y}: got {got:?}, want {want:?}");
    }
}

#[test]
fn cmyk_tiff_converts_to_rgb() {
    let out = decode(&cmyk_fixture("cmyk.tif"), &limits()).unwrap();
    for (x, y, want) in [(6, 6, RED), (26, 6, GREEN), (6, 26, BLUE), (26, 26, WHITE)] {
        let got = *out.get_pixel(x, y);
        assert!(close(got, want, 2), "at {x},{y}: got {got:?}, want {want:?}");
    }
}

// ---- EXIF orientation ----------------------------------------------------------------------

fn oriented(orientation: u16) -> RgbImage {
    let jpeg = encode(&DynamicImage::ImageRgb8(quadrants()), ImageFormat::Jpeg);
    decode(&with_exif_orientation(&jpeg, orientation), &limits()).unwrap()
}

#[test]
fn exif_orientation_6_rotates_clockwise() {
    let out = oriented(6);
    assert_eq!(out.dimensions(), (32, 64), "width and height swap");
    // Stored left → displayed top; stored top row → displayed right column.
    assert!(close(*out.get_pixel(24, 16), RED, 40));
    assert!(close(*out.get_pixel(24, 48), GREEN, 40));
    assert!(close(*out.get_pixel(6, 32), BLUE, 40));
}

#[test]
fn exif_orientations_3_8_2_and_1() {
    let out = oriented(3); // 180°
    assert_eq!(out.dimensions(), (64, 32));
    assert!(close(*out.get_pixel(8, 24), GREEN, 40));
    assert!(close(*out.get_pixel(56, 24), RED, 40));
    assert!(close(*out.get_pixel(32, 4), BLUE, 40));

    let out = oriented(8); // 90° counter-clockwise
    assert_eq!(out.dimensions(), (32, 64));
    assert!(close(*out.get_pixel(6, 48), RED, 40));
    assert!(close(*out.get_pixel(6, 16), GREEN, 40));
    assert!(close(*out.get_pixel(26, 32), BLUE, 40));

    let out = oriented(2); // mirrored
    assert!(close(*out.get_pixel(8, 8), GREEN, 40));
    assert!(close(*out.get_pixel(56, 8), RED, 40));

    let out = oriented(1); // as stored
    assert!(close(*out.get_pixel(8, 8), RED, 40));
}

#[test]
fn invalid_orientation_value_is_ignored() {
    let out = oriented(42);
    assert_eq!(out.dimensions(), (64, 32));
    assert!(close(*out.get_pixel(8, 8), RED, 40));
}

// ---- bad input -----------------------------------------------------------------------------

#[test]
fn empty_input() {
    assert_eq!(code(&[]), "empty");
}

#[test]
fn too_many_bytes() {
    let bytes = encode(&DynamicImage::ImageRgb8(gradient(20, 20)), ImageFormat::Png);
    let small = DecodeLimits { max_bytes: 100, ..limits() };
    let err = decode(&bytes, &small).unwrap_err();
    assert_eq!(err.code(), "too_large");
    assert!(err.to_string().contains("limit is 100 bytes"), "{err}");
}

#[test]
fn random_bytes_and_text_are_not_images() {
    assert_eq!(code(&noise(4096, 1)), "not_an_image");
    assert_eq!(code(b"hello, this is a text file\n"), "not_an_image");
    assert_eq!(code(&[0x42]), "not_an_image");
}

#[test]
fn known_but_unsupported_formats() {
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
    let err = decode(heic, &limits()).unwrap_err();
    assert_eq!(err.code(), "unsupported_format");
    assert!(err.to_string().contains("HEIC"), "{err}");
    assert_eq!(code(b"\0\0\0\x1cftypavif\0\0\0\0avifmif1"), "unsupported_format");
    assert_eq!(code(b"%PDF-1.7\n"), "unsupported_format");
    assert_eq!(code(b"<?xml version=\"1.0\"?><svg xmlns=\"x\"/>"), "unsupported_format");
    // Formats image can read but we do not accept.
    assert_eq!(code(b"qoif\0\0\0\x20\0\0\0\x20\x03\x00"), "unsupported_format");
    assert_eq!(code(b"P6\n32 32\n255\n"), "unsupported_format");
}

fn truncate(bytes: &[u8], fraction: f64) -> &[u8] {
    &bytes[..(bytes.len() as f64 * fraction) as usize]
}

#[test]
fn truncated_png_and_jpeg() {
    // Noise does not compress, so the cut falls well inside the pixel data.
    let img = RgbImage::from_raw(64, 64, noise(64 * 64 * 3, 5)).unwrap();
    for format in [ImageFormat::Png, ImageFormat::Jpeg] {
        let bytes = encode(&DynamicImage::ImageRgb8(img.clone()), format);
        for fraction in [0.05, 0.3, 0.6, 0.95] {
            let err = decode(truncate(&bytes, fraction), &limits()).unwrap_err();
            assert_eq!(err.code(), "truncated", "{format:?} at {fraction}: {err}");
        }
    }
    // Cut in the middle of the signature-checked header.
    let png = encode(&DynamicImage::ImageRgb8(img), ImageFormat::Png);
    assert_eq!(code(&png[..20]), "truncated");
}

#[test]
fn truncated_other_formats_are_refused() {
    let img = RgbImage::from_raw(64, 64, noise(64 * 64 * 3, 9)).unwrap();
    let mut wrong = Vec::new();
    for format in [ImageFormat::Gif, ImageFormat::WebP, ImageFormat::Bmp, ImageFormat::Tiff] {
        let bytes = encode(&DynamicImage::ImageRgb8(img.clone()), format);
        for fraction in [0.02, 0.1, 0.5, 0.9, 0.99] {
            let err = decode(truncate(&bytes, fraction), &limits()).unwrap_err();
            if err.code() != "truncated" {
                wrong.push(format!("{format:?} at {fraction}: {err}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn png_bomb_is_refused_from_the_header() {
    let bytes = png_claiming(100_000, 100_000);
    assert!(bytes.len() < 100);
    let start = Instant::now();
    let err = decode(&bytes, &limits()).unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(200), "{:?}", start.elapsed());
    assert_eq!(err.code(), "too_many_pixels");
    assert!(err.to_string().contains("100000x100000"), "{err}");
}

/// Overwrites a big-endian u16 pair (height, width) in a JPEG's SOF0 segment.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut jpeg = encode(&DynamicImage::ImageRgb8(gradient(32, 32)), ImageFormat::Jpeg);
    let sof = jpeg.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    jpeg
}

#[test]
fn other_bombs_are_refused_from_the_header() {
    let start = Instant::now();
    assert_eq!(code(&jpeg_claiming(60_000, 60_000)), "too_many_pixels");

    let mut gif = encode(&DynamicImage::ImageRgb8(gradient(32, 32)), ImageFormat::Gif);
    gif[6..10].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]); // logical screen 65535×65535
    assert_eq!(code(&gif), "too_many_pixels");

    let mut bmp = encode(&DynamicImage::ImageRgb8(gradient(32, 32)), ImageFormat::Bmp);
    bmp[18..22].copy_from_slice(&50_000i32.to_le_bytes());
    bmp[22..26].copy_from_slice(&50_000i32.to_le_bytes());
    assert_eq!(code(&bmp), "too_many_pixels");
    assert!(start.elapsed() < Duration::from_millis(500), "{:?}", start.elapsed());
}

#[test]
fn pixel_limit_is_configurable() {
    let bytes = encode(&DynamicImage::ImageRgb8(gradient(40, 30)), ImageFormat::Png);
    let tight = DecodeLimits { max_pixels: 1000, ..limits() };
    assert_eq!(decode(&bytes, &tight).unwrap_err().code(), "too_many_pixels");
    let exact = DecodeLimits { max_pixels: 1200, ..limits() };
    assert!(decode(&bytes, &exact).is_ok());
}

#[test]
fn too_small_images() {
    let one = encode(&DynamicImage::ImageRgb8(gradient(1, 1)), ImageFormat::Png);
    let err = decode(&one, &limits()).unwrap_err();
    assert_eq!(err.code(), "too_small");
    assert!(err.to_string().contains("1x1"), "{err}");
    let thin = encode(&DynamicImage::ImageRgb8(gradient(400, 15)), ImageFormat::Png);
    assert_eq!(code(&thin), "too_small");
    let edge = encode(&DynamicImage::ImageRgb8(gradient(16, 16)), ImageFormat::Png);
    assert!(decode(&edge, &limits()).is_ok());
}

#[test]
fn mutated_files_never_panic() {
    // A cheap fuzz pass: flip bytes and cut files of every format; any result but a panic is fine.
    let img = gradient(24, 20);
    let mut inputs: Vec<Vec<u8>> =
        [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Gif, ImageFormat::WebP, ImageFormat::Bmp, ImageFormat::Tiff]
            .iter()
            .map(|&f| encode(&DynamicImage::ImageRgb8(img.clone()), f))
            .collect();
    inputs.push(cmyk_fixture("cmyk.jpg"));
    let mut seed = 1;
    for original in &inputs {
        for _ in 0..150 {
            seed += 1;
            let r = noise(8, seed);
            let mut bytes = original.clone();
            for k in 0..(1 + r[0] % 4) as usize {
                let i = usize::from(u16::from_le_bytes([r[1 + k], r[2 + k]])) % bytes.len();
                bytes[i] = r[5 + k % 3];
            }
            if r[7].is_multiple_of(3) {
                bytes.truncate(usize::from(r[6]) * bytes.len() / 256 + 1);
            }
            let _ = decode(&bytes, &limits());
        }
    }
}

// ---- files ---------------------------------------------------------------------------------

#[test]
fn decode_file_reads_sniffs_and_checks_size() {
    let dir = std::env::temp_dir().join(format!("fovea-vision-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A PNG named .jpg: the bytes decide, not the extension.
    let path = dir.join("photo.jpg");
    let img = gradient(30, 20);
    std::fs::write(&path, encode(&DynamicImage::ImageRgb8(img.clone()), ImageFormat::Png)).unwrap();
    assert_eq!(decode_file(&path, &limits()).unwrap(), img);

    let small = DecodeLimits { max_bytes: 10, ..limits() };
    assert_eq!(decode_file(&path, &small).unwrap_err().code(), "too_large");

    let err = decode_file(&dir.join("missing.png"), &limits()).unwrap_err();
    assert_eq!(err.code(), "io");
    assert!(err.to_string().contains("missing.png"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
