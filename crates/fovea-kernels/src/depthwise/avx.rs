//! AVX2/FMA depthwise kernels; only called after run-time feature detection.

use super::slide::Lanes;
use super::{Depthwise, Geom, MAX_K, MAX_TAPS};
use crate::simd::relu6;
use std::arch::x86_64::*;
use std::ops::Range;

/// Eight channels in a ymm register; a partial block uses AVX2's masked loads and stores.
#[derive(Clone, Copy)]
pub(super) struct Ymm(__m256);

impl Lanes for Ymm {
    const WIDTH: usize = 8;
    type Mask = __m256i;

    #[inline(always)]
    unsafe fn mask(n: usize) -> __m256i {
        // Lane i is on when i < n (the sign bit is what maskload and maskstore read).
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
    }
    #[inline(always)]
    unsafe fn load<const FULL: bool>(p: *const f32, m: __m256i) -> Self {
        Ymm(if FULL { _mm256_loadu_ps(p) } else { _mm256_maskload_ps(p, m) })
    }
    #[inline(always)]
    unsafe fn mul_add(self, w: Self, acc: Self) -> Self {
        Ymm(_mm256_fmadd_ps(self.0, w.0, acc.0))
    }
    #[inline(always)]
    unsafe fn store_relu6<const FULL: bool>(self, p: *mut f32, m: __m256i) {
        let v = _mm256_min_ps(_mm256_max_ps(self.0, _mm256_setzero_ps()), _mm256_set1_ps(6.0));
        if FULL {
            _mm256_storeu_ps(p, v)
        } else {
            _mm256_maskstore_ps(p, m, v)
        }
    }
}

impl Depthwise {
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn row_avx(&self, input: &[f32], g: &Geom, out: *mut f32) {
        let s = self.stride;
        let (lo, hi) = self.unclipped_cols(g);
        // The common kernel sizes and strides slide along the row (see `slide.rs`); leftovers and other sizes take
        // the generic kernel.
        let mut ox = match (self.k, s) {
            (3, 1) => self.slide_avx::<3, 1, 8, 10>(input, g, lo, hi, out),
            (5, 1) => self.slide_avx::<5, 1, 4, 8>(input, g, lo, hi, out),
            (3, 2) => self.slide_avx::<3, 2, 4, 9>(input, g, lo, hi, out),
            (5, 2) => self.slide_avx::<5, 2, 4, 11>(input, g, lo, hi, out),
            _ => lo,
        };
        while ox + 4 <= hi {
            self.unclipped_avx::<4>(input, g, ox, out);
            ox += 4;
        }
        match hi - ox {
            3 => self.unclipped_avx::<3>(input, g, ox, out),
            2 => self.unclipped_avx::<2>(input, g, ox, out),
            1 => self.unclipped_avx::<1>(input, g, ox, out),
            _ => {}
        }
        self.clipped_avx(input, g, 0..lo, out);
        self.clipped_avx(input, g, hi..g.ow, out);
    }

