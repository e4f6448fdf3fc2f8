//! The stem: a dense `k x k` stride-2 convolution from the NCHW input image to NHWC features, via im2col + GEMM.
//!
//! im2col is built one output row at a time (a few KiB), so it stays in L1 and no image-sized copy is made; the
//! product then runs through the same micro-kernel as the 1x1 convolutions, with bias and ReLU6 fused.

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
        let mut col = vec![0.0f32; ow * kk];
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
            let row = &mut out[i * row_px * cout..(i + 1) * row_px * cout];
            row[..col0 * cout].fill(0.0);
            row[(col0 + ow) * cout..].fill(0.0);
            let o = &mut row[col0 * cout..(col0 + ow) * cout];
            matmul(isa, &col, kk, ow, &self.weights, Act::Relu6, None, o, cout);
        }
    }
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
