//! The review queue: which unlabelled images a person should label next. Computed per request from the catalog
//! and the served head, so it follows every label that lands; ranked by calibrated uncertainty combined with
//! diversity (fovea-learn's `diverse` strategy), so a page is not twenty copies of one hard case.

use std::collections::HashSet;

use fovea_learn::{acquire, AcquireConfig, Candidate, Strategy};
use fovea_store::{ImageFilter, ScoredClass};
use serde::Serialize;

use crate::{App, AppError, Result};

/// Catalog page size while scanning; bounds one listing query, not the queue.
const SCAN_PAGE: u32 = 500;
/// Labelled images the diversity term measures distance to: the newest ones, so the cost of a request stays
/// bounded however many labels exist (older labels already shape the head, which shapes the uncertainty).
const LABELLED_REFERENCES: u32 = 1000;
/// Most images one queue request may ask for.
pub const MAX_REVIEW: usize = 100;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReviewItem {
    pub image_id: String,
    /// The served model's top classes for this image, calibrated probabilities.
    pub top: Vec<ScoredClass>,
    pub unknown: bool,
    /// Review priority in [0, 1] (margin of the calibrated probabilities; 1 for an unknown): higher = more torn.
    pub uncertainty: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReviewQueue {
    /// The model the ranking was computed with.
    pub model_version: String,
    /// Unlabelled images ranked (those with an embedding under the served model).
    pub candidates: u64,
    /// Unlabelled images left out because they were never embedded by the served model (e.g. stored before a
    /// fine-tune was promoted); classifying or identifying them again brings them in.
    pub not_embedded: u64,
    /// The next images to label, in order.
    pub items: Vec<ReviewItem>,
}

/// One ranked image kept while scanning.
struct Scanned {
    id: String,
    embedding: Vec<f32>,
    probabilities: Vec<f64>,
    unknown: bool,
    top: Vec<ScoredClass>,
    uncertainty: f64,
}

impl App {
    /// The next `k` unlabelled images to label (1..=100), best first. Memory stays bounded whatever the size of
    /// the catalog: only the most uncertain few hundred images (the diverse strategy's shortlist) are kept
    /// while the unlabelled images stream past.
    pub async fn review_queue(&self, k: usize) -> Result<ReviewQueue> {
        if !(1..=MAX_REVIEW).contains(&k) {
            return Err(AppError::Invalid(format!("a review queue holds 1 to {MAX_REVIEW} images, not {k}")));
        }
        let cfg = AcquireConfig::new(Strategy::Diverse);
        let keep = cfg.shortlist(k);
        let (backbone, model_version) = {
            let head = self.head.lock().await;
            (head.backbone().to_owned(), head.version())
        };
        let mut shortlist: Vec<Scanned> = Vec::new();
        let (mut candidates, mut not_embedded) = (0u64, 0u64);
        let mut offset = 0u32;
        // An image classified mid-scan shifts later pages by one; ids seen already are not ranked twice.
        let mut seen: HashSet<String> = HashSet::new();
        loop {
            let filter =
                ImageFilter { labelled: Some(false), limit: Some(SCAN_PAGE), offset, ..ImageFilter::default() };
            let rows = self.catalog.list_images(&filter).await?;
            let mut page = Vec::with_capacity(rows.len());
            for row in &rows {
                if !seen.insert(row.image.id.clone()) {
                    continue;
                }
                match self.catalog.get_embedding(&row.image.id, &backbone).await? {
                    Some(e) => page.push((row.image.id.clone(), e)),
                    None => not_embedded += 1,
                }
            }
            // The head is held per page, not per scan, so labels keep landing while a big catalog is ranked.
            let head = self.head.lock().await;
            if head.backbone() != backbone {
                return Err(AppError::Conflict(
                    "the served model changed while ranking the review queue; retry".into(),
                ));
            }
            for (id, embedding) in page {
                let p = head.predict(&embedding)?;
                let top = self.named_top(&head, &p);
                let unknown = p.unknown || p.ranked.is_empty();
                let c = Candidate { embedding: &embedding, probabilities: &p.probabilities, unknown };
                let uncertainty = c.uncertainty(cfg.uncertainty);
                shortlist.push(Scanned { id, embedding, probabilities: p.probabilities, unknown, top, uncertainty });
                candidates += 1;
            }
            drop(head);
            if shortlist.len() > 2 * keep {
                trim(&mut shortlist, keep);
            }
            if rows.len() < SCAN_PAGE as usize {
                break;
            }
            offset += SCAN_PAGE;
        }
        trim(&mut shortlist, keep);

        let references = self
            .catalog
            .list_images(&ImageFilter { labelled: Some(true), limit: Some(LABELLED_REFERENCES), ..Default::default() })
            .await?;
        let mut labelled = Vec::with_capacity(references.len());
        for row in &references {
            if let Some(e) = self.catalog.get_embedding(&row.image.id, &backbone).await? {
                labelled.push(e);
            }
        }
        let refs: Vec<&[f32]> = labelled.iter().map(Vec::as_slice).collect();
        let pool: Vec<Candidate> = shortlist
            .iter()
            .map(|s| Candidate { embedding: &s.embedding, probabilities: &s.probabilities, unknown: s.unknown })
            .collect();
        let picks = acquire(&pool, &refs, k, &cfg)?;
        drop(pool);
        let mut slots: Vec<Option<Scanned>> = shortlist.into_iter().map(Some).collect();
        let items = picks
            .iter()
            .filter_map(|p| slots[p.index].take())
            .map(|s| ReviewItem { image_id: s.id, top: s.top, unknown: s.unknown, uncertainty: s.uncertainty })
            .collect();
        Ok(ReviewQueue { model_version, candidates, not_embedded, items })
    }
}

/// Keeps the `keep` most uncertain, in scan order (ties are decided by scan order, as `acquire` does).
fn trim(list: &mut Vec<Scanned>, keep: usize) {
    if list.len() <= keep {
        return;
    }
    let mut idx: Vec<usize> = (0..list.len()).collect();
    idx.sort_by(|&a, &b| list[b].uncertainty.total_cmp(&list[a].uncertainty).then(a.cmp(&b)));
    let mut kept = vec![false; list.len()];
    for &i in &idx[..keep] {
        kept[i] = true;
    }
    let mut i = 0;
    list.retain(|_| {
        i += 1;
        kept[i - 1]
    });
}
