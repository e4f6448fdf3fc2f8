//! Geometry and normalisation shared by inference ([`to_input`]) and training ([`crate::Augment`]).

use image::imageops::{self, FilterType};
use image::RgbImage;

/// Subtracted from each 0–255 channel value before dividing by [`NORM_STD`].
pub const NORM_MEAN: f32 = 127.0;
/// Divisor after subtracting [`NORM_MEAN`]: values land in `[-0.9921875, 1.0]`.
pub const NORM_STD: f32 = 128.0;

/// Resampling filter for every resize in this crate.
///
/// Triangle (bilinear whose support widens with the scale factor, i.e. antialiased) is what
/// torchvision/Pillow use by default when training, so train- and serve-time pixels match; its
/// widened support averages all source pixels when shrinking a 24 MP photo, which a plain
/// bilinear lookup would alias. CatmullRom is marginally sharper but slower and rings on edges.
pub(crate) const FILTER: FilterType = FilterType::Triangle;

/// Fraction of the resized image that the centre crop keeps: the evaluation protocol the ImageNet
/// weights were scored with (timm / torchvision "resize 256, centre-crop 224"). Feeding the whole
/// shorter side instead shows the network a zoomed-out view it never saw in evaluation: on the cat
/// sample photo that moved the embedding to cosine 0.963 of the protocol's and flipped the top-1.
pub const CROP_FRACTION: f64 = 0.875;

/// The shorter-side length the image is resized to before the centre `size`×`size` crop:
/// `round(size / 0.875)`, i.e. 256 for Lite0 (224), 274 for Lite1 (240), 297 for Lite2 (260).
pub fn resize_size(size: u32) -> u32 {
    ((f64::from(size) / CROP_FRACTION).round() as u32).max(size)
}

/// The network input for `img`: shorter side resized to [`resize_size`]`(size)`, centre
/// `size`×`size` crop (the model's evaluation protocol, [`CROP_FRACTION`]), CHW order (all red,
/// then all green, then all blue; rows top to bottom), each value `(p − 127) / 128`. Returns
/// `3 * size * size` floats (none for `size == 0`).
///
/// The geometry is torchvision's `Resize(resize_size)` + `CenterCrop(size)` exactly (long side
/// truncated, crop offset rounded half to even): cropping in source coordinates first would
/// shift the view by a fraction of a pixel whenever the scale is not an integer ratio, which on a
/// furry cat is enough to move inputs measurably. Large photos are first shrunk by an exact
/// integer box average (see `reduce_factor`), so a 24 MP photo costs tens of milliseconds.
pub fn to_input(img: &RgbImage, size: u32) -> Vec<f32> {
    let (w, h) = img.dimensions();
    if size == 0 || w == 0 || h == 0 {
        return Vec::new();
    }
    let resize = resize_size(size);
    let k = reduce_factor(w.min(h), resize);
    let reduced;
    let src = if k > 1 {
        reduced = box_reduce(img, (0, 0, w / k * k, h / k * k), k);
        &reduced
    } else {
        img
    };
    let long = |l: u32, s: u32| ((u64::from(resize) * u64::from(l) / u64::from(s)) as u32).max(resize);
    let (nw, nh) = if w <= h { (resize, long(h, w)) } else { (long(w, h), resize) };
    if src.dimensions() == (nw, nh) {
        return centre_chw_normalised(src, size);
    }
    let origin = (crop_offset(nw - size), crop_offset(nh - size));
    chw_normalised(&filtered_resize_window(src, (nw, nh), origin, size))
}

/// Where the centre crop of `size` starts along a side of `d + size` pixels: rounded half to even, as torchvision's
/// `CenterCrop` does (`int(round(d / 2))`).
fn crop_offset(d: u32) -> u32 {
    if d % 2 == 1 && (d / 2) % 2 == 1 {
        d / 2 + 1
    } else {
        d / 2
    }
}

