//! The promotion gate: may a freshly trained model replace the one being served?
//!
//! Users rely on the served model and correct it; a regression they did not ask for costs their trust. But a
//! benchmark of a few dozen images is noisy: comparing raw per-class accuracies lets one image in a five-image
//! class veto a model that is better by several points overall. So the gate compares the two models *paired*,
//! image by image on the same frozen benchmark, and refuses only on evidence:
//!
//! 1. the candidate's measured benchmark accuracy must not be below the serving model's (by more than
//!    `max_overall_drop_points`, 0 by default);
//! 2. overall, McNemar's exact test on the images where the two models disagree must not show the candidate worse
//!    (one-sided p ≤ `alpha`);
//! 3. per class, the same exact test on that class's images must not show it worse, at family-wise level `alpha`
//!    over the classes (Holm's step-down with Tarone's rule, so classes too small to ever show a drop are reported
//!    but neither judged nor counted against the others).
//!
//! With the default margin of 0, rule 1 already refuses every candidate that rule 2 would; rule 2 binds when a
//! margin is allowed. The verdict carries every reason, passing and failing, with counts, p-values and a paired
//! bootstrap interval of the accuracy difference, because the person reviewing a run wants to see *why* it was
//! (not) promoted and how sure the benchmark can be.

mod stats;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::Evaluation;

/// Slack for float comparisons in percentage points, so that a drop exactly at the allowed margin passes as
/// documented rather than failing by 4e-15.
const EPSILON_POINTS: f64 = 1e-9;
/// How far an evaluation's recorded accuracy may differ from the one its per-image predictions give.
const ACCURACY_TOLERANCE: f64 = 1e-9;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GateConfig {
    /// Largest allowed drop of measured overall benchmark accuracy, in percentage points (0: must not be lower;
    /// negative: must improve by at least that much). Default 0.
    pub max_overall_drop_points: f64,
    /// Significance level of the tests that refuse a candidate for being worse: the overall McNemar test, and the
    /// per-class tests as a family. Default 0.05.
    pub alpha: f64,
    /// Smallest benchmark on which a verdict means anything. Default 20.
    pub min_benchmark_images: usize,
    /// Confidence of the intervals shown in the verdict (they inform; the tests decide). Default 0.95.
    pub interval_confidence: f64,
    /// Resamples of the paired bootstrap. Default 2000: the interval's ends then move by well under a point
    /// between seeds on benchmarks of a few dozen images.
    pub bootstrap_resamples: usize,
    /// Seed of the bootstrap, so the same evaluations always give the same verdict.
    pub bootstrap_seed: u64,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            max_overall_drop_points: 0.0,
            alpha: 0.05,
            min_benchmark_images: 20,
            interval_confidence: 0.95,
            bootstrap_resamples: 2000,
            bootstrap_seed: 0x5eed_0f9a,
        }
    }
}

