//! Class balance for training.
//!
//! Users label what they happen to photograph, so classes are often badly imbalanced; trained naively, the model
//! learns to favour the majority class. Two remedies are offered: per-class loss weights (inverse frequency), and
//! a balanced epoch order that oversamples minority classes so every class is seen equally often.
//! Labels outside `0..n_classes` are ignored by both, rather than panicking on inconsistent input.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Odd 64-bit constant (golden ratio) that spreads consecutive epoch numbers over the seed space.
const EPOCH_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

fn class_counts(labels: &[usize], n_classes: usize) -> Vec<usize> {
    let mut counts = vec![0usize; n_classes];
    for &label in labels {
        if let Some(c) = counts.get_mut(label) {
            *c += 1;
        }
    }
    counts
}

/// Inverse-frequency loss weight per class, scaled so that the mean weight over the samples is 1 (the loss keeps
/// its usual magnitude, so learning rates need no retuning). Classes without samples get weight 0. With `k`
/// present classes and `n` samples, class `c` gets `n / (k * count_c)`.
pub fn class_weights(labels: &[usize], n_classes: usize) -> Vec<f32> {
    let counts = class_counts(labels, n_classes);
    let total: usize = counts.iter().sum();
    let present = counts.iter().filter(|&&c| c > 0).count();
    counts
        .iter()
        .map(|&count| if count == 0 { 0.0 } else { (total as f64 / (present as f64 * count as f64)) as f32 })
        .collect()
}

/// A deterministic, balanced order of sample indices for one epoch.
///
/// Every present class contributes exactly `max_count` indices (the size of the largest class): the largest class
/// each of its samples once, smaller classes cycle through freshly shuffled copies of their samples, so each
/// minority sample appears `⌊max/count⌋` or `⌈max/count⌉` times. The result is then shuffled as a whole.
/// Length: `present_classes * max_count` (equal to `n_classes * max_count` when every class has samples; absent
/// classes cannot be represented). Empty when there are no valid labels.
///
/// The same `(labels, n_classes, seed, epoch)` always give the same order (with this version of `rand`), while
/// different epochs give different orders and different oversampled subsets.
pub fn balanced_order(labels: &[usize], n_classes: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed ^ epoch.wrapping_mul(EPOCH_MIX));
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (index, &label) in labels.iter().enumerate() {
        if let Some(members) = by_class.get_mut(label) {
            members.push(index);
        }
    }
    let max_count = by_class.iter().map(Vec::len).max().unwrap_or(0);
    let present = by_class.iter().filter(|m| !m.is_empty()).count();
    let mut order = Vec::with_capacity(present * max_count);
    for members in by_class.iter_mut().filter(|m| !m.is_empty()) {
        let mut taken = 0;
        while taken < max_count {
            members.shuffle(&mut rng);
            let chunk = (max_count - taken).min(members.len());
            order.extend_from_slice(&members[..chunk]);
            taken += chunk;
        }
    }
    order.shuffle(&mut rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_inverse_frequency_with_mean_one() {
        let labels = [0, 0, 0, 1, 2, 2];
        let w = class_weights(&labels, 4);
        // n = 6, k = 3 present classes: 6 / (3 * count).
        assert_eq!(w.len(), 4);
        assert!((w[0] - 2.0 / 3.0).abs() < 1e-6);
        assert!((w[1] - 2.0).abs() < 1e-6);
        assert!((w[2] - 1.0).abs() < 1e-6);
        assert_eq!(w[3], 0.0);
        let mean: f32 = labels.iter().map(|&l| w[l]).sum::<f32>() / labels.len() as f32;
        assert!((mean - 1.0).abs() < 1e-6);
    }

    #[test]
    fn weights_handle_empty_and_invalid_labels() {
        assert_eq!(class_weights(&[], 3), vec![0.0; 3]);
        assert!(class_weights(&[0, 1], 0).is_empty());
        // The out-of-range label 7 is ignored.
        assert_eq!(class_weights(&[0, 1, 7], 2), vec![1.0, 1.0]);
    }

    #[test]
    fn balanced_order_gives_every_class_equal_share() {
        let labels = [0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 0, 1];
        let order = balanced_order(&labels, 4, 9, 0);
        let max = 8; // class 0
        assert_eq!(order.len(), 3 * max);
        let mut per_class = [0usize; 4];
        let mut per_sample = [0usize; 12];
        for &i in &order {
            per_class[labels[i]] += 1;
            per_sample[i] += 1;
        }
        assert_eq!(per_class, [max, max, max, 0]);
        for (i, &times) in per_sample.iter().enumerate() {
            match labels[i] {
                0 => assert_eq!(times, 1, "majority samples appear exactly once"),
                1 => assert!((2..=3).contains(&times), "class 1 ({times}x) cycles evenly"),
                _ => assert_eq!(times, max),
            }
        }
    }

    #[test]
    fn balanced_order_is_deterministic_and_varies_by_epoch() {
        let labels: Vec<usize> = (0..200).map(|i| if i % 5 == 0 { 1 } else { 0 }).collect();
        let a = balanced_order(&labels, 2, 42, 3);
        assert_eq!(a, balanced_order(&labels, 2, 42, 3));
        assert_ne!(a, balanced_order(&labels, 2, 42, 4));
        assert_ne!(a, balanced_order(&labels, 2, 43, 3));
    }

    #[test]
    fn balanced_order_handles_empty_and_invalid_input() {
        assert!(balanced_order(&[], 3, 1, 0).is_empty());
        assert!(balanced_order(&[5, 6], 3, 1, 0).is_empty());
        assert!(balanced_order(&[0, 1], 0, 1, 0).is_empty());
        assert_eq!(balanced_order(&[0, 9, 0], 1, 1, 0).len(), 2);
    }
}
