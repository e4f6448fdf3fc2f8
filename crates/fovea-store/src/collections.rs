//! Collections, tags and bulk actions: the records behind sifting a large unlabelled folder. A seam of its own
//! (a supertrait of [`crate::Catalog`]), so the catalog grows by concern rather than as one long trait.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::model::{ClassId, LabelOrigin, Millis, ScoredClass};

/// Longest tag accepted; tags are short words such as `staged` or `synthetic`.
pub const MAX_TAG_CHARS: usize = 32;

/// A tag as stored: trimmed, lowercase, letters, digits, `-` and `_` only.
pub fn normalise_tag(tag: &str) -> Result<String> {
    let t = tag.trim().to_lowercase();
    let ok = !t.is_empty()
        && t.chars().count() <= MAX_TAG_CHARS
        && t.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(StoreError::Invalid(format!("tag {tag:?}: use 1 to {MAX_TAG_CHARS} letters, digits, '-' or '_'")));
    }
    Ok(t)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCollection {
    pub name: String,
    /// The folder walked, or `upload`.
    pub source: String,
    /// The registry version asked for; `None` means whichever is served.
    pub model: Option<String>,
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CollectionRecord {
    pub id: i64,
    pub name: String,
    pub source: String,
    pub model: Option<String>,
    pub job_id: Option<i64>,
    /// Files found, once the walk has ended.
    pub total: Option<u64>,
    /// Files with a result so far (identified or failed).
    pub processed: u64,
    pub failed: u64,
    pub unknown: u64,
    pub discarded: u64,
    pub created_by: String,
    pub created_at: Millis,
}

/// One file's result, as identify writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewCollectionItem {
    pub seq: u64,
    pub path: String,
    pub outcome: std::result::Result<ItemPrediction, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemPrediction {
    pub image_id: String,
    pub model_version: String,
    pub backbone: String,
    /// Calibrated, best first.
    pub top_k: Vec<ScoredClass>,
    pub unknown: bool,
}

/// One row of the results browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CollectionItem {
    pub collection_id: i64,
    pub seq: u64,
    pub path: String,
    pub image_id: Option<String>,
    pub error: Option<String>,
    pub model_version: Option<String>,
    pub top_k: Vec<ScoredClass>,
    pub unknown: bool,
    /// Top-1 minus top-2 probability; small means the model hesitates between two classes.
    pub margin: Option<f64>,
    pub discarded: bool,
    /// The image's current label, if anyone gave one.
    pub label: Option<String>,
    pub tags: Vec<String>,
}

/// How results are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemSort {
    /// The order the folder was walked.
    #[default]
    Walk,
    /// Lowest top-1 probability first.
    LowestConfidence,
    /// Smallest top-1 / top-2 margin first: the look-alikes.
    SmallestMargin,
}

/// Which results to list; every `None` means "don't filter on this", and the filters combine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemFilter {
    pub collection: Option<i64>,
    /// Predicted top-1 class (case-insensitive).
    pub class: Option<String>,
    pub min_conf: Option<f64>,
    pub max_conf: Option<f64>,
    /// Only predictions of classes with fewer labelled images than this (the fine-tuning cutoff).
    pub below_count: Option<u64>,
    /// Look-alikes: top-1 and top-2 are these two classes, in either order...
    pub pair: Option<(String, String)>,
    /// ...and (with or without a pair) the margin is at most this.
    pub max_margin: Option<f64>,
    pub unknown: Option<bool>,
    pub tag: Option<String>,
    pub labelled: Option<bool>,
    /// The registry version (backbone) that produced the result.
    pub model: Option<String>,
    /// Discarded items are hidden unless asked for.
    pub include_discarded: bool,
    /// Failed files are hidden unless asked for (then only they are listed).
    pub failed: bool,
    pub sort: ItemSort,
    pub limit: Option<u32>,
    pub offset: u32,
}

/// How often two classes are each other's runner-up with a small margin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfusedPair {
    pub a: String,
    pub b: String,
    pub count: u64,
}

/// Per-class numbers for "where should I look next".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CoverageRow {
    pub class_id: ClassId,
    pub class: String,
    pub labelled: u64,
    /// Labelled images carrying one of the asked tags (e.g. `staged`, `synthetic`).
    pub tagged: u64,
    /// Unlabelled, undiscarded collection results predicted as this class and not unknown.
    pub candidates: u64,
}