impl GateConfig {
    /// What is wrong with the configuration, if anything (NaN included).
    fn problem(&self) -> Option<String> {
        let unit = |x: f64| x > 0.0 && x < 1.0;
        if !unit(self.alpha) {
            return Some(format!("alpha {} is not between 0 and 1", self.alpha));
        }
        if !unit(self.interval_confidence) {
            return Some(format!("interval_confidence {} is not between 0 and 1", self.interval_confidence));
        }
        if self.bootstrap_resamples == 0 {
            return Some("bootstrap_resamples is 0".into());
        }
        if !self.max_overall_drop_points.is_finite() {
            return Some(format!("max_overall_drop_points {} is not a number", self.max_overall_drop_points));
        }
        None
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateVerdict {
    pub passed: bool,
    /// Human-readable reasons in a fixed order, failing ones prefixed with "FAIL: ".
    pub reasons: Vec<String>,
    /// The numbers behind the reasons, for programs. Absent when there was nothing to compare (no serving model,
    /// evaluations that cannot be paired) and in verdicts recorded before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
}

/// The paired comparison on the benchmark. Accuracies and differences are fractions (0.05 = 5 points).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub images: usize,
    pub candidate_correct: usize,
    pub serving_correct: usize,
    /// Candidate accuracy minus serving accuracy.
    pub difference: f64,
    /// Confidence of the three intervals below (paired bootstrap, percentile).
    pub confidence: f64,
    pub difference_interval: (f64, f64),
    pub candidate_interval: (f64, f64),
    pub serving_interval: (f64, f64),
    /// Images only the candidate got right, and only the serving model: the discordant pairs McNemar's test uses.
    pub only_candidate_right: usize,
    pub only_serving_right: usize,
    /// One-sided exact McNemar p-value: how likely at least `only_serving_right` of the discordant images would
    /// go against the candidate if both models were equally accurate.
    pub p_worse: f64,
    pub alpha: f64,
    pub classes: Vec<ClassComparison>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassComparison {
    pub class: String,
    pub images: usize,
    pub candidate_correct: usize,
    pub serving_correct: usize,
    pub only_candidate_right: usize,
    pub only_serving_right: usize,
    pub p_worse: f64,
    /// The p-value limit this class was held to after the multiple-comparison correction; `None` when the models
    /// disagree on too few of its images for any outcome to show a drop, so it was not judged.
    pub limit: Option<f64>,
    /// Significantly worse: the candidate is refused.
    pub worse: bool,
}

fn pct(x: f64) -> f64 {
    x * 100.0
}

/// p-values span many magnitudes; three decimals hide the small ones that matter.
fn p_text(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

fn interval_text((lo, hi): (f64, f64), signed: bool) -> String {
    if signed {
        format!("[{:+.1}, {:+.1}]", pct(lo), pct(hi))
    } else {
        format!("[{:.1}%, {:.1}%]", pct(lo), pct(hi))
    }
}

/// True when `drop` (points) is within `allowed`. Written so that NaN anywhere fails: a broken evaluation must
/// never be promoted.
fn within(drop: f64, allowed: f64) -> bool {
    drop <= allowed + EPSILON_POINTS
}

/// One benchmark image as both models saw it: (true class name, candidate right, serving right).
type Pair<'a> = (&'a str, bool, bool);

/// Per-image (true class name, right?) of one evaluation, checked against its own aggregate numbers.
fn outcomes<'a>(e: &'a Evaluation, which: &str) -> Result<Vec<(&'a str, bool)>, String> {
    if e.truth.len() != e.count || e.predicted.len() != e.count {
        return Err(format!(
            "the {which} evaluation has no per-image predictions for its {} images (recorded by an older version?)",
            e.count
        ));
    }
    let mut out = Vec::with_capacity(e.count);
    for (i, (&t, &p)) in e.truth.iter().zip(&e.predicted).enumerate() {
        let name = e.classes.get(t).ok_or_else(|| format!("{which} image {i} has class index {t} out of range"))?;
        out.push((name.as_str(), t == p));
    }
    let right = out.iter().filter(|o| o.1).count();
    let accuracy = if out.is_empty() { 0.0 } else { right as f64 / out.len() as f64 };
    // Written as a positive comparison so that a NaN accuracy disagrees: a broken evaluation is never promoted.
    let agrees = (e.accuracy - accuracy).abs() <= ACCURACY_TOLERANCE;
    if !agrees {
        return Err(format!(
            "the {which} evaluation records accuracy {} but its per-image predictions give {accuracy}",
            e.accuracy
        ));
    }
    Ok(out)
}

/// The two evaluations image by image; an error when they are not of the same images in the same order.
fn pair_up<'a>(candidate: &'a Evaluation, serving: &'a Evaluation) -> Result<Vec<Pair<'a>>, String> {
    let (c, s) = (outcomes(candidate, "candidate")?, outcomes(serving, "serving")?);
    if c.len() != s.len() {
        return Err(format!("candidate was evaluated on {} images, serving model on {}", c.len(), s.len()));
    }
    c.iter()
        .zip(&s)
        .enumerate()
        .map(|(i, (&(cn, cr), &(sn, sr)))| {
            if cn == sn {
                Ok((cn, cr, sr))
            } else {
                Err(format!("benchmark image {i} is {cn:?} for the candidate but {sn:?} for the serving model"))
            }
        })
        .collect()
}

/// The paired comparison of two evaluations of the same images in the same order (counts, paired-bootstrap
/// intervals, McNemar's test, per-class tests), without a verdict: for reporting other splits (the run's test
/// split) the way the gate reports the benchmark. An error says why the two cannot be paired.
pub fn paired_comparison(
    candidate: &Evaluation,
    serving: &Evaluation,
    config: &GateConfig,
) -> Result<Comparison, String> {
    if let Some(problem) = config.problem() {
        return Err(format!("invalid gate configuration: {problem}"));
    }
    Ok(compare(&pair_up(candidate, serving)?, config))
}

/// Judges a candidate against the serving model, both evaluated on the same benchmark images in the same order
/// (see the module docs for the rules).
///
/// Always fails when the run is throw-away, the benchmark has fewer than `min_benchmark_images` images, the
/// configuration is invalid, or (with a serving model) the evaluations cannot be paired. With no serving model
/// (`None`, the first model) only those rules and a finite accuracy are required. Classes without benchmark
/// images are reported and not compared.
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

