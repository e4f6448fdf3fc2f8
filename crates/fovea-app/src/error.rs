use fovea_store::StoreError;
use fovea_vision::VisionError;

/// Everything a use case can refuse or fail with; the HTTP layer maps each to one status code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Image(#[from] VisionError),
    #[error("{0}")]
    Invalid(String),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("missing or unknown API token")]
    Unauthorized,
    #[error("this needs the {needed} role; you are {have}")]
    Forbidden { needed: &'static str, have: String },
    #[error("the model is busy; retry shortly")]
    Overloaded,
    #[error("storage: {0}")]
    Store(StoreError),
    #[error("online head: {0}")]
    Head(#[from] fovea_learn::Error),
    #[error("model: {0}")]
    Model(#[from] fovea_model::ModelError),
    #[error("training: {0}")]
    Train(#[from] fovea_train::TrainError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what, id } => AppError::NotFound { what, id },
            StoreError::AlreadyExists { what, name } => AppError::Conflict(format!("{what} {name:?} already exists")),
            StoreError::Invalid(m) => AppError::Invalid(m),
            other => AppError::Store(other),
        }
    }
}

impl AppError {
    /// A short stable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Image(e) => e.code(),
            AppError::Invalid(_) => "invalid",
            AppError::NotFound { .. } => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::Unauthorized => "unauthorized",
            AppError::Forbidden { .. } => "forbidden",
            AppError::Overloaded => "overloaded",
            AppError::Train(fovea_train::TrainError::NotEnoughData(_)) => "not_enough_data",
            AppError::Train(fovea_train::TrainError::Config(_)) => "invalid",
            AppError::Train(fovea_train::TrainError::Cancelled) => "cancelled",
            AppError::Store(_)
            | AppError::Head(_)
            | AppError::Model(_)
            | AppError::Train(_)
            | AppError::Internal(_) => "internal",
        }
    }
}

pub type Result<T> = std::result::Result<T, AppError>;
