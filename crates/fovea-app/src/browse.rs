//! The results browser and its bulk actions: filter a collection's results, then act on a selection in one
//! request that is one transaction and one undo.

use fovea_store::{
    BulkActionRecord, BulkChange, BulkTarget, CollectionItem, ConfusedPair, ItemFilter, LabelOrigin, UndoOutcome,
};
use serde::{Deserialize, Serialize};

use crate::collections::{prediction_of, UPLOAD_SOURCE};
use crate::{App, AppError, Result};

/// Most results one bulk action may touch (a selection by filter is capped here too).
pub const MAX_BULK: usize = 10_000;
/// Tags whose labels the coverage view counts as staged or synthetic.
pub const STAGED_TAGS: [&str; 2] = ["staged", "synthetic"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkKind {
    /// Each result's predicted class becomes its label (unknown results are skipped).
    Accept,
    /// Every selected image gets `class` (created if new).
    Relabel,
    /// Every selected image is labelled Unknown: kept, never trained on.
    Unknown,
    Tag,
    Untag,
    /// Hidden from the collection's results.
    Discard,
}

/// One result of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemRef {
    pub collection: i64,
    pub seq: u64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct BulkRequest {
    pub action: BulkKind,
    /// For `relabel`.
    #[serde(default)]
    pub class: Option<String>,
    /// For `tag` and `untag`.
    #[serde(default)]
    pub tag: Option<String>,
    /// The selection: results picked one by one...
    #[serde(default)]
    pub items: Vec<ItemRef>,
    /// ...or every result matching a filter (at most [`MAX_BULK`]).
    #[serde(skip)]
    pub filter: Option<ItemFilter>,
}

/// Per class: where labels are missing and where candidates wait.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CoverageView {
    pub class: String,
    pub labelled: u64,
    pub cutoff: u64,
    /// Labels still needed to reach the cutoff.
    pub needed: u64,
    /// Share of the labelled images tagged staged or synthetic.
    pub staged_share: f64,
    /// Unlabelled collection results predicted as this class, waiting for a person.
    pub candidates: u64,
}

impl App {
    /// Results matching `filter`, and how many match in all.
    pub async fn collection_items(&self, filter: &ItemFilter) -> Result<(Vec<CollectionItem>, u64)> {
        Ok((self.catalog.list_collection_items(filter).await?, self.catalog.count_collection_items(filter).await?))
    }

    pub async fn confused_pairs(&self, collection: Option<i64>, max_margin: f64) -> Result<Vec<ConfusedPair>> {
        if !(0.0..=1.0).contains(&max_margin) {
            return Err(AppError::Invalid("max_margin must be between 0 and 1".into()));
        }
        Ok(self.catalog.confused_pairs(collection, max_margin, 20).await?)
    }

    /// Per class coverage; with `min_staged_share`, only the classes that depend on staged or synthetic pictures for
    /// at least that share of their labels (their accuracy on real pictures is the least known).
    pub async fn coverage(&self, min_staged_share: Option<f64>) -> Result<Vec<CoverageView>> {
        if min_staged_share.is_some_and(|m| !(0.0..=1.0).contains(&m)) {
            return Err(AppError::Invalid("min_staged_share must be between 0 and 1".into()));
        }
        let tags: Vec<String> = STAGED_TAGS.iter().map(|t| (*t).to_owned()).collect();
        let cutoff = self.cfg.cutoff;
        Ok(self
            .catalog
            .coverage(&tags)
            .await?
            .into_iter()
            .map(|r| CoverageView {
                needed: cutoff.saturating_sub(r.labelled),
                staged_share: if r.labelled == 0 { 0.0 } else { r.tagged as f64 / r.labelled as f64 },
                class: r.class,
                labelled: r.labelled,
                cutoff,
                candidates: r.candidates,
            })
            .filter(|c| min_staged_share.is_none_or(|m| c.labelled > 0 && c.staged_share >= m))
            .collect())
    }

