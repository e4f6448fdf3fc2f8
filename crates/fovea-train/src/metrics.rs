//! Evaluation of a classifier on a labelled set (normally the frozen benchmark).
//!
//! Besides accuracy, the evaluation records per-class numbers (an overall gain can hide a class that collapsed,
//! which the promotion gate checks), the confusion matrix (which classes get mixed up, for the UI), and
//! calibration: expected calibration error, a reliability diagram and negative log-likelihood. The app shows the
//! model's confidence to users and uses it to decide what to ask them about, so a confident-but-wrong model is
//! worse than its accuracy suggests.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Number of equal-width confidence bins for the calibration error and the reliability diagram.
pub const CALIBRATION_BINS: usize = fovea_learn::heldout::RELIABILITY_BINS;
/// How far a probability row's sum may stray from 1 (f32 softmax outputs are not exact).
const ROW_SUM_TOLERANCE: f64 = 1e-3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: String,
    /// Images whose true class this is.
    pub count: usize,
    /// Of those, how many were predicted correctly.
    pub correct: usize,
    /// `correct / count` (0 when `count` is 0). Identical to `recall`, kept under both names for readability.
    pub accuracy: f64,
    /// Of the images predicted as this class, the fraction that truly are (0 when never predicted).
    pub precision: f64,
    pub recall: f64,
}

