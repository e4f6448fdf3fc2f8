//! Evaluation with a fine-tuned network, and the cache-on/off benchmark.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::activation::softmax;
use fovea_model::{LiteNet, Weights};
use image::RgbImage;
use serde::Serialize;

use super::cache::{Photo, TrainImage};
use super::config::FineTuneConfig;
use super::groups::Policies;
use super::net::values;
use super::session::Session;
use crate::{Result, TrainError};

/// Softmax class probabilities for `images` (centre crop at `input_size`) under `weights`' own classifier,
/// `batch` images per forward. Uses fovea-model's `LiteNet` exactly as serving builds it — with burn's
/// BatchNorm, not the training fold — so it also checks that the written-back weights load as intended.
pub fn predict<P: PhotoRef>(weights: &Weights, images: &[P], input_size: u32, batch: usize) -> Result<Vec<Vec<f32>>> {
    let device = Device::flex();
    let net = LiteNet::from_weights(weights, &device)?;
    let s = input_size as usize;
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch.max(1)) {
        let mut input = Vec::with_capacity(chunk.len() * 3 * s * s);
        for (i, img) in chunk.iter().enumerate() {
            let v = fovea_vision::to_input(&*img.photo()?, input_size);
            if v.len() != 3 * s * s {
                return Err(TrainError::NotEnoughData(format!("image {i} of a batch gives no usable input")));
            }
            input.extend(v);
        }
        let x = Tensor::<4>::from_data(TensorData::new(input, [chunk.len(), 3, s, s]), &device);
        let (p, shape) = values(softmax(net.logits(net.embed(x)), 1))?;
        out.extend(p.chunks_exact(shape[1]).map(<[f32]>::to_vec));
    }
    Ok(out)
}

/// Anything [`predict`] can read an image from: a decoded image, or a [`Photo`] loaded batch by batch.
pub trait PhotoRef {
    fn photo(&self) -> Result<std::borrow::Cow<'_, RgbImage>>;
}

impl PhotoRef for RgbImage {
    fn photo(&self) -> Result<std::borrow::Cow<'_, RgbImage>> {
        Ok(std::borrow::Cow::Borrowed(self))
    }
}

impl PhotoRef for Photo {
    fn photo(&self) -> Result<std::borrow::Cow<'_, RgbImage>> {
        self.get()
    }
}

/// What one benchmark run measured (wall clock, this machine, whatever threads burn's CPU backend uses).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Whether the frozen-prefix activations were cached.
    pub cached: bool,
    pub images: usize,
    pub views: usize,
    /// Setup before the first step: building the network, class means and, when cached, the eager part of the
    /// cache (view 0 of every image).
    pub prepare_seconds: f64,
    /// First epoch on an augmented view: the cached path computes and stores that view's activations here, so
    /// this is what epochs `1..views` of a real run cost.
    pub first_view_epoch_seconds: f64,
    /// The same epoch again: for the cached path the steady state of every later epoch (tail only); for the
    /// live path the same work as the first time.
    pub epoch_seconds: f64,
    pub epoch_images_per_second: f64,
    /// One forward+backward+AdamW step of the whole network (every group trained), after one warm-up step.
    pub full_step_batch: usize,
    pub full_step_seconds: f64,
    pub full_images_per_second: f64,
}

/// Times epochs of `config` on `images` with the frozen-prefix cache on or off (`cache` overrides
/// `config.cache`), and one full-network training step for comparison. Labels are used as given (classes are
/// named `class{i}`, and every label below the largest must occur); the run has no validation set.
pub fn bench(weights: &Weights, config: &FineTuneConfig, images: &[TrainImage], cache: bool) -> Result<BenchReport> {
    let cancel = AtomicBool::new(false);
    let n_classes = images.iter().map(|t| t.label + 1).max().unwrap_or(0);
    let classes: Vec<String> = (0..n_classes).map(|i| format!("class{i}")).collect();
    let config = FineTuneConfig { cache, cache_limit_mib: if cache { usize::MAX } else { 0 }, ..config.clone() };

    let start = Instant::now();
    let (mut session, tail) = Session::new(weights, &classes, None, images, &[], &config, &mut |_| {}, &cancel)?;
    let prepare_seconds = start.elapsed().as_secs_f64();
    let cached = session.features.is_cached();
    // Epoch 1 shows view 1 (augmented) of every image when there are several views.
    let start = Instant::now();
    let (tail, _) = session.epoch(tail, 1, &cancel, &mut |_, _, _| {})?;
    let first_view_epoch_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let _ = session.epoch(tail, 1, &cancel, &mut |_, _, _| {})?;
    let epoch_seconds = start.elapsed().as_secs_f64();

    let full_step_batch = config.batch_size.min(images.len());
    let full = FineTuneConfig { policies: Policies::full(), cache: false, augmented_views: 1, ..config.clone() };
    let subset = &images[..full_step_batch];
    // Zero "old" rows for every class: the step's cost does not depend on the classifier's start, and the subset
    // need not contain every class (class means would be required for the missing ones).
    let dim = weights.shape("_conv_head.weight").map_or(0, |s| s[0]);
    let zeros = (vec![0f32; n_classes * dim], vec![0f32; n_classes]);
    let old = Some((&classes[..], &zeros.0[..], &zeros.1[..]));
    let (mut session_full, tail) = Session::new(weights, &classes, old, subset, &[], &full, &mut |_| {}, &cancel)?;
    let items: Vec<(usize, usize)> = (0..full_step_batch).map(|i| (i, 0)).collect();
    let (tail, _) = session_full.step(tail, &items)?;
    let start = Instant::now();
    let _ = session_full.step(tail, &items)?;
    let full_step_seconds = start.elapsed().as_secs_f64();

    Ok(BenchReport {
        cached,
        images: images.len(),
        views: config.augmented_views,
        prepare_seconds,
        first_view_epoch_seconds,
        epoch_seconds,
        epoch_images_per_second: images.len() as f64 / epoch_seconds,
        full_step_batch,
        full_step_seconds,
        full_images_per_second: full_step_batch as f64 / full_step_seconds,
    })
}
