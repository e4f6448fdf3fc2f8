//! The batch fine-tune use case: dataset from the catalog → fine-tune → evaluate against the serving model on the
//! same splits → gate → registry (→ promotion). Runs its heavy parts on blocking threads; serving goes on.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use fovea_learn::Head;
use fovea_model::{Engine, Variant, Weights};
use fovea_store::{ImageFilter, ModelKind, Split as StoredSplit};
use fovea_train::dataset::{self, DatasetPlan, Sample, Split, SplitConfig};
use fovea_train::finetune::{self, FineTuneConfig, Photo, TrainImage};
use fovea_train::gate::{self, GateConfig, GateVerdict};
use fovea_train::metrics::{self, Evaluation};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::head::new_head;
use crate::served_estimate::{estimate, AsServed, Labelled, ServedEstimate};
use crate::{App, AppError, Result};

/// What a training run is asked to do; every field has a sensible default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TrainParams {
    /// Images a class needs to take part [default: the app's cutoff, 40]. Lower only for throw-away runs.
    pub cutoff: Option<usize>,
    /// A quick run that may use a lower cutoff; never promoted, but usable for bulk identification.
    pub throw_away: bool,
    /// Most epochs to run (early stopping usually ends sooner).
    pub epochs: Option<usize>,
    /// Layer-group policy, e.g. `stem=freeze,stage0-4=freeze,stage5-6=finetune,head=finetune,classifier=reinit`.
    pub policy: Option<String>,
    /// Leave the result as a candidate even when it passes the gate.
    pub no_promote: bool,
    pub seed: Option<u64>,
    /// Once validation has chosen the epoch, train again on train + validation for that many epochs and keep
    /// that model: on small datasets the validation images are worth more as training data. Takes about twice as
    /// long.
    pub final_fit: bool,
    /// Keep images tagged staged or synthetic out of the test and benchmark (and validation) splits: they are
    /// trained on, and the model is judged on real pictures only.
    pub staged_train_only: bool,
    /// AdamW learning rate of the fine-tuned backbone groups [default: 3e-4].
    pub backbone_lr: Option<f64>,
    /// Leave left-right mirroring out of the augmentation: for classes where handedness matters (digits, text,
    /// some insignia).
    pub no_flip: bool,
}

/// Live state of a run, for progress bars and the web UI's curve.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrainProgress {
    pub phase: String,
    /// 0..1 over the whole run.
    pub fraction: f64,
    pub epoch: usize,
    pub epochs: usize,
    pub train_loss: Option<f64>,
    pub validation_accuracy: Option<f64>,
    /// (epoch, train loss, validation accuracy) of every finished epoch.
    pub history: Vec<(usize, f64, Option<f64>)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrainReport {
    pub model_id: String,
    pub parent: String,
    pub throw_away: bool,
    pub classes: Vec<String>,
    /// Classes below the cutoff, left out (name, images).
    pub excluded: Vec<(String, usize)>,
    pub split_sizes: Vec<(String, usize)>,
    pub best_epoch: usize,
    pub stopped_early: bool,
    /// Set when the model comes from a final fit: this many epochs on train + validation.
    #[serde(default)]
    pub final_fit_epochs: Option<usize>,
    /// Test accuracy of the serving model (its backbone + an online head fitted on the train split).
    pub serving_test_accuracy: f64,
    /// Test accuracy of the new backbone + an online head fitted on the same train split.
    pub candidate_test_accuracy: f64,
    /// Test accuracy of the fine-tuned network's own classifier.
    pub classifier_test_accuracy: f64,
    /// Both models as they would serve (head on every label, calibrated as the app calibrates), estimated on
    /// the labelled images the candidate never trained on. Absent in reports recorded before it existed.
    #[serde(default)]
    pub as_served: Option<AsServed>,
    /// The two test accuracies above compared image by image, with paired-bootstrap intervals: how precisely
    /// the test split can tell them apart. Absent in reports recorded before it existed.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub test_comparison: Option<gate::Comparison>,
    #[schema(value_type = Object)]
    pub serving_benchmark: Evaluation,
    #[schema(value_type = Object)]
    pub candidate_benchmark: Evaluation,
    #[schema(value_type = Object)]
    pub verdict: GateVerdict,
    pub promoted: bool,
    pub seconds: f64,
}

/// Photos are kept at this multiple of the input size: enough for zoom-in crops, small enough for memory.
const KEEP_SCALE: f32 = 1.15;

