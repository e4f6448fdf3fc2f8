//! Calibration from held-out evidence. A head's statistics make exact unlearning cheap, so every labelled sample
//! can be predicted by the head as it would be without that sample (leave-one-out) — an unbiased stand-in for
//! the images it will see next. Temperature and the open-set threshold are fitted on those predictions, and the
//! reliability before and after is reported so a person can see what the fit changed.

use serde::{Deserialize, Serialize};

use crate::calibrate::{fit_temperature, softmax_scaled, Calibration};
use crate::error::Result;
use crate::head::Head;

/// Equal-width confidence bins of the reliability diagram and the calibration error.
pub const RELIABILITY_BINS: usize = 15;

/// One prediction made without the sample having been learned: raw logits (per class id), the true class
/// index and the open-set distance.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldOut {
    pub logits: Vec<f64>,
    pub truth: usize,
    pub distance: Option<f64>,
}

/// Exact leave-one-out predictions: each sample is unlearned from a copy of the head, scored, and learned
/// back. Samples whose class would be left empty (or that the head does not know) cannot be held out and are
/// skipped. `samples` must be embeddings the head has learned under the named class.
pub fn leave_one_out<H: Head + Clone>(head: &H, samples: &[(&[f32], &str)]) -> Result<Vec<HeldOut>> {
    let mut copy = head.clone();
    let mut out = Vec::with_capacity(samples.len());
    for &(x, class) in samples {
        let Some(id) = copy.class_id(class) else { continue };
        if copy.count(id) < 2 {
            continue;
        }
        copy.unlearn(x, id)?;
        let raw = copy.raw_scores(x);
        copy.learn(x, id)?;
        let raw = raw?;
        out.push(HeldOut { logits: raw.logits, truth: id.index(), distance: raw.distance });
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    /// Mean top-1 probability in the bin (0 when empty).
    pub confidence: f64,
    /// Fraction of the bin's top-1 answers that were right (0 when empty).
    pub accuracy: f64,
}

/// How well top-1 probabilities match how often they are right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reliability {
    pub samples: usize,
    pub accuracy: f64,
    /// Expected calibration error over [`RELIABILITY_BINS`] bins: the count-weighted mean |confidence - accuracy|.
    pub ece: f64,
    /// Mean negative log-likelihood of the true class.
    pub nll: f64,
    /// Of the wrong answers, the share given a probability above 0.99.
    pub wrong_above_99: f64,
    /// Median top-1 probability of the wrong answers (0 when none was wrong).
    pub median_wrong_probability: f64,
    pub bins: Vec<ReliabilityBin>,
}

/// Reliability of `(top-1 probability, was it right)` pairs plus the true class's probability for the NLL.
pub fn reliability(outcomes: &[(f64, bool, f64)]) -> Reliability {
    let n = outcomes.len();
    let mut count = [0usize; RELIABILITY_BINS];
    let mut conf = [0f64; RELIABILITY_BINS];
    let mut hits = [0usize; RELIABILITY_BINS];
    let mut wrong = Vec::new();
    let mut nll = 0.0;
    for &(p, right, p_true) in outcomes {
        // Probability 1.0 belongs to the last bin, which is closed on the right.
        let b = ((p * RELIABILITY_BINS as f64) as usize).min(RELIABILITY_BINS - 1);
        count[b] += 1;
        conf[b] += p;
        hits[b] += usize::from(right);
        if !right {
            wrong.push(p);
        }
        // A floor on the true class's probability, so a single zero does not make the NLL infinite.
        nll -= p_true.max(1e-12).ln();
    }
    let frac = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let mut ece = 0.0;
    let bins = (0..RELIABILITY_BINS)
        .map(|b| {
            let confidence = if count[b] == 0 { 0.0 } else { conf[b] / count[b] as f64 };
            let accuracy = frac(hits[b], count[b]);
            ece += frac(count[b], n) * (confidence - accuracy).abs();
            ReliabilityBin {
                lower: b as f64 / RELIABILITY_BINS as f64,
                upper: (b + 1) as f64 / RELIABILITY_BINS as f64,
                count: count[b],
                confidence,
                accuracy,
            }
        })
        .collect();
    wrong.sort_by(f64::total_cmp);
    Reliability {
        samples: n,
        accuracy: frac(hits.iter().sum(), n),
        ece,
        nll: if n == 0 { 0.0 } else { nll / n as f64 },
        wrong_above_99: frac(wrong.iter().filter(|&&p| p > 0.99).count(), wrong.len()),
        median_wrong_probability: wrong.get(wrong.len() / 2).copied().unwrap_or(0.0),
        bins,
    }
}

