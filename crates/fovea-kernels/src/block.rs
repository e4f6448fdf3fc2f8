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
use crate::stem::Stem;
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
/// Output pixels per band when block 0 runs on the stem's rows: the stem's GEMM has only 27 inputs per pixel, so
/// wider bands amortise its per-call set-up.
const STEM_BAND_PIXELS: usize = 448;

impl Block {
    /// Whether fusing this block pays for an `h x w` input.
    pub(crate) fn worth_fusing(&self, h: usize, w: usize) -> bool {
        self.expand.is_some() && self.fusion_pays(h, w)
    }

    /// Whether keeping only a band of this block's expanded rows in cache saves memory traffic on an `h x w` input.
    fn fusion_pays(&self, h: usize, w: usize) -> bool {
        w >= FUSE_MIN_WIDTH && h * w * self.cexp * 4 > FUSE_ABOVE_BYTES
    }

    /// Output rows per band of about `pixels` output pixels, for an input `w` wide.
    fn band_rows(&self, w: usize, pixels: usize) -> usize {
        let ow = self.depthwise.out_size(1, w).1;
        pixels.div_ceil(ow).max(1)
    }

    /// Input rows kept in the ring: exactly the rows one band of `band` output rows reads.
    fn ring_slots(&self, band: usize) -> usize {
        (band - 1) * self.depthwise.stride + self.depthwise.k
    }

    /// Whether this block can take the stem's rows straight into its depthwise ([`Block::run_after_stem`]): it has
    /// no expand conv and no residual (which would need the stem's output kept whole).
    pub(crate) fn can_follow_stem(&self) -> bool {
        self.expand.is_none() && !self.residual
    }

    /// Whether running this block on the stem's rows pays for an `h x w` stem output.
    pub(crate) fn fuses_with_stem(&self, h: usize, w: usize) -> bool {
        self.can_follow_stem() && self.fusion_pays(h, w)
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
        let cin = self.cin;
        assert_eq!(x.len(), h * w * cin, "block input length");
        let expand = |first: usize, n: usize, dst: &mut [f32]| {
            self.expand_rows(isa, &x[first * w * cin..(first + n) * w * cin], n, w, dst)
        };
        self.banded(isa, (h, w), self.band_rows(w, BAND_PIXELS), rows, out, tmp, self.residual.then_some(x), expand);
    }

    /// Output rows `rows` of a block without expand conv that follows the stem, computing the stem's rows into the
    /// ring as they are needed: the stem's output (1.6 MB for Lite0 at 224 px) is then never written out and read back.
    /// `image` is the network's CHW input, `ih x iw`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run_after_stem(
        &self,
        isa: Isa,
        stem: &Stem,
        image: &[f32],
        (ih, iw): (usize, usize),
        rows: Range<usize>,
        out: &mut [f32],
        tmp: &mut Vec<f32>,
    ) {
        assert!(self.can_follow_stem(), "only a plain depthwise + project block follows the stem");
        let (h, w) = stem.out_size(ih, iw);
        let layout = self.depthwise.padded_row(w);
        let band = self.band_rows(w, STEM_BAND_PIXELS);
        let produce = |first: usize, n: usize, dst: &mut [f32]| {
            stem.run_padded(isa, image, ih, iw, first..first + n, dst, layout)
        };
        self.banded(isa, (h, w), band, rows, out, tmp, None, produce);
    }

    /// The fused loop: for each band of `band` output rows, `produce(first, n, dst)` writes input rows
    /// `first..first + n` (of `h`, each `w` wide, `cexp` channels) into ring slots in the depthwise kernel's padded
    /// layout; then depthwise and projection run on the band while it is in cache.
    #[allow(clippy::too_many_arguments)]
    fn banded(
        &self,
        isa: Isa,
        (h, w): (usize, usize),
        band: usize,
        rows: Range<usize>,
        out: &mut [f32],
        tmp: &mut Vec<f32>,
        residual: Option<&[f32]>,
        mut produce: impl FnMut(usize, usize, &mut [f32]),
    ) {
        let (k, s, e, cout) = (self.depthwise.k, self.depthwise.stride, self.cexp, self.cout);
        let (_, pad_top) = same(h, k, s);
        let ow = self.depthwise.out_size(h, w).1;
        assert_eq!(out.len(), rows.len() * ow * cout, "block output length");
        let slots = self.ring_slots(band);
        let row_px = self.depthwise.padded_row(w).0;
        let need = (slots * row_px + band * ow) * e;
        if tmp.len() < need {
            tmp.resize(need, 0.0);
        }
        let (ring, drows) = tmp[..need].split_at_mut(slots * row_px * e);

        // Next input row to produce into the ring.
        let mut next = 0usize;
        let mut oy = rows.start;
        while oy < rows.end {
            let end = (oy + band).min(rows.end);
            // Input rows this band reads: at most `slots`, so producing them never overwrites one still needed.
            let first = ((oy * s) as isize - pad_top as isize).max(0) as usize;
            let last = (((end - 1) * s + k) as isize - pad_top as isize).max(0) as usize;
            next = next.max(first);
            while next < last.min(h) {
                // One call over the rows up to the ring's wrap-around point.
                let slot = next % slots;
                let n = (last.min(h) - next).min(slots - slot);
                produce(next, n, &mut ring[slot * row_px * e..(slot + n) * row_px * e]);
                next += n;
            }
            let m = (end - oy) * ow;
            self.depthwise.run_ring(isa, ring, slots, h, w, oy..end, &mut drows[..m * e]);
            let dst = &mut out[(oy - rows.start) * ow * cout..(end - rows.start) * ow * cout];
            // Residual blocks have stride 1 and equal widths, so output pixel i is input pixel i.
            let res = residual.map(|x| &x[oy * ow * cout..end * ow * cout]);
            matmul(isa, &drows[..m * e], e, m, &self.project, Act::None, res, dst, cout);
            oy = end;
        }
    }
}
