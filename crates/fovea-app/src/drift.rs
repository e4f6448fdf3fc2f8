//! Drift monitoring as served: every classification request is pushed into a sliding window that the
//! `fovea-insight` monitor compares with a reference. The reference is the served model's training images as the
//! model sees them out of sample (exact leave-one-out on the online head, so confidences are those of images it
//! has not learned), or the requests of a chosen period. An alert is stored, counted in Prometheus, shown as a
//! banner and POSTed to the configured webhook; it clears when its signal falls back under the threshold.

use std::collections::BTreeSet;
use std::str::FromStr;

use fovea_insight::{Alert, ImageStats, Monitor, Observation, Reference, Scores, Signal};
use fovea_learn::Head;
use fovea_store::{now_millis, DriftAlertRecord, DriftRow, NewDriftAlert, IDENTIFY_USER};
use serde::Serialize;

use crate::calibration::spread_over_classes;
use crate::usecases::{Ingested, Predicted};
use crate::{App, AppError, Result};

/// What drift compares recent requests with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DriftReference {
    /// The served model's labelled training images.
    #[default]
    Training,
    /// Requests made in `[from, to)` (milliseconds).
    Period { from: i64, to: i64 },
}

impl FromStr for DriftReference {
    type Err = AppError;
    /// `training`, or a period `YYYY-MM-DD..YYYY-MM-DD` (the end day included).
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("training") {
            return Ok(DriftReference::Training);
        }
        let parsed = s.split_once("..").and_then(|(a, b)| {
            Some((
                fovea_insight::time::parse_date(a)?,
                fovea_insight::time::parse_date(b)? + fovea_insight::time::DAY_MS,
            ))
        });
        match parsed {
            Some((from, to)) if from < to => Ok(DriftReference::Period { from, to }),
            _ => Err(AppError::Invalid(format!(
                "drift reference {s:?}: use `training` or a period like 2026-01-01..2026-01-31"
            ))),
        }
    }
}

impl std::fmt::Display for DriftReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use fovea_insight::time::{date_string, day_of};
        match self {
            DriftReference::Training => f.write_str("training images"),
            DriftReference::Period { from, to } => {
                write!(f, "requests {}..{}", date_string(day_of(*from)), date_string(day_of(*to - 1)))
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct DriftState {
    monitor: Option<Monitor>,
    backbone: String,
    /// Labelled images when the reference was built: it is rebuilt once that has doubled.
    labelled_at_build: u64,
    /// Signals with an alert open in the catalog.
    open: BTreeSet<Signal>,
    /// The served calibration the reference was predicted under: a refit changes every served confidence.
    calibration: Option<fovea_learn::Calibration>,
    note: Option<String>,
    /// With a shared catalog: the last logged prediction pushed into the window (see [`App::follow_drift`]).
    cursor: i64,
}

/// A reference computed away from the monitor's lock, ready to be put in place.
struct Prepared {
    reference: Option<Reference>,
    size: usize,
    /// For a period reference: the window is primed with requests after it.
    after: Option<i64>,
    backbone: String,
    calibration: fovea_learn::Calibration,
    labelled: u64,
}

/// Keeps the drift reference current in the background for as long as the app lives.
pub(crate) fn spawn_refresher(app: &std::sync::Arc<App>) {
    let weak = std::sync::Arc::downgrade(app);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(REFRESH_POLL).await;
            let Some(app) = weak.upgrade() else { return };
            if let Err(e) = app.refresh_drift().await {
                tracing::warn!(error = %e, "drift reference refresh failed");
            }
            if app.shares_catalog() {
                if let Err(e) = app.follow_drift().await {
                    tracing::warn!(error = %e, "drift check failed");
                }
            }
        }
    });
}

/// How often the background task checks whether the drift reference is stale.
const REFRESH_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// The drift monitor's state now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DriftStatus {
    pub reference: String,
    pub reference_size: usize,
    /// Requests seen since the reference was built.
    pub seen: u64,
    pub window: usize,
    /// Current value of every signal against its threshold (null until the window is full enough).
    #[schema(value_type = Option<Object>)]
    pub scores: Option<Scores>,
    pub alerts: Vec<DriftAlertRecord>,
    /// Why nothing is judged yet, when that is so.
    pub note: Option<String>,
}

