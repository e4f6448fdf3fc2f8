//! The fine-tune loop: epochs, validation, early stopping on a plateau, best-epoch weights.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use fovea_model::Weights;
use serde::{Deserialize, Serialize};

use super::cache::TrainImage;
use super::classifier::ClassifierRows;
use super::config::FineTuneConfig;
use super::net::Named;
use super::session::Session;
use crate::Result;

/// Phase of every progress report of a final fit (its caching and its epochs).
pub const FINAL_FIT_PHASE: &str = "final fit";

/// A progress report. `phase` is `"caching"` while the frozen-prefix activations are computed (epoch 0, `step`
/// of `steps` batches) and `"training"` afterwards (one report per optimiser step, plus one at the end of each
/// epoch that carries the validation accuracy), then [`FINAL_FIT_PHASE`] during a final fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    /// 1-based while training, 0 while caching.
    pub epoch: usize,
    pub epochs: usize,
    pub step: usize,
    pub steps: usize,
    /// Mean training loss of the epoch so far (0 while caching).
    pub train_loss: f64,
    /// Set on the end-of-epoch report when there is a validation set.
    pub validation_accuracy: Option<f64>,
    pub phase: &'static str,
}

impl Progress {
    pub(crate) fn caching(epochs: usize, step: usize, steps: usize) -> Self {
        Progress { epoch: 0, epochs, step, steps, train_loss: 0.0, validation_accuracy: None, phase: "caching" }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch (class-weighted when class-balanced), measured while the weights moved.
    pub train_loss: f64,
    /// Balanced accuracy when the run is class-balanced, plain accuracy otherwise.
    pub validation_accuracy: Option<f64>,
    /// Mean (unweighted) validation cross-entropy: the tie-breaker between epochs of equal accuracy.
    pub validation_loss: Option<f64>,
    pub seconds: f64,
}

#[derive(Debug, Clone)]
pub struct FineTuned {
    /// The whole network under the input's tensor names and shapes, except `_fc.weight` `[classes, dim]` and
    /// `_fc.bias` `[classes]`, which now hold the fine-tuned classifier for `classes`. Frozen groups are the
    /// input's tensors, bit for bit. Loads unchanged into `FastBackbone`, `BurnBackbone` and the ONNX export.
    pub weights: Weights,
    pub classes: Vec<String>,
    pub history: Vec<EpochRecord>,
    /// The epoch whose weights were kept; 0 means no epoch beat the starting point (the rebuilt classifier on
    /// the input backbone), whose weights are then returned.
    pub best_epoch: usize,
    /// Validation accuracy of the starting point, before any step (None without a validation set).
    pub initial_validation_accuracy: Option<f64>,
    pub stopped_early: bool,
    /// Whether frozen-prefix activations were cached (false when disabled or over the memory limit).
    pub cached: bool,
    /// Set when `weights` come from a final fit: this many epochs (the best epoch) on train + validation,
    /// after the run above chose the epoch. `history` and `best_epoch` stay those of the choosing run.
    pub final_fit_epochs: Option<usize>,
}

struct Best {
    epoch: usize,
    accuracy: f64,
    loss: f64,
    snapshot: Named,
}

impl Best {
    /// Higher accuracy wins; at equal accuracy a validation loss lower by more than 0.1 % does, so when accuracy
    /// saturates (small, easy validation sets) the kept epoch is the one that is most confidently right rather
    /// than the first one that got there.
    fn beaten_by(&self, accuracy: f64, loss: f64) -> bool {
        accuracy > self.accuracy + 1e-12 || (accuracy >= self.accuracy - 1e-12 && loss < self.loss * (1.0 - 1e-3))
    }
}

/// Fine-tunes `weights` (an EfficientNet-Lite backbone under PyTorch names) on `train` for `classes`.
///
/// The classifier is rebuilt for `classes` with [`super::extended_classifier`]: rows of classes in
/// `old_classifier` (the one currently serving, if any) are kept, the others start from class means. Groups are
/// trained per `config.policies` with AdamW at `backbone_lr` / `classifier_lr`, BatchNorm in inference mode (see
/// [`super::net`] docs). After each epoch the model is scored on `validation` (centre crops). Training stops once
/// validation accuracy has not risen above its best (the starting point's included) for `patience` epochs; the
/// returned weights are those of the best epoch by accuracy, ties going to the lower validation loss. Without a
/// validation set every epoch runs and the last one is kept.
///
/// With `config.final_fit`, once the best epoch is known the run starts again from `weights` on train and
/// validation together for exactly that many epochs, and returns those weights: the epoch count is what
/// validation was for, and on a small dataset its images are worth more as training data afterwards. Skipped
/// when there is no validation set or no epoch beat the starting point.
///
/// `progress` is called from this thread; `cancel` is polled before every step and every caching batch and
/// yields [`crate::TrainError::Cancelled`]. The run is deterministic for a given `config.seed`.
#[allow(clippy::too_many_arguments)]
pub fn fine_tune(
    weights: &Weights,
    classes: &[String],
    old_classifier: Option<ClassifierRows<'_>>,
    train: &[TrainImage],
    validation: &[TrainImage],
    config: &FineTuneConfig,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<FineTuned> {
    let (mut session, mut tail) =
        Session::new(weights, classes, old_classifier, train, validation, config, progress, cancel)?;
    let initial = session.evaluate(&tail)?;
    let mut best = Best {
        epoch: 0,
        accuracy: initial.map_or(f64::NEG_INFINITY, |(a, _)| a),
        loss: initial.map_or(f64::INFINITY, |(_, l)| l),
        snapshot: session.layout.export(&tail)?,
    };
    // Epoch of the last strict rise in accuracy: the plateau counter. Loss-only improvements move `best` but do
    // not reset it, so a saturated validation set cannot keep an overfitting run alive.
    let mut last_rise = 0;
    let mut history = Vec::new();
    let mut stopped_early = false;
    for epoch in 1..=config.epochs {
        let start = Instant::now();
        let (next, train_loss) = session.epoch(tail, epoch - 1, cancel, &mut |step, steps, loss| {
            progress(Progress {
                epoch,
                epochs: config.epochs,
                step,
                steps,
                train_loss: loss,
                validation_accuracy: None,
                phase: "training",
            })
        })?;
        tail = next;
        let scored = session.evaluate(&tail)?;
        let steps = session.steps_per_epoch();
        history.push(EpochRecord {
            epoch,
            train_loss,
            validation_accuracy: scored.map(|(a, _)| a),
            validation_loss: scored.map(|(_, l)| l),
            seconds: start.elapsed().as_secs_f64(),
        });
        progress(Progress {
            epoch,
            epochs: config.epochs,
            step: steps,
            steps,
            train_loss,
            validation_accuracy: scored.map(|(a, _)| a),
            phase: "training",
        });
        tracing::info!(epoch, train_loss, validation = ?scored, "fine-tune epoch");
        match scored {
            Some((accuracy, loss)) => {
                if accuracy > best.accuracy + 1e-12 {
                    last_rise = epoch;
                }
                if best.beaten_by(accuracy, loss) {
                    best = Best { epoch, accuracy, loss, snapshot: session.layout.export(&tail)? };
                }
                if config.patience > 0 && epoch - last_rise >= config.patience && epoch < config.epochs {
                    stopped_early = true;
                    break;
                }
            }
            None => best = Best { epoch, accuracy: 0.0, loss: 0.0, snapshot: session.layout.export(&tail)? },
        }
    }
    let selected = FineTuned {
        weights: session.weights_with(&best.snapshot),
        classes: classes.to_vec(),
        history,
        best_epoch: best.epoch,
        initial_validation_accuracy: initial.map(|(a, _)| a),
        stopped_early,
        cached: session.features.is_cached(),
        final_fit_epochs: None,
    };
    // The refit below builds its own cache; this run's is no longer needed.
    drop(session);
    if !config.final_fit || validation.is_empty() || selected.best_epoch == 0 {
        return Ok(selected);
    }
    let all: Vec<TrainImage> = train.iter().chain(validation).cloned().collect();
    let refit = FineTuneConfig { epochs: selected.best_epoch, final_fit: false, ..config.clone() };
    let mut report = |p: Progress| progress(Progress { phase: FINAL_FIT_PHASE, ..p });
    let fitted = fine_tune(weights, classes, old_classifier, &all, &[], &refit, &mut report, cancel)?;
    Ok(FineTuned { weights: fitted.weights, final_fit_epochs: Some(selected.best_epoch), ..selected })
}
