//! Depthwise convolution on NHWC activations with TensorFlow "SAME" padding, bias and ReLU6 fused.
//!
//! Channels are innermost, so each output pixel is a few contiguous vector FMAs per tap, several pixels at a time so
//! one weight load feeds several FMAs; on the AVX2 path the common sizes also reuse each loaded input pixel for every
//! tap of a kernel row that reaches it (`depthwise/avx.rs`). Inputs come in two layouts:
//! - plain `h x w x c` (the stem's output): border pixels clip their taps, through a pointer table;
//! - padded rows, `h x (w + pad) x c` with zero columns either side, written that way by the expand conv: every
//!   pixel then takes the unclipped kernel, which matters for 7- and 14-pixel rows where most pixels touch a border.
//!
//! Rows may also sit in a ring of `slots` rows (input row `iy` at `iy % slots`), so a fused block keeps only the
//! expanded rows it still needs. No padded copy of anything is made.

use crate::simd::{relu6, Isa};
use std::ops::Range;

/// Largest depthwise kernel supported (7x7), so per-row and per-pixel tables live on the stack.
pub const MAX_K: usize = 7;
const MAX_TAPS: usize = MAX_K * MAX_K;

/// Output size and leading (top/left) padding of TensorFlow "SAME" padding along one axis.
///
/// `out = ceil(n / s)`, `pad = max((out - 1) * s + k - n, 0)`; the odd pixel of padding goes at the end.
pub fn same(n: usize, k: usize, s: usize) -> (usize, usize) {
    let out = n.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(n);
    (out, total / 2)
}

/// A depthwise layer with BatchNorm folded in; weights are tap-major, `w[ky * k + kx][c]`.
#[derive(Clone, Debug)]
pub struct Depthwise {
    pub k: usize,
    pub stride: usize,
    pub c: usize,
    w: Vec<f32>,
    bias: Vec<f32>,
    /// A row of `c` zeros that clipped taps of plain inputs read instead of branching.
    zeros: Vec<f32>,
}

/// Geometry of one output row.
#[derive(Clone, Copy, Debug)]
struct Geom {
    w: usize,
    ow: usize,
    pad_left: usize,
    /// Stored column of image column 0.
    col0: usize,
    /// Whether every tap of every output pixel lands on stored (possibly zero) pixels.
    padded: bool,
    /// Tap rows inside the image, and the float offset of each one's stored row.
    ky: (usize, usize),
    row_at: [usize; MAX_K],
    /// The channels computed, `[ch.0, ch.1)`; pixels stay `c` floats apart.
    ch: (usize, usize),
}

impl Depthwise {
    /// From PyTorch's `[c, 1, k, k]` weights (already scaled by BatchNorm) and a bias per channel.
    pub fn from_oihw(w: &[f32], bias: &[f32], c: usize, k: usize, stride: usize) -> Self {
        assert_eq!(w.len(), c * k * k, "depthwise weight length");
        assert_eq!(bias.len(), c, "depthwise bias length");
        assert!(k <= MAX_K, "depthwise kernel larger than {MAX_K}");
        let mut packed = vec![0.0; k * k * c];
        for ch in 0..c {
            for t in 0..k * k {
                packed[t * c + ch] = w[ch * k * k + t];
            }
        }
        Depthwise { k, stride, c, w: packed, bias: bias.to_vec(), zeros: vec![0.0; c] }
    }

