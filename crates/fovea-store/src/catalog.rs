//! The catalog: every durable record of fovea except image bytes, as seams by concern (images and labels, the model
//! registry, jobs, users; collections, insight and hygiene in their own modules). Callers hold an
//! `Arc<dyn Catalog>`, which is all of them at once; [`crate::SqliteCatalog`] and [`crate::PgCatalog`] implement each.
//!
//! Conventions: lookups return `Ok(None)` for a missing record; mutations of a missing record return
//! [`StoreError::NotFound`](crate::StoreError::NotFound).

use std::time::Duration;

use async_trait::async_trait;

use crate::collections::CollectionStore;
use crate::error::Result;
use crate::hygiene::HygieneStore;
use crate::insight::InsightStore;
use crate::model::*;

/// Every seam of the catalog together: what the app holds.
pub trait Catalog:
    LabelStore + RegistryStore + JobStore + UserStore + CollectionStore + InsightStore + HygieneStore + Send + Sync
{
}

impl<T> Catalog for T where
    T: LabelStore + RegistryStore + JobStore + UserStore + CollectionStore + InsightStore + HygieneStore + Send + Sync
{
}

/// Images, classes, the label log, the prediction/correction log and the embedding cache: what a classification
/// and a correction touch.
#[async_trait]
pub trait LabelStore: Send + Sync {
    // ---- images ----

    /// Registers an image; an image with the same id already present is returned unchanged with
    /// `created = false` (exact duplicates collapse).
    async fn put_image(&self, image: NewImage) -> Result<(ImageRecord, bool)>;
    async fn get_image(&self, id: &str) -> Result<Option<ImageRecord>>;
    async fn set_split(&self, id: &str, split: Split) -> Result<()>;
    /// Images matching `filter`, newest first.
    async fn list_images(&self, filter: &ImageFilter) -> Result<Vec<ImageRow>>;
    /// How many images match `filter`, ignoring its `limit` and `offset`.
    async fn count_images(&self, filter: &ImageFilter) -> Result<u64>;

    // ---- classes ----

    /// Creates a class; a name equal to an existing one (trimmed, case-insensitive) is `AlreadyExists`.
    async fn create_class(&self, name: &str) -> Result<ClassRecord>;
    async fn get_class(&self, id: ClassId) -> Result<Option<ClassRecord>>;
    /// Looks a class up by name, trimmed and case-insensitive.
    async fn class_by_name(&self, name: &str) -> Result<Option<ClassRecord>>;
    /// The special Unknown class, created by the first migration.
    async fn unknown_class(&self) -> Result<ClassRecord>;
    /// All classes by id, with how many images currently carry each.
    async fn list_classes(&self) -> Result<Vec<ClassStats>>;
    /// Renames a class; the Unknown class cannot be renamed. Bumps the label log's epoch in the same transaction.
    async fn rename_class(&self, id: ClassId, new_name: &str) -> Result<ClassRecord>;
    /// Moves every label of `from` to `into` and deletes `from`, in one transaction. This rewrites label
    /// history, so it bumps the label log's epoch in the same transaction: heads folded before it are void.
    async fn merge_classes(&self, from: ClassId, into: ClassId) -> Result<MergeOutcome>;
    /// Undoes a merge: the class comes back with its id and name and the label rows the merge rewrote point at
    /// it again (those still pointing where the merge sent them). Bumps the label log's epoch.
    async fn undo_merge(&self, merge_id: i64) -> Result<ClassRecord>;
    /// Renames, newest first.
    async fn list_renames(&self, limit: u32) -> Result<Vec<RenameRecord>>;
    /// Merges, newest first, with whether each was undone.
    async fn list_merges(&self, limit: u32) -> Result<Vec<MergeRecord>>;
    /// Deletes a class that no label has ever named (undoing its creation); anything else is `Invalid`.
    async fn delete_unused_class(&self, id: ClassId) -> Result<ClassRecord>;

    // ---- labels ----

    /// Appends a label; `previous_class_id` is filled from the image's current label atomically. A label of origin
    /// [`LabelOrigin::Import`] is refused with `AlreadyExists` when the image has any label of another origin,
    /// checked in the same statement: an import never overrides a human label.
    async fn add_label(&self, label: NewLabel) -> Result<LabelRecord>;
    /// The newest label of an image.
    async fn current_label(&self, image_id: &str) -> Result<Option<LabelRecord>>;
    /// Labels with id > `after_seq`, in id order, at most `limit` of them: page through by passing the
    /// last id seen.
    async fn labels_since(&self, after_seq: i64, limit: u32) -> Result<Vec<LabelRecord>>;
    /// The id of the newest label, 0 when there is none.
    async fn last_label_seq(&self) -> Result<i64>;
    /// The newest label of an image that a person gave (any origin but [`LabelOrigin::Import`]).
    async fn human_label(&self, image_id: &str) -> Result<Option<LabelRecord>>;
    /// Every label an image has had, newest first.
    async fn image_labels(&self, image_id: &str) -> Result<Vec<LabelRecord>>;
    /// The label log's epoch. Label ids only order events within one epoch: every rename and merge rewrites what
    /// past labels mean and bumps the epoch, so a head folded under an older epoch must be replayed from the start.
    async fn label_log_epoch(&self) -> Result<i64>;

    // ---- transactions (predictions and corrections) ----

    async fn log_transaction(&self, txn: NewTransaction) -> Result<i64>;
    /// Newest first, narrowed by `filter`.
    async fn list_transactions(&self, filter: &TransactionFilter) -> Result<Vec<TransactionRecord>>;
    /// One image's predictions and corrections, newest first.
    async fn image_transactions(&self, image_id: &str, limit: u32) -> Result<Vec<TransactionRecord>>;

