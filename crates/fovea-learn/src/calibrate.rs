//! Turning raw logits into probabilities that mean what they say, and deciding when an input is "unknown".

use serde::{Deserialize, Serialize};

use crate::classes::ClassId;
use crate::error::{Error, Result};
use crate::eval::Example;
use crate::head::{Head, Prediction, RawScores, Scored};

/// Post-processing shared by every head: temperature scaling plus open-set thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Logits are divided by this before the softmax (> 0; 1 = uncalibrated).
    pub temperature: f64,
    /// Unknown when the best calibrated probability is below this.
    pub min_probability: Option<f64>,
    /// Unknown when the distance to the nearest class is above this.
    pub max_distance: Option<f64>,
}

impl Default for Calibration {
    fn default() -> Self {
        Self { temperature: 1.0, min_probability: None, max_distance: None }
    }
}

impl Calibration {
    pub fn apply(&self, raw: RawScores) -> Prediction {
        let t = if self.temperature.is_finite() && self.temperature > 0.0 { self.temperature } else { 1.0 };
        let probabilities = softmax_scaled(&raw.logits, 1.0 / t);
        let mut ranked: Vec<Scored> = raw
            .logits
            .iter()
            .zip(&probabilities)
            .enumerate()
            .filter(|(_, (l, _))| l.is_finite())
            .map(|(i, (&score, &probability))| Scored { class: ClassId(i as u32), score, probability })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.class.cmp(&b.class)));
        let best = ranked.first().map_or(0.0, |s| s.probability);
        let unknown = ranked.is_empty()
            || self.min_probability.is_some_and(|m| best < m)
            || matches!((self.max_distance, raw.distance), (Some(m), Some(d)) if d > m);
        Prediction { ranked, probabilities, distance: raw.distance, unknown }
    }
}

/// Softmax of `beta * logits`; non-finite logits get probability 0 and an all-untrained input gives all zeros.
pub fn softmax_scaled(logits: &[f64], beta: f64) -> Vec<f64> {
    let max = logits.iter().filter(|l| l.is_finite()).fold(f64::NEG_INFINITY, |m, &l| m.max(l));
    if !max.is_finite() {
        return vec![0.0; logits.len()];
    }
    let mut p: Vec<f64> = logits.iter().map(|&l| if l.is_finite() { (beta * (l - max)).exp() } else { 0.0 }).collect();
    let z: f64 = p.iter().sum();
    for v in &mut p {
        *v /= z;
    }
    p
}

