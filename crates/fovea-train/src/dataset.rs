//! The dataset builder: turns labelled images into train / validation / test / benchmark splits.
//!
//! The guarantees, and why they matter:
//! * **No leaks.** Exact duplicates (same sha256), near duplicates (dHash within a few bits) and samples the caller
//!   links (see [`Sample::link`]) are grouped, and a group always lands in one split. Otherwise a re-saved copy of a training photo in the test set would make
//!   the model look better than it is.
//! * **Stable.** A group's split is a pure function of its smallest sha256 (a fixed, version-independent hash),
//!   so re-running after users add images never reshuffles existing ones; an image the model was evaluated on
//!   yesterday is not trained on today. (Only a *related* new image, one that joins an existing group with a
//!   smaller sha256, can move that group.) With shares from [`SplitConfig::sized_for`], which fall as a dataset
//!   grows, a held-out image may later move towards training, but a trained image never moves into an
//!   evaluation split.
//! * **Frozen benchmark.** Images already in the benchmark stay there whatever the hash says, and pull their whole
//!   group with them, so the promotion gate keeps comparing models on the same images.
//! * **Cutoff.** Classes with too few labelled images are left out of the run (and reported) rather than trained
//!   on a handful of examples.
//! * **Train-only samples.** A sample marked `train_only` (a staged or synthetic picture, when asked) is never
//!   evaluated on: its group goes to training, unless the group is frozen in the benchmark, in which case the
//!   train-only sample sits the run out (training on it would leak the benchmark).

pub(crate) mod grouping;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Largest accepted `near_duplicate_bits`: beyond this, unrelated photos start to be grouped and the pigeonhole
/// search degenerates to all-pairs.
pub const MAX_NEAR_DUPLICATE_BITS: u32 = 16;

/// One labelled image, as the caller knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub image_id: i64,
    /// Hex sha256 of the image bytes (case-insensitive).
    pub sha256: String,
    /// Difference hash from [`crate::perceptual::dhash`].
    pub dhash: u64,
    pub class: String,
    /// Only ever trained on, never evaluated on (e.g. a staged or synthetic picture: the model is to be judged on
    /// real ones). Its whole duplicate group goes to training; see [`build`].
    #[serde(default)]
    pub train_only: bool,
    /// Samples sharing a link are grouped like duplicates: links the caller found another way (e.g. a crop, found
    /// through the backbone's embeddings, which the hash misses).
    #[serde(default)]
    pub link: Option<String>,
}

/// How to split; percentages are of groups (≈ of images), the remainder goes to training.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SplitConfig {
    pub benchmark_percent: u32,
    pub test_percent: u32,
    pub validation_percent: u32,
    /// Two images whose dHashes differ in at most this many bits are near duplicates. 2 by default: re-encoded,
    /// resized or brightened copies measure 0–1 bits, while 4 chained 441 of 800 MNIST digits into one group
    /// (flat backgrounds make small images' hashes alike), which pushed that whole group into one split.
    pub near_duplicate_bits: u32,
    /// Minimum labelled images (train + validation + test) for a class to take part in a run.
    pub cutoff: usize,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self { benchmark_percent: 10, test_percent: 15, validation_percent: 15, near_duplicate_bits: 2, cutoff: 40 }
    }
}

/// What each held-out split is sized for, in images: (target, floor %, cap %). See [`SplitConfig::sized_for`].
const TEST_SIZING: (usize, u32, u32) = (400, 5, 15);
const VALIDATION_SIZING: (usize, u32, u32) = (300, 5, 15);
const BENCHMARK_SIZING: (usize, u32, u32) = (1000, 3, 10);
/// The benchmark may grow to this share of a small dataset to reach [`BENCHMARK_MINIMUM`] images.
const BENCHMARK_SMALL_CAP: u32 = 20;
/// The gate's default minimum benchmark (`GateConfig::min_benchmark_images`): below it no model is ever promoted.
const BENCHMARK_MINIMUM: usize = 20;

/// The share that holds about `target` of `images`, within [floor, cap] percent. Non-increasing in `images`.
fn share(images: usize, (target, floor, cap): (usize, u32, u32)) -> u32 {
    let wanted = (target * 100).div_ceil(images.max(1));
    u32::try_from(wanted).unwrap_or(u32::MAX).clamp(floor, cap)
}