/// Reliability of held-out predictions under `temperature`.
pub fn held_out_reliability(held: &[HeldOut], temperature: f64) -> Reliability {
    let outcomes: Vec<(f64, bool, f64)> = held
        .iter()
        .map(|h| {
            let p = softmax_scaled(&h.logits, 1.0 / temperature);
            let best = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a))).unwrap_or(0);
            (p.get(best).copied().unwrap_or(0.0), best == h.truth, p.get(h.truth).copied().unwrap_or(0.0))
        })
        .collect();
    reliability(&outcomes)
}

/// A calibration fitted on held-out predictions, with the evidence it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationFit {
    pub calibration: Calibration,
    pub before: Reliability,
    pub after: Reliability,
    /// Share of the held-out known-class samples that the fitted threshold calls unknown.
    pub false_unknown_rate: f64,
}

/// Fits the temperature (minimum NLL) and a distance threshold that calls at most `target_false_unknown` of
/// the known-class held-out samples unknown.
///
/// With fewer than `min_samples` held-out predictions there is too little evidence to trust either fit alone:
/// `fallback_max_distance` is the threshold, and the temperature shrinks from `prior_temperature` towards the
/// evidence's own fit in log space, weighted by how many samples there are (`n / (n + min_samples)`). So the very
/// first answers are already tempered (raw scores of a head that has seen two images per class are near-certain
/// even when wrong) and the estimate moves to the data as labels arrive.
pub fn fit_held_out(
    held: &[HeldOut],
    target_false_unknown: f64,
    min_samples: usize,
    fallback_max_distance: Option<f64>,
    prior_temperature: f64,
) -> CalibrationFit {
    let before = held_out_reliability(held, 1.0);
    if held.len() < min_samples.max(1) {
        let prior = if prior_temperature.is_finite() && prior_temperature > 0.0 { prior_temperature } else { 1.0 };
        let temperature = if held.is_empty() {
            prior
        } else {
            let samples: Vec<(Vec<f64>, usize)> = held.iter().map(|h| (h.logits.clone(), h.truth)).collect();
            let fitted = fit_temperature(&samples).temperature;
            let w = held.len() as f64 / (held.len() + min_samples.max(1)) as f64;
            (w * fitted.ln() + (1.0 - w) * prior.ln()).exp()
        };
        let calibration = Calibration { temperature, min_probability: None, max_distance: fallback_max_distance };
        let rejected =
            held.iter().filter(|h| matches!((h.distance, fallback_max_distance), (Some(d), Some(m)) if d > m)).count();
        let false_unknown_rate = if held.is_empty() { 0.0 } else { rejected as f64 / held.len() as f64 };
        let after = held_out_reliability(held, temperature);
        return CalibrationFit { calibration, after, before, false_unknown_rate };
    }
    let samples: Vec<(Vec<f64>, usize)> = held.iter().map(|h| (h.logits.clone(), h.truth)).collect();
    let temperature = fit_temperature(&samples).temperature;
    let mut distances: Vec<f64> = held.iter().filter_map(|h| h.distance).collect();
    let max_distance = (!distances.is_empty()).then(|| {
        distances.sort_by(|a, b| b.total_cmp(a));
        let allowed = (target_false_unknown * distances.len() as f64).floor() as usize;
        distances[allowed.min(distances.len() - 1)]
    });
    let rejected = held.iter().filter(|h| matches!((h.distance, max_distance), (Some(d), Some(m)) if d > m)).count();
    CalibrationFit {
        calibration: Calibration { temperature, min_probability: None, max_distance },
        after: held_out_reliability(held, temperature),
        before,
        false_unknown_rate: rejected as f64 / held.len() as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncm::{Metric, NcmHead};
    use crate::slda::SldaHead;
    use crate::synthetic::gaussian_clusters;

    #[test]
    fn leave_one_out_equals_training_without_the_sample() {
        let data = gaussian_clusters(7, 3, 12, 8, 2.0, 1.0).1;
        let mut head = NcmHead::new(8, Metric::Euclidean);
        for ex in &data {
            head.learn_named(&ex.x, &ex.class).unwrap();
        }
        let samples: Vec<(&[f32], &str)> = data.iter().map(|e| (e.x.as_slice(), e.class.as_str())).collect();
        let held = leave_one_out(&head, &samples).unwrap();
        assert_eq!(held.len(), data.len());
        // The first sample, predicted by a head that never saw it.
        let mut without = NcmHead::new(8, Metric::Euclidean);
        for ex in &data[1..] {
            without.learn_named(&ex.x, &ex.class).unwrap();
        }
        let raw = without.raw_scores(&data[0].x).unwrap();
        let truth = head.class_id(&data[0].class).unwrap().index();
        assert_eq!(held[0].truth, truth);
        // Class ids follow the order classes were first learned, so compare by name.
        for (id, name) in head.classes().iter() {
            let (a, b) = (held[0].logits[id.index()], raw.logits[without.class_id(name).unwrap().index()]);
            assert!((a - b).abs() < 1e-6 * (1.0 + b.abs()), "{name}: {a} vs {b}");
        }
    }

    #[test]
    fn singleton_classes_cannot_be_held_out() {
        let mut head = SldaHead::new(4);
        head.learn_named(&[1.0, 0.0, 0.0, 0.0], "a").unwrap();
        head.learn_named(&[0.0, 1.0, 0.0, 0.0], "b").unwrap();
        head.learn_named(&[0.0, 1.1, 0.0, 0.0], "b").unwrap();
        let samples: Vec<(&[f32], &str)> =
            vec![(&[1.0, 0.0, 0.0, 0.0], "a"), (&[0.0, 1.0, 0.0, 0.0], "b"), (&[0.0, 1.1, 0.0, 0.0], "b")];
        let held = leave_one_out(&head, &samples).unwrap();
        assert_eq!(held.len(), 2);
        assert_eq!(head.count(head.class_id("a").unwrap()), 1, "the head itself is untouched");
    }

    #[test]
    fn overconfident_evidence_gets_a_higher_temperature_and_lower_error() {
        // Overlapping classes learned by SLDA: held-out answers are often wrong yet near-certain at T = 1.
        let data = gaussian_clusters(3, 4, 40, 16, 0.6, 1.0).1;
        let mut head = SldaHead::new(16);
        for ex in &data {
            head.learn_named(&ex.x, &ex.class).unwrap();
        }
        let samples: Vec<(&[f32], &str)> = data.iter().map(|e| (e.x.as_slice(), e.class.as_str())).collect();
        let held = leave_one_out(&head, &samples).unwrap();
        let fit = fit_held_out(&held, 0.05, 20, None, 1.0);
        assert!(fit.after.ece <= fit.before.ece + 1e-9, "{:?} -> {:?}", fit.before.ece, fit.after.ece);
        assert!(fit.after.nll <= fit.before.nll + 1e-9);
        assert!(fit.false_unknown_rate <= 0.05 + 1e-9, "{}", fit.false_unknown_rate);
        assert!(fit.calibration.max_distance.is_some());
    }

    #[test]
    fn too_little_evidence_starts_from_the_prior_and_keeps_the_fallback_threshold() {
        assert_eq!(fit_held_out(&[], 0.05, 20, Some(2.0), 4.0).calibration.temperature, 4.0);
        // One confident mistake: the evidence pulls the temperature above the prior, but only part of the way.
        let held = vec![HeldOut { logits: vec![5.0, 0.0], truth: 1, distance: Some(3.0) }];
        let fit = fit_held_out(&held, 0.05, 20, Some(2.0), 4.0);
        let fitted = fit_temperature(&[(vec![5.0, 0.0], 1)]).temperature;
        assert!(fitted > 4.0, "{fitted}");
        let t = fit.calibration.temperature;
        assert!(t > 4.0 && t < fitted, "shrunk between the prior and the fit: {t}");
        assert_eq!(fit.calibration.max_distance, Some(2.0));
        assert_eq!(fit.false_unknown_rate, 1.0);
        assert!(fit.after.nll < fit.before.nll, "a tempered answer is less wrong");
    }

    #[test]
    fn reliability_counts_confident_mistakes() {
        let r = reliability(&[(0.995, false, 0.001), (0.6, false, 0.3), (0.9, true, 0.9), (0.9, true, 0.9)]);
        assert_eq!(r.samples, 4);
        assert_eq!(r.accuracy, 0.5);
        assert_eq!(r.wrong_above_99, 0.5);
        assert!(r.ece > 0.0 && r.ece <= 1.0);
        assert_eq!(r.bins.iter().map(|b| b.count).sum::<usize>(), 4);
    }
}
