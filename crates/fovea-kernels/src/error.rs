//! The crate's one error type.

/// Everything that can go wrong while building or running the fast network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("missing tensor `{0}`")]
    MissingTensor(String),
    #[error("tensor `{name}` has shape {got:?}, expected {expected}")]
    BadShape { name: String, expected: String, got: Vec<usize> },
    #[error("tensor `{name}` has {got} values but its shape {shape:?} needs {expected}")]
    DataLength { name: String, shape: Vec<usize>, expected: usize, got: usize },
    #[error("network layout not understood: {0}")]
    Layout(String),
    #[error("input has {got} values, expected {expected} (batch {batch} x 3 x {h} x {w})")]
    InputLength { expected: usize, got: usize, batch: usize, h: usize, w: usize },
    #[error("input size must be at least 1 pixel, got {0}")]
    InputSize(usize),
    #[error("could not start the worker threads: {0}")]
    Threads(String),
    #[error("FOVEA_KERNELS={0:?} is not one of avx512, avx2, portable, auto")]
    KernelsEnv(String),
    #[error("the {0} kernels were asked for but this CPU lacks the instructions")]
    UnsupportedIsa(&'static str),
}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
