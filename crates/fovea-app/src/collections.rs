//! Collections: a folder (or a batch of uploads) bulk-identified as a persisted, resumable job.
//!
//! The folder is walked in sorted order, lazily, and results are written in walk order in batches. Because each
//! batch is one commit and results leave in order, the rows written are always a prefix of the walk: a run killed
//! at any point resumes by skipping that many files, and the catalog's UNIQUE (collection, path) makes a file
//! counted twice impossible even if the folder changed in between. Memory stays flat whatever the folder's size:
//! the walk is never collected, at most a window of files is in flight, and a batch is bounded.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fovea_store::{CollectionRecord, ItemPrediction, JobOutcome, JobRecord, NewCollection, NewCollectionItem};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::{App, AppError, Result};

pub const IDENTIFY_JOB: &str = "identify";
/// Results written per commit: large enough that fsyncs cost little, small enough that a kill redoes little.
const WRITE_BATCH: usize = 64;

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct CollectionProgress {
    pub collection: i64,
    /// Files with a result, including those of earlier (killed) runs.
    pub processed: u64,
    pub failed: u64,
    /// Known once the walk has ended.
    pub total: Option<u64>,
}

/// The files under `dir`, recursively, in sorted order, found lazily: a folder's listing is read when the walk
/// reaches it, so a collection of any size is never listed into memory at once.
pub fn walk_files(dir: &Path) -> impl Iterator<Item = std::result::Result<PathBuf, String>> {
    walkdir::WalkDir::new(dir).sort_by_file_name().into_iter().filter_map(|e| match e {
        Ok(e) if e.file_type().is_file() => Some(Ok(e.into_path())),
        Ok(_) => None,
        Err(e) => Some(Err(e.to_string())),
    })
}

/// One walked file's result on its way to the catalog.
pub(crate) type Produced = (u64, String, std::result::Result<ItemPrediction, String>);

impl App {
    /// Registers a folder as a collection to identify with `model` (a registry version; `None`: the served one).
    pub async fn create_collection(
        &self,
        name: Option<&str>,
        folder: &Path,
        model: Option<&str>,
        user: &str,
    ) -> Result<CollectionRecord> {
        let folder =
            folder.canonicalize().map_err(|e| AppError::Invalid(format!("folder {}: {e}", folder.display())))?;
        if !folder.is_dir() {
            return Err(AppError::Invalid(format!("{} is not a folder", folder.display())));
        }
        if let Some(id) = model {
            self.model_for_identify(id).await?;
        }
        let default_name = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let name = name.map(str::to_owned).unwrap_or(default_name);
        let source = folder.to_string_lossy().into_owned();
        Ok(self
            .catalog
            .create_collection(NewCollection { name, source, model: model.map(str::to_owned), created_by: user.into() })
            .await?)
    }

    /// A registry version bulk identification may use: any registered model, throw-away runs included, but not
    /// one whose training has not finished.
    async fn model_for_identify(&self, id: &str) -> Result<()> {
        let record = self.model(id).await?;
        if record.status == fovea_store::ModelStatus::Training {
            return Err(AppError::Conflict(format!("{id} is still being trained")));
        }
        Ok(())
    }

    /// The newest collection of `folder` with `model` whose walk never ended (a run was killed): resume it.
    pub async fn unfinished_collection(&self, folder: &Path, model: Option<&str>) -> Result<Option<CollectionRecord>> {
        let Ok(folder) = folder.canonicalize() else { return Ok(None) };
        let source = folder.to_string_lossy();
        Ok(self
            .catalog
            .list_collections()
            .await?
            .into_iter()
            .find(|c| c.source == source && c.total.is_none() && c.model.as_deref() == model))
    }

    pub async fn collections(&self) -> Result<Vec<CollectionRecord>> {
        Ok(self.catalog.list_collections().await?)
    }

    pub async fn collection(&self, id: i64) -> Result<CollectionRecord> {
        self.catalog
            .get_collection(id)
            .await?
            .ok_or_else(|| AppError::NotFound { what: "collection", id: id.to_string() })
    }

