use std::collections::HashMap;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::perceptual::hamming;

fn sample(image_id: i64, sha256: &str, dhash: u64, class: &str) -> Sample {
    Sample { image_id, sha256: sha256.to_string(), dhash, class: class.to_string(), train_only: false, link: None }
}

/// Unrelated samples: random sha256 and random dHash (two random 64-bit hashes are within 4 bits with
/// probability ~4e-14, so they are effectively never grouped).
fn random_samples(rng: &mut StdRng, first_id: i64, n: usize, classes: &[&str]) -> Vec<Sample> {
    (0..n)
        .map(|i| {
            let sha: String = (0..4).map(|_| format!("{:016x}", rng.random::<u64>())).collect();
            let class = classes[rng.random_range(0..classes.len())];
            sample(first_id + i as i64, &sha, rng.random(), class)
        })
        .collect()
}

fn split_map(plan: &DatasetPlan) -> HashMap<i64, Split> {
    Split::ALL.iter().flat_map(|&split| plan.split(split).iter().map(move |s| (s.image_id, split))).collect()
}

fn no_cutoff() -> SplitConfig {
    SplitConfig { cutoff: 0, ..SplitConfig::default() }
}

#[test]
fn stable_hash_is_pinned() {
    // Changing the hash would silently reshuffle every existing dataset; this test makes it loud.
    assert_eq!(stable_hash(b""), 0xf52a_15e9_a9b5_e89b);
    assert_eq!(stable_hash(b"abc"), 0x0dd4_9049_0804_b508);
    let buckets: HashSet<u64> = (0..1000).map(|i| stable_hash(format!("{i:064x}").as_bytes()) % 100).collect();
    assert_eq!(buckets.len(), 100, "all buckets reachable");
}

#[test]
fn splits_are_stable_when_unrelated_samples_come_and_go() {
    let mut rng = StdRng::seed_from_u64(1);
    let base = random_samples(&mut rng, 0, 2000, &["cat", "dog", "fox"]);
    let extra = random_samples(&mut rng, 10_000, 1500, &["cat", "dog", "fox", "owl"]);
    let before = split_map(&build(&base, &HashSet::new(), &no_cutoff()).unwrap());

    let mut grown = base.clone();
    grown.extend(extra.iter().cloned());
    grown.reverse(); // input order must not matter either
    let after = split_map(&build(&grown, &HashSet::new(), &no_cutoff()).unwrap());
    for (id, split) in &before {
        assert_eq!(after.get(id), Some(split), "image {id} moved after adding unrelated images");
    }

    let shrunk: Vec<Sample> = base.iter().filter(|s| s.image_id % 3 != 0).cloned().collect();
    let smaller = split_map(&build(&shrunk, &HashSet::new(), &no_cutoff()).unwrap());
    for (id, split) in &smaller {
        assert_eq!(before.get(id), Some(split), "image {id} moved after removing unrelated images");
    }
}

#[test]
fn proportions_are_roughly_right() {
    let mut rng = StdRng::seed_from_u64(2);
    let samples = random_samples(&mut rng, 0, 10_000, &["a", "b", "c", "d"]);
    let plan = build(&samples, &HashSet::new(), &SplitConfig::default()).unwrap();
    let pct = |n: usize| n as f64 * 100.0 / samples.len() as f64;
    assert!((pct(plan.benchmark.len()) - 10.0).abs() < 1.5, "{}", plan.summary());
    assert!((pct(plan.test.len()) - 15.0).abs() < 1.5, "{}", plan.summary());
    assert!((pct(plan.validation.len()) - 15.0).abs() < 1.5, "{}", plan.summary());
    assert!((pct(plan.train.len()) - 60.0).abs() < 2.0, "{}", plan.summary());
    assert_eq!(plan.train.len() + plan.validation.len() + plan.test.len() + plan.benchmark.len(), 10_000);
    assert!(plan.excluded.is_empty());
}