    /// Output height and width for an `h x w` input.
    pub fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        (same(h, self.k, self.stride).0, same(w, self.k, self.stride).0)
    }

    /// Stored row width (pixels) of the padded layout for width `w`, and the column image column 0 is stored at.
    pub fn padded_row(&self, w: usize) -> (usize, usize) {
        let (ow, left) = same(w, self.k, self.stride);
        let total = ((ow - 1) * self.stride + self.k).saturating_sub(w);
        (w + total, left)
    }

    /// Output rows `rows` (of the full output) from a plain `h x w x c` input into `out`, which holds exactly those
    /// rows; ReLU6 applied.
    pub fn run(&self, isa: Isa, input: &[f32], h: usize, w: usize, rows: Range<usize>, out: &mut [f32]) {
        assert_eq!(input.len(), h * w * self.c, "depthwise input length");
        self.rows_into(isa, input, h, h, w, (w, 0, false), rows, out);
    }

    /// [`Depthwise::run`] for an input in the padded layout of [`Depthwise::padded_row`], whose padding columns are
    /// zero.
    pub fn run_padded(&self, isa: Isa, input: &[f32], h: usize, w: usize, rows: Range<usize>, out: &mut [f32]) {
        let (row_px, col0) = self.padded_row(w);
        assert_eq!(input.len(), h * row_px * self.c, "padded depthwise input length");
        self.rows_into(isa, input, h, h, w, (row_px, col0, true), rows, out);
    }

    /// [`Depthwise::run_padded`] over every output row but only channels `channels`, written through a raw pointer:
    /// threads that share a layer with few rows (7 rows split 4 + 3 over two threads) take a channel range each.
    ///
    /// # Safety
    /// `out` must be valid for writes of the whole `oh x ow x c` output, and no other thread may access the elements of
    /// these channels during the call.
    pub(crate) unsafe fn run_padded_channels(
        &self,
        isa: Isa,
        input: &[f32],
        h: usize,
        w: usize,
        channels: Range<usize>,
        out: *mut f32,
    ) {
        let (row_px, col0) = self.padded_row(w);
        assert_eq!(input.len(), h * row_px * self.c, "padded depthwise input length");
        assert!(channels.start <= channels.end && channels.end <= self.c, "channel range past the layer");
        let oh = self.out_size(h, w).0;
        self.rows(isa, input, h, h, w, (row_px, col0, true), 0..oh, channels, out);
    }

    /// Output rows `rows` from a ring of `slots` padded input rows, input row `iy` at ring row `iy % slots`; the rows
    /// their taps reach must already be there.
    #[allow(clippy::too_many_arguments)]
    pub fn run_ring(
        &self,
        isa: Isa,
        ring: &[f32],
        slots: usize,
        h: usize,
        w: usize,
        rows: Range<usize>,
        out: &mut [f32],
    ) {
        let (row_px, col0) = self.padded_row(w);
        assert_eq!(ring.len(), slots * row_px * self.c, "ring length");
        self.rows_into(isa, ring, slots, h, w, (row_px, col0, true), rows, out);
    }

    /// [`Depthwise::rows`] of every channel into `out`, which holds exactly output rows `rows`.
    #[allow(clippy::too_many_arguments)]
    fn rows_into(
        &self,
        isa: Isa,
        input: &[f32],
        slots: usize,
        h: usize,
        w: usize,
        layout: (usize, usize, bool),
        rows: Range<usize>,
        out: &mut [f32],
    ) {
        let ow = same(w, self.k, self.stride).0;
        assert_eq!(out.len(), rows.len() * ow * self.c, "depthwise output length");
        // SAFETY: `out` is exclusively borrowed and holds every channel of these rows (asserted).
        unsafe { self.rows(isa, input, slots, h, w, layout, rows, 0..self.c, out.as_mut_ptr()) }
    }

    /// Output rows `rows`, channels `channels`, written from `out` on (the first of those rows).
    ///
    /// # Safety
    /// `out` must be valid for writes of `rows.len() * ow * c` floats, and no other thread may access the elements of
    /// these channels during the call.
    #[allow(clippy::too_many_arguments)]
    unsafe fn rows(
        &self,
        isa: Isa,
        input: &[f32],
        slots: usize,
        h: usize,
        w: usize,
        (row_px, col0, padded): (usize, usize, bool),
        rows: Range<usize>,
        channels: Range<usize>,
        out: *mut f32,
    ) {
        let (oh, ow) = self.out_size(h, w);
        assert!(rows.end <= oh, "row range past the output");
        for (i, oy) in rows.enumerate() {
            let g = self.geom(slots, h, w, (row_px, col0, padded), oy, channels.clone());
            // The taps of the last row must lie inside `input`: checked once here so the kernels need not.
            let stored = row_px * self.c;
            assert!(g.row_at[g.ky.0..g.ky.1].iter().all(|&a| a + stored <= input.len()), "input rows missing");
            let out_row = out.add(i * ow * self.c);
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: only chosen after run-time detection; every address is a row offset checked above plus a
                // column inside the stored row (padded layouts are sized so all taps are), times `c`.
                Isa::Avx2Fma => self.row_avx(input, &g, out_row),
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above, for AVX-512.
                Isa::Avx512 => self.row_avx512(input, &g, out_row),
                _ => self.row_portable(input, &g, out_row),
            }
        }
    }

    /// Geometry of output row `oy`, channels `channels`, over input rows stored as [`Depthwise::rows`] takes them.
    fn geom(
        &self,
        slots: usize,
        h: usize,
        w: usize,
        (row_px, col0, padded): (usize, usize, bool),
        oy: usize,
        channels: Range<usize>,
    ) -> Geom {
        let (k, s) = (self.k, self.stride);
        let pad_top = same(h, k, s).1;
        let (ow, pad_left) = same(w, k, s);
        let iy0 = (oy * s) as isize - pad_top as isize;
        let lo = (-iy0).max(0) as usize;
        let hi = ((h as isize - iy0).min(k as isize).max(0) as usize).max(lo);
        let mut row_at = [0; MAX_K];
        for (dy, at) in row_at.iter_mut().enumerate().take(hi).skip(lo) {
            *at = ((iy0 + dy as isize) as usize % slots) * row_px * self.c;
        }
        Geom { w, ow, pad_left, col0, padded, ky: (lo, hi), row_at, ch: (channels.start, channels.end) }
    }

    /// Output columns `[lo, hi)` whose `k` taps all land on stored pixels (every column of a padded input), so they
    /// take the unclipped kernels.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn unclipped_cols(&self, g: &Geom) -> (usize, usize) {
        if g.padded {
            return (0, g.ow);
        }
        let s = self.stride;
        let lo = g.pad_left.div_ceil(s).min(g.ow);
        let hi = if g.w + g.pad_left >= self.k { ((g.w + g.pad_left - self.k) / s + 1).min(g.ow) } else { 0 };
        (lo, hi.max(lo))
    }

    /// Tap range inside the image along a row, for output column `ox`.
    #[inline(always)]
    fn taps_x(&self, g: &Geom, ox: usize) -> (isize, Range<usize>) {
        let start = (ox * self.stride) as isize - g.pad_left as isize;
        let lo = (-start).max(0) as usize;
        let hi = (g.w as isize - start).min(self.k as isize).max(0) as usize;
        (start, lo..hi.max(lo))
    }

    /// # Safety
    /// As [`Depthwise::rows`], for one output row at `out`.
    unsafe fn row_portable(&self, input: &[f32], g: &Geom, out: *mut f32) {
        let (c, (c0, c1)) = (self.c, g.ch);
        for ox in 0..g.ow {
            let (ix0, kx) = self.taps_x(g, ox);
            let acc = std::slice::from_raw_parts_mut(out.add(ox * c + c0), c1 - c0);
            acc.copy_from_slice(&self.bias[c0..c1]);
            for dy in g.ky.0..g.ky.1 {
                for dx in kx.clone() {
                    let at = g.row_at[dy] + (g.col0 as isize + ix0 + dx as isize) as usize * c;
                    let src = &input[at + c0..at + c1];
                    let wt = &self.w[(dy * self.k + dx) * c + c0..(dy * self.k + dx) * c + c1];
                    for ((s, x), wv) in acc.iter_mut().zip(src).zip(wt) {
                        *s += x * wv;
                    }
                }
            }
            for s in acc.iter_mut() {
                *s = relu6(*s);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod slide;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::KernelCase;

    #[test]
    fn same_padding_matches_tensorflow() {
        assert_eq!(same(224, 3, 2), (112, 0)); // total 1: nothing before, one after
        assert_eq!(same(225, 3, 2), (113, 1));
        assert_eq!(same(112, 5, 2), (56, 1)); // total 3: one before, two after
        assert_eq!(same(7, 5, 1), (7, 2));
        assert_eq!(same(1, 5, 2), (1, 2));
    }

    #[test]
    fn matches_naive_on_odd_sizes() {
        for mut case in crate::check::DepthwiseCase::all() {
            for isa in Isa::available() {
                case.clear();
                case.run(isa);
                let error = case.error();
                assert!(error < crate::check::TOLERANCE, "{isa:?} {}: off by {error}", case.describe());
                assert!(case.from_padded == case.plain, "{isa:?} padded {}", case.describe());
                let (dw, h, w, c, k, s) = (&case.dw, case.h, case.w, case.dw.c, case.dw.k, case.dw.stride);
                let (oh, ow) = dw.out_size(h, w);
                let (x, padded, out) = (&case.x, &case.padded, &case.plain);
                let (row_px, _) = dw.padded_row(w);
                // A ring of padded rows gives the same values.
                let slots = k + s;
                for oy in 0..oh {
                    let mut ring = vec![f32::NAN; slots * row_px * c];
                    let top = (oy * s) as isize - same(h, k, s).1 as isize;
                    for iy in top.max(0) as usize..((top + k as isize) as usize).min(h) {
                        let slot = iy % slots;
                        ring[slot * row_px * c..(slot + 1) * row_px * c]
                            .copy_from_slice(&padded[iy * row_px * c..(iy + 1) * row_px * c]);
                    }
                    let mut row = vec![f32::NAN; ow * c];
                    dw.run_ring(isa, &ring, slots, h, w, oy..oy + 1, &mut row);
                    assert_eq!(row, out[oy * ow * c..(oy + 1) * ow * c], "{isa:?} ring row {oy}");
                }
                // Channel ranges (block-aligned or not, the last one short) fill in exactly their channels.
                for cuts in [vec![0, c], vec![0, c / 2, c], vec![0, 16.min(c), c], vec![0, 1, 9.min(c), c]] {
                    let mut joined = vec![f32::NAN; oh * ow * c];
                    for part in cuts.windows(2) {
                        // SAFETY: `joined` is exclusively borrowed and holds the whole output.
                        unsafe { dw.run_padded_channels(isa, padded, h, w, part[0]..part[1], joined.as_mut_ptr()) };
                        let done = joined.chunks_exact(c).all(|px| px[part[1]..].iter().all(|v| v.is_nan()));
                        assert!(done, "{isa:?} channels {part:?} wrote past their range");
                    }
                    assert!(&joined == out, "{isa:?} channel parts {cuts:?} {h}x{w}x{c} k{k} s{s}");
                }
                // A later slice of rows alone gives the same values as the full run.
                if oh > 1 {
                    let mut part = vec![f32::NAN; (oh - 1) * ow * c];
                    dw.run(isa, x, h, w, 1..oh, &mut part);
                    assert_eq!(&part[..], &out[ow * c..]);
                }
            }
        }
    }
}
