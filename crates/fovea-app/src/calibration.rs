//! Served probabilities that mean what they say. The online head's raw scores are near-certain even when wrong,
//! so the app fits a temperature and an open-set distance threshold on held-out evidence: exact leave-one-out
//! predictions over the labelled images (the head's statistics make unlearning one sample exact and cheap). The
//! fit is refreshed as labels arrive and after every change of head (promotion, rollback, rename, merge), stored
//! in the head snapshot (so every process serves it) and in the served model's registry row (so a person sees
//! it with `fovea models show`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use fovea_learn::{fit_held_out, leave_one_out, reliability, CalibrationFit, Head, Reliability};
use fovea_store::{now_millis, ImageFilter};
use serde::{Deserialize, Serialize};

use crate::{App, AppError, Result};

/// Known-class images the open-set rule may call unknown.
pub const TARGET_FALSE_UNKNOWN: f64 = 0.05;
/// Held-out predictions the fit looks at, at most (spread evenly over classes); more adds seconds, not accuracy.
pub(crate) const MAX_EVIDENCE: usize = 600;
/// Below this many held-out predictions nothing is fitted: temperature 1 and the fallback threshold.
const MIN_EVIDENCE: usize = 20;
/// Open-set distance threshold used until there is evidence to fit one. The head's distance is a squared
/// distance per dimension, standardised by the head's variance estimate. Measured with the five sample photos
/// learned once each: crops of them and another photo of the same motorcycle sit at 0.20–0.56, while unrelated
/// pictures (a horse, bricks, grass, coins, a page of text, the moon, a camera man) sit at 2.3–3.3.
pub const FALLBACK_MAX_DISTANCE: f64 = 1.0;
/// Temperature served before there is enough held-out evidence to fit one (it shrinks towards the evidence as
/// labels arrive). Measured on MNIST (1 000 held-out digits, as served): the fitted
/// temperature of the online SLDA head is about 100 at 2 labels per class, 33 at 5 and 8 at 30; at 1 label per
/// class (no held-out evidence at all) a temperature of 1 served ECE 0.50 with 93 % of wrong answers above 0.99,
/// 10 served 0.43 / 45 %, 30 served 0.30 / 7 %. Distinct photos learned from one image each still get 1.0 at 30.
const PRIOR_TEMPERATURE: f64 = 30.0;
/// A fit is refreshed once the label log has moved this many entries past it (or a tenth of the labels learned).
const REFIT_AFTER_LABELS: i64 = 20;
/// How often the background task checks whether the fit is stale.
const POLL: Duration = Duration::from_secs(2);
/// First labels of new images remembered with what the model had answered just before learning them.
const LIVE_WINDOW: usize = 500;

/// Served answers checked by the label that followed: the first human label of an image is a held-out verdict on
/// the prediction the model made for it just before learning it (predict-then-learn).
#[derive(Debug, Default)]
pub(crate) struct LiveEvidence {
    /// `(top-1 probability as served, top-1 was right, probability served for the true class)`.
    outcomes: VecDeque<(f64, bool, f64)>,
}

impl LiveEvidence {
    pub(crate) fn push(&mut self, outcome: (f64, bool, f64)) {
        if self.outcomes.len() == LIVE_WINDOW {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back(outcome);
    }

    fn summary(&self) -> Option<LiveReliability> {
        if self.outcomes.is_empty() {
            return None;
        }
        let r = reliability(&self.outcomes.iter().copied().collect::<Vec<_>>());
        Some(LiveReliability { samples: r.samples, accuracy: r.accuracy, ece: r.ece, wrong_above_99: r.wrong_above_99 })
    }
}

/// Reliability of the most recent served answers that a first human label then confirmed or corrected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveReliability {
    pub samples: usize,
    pub accuracy: f64,
    pub ece: f64,
    pub wrong_above_99: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReliabilityBinView {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    pub confidence: f64,
    pub accuracy: f64,
}

/// The calibration being served, and the held-out evidence it was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CalibrationReport {
    /// The model version (backbone) whose online head this calibrates.
    pub model: String,
    /// The label-log position the head had when it was fitted.
    pub label_seq: i64,
    /// `leave-one-out`, or `too little evidence` (fewer than 20 held-out predictions: nothing fitted).
    pub source: String,
    pub temperature: f64,
    /// Unknown when the distance to the nearest class is above this.
    pub max_distance: Option<f64>,
    pub target_false_unknown: f64,
    /// Held-out predictions the fit rests on.
    pub samples: usize,
    /// Of those, the share the threshold calls unknown.
    pub false_unknown_rate: f64,
    /// Leave-one-out top-1 accuracy.
    pub accuracy: f64,
    /// Expected calibration error (15 bins) of the held-out predictions before and after the fit.
    pub ece_before: f64,
    pub ece_after: f64,
    pub nll_before: f64,
    pub nll_after: f64,
    /// Share of the wrong held-out answers given a probability above 0.99, before and after.
    pub wrong_above_99_before: f64,
    pub wrong_above_99_after: f64,
    /// Reliability diagram after the fit.
    pub reliability: Vec<ReliabilityBinView>,
    pub fitted_at: i64,
    /// Predict-then-learn: the last (up to 500) served answers that a first human label checked, in this process.
    pub live: Option<LiveReliability>,
}

