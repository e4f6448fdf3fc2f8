use thiserror::Error;

/// Everything that can go wrong inside the learning core.
#[derive(Debug, Error)]
pub enum Error {
    #[error("embedding has dimension {got}, head expects {expected}")]
    Dimension { expected: usize, got: usize },
    #[error("embedding contains a non-finite value")]
    NonFinite,
    #[error("unknown class id {0}")]
    UnknownClassId(u32),
    #[error("unknown class name {0:?}")]
    UnknownClass(String),
    #[error("class {0:?} has no learned sample to remove")]
    NothingToUnlearn(String),
    #[error("heads are incompatible: {0}")]
    Incompatible(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("unknown head kind {0:?} (expected slda, ncm or ncm-cosine)")]
    UnknownKind(String),
    #[error("not enough data: {0}")]
    NotEnoughData(String),
    #[error("snapshot is malformed: {0}")]
    Snapshot(String),
    #[error("snapshot json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("matrix is not positive definite")]
    NotPositiveDefinite,
}

pub type Result<T> = std::result::Result<T, Error>;

/// Reject wrong-sized or non-finite input once, at the boundary, so the math below can trust it.
pub(crate) fn check_embedding(x: &[f32], dim: usize) -> Result<()> {
    if x.len() != dim {
        return Err(Error::Dimension { expected: dim, got: x.len() });
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFinite);
    }
    Ok(())
}
