//! AVX-512 depthwise kernels; only called after run-time feature detection.
//!
//! Same structure as the AVX2 kernels, 16 channels per register. Channel counts that are not a multiple of 16 end in
//! one masked block instead of a scalar loop, and a row's last pixels (fewer than eight: all of a 7-pixel row) take a
//! kernel with that many pixels as a constant instead of a runtime-sized loop.
//! The common kernel sizes first take the sliding kernel (`slide.rs`) on zmm registers, as the AVX2 path does; the
//! pixels left over (fewer than one run) and 7x7 kernels take the per-tap kernels below.

use super::avx::row_ptrs;
use super::slide::Lanes;
use super::{Depthwise, Geom, MAX_TAPS};
use std::arch::x86_64::*;
use std::ops::Range;

/// Sixteen channels in a zmm register; a partial block uses a lane mask.
#[derive(Clone, Copy)]
struct Zmm(__m512);

impl Lanes for Zmm {
    const WIDTH: usize = 16;
    type Mask = __mmask16;

    #[inline(always)]
    unsafe fn mask(n: usize) -> __mmask16 {
        mask(n)
    }
    #[inline(always)]
    unsafe fn load<const FULL: bool>(p: *const f32, m: __mmask16) -> Self {
        Zmm(load::<FULL>(p, m))
    }
    #[inline(always)]
    unsafe fn mul_add(self, w: Self, acc: Self) -> Self {
        Zmm(_mm512_fmadd_ps(self.0, w.0, acc.0))
    }
    #[inline(always)]
    unsafe fn store_relu6<const FULL: bool>(self, p: *mut f32, m: __mmask16) {
        store_relu6::<FULL>(p, m, self.0)
    }
}

/// Lanes of a block of `n` channels (at most 16).
#[inline(always)]
fn mask(n: usize) -> __mmask16 {
    if n >= 16 {
        0xFFFF
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// Full loads for whole blocks, masked ones (which never touch memory past the mask) for the last partial block.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load<const FULL: bool>(p: *const f32, m: __mmask16) -> __m512 {
    if FULL {
        _mm512_loadu_ps(p)
    } else {
        _mm512_maskz_loadu_ps(m, p)
    }
}

/// ReLU6, then a full or masked store.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store_relu6<const FULL: bool>(p: *mut f32, m: __mmask16, v: __m512) {
    let v = _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(6.0));
    if FULL {
        _mm512_storeu_ps(p, v)
    } else {
        _mm512_mask_storeu_ps(p, m, v)
    }
}

impl Depthwise {
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    pub(super) unsafe fn row_avx512(&self, input: &[f32], g: &Geom, out: *mut f32) {
        let (lo, hi) = self.unclipped_cols(g);
        let from = match (self.k, self.stride) {
            (3, 1) => self.slide::<Zmm, 3, 1, 8, 10>(input, g, lo, hi, out),
            (5, 1) => self.slide::<Zmm, 5, 1, 4, 8>(input, g, lo, hi, out),
            (3, 2) => self.slide::<Zmm, 3, 2, 4, 9>(input, g, lo, hi, out),
            (5, 2) => self.slide::<Zmm, 5, 2, 4, 11>(input, g, lo, hi, out),
            _ => lo,
        };
        let mut cb = g.ch.0;
        while cb < g.ch.1 {
            let n = (g.ch.1 - cb).min(16);
            let m = mask(n);
            match (self.k, self.stride, n == 16) {
                (3, 1, true) => self.wide::<3, 1, true>(input, g, from..hi, out, cb, m),
                (3, 2, true) => self.wide::<3, 2, true>(input, g, from..hi, out, cb, m),
                (5, 1, true) => self.wide::<5, 1, true>(input, g, from..hi, out, cb, m),
                (5, 2, true) => self.wide::<5, 2, true>(input, g, from..hi, out, cb, m),
                (3, 1, false) => self.wide::<3, 1, false>(input, g, from..hi, out, cb, m),
                (3, 2, false) => self.wide::<3, 2, false>(input, g, from..hi, out, cb, m),
                (5, 1, false) => self.wide::<5, 1, false>(input, g, from..hi, out, cb, m),
                (5, 2, false) => self.wide::<5, 2, false>(input, g, from..hi, out, cb, m),
                _ => self.any_kernel(input, g, from..hi, out, cb, m),
            }
            cb += 16;
        }
        self.clipped(input, g, 0..lo, out);
        self.clipped(input, g, hi..g.ow, out);
    }

