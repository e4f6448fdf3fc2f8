//! Kernel cases with f64 references, shared by the unit tests (every path this CPU has) and by
//! `fovea-kernels-emulated`, which runs the AVX-512 path of the same cases on an emulated CPU where this one lacks it.
//!
//! A case owns its inputs and outputs, so [`MatmulCase::run`] and [`DepthwiseCase::run`] allocate nothing: an emulated
//! CPU runs them with no operating system underneath.

use crate::conv1x1::{matmul, matmul_into, Act, Layout, Packed};
use crate::depthwise::{same, Depthwise};
use crate::random::Rng;
use crate::simd::{relu6, Isa};

/// Largest difference from the f64 reference a kernel may show.
pub const TOLERANCE: f32 = 1e-4;

/// `(m, k, n)` of the matrix-product cases: tails on every axis for every path.
pub const MATMUL_SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (7, 3, 5),
    (13, 27, 32),
    (6, 16, 96),
    (49, 320, 40),
    (3000, 8, 24),
    (100, 40, 8),
    (50, 30, 3),
    (37, 144, 40),
    // Small k (AVX2 tiles on every path), odd widths.
    (29, 19, 17),
    (15, 33, 47),
    (14, 7, 9),
    // k >= 64 takes the AVX-512 tiles: 1-4 panels per tile, masked last panels (29: 16 + 13, 47: 32 + 15, 63: 48 + 15,
    // 77: 64 then 13 alone), 24 (16 + an 8-column AVX2 tail), rows not a multiple of 6.
    (29, 64, 29),
    (15, 65, 47),
    (28, 96, 63),
    (43, 70, 77),
    (7, 128, 24),
    (1, 64, 1280),
    // Row groups of 12 at k = 1152: 25 rows run as 12 + 13 (the leftover row joins the last group), 31 as 12 + 12 + 7;
    // one-row tiles with k not a multiple of 4.
    (25, 1152, 40),
    (31, 1150, 24),
    (1, 1151, 33),
    (7, 6, 16),
];

/// `(m, k, n, run, skip)` of the cases that also store rows in a [`Layout`] with gaps.
pub const LAYOUT_SHAPES: &[(usize, usize, usize, usize, usize)] =
    &[(23, 6, 24, 5, 3), (23, 66, 40, 5, 3), (31, 64, 96, 7, 2)];

/// `(h, w, c, k, stride)` of the depthwise cases.
pub const DEPTHWISE_SHAPES: &[(usize, usize, usize, usize, usize)] = &[
    (9, 10, 5, 3, 1),
    (9, 10, 40, 3, 2),
    (33, 37, 8, 5, 2),
    (6, 7, 96, 5, 1),
    (1, 1, 36, 5, 2),
    (4, 2, 44, 3, 2),
    (12, 20, 48, 5, 1),
    (14, 30, 96, 3, 1),
    (5, 41, 20, 3, 2),
    (9, 23, 13, 5, 2),
    (3, 17, 8, 5, 1),
    (7, 7, 24, 7, 1),
    // AVX-512: 16-channel blocks with masked tails, 8-pixel runs plus leftovers, clipped borders.
    (11, 27, 17, 3, 1),
    (13, 29, 33, 5, 2),
    (10, 19, 47, 5, 1),
    (9, 21, 31, 3, 2),
    (6, 13, 16, 7, 2),
];

/// What the checks do with any case: run a path, compare with the reference, start again.
pub trait KernelCase: Send {
    /// Runs the kernels of `isa` into the outputs; allocates nothing.
    fn run(&mut self, isa: Isa);
    /// Largest difference of any output from the reference (infinite where an output is unwritten).
    fn error(&self) -> f32;
    /// Outputs back to their unwritten values.
    fn clear(&mut self);
    fn describe(&self) -> String;
}

/// How many cases [`case`] numbers: every matrix-product case, then every depthwise case.
pub fn case_count() -> usize {
    MATMUL_SHAPES.len() + LAYOUT_SHAPES.len() + DEPTHWISE_SHAPES.len()
}

