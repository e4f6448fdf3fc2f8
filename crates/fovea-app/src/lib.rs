//! The use cases of fovea in one place: classify, correct, browse, import, users. HTTP and CLI are thin shells
//! over [`App`]; the app owns the served backbone (on its compute thread) and the online head.

mod browse;
mod calibration;
mod collections;
mod compute;
mod drift;
mod duplicates;
mod error;
mod export;
mod follow;
mod head;
#[cfg(test)]
mod hygiene_tests;
mod identify;
mod imports;
mod insight;
mod jobs;
mod label_errors;
mod leakage;
mod models;
mod review;
mod scorer;
mod served_estimate;
mod stages;
#[cfg(test)]
mod tests;
mod thumbs;
mod training;
mod unknown;
mod usecases;
mod webhook;

use std::path::PathBuf;
use std::sync::Arc;

pub use browse::{BulkKind, BulkRequest, CoverageView, ItemRef, MAX_BULK, STAGED_TAGS};
pub use calibration::{
    CalibrationReport, LiveReliability, ReliabilityBinView, FALLBACK_MAX_DISTANCE, TARGET_FALSE_UNKNOWN,
};
pub use collections::{walk_files, CollectionProgress, IDENTIFY_JOB, UPLOAD_SOURCE};
pub use compute::Compute;
pub use drift::{DriftReference, DriftStatus};
pub use duplicates::{
    group_key, DuplicateGroupView, DuplicateMember, DuplicateReport, Resolution, ResolveOutcome, ResolveRequest,
    MAX_GROUP,
};
pub use error::{AppError, Result};
pub use export::{csv_field, read_folder_tags, DatasetFormat, ModelFormat, TAGS_FILE};
pub use fovea_insight::{DriftConfig, EvaluationEstimate, Report};
pub use fovea_store::{normalise_tag, now_millis, sha256_hex, ClassId, LabelOrigin, MergeRecord, RenameRecord};
pub use fovea_store::{
    BulkActionRecord, CollectionItem, CollectionRecord, ConfusedPair, ItemFilter as ResultFilter, ItemSort, UndoOutcome,
};
pub use fovea_store::{Catalog, JobRecord, JobState, ModelKind, ModelStatus, ModelVersionRecord};
pub use fovea_store::{DriftAlertRecord, EvaluationItem, EvaluationRound, Verdict};
pub use fovea_store::{
    ImageFilter, ImageRow, ImageSort, Role, ScoredClass, TransactionFilter, TransactionKind, TransactionRecord,
    UserRecord,
};
pub use fovea_vision::VisionError;
pub use identify::Identified;
pub use imports::{flat_folder, image_folder, ImportProgress, ImportRequest, IMPORT_JOB};
pub use insight::{EvaluationView, MAX_EVALUATION};
pub use jobs::{parse_schedule, TRAIN_JOB};
pub use label_errors::{LabelErrorReport, SuspectLabel, SuspectLabelConfirmed, MAX_LABEL_ERRORS_PAGE};
pub use leakage::{LeakGroup, LeakMember, LeakageReport};
pub use review::{ReviewItem, ReviewQueue, MAX_REVIEW};
pub use served_estimate::{AsServed, ServedEstimate};
pub use stages::{read_server_timing, StageTimes};
pub use thumbs::{ImageDetail, THUMB_SIZES};
pub use training::{TrainParams, TrainProgress, TrainReport};
pub use unknown::{UnknownMatch, UnknownReview, MAX_UNKNOWN_MATCHES};
pub use usecases::{ClassView, ClassifyOutcome, ImportReport, LabelOutcome};

pub use fovea_model::Engine;
use fovea_model::{Backbone, Variant};
use fovea_store::{Blobs, LocalBlobs, SqliteCatalog};
use tokio::sync::Mutex;

use head::HeadState;

/// Prometheus names of the drift signals (the server installs the recorder).
pub const DRIFT_STATISTIC: &str = "fovea_drift_statistic";
pub const DRIFT_THRESHOLD: &str = "fovea_drift_threshold";
pub const DRIFT_ACTIVE: &str = "fovea_drift_alert_active";
pub const DRIFT_ALERTS: &str = "fovea_drift_alerts_total";
pub const DRIFT_WEBHOOK_FAILURES: &str = "fovea_drift_webhook_failures_total";

