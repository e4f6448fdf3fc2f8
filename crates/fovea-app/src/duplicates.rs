//! Duplicate groups across every stored image — labelled ones and collection results alike — and their one-click
//! resolution. Exact copies collapse at upload already (an image's id is the SHA-256 of its bytes); these groups
//! are what is left: the same pixels in other bytes, and near copies (see [`fovea_train::duplicates`]).
//!
//! Resolving: "keep one" moves the other copies to Unknown and "discard" moves them all there — kept in the store,
//! never trained on, one undoable bulk action; "keep all" records the group as seen, so it is not shown again until
//! it gains a member.

use std::collections::{BTreeSet, HashMap};

use fovea_store::{BulkActionRecord, BulkChange, BulkTarget, ImageFilter, ImageHash, LabelOrigin};
use fovea_train::duplicates::{duplicate_groups, DuplicateConfig, DuplicateGroup, DuplicateKind, Fingerprint};
use serde::{Deserialize, Serialize};

use crate::{App, AppError, Result};

/// Images hashed per round trip while filling in missing hashes.
const HASH_BATCH: u32 = 32;
/// Most images one resolution may name.
pub const MAX_GROUP: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DuplicateMember {
    pub image_id: String,
    /// The current label, if any.
    pub label: Option<String>,
    pub split: String,
    /// Where it came from (an upload, an import, a collection's folder).
    pub source: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DuplicateGroupView {
    /// Names the group's membership; pass it back to keep the group whole.
    pub key: String,
    /// `exact` (same pixels) or `near`.
    pub kind: String,
    pub members: Vec<DuplicateMember>,
    /// Distinct labels in the group (Unknown left out).
    pub labels: Vec<String>,
    /// True when members carry different labels: at least one of them is wrong, or the copies are not copies.
    pub conflict: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DuplicateReport {
    /// Images compared.
    pub images: usize,
    /// Groups a person kept whole earlier, not shown.
    pub kept: usize,
    /// Conflicting groups first, then by size.
    pub groups: Vec<DuplicateGroupView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Keep `keep`; the other copies go to Unknown.
    KeepOne,
    /// They are fine as they are: do not show this group again.
    KeepAll,
    /// Every member goes to Unknown.
    Discard,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ResolveRequest {
    pub action: Resolution,
    /// The group's members, as listed.
    pub images: Vec<String>,
    /// For `keep_one`: the member kept.
    #[serde(default)]
    pub keep: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ResolveOutcome {
    pub action: Resolution,
    /// The bulk action that moved copies to Unknown (undo it at `/api/v1/bulk/{id}/undo`).
    pub bulk: Option<BulkActionRecord>,
    pub kept_group: Option<String>,
}

/// The key of a group: a hash of its members' ids, sorted.
pub fn group_key(ids: &[String]) -> String {
    let sorted: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    fovea_store::sha256_hex(sorted.into_iter().collect::<Vec<_>>().join(",").as_bytes())
}

/// The pixel key: SHA-256 of the size and the decoded RGB pixels.
fn pixel_key(img: &image::RgbImage) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(img.width().to_le_bytes());
    h.update(img.height().to_le_bytes());
    h.update(img.as_raw());
    hex::encode(h.finalize())
}

/// Every stored image's id with what the duplicate finder needs, and the groups it finds.
pub(crate) struct Found {
    pub rows: Vec<fovea_store::ImageRow>,
    pub groups: Vec<DuplicateGroup>,
}

impl App {
    /// Computes the perceptual and pixel hashes of images that have none yet (in small batches, so memory stays
    /// flat). Returns how many were hashed.
    pub async fn hash_missing_images(&self) -> Result<usize> {
        let mut done = 0;
        loop {
            let ids = self.catalog.images_without_hash(HASH_BATCH).await?;
            if ids.is_empty() {
                return Ok(done);
            }
            for id in ids {
                let bytes = self.image_bytes(&id).await?;
                let limits = self.cfg.limits;
                let hashed = tokio::task::spawn_blocking(move || -> Result<ImageHash> {
                    let img = fovea_vision::decode(&bytes, &limits)?;
                    Ok(ImageHash {
                        dhash: fovea_train::perceptual::dhash(&img),
                        pixel_sha256: pixel_key(&img),
                        image_id: id,
                    })
                })
                .await
                .map_err(|e| AppError::Internal(e.to_string()))??;
                self.catalog.put_image_hash(&hashed).await?;
                done += 1;
            }
        }
    }

    /// Duplicate groups over every stored image, with the served backbone's embeddings where cached.
    pub(crate) async fn find_duplicates(&self, config: &DuplicateConfig) -> Result<Found> {
        self.hash_missing_images().await?;
        let hashes: HashMap<String, ImageHash> =
            self.catalog.image_hashes().await?.into_iter().map(|h| (h.image_id.clone(), h)).collect();
        let backbone = self.served_model().await;
        let mut rows = Vec::new();
        let mut embeddings = Vec::new();
        for row in self.catalog.list_images(&ImageFilter::default()).await? {
            if !hashes.contains_key(&row.image.id) {
                continue;
            }
            embeddings.push(self.catalog.get_embedding(&row.image.id, &backbone).await?);
            rows.push(row);
        }
        let config = *config;
        let keyed: Vec<ImageHash> = rows.iter().map(|r| hashes[&r.image.id].clone()).collect();
        let groups = tokio::task::spawn_blocking(move || {
            let items: Vec<Fingerprint> = keyed
                .iter()
                .zip(&embeddings)
                .map(|(h, e)| Fingerprint { pixels: &h.pixel_sha256, dhash: h.dhash, embedding: e.as_deref() })
                .collect();
            duplicate_groups(&items, &config)
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
        Ok(Found { rows, groups })
    }

    /// Per image in a duplicate group: the group's smallest image id (images alone in their group are left out).
    pub(crate) async fn duplicate_links(&self, config: &DuplicateConfig) -> Result<HashMap<String, String>> {
        let Found { rows, groups } = self.find_duplicates(config).await?;
        let mut links = HashMap::new();
        for g in groups {
            let Some(first) = g.members.iter().map(|&i| &rows[i].image.id).min().cloned() else { continue };
            for &i in &g.members {
                links.insert(rows[i].image.id.clone(), first.clone());
            }
        }
        Ok(links)
    }

    /// Duplicate groups a person has not kept whole yet, conflicting ones first.
    pub async fn duplicates(&self) -> Result<DuplicateReport> {
        let Found { rows, groups } = self.find_duplicates(&DuplicateConfig::default()).await?;
        let unknown = self.catalog.unknown_class().await?.name;
        let kept: BTreeSet<String> = self.catalog.kept_duplicate_groups().await?.into_iter().map(|(k, _)| k).collect();
        let mut views = Vec::new();
        let mut hidden = 0;
        for g in groups {
            let ids: Vec<String> = g.members.iter().map(|&i| rows[i].image.id.clone()).collect();
            let key = group_key(&ids);
            if kept.contains(&key) {
                hidden += 1;
                continue;
            }
            let members: Vec<DuplicateMember> = g
                .members
                .iter()
                .map(|&i| DuplicateMember {
                    image_id: rows[i].image.id.clone(),
                    label: rows[i].current_class.clone(),
                    split: rows[i].image.split.as_str().to_owned(),
                    source: rows[i].image.source.clone(),
                    width: rows[i].image.width,
                    height: rows[i].image.height,
                })
                .collect();
            let labels: BTreeSet<String> =
                members.iter().filter_map(|m| m.label.clone()).filter(|l| *l != unknown).collect();
            let kind = match g.kind {
                DuplicateKind::Exact => "exact",
                DuplicateKind::Near => "near",
            };
            views.push(DuplicateGroupView {
                key,
                kind: kind.into(),
                conflict: labels.len() > 1,
                labels: labels.into_iter().collect(),
                members,
            });
        }
        views.sort_by(|a, b| b.conflict.cmp(&a.conflict).then(b.members.len().cmp(&a.members.len())));
        Ok(DuplicateReport { images: rows.len(), kept: hidden, groups: views })
    }

    /// Resolves one duplicate group (see the module comment).
    pub async fn resolve_duplicates(&self, req: &ResolveRequest, user: &str) -> Result<ResolveOutcome> {
        let ids: BTreeSet<&String> = req.images.iter().collect();
        if ids.len() < 2 || ids.len() > MAX_GROUP {
            return Err(AppError::Invalid(format!("a duplicate group names 2 to {MAX_GROUP} distinct images")));
        }
        for id in &ids {
            fovea_store::validate_image_id(id)?;
            if self.catalog.get_image(id).await?.is_none() {
                return Err(AppError::NotFound { what: "image", id: (*id).clone() });
            }
        }
        let to_unknown: Vec<&String> = match req.action {
            Resolution::KeepAll => {
                let key = group_key(&req.images);
                self.catalog.keep_duplicate_group(&key, &req.images, user).await?;
                return Ok(ResolveOutcome { action: req.action, bulk: None, kept_group: Some(key) });
            }
            Resolution::Discard => ids.iter().copied().collect(),
            Resolution::KeepOne => {
                let keep = req.keep.as_ref().ok_or_else(|| AppError::Invalid("keep_one needs `keep`".into()))?;
                if !ids.contains(keep) {
                    return Err(AppError::Invalid(format!("`keep` ({keep}) is not one of the group's images")));
                }
                ids.iter().copied().filter(|id| *id != keep).collect()
            }
        };
        let unknown = self.catalog.unknown_class().await?.id;
        let targets: Vec<BulkTarget> = to_unknown
            .iter()
            .map(|id| BulkTarget { image_id: (*id).clone(), class_id: Some(unknown), item: None })
            .collect();
        let detail = serde_json::json!({
            "action": "duplicates", "resolution": req.action, "keep": req.keep, "selected": targets.len(),
        });
        let change = BulkChange::Label { origin: LabelOrigin::Human };
        let bulk = self.apply_bulk_change(&change, &detail, &targets, user).await?;
        Ok(ResolveOutcome { action: req.action, bulk: Some(bulk), kept_group: None })
    }
}
