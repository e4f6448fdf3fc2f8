//! The sliding depthwise kernel, written once for every vector width.
//!
//! Neighbouring output pixels share input pixels (all but `S` of them from one to the next), so the
//! `N = (P - 1) * S + K` input pixels of each tap row are loaded once and feed all `K` taps: 0.6-0.8 loads per FMA
//! instead of 1.1, with `P` independent accumulator chains. (Measured on Zen 1, one thread, padded inputs, AVX2:
//! 30-45 % faster per layer than loading every tap, 5 % on the whole network.) `P` and `N` are sized so
//! accumulators, inputs and a weight fit 16 registers, which AVX2 has and AVX-512 has twice over.
//!
//! The body is generic over [`Lanes`], one register of channels: AVX2 (8 lanes) and AVX-512 (16) implement it with
//! intrinsics, and a plain 16-lane array implements it in the tests, so the AVX-512 instance's indexing and masked
//! tails are checked on machines without AVX-512. Everything is `#[inline(always)]` down to the intrinsics, so the
//! whole kernel is compiled inside the caller's `#[target_feature]` function.

use super::avx::row_ptrs;
use super::{Depthwise, Geom};

/// One vector register of `WIDTH` channels, as the sliding kernel uses it.
pub(super) trait Lanes: Copy {
    const WIDTH: usize;
    /// Which lanes a block of fewer than `WIDTH` channels uses.
    type Mask: Copy;
    /// The mask of the first `n` lanes (`n <= WIDTH`).
    unsafe fn mask(n: usize) -> Self::Mask;
    /// `WIDTH` floats from `p`, or (not `FULL`) the masked lanes, zero elsewhere, never touching memory past them.
    unsafe fn load<const FULL: bool>(p: *const f32, m: Self::Mask) -> Self;
    /// `self * w + acc`, fused.
    unsafe fn mul_add(self, w: Self, acc: Self) -> Self;
    /// ReLU6, then `WIDTH` floats to `p`, or (not `FULL`) the masked lanes only.
    unsafe fn store_relu6<const FULL: bool>(self, p: *mut f32, m: Self::Mask);
}

impl Depthwise {
    /// Output pixels from `ox` on in runs of `P` (up to `hi`) whose taps all land on stored pixels, all channels of
    /// `g.ch` (whole registers, then one masked block); returns where it stopped (fewer than `P` pixels left).
    ///
    /// # Safety
    /// As [`Depthwise::rows`] for one output row at `out`, every column of `[ox, hi)` unclipped, and the CPU runs
    /// `V`'s instructions.
    #[inline(always)]
    pub(super) unsafe fn slide<V: Lanes, const K: usize, const S: usize, const P: usize, const N: usize>(
        &self,
        input: &[f32],
        g: &Geom,
        mut ox: usize,
        hi: usize,
        out: *mut f32,
    ) -> usize {
        debug_assert_eq!(N, (P - 1) * S + K, "input pixels per tap row");
        while ox + P <= hi {
            let rows = row_ptrs(input, g, (g.col0 + ox * S - g.pad_left) * self.c);
            let o = out.add(ox * self.c);
            let full = V::mask(V::WIDTH);
            let mut cb = g.ch.0;
            while cb + V::WIDTH <= g.ch.1 {
                self.slide_block::<V, K, S, P, N, true>(&rows, g, o, cb, full);
                cb += V::WIDTH;
            }
            if cb < g.ch.1 {
                self.slide_block::<V, K, S, P, N, false>(&rows, g, o, cb, V::mask(g.ch.1 - cb));
            }
            ox += P;
        }
        ox
    }

