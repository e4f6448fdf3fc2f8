//! The online head's life: restored from its latest snapshot plus the labels logged after it, updated on every
//! label change, snapshotted every few changes. Because it is a deterministic fold over the label log, a crash
//! loses nothing: whatever was committed to the catalog is replayed on the next start.

use fovea_learn::{AnyHead, Head, HeadKind, HeadSnapshot, Prediction, SldaConfig, SldaHead};
use fovea_store::{Catalog, LabelRecord};

use crate::{AppError, Result};

/// Typical per-dimension variance of EfficientNet-Lite's pooled ReLU6 features (measured ≈0.05 on digits,
/// higher on photos); the SLDA prior needs a scale before any data has arrived.
const PRIOR_VARIANCE: f64 = 0.1;
const REPLAY_PAGE: u32 = 500;

pub struct HeadState {
    pub head: AnyHead,
    /// The last label id folded into `head`.
    pub seq: i64,
    pub since_snapshot: u64,
    backbone: String,
}

pub fn new_head(kind: &str, dim: usize) -> Result<AnyHead> {
    let kind: HeadKind = kind.parse()?;
    Ok(match kind {
        HeadKind::Slda => AnyHead::Slda(SldaHead::with_config(
            dim,
            SldaConfig { prior_variance: PRIOR_VARIANCE, ..Default::default() },
        )?),
        other => AnyHead::new(other, dim)?,
    })
}

impl HeadState {
    pub async fn restore(catalog: &dyn Catalog, kind: &str, dim: usize, backbone: &str) -> Result<Self> {
        let mut state = match catalog.latest_head_snapshot(backbone).await? {
            Some(s) => {
                let snap = HeadSnapshot::from_bytes(&s.bytes)?;
                HeadState {
                    head: AnyHead::restore(snap)?,
                    seq: s.label_seq,
                    since_snapshot: 0,
                    backbone: backbone.into(),
                }
            }
            None => HeadState { head: new_head(kind, dim)?, seq: 0, since_snapshot: 0, backbone: backbone.into() },
        };
        let replayed = state.catch_up(catalog).await?;
        if replayed > 0 {
            tracing::info!(replayed, seq = state.seq, "online head caught up with the label log");
        }
        Ok(state)
    }

    /// Folds every label logged after `self.seq` into the head.
    pub async fn catch_up(&mut self, catalog: &dyn Catalog) -> Result<usize> {
        let mut n = 0;
        loop {
            let page = catalog.labels_since(self.seq, REPLAY_PAGE).await?;
            if page.is_empty() {
                return Ok(n);
            }
            for label in &page {
                let emb = catalog.get_embedding(&label.image_id, &self.backbone).await?.ok_or_else(|| {
                    AppError::Internal(format!("image {} was labelled but has no cached embedding", label.image_id))
                })?;
                self.apply(label, &emb, catalog).await?;
                n += 1;
            }
        }
    }

    /// One label change: the image's old class loses it, the new class gains it. Unknown is never trained.
    pub async fn apply(&mut self, label: &LabelRecord, embedding: &[f32], catalog: &dyn Catalog) -> Result<()> {
        let unknown = catalog.unknown_class().await?.id;
        if let (Some(prev_id), Some(prev)) = (label.previous_class_id, &label.previous_class_name) {
            if prev_id != unknown && self.head.class_id(prev).is_some() {
                self.head.unlearn_named(embedding, prev)?;
            }
        }
        if label.class_id != unknown {
            self.head.learn_named(embedding, &label.class_name)?;
        }
        self.seq = label.id;
        self.since_snapshot += 1;
        Ok(())
    }

    pub async fn save(&mut self, catalog: &dyn Catalog) -> Result<()> {
        let bytes = self.head.snapshot().to_bytes()?;
        catalog.save_head_snapshot(&self.backbone, self.seq, &bytes).await?;
        catalog.prune_head_snapshots(&self.backbone, 3).await?;
        self.since_snapshot = 0;
        Ok(())
    }

    pub fn predict(&self, embedding: &[f32]) -> Result<Prediction> {
        Ok(self.head.predict(embedding)?)
    }

    /// The backbone whose embeddings this head learned from.
    pub fn backbone(&self) -> &str {
        &self.backbone
    }

    /// Names the served model: the backbone's version and the head's state, which changes with every label.
    pub fn version(&self) -> String {
        format!("{}/online-{}", self.backbone, self.seq)
    }
}