/// Case `index` of [`case_count`], built alone (a case computes its f64 reference when built).
pub fn case(index: usize) -> Option<Box<dyn KernelCase>> {
    let layouts_from = MATMUL_SHAPES.len();
    let depthwise_from = layouts_from + LAYOUT_SHAPES.len();
    Some(if let Some(&(m, k, n)) = MATMUL_SHAPES.get(index) {
        Box::new(MatmulCase::new(m, k, n, None))
    } else if let Some(&(m, k, n, run, skip)) = index.checked_sub(layouts_from).and_then(|i| LAYOUT_SHAPES.get(i)) {
        Box::new(MatmulCase::new(m, k, n, Some(Layout { run, skip })))
    } else {
        let &(h, w, c, k, s) = DEPTHWISE_SHAPES.get(index.checked_sub(depthwise_from)?)?;
        Box::new(DepthwiseCase::new(h, w, c, k, s))
    })
}

/// Value the outputs hold before a run: any element a kernel fails to write stays wrong.
const UNWRITTEN: f32 = f32::NAN;
/// Value of the gap rows of a [`Layout`], which a kernel must leave alone.
const GAP: f32 = -7.0;

/// Largest `|got - want|`; infinite if the lengths differ or any element is NaN (so unwritten outputs count).
pub fn max_error(got: &[f32], want: &[f32]) -> f32 {
    if got.len() != want.len() {
        return f32::INFINITY;
    }
    got.iter().zip(want).fold(0.0f32, |worst, (g, w)| {
        let d = (g - w).abs();
        if d.is_nan() {
            f32::INFINITY
        } else {
            worst.max(d)
        }
    })
}

/// `a[m][k] · w[n][k]ᵀ + bias`, accumulated in f64.
pub fn naive_matmul(a: &[f32], m: usize, k: usize, w: &[f32], bias: &[f32], n: usize) -> Vec<f32> {
    let mut out = vec![0.0; m * n];
    for r in 0..m {
        for o in 0..n {
            let mut s = bias[o] as f64;
            for i in 0..k {
                s += a[r * k + i] as f64 * w[o * k + i] as f64;
            }
            out[r * n + o] = s as f32;
        }
    }
    out
}

/// Direct NHWC depthwise with explicit zero padding, bias and ReLU6, accumulated in f64.
#[allow(clippy::too_many_arguments)]
pub fn naive_depthwise(
    x: &[f32],
    h: usize,
    w: usize,
    c: usize,
    wt: &[f32],
    bias: &[f32],
    k: usize,
    s: usize,
) -> Vec<f32> {
    let (oh, pt) = same(h, k, s);
    let (ow, pl) = same(w, k, s);
    let mut out = vec![0.0; oh * ow * c];
    for oy in 0..oh {
        for ox in 0..ow {
            for ch in 0..c {
                let mut acc = bias[ch] as f64;
                for dy in 0..k {
                    for dx in 0..k {
                        let iy = (oy * s + dy) as isize - pt as isize;
                        let ix = (ox * s + dx) as isize - pl as isize;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let v = x[(iy as usize * w + ix as usize) * c + ch] as f64;
                        acc += v * wt[ch * k * k + dy * k + dx] as f64;
                    }
                }
                out[(oy * ow + ox) * c + ch] = acc.clamp(0.0, 6.0) as f32;
            }
        }
    }
    out
}

/// A matrix product run three ways: plain, with ReLU6 and a residual, and (if given a layout) stored with gaps.
pub struct MatmulCase {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub layout: Option<Layout>,
    pub a: Vec<f32>,
    pub packed: Packed,
    pub residual: Vec<f32>,
    /// The reference without activation or residual.
    pub want: Vec<f32>,
    pub plain: Vec<f32>,
    pub fused: Vec<f32>,
    pub stored: Vec<f32>,
}

