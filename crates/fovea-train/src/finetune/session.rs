//! One fine-tune run's state: the split network, the features, the optimisers, one step and one evaluation.
//! [`super::fine_tune`] and [`super::bench`] drive it.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use fovea_model::network::{block_specs, LiteNet};
use fovea_model::Weights;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::cache::{mix, Features, Set, TrainImage};
use super::classifier::{extended_classifier, ClassifierRows};
use super::config::FineTuneConfig;
use super::groups::{Group, GroupPolicy};
use super::net::{values, Layout, Named, Tail};
use super::Progress;
use crate::{Result, TrainError};

pub(crate) struct Session<'a> {
    pub config: FineTuneConfig,
    pub layout: Layout,
    pub features: Features<'a>,
    labels: Vec<usize>,
    val_labels: Vec<usize>,
    n_classes: usize,
    /// Per-class loss weight (all 1 unless class-balanced).
    class_weight: Vec<f32>,
    /// The input weights with re-initialised groups and the rebuilt classifier: what export starts from.
    pub working: Weights,
    plain: Device,
    autodiff: Device,
    opt_trunk: ModuleOptimizer,
    opt_fc: ModuleOptimizer,
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(TrainError::NotEnoughData(what()))
    }
}

impl<'a> Session<'a> {
    /// Validates the inputs, re-initialises `Reinit` groups, builds the prefix and the features (filling the
    /// cache when `config.cache` and it fits), rebuilds the classifier from class means and builds the trainable
    /// tail on the autodiff device.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        weights: &Weights,
        classes: &[String],
        old_classifier: Option<ClassifierRows<'_>>,
        train: &'a [TrainImage],
        validation: &'a [TrainImage],
        config: &FineTuneConfig,
        progress: &mut dyn FnMut(Progress),
        cancel: &AtomicBool,
    ) -> Result<(Self, Tail)> {
        config.validate()?;
        check(!classes.is_empty(), || "no classes to train".into())?;
        check(!train.is_empty(), || "no training images".into())?;
        for (set, images) in [("training", train), ("validation", validation)] {
            if let Some((i, t)) = images.iter().enumerate().find(|(_, t)| t.label >= classes.len()) {
                return Err(TrainError::Config(format!(
                    "{set} image {i} has label {} but there are {} classes",
                    t.label,
                    classes.len()
                )));
            }
        }
        let layout = Layout::new(block_specs(weights)?, &config.policies)?;
        let mut working = weights.clone();
        reinit_groups(&mut working, &layout, config.seed);

        let plain = Device::flex();
        let (prefix, plain_tail) = layout.split(LiteNet::from_weights(&working, &plain)?);
        let mut features = Features::new(
            prefix,
            layout.prefix_is_empty(),
            plain.clone(),
            train,
            validation,
            config.augmented_views,
            config.augment,
            config.input_size,
            config.seed,
        );
        let mib = features.cache_bytes().div_ceil(1 << 20);
        if config.cache && mib <= config.cache_limit_mib {
            features.enable_cache(config.batch_size, &mut |step, steps| {
                if cancel.load(Ordering::Relaxed) {
                    return Err(TrainError::Cancelled);
                }
                progress(Progress::caching(config.epochs, step, steps));
                Ok(())
            })?;
        } else if config.cache {
            tracing::warn!(mib, limit = config.cache_limit_mib, "activation cache too large, recomputing instead");
        }

        // The classifier: old rows kept, new ones from class means under the (possibly re-initialised) backbone.
        let labels: Vec<usize> = train.iter().map(|t| t.label).collect();
        let needs_mean: Vec<bool> =
            classes.iter().map(|c| old_classifier.is_none_or(|(names, _, _)| !names.iter().any(|n| n == c))).collect();
        let means = class_means(&mut features, &plain_tail, &labels, &needs_mean, config.batch_size, cancel)?;
        drop(plain_tail);
        let (w, b) = extended_classifier(old_classifier, classes, &means)?;
        let dim = w.len() / classes.len();
        let head_dim = weights.shape("_conv_head.weight").map(|s| s[0]).unwrap_or(0);
        if dim != head_dim {
            return Err(TrainError::Config(format!(
                "old classifier rows have {dim} inputs but the backbone embedding has {head_dim}"
            )));
        }
        working.tensors.insert("_fc.weight".into(), (vec![classes.len(), dim], w));
        working.tensors.insert("_fc.bias".into(), (vec![classes.len()], b));

        let autodiff = Device::flex().autodiff();
        let (_, tail) = layout.split(LiteNet::from_weights(&working, &autodiff)?);

        let mut count = vec![0usize; classes.len()];
        for &l in &labels {
            count[l] += 1;
        }
        let present = count.iter().filter(|&&n| n > 0).count().max(1);
        let class_weight = count
            .iter()
            .map(|&n| if config.class_balanced && n > 0 { labels.len() as f32 / (present * n) as f32 } else { 1.0 })
            .collect();
        let adamw = || AdamWConfig::new().with_weight_decay(config.weight_decay as f32).init();
        let session = Session {
            config: config.clone(),
            layout,
            features,
            labels,
            val_labels: validation.iter().map(|t| t.label).collect(),
            n_classes: classes.len(),
            class_weight,
            working,
            plain,
            autodiff,
            opt_trunk: adamw(),
            opt_fc: adamw(),
        };
        Ok((session, tail))
    }

    /// The (image, view) samples of one epoch, in seeded shuffled order: every image once, all in view
    /// `epoch mod views` (so epoch 0 trains on the plain centre crops, which the cache already holds).
    pub fn epoch_items(&self, epoch: usize) -> Vec<(usize, usize)> {
        let view = epoch % self.config.augmented_views;
        let mut items: Vec<(usize, usize)> = (0..self.labels.len()).map(|i| (i, view)).collect();
        items.shuffle(&mut StdRng::seed_from_u64(mix(self.config.seed, 3, epoch as u64)));
        items
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.labels.len().div_ceil(self.config.batch_size)
    }

    fn input(&mut self, items: &[(usize, usize)], set: Set, device: &Device) -> Result<Tensor<4>> {
        let data = self.features.batch(set, items)?;
        let [c, h, w] = self.features.dims;
        Ok(Tensor::from_data(TensorData::new(data, [items.len(), c, h, w]), device))
    }

    /// Class-weighted mean cross-entropy of a batch: `Σ w_i·CE_i / Σ w_i` (PyTorch's weighted mean), as a
    /// constant mask so no integer gather is needed.
    fn loss(&self, logits: Tensor<2>, labels: &[usize], device: &Device) -> Tensor<1> {
        let k = self.n_classes;
        let total: f32 = labels.iter().map(|&l| self.class_weight[l]).sum();
        let mut mask = vec![0f32; labels.len() * k];
        for (i, &l) in labels.iter().enumerate() {
            mask[i * k + l] = self.class_weight[l] / total;
        }
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [labels.len(), k]), device);
        (log_softmax(logits, 1) * mask).sum().neg()
    }

    /// One AdamW step on the given training samples. Backbone groups and the classifier have their own
    /// optimiser so they can run at different learning rates; frozen tail groups have no gradient and are left
    /// alone. Returns the updated tail and the batch loss.
    pub fn step(&mut self, tail: Tail, items: &[(usize, usize)]) -> Result<(Tail, f64)> {
        let device = self.autodiff.clone();
        let x = self.input(items, Set::Train, &device)?;
        let labels: Vec<usize> = items.iter().map(|&(i, _)| self.labels[i]).collect();
        let loss = self.loss(tail.logits(x), &labels, &self.autodiff);
        let value = f64::from(values(loss.clone())?.0.first().copied().unwrap_or(f32::NAN));
        if !value.is_finite() {
            return Err(TrainError::Config(format!("training diverged (loss {value}); lower the learning rates")));
        }
        let mut grads = loss.backward();
        let Tail { trunk, fc } = tail;
        let g_fc = GradientsParams::from_module(&mut grads, &fc);
        let g_trunk = GradientsParams::from_module(&mut grads, &trunk);
        let fc = if g_fc.is_empty() { fc } else { self.opt_fc.step(self.config.classifier_lr, fc, g_fc) };
        let trunk =
            if g_trunk.is_empty() { trunk } else { self.opt_trunk.step(self.config.backbone_lr, trunk, g_trunk) };
        Ok((Tail { trunk, fc }, value))
    }

    /// Runs one epoch; `report(step, steps, mean_loss)` after every step. Checks `cancel` before each step.
    pub fn epoch(
        &mut self,
        mut tail: Tail,
        epoch: usize,
        cancel: &AtomicBool,
        report: &mut dyn FnMut(usize, usize, f64),
    ) -> Result<(Tail, f64)> {
        let items = self.epoch_items(epoch);
        let steps = self.steps_per_epoch();
        let (mut sum, mut n) = (0.0, 0usize);
        for (step, chunk) in items.chunks(self.config.batch_size).enumerate() {
            if cancel.load(Ordering::Relaxed) {
                return Err(TrainError::Cancelled);
            }
            let (next, loss) = self.step(tail, chunk)?;
            tail = next;
            sum += loss * chunk.len() as f64;
            n += chunk.len();
            report(step + 1, steps, sum / n as f64);
        }
        Ok((tail, sum / n.max(1) as f64))
    }

    /// Validation (accuracy, mean cross-entropy) in inference mode, or `None` without a validation set.
    /// Accuracy is balanced (mean per-class recall) when the run is class-balanced.
    pub fn evaluate(&mut self, tail: &Tail) -> Result<Option<(f64, f64)>> {
        if self.val_labels.is_empty() {
            return Ok(None);
        }
        let model = tail.valid();
        let k = self.n_classes;
        let (mut hits, mut seen) = (vec![0usize; k], vec![0usize; k]);
        let mut loss = 0.0;
        let items: Vec<(usize, usize)> = (0..self.val_labels.len()).map(|i| (i, 0)).collect();
        for chunk in items.chunks(self.config.batch_size) {
            let device = self.plain.clone();
            let x = self.input(chunk, Set::Validation, &device)?;
            let (logp, _) = values(log_softmax(model.logits(x), 1))?;
            for (row, &(i, _)) in logp.chunks_exact(k).zip(chunk) {
                let label = self.val_labels[i];
                let best = row.iter().enumerate().fold(0, |b, (j, v)| if *v > row[b] { j } else { b });
                seen[label] += 1;
                hits[label] += usize::from(best == label);
                loss -= f64::from(row[label]);
            }
        }
        let n = self.val_labels.len();
        let accuracy = if self.config.class_balanced {
            let recalls: Vec<f64> =
                hits.iter().zip(&seen).filter(|(_, &s)| s > 0).map(|(&h, &s)| h as f64 / s as f64).collect();
            recalls.iter().sum::<f64>() / recalls.len().max(1) as f64
        } else {
            hits.iter().sum::<usize>() as f64 / n as f64
        };
        Ok(Some((accuracy, loss / n as f64)))
    }

    /// The working weights with `snapshot` (tail tensors from [`Layout::export`]) written over them.
    pub fn weights_with(&self, snapshot: &Named) -> Weights {
        let mut w = self.working.clone();
        for (name, shape, v) in snapshot {
            w.tensors.insert(name.clone(), (shape.clone(), v.clone()));
        }
        w
    }
}

