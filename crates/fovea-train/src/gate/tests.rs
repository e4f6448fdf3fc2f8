use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::metrics::evaluate;

/// An evaluation made the way the app makes them: one-hot probabilities through [`evaluate`].
fn eval_of(classes: &[String], truth: &[usize], predicted: &[usize]) -> Evaluation {
    let probs: Vec<Vec<f32>> = predicted
        .iter()
        .map(|&p| {
            let mut row = vec![0.0; classes.len()];
            row[p] = 1.0;
            row
        })
        .collect();
    evaluate(classes, truth, &probs).unwrap()
}

/// A paired benchmark from per-class (name, images, right by both, right only by serving, right only by the
/// candidate); the remaining images of a class are wrong for both. A wrong answer is the next class.
/// Returns (candidate, serving).
fn paired(spec: &[(&str, usize, usize, usize, usize)]) -> (Evaluation, Evaluation) {
    let classes: Vec<String> = spec.iter().map(|c| c.0.to_string()).collect();
    let wrong = |t: usize| (t + 1) % classes.len();
    let (mut truth, mut cand, mut serv) = (Vec::new(), Vec::new(), Vec::new());
    for (t, &(_, images, both, only_serving, only_candidate)) in spec.iter().enumerate() {
        assert!(both + only_serving + only_candidate <= images, "bad spec for class {t}");
        for i in 0..images {
            let (c, s) = if i < both {
                (true, true)
            } else if i < both + only_serving {
                (false, true)
            } else if i < both + only_serving + only_candidate {
                (true, false)
            } else {
                (false, false)
            };
            truth.push(t);
            cand.push(if c { t } else { wrong(t) });
            serv.push(if s { t } else { wrong(t) });
        }
    }
    (eval_of(&classes, &truth, &cand), eval_of(&classes, &truth, &serv))
}

/// The run from the issue: 55 benchmark images over 10 classes of 5 or 6, serving 37 right (67.3 %), candidate
/// 41 right (74.5 %), disagreeing on 16 images; class `a` (5 images) goes from 4 right to 3, `h` from 5 to 4.
const ISSUE_RUN: [(&str, usize, usize, usize, usize); 10] = [
    ("a", 5, 3, 1, 0),
    ("b", 5, 3, 0, 1),
    ("c", 5, 2, 1, 1),
    ("d", 5, 3, 1, 1),
    ("e", 5, 2, 0, 2),
    ("f", 6, 4, 1, 1),
    ("g", 6, 3, 0, 2),
    ("h", 6, 4, 1, 0),
    ("i", 6, 3, 1, 1),
    ("j", 6, 4, 0, 1),
];

fn failures(v: &GateVerdict) -> Vec<&String> {
    v.reasons.iter().filter(|r| r.starts_with("FAIL")).collect()
}

fn reason<'a>(v: &'a GateVerdict, start: &str) -> &'a str {
    v.reasons.iter().find(|r| r.starts_with(start)).unwrap_or_else(|| panic!("no {start:?} in {:#?}", v.reasons))
}

#[test]
fn the_issue_run_is_promoted_despite_one_image_in_a_small_class() {
    let (candidate, serving) = paired(&ISSUE_RUN);
    assert_eq!((candidate.count, serving.count), (55, 55));
    assert!((candidate.accuracy - 41.0 / 55.0).abs() < 1e-12 && (serving.accuracy - 37.0 / 55.0).abs() < 1e-12);
    let a = &candidate.per_class[0];
    assert_eq!((a.count, a.correct, serving.per_class[0].correct), (5, 3, 4), "class a goes 4 → 3");

    let v = judge(&candidate, Some(&serving), false, &GateConfig::default());
    assert!(v.passed, "{:#?}", v.reasons);
    let c = v.comparison.as_ref().unwrap();
    assert_eq!((c.images, c.candidate_correct, c.serving_correct), (55, 41, 37));
    assert_eq!((c.only_candidate_right, c.only_serving_right), (10, 6));
    // P(X ≥ 6) for X ~ Bin(16, ½) = 1 - P(X ≤ 5) = 1 - 6885/65536.
    assert!((c.p_worse - (1.0 - 6885.0 / 65536.0)).abs() < 1e-12, "{}", c.p_worse);
    assert!(c.difference_interval.0 < 0.0727 && 0.0727 < c.difference_interval.1, "{:?}", c.difference_interval);
    // The verdict states sample sizes, interval and why class a did not decide.
    assert!(reason(&v, "benchmark: 55 images scored by both models").contains("95% interval ["), "{:#?}", v.reasons);
    assert!(reason(&v, "overall: the models disagree on 16 images").contains("p = 0.895"), "{:#?}", v.reasons);
    let class_a = reason(&v, "class a: 5 images, 4 → 3 right (lost 1, gained 0)");
    assert!(class_a.contains("too few disagreements") && class_a.contains("not judged"), "{class_a}");
    assert!(c.classes.iter().all(|m| !m.worse && m.limit.is_none()), "no class here can show a drop");
}

