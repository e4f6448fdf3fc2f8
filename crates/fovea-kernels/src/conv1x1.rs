//! 1x1 convolutions (and the classifier) as a matrix product on NHWC activations.
//!
//! In NHWC a 1x1 convolution is `out[pixels][cout] = in[pixels][cin] · W[cin][cout] + bias`, so no data needs moving.
//! Weights are packed once at load into column panels of [`NR`] outputs, `panel[k][0..NR]`, so the micro-kernel reads them
//! as one contiguous stream. Activations are read in place (no packing): each micro-tile broadcasts [`MR`] rows of the
//! input, which stay in L1/L2 because rows are processed in tiles sized to the cache.
//! Bias, ReLU6 and the residual add are fused into the store, so every output is written exactly once.

use crate::simd::{relu6, Isa};
use std::ops::Range;

/// Output columns per micro-tile: two 8-wide AVX registers.
pub const NR: usize = 16;
/// Rows per micro-tile: 6 rows x 2 registers = 12 accumulators, leaving 4 of the 16 ymm registers for loads.
pub const MR: usize = 6;

/// What to apply to each output before the residual add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    None,
    Relu6,
}

/// A `[k][n]` weight matrix plus bias, packed into `ceil(n / NR)` panels (zero-padded, so kernels never branch on `n`).
#[derive(Clone, Debug)]
pub struct Packed {
    pub k: usize,
    pub n: usize,
    data: Vec<f32>,
    bias: Vec<f32>,
}

impl Packed {
    /// Packs weights given in PyTorch order `w[out][in]` (`n` outputs, `k` inputs) and a bias per output.
    pub fn from_out_in(w: &[f32], bias: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight length");
        assert_eq!(bias.len(), n, "bias length");
        let panels = n.div_ceil(NR);
        let mut data = vec![0.0; panels * k * NR];
        let mut padded_bias = vec![0.0; panels * NR];
        for o in 0..n {
            let (p, j) = (o / NR, o % NR);
            for i in 0..k {
                data[p * k * NR + i * NR + j] = w[o * k + i];
            }
            padded_bias[o] = bias[o];
        }
        Packed { k, n, data, bias: padded_bias }
    }

    pub(crate) fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// Panel `p`: `k` rows of [`NR`] weights each (zero past column `n`).
    pub(crate) fn panel(&self, p: usize) -> &[f32] {
        &self.data[p * self.k * NR..(p + 1) * self.k * NR]
    }

    /// The bias, zero-padded to whole panels.
    pub(crate) fn bias(&self) -> &[f32] {
        &self.bias
    }
}

/// Rows per cache tile: about 64 KiB of input, so a tile is reused from cache across all column panels.
fn tile_rows(k: usize) -> usize {
    ((16_384 / k.max(1)) / MR).clamp(1, 64) * MR
}

/// End of the row group that starts at `m0` (of `m` rows, groups of `mt`): every group streams all the weight panels
/// through the cache once, so a last group of fewer than [`MR`] rows joins the one before it instead of paying a
/// whole pass over the weights for a row or two. (At batch 1 the 7x7 layers split 49 rows as 25 + 24 across two
/// threads; with 12-row groups the 25 took three passes over 0.9 MB of weights and the 24 two, so one thread waited.)
fn row_group_end(m0: usize, m: usize, mt: usize) -> usize {
    if m - m0 < mt + MR {
        m
    } else {
        m0 + mt
    }
}

/// Where output row `r` is stored: `r + (r / run) * skip` rows into `out`.
///
/// A depthwise layer reads its input with zero columns either side of every image row (so its kernel never clips
/// taps); writing the expand conv's output straight into that layout (`run` = image width, `skip` = padding columns)
/// avoids a padded copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub run: usize,
    pub skip: usize,
}

impl Layout {
    /// Row `r` at row `r`.
    pub const DENSE: Layout = Layout { run: usize::MAX, skip: 0 };

    pub(crate) fn stored(self, r: usize) -> usize {
        r + (r / self.run) * self.skip
    }
}