/// The centre `size`×`size` of `img` (which must be at least that large), at [`crop_offset`].
#[cfg(test)]
pub(crate) fn centre_crop(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    imageops::crop_imm(img, crop_offset(w - size), crop_offset(h - size), size, size).to_image()
}

/// The integer factor by which to box-average before the filtered resize, keeping at least
/// twice the target resolution: Pillow's `reducing_gap = 2` strategy. Averaging k×k blocks is
/// itself a correct (if soft) antialiasing filter, and the final Triangle resize from ≥ 2× the
/// target size restores the quality of a direct resize at a fraction of its cost.
pub(crate) fn reduce_factor(shorter_side: u32, size: u32) -> u32 {
    (shorter_side / size.saturating_mul(2).max(1)).max(1)
}

/// Averages each k×k block of the region `(x0, y0, width, height)` into one pixel (rounded);
/// right and bottom remainders are dropped. The region must lie inside `img`.
pub(crate) fn box_reduce(img: &RgbImage, region: (u32, u32, u32, u32), k: u32) -> RgbImage {
    // The workspace builds for baseline x86-64 (SSE2); this byte loop runs several times faster compiled for AVX2.
    // Integer arithmetic: the same result either way (tested).
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(img: &RgbImage, region: (u32, u32, u32, u32), k: u32) -> RgbImage {
            box_reduce_any(img, region, k)
        }
        // SAFETY: AVX2 was detected just above.
        return unsafe { avx2(img, region, k) };
    }
    box_reduce_any(img, region, k)
}

#[inline(always)]
fn box_reduce_any(img: &RgbImage, region: (u32, u32, u32, u32), k: u32) -> RgbImage {
    let (x0, y0, rw, rh) = region;
    let (w, h) = (rw / k, rh / k);
    let (k, wu) = (k as usize, w as usize);
    let stride = img.width() as usize * 3;
    let (x0, y0) = (x0 as usize, y0 as usize);
    let raw = img.as_raw();
    let area = (k * k) as u32;
    let mut out = Vec::with_capacity(wu * h as usize * 3);
    let mut acc = vec![0u32; wu * 3];
    for oy in 0..h as usize {
        acc.fill(0);
        for dy in 0..k {
            let start = (y0 + oy * k + dy) * stride + x0 * 3;
            let row = &raw[start..start + wu * k * 3];
            for (sums, block) in acc.chunks_exact_mut(3).zip(row.chunks_exact(k * 3)) {
                for px in block.chunks_exact(3) {
                    sums[0] += u32::from(px[0]);
                    sums[1] += u32::from(px[1]);
                    sums[2] += u32::from(px[2]);
                }
            }
        }
        out.extend(acc.iter().map(|&sum| ((sum + area / 2) / area) as u8));
    }
    RgbImage::from_raw(w, h, out).expect("buffer sized from the dimensions")
}

/// Resizes so the shorter side is `size`, keeping the aspect ratio (the long side is rounded and
/// never shorter than `size`).
pub(crate) fn resize_shorter_side(img: &RgbImage, size: u32) -> RgbImage {
    let k = reduce_factor(img.width().min(img.height()), size);
    let reduced;
    let img = if k > 1 {
        reduced = box_reduce(img, (0, 0, img.width(), img.height()), k);
        &reduced
    } else {
        img
    };
    let (w, h) = img.dimensions();
    let long = |l: u32, s: u32| {
        let scaled = (f64::from(l) * f64::from(size) / f64::from(s)).round() as u32;
        scaled.max(size)
    };
    let (nw, nh) = if w <= h { (size, long(h, w)) } else { (long(w, h), size) };
    if (nw, nh) == (w, h) {
        return img.clone();
    }
    filtered_resize(img, nw, nh)
}