    /// Queues identification of a folder collection for the workers, in chunks of [`identify_chunk`] files, so
    /// several workers (`fovea serve` or `fovea worker` processes) share it; returns the first chunk's job. The
    /// folder is counted now, and its total recorded once every chunk has finished.
    pub async fn enqueue_identify(&self, collection: i64) -> Result<JobRecord> {
        let c = self.collection(collection).await?;
        if c.source == UPLOAD_SOURCE {
            return Err(AppError::Invalid("an upload collection grows by uploads; there is no folder to walk".into()));
        }
        let folder = PathBuf::from(&c.source);
        // Names only: counting costs little next to identifying, even for a large folder.
        let files = tokio::task::spawn_blocking(move || walk_files(&folder).count() as u64)
            .await
            .map_err(|e| AppError::Internal(format!("counting the folder: {e}")))?;
        let chunk = identify_chunk();
        let mut first = None;
        for start in (0..files.max(1)).step_by(usize::try_from(chunk).unwrap_or(usize::MAX)) {
            let range = ChunkRange { collection, start, end: (start + chunk).min(files), files };
            let params = serde_json::to_value(range).map_err(|e| AppError::Internal(e.to_string()))?;
            let job = self.catalog.enqueue_job(IDENTIFY_JOB, &params).await?;
            first.get_or_insert(job);
        }
        let first = first.ok_or_else(|| AppError::Internal("no identify chunk was queued".into()))?;
        self.catalog.set_collection_job(collection, first.id).await?;
        Ok(first)
    }

    /// Identifies (or resumes) a folder collection to the end; `progress` sees every committed batch. Setting
    /// `cancel` stops after the current batch, leaving the collection resumable.
    pub async fn run_collection(
        self: &Arc<Self>,
        id: i64,
        progress: impl FnMut(&CollectionProgress) + Send,
        cancel: Arc<AtomicBool>,
    ) -> Result<CollectionRecord> {
        let c = self.collection(id).await?;
        let skip = c.processed;
        let seen = self.identify_walk(&c, (skip, None), None, progress, cancel.clone()).await?;
        if !cancel.load(Ordering::Relaxed) {
            self.catalog.set_collection_total(id, seen).await?;
        }
        self.snapshot().await?;
        self.collection(id).await
    }

    /// Identifies (or resumes) one chunk of a queued collection. Its results are written in walk order, so those
    /// already in the catalog are a prefix of the chunk: a chunk redone after its worker died starts after them,
    /// and the catalog's unique (collection, path) keeps any file from being counted twice.
    async fn run_chunk(
        self: &Arc<Self>,
        range: ChunkRange,
        progress: impl FnMut(&CollectionProgress) + Send,
        cancel: Arc<AtomicBool>,
    ) -> Result<CollectionRecord> {
        let c = self.collection(range.collection).await?;
        let done = self.catalog.count_results_between(c.id, range.start, range.end).await?;
        let skip = range.start + done;
        let take = range.end.saturating_sub(skip);
        self.identify_walk(&c, (skip, Some(take)), Some(range.files), progress, cancel.clone()).await?;
        let all = self.catalog.count_results_between(c.id, 0, range.files).await?;
        if !cancel.load(Ordering::Relaxed) && all >= range.files {
            self.catalog.set_collection_total(c.id, range.files).await?;
        }
        self.snapshot().await?;
        self.collection(c.id).await
    }

    /// Identifies the folder's files from walk position `skip` on (at most `take` of them), writing results in walk
    /// order in batches; progress reports `total` as the collection's size. Returns the walk position reached.
    async fn identify_walk(
        self: &Arc<Self>,
        c: &CollectionRecord,
        (skip, take): (u64, Option<u64>),
        total: Option<u64>,
        mut progress: impl FnMut(&CollectionProgress) + Send,
        cancel: Arc<AtomicBool>,
    ) -> Result<u64> {
        if c.source == UPLOAD_SOURCE {
            return Err(AppError::Invalid("an upload collection has no folder to walk".into()));
        }
        let folder = PathBuf::from(&c.source);
        if !folder.is_dir() {
            return Err(AppError::Invalid(format!("the folder {} is gone", folder.display())));
        }
        let take = take.map_or(usize::MAX, |t| usize::try_from(t).unwrap_or(usize::MAX));
        // Unbounded only in type: results arrive at the network's pace (milliseconds each) and a batch commit takes
        // about one fsync, so the queue holds little more than one batch.
        let (tx, mut rx) = mpsc::unbounded_channel::<Produced>();
        let producer = {
            let (app, model, cancel) = (self.clone(), c.model.clone(), cancel.clone());
            tokio::spawn(async move {
                let files =
                    walk_files(&folder).enumerate().skip(usize::try_from(skip).unwrap_or(usize::MAX)).take(take);
                let items = files.map(|(seq, f)| (seq as u64, f)).take_while(move |_| !cancel.load(Ordering::Relaxed));
                match model {
                    Some(m) if m != app.served_model().await => app.produce_with_model(&m, items, tx).await,
                    _ => {
                        app.produce_served(items, tx).await;
                        Ok(())
                    }
                }
            })
        };
        let mut state = CollectionProgress { collection: c.id, processed: c.processed, failed: c.failed, total };
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        let mut seen = skip;
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < WRITE_BATCH {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            seen += batch.len() as u64;
            state.failed += batch.iter().filter(|(_, _, r)| r.is_err()).count() as u64;
            let items: Vec<NewCollectionItem> =
                batch.drain(..).map(|(seq, path, outcome)| NewCollectionItem { seq, path, outcome }).collect();
            state.processed += self.catalog.add_collection_items(c.id, &items).await?;
            progress(&state);
        }
        match producer.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(AppError::Internal(format!("identify producer: {e}"))),
        }
        Ok(seen)
    }

    /// Classifies with the served model: images stored, embedded and their predictions logged, as an upload is.
    async fn produce_served(
        self: &Arc<Self>,
        items: impl Iterator<Item = (u64, std::result::Result<PathBuf, String>)> + Send + 'static,
        tx: mpsc::UnboundedSender<Produced>,
    ) {
        let loaders = items.map(|(seq, f)| {
            let name = match &f {
                Ok(p) => p.to_string_lossy().into_owned(),
                Err(e) => e.clone(),
            };
            let load = move || -> std::result::Result<bytes::Bytes, String> {
                std::fs::read(f?).map(Into::into).map_err(|e| e.to_string())
            };
            ((seq, name), load)
        });
        self.identify_stream(loaders, fovea_store::IDENTIFY_USER, |((seq, name), r)| {
            let outcome = r.map(|o| prediction_of(&o)).map_err(|e| e.to_string());
            let _ = tx.send((seq, name, outcome));
        })
        .await;
    }
}