impl CalibrationReport {
    fn new(model: String, label_seq: i64, fit: &CalibrationFit) -> Self {
        let bins = |r: &Reliability| {
            r.bins
                .iter()
                .map(|b| ReliabilityBinView {
                    lower: b.lower,
                    upper: b.upper,
                    count: b.count,
                    confidence: b.confidence,
                    accuracy: b.accuracy,
                })
                .collect()
        };
        let fitted = fit.before.samples >= MIN_EVIDENCE;
        CalibrationReport {
            model,
            label_seq,
            source: if fitted { "leave-one-out" } else { "too little evidence" }.into(),
            temperature: fit.calibration.temperature,
            max_distance: fit.calibration.max_distance,
            target_false_unknown: TARGET_FALSE_UNKNOWN,
            samples: fit.before.samples,
            false_unknown_rate: fit.false_unknown_rate,
            accuracy: fit.before.accuracy,
            ece_before: fit.before.ece,
            ece_after: fit.after.ece,
            nll_before: fit.before.nll,
            nll_after: fit.after.nll,
            wrong_above_99_before: fit.before.wrong_above_99,
            wrong_above_99_after: fit.after.wrong_above_99,
            reliability: bins(&fit.after),
            fitted_at: now_millis(),
            live: None,
        }
    }

    /// True when the head has moved on far enough that this fit should be redone.
    /// `learned` is how many samples the head holds now: a refit waits for a tenth more, so a bulk import of
    /// thousands of labels costs a few dozen refits, not thousands.
    fn stale(&self, backbone: &str, seq: i64, head_calibration: &fovea_learn::Calibration, learned: u64) -> bool {
        let moved = (seq - self.label_seq).abs();
        self.model != backbone
            || head_calibration.temperature != self.temperature
            || head_calibration.max_distance != self.max_distance
            || moved >= REFIT_AFTER_LABELS.max(learned as i64 / 10)
    }
}

/// Up to `max` labelled images spread evenly over classes (round robin over classes, ids in a fixed order),
/// so the evidence does not depend on the order images arrived in.
pub(crate) fn spread_over_classes(rows: Vec<(String, String)>, max: usize) -> Vec<(String, String)> {
    let mut by_class: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, class) in rows {
        by_class.entry(class).or_default().push(id);
    }
    for ids in by_class.values_mut() {
        ids.sort();
    }
    let mut out = Vec::new();
    let mut round = 0;
    while out.len() < max {
        let mut any = false;
        for (class, ids) in &by_class {
            if let Some(id) = ids.get(round) {
                out.push((id.clone(), class.clone()));
                any = true;
                if out.len() == max {
                    break;
                }
            }
        }
        if !any {
            break;
        }
        round += 1;
    }
    out
}

/// The app's calibration rule applied to held-out predictions.
pub(crate) fn fit(held: &[fovea_learn::HeldOut]) -> CalibrationFit {
    fit_held_out(held, TARGET_FALSE_UNKNOWN, MIN_EVIDENCE, Some(FALLBACK_MAX_DISTANCE), PRIOR_TEMPERATURE)
}

impl App {
    /// The calibration being served, if one has been fitted in this process.
    pub async fn calibration(&self) -> Option<CalibrationReport> {
        let mut report = self.calibration.lock().await.clone()?;
        report.live = self.live_evidence.lock().unwrap_or_else(|p| p.into_inner()).summary();
        Some(report)
    }

