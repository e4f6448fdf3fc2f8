//! How one image's layers are shared out across a [`Team`]: by output rows (each thread writes its own slice); a
//! matrix product with few rows and many weights by output columns; a depthwise layer with few rows by channels.
//!
//! Why columns: at batch 1 the 7x7 layers have 49 rows against 0.9-1.5 MB of weights each. Split by rows, every thread
//! streams all the weights through its own cache, and 49 rows split unevenly into row tiles; split by whole weight
//! panels, each thread reads only its part of the weights and the parts are equal.

use crate::conv1x1::{matmul_into, matmul_panels, Act, Layout, Packed, MR};
use crate::depthwise::Depthwise;
use crate::simd::Isa;
use crate::team::Team;
use std::ops::Range;
use std::sync::Mutex;

/// How a layer's output rows are shared out.
#[derive(Clone, Copy)]
pub(crate) enum Split<'a> {
    /// Run on the calling thread.
    Serial,
    /// Split across the caller and the team's helpers, this many threads in all.
    Team(&'a Team, usize),
}

impl Split<'_> {
    /// Calls `f(rows, out_rows)` over `0..n` rows of `row_len` floats, in chunks that are multiples of `align` rows.
    pub(crate) fn rows<F>(self, n: usize, row_len: usize, align: usize, out: &mut [f32], f: F)
    where
        F: Fn(Range<usize>, &mut [f32]) + Sync,
    {
        let out = &mut out[..n * row_len];
        match self {
            Split::Team(team, t) if t > 1 && n > align => {
                // Whole GEMM tiles per chunk, unless rounding up would unbalance the chunks by more than 2 %: 196 rows
                // (a 14x14 map) would split 102 + 94 instead of 98 + 98.
                let even = n.div_ceil(t);
                let whole = even.div_ceil(align) * align;
                let per = if (whole - even) * 50 <= even { whole } else { even };
                let chunks: Vec<_> = out.chunks_mut(per * row_len).map(|c| Mutex::new(Some(c))).collect();
                team.run(chunks.len(), &|i| {
                    let chunk = take(&chunks[i]);
                    f(i * per..i * per + chunk.len() / row_len, chunk)
                });
            }
            _ => f(0..n, out),
        }
    }

    /// [`Split::rows`] where each chunk also gets its own temporary buffer from `tmps`.
    pub(crate) fn rows_tmp<F>(self, n: usize, row_len: usize, out: &mut [f32], tmps: &mut Vec<Vec<f32>>, f: F)
    where
        F: Fn(Range<usize>, &mut [f32], &mut Vec<f32>) + Sync,
    {
        let out = &mut out[..n * row_len];
        match self {
            Split::Team(team, t) if t > 1 && n > 1 => {
                let per = n.div_ceil(t);
                if tmps.len() < t {
                    tmps.resize_with(t, Vec::new);
                }
                let chunks: Vec<_> =
                    out.chunks_mut(per * row_len).zip(tmps.iter_mut()).map(|c| Mutex::new(Some(c))).collect();
                team.run(chunks.len(), &|i| {
                    let (chunk, tmp) = take(&chunks[i]);
                    f(i * per..i * per + chunk.len() / row_len, chunk, tmp)
                });
            }
            _ => {
                if tmps.is_empty() {
                    tmps.push(Vec::new());
                }
                f(0..n, out, &mut tmps[0])
            }
        }
    }

    /// `out[r] = act(a[r] · w + bias) (+ residual[r])` for `r < m`, output row `r` at row `layout.stored(r)`; shared
    /// out by columns when [`by_columns`] says so, else by rows (which needs the dense layout).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn matmul(
        self,
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
        match self {
            Split::Team(_, t) if t > 1 && by_columns(m, w) => {
                assert!(out.len() >= layout.stored(m - 1) * ldo + w.n, "output too short");
                let shared = SharedOut(out.as_mut_ptr());
                self.parts(w.panels(), 1, |part| {
                    // SAFETY: `out` is borrowed exclusively for this call and long enough (asserted); each part writes
                    // only the columns of its own panels.
                    unsafe { matmul_panels(isa, a, lda, m, w, part, act, residual, shared.ptr(), ldo, layout) }
                });
            }
            Split::Team(_, t) if t > 1 => {
                assert_eq!(layout, Layout::DENSE, "a row split needs the dense layout");
                self.rows(m, ldo, MR, out, |r, out| {
                    let res = residual.map(|x| &x[r.start * ldo..]);
                    matmul_into(isa, &a[r.start * lda..], lda, r.len(), w, act, res, out, ldo, layout)
                });
            }
            _ => matmul_into(isa, a, lda, m, w, act, residual, out, ldo, layout),
        }
    }

    /// A depthwise layer over all its output rows from an input in its padded layout: by rows, or by channels when
    /// the rows are too few to share evenly (a 7x7 map's 7 rows split 4 + 3 over two threads).
    pub(crate) fn depthwise(self, isa: Isa, dw: &Depthwise, input: &[f32], h: usize, w: usize, out: &mut [f32]) {
        let (oh, ow) = dw.out_size(h, w);
        let c = dw.c;
        match self {
            Split::Team(_, t) if t > 1 && oh < 4 * t && c >= CHANNEL_ALIGN * t => {
                let out = &mut out[..oh * ow * c];
                let shared = SharedOut(out.as_mut_ptr());
                self.parts(c, CHANNEL_ALIGN, |part| {
                    // SAFETY: `out` is borrowed exclusively for this call and holds the whole output; each part writes
                    // only its own channels.
                    unsafe { dw.run_padded_channels(isa, input, h, w, part, shared.ptr()) }
                });
            }
            _ => self.rows(oh, ow * c, 1, out, |r, out| dw.run_padded(isa, input, h, w, r, out)),
        }
    }

    /// Calls `f` on `0..n` cut into one range per thread, each a multiple of `align` long but the last.
    fn parts(self, n: usize, align: usize, f: impl Fn(Range<usize>) + Sync) {
        match self {
            Split::Team(team, t) if t > 1 && n > align => {
                let per = n.div_ceil(t).div_ceil(align) * align;
                team.run(n.div_ceil(per), &|i| f(i * per..((i + 1) * per).min(n)));
            }
            _ => f(0..n),
        }
    }
}

/// Channels per part of a depthwise layer split by channels are a multiple of this: whole AVX2 (16) and AVX-512
/// (16, masked) channel blocks.
const CHANNEL_ALIGN: usize = 32;

/// Rows at or below which a product is split by columns (49 is a 7x7 map at batch 1).
const COLUMN_SPLIT_ROWS: usize = 64;

/// Whether a product of `m` rows with `w` is better shared out by its columns: few rows, and at least 8 weight panels
/// (128 columns), so each of a few threads gets several.
fn by_columns(m: usize, w: &Packed) -> bool {
    m <= COLUMN_SPLIT_ROWS && w.panels() >= 8
}

/// The output of a product shared by columns: every chunk writes through it, to disjoint columns.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);

// SAFETY: chunks write disjoint elements (their own columns), and the owner's exclusive borrow outlives the round.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper rather than its raw field).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// A chunk's borrowed buffers, handed to whichever thread claims the chunk (exactly one does).
fn take<T>(slot: &Mutex<Option<T>>) -> T {
    slot.lock().unwrap_or_else(|p| p.into_inner()).take().expect("each chunk runs once")
}