fn observation(row_id: String, at: i64, embedding: Vec<f32>, p: &Predicted, look: Option<ImageStats>) -> Observation {
    let best = p.top.first();
    Observation {
        image_id: row_id,
        at,
        embedding,
        class: best.map(|s| s.class.clone()),
        confidence: best.map_or(0.0, |s| s.probability),
        unknown: p.unknown,
        stats: look,
    }
}

impl App {
    /// Pushes one served request into the drift window (bulk identification is not a request stream).
    pub(crate) async fn observe_drift(&self, ingested: &Ingested, predicted: &Predicted, user: &str) {
        // With a shared catalog every replica's window follows the log instead (see `follow_drift`).
        if user == IDENTIFY_USER || self.shares_catalog() {
            return;
        }
        let obs =
            observation(ingested.id.clone(), now_millis(), ingested.embedding.clone(), predicted, Some(ingested.look));
        if let Err(e) = self.push_drift(obs, &ingested.backbone).await {
            tracing::warn!(error = %e, "drift check failed");
        }
    }

    async fn push_drift(&self, obs: Observation, backbone: &str) -> Result<()> {
        let mut state = self.drift.lock().await;
        if state.backbone != backbone {
            // A promotion landed: the refresher rebuilds the reference for the new backbone.
            return Ok(());
        }
        let Some(monitor) = state.monitor.as_mut() else { return Ok(()) };
        let (raised, cleared) = monitor.push(obs);
        if monitor.just_checked() {
            self.after_check(&mut state, raised, cleared).await?;
        }
        Ok(())
    }

    /// Whether other processes serve from the same catalog (PostgreSQL): then drift is judged on every replica's
    /// requests, read from the log, so all replicas hold the same window and raise the same alerts (once: the
    /// catalog keeps one open alert per signal).
    fn shares_catalog(&self) -> bool {
        self.cfg.catalog.as_deref().is_some_and(|url| url.starts_with("postgres"))
    }

    /// Pushes the predictions every replica logged since the last call into the window, in log order.
    async fn follow_drift(&self) -> Result<()> {
        const PAGE: u32 = 500;
        let mut state = self.drift.lock().await;
        if state.monitor.is_none() {
            return Ok(());
        }
        let backbone = state.backbone.clone();
        loop {
            let rows = self.catalog.predictions_after(state.cursor, PAGE).await?;
            let Some(last) = rows.last().map(|r| r.transaction_id) else { return Ok(()) };
            let full = rows.len() == PAGE as usize;
            let rows = rows.into_iter().filter(|r| r.model_version.split('/').next() == Some(backbone.as_str()));
            for obs in self.observations(rows.collect(), &backbone).await? {
                let Some(monitor) = state.monitor.as_mut() else { return Ok(()) };
                let (raised, cleared) = monitor.push(obs);
                if monitor.just_checked() {
                    self.after_check(&mut state, raised, cleared).await?;
                }
            }
            state.cursor = last;
            if !full {
                return Ok(());
            }
        }
    }

    /// Rebuilds the reference when it is stale. The expensive part (leave-one-out predictions, the kernel matrix
    /// and its null) runs without holding the monitor, so requests never wait for it.
    pub(crate) async fn refresh_drift(&self) -> Result<()> {
        let backbone = self.head.lock().await.backbone().to_owned();
        let stale = {
            let state = self.drift.lock().await;
            self.drift_stale(&state, &backbone).await?
        };
        if !stale {
            return Ok(());
        }
        let prepared = self.prepare_drift().await?;
        let mut state = self.drift.lock().await;
        let (raised, cleared) = self.install_drift(&mut state, prepared).await?;
        self.after_check(&mut state, raised, cleared).await
    }

