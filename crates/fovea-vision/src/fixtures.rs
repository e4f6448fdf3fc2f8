//! Test fixtures built in memory, so the tests need no binary files (except the CMYK ones under
//! `tests/data/`, which `image` cannot encode).

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// A smooth, asymmetric pattern: every pixel differs from its mirror images.
pub fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x * 255 / w.max(2).saturating_sub(1)).min(255) as u8,
            (y * 255 / h.max(2).saturating_sub(1)).min(255) as u8,
            128,
        ])
    })
}

/// Encodes with `image`'s encoder for `format` (WebP is lossless there).
pub fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode fixture");
    out.into_inner()
}

/// CRC-32 (IEEE) as PNG chunks need it; bitwise, because speed does not matter here.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A well-formed, 70-byte PNG whose header claims `w`×`h` RGB pixels: a decompression bomb's
/// shape (the IDAT is an empty stored zlib block).
pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, adaptive filter, no interlace
    png_chunk(&mut out, b"IHDR", &ihdr);
    // zlib header, one final stored block of length 0, Adler-32 of nothing.
    png_chunk(&mut out, b"IDAT", &[0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0, 0, 0, 1]);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// Inserts an APP1 Exif segment holding only an Orientation tag right after the JPEG's SOI.
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec(); // big-endian TIFF, IFD0 at offset 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&tiff);

    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Deterministic pseudo-random bytes (xorshift), for noise images and garbage input.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// A camera-like test picture: smooth shading, textures from coarse to one-pixel fine, hard-edged shapes and a little
/// sensor noise, all deterministic in `seed`. Fine detail matters: reduced-size JPEG decoding and resizing differ
/// most there.
pub fn photo_like(w: u32, h: u32, seed: u64) -> RgbImage {
    let grain = noise((w * h) as usize, seed);
    let (fw, fh) = (w as f32, h as f32);
    RgbImage::from_fn(w, h, |x, y| {
        let (u, v) = (x as f32 / fw, y as f32 / fh);
        let shade = 90.0 * u + 60.0 * (v * 3.1).sin();
        let texture = 25.0 * ((x as f32 / 3.0).sin() * (y as f32 / 5.0).cos()) + 12.0 * (((x ^ y) & 1) as f32);
        let disc = ((u - 0.4).powi(2) + (v - 0.55).powi(2)) < 0.04;
        let bar = (0.7..0.78).contains(&u) && v > 0.2;
        let n = f32::from(grain[(y * w + x) as usize]) / 255.0 * 16.0 - 8.0;
        let base = 40.0 + shade + texture + n;
        let px = |c: f32| c.clamp(0.0, 255.0) as u8;
        match (disc, bar) {
            (true, _) => Rgb([px(200.0 + n), px(60.0 + texture), px(40.0)]),
            (_, true) => Rgb([px(20.0), px(30.0 + n), px(170.0 + texture)]),
            _ => Rgb([px(base), px(base * 0.8 + 20.0), px(255.0 - base * 0.6)]),
        }
    })
}

/// JPEG at `quality` (1-100) as `image` writes it: full-resolution chroma (4:4:4).
pub fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(img).expect("encode JPEG");
    out
}

/// JPEG at `quality` (1-100) with chroma halved both ways (4:2:0), as phone cameras write them.
pub fn jpeg_420(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    let (w, h) = (u16::try_from(img.width()).expect("width"), u16::try_from(img.height()).expect("height"));
    encoder.encode(img.as_raw(), w, h, jpeg_encoder::ColorType::Rgb).expect("encode JPEG");
    out
}
