//! Fast pure-Rust CPU inference for EfficientNet-Lite (0/1/2), without burn.
//!
//! - Activations are NHWC, so 1x1 convolutions are plain matrix products (`conv1x1.rs`) and depthwise convolutions read
//!   contiguous channels (`depthwise.rs`).
//! - BatchNorm is folded into the convolutions at load; bias, ReLU6 and residual adds are fused into the kernels' stores.
//! - Blocks whose expanded tensor would spill out of cache run fused, a band of rows at a time (`block.rs`).
//! - AVX-512 or AVX2/FMA kernels are picked at run time (the crate builds for baseline x86_64) with a portable
//!   fallback; `FOVEA_KERNELS=avx512|avx2|portable` forces one ([`Isa::choose`]).
//! - Batches are split by image across threads; single images by rows of every layer, or by columns where a layer has
//!   few rows and many weights (`split.rs`).
//!
//! ```
//! use fovea_kernels::{random::NetSpec, Config, FastLite};
//!
//! let tensors = NetSpec::lite0().tensors(7); // or the real weights, under their PyTorch names
//! let net = FastLite::from_tensors_with(&tensors, &Config { threads: 2, ..Config::default() })?;
//! let image = vec![0.0f32; 3 * 64 * 64]; // NCHW, (pixel - 127) / 128
//! let embedding = net.embed(&image, 1, 64)?;
//! let logits = net.classify(&embedding, 1);
//! assert_eq!((embedding.len(), logits.len()), (1280, 1000));
//! # Ok::<(), fovea_kernels::Error>(())
//! ```

mod block;
mod conv1x1;
mod depthwise;
mod error;
mod network;
mod simd;
mod split;
mod stem;
mod team;
mod weights;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

pub use error::{Error, Result};
pub use network::{Config, FastLite, Fusion};
pub use simd::{Isa, KERNELS_ENV};
pub use weights::{Tensor, BN_EPS, STAGE_STRIDES};

pub mod random;

/// Kernel cases and their f64 references: the unit tests and the AVX-512 emulation check run the same ones.
#[doc(hidden)]
pub mod check;

/// The individual kernels, for micro-benchmarks; not a stable API.
#[doc(hidden)]
pub mod kernels {
    pub use crate::conv1x1::{matmul, Act, Packed};
    pub use crate::depthwise::Depthwise;
}