/// [`FILTER`] through fast_image_resize's SIMD convolution: the same antialiased triangle filter as `image`'s (and
/// Pillow's `BILINEAR`), results within one grey level of `image`'s, about a tenth of its time (1000x750 to 341x256:
/// 5.1 ms against 0.32 ms on one Zen 4 core), which is most of the preprocessing of every upload. `image`'s resize
/// remains only for what fast_image_resize refuses (an empty image).
pub(crate) fn filtered_resize(img: &RgbImage, nw: u32, nh: u32) -> RgbImage {
    use fast_image_resize as fr;
    let resized = fr::images::ImageRef::new(img.width(), img.height(), img.as_raw(), fr::PixelType::U8x3)
        .map_err(|e| e.to_string())
        .and_then(|src| {
            let mut dst = fr::images::Image::new(nw, nh, fr::PixelType::U8x3);
            let options = fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear));
            fr::Resizer::new().resize(&src, &mut dst, &options).map_err(|e| e.to_string())?;
            RgbImage::from_raw(nw, nh, dst.into_vec()).ok_or_else(|| "buffer size".to_string())
        });
    resized.unwrap_or_else(|_| imageops::resize(img, nw, nh, FILTER))
}

/// The `size`x`size` window at `origin` of [`filtered_resize`]`(img, nw, nh)`, computing only that window: each output
/// pixel keeps the source position and filter support it has in the whole resize (fast_image_resize clamps the
/// support to the image, not to the crop box, as Pillow's `box` does), so this is the crop of the whole resize up to
/// floating-point rounding of the weights, for about half the work. From a large source, bands of rows are resized
/// on threads of their own.
pub(crate) fn filtered_resize_window(img: &RgbImage, (nw, nh): (u32, u32), origin: (u32, u32), size: u32) -> RgbImage {
    use fast_image_resize as fr;
    let (sx, sy) = (f64::from(img.width()) / f64::from(nw), f64::from(img.height()) / f64::from(nh));
    let large = u64::from(img.width()) * u64::from(img.height()) >= BANDED_PIXELS;
    let bands = if large { std::thread::available_parallelism().map_or(1, |n| n.get()).min(2) as u32 } else { 1 };
    let rows_per_band = size.div_ceil(bands).max(1);
    let mut out = vec![0u8; size as usize * size as usize * 3];
    let src = fr::images::ImageRef::new(img.width(), img.height(), img.as_raw(), fr::PixelType::U8x3);
    let resized = src.map_err(|e| e.to_string()).and_then(|src| {
        let band = |b: usize, rows: &mut [u8]| -> Result<(), String> {
            let (first, count) = (b as u32 * rows_per_band, (rows.len() / (size as usize * 3)) as u32);
            let mut dst =
                fr::images::Image::from_slice_u8(size, count, rows, fr::PixelType::U8x3).map_err(|e| e.to_string())?;
            let (x0, y0) = (f64::from(origin.0), f64::from(origin.1 + first));
            let options = fr::ResizeOptions::new()
                .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear))
                .crop(x0 * sx, y0 * sy, f64::from(size) * sx, f64::from(count) * sy);
            fr::Resizer::new().resize(&src, &mut dst, &options).map_err(|e| e.to_string())
        };
        let chunks = out.chunks_mut(rows_per_band as usize * size as usize * 3);
        crate::threads::on_threads(chunks, band)
            .into_iter()
            .try_for_each(|done| done.map_err(|_| "a resize thread panicked".to_string())?)
    });
    match resized {
        Ok(()) => RgbImage::from_raw(size, size, out).expect("sized above"),
        Err(_) => {
            let whole = imageops::resize(img, nw, nh, FILTER);
            imageops::crop_imm(&whole, origin.0, origin.1, size, size).to_image()
        }
    }
}

/// From this many source pixels on, [`filtered_resize_window`] resizes in two bands on two threads: below it a
/// thread start costs about what it saves.
const BANDED_PIXELS: u64 = 500_000;

/// Planar (CHW) floats, normalised with [`NORM_MEAN`] and [`NORM_STD`].
pub(crate) fn chw_normalised(img: &RgbImage) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    chw_rows(img, (0, 0), (w, h))
}