#[test]
fn splits_are_sized_for_the_dataset() {
    let percents = |n: usize| {
        let c = SplitConfig::sized_for(n);
        assert!(c.validate().is_ok(), "{n}: {c:?}");
        (c.benchmark_percent, c.test_percent, c.validation_percent)
    };
    // Small datasets keep the caps; the benchmark grows to reach the gate's 20 images.
    assert_eq!(percents(600), (10, 15, 15), "the issue's 10 × 60 images");
    assert_eq!(percents(150), (14, 15, 15));
    assert_eq!(percents(50), (20, 15, 15));
    assert_eq!(percents(0), (20, 15, 15));
    // Large datasets hold out about the target number of images, down to the floors.
    assert_eq!(percents(4000), (10, 10, 8));
    assert_eq!(percents(20_000), (5, 5, 5));
    assert_eq!(percents(1_000_000), (3, 5, 5));
    assert_eq!(SplitConfig::sized_for(600).cutoff, SplitConfig::default().cutoff);
    let mut last = percents(1);
    for n in 2..60_000 {
        let now = percents(n);
        assert!(now.0 <= last.0 && now.1 <= last.1 && now.2 <= last.2, "share rose at {n}: {last:?} → {now:?}");
        // The cumulative bucket bounds (benchmark, +test, +validation) never rise either.
        assert!(now.0 + now.1 <= last.0 + last.1 && now.0 + now.1 + now.2 <= last.0 + last.1 + last.2);
        last = now;
    }
}

#[test]
fn a_growing_dataset_never_moves_a_trained_image_into_an_evaluation_split() {
    let mut rng = StdRng::seed_from_u64(3);
    let small = random_samples(&mut rng, 0, 1500, &["cat", "dog", "fox"]);
    let mut large = small.clone();
    large.extend(random_samples(&mut rng, 10_000, 8500, &["cat", "dog", "fox"]));
    let plan = |samples: &[Sample]| {
        let config = SplitConfig { cutoff: 0, ..SplitConfig::sized_for(samples.len()) };
        split_map(&build(samples, &HashSet::new(), &config).unwrap())
    };
    let (before, after) = (plan(&small), plan(&large));
    let rank = |s: Split| match s {
        Split::Benchmark => 0,
        Split::Test => 1,
        Split::Validation => 2,
        Split::Train => 3,
    };
    let mut moved = 0;
    for (id, split) in &before {
        let now = after[id];
        assert!(rank(now) >= rank(*split), "image {id} moved from {split} to {now}");
        moved += usize::from(now != *split);
    }
    // 1500 → 10 000 images: test and validation 15 → 5 %, so many images move, all of them towards training.
    assert!(moved > 100, "{moved}");
}

#[test]
fn exact_and_near_duplicates_share_a_split_even_across_classes() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut samples = random_samples(&mut rng, 0, 300, &["cat", "dog"]);
    let originals = samples.clone();
    for (k, s) in originals.iter().enumerate() {
        let id = 1000 + k as i64;
        if k % 2 == 0 {
            // Exact copy (sha differs only in case), labelled differently.
            samples.push(sample(id, &s.sha256.to_uppercase(), !s.dhash, "dog"));
        } else {
            // Re-encoded copy: new bytes, hash 2 bits away (the default threshold; re-encodes measure 0–1).
            samples.push(sample(id, &format!("ff{}", &s.sha256[2..]), s.dhash ^ 0b1001, "cat"));
        }
    }
    let plan = build(&samples, &HashSet::new(), &no_cutoff()).unwrap();
    let splits = split_map(&plan);
    for k in 0..originals.len() {
        assert_eq!(splits[&(k as i64)], splits[&(1000 + k as i64)], "pair {k} straddles splits");
    }
    assert!(Split::ALL.iter().all(|&s| !plan.split(s).is_empty()), "{}", plan.summary());
}

#[test]
fn frozen_benchmark_pulls_its_group_along() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut samples = random_samples(&mut rng, 0, 400, &["cat", "dog"]);
    let fresh = split_map(&build(&samples, &HashSet::new(), &no_cutoff()).unwrap());
    let frozen: HashSet<i64> = (0..400).filter(|id| fresh[id] == Split::Train).take(20).collect();
    let duplicate_of = *frozen.iter().min().unwrap();
    let original = samples[duplicate_of as usize].clone();
    samples.push(sample(999, &original.sha256, original.dhash, "dog"));

    let plan = build(&samples, &frozen, &no_cutoff()).unwrap();
    let splits = split_map(&plan);
    for id in &frozen {
        assert_eq!(splits[id], Split::Benchmark, "frozen image {id} left the benchmark");
    }
    assert_eq!(splits[&999], Split::Benchmark, "duplicate of a frozen image must follow it");
    for (id, split) in &fresh {
        if !frozen.contains(id) {
            assert_eq!(splits[id], *split, "freezing must not move other images");
        }
    }
}

