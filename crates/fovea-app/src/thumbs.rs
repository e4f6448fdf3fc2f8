//! Server-side thumbnails, so a grid of results never ships full-size originals. Made once per image and size,
//! then kept in the blob store beside the original.

use bytes::Bytes;

use crate::{App, AppError, Result};

/// Sizes a client may ask for (longest side, pixels); a fixed set keeps the cache small.
pub const THUMB_SIZES: [u32; 3] = [96, 192, 384];

impl App {
    /// A JPEG of the image whose longest side is at most `size`, from the cache or made now.
    pub async fn thumbnail(&self, id: &str, size: u32) -> Result<Bytes> {
        if !THUMB_SIZES.contains(&size) {
            return Err(AppError::Invalid(format!("thumbnail size must be one of {THUMB_SIZES:?}")));
        }
        let key = format!("thumbs/{size}/{id}.jpg");
        if self.blobs.exists(&key).await? {
            return Ok(self.blobs.get(&key).await?);
        }
        let original = self.image_bytes(id).await?;
        let limits = self.cfg.limits;
        let thumb = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
            let img = fovea_vision::decode(&original, &limits)?;
            let small = image::DynamicImage::ImageRgb8(img).thumbnail(size, size).to_rgb8();
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82)
                .encode_image(&small)
                .map_err(|e| AppError::Internal(format!("encoding a thumbnail: {e}")))?;
            Ok(out)
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))??;
        let thumb = Bytes::from(thumb);
        self.blobs.put(&key, thumb.clone()).await?;
        Ok(thumb)
    }
}

/// Everything about one image for its detail view: the record, its label history, what the models said about it,
/// its tags and what the served model says now.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ImageDetail {
    pub id: String,
    pub width: u32,
    pub height: u32,
    pub format: String,
    pub source: String,
    pub split: String,
    pub created_at: i64,
    /// Newest first.
    pub labels: Vec<fovea_store::LabelRecord>,
    /// The newest 20 predictions and corrections.
    pub transactions: Vec<fovea_store::TransactionRecord>,
    pub tags: Vec<String>,
    /// The served model's answer now, from the cached embedding (none when the image has none under it).
    pub now: Option<fovea_store::ScoredClass>,
}

impl App {
    pub async fn image_detail(&self, id: &str) -> Result<ImageDetail> {
        let image =
            self.catalog.get_image(id).await?.ok_or_else(|| AppError::NotFound { what: "image", id: id.to_owned() })?;
        let now = self.current_top1(&[id.to_owned()]).await?.pop().flatten();
        Ok(ImageDetail {
            labels: self.catalog.image_labels(id).await?,
            transactions: self.catalog.image_transactions(id, 20).await?,
            tags: self.catalog.image_tags(id).await?,
            now,
            id: image.id,
            width: image.width,
            height: image.height,
            format: image.format,
            source: image.source,
            split: image.split.as_str().to_owned(),
            created_at: image.created_at,
        })
    }
}