/// The labelled photos of a run, read from the catalog one at a time: each is decoded once (for its perceptual
/// hash) and kept, shrunk, while the kept ones fit in `AppConfig::train_keep_mib`; the rest are decoded again
/// from their blobs when training needs them, so memory stays bounded whatever the number of labelled images.
pub(crate) struct Prepared {
    pub samples: Vec<Sample>,
    pub photos: Vec<Photo>,
    pub frozen: HashSet<i64>,
    pub stored: Vec<StoredSplit>,
    /// How many photos are kept decoded (the rest are reloaded on use).
    pub kept: usize,
}

fn shrink(img: RgbImage, size: u32) -> RgbImage {
    let keep = (size as f32 * KEEP_SCALE) as u32;
    let short = img.width().min(img.height());
    if short <= keep {
        return img;
    }
    let (w, h) = (img.width() * keep / short, img.height() * keep / short);
    image::imageops::resize(&img, w.max(1), h.max(1), image::imageops::FilterType::Triangle)
}

fn stored_split(s: Split) -> StoredSplit {
    match s {
        Split::Train => StoredSplit::Train,
        Split::Validation => StoredSplit::Val,
        Split::Test => StoredSplit::Test,
        Split::Benchmark => StoredSplit::Benchmark,
    }
}

impl App {
    /// Checks a run's parameters and turns them into the cutoff and fine-tune settings it will use, so a job is
    /// refused when queued for exactly the reasons it would fail when run.
    pub(crate) fn run_settings(&self, params: &TrainParams) -> Result<(usize, FineTuneConfig)> {
        if params.epochs == Some(0) {
            return Err(AppError::Invalid("`epochs` must be at least 1".into()));
        }
        let cutoff = params.cutoff.unwrap_or(self.cfg.cutoff as usize);
        if cutoff < self.cfg.cutoff as usize && !params.throw_away {
            return Err(AppError::Invalid(format!(
                "a cutoff below {} is only allowed for a throw-away run (--throw-away)",
                self.cfg.cutoff
            )));
        }
        let mut config =
            FineTuneConfig { seed: params.seed.unwrap_or(7), final_fit: params.final_fit, ..Default::default() };
        if let Some(e) = params.epochs {
            config.epochs = e;
        }
        if let Some(p) = &params.policy {
            config.policies = p.parse()?;
        }
        if let Some(lr) = params.backbone_lr {
            config.backbone_lr = lr;
        }
        config.augment.hflip = !params.no_flip;
        config.input_size = self.compute.input_size() as u32;
        config.validate()?;
        Ok((cutoff, config))
    }

