//! The use cases of fovea in one place: classify, correct, browse, import, users. HTTP and CLI are thin shells
//! over [`App`]; the app owns the served backbone (on its compute thread) and the online head.

mod compute;
mod error;
mod export;
mod head;
mod identify;
mod jobs;
mod models;
mod review;
mod training;
mod usecases;

use std::path::PathBuf;
use std::sync::Arc;

pub use compute::Compute;
pub use error::{AppError, Result};
pub use export::{csv_field, DatasetFormat, ModelFormat};
pub use fovea_store::{ClassId, LabelOrigin};
pub use fovea_store::{ImageFilter, ImageRow, Role, ScoredClass, TransactionRecord, UserRecord};
pub use fovea_store::{JobRecord, JobState, ModelKind, ModelStatus, ModelVersionRecord};
pub use fovea_vision::VisionError;
pub use identify::Identified;
pub use jobs::{parse_schedule, TRAIN_JOB};
pub use review::{ReviewItem, ReviewQueue, MAX_REVIEW};
pub use training::{TrainParams, TrainProgress, TrainReport};
pub use usecases::{ClassView, ClassifyOutcome, ImportReport, LabelOutcome};

use fovea_model::{Backbone, Variant};
use fovea_store::{Blobs, Catalog, LocalBlobs, SqliteCatalog};
use tokio::sync::Mutex;

use head::HeadState;

/// Everything the app needs to start, passed whole.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// SQLite catalog and image blobs live here.
    pub data_dir: PathBuf,
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
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            data_dir: PathBuf::from("fovea-data"),
            variant: Variant::Lite0,
            head: "slda".into(),
            top_k: 5,
            cutoff: 40,
            limits: Default::default(),
            max_waiting: 64,
            snapshot_every: 25,
            base_weights: None,
        }
    }
}

pub struct App {
    catalog: Arc<dyn Catalog>,
    blobs: Arc<dyn Blobs>,
    compute: Compute,
    head: Mutex<HeadState>,
    /// Serialises model switches (promotion, rollback, sync), which take seconds.
    switching: Mutex<()>,
    /// Decoding and preprocessing run on at most half the cores: the network's threads synchronise per layer,
    /// and a decode preempting one of them stalls all of them, so unbounded decoding makes bulk work slower.
    decode_permits: tokio::sync::Semaphore,
    cfg: AppConfig,
}

impl App {
    /// Opens the embedded default: SQLite catalog + local blobs under `cfg.data_dir`.
    pub async fn open(cfg: AppConfig, backbone: Box<dyn Backbone>) -> Result<Arc<App>> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| AppError::Internal(format!("{}: {e}", cfg.data_dir.display())))?;
        let catalog: Arc<dyn Catalog> =
            Arc::new(SqliteCatalog::open(cfg.data_dir.join("fovea.db").to_str().unwrap_or("fovea.db")).await?);
        let blobs: Arc<dyn Blobs> = Arc::new(LocalBlobs::new(cfg.data_dir.join("blobs"))?);
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
                let weights = fovea_model::Weights::load_safetensors(&models::model_file(&cfg.data_dir, &p.id))?;
                (Box::new(fovea_model::FastBackbone::new(&weights, cfg.variant, 0)?), p.id)
            }
            _ => (backbone, base),
        };
        let compute = Compute::start(backbone, name.clone(), cfg.max_waiting);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let decode_permits = tokio::sync::Semaphore::new((cores / 2).max(1));
        let head = HeadState::restore(catalog.as_ref(), &cfg.head, compute.embedding_dim(), &name).await?;
        let app = Arc::new(App {
            catalog,
            blobs,
            compute,
            head: Mutex::new(head),
            switching: Mutex::new(()),
            decode_permits,
            cfg,
        });
        app.ensure_base_registered().await?;
        Ok(app)
    }

    pub fn config(&self) -> &AppConfig {
        &self.cfg
    }

    pub fn catalog(&self) -> &dyn Catalog {
        self.catalog.as_ref()
    }

    /// Saves the head now (also done every `snapshot_every` label changes); call before a clean shutdown.
    pub async fn snapshot(&self) -> Result<()> {
        let mut h = self.head.lock().await;
        h.save(self.catalog.as_ref()).await
    }
}