/// What a bulk action does to each selected image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BulkChange {
    /// A label for every image (class resolved by the caller; per image for "accept prediction").
    Label {
        origin: LabelOrigin,
    },
    Tag {
        tag: String,
    },
    Untag {
        tag: String,
    },
    /// Hides the items from their collection's results.
    Discard,
}

/// One image a bulk action touches; `class_id` for labels, `(collection, seq)` for discards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkTarget {
    pub image_id: String,
    pub class_id: Option<ClassId>,
    pub item: Option<(i64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BulkActionRecord {
    pub id: i64,
    pub kind: String,
    pub params: serde_json::Value,
    pub user: String,
    /// Images actually changed (a tag already present, or a label equal to the current one, changes nothing).
    pub changed: u64,
    pub undone_at: Option<Millis>,
    pub created_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UndoOutcome {
    pub action: BulkActionRecord,
    pub restored: u64,
    /// Images labelled again by someone after the action: their newer label is kept.
    pub kept_newer: u64,
    /// True when labels were removed, so heads folded from the label log must be rebuilt.
    pub labels_changed: bool,
}

#[async_trait]
pub trait CollectionStore: Send + Sync {
    async fn create_collection(&self, c: NewCollection) -> Result<CollectionRecord>;
    async fn get_collection(&self, id: i64) -> Result<Option<CollectionRecord>>;
    /// Newest first.
    async fn list_collections(&self) -> Result<Vec<CollectionRecord>>;
    async fn set_collection_job(&self, id: i64, job_id: i64) -> Result<()>;
    async fn set_collection_total(&self, id: i64, total: u64) -> Result<()>;
    /// Appends results in one transaction; a path the collection already has is skipped, so a resumed run never
    /// counts a file twice. Returns how many were new.
    async fn add_collection_items(&self, collection: i64, items: &[NewCollectionItem]) -> Result<u64>;
    /// One result, discarded or not.
    async fn collection_item(&self, collection: i64, seq: u64) -> Result<Option<CollectionItem>>;
    async fn list_collection_items(&self, filter: &ItemFilter) -> Result<Vec<CollectionItem>>;
    async fn count_collection_items(&self, filter: &ItemFilter) -> Result<u64>;
    /// How many results (failed or not, discarded or not) have a walk position in `start..end`: a chunk's cursor,
    /// since a chunk writes its results in walk order.
    async fn count_results_between(&self, collection: i64, start: u64, end: u64) -> Result<u64>;
    /// Class pairs most often top-1 / top-2 of one result with a margin at most `max_margin`, most frequent first.
    async fn confused_pairs(&self, collection: Option<i64>, max_margin: f64, limit: u32) -> Result<Vec<ConfusedPair>>;
    /// One row per class (Unknown excluded).
    async fn coverage(&self, tags: &[String]) -> Result<Vec<CoverageRow>>;

    /// Every tag in use with how many images carry it.
    async fn list_tags(&self) -> Result<Vec<(String, u64)>>;
    async fn image_tags(&self, image_id: &str) -> Result<Vec<String>>;

    /// Applies one bulk change to every target in one transaction and records it for undo. Label changes append
    /// one label per image whose current class differs.
    async fn apply_bulk(
        &self,
        change: &BulkChange,
        params: &serde_json::Value,
        targets: &[BulkTarget],
        user: &str,
    ) -> Result<BulkActionRecord>;
    /// Puts back what a bulk action changed, in one transaction. Labels it appended are removed where they are still
    /// the image's newest (which starts a new label-log epoch, like a merge); a second undo is refused.
    async fn undo_bulk(&self, id: i64) -> Result<UndoOutcome>;
    /// Newest first.
    async fn list_bulk_actions(&self, limit: u32) -> Result<Vec<BulkActionRecord>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_lowercased_and_checked() {
        assert_eq!(normalise_tag(" Staged ").unwrap(), "staged");
        assert_eq!(normalise_tag("hand_drawn-2").unwrap(), "hand_drawn-2");
        for bad in ["", "  ", "two words", "a/b", &"x".repeat(MAX_TAG_CHARS + 1)] {
            assert!(normalise_tag(bad).is_err(), "{bad:?} accepted");
        }
    }
}
