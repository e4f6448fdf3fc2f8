//! Duplicate groups for people to look at (the dataset builder's grouping keeps them in one split; this finds and
//! names them): exact copies (same decoded pixels, whatever the file's bytes), and near copies — a perceptual hash
//! within a few bits (re-encodes, resizes, brightening) or backbone embeddings pointing the same way (small crops,
//! which shift the hash's grid). Groups are transitive, like the builder's.

use serde::{Deserialize, Serialize};

use crate::dataset::grouping::{group, UnionFind};
use crate::perceptual::hamming;

/// One image as the finder sees it.
#[derive(Debug, Clone)]
pub struct Fingerprint<'a> {
    /// Equal for images whose decoded pixels are equal (e.g. SHA-256 of size and pixels).
    pub pixels: &'a str,
    pub dhash: u64,
    /// The backbone's embedding, when there is one.
    pub embedding: Option<&'a [f32]>,
}

/// When two images count as near duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DuplicateConfig {
    /// Difference hashes at most this many bits apart. 2, as the dataset builder uses: more chains unrelated small
    /// images with flat backgrounds (digits) into one group.
    pub max_hash_bits: u32,
    /// Embeddings (EfficientNet-Lite0, pooled) with at least this cosine similarity... Measured on twelve sample
    /// photos: a copy cropped by 5 % on each side sits at 0.91–0.97 from its original (resized, re-encoded and
    /// brightened copies at 0.93–1.0), while no two different photos reached 0.7; but two different handwritten
    /// digits of one class can reach 0.98, hence the second condition.
    pub min_cosine: f32,
    /// ...whose hashes are also at most this many bits apart: such a crop moved the hash by 1–18 bits, while two
    /// different pictures the backbone finds alike (two handwritten 3s) rarely share the hash's coarse layout too.
    pub max_hash_bits_with_embedding: u32,
    /// Embeddings compared pairwise at most; beyond this only hashes link images (the comparison is quadratic).
    pub max_embedding_images: usize,
}

impl Default for DuplicateConfig {
    fn default() -> Self {
        Self { max_hash_bits: 2, min_cosine: 0.92, max_hash_bits_with_embedding: 20, max_embedding_images: 20_000 }
    }
}

impl DuplicateConfig {
    /// Stricter links for the leakage check, where a false group blocks a promotion: embeddings must agree more
    /// closely and the hashes' layouts too.
    pub fn strict() -> Self {
        Self { min_cosine: 0.96, max_hash_bits_with_embedding: 12, ..Self::default() }
    }
}

/// How the members of a group are related.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateKind {
    /// Every member has the same pixels.
    Exact,
    /// At least one member is only similar.
    Near,
}

/// A group of two or more images, by index into the fingerprints given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateGroup {
    pub members: Vec<usize>,
    pub kind: DuplicateKind,
}

fn unit(v: &[f32]) -> Option<Vec<f32>> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    (norm > 0.0 && norm.is_finite()).then(|| v.iter().map(|x| x / norm).collect())
}

/// Groups `items`; groups of one are left out, and groups come in the order of their smallest member.
pub fn duplicate_groups(items: &[Fingerprint<'_>], config: &DuplicateConfig) -> Vec<DuplicateGroup> {
    let n = items.len();
    let keys: Vec<&str> = items.iter().map(|f| f.pixels).collect();
    let hashes: Vec<u64> = items.iter().map(|f| f.dhash).collect();
    let by_hash = group(&keys, &hashes, config.max_hash_bits, false);
    let mut uf = UnionFind::new(n);
    for (i, &label) in by_hash.iter().enumerate() {
        uf.union(i, label);
    }
    let embedded: Vec<(usize, Vec<f32>)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.embedding.and_then(unit).map(|u| (i, u)))
        .take(config.max_embedding_images)
        .collect();
    for (a, (i, u)) in embedded.iter().enumerate() {
        for (j, v) in &embedded[a + 1..] {
            if hamming(hashes[*i], hashes[*j]) > config.max_hash_bits_with_embedding {
                continue;
            }
            let cosine: f32 = u.iter().zip(v).map(|(x, y)| x * y).sum();
            if cosine >= config.min_cosine {
                uf.union(*i, *j);
            }
        }
    }
    let mut members: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for i in 0..n {
        members.entry(uf.find(i)).or_default().push(i);
    }
    let mut groups: Vec<DuplicateGroup> = members
        .into_values()
        .filter(|m| m.len() > 1)
        .map(|members| {
            let exact = members.iter().all(|&i| keys[i] == keys[members[0]]);
            DuplicateGroup { members, kind: if exact { DuplicateKind::Exact } else { DuplicateKind::Near } }
        })
        .collect();
    groups.sort_by_key(|g| g.members[0]);
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp<'a>(pixels: &'a str, dhash: u64, embedding: Option<&'a [f32]>) -> Fingerprint<'a> {
        Fingerprint { pixels, dhash, embedding }
    }

    #[test]
    fn exact_hash_and_embedding_links_make_groups() {
        let (a, b, c) = ([1.0f32, 0.0, 0.0], [0.99f32, 0.05, 0.0], [0.0f32, 1.0, 0.0]);
        let items = [
            fp("p1", 0xFF00, None),
            fp("p1", 0x0F0F_0000, None),          // same pixels, hash far away: exact
            fp("p2", 0xFF01, None),               // one bit from item 0: near
            fp("p3", 0xAAAA_0000_0000, Some(&a)), // crop pair: hashes 6 bits apart, embeddings alike
            fp("p4", 0xAAAA_0000_003F, Some(&b)),
            fp("p5", 0x5555_0000_0000, Some(&c)), // alone
        ];
        let groups = duplicate_groups(&items, &DuplicateConfig::default());
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[0], DuplicateGroup { members: vec![0, 1, 2], kind: DuplicateKind::Near });
        assert_eq!(groups[1], DuplicateGroup { members: vec![3, 4], kind: DuplicateKind::Near });
        let exact = duplicate_groups(&items[..2], &DuplicateConfig::default());
        assert_eq!(exact[0].kind, DuplicateKind::Exact);
    }

    #[test]
    fn alike_embeddings_with_unlike_layouts_stay_apart() {
        let (a, b) = ([1.0f32, 0.0], [0.99f32, 0.01]);
        let items = [fp("p1", 0, Some(&a)), fp("p2", u64::MAX, Some(&b))];
        assert!(duplicate_groups(&items, &DuplicateConfig::default()).is_empty());
        let loose = DuplicateConfig { max_hash_bits_with_embedding: 64, ..Default::default() };
        assert_eq!(duplicate_groups(&items, &loose).len(), 1);
    }
}
