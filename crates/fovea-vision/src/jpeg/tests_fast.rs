//! The fast reduced decoder against jpeg-decoder (an independent implementation of the same arithmetic) and
//! against itself: speculative splits anywhere must give exactly the sequential result.

use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

use super::*;
use crate::fixtures::photo_like;

const NO_LIMIT: usize = usize::MAX;

fn encode(w: u16, h: u16, seed: u64, sampling: Option<SamplingFactor>, restart: u16, quality: u8) -> Vec<u8> {
    let img = photo_like(u32::from(w), u32::from(h), seed);
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, quality);
    let color = match sampling {
        Some(s) => {
            enc.set_sampling_factor(s);
            ColorType::Rgb
        }
        None => ColorType::Luma,
    };
    if restart > 0 {
        enc.set_restart_interval(restart);
    }
    let pixels = match sampling {
        Some(_) => img.into_raw(),
        None => image::DynamicImage::ImageRgb8(img).into_luma8().into_raw(),
    };
    enc.encode(&pixels, w, h, color).expect("encode");
    out
}

/// Largest difference of any channel of any pixel, and the share of values that differ at all.
fn compare(a: &image::RgbImage, b: &image::RgbImage) -> (u8, f64) {
    assert_eq!(a.dimensions(), b.dimensions());
    let diffs: Vec<u8> = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y)).collect();
    let differing = diffs.iter().filter(|&&d| d > 0).count() as f64 / diffs.len() as f64;
    (diffs.into_iter().max().unwrap_or(0), differing)
}