    pub async fn tags(&self) -> Result<Vec<(String, u64)>> {
        Ok(self.catalog.list_tags().await?)
    }

    /// The selected results, in the order given, each checked to exist and to have an image.
    async fn selection(&self, req: &BulkRequest) -> Result<Vec<CollectionItem>> {
        let mut items = Vec::new();
        if let Some(filter) = &req.filter {
            let capped = ItemFilter { limit: Some(MAX_BULK as u32 + 1), offset: 0, ..filter.clone() };
            items = self.catalog.list_collection_items(&capped).await?;
        }
        if items.len() + req.items.len() > MAX_BULK {
            return Err(AppError::Invalid(format!("a bulk action takes at most {MAX_BULK} images; narrow the filter")));
        }
        for r in &req.items {
            let item = self.catalog.collection_item(r.collection, r.seq).await?.ok_or_else(|| AppError::NotFound {
                what: "collection result",
                id: format!("{}/{}", r.collection, r.seq),
            })?;
            items.push(item);
        }
        if items.is_empty() {
            return Err(AppError::Invalid("select at least one image".into()));
        }
        Ok(items)
    }

    /// Applies one bulk action to a selection: one transaction, recorded as one undoable action. Labels reach the
    /// online head before this returns.
    pub async fn bulk(&self, req: &BulkRequest, user: &str) -> Result<BulkActionRecord> {
        let mut items = self.selection(req).await?;
        // A failed file has no image to act on.
        items.retain(|i| i.image_id.is_some());
        let target = |i: &CollectionItem, class_id| BulkTarget {
            image_id: i.image_id.clone().unwrap_or_default(),
            class_id,
            item: Some((i.collection_id, i.seq)),
        };
        let detail = serde_json::json!({
            "action": req.action, "class": req.class, "tag": req.tag, "selected": items.len(),
        });
        let (change, targets) = match req.action {
            BulkKind::Tag | BulkKind::Untag => {
                let tag = fovea_store::normalise_tag(req.tag.as_deref().unwrap_or_default())?;
                let change =
                    if req.action == BulkKind::Tag { BulkChange::Tag { tag } } else { BulkChange::Untag { tag } };
                (change, items.iter().map(|i| target(i, None)).collect())
            }
            BulkKind::Discard => (BulkChange::Discard, items.iter().map(|i| target(i, None)).collect()),
            BulkKind::Relabel | BulkKind::Unknown | BulkKind::Accept => {
                let mut targets = Vec::with_capacity(items.len());
                let mut classes = std::collections::HashMap::new();
                for item in &items {
                    let name = match req.action {
                        BulkKind::Relabel => req
                            .class
                            .clone()
                            .filter(|c| !c.trim().is_empty())
                            .ok_or_else(|| AppError::Invalid("relabel needs a class".into()))?,
                        BulkKind::Unknown => self.catalog.unknown_class().await?.name,
                        _ if item.unknown => continue,
                        _ => match item.top_k.iter().max_by(|a, b| a.probability.total_cmp(&b.probability)) {
                            Some(best) => best.class.clone(),
                            None => continue,
                        },
                    };
                    let class_id = match classes.get(&name) {
                        Some(id) => *id,
                        None => {
                            let id = self.class_for_label(&name).await?.0.id;
                            classes.insert(name.clone(), id);
                            id
                        }
                    };
                    targets.push(target(item, Some(class_id)));
                }
                let origin = if req.action == BulkKind::Accept { LabelOrigin::Accepted } else { LabelOrigin::Human };
                (BulkChange::Label { origin }, targets)
            }
        };
        if targets.is_empty() {
            return Err(AppError::Invalid("none of the selected images can take this action".into()));
        }
        self.apply_bulk_change(&change, &detail, &targets, user).await
    }