/// `out[r][0..n] = act(a[r][0..k] · W + bias) (+ residual[r][0..n])` for `r < m`.
///
/// `a` rows are `lda` apart, `out` and `residual` rows `ldo` apart.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    isa: Isa,
    a: &[f32],
    lda: usize,
    m: usize,
    w: &Packed,
    act: Act,
    residual: Option<&[f32]>,
    out: &mut [f32],
    ldo: usize,
) {
    matmul_into(isa, a, lda, m, w, act, residual, out, ldo, Layout::DENSE)
}

/// [`matmul`] with output row `r` stored at row `layout.stored(r)` (residuals need the dense layout).
#[allow(clippy::too_many_arguments)]
pub fn matmul_into(
    isa: Isa,
    a: &[f32],
    lda: usize,
    m: usize,
    w: &Packed,
    act: Act,
    residual: Option<&[f32]>,
    out: &mut [f32],
    ldo: usize,
    layout: Layout,
) {
    if m == 0 {
        return;
    }
    assert!(out.len() >= layout.stored(m - 1) * ldo + w.n, "output too short");
    // SAFETY: the output is a live exclusive slice long enough for every row (asserted above).
    unsafe { matmul_panels(isa, a, lda, m, w, 0..w.panels(), act, residual, out.as_mut_ptr(), ldo, layout) }
}

/// [`matmul_into`] restricted to the output columns of weight panels `panels` (of [`NR`] columns each), written
/// through a raw pointer: threads that share one matrix product by columns write interleaved parts of the same rows.
///
/// # Safety
/// `out` must be valid for writes of rows `layout.stored(0..m)` (each `ldo` apart) in the columns of `panels`, and no
/// other thread may access those elements during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul_panels(
    isa: Isa,
    a: &[f32],
    lda: usize,
    m: usize,
    w: &Packed,
    panels: Range<usize>,
    act: Act,
    residual: Option<&[f32]>,
    out: *mut f32,
    ldo: usize,
    layout: Layout,
) {
    if m == 0 || panels.is_empty() {
        return;
    }
    assert!(layout.run > 0, "layout run must be positive");
    assert!(panels.end <= w.panels(), "panel range past the weights");
    assert!(lda >= w.k && ldo >= w.n, "leading dimensions too small");
    assert!(a.len() >= (m - 1) * lda + w.k, "input too short");
    if let Some(r) = residual {
        assert_eq!(layout, Layout::DENSE, "residual needs the dense layout");
        assert!(r.len() >= (m - 1) * ldo + w.n, "residual too short");
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Avx2Fma is only ever chosen after run-time detection (or by a caller that checked); the asserts
        // above keep every read inside the slices, and the caller vouches for the output.
        Isa::Avx2Fma => avx::matmul(a, lda, m, w, panels, act, residual, out, ldo, layout),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX-512 (whose detection includes AVX2/FMA, used for half-width tails).
        Isa::Avx512 => avx512::matmul(a, lda, m, w, panels, act, residual, out, ldo, layout),
        _ => portable(a, lda, m, w, panels, act, residual, out, ldo, layout),
    }
}

