//! The promotion gate: may a freshly trained model replace the one being served?
//!
//! Users rely on the served model and correct it; a regression they did not ask for costs their trust. So a
//! candidate is promoted only when, on the frozen benchmark, it is at least as good overall and no known class
//! got noticeably worse. The verdict carries every reason, passing and failing, with the numbers, because the
//! person reviewing a run wants to see *why* it was (not) promoted.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::metrics::{ClassMetrics, Evaluation};

/// Slack for float comparisons in percentage points, so that e.g. 85% → 80% counts as exactly 5 points rather
/// than 5.000000000000004 and the boundary behaves as documented.
const EPSILON_POINTS: f64 = 1e-9;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GateConfig {
    /// Largest allowed drop of overall accuracy, in percentage points (0: must not be lower; negative: must
    /// improve by at least that much).
    pub max_overall_drop_points: f64,
    /// Largest allowed drop of any single class's accuracy, in percentage points.
    pub max_class_drop_points: f64,
    /// Smallest benchmark on which a verdict means anything.
    pub min_benchmark_images: usize,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self { max_overall_drop_points: 0.0, max_class_drop_points: 5.0, min_benchmark_images: 20 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateVerdict {
    pub passed: bool,
    /// Human-readable reasons in a fixed order, failing ones prefixed with "FAIL: ".
    pub reasons: Vec<String>,
}

fn pct(x: f64) -> f64 {
    x * 100.0
}

/// True when `drop` (points) is within `allowed`. Written so that NaN anywhere fails: a broken evaluation must
/// never be promoted.
fn within(drop: f64, allowed: f64) -> bool {
    drop <= allowed + EPSILON_POINTS
}

/// Judges a candidate against the serving model, both evaluated on the same benchmark.
///
/// Fails when the run is throw-away, the benchmark has fewer than `min_benchmark_images` images, overall accuracy
/// drops by more than `max_overall_drop_points`, or any class present in both evaluations (matched by name, with
/// images in both) drops by more than `max_class_drop_points`. A drop exactly at the limit passes. Classes new in
/// the candidate, or missing from it, are reported but not compared. With no serving model (`None`, the first
/// model) only the throw-away and benchmark-size rules apply.
pub fn judge(
    candidate: &Evaluation,
    serving: Option<&Evaluation>,
    throw_away: bool,
    config: &GateConfig,
) -> GateVerdict {
    let mut reasons = Vec::new();
    let mut passed = true;
    let mut check = |ok: bool, text: String| {
        passed &= ok;
        reasons.push(if ok { text } else { format!("FAIL: {text}") });
    };

    if throw_away {
        check(false, "throw-away runs can never be promoted".to_string());
    }
    check(
        candidate.count >= config.min_benchmark_images,
        format!("benchmark has {} images (minimum {})", candidate.count, config.min_benchmark_images),
    );

    let Some(serving) = serving else {
        check(
            candidate.accuracy.is_finite(),
            format!("no serving model to compare with; candidate accuracy {:.2}%", pct(candidate.accuracy)),
        );
        return GateVerdict { passed, reasons };
    };

    if serving.count != candidate.count {
        check(
            true,
            format!(
                "note: candidate was evaluated on {} images, serving model on {}; the benchmark changed between \
                 evaluations",
                candidate.count, serving.count
            ),
        );
    }

    let drop = pct(serving.accuracy) - pct(candidate.accuracy);
    check(
        within(drop, config.max_overall_drop_points),
        format!(
            "overall accuracy {:.2}% vs serving {:.2}% ({:+.2} points, allowed drop {:.2})",
            pct(candidate.accuracy),
            pct(serving.accuracy),
            -drop,
            config.max_overall_drop_points
        ),
    );

    let serving_classes: HashMap<&str, &ClassMetrics> =
        serving.per_class.iter().map(|m| (m.class.as_str(), m)).collect();
    for class in &candidate.per_class {
        match serving_classes.get(class.class.as_str()) {
            Some(old) if old.count > 0 && class.count > 0 => {
                let drop = pct(old.accuracy) - pct(class.accuracy);
                check(
                    within(drop, config.max_class_drop_points),
                    format!(
                        "class {}: {:.2}% vs serving {:.2}% ({:+.2} points, allowed drop {:.2})",
                        class.class,
                        pct(class.accuracy),
                        pct(old.accuracy),
                        -drop,
                        config.max_class_drop_points
                    ),
                );
            }
            Some(_) => check(
                true,
                format!("class {}: no benchmark images in one of the evaluations; not compared", class.class),
            ),
            None => check(
                true,
                format!("class {}: new in the candidate ({:.2}%); not compared", class.class, pct(class.accuracy)),
            ),
        }
    }
    let candidate_names: Vec<&str> = candidate.per_class.iter().map(|m| m.class.as_str()).collect();
    for old in &serving.per_class {
        if !candidate_names.contains(&old.class.as_str()) {
            check(true, format!("class {}: not in the candidate; not compared", old.class));
        }
    }
    GateVerdict { passed, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ClassMetrics;

    /// An evaluation with the given per-class (name, count, correct); only the fields the gate reads matter.
    fn eval(classes: &[(&str, usize, usize)]) -> Evaluation {
        let per_class: Vec<ClassMetrics> = classes
            .iter()
            .map(|&(name, count, correct)| ClassMetrics {
                class: name.to_string(),
                count,
                correct,
                accuracy: if count == 0 { 0.0 } else { correct as f64 / count as f64 },
                precision: 0.0,
                recall: 0.0,
            })
            .collect();
        let count: usize = classes.iter().map(|c| c.1).sum();
        let correct: usize = classes.iter().map(|c| c.2).sum();
        Evaluation {
            classes: classes.iter().map(|c| c.0.to_string()).collect(),
            count,
            accuracy: if count == 0 { 0.0 } else { correct as f64 / count as f64 },
            per_class,
            confusion: Vec::new(),
            ece: 0.0,
            reliability: Vec::new(),
            nll: 0.0,
        }
    }

    fn failures(v: &GateVerdict) -> Vec<&String> {
        v.reasons.iter().filter(|r| r.starts_with("FAIL")).collect()
    }

    #[test]
    fn first_model_passes_on_a_big_enough_benchmark() {
        let v = judge(&eval(&[("cat", 20, 10), ("dog", 20, 10)]), None, false, &GateConfig::default());
        assert!(v.passed, "{:?}", v.reasons);
        assert!(v.reasons.iter().any(|r| r.contains("no serving model")));
    }

    #[test]
    fn throw_away_never_passes() {
        let good = eval(&[("cat", 50, 50), ("dog", 50, 50)]);
        let v = judge(&good, None, true, &GateConfig::default());
        assert!(!v.passed);
        assert!(failures(&v)[0].contains("throw-away runs can never be promoted"));
    }

    #[test]
    fn small_benchmark_fails_at_the_boundary() {
        let config = GateConfig::default();
        assert!(judge(&eval(&[("cat", 10, 9), ("dog", 10, 9)]), None, false, &config).passed, "20 images is enough");
        let v = judge(&eval(&[("cat", 10, 9), ("dog", 9, 9)]), None, false, &config);
        assert!(!v.passed);
        assert!(failures(&v)[0].contains("19 images (minimum 20)"), "{:?}", v.reasons);
        assert!(!judge(&eval(&[]), None, false, &config).passed, "empty benchmark");
    }

    #[test]
    fn overall_drop_is_limited() {
        let serving = eval(&[("cat", 50, 40), ("dog", 50, 40)]); // 80%
        let same = eval(&[("cat", 50, 41), ("dog", 50, 39)]); // 80%, cat +2, dog -2
        assert!(judge(&same, Some(&serving), false, &GateConfig::default()).passed);
        let lower = eval(&[("cat", 50, 40), ("dog", 50, 39)]); // 79%
        let v = judge(&lower, Some(&serving), false, &GateConfig::default());
        assert!(!v.passed);
        assert!(failures(&v)[0].contains("79.00% vs serving 80.00% (-1.00 points"), "{:?}", v.reasons);
        let lenient = GateConfig { max_overall_drop_points: 1.0, ..GateConfig::default() };
        assert!(judge(&lower, Some(&serving), false, &lenient).passed, "a drop exactly at the limit passes");
        let strict = GateConfig { max_overall_drop_points: -0.5, ..GateConfig::default() };
        assert!(!judge(&same, Some(&serving), false, &strict).passed, "negative limit demands improvement");
    }

    #[test]
    fn class_drop_is_limited_with_inclusive_boundary() {
        // Serving: cat 85%.
        let serving = eval(&[("cat", 20, 17), ("dog", 20, 10)]);
        // Candidate: cat 80%, exactly 5 points down (85.0 - 80.0 is 5.000000000000004 in floats); overall improves.
        let at_limit = eval(&[("cat", 20, 16), ("dog", 20, 14)]);
        let v = judge(&at_limit, Some(&serving), false, &GateConfig::default());
        assert!(v.passed, "{:?}", v.reasons);
        // cat 75%: 10 points down, even though overall accuracy improved.
        let beyond = eval(&[("cat", 20, 15), ("dog", 20, 16)]);
        let v = judge(&beyond, Some(&serving), false, &GateConfig::default());
        assert!(!v.passed);
        let f = failures(&v);
        assert_eq!(f.len(), 1, "{:?}", v.reasons);
        assert!(f[0].starts_with("FAIL: class cat: 75.00% vs serving 85.00% (-10.00 points"), "{f:?}");
    }

    #[test]
    fn new_missing_and_empty_classes_are_reported_not_compared() {
        let serving = eval(&[("cat", 20, 20), ("dog", 20, 20), ("owl", 0, 0), ("eel", 5, 5)]);
        let candidate = eval(&[("cat", 20, 20), ("dog", 20, 20), ("owl", 10, 0), ("fox", 10, 0)]);
        let config = GateConfig { max_overall_drop_points: 100.0, ..GateConfig::default() };
        let v = judge(&candidate, Some(&serving), false, &config);
        assert!(v.passed, "{:?}", v.reasons);
        assert!(v.reasons.iter().any(|r| r.starts_with("class fox: new in the candidate")));
        assert!(v.reasons.iter().any(|r| r.starts_with("class owl: no benchmark images")));
        assert!(v.reasons.iter().any(|r| r.starts_with("class eel: not in the candidate")));
        assert!(v.reasons.iter().any(|r| r.starts_with("note: candidate was evaluated on 60 images")));
    }

    #[test]
    fn nan_accuracy_never_passes() {
        let serving = eval(&[("cat", 20, 20), ("dog", 20, 20)]);
        let mut broken = serving.clone();
        broken.accuracy = f64::NAN;
        assert!(!judge(&broken, Some(&serving), false, &GateConfig::default()).passed);
        assert!(!judge(&broken, None, false, &GateConfig::default()).passed);
    }

    #[test]
    fn all_failures_are_listed_together() {
        let serving = eval(&[("cat", 10, 10), ("dog", 10, 10)]);
        let candidate = eval(&[("cat", 5, 0), ("dog", 5, 5)]);
        let v = judge(&candidate, Some(&serving), true, &GateConfig::default());
        // throw-away, benchmark size, overall drop, cat drop.
        assert_eq!(failures(&v).len(), 4, "{:?}", v.reasons);
    }
}
