//! AVX-512 micro-kernels of the 1x1 convolution; only called after run-time feature detection.
//!
//! A tile is up to 6 rows by up to four 16-wide panels (64 columns): 24 accumulators in the 32 zmm registers, so each
//! broadcast input value feeds four FMAs and each weight load feeds six. Six rows, as in the AVX2 kernel, because
//! each row needs an address register: 12-row tiles ran out of general-purpose registers and spilled (a third slower
//! at small `k`), and packing the rows to avoid that cost more than it saved at these layer sizes. Columns past `n` in the last panel are handled
//! by masked loads and stores instead of a spill; a last panel with at most 8 valid columns takes the AVX2 8-column
//! tile, which wastes no FMAs on the padding.

use super::avx::{tile8_rows, Tile, MR8};
use super::{row_group_end, tile_rows, Act, Layout, Packed, NR};
use std::arch::x86_64::*;
use std::ops::Range;

/// Rows per tile.
const MR: usize = 6;
/// Below this many inputs the AVX2 tiles are used on CPUs that split 512-bit FMAs in two (Zen 4): there wider
/// registers add no arithmetic, and with short dot products the per-tile epilogue dominates, the 512-bit one costing
/// more (k 16: 42 against 46 GMAC/s; k 80 and up: 1-4 % faster than AVX2). With whole 512-bit FMA units the 512-bit
/// tiles win at every k (Zen 5: k 16 72 against 40, k 40 82 against 49 GMAC/s).
const SPLIT_FMA_AVX2_BELOW_K: usize = 64;
/// Panels per tile at most.
const MAX_NP: usize = 4;

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
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
    if w.k < SPLIT_FMA_AVX2_BELOW_K && crate::simd::splits_512_bit_fma() {
        return super::avx::matmul(a, lda, m, w, panels, act, residual, out, ldo, layout);
    }
    let mt = tile_rows(w.k);
    let res = residual.map_or(std::ptr::null(), |r| r.as_ptr());
    let mut m0 = 0;
    while m0 < m {
        let m1 = row_group_end(m0, m, mt);
        let mut p = panels.start;
        while p < panels.end {
            let valid = w.n - p * NR;
            let mut r = m0;
            if valid <= 8 {
                while r < m1 {
                    let rows = MR8.min(m1 - r);
                    tile8_rows(&Tile::at(a, lda, r, w, p, act, res, out, ldo, layout), rows);
                    r += rows;
                }
                p += 1;
                continue;
            }
            // Whole panels, plus a last one only when it has more than 8 real columns (else the 8-column tile takes
            // it on the next round, without wasted FMAs).
            let np = (valid / NR + usize::from(valid % NR > 8)).clamp(1, MAX_NP).min(panels.end - p);
            while r < m1 {
                let rows = MR.min(m1 - r);
                let t = Tile::at(a, lda, r, w, p, act, res, out, ldo, layout);
                match np {
                    4 => panel_tiles::<4>(&t, rows),
                    3 => panel_tiles::<3>(&t, rows),
                    2 => panel_tiles::<2>(&t, rows),
                    _ => panel_tiles::<1>(&t, rows),
                }
                r += rows;
            }
            p += np;
        }
        m0 = m1;
    }
}

/// `rows` (at most [`MR`]) rows of [`tile`] with `NP` panels.
#[inline]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn panel_tiles<const NP: usize>(t: &Tile, rows: usize) {
    match rows {
        6 => tile::<6, NP>(t),
        5 => tile::<5, NP>(t),
        4 => tile::<4, NP>(t),
        3 => tile::<3, NP>(t),
        2 => tile::<2, NP>(t),
        _ => tile::<1, NP>(t),
    }
}

/// Lane mask of the `valid` columns (of a 16-column panel) that exist.
#[inline(always)]
fn lanes(valid: usize) -> __mmask16 {
    if valid >= 16 {
        0xFFFF
    } else {
        ((1u32 << valid) - 1) as __mmask16
    }
}

/// One `R x 16·NP` block of the output; `R` and `NP` are constants so the loops unroll. One plain array of
/// accumulators per panel: LLVM keeps those in registers, while a 2-D array was kept in memory (2.5x slower).
#[inline]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn tile<const R: usize, const NP: usize>(t: &Tile) {
    let panel = t.k * NR;
    let bias = |j: usize| if j < NP { _mm512_loadu_ps(t.bias.add(j * NR)) } else { _mm512_setzero_ps() };
    let (mut c0, mut c1, mut c2, mut c3) = ([bias(0); R], [bias(1); R], [bias(2); R], [bias(3); R]);
    let mut b = t.b;
    for kk in 0..t.k {
        let w0 = _mm512_loadu_ps(b);
        let w1 = if NP > 1 { _mm512_loadu_ps(b.add(panel)) } else { w0 };
        let w2 = if NP > 2 { _mm512_loadu_ps(b.add(2 * panel)) } else { w0 };
        let w3 = if NP > 3 { _mm512_loadu_ps(b.add(3 * panel)) } else { w0 };
        for r in 0..R {
            let x = _mm512_set1_ps(*t.a.add(r * t.lda + kk));
            c0[r] = _mm512_fmadd_ps(x, w0, c0[r]);
            if NP > 1 {
                c1[r] = _mm512_fmadd_ps(x, w1, c1[r]);
            }
            if NP > 2 {
                c2[r] = _mm512_fmadd_ps(x, w2, c2[r]);
            }
            if NP > 3 {
                c3[r] = _mm512_fmadd_ps(x, w3, c3[r]);
            }
        }
        b = b.add(NR);
    }
    let outs = t.outs::<R>();
    for r in 0..R {
        let res = if t.res.is_null() { t.res } else { t.res.add(r * t.ldo) };
        for (j, v) in [c0[r], c1[r], c2[r], c3[r]].into_iter().enumerate().take(NP) {
            let res = if res.is_null() { res } else { res.add(j * NR) };
            store(t, outs[r].add(j * NR), res, v, t.valid - j * NR);
        }
    }
}

/// Activation, residual and a full or masked store of one 16-column row segment with `valid` real columns.
#[inline]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn store(t: &Tile, o: *mut f32, res: *const f32, mut v: __m512, valid: usize) {
    if t.act == Act::Relu6 {
        v = _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(6.0));
    }
    if valid >= NR {
        if !res.is_null() {
            v = _mm512_add_ps(v, _mm512_loadu_ps(res));
        }
        _mm512_storeu_ps(o, v);
    } else {
        let m = lanes(valid);
        if !res.is_null() {
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res));
        }
        _mm512_mask_storeu_ps(o, m, v);
    }
}
