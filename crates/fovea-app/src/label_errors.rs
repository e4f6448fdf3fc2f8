//! The "second look" queue: labels the served head confidently disputes, judged out of sample (each labelled image
//! predicted with itself unlearned) with confident-learning thresholds per class; see
//! [`fovea_learn::find_label_errors`]. A person relabels a suspect or confirms its label; a confirmed label is not
//! shown again until the image is labelled anew.
//!
//! A search costs one leave-one-out pass over every labelled image, so its result is kept and served while the label
//! log moves on a little: an item whose label changed since is dropped from the answer, and the search is redone once
//! the log has moved as far as a calibration refit waits for (or when asked).

use fovea_learn::{find_label_errors, Head, LabelErrorConfig};
use fovea_store::LabelOrigin;
use serde::Serialize;

use crate::{App, AppError, Result};

/// Labels the log may move past a search before it is redone on its own.
const REDO_AFTER_LABELS: i64 = 20;
/// Most suspects one page may hold.
pub const MAX_LABEL_ERRORS_PAGE: usize = 500;

/// One label the model disputes.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SuspectLabel {
    pub image_id: String,
    /// The label row judged; confirming keeps exactly this one.
    pub label_id: i64,
    pub given: String,
    /// The class the model would give instead.
    pub suggested: String,
    /// Out-of-sample, calibrated probabilities of the given and the suggested class.
    pub given_probability: f64,
    pub suggested_probability: f64,
    /// `suggested_probability - given_probability`: the ranking key.
    pub score: f64,
    /// Who gave the label, and how.
    pub labelled_by: String,
    pub origin: LabelOrigin,
}

/// A page of the second-look queue.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LabelErrorReport {
    /// The served model the search ran with (backbone and head state).
    pub model: String,
    /// Labelled images judged (an image alone in its class cannot be).
    pub checked: usize,
    /// Temperature fitted on the out-of-sample predictions.
    pub temperature: f64,
    /// Suspects still open (not confirmed, label unchanged since the search), before paging.
    pub total: usize,
    /// Suspects a person already confirmed.
    pub confirmed: usize,
    /// Labels logged since the search ran; `refresh=true` redoes it now.
    pub labels_since: i64,
    /// Most disputed first.
    pub items: Vec<SuspectLabel>,
}

/// A finished search and the head state it ran against.
#[derive(Debug, Clone)]
pub(crate) struct LabelErrorSearch {
    backbone: String,
    epoch: i64,
    seq: i64,
    model: String,
    checked: usize,
    temperature: f64,
    suspects: Vec<SuspectLabel>,
}

impl App {
    /// A page of the second-look queue, from the kept search or a new one (see the module comment).
    pub async fn label_errors(&self, limit: usize, offset: usize, refresh: bool) -> Result<LabelErrorReport> {
        if !(1..=MAX_LABEL_ERRORS_PAGE).contains(&limit) {
            return Err(AppError::Invalid(format!("limit must lie in 1..={MAX_LABEL_ERRORS_PAGE}, not {limit}")));
        }
        let mut kept = self.label_error_search.lock().await;
        let (backbone, epoch, seq) = {
            let h = self.head.lock().await;
            (h.backbone().to_owned(), h.epoch(), h.seq)
        };
        let usable = kept.as_ref().is_some_and(|s| {
            s.backbone == backbone
                && s.epoch == epoch
                && (seq - s.seq).abs() < REDO_AFTER_LABELS.max(s.checked as i64 / 10)
        });
        if refresh || !usable {
            *kept = Some(self.search_label_errors().await?);
        }
        let search = kept.as_ref().expect("a search was just kept");
        let confirmations = self.catalog.confirmed_labels().await?;
        let mut open = Vec::new();
        let mut confirmed = 0;
        for s in &search.suspects {
            if confirmations.contains(&s.label_id) {
                confirmed += 1;
                continue;
            }
            // Relabelled since the search: the person already took their second look.
            let current = self.catalog.current_label(&s.image_id).await?;
            if current.is_some_and(|l| l.id == s.label_id) {
                open.push(s);
            }
        }
        Ok(LabelErrorReport {
            model: search.model.clone(),
            checked: search.checked,
            temperature: search.temperature,
            total: open.len(),
            confirmed,
            labels_since: seq - search.seq,
            items: open.into_iter().skip(offset).take(limit).cloned().collect(),
        })
    }

    /// Keeps an image's current label after a second look: it leaves the queue until the image is labelled again.
    pub async fn confirm_label(&self, image_id: &str, user: &str) -> Result<SuspectLabelConfirmed> {
        fovea_store::validate_image_id(image_id)?;
        if self.catalog.get_image(image_id).await?.is_none() {
            return Err(AppError::NotFound { what: "image", id: image_id.to_owned() });
        }
        let label = self
            .catalog
            .current_label(image_id)
            .await?
            .ok_or_else(|| AppError::Invalid(format!("image {image_id} has no label to confirm")))?;
        self.catalog.confirm_label(image_id, label.id, user).await?;
        Ok(SuspectLabelConfirmed { image_id: image_id.to_owned(), label_id: label.id, class: label.class_name })
    }

    /// One search over every labelled image the served head has learned.
    async fn search_label_errors(&self) -> Result<LabelErrorSearch> {
        // Head and labelled set are read together under the head lock (labels land under it), so every sample is one
        // the copied head has learned under that class.
        let (head, backbone, epoch, seq, model, rows) = {
            let h = self.head.lock().await;
            let rows = self.labelled_rows().await?;
            (h.head.clone(), h.backbone().to_owned(), h.epoch(), h.seq, h.version(), rows)
        };
        let mut samples = Vec::with_capacity(rows.len());
        for (id, class) in rows {
            // Unknown is never learned, so it is never judged either.
            if head.class_id(&class).is_none() {
                continue;
            }
            if let Some(e) = self.catalog.get_embedding(&id, &backbone).await? {
                samples.push((id, e, class));
            }
        }
        let (found, samples, head) = tokio::task::spawn_blocking(move || {
            let refs: Vec<(&[f32], &str)> = samples.iter().map(|(_, e, c)| (e.as_slice(), c.as_str())).collect();
            let found = find_label_errors(&head, &refs, &LabelErrorConfig::default());
            (found, samples, head)
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
        let found = found?;
        let name = |id| head.class_name(id).unwrap_or_default().to_owned();
        let mut suspects = Vec::with_capacity(found.suspects.len());
        for s in &found.suspects {
            let image_id = &samples[s.index].0;
            let Some(label) = self.catalog.current_label(image_id).await? else { continue };
            suspects.push(SuspectLabel {
                image_id: image_id.clone(),
                label_id: label.id,
                given: name(s.given),
                suggested: name(s.suggested),
                given_probability: s.given_probability,
                suggested_probability: s.suggested_probability,
                score: s.score,
                labelled_by: label.user,
                origin: label.origin,
            });
        }
        tracing::info!(checked = found.checked, suspects = suspects.len(), "label-error search done");
        Ok(LabelErrorSearch {
            backbone,
            epoch,
            seq,
            model,
            checked: found.checked,
            temperature: found.temperature,
            suspects,
        })
    }
}

/// What a confirmation kept.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SuspectLabelConfirmed {
    pub image_id: String,
    pub label_id: i64,
    pub class: String,
}