    /// Runs one fine-tune from the serving model. `progress` is called from a blocking thread.
    pub async fn train(
        &self,
        params: &TrainParams,
        progress: impl FnMut(TrainProgress) + Send + 'static,
        cancel: Arc<AtomicBool>,
    ) -> Result<TrainReport> {
        let start = std::time::Instant::now();
        let (cutoff, config) = self.run_settings(params)?;

        let parent = self.served_model().await;
        // The dataset first: "not enough data" is the common answer and needs no weights loaded.
        let Prepared { mut samples, photos: images, frozen, stored, .. } = self.labelled_samples().await?;
        // Copies the hash misses (crops, found through the embeddings) share a split too, so a run's benchmark does
        // not leak through them.
        let links = self.duplicate_links(&fovea_train::duplicates::DuplicateConfig::strict()).await?;
        for s in &mut samples {
            s.link = links.get(&s.sha256).cloned();
        }
        if params.staged_train_only {
            for s in &mut samples {
                let tags = self.catalog.image_tags(&s.sha256).await?;
                s.train_only = tags.iter().any(|t| crate::STAGED_TAGS.contains(&t.as_str()));
            }
        }
        // Held-out shares are sized for the dataset (see `SplitConfig::sized_for`: caps on small datasets, targets in
        // images on large ones, never moving a trained image into an evaluation split as the dataset grows).
        let plan = dataset::build(&samples, &frozen, &SplitConfig { cutoff, ..SplitConfig::sized_for(samples.len()) })?;
        let weights = Arc::new(self.shared_model_weights(&parent).await?);
        for split in Split::ALL {
            for s in plan.split(split) {
                if stored[s.image_id as usize] != stored_split(split) {
                    self.catalog.set_split(&s.sha256, stored_split(split)).await?;
                }
            }
        }
        // Drawn before training, so a leaked benchmark is known whatever the run's outcome.
        let leakage = self.split_leakage(&plan).await?;
        let old_classes: Option<Vec<String>> =
            self.model(&parent).await?.metrics.get("classes").and_then(|c| serde_json::from_value(c.clone()).ok());

        let plan = Arc::new(plan);
        let images = Arc::new(images);
        let (w, p, im, cfg) = (weights.clone(), plan.clone(), images.clone(), config.clone());
        let (head_kind, variant, engine) = (self.cfg.head.clone(), self.cfg.variant, self.cfg.engine);
        let mut progress = progress;
        let outcome = tokio::task::spawn_blocking(move || {
            run_blocking(
                &w,
                &p,
                &im,
                old_classes.as_deref(),
                &cfg,
                (&head_kind, variant, engine),
                &mut progress,
                &cancel,
            )
        })
        .await
        .map_err(|e| AppError::Internal(format!("training thread: {e}")))??;

        let (tuned, (serving, serving_served), (candidate, candidate_served), classifier_test) = outcome;
        let as_served = AsServed { serving: serving_served, candidate: candidate_served };
        let throw_away = params.throw_away;
        let mut verdict = gate::judge(&candidate.1, Some(&serving.1), throw_away, &GateConfig::default());
        crate::leakage::judge_leakage(&mut verdict, &leakage);
        // Both test evaluations come from the same plan.test in the same order, so pairing cannot fail in practice;
        // if it ever did, the report says less rather than the run failing.
        let test_comparison = gate::paired_comparison(&candidate.0, &serving.0, &GateConfig::default()).ok();
        let kind = if throw_away { ModelKind::ThrowAway } else { ModelKind::FineTune };
        let prefix = if throw_away { "throwaway" } else { "ft" };
        let mut report = self
            .register_model(prefix, &parent, kind, &tuned.weights, |model_id| {
                let report = TrainReport {
                    model_id: model_id.to_owned(),
                    parent: parent.clone(),
                    throw_away,
                    classes: plan.classes.clone(),
                    excluded: plan.excluded.iter().map(|e| (e.class.clone(), e.count)).collect(),
                    split_sizes: Split::ALL.iter().map(|s| (s.to_string(), plan.split(*s).len())).collect(),
                    best_epoch: tuned.best_epoch,
                    stopped_early: tuned.stopped_early,
                    final_fit_epochs: tuned.final_fit_epochs,
                    serving_test_accuracy: serving.0.accuracy,
                    candidate_test_accuracy: candidate.0.accuracy,
                    classifier_test_accuracy: classifier_test.accuracy,
                    as_served: Some(as_served),
                    test_comparison,
                    serving_benchmark: serving.1,
                    candidate_benchmark: candidate.1,
                    verdict,
                    promoted: false,
                    seconds: start.elapsed().as_secs_f64(),
                };
                let metrics = serde_json::json!({
                    "classes": report.classes,
                    "report": report,
                    "history": tuned.history,
                    "config": config,
                    "leakage": leakage,
                });
                (report, metrics)
            })
            .await?;
        if report.verdict.passed && !params.no_promote {
            self.promote(&report.model_id).await?;
            report.promoted = true;
        }
        Ok(report)
    }

    /// What a run's preparation holds, without training: (labelled photos, photos kept decoded in memory). For
    /// tests and for measuring the preparation's memory.
    #[doc(hidden)]
    pub async fn prepare_training(&self) -> Result<(usize, usize)> {
        let prepared = self.labelled_samples().await?;
        // A reloaded photo must load as training will load it: on a blocking thread.
        if let Some(photo) = prepared.photos.iter().find(|p| matches!(p, Photo::Load(_))).cloned() {
            tokio::task::spawn_blocking(move || photo.get().map(|_| ()))
                .await
                .map_err(|e| AppError::Internal(e.to_string()))??;
        }
        Ok((prepared.photos.len(), prepared.kept))
    }