impl SplitConfig {
    /// The default split sized for a dataset of `images` labelled images.
    ///
    /// The rule: a held-out split costs training images, so each one is sized for its job in images, not as a
    /// fixed share, and the share is clamped between a floor and the default cap:
    /// * test: about 400 images (a 95 % interval of about ±4 points at 80 % accuracy), 5–15 %;
    /// * validation: about 300 images (picking an epoch needs less precision than reporting), 5–15 %; a final
    ///   fit then trains on these images too, so on small datasets the validation split costs nothing at the end;
    /// * benchmark: about 1000 images (the gate's paired tests need support to see a class drop), 3–10 %, but on a
    ///   small dataset up to 20 % so that it can reach the gate's minimum of 20 images at all.
    ///
    /// So small datasets keep the caps (15 / 15 / 10 %: their evaluation splits are already smaller than their
    /// jobs need, and shrinking them further would blind the gate), and large ones stop spending thousands of
    /// images on precision nobody uses. Every share only falls as the dataset grows; since the splits are hash
    /// buckets laid out benchmark → test → validation → train, growing a dataset can move an image only towards
    /// training, never from training into an evaluation split where a model trained on it would be scored.
    pub fn sized_for(images: usize) -> Self {
        let small = (BENCHMARK_MINIMUM * 100).div_ceil(images.max(1));
        let small = u32::try_from(small).unwrap_or(u32::MAX).min(BENCHMARK_SMALL_CAP);
        Self {
            benchmark_percent: share(images, BENCHMARK_SIZING).max(small),
            test_percent: share(images, TEST_SIZING),
            validation_percent: share(images, VALIDATION_SIZING),
            ..Self::default()
        }
    }

    /// Rejects configurations that cannot produce a meaningful split.
    pub fn validate(&self) -> Result<()> {
        let held_out =
            u64::from(self.benchmark_percent) + u64::from(self.test_percent) + u64::from(self.validation_percent);
        if held_out > 100 {
            return Err(TrainError::Config(format!(
                "benchmark ({}%) + test ({}%) + validation ({}%) exceed 100%",
                self.benchmark_percent, self.test_percent, self.validation_percent
            )));
        }
        if self.near_duplicate_bits > MAX_NEAR_DUPLICATE_BITS {
            return Err(TrainError::Config(format!(
                "near_duplicate_bits {} is above the maximum of {MAX_NEAR_DUPLICATE_BITS}; unrelated images would be \
                 grouped",
                self.near_duplicate_bits
            )));
        }
        Ok(())
    }
}

/// The four splits. Serialised, displayed and parsed in lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
    Test,
    Benchmark,
}

impl Split {
    pub const ALL: [Split; 4] = [Split::Train, Split::Validation, Split::Test, Split::Benchmark];

    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
            Split::Benchmark => "benchmark",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Split {
    type Err = TrainError;

    fn from_str(s: &str) -> Result<Self> {
        Split::ALL.into_iter().find(|split| split.as_str() == s).ok_or_else(|| {
            TrainError::Config(format!("unknown split {s:?} (expected train, validation, test or benchmark)"))
        })
    }
}

/// A class left out of the run because it has fewer than `cutoff` labelled (non-benchmark) images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExcludedClass {
    pub class: String,
    pub count: usize,
}

/// The outcome of [`build`]. Every split is sorted by `image_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetPlan {
    /// Included classes, sorted; a class's index here is its label index.
    pub classes: Vec<String>,
    pub train: Vec<Sample>,
    pub validation: Vec<Sample>,
    pub test: Vec<Sample>,
    pub benchmark: Vec<Sample>,
    /// Classes dropped by the cutoff, sorted by name.
    pub excluded: Vec<ExcludedClass>,
}

impl DatasetPlan {
    /// Label index of a class, `None` for excluded or unknown classes.
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.classes.binary_search_by(|c| c.as_str().cmp(name)).ok()
    }

    pub fn split(&self, split: Split) -> &[Sample] {
        match split {
            Split::Train => &self.train,
            Split::Validation => &self.validation,
            Split::Test => &self.test,
            Split::Benchmark => &self.benchmark,
        }
    }

    /// One line per split with its per-class counts, then a line for excluded classes if any.
    pub fn summary(&self) -> String {
        let mut lines = Vec::new();
        for split in Split::ALL {
            let samples = self.split(split);
            let mut per_class: BTreeMap<&str, usize> = BTreeMap::new();
            for s in samples {
                *per_class.entry(&s.class).or_default() += 1;
            }
            let detail: Vec<String> = per_class.iter().map(|(c, n)| format!("{c} {n}")).collect();
            lines.push(format!("{split}: {} images ({})", samples.len(), detail.join(", ")));
        }
        if !self.excluded.is_empty() {
            let detail: Vec<String> = self.excluded.iter().map(|e| format!("{} {}", e.class, e.count)).collect();
            lines.push(format!("excluded: {}", detail.join(", ")));
        }
        lines.join("\n")
    }
}

/// Stable 64-bit hash: FNV-1a followed by the splitmix64 finaliser (FNV alone mixes its low bits poorly, and the
/// bucket is taken modulo 100). Both are fixed algorithms, so buckets never change across Rust or crate versions.
fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The split a group goes to, from the stable hash of its smallest sha256.
fn split_for(key: &str, config: &SplitConfig) -> Split {
    let bucket = (stable_hash(key.as_bytes()) % 100) as u32;
    let benchmark = config.benchmark_percent;
    let test = benchmark + config.test_percent;
    let validation = test + config.validation_percent;
    if bucket < benchmark {
        Split::Benchmark
    } else if bucket < test {
        Split::Test
    } else if bucket < validation {
        Split::Validation
    } else {
        Split::Train
    }
}