/// Mean embedding (view 0, i.e. the centre crop serving sees) per class that `needs` one; empty otherwise.
fn class_means(
    features: &mut Features<'_>,
    tail: &Tail,
    labels: &[usize],
    needs: &[bool],
    batch: usize,
    cancel: &AtomicBool,
) -> Result<Vec<Vec<f32>>> {
    let wanted: Vec<usize> = (0..labels.len()).filter(|&i| needs[labels[i]]).collect();
    let mut sums: Vec<Vec<f64>> = vec![Vec::new(); needs.len()];
    let mut counts = vec![0usize; needs.len()];
    let [c, h, w] = features.dims;
    for chunk in wanted.chunks(batch.max(1)) {
        if cancel.load(Ordering::Relaxed) {
            return Err(TrainError::Cancelled);
        }
        let items: Vec<(usize, usize)> = chunk.iter().map(|&i| (i, 0)).collect();
        let data = features.batch(Set::Train, &items)?;
        let x = Tensor::<4>::from_data(TensorData::new(data, [items.len(), c, h, w]), &Device::flex());
        let (emb, shape) = values(tail.embed(x))?;
        for (row, &i) in emb.chunks_exact(shape[1]).zip(chunk) {
            let sum = &mut sums[labels[i]];
            sum.resize(row.len(), 0.0);
            for (s, v) in sum.iter_mut().zip(row) {
                *s += f64::from(*v);
            }
            counts[labels[i]] += 1;
        }
    }
    Ok(sums
        .into_iter()
        .zip(counts)
        .map(|(s, n)| s.into_iter().map(|v| (v / n.max(1) as f64) as f32).collect())
        .collect())
}