/// Mean negative log-likelihood of the true labels under `softmax(logits / t)`.
pub fn nll(samples: &[(Vec<f64>, usize)], temperature: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let beta = 1.0 / temperature;
    let total: f64 = samples
        .iter()
        .map(|(logits, y)| {
            let max = logits.iter().filter(|l| l.is_finite()).fold(f64::NEG_INFINITY, |m, &l| m.max(l));
            let lse: f64 = logits.iter().filter(|l| l.is_finite()).map(|&l| (beta * (l - max)).exp()).sum::<f64>().ln();
            match logits.get(*y) {
                Some(&ly) if ly.is_finite() => lse - beta * (ly - max),
                // A label the head cannot produce costs a fixed large penalty rather than infinity.
                _ => 50.0,
            }
        })
        .sum();
    total / samples.len() as f64
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TemperatureFit {
    pub temperature: f64,
    pub nll_before: f64,
    pub nll_after: f64,
    pub samples: usize,
}

/// Temperature minimising mean NLL, by golden-section search on `ln T` in `[ln 1e-3, ln 1e3]`.
///
/// NLL is convex in `1/T`, hence unimodal in `ln T`, so golden section cannot get stuck; a fixed
/// iteration count keeps it deterministic.
pub fn fit_temperature(samples: &[(Vec<f64>, usize)]) -> TemperatureFit {
    let before = nll(samples, 1.0);
    if samples.is_empty() {
        return TemperatureFit { temperature: 1.0, nll_before: before, nll_after: before, samples: 0 };
    }
    let f = |log_t: f64| nll(samples, log_t.exp());
    let (mut a, mut b) = (1e-3f64.ln(), 1e3f64.ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - g * (b - a);
    let mut d = a + g * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..80 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    let mut t = ((a + b) / 2.0).exp();
    let mut after = nll(samples, t);
    // Keep T = 1 unless the fit really helps: a flat NLL (one-class data) would otherwise drift to a
    // boundary temperature that later flattens every prediction once more classes exist.
    let helps = after.is_finite() && after < before - 1e-12;
    if !helps {
        t = 1.0;
        after = before;
    }
    TemperatureFit { temperature: t, nll_before: before, nll_after: after, samples: samples.len() }
}

/// Logits of held-out examples whose class the head knows, paired with the true class index.
pub fn labelled_logits<H: Head>(head: &H, data: &[Example]) -> Result<Vec<(Vec<f64>, usize)>> {
    let mut out = Vec::with_capacity(data.len());
    for ex in data {
        if let Some(id) = head.class_id(&ex.class) {
            if head.count(id) > 0 {
                out.push((head.raw_scores(&ex.x)?.logits, id.index()));
            }
        }
    }
    Ok(out)
}

/// Fit the head's temperature on labelled held-out data (keeps open-set thresholds).
pub fn calibrate_temperature<H: Head>(head: &mut H, data: &[Example]) -> Result<TemperatureFit> {
    let samples = labelled_logits(head, data)?;
    let fit = fit_temperature(&samples);
    let mut cal = *head.calibration();
    cal.temperature = fit.temperature;
    head.set_calibration(cal);
    Ok(fit)
}

/// Which score(s) decide the open-set verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OpenSetRule {
    MaxProbability,
    #[default]
    Distance,
    /// Both thresholds, each given half the error budget so their union stays within it.
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpenSetFit {
    pub min_probability: Option<f64>,
    pub max_distance: Option<f64>,
    /// Fraction of the held-out known-class samples that the new thresholds call unknown.
    pub false_unknown_rate: f64,
    pub samples: usize,
}

/// Pick open-set thresholds so that at most `target_false_unknown` of held-out samples of known
/// classes would be called unknown. Uses the head's current temperature, so fit that first.
pub fn calibrate_open_set<H: Head>(
    head: &mut H,
    data: &[Example],
    target_false_unknown: f64,
    rule: OpenSetRule,
) -> Result<OpenSetFit> {
    if !(0.0..1.0).contains(&target_false_unknown) {
        return Err(Error::Config(format!("target false-unknown rate {target_false_unknown} must lie in [0, 1)")));
    }
    let mut probs = Vec::new();
    let mut dists = Vec::new();
    let base = Calibration { min_probability: None, max_distance: None, ..*head.calibration() };
    for ex in data {
        let known = head.class_id(&ex.class).is_some_and(|id| head.count(id) > 0);
        if !known {
            continue;
        }
        let p = base.apply(head.raw_scores(&ex.x)?);
        probs.push(p.max_probability());
        if let Some(d) = p.distance {
            dists.push(d);
        }
    }
    if probs.is_empty() {
        return Err(Error::NotEnoughData("no held-out sample of a trained class".into()));
    }
    let budget = match rule {
        OpenSetRule::Both => target_false_unknown / 2.0,
        _ => target_false_unknown,
    };
    let use_p = matches!(rule, OpenSetRule::MaxProbability | OpenSetRule::Both);
    let use_d = matches!(rule, OpenSetRule::Distance | OpenSetRule::Both);
    let min_probability = use_p.then(|| lower_threshold(&mut probs, budget));
    let max_distance = use_d.then(|| upper_threshold(&mut dists, budget));
    let cal = Calibration { min_probability, max_distance, ..base };
    let mut rejected = 0usize;
    let mut n = 0usize;
    for ex in data {
        if head.class_id(&ex.class).is_some_and(|id| head.count(id) > 0) {
            n += 1;
            rejected += cal.apply(head.raw_scores(&ex.x)?).unknown as usize;
        }
    }
    head.set_calibration(cal);
    Ok(OpenSetFit { min_probability, max_distance, false_unknown_rate: rejected as f64 / n as f64, samples: n })
}

/// Largest threshold `t` with `#{v < t} <= budget * n`: the allowed number of lowest values fall below it.
fn lower_threshold(values: &mut [f64], budget: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let allowed = (budget * values.len() as f64).floor() as usize;
    values.get(allowed).copied().unwrap_or(0.0)
}

/// Smallest threshold `t` with `#{v > t} <= budget * n`.
fn upper_threshold(values: &mut [f64], budget: f64) -> f64 {
    if values.is_empty() {
        return f64::MAX;
    }
    values.sort_by(|a, b| b.total_cmp(a));
    let allowed = (budget * values.len() as f64).floor() as usize;
    values.get(allowed).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_handles_untrained_and_empty() {
        assert_eq!(softmax_scaled(&[], 1.0), Vec::<f64>::new());
        assert_eq!(softmax_scaled(&[f64::NEG_INFINITY], 1.0), vec![0.0]);
        let p = softmax_scaled(&[1.0, f64::NEG_INFINITY, 1.0], 1.0);
        assert_eq!(p, vec![0.5, 0.0, 0.5]);
    }

    #[test]
    fn empty_raw_scores_are_unknown_without_nan() {
        let p = Calibration::default().apply(RawScores { logits: vec![], distance: None });
        assert!(p.unknown && p.ranked.is_empty() && p.class().is_none());
        assert_eq!(p.max_probability(), 0.0);
    }

    #[test]
    fn temperature_lowers_nll_on_overconfident_logits() {
        // Logits say "certain" but a third of the labels disagree with the arg-max.
        let mut samples = Vec::new();
        for i in 0..90 {
            let y = if i % 3 == 0 { 1 } else { 0 };
            samples.push((vec![10.0, 0.0, -2.0], y));
        }
        let fit = fit_temperature(&samples);
        assert!(fit.temperature > 1.0, "{fit:?}");
        assert!(fit.nll_after < fit.nll_before * 0.5, "{fit:?}");
        // The calibrated top probability should be near the true hit rate of 2/3.
        let p = softmax_scaled(&samples[0].0, 1.0 / fit.temperature);
        assert!((p[0] - 2.0 / 3.0).abs() < 0.05, "{p:?}");
    }

    #[test]
    fn flat_nll_keeps_unit_temperature() {
        let samples = vec![(vec![3.0], 0usize); 10];
        assert_eq!(fit_temperature(&samples).temperature, 1.0);
        assert_eq!(fit_temperature(&[]).temperature, 1.0);
    }

    #[test]
    fn thresholds_respect_budget() {
        let mut v: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let t = upper_threshold(&mut v, 0.05);
        assert_eq!(v.iter().filter(|&&x| x > t).count(), 5);
        let mut v: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let t = lower_threshold(&mut v, 0.05);
        assert_eq!(v.iter().filter(|&&x| x < t).count(), 5);
    }
}
