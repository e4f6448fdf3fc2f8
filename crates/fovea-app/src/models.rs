//! The model registry in use: which backbone is served, promotion, rollback, and noticing a promotion made by
//! another process. A switch is one atomic step for callers: the catalog's promoted row changes in one
//! transaction, and in memory the backbone and the online head change together under the head lock.

use std::collections::HashMap;
use std::path::PathBuf;

use fovea_model::{Backbone, NamedTensor, Weights};
use fovea_store::{ImageFilter, ModelKind, ModelStatus, ModelVersionRecord, NewModelVersion};

use crate::head::HeadState;
use crate::{App, AppError, Result};

/// Where a model version's weights live under the data folder.
pub(crate) fn model_file(data_dir: &std::path::Path, id: &str) -> PathBuf {
    data_dir.join("models").join(format!("{id}.safetensors"))
}

/// Where a model version's weights live in the blob store, so every replica and worker can load them.
fn model_blob_key(id: &str) -> String {
    format!("models/{id}.safetensors")
}

/// The local file of a model version's weights, fetched from the blob store when this machine lacks it (a model
/// trained by another worker).
pub(crate) async fn fetch_model_file(
    blobs: &dyn fovea_store::Blobs,
    data_dir: &std::path::Path,
    id: &str,
) -> Result<PathBuf> {
    let path = model_file(data_dir, id);
    if path.exists() {
        return Ok(path);
    }
    let bytes = match blobs.get(&model_blob_key(id)).await {
        Ok(bytes) => bytes,
        Err(fovea_store::StoreError::NotFound { .. }) => {
            return Err(AppError::Internal(format!("the weights of model {id} are missing: {}", path.display())))
        }
        Err(e) => return Err(e.into()),
    };
    let dir = path.parent().unwrap_or(data_dir);
    std::fs::create_dir_all(dir).map_err(|e| AppError::Internal(format!("{}: {e}", dir.display())))?;
    // Written aside and renamed, so a reader never loads half a file.
    let aside = dir.join(format!(".{id}.{}.part", std::process::id()));
    std::fs::write(&aside, &bytes)
        .and_then(|()| std::fs::rename(&aside, &path))
        .map_err(|e| AppError::Internal(format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// Writes weights as safetensors (aside, then renamed), tagged with the model version they belong to.
pub(crate) fn write_weights(path: &std::path::Path, id: &str, weights: &Weights) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| AppError::Internal(format!("{}: {e}", dir.display())))?;
    }
    let mut named: Vec<(String, NamedTensor)> = weights
        .tensors
        .iter()
        .map(|(name, (shape, values))| (name.clone(), NamedTensor::from_f32(shape.clone(), values)))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    fovea_model::weights::write_safetensors(path, &named, HashMap::from([("fovea_model".into(), id.into())]))?;
    Ok(())
}

impl App {
    /// Where a model version's weights live.
    pub fn model_path(&self, id: &str) -> PathBuf {
        model_file(&self.cfg.data_dir, id)
    }

    /// The id of the base (ImageNet) model: the variant's name, which is also its embedding-cache key.
    pub fn base_model_id(&self) -> String {
        self.cfg.variant.name()
    }

    /// The model version being served now.
    pub async fn served_model(&self) -> String {
        self.head.lock().await.backbone().to_owned()
    }

    pub async fn models(&self) -> Result<Vec<ModelVersionRecord>> {
        Ok(self.catalog.list_model_versions().await?)
    }

    pub async fn model(&self, id: &str) -> Result<ModelVersionRecord> {
        self.catalog.get_model_version(id).await?.ok_or_else(|| AppError::NotFound { what: "model", id: id.into() })
    }