#[test]
fn scales_to_a_hundred_thousand_samples() {
    // All-pairs would be 5e9 comparisons; the pigeonhole search makes this a fraction of a second.
    let mut rng = StdRng::seed_from_u64(9);
    let mut samples = random_samples(&mut rng, 0, 100_000, &["a", "b", "c"]);
    // Sprinkle in near copies so grouping has work to do.
    for k in 0..1000 {
        let s = samples[k * 7].clone();
        samples.push(sample(200_000 + k as i64, &format!("{k:064x}"), s.dhash ^ 0b101, &s.class));
    }
    let plan = build(&samples, &HashSet::new(), &SplitConfig::default()).unwrap();
    let splits = split_map(&plan);
    assert_eq!(splits.len(), samples.len());
    for k in 0..1000 {
        assert_eq!(splits[&(k as i64 * 7)], splits[&(200_000 + k as i64)]);
    }
}

#[test]
fn cutoff_excludes_and_lists_small_classes() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut samples = random_samples(&mut rng, 0, 600, &["cat", "dog"]);
    samples.extend(random_samples(&mut rng, 1000, 12, &["owl"]));
    let config = SplitConfig { cutoff: 40, ..SplitConfig::default() };
    let plan = build(&samples, &HashSet::new(), &config).unwrap();
    assert_eq!(plan.classes, vec!["cat", "dog"]);
    assert_eq!(plan.excluded.len(), 1);
    assert_eq!(plan.excluded[0].class, "owl");
    assert!(plan.excluded[0].count <= 12);
    for split in Split::ALL {
        assert!(plan.split(split).iter().all(|s| s.class != "owl"), "owl leaked into {split}");
    }
    assert_eq!(plan.class_index("dog"), Some(1));
    assert_eq!(plan.class_index("owl"), None);
    assert!(plan.summary().contains("excluded: owl"), "{}", plan.summary());
}

#[test]
fn cutoff_ignores_benchmark_images() {
    // 30 "owl" images: only the non-benchmark ones count, so a cutoff equal to that count keeps the class and
    // one more drops it.
    let mut rng = StdRng::seed_from_u64(6);
    let mut samples = random_samples(&mut rng, 0, 200, &["cat", "dog"]);
    samples.extend(random_samples(&mut rng, 1000, 30, &["owl"]));
    let probe = build(&samples, &HashSet::new(), &no_cutoff()).unwrap();
    let owl_benchmark = probe.benchmark.iter().filter(|s| s.class == "owl").count();
    let owl_labelled = 30 - owl_benchmark;
    let keep = build(&samples, &HashSet::new(), &SplitConfig { cutoff: owl_labelled, ..no_cutoff() }).unwrap();
    assert!(keep.class_index("owl").is_some());
    let drop = build(&samples, &HashSet::new(), &SplitConfig { cutoff: owl_labelled + 1, ..no_cutoff() }).unwrap();
    assert_eq!(drop.excluded, vec![ExcludedClass { class: "owl".into(), count: owl_labelled }]);
    assert!(drop.benchmark.iter().all(|s| s.class != "owl"), "excluded class dropped from the benchmark too");
}

#[test]
fn fewer_than_two_classes_is_not_enough_data() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut samples = random_samples(&mut rng, 0, 100, &["cat"]);
    samples.extend(random_samples(&mut rng, 1000, 5, &["dog"]));
    match build(&samples, &HashSet::new(), &SplitConfig::default()) {
        Err(TrainError::NotEnoughData(msg)) => assert!(msg.contains("40"), "message names the cutoff: {msg}"),
        other => panic!("expected NotEnoughData, got {other:?}"),
    }
    assert!(matches!(build(&[], &HashSet::new(), &SplitConfig::default()), Err(TrainError::NotEnoughData(_))));
}