/// Re-initialises every backbone group whose policy is `Reinit`: fan-in scaled uniform conv weights (He
/// initialisation for ReLU-family activations) and identity BatchNorm. Seeded per tensor name, so the result does
/// not depend on hash-map order. The classifier's "reinit" is its rebuild from class means, done elsewhere.
fn reinit_groups(weights: &mut Weights, layout: &Layout, seed: u64) {
    for (name, (shape, v)) in weights.tensors.iter_mut() {
        let Some(group) = layout.group_of(name) else { continue };
        if group == Group::Classifier || layout.policies.get(group) != GroupPolicy::Reinit {
            continue;
        }
        let leaf = name.rsplit('.').next().unwrap_or("");
        let fill = |v: &mut Vec<f32>, x: f32| v.iter_mut().for_each(|e| *e = x);
        match leaf {
            "weight" if shape.len() == 4 => {
                let fan_in: usize = shape[1..].iter().product();
                let bound = (6.0 / fan_in.max(1) as f32).sqrt();
                let tag = name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
                let mut rng = StdRng::seed_from_u64(mix(seed, 4, tag));
                v.iter_mut().for_each(|e| *e = rng.random_range(-bound..bound));
            }
            "weight" | "running_var" => fill(v, 1.0),
            "bias" | "running_mean" => fill(v, 0.0),
            _ => {}
        }
    }
}