    if let Some(problem) = config.problem() {
        check(false, format!("invalid gate configuration: {problem}"));
        return GateVerdict { passed: false, reasons, comparison: None };
    }
    if throw_away {
        check(false, "throw-away runs can never be promoted".to_string());
    }
    check(
        candidate.count >= config.min_benchmark_images,
        format!("benchmark has {} images (minimum {})", candidate.count, config.min_benchmark_images),
    );

    let Some(serving) = serving else {
        let shown = outcomes(candidate, "candidate").ok().and_then(|o| {
            let pairs: Vec<(bool, bool)> = o.iter().map(|&(_, r)| (r, r)).collect();
            stats::paired_bootstrap(
                &pairs,
                config.bootstrap_resamples,
                config.interval_confidence,
                config.bootstrap_seed,
            )
        });
        let interval = shown.map_or(String::new(), |b| {
            format!(", {:.0}% interval {}", pct(config.interval_confidence), interval_text(b.candidate, false))
        });
        check(
            candidate.accuracy.is_finite(),
            format!(
                "no serving model to compare with; candidate accuracy {:.2}% on {} images{interval}",
                pct(candidate.accuracy),
                candidate.count
            ),
        );
        return GateVerdict { passed, reasons, comparison: None };
    };

    let pairs = match pair_up(candidate, serving) {
        Ok(pairs) => pairs,
        Err(why) => {
            check(false, format!("the two models cannot be compared image by image: {why}"));
            return GateVerdict { passed: false, reasons, comparison: None };
        }
    };
    let comparison = compare(&pairs, config);
    let c = &comparison;

    check(
        true,
        format!(
            "benchmark: {} images scored by both models; candidate {} right ({:.2}%, {conf}% interval {}), serving \
             {} right ({:.2}%, {}); difference {:+.2} points, {conf}% interval {} (paired bootstrap, {} resamples)",
            c.images,
            c.candidate_correct,
            pct(ratio(c.candidate_correct, c.images)),
            interval_text(c.candidate_interval, false),
            c.serving_correct,
            pct(ratio(c.serving_correct, c.images)),
            interval_text(c.serving_interval, false),
            pct(c.difference),
            interval_text(c.difference_interval, true),
            config.bootstrap_resamples,
            conf = format!("{:.0}", pct(c.confidence)),
        ),
    );
    check(
        within(-pct(c.difference), config.max_overall_drop_points),
        format!(
            "overall accuracy {:.2}% vs serving {:.2}% ({:+.2} points, allowed drop {:.2})",
            pct(ratio(c.candidate_correct, c.images)),
            pct(ratio(c.serving_correct, c.images)),
            pct(c.difference),
            config.max_overall_drop_points
        ),
    );
    check(
        c.p_worse > config.alpha,
        format!(
            "overall: the models disagree on {} images, candidate right on {}, serving on {}; exact McNemar p = {} \
             that the candidate is worse (refused at ≤ {})",
            c.only_candidate_right + c.only_serving_right,
            c.only_candidate_right,
            c.only_serving_right,
            p_text(c.p_worse),
            config.alpha
        ),
    );

