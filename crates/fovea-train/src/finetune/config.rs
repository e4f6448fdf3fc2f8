//! Fine-tune settings, serialisable so a job records exactly what it ran with.

use fovea_vision::Augment;
use serde::{Deserialize, Serialize};

use super::groups::Policies;
use crate::{Result, TrainError};

/// Serde mirror of [`fovea_vision::Augment`], which stays free of a serde dependency.
#[derive(Serialize, Deserialize)]
#[serde(remote = "Augment")]
struct AugmentDef {
    hflip: bool,
    max_rotation_deg: f32,
    zoom: (f32, f32),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FineTuneConfig {
    /// What happens to each layer group; see [`Policies`].
    pub policies: Policies,
    /// AdamW learning rate of every trained backbone group, below the classifier's: the pretrained features are
    /// close to right and large steps destroy them before the new head has settled. 3e-4 from an ablation on
    /// MNIST-M-style digits (600 labelled, validation split): 1e-4 reached 84.5 % validation accuracy, 3e-4 91.7 %
    /// (1 000 held-out images as served: 88.2 % and 92.4 %, from 77.6 % before fine-tuning).
    pub backbone_lr: f64,
    /// AdamW learning rate of the classifier.
    pub classifier_lr: f64,
    /// Decoupled (AdamW) weight decay, applied to trained parameters only.
    pub weight_decay: f64,
    /// Upper bound on epochs; early stopping usually ends the run sooner.
    pub epochs: usize,
    /// Images per optimiser step.
    pub batch_size: usize,
    /// Stop after this many epochs without a validation improvement (0 disables early stopping).
    pub patience: usize,
    /// Geometric augmentation of the training views.
    #[serde(with = "AugmentDef")]
    pub augment: Augment,
    /// Views per training image, drawn once per run (seeded). View 0 is the plain centre crop that serving
    /// sees; views 1.. are augmented. Each epoch shows every image once, rotating through its views, so the
    /// frozen-prefix cache holds `images × augmented_views` activations.
    pub augmented_views: usize,
    /// Weight the loss by inverse class frequency (and select the best epoch by balanced accuracy), so a class
    /// with 5× more photos does not dominate the gradient.
    pub class_balanced: bool,
    /// Seeds the views, the shuffles and any re-initialised weights: the same inputs give the same run.
    pub seed: u64,
    /// Square input side in pixels (224 for Lite0).
    pub input_size: u32,
    /// Keep frozen-prefix activations in memory (computed once per run) instead of recomputing the frozen
    /// layers and the augmentation every epoch.
    pub cache: bool,
    /// Largest cache in MiB; a larger one falls back to recomputation, with a warning.
    pub cache_limit_mib: usize,
    /// After choosing the best epoch on validation, train again on train + validation for that many epochs and
    /// keep those weights (see [`super::fine_tune`]). Off by default: it doubles the run's time, and the
    /// validation curve no longer describes the returned weights.
    pub final_fit: bool,
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        FineTuneConfig {
            policies: Policies::default(),
            backbone_lr: 3e-4,
            classifier_lr: 1e-3,
            weight_decay: 1e-2,
            epochs: 15,
            batch_size: 16,
            patience: 3,
            augment: Augment::default(),
            augmented_views: 4,
            class_balanced: true,
            seed: 0,
            input_size: 224,
            cache: true,
            cache_limit_mib: 4096,
            final_fit: false,
        }
    }
}

impl FineTuneConfig {
    /// Rejects settings that would fail later, deep inside a run, or silently train nothing.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(TrainError::Config(what));
        let lr_ok = |lr: f64| lr.is_finite() && lr >= 0.0;
        if !lr_ok(self.backbone_lr) || !lr_ok(self.classifier_lr) {
            return bad(format!(
                "learning rates must be finite and non-negative (backbone {}, classifier {})",
                self.backbone_lr, self.classifier_lr
            ));
        }
        if !lr_ok(self.weight_decay) {
            return bad(format!("weight decay must be finite and non-negative, not {}", self.weight_decay));
        }
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch size must be at least 1".into());
        }
        if self.augmented_views == 0 {
            return bad("augmented views must be at least 1 (view 0 is the plain centre crop)".into());
        }
        if self.input_size < 32 {
            return bad(format!("input size {} is too small (at least 32 pixels)", self.input_size));
        }
        self.policies.first_trainable()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_partial_documents() {
        let mut c = FineTuneConfig::default();
        c.augment.zoom = (0.8, 1.25);
        c.policies = "stage4=finetune".parse().unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<FineTuneConfig>(&json).unwrap(), c);
        let partial: FineTuneConfig = serde_json::from_str(r#"{"epochs": 3}"#).unwrap();
        assert_eq!(partial.epochs, 3);
        assert_eq!(partial.batch_size, 16);
        assert!(partial.validate().is_ok());
    }

    #[test]
    fn validation_rejects_useless_settings() {
        let with = |f: fn(&mut FineTuneConfig)| {
            let mut c = FineTuneConfig::default();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(with(|c| c.batch_size = 0).contains("batch size"));
        assert!(with(|c| c.backbone_lr = f64::NAN).contains("learning rates"));
        assert!(with(|c| c.augmented_views = 0).contains("augmented views"));
        assert!(with(|c| c.policies = "all=freeze".parse().unwrap()).contains("nothing to train"));
    }
}
