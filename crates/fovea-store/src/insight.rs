//! Records behind reports, manual evaluations and drift alerts: a seam of its own (a supertrait of
//! [`crate::Catalog`]). The report rows themselves are `fovea-insight`'s plain types.

use async_trait::async_trait;
use fovea_insight::{Log, PlannedItem, Stratum};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Millis;

/// The user name bulk identification logs its predictions under. Those are a person sifting a folder on purpose,
/// not the stream of requests, so drift windows leave them out (reports still count them as usage).
pub const IDENTIFY_USER: &str = "identify";

/// The user name imports label under: their labels and the transactions they log are no person's work.
pub const IMPORT_USER: &str = "import";

/// A served prediction as the drift window sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftRow {
    pub transaction_id: i64,
    pub image_id: String,
    pub at: Millis,
    pub model_version: String,
    pub class: Option<String>,
    pub confidence: Option<f64>,
    pub unknown: bool,
    pub look: ImageLook,
}

/// An image's size and simple statistics (`None` until measured).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImageLook {
    pub width: u32,
    pub height: u32,
    pub brightness: Option<f64>,
    pub grayscale: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EvaluationRound {
    pub id: i64,
    pub model_version: String,
    pub since: Millis,
    pub population: u64,
    #[schema(value_type = Vec<Object>)]
    pub strata: Vec<Stratum>,
    pub created_by: String,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Right,
    Wrong,
    Skip,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Right => "right",
            Verdict::Wrong => "wrong",
            Verdict::Skip => "skip",
        }
    }
}

/// One sampled prediction, with what was served and the reviewer's answer once given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EvaluationItem {
    pub id: i64,
    pub round_id: i64,
    pub transaction_id: i64,
    pub image_id: String,
    pub stratum: String,
    pub served_class: Option<String>,
    pub served_probability: Option<f64>,
    pub verdict: Option<Verdict>,
    pub correct_class: Option<String>,
    pub answered_by: Option<String>,
    pub answered_at: Option<Millis>,
}

/// A drift alert as raised: which signal moved, by how much, since when, with example images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewDriftAlert {
    pub signal: String,
    pub statistic: f64,
    pub threshold: f64,
    pub reference: f64,
    pub current: f64,
    pub detail: String,
    pub since: Millis,
    pub examples: Vec<String>,
    pub model_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DriftAlertRecord {
    pub id: i64,
    /// Its fields sit beside `id` in JSON.
    #[serde(flatten)]
    pub alert: NewDriftAlert,
    pub raised_at: Millis,
    pub cleared_at: Option<Millis>,
}

#[async_trait]
pub trait InsightStore: Send + Sync {
    /// Served predictions since `since` (all when `None`) with the human verdict that followed each, plus the
    /// corrections and human labels of the same period.
    async fn insight_log(&self, since: Option<Millis>) -> Result<Log>;
    /// The newest `limit` requested predictions (optionally only those made in `[from, to)`), oldest first; bulk
    /// identification's are left out.
    async fn recent_predictions(&self, limit: u32, period: Option<(Millis, Millis)>) -> Result<Vec<DriftRow>>;
    /// Requested predictions logged after transaction `after`, oldest first, at most `limit`: how a process
    /// follows the requests every replica served (bulk identification's are left out).
    async fn predictions_after(&self, after: i64, limit: u32) -> Result<Vec<DriftRow>>;
    async fn image_look(&self, image_id: &str) -> Result<Option<ImageLook>>;
    /// Records an image's statistics, measured after the fact.
    async fn set_image_look(&self, image_id: &str, brightness: f64, grayscale: bool) -> Result<()>;

    /// Creates a round and its sampled items in one transaction.
    async fn create_evaluation(
        &self,
        model_version: &str,
        since: Millis,
        strata: &[Stratum],
        items: &[PlannedItem],
        user: &str,
    ) -> Result<EvaluationRound>;
    /// Newest first.
    async fn list_evaluations(&self) -> Result<Vec<EvaluationRound>>;
    async fn get_evaluation(&self, id: i64) -> Result<Option<EvaluationRound>>;
    async fn evaluation_items(&self, round: i64) -> Result<Vec<EvaluationItem>>;
    async fn get_evaluation_item(&self, id: i64) -> Result<Option<EvaluationItem>>;
    /// Records a reviewer's answer (a later answer replaces an earlier one).
    async fn answer_evaluation(
        &self,
        item: i64,
        verdict: Verdict,
        correct_class: Option<&str>,
        user: &str,
    ) -> Result<EvaluationItem>;

    /// Raises an alert unless one of the same signal is open (raised here or by another process sharing the
    /// catalog, atomically); returns `None` then, so only one process announces it.
    async fn raise_drift_alert(&self, alert: NewDriftAlert) -> Result<Option<DriftAlertRecord>>;
    /// Clears the open alerts of `signal`; returns how many.
    async fn clear_drift_alerts(&self, signal: &str) -> Result<u64>;
    /// Newest first; only open ones when `open_only`.
    async fn list_drift_alerts(&self, open_only: bool, limit: u32) -> Result<Vec<DriftAlertRecord>>;
}