/// A classify answer as a collection result.
pub(crate) fn prediction_of(o: &crate::ClassifyOutcome) -> ItemPrediction {
    let backbone = o.model_version.split('/').next().unwrap_or_default().to_owned();
    ItemPrediction {
        image_id: o.image_id.clone(),
        model_version: o.model_version.clone(),
        backbone,
        top_k: o.top.clone(),
        unknown: o.unknown,
    }
}

/// The `source` of collections that grow by uploads from the web UI.
pub const UPLOAD_SOURCE: &str = "upload";

/// Files per queued identify job (`FOVEA_IDENTIFY_CHUNK` changes it, e.g. for tests with small folders).
pub fn identify_chunk() -> u64 {
    std::env::var("FOVEA_IDENTIFY_CHUNK").ok().and_then(|s| s.parse().ok()).filter(|n| *n > 0).unwrap_or(256)
}

/// One identify job's share of a collection: walk positions `start..end` of a folder that had `files` files.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
pub(crate) struct ChunkRange {
    pub collection: i64,
    pub start: u64,
    pub end: u64,
    pub files: u64,
}

/// An identify job's chunk from its parameters.
fn job_chunk(job: &JobRecord) -> Result<ChunkRange> {
    serde_json::from_value(job.params.clone())
        .map_err(|e| AppError::Invalid(format!("identify job {} has bad parameters: {e}", job.id)))
}

impl App {
    /// Claims the oldest runnable identify job and runs it; a job whose lease ran out (its worker was killed) is
    /// claimed again and resumes where the committed results end.
    pub async fn run_next_identify_job(self: &Arc<Self>) -> Result<Option<(JobRecord, Result<CollectionRecord>)>> {
        let Some(job) = self.catalog.claim_job(&[IDENTIFY_JOB], crate::jobs::lease()).await? else { return Ok(None) };
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::watch::channel(CollectionProgress::default());
        // The collection's share done, across every chunk.
        let fraction = |p: &CollectionProgress| p.total.map_or(0.0, |t| p.processed as f64 / t.max(1) as f64);
        let beat = self.spawn_heartbeat(&job, crate::jobs::lease(), rx, fraction, cancel.clone());
        let outcome = match job_chunk(&job) {
            Ok(range) => self.run_chunk(range, move |p| drop(tx.send(p.clone())), cancel).await,
            Err(e) => Err(e),
        };
        beat.abort();
        let (state, msg) = match &outcome {
            Ok(c) => (
                JobOutcome::Succeeded,
                serde_json::json!({"collection": c.id, "processed": c.processed, "failed": c.failed}).to_string(),
            ),
            Err(e) => (JobOutcome::Failed, serde_json::json!({"error": e.to_string()}).to_string()),
        };
        self.catalog.finish_job(job.id, job.attempt, state, Some(&msg)).await?;
        Ok(Some((self.job(job.id).await?, outcome)))
    }
}