#[test]
fn a_class_that_really_collapses_is_refused_even_when_the_total_improves() {
    // 200 images; class a loses 16 of its 36 right answers and gains none, the others gain more than that.
    let spec = [("a", 50, 20, 16, 0), ("b", 50, 30, 0, 10), ("c", 50, 30, 1, 10), ("d", 50, 30, 0, 9)];
    let (candidate, serving) = paired(&spec);
    assert!(candidate.accuracy > serving.accuracy);
    let v = judge(&candidate, Some(&serving), false, &GateConfig::default());
    assert!(!v.passed);
    let f = failures(&v);
    assert_eq!(f.len(), 1, "{:#?}", v.reasons);
    assert!(f[0].starts_with("FAIL: class a: 50 images, 36 → 20 right (lost 16, gained 0): worse beyond chance"));
    let a = &v.comparison.as_ref().unwrap().classes[0];
    assert!(a.worse && (a.p_worse - 0.5f64.powi(16)).abs() < 1e-15);
    // Every class has 9 or more disagreements, so all four count: Holm's first limit is 0.05 / 4.
    assert_eq!(a.limit, Some(0.05 / 4.0));
}

#[test]
fn a_chance_level_candidate_is_refused() {
    // What a model trained on shuffled labels does: predictions unrelated to the truth.
    let (_, serving) = paired(&ISSUE_RUN);
    let mut rng = StdRng::seed_from_u64(16);
    let chance: Vec<usize> = serving.truth.iter().map(|_| rng.random_range(0..10)).collect();
    let candidate = eval_of(&serving.classes, &serving.truth, &chance);
    assert!(candidate.accuracy < 0.25, "{}", candidate.accuracy);
    let v = judge(&candidate, Some(&serving), false, &GateConfig::default());
    assert!(!v.passed);
    assert!(failures(&v).iter().any(|f| f.starts_with("FAIL: overall accuracy")), "{:#?}", v.reasons);
    assert!(failures(&v).iter().any(|f| f.starts_with("FAIL: overall: the models disagree")), "{:#?}", v.reasons);
    // Even a gate told to tolerate any measured drop refuses it: the paired test is what decides then.
    let lenient = GateConfig { max_overall_drop_points: 100.0, ..GateConfig::default() };
    let v = judge(&candidate, Some(&serving), false, &lenient);
    assert!(!v.passed);
    assert!(v.comparison.unwrap().p_worse < 1e-4);
}

#[test]
fn a_measured_drop_within_noise_is_refused_unless_a_margin_allows_it() {
    // The issue's run the other way round: 7.3 points worse, yet 10 of 16 disagreements against the candidate is
    // no evidence (p = 14893 / 65536). The default margin of 0 refuses it; a margin of 8 points lets it through.
    let (serving, candidate) = paired(&ISSUE_RUN);
    let v = judge(&candidate, Some(&serving), false, &GateConfig::default());
    assert!(!v.passed);
    let f = failures(&v);
    assert_eq!(f.len(), 1, "{:#?}", v.reasons);
    assert!(f[0].starts_with("FAIL: overall accuracy 67.27% vs serving 74.55% (-7.27 points, allowed drop 0.00)"));
    let lenient = GateConfig { max_overall_drop_points: 8.0, ..GateConfig::default() };
    let v = judge(&candidate, Some(&serving), false, &lenient);
    assert!(v.passed, "{:#?}", v.reasons);
    assert!((v.comparison.unwrap().p_worse - 14893.0 / 65536.0).abs() < 1e-12);
}