    /// Registers the base model as promoted on first start, so the registry always has exactly one promoted row.
    pub(crate) async fn ensure_base_registered(&self) -> Result<()> {
        if self.catalog.promoted_model_version().await?.is_some() {
            return Ok(());
        }
        let id = self.base_model_id();
        if self.catalog.get_model_version(&id).await?.is_none() {
            let metrics = serde_json::json!({"note": "pretrained ImageNet backbone with the online head"});
            let created = self
                .catalog
                .create_model_version(NewModelVersion {
                    id: id.clone(),
                    parent: None,
                    kind: ModelKind::Online,
                    metrics,
                })
                .await;
            match created {
                // Another replica starting on the same catalog registered it first.
                Ok(_) | Err(fovea_store::StoreError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Promoting the base twice (two replicas at once) leaves it promoted either way.
        if self.catalog.promoted_model_version().await?.is_none() {
            self.catalog.promote(&id).await?;
        }
        Ok(())
    }

    /// The weights of a model version, fetched from the blob store first when this machine lacks them.
    pub async fn shared_model_weights(&self, id: &str) -> Result<Weights> {
        if id != self.base_model_id() {
            fetch_model_file(self.blobs.as_ref(), &self.cfg.data_dir, id).await?;
        }
        self.model_weights(id)
    }

    /// The weights of a model version: the base file, or the registry's file for a fine-tune.
    pub fn model_weights(&self, id: &str) -> Result<Weights> {
        // A registered model whose weights cannot be found is the server's failure, not the caller's.
        let path = if id == self.base_model_id() {
            self.cfg.base_weights.clone().ok_or_else(|| {
                AppError::Internal("this app was started without the base weights' path; cannot load the base".into())
            })?
        } else {
            self.model_path(id)
        };
        if !path.exists() {
            return Err(AppError::Internal(format!("the weights of model {id} are missing: {}", path.display())));
        }
        Ok(Weights::load_safetensors(&path)?)
    }

    /// Saves a trained model's weights into the registry's folder.
    pub fn save_model_weights(&self, id: &str, weights: &Weights) -> Result<PathBuf> {
        let path = self.model_path(id);
        write_weights(&path, id, weights)?;
        Ok(path)
    }

    /// Registers a trained model under a fresh id `{prefix}-NNN`: the id is reserved in the catalog first (a row
    /// that cannot be promoted yet), then the weights are written under it, then the row becomes a candidate with
    /// the metrics `describe` gives for the id. So runs finishing at once, in this process or another, never share
    /// an id or a weights file. On failure the reservation and any weights written are dropped.
    pub(crate) async fn register_model<T>(
        &self,
        prefix: &str,
        parent: &str,
        kind: ModelKind,
        weights: &Weights,
        describe: impl FnOnce(&str) -> (T, serde_json::Value),
    ) -> Result<T> {
        let id = self.catalog.reserve_model_version(prefix, Some(parent), kind).await?.id;
        let (described, metrics) = describe(&id);
        let registered = match self.save_model_weights(&id, weights) {
            Ok(path) => self.share_model_file(&id, &path).await,
            Err(e) => Err(e),
        };
        let registered = match registered {
            Ok(()) => self.catalog.complete_model_version(&id, &metrics).await.map_err(AppError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = registered {
            let _ = std::fs::remove_file(self.model_path(&id));
            if let Err(discard) = self.catalog.discard_model_version(&id).await {
                tracing::warn!(model = id, error = %discard, "could not drop the reservation of a failed model");
            }
            return Err(e);
        }
        Ok(described)
    }

    /// Puts a model's weights file into the blob store, where other replicas and workers find it.
    async fn share_model_file(&self, id: &str, path: &std::path::Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| AppError::Internal(format!("{}: {e}", path.display())))?;
        Ok(self.blobs.put(&model_blob_key(id), bytes.into()).await?)
    }

    pub(crate) fn build_backbone(&self, weights: &Weights) -> Result<Box<dyn Backbone>> {
        Ok(self.cfg.engine.build(weights, self.cfg.variant, 0)?)
    }

    /// Embeds every labelled image that lacks an embedding under `name`, with a private backbone instance on a
    /// blocking thread, so serving goes on meanwhile. Returns how many were computed.
    pub(crate) async fn embed_labelled(&self, name: &str, weights: &Weights) -> Result<usize> {
        let filter = ImageFilter { labelled: Some(true), ..Default::default() };
        let mut missing = Vec::new();
        for row in self.catalog.list_images(&filter).await? {
            if self.catalog.get_embedding(&row.image.id, name).await?.is_none() {
                missing.push(row.image.id);
            }
        }
        if missing.is_empty() {
            return Ok(0);
        }
        let backbone = self.build_backbone(weights)?;
        let size = backbone.input_size() as u32;
        let backbone = std::sync::Arc::new(backbone);
        for chunk in missing.chunks(16) {
            let mut blobs = Vec::with_capacity(chunk.len());
            for id in chunk {
                blobs.push(self.image_bytes(id).await?);
            }
            let limits = self.cfg.limits;
            let bb = backbone.clone();
            let out = tokio::task::spawn_blocking(move || -> Result<fovea_model::Embedded> {
                let mut input = Vec::new();
                for b in &blobs {
                    input.extend(fovea_vision::to_input(&fovea_vision::decode_for_input(b, &limits, size)?, size));
                }
                Ok(bb.run(&input, blobs.len())?)
            })
            .await
            .map_err(|e| AppError::Internal(e.to_string()))??;
            for (i, id) in chunk.iter().enumerate() {
                self.catalog.put_embedding(id, name, out.embedding(i)).await?;
            }
        }
        Ok(missing.len())
    }

    /// Serves model version `id` from now on (and records it as promoted): its backbone on the compute thread
    /// and an online head over its embeddings of every labelled image, so corrections keep working at once.
    pub async fn promote(&self, id: &str) -> Result<ModelVersionRecord> {
        let record = self.model(id).await?;
        if record.kind == ModelKind::ThrowAway {
            return Err(AppError::Invalid(format!("{id} is a throw-away run; throw-away models are never promoted")));
        }
        if record.status == ModelStatus::Training {
            return Err(AppError::Conflict(format!("{id} is still being trained; it cannot be promoted yet")));
        }
        if let Some(leaked) = crate::leakage::blocks_promotion(&record.metrics) {
            return Err(AppError::Conflict(format!(
                "{id} was judged on a leaked benchmark: {leaked} benchmark images have a near duplicate in its training \
                 data (`fovea hygiene leakage --model {id}`); resolve the duplicates and train again"
            )));
        }
        self.switch_to(id, true).await?;
        self.model(id).await
    }

    /// Goes back to the model the served one was trained from.
    pub async fn rollback(&self) -> Result<ModelVersionRecord> {
        let current = self.served_model().await;
        let record = self.model(&current).await?;
        let parent =
            record.parent.ok_or_else(|| AppError::Invalid(format!("{current} has no parent model to roll back to")))?;
        self.promote(&parent).await
    }

    /// Picks up a promotion made by another process (e.g. `fovea models promote` beside a running server), and a
    /// rename or merge made by another process (the online head is rebuilt under the new label-log epoch).
    pub async fn sync_model(&self) -> Result<bool> {
        self.sync_head().await?;
        let Some(promoted) = self.catalog.promoted_model_version().await? else { return Ok(false) };
        if promoted.id == self.served_model().await {
            return Ok(false);
        }
        self.switch_to(&promoted.id, false).await?;
        Ok(true)
    }

    async fn sync_head(&self) -> Result<()> {
        let epoch = self.catalog.label_log_epoch().await?;
        let mut head = self.head.lock().await;
        if head.epoch() != epoch {
            head.catch_up(self.catalog.as_ref()).await?;
            head.save(self.catalog.as_ref()).await?;
        }
        Ok(())
    }

    async fn switch_to(&self, id: &str, record_promotion: bool) -> Result<()> {
        let _one_switch_at_a_time = self.switching.lock().await;
        let weights = self.shared_model_weights(id).await?;
        // Most of the work happens before the lock: embeddings for every labelled image under the new backbone.
        self.embed_labelled(id, &weights).await?;
        let backbone = self.build_backbone(&weights)?;
        let mut head = self.head.lock().await;
        // Labels that arrived meanwhile need embeddings too; then the head is a fold of the whole log again.
        self.embed_labelled(id, &weights).await?;
        let mut fresh =
            HeadState::restore(self.catalog.as_ref(), &self.cfg.head, self.compute.embedding_dim(), id).await?;
        if record_promotion {
            self.catalog.promote(id).await?;
        }
        self.compute.swap(backbone, id.to_owned()).await?;
        fresh.save(self.catalog.as_ref()).await?;
        *head = fresh;
        tracing::info!(model = id, "now serving");
        Ok(())
    }
}
