//! Small statistics every report and drift signal rests on: binomial intervals, the two-sample
//! Kolmogorov–Smirnov test and the population stability index.

use serde::{Deserialize, Serialize};

/// z for a two-sided 95 % interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// A proportion with its sample size and a 95 % Wilson score interval (sound at small n and near 0 or 1,
/// where the normal interval is not).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Proportion {
    pub n: u64,
    pub hits: u64,
    /// `hits / n`, or null when `n` is 0.
    pub value: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

impl Proportion {
    pub fn new(hits: u64, n: u64) -> Self {
        match wilson(hits, n) {
            Some((low, high)) => {
                Proportion { n, hits, value: Some(hits as f64 / n as f64), low: Some(low), high: Some(high) }
            }
            None => Proportion { n, hits, value: None, low: None, high: None },
        }
    }
}

/// The 95 % Wilson score interval of `hits` out of `n`; `None` when `n` is 0.
pub fn wilson(hits: u64, n: u64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let n = n as f64;
    let p = hits as f64 / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// The two-sample Kolmogorov–Smirnov statistic: the largest gap between the empirical distribution functions.
/// Ties are handled exactly (both functions step past a shared value together). Both inputs must be sorted.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut d) = (0usize, 0usize, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

/// The asymptotic critical value of the KS statistic at significance `alpha` for samples of `n` and `m`.
pub fn ks_critical(alpha: f64, n: usize, m: usize) -> f64 {
    if n == 0 || m == 0 {
        return f64::INFINITY;
    }
    let c = (-(alpha / 2.0).ln() / 2.0).sqrt();
    c * ((n + m) as f64 / (n as f64 * m as f64)).sqrt()
}

/// The asymptotic p-value of a KS statistic `d` for samples of `n` and `m` (Kolmogorov's series).
pub fn ks_p_value(d: f64, n: usize, m: usize) -> f64 {
    if n == 0 || m == 0 {
        return 1.0;
    }
    let en = (n as f64 * m as f64 / (n + m) as f64).sqrt();
    let lambda = (en + 0.12 + 0.11 / en) * d;
    if lambda < 1e-3 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100 {
        let k = k as f64;
        let term = 2.0 * (-1f64).powi(k as i32 - 1) * (-2.0 * k * k * lambda * lambda).exp();
        sum += term;
        if term.abs() < 1e-12 {
            break;
        }
    }
    sum.clamp(0.0, 1.0)
}

/// Population stability index of `actual` against `expected` counts over the same categories:
/// Σ (a − e) · ln(a / e) over shares, each smoothed by half a count so an empty category stays finite.
pub fn psi(expected: &[u64], actual: &[u64]) -> f64 {
    let (te, ta) = (expected.iter().sum::<u64>() as f64, actual.iter().sum::<u64>() as f64);
    if te == 0.0 || ta == 0.0 {
        return 0.0;
    }
    let k = expected.len().max(1) as f64;
    expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let e = (e as f64 + 0.5) / (te + 0.5 * k);
            let a = (a as f64 + 0.5) / (ta + 0.5 * k);
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// z statistic of a window's share `hits / n` against a reference share `p0` (0 when undefined).
pub fn proportion_z(hits: u64, n: u64, p0: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    // A reference share of exactly 0 or 1 would make any change infinitely significant; a floor of one in a
    // thousand keeps the statistic finite without hiding a real move.
    let p0 = p0.clamp(1e-3, 1.0 - 1e-3);
    (hits as f64 / n as f64 - p0) / (p0 * (1.0 - p0) / n as f64).sqrt()
}

pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

pub fn sorted(mut xs: Vec<f64>) -> Vec<f64> {
    xs.sort_by(f64::total_cmp);
    xs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_a_textbook_value_and_stays_inside_zero_one() {
        // 8 of 10: Wilson 95 % interval is (0.490, 0.943).
        let (lo, hi) = wilson(8, 10).unwrap();
        assert!((lo - 0.4902).abs() < 1e-3 && (hi - 0.9433).abs() < 1e-3, "{lo} {hi}");
        let (lo, hi) = wilson(0, 5).unwrap();
        assert_eq!(lo, 0.0);
        assert!(hi > 0.4 && hi < 0.5);
        assert!(wilson(0, 0).is_none());
        assert_eq!(Proportion::new(3, 4).value, Some(0.75));
    }

    #[test]
    fn ks_statistic_handles_ties_and_disjoint_samples() {
        assert_eq!(ks_statistic(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 0.0);
        assert_eq!(ks_statistic(&[1.0, 1.0], &[2.0, 2.0]), 1.0);
        let d = ks_statistic(&[1.0, 2.0, 3.0, 4.0], &[3.0, 4.0, 5.0, 6.0]);
        assert!((d - 0.5).abs() < 1e-12);
        // Critical value at alpha 0.05, n = m = 100: 1.358 * sqrt(2/100) = 0.192.
        assert!((ks_critical(0.05, 100, 100) - 0.192).abs() < 1e-3);
        assert!(ks_p_value(0.192, 100, 100) > 0.04 && ks_p_value(0.192, 100, 100) < 0.07);
        assert!(ks_p_value(0.5, 100, 100) < 1e-9);
    }

    #[test]
    fn psi_is_zero_for_equal_mixes_and_large_for_a_swap() {
        assert!(psi(&[100, 100, 100], &[50, 50, 50]).abs() < 1e-9);
        assert!(psi(&[100, 100, 0], &[0, 100, 100]) > 1.0);
        let z = proportion_z(30, 100, 0.1);
        assert!((z - 6.6667).abs() < 1e-3, "{z}");
    }
}
