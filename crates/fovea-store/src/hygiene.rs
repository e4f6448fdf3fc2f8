//! Dataset hygiene records: confirmed labels (a person kept a label the model disputed), perceptual hashes for
//! near-duplicate search, and duplicate groups kept whole. A seam of its own, like [`crate::CollectionStore`].

use std::collections::HashSet;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The hashes near duplicates are found with, for one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageHash {
    pub image_id: String,
    /// Difference hash of the decoded picture (see `fovea_train::perceptual::dhash`).
    pub dhash: u64,
    /// SHA-256 of the decoded RGB pixels and the size: equal for re-encodings of the same picture.
    pub pixel_sha256: String,
}

#[async_trait]
pub trait HygieneStore: Send + Sync {
    /// Records that `user` looked at label `label_id` of `image_id` and kept it; confirming twice is a no-op.
    /// `NotFound` when the label is not the image's.
    async fn confirm_label(&self, image_id: &str, label_id: i64, user: &str) -> Result<()>;
    /// Every confirmed label id.
    async fn confirmed_labels(&self) -> Result<HashSet<i64>>;

    async fn put_image_hash(&self, hash: &ImageHash) -> Result<()>;
    /// Every stored hash.
    async fn image_hashes(&self) -> Result<Vec<ImageHash>>;
    /// Up to `limit` images that have no stored hash yet, oldest first.
    async fn images_without_hash(&self, limit: u32) -> Result<Vec<String>>;

    /// Records a duplicate group kept whole under `group_key`.
    async fn keep_duplicate_group(&self, group_key: &str, image_ids: &[String], user: &str) -> Result<()>;
    /// `(group_key, image_id)` of every kept group member.
    async fn kept_duplicate_groups(&self) -> Result<Vec<(String, String)>>;
}
