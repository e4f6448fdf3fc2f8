//! `fovea eval stream --acquire …`: active learning over a pool. The training folder plays the unlabelled pool;
//! starting from one labelled image per class, each strategy repeatedly picks the next image(s), a perfect
//! annotator labels them (the folder's class), the head learns, and test accuracy is recorded per label.

use std::collections::BTreeMap;
use std::io::Write;

use clap::ValueEnum;
use fovea_learn::{acquire, AcquireConfig, AnyHead, Candidate, Example, Head, Prediction, Strategy};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Acquire {
    /// Most torn calibrated probabilities first (margin)
    Uncertainty,
    /// Uncertainty combined with diversity (uncertainty-weighted greedy k-center on embeddings)
    Diverse,
    /// Seeded random order: the baseline
    Random,
}

impl From<Acquire> for Strategy {
    fn from(a: Acquire) -> Self {
        match a {
            Acquire::Uncertainty => Strategy::Uncertainty,
            Acquire::Diverse => Strategy::Diverse,
            Acquire::Random => Strategy::Random,
        }
    }
}

/// How one acquisition run is shaped.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Images picked per round before the head is asked again.
    pub batch: usize,
    /// Measure test accuracy after every `every` labels (and at the end).
    pub every: usize,
    /// Stop after this many labels in total, seed set included (`None`: until the pool is empty).
    pub budget: Option<usize>,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    pub labels: usize,
    pub accuracy: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AcquisitionRun {
    pub strategy: &'static str,
    /// Labels given before the first pick: one image per class.
    pub seed_labels: usize,
    pub curve: Vec<Point>,
    pub final_accuracy: f64,
    /// Fewest labels after which test accuracy is at least 95 % of this run's final accuracy.
    pub labels_to_95pct_of_final: usize,
    pub seconds: f64,
}