    // ---- embedding cache ----

    /// Stores (or replaces) the embedding of an image under a backbone name.
    async fn put_embedding(&self, image_id: &str, backbone: &str, vector: &[f32]) -> Result<()>;
    /// A classification in one atomic write: the image (a no-op when known), its freshly computed embedding (if
    /// any) and the transaction-log entry. Returns the image, whether it was new, and the transaction id.
    async fn record_classification(
        &self,
        image: NewImage,
        embedding: Option<(&str, &[f32])>,
        txn: NewTransaction,
    ) -> Result<(ImageRecord, bool, i64)>;
    async fn get_embedding(&self, image_id: &str, backbone: &str) -> Result<Option<Vec<f32>>>;
}

/// Users and their API tokens (stored as SHA-256 hashes only).
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn create_user(&self, user: NewUser) -> Result<UserRecord>;
    async fn user_by_token_hash(&self, token_sha256: &str) -> Result<Option<UserRecord>>;
    async fn list_users(&self) -> Result<Vec<UserRecord>>;
}

/// The model registry: online-head snapshots and model versions with the one promoted.
#[async_trait]
pub trait RegistryStore: Send + Sync {
    // ---- online head snapshots ----

    /// Saves a head learned from `backbone`'s embeddings (a snapshot is valid for that backbone only), folded from
    /// the labels up to `label_seq` read under label-log epoch `epoch`.
    async fn save_head_snapshot(
        &self,
        backbone: &str,
        epoch: i64,
        label_seq: i64,
        bytes: &[u8],
    ) -> Result<HeadSnapshot>;
    /// The most recently saved snapshot for `backbone` of the current label-log epoch; snapshots of an older epoch
    /// are never returned.
    async fn latest_head_snapshot(&self, backbone: &str) -> Result<Option<HeadSnapshot>>;
    /// Deletes all but `backbone`'s newest `keep` snapshots, and every snapshot (of any backbone) of an older
    /// label-log epoch; returns how many were deleted.
    async fn prune_head_snapshots(&self, backbone: &str, keep: u32) -> Result<u64>;

    // ---- model versions ----

    /// Registers a model version as a candidate.
    async fn create_model_version(&self, version: NewModelVersion) -> Result<ModelVersionRecord>;
    /// Reserves a fresh id `{prefix}-{NNN}` for a model being produced: a row with status `training` (never
    /// promoted) is inserted before anything is written under the id, so concurrent runs, in this process or
    /// another, always get distinct ids.
    async fn reserve_model_version(
        &self,
        prefix: &str,
        parent: Option<&str>,
        kind: ModelKind,
    ) -> Result<ModelVersionRecord>;
    /// Turns a reserved (`training`) version into a candidate with its metrics, once its weights are in place.
    async fn complete_model_version(&self, id: &str, metrics: &serde_json::Value) -> Result<ModelVersionRecord>;
    /// Drops a reservation whose run failed; returns false when `id` is not a reservation (left alone).
    async fn discard_model_version(&self, id: &str) -> Result<bool>;
    async fn get_model_version(&self, id: &str) -> Result<Option<ModelVersionRecord>>;
    /// Newest first.
    async fn list_model_versions(&self) -> Result<Vec<ModelVersionRecord>>;
    async fn promoted_model_version(&self) -> Result<Option<ModelVersionRecord>>;
    /// Retires the promoted version (if any) and promotes `id`, in one transaction; a `training` reservation is
    /// refused as `Invalid`.
    async fn promote(&self, id: &str) -> Result<ModelVersionRecord>;
    async fn set_model_metrics(&self, id: &str, metrics: &serde_json::Value) -> Result<()>;
}

/// Persisted jobs with leases, claimed by workers.
#[async_trait]
pub trait JobStore: Send + Sync {
    async fn enqueue_job(&self, kind: &str, params: &serde_json::Value) -> Result<JobRecord>;
    /// Enqueues a job unless one of `kind` was created at or after `since`, atomically: of several processes asking
    /// at once, exactly one enqueues (a schedule shared by replicas fires once). Returns the job when it did.
    async fn enqueue_job_unless_since(
        &self,
        kind: &str,
        params: &serde_json::Value,
        since: Millis,
    ) -> Result<Option<JobRecord>>;
    async fn get_job(&self, id: i64) -> Result<Option<JobRecord>>;
    /// Newest first.
    async fn list_jobs(&self, limit: u32, offset: u32) -> Result<Vec<JobRecord>>;
    /// Atomically takes the oldest queued job (or running job whose lease expired) of one of `kinds`
    /// (any kind when empty), marks it running with a lease of `lease`, and bumps its attempt.
    async fn claim_job(&self, kinds: &[&str], lease: Duration) -> Result<Option<JobRecord>>;
    /// Extends the lease and records progress. Returns false when the caller no longer owns the job
    /// (its lease was taken over, or it was cancelled): the worker should stop.
    async fn heartbeat_job(
        &self,
        id: i64,
        attempt: i64,
        progress: f64,
        message: Option<&str>,
        lease: Duration,
    ) -> Result<bool>;
    /// Records the end of a claimed job. Returns false when the caller no longer owns it.
    async fn finish_job(&self, id: i64, attempt: i64, outcome: JobOutcome, message: Option<&str>) -> Result<bool>;
    /// Cancels a queued or running job; returns false when it had already finished.
    async fn cancel_job(&self, id: i64) -> Result<bool>;
}
