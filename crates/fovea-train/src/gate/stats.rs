//! The statistics behind the gate: exact binomial tails (McNemar's exact test), a step-down multiple-comparison
//! correction that skips tests too small to ever reject, and a paired bootstrap interval.
//!
//! Written out here rather than taken from a statistics crate: each is a few lines, they must be exact and
//! deterministic (a verdict is recomputed and compared in tests and by people), and the crate stays lean.

/// P(X ≥ k) for X ~ Binomial(n, 1/2): the one-sided p-value of McNemar's exact test, where n is the number of
/// discordant pairs and k how many of them went against the candidate. Computed in log space because 2⁻ⁿ
/// underflows f64 beyond n ≈ 1074 and benchmarks can be larger than that.
pub fn binomial_half_tail(k: usize, n: usize) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    // ln C(n, i) built up incrementally from ln C(n, 0) = 0.
    let mut ln_choose = 0.0;
    let mut terms = Vec::with_capacity(n - k + 1);
    for i in 0..=n {
        if i >= k {
            terms.push(ln_choose + ln_half_n);
        }
        if i < n {
            ln_choose += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
        }
    }
    let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = terms.iter().map(|t| (t - top).exp()).sum();
    (top + sum.ln()).exp().min(1.0)
}

/// The smallest p-value a one-sided exact test on `n` discordant pairs can ever produce (all n against).
pub fn smallest_attainable_p(n: usize) -> f64 {
    binomial_half_tail(n, n)
}

/// Outcome of the multiple-comparison step for one hypothesis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// The p-value limit this hypothesis was held to, or `None` when it could never reach any limit in play (too
    /// little data) and so was left out of the family, as Tarone's rule allows.
    pub limit: Option<f64>,
    pub rejected: bool,
}

/// Step-down (Holm) testing with Tarone's refinement for discrete tests, at family-wise error rate `alpha`.
///
/// `tests[i]` is (p-value, smallest attainable p-value). Plain Holm divides alpha by the number of hypotheses,
/// so ten classes of five images would each need p ≤ 0.005, which a five-image class cannot reach even when all
/// five images flip; counting such classes only makes the others harder to flag. Tarone's rule counts a
/// hypothesis only if it could possibly be rejected: at each step the divisor is the smallest K such that at
/// most K remaining hypotheses have an attainable p ≤ alpha / K. The step-down form (Hommel & Krummenauer) still
/// controls the family-wise error rate.
pub fn holm_tarone(tests: &[(f64, f64)], alpha: f64) -> Vec<Decision> {
    let mut decisions = vec![Decision { limit: None, rejected: false }; tests.len()];
    let mut remaining: Vec<usize> = (0..tests.len()).collect();
    // Ascending by p; ties by index so the order is deterministic. NaN sorts last and never rejects.
    remaining.sort_by(|&a, &b| tests[a].0.total_cmp(&tests[b].0).then(a.cmp(&b)));
    let divisor = |remaining: &[usize]| -> usize {
        (1..=remaining.len().max(1))
            .find(|&k| remaining.iter().filter(|&&i| tests[i].1 <= alpha / k as f64).count() <= k)
            .unwrap_or(remaining.len().max(1))
    };
    while let Some(&first) = remaining.first() {
        let limit = alpha / divisor(&remaining) as f64;
        for &i in &remaining {
            if tests[i].1 <= limit {
                decisions[i].limit = Some(limit);
            }
        }
        // Written as a positive comparison so that a NaN p-value stops the procedure.
        let significant = tests[first].0 <= limit;
        if !significant {
            break;
        }
        decisions[first].rejected = true;
        remaining.remove(0);
    }
    decisions
}

/// A small fixed pseudo-random generator (splitmix64), so a bootstrap interval depends only on its seed and not
/// on the version of any random-number crate.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (multiply-shift; its bias of at most n/2⁶⁴ is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

/// Percentile intervals from a paired bootstrap: images are resampled with replacement, and both models are scored
/// on the same resample, so the interval of the difference reflects how correlated the two models are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bootstrap {
    pub difference: (f64, f64),
    pub candidate: (f64, f64),
    pub serving: (f64, f64),
}