/// The catalog alone, for commands that only read or write records — listing users, jobs or models — and so need
/// no network loaded: `url` (PostgreSQL or a SQLite file) when given, else SQLite under `data_dir`.
pub async fn open_catalog(data_dir: &std::path::Path, url: Option<&str>) -> Result<Arc<dyn Catalog>> {
    std::fs::create_dir_all(data_dir).map_err(|e| AppError::Internal(format!("{}: {e}", data_dir.display())))?;
    if let Some(url) = url {
        return Ok(fovea_store::open_catalog(url).await?);
    }
    let path = data_dir.join("fovea.db");
    Ok(Arc::new(SqliteCatalog::open(path.to_str().unwrap_or("fovea.db")).await?))
}

/// The image store: `url` (`s3://bucket/prefix` or a folder) when given, else `blobs/` under `data_dir`.
pub fn open_blobs(data_dir: &std::path::Path, url: Option<&str>) -> Result<Arc<dyn Blobs>> {
    Ok(match url {
        Some(url) => fovea_store::open_blobs(url)?,
        None => Arc::new(LocalBlobs::new(data_dir.join("blobs"))?),
    })
}

/// Everything the app needs to start, passed whole.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The catalog and image blobs live here unless `catalog` / `blobs` name other places; model weights are
    /// cached here in every case.
    pub data_dir: PathBuf,
    /// The catalog's URL: `postgres://…` when several servers and workers share it, or a SQLite file.
    pub catalog: Option<String>,
    /// The image store's URL: `s3://bucket/prefix` or a folder.
    pub blobs: Option<String>,
    pub variant: Variant,
    /// Online head: slda | ncm | ncm-cosine.
    pub head: String,
    /// Classes shown per prediction.
    pub top_k: usize,
    /// Images a class needs before batch fine-tuning takes it.
    pub cutoff: u64,
    pub limits: fovea_vision::DecodeLimits,
    /// Requests that may wait for the network before new ones get "busy" (429).
    pub max_waiting: usize,
    /// Save a head snapshot after this many label changes, so restarts replay little.
    pub snapshot_every: u64,
    /// The base model's safetensors file, needed to go back to it after a fine-tune was promoted.
    pub base_weights: Option<PathBuf>,
    /// Decoded training photos kept in memory during a fine-tune run, in MiB; beyond it photos are decoded again
    /// from their blobs when needed, so a run's memory does not grow with the number of labelled images.
    pub train_keep_mib: usize,
    /// Builds every backbone the app serves or evaluates (the base is passed in built; fine-tunes are built here).
    pub engine: Engine,
    /// Drift windows and thresholds.
    pub drift: DriftConfig,
    pub drift_reference: DriftReference,
    /// Drift alerts are POSTed here as JSON.
    pub drift_webhook: Option<String>,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            data_dir: PathBuf::from("fovea-data"),
            catalog: None,
            blobs: None,
            variant: Variant::Lite0,
            head: "slda".into(),
            top_k: 5,
            cutoff: 40,
            limits: Default::default(),
            max_waiting: 64,
            snapshot_every: 25,
            base_weights: None,
            train_keep_mib: 256,
            engine: Engine::default(),
            drift: DriftConfig::default(),
            drift_reference: DriftReference::Training,
            drift_webhook: None,
        }
    }
}

pub struct App {
    catalog: Arc<dyn Catalog>,
    blobs: Arc<dyn Blobs>,
    compute: Compute,
    head: Mutex<HeadState>,
    /// The served head's calibration report; held while a refit runs so only one runs at a time.
    calibration: Mutex<Option<CalibrationReport>>,
    live_evidence: std::sync::Mutex<calibration::LiveEvidence>,
    /// The last label-error search, served while the label log moves on a little; held while a search runs.
    label_error_search: Mutex<Option<label_errors::LabelErrorSearch>>,
    /// Serialises model switches (promotion, rollback, sync), which take seconds.
    switching: Mutex<()>,
    /// Decoding and preprocessing run on half the cores, but at least two: the network's threads synchronise per
    /// layer, and a decode preempting one of them stalls all of them, so unbounded decoding makes bulk work slower;
    /// yet on two cores a single decoder leaves a core idle whenever the network waits for input (bulk identify on
    /// 2 cores: 0.97-1.03x the raw pipeline with one decoder, 1.03-1.06x with two).
    decode_permits: tokio::sync::Semaphore,
    /// Uploads being received or processed. A full set answers "busy" before a body is read, so waiting uploads
    /// hold at most `max_waiting` bodies, not one per connection.
    upload_permits: Arc<tokio::sync::Semaphore>,
    /// Hands out upload collections' sequence numbers one at a time.
    upload_seq: Mutex<()>,
    drift: Mutex<drift::DriftState>,
    cfg: AppConfig,
}