    /// [`Depthwise::slide`] on 8-channel ymm registers.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn slide_avx<const K: usize, const S: usize, const P: usize, const N: usize>(
        &self,
        input: &[f32],
        g: &Geom,
        ox: usize,
        hi: usize,
        out: *mut f32,
    ) -> usize {
        self.slide::<Ymm, K, S, P, N>(input, g, ox, hi, out)
    }

    /// `P` neighbouring output pixels whose taps all land on stored pixels, 16 channels at a time: each weight load
    /// feeds `P` FMAs and the `2P` accumulators are independent chains, so with `P = 4` neither load ports nor FMA
    /// latency dominate.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn unclipped_avx<const P: usize>(&self, input: &[f32], g: &Geom, ox: usize, out: *mut f32) {
        let (c, k, s) = (self.c, self.k, self.stride);
        let col = g.col0 + ox * s - g.pad_left;
        let o = out.add(ox * c);
        let wts = self.w.as_ptr();
        let zero = _mm256_setzero_ps();
        let six = _mm256_set1_ps(6.0);
        let rows = row_ptrs(input, g, col * c);
        let mut cb = g.ch.0;
        while cb + 16 <= g.ch.1 {
            let b0 = _mm256_loadu_ps(self.bias.as_ptr().add(cb));
            let b1 = _mm256_loadu_ps(self.bias.as_ptr().add(cb + 8));
            let mut a = [[b0, b1]; P];
            for (dy, row) in rows.iter().enumerate().take(g.ky.1).skip(g.ky.0) {
                let row = row.add(cb);
                let wrow = wts.add(dy * k * c + cb);
                for dx in 0..k {
                    let w0 = _mm256_loadu_ps(wrow.add(dx * c));
                    let w1 = _mm256_loadu_ps(wrow.add(dx * c + 8));
                    for (p, acc) in a.iter_mut().enumerate() {
                        let x = row.add((p * s + dx) * c);
                        acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x), w0, acc[0]);
                        acc[1] = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(8)), w1, acc[1]);
                    }
                }
            }
            for (p, acc) in a.iter().enumerate() {
                let dst = o.add(p * c + cb);
                _mm256_storeu_ps(dst, _mm256_min_ps(_mm256_max_ps(acc[0], zero), six));
                _mm256_storeu_ps(dst.add(8), _mm256_min_ps(_mm256_max_ps(acc[1], zero), six));
            }
            cb += 16;
        }
        if cb + 8 <= g.ch.1 {
            let mut a = [_mm256_loadu_ps(self.bias.as_ptr().add(cb)); P];
            for (dy, row) in rows.iter().enumerate().take(g.ky.1).skip(g.ky.0) {
                for dx in 0..k {
                    let w0 = _mm256_loadu_ps(wts.add((dy * k + dx) * c + cb));
                    for (p, acc) in a.iter_mut().enumerate() {
                        *acc = _mm256_fmadd_ps(_mm256_loadu_ps(row.add((p * s + dx) * c + cb)), w0, *acc);
                    }
                }
            }
            for (p, acc) in a.iter().enumerate() {
                _mm256_storeu_ps(o.add(p * c + cb), _mm256_min_ps(_mm256_max_ps(*acc, zero), six));
            }
            cb += 8;
        }
        for ch in cb..g.ch.1 {
            for p in 0..P {
                let mut v = self.bias[ch];
                for (dy, row) in rows.iter().enumerate().take(g.ky.1).skip(g.ky.0) {
                    for dx in 0..k {
                        v = (*row.add((p * s + dx) * c + ch)).mul_add(*wts.add((dy * k + dx) * c + ch), v);
                    }
                }
                *o.add(p * c + ch) = relu6(v);
            }
        }
    }

    /// Border pixels of a plain input, four at a time; taps outside the image read a row of zeros through a pointer
    /// table instead of branching, and taps outside it for all four pixels are skipped.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn clipped_avx(&self, input: &[f32], g: &Geom, cols: Range<usize>, out: *mut f32) {
        let (c, k, s) = (self.c, self.k, self.stride);
        let zero = _mm256_setzero_ps();
        let six = _mm256_set1_ps(6.0);
        let mut ox = cols.start;
        while ox < cols.end {
            let n_px = (cols.end - ox).min(4);
            let mut taps = [(0usize, [self.zeros.as_ptr(); 4]); MAX_TAPS];
            let mut n = 0;
            for dy in g.ky.0..g.ky.1 {
                let row = input.as_ptr().add(g.row_at[dy]);
                for dx in 0..k {
                    let mut any = false;
                    for p in 0..n_px {
                        let ix = ((ox + p) * s + dx) as isize - g.pad_left as isize;
                        if ix >= 0 && (ix as usize) < g.w {
                            taps[n].1[p] = row.add((g.col0 + ix as usize) * c);
                            any = true;
                        } else {
                            taps[n].1[p] = self.zeros.as_ptr();
                        }
                    }
                    if any {
                        taps[n].0 = (dy * k + dx) * c;
                        n += 1;
                    }
                }
            }
            let taps = &taps[..n];
            let o = out.add(ox * c);
            let mut cb = g.ch.0;
            while cb + 8 <= g.ch.1 {
                let mut a = [_mm256_loadu_ps(self.bias.as_ptr().add(cb)); 4];
                for (wo, px) in taps {
                    let w0 = _mm256_loadu_ps(self.w.as_ptr().add(wo + cb));
                    for (acc, x) in a.iter_mut().zip(px) {
                        *acc = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(cb)), w0, *acc);
                    }
                }
                for (p, acc) in a.iter().enumerate().take(n_px) {
                    _mm256_storeu_ps(o.add(p * c + cb), _mm256_min_ps(_mm256_max_ps(*acc, zero), six));
                }
                cb += 8;
            }
            for ch in cb..g.ch.1 {
                for p in 0..n_px {
                    let mut v = self.bias[ch];
                    for (wo, px) in taps {
                        v = (*px[p].add(ch)).mul_add(*self.w.as_ptr().add(wo + ch), v);
                    }
                    *o.add(p * c + ch) = relu6(v);
                }
            }
            ox += n_px;
        }
    }
}

/// Address of stored column `col` (in floats) of each tap row inside the image; other entries are unused.
#[inline(always)]
pub(super) unsafe fn row_ptrs(input: &[f32], g: &Geom, col: usize) -> [*const f32; MAX_K] {
    let mut rows = [input.as_ptr(); MAX_K];
    for (row, at) in rows.iter_mut().zip(g.row_at).take(g.ky.1).skip(g.ky.0) {
        *row = input.as_ptr().add(at + col);
    }
    rows
}