    /// One block of channels from `cb` for the `P` pixels whose tap rows start at `rows`, written from `o` on.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    unsafe fn slide_block<
        V: Lanes,
        const K: usize,
        const S: usize,
        const P: usize,
        const N: usize,
        const FULL: bool,
    >(
        &self,
        rows: &[*const f32; super::MAX_K],
        g: &Geom,
        o: *mut f32,
        cb: usize,
        m: V::Mask,
    ) {
        let c = self.c;
        let mut a = [V::load::<FULL>(self.bias.as_ptr().add(cb), m); P];
        for dy in g.ky.0..g.ky.1 {
            let row = rows[dy].add(cb);
            let x: [V; N] = std::array::from_fn(|i| V::load::<FULL>(row.add(i * c), m));
            let wrow = self.w.as_ptr().add(dy * K * c + cb);
            for dx in 0..K {
                let wv = V::load::<FULL>(wrow.add(dx * c), m);
                for p in 0..P {
                    a[p] = x[p * S + dx].mul_add(wv, a[p]);
                }
            }
        }
        for p in 0..P {
            a[p].store_relu6::<FULL>(o.add(p * c + cb), m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Rng;
    use crate::simd::relu6;

    /// AVX-512's shape in plain Rust: 16 lanes, masked loads that read only the lanes asked for.
    #[derive(Clone, Copy)]
    struct Emulated16([f32; 16]);

    impl Lanes for Emulated16 {
        const WIDTH: usize = 16;
        type Mask = usize;
        unsafe fn mask(n: usize) -> usize {
            assert!(n <= 16);
            n
        }
        unsafe fn load<const FULL: bool>(p: *const f32, m: usize) -> Self {
            let n = if FULL { 16 } else { m };
            Emulated16(std::array::from_fn(|i| if i < n { *p.add(i) } else { 0.0 }))
        }
        unsafe fn mul_add(self, w: Self, acc: Self) -> Self {
            Emulated16(std::array::from_fn(|i| self.0[i].mul_add(w.0[i], acc.0[i])))
        }
        unsafe fn store_relu6<const FULL: bool>(self, p: *mut f32, m: usize) {
            for i in 0..if FULL { 16 } else { m } {
                *p.add(i) = relu6(self.0[i]);
            }
        }
    }

    /// The 16-lane instance over padded inputs, against the portable kernel: channel counts around the width
    /// (masked last blocks, a block alone), each kernel size and stride the network uses, and the channel windows
    /// threads take.
    #[test]
    fn sixteen_lanes_match_the_portable_kernel() {
        let mut rng = Rng::new(5);
        for &(h, w, c) in &[(6, 21, 17), (5, 19, 16), (4, 23, 40), (7, 9, 7), (3, 30, 33)] {
            for (k, s) in [(3, 1), (5, 1), (3, 2), (5, 2)] {
                let dw = Depthwise::from_oihw(&rng.vec(c * k * k, 1.0), &rng.vec(c, 1.0), c, k, s);
                let (row_px, col0) = dw.padded_row(w);
                let mut input = vec![0.0; h * row_px * c];
                for y in 0..h {
                    let at = (y * row_px + col0) * c;
                    input[at..at + w * c].copy_from_slice(&rng.vec(w * c, 3.0));
                }
                let (oh, ow) = dw.out_size(h, w);
                let mut want = vec![0.0; oh * ow * c];
                dw.run_padded(crate::Isa::Portable, &input, h, w, 0..oh, &mut want);
                for ch in [(0, c), (1, c), (0, c.min(9)), (c / 2, c)] {
                    let mut got = vec![f32::NAN; oh * ow * c];
                    let mut reached = vec![0; oh];
                    for (oy, reached) in reached.iter_mut().enumerate() {
                        let g = dw.geom(h, h, w, (row_px, col0, true), oy, ch.0..ch.1);
                        // SAFETY: `got` holds the whole output; padded inputs leave every column unclipped.
                        *reached = unsafe {
                            let out = got.as_mut_ptr().add(oy * ow * c);
                            match (k, s) {
                                (3, 1) => dw.slide::<Emulated16, 3, 1, 8, 10>(&input, &g, 0, ow, out),
                                (5, 1) => dw.slide::<Emulated16, 5, 1, 4, 8>(&input, &g, 0, ow, out),
                                (3, 2) => dw.slide::<Emulated16, 3, 2, 4, 9>(&input, &g, 0, ow, out),
                                _ => dw.slide::<Emulated16, 5, 2, 4, 11>(&input, &g, 0, ow, out),
                            }
                        };
                    }
                    for oy in 0..oh {
                        let runs = if k == 3 && s == 1 { 8 } else { 4 };
                        assert_eq!(reached[oy], ow / runs * runs, "k{k} s{s}: whole runs only");
                        for ox in 0..ow {
                            for cc in 0..c {
                                let (g, e) = (got[(oy * ow + ox) * c + cc], want[(oy * ow + ox) * c + cc]);
                                if ox < reached[oy] && (ch.0..ch.1).contains(&cc) {
                                    assert!((g - e).abs() < 1e-4, "{h}x{w}x{c} k{k} s{s} {ch:?} ({oy},{ox},{cc})");
                                } else {
                                    assert!(g.is_nan(), "{h}x{w}x{c} k{k} s{s} {ch:?}: wrote ({oy},{ox},{cc})");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