/// One bin of the reliability diagram (shared with the online head's calibration report).
pub use fovea_learn::heldout::ReliabilityBin;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub classes: Vec<String>,
    pub count: usize,
    pub accuracy: f64,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[truth][predicted]`.
    pub confusion: Vec<Vec<u32>>,
    /// Expected calibration error of the top-1 confidence over [`CALIBRATION_BINS`] bins: the count-weighted mean
    /// gap between confidence and accuracy.
    pub ece: f64,
    pub reliability: Vec<ReliabilityBin>,
    /// Mean negative log-likelihood (natural log) of the true class.
    pub nll: f64,
    /// Per image, in input order: the true class index. With `predicted`, what a paired comparison of two models
    /// on the same images needs (the gate); aggregate counts cannot say whether two models erred on the same
    /// images. Empty in evaluations recorded before these were kept.
    #[serde(default)]
    pub truth: Vec<usize>,
    /// Per image, in input order: the predicted (arg-max) class index.
    #[serde(default)]
    pub predicted: Vec<usize>,
}

/// Index of the largest probability; ties go to the lowest index so results are deterministic.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &p) in row.iter().enumerate() {
        if p > row[best] {
            best = i;
        }
    }
    best
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

fn validate(classes: &[String], truth: &[usize], probabilities: &[Vec<f32>]) -> Result<()> {
    if truth.len() != probabilities.len() {
        return Err(TrainError::Config(format!(
            "evaluation got {} labels but {} probability rows",
            truth.len(),
            probabilities.len()
        )));
    }
    for (i, (&t, row)) in truth.iter().zip(probabilities).enumerate() {
        if t >= classes.len() {
            return Err(TrainError::Config(format!("label {t} of sample {i} is not one of {} classes", classes.len())));
        }
        if row.len() != classes.len() {
            return Err(TrainError::Config(format!(
                "probability row {i} has {} entries for {} classes",
                row.len(),
                classes.len()
            )));
        }
        if row.iter().any(|p| !p.is_finite() || *p < 0.0) {
            return Err(TrainError::Config(format!("probability row {i} has a negative or non-finite entry")));
        }
        let sum: f64 = row.iter().map(|&p| f64::from(p)).sum();
        if (sum - 1.0).abs() > ROW_SUM_TOLERANCE {
            return Err(TrainError::Config(format!("probability row {i} sums to {sum}, not 1 (pass softmax outputs)")));
        }
    }
    Ok(())
}

/// Evaluates predicted class probabilities against the true labels.
///
/// `probabilities[i]` is the softmax output for sample `i` over `classes`; `truth[i]` its true class index.
/// Returns [`TrainError::Config`] when the lengths disagree, a label is out of range, or a row is not a
/// probability distribution (entries finite and non-negative, summing to 1 ± 0.001), since metrics computed from
/// such input would be silently wrong. An empty input is valid: every metric is 0 and nothing panics.
pub fn evaluate(classes: &[String], truth: &[usize], probabilities: &[Vec<f32>]) -> Result<Evaluation> {
    validate(classes, truth, probabilities)?;
    let k = classes.len();
    let mut confusion = vec![vec![0u32; k]; k];
    // (top-1 confidence, right?, probability of the true class): what the shared reliability summary needs.
    let mut outcomes = Vec::with_capacity(truth.len());
    let mut correct = 0;
    let mut predictions = Vec::with_capacity(truth.len());

    for (&t, row) in truth.iter().zip(probabilities) {
        let predicted = argmax(row);
        predictions.push(predicted);
        confusion[t][predicted] += 1;
        let hit = predicted == t;
        correct += usize::from(hit);
        outcomes.push((f64::from(row[predicted]), hit, f64::from(row[t])));
    }

    let n = truth.len();
    let per_class = classes
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let count: usize = confusion[c].iter().map(|&x| x as usize).sum();
            let predicted: usize = confusion.iter().map(|row| row[c] as usize).sum();
            let hits = confusion[c][c] as usize;
            ClassMetrics {
                class: name.clone(),
                count,
                correct: hits,
                accuracy: ratio(hits, count),
                precision: ratio(hits, predicted),
                recall: ratio(hits, count),
            }
        })
        .collect();

    let calibration = fovea_learn::reliability(&outcomes);

    Ok(Evaluation {
        classes: classes.to_vec(),
        count: n,
        accuracy: ratio(correct, n),
        per_class,
        confusion,
        ece: calibration.ece,
        reliability: calibration.bins,
        nll: calibration.nll,
        truth: truth.to_vec(),
        predicted: predictions,
    })
}

/// Fraction of positions where `predicted` equals `truth`. If the lengths differ, the missing predictions count
/// as wrong (the denominator is the longer length), so a truncated prediction list cannot look better than it is.
/// Empty input gives 0.
pub fn accuracy_of(truth: &[usize], predicted: &[usize]) -> f64 {
    let hits = truth.iter().zip(predicted).filter(|(t, p)| t == p).count();
    ratio(hits, truth.len().max(predicted.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn hand_computed_three_class_case() {
        let classes = names(&["cat", "dog", "fox"]);
        let truth = [0, 0, 1, 1, 2];
        let probs = vec![
            vec![0.9, 0.1, 0.0],   // cat -> cat, conf 0.9
            vec![0.3, 0.6, 0.1],   // cat -> dog, conf 0.6
            vec![0.2, 0.7, 0.1],   // dog -> dog, conf 0.7
            vec![0.1, 0.85, 0.05], // dog -> dog, conf 0.85
            vec![0.5, 0.0, 0.5],   // fox -> cat (tie goes to the lower index), conf 0.5
        ];
        let e = evaluate(&classes, &truth, &probs).unwrap();
        assert_eq!(e.count, 5);
        assert!(close(e.accuracy, 0.6));
        assert_eq!(e.confusion, vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]);
        assert_eq!((e.truth.as_slice(), e.predicted.as_slice()), (&truth[..], &[0, 1, 1, 1, 0][..]));
        let cat = &e.per_class[0];
        assert_eq!((cat.count, cat.correct), (2, 1));
        assert!(close(cat.accuracy, 0.5) && close(cat.recall, 0.5) && close(cat.precision, 0.5));
        let dog = &e.per_class[1];
        assert!(close(dog.recall, 1.0) && close(dog.precision, 2.0 / 3.0));
        let fox = &e.per_class[2];
        assert_eq!(fox.correct, 0);
        assert!(close(fox.precision, 0.0) && close(fox.recall, 0.0));

        // Bins of width 1/15: 0.5 -> bin 7, 0.6 -> bin 9, 0.7 -> bin 10, 0.85 -> bin 12, 0.9 -> bin 13.
        let counts: Vec<usize> = e.reliability.iter().map(|b| b.count).collect();
        let mut expected = vec![0; 15];
        for b in [7, 9, 10, 12, 13] {
            expected[b] = 1;
        }
        assert_eq!(counts, expected);
        // ECE = (|0.5-0| + |0.6-0| + |0.7-1| + |0.85-1| + |0.9-1|) / 5 = 1.65 / 5.
        assert!(close(e.ece, 0.33), "ece {}", e.ece);
        let nll = -(0.9f64.ln() + 0.3f64.ln() + 0.7f64.ln() + 0.85f64.ln() + 0.5f64.ln()) / 5.0;
        assert!((e.nll - nll).abs() < 1e-5, "nll {} vs {nll}", e.nll);
    }

    #[test]
    fn perfect_confident_predictions_are_calibrated() {
        let classes = names(&["a", "b"]);
        let e = evaluate(&classes, &[0, 1], &[vec![1.0, 0.0], vec![0.0, 1.0]]).unwrap();
        assert!(close(e.accuracy, 1.0) && close(e.ece, 0.0) && close(e.nll, 0.0));
        assert_eq!(e.reliability[14].count, 2, "confidence 1.0 falls in the last bin");
        assert!(close(e.reliability[14].upper, 1.0) && close(e.reliability[0].lower, 0.0));
    }

    #[test]
    fn zero_probability_for_truth_gives_finite_nll() {
        let e = evaluate(&names(&["a", "b"]), &[0], &[vec![0.0, 1.0]]).unwrap();
        assert!(e.nll.is_finite() && e.nll > 20.0);
    }

    #[test]
    fn empty_input_gives_zeros() {
        let e = evaluate(&names(&["a", "b"]), &[], &[]).unwrap();
        assert_eq!((e.count, e.accuracy, e.ece, e.nll), (0, 0.0, 0.0, 0.0));
        assert_eq!(e.confusion, vec![vec![0, 0], vec![0, 0]]);
        assert_eq!(e.per_class.len(), 2);
        assert_eq!(e.reliability.len(), CALIBRATION_BINS);
        let none = evaluate(&[], &[], &[]).unwrap();
        assert_eq!(none.count, 0);
    }

    #[test]
    fn invalid_input_is_rejected() {
        let classes = names(&["a", "b"]);
        assert!(evaluate(&classes, &[0, 1], &[vec![0.5, 0.5]]).is_err(), "length mismatch");
        assert!(evaluate(&classes, &[2], &[vec![0.5, 0.5]]).is_err(), "label out of range");
        assert!(evaluate(&classes, &[0], &[vec![1.0]]).is_err(), "short row");
        assert!(evaluate(&classes, &[0], &[vec![0.5, 0.2]]).is_err(), "row does not sum to 1");
        assert!(evaluate(&classes, &[0], &[vec![f32::NAN, 1.0]]).is_err(), "NaN");
        assert!(evaluate(&classes, &[0], &[vec![-0.5, 1.5]]).is_err(), "negative");
        assert!(evaluate(&classes, &[0], &[vec![0.3333, 0.6667]]).is_ok(), "rounding within tolerance");
    }

    #[test]
    fn accuracy_of_counts_missing_predictions_as_wrong() {
        assert_eq!(accuracy_of(&[], &[]), 0.0);
        assert!(close(accuracy_of(&[1, 2, 3, 4], &[1, 2, 0, 4]), 0.75));
        assert!(close(accuracy_of(&[1, 2, 3, 4], &[1, 2]), 0.5));
        assert!(close(accuracy_of(&[1], &[1, 2]), 0.5));
    }

    #[test]
    fn evaluation_serialises() {
        let e = evaluate(&names(&["a", "b"]), &[0, 1], &[vec![0.8, 0.2], vec![0.4, 0.6]]).unwrap();
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Evaluation>(&json).unwrap(), e);
        // Evaluations stored before per-image predictions were kept still load, with none.
        let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
        old.as_object_mut().unwrap().retain(|k, _| k != "truth" && k != "predicted");
        let old: Evaluation = serde_json::from_value(old).unwrap();
        assert!(old.truth.is_empty() && old.predicted.is_empty() && old.count == 2);
    }
}
