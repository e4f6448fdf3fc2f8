//! Training as a persisted background job: queued → running (with progress) → succeeded / failed / cancelled.
//! A worker holds a lease it renews with every heartbeat; if the worker dies, the lease runs out and the job can
//! be claimed again. Nothing is promoted before a run has finished, so a killed run never touches serving.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fovea_store::{JobOutcome, JobRecord};

use crate::training::{TrainParams, TrainProgress, TrainReport};
use crate::{App, AppError, Result};

pub const TRAIN_JOB: &str = "train";

/// How long a claimed job stays ours without a heartbeat (`FOVEA_JOB_LEASE_SECS` shortens it for tests).
pub(crate) fn lease() -> Duration {
    let secs = std::env::var("FOVEA_JOB_LEASE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30u64);
    Duration::from_secs(secs.max(1))
}

impl App {
    pub async fn enqueue_training(&self, params: &TrainParams) -> Result<JobRecord> {
        self.run_settings(params)?;
        let value = serde_json::to_value(params).map_err(|e| AppError::Internal(e.to_string()))?;
        Ok(self.catalog.enqueue_job(TRAIN_JOB, &value).await?)
    }

    pub async fn jobs(&self, limit: u32) -> Result<Vec<JobRecord>> {
        Ok(self.catalog.list_jobs(limit, 0).await?)
    }

    pub async fn job(&self, id: i64) -> Result<JobRecord> {
        self.catalog.get_job(id).await?.ok_or_else(|| AppError::NotFound { what: "job", id: id.to_string() })
    }

    pub async fn cancel_job(&self, id: i64) -> Result<bool> {
        self.job(id).await?;
        Ok(self.catalog.cancel_job(id).await?)
    }

    /// Claims the oldest runnable training job (queued, or running with an expired lease) and runs it to the end.
    /// `watch` sees every progress update. Returns None when there was nothing to run.
    pub async fn run_next_job(
        self: &Arc<Self>,
        watch: impl Fn(&TrainProgress) + Send + Sync + 'static,
    ) -> Result<Option<(JobRecord, Result<TrainReport>)>> {
        let lease = lease();
        let Some(job) = self.catalog.claim_job(&[TRAIN_JOB], lease).await? else { return Ok(None) };
        let params: TrainParams = match serde_json::from_value(job.params.clone()) {
            Ok(p) => p,
            Err(e) => {
                let msg = format!("bad job parameters: {e}");
                self.catalog.finish_job(job.id, job.attempt, JobOutcome::Failed, Some(&msg)).await?;
                return Ok(Some((job, Err(AppError::Invalid(msg)))));
            }
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::watch::channel(TrainProgress::default());
        let beat = self.spawn_heartbeat(&job, lease, rx, |p| p.fraction, cancel.clone());
        let outcome = self
            .train(
                &params,
                move |p| {
                    watch(&p);
                    let _ = tx.send(p);
                },
                cancel.clone(),
            )
            .await;
        beat.abort();
        let (state, msg) = match &outcome {
            Ok(r) => (
                JobOutcome::Succeeded,
                serde_json::json!({"model": r.model_id, "promoted": r.promoted,
                "verdict": r.verdict, "candidate_test_accuracy": r.candidate_test_accuracy,
                "serving_test_accuracy": r.serving_test_accuracy})
                .to_string(),
            ),
            Err(e) => (JobOutcome::Failed, serde_json::json!({"error": e.to_string()}).to_string()),
        };
        self.catalog.finish_job(job.id, job.attempt, state, Some(&msg)).await?;
        let job = self.job(job.id).await?;
        Ok(Some((job, outcome)))
    }

    /// A claimed job's heartbeats: each carries the latest progress (as JSON, and as `fraction`), renews the lease
    /// and sets `cancel` once the job is no longer ours (cancelled, or its lease taken over). Abort it when done.
    pub(crate) fn spawn_heartbeat<P>(
        self: &Arc<Self>,
        job: &JobRecord,
        lease: Duration,
        mut rx: tokio::sync::watch::Receiver<P>,
        fraction: fn(&P) -> f64,
        cancel: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()>
    where
        P: serde::Serialize + Clone + Send + Sync + 'static,
    {
        let (app, id, attempt) = (self.clone(), job.id, job.attempt);
        tokio::spawn(async move {
            loop {
                let p = rx.borrow_and_update().clone();
                let msg = serde_json::to_string(&p).unwrap_or_default();
                match app.catalog.heartbeat_job(id, attempt, fraction(&p), Some(&msg), lease).await {
                    Ok(true) => {}
                    Ok(false) => cancel.store(true, Ordering::Relaxed),
                    Err(e) => tracing::warn!(job = id, error = %e, "job heartbeat failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(lease / 3) => {}
                    changed = rx.changed() => if changed.is_err() { return },
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }

    /// The background worker (of `fovea serve` and `fovea worker`): runs queued training jobs one at a time and
    /// identify and import jobs beside them, and enqueues a run when the schedule says one is due. (Promotions made elsewhere
    /// are followed by every process, see `follow`.)
    pub fn spawn_worker(self: &Arc<Self>, schedule: Option<Duration>) -> tokio::task::JoinHandle<()> {
        // Bulk identification runs beside training, so a long fine-tune never holds a collection back.
        let identify = self.clone();
        tokio::spawn(async move {
            loop {
                match identify.run_next_identify_job().await {
                    Ok(Some((job, Err(e)))) => tracing::warn!(job = job.id, error = %e, "identify job failed"),
                    Ok(Some((job, Ok(c)))) => tracing::info!(job = job.id, collection = c.id, "identify job done"),
                    Ok(None) => match identify.run_next_import_job().await {
                        Ok(Some((job, Err(e)))) => tracing::warn!(job = job.id, error = %e, "import job failed"),
                        Ok(Some((job, Ok(r)))) => {
                            tracing::info!(job = job.id, imported = r.imported, "import job done")
                        }
                        Ok(None) => tokio::time::sleep(Duration::from_secs(1)).await,
                        Err(e) => {
                            tracing::warn!(error = %e, "import worker");
                            tokio::time::sleep(Duration::from_secs(5)).await;
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "identify worker");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            }
        });
        let app = self.clone();
        tokio::spawn(async move {
            loop {
                if let Some(every) = schedule {
                    if let Err(e) = app.enqueue_if_due(every).await {
                        tracing::warn!(error = %e, "scheduled training");
                    }
                }
                match app.run_next_job(|_| {}).await {
                    Ok(Some((job, Err(e)))) => tracing::warn!(job = job.id, error = %e, "training job failed"),
                    Ok(Some((job, Ok(r)))) => {
                        tracing::info!(job = job.id, model = r.model_id, promoted = r.promoted, "training job done")
                    }
                    Ok(None) => tokio::time::sleep(Duration::from_secs(2)).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "job worker");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            }
        })
    }

    async fn enqueue_if_due(&self, every: Duration) -> Result<()> {
        let since = fovea_store::now_millis() - i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
        let value = serde_json::to_value(TrainParams::default()).map_err(|e| AppError::Internal(e.to_string()))?;
        // Atomic in the catalog: of several replicas with the same schedule, exactly one enqueues the run.
        if let Some(job) = self.catalog.enqueue_job_unless_since(TRAIN_JOB, &value, since).await? {
            tracing::info!(job = job.id, "scheduled fine-tune queued");
        }
        Ok(())
    }
}

/// Parses a schedule: `off`, `hourly`, `daily`, `weekly`, or a number of hours like `12h`.
pub fn parse_schedule(s: &str) -> Result<Option<Duration>> {
    let hours = match s.trim().to_lowercase().as_str() {
        "" | "off" | "never" => return Ok(None),
        "hourly" => 1,
        "daily" => 24,
        "weekly" => 24 * 7,
        other => {
            other.strip_suffix('h').and_then(|n| n.parse::<u64>().ok()).filter(|n| *n > 0).ok_or_else(|| {
                AppError::Invalid(format!("schedule {s:?}: use off, hourly, daily, weekly or e.g. 12h"))
            })?
        }
    };
    Ok(Some(Duration::from_secs(hours * 3600)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn schedules_parse() {
        use super::parse_schedule;
        assert_eq!(parse_schedule("weekly").unwrap().unwrap().as_secs(), 7 * 24 * 3600);
        assert_eq!(parse_schedule("12h").unwrap().unwrap().as_secs(), 12 * 3600);
        assert!(parse_schedule("off").unwrap().is_none());
        assert!(parse_schedule("0h").is_err());
        assert!(parse_schedule("fortnightly").is_err());
    }
}
