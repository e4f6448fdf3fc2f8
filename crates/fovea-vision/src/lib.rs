//! fovea-vision: from untrusted image bytes to the network's input tensor.
//!
//! - [`decode`] / [`decode_file`]: any common format → upright RGB8, with size limits and typed errors;
//!   [`decode_for_input`] also decodes large JPEGs at a reduced size when only a network input is wanted.
//! - [`to_input`]: shorter side → `size / 0.875`, centre `size` crop (the weights' evaluation protocol), CHW
//!   floats normalised as `(p − 127) / 128`.
//! - [`Augment`]: seeded random flip / rotation / zoom with the same output layout, for fine-tuning.

mod augment;
mod decode;
mod error;
mod jpeg;
mod preprocess;
mod threads;

/// Small image builders (EXIF, lying headers, noise) shared by this crate's tests and the API's bad-input tests.
#[doc(hidden)]
pub mod fixtures;

pub use augment::Augment;
pub use decode::{
    decode, decode_file, decode_file_for_input, decode_for_input, decode_for_input_sized, input_min_side, DecodeLimits,
};
pub use error::{Result, VisionError};
pub use preprocess::{resize_size, to_input, CROP_FRACTION, NORM_MEAN, NORM_STD};

/// Re-exported so callers name the same `image` version this crate decodes with.
pub use image;
