//! The one error type of this crate.
//!
//! Every variant has a short, stable [`VisionError::code`] so the server can map it to an HTTP status
//! in one place without parsing messages; the `Display` text is meant for the person who uploaded
//! the file.

use std::path::PathBuf;

/// Everything that can go wrong between raw bytes and a decoded RGB image.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// Zero bytes: usually a failed upload or an empty file.
    #[error("the file is empty (0 bytes)")]
    Empty,

    /// More bytes than [`crate::DecodeLimits::max_bytes`]; refused before any parsing.
    #[error("the file is too large: {bytes} bytes, the limit is {max} bytes")]
    TooLarge { bytes: u64, max: u64 },

    /// The bytes match no known image signature.
    #[error("the file is not an image (no known image format signature)")]
    NotAnImage,

    /// A recognised image format that this service deliberately does not decode.
    #[error("unsupported image format: {format} (supported: JPEG, PNG, GIF, WebP, BMP, TIFF)")]
    UnsupportedFormat { format: String },

    /// Width × height exceeds [`crate::DecodeLimits::max_pixels`]; refused from the header alone
    /// (a decompression bomb never gets its pixel buffer allocated).
    #[error("the image is too big: {width}x{height} = {pixels} pixels, the limit is {max} pixels")]
    TooManyPixels { width: u32, height: u32, pixels: u64, max: u64 },

    /// A side is shorter than [`crate::DecodeLimits::min_side`].
    #[error("the image is too small: {width}x{height}, each side must be at least {min} pixels")]
    TooSmall { width: u32, height: u32, min: u32 },

    /// The data ends before the image does (an interrupted upload or copy).
    #[error("the {format} file is truncated (it ends before the image data is complete)")]
    Truncated { format: &'static str },

    /// The header was recognised but the data inside is malformed.
    #[error("the {format} file is corrupt: {detail}")]
    Corrupt { format: &'static str, detail: String },

    /// Reading a file from disk failed ([`crate::decode_file`] only).
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl VisionError {
    /// A short, stable, machine-readable code (snake_case) for HTTP mapping and metrics labels.
    /// These strings are part of the public contract: never rename one.
    pub fn code(&self) -> &'static str {
        match self {
            VisionError::Empty => "empty",
            VisionError::TooLarge { .. } => "too_large",
            VisionError::NotAnImage => "not_an_image",
            VisionError::UnsupportedFormat { .. } => "unsupported_format",
            VisionError::TooManyPixels { .. } => "too_many_pixels",
            VisionError::TooSmall { .. } => "too_small",
            VisionError::Truncated { .. } => "truncated",
            VisionError::Corrupt { .. } => "corrupt",
            VisionError::Io { .. } => "io",
        }
    }

    /// Whether the fault lies with the submitted bytes (a 4xx) rather than with this machine (a 5xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, VisionError::Io { .. })
    }
}

/// Result with [`VisionError`].
pub type Result<T, E = VisionError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_messages_are_human() {
        let e = VisionError::TooSmall { width: 1, height: 1, min: 16 };
        assert_eq!(e.code(), "too_small");
        assert_eq!(e.to_string(), "the image is too small: 1x1, each side must be at least 16 pixels");
        assert_eq!(VisionError::Empty.code(), "empty");
        assert_eq!(VisionError::NotAnImage.code(), "not_an_image");
        assert!(VisionError::Empty.is_client_error());
        let io = VisionError::Io { path: "/nope".into(), source: std::io::Error::from(std::io::ErrorKind::NotFound) };
        assert_eq!(io.code(), "io");
        assert!(!io.is_client_error());
    }
}