/// [`chw_normalised`] of the centre `size`×`size` crop (at [`crop_offset`]), read in place without a copy.
fn centre_chw_normalised(img: &RgbImage, size: u32) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let (x0, y0) = (crop_offset(w - size) as usize, crop_offset(h - size) as usize);
    chw_rows(img, (x0, y0), (size as usize, size as usize))
}

/// The `w x h` region at `(x0, y0)` as normalised planar floats, row by row.
fn chw_rows(img: &RgbImage, origin: (usize, usize), size: (usize, usize)) -> Vec<f32> {
    // Every upload's pixels pass through here. Compiled for AVX2 (where the CPU has it) the stride-3 loop runs several
    // times faster than the baseline x86-64 build; the same IEEE operations in the same order (Rust never contracts
    // to FMA), so the same floats (tested).
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(img: &RgbImage, origin: (usize, usize), size: (usize, usize)) -> Vec<f32> {
            chw_rows_any(img, origin, size)
        }
        // SAFETY: AVX2 was detected just above.
        return unsafe { avx2(img, origin, size) };
    }
    chw_rows_any(img, origin, size)
}

#[inline(always)]
fn chw_rows_any(img: &RgbImage, (x0, y0): (usize, usize), (w, h): (usize, usize)) -> Vec<f32> {
    let plane = w * h;
    let stride = img.width() as usize * 3;
    let mut out = vec![0.0f32; 3 * plane];
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    let norm = |v: u8| (f32::from(v) - NORM_MEAN) / NORM_STD;
    for (y, ((r, g), b)) in r.chunks_exact_mut(w).zip(g.chunks_exact_mut(w)).zip(b.chunks_exact_mut(w)).enumerate() {
        let start = (y0 + y) * stride + x0 * 3;
        let row = &img.as_raw()[start..start + w * 3];
        for (((px, r), g), b) in row.chunks_exact(3).zip(r.iter_mut()).zip(g.iter_mut()).zip(b.iter_mut()) {
            (*r, *g, *b) = (norm(px[0]), norm(px[1]), norm(px[2]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn value(p: u8) -> f32 {
        (f32::from(p) - NORM_MEAN) / NORM_STD
    }

    #[test]
    fn length_layout_and_range() {
        let img = RgbImage::from_fn(40, 30, |x, y| Rgb([x as u8, y as u8, 200]));
        for size in [1, 7, 30, 64] {
            let v = to_input(&img, size);
            assert_eq!(v.len(), 3 * (size * size) as usize);
            assert!(v.iter().all(|x| (-0.9921875..=1.0).contains(x)));
        }
        // Blue is constant, so its whole plane is one value; red and green vary.
        let v = to_input(&img, 16);
        let plane = 16 * 16;
        assert!(v[2 * plane..].iter().all(|&x| (x - value(200)).abs() < 1e-6));
        assert!(v[..plane].iter().any(|&x| (x - v[0]).abs() > 1e-3));
        assert!(to_input(&img, 0).is_empty());
    }

    #[test]
    fn extremes_map_to_the_documented_range() {
        let black = RgbImage::from_pixel(20, 20, Rgb([0, 0, 0]));
        let white = RgbImage::from_pixel(20, 20, Rgb([255, 255, 255]));
        assert!(to_input(&black, 8).iter().all(|&x| x == -127.0 / 128.0));
        assert!(to_input(&white, 8).iter().all(|&x| x == 1.0));
    }

    #[test]
    fn wide_image_is_centre_cropped() {
        // 300×100: left third red, middle third green, right third blue. The centre crop must be
        // entirely green, with no red or blue bleeding in from the discarded sides.
        let img = RgbImage::from_fn(300, 100, |x, _| match x {
            0..100 => Rgb([255, 0, 0]),
            100..200 => Rgb([0, 255, 0]),
            _ => Rgb([0, 0, 255]),
        });
        let v = to_input(&img, 50);
        let plane = 50 * 50;
        assert!(v[..plane].iter().all(|&x| x == value(0)), "red leaked in");
        assert!(v[plane..2 * plane].iter().all(|&x| x == value(255)));
        assert!(v[2 * plane..].iter().all(|&x| x == value(0)), "blue leaked in");
    }

    #[test]
    fn tall_image_is_centre_cropped_and_chw_ordered() {
        // 256×600: the shorter side is already 256, so no resampling: the input is exactly the
        // pixels of the centre 224×224 (x 16..240, y 188..412). Red encodes x, green y − 188.
        let img = RgbImage::from_fn(256, 600, |x, y| Rgb([x as u8, y.saturating_sub(188).min(255) as u8, 9]));
        let v = to_input(&img, 224);
        let plane = 224 * 224;
        assert_eq!(v[0], value(16)); // row 0, column 0 is source (16, 188)
        assert_eq!(v[223], value(239)); // row 0, last column
        assert_eq!(v[plane - 1], value(239)); // last row, last column
        assert_eq!(v[plane], value(0)); // green plane starts at source row 188
        assert_eq!(v[2 * plane - 1], value(223));
        assert!(v[2 * plane..].iter().all(|&x| x == value(9)));
    }

    #[test]
    fn follows_the_resize_256_centre_crop_224_protocol() {
        assert_eq!([224, 240, 260].map(resize_size), [256, 274, 297]);
        // A 512² photo framed by a 24-pixel red border: the protocol's 0.875 crop keeps only the
        // inner 448² (32 pixels go on each side, a little less for the larger variants' rounding),
        // so no red may reach the input. Cropping the whole shorter side (the old geometry) put
        // the border in every edge row.
        let img = RgbImage::from_fn(512, 512, |x, y| {
            let border = !(24..488).contains(&x) || !(24..488).contains(&y);
            if border {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 200, 0])
            }
        });
        for size in [224, 240, 260] {
            let v = to_input(&img, size);
            let plane = (size * size) as usize;
            let worst_red = v[..plane].iter().fold(f32::MIN, |a, &b| a.max(b));
            assert!(worst_red <= value(1), "size {size}: red border leaked in ({worst_red})");
        }
    }

    #[test]
    fn large_downscale_is_smooth_not_aliased() {
        // A one-pixel checkerboard averages to mid grey when properly filtered; nearest-neighbour
        // or a plain bilinear lookup would return near-black/white stripes.
        let img =
            RgbImage::from_fn(2000, 1500, |x, y| if (x + y) % 2 == 0 { Rgb([255, 255, 255]) } else { Rgb([0, 0, 0]) });
        let v = to_input(&img, 32);
        assert!(v.iter().all(|&x| x.abs() < 0.1), "aliasing: {:?}", &v[..8]);
    }

    #[test]
    fn box_reduce_averages_blocks() {
        let img = RgbImage::from_fn(7, 5, |x, y| Rgb([(x + 10 * y) as u8, 100, (x % 2 * 255) as u8]));
        let out = box_reduce(&img, (0, 0, 7, 5), 2);
        assert_eq!(out.dimensions(), (3, 2));
        // Block (0,0): red 0, 1, 10, 11 → 5.5 rounds to 6; blue 0, 255, 0, 255 → 127.5 → 128.
        assert_eq!(out.get_pixel(0, 0).0, [6, 100, 128]);
        assert_eq!(out.get_pixel(2, 1).0, [(24 + 25 + 34 + 35 + 2) / 4, 100, 128]);
        // A region: blocks start at (1, 1).
        let out = box_reduce(&img, (1, 1, 6, 4), 3);
        assert_eq!(out.dimensions(), (2, 1));
        assert_eq!(out.get_pixel(0, 0)[0], 22); // mean of 11..13, 21..23, 31..33
        assert_eq!(reduce_factor(4000, 224), 8);
        assert_eq!(reduce_factor(300, 224), 1);
        assert_eq!(reduce_factor(10, 0), 10);
    }

    #[test]
    fn the_avx2_builds_of_the_pixel_loops_change_nothing() {
        // Odd sizes, so no loop ends on a vector boundary; noise, so every value differs.
        let noise = crate::fixtures::noise(3 * 333 * 251, 7);
        let img = RgbImage::from_raw(333, 251, noise).expect("sized");
        assert_eq!(box_reduce(&img, (1, 2, 331, 247), 3), box_reduce_any(&img, (1, 2, 331, 247), 3));
        let (fast, plain) = (chw_rows(&img, (5, 3), (225, 223)), chw_rows_any(&img, (5, 3), (225, 223)));
        assert!(fast.iter().zip(&plain).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn big_photo_matches_a_direct_resize() {
        // The box pre-reduction must not visibly change the result of a direct filtered resize.
        assert_eq!(resize_size(64), 73);
        let img = RgbImage::from_fn(1800, 1200, |x, y| {
            let v = ((x as f32 / 40.0).sin() * 60.0 + (y as f32 / 25.0).cos() * 60.0 + 128.0) as u8;
            Rgb([v, (x / 8) as u8, (y / 6) as u8])
        });
        let fast = to_input(&img, 64);
        let resized = imageops::resize(&img, 109, resize_size(64), FILTER); // 73 × 1800 / 1200 = 109.5
        let direct = chw_normalised(&centre_crop(&resized, 64));
        let mean_abs = fast.iter().zip(&direct).map(|(a, b)| (a - b).abs()).sum::<f32>() / fast.len() as f32;
        assert!(mean_abs < 2.0 / 128.0, "mean difference {mean_abs}");
    }

    #[test]
    fn the_fast_resize_is_images_triangle_filter_to_one_grey_level() {
        let img = RgbImage::from_fn(1000, 750, |x, y| {
            let v = ((x as f32 / 7.0).sin() * 90.0 + (y as f32 / 5.0).cos() * 30.0 + 128.0) as u8;
            Rgb([v, (x * 7 + y * 3) as u8, (x ^ y) as u8])
        });
        for (nw, nh) in [(341, 256), (256, 341), (999, 1), (1000, 750), (1500, 1100)] {
            let ours = filtered_resize(&img, nw, nh);
            let theirs = imageops::resize(&img, nw, nh, FILTER);
            assert_eq!(ours.dimensions(), (nw, nh));
            let worst = ours.as_raw().iter().zip(theirs.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
            assert!(worst <= 1, "{nw}x{nh}: differs by {worst} grey levels");
        }
        assert_eq!(filtered_resize(&RgbImage::new(0, 0), 3, 2).dimensions(), (3, 2));
    }

    #[test]
    fn a_resized_window_is_the_crop_of_the_whole_resize() {
        let noise = crate::fixtures::noise(3 * 1000 * 750, 5);
        let img = RgbImage::from_raw(1000, 750, noise).expect("sized");
        for ((nw, nh), size) in [((341, 256), 224), ((256, 341), 224), ((300, 280), 97), ((341, 256), 256)] {
            let origin = (crop_offset(nw - size), crop_offset(nh - size));
            let whole = filtered_resize(&img, nw, nh);
            let crop = imageops::crop_imm(&whole, origin.0, origin.1, size, size).to_image();
            let window = filtered_resize_window(&img, (nw, nh), origin, size);
            let differ = crop.as_raw().iter().zip(window.as_raw()).filter(|(a, b)| a != b).count();
            let worst = crop.as_raw().iter().zip(window.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
            // Only the rounding of the weights may differ, and only where a value sits at a half.
            assert!(worst <= 1 && differ * 1000 < crop.len(), "{nw}x{nh}: {differ} values differ, by up to {worst}");
        }
    }

    #[test]
    fn resize_shorter_side_keeps_aspect() {
        let img = RgbImage::new(400, 100);
        assert_eq!(resize_shorter_side(&img, 50).dimensions(), (200, 50));
        let img = RgbImage::new(99, 300);
        assert_eq!(resize_shorter_side(&img, 33).dimensions(), (33, 100));
    }
}
