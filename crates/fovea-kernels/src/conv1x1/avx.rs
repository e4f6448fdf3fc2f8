//! AVX2/FMA micro-kernels of the 1x1 convolution; only called after run-time feature detection.

use super::{row_group_end, tile_rows, Act, Layout, Packed, MR, NR};

/// Rows per tile of the 8-column kernel: 12 accumulators plus the weight and broadcast registers.
pub(super) const MR8: usize = 12;
use std::arch::x86_64::*;
use std::ops::Range;

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn matmul(
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
    let mt = tile_rows(k);
    let res = residual.map_or(std::ptr::null(), |r| r.as_ptr());
    let mut m0 = 0;
    while m0 < m {
        let m1 = row_group_end(m0, m, mt);
        for p in panels.clone() {
            let valid = NR.min(w.n - p * NR);
            let mut r = m0;
            if valid <= 8 {
                // A half-empty last panel (widths like 24 or 40): 12 x 8 tiles do no wasted FMAs.
                while r < m1 {
                    let rows = MR8.min(m1 - r);
                    tile8_rows(&Tile::at(a, lda, r, w, p, act, res, out, ldo, layout), rows);
                    r += rows;
                }
                continue;
            }
            while r < m1 {
                let rows = MR.min(m1 - r);
                let t = Tile::at(a, lda, r, w, p, act, res, out, ldo, layout);
                match rows {
                    6 => tile::<6>(&t),
                    5 => tile::<5>(&t),
                    4 => tile::<4>(&t),
                    3 => tile::<3>(&t),
                    2 => tile::<2>(&t),
                    _ => tile::<1>(&t),
                }
                r += rows;
            }
        }
        m0 = m1;
    }
}

/// One micro-tile's operands: rows from `r` of `a`, panel `p` (and the ones after it) of the weights.
pub(super) struct Tile {
    pub(super) k: usize,
    pub(super) a: *const f32,
    pub(super) lda: usize,
    pub(super) b: *const f32,
    pub(super) bias: *const f32,
    /// Valid output columns from the tile's first one on (may span more than one panel).
    pub(super) valid: usize,
    pub(super) act: Act,
    pub(super) res: *const f32,
    pub(super) out: *mut f32,
    pub(super) ldo: usize,
    /// Position of the first row within its run of `run` rows; after each run the output skips `gap` floats.
    col: usize,
    run: usize,
    gap: usize,
}

impl Tile {
    /// The tile of rows from `r`, columns from panel `p`; `res` is the whole residual (or null).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) unsafe fn at(
        a: &[f32],
        lda: usize,
        r: usize,
        w: &Packed,
        p: usize,
        act: Act,
        res: *const f32,
        out: *mut f32,
        ldo: usize,
        layout: Layout,
    ) -> Tile {
        let n0 = p * NR;
        Tile {
            k: w.k,
            a: a.as_ptr().add(r * lda),
            lda,
            b: w.data.as_ptr().add(p * w.k * NR),
            bias: w.bias.as_ptr().add(n0),
            valid: w.n - n0,
            act,
            res: if res.is_null() { res } else { res.add(r * ldo + n0) },
            out: out.add(layout.stored(r) * ldo + n0),
            ldo,
            col: r % layout.run,
            run: layout.run,
            gap: layout.skip * ldo,
        }
    }

    /// Output address of each row of the tile.
    #[inline(always)]
    pub(super) fn outs<const R: usize>(&self) -> [*mut f32; R] {
        let mut outs = [self.out; R];
        let mut o = self.out;
        let mut col = self.col;
        for slot in outs.iter_mut() {
            *slot = o;
            o = o.wrapping_add(self.ldo);
            col += 1;
            if col == self.run {
                col = 0;
                o = o.wrapping_add(self.gap);
            }
        }
        outs
    }
}

/// One `R x 16` block of the output; `R` is a constant so the accumulators live in registers.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize>(t: &Tile) {
    let bias0 = _mm256_loadu_ps(t.bias);
    let bias1 = _mm256_loadu_ps(t.bias.add(8));
    let mut c0 = [bias0; R];
    let mut c1 = [bias1; R];
    if R == 1 {
        (c0[0], c1[0]) = one_row(t, bias0, bias1);
    } else {
        let mut b = t.b;
        for kk in 0..t.k {
            let w0 = _mm256_loadu_ps(b);
            let w1 = _mm256_loadu_ps(b.add(8));
            for r in 0..R {
                let x = _mm256_broadcast_ss(&*t.a.add(r * t.lda + kk));
                c0[r] = _mm256_fmadd_ps(x, w0, c0[r]);
                c1[r] = _mm256_fmadd_ps(x, w1, c1[r]);
            }
            b = b.add(NR);
        }
    }
    let relu = t.act == Act::Relu6;
    let zero = _mm256_setzero_ps();
    let six = _mm256_set1_ps(6.0);
    let outs = t.outs::<R>();
    for r in 0..R {
        let (mut v0, mut v1) = (c0[r], c1[r]);
        if relu {
            v0 = _mm256_min_ps(_mm256_max_ps(v0, zero), six);
            v1 = _mm256_min_ps(_mm256_max_ps(v1, zero), six);
        }
        let o = outs[r];
        let res = if t.res.is_null() { t.res } else { t.res.add(r * t.ldo) };
        if t.valid >= NR {
            if !res.is_null() {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(res));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(res.add(8)));
            }
            _mm256_storeu_ps(o, v0);
            _mm256_storeu_ps(o.add(8), v1);
        } else {
            store_partial(o, res, v0, v1, t.valid.min(NR));
        }
    }
}

