//! The JSON shapes of the API, typed so `/openapi.json` is generated from the same structs the handlers answer with.

use fovea_app::{ClassView, JobRecord, ModelVersionRecord, ScoredClass, TransactionRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unhealthy` (answered with 503) while the compute worker is down.
    pub status: &'static str,
    pub model_version: String,
    /// The engine serving the model: fast, burn or ort.
    pub engine: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub user: String,
    /// viewer, annotator or admin.
    pub role: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_an_image`, `forbidden`.
    pub code: String,
    pub message: String,
}

#[derive(Deserialize, ToSchema)]
pub struct LabelBody {
    /// An existing class name, or a new one (created on the fly).
    pub class: String,
}

#[derive(Deserialize, ToSchema)]
pub struct NameBody {
    pub name: String,
}

#[derive(Deserialize, ToSchema)]
pub struct MergeBody {
    /// Name of the class that absorbs this one.
    pub into: String,
}

#[derive(Serialize, ToSchema)]
pub struct ClassesPage {
    /// Images per class a fine-tune run needs; classes below it are left out.
    pub cutoff: u64,
    /// The longest class name the server accepts, in characters (the UI enforces the same).
    pub max_name_chars: usize,
    pub classes: Vec<ClassView>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImagesQuery {
    /// Current label (class name).
    pub class: Option<String>,
    pub labelled: Option<bool>,
    /// Lowest top-1 probability, 0..1.
    pub min_conf: Option<f64>,
    /// Highest top-1 probability, 0..1.
    pub max_conf: Option<f64>,
    /// Id prefix, or part of a file name (import or collection path) or class name.
    pub search: Option<String>,
    /// `newest` (default), `oldest`, `class`, or `lowest_confidence`: the least certain answers first.
    pub sort: Option<fovea_app::ImageSort>,
    /// Page size, 1..500 (default 60).
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: u32,
}

#[derive(Serialize, ToSchema)]
pub struct ImageSummary {
    pub id: String,
    pub class: Option<String>,
    pub width: u32,
    pub height: u32,
    /// The newest logged prediction's top-1 (made at upload); the confidence filters use it.
    pub top1: Option<ScoredClass>,
    /// The served model's top-1 now (after every label, merge and promotion since the upload).
    pub model_top1: Option<ScoredClass>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ImagesPage {
    pub total: u64,
    pub images: Vec<ImageSummary>,
}

/// `GET /api/v1/transactions` query: a page, narrowed by user, class, kind and day range (UTC).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: u32,
    pub user: Option<String>,
    /// A correction's chosen class or a prediction's top-1.
    pub class: Option<String>,
    /// `predict` or `correct`.
    pub kind: Option<String>,
    /// First day included, `YYYY-MM-DD`.
    pub since: Option<String>,
    /// Last day included, `YYYY-MM-DD`.
    pub until: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TransactionsPage {
    pub transactions: Vec<TransactionRecord>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelsPage {
    /// Id of the model version being served now.
    pub served: String,
    pub models: Vec<ModelVersionRecord>,
    /// The served online head's calibration and the held-out evidence behind it (absent until fitted).
    pub calibration: Option<fovea_app::CalibrationReport>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// How many of the newest jobs, 1..200 (default 20).
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct JobsPage {
    pub jobs: Vec<JobRecord>,
}
