//! Bulk identification with a registry version that is not the one served (a candidate, a retired model, a
//! throw-away run used only to find candidates). It gets its own backbone instance and an online head folded from
//! its embeddings of every labelled image, calibrated the same way as the served head, so its scores mean the same.

use std::path::PathBuf;
use std::sync::Arc;

use fovea_learn::Head;
use fovea_model::Backbone;
use fovea_store::{blob_key_for, sha256_hex, ItemPrediction, NewImage, NewTransaction, TransactionKind, IDENTIFY_USER};
use tokio::sync::mpsc;

use crate::collections::Produced;
use crate::head::HeadState;
use crate::usecases::decode_for_network;
use crate::{App, AppError, Result};

/// Files decoded and run through the network together.
const CHUNK: usize = 8;

struct Scorer {
    id: String,
    backbone: Arc<Box<dyn Backbone>>,
    head: HeadState,
}

impl App {
    async fn scorer(&self, id: &str) -> Result<Scorer> {
        let weights = self.shared_model_weights(id).await?;
        self.embed_labelled(id, &weights).await?;
        let backbone = self.build_backbone(&weights)?;
        let mut head = HeadState::restore(self.catalog.as_ref(), &self.cfg.head, backbone.embedding_dim(), id).await?;
        let fit = self.fit_calibration(head.head.clone(), id, self.labelled_rows().await?).await?;
        head.head.set_calibration(fit.calibration);
        Ok(Scorer { id: id.to_owned(), backbone: Arc::new(backbone), head })
    }

    /// Identifies `items` with model `id`, sending each result (in order) to `tx`.
    pub(crate) async fn produce_with_model(
        &self,
        id: &str,
        items: impl Iterator<Item = (u64, std::result::Result<PathBuf, String>)> + Send,
        tx: mpsc::UnboundedSender<Produced>,
    ) -> Result<()> {
        let scorer = self.scorer(id).await?;
        let mut items = items.peekable();
        while items.peek().is_some() {
            let chunk: Vec<_> = items.by_ref().take(CHUNK).collect();
            for (seq, name, outcome) in self.score_chunk(&scorer, chunk).await? {
                if tx.send((seq, name, outcome)).is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    async fn score_chunk(
        &self,
        scorer: &Scorer,
        chunk: Vec<(u64, std::result::Result<PathBuf, String>)>,
    ) -> Result<Vec<Produced>> {
        let limits = self.cfg.limits;
        let size = scorer.backbone.input_size() as u32;
        // Read and decode on a blocking thread; a file that fails keeps its place with its error.
        let decoded = tokio::task::spawn_blocking(move || {
            chunk
                .into_iter()
                .map(|(seq, f)| {
                    let name = match &f {
                        Ok(p) => p.to_string_lossy().into_owned(),
                        Err(e) => e.clone(),
                    };
                    let read = f.and_then(|p| std::fs::read(&p).map_err(|e| format!("cannot read: {e}")));
                    let prepared = read.and_then(|bytes| {
                        let d = decode_for_network(&bytes, &limits, size).map_err(|e| e.to_string())?;
                        let input = fovea_vision::to_input(&d.img, size);
                        Ok((bytes::Bytes::from(bytes), d.dims, d.format, input, d.look))
                    });
                    (seq, name, prepared)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
        let inputs: Vec<f32> =
            decoded.iter().filter_map(|(_, _, p)| p.as_ref().ok()).flat_map(|p| p.3.clone()).collect();
        let n = decoded.iter().filter(|(_, _, p)| p.is_ok()).count();
        let embedded = if n > 0 {
            let bb = scorer.backbone.clone();
            Some(
                tokio::task::spawn_blocking(move || bb.run(&inputs, n))
                    .await
                    .map_err(|e| AppError::Internal(e.to_string()))??,
            )
        } else {
            None
        };
        let mut out = Vec::with_capacity(decoded.len());
        let mut row = 0;
        for (seq, name, prepared) in decoded {
            let outcome = match prepared {
                Err(e) => Err(e),
                Ok((bytes, (width, height), format, _, look)) => {
                    let embedding = embedded.as_ref().map(|e| e.embedding(row).to_vec()).unwrap_or_default();
                    row += 1;
                    let image = NewImage {
                        id: sha256_hex(&bytes),
                        blob_key: String::new(),
                        width,
                        height,
                        format,
                        source: "identify".into(),
                        brightness: Some(look.brightness),
                        grayscale: Some(look.grayscale),
                    };
                    self.record_scored(scorer, bytes, image, &embedding).await.map_err(|e| e.to_string())
                }
            };
            out.push((seq, name, outcome));
        }
        Ok(out)
    }

    /// Stores the image and its embedding under the scoring model, logs the prediction, and answers it.
    async fn record_scored(
        &self,
        scorer: &Scorer,
        bytes: bytes::Bytes,
        mut image: NewImage,
        embedding: &[f32],
    ) -> Result<ItemPrediction> {
        let id = image.id.clone();
        image.blob_key = blob_key_for(&id);
        if !self.blobs.exists(&image.blob_key).await? {
            self.blobs.put(&image.blob_key, bytes).await?;
        }
        let predicted = self.predicted(&scorer.head, embedding)?;
        let model_version = scorer.head.version();
        let txn = NewTransaction {
            image_id: id.clone(),
            model_version: model_version.clone(),
            kind: TransactionKind::Predict,
            top_k: predicted.top.clone(),
            chosen_class: None,
            user: IDENTIFY_USER.into(),
            latency_ms: 0.0,
            unknown: predicted.unknown,
        };
        self.catalog.record_classification(image, Some((&scorer.id, embedding)), txn).await?;
        Ok(ItemPrediction {
            image_id: id,
            model_version,
            backbone: scorer.id.clone(),
            top_k: predicted.top,
            unknown: predicted.unknown,
        })
    }
}