/// The sums of a one-row tile. Its two accumulators alone would make every FMA wait for the previous one (4-5 cycles
/// of latency each); four independent pairs over interleaved inputs keep the FMA units busy. A one-row tile is the
/// leftover of 49 (7x7) rows, and at batch 1 the thread that has it finishes last.
#[inline(always)]
unsafe fn one_row(t: &Tile, bias0: __m256, bias1: __m256) -> (__m256, __m256) {
    let zero = _mm256_setzero_ps();
    let (mut c0, mut c1) = ([bias0, zero, zero, zero], [bias1, zero, zero, zero]);
    let mut b = t.b;
    let quads = t.k / 4 * 4;
    for kk in (0..quads).step_by(4) {
        for j in 0..4 {
            let x = _mm256_broadcast_ss(&*t.a.add(kk + j));
            c0[j] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b), c0[j]);
            c1[j] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b.add(8)), c1[j]);
            b = b.add(NR);
        }
    }
    for kk in quads..t.k {
        let x = _mm256_broadcast_ss(&*t.a.add(kk));
        c0[0] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b), c0[0]);
        c1[0] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b.add(8)), c1[0]);
        b = b.add(NR);
    }
    let sum = |c: [__m256; 4]| _mm256_add_ps(_mm256_add_ps(c[0], c[1]), _mm256_add_ps(c[2], c[3]));
    (sum(c0), sum(c1))
}

/// `rows` (at most [`MR8`]) rows of [`tile8`].
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn tile8_rows(t: &Tile, rows: usize) {
    match rows {
        12 => tile8::<12>(t),
        11 => tile8::<11>(t),
        10 => tile8::<10>(t),
        9 => tile8::<9>(t),
        8 => tile8::<8>(t),
        7 => tile8::<7>(t),
        6 => tile8::<6>(t),
        5 => tile8::<5>(t),
        4 => tile8::<4>(t),
        3 => tile8::<3>(t),
        2 => tile8::<2>(t),
        _ => tile8::<1>(t),
    }
}

/// One `R x 8` block (the first 8 columns of a panel), for panels with at most 8 valid columns.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile8<const R: usize>(t: &Tile) {
    let mut c0 = [_mm256_loadu_ps(t.bias); R];
    let mut b = t.b;
    for kk in 0..t.k {
        let w0 = _mm256_loadu_ps(b);
        for (r, acc) in c0.iter_mut().enumerate() {
            let x = _mm256_broadcast_ss(&*t.a.add(r * t.lda + kk));
            *acc = _mm256_fmadd_ps(x, w0, *acc);
        }
        b = b.add(NR);
    }
    let relu = t.act == Act::Relu6;
    let zero = _mm256_setzero_ps();
    let six = _mm256_set1_ps(6.0);
    let outs = t.outs::<R>();
    for (r, acc) in c0.iter().enumerate() {
        let mut v0 = *acc;
        if relu {
            v0 = _mm256_min_ps(_mm256_max_ps(v0, zero), six);
        }
        let o = outs[r];
        let res = if t.res.is_null() { t.res } else { t.res.add(r * t.ldo) };
        if t.valid >= 8 {
            if !res.is_null() {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(res));
            }
            _mm256_storeu_ps(o, v0);
        } else {
            store_partial(o, res, v0, zero, t.valid.min(8));
        }
    }
}

/// Last panel of an output width that is not a multiple of 16: spill and copy the valid columns. Kept out of line
/// so the hot tile keeps its accumulators in registers.
#[cold]
#[inline(never)]
#[target_feature(enable = "avx2,fma")]
unsafe fn store_partial(o: *mut f32, res: *const f32, v0: __m256, v1: __m256, valid: usize) {
    let mut tmp = [0.0f32; NR];
    _mm256_storeu_ps(tmp.as_mut_ptr(), v0);
    _mm256_storeu_ps(tmp.as_mut_ptr().add(8), v1);
    for (j, v) in tmp.iter().enumerate().take(valid) {
        let add = if res.is_null() { 0.0 } else { *res.add(j) };
        *o.add(j) = v + add;
    }
}
