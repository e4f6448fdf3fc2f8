//! The online head's life: restored from its latest snapshot plus the labels logged after it, updated on every
//! label change, snapshotted every few changes. Because it is a deterministic fold over the label log, a crash
//! loses nothing: whatever was committed to the catalog is replayed on the next start.
//!
//! A rename or merge rewrites what past labels mean and starts a new label-log epoch in the same commit. The head
//! remembers the epoch it was folded under; whenever it catches up and finds a newer one it starts over from an
//! empty head, and a snapshot of an older epoch is never restored. So every backbone's head, the served one or one
//! promoted later, reads the log as it is now, even after a crash between a rename's commit and the rebuild.

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
    /// The label-log epoch `head` was folded under: labels were only read while it was current.
    epoch: i64,
    backbone: String,
    kind: String,
    dim: usize,
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
        let mut state = HeadState {
            head: new_head(kind, dim)?,
            seq: 0,
            since_snapshot: 0,
            // Not an epoch: the first catch-up adopts the current one (an empty head is valid under any).
            epoch: i64::MIN,
            backbone: backbone.into(),
            kind: kind.into(),
            dim,
        };
        // Only a snapshot of the current epoch is returned; an older one would bring back renamed-away names.
        if let Some(s) = catalog.latest_head_snapshot(backbone).await? {
            state.head = AnyHead::restore(HeadSnapshot::from_bytes(&s.bytes)?)?;
            (state.seq, state.epoch) = (s.label_seq, s.epoch);
        }
        let replayed = state.catch_up(catalog).await?;
        if replayed > 0 {
            tracing::info!(replayed, seq = state.seq, "online head caught up with the label log");
        }
        Ok(state)
    }

    /// Folds every label logged after `self.seq` into the head; after a rename or merge (a new label-log epoch),
    /// every label from the first.
    pub async fn catch_up(&mut self, catalog: &dyn Catalog) -> Result<usize> {
        // Read before any label: if the epoch moves on while we read, this head keeps the older epoch and the next
        // catch-up starts over, so a head never claims an epoch whose names it has not read.
        let epoch = catalog.label_log_epoch().await?;
        if epoch != self.epoch {
            if self.seq > 0 {
                tracing::info!(backbone = %self.backbone, "class names changed: the online head is rebuilt from the log");
            }
            self.head = new_head(&self.kind, self.dim)?;
            self.seq = 0;
            self.epoch = epoch;
        }
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
        catalog.save_head_snapshot(&self.backbone, self.epoch, self.seq, &bytes).await?;
        catalog.prune_head_snapshots(&self.backbone, 3).await?;
        self.since_snapshot = 0;
        Ok(())
    }

    pub fn predict(&self, embedding: &[f32]) -> Result<Prediction> {
        Ok(self.head.predict(embedding)?)
    }

    /// The label-log epoch this head was folded under.
    pub fn epoch(&self) -> i64 {
        self.epoch
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