impl MatmulCase {
    /// Random inputs seeded by the shape.
    pub fn new(m: usize, k: usize, n: usize, layout: Option<Layout>) -> Self {
        let mut rng = Rng::new((m * 1000 + k * 10 + n) as u64);
        let a = rng.vec(m * k, 1.0);
        let w = rng.vec(n * k, 0.5);
        let bias = rng.vec(n, 1.0);
        let residual = rng.vec(m * n, 1.0);
        let packed = Packed::from_out_in(&w, &bias, n, k);
        let want = naive_matmul(&a, m, k, &w, &bias, n);
        let stored_rows = layout.map_or(0, |l| l.stored(m - 1) + 1);
        let mut case = MatmulCase {
            m,
            k,
            n,
            layout,
            a,
            packed,
            residual,
            want,
            plain: vec![0.0; m * n],
            fused: vec![0.0; m * n],
            stored: vec![0.0; stored_rows * n],
        };
        case.clear();
        case
    }

    /// Every case of [`MATMUL_SHAPES`] and [`LAYOUT_SHAPES`].
    pub fn all() -> impl Iterator<Item = MatmulCase> {
        let dense = MATMUL_SHAPES.iter().map(|&(m, k, n)| MatmulCase::new(m, k, n, None));
        let laid =
            LAYOUT_SHAPES.iter().map(|&(m, k, n, run, skip)| MatmulCase::new(m, k, n, Some(Layout { run, skip })));
        dense.chain(laid)
    }
}

impl KernelCase for MatmulCase {
    fn clear(&mut self) {
        self.plain.fill(UNWRITTEN);
        self.fused.fill(UNWRITTEN);
        self.stored.fill(GAP);
    }

    fn run(&mut self, isa: Isa) {
        let (m, k, n) = (self.m, self.k, self.n);
        matmul(isa, &self.a, k, m, &self.packed, Act::None, None, &mut self.plain, n);
        matmul(isa, &self.a, k, m, &self.packed, Act::Relu6, Some(&self.residual), &mut self.fused, n);
        if let Some(layout) = self.layout {
            matmul_into(isa, &self.a, k, m, &self.packed, Act::Relu6, None, &mut self.stored, n, layout);
        }
    }

    /// Infinite also where a gap row was written.
    fn error(&self) -> f32 {
        let fused: Vec<f32> = self.want.iter().zip(&self.residual).map(|(w, r)| relu6(*w) + r).collect();
        let mut worst = max_error(&self.plain, &self.want).max(max_error(&self.fused, &fused));
        if let Some(layout) = self.layout {
            let n = self.n;
            let mut expected = vec![GAP; self.stored.len()];
            for (r, row) in self.want.chunks_exact(n).enumerate() {
                let at = layout.stored(r) * n;
                for (e, w) in expected[at..at + n].iter_mut().zip(row) {
                    *e = relu6(*w);
                }
            }
            worst = worst.max(max_error(&self.stored, &expected));
        }
        worst
    }

    fn describe(&self) -> String {
        let (m, k, n) = (self.m, self.k, self.n);
        match self.layout {
            Some(l) => format!("matmul m{m} k{k} n{n} layout run {} skip {}", l.run, l.skip),
            None => format!("matmul m{m} k{k} n{n}"),
        }
    }
}

/// A depthwise layer run on a plain input and on the same input in the padded layout.
pub struct DepthwiseCase {
    pub h: usize,
    pub w: usize,
    pub dw: Depthwise,
    pub x: Vec<f32>,
    /// `x` in the layout of [`Depthwise::padded_row`], zero columns either side.
    pub padded: Vec<f32>,
    pub want: Vec<f32>,
    pub plain: Vec<f32>,
    pub from_padded: Vec<f32>,
}