#[test]
fn identical_models_pass_with_a_zero_interval() {
    let (_, serving) = paired(&ISSUE_RUN);
    let v = judge(&serving, Some(&serving), false, &GateConfig::default());
    assert!(v.passed, "{:#?}", v.reasons);
    let c = v.comparison.clone().unwrap();
    assert_eq!((c.difference, c.difference_interval, c.p_worse), (0.0, (0.0, 0.0), 1.0));
    assert_eq!((c.only_candidate_right, c.only_serving_right), (0, 0));
    reason(&v, "class a: 5 images, 4 → 4 right (lost 0, gained 0): the models agree on every image; not judged");
}

#[test]
fn first_model_passes_on_a_big_enough_benchmark_and_shows_its_interval() {
    let (candidate, _) = paired(&[("cat", 20, 10, 0, 0), ("dog", 20, 10, 0, 0)]);
    let v = judge(&candidate, None, false, &GateConfig::default());
    assert!(v.passed, "{:?}", v.reasons);
    let text = reason(&v, "no serving model to compare with; candidate accuracy 50.00% on 40 images, 95% interval [");
    assert!(v.comparison.is_none(), "{text}");
}

#[test]
fn throw_away_never_passes() {
    let (good, _) = paired(&[("cat", 50, 50, 0, 0), ("dog", 50, 50, 0, 0)]);
    let v = judge(&good, None, true, &GateConfig::default());
    assert!(!v.passed);
    assert!(failures(&v)[0].contains("throw-away runs can never be promoted"));
    assert!(!judge(&good, Some(&good), true, &GateConfig::default()).passed);
}

#[test]
fn tiny_benchmarks_fail_at_the_boundary() {
    let config = GateConfig::default();
    let (twenty, _) = paired(&[("cat", 10, 9, 0, 0), ("dog", 10, 9, 0, 0)]);
    assert!(judge(&twenty, None, false, &config).passed, "20 images is enough");
    let (nineteen, before) = paired(&[("cat", 10, 9, 0, 1), ("dog", 9, 9, 0, 0)]);
    for serving in [None, Some(&before)] {
        let v = judge(&nineteen, serving, false, &config);
        assert!(!v.passed);
        assert!(failures(&v)[0].contains("19 images (minimum 20)"), "{:?}", v.reasons);
    }
    let empty = eval_of(&["a".to_string()], &[], &[]);
    assert!(!judge(&empty, None, false, &config).passed, "empty benchmark");
    assert!(!judge(&empty, Some(&empty), false, &config).passed, "empty benchmark, paired");
}

#[test]
fn a_drop_exactly_at_the_margin_passes() {
    // 20 images, candidate one worse: exactly 5 points (a float subtraction gives 5.000000000000004).
    let (candidate, serving) = paired(&[("cat", 10, 8, 1, 0), ("dog", 10, 9, 0, 0)]);
    let margin = GateConfig { max_overall_drop_points: 5.0, ..GateConfig::default() };
    assert!(judge(&candidate, Some(&serving), false, &margin).passed);
    let tighter = GateConfig { max_overall_drop_points: 4.9, ..GateConfig::default() };
    assert!(!judge(&candidate, Some(&serving), false, &tighter).passed);
    let demanding = GateConfig { max_overall_drop_points: -0.5, ..GateConfig::default() };
    assert!(!judge(&serving, Some(&serving), false, &demanding).passed, "a negative margin demands improvement");
}

#[test]
fn nan_and_inconsistent_evaluations_never_pass() {
    let (candidate, serving) = paired(&ISSUE_RUN);
    let mut broken = candidate.clone();
    broken.accuracy = f64::NAN;
    let v = judge(&broken, Some(&serving), false, &GateConfig::default());
    assert!(!v.passed && v.comparison.is_none());
    assert!(failures(&v)[0].contains("records accuracy NaN"), "{:?}", v.reasons);
    assert!(!judge(&broken, None, false, &GateConfig::default()).passed);
    assert!(!judge(&candidate, Some(&broken), false, &GateConfig::default()).passed);
    let mut inflated = candidate.clone();
    inflated.accuracy = 0.99;
    assert!(!judge(&inflated, Some(&serving), false, &GateConfig::default()).passed);
}