    /// The reference is rebuilt for a new served model, and once the labelled set has doubled (so a young
    /// system's monitor grows up with it).
    async fn drift_stale(&self, state: &DriftState, backbone: &str) -> Result<bool> {
        if state.monitor.is_none() && state.note.is_none() {
            return Ok(true);
        }
        if state.backbone != backbone {
            return Ok(true);
        }
        let calibration = *self.head.lock().await.head.calibration();
        if state.monitor.is_some() && state.calibration != Some(calibration) {
            return Ok(true);
        }
        if self.cfg.drift_reference != DriftReference::Training {
            return Ok(state.monitor.is_none());
        }
        let labelled = self.labelled_count().await?;
        Ok(labelled >= (2 * state.labelled_at_build).max(self.cfg.drift.min_reference as u64))
    }

    async fn labelled_count(&self) -> Result<u64> {
        let filter = fovea_store::ImageFilter { labelled: Some(true), ..Default::default() };
        Ok(self.catalog.count_images(&filter).await?)
    }

    /// Builds the reference now and primes the window; answers the alerts raised and cleared while priming.
    async fn build_drift(&self, state: &mut DriftState) -> Result<(Vec<Alert>, Vec<Signal>)> {
        let prepared = self.prepare_drift().await?;
        self.install_drift(state, prepared).await
    }

    /// The reference for the served head, computed without touching the monitor.
    async fn prepare_drift(&self) -> Result<Prepared> {
        let cfg = self.cfg.drift.clone();
        let (head, backbone) = {
            let h = self.head.lock().await;
            (h.head.clone(), h.backbone().to_owned())
        };
        let calibration = *head.calibration();
        let labelled = self.labelled_count().await?;
        let (reference_obs, after) = match &self.cfg.drift_reference {
            DriftReference::Training => (self.training_reference(head, &backbone, cfg.max_reference).await?, None),
            DriftReference::Period { from, to } => {
                let rows = self.catalog.recent_predictions(cfg.max_reference as u32, Some((*from, *to))).await?;
                (self.observations(rows, &backbone).await?, Some(*to))
            }
        };
        let size = reference_obs.len();
        let reference = if size < cfg.min_reference {
            None
        } else {
            Some(
                tokio::task::spawn_blocking(move || Reference::build(&reference_obs, &cfg))
                    .await
                    .map_err(|e| AppError::Internal(e.to_string()))?,
            )
        };
        Ok(Prepared { reference, size, after, backbone, calibration, labelled })
    }

    /// Puts a prepared reference in place and primes the window with the most recent requests.
    async fn install_drift(&self, state: &mut DriftState, p: Prepared) -> Result<(Vec<Alert>, Vec<Signal>)> {
        state.calibration = Some(p.calibration);
        state.backbone = p.backbone.clone();
        state.labelled_at_build = p.labelled;
        state.open = self
            .catalog
            .list_drift_alerts(true, 100)
            .await?
            .iter()
            .filter_map(|a| signal_named(&a.alert.signal))
            .collect();
        let Some(reference) = p.reference else {
            state.monitor = None;
            state.note = Some(format!(
                "the reference ({}) has {} images with embeddings; drift is judged from {}",
                self.cfg.drift_reference, p.size, self.cfg.drift.min_reference
            ));
            return Ok((vec![], vec![]));
        };
        let mut monitor = Monitor::new(reference, self.cfg.drift.clone());
        let period = p.after.map(|to| (to, i64::MAX));
        // Enough history for a full window and the checks an alert needs, so a rebuilt monitor (after a refit of
        // the calibration, say) raises what the old one would have, instead of starting its streaks again.
        let d = &self.cfg.drift;
        let prime = d.window + d.step.max(1) * d.persistence.max(1) as usize;
        let recent = self.catalog.recent_predictions(prime as u32, period).await?;
        // Followed from the newest prediction on (a shared catalog's replicas push what comes after it).
        state.cursor = match recent.last() {
            Some(r) => r.transaction_id,
            None => self.catalog.recent_predictions(1, None).await?.last().map_or(0, |r| r.transaction_id),
        };
        let (mut raised, mut cleared) = (Vec::new(), Vec::new());
        for obs in self.observations(recent, &p.backbone).await? {
            let (r, c) = monitor.push(obs);
            raised.retain(|a: &Alert| !c.contains(&a.signal));
            raised.extend(r);
            cleared.extend(c);
        }
        state.monitor = Some(monitor);
        state.note = None;
        tracing::info!(reference = %self.cfg.drift_reference, backbone = p.backbone, "drift reference built");
        Ok((raised, cleared))
    }

