//! [`FastLite`]: the whole forward pass, its buffers and its threads.
//!
//! Work is split two ways. With at least as many images as threads, each thread runs whole images on its own buffers
//! (no synchronisation, each thread's activations stay in its own cache), and runs the back of the network (7x7 maps,
//! most of the weights) on groups of up to eight images so each weight is read once per group. Leftover images (all of
//! them at batch 1) run one at a time with every layer split across the threads, handed out through a [`Team`] whose
//! helpers stay awake for the whole pass: by output rows, except matrix products with few rows (the 7x7 layers, the
//! head conv and the classifier), which split by output columns so each thread reads only its share of the weights
//! (see `split.rs`). The stem and block 0 run as one fused band loop (the stem's rows go straight into block 0's
//! depthwise, one join instead of three and no 1.6 MB round trip through memory).

use crate::conv1x1::{matmul, Act, Layout};
use crate::simd::Isa;
use crate::split::Split;
use crate::team::Team;
use crate::weights::{load, Block, Net, Tensor};
use crate::{Error, Result};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Images per group in the back of the network: each of its weights is read once per group (a few MiB of weights
/// against about 2 MiB of activations for eight 7x7 Lite0 feature maps).
const GROUP: usize = 8;

/// Build options for [`FastLite`].
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// Kernel path; `None` takes `FOVEA_KERNELS` if set, else the fastest the CPU supports. A path the CPU lacks is
    /// refused at build time.
    pub isa: Option<Isa>,
    /// Which blocks run fused (expand → depthwise → project per band of rows).
    pub fusion: Fusion,
}

/// When to fuse a block's three convolutions (see `block.rs`); the results are the same either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fusion {
    /// Fuse blocks whose expanded tensor would not stay in cache (measured best).
    #[default]
    Auto,
    /// Fuse every block that has an expand conv.
    Always,
    /// Run every block layer by layer.
    Never,
}

/// EfficientNet-Lite inference on the CPU. Immutable after build; `Send + Sync`, so one instance can serve many callers.
pub struct FastLite {
    pub(crate) net: Net,
    isa: Isa,
    fusion: Fusion,
    threads: usize,
    pool: Option<rayon::ThreadPool>,
    /// Activation buffers kept between calls: fresh multi-MiB buffers would page-fault on every image.
    scratch: Mutex<Vec<Scratch>>,
}

/// The four activation buffers one image needs: block input, expanded, depthwise output, block output.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    e: Vec<f32>,
    d: Vec<f32>,
    y: Vec<f32>,
    /// Per-worker ring buffers of fused blocks (one per row chunk).
    tmp: Vec<Vec<f32>>,
    /// The front's outputs of a group of images, stacked for the back of the network.
    group: Vec<f32>,
}

/// Ends a team's pass even when the pass panics, so its spinning helpers return and the scope can close.
struct Finish<'a>(&'a Team);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

impl std::fmt::Debug for FastLite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastLite")
            .field("blocks", &self.net.blocks.len())
            .field("embedding_dim", &self.embedding_dim())
            .field("num_classes", &self.num_classes())
            .field("isa", &self.isa)
            .field("fusion", &self.fusion)
            .field("threads", &self.threads)
            .finish()
    }
}

impl FastLite {
    /// Builds with default [`Config`] (all cores, fastest kernels unless `FOVEA_KERNELS` says otherwise).
    pub fn from_tensors(tensors: &HashMap<String, Tensor>) -> Result<Self> {
        Self::from_tensors_with(tensors, &Config::default())
    }

