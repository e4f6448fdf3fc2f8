//! Reduced-size JPEG decoding ([`decode_for_input`]): when it applies, that it stays close to the full decode, and
//! that everything else decodes exactly as [`decode`] does.

use super::*;
use crate::fixtures::{encode, jpeg, photo_like, with_exif_orientation};
use crate::to_input;

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn mean_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

#[test]
fn twelve_megapixel_jpeg_decodes_at_a_quarter_and_preprocesses_like_the_full_decode() {
    let bytes = jpeg(&photo_like(4000, 3000, 21), 90);
    let full = decode(&bytes, &limits()).unwrap();
    assert_eq!(full.dimensions(), (4000, 3000));
    let small = decode_for_input(&bytes, &limits(), 224).unwrap();
    // 3000 / 4 = 750 rows >= 512 = input_min_side(224); an eighth (375) would be too few.
    assert_eq!(input_min_side(224), 512);
    assert_eq!(small.dimensions(), (1000, 750));
    for size in [224, 260] {
        let (want, got) = (to_input(&full, size), to_input(&small, size));
        let (cos, diff) = (cosine(&want, &got), mean_abs(&want, &got));
        // Measured cosine 0.99995 / 0.99992 and mean difference 0.0022 / 0.0030 (under half a grey level) for
        // 224 / 260; asserted: cosine above 0.9995 and a mean difference under one and a half grey levels.
        assert!(cos > 0.9995 && diff < 1.5 / 128.0, "size {size}: cosine {cos}, mean |diff| {diff}");
    }
}

#[test]
fn exif_orientation_applies_to_the_reduced_decode() {
    let bytes = with_exif_orientation(&jpeg(&photo_like(2400, 1600, 3), 85), 6);
    let full = decode(&bytes, &limits()).unwrap();
    let small = decode_for_input(&bytes, &limits(), 224).unwrap();
    // 1600 rows at half = 800 >= 512, stored 1200 x 800, turned upright to 800 x 1200.
    assert_eq!(full.dimensions(), (1600, 2400));
    assert_eq!(small.dimensions(), (800, 1200));
    let (want, got) = (to_input(&full, 224), to_input(&small, 224));
    assert!(cosine(&want, &got) > 0.9995, "{}", cosine(&want, &got));
    // What a catalog records is the photo's upright full size, not the reduced pixels'.
    let (sized, dims) = decode_for_input_sized(&bytes, &limits(), 224).unwrap();
    assert_eq!((sized.dimensions(), dims), ((800, 1200), (1600, 2400)));
    let png = encode(&image::DynamicImage::ImageRgb8(photo_like(300, 200, 1)), image::ImageFormat::Png);
    assert_eq!(decode_for_input_sized(&png, &limits(), 224).unwrap().1, (300, 200));
}

#[test]
fn grayscale_jpeg_reduces_to_equal_rgb() {
    let gray = image::DynamicImage::ImageRgb8(photo_like(2048, 2048, 5)).into_luma8();
    let bytes = encode(&image::DynamicImage::ImageLuma8(gray), image::ImageFormat::Jpeg);
    let small = decode_for_input(&bytes, &limits(), 224).unwrap();
    assert_eq!(small.dimensions(), (512, 512)); // a quarter: exactly 512 rows
    assert!(small.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
}

#[test]
fn small_jpegs_and_other_formats_decode_in_full() {
    // 1000 rows at half would be 500 < 512: no reduction, so exactly what decode gives.
    let bytes = jpeg(&photo_like(1400, 1000, 7), 90);
    assert_eq!(decode_for_input(&bytes, &limits(), 224).unwrap(), decode(&bytes, &limits()).unwrap());
    // A network input larger than the picture never reduces it.
    let big = jpeg(&photo_like(2048, 2048, 8), 80);
    assert_eq!(decode_for_input(&big, &limits(), 2048).unwrap().dimensions(), (2048, 2048));
    let png = encode(&image::DynamicImage::ImageRgb8(photo_like(2048, 1536, 9)), image::ImageFormat::Png);
    assert_eq!(decode_for_input(&png, &limits(), 224).unwrap(), decode(&png, &limits()).unwrap());
}

#[test]
fn refusals_are_the_same_as_decode() {
    let bytes = jpeg(&photo_like(2048, 2048, 10), 80);
    let cut = &bytes[..bytes.len() * 2 / 3];
    assert_eq!(decode_for_input(cut, &limits(), 224).unwrap_err().code(), "truncated");
    let tight = DecodeLimits { max_pixels: 2048 * 2047, ..limits() };
    assert_eq!(decode_for_input(&bytes, &tight, 224).unwrap_err().code(), "too_many_pixels");
    // Garbage in the entropy-coded data: the reduced decoder gives up and the main decoder judges, as for decode.
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid..mid + 64].fill(0xFF);
    let (a, b) = (decode(&bad, &limits()), decode_for_input(&bad, &limits(), 224));
    assert_eq!(a.is_ok(), b.is_ok(), "{a:?} vs {b:?}");
}