#[test]
fn matches_jpeg_decoder_for_every_sampling_scale_size_and_restart_interval() {
    let samplings = [
        None,
        Some(SamplingFactor::F_1_1),
        Some(SamplingFactor::F_2_1),
        Some(SamplingFactor::F_1_2),
        Some(SamplingFactor::F_2_2),
    ];
    let mut checked = 0;
    for (i, sampling) in samplings.into_iter().enumerate() {
        // Sizes that are and are not whole MCUs.
        for (w, h) in [(256u16, 192u16), (333, 251), (97, 130)] {
            for restart in [0u16, 1, 7] {
                let bytes = encode(w, h, i as u64 * 7 + u64::from(w), sampling, restart, 88);
                let frame = header::parse(&bytes).expect("supported kind");
                assert_eq!(frame.restart_interval, usize::from(restart));
                for k in [1usize, 2, 4] {
                    let reference = decode_scaled(&bytes, u32::from(w), u32::from(h), k as u32, NO_LIMIT).unwrap();
                    for threads in [1, 3] {
                        let ours = fast_scaled(&bytes, &frame, k, NO_LIMIT, threads).expect("decodes");
                        let (max, share) = compare(&ours, &reference);
                        // The same integer arithmetic, and with SSSE3 the same colour conversion too. Without
                        // it each side converts its own way: the 16-bit and 20-bit fixed points round at most
                        // 1.1% of values differently, by one.
                        #[cfg(target_arch = "x86_64")]
                        let exact = std::arch::is_x86_feature_detected!("ssse3");
                        #[cfg(not(target_arch = "x86_64"))]
                        let exact = false;
                        assert!(
                            if exact { max == 0 } else { max <= 1 && share < 0.03 },
                            "{sampling:?} {w}x{h} restart {restart} 1/{} threads {threads}: max {max}, share {share}",
                            8 / k
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 5 * 3 * 3 * 3 * 2);
}

/// Coefficients of the whole scan, sequentially and cut at `cuts`.
fn coefficients(bytes: &[u8], per_block: usize, cuts: &[usize]) -> Option<Vec<i16>> {
    let frame = header::parse(bytes).unwrap();
    let data = unstuff::unstuff(bytes, frame.scan_start);
    scan::decode_cut(&frame, &data, per_block, 1, cuts).map(|c| c.to_vec())
}

#[test]
fn a_speculative_split_at_any_byte_gives_the_sequential_result() {
    for (sampling, seed) in [(Some(SamplingFactor::F_2_2), 1), (Some(SamplingFactor::F_1_1), 2), (None, 3)] {
        let bytes = encode(160, 120, seed, sampling, 0, 90);
        for per_block in [1, 5, 25] {
            let sequential = coefficients(&bytes, per_block, &[]).unwrap();
            let frame = header::parse(&bytes).unwrap();
            let len = unstuff::unstuff(&bytes, frame.scan_start).len;
            for cut in 1..len {
                assert_eq!(
                    coefficients(&bytes, per_block, &[cut]).as_ref(),
                    Some(&sequential),
                    "{sampling:?}, {per_block} per block, cut at byte {cut} of {len}"
                );
            }
            // Several cuts, some of them close together.
            let cuts = [len / 7, len / 7 + 1, len / 3, len / 2, len / 2 + 40, len - 3];
            assert_eq!(coefficients(&bytes, per_block, &cuts).as_ref(), Some(&sequential));
        }
    }
}

#[test]
fn a_large_photo_decodes_on_several_threads_like_on_one() {
    let bytes = encode(2400, 1800, 11, Some(SamplingFactor::F_2_2), 0, 92);
    let frame = header::parse(&bytes).unwrap();
    let data = unstuff::unstuff(&bytes, frame.scan_start);
    assert!(data.len > 4 * 96 * 1024, "{} bytes: too few to split four ways", data.len);
    let one = scan::decode(&frame, &data, 5, 1).unwrap();
    let four = scan::decode(&frame, &data, 5, 4).unwrap();
    assert_eq!(four.to_vec(), one.to_vec());
    // The pieces the threads decoded are read in place, rows that straddle two gathered: same pixels.
    assert!(four.pieces() > 1, "the speculative chunks stayed pieces of their own");
    assert_eq!(reduce::rgb(&frame, &four, 5, 2, 4), reduce::rgb(&frame, &one, 5, 2, 1));
    let reference = decode_scaled(&bytes, 2400, 1800, 2, NO_LIMIT).unwrap();
    let (max, _) = compare(&fast_scaled(&bytes, &frame, 2, NO_LIMIT, 4).unwrap(), &reference);
    assert!(max <= 1);
}

#[test]
fn other_kinds_are_left_to_jpeg_decoder() {
    let img = photo_like(64, 48, 1);
    let mut progressive = Vec::new();
    let mut enc = Encoder::new(&mut progressive, 85);
    enc.set_progressive(true);
    enc.encode(img.as_raw(), 64, 48, ColorType::Rgb).unwrap();
    assert!(header::parse(&progressive).is_none());
    // Declared RGB through Adobe's APP14 marker.
    let mut adobe = Vec::new();
    let enc = Encoder::new(&mut adobe, 85);
    enc.encode(img.as_raw(), 64, 48, ColorType::Rgb).unwrap();
    let app14 = [0xFF, 0xEE, 0, 14, b'A', b'd', b'o', b'b', b'e', 0, 100, 0, 0, 0, 0, 0];
    adobe.splice(2..2, app14);
    assert!(header::parse(&adobe).is_none());
    assert!(header::parse(b"not a jpeg").is_none());
}

#[test]
fn damaged_data_is_refused_not_misread() {
    let bytes = encode(320, 240, 5, Some(SamplingFactor::F_2_2), 0, 90);
    let frame = header::parse(&bytes).unwrap();
    // Cut short: the blocks run out before the MCUs do.
    let mut cut = bytes[..bytes.len() / 2].to_vec();
    cut.extend_from_slice(&[0xFF, 0xD9]);
    assert!(fast_scaled(&cut, &frame, 2, NO_LIMIT, 1).is_none());
    // Over the memory limit: nothing is allocated.
    assert!(fast_scaled(&bytes, &frame, 2, 1000, 1).is_none());
    // Random bytes instead of entropy-coded data never panic, whatever they decode to.
    let mut noise = bytes.clone();
    let junk = crate::fixtures::noise(bytes.len() - frame.scan_start - 2, 9);
    for (b, j) in noise[frame.scan_start..].iter_mut().zip(junk) {
        *b = if j == 0xFF { 0 } else { j };
    }
    for threads in [1, 2] {
        let _ = fast_scaled(&noise, &frame, 2, NO_LIMIT, threads);
    }
}
