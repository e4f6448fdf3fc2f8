//! Fused inverted-residual block: expand → depthwise → project one band of output rows at a time.
//!
//! Run layer by layer, a block writes its expanded tensor (6x the block's input; 4.8 MB for Lite0's second block) to
//! memory and reads it back twice, and on a shared 2-core machine that traffic, not arithmetic, sets the pace. Fused,
//! only the expanded input rows the current band of output rows needs are kept, in a ring buffer that stays in L2,
//! and each depthwise output band goes straight into the projection while it is still in cache.
//! Every expanded row is computed exactly once per call; a call that starts mid-image (another thread's share)
//! recomputes at most `k - 1` rows of halo.

use crate::conv1x1::{matmul, matmul_into, Act, Layout};
use crate::depthwise::same;
use crate::simd::Isa;
use crate::weights::Block;
use std::ops::Range;

/// Below this size of expanded tensor the layer-by-layer path measured as fast or faster (it runs the expand GEMM on
/// many rows at once); above it, the memory traffic fusion saves wins.
const FUSE_ABOVE_BYTES: usize = 1 << 20;
/// Narrow rows make each per-row expand GEMM call too small to run efficiently.
const FUSE_MIN_WIDTH: usize = 28;
/// Output pixels per band: one expand and one project GEMM call per band, big enough that the micro-kernel's
/// partial last tile and per-call set-up are a small part of it, small enough that the band stays in L2.
const BAND_PIXELS: usize = 96;

impl Block {
    /// Whether fusing this block pays for an `h x w` input.
    pub(crate) fn worth_fusing(&self, h: usize, w: usize) -> bool {
        self.expand.is_some() && w >= FUSE_MIN_WIDTH && h * w * self.cexp * 4 > FUSE_ABOVE_BYTES
    }

    fn band_rows(&self, w: usize) -> usize {
        let ow = self.depthwise.out_size(1, w).1;
        BAND_PIXELS.div_ceil(ow).max(1)
    }

    /// Expanded input rows kept: exactly the rows one band of output rows reads.
    fn ring_slots(&self, w: usize) -> usize {
        (self.band_rows(w) - 1) * self.depthwise.stride + self.depthwise.k
    }

    /// Floats of per-thread temporary space [`Block::run_fused`] needs: the ring plus one depthwise band.
    pub(crate) fn fused_tmp_len(&self, h: usize, w: usize) -> usize {
        let ow = self.depthwise.out_size(h, w).1;
        let row_px = self.depthwise.padded_row(w).0;
        (self.ring_slots(w) * row_px + self.band_rows(w) * ow) * self.cexp
    }

    /// Expand conv of `n` image rows (`x`: `n * w * cin`) into `dst`, `n` rows in the depthwise kernel's padded layout,
    /// padding columns zeroed.
    pub(crate) fn expand_rows(&self, isa: Isa, x: &[f32], n: usize, w: usize, dst: &mut [f32]) {
        let expand = self.expand.as_ref().expect("block has an expand conv");
        let (row_px, col0) = self.depthwise.padded_row(w);
        let e = self.cexp;
        assert_eq!(dst.len(), n * row_px * e, "padded expand output length");
        for row in dst.chunks_exact_mut(row_px * e) {
            row[..col0 * e].fill(0.0);
            row[(col0 + w) * e..].fill(0.0);
        }
        let layout = Layout { run: w, skip: row_px - w };
        matmul_into(isa, x, self.cin, n * w, expand, Act::Relu6, None, &mut dst[col0 * e..], e, layout);
    }

    /// Output rows `rows` of the block (NHWC, `cout` channels) into `out`, from the block input `x` (`h x w x cin`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run_fused(
        &self,
        isa: Isa,
        x: &[f32],
        h: usize,
        w: usize,
        rows: Range<usize>,
        out: &mut [f32],
        tmp: &mut Vec<f32>,
    ) {
        let (k, s, e, cin, cout) = (self.depthwise.k, self.depthwise.stride, self.cexp, self.cin, self.cout);
        let (_, pad_top) = same(h, k, s);
        let ow = self.depthwise.out_size(h, w).1;
        let band = self.band_rows(w);
        assert_eq!(x.len(), h * w * cin, "block input length");
        assert_eq!(out.len(), rows.len() * ow * cout, "block output length");
        let need = self.fused_tmp_len(h, w);
        if tmp.len() < need {
            tmp.resize(need, 0.0);
        }
        let slots = self.ring_slots(w);
        let row_px = self.depthwise.padded_row(w).0;
        let (ring, drows) = tmp[..need].split_at_mut(slots * row_px * e);

        // Next input row to expand into the ring.
        let mut next = 0usize;
        let mut oy = rows.start;
        while oy < rows.end {
            let end = (oy + band).min(rows.end);
            // Input rows this band reads: at most `slots`, so expanding them never overwrites one still needed.
            let first = ((oy * s) as isize - pad_top as isize).max(0) as usize;
            let last = (((end - 1) * s + k) as isize - pad_top as isize).max(0) as usize;
            next = next.max(first);
            while next < last.min(h) {
                // One GEMM over the rows up to the ring's wrap-around point.
                let slot = next % slots;
                let n = (last.min(h) - next).min(slots - slot);
                let dst = &mut ring[slot * row_px * e..(slot + n) * row_px * e];
                self.expand_rows(isa, &x[next * w * cin..(next + n) * w * cin], n, w, dst);
                next += n;
            }
            let m = (end - oy) * ow;
            self.depthwise.run_ring(isa, ring, slots, h, w, oy..end, &mut drows[..m * e]);
            let dst = &mut out[(oy - rows.start) * ow * cout..(end - rows.start) * ow * cout];
            // Residual blocks have stride 1 and equal widths, so output pixel i is input pixel i.
            let res = self.residual.then(|| &x[oy * ow * cout..end * ow * cout]);
            matmul(isa, &drows[..m * e], e, m, &self.project, Act::None, res, dst, cout);
            oy = end;
        }
    }
}