#[test]
fn invalid_input_is_rejected() {
    let ok = [sample(1, "aa", 1, "cat"), sample(2, "bb", 2, "dog")];
    let bad_percent = SplitConfig { benchmark_percent: 50, test_percent: 40, validation_percent: 20, ..no_cutoff() };
    assert!(matches!(build(&ok, &HashSet::new(), &bad_percent), Err(TrainError::Config(_))));
    let bad_bits = SplitConfig { near_duplicate_bits: 40, ..no_cutoff() };
    assert!(matches!(build(&ok, &HashSet::new(), &bad_bits), Err(TrainError::Config(_))));
    let duplicate_id = [sample(1, "aa", 1, "cat"), sample(1, "bb", 2, "dog")];
    assert!(matches!(build(&duplicate_id, &HashSet::new(), &no_cutoff()), Err(TrainError::Config(_))));
    let no_sha = [sample(1, " ", 1, "cat"), sample(2, "bb", 2, "dog")];
    assert!(matches!(build(&no_sha, &HashSet::new(), &no_cutoff()), Err(TrainError::Config(_))));
    assert!(build(&ok, &HashSet::new(), &no_cutoff()).is_ok());
}

#[test]
fn split_names_round_trip() {
    for split in Split::ALL {
        assert_eq!(split.to_string().parse::<Split>().unwrap(), split);
        let json = serde_json::to_string(&split).unwrap();
        assert_eq!(json, format!("\"{split}\""));
        assert_eq!(serde_json::from_str::<Split>(&json).unwrap(), split);
    }
    assert!("Train".parse::<Split>().is_err());
    assert!("".parse::<Split>().is_err());
}

