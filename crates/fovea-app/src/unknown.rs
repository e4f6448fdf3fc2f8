//! "Unknown" as a first-class label: a good picture nobody can name yet is labelled Unknown — kept, listed, never
//! trained on (the online head skips it and the dataset builder leaves it out). Once a class exists that it may
//! belong to, it deserves another look: Unknown images that the served model now assigns to a class created after
//! they were called Unknown are offered for review. Keeping one Unknown confirms that label row (as a second look at
//! a disputed label does), so it is not offered again until it is relabelled.

use fovea_store::ImageFilter;
use serde::Serialize;

use crate::{App, AppError, Result};

/// Catalog page size while scanning Unknown images.
const SCAN_PAGE: u32 = 500;
/// Most matches one answer holds.
pub const MAX_UNKNOWN_MATCHES: usize = 500;

/// An Unknown-labelled image that now looks like a newer class.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UnknownMatch {
    pub image_id: String,
    /// The Unknown label row; keeping the image Unknown confirms this one.
    pub label_id: i64,
    /// The class the served model assigns now, and its calibrated probability.
    pub class: String,
    pub probability: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UnknownReview {
    /// Images labelled Unknown in all.
    pub unknown_images: usize,
    /// Most probable first.
    pub items: Vec<UnknownMatch>,
}

impl App {
    /// Unknown-labelled images the served model assigns to a class created after their Unknown label (only to
    /// `class`, when given), not already kept Unknown after a look.
    pub async fn unknown_review(&self, class: Option<&str>, limit: usize) -> Result<UnknownReview> {
        if !(1..=MAX_UNKNOWN_MATCHES).contains(&limit) {
            return Err(AppError::Invalid(format!("limit must lie in 1..={MAX_UNKNOWN_MATCHES}, not {limit}")));
        }
        let wanted = match class {
            Some(name) => Some(
                self.catalog
                    .class_by_name(name)
                    .await?
                    .ok_or_else(|| AppError::NotFound { what: "class", id: name.to_owned() })?,
            ),
            None => None,
        };
        let unknown = self.catalog.unknown_class().await?;
        let created: std::collections::HashMap<String, i64> =
            self.catalog.list_classes().await?.into_iter().map(|c| (c.class.name, c.class.created_at)).collect();
        let confirmed = self.catalog.confirmed_labels().await?;
        let backbone = self.served_model().await;
        let (mut unknown_images, mut items, mut offset) = (0usize, Vec::new(), 0u32);
        loop {
            let filter = ImageFilter {
                class: Some(unknown.name.clone()),
                limit: Some(SCAN_PAGE),
                offset,
                ..ImageFilter::default()
            };
            let rows = self.catalog.list_images(&filter).await?;
            unknown_images += rows.len();
            for row in &rows {
                let Some(label) = self.catalog.current_label(&row.image.id).await? else { continue };
                if label.class_id != unknown.id || confirmed.contains(&label.id) {
                    continue;
                }
                let Some(embedding) = self.catalog.get_embedding(&row.image.id, &backbone).await? else { continue };
                let head = self.head.lock().await;
                let predicted = self.predicted(&head, &embedding)?;
                drop(head);
                let Some(best) = predicted.top.first().filter(|_| !predicted.unknown) else { continue };
                let newer = created.get(&best.class).is_some_and(|&at| at > label.created_at);
                let asked = wanted.as_ref().is_none_or(|c| c.name == best.class);
                if newer && asked {
                    items.push(UnknownMatch {
                        image_id: row.image.id.clone(),
                        label_id: label.id,
                        class: best.class.clone(),
                        probability: best.probability,
                    });
                }
            }
            if rows.len() < SCAN_PAGE as usize {
                break;
            }
            offset += SCAN_PAGE;
        }
        items.sort_by(|a, b| b.probability.total_cmp(&a.probability).then(a.image_id.cmp(&b.image_id)));
        items.truncate(limit);
        Ok(UnknownReview { unknown_images, items })
    }
}