/// `pairs[i]` is (candidate right, serving right) for image i. `None` for an empty set.
pub fn paired_bootstrap(pairs: &[(bool, bool)], resamples: usize, confidence: f64, seed: u64) -> Option<Bootstrap> {
    let n = pairs.len();
    if n == 0 || resamples == 0 {
        return None;
    }
    let mut rng = SplitMix(seed);
    let (mut cand, mut serv, mut diff) =
        (Vec::with_capacity(resamples), Vec::with_capacity(resamples), Vec::with_capacity(resamples));
    for _ in 0..resamples {
        let (mut c, mut s) = (0usize, 0usize);
        for _ in 0..n {
            let (a, b) = pairs[rng.below(n)];
            c += usize::from(a);
            s += usize::from(b);
        }
        cand.push(c as f64 / n as f64);
        serv.push(s as f64 / n as f64);
        diff.push((c as f64 - s as f64) / n as f64);
    }
    let tail = ((1.0 - confidence) / 2.0).clamp(0.0, 0.5);
    let bounds = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        (at(tail), at(1.0 - tail))
    };
    Some(Bootstrap { difference: bounds(&mut diff), candidate: bounds(&mut cand), serving: bounds(&mut serv) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12 * b.abs().max(1e-300)
    }

    #[test]
    fn binomial_tail_matches_hand_computed_values() {
        // P(X ≥ 6 | n = 8) = (C(8,6) + C(8,7) + C(8,8)) / 256 = 37 / 256.
        assert!(close(binomial_half_tail(6, 8), 37.0 / 256.0));
        assert!(close(binomial_half_tail(1, 1), 0.5));
        assert!(close(binomial_half_tail(5, 5), 1.0 / 32.0));
        assert_eq!(binomial_half_tail(0, 7), 1.0);
        assert_eq!(binomial_half_tail(0, 0), 1.0);
        assert_eq!(binomial_half_tail(3, 2), 0.0);
        // Symmetry: P(X ≥ k) + P(X ≥ n - k + 1) = 1.
        for n in [1usize, 9, 40, 301] {
            for k in 1..=n {
                let sum = binomial_half_tail(k, n) + binomial_half_tail(n - k + 1, n);
                assert!((sum - 1.0).abs() < 1e-9, "n {n} k {k}: {sum}");
            }
        }
        // Beyond 2⁻¹⁰⁷⁴: finite, tiny, and the middle of a big binomial is about one half.
        let extreme = binomial_half_tail(1500, 1500);
        assert!(extreme == 0.0 || extreme < 1e-300);
        let middle = binomial_half_tail(1500, 3000);
        assert!((middle - 0.5).abs() < 0.01, "{middle}");
    }

    #[test]
    fn smallest_attainable_p_halves_per_pair() {
        assert_eq!(smallest_attainable_p(0), 1.0);
        assert!(close(smallest_attainable_p(4), 1.0 / 16.0));
    }

    #[test]
    fn holm_tarone_skips_hopeless_tests_and_steps_down() {
        // Ten hypotheses, eight of which can never go below 0.03; plain Holm would ask 0.005 of the other two.
        let mut tests = vec![(0.5, 0.5); 8];
        tests.push((0.02, 1e-6));
        tests.push((0.001, 1e-6));
        let d = holm_tarone(&tests, 0.05);
        assert!(d[..8].iter().all(|d| d.limit.is_none() && !d.rejected), "{d:?}");
        // K = 2 first (two testable): 0.001 ≤ 0.025 rejects; then K = 1: 0.02 ≤ 0.05 rejects.
        assert_eq!(d[9], Decision { limit: Some(0.025), rejected: true });
        assert_eq!(d[8], Decision { limit: Some(0.05), rejected: true });
        // Plain Holm (every test could reach any limit) would reject neither 0.02 nor 0.03 among five.
        let plain = holm_tarone(&[(0.02, 0.0), (0.03, 0.0), (0.5, 0.0), (0.6, 0.0), (0.7, 0.0)], 0.05);
        assert!(plain.iter().all(|d| !d.rejected && d.limit == Some(0.01)), "{plain:?}");
        // Each step divides by the hypotheses left: 0.004 ≤ 0.05/3, 0.011 ≤ 0.05/2, 0.012 ≤ 0.05/1.
        let stop = holm_tarone(&[(0.004, 0.0), (0.011, 0.0), (0.012, 0.0)], 0.05);
        assert_eq!(stop.iter().map(|d| d.rejected).collect::<Vec<_>>(), [true, true, true]);
        // 0.001 ≤ 0.05/3, then 0.03 > 0.05/2 stops the procedure, so 0.035 is kept although it is below 0.05.
        let stop = holm_tarone(&[(0.001, 0.0), (0.03, 0.0), (0.035, 0.0)], 0.05);
        assert_eq!(stop.iter().map(|d| d.rejected).collect::<Vec<_>>(), [true, false, false]);
        assert!(holm_tarone(&[], 0.05).is_empty());
        assert!(!holm_tarone(&[(f64::NAN, 0.0)], 0.05)[0].rejected, "NaN never rejects");
    }

    #[test]
    fn bootstrap_is_deterministic_and_brackets_the_estimate() {
        // 100 images: candidate right on 80, serving on 70, disagreeing on 20 (15 vs 5).
        let mut pairs = vec![(true, true); 65];
        pairs.extend(vec![(true, false); 15]);
        pairs.extend(vec![(false, true); 5]);
        pairs.extend(vec![(false, false); 15]);
        let b = paired_bootstrap(&pairs, 2000, 0.95, 7).unwrap();
        assert_eq!(b, paired_bootstrap(&pairs, 2000, 0.95, 7).unwrap(), "same seed, same interval");
        assert!(b.difference.0 < 0.10 && 0.10 < b.difference.1, "{b:?}");
        // The paired standard error is sqrt((15 + 5) / 100² - 0.1² / 100) ≈ 0.042: a 95% interval ≈ ±0.083.
        let width = b.difference.1 - b.difference.0;
        assert!((0.12..0.21).contains(&width), "{width}");
        assert!(b.candidate.0 < 0.8 && 0.8 < b.candidate.1 && b.serving.0 < 0.7 && 0.7 < b.serving.1);
        // Identical models: every resample has a difference of exactly 0.
        let same = paired_bootstrap(&[(true, true); 30], 500, 0.95, 1).unwrap();
        assert_eq!(same.difference, (0.0, 0.0));
        assert!(paired_bootstrap(&[], 100, 0.95, 1).is_none());
    }
}