    for class in &c.classes {
        let counts = format!(
            "class {}: {} image{}, {} → {} right (lost {}, gained {})",
            class.class,
            class.images,
            if class.images == 1 { "" } else { "s" },
            class.serving_correct,
            class.candidate_correct,
            class.only_serving_right,
            class.only_candidate_right
        );
        match class.limit {
            Some(limit) if class.worse => check(
                false,
                format!("{counts}: worse beyond chance, p = {} ≤ {}", p_text(class.p_worse), p_text(limit)),
            ),
            Some(limit) => check(
                true,
                format!("{counts}: no evidence of a drop, p = {} > {}", p_text(class.p_worse), p_text(limit)),
            ),
            None if class.only_candidate_right + class.only_serving_right == 0 => {
                check(true, format!("{counts}: the models agree on every image; not judged"))
            }
            None => check(
                true,
                format!(
                    "{counts}: too few disagreements to show a drop (smallest possible p {}); not judged",
                    p_text(stats::smallest_attainable_p(class.only_candidate_right + class.only_serving_right))
                ),
            ),
        }
    }
    let judged: Vec<&str> = c.classes.iter().map(|m| m.class.as_str()).collect();
    let mut unseen: Vec<&str> = candidate.classes.iter().chain(&serving.classes).map(String::as_str).collect();
    unseen.sort_unstable();
    unseen.dedup();
    for name in unseen.into_iter().filter(|n| !judged.contains(n)) {
        let whose = match (candidate.classes.iter().any(|c| c == name), serving.classes.iter().any(|c| c == name)) {
            (true, false) => " (new in the candidate)",
            (false, true) => " (not in the candidate)",
            _ => "",
        };
        check(true, format!("class {name}{whose}: no benchmark images; not compared"));
    }
    GateVerdict { passed, reasons, comparison: Some(comparison) }
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// The numbers of a paired comparison: overall counts, bootstrap intervals, McNemar's test, and the per-class
/// tests with their multiple-comparison decisions.
fn compare(pairs: &[Pair<'_>], config: &GateConfig) -> Comparison {
    let count = |f: fn(&Pair<'_>) -> bool| pairs.iter().filter(|p| f(p)).count();
    let (only_c, only_s) = (count(|p| p.1 && !p.2), count(|p| !p.1 && p.2));
    let bools: Vec<(bool, bool)> = pairs.iter().map(|p| (p.1, p.2)).collect();
    let boot =
        stats::paired_bootstrap(&bools, config.bootstrap_resamples, config.interval_confidence, config.bootstrap_seed)
            .unwrap_or(stats::Bootstrap { difference: (0.0, 0.0), candidate: (0.0, 0.0), serving: (0.0, 0.0) });

    let mut per_class: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    for &(name, c, s) in pairs {
        let e = per_class.entry(name).or_default();
        e[0] += 1;
        e[1] += usize::from(c && !s);
        e[2] += usize::from(!c && s);
        e[3] += usize::from(c && s);
    }
    let tests: Vec<(f64, f64)> = per_class
        .values()
        .map(|&[_, gained, lost, _]| {
            (stats::binomial_half_tail(lost, gained + lost), stats::smallest_attainable_p(gained + lost))
        })
        .collect();
    let decisions = stats::holm_tarone(&tests, config.alpha);
    let classes = per_class
        .iter()
        .zip(tests.iter().zip(&decisions))
        .map(|((&name, &[images, gained, lost, both]), (&(p, _), d))| ClassComparison {
            class: name.to_string(),
            images,
            candidate_correct: both + gained,
            serving_correct: both + lost,
            only_candidate_right: gained,
            only_serving_right: lost,
            p_worse: p,
            limit: d.limit,
            worse: d.rejected,
        })
        .collect();

    Comparison {
        images: pairs.len(),
        candidate_correct: count(|p| p.1),
        serving_correct: count(|p| p.2),
        difference: ratio(only_c, pairs.len()) - ratio(only_s, pairs.len()),
        confidence: config.interval_confidence,
        difference_interval: boot.difference,
        candidate_interval: boot.candidate,
        serving_interval: boot.serving,
        only_candidate_right: only_c,
        only_serving_right: only_s,
        p_worse: stats::binomial_half_tail(only_s, only_c + only_s),
        alpha: config.alpha,
        classes,
    }
}

#[cfg(test)]
mod tests;