    /// Remembers how the served head did on an image it is about to learn for the first time.
    pub(crate) fn note_served_outcome(&self, head: &fovea_learn::AnyHead, embedding: &[f32], truth: &str) {
        let Ok(p) = head.predict(embedding) else { return };
        let Some(best) = p.best() else { return };
        let truth_id = head.class_id(truth);
        let p_true = truth_id.and_then(|id| p.probabilities.get(id.index()).copied()).unwrap_or(0.0);
        let outcome = (best.probability, Some(best.class) == truth_id, p_true);
        self.live_evidence.lock().unwrap_or_else(|p| p.into_inner()).push(outcome);
    }

    /// Every labelled image with its current class: the evidence a calibration is fitted from.
    pub(crate) async fn labelled_rows(&self) -> Result<Vec<(String, String)>> {
        let filter = ImageFilter { labelled: Some(true), ..Default::default() };
        Ok(self
            .catalog
            .list_images(&filter)
            .await?
            .into_iter()
            .filter_map(|r| r.current_class.map(|c| (r.image.id, c)))
            .collect())
    }

    /// Fits a calibration for `head` (learned from `backbone`'s embeddings) from leave-one-out predictions over
    /// labelled images `rows` (image id, class), spread over the classes.
    pub(crate) async fn fit_calibration(
        &self,
        head: fovea_learn::AnyHead,
        backbone: &str,
        rows: Vec<(String, String)>,
    ) -> Result<CalibrationFit> {
        let mut samples = Vec::new();
        for (id, class) in spread_over_classes(rows, MAX_EVIDENCE) {
            if let Some(e) = self.catalog.get_embedding(&id, backbone).await? {
                samples.push((e, class));
            }
        }
        tokio::task::spawn_blocking(move || -> Result<CalibrationFit> {
            let refs: Vec<(&[f32], &str)> = samples.iter().map(|(e, c)| (e.as_slice(), c.as_str())).collect();
            Ok(fit(&leave_one_out(&head, &refs)?))
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
    }

    /// Fits the served head's calibration now from leave-one-out predictions over the labelled images, serves it,
    /// and records it on the served model's registry row.
    pub async fn recalibrate(&self) -> Result<CalibrationReport> {
        let mut current = self.calibration.lock().await;
        // The head and the labelled set are read together under the head lock (labels are added under it too),
        // so every sampled image is one the copied head has learned under that class.
        let (head, seq, backbone, rows) = {
            let h = self.head.lock().await;
            (h.head.clone(), h.seq, h.backbone().to_owned(), self.labelled_rows().await?)
        };
        let fit = self.fit_calibration(head, &backbone, rows).await?;
        let report = CalibrationReport::new(backbone.clone(), seq, &fit);
        {
            let mut h = self.head.lock().await;
            if h.backbone() != backbone {
                return Err(AppError::Conflict("the served model changed during calibration".into()));
            }
            h.head.set_calibration(fit.calibration);
            // The snapshot carries the calibration, so the CLI and other processes serve the same numbers.
            h.save(self.catalog.as_ref()).await?;
        }
        self.record_calibration(&report).await?;
        tracing::info!(
            model = %report.model, samples = report.samples, temperature = report.temperature,
            ece_before = report.ece_before, ece_after = report.ece_after, "calibration refitted"
        );
        *current = Some(report.clone());
        Ok(report)
    }

    /// Writes the report into the served model's registry metrics under `calibration`, keeping the rest.
    async fn record_calibration(&self, report: &CalibrationReport) -> Result<()> {
        let Some(model) = self.catalog.get_model_version(&report.model).await? else { return Ok(()) };
        let mut metrics = model.metrics;
        if !metrics.is_object() {
            metrics = serde_json::json!({});
        }
        metrics["calibration"] = serde_json::to_value(report).map_err(|e| AppError::Internal(e.to_string()))?;
        self.catalog.set_model_metrics(&report.model, &metrics).await?;
        Ok(())
    }

    /// Whether the served head has moved on since the last fit (or was never fitted in this process).
    pub(crate) async fn calibration_stale(&self) -> bool {
        let current = self.calibration.lock().await.clone();
        let h = self.head.lock().await;
        if h.head.total() == 0 {
            return false;
        }
        match current {
            None => true,
            Some(r) => r.stale(h.backbone(), h.seq, h.head.calibration(), h.head.total()),
        }
    }

    /// Brings the calibration up to date now when it is stale (used on start, so one-shot commands serve it). The
    /// last fit recorded on the served model's registry row is adopted first: when the restored head still carries
    /// it and few labels came since, nothing is refitted on start.
    pub async fn ensure_calibrated(&self) -> Result<()> {
        let served = self.head.lock().await.backbone().to_owned();
        let recorded = self
            .catalog
            .get_model_version(&served)
            .await?
            .and_then(|m| serde_json::from_value::<CalibrationReport>(m.metrics.get("calibration")?.clone()).ok());
        {
            let mut current = self.calibration.lock().await;
            if current.is_none() {
                *current = recorded;
            }
        }
        if self.calibration_stale().await {
            self.recalibrate().await?;
        }
        Ok(())
    }
}

impl App {
    /// Serves the fit recorded on the served model's registry row when another process (a replica sharing the
    /// catalog) fitted it on a newer label position than ours and it still suits this head; so replicas serve the
    /// same numbers and each fit is made once. Returns whether it adopted one.
    async fn adopt_recorded_calibration(&self) -> Result<bool> {
        let mut current = self.calibration.lock().await;
        let served = self.head.lock().await.backbone().to_owned();
        let Some(recorded) = self
            .catalog
            .get_model_version(&served)
            .await?
            .and_then(|m| serde_json::from_value::<CalibrationReport>(m.metrics.get("calibration")?.clone()).ok())
        else {
            return Ok(false);
        };
        if current.as_ref().is_some_and(|c| c.label_seq >= recorded.label_seq || c.fitted_at >= recorded.fitted_at) {
            return Ok(false);
        }
        let calibration = fovea_learn::Calibration {
            temperature: recorded.temperature,
            min_probability: None,
            max_distance: recorded.max_distance,
        };
        let mut h = self.head.lock().await;
        if recorded.stale(h.backbone(), h.seq, &calibration, h.head.total()) {
            return Ok(false);
        }
        h.head.set_calibration(calibration);
        *current = Some(recorded);
        Ok(true)
    }
}

/// Keeps the calibration fresh in the background for as long as the app lives.
pub(crate) fn spawn_refresher(app: &Arc<App>) {
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(POLL).await;
            let Some(app) = weak.upgrade() else { return };
            // A fit another replica recorded comes first; only when none suits this head is one fitted here.
            match app.adopt_recorded_calibration().await {
                Ok(true) => tracing::info!("serving the calibration another process fitted"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not read the recorded calibration"),
            }
            if app.calibration_stale().await {
                if let Err(e) = app.recalibrate().await {
                    tracing::warn!(error = %e, "calibration refit failed; serving the previous one");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fit_goes_stale_with_new_labels_a_new_head_or_another_model() {
        let fit = fit_held_out(&[], TARGET_FALSE_UNKNOWN, MIN_EVIDENCE, Some(FALLBACK_MAX_DISTANCE), PRIOR_TEMPERATURE);
        let report = CalibrationReport::new("m".into(), 100, &fit);
        let cal = fit.calibration;
        assert!(!report.stale("m", 119, &cal, 50));
        assert!(report.stale("m", 120, &cal, 50));
        // A big head waits for a tenth more labels.
        assert!(!report.stale("m", 1099, &cal, 10_000));
        assert!(report.stale("m", 1100, &cal, 10_000));
        assert!(report.stale("other", 100, &cal, 50));
        // A head rebuilt after a rename or merge starts uncalibrated.
        assert!(report.stale("m", 100, &fovea_learn::Calibration::default(), 50));
    }

    #[test]
    fn evidence_is_spread_over_classes_deterministically() {
        let rows: Vec<(String, String)> = (0..30)
            .map(|i| (format!("img{i:02}"), if i < 25 { "big".to_string() } else { "small".to_string() }))
            .collect();
        let picked = spread_over_classes(rows.clone(), 8);
        assert_eq!(picked.len(), 8);
        assert_eq!(picked.iter().filter(|(_, c)| c == "small").count(), 4);
        let mut reversed = rows;
        reversed.reverse();
        assert_eq!(spread_over_classes(reversed, 8), picked);
        assert_eq!(spread_over_classes(vec![("a".into(), "x".into())], 8).len(), 1);
    }
}
