use thiserror::Error;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error("invalid training configuration: {0}")]
    Config(String),
    #[error("not enough data: {0}")]
    NotEnoughData(String),
    /// A photo kept out of memory could not be loaded again (its blob vanished or no longer decodes).
    #[error("loading a training image: {0}")]
    Load(String),
    #[error("training was cancelled")]
    Cancelled,
    /// The tensor backend failed (reading values back, an unsupported dtype): a bug or a broken build, not bad input.
    #[error("tensor backend: {0}")]
    Backend(String),
    #[error(transparent)]
    Model(#[from] fovea_model::ModelError),
}

pub type Result<T> = std::result::Result<T, TrainError>;