/// Held while an admitted upload is read and processed.
pub type UploadPermit = tokio::sync::OwnedSemaphorePermit;

impl App {
    /// Opens the catalog and blob store `cfg` names (by default SQLite and local blobs under `cfg.data_dir`).
    pub async fn open(cfg: AppConfig, backbone: Box<dyn Backbone>) -> Result<Arc<App>> {
        let catalog = open_catalog(&cfg.data_dir, cfg.catalog.as_deref()).await?;
        let blobs = open_blobs(&cfg.data_dir, cfg.blobs.as_deref())?;
        Self::with_parts(cfg, backbone, catalog, blobs).await
    }

    /// Builds the app over any catalog and blob store (the seam for PostgreSQL and S3).
    pub async fn with_parts(
        cfg: AppConfig,
        backbone: Box<dyn Backbone>,
        catalog: Arc<dyn Catalog>,
        blobs: Arc<dyn Blobs>,
    ) -> Result<Arc<App>> {
        // Serve whatever the registry says is promoted; `backbone` is the base model, used when that is the base.
        let base = cfg.variant.name();
        let (backbone, name): (Box<dyn Backbone>, String) = match catalog.promoted_model_version().await? {
            Some(p) if p.id != base => {
                let path = models::fetch_model_file(blobs.as_ref(), &cfg.data_dir, &p.id).await?;
                let weights = fovea_model::Weights::load_safetensors(&path)?;
                (cfg.engine.build(&weights, cfg.variant, 0)?, p.id)
            }
            _ => (backbone, base),
        };
        let compute = Compute::start(backbone, name.clone(), cfg.max_waiting);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let decode_permits = tokio::sync::Semaphore::new((cores / 2).max(2));
        let head = HeadState::restore(catalog.as_ref(), &cfg.head, compute.embedding_dim(), &name).await?;
        let app = Arc::new(App {
            catalog,
            blobs,
            compute,
            head: Mutex::new(head),
            calibration: Mutex::new(None),
            live_evidence: Default::default(),
            label_error_search: Mutex::new(None),
            switching: Mutex::new(()),
            decode_permits,
            upload_permits: Arc::new(tokio::sync::Semaphore::new(cfg.max_waiting.max(1))),
            upload_seq: Mutex::new(()),
            drift: Default::default(),
            cfg,
        });
        app.ensure_base_registered().await?;
        // One-shot commands (identify, predict-style CLI use) must serve calibrated numbers from the start.
        if let Err(e) = app.ensure_calibrated().await {
            tracing::warn!(error = %e, "could not calibrate the online head at start");
        }
        calibration::spawn_refresher(&app);
        drift::spawn_refresher(&app);
        follow::spawn(&app);
        Ok(app)
    }

    pub fn config(&self) -> &AppConfig {
        &self.cfg
    }

    pub fn catalog(&self) -> &dyn Catalog {
        self.catalog.as_ref()
    }

    /// Admits one upload, or answers `Overloaded` at once when `max_waiting` are already in: call it before reading
    /// the body, and keep the permit until the request is answered.
    pub fn admit_upload(&self) -> Result<UploadPermit> {
        self.upload_permits.clone().try_acquire_owned().map_err(|_| AppError::Overloaded)
    }

    /// False while the compute worker is down (its network panicked and has not run successfully since).
    pub fn compute_healthy(&self) -> bool {
        self.compute.healthy()
    }

    /// The engine serving now (`fast`, `burn`, `ort`): the one `AppConfig::engine` chose, after any promotion.
    pub fn engine(&self) -> &'static str {
        self.compute.engine()
    }

    /// Saves the head now (also done every `snapshot_every` label changes); call before a clean shutdown.
    pub async fn snapshot(&self) -> Result<()> {
        let mut h = self.head.lock().await;
        // Nothing folded since the last save: the saved snapshot plus the log already give this head.
        if h.since_snapshot == 0 {
            return Ok(());
        }
        h.save(self.catalog.as_ref()).await
    }
}
