//! Direct AVX2/FMA kernel of a 3x3 stem with 32 outputs: three output pixels at a time, all 32 channels in four
//! registers each (12 accumulators), one broadcast input value feeding four FMAs.

use crate::conv1x1::{Packed, NR};
use std::arch::x86_64::*;

/// Kernel size this kernel handles.
pub(super) const K: usize = 3;
/// Output channels this kernel handles.
pub(super) const COUT: usize = 32;

/// One output row: `out[ox][0..32] = relu6(bias + sum over taps of lines[r][ox * s + dx] * w[r * 3 + dx][..])` for the
/// `rows` padded input lines `r` (channel-major, then kernel row) of `lw` floats each; `w` has `rows * 3` inputs and
/// 32 outputs, so its two 16-column panels hold each tap's 32 weights.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn row(lines: &[f32], lw: usize, rows: usize, s: usize, w: &Packed, out: &mut [f32]) {
    let ow = out.len() / COUT;
    assert_eq!(out.len(), ow * COUT, "stem output row length");
    assert!(ow == 0 || (ow - 1) * s + K <= lw, "padded lines too short");
    assert!(lines.len() >= rows * lw && w.k == rows * K && w.n == COUT, "stem operands");
    let panels = [w.panel(0).as_ptr(), w.panel(1).as_ptr()];
    let bias = w.bias().as_ptr();
    let mut ox = 0;
    while ox + 3 <= ow {
        pixels::<3>(lines.as_ptr(), lw, rows, s, panels, bias, ox, out.as_mut_ptr());
        ox += 3;
    }
    match ow - ox {
        2 => pixels::<2>(lines.as_ptr(), lw, rows, s, panels, bias, ox, out.as_mut_ptr()),
        1 => pixels::<1>(lines.as_ptr(), lw, rows, s, panels, bias, ox, out.as_mut_ptr()),
        _ => {}
    }
}

/// Output pixels `ox..ox + P` of the row. Indexed loops on purpose: written with iterators (zip over the
/// accumulators) LLVM kept them in memory, 20 % slower.
#[inline]
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn pixels<const P: usize>(
    lines: *const f32,
    lw: usize,
    rows: usize,
    s: usize,
    panels: [*const f32; 2],
    bias: *const f32,
    ox: usize,
    out: *mut f32,
) {
    let b = [0, 8, 16, 24].map(|q| _mm256_loadu_ps(bias.add(q)));
    let mut acc = [b; P];
    for r in 0..rows {
        let line = lines.add(r * lw + ox * s);
        for dx in 0..K {
            let tap = (r * K + dx) * NR;
            let x: [__m256; P] = std::array::from_fn(|p| _mm256_broadcast_ss(&*line.add(p * s + dx)));
            for q in 0..4 {
                let wq = _mm256_loadu_ps(panels[q / 2].add(tap + q % 2 * 8));
                for p in 0..P {
                    acc[p][q] = _mm256_fmadd_ps(x[p], wq, acc[p][q]);
                }
            }
        }
    }
    let (zero, six) = (_mm256_setzero_ps(), _mm256_set1_ps(6.0));
    for (p, a) in acc.iter().enumerate() {
        let o = out.add((ox + p) * COUT);
        for (q, v) in a.iter().enumerate() {
            _mm256_storeu_ps(o.add(q * 8), _mm256_min_ps(_mm256_max_ps(*v, zero), six));
        }
    }
}