/// Merges the groups of samples that share a [`Sample::link`]; labels stay the smallest member index.
fn with_links(labels: Vec<usize>, samples: &[Sample]) -> Vec<usize> {
    if samples.iter().all(|s| s.link.is_none()) {
        return labels;
    }
    let mut uf = grouping::UnionFind::new(labels.len());
    let mut first_with_link: std::collections::HashMap<&str, usize> = Default::default();
    for (i, s) in samples.iter().enumerate() {
        uf.union(i, labels[i]);
        if let Some(link) = s.link.as_deref() {
            uf.union(i, *first_with_link.entry(link).or_insert(i));
        }
    }
    let mut smallest: std::collections::HashMap<usize, usize> = Default::default();
    (0..labels.len()).map(|i| *smallest.entry(uf.find(i)).or_insert(i)).collect()
}

/// Builds the splits. See the module docs for the guarantees.
///
/// Errors: [`TrainError::Config`] for an invalid `config`, a duplicate `image_id` or an empty sha256;
/// [`TrainError::NotEnoughData`] when fewer than two classes reach the cutoff.
///
/// The caller should persist the ids of the returned `benchmark` into its frozen set: new images that hash into
/// the benchmark bucket join it, and freezing them keeps them there even if their group later changes.
/// Validation may come out empty for tiny datasets even when train is not; nothing is moved to fill it, since
/// that would break stability. The caller decides (e.g. skip early stopping, or refuse to run).
pub fn build(samples: &[Sample], frozen_benchmark: &HashSet<i64>, config: &SplitConfig) -> Result<DatasetPlan> {
    config.validate()?;
    let mut seen_ids = HashSet::with_capacity(samples.len());
    for s in samples {
        if !seen_ids.insert(s.image_id) {
            return Err(TrainError::Config(format!("image {} appears more than once in the dataset", s.image_id)));
        }
        if s.sha256.trim().is_empty() {
            return Err(TrainError::Config(format!("image {} has no sha256", s.image_id)));
        }
    }

    let keys: Vec<String> = samples.iter().map(|s| s.sha256.trim().to_ascii_lowercase()).collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let hashes: Vec<u64> = samples.iter().map(|s| s.dhash).collect();
    let labels = with_links(grouping::group(&key_refs, &hashes, config.near_duplicate_bits, false), samples);

    // Per group, indexed by its label (the group's smallest sample index, so always in range): the smallest
    // sha256, whether any member is frozen in the benchmark, and whether any member is train-only.
    let mut group_info: Vec<(&str, bool, bool)> = key_refs.iter().map(|&key| (key, false, false)).collect();
    for (i, &label) in labels.iter().enumerate() {
        let info = &mut group_info[label];
        info.0 = info.0.min(key_refs[i]);
        info.1 |= frozen_benchmark.contains(&samples[i].image_id);
        info.2 |= samples[i].train_only;
    }
    // A train-only member takes its group to training (moving images only towards training keeps the splits'
    // promise); a frozen benchmark group stays, and its train-only members sit the run out below.
    let assigned: Vec<Split> = labels
        .iter()
        .map(|&label| match group_info[label] {
            (_, true, _) => Split::Benchmark,
            (_, false, true) => Split::Train,
            (key, false, false) => split_for(key, config),
        })
        .collect();

    // Cutoff over the labelled, non-benchmark images.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (s, &split) in samples.iter().zip(&assigned) {
        let count = counts.entry(&s.class).or_default();
        if split != Split::Benchmark {
            *count += 1;
        }
    }
    let (included, excluded): (Vec<_>, Vec<_>) = counts.iter().partition(|&(_, &n)| n >= config.cutoff);
    let classes: Vec<String> = included.iter().map(|(c, _)| c.to_string()).collect();
    let excluded: Vec<ExcludedClass> =
        excluded.iter().map(|&(c, &count)| ExcludedClass { class: c.to_string(), count }).collect();
    if classes.len() < 2 {
        let all: Vec<String> = counts.iter().map(|(c, n)| format!("{c} ({n})")).collect();
        return Err(TrainError::NotEnoughData(format!(
            "{} class(es) have at least {} labelled images outside the benchmark (the cutoff); at least 2 are \
             needed. Labelled images per class: {}",
            classes.len(),
            config.cutoff,
            if all.is_empty() { "none".to_string() } else { all.join(", ") }
        )));
    }

    let mut plan = DatasetPlan {
        classes,
        train: Vec::new(),
        validation: Vec::new(),
        test: Vec::new(),
        benchmark: Vec::new(),
        excluded,
    };
    for (s, &split) in samples.iter().zip(&assigned) {
        if plan.class_index(&s.class).is_none() || (s.train_only && split != Split::Train) {
            continue;
        }
        let target = match split {
            Split::Train => &mut plan.train,
            Split::Validation => &mut plan.validation,
            Split::Test => &mut plan.test,
            Split::Benchmark => &mut plan.benchmark,
        };
        target.push(s.clone());
    }
    for split in [&mut plan.train, &mut plan.validation, &mut plan.test, &mut plan.benchmark] {
        split.sort_by_key(|s| s.image_id);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests;
