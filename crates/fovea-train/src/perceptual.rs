//! Perceptual hashing, used by the dataset builder to find near-duplicate images.
//!
//! Byte-level hashes (sha256) only catch exact copies. The same photo re-saved as JPEG, resized or slightly
//! brightened has different bytes, and if one copy lands in training and another in the benchmark the benchmark
//! silently measures memorisation. A difference hash ("dHash") survives these edits: it only records whether each
//! cell of a tiny grayscale thumbnail is brighter than its right-hand neighbour, which global brightness shifts,
//! rescaling and mild compression rarely change.

use image::imageops::{self, FilterType};
use image::{ImageBuffer, Luma, RgbImage};

/// Thumbnail width: one more column than bits per row, because each bit compares two neighbours.
const HASH_WIDTH: u32 = 9;
/// Thumbnail height: eight rows of eight comparisons give 64 bits.
const HASH_HEIGHT: u32 = 8;

/// Cells closer than this (in 0..=1 luma, about 1/40 of a grey level) count as equal. Resampling leaves float
/// rounding noise of order 1e-7 between cells of a flat image; without a tolerance that noise would decide bits,
/// and uniform areas (blank frames, sky) would hash arbitrarily instead of to 0.
const FLAT_TOLERANCE: f32 = 1e-4;

/// Difference hash of `img`: 64 bits, bit `row * 8 + col` is set when thumbnail cell `(col, row)` is brighter
/// than cell `(col + 1, row)` (by more than [`FLAT_TOLERANCE`]).
///
/// The image is converted to floating-point luma (Rec. 601 weights, in 0..=1) *before* shrinking, and the
/// thumbnail stays in floating point, so that rounding to 8 bits cannot flip comparisons between nearly equal
/// cells. The triangle filter scales its support with the reduction ratio, i.e. it averages every source pixel
/// into the thumbnail instead of sampling a few, which is what makes the hash insensitive to resizing and JPEG noise.
///
/// An empty (0×0) image and a perfectly uniform image both hash to 0; any two uniform images therefore count as
/// near duplicates of each other, which is the desired outcome for blank frames.
pub fn dhash(img: &RgbImage) -> u64 {
    if img.width() == 0 || img.height() == 0 {
        return 0;
    }
    let luma: ImageBuffer<Luma<f32>, Vec<f32>> = ImageBuffer::from_fn(img.width(), img.height(), |x, y| {
        let [r, g, b] = img.get_pixel(x, y).0;
        // Scaled to 0..=1: `resize` clamps float pixels to that range.
        Luma([(0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)) / 255.0])
    });
    let small = imageops::resize(&luma, HASH_WIDTH, HASH_HEIGHT, FilterType::Triangle);
    let mut hash = 0u64;
    for row in 0..HASH_HEIGHT {
        for col in 0..HASH_WIDTH - 1 {
            let left = small.get_pixel(col, row).0[0];
            let right = small.get_pixel(col + 1, row).0[0];
            if left - right > FLAT_TOLERANCE {
                hash |= 1 << (row * (HASH_WIDTH - 1) + col);
            }
        }
    }
    hash
}

/// Number of differing bits between two hashes; 0 means identical, about 32 is typical for unrelated images.
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::Rgb;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A smooth, photo-like test image: a handful of random soft blobs over a gradient. Pure noise would be a poor
    /// stand-in for photos, since every resize would change it completely.
    fn synthetic(seed: u64, width: u32, height: u32) -> RgbImage {
        let mut rng = StdRng::seed_from_u64(seed);
        let blobs: Vec<(f32, f32, f32, [f32; 3])> = (0..8)
            .map(|_| {
                let colour =
                    [rng.random_range(-120.0..120.0), rng.random_range(-120.0..120.0), rng.random_range(-120.0..120.0)];
                (rng.random_range(0.0..1.0), rng.random_range(0.0..1.0), rng.random_range(0.05..0.3), colour)
            })
            .collect();
        let tilt: f32 = rng.random_range(-60.0..60.0);
        RgbImage::from_fn(width, height, |x, y| {
            let (u, v) = (x as f32 / width as f32, y as f32 / height as f32);
            let mut px = [128.0 + tilt * (u - 0.5); 3];
            for &(cx, cy, radius, colour) in &blobs {
                let d2 = ((u - cx).powi(2) + (v - cy).powi(2)) / (radius * radius);
                let weight = (-d2).exp();
                for (channel, c) in px.iter_mut().zip(colour) {
                    *channel += weight * c;
                }
            }
            Rgb(px.map(|c| c.clamp(0.0, 255.0) as u8))
        })
    }

    fn jpeg_round_trip(img: &RgbImage, quality: u8) -> RgbImage {
        let mut bytes = Vec::new();
        JpegEncoder::new_with_quality(&mut bytes, quality).encode_image(img).expect("encode test image");
        image::load_from_memory(&bytes).expect("decode test image").to_rgb8()
    }

    #[test]
    fn hamming_counts_differing_bits() {
        assert_eq!(hamming(0, 0), 0);
        assert_eq!(hamming(0, u64::MAX), 64);
        assert_eq!(hamming(0b1011, 0b0001), 2);
    }

    #[test]
    fn empty_and_uniform_images_hash_to_zero() {
        assert_eq!(dhash(&RgbImage::new(0, 0)), 0);
        assert_eq!(dhash(&RgbImage::new(0, 10)), 0);
        assert_eq!(dhash(&RgbImage::from_pixel(40, 30, Rgb([90, 10, 200]))), 0);
        // Tiny images are upscaled rather than rejected.
        let _ = dhash(&RgbImage::from_pixel(1, 1, Rgb([1, 2, 3])));
    }

    #[test]
    fn hash_is_deterministic() {
        let img = synthetic(7, 320, 240);
        assert_eq!(dhash(&img), dhash(&img.clone()));
    }

    #[test]
    fn edited_copies_stay_close() {
        for seed in 0..12 {
            let original = synthetic(seed, 480, 360);
            let h = dhash(&original);
            let resized = imageops::resize(&original, 200, 150, FilterType::Lanczos3);
            let brightened = RgbImage::from_fn(original.width(), original.height(), |x, y| {
                Rgb(original.get_pixel(x, y).0.map(|c| c.saturating_add(12)))
            });
            let jpeg = jpeg_round_trip(&original, 75);
            for (edit, copy) in [("resized", resized), ("brightened", brightened), ("jpeg", jpeg)] {
                let distance = hamming(h, dhash(&copy));
                assert!(distance <= 4, "seed {seed}: {edit} copy is {distance} bits away");
            }
        }
    }

    #[test]
    fn different_images_are_far_apart() {
        let hashes: Vec<u64> = (100..112).map(|seed| dhash(&synthetic(seed, 320, 240))).collect();
        for h in &hashes {
            // A structured image sets a fair share of bits; a degenerate hash would make every test here vacuous.
            assert!((8..=56).contains(&h.count_ones()), "hash {h:#018x} looks degenerate");
        }
        for (i, &a) in hashes.iter().enumerate() {
            for &b in &hashes[i + 1..] {
                assert!(hamming(a, b) > 10, "unrelated images only {} bits apart", hamming(a, b));
            }
        }
    }
}
