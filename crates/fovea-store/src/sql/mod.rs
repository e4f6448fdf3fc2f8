//! The catalog's SQL, written once for SQLite and PostgreSQL. Each backend includes this folder with `#[path]` and
//! compiles it against its own types (`Db`, `DbPool`, `DbRow`, `DbConnection`) and its few dialect pieces
//! (`begin_write`, `sql_limit`, `CLAIM_LOCK`), so every query and every row mapping exists once.
//!
//! The SQL sticks to what both accept: numbered placeholders (`$1`, which sqlx binds on SQLite too), `CAST(.. AS
//! BIGINT)`, `string_agg(.. ORDER BY ..)` (SQLite 3.44+, bundled), `ON CONFLICT`, `RETURNING`.

pub(super) mod bulk;
pub(super) mod classes;
pub(super) mod collections;
pub(super) mod embeddings;
pub(super) mod hygiene;
pub(super) mod images;
pub(super) mod insight;
pub(super) mod jobs;
pub(super) mod labels;
pub(super) mod models;
pub(super) mod transactions;
pub(super) mod users;

use super::{begin_write, sql_limit, Db, DbConnection, DbPool, DbRow, CLAIM_LOCK};
use crate::columns::{lease_end, parse_json, parse_text, to_json};
use crate::error::StoreError;

/// A query with its bound arguments, as the shared binders (`bind_image`, ...) take and return it.
type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

/// A foreign-key failure on a row that names an image means the image is not in the catalog.
pub(super) fn missing_image(e: sqlx::Error, image_id: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::not_found("image", image_id),
        _ => e.into(),
    }
}

