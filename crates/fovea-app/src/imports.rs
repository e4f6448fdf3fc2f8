//! Importing a folder of images — flat, or an ImageFolder whose sub-folder names are classes — run in-process by
//! `fovea import`, or queued as a job that any worker sharing the catalog claims (`fovea import --queue`).
//! Re-running an import is harmless: identical images collapse, and an import never overrides a person's label.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fovea_store::{JobOutcome, JobRecord};
use serde::{Deserialize, Serialize};

use crate::{App, AppError, ImportReport, Result};

pub const IMPORT_JOB: &str = "import";

/// What to import.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportRequest {
    /// The folder, as the importing process sees it.
    pub folder: PathBuf,
    /// Sub-folder name = class.
    #[serde(default)]
    pub labelled: bool,
    /// Tags put on every imported image.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Files read so far out of all.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportProgress {
    pub done: u64,
    pub total: u64,
}

/// The images of an ImageFolder (`dir/<class>/<file>`), classes and files in sorted order.
pub fn image_folder(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let unreadable = |e: std::io::Error| AppError::Invalid(format!("reading {}: {e}", dir.display()));
    let mut classes: Vec<_> =
        std::fs::read_dir(dir).map_err(unreadable)?.flatten().filter(|e| e.path().is_dir()).collect();
    classes.sort_by_key(|e| e.file_name());
    let mut out = Vec::new();
    for class in classes {
        let name = class.file_name().to_string_lossy().into_owned();
        let mut files: Vec<PathBuf> = std::fs::read_dir(class.path())
            .map_err(unreadable)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|f| (f, name.clone())));
    }
    if out.is_empty() {
        return Err(AppError::Invalid(format!("{} holds no class sub-folders with images", dir.display())));
    }
    Ok(out)
}

/// The files directly inside `dir`, sorted.
pub fn flat_folder(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| AppError::Invalid(format!("reading {}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    Ok(files)
}

impl App {
    /// Imports every file of the request's folder; `progress` sees each file, `cancel` stops between files.
    pub async fn import_folder(
        &self,
        request: &ImportRequest,
        mut progress: impl FnMut(&ImportProgress) + Send,
        cancel: &AtomicBool,
    ) -> Result<ImportReport> {
        // Checked before any file is read, so a bad tag costs nothing.
        for tag in &request.tags {
            fovea_store::normalise_tag(tag)?;
        }
        let dir = request.folder.as_path();
        let files: Vec<(PathBuf, Option<String>)> = if request.labelled {
            image_folder(dir)?.into_iter().map(|(p, c)| (p, Some(c))).collect()
        } else {
            flat_folder(dir)?.into_iter().map(|p| (p, None)).collect()
        };
        let mut state = ImportProgress { done: 0, total: files.len() as u64 };
        let mut report = ImportReport::default();
        let mut imported = Vec::new();
        for (path, class) in &files {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            let source = format!("import:{}", path.display());
            let result = match std::fs::read(path) {
                Ok(bytes) => {
                    let id = fovea_store::sha256_hex(&bytes);
                    let done = self.import_bytes(bytes.into(), &source, class.as_deref(), &mut report).await;
                    done.map(|()| imported.push((path.clone(), id))).map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = result {
                report.failed.push((path.display().to_string(), e));
            }
            state.done += 1;
            progress(&state);
        }
        self.snapshot().await?;
        let ids: Vec<String> = imported.iter().map(|(_, id)| id.clone()).collect();
        for tag in &request.tags {
            report.tagged.push((tag.clone(), self.tag_images(&ids, tag, "import").await?));
        }
        if request.labelled {
            // A folder that fovea exported carries its images' tags beside it.
            report.restored_tags = self.apply_folder_tags(dir, &imported, "import").await?;
        }
        Ok(report)
    }

    /// Queues an import for the workers; the folder must be readable by them at the same path.
    pub async fn enqueue_import(&self, request: &ImportRequest) -> Result<JobRecord> {
        if !request.folder.is_dir() {
            return Err(AppError::Invalid(format!("{} is not a folder", request.folder.display())));
        }
        for tag in &request.tags {
            fovea_store::normalise_tag(tag)?;
        }
        let params = serde_json::to_value(request).map_err(|e| AppError::Internal(e.to_string()))?;
        Ok(self.catalog.enqueue_job(IMPORT_JOB, &params).await?)
    }

    /// Claims the oldest runnable import job and runs it; one whose worker died is claimed again once its lease
    /// runs out and imported again from the start (what was already imported collapses).
    pub async fn run_next_import_job(self: &Arc<Self>) -> Result<Option<(JobRecord, Result<ImportReport>)>> {
        let lease = crate::jobs::lease();
        let Some(job) = self.catalog.claim_job(&[IMPORT_JOB], lease).await? else { return Ok(None) };
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::watch::channel(ImportProgress::default());
        let fraction = |p: &ImportProgress| p.done as f64 / p.total.max(1) as f64;
        let beat = self.spawn_heartbeat(&job, lease, rx, fraction, cancel.clone());
        let outcome = match serde_json::from_value::<ImportRequest>(job.params.clone()) {
            Ok(request) => self.import_folder(&request, move |p| drop(tx.send(p.clone())), &cancel).await,
            Err(e) => Err(AppError::Invalid(format!("import job {} has bad parameters: {e}", job.id))),
        };
        beat.abort();
        let (state, msg) = match &outcome {
            Ok(report) => (JobOutcome::Succeeded, serde_json::to_string(report).unwrap_or_default()),
            Err(e) => (JobOutcome::Failed, serde_json::json!({"error": e.to_string()}).to_string()),
        };
        self.catalog.finish_job(job.id, job.attempt, state, Some(&msg)).await?;
        Ok(Some((self.job(job.id).await?, outcome)))
    }
}
