//! The stem: a dense `k x k` stride-2 convolution from the NCHW input image to NHWC features, via im2col + GEMM.
//!
//! im2col is built one output row at a time (a few KiB), so it stays in L1 and no image-sized copy is made; the
//! product then runs through the same micro-kernel as the 1x1 convolutions, with bias and ReLU6 fused.
//!
//! EfficientNet-Lite's own stem (3x3, 32 outputs) takes a direct AVX2 kernel instead (`stem/avx.rs`): building im2col
//! cost a third of the stem's time (0.39 of 1.2 ms per 224-pixel image on a Zen 1 core), since a 27-float column per
//! output pixel is as much data as the product reads.

use crate::conv1x1::{matmul, Act, Packed};
use crate::depthwise::same;
use crate::simd::Isa;
use std::ops::Range;

/// Dense convolution with BatchNorm folded in.
#[derive(Clone, Debug)]
pub struct Stem {
    pub k: usize,
    pub stride: usize,
    pub cin: usize,
    pub cout: usize,
    /// `[cin * k * k][cout]`, rows in PyTorch's `(ci, ky, kx)` order.
    weights: Packed,
}

impl Stem {
    /// From PyTorch OIHW weights (already scaled by BatchNorm) and a bias per output channel.
    pub fn from_oihw(w: &[f32], bias: &[f32], cout: usize, cin: usize, k: usize, stride: usize) -> Self {
        Stem { k, stride, cin, cout, weights: Packed::from_out_in(w, bias, cout, cin * k * k) }
    }

    /// Whether the direct kernel fits this stem (3x3 with 32 outputs); it reads `weights`' two panels in place.
    fn fits_direct(&self) -> bool {
        self.k == avx::K && self.cout == avx::COUT
    }

    pub fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        (same(h, self.k, self.stride).0, same(w, self.k, self.stride).0)
    }

    /// Output rows `rows` (NHWC, ReLU6 applied) of one CHW image into `out`, which holds exactly those rows.
    pub fn run(&self, isa: Isa, image: &[f32], h: usize, w: usize, rows: Range<usize>, out: &mut [f32]) {
        let ow = same(w, self.k, self.stride).0;
        self.run_padded(isa, image, h, w, rows, out, (ow, 0));
    }

    /// [`Stem::run`] into rows of `row_px` pixels with output column 0 stored at pixel `col0` and the columns either
    /// side zeroed: the padded layout a depthwise kernel reads without clipping (see `Depthwise::padded_row`).
    #[allow(clippy::too_many_arguments)]
    pub fn run_padded(
        &self,
        isa: Isa,
        image: &[f32],
        h: usize,
        w: usize,
        rows: Range<usize>,
        out: &mut [f32],
        (row_px, col0): (usize, usize),
    ) {
        let (k, s, cout) = (self.k, self.stride, self.cout);
        let (_, pad_top) = same(h, k, s);
        let (ow, pad_left) = same(w, k, s);
        let kk = self.cin * k * k;
        assert_eq!(image.len(), self.cin * h * w, "stem input length");
        assert!(col0 + ow <= row_px, "stored row narrower than the output row");
        assert_eq!(out.len(), rows.len() * row_px * cout, "stem output length");
        // Zero-padded copies of the k input rows of every channel, so building im2col needs no bounds checks.
        let lw = ((ow - 1) * s + k).max(pad_left + w);
        let mut lines = vec![0.0f32; self.cin * k * lw];
        let direct = self.fits_direct() && matches!(isa, Isa::Avx2Fma | Isa::Avx512);
        let mut col = vec![0.0f32; if direct { 0 } else { ow * kk }];
        for (i, oy) in rows.enumerate() {
            for ci in 0..self.cin {
                for dy in 0..k {
                    let line = &mut lines[(ci * k + dy) * lw..(ci * k + dy + 1) * lw];
                    let iy = (oy * s + dy) as isize - pad_top as isize;
                    if iy < 0 || iy as usize >= h {
                        line.fill(0.0);
                    } else {
                        let src = &image[(ci * h + iy as usize) * w..(ci * h + iy as usize + 1) * w];
                        line[pad_left..pad_left + w].copy_from_slice(src);
                    }
                }
            }
            let row = &mut out[i * row_px * cout..(i + 1) * row_px * cout];
            row[..col0 * cout].fill(0.0);
            row[(col0 + ow) * cout..].fill(0.0);
            let o = &mut row[col0 * cout..(col0 + ow) * cout];
            #[cfg(target_arch = "x86_64")]
            if direct {
                // SAFETY: only AVX2 paths get here (AVX-512 implies AVX2); `lines` holds `cin * k` padded lines of
                // `lw >= (ow - 1) * s + k` floats and `o` holds `ow` pixels of 32 channels (asserted inside).
                unsafe { avx::row(&lines, lw, self.cin * k, s, &self.weights, o) };
                continue;
            }
            match k {
                3 => im2col::<3>(&lines, lw, s, &mut col, kk),
                5 => im2col::<5>(&lines, lw, s, &mut col, kk),
                _ => {
                    for (ox, dst) in col.chunks_exact_mut(kk).enumerate() {
                        for (r, taps) in dst.chunks_exact_mut(k).enumerate() {
                            taps.copy_from_slice(&lines[r * lw + ox * s..r * lw + ox * s + k]);
                        }
                    }
                }
            }
            matmul(isa, &col, kk, ow, &self.weights, Act::Relu6, None, o, cout);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx;
#[cfg(not(target_arch = "x86_64"))]
mod avx {
    pub(super) const K: usize = usize::MAX;
    pub(super) const COUT: usize = usize::MAX;
}

/// im2col from padded lines with the kernel width a constant: a runtime-length copy of 3 floats becomes a `memcpy`
/// call per tap row, which costs more than the convolution itself.
fn im2col<const K: usize>(lines: &[f32], lw: usize, s: usize, col: &mut [f32], kk: usize) {
    for (ox, dst) in col.chunks_exact_mut(kk).enumerate() {
        for (r, taps) in dst.chunks_exact_mut(K).enumerate() {
            let src: &[f32; K] = lines[r * lw + ox * s..r * lw + ox * s + K].try_into().expect("K floats");
            let taps: &mut [f32; K] = taps.try_into().expect("K floats");
            *taps = *src;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Rng;

    #[test]
    fn direct_kernel_matches_the_product_on_every_row_width() {
        let mut rng = Rng::new(8);
        let (cin, k, cout) = (3, 3, 32);
        let stem = Stem::from_oihw(&rng.vec(cout * cin * k * k, 0.5), &rng.vec(cout, 0.5), cout, cin, k, 2);
        assert!(stem.fits_direct(), "Lite's stem shape takes the direct kernel");
        // Output widths 1, 2, 3, 4, 6 and 19: every tail of the three-pixel tiles, and images smaller than a kernel.
        for (h, w) in [(1, 1), (2, 3), (7, 5), (9, 8), (5, 11), (33, 37)] {
            let image = rng.vec(cin * h * w, 1.0);
            let (oh, ow) = stem.out_size(h, w);
            let run = |isa| {
                let mut out = vec![f32::NAN; oh * ow * cout];
                stem.run(isa, &image, h, w, 0..oh, &mut out);
                out
            };
            let want = run(Isa::Portable);
            for isa in Isa::available() {
                let got = run(isa);
                let worst = got.iter().zip(&want).map(|(g, e)| (g - e).abs()).fold(0.0, f32::max);
                assert!(worst < 1e-5, "{isa:?} {h}x{w}: {worst}");
            }
        }
    }
}