/// Runs one strategy from a fresh head (`head` must have learned nothing).
pub fn run(
    mut head: AnyHead,
    train: &[Example],
    test: &[Example],
    strategy: Strategy,
    plan: Plan,
) -> anyhow::Result<AcquisitionRun> {
    let start = std::time::Instant::now();
    let (every, batch) = (plan.every.max(1), plan.batch.max(1));
    let budget = plan.budget.unwrap_or(train.len()).min(train.len());
    // Seed set: the first image of each class in a seeded shuffle, the same for every strategy.
    let order = fovea_learn::stream_order(train, fovea_learn::StreamOrder::Shuffled, plan.seed);
    let mut first: BTreeMap<&str, usize> = BTreeMap::new();
    for &i in &order {
        first.entry(train[i].class.as_str()).or_insert(i);
    }
    let mut labelled: Vec<usize> = first.into_values().collect();
    for &i in &labelled {
        head.learn_named(&train[i].x, &train[i].class)?;
    }
    let seed_labels = labelled.len();
    let mut pool: Vec<usize> = order.into_iter().filter(|i| !labelled.contains(i)).collect();
    pool.sort_unstable();
    let mut curve = vec![Point { labels: labelled.len(), accuracy: fovea_learn::accuracy(&head, test)? }];
    let mut round = 0u64;
    while labelled.len() < budget && !pool.is_empty() {
        let predictions: Vec<Prediction> = pool.iter().map(|&i| head.predict(&train[i].x)).collect::<Result<_, _>>()?;
        let candidates: Vec<Candidate> = pool
            .iter()
            .zip(&predictions)
            .map(|(&i, p)| Candidate { embedding: &train[i].x, probabilities: &p.probabilities, unknown: p.unknown })
            .collect();
        let refs: Vec<&[f32]> = labelled.iter().map(|&i| train[i].x.as_slice()).collect();
        // A fresh seed per round: the same seed over a shrinking pool would correlate the draws.
        let cfg = AcquireConfig { seed: plan.seed.wrapping_add(round), ..AcquireConfig::new(strategy) };
        let k = batch.min(budget - labelled.len());
        let picks = acquire(&candidates, &refs, k, &cfg)?;
        drop(candidates);
        let mut positions: Vec<usize> = picks.iter().map(|p| p.index).collect();
        for &pos in &positions {
            let i = pool[pos];
            head.learn_named(&train[i].x, &train[i].class)?;
            labelled.push(i);
            if labelled.len().is_multiple_of(every) {
                curve.push(Point { labels: labelled.len(), accuracy: fovea_learn::accuracy(&head, test)? });
            }
        }
        positions.sort_unstable_by(|a, b| b.cmp(a));
        for pos in positions {
            pool.remove(pos);
        }
        round += 1;
    }
    if curve.last().is_none_or(|p| p.labels != labelled.len()) {
        curve.push(Point { labels: labelled.len(), accuracy: fovea_learn::accuracy(&head, test)? });
    }
    let final_accuracy = curve.last().map_or(0.0, |p| p.accuracy);
    Ok(AcquisitionRun {
        strategy: strategy.as_str(),
        seed_labels,
        labels_to_95pct_of_final: labels_to_reach(&curve, 0.95 * final_accuracy),
        final_accuracy,
        curve,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Labels at the first curve point whose accuracy reaches `target`.
fn labels_to_reach(curve: &[Point], target: f64) -> usize {
    curve.iter().find(|p| p.accuracy >= target - 1e-12).or(curve.last()).map_or(0, |p| p.labels)
}

/// The learning curves side by side (one column per strategy), then one summary line per strategy.
pub fn print(runs: &[AcquisitionRun], pool: usize, test: usize, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "active learning over a pool of {pool} images, {test} test images; test accuracy by labels given:")?;
    write!(out, "{:>7}", "labels")?;
    for r in runs {
        write!(out, " {:>12}", r.strategy)?;
    }
    writeln!(out)?;
    let mut rows: BTreeMap<usize, Vec<Option<f64>>> = BTreeMap::new();
    for (j, r) in runs.iter().enumerate() {
        for p in &r.curve {
            rows.entry(p.labels).or_insert_with(|| vec![None; runs.len()])[j] = Some(p.accuracy);
        }
    }
    for (labels, accs) in rows {
        write!(out, "{labels:>7}")?;
        for a in accs {
            match a {
                Some(a) => write!(out, " {:>11.2}%", a * 100.0)?,
                None => write!(out, " {:>12}", "")?,
            }
        }
        writeln!(out)?;
    }
    for r in runs {
        writeln!(
            out,
            "{:<12} final {:>6.2}% after {} labels; 95 % of it ({:.2}%) reached after {} labels ({:.1} s)",
            r.strategy,
            r.final_accuracy * 100.0,
            r.curve.last().map_or(0, |p| p.labels),
            r.final_accuracy * 95.0,
            r.labels_to_95pct_of_final,
            r.seconds
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fovea_learn::HeadKind;

    fn clusters(per_class: usize, classes: usize, seed: u64) -> Vec<Example> {
        // Deterministic, well separated blobs: class c sits at 4 * e_c, with a small per-sample wobble.
        let dim = 8;
        let mut out = Vec::new();
        for i in 0..per_class {
            for c in 0..classes {
                let mut x = vec![0f32; dim];
                x[c] = 4.0;
                for (j, v) in x.iter_mut().enumerate() {
                    let h = (seed as usize * 31 + i * 17 + c * 7 + j * 3) % 11;
                    *v += (h as f32 - 5.0) * 0.05;
                }
                out.push(Example::new(x, format!("c{c}")));
            }
        }
        out
    }

    #[test]
    fn every_strategy_labels_the_whole_pool_once_and_reports_a_curve() {
        let train = clusters(6, 3, 1);
        let test = clusters(4, 3, 2);
        let plan = Plan { batch: 2, every: 1, budget: None, seed: 5 };
        for s in [Strategy::Uncertainty, Strategy::Diverse, Strategy::Random] {
            let run = run(AnyHead::new(HeadKind::Ncm, 8).unwrap(), &train, &test, s, plan).unwrap();
            assert_eq!(run.seed_labels, 3, "{s}");
            let labels: Vec<usize> = run.curve.iter().map(|p| p.labels).collect();
            assert_eq!(labels, (3..=18).collect::<Vec<_>>(), "{s}: one point per label");
            assert_eq!(run.final_accuracy, 1.0, "{s}");
            assert_eq!(run.labels_to_95pct_of_final, 3, "{s}: separated blobs are learned from the seed set");
        }
        let plan = Plan { batch: 1, every: 4, budget: Some(10), seed: 5 };
        let r = run(AnyHead::new(HeadKind::Ncm, 8).unwrap(), &train, &test, Strategy::Diverse, plan).unwrap();
        let labels: Vec<usize> = r.curve.iter().map(|p| p.labels).collect();
        assert_eq!(labels, vec![3, 4, 8, 10], "seed point, every 4th label, and the end of the budget");
    }

    #[test]
    fn labels_to_reach_takes_the_first_point_over_target() {
        let c = [(2, 0.5), (3, 0.91), (4, 0.8), (5, 0.95)].map(|(labels, accuracy)| Point { labels, accuracy });
        assert_eq!(labels_to_reach(&c, 0.95 * 0.95), 3);
        assert_eq!(labels_to_reach(&c, 0.95), 5);
    }
}