    /// Unclipped output columns `cols` of one block of channels, eight pixels at a time and then the rest in one go
    /// (7-pixel rows of the last stages are a single call), with `K` and `S` constants so the tap loops unroll.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn wide<const K: usize, const S: usize, const FULL: bool>(
        &self,
        input: &[f32],
        g: &Geom,
        cols: Range<usize>,
        out: *mut f32,
        cb: usize,
        m: __mmask16,
    ) {
        let mut ox = cols.start;
        while ox + 8 <= cols.end {
            self.pixels::<K, S, 8, FULL>(input, g, ox, out, cb, m);
            ox += 8;
        }
        match cols.end - ox {
            7 => self.pixels::<K, S, 7, FULL>(input, g, ox, out, cb, m),
            6 => self.pixels::<K, S, 6, FULL>(input, g, ox, out, cb, m),
            5 => self.pixels::<K, S, 5, FULL>(input, g, ox, out, cb, m),
            4 => self.pixels::<K, S, 4, FULL>(input, g, ox, out, cb, m),
            3 => self.pixels::<K, S, 3, FULL>(input, g, ox, out, cb, m),
            2 => self.pixels::<K, S, 2, FULL>(input, g, ox, out, cb, m),
            1 => self.pixels::<K, S, 1, FULL>(input, g, ox, out, cb, m),
            _ => {}
        }
    }

    /// `P` neighbouring unclipped output pixels, one block of channels: each weight load feeds `P` FMAs and the `P`
    /// accumulators are independent chains that hide FMA latency.
    // Index loops over the tap rows: the `enumerate().skip().take()` form left an out-of-line `Skip::next` call per
    // tap row in this kernel.
    #[allow(clippy::needless_range_loop)]
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn pixels<const K: usize, const S: usize, const P: usize, const FULL: bool>(
        &self,
        input: &[f32],
        g: &Geom,
        ox: usize,
        out: *mut f32,
        cb: usize,
        m: __mmask16,
    ) {
        let c = self.c;
        let col = g.col0 + ox * S - g.pad_left;
        let rows = row_ptrs(input, g, col * c + cb);
        let mut a = [load::<FULL>(self.bias.as_ptr().add(cb), m); P];
        for dy in g.ky.0..g.ky.1 {
            let row = rows[dy];
            let wrow = self.w.as_ptr().add(dy * K * c + cb);
            for dx in 0..K {
                let wv = load::<FULL>(wrow.add(dx * c), m);
                for (p, acc) in a.iter_mut().enumerate() {
                    *acc = _mm512_fmadd_ps(load::<FULL>(row.add((p * S + dx) * c), m), wv, *acc);
                }
            }
        }
        let o = out.add(ox * c + cb);
        for (p, acc) in a.iter().enumerate() {
            store_relu6::<FULL>(o.add(p * c), m, *acc);
        }
    }

    /// Unclipped columns for kernel sizes without a specialised kernel (7x7), one pixel at a time.
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn any_kernel(&self, input: &[f32], g: &Geom, cols: Range<usize>, out: *mut f32, cb: usize, m: __mmask16) {
        let (c, k, s) = (self.c, self.k, self.stride);
        for ox in cols {
            let rows = row_ptrs(input, g, (g.col0 + ox * s - g.pad_left) * c + cb);
            let mut acc = _mm512_maskz_loadu_ps(m, self.bias.as_ptr().add(cb));
            for dy in g.ky.0..g.ky.1 {
                for dx in 0..k {
                    let wv = _mm512_maskz_loadu_ps(m, self.w.as_ptr().add((dy * k + dx) * c + cb));
                    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, rows[dy].add(dx * c)), wv, acc);
                }
            }
            store_relu6::<false>(out.add(ox * c + cb), m, acc);
        }
    }

    /// Border pixels of a plain input, four at a time; taps outside the image read a row of zeros through a pointer
    /// table instead of branching, and taps outside it for all four pixels are skipped.
    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    unsafe fn clipped(&self, input: &[f32], g: &Geom, cols: Range<usize>, out: *mut f32) {
        let (c, k, s) = (self.c, self.k, self.stride);
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
            while cb < g.ch.1 {
                let m = mask(g.ch.1 - cb);
                let mut a = [_mm512_maskz_loadu_ps(m, self.bias.as_ptr().add(cb)); 4];
                for (wo, px) in taps {
                    let wv = _mm512_maskz_loadu_ps(m, self.w.as_ptr().add(wo + cb));
                    for (acc, x) in a.iter_mut().zip(px) {
                        *acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x.add(cb)), wv, *acc);
                    }
                }
                for (p, acc) in a.iter().enumerate().take(n_px) {
                    store_relu6::<false>(o.add(p * c + cb), m, *acc);
                }
                cb += 16;
            }
            ox += n_px;
        }
    }
}
