//! Evaluation helpers shared by `fovea eval stream` and the tests: accuracy, stream replays with
//! latency, and the "does one correction fix it" check.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::head::Head;

/// A labelled embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub x: Vec<f32>,
    pub class: String,
}

impl Example {
    pub fn new(x: Vec<f32>, class: impl Into<String>) -> Self {
        Self { x, class: class.into() }
    }
}

/// Anything that names a class for an embedding (closed-set arg-max); online heads and offline baselines.
pub trait Classifier {
    fn top_class_name(&self, x: &[f32]) -> Result<Option<String>>;
}

impl<H: Head> Classifier for H {
    fn top_class_name(&self, x: &[f32]) -> Result<Option<String>> {
        let p = self.predict(x)?;
        Ok(p.top_class().and_then(|c| self.class_name(c)).map(str::to_owned))
    }
}

/// Fraction of `test` whose arg-max class is right (0 for an empty set).
pub fn accuracy<C: Classifier + ?Sized>(model: &C, test: &[Example]) -> Result<f64> {
    if test.is_empty() {
        return Ok(0.0);
    }
    let mut correct = 0usize;
    for ex in test {
        correct += (model.top_class_name(&ex.x)?.as_deref() == Some(ex.class.as_str())) as usize;
    }
    Ok(correct as f64 / test.len() as f64)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassAccuracy {
    pub class: String,
    pub correct: usize,
    pub total: usize,
    pub accuracy: f64,
}

/// Accuracy per true class, sorted by class name.
pub fn per_class_accuracy<C: Classifier + ?Sized>(model: &C, test: &[Example]) -> Result<Vec<ClassAccuracy>> {
    let mut tally: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for ex in test {
        let hit = model.top_class_name(&ex.x)?.as_deref() == Some(ex.class.as_str());
        let e = tally.entry(&ex.class).or_default();
        e.0 += hit as usize;
        e.1 += 1;
    }
    Ok(tally
        .into_iter()
        .map(|(class, (correct, total))| ClassAccuracy {
            class: class.to_owned(),
            correct,
            total,
            accuracy: correct as f64 / total as f64,
        })
        .collect())
}

/// Mean of per-class accuracies, so small classes count as much as big ones.
pub fn balanced_accuracy<C: Classifier + ?Sized>(model: &C, test: &[Example]) -> Result<f64> {
    let per = per_class_accuracy(model, test)?;
    if per.is_empty() {
        return Ok(0.0);
    }
    Ok(per.iter().map(|c| c.accuracy).sum::<f64>() / per.len() as f64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StreamOrder {
    /// All samples of one class, then the next class (class order and within-class order seeded).
    #[default]
    ClassIncremental,
    Shuffled,
}

/// Indices into `train` in the requested order; deterministic for a given seed.
pub fn stream_order(train: &[Example], order: StreamOrder, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    match order {
        StreamOrder::Shuffled => {
            let mut idx: Vec<usize> = (0..train.len()).collect();
            idx.shuffle(&mut rng);
            idx
        }
        StreamOrder::ClassIncremental => {
            let mut by_class: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (i, ex) in train.iter().enumerate() {
                by_class.entry(&ex.class).or_default().push(i);
            }
            let mut groups: Vec<Vec<usize>> = by_class.into_values().collect();
            groups.shuffle(&mut rng);
            for g in &mut groups {
                g.shuffle(&mut rng);
            }
            groups.concat()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct LatencyStats {
    pub count: usize,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl LatencyStats {
    pub fn from_micros(mut samples: Vec<f64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        let q = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
        Self {
            count: samples.len(),
            mean_us: samples.iter().sum::<f64>() / samples.len() as f64,
            p50_us: q(0.5),
            p99_us: q(0.99),
            max_us: samples[samples.len() - 1],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub samples_seen: usize,
    pub classes_seen: usize,
    /// Accuracy on test samples of the classes seen so far.
    pub seen_class_accuracy: f64,
    /// Accuracy on the whole test set (unseen classes count as wrong).
    pub accuracy: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamReport {
    pub checkpoints: Vec<Checkpoint>,
    pub final_accuracy: f64,
    pub update_latency: LatencyStats,
    pub samples: usize,
    pub classes: usize,
}

impl StreamReport {
    pub fn online_offline_ratio(&self, offline_accuracy: f64) -> f64 {
        if offline_accuracy > 0.0 {
            self.final_accuracy / offline_accuracy
        } else {
            0.0
        }
    }
}

/// Feed `train[order]` into `head` one sample at a time, timing each update, and measure test
/// accuracy each time a new class is about to arrive (i.e. after the previous ones are in) and at the end.
pub fn run_stream<H: Head>(head: &mut H, train: &[Example], test: &[Example], order: &[usize]) -> Result<StreamReport> {
    let mut seen: HashSet<String> = head.classes().names().iter().cloned().collect();
    let mut latencies = Vec::with_capacity(order.len());
    let mut checkpoints = Vec::new();
    for (step, &i) in order.iter().enumerate() {
        let ex = &train[i];
        if !seen.contains(ex.class.as_str()) {
            if step > 0 {
                checkpoints.push(checkpoint(head, test, &seen, step)?);
            }
            seen.insert(ex.class.clone());
        }
        let t0 = Instant::now();
        head.learn_named(&ex.x, &ex.class)?;
        latencies.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    let last = checkpoint(head, test, &seen, order.len())?;
    let final_accuracy = last.accuracy;
    checkpoints.push(last);
    Ok(StreamReport {
        checkpoints,
        final_accuracy,
        update_latency: LatencyStats::from_micros(latencies),
        samples: order.len(),
        classes: seen.len(),
    })
}

fn checkpoint<H: Head>(head: &H, test: &[Example], seen: &HashSet<String>, samples_seen: usize) -> Result<Checkpoint> {
    let seen_test: Vec<Example> = test.iter().filter(|e| seen.contains(e.class.as_str())).cloned().collect();
    Ok(Checkpoint {
        samples_seen,
        classes_seen: seen.len(),
        seen_class_accuracy: accuracy(head, &seen_test)?,
        accuracy: accuracy(head, test)?,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrectionCase {
    /// Index into the probe set.
    pub index: usize,
    pub was: Option<String>,
    pub truth: String,
    pub fixed: bool,
    /// Held-out accuracy after the correction minus before it.
    pub heldout_delta: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrectionReport {
    pub probed: usize,
    pub wrong: usize,
    pub corrected: usize,
    pub fixed: usize,
    pub fix_rate: f64,
    pub heldout_accuracy: f64,
    pub mean_heldout_delta: f64,
    pub min_heldout_delta: f64,
    pub max_heldout_delta: f64,
    pub cases: Vec<CorrectionCase>,
}

/// For each wrongly classified probe (up to `max_corrections`), learn it once with the right label on a
/// copy of `head`, then check that it is now predicted correctly and how held-out accuracy moved.
pub fn correction_check<H: Head + Clone>(
    head: &H,
    probe: &[Example],
    heldout: &[Example],
    max_corrections: Option<usize>,
) -> Result<CorrectionReport> {
    let base = accuracy(head, heldout)?;
    let mut wrong = 0usize;
    let mut cases = Vec::new();
    for (index, ex) in probe.iter().enumerate() {
        let was = head.top_class_name(&ex.x)?;
        if was.as_deref() == Some(ex.class.as_str()) {
            continue;
        }
        wrong += 1;
        if max_corrections.is_some_and(|m| cases.len() >= m) {
            continue;
        }
        let mut fixed_head = head.clone();
        fixed_head.learn_named(&ex.x, &ex.class)?;
        let fixed = fixed_head.top_class_name(&ex.x)?.as_deref() == Some(ex.class.as_str());
        cases.push(CorrectionCase {
            index,
            was,
            truth: ex.class.clone(),
            fixed,
            heldout_delta: accuracy(&fixed_head, heldout)? - base,
        });
    }
    let corrected = cases.len();
    let fixed = cases.iter().filter(|c| c.fixed).count();
    let deltas = cases.iter().map(|c| c.heldout_delta);
    Ok(CorrectionReport {
        probed: probe.len(),
        wrong,
        corrected,
        fixed,
        fix_rate: if corrected > 0 { fixed as f64 / corrected as f64 } else { 0.0 },
        heldout_accuracy: base,
        mean_heldout_delta: if corrected > 0 { deltas.clone().sum::<f64>() / corrected as f64 } else { 0.0 },
        min_heldout_delta: if corrected > 0 { deltas.clone().fold(f64::INFINITY, f64::min) } else { 0.0 },
        max_heldout_delta: if corrected > 0 { deltas.fold(f64::NEG_INFINITY, f64::max) } else { 0.0 },
        cases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::any::AnyHead;
    use crate::head::HeadKind;
    use crate::synthetic::gaussian_clusters;

    #[test]
    fn class_incremental_order_groups_classes() {
        let (_, data) = gaussian_clusters(1, 3, 5, 2, 1.0, 1.0);
        let order = stream_order(&data, StreamOrder::ClassIncremental, 9);
        assert_eq!(order.len(), data.len());
        let changes = order.windows(2).filter(|w| data[w[0]].class != data[w[1]].class).count();
        assert_eq!(changes, 2);
        assert_eq!(order, stream_order(&data, StreamOrder::ClassIncremental, 9));
        let shuffled = stream_order(&data, StreamOrder::Shuffled, 9);
        let mut sorted = shuffled.clone();
        sorted.sort();
        assert_eq!(sorted, (0..data.len()).collect::<Vec<_>>());
    }

    #[test]
    fn stream_report_has_a_checkpoint_per_class() {
        let (_, data) = gaussian_clusters(2, 4, 30, 8, 2.0, 1.0);
        let (train, test) = data.split_at(80);
        let order = stream_order(train, StreamOrder::ClassIncremental, 3);
        let mut head = AnyHead::new(HeadKind::Slda, 8).unwrap();
        let report = run_stream(&mut head, train, test, &order).unwrap();
        assert_eq!(report.checkpoints.len(), 4);
        assert_eq!(report.classes, 4);
        assert_eq!(report.update_latency.count, 80);
        assert!(report.checkpoints.iter().all(|c| c.seen_class_accuracy > 0.9));
        assert!(report.final_accuracy > 0.9);
        assert!(report.online_offline_ratio(report.final_accuracy) == 1.0);
    }

    #[test]
    fn correction_check_fixes_mislabelled_novel_samples() {
        let (_, data) = gaussian_clusters(4, 3, 20, 8, 2.0, 1.0);
        let (train, heldout) = data.split_at(45);
        let mut head = AnyHead::new(HeadKind::Ncm, 8).unwrap();
        for e in train {
            head.learn_named(&e.x, &e.class).unwrap();
        }
        // Probes from a class the head has never seen are all wrong; one correction each must fix them.
        let (_, novel) = gaussian_clusters(5, 1, 3, 8, 6.0, 0.1);
        let probe: Vec<Example> = novel.into_iter().map(|e| Example::new(e.x, "novel")).collect();
        let report = correction_check(&head, &probe, heldout, Some(2)).unwrap();
        assert_eq!(report.wrong, 3);
        assert_eq!(report.corrected, 2);
        assert_eq!(report.fix_rate, 1.0);
        assert!(report.min_heldout_delta <= report.max_heldout_delta);
        assert!(report.mean_heldout_delta.abs() < 0.2);
    }

    #[test]
    fn latency_stats_quantiles() {
        let s = LatencyStats::from_micros((1..=100).map(|v| v as f64).collect());
        assert_eq!(s.count, 100);
        assert_eq!(s.max_us, 100.0);
        assert!((s.mean_us - 50.5).abs() < 1e-12);
        assert_eq!(s.p99_us, 99.0);
        assert_eq!(LatencyStats::from_micros(vec![]), LatencyStats::default());
    }
}