/// # Safety
/// As [`matmul_panels`].
#[allow(clippy::too_many_arguments)]
unsafe fn portable(
    a: &[f32],
    lda: usize,
    m: usize,
    w: &Packed,
    panels: Range<usize>,
    act: Act,
    residual: Option<&[f32]>,
    out: *mut f32,
    ldo: usize,
    layout: Layout,
) {
    let k = w.k;
    for p in panels {
        let panel = &w.data[p * k * NR..(p + 1) * k * NR];
        let n0 = p * NR;
        let valid = NR.min(w.n - n0);
        for r in 0..m {
            let mut acc = [0.0f32; NR];
            acc.copy_from_slice(&w.bias[n0..n0 + NR]);
            let row = &a[r * lda..r * lda + k];
            for (x, wk) in row.iter().zip(panel.chunks_exact(NR)) {
                for (s, wv) in acc.iter_mut().zip(wk) {
                    *s += x * wv;
                }
            }
            let at = layout.stored(r) * ldo + n0;
            for (j, &sum) in acc.iter().enumerate().take(valid) {
                let mut v = sum;
                if act == Act::Relu6 {
                    v = relu6(v);
                }
                if let Some(res) = residual {
                    v += res[r * ldo + n0 + j];
                }
                *out.add(at + j) = v;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx;
#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::KernelCase;
    use crate::random::Rng;

    #[test]
    fn panel_ranges_write_only_their_columns() {
        let mut rng = Rng::new(5);
        // 83 columns: 5 full panels and a last one of 3; k = 70 takes the AVX-512 multi-panel tiles.
        let (m, k, n) = (9, 70, 83);
        let (w, bias, a, res) = (rng.vec(n * k, 1.0), rng.vec(n, 1.0), rng.vec(m * k, 1.0), rng.vec(m * n, 1.0));
        let packed = Packed::from_out_in(&w, &bias, n, k);
        for isa in Isa::available() {
            let mut whole = vec![0.0; m * n];
            matmul(isa, &a, k, m, &packed, Act::Relu6, Some(&res), &mut whole, n);
            for cuts in [vec![0, 6], vec![0, 3, 6], vec![0, 1, 2, 5, 6], vec![0, 4, 6]] {
                let mut joined = vec![f32::NAN; m * n];
                for part in cuts.windows(2) {
                    let (p0, p1) = (part[0], part[1]);
                    // SAFETY: `joined` is exclusively borrowed and holds every row; parts run one after another.
                    unsafe {
                        let out = joined.as_mut_ptr();
                        matmul_panels(isa, &a, k, m, &packed, p0..p1, Act::Relu6, Some(&res), out, n, Layout::DENSE)
                    };
                    // Columns of later panels are still untouched.
                    let next = (p1 * NR).min(n);
                    assert!(joined.chunks_exact(n).all(|row| row[next..].iter().all(|v| v.is_nan())), "{isa:?}");
                }
                assert_eq!(joined, whole, "{isa:?}, cuts {cuts:?}");
            }
        }
    }

    #[test]
    fn matches_naive_for_awkward_shapes() {
        for mut case in crate::check::MatmulCase::all() {
            for isa in Isa::available() {
                case.clear();
                case.run(isa);
                let error = case.error();
                assert!(error < crate::check::TOLERANCE, "{isa:?} {}: off by {error}", case.describe());
            }
        }
    }

    #[test]
    fn a_short_last_row_group_joins_the_one_before() {
        assert_eq!(row_group_end(0, 25, 12), 12);
        assert_eq!(row_group_end(12, 25, 12), 25);
        assert_eq!(row_group_end(12, 31, 12), 24);
        assert_eq!(row_group_end(0, 17, 12), 17);
        assert_eq!(row_group_end(0, 18, 12), 12);
    }

    #[test]
    fn strided_rows_leave_gaps_untouched() {
        for (m, k, n, lda, ldo) in [(9, 5, 20, 7, 23), (9, 67, 29, 70, 31)] {
            strided(m, k, n, lda, ldo);
        }
    }

    fn strided(m: usize, k: usize, n: usize, lda: usize, ldo: usize) {
        let mut rng = Rng::new(3);
        let a = rng.vec(m * lda, 1.0);
        let w = rng.vec(n * k, 1.0);
        let packed = Packed::from_out_in(&w, &vec![0.0; n], n, k);
        for isa in Isa::available() {
            let mut out = vec![-7.0; m * ldo];
            matmul(isa, &a, lda, m, &packed, Act::None, None, &mut out, ldo);
            for r in 0..m {
                for o in 0..ldo {
                    let got = out[r * ldo + o];
                    if o >= n {
                        assert_eq!(got, -7.0);
                        continue;
                    }
                    let want: f32 = (0..k).map(|i| a[r * lda + i] * w[o * k + i]).sum();
                    assert!((got - want).abs() < 1e-4);
                }
            }
        }
    }
}