#[test]
fn evaluations_of_different_images_are_not_compared() {
    let (candidate, serving) = paired(&ISSUE_RUN);
    let config = GateConfig::default();
    // Recorded before per-image predictions were kept.
    let mut old = serving.clone();
    (old.truth, old.predicted) = (Vec::new(), Vec::new());
    let v = judge(&candidate, Some(&old), false, &config);
    assert!(!v.passed && failures(&v)[0].contains("no per-image predictions"), "{:?}", v.reasons);
    // A different benchmark size.
    let (smaller, _) = paired(&ISSUE_RUN[..9]);
    let v = judge(&candidate, Some(&smaller), false, &config);
    assert!(!v.passed && failures(&v)[0].contains("on 55 images, serving model on 49"), "{:?}", v.reasons);
    // Same size, other images (the order of the truth differs).
    let mut truth = serving.truth.clone();
    truth.reverse();
    let reordered = eval_of(&serving.classes, &truth, &truth);
    let v = judge(&candidate, Some(&reordered), false, &config);
    assert!(!v.passed && failures(&v)[0].contains("benchmark image 0 is \"a\""), "{:?}", v.reasons);
}

#[test]
fn classes_without_benchmark_images_are_reported_not_compared() {
    let (mut candidate, mut serving) = paired(&[("cat", 20, 20, 0, 0), ("dog", 20, 20, 0, 0), ("owl", 0, 0, 0, 0)]);
    candidate.classes.push("fox".into());
    serving.classes.push("eel".into());
    let v = judge(&candidate, Some(&serving), false, &GateConfig::default());
    assert!(v.passed, "{:#?}", v.reasons);
    reason(&v, "class owl: no benchmark images; not compared");
    reason(&v, "class fox (new in the candidate): no benchmark images");
    reason(&v, "class eel (not in the candidate): no benchmark images");
}

#[test]
fn invalid_configurations_fail() {
    let (candidate, serving) = paired(&ISSUE_RUN);
    for config in [
        GateConfig { alpha: f64::NAN, ..GateConfig::default() },
        GateConfig { alpha: 0.0, ..GateConfig::default() },
        GateConfig { interval_confidence: 1.0, ..GateConfig::default() },
        GateConfig { bootstrap_resamples: 0, ..GateConfig::default() },
        GateConfig { max_overall_drop_points: f64::NAN, ..GateConfig::default() },
    ] {
        let v = judge(&candidate, Some(&serving), false, &config);
        assert!(!v.passed && failures(&v)[0].contains("invalid gate configuration"), "{config:?}: {:?}", v.reasons);
    }
}

#[test]
fn all_failures_are_listed_together() {
    let (candidate, serving) = paired(&[("cat", 10, 0, 10, 0), ("dog", 8, 8, 0, 0), ("eel", 1, 0, 1, 0)]);
    let v = judge(&candidate, Some(&serving), true, &GateConfig::default());
    reason(&v, "class eel: 1 image, 1 → 0 right (lost 1, gained 0): too few disagreements");
    // throw-away, benchmark size, overall drop, McNemar, class cat.
    assert_eq!(failures(&v).len(), 5, "{:#?}", v.reasons);
}

#[test]
fn the_verdict_is_deterministic_and_serialises() {
    let (candidate, serving) = paired(&ISSUE_RUN);
    let v = judge(&candidate, Some(&serving), false, &GateConfig::default());
    assert_eq!(v, judge(&candidate, Some(&serving), false, &GateConfig::default()));
    let json = serde_json::to_string(&v).unwrap();
    assert_eq!(serde_json::from_str::<GateVerdict>(&json).unwrap(), v);
    // A verdict recorded before the comparison existed still loads.
    let old: GateVerdict = serde_json::from_str(r#"{"passed":false,"reasons":["FAIL: x"]}"#).unwrap();
    assert!(old.comparison.is_none() && !old.passed);
    // Another seed moves the interval a little, never the decision.
    let reseeded = judge(&candidate, Some(&serving), false, &GateConfig { bootstrap_seed: 1, ..GateConfig::default() });
    assert_eq!(reseeded.passed, v.passed);
}

#[test]
fn paired_comparison_reports_without_judging() {
    let (candidate, serving) = paired(&ISSUE_RUN);
    let config = GateConfig::default();
    let c = paired_comparison(&candidate, &serving, &config).unwrap();
    assert_eq!(Some(&c), judge(&candidate, Some(&serving), false, &config).comparison.as_ref());
    let (smaller, _) = paired(&ISSUE_RUN[..9]);
    assert!(paired_comparison(&candidate, &smaller, &config).unwrap_err().contains("serving model on 49"));
    let bad = GateConfig { alpha: 2.0, ..config };
    assert!(paired_comparison(&candidate, &serving, &bad).unwrap_err().contains("alpha"));
}