    /// Applies one bulk change as one undoable action; label changes reach the online head before this returns.
    pub(crate) async fn apply_bulk_change(
        &self,
        change: &BulkChange,
        detail: &serde_json::Value,
        targets: &[BulkTarget],
        user: &str,
    ) -> Result<BulkActionRecord> {
        if !matches!(change, BulkChange::Label { .. }) {
            return Ok(self.catalog.apply_bulk(change, detail, targets, user).await?);
        }
        // Labels must reach the head, which folds them from each image's embedding under the served backbone.
        let backbone = self.head.lock().await.backbone().to_owned();
        for t in targets {
            self.embedding_for(&t.image_id, &backbone).await?;
        }
        let mut head = self.head.lock().await;
        if head.backbone() != backbone {
            return Err(AppError::Conflict("the served model changed during this action; please retry".into()));
        }
        let action = self.catalog.apply_bulk(change, detail, targets, user).await?;
        head.catch_up(self.catalog.as_ref()).await?;
        if head.since_snapshot >= self.cfg.snapshot_every {
            head.save(self.catalog.as_ref()).await?;
        }
        Ok(action)
    }

    /// Undoes a bulk action as a whole; labels it added are removed (a later label by someone else is kept) and
    /// the online head is rebuilt from the log.
    pub async fn undo_bulk(&self, id: i64) -> Result<UndoOutcome> {
        let outcome = self.catalog.undo_bulk(id).await?;
        if outcome.labels_changed {
            let mut head = self.head.lock().await;
            head.catch_up(self.catalog.as_ref()).await?;
            head.save(self.catalog.as_ref()).await?;
        }
        Ok(outcome)
    }

    /// Tags images (e.g. an import of staged or synthetic pictures), as undoable bulk actions of at most
    /// [`MAX_BULK`] images each. Returns how many images gained the tag.
    pub async fn tag_images(&self, image_ids: &[String], tag: &str, user: &str) -> Result<u64> {
        let change = BulkChange::Tag { tag: fovea_store::normalise_tag(tag)? };
        let mut tagged = 0;
        for chunk in image_ids.chunks(MAX_BULK) {
            let targets: Vec<BulkTarget> =
                chunk.iter().map(|id| BulkTarget { image_id: id.clone(), class_id: None, item: None }).collect();
            let detail = serde_json::json!({ "action": "tag", "tag": tag, "selected": chunk.len() });
            tagged += self.catalog.apply_bulk(&change, &detail, &targets, user).await?.changed;
        }
        Ok(tagged)
    }

    pub async fn bulk_actions(&self, limit: u32) -> Result<Vec<BulkActionRecord>> {
        Ok(self.catalog.list_bulk_actions(limit.min(200)).await?)
    }

    /// Classifies one uploaded file into an upload collection (created by [`App::upload_collection`]).
    pub async fn add_upload(
        &self,
        collection: i64,
        name: &str,
        bytes: bytes::Bytes,
        user: &str,
    ) -> Result<CollectionItem> {
        let c = self.collection(collection).await?;
        if c.source != UPLOAD_SOURCE {
            return Err(AppError::Invalid(format!("collection {collection} is a folder, not an upload collection")));
        }
        // A file that is not an image is answered as an error and leaves no result behind.
        let outcome = Ok(prediction_of(&self.classify(bytes, user).await?));
        // Sequence numbers are handed out one upload at a time; the commit is quick.
        let _one_at_a_time = self.upload_seq.lock().await;
        let seq = self.collection(collection).await?.processed;
        let path = format!("{name} #{seq}");
        let item = fovea_store::NewCollectionItem { seq, path, outcome };
        self.catalog.add_collection_items(collection, &[item]).await?;
        self.catalog
            .collection_item(collection, seq)
            .await?
            .ok_or_else(|| AppError::Internal("a result just written is missing".into()))
    }

    /// A new collection that grows by uploads (e.g. many files dropped on the web UI).
    pub async fn upload_collection(&self, name: &str, user: &str) -> Result<fovea_store::CollectionRecord> {
        Ok(self
            .catalog
            .create_collection(fovea_store::NewCollection {
                name: name.to_owned(),
                source: UPLOAD_SOURCE.into(),
                model: None,
                created_by: user.to_owned(),
            })
            .await?)
    }
}
