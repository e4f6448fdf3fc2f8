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
    /// Embeddings compared pairwise at most; beyond this only hashes link images. The comparison is quadratic:
    /// 5000 images of 1280 dimensions are about 16 GFLOP, seconds on two cores.
    pub max_embedding_images: usize,
    /// ...and whose embedding distance (1 - cosine) is at most this share of either image's distance to its
    /// tenth-nearest neighbour. Copies stand out from an image's neighbourhood, whatever the domain: a cropped photo
    /// sits at 0.91-0.97 from its original while other photos sit below 0.7, but upscaled 8x8 digits sit at
    /// 0.95-0.98 from dozens of different digits, where a fixed cosine would chain them all into one group.
    pub stand_out: f32,
}

/// Which nearest neighbour stands for an image's background similarity: far enough down the list that a handful
/// of copies of one picture do not hide it.
const BACKGROUND_RANK: usize = 10;

impl Default for DuplicateConfig {
    fn default() -> Self {
        Self {
            max_hash_bits: 2,
            min_cosine: 0.92,
            max_hash_bits_with_embedding: 20,
            max_embedding_images: 5_000,
            stand_out: 0.34,
        }
    }
}

impl DuplicateConfig {
    /// Stricter links for training runs (their splits keep these groups together) and their leakage check, where a
    /// false group would block a promotion: embeddings must agree more closely and the hashes' layouts too.
    pub fn strict() -> Self {
        Self { min_cosine: 0.96, max_hash_bits_with_embedding: 12, stand_out: 0.25, ..Self::default() }
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

/// Pairs whose embeddings point the same way, more so than either image's usual neighbours (see
/// [`DuplicateConfig::stand_out`]). One pass finds each image's background similarity and the candidate pairs; the
/// candidates are few, so they are kept rather than computed again.
fn embedding_links(embedded: &[(usize, Vec<f32>)], hashes: &[u64], config: &DuplicateConfig) -> Vec<(usize, usize)> {
    let m = embedded.len();
    let rank = BACKGROUND_RANK;
    // Per image, its `rank` highest similarities to others, ascending, so [0] is the background.
    let mut nearest: Vec<Vec<f32>> = vec![Vec::with_capacity(rank + 1); m];
    let mut candidates = Vec::new();
    let keep = |list: &mut Vec<f32>, c: f32| {
        if list.len() < rank {
            let at = list.partition_point(|&x| x < c);
            list.insert(at, c);
        } else if c > list[0] {
            list.remove(0);
            let at = list.partition_point(|&x| x < c);
            list.insert(at, c);
        }
    };
    for a in 0..m {
        for b in a + 1..m {
            let cosine: f32 = embedded[a].1.iter().zip(&embedded[b].1).map(|(x, y)| x * y).sum();
            keep(&mut nearest[a], cosine);
            keep(&mut nearest[b], cosine);
            let (i, j) = (embedded[a].0, embedded[b].0);
            if cosine >= config.min_cosine && hamming(hashes[i], hashes[j]) <= config.max_hash_bits_with_embedding {
                candidates.push((a, b, cosine));
            }
        }
    }
    // With fewer than `rank` other images there is no background to stand out from: nothing is assumed.
    let background = |a: usize| if nearest[a].len() == rank { nearest[a][0] } else { -1.0 };
    candidates
        .into_iter()
        .filter(|&(a, b, cosine)| {
            let closest_background = background(a).max(background(b));
            1.0 - cosine <= config.stand_out * (1.0 - closest_background)
        })
        .map(|(a, b, _)| (embedded[a].0, embedded[b].0))
        .collect()
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
    for (i, j) in embedding_links(&embedded, &hashes, config) {
        uf.union(i, j);
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
    fn a_crowd_of_alike_pictures_is_not_a_group_but_a_pair_that_stands_out_is() {
        // Twelve pictures the backbone finds alike (cosine about 0.96 to each other, like upscaled digits)...
        let mut vectors: Vec<Vec<f32>> =
            (0..12).map(|i| (0..12).map(|j| if i == j { 0.28 } else { 1.0 }).collect()).collect();
        // ...and one copy of the first, far closer to it than the crowd is.
        let mut copy = vectors[0].clone();
        copy[1] += 0.01;
        vectors.push(copy);
        let names: Vec<String> = (0..vectors.len()).map(|i| format!("p{i}")).collect();
        let items: Vec<Fingerprint> =
            vectors.iter().zip(&names).map(|(v, n)| fp(n, 0x1234_5678_9ABC_DEF0, Some(v.as_slice()))).collect();
        let crowd = unit(&vectors[1]).unwrap().iter().zip(unit(&vectors[2]).unwrap()).map(|(a, b)| a * b).sum::<f32>();
        assert!(crowd > 0.95, "the crowd is alike: {crowd}");
        // Hash links off, so only the embeddings decide.
        let config = DuplicateConfig { max_hash_bits: 0, ..Default::default() };
        let different: Vec<Fingerprint> =
            items.iter().enumerate().map(|(i, f)| Fingerprint { dhash: i as u64 * 0x0101, ..f.clone() }).collect();
        let groups = duplicate_groups(&different, &config);
        assert_eq!(groups, vec![DuplicateGroup { members: vec![0, 12], kind: DuplicateKind::Near }]);
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