    /// Folds BatchNorm into the convolutions and packs every weight into its kernel's layout.
    pub fn from_tensors_with(tensors: &HashMap<String, Tensor>, config: &Config) -> Result<Self> {
        let net = load(tensors)?;
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let pool = if threads > 1 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("fovea-kernels-{i}"))
                .build()
                .map_err(|e| Error::Threads(e.to_string()))?;
            Some(pool)
        } else {
            None
        };
        Ok(FastLite {
            net,
            isa: Isa::choose(config.isa)?,
            fusion: config.fusion,
            threads,
            pool,
            scratch: Mutex::new(Vec::new()),
        })
    }

    /// Width of the pooled embedding (1280 for every Lite variant).
    pub fn embedding_dim(&self) -> usize {
        self.net.head.n
    }

    pub fn num_classes(&self) -> usize {
        self.net.fc.n
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Instruction set the kernels run with.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The same network on kernel path `isa`, which this CPU may lack: for running that path on an emulated CPU
    /// (`fovea-kernels-emulated`). The activation buffers of earlier calls are kept, so once a call at an input size
    /// has run on another path, calls at that size on one thread allocate only the returned vectors and make no system
    /// call.
    ///
    /// # Safety
    /// Every call after this one must run on a CPU (real or emulated) that has `isa`'s instructions.
    #[doc(hidden)]
    pub unsafe fn with_isa_unchecked(mut self, isa: Isa) -> Self {
        self.isa = isa;
        self
    }

    /// Pooled embeddings (`batch x embedding_dim`) of `batch` square NCHW images normalised as `(pixel - 127) / 128`.
    ///
    /// Any size works (224, 240 and 260 are Lite0/1/2's own); buffers are kept between calls, so the first call at a
    /// new size is slower.
    pub fn embed(&self, input_nchw: &[f32], batch: usize, size: usize) -> Result<Vec<f32>> {
        self.embed_hw(input_nchw, batch, size, size)
    }

    /// [`FastLite::embed`] for `h x w` images.
    pub fn embed_hw(&self, input_nchw: &[f32], batch: usize, h: usize, w: usize) -> Result<Vec<f32>> {
        if h == 0 || w == 0 {
            return Err(Error::InputSize(h.min(w)));
        }
        let cin = self.net.stem.cin;
        let plane = cin * h * w;
        if input_nchw.len() != batch * plane {
            return Err(Error::InputLength { expected: batch * plane, got: input_nchw.len(), batch, h, w });
        }
        let dim = self.embedding_dim();
        let mut out = vec![0.0; batch * dim];
        let Some(pool) = &self.pool else {
            self.forward_groups(input_nchw, plane, h, w, &mut out);
            return Ok(out);
        };
        let t = self.threads;
        let whole = batch / t * t;
        pool.install(|| {
            let (out_whole, out_rest) = out.split_at_mut(whole * dim);
            let (in_whole, in_rest) = input_nchw.split_at(whole * plane);
            if whole > 0 {
                let per = whole / t;
                out_whole
                    .par_chunks_mut(per * dim)
                    .zip(in_whole.par_chunks(per * plane))
                    .for_each(|(embs, imgs)| self.forward_groups(imgs, plane, h, w, embs));
            }
            if in_rest.is_empty() {
                return;
            }
            let mut s = self.take_scratch();
            self.with_team(|split| {
                for (img, emb) in in_rest.chunks_exact(plane).zip(out_rest.chunks_exact_mut(dim)) {
                    self.forward(split, img, 1, h, w, &mut s, emb, None);
                }
            });
            self.put_scratch(s);
        });
        Ok(out)
    }

    /// Runs `pass` with a [`Team`] of the pool's threads (call from inside the pool): helpers spin between layers
    /// until `pass` returns.
    fn with_team<R: Send>(&self, pass: impl FnOnce(Split) -> R + Send) -> R {
        let team = Team::new();
        rayon::scope(|scope| {
            let _finish = Finish(&team);
            for _ in 1..self.threads {
                scope.spawn(|_| team.help());
            }
            pass(Split::Team(&team, self.threads))
        })
    }

    /// Logits (`batch x num_classes`) of the final fully connected layer for pooled embeddings.
    ///
    /// # Panics
    /// If `embeddings` is not `batch x embedding_dim` long.
    pub fn classify(&self, embeddings: &[f32], batch: usize) -> Vec<f32> {
        let (isa, dim, classes) = (self.isa, self.embedding_dim(), self.num_classes());
        assert_eq!(embeddings.len(), batch * dim, "embeddings must be batch x embedding_dim");
        let mut out = vec![0.0; batch * classes];
        let Some(pool) = &self.pool else {
            matmul(isa, embeddings, dim, batch, &self.net.fc, Act::None, None, &mut out, classes);
            return out;
        };
        // A few rows (batch 1) are shared out by columns, so each thread reads only its part of the weights (5 MB for
        // 1000 classes, more than the arithmetic costs); a larger batch by rows.
        let fc = &self.net.fc;
        pool.install(|| {
            self.with_team(|split| {
                split.matmul(isa, embeddings, dim, batch, fc, Act::None, None, &mut out, classes, Layout::DENSE)
            })
        });
        out
    }

    /// Seconds spent in stem, expand, depthwise, project and head+pool for one image, each layer's best of `runs`
    /// (kernel tuning aid; `split` spreads each layer over the pool as at batch 1).
    #[doc(hidden)]
    pub fn profile(&self, image: &[f32], size: usize, runs: usize, split: bool) -> Vec<(usize, f64)> {
        let mut layers = Vec::new();
        let mut s = self.take_scratch();
        let mut emb = vec![0.0; self.embedding_dim()];
        let mut go = |mode: Split| {
            for _ in 0..runs {
                self.forward(mode, image, 1, size, size, &mut s, &mut emb, Some(&mut layers));
            }
        };
        match (&self.pool, split) {
            (Some(pool), true) => pool.install(|| self.with_team(go)),
            _ => go(Split::Serial),
        }
        self.put_scratch(s);
        layers
    }

    /// Images on the calling thread, in groups of up to [`GROUP`] for the back of the network.
    fn forward_groups(&self, images: &[f32], plane: usize, h: usize, w: usize, embs: &mut [f32]) {
        let dim = self.embedding_dim();
        let mut s = self.take_scratch();
        for (imgs, out) in images.chunks(GROUP * plane).zip(embs.chunks_mut(GROUP * dim)) {
            self.forward(Split::Serial, imgs, imgs.len() / plane, h, w, &mut s, out, None);
        }
        self.put_scratch(s);
    }

    fn take_scratch(&self) -> Scratch {
        self.scratch.lock().map(|mut v| v.pop()).ok().flatten().unwrap_or_default()
    }

    fn put_scratch(&self, s: Scratch) {
        if let Ok(mut v) = self.scratch.lock() {
            v.push(s);
        }
    }

    /// Floats in the largest activation of an `h x w` input, so one set of buffers fits every layer.
    fn largest_activation(&self, h: usize, w: usize, imgs: usize) -> usize {
        let net = &self.net;
        let back = self.back_start();
        let (mut h, mut w) = net.stem.out_size(h, w);
        let mut most = h * w * net.stem.cout;
        for (i, b) in net.blocks.iter().enumerate() {
            // The back of the network holds a whole group of images at once.
            let n = if i >= back { imgs } else { 1 };
            let (oh, ow) = b.depthwise.out_size(h, w);
            let row_px = b.depthwise.padded_row(w).0;
            most = most.max(n * h * row_px * b.cexp).max(n * oh * ow * b.cexp.max(b.cout));
            most = most.max(n * h * w * b.cin);
            (h, w) = (oh, ow);
        }
        most.max(imgs * h * w * net.head.n)
    }

    /// Index of the first block after the last stride-2 one: from there on the feature map keeps its (smallest) size,
    /// and those blocks (plus the head) hold most of the weights.
    fn back_start(&self) -> usize {
        let blocks = &self.net.blocks;
        blocks.iter().rposition(|b| b.depthwise.stride != 1).map_or(0, |i| i + 1)
    }

    /// `imgs` CHW images (`images`, back to back) to their pooled embeddings.
    ///
    /// The front of the network runs one image at a time, where activations are large; the back (smallest feature
    /// maps, largest weights) runs on all `imgs` stacked, so each weight panel is read once per group instead of once
    /// per image. Splitting layers across threads (`Split::Team`) is only done for single images.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        split: Split,
        images: &[f32],
        imgs: usize,
        h: usize,
        w: usize,
        s: &mut Scratch,
        embs: &mut [f32],
        mut prof: Option<&mut Vec<(usize, f64)>>,
    ) {
        assert!(imgs == 1 || matches!(split, Split::Serial), "groups run on one thread");
        // The clock is read only when profiling: a pass that is not timed makes no system call (see
        // `FastLite::with_isa_unchecked`).
        let mut clock = prof.as_ref().map(|_| Instant::now());
        let mut layer = 0;
        // Keeps each layer's fastest time over repeated runs: robust to the machine being shared.
        let mut lap = |kind: usize| {
            if let (Some(p), Some(started)) = (prof.as_deref_mut(), clock.as_mut()) {
                let t = started.elapsed().as_secs_f64();
                match p.get_mut(layer) {
                    Some(slot) => slot.1 = slot.1.min(t),
                    None => p.push((kind, t)),
                }
                layer += 1;
                *started = Instant::now();
            }
        };
        let isa = self.isa;
        let net = &self.net;
        let need = self.largest_activation(h, w, imgs);
        for buf in [&mut s.x, &mut s.e, &mut s.d, &mut s.y, &mut s.group] {
            if buf.len() < need {
                buf.resize(need, 0.0);
            }
        }
        let back = self.back_start();
        let plane = images.len() / imgs;
        let (mut fh, mut fw) = (0, 0);
        for (g, image) in images.chunks_exact(plane).enumerate() {
            let (sh, sw) = net.stem.out_size(h, w);
            let first = &net.blocks[0];
            let with_stem = back > 0
                && match self.fusion {
                    Fusion::Auto => first.fuses_with_stem(sh, sw),
                    Fusion::Always => first.can_follow_stem(),
                    Fusion::Never => false,
                };
            if with_stem {
                let (oh, ow) = first.depthwise.out_size(sh, sw);
                split.rows_tmp(oh, ow * first.cout, &mut s.x, &mut s.tmp, |rows, out, tmp| {
                    first.run_after_stem(isa, &net.stem, image, (h, w), rows, out, tmp)
                });
                lap(0);
                (fh, fw) = self.run_blocks(split, &net.blocks[1..back], 1, (oh, ow), s, &mut lap);
            } else {
                split.rows(sh, sw * net.stem.cout, 1, &mut s.x, |rows, out| net.stem.run(isa, image, h, w, rows, out));
                lap(0);
                (fh, fw) = self.run_blocks(split, &net.blocks[..back], 1, (sh, sw), s, &mut lap);
            }
            if imgs > 1 {
                let n = fh * fw * self.front_channels(back);
                s.group[g * n..(g + 1) * n].copy_from_slice(&s.x[..n]);
            }
        }
        if imgs > 1 {
            std::mem::swap(&mut s.x, &mut s.group);
        }
        let (h, w) = self.run_blocks(split, &net.blocks[back..], imgs, (fh, fw), s, &mut lap);

        let (hw, cin, dim) = (h * w, net.head.k, net.head.n);
        let xin = &s.x[..imgs * hw * cin];
        split.matmul(isa, xin, cin, imgs * hw, &net.head, Act::Relu6, None, &mut s.e, dim, Layout::DENSE);
        let inv = 1.0 / hw as f32;
        for (emb, rows) in embs.chunks_exact_mut(dim).zip(s.e.chunks_exact(hw * dim)) {
            emb.fill(0.0);
            for row in rows.chunks_exact(dim) {
                for (s, v) in emb.iter_mut().zip(row) {
                    *s += v;
                }
            }
            emb.iter_mut().for_each(|v| *v *= inv);
        }
        lap(4);
    }

    /// Channels entering block `i` (the stem's output for block 0).
    fn front_channels(&self, i: usize) -> usize {
        match i {
            0 => self.net.stem.cout,
            i => self.net.blocks[i - 1].cout,
        }
    }

    /// Runs `blocks` on `imgs` stacked `h x w` feature maps in `s.x`, leaving the result in `s.x`; returns its size.
    fn run_blocks(
        &self,
        split: Split,
        blocks: &[Block],
        imgs: usize,
        (mut h, mut w): (usize, usize),
        s: &mut Scratch,
        lap: &mut dyn FnMut(usize),
    ) -> (usize, usize) {
        let isa = self.isa;
        let Scratch { x, e, d, y, tmp, .. } = s;
        for b in blocks {
            let hw = h * w;
            let (oh, ow) = b.depthwise.out_size(h, w);
            let (ohw, cin, cexp, cout) = (oh * ow, b.cin, b.cexp, b.cout);
            let fuse = match self.fusion {
                Fusion::Auto => b.worth_fusing(h, w),
                Fusion::Always => b.expand.is_some(),
                Fusion::Never => false,
            };
            if fuse {
                for g in 0..imgs {
                    let xin = &x[g * hw * cin..(g + 1) * hw * cin];
                    let out = &mut y[g * ohw * cout..(g + 1) * ohw * cout];
                    split.rows_tmp(oh, ow * cout, out, tmp, |r, out, t| b.run_fused(isa, xin, h, w, r, out, t));
                }
                lap(1);
                std::mem::swap(x, y);
                (h, w) = (oh, ow);
                continue;
            }
            if b.expand.is_some() {
                // Expanded rows go straight into the depthwise kernel's zero-padded layout; stacked images are just
                // more rows to the GEMM.
                let row_px = b.depthwise.padded_row(w).0;
                let xin = &x[..imgs * hw * cin];
                split.rows(imgs * h, row_px * cexp, 1, e, |r, out| {
                    b.expand_rows(isa, &xin[r.start * w * cin..r.end * w * cin], r.len(), w, out)
                });
                lap(1);
                for g in 0..imgs {
                    let src = &e[g * h * row_px * cexp..(g + 1) * h * row_px * cexp];
                    let out = &mut d[g * ohw * cexp..(g + 1) * ohw * cexp];
                    split.depthwise(isa, &b.depthwise, src, h, w, out);
                }
            } else {
                for g in 0..imgs {
                    let src = &x[g * hw * cin..(g + 1) * hw * cin];
                    let out = &mut d[g * ohw * cexp..(g + 1) * ohw * cexp];
                    split.rows(oh, ow * cexp, 1, out, |r, out| b.depthwise.run(isa, src, h, w, r, out));
                }
            }
            lap(2);
            let dsrc = &d[..imgs * ohw * cexp];
            let xin = &x[..];
            let res = b.residual.then_some(&xin[..imgs * ohw * cout]);
            split.matmul(isa, dsrc, cexp, imgs * ohw, &b.project, Act::None, res, y, cout, Layout::DENSE);
            lap(3);
            std::mem::swap(x, y);
            (h, w) = (oh, ow);
        }
        (h, w)
    }
}