    /// Every labelled image (Unknown excluded) as a dataset sample, its shrunk photo (kept or reloaded on use),
    /// the frozen benchmark and each image's stored split. Sample ids are indices into the returned vectors.
    pub(crate) async fn labelled_samples(&self) -> Result<Prepared> {
        let unknown = self.catalog.unknown_class().await?.name;
        let rows = self.catalog.list_images(&ImageFilter { labelled: Some(true), ..Default::default() }).await?;
        let size = self.compute.input_size() as u32;
        let budget = self.cfg.train_keep_mib.saturating_mul(1 << 20);
        let (limits, runtime) = (self.cfg.limits, tokio::runtime::Handle::current());
        let mut out =
            Prepared { samples: Vec::new(), photos: Vec::new(), frozen: HashSet::new(), stored: Vec::new(), kept: 0 };
        let mut kept_bytes = 0usize;
        for row in rows {
            let Some(class) = row.current_class.filter(|c| *c != unknown) else { continue };
            let bytes = self.blobs.get(&row.image.blob_key).await?;
            let img = tokio::task::spawn_blocking(move || -> Result<RgbImage> {
                Ok(shrink(fovea_vision::decode(&bytes, &limits)?, size))
            })
            .await
            .map_err(|e| AppError::Internal(e.to_string()))??;
            let idx = out.samples.len() as i64;
            if row.image.split == StoredSplit::Benchmark {
                out.frozen.insert(idx);
            }
            out.stored.push(row.image.split);
            out.samples.push(Sample {
                image_id: idx,
                sha256: row.image.id,
                dhash: fovea_train::perceptual::dhash(&img),
                class,
                train_only: false,
                link: None,
            });
            let len = img.as_raw().len();
            if kept_bytes + len <= budget {
                kept_bytes += len;
                out.kept += 1;
                out.photos.push(img.into());
            } else {
                // Called from the training thread (a blocking one), where waiting on the runtime is allowed.
                let (blobs, key, runtime) = (self.blobs.clone(), row.image.blob_key, runtime.clone());
                out.photos.push(Photo::Load(Arc::new(move || {
                    let bytes = runtime
                        .block_on(blobs.get(&key))
                        .map_err(|e| fovea_train::TrainError::Load(format!("{key}: {e}")))?;
                    let img = fovea_vision::decode(&bytes, &limits)
                        .map_err(|e| fovea_train::TrainError::Load(format!("{key}: {e}")))?;
                    Ok(shrink(img, size))
                })));
            }
        }
        Ok(out)
    }
}

type Evaluated = (Evaluation, Evaluation);
/// A backbone's (test, benchmark) evaluations and its as-served estimate.
type Judged = (Evaluated, ServedEstimate);

#[allow(clippy::too_many_arguments)]
fn run_blocking(
    weights: &Weights,
    plan: &DatasetPlan,
    images: &[Photo],
    old_classes: Option<&[String]>,
    config: &FineTuneConfig,
    (head_kind, variant, engine): (&str, Variant, Engine),
    progress: &mut (dyn FnMut(TrainProgress) + Send),
    cancel: &AtomicBool,
) -> Result<(finetune::FineTuned, Judged, Judged, Evaluation)> {
    let to_train = |set: &[Sample]| -> Vec<TrainImage> {
        set.iter()
            .filter_map(|s| {
                plan.class_index(&s.class).map(|label| TrainImage { image: images[s.image_id as usize].clone(), label })
            })
            .collect()
    };
    let (train, validation) = (to_train(&plan.train), to_train(&plan.validation));
    if train.is_empty() {
        return Err(AppError::Train(fovea_train::TrainError::NotEnoughData("the train split is empty".into())));
    }
    let old_rows = match old_classes {
        Some(names) => {
            let n = names.len();
            let w = weights.tensors.get("_fc.weight").map(|t| t.1.as_slice());
            let b = weights.tensors.get("_fc.bias").map(|t| t.1.as_slice());
            match (w, b) {
                (Some(w), Some(b)) if b.len() == n => Some((names, w, b)),
                _ => None,
            }
        }
        None => None,
    };
    let mut state = TrainProgress { phase: "preparing".into(), epochs: config.epochs, ..Default::default() };
    let epochs = config.epochs.max(1) as f64;
    let tuned = finetune::fine_tune(
        weights,
        &plan.classes,
        old_rows,
        &train,
        &validation,
        config,
        &mut |p| {
            state.phase = p.phase.into();
            state.epoch = p.epoch;
            state.train_loss = Some(p.train_loss);
            let step = if p.steps > 0 { p.step as f64 / p.steps as f64 } else { 0.0 };
            state.fraction = if p.phase == "training" {
                0.1 + 0.8 * ((p.epoch.max(1) - 1) as f64 + step) / epochs
            } else if p.phase == finetune::FINAL_FIT_PHASE {
                // The refit follows the chosen epochs, however early they stopped: finish the bar from 0.9.
                let epoch = if p.epoch == 0 { 0.0 } else { (p.epoch - 1) as f64 + step };
                0.9 + 0.02 * epoch / p.epochs.max(1) as f64
            } else {
                0.1 * step
            };
            if p.validation_accuracy.is_some() && p.step == p.steps && !state.history.iter().any(|h| h.0 == p.epoch) {
                state.validation_accuracy = p.validation_accuracy;
                state.history.push((p.epoch, p.train_loss, p.validation_accuracy));
            }
            progress(state.clone());
        },
        cancel,
    )?;
    state.phase = "evaluating".into();
    state.fraction = 0.92;
    progress(state.clone());
    // Both estimates score the same images: those the candidate never trained on.
    let final_fit = tuned.final_fit_epochs.is_some();
    let serving = evaluate_backbone(weights, (variant, engine), plan, images, head_kind, final_fit)?;
    let candidate = evaluate_backbone(&tuned.weights, (variant, engine), plan, images, head_kind, final_fit)?;
    // Handles only: `predict` loads each batch's photos as it goes.
    let test_images: Vec<Photo> = plan.test.iter().map(|s| images[s.image_id as usize].clone()).collect();
    let probs = finetune::predict(&tuned.weights, &test_images, config.input_size, 16)?;
    let truth: Vec<usize> = plan.test.iter().map(|s| plan.class_index(&s.class).unwrap_or(0)).collect();
    let classifier = metrics::evaluate(&plan.classes, &truth, &probs)?;
    state.fraction = 1.0;
    state.phase = "done".into();
    progress(state);
    Ok((tuned, serving, candidate, classifier))
}