#[test]
fn plan_serialises_and_summarises() {
    let mut rng = StdRng::seed_from_u64(8);
    let samples = random_samples(&mut rng, 0, 300, &["cat", "dog"]);
    let plan = build(&samples, &HashSet::new(), &no_cutoff()).unwrap();
    let json = serde_json::to_string(&plan).unwrap();
    assert_eq!(serde_json::from_str::<DatasetPlan>(&json).unwrap(), plan);
    let summary = plan.summary();
    assert_eq!(summary.lines().count(), 4, "{summary}");
    assert!(summary.starts_with(&format!("train: {} images (cat ", plan.train.len())), "{summary}");
    let config: SplitConfig = serde_json::from_str(r#"{"cutoff": 5}"#).unwrap();
    assert_eq!(config, SplitConfig { cutoff: 5, ..SplitConfig::default() });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the mix of exact copies, near copies and unrelated images, no pair of duplicates straddles
    /// splits, and frozen images stay in the benchmark.
    #[test]
    fn duplicates_never_straddle_splits(
        seed in any::<u64>(),
        n in 1usize..120,
        bits in 0u32..=8,
        frozen_every in 1i64..20,
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut samples: Vec<Sample> = Vec::new();
        for id in 0..n as i64 {
            let class = if rng.random_bool(0.5) { "cat" } else { "dog" };
            let (sha, dhash) = match (samples.len(), rng.random_range(0..3)) {
                (len, 1) if len > 0 => {
                    let other = &samples[rng.random_range(0..len)];
                    (other.sha256.clone(), rng.random())
                }
                (len, 2) if len > 0 => {
                    let other = &samples[rng.random_range(0..len)];
                    let mut h = other.dhash;
                    for _ in 0..rng.random_range(0..10) {
                        h ^= 1 << rng.random_range(0..64);
                    }
                    (format!("{:064x}", rng.random::<u64>()), h)
                }
                _ => (format!("{:064x}", rng.random::<u64>()), rng.random()),
            };
            samples.push(sample(id, &sha, dhash, class));
        }
        let frozen: HashSet<i64> = (0..n as i64).filter(|id| id % frozen_every == 0).collect();
        let config = SplitConfig { near_duplicate_bits: bits, ..no_cutoff() };
        let plan = match build(&samples, &frozen, &config) {
            Ok(plan) => plan,
            Err(TrainError::NotEnoughData(_)) => return Ok(()), // a single class drawn
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        let splits = split_map(&plan);
        prop_assert_eq!(splits.len(), n);
        for a in &samples {
            if frozen.contains(&a.image_id) {
                prop_assert_eq!(splits[&a.image_id], Split::Benchmark);
            }
            for b in &samples {
                if a.sha256 == b.sha256 || hamming(a.dhash, b.dhash) <= bits {
                    prop_assert_eq!(splits[&a.image_id], splits[&b.image_id]);
                }
            }
        }
    }
}

#[test]
fn train_only_samples_and_their_copies_are_never_evaluated_on() {
    let mut samples: Vec<Sample> = (0..200)
        .map(|i| {
            sample(
                i,
                &format!("{i:064x}"),
                (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                if i % 2 == 0 { "a" } else { "b" },
            )
        })
        .collect();
    let config = SplitConfig { cutoff: 1, ..SplitConfig::default() };
    let before = build(&samples, &HashSet::new(), &config).unwrap();
    let evaluated: Vec<i64> =
        before.test.iter().chain(&before.benchmark).chain(&before.validation).map(|s| s.image_id).collect();
    assert!(evaluated.len() >= 10, "the test needs images that would be held out");
    // Mark some held-out images train-only, and give one of them an exact copy elsewhere in the data.
    for &id in &evaluated[..6] {
        samples[id as usize].train_only = true;
    }
    let copy_of = evaluated[0] as usize;
    samples.push(Sample { image_id: 1000, ..samples[copy_of].clone() });
    samples[200].train_only = false;
    let after = build(&samples, &HashSet::new(), &config).unwrap();
    let train: HashSet<i64> = after.train.iter().map(|s| s.image_id).collect();
    for &id in &evaluated[..6] {
        assert!(train.contains(&id), "train-only image {id} is not in training");
    }
    assert!(train.contains(&1000), "its copy follows it into training");
    for s in after.test.iter().chain(&after.benchmark).chain(&after.validation) {
        assert!(!s.train_only, "{} evaluated on", s.image_id);
    }
    // Everything else stays where it was.
    let moved =
        |split: &[Sample]| split.iter().filter(|s| !evaluated[..6].contains(&s.image_id) && s.image_id != 1000).count();
    assert_eq!(moved(&after.test) + moved(&after.benchmark) + moved(&after.validation), evaluated.len() - 6);

    // A train-only image in a frozen benchmark group sits the run out: the group stays in the benchmark.
    let frozen: HashSet<i64> = [1000].into_iter().collect();
    let pinned = build(&samples, &frozen, &config).unwrap();
    let all: Vec<i64> = Split::ALL.iter().flat_map(|&s| pinned.split(s).iter().map(|x| x.image_id)).collect();
    assert!(!all.contains(&evaluated[0]), "the train-only copy of a frozen benchmark image is left out");
    assert!(pinned.benchmark.iter().any(|s| s.image_id == 1000));
}

#[test]
fn linked_samples_share_a_split() {
    let mut samples: Vec<Sample> = (0..300)
        .map(|i| sample(i, &format!("{i:064x}"), (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15), "a"))
        .collect();
    samples.extend(
        (300..600).map(|i| sample(i, &format!("{i:064x}"), (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15), "b")),
    );
    let config = SplitConfig { cutoff: 1, ..SplitConfig::default() };
    let split_of =
        |plan: &DatasetPlan, id: i64| Split::ALL.into_iter().find(|&s| plan.split(s).iter().any(|x| x.image_id == id));
    let before = build(&samples, &HashSet::new(), &config).unwrap();
    // Pairs that the hashes do not group, in different splits before: linked, they land together.
    let mut used = HashSet::new();
    let mut pairs: Vec<(i64, i64)> = Vec::new();
    for a in 0..300 {
        for b in a + 1..300 {
            if pairs.len() < 5
                && !used.contains(&a)
                && !used.contains(&b)
                && split_of(&before, a) != split_of(&before, b)
            {
                pairs.push((a, b));
                used.extend([a, b]);
            }
        }
    }
    assert_eq!(pairs.len(), 5);
    for (n, &(a, b)) in pairs.iter().enumerate() {
        samples[a as usize].link = Some(format!("g{n}"));
        samples[b as usize].link = Some(format!("g{n}"));
    }
    let after = build(&samples, &HashSet::new(), &config).unwrap();
    for (a, b) in pairs {
        assert_eq!(split_of(&after, a), split_of(&after, b), "{a} and {b} are linked");
    }
}