impl DepthwiseCase {
    /// Random inputs seeded by the shape.
    pub fn new(h: usize, w: usize, c: usize, k: usize, s: usize) -> Self {
        let mut rng = Rng::new((((h * 100 + w) * 100 + c) * 10 + k) as u64 * 10 + s as u64);
        let x = rng.vec(h * w * c, 3.0);
        let wt = rng.vec(c * k * k, 1.0);
        let bias = rng.vec(c, 1.0);
        let dw = Depthwise::from_oihw(&wt, &bias, c, k, s);
        let (oh, ow) = dw.out_size(h, w);
        let want = naive_depthwise(&x, h, w, c, &wt, &bias, k, s);
        let (row_px, col0) = dw.padded_row(w);
        let mut padded = vec![0.0; h * row_px * c];
        for y in 0..h {
            let at = (y * row_px + col0) * c;
            padded[at..at + w * c].copy_from_slice(&x[y * w * c..(y + 1) * w * c]);
        }
        let out = vec![UNWRITTEN; oh * ow * c];
        DepthwiseCase { h, w, dw, x, padded, want, plain: out.clone(), from_padded: out }
    }

    /// Every case of [`DEPTHWISE_SHAPES`].
    pub fn all() -> impl Iterator<Item = DepthwiseCase> {
        DEPTHWISE_SHAPES.iter().map(|&(h, w, c, k, s)| DepthwiseCase::new(h, w, c, k, s))
    }

    /// Output height.
    pub fn oh(&self) -> usize {
        self.dw.out_size(self.h, self.w).0
    }
}

impl KernelCase for DepthwiseCase {
    fn clear(&mut self) {
        self.plain.fill(UNWRITTEN);
        self.from_padded.fill(UNWRITTEN);
    }

    fn run(&mut self, isa: Isa) {
        let (h, w, oh) = (self.h, self.w, self.oh());
        self.dw.run(isa, &self.x, h, w, 0..oh, &mut self.plain);
        self.dw.run_padded(isa, &self.padded, h, w, 0..oh, &mut self.from_padded);
    }

    fn error(&self) -> f32 {
        max_error(&self.plain, &self.want).max(max_error(&self.from_padded, &self.want))
    }

    fn describe(&self) -> String {
        let dw = &self.dw;
        format!("depthwise {}x{}x{} k{} s{}", self.h, self.w, dw.c, dw.k, dw.stride)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_count_unwritten_and_misplaced_values() {
        assert_eq!(max_error(&[1.0, 2.0], &[1.0, 2.5]), 0.5);
        assert_eq!(max_error(&[1.0, f32::NAN], &[1.0, 2.0]), f32::INFINITY);
        assert_eq!(max_error(&[1.0], &[1.0, 2.0]), f32::INFINITY);
        let mut case = MatmulCase::new(23, 6, 24, Some(Layout { run: 5, skip: 3 }));
        assert_eq!(case.error(), f32::INFINITY, "a case nobody ran must fail");
        case.run(Isa::Portable);
        assert!(case.error() < TOLERANCE);
        // A written gap row fails the case.
        case.stored[5 * 24] = 0.0;
        assert_eq!(case.error(), (GAP - 0.0).abs());
        let mut dw = DepthwiseCase::new(9, 10, 5, 3, 1);
        assert_eq!(dw.error(), f32::INFINITY);
        dw.run(Isa::Portable);
        assert!(dw.error() < TOLERANCE);
        dw.clear();
        assert_eq!(dw.error(), f32::INFINITY);
    }

    #[test]
    fn cases_are_numbered_matmul_then_layouts_then_depthwise() {
        let names: Vec<String> = (0..case_count()).map(|i| case(i).expect("numbered").describe()).collect();
        assert!(case(case_count()).is_none());
        let (layouts_from, depthwise_from) = (MATMUL_SHAPES.len(), MATMUL_SHAPES.len() + LAYOUT_SHAPES.len());
        assert!(names[..layouts_from].iter().all(|n| n.starts_with("matmul") && !n.contains("layout")));
        assert!(names[layouts_from..depthwise_from].iter().all(|n| n.contains("layout")));
        assert!(names[depthwise_from..].iter().all(|n| n.starts_with("depthwise")));
    }
}
