//! Seeded geometric augmentation for fine-tuning.
//!
//! The warp is a small hand-written inverse-mapped bilinear affine transform (~40 lines) rather
//! than `imageproc`: imageproc pulls in a large dependency tree (nalgebra, rayon features, its own
//! `image` version pin that has lagged behind `image` releases), all for one function. Bilinear
//! lookup is only correct near 1:1 scale, so the image is first shrunk with the antialiased
//! [`crate::preprocess`] resize until its shorter side is `resize_size` of the output size; the warp then only
//! has to rotate and zoom by ±10 %.

use image::{Rgb, RgbImage};
use rand::Rng;

use crate::preprocess::{chw_normalised, resize_shorter_side, resize_size};

/// Random geometric augmentation. Each call draws, in this order: a flip, an angle, a zoom.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    /// Mirror left-right with probability ½. Leave off for classes where handedness matters
    /// (text, some insignia).
    pub hflip: bool,
    /// Rotation drawn uniformly from `[-max_rotation_deg, max_rotation_deg]`.
    pub max_rotation_deg: f32,
    /// Zoom factor drawn uniformly from `[zoom.0, zoom.1]`; above 1 magnifies (crops tighter).
    pub zoom: (f32, f32),
}

impl Default for Augment {
    fn default() -> Self {
        Self { hflip: true, max_rotation_deg: 10.0, zoom: (0.9, 1.1) }
    }
}

impl Augment {
    /// A randomly flipped, rotated and zoomed centre view of `img`, in the same CHW normalised
    /// layout as [`crate::to_input`] (`3 * size * size` floats). With every parameter neutral
    /// (`hflip: false`, `0.0`, `(1.0, 1.0)`) the geometry is that of `to_input`.
    ///
    /// The same rng state always gives the same output. Three values are drawn on every call,
    /// whatever the settings, so one rng stream stays aligned across configurations.
    /// Areas rotated in from outside the image repeat the edge pixels: black wedges would be a
    /// feature the network could learn that never appears at inference.
    pub fn augment(&self, img: &RgbImage, size: u32, rng: &mut impl Rng) -> Vec<f32> {
        let flip_draw: f64 = rng.random();
        let angle_draw: f32 = rng.random();
        let zoom_draw: f32 = rng.random();
        if size == 0 || img.width() == 0 || img.height() == 0 {
            return Vec::new();
        }

        let flip = self.hflip && flip_draw < 0.5;
        let max_deg = if self.max_rotation_deg.is_finite() { self.max_rotation_deg.abs() } else { 0.0 };
        let angle = (-max_deg + 2.0 * max_deg * angle_draw).to_radians();
        let (lo, hi) = (self.zoom.0.min(self.zoom.1), self.zoom.0.max(self.zoom.1));
        let zoom = if lo.is_finite() && hi.is_finite() && lo > 0.0 { lo + (hi - lo) * zoom_draw } else { 1.0 };

        // The same protocol as serving: shorter side to resize_size(size), then a centre `size` view.
        let work = resize_shorter_side(img, resize_size(size));
        chw_normalised(&warp(&work, size, flip, angle, zoom))
    }
}

/// Samples a `size`×`size` view centred on `src`: output pixel centres are mirrored (if `flip`),
/// divided by `zoom`, rotated by `angle`, and looked up bilinearly with edge clamping.
fn warp(src: &RgbImage, size: u32, flip: bool, angle: f32, zoom: f32) -> RgbImage {
    let (sw, sh) = src.dimensions();
    let (sin, cos) = angle.sin_cos();
    let half_out = size as f32 / 2.0;
    let (cx, cy) = (sw as f32 / 2.0, sh as f32 / 2.0);
    RgbImage::from_fn(size, size, |u, v| {
        let mut dx = (u as f32 + 0.5 - half_out) / zoom;
        let dy = (v as f32 + 0.5 - half_out) / zoom;
        if flip {
            dx = -dx;
        }
        let sx = cx + cos * dx - sin * dy - 0.5;
        let sy = cy + sin * dx + cos * dy - 0.5;
        bilinear(src, sx, sy)
    })
}

fn bilinear(src: &RgbImage, x: f32, y: f32) -> Rgb<u8> {
    let (w, h) = src.dimensions();
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let [p00, p10, p01, p11] = [(x0, y0), (x1, y0), (x0, y1), (x1, y1)].map(|(x, y)| src.get_pixel(x, y).0);
    let mut out = [0u8; 3];
    for c in 0..3 {
        let top = f32::from(p00[c]) * (1.0 - fx) + f32::from(p10[c]) * fx;
        let bottom = f32::from(p01[c]) * (1.0 - fx) + f32::from(p11[c]) * fx;
        out[c] = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
    }
    Rgb(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::to_input;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn photo() -> RgbImage {
        RgbImage::from_fn(120, 90, |x, y| Rgb([(x * 2) as u8, (y * 2) as u8, ((x * y) % 251) as u8]))
    }

    #[test]
    fn deterministic_for_a_seed_and_different_across_seeds() {
        let aug = Augment::default();
        let img = photo();
        let a = aug.augment(&img, 32, &mut ChaCha8Rng::seed_from_u64(7));
        let b = aug.augment(&img, 32, &mut ChaCha8Rng::seed_from_u64(7));
        let c = aug.augment(&img, 32, &mut ChaCha8Rng::seed_from_u64(8));
        assert_eq!(a.len(), 3 * 32 * 32);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|x| (-0.9921875..=1.0).contains(x)));
    }

    #[test]
    fn neutral_settings_match_to_input() {
        let neutral = Augment { hflip: false, max_rotation_deg: 0.0, zoom: (1.0, 1.0) };
        // A smooth image: the two paths differ only in how the resize filter treats the crop
        // border (real neighbours vs clamped edge), which a smooth image makes negligible.
        let img = RgbImage::from_fn(120, 90, |x, y| Rgb([(x * 2) as u8, (y * 2) as u8, 77]));
        // Size 28: resized to 42×32, even margins, so both centre the view on the same pixel grid (an odd
        // margin puts the warp's view half a pixel from the crop's, which only augmentation tolerates).
        let a = neutral.augment(&img, 28, &mut ChaCha8Rng::seed_from_u64(1));
        let b = to_input(&img, 28);
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(worst <= 2.0 / 128.0, "max difference {worst}");
    }

    #[test]
    fn flip_mirrors_columns() {
        let flip = Augment { hflip: true, max_rotation_deg: 0.0, zoom: (1.0, 1.0) };
        let img = RgbImage::from_fn(16, 16, |x, y| Rgb([x as u8 * 10, y as u8, 0]));
        let plain = to_input(&img, 16);
        // Find a seed that flips (probability ½ each), then compare column by column.
        let flipped = (0..64)
            .map(|s| flip.augment(&img, 16, &mut ChaCha8Rng::seed_from_u64(s)))
            .find(|v| *v != plain)
            .expect("some seed flips");
        for y in 0..16 {
            for x in 0..16 {
                assert_eq!(flipped[y * 16 + x], plain[y * 16 + 15 - x]);
            }
        }
    }

    #[test]
    fn degenerate_settings_do_not_panic() {
        let odd = Augment { hflip: true, max_rotation_deg: f32::NAN, zoom: (1.2, -3.0) };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        assert_eq!(odd.augment(&photo(), 8, &mut rng).len(), 3 * 64);
        assert!(odd.augment(&photo(), 0, &mut rng).is_empty());
        let tiny = RgbImage::from_pixel(1, 1, Rgb([9, 9, 9]));
        assert_eq!(Augment::default().augment(&tiny, 4, &mut rng).len(), 48);
    }
}