    /// Labelled images (spread over classes) with the served head's leave-one-out prediction for each.
    async fn training_reference(
        &self,
        head: fovea_learn::AnyHead,
        backbone: &str,
        max: usize,
    ) -> Result<Vec<Observation>> {
        let mut samples = Vec::new();
        for (id, class) in spread_over_classes(self.labelled_rows().await?, max) {
            let Some(e) = self.catalog.get_embedding(&id, backbone).await? else { continue };
            let look = self.look_of(&id).await?;
            let at = self.catalog.get_image(&id).await?.map_or(0, |i| i.created_at);
            samples.push((id, class, e, look, at));
        }
        let top_k = self.cfg.top_k;
        tokio::task::spawn_blocking(move || -> Result<Vec<Observation>> {
            let mut copy = head;
            let mut out = Vec::with_capacity(samples.len());
            for (id, class, e, look, at) in samples {
                let Some(cid) = copy.class_id(&class) else { continue };
                if copy.count(cid) < 2 {
                    continue;
                }
                copy.unlearn(&e, cid)?;
                let raw = copy.raw_scores(&e);
                copy.learn(&e, cid)?;
                let p = copy.calibration().apply(raw?);
                let top = p
                    .top_k(top_k)
                    .iter()
                    .map(|s| fovea_store::ScoredClass {
                        class: copy.class_name(s.class).unwrap_or("?").to_owned(),
                        probability: s.probability,
                    })
                    .collect();
                let predicted = Predicted { top, unknown: p.unknown, distance: p.distance };
                out.push(observation(id, at, e, &predicted, look));
            }
            Ok(out)
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
    }

    async fn observations(&self, rows: Vec<DriftRow>, backbone: &str) -> Result<Vec<Observation>> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let Some(embedding) = self.catalog.get_embedding(&r.image_id, backbone).await? else { continue };
            let look = self.look_of(&r.image_id).await?;
            out.push(Observation {
                image_id: r.image_id,
                at: r.at,
                embedding,
                class: r.class,
                confidence: r.confidence.unwrap_or(0.0),
                unknown: r.unknown,
                stats: look,
            });
        }
        Ok(out)
    }