/// A backbone judged two ways: an online head fitted on the train split's embeddings, scored on the test and
/// benchmark splits (the gate's paired comparison, where both models learn the same images), and the estimate of
/// how it will serve (see [`crate::served_estimate`]), scored on the images the candidate never trained on, for
/// both models alike. `trained_on_validation`: the candidate's training also saw validation (a final fit).
fn evaluate_backbone(
    weights: &Weights,
    (variant, engine): (Variant, Engine),
    plan: &DatasetPlan,
    images: &[Photo],
    head_kind: &str,
    trained_on_validation: bool,
) -> Result<Judged> {
    let backbone = engine.build(weights, variant, 0)?;
    let size = variant.input_size() as u32;
    let embed = |set: &[Sample]| -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(set.len());
        for chunk in set.chunks(16) {
            let mut input = Vec::with_capacity(chunk.len() * 3 * (size as usize).pow(2));
            for s in chunk {
                input.extend(fovea_vision::to_input(&*images[s.image_id as usize].get()?, size));
            }
            let e = backbone.run(&input, chunk.len())?;
            out.extend((0..chunk.len()).map(|i| e.embedding(i).to_vec()));
        }
        Ok(out)
    };
    let (train, validation, test, benchmark) =
        (embed(&plan.train)?, embed(&plan.validation)?, embed(&plan.test)?, embed(&plan.benchmark)?);
    let mut head = new_head(head_kind, backbone.embedding_dim())?;
    for (s, e) in plan.train.iter().zip(&train) {
        head.learn_named(e, &s.class)?;
    }
    let score = |set: &[Sample], embedded: &[Vec<f32>]| -> Result<Evaluation> {
        let mut truth = Vec::new();
        let mut probs = Vec::new();
        for (s, e) in set.iter().zip(embedded) {
            let p = head.predict(e)?;
            let mut row = vec![0f32; plan.classes.len()];
            for scored in &p.ranked {
                if let Some(i) = head.class_name(scored.class).and_then(|n| plan.class_index(n)) {
                    row[i] = scored.probability as f32;
                }
            }
            let sum: f32 = row.iter().sum();
            if sum > 0.0 {
                row.iter_mut().for_each(|v| *v /= sum);
            } else {
                row.iter_mut().for_each(|v| *v = 1.0 / plan.classes.len() as f32);
            }
            truth.push(plan.class_index(&s.class).unwrap_or(0));
            probs.push(row);
        }
        Ok(metrics::evaluate(&plan.classes, &truth, &probs)?)
    };
    let evaluated = (score(&plan.test, &test)?, score(&plan.benchmark, &benchmark)?);
    fn labelled(set: &[Sample], embedded: Vec<Vec<f32>>, scored: bool) -> Vec<Labelled<'_>> {
        set.iter().zip(embedded).map(|(s, embedding)| Labelled { embedding, class: &s.class, scored }).collect()
    }
    let all: Vec<Labelled<'_>> = [
        labelled(&plan.train, train, false),
        labelled(&plan.validation, validation, !trained_on_validation),
        labelled(&plan.test, test, true),
        labelled(&plan.benchmark, benchmark, true),
    ]
    .into_iter()
    .flatten()
    .collect();
    let served = estimate(head_kind, &all)?;
    Ok((evaluated, served))
}