/// Implements every seam of the catalog for a backend type with a `pool` field and a `record` method (how it
/// commits a classification): each method calls the shared query of the same name.
macro_rules! impl_catalog_seams {
    ($catalog:ty) => {
        #[async_trait]
        impl LabelStore for $catalog {
            async fn put_image(&self, image: NewImage) -> Result<(ImageRecord, bool)> {
                images::put_image(&mut *self.pool.acquire().await?, image).await
            }
            async fn get_image(&self, id: &str) -> Result<Option<ImageRecord>> {
                images::get_image(&self.pool, id).await
            }
            async fn set_split(&self, id: &str, split: Split) -> Result<()> {
                images::set_split(&self.pool, id, split).await
            }
            async fn list_images(&self, filter: &ImageFilter) -> Result<Vec<ImageRow>> {
                images::list_images(&self.pool, filter).await
            }
            async fn count_images(&self, filter: &ImageFilter) -> Result<u64> {
                images::count_images(&self.pool, filter).await
            }

            async fn create_class(&self, name: &str) -> Result<ClassRecord> {
                classes::create_class(&self.pool, name).await
            }
            async fn get_class(&self, id: ClassId) -> Result<Option<ClassRecord>> {
                classes::get_class(&self.pool, id).await
            }
            async fn class_by_name(&self, name: &str) -> Result<Option<ClassRecord>> {
                classes::class_by_name(&self.pool, name).await
            }
            async fn unknown_class(&self) -> Result<ClassRecord> {
                classes::unknown_class(&self.pool).await
            }
            async fn list_classes(&self) -> Result<Vec<ClassStats>> {
                classes::list_classes(&self.pool).await
            }
            async fn rename_class(&self, id: ClassId, new_name: &str) -> Result<ClassRecord> {
                classes::rename_class(&self.pool, id, new_name).await
            }
            async fn merge_classes(&self, from: ClassId, into: ClassId) -> Result<MergeOutcome> {
                classes::merge_classes(&self.pool, from, into).await
            }
            async fn undo_merge(&self, merge_id: i64) -> Result<ClassRecord> {
                classes::undo_merge(&self.pool, merge_id).await
            }
            async fn list_renames(&self, limit: u32) -> Result<Vec<RenameRecord>> {
                classes::list_renames(&self.pool, limit).await
            }
            async fn list_merges(&self, limit: u32) -> Result<Vec<MergeRecord>> {
                classes::list_merges(&self.pool, limit).await
            }
            async fn delete_unused_class(&self, id: ClassId) -> Result<ClassRecord> {
                classes::delete_unused_class(&self.pool, id).await
            }

            async fn add_label(&self, label: NewLabel) -> Result<LabelRecord> {
                labels::add_label(&self.pool, label).await
            }
            async fn current_label(&self, image_id: &str) -> Result<Option<LabelRecord>> {
                labels::current_label(&self.pool, image_id).await
            }
            async fn labels_since(&self, after_seq: i64, limit: u32) -> Result<Vec<LabelRecord>> {
                labels::labels_since(&self.pool, after_seq, limit).await
            }
            async fn last_label_seq(&self) -> Result<i64> {
                labels::last_label_seq(&self.pool).await
            }
            async fn human_label(&self, image_id: &str) -> Result<Option<LabelRecord>> {
                labels::human_label(&self.pool, image_id).await
            }
            async fn label_log_epoch(&self) -> Result<i64> {
                labels::label_log_epoch(&self.pool).await
            }

            async fn log_transaction(&self, txn: NewTransaction) -> Result<i64> {
                transactions::log_transaction(&mut *self.pool.acquire().await?, txn).await
            }
            async fn image_transactions(&self, image_id: &str, limit: u32) -> Result<Vec<TransactionRecord>> {
                transactions::image_transactions(&self.pool, image_id, limit).await
            }
            async fn image_labels(&self, image_id: &str) -> Result<Vec<LabelRecord>> {
                labels::image_labels(&self.pool, image_id).await
            }
            async fn list_transactions(&self, filter: &TransactionFilter) -> Result<Vec<TransactionRecord>> {
                transactions::list_transactions(&self.pool, filter).await
            }

            async fn put_embedding(&self, image_id: &str, backbone: &str, vector: &[f32]) -> Result<()> {
                embeddings::put_embedding(&mut *self.pool.acquire().await?, image_id, backbone, vector).await
            }
            async fn record_classification(
                &self,
                image: NewImage,
                embedding: Option<(&str, &[f32])>,
                txn: NewTransaction,
            ) -> Result<(ImageRecord, bool, i64)> {
                self.record(image, embedding, txn).await
            }
            async fn get_embedding(&self, image_id: &str, backbone: &str) -> Result<Option<Vec<f32>>> {
                embeddings::get_embedding(&self.pool, image_id, backbone).await
            }
        }

        #[async_trait]
        impl UserStore for $catalog {
            async fn create_user(&self, user: NewUser) -> Result<UserRecord> {
                users::create_user(&self.pool, user).await
            }
            async fn user_by_token_hash(&self, token_sha256: &str) -> Result<Option<UserRecord>> {
                users::user_by_token_hash(&self.pool, token_sha256).await
            }
            async fn list_users(&self) -> Result<Vec<UserRecord>> {
                users::list_users(&self.pool).await
            }
        }

        #[async_trait]
        impl RegistryStore for $catalog {
            async fn save_head_snapshot(
                &self,
                backbone: &str,
                epoch: i64,
                label_seq: i64,
                bytes: &[u8],
            ) -> Result<HeadSnapshot> {
                models::save_head_snapshot(&self.pool, backbone, epoch, label_seq, bytes).await
            }
            async fn latest_head_snapshot(&self, backbone: &str) -> Result<Option<HeadSnapshot>> {
                models::latest_head_snapshot(&self.pool, backbone).await
            }
            async fn prune_head_snapshots(&self, backbone: &str, keep: u32) -> Result<u64> {
                models::prune_head_snapshots(&self.pool, backbone, keep).await
            }

            async fn create_model_version(&self, version: NewModelVersion) -> Result<ModelVersionRecord> {
                models::create_model_version(&self.pool, version).await
            }
            async fn reserve_model_version(
                &self,
                prefix: &str,
                parent: Option<&str>,
                kind: ModelKind,
            ) -> Result<ModelVersionRecord> {
                models::reserve_model_version(&self.pool, prefix, parent, kind).await
            }
            async fn complete_model_version(
                &self,
                id: &str,
                metrics: &serde_json::Value,
            ) -> Result<ModelVersionRecord> {
                models::complete_model_version(&self.pool, id, metrics).await
            }
            async fn discard_model_version(&self, id: &str) -> Result<bool> {
                models::discard_model_version(&self.pool, id).await
            }
            async fn get_model_version(&self, id: &str) -> Result<Option<ModelVersionRecord>> {
                models::get_model_version(&self.pool, id).await
            }
            async fn list_model_versions(&self) -> Result<Vec<ModelVersionRecord>> {
                models::list_model_versions(&self.pool).await
            }
            async fn promoted_model_version(&self) -> Result<Option<ModelVersionRecord>> {
                models::promoted_model_version(&self.pool).await
            }
            async fn promote(&self, id: &str) -> Result<ModelVersionRecord> {
                models::promote(&self.pool, id).await
            }
            async fn set_model_metrics(&self, id: &str, metrics: &serde_json::Value) -> Result<()> {
                models::set_model_metrics(&self.pool, id, metrics).await
            }
        }

        #[async_trait]
        impl JobStore for $catalog {
            async fn enqueue_job(&self, kind: &str, params: &serde_json::Value) -> Result<JobRecord> {
                jobs::enqueue_job(&self.pool, kind, params).await
            }
            async fn enqueue_job_unless_since(
                &self,
                kind: &str,
                params: &serde_json::Value,
                since: Millis,
            ) -> Result<Option<JobRecord>> {
                jobs::enqueue_job_unless_since(&self.pool, kind, params, since).await
            }
            async fn get_job(&self, id: i64) -> Result<Option<JobRecord>> {
                jobs::get_job(&self.pool, id).await
            }
            async fn list_jobs(&self, limit: u32, offset: u32) -> Result<Vec<JobRecord>> {
                jobs::list_jobs(&self.pool, limit, offset).await
            }
            async fn claim_job(&self, kinds: &[&str], lease: Duration) -> Result<Option<JobRecord>> {
                jobs::claim_job(&self.pool, kinds, lease).await
            }
            async fn heartbeat_job(
                &self,
                id: i64,
                attempt: i64,
                progress: f64,
                message: Option<&str>,
                lease: Duration,
            ) -> Result<bool> {
                jobs::heartbeat_job(&self.pool, id, attempt, progress, message, lease).await
            }
            async fn finish_job(
                &self,
                id: i64,
                attempt: i64,
                outcome: JobOutcome,
                message: Option<&str>,
            ) -> Result<bool> {
                jobs::finish_job(&self.pool, id, attempt, outcome, message).await
            }
            async fn cancel_job(&self, id: i64) -> Result<bool> {
                jobs::cancel_job(&self.pool, id).await
            }
        }

        #[async_trait]
        impl CollectionStore for $catalog {
            async fn create_collection(&self, c: NewCollection) -> Result<CollectionRecord> {
                collections::create_collection(&self.pool, c).await
            }
            async fn get_collection(&self, id: i64) -> Result<Option<CollectionRecord>> {
                collections::get_collection(&self.pool, id).await
            }
            async fn list_collections(&self) -> Result<Vec<CollectionRecord>> {
                collections::list_collections(&self.pool).await
            }
            async fn set_collection_job(&self, id: i64, job_id: i64) -> Result<()> {
                collections::set_collection_field(&self.pool, id, "job_id", job_id).await
            }
            async fn set_collection_total(&self, id: i64, total: u64) -> Result<()> {
                collections::set_collection_field(&self.pool, id, "total", i64::try_from(total).unwrap_or(i64::MAX))
                    .await
            }
            async fn add_collection_items(&self, collection: i64, items: &[NewCollectionItem]) -> Result<u64> {
                collections::add_collection_items(&self.pool, collection, items).await
            }
            async fn collection_item(&self, collection: i64, seq: u64) -> Result<Option<CollectionItem>> {
                collections::collection_item(&self.pool, collection, seq).await
            }
            async fn list_collection_items(&self, filter: &ItemFilter) -> Result<Vec<CollectionItem>> {
                collections::list_collection_items(&self.pool, filter).await
            }
            async fn count_collection_items(&self, filter: &ItemFilter) -> Result<u64> {
                collections::count_collection_items(&self.pool, filter).await
            }
            async fn count_results_between(&self, collection: i64, start: u64, end: u64) -> Result<u64> {
                collections::count_results_between(&self.pool, collection, start, end).await
            }
            async fn confused_pairs(
                &self,
                collection: Option<i64>,
                max_margin: f64,
                limit: u32,
            ) -> Result<Vec<ConfusedPair>> {
                collections::confused_pairs(&self.pool, collection, max_margin, limit).await
            }
            async fn coverage(&self, tags: &[String]) -> Result<Vec<CoverageRow>> {
                collections::coverage(&self.pool, tags).await
            }
            async fn list_tags(&self) -> Result<Vec<(String, u64)>> {
                collections::list_tags(&self.pool).await
            }
            async fn image_tags(&self, image_id: &str) -> Result<Vec<String>> {
                collections::image_tags(&self.pool, image_id).await
            }
            async fn apply_bulk(
                &self,
                change: &BulkChange,
                params: &serde_json::Value,
                targets: &[BulkTarget],
                user: &str,
            ) -> Result<BulkActionRecord> {
                bulk::apply_bulk(&self.pool, change, params, targets, user).await
            }
            async fn undo_bulk(&self, id: i64) -> Result<UndoOutcome> {
                bulk::undo_bulk(&self.pool, id).await
            }
            async fn list_bulk_actions(&self, limit: u32) -> Result<Vec<BulkActionRecord>> {
                bulk::list_bulk_actions(&self.pool, limit).await
            }
        }

        #[async_trait]
        impl InsightStore for $catalog {
            async fn insight_log(&self, since: Option<Millis>) -> Result<fovea_insight::Log> {
                insight::insight_log(&self.pool, since).await
            }
            async fn recent_predictions(&self, limit: u32, period: Option<(Millis, Millis)>) -> Result<Vec<DriftRow>> {
                insight::recent_predictions(&self.pool, limit, period).await
            }
            async fn predictions_after(&self, after: i64, limit: u32) -> Result<Vec<DriftRow>> {
                insight::predictions_after(&self.pool, after, limit).await
            }
            async fn image_look(&self, image_id: &str) -> Result<Option<ImageLook>> {
                insight::image_look(&self.pool, image_id).await
            }
            async fn set_image_look(&self, image_id: &str, brightness: f64, grayscale: bool) -> Result<()> {
                insight::set_image_look(&self.pool, image_id, brightness, grayscale).await
            }
            async fn create_evaluation(
                &self,
                model_version: &str,
                since: Millis,
                strata: &[fovea_insight::Stratum],
                items: &[fovea_insight::PlannedItem],
                user: &str,
            ) -> Result<EvaluationRound> {
                insight::create_evaluation(&self.pool, model_version, since, strata, items, user).await
            }
            async fn list_evaluations(&self) -> Result<Vec<EvaluationRound>> {
                insight::list_evaluations(&self.pool).await
            }
            async fn get_evaluation(&self, id: i64) -> Result<Option<EvaluationRound>> {
                insight::get_evaluation(&self.pool, id).await
            }
            async fn evaluation_items(&self, round: i64) -> Result<Vec<EvaluationItem>> {
                insight::evaluation_items(&self.pool, round).await
            }
            async fn get_evaluation_item(&self, id: i64) -> Result<Option<EvaluationItem>> {
                insight::get_evaluation_item(&self.pool, id).await
            }
            async fn answer_evaluation(
                &self,
                item: i64,
                verdict: Verdict,
                correct_class: Option<&str>,
                user: &str,
            ) -> Result<EvaluationItem> {
                insight::answer_evaluation(&self.pool, item, verdict, correct_class, user).await
            }
            async fn raise_drift_alert(&self, alert: NewDriftAlert) -> Result<Option<DriftAlertRecord>> {
                insight::raise_drift_alert(&self.pool, alert).await
            }
            async fn clear_drift_alerts(&self, signal: &str) -> Result<u64> {
                insight::clear_drift_alerts(&self.pool, signal).await
            }
            async fn list_drift_alerts(&self, open_only: bool, limit: u32) -> Result<Vec<DriftAlertRecord>> {
                insight::list_drift_alerts(&self.pool, open_only, limit).await
            }
        }

        #[async_trait]
        impl HygieneStore for $catalog {
            async fn confirm_label(&self, image_id: &str, label_id: i64, user: &str) -> Result<()> {
                hygiene::confirm_label(&self.pool, image_id, label_id, user).await
            }
            async fn confirmed_labels(&self) -> Result<std::collections::HashSet<i64>> {
                hygiene::confirmed_labels(&self.pool).await
            }
            async fn put_image_hash(&self, hash: &ImageHash) -> Result<()> {
                hygiene::put_image_hash(&self.pool, hash).await
            }
            async fn image_hashes(&self) -> Result<Vec<ImageHash>> {
                hygiene::image_hashes(&self.pool).await
            }
            async fn images_without_hash(&self, limit: u32) -> Result<Vec<String>> {
                hygiene::images_without_hash(&self.pool, limit).await
            }
            async fn keep_duplicate_group(&self, group_key: &str, image_ids: &[String], user: &str) -> Result<()> {
                hygiene::keep_duplicate_group(&self.pool, group_key, image_ids, user).await
            }
            async fn kept_duplicate_groups(&self) -> Result<Vec<(String, String)>> {
                hygiene::kept_duplicate_groups(&self.pool).await
            }
        }
    };
}