    /// An image's statistics, measured from its bytes (and recorded) when the catalog has none yet.
    async fn look_of(&self, id: &str) -> Result<Option<ImageStats>> {
        let Some(look) = self.catalog.image_look(id).await? else { return Ok(None) };
        if let (Some(brightness), Some(grayscale)) = (look.brightness, look.grayscale) {
            return Ok(Some(ImageStats { width: look.width, height: look.height, brightness, grayscale }));
        }
        let bytes = match self.image_bytes(id).await {
            Ok(b) => b,
            Err(_) => return Ok(None),
        };
        let limits = self.cfg.limits;
        let measured = tokio::task::spawn_blocking(move || {
            crate::usecases::decode_for_network(&bytes, &limits, 224).map(|d| d.look).ok()
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
        if let Some(m) = measured {
            self.catalog.set_image_look(id, m.brightness, m.grayscale).await?;
        }
        Ok(measured)
    }

    async fn after_check(&self, state: &mut DriftState, raised: Vec<Alert>, cleared: Vec<Signal>) -> Result<()> {
        let Some(monitor) = state.monitor.as_ref() else { return Ok(()) };
        if let Some(scores) = monitor.last_scores() {
            for s in &scores.signals {
                let signal = s.signal.as_str();
                metrics::gauge!(crate::DRIFT_STATISTIC, "signal" => signal).set(s.statistic);
                metrics::gauge!(crate::DRIFT_THRESHOLD, "signal" => signal).set(s.threshold);
            }
            // Alerts left open by an earlier process clear here once their signal is back under the threshold.
            for s in &scores.signals {
                if !s.exceeded && state.open.contains(&s.signal) && !cleared.contains(&s.signal) {
                    self.catalog.clear_drift_alerts(s.signal.as_str()).await?;
                    state.open.remove(&s.signal);
                }
            }
        }
        for signal in cleared {
            self.catalog.clear_drift_alerts(signal.as_str()).await?;
            state.open.remove(&signal);
            metrics::gauge!(crate::DRIFT_ACTIVE, "signal" => signal.as_str()).set(0.0);
        }
        let version = self.model_version().await;
        for alert in raised {
            if !state.open.insert(alert.signal) {
                continue;
            }
            let raised = self
                .catalog
                .raise_drift_alert(NewDriftAlert {
                    signal: alert.signal.as_str().into(),
                    statistic: alert.score.statistic,
                    threshold: alert.score.threshold,
                    reference: alert.score.reference,
                    current: alert.score.current,
                    detail: alert.score.detail.clone(),
                    since: alert.since,
                    examples: alert.examples.clone(),
                    model_version: version.clone(),
                })
                .await?;
            // Already open: another replica sharing the catalog raised it (and announced it).
            let Some(record) = raised else { continue };
            metrics::counter!(crate::DRIFT_ALERTS, "signal" => alert.signal.as_str()).increment(1);
            metrics::gauge!(crate::DRIFT_ACTIVE, "signal" => alert.signal.as_str()).set(1.0);
            tracing::warn!(signal = alert.signal.as_str(), detail = %record.alert.detail, "drift alert");
            if let Some(url) = self.cfg.drift_webhook.clone() {
                tokio::spawn(crate::webhook::post_alert(url, record));
            }
        }
        Ok(())
    }

    /// The monitor's state now; builds the reference first when there is none yet.
    pub async fn drift_status(&self) -> Result<DriftStatus> {
        let mut state = self.drift.lock().await;
        let backbone = self.head.lock().await.backbone().to_owned();
        if state.monitor.is_none() && self.drift_stale(&state, &backbone).await? {
            let (raised, cleared) = self.build_drift(&mut state).await?;
            self.after_check(&mut state, raised, cleared).await?;
        }
        let alerts = self.catalog.list_drift_alerts(true, 50).await?;
        let reference = self.cfg.drift_reference.to_string();
        Ok(match state.monitor.as_ref() {
            None => DriftStatus {
                reference,
                reference_size: 0,
                seen: 0,
                window: 0,
                scores: None,
                alerts,
                note: state.note.clone(),
            },
            Some(m) => {
                let scores = m.score();
                let enough = scores.window >= self.cfg.drift.min_window.clamp(1, self.cfg.drift.window.max(1));
                DriftStatus {
                    reference,
                    reference_size: m.reference().size,
                    seen: m.seen(),
                    window: scores.window,
                    note: (!enough).then(|| {
                        format!("{} of {} requests in the window so far", scores.window, self.cfg.drift.window)
                    }),
                    scores: enough.then_some(scores),
                    alerts,
                }
            }
        })
    }

    /// Rebuilds the reference now (after a relabelling campaign, or to start a fresh window).
    pub async fn rebuild_drift_reference(&self) -> Result<DriftStatus> {
        {
            let mut state = self.drift.lock().await;
            let (raised, cleared) = self.build_drift(&mut state).await?;
            self.after_check(&mut state, raised, cleared).await?;
        }
        self.drift_status().await
    }

    /// Empties the window, keeping the reference: the next requests are judged as a new stream.
    pub async fn restart_drift_window(&self) -> Result<()> {
        let mut state = self.drift.lock().await;
        if let Some(m) = state.monitor.take() {
            let reference = m.reference().clone();
            state.monitor = Some(Monitor::new(reference, self.cfg.drift.clone()));
        }
        for signal in std::mem::take(&mut state.open) {
            self.catalog.clear_drift_alerts(signal.as_str()).await?;
        }
        Ok(())
    }

    /// Open alerts raised since the monitor last started, newest first.
    pub async fn drift_alerts(&self, open_only: bool, limit: u32) -> Result<Vec<DriftAlertRecord>> {
        Ok(self.catalog.list_drift_alerts(open_only, limit.min(500)).await?)
    }
}

fn signal_named(name: &str) -> Option<Signal> {
    Signal::ALL.into_iter().find(|s| s.as_str() == name)
}
