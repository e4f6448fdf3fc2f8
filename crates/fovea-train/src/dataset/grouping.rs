//! Duplicate grouping: which samples must share a split.
//!
//! Two samples belong together when they are byte-identical (same sha256) or perceptually near-identical (dHash
//! within a few bits). "Belongs together" is made transitive with a union-find, so a chain A~B~C puts all three in
//! one group even when A and C are further apart; that is the conservative choice for leak prevention.

use std::collections::HashMap;

use crate::perceptual::hamming;

/// Below this many distinct hashes the exhaustive all-pairs comparison is cheaper than building chunk indexes.
const EXHAUSTIVE_LIMIT: usize = 64;

/// Disjoint-set forest with path halving and union by size.
pub(crate) struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    pub(crate) fn new(n: usize) -> Self {
        Self { parent: (0..n).collect(), size: vec![1; n] }
    }

    pub(crate) fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    pub(crate) fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }
}

/// Groups sample indices: returns, for every sample, a group label (the smallest sample index in its group), so
/// the result is a canonical partition independent of union order.
///
/// `keys` are the exact-duplicate keys (normalised sha256), `hashes` the perceptual hashes; both are indexed like
/// the samples. `exhaustive` forces the all-pairs search (tests use it as the reference).
pub(crate) fn group(keys: &[&str], hashes: &[u64], max_bits: u32, exhaustive: bool) -> Vec<usize> {
    let n = keys.len().min(hashes.len());
    let mut uf = UnionFind::new(n);

    // Exact duplicates: identical content keys.
    let mut first_with_key: HashMap<&str, usize> = HashMap::with_capacity(n);
    for (i, key) in keys.iter().take(n).enumerate() {
        match first_with_key.get(key) {
            Some(&j) => uf.union(i, j),
            None => {
                first_with_key.insert(key, i);
            }
        }
    }

    // Identical perceptual hashes are unioned directly, so the near-duplicate search below only sees distinct
    // values. This also defuses the worst case for bucketing: thousands of blank images that all hash to 0.
    let mut first_with_hash: HashMap<u64, usize> = HashMap::with_capacity(n);
    let mut distinct: Vec<(u64, usize)> = Vec::new();
    for (i, &h) in hashes.iter().take(n).enumerate() {
        match first_with_hash.get(&h) {
            Some(&j) => uf.union(i, j),
            None => {
                first_with_hash.insert(h, i);
                distinct.push((h, i));
            }
        }
    }

    if exhaustive || distinct.len() <= EXHAUSTIVE_LIMIT || max_bits >= 63 {
        near_pairs_exhaustive(&distinct, max_bits, &mut uf);
    } else {
        near_pairs_pigeonhole(&mut distinct, max_bits, &mut uf);
    }

    let mut label = vec![usize::MAX; n];
    let mut by_root: HashMap<usize, usize> = HashMap::new();
    for (i, slot) in label.iter_mut().enumerate() {
        let root = uf.find(i);
        // Indices are visited in increasing order, so the first member seen is the smallest.
        *slot = *by_root.entry(root).or_insert(i);
    }
    label
}

fn near_pairs_exhaustive(distinct: &[(u64, usize)], max_bits: u32, uf: &mut UnionFind) {
    for (a, &(ha, ia)) in distinct.iter().enumerate() {
        for &(hb, ib) in &distinct[a + 1..] {
            if hamming(ha, hb) <= max_bits {
                uf.union(ia, ib);
            }
        }
    }
}

/// Pigeonhole search: if two 64-bit hashes differ in at most `k` bits, then among `k + 1` disjoint chunks of the
/// hash at least one chunk is identical in both. So it suffices to compare hashes that share some chunk value:
/// for each chunk, sort by that chunk and compare only within runs of equal values. With random-looking hashes
/// the runs are short and the search is close to linear instead of quadratic.
fn near_pairs_pigeonhole(distinct: &mut [(u64, usize)], max_bits: u32, uf: &mut UnionFind) {
    let chunks = max_bits + 1; // at most 63, so every chunk has at least one bit
    let mut offset = 0u32;
    for c in 0..chunks {
        // Spread the 64 bits as evenly as possible: the first `64 % chunks` chunks get one extra bit.
        let width = 64 / chunks + u32::from(c < 64 % chunks);
        let mask = if width >= 64 { u64::MAX } else { (1u64 << width) - 1 };
        let chunk_of = |h: u64| (h >> offset) & mask;
        distinct.sort_unstable_by_key(|&(h, i)| (chunk_of(h), i));
        let mut start = 0;
        while start < distinct.len() {
            let key = chunk_of(distinct[start].0);
            let end = start + distinct[start..].iter().take_while(|&&(h, _)| chunk_of(h) == key).count();
            let run = &distinct[start..end];
            for (a, &(ha, ia)) in run.iter().enumerate() {
                for &(hb, ib) in &run[a + 1..] {
                    if hamming(ha, hb) <= max_bits {
                        uf.union(ia, ib);
                    }
                }
            }
            start = end;
        }
        offset += width;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Clustered hashes: random centres, each with a few copies that have a handful of bits flipped, so that the
    /// threshold really matters (some copies are in range, some not, some chain together).
    fn clustered_hashes(rng: &mut StdRng, clusters: usize) -> Vec<u64> {
        let mut hashes = Vec::new();
        for _ in 0..clusters {
            let centre: u64 = rng.random();
            hashes.push(centre);
            for _ in 0..rng.random_range(0..4) {
                let mut h = centre;
                for _ in 0..rng.random_range(1..8) {
                    h ^= 1 << rng.random_range(0..64);
                }
                hashes.push(h);
            }
        }
        hashes
    }

    #[test]
    fn pigeonhole_matches_exhaustive_on_random_data() {
        let mut rng = StdRng::seed_from_u64(42);
        for max_bits in [0, 1, 3, 4, 6, 10] {
            let hashes = clustered_hashes(&mut rng, 400);
            let keys: Vec<String> = (0..hashes.len()).map(|i| format!("{i:064x}")).collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let fast = group(&keys, &hashes, max_bits, false);
            let slow = group(&keys, &hashes, max_bits, true);
            assert_eq!(fast, slow, "max_bits {max_bits}");
            let groups = slow.iter().enumerate().filter(|&(i, &l)| i == l).count();
            assert!(groups < hashes.len(), "test data should contain near duplicates");
        }
    }

    #[test]
    fn exact_and_identical_hash_duplicates_group() {
        let keys = ["a", "b", "a", "c", "d"];
        let hashes = [1u64 << 40, u64::MAX, 0, 0, 0xF0F0_F0F0_F0F0_F0F0];
        assert_eq!(group(&keys, &hashes, 0, false), vec![0, 1, 0, 0, 4]);
    }

    #[test]
    fn chains_are_transitive() {
        // 0 and 2 are 4 bits apart, each 2 bits from 1.
        let keys = ["x", "y", "z"];
        let hashes = [0b0000u64, 0b0011, 0b1111];
        assert_eq!(group(&keys, &hashes, 2, false), vec![0, 0, 0]);
        assert_eq!(group(&keys, &hashes, 1, false), vec![0, 1, 2]);
    }

    #[test]
    fn empty_input_is_fine() {
        assert!(group(&[], &[], 4, false).is_empty());
    }
}
