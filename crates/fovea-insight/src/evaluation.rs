//! Manual evaluations: a reviewer judges a stratified sample of recent predictions (strata = served class ×
//! confidence band), and the answers become an estimate of the served model's accuracy over all of them.
//! Small strata are over-sampled so every class and band is looked at; weighting each stratum by its share of
//! the population keeps the estimate unbiased all the same.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::stats::Z95;

/// A prediction that may be sampled.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub transaction_id: i64,
    pub class: Option<String>,
    pub confidence: f64,
}

/// Confidence bands of the strata: where calibrated confidence changes what a reviewer should expect.
pub fn confidence_band(c: f64) -> &'static str {
    match c {
        c if c < 0.5 => "<0.50",
        c if c < 0.8 => "0.50-0.80",
        c if c < 0.95 => "0.80-0.95",
        _ => ">=0.95",
    }
}

pub fn stratum_of(class: Option<&str>, confidence: f64) -> String {
    format!("{} | {}", class.unwrap_or("(none)"), confidence_band(confidence))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stratum {
    pub key: String,
    /// Predictions of the population in this stratum.
    pub population: u64,
    /// How many were drawn for review.
    pub sampled: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedItem {
    pub transaction_id: i64,
    pub stratum: String,
}

/// Draws `size` predictions (or all there are): every stratum gets two (or all it has) when the budget allows,
/// the rest is shared in proportion to population (largest remainders first). Deterministic for a given `seed`.
pub fn plan(candidates: &[Candidate], size: usize, seed: u64) -> (Vec<Stratum>, Vec<PlannedItem>) {
    let mut groups: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for c in candidates {
        groups.entry(stratum_of(c.class.as_deref(), c.confidence)).or_default().push(c.transaction_id);
    }
    let total = candidates.len();
    let size = size.min(total);
    // Two per stratum when the budget allows, else one; with more strata than that, the largest strata first.
    let floor = if groups.values().map(|v| v.len().min(2)).sum::<usize>() <= size { 2 } else { 1 };
    let mut by_size: Vec<(&str, usize)> = groups.iter().map(|(k, v)| (k.as_str(), v.len())).collect();
    by_size.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut budget = size;
    let mut take: BTreeMap<&str, usize> = BTreeMap::new();
    for (k, n) in by_size {
        let t = n.min(floor).min(budget);
        budget -= t;
        take.insert(k, t);
    }
    let mut left = budget;
    if left > 0 {
        let mut shares: Vec<(&str, f64)> = Vec::new();
        for (k, v) in &groups {
            let ideal = size as f64 * v.len() as f64 / total as f64;
            let extra = (ideal.floor() as usize).saturating_sub(take[k.as_str()]).min(v.len() - take[k.as_str()]);
            let extra = extra.min(left);
            *take.get_mut(k.as_str()).expect("key") += extra;
            left -= extra;
            shares.push((k, ideal - ideal.floor()));
        }
        shares.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        while left > 0 {
            let mut moved = false;
            for (k, _) in &shares {
                if left > 0 && take[k] < groups[*k].len() {
                    *take.get_mut(k).expect("key") += 1;
                    left -= 1;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut strata = Vec::new();
    let mut items = Vec::new();
    for (key, ids) in &groups {
        let mut ids = ids.clone();
        ids.sort_unstable();
        ids.shuffle(&mut rng);
        let n = take[key.as_str()];
        items.extend(ids[..n].iter().map(|&id| PlannedItem { transaction_id: id, stratum: key.clone() }));
        strata.push(Stratum { key: key.clone(), population: ids.len() as u64, sampled: n as u64 });
    }
    (strata, items)
}

/// A reviewer's verdict on one sampled prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub stratum: String,
    pub correct: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationEstimate {
    pub round: i64,
    pub model_version: String,
    pub created_at: i64,
    /// Predictions the round samples from.
    pub population: u64,
    pub sampled: u64,
    pub answered: u64,
    pub correct: u64,
    /// Stratified estimate of accuracy over the population (null until something is answered).
    pub accuracy: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// Share of the population in strata with at least one answer: the estimate speaks for these only.
    pub covered: f64,
}

/// The stratified estimate, its 95 % interval, and the population share it covers.
pub fn estimate(strata: &[Stratum], answers: &[Answer]) -> (Option<f64>, Option<(f64, f64)>, f64) {
    let mut per: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for a in answers {
        let e = per.entry(a.stratum.as_str()).or_default();
        e.0 += u64::from(a.correct);
        e.1 += 1;
    }
    let total: u64 = strata.iter().map(|s| s.population).sum();
    let covered: u64 = strata.iter().filter(|s| per.contains_key(s.key.as_str())).map(|s| s.population).sum();
    if covered == 0 {
        return (None, None, 0.0);
    }
    let (mut est, mut var) = (0.0, 0.0);
    for s in strata {
        let Some(&(hits, n)) = per.get(s.key.as_str()) else { continue };
        let w = s.population as f64 / covered as f64;
        let p = hits as f64 / n as f64;
        est += w * p;
        // Variance from a shrunken share, so a stratum answered all right (or all wrong) by a few still widens
        // the interval; the finite-population factor shrinks it to zero when a stratum is reviewed whole.
        let shrunk = (hits as f64 + 1.0) / (n as f64 + 2.0);
        let fpc = (1.0 - n as f64 / s.population.max(n) as f64).max(0.0);
        var += w * w * shrunk * (1.0 - shrunk) / n as f64 * fpc;
    }
    let half = Z95 * var.sqrt();
    (Some(est), Some(((est - half).max(0.0), (est + half).min(1.0))), covered as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 414 predictions in four strata with known accuracies 0.95, 0.70, 0.30 and 0 (a rare class the model
    /// never gets right): true accuracy 1 190 / 1 414.
    fn population() -> (Vec<Candidate>, BTreeMap<i64, bool>) {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut cands = Vec::new();
        let mut truth = BTreeMap::new();
        let mut id = 0;
        for (class, conf, n, acc) in
            [("cat", 0.97, 1000, 0.95), ("dog", 0.85, 300, 0.70), ("fox", 0.3, 100, 0.30), ("owl", 0.6, 14, 0.0)]
        {
            let right = (n as f64 * acc) as usize;
            for i in 0..n {
                id += 1;
                cands.push(Candidate { transaction_id: id, class: Some(class.into()), confidence: conf });
                truth.insert(id, i < right);
            }
        }
        cands.shuffle(&mut rng);
        (cands, truth)
    }

    #[test]
    fn the_stratified_estimate_is_unbiased_and_its_interval_covers_the_truth() {
        let (cands, truth) = population();
        let true_acc = truth.values().filter(|&&r| r).count() as f64 / truth.len() as f64;
        assert!((true_acc - 1190.0 / 1414.0).abs() < 1e-9);
        let (mut sum, mut naive_sum, mut covered) = (0.0, 0.0, 0);
        let runs = 300;
        for seed in 0..runs {
            let (strata, items) = plan(&cands, 60, seed);
            assert_eq!(items.len(), 60);
            let answers: Vec<Answer> = items
                .iter()
                .map(|i| Answer { stratum: i.stratum.clone(), correct: truth[&i.transaction_id] })
                .collect();
            let (est, ci, cov) = estimate(&strata, &answers);
            assert_eq!(cov, 1.0);
            let (est, (lo, hi)) = (est.unwrap(), ci.unwrap());
            sum += est;
            naive_sum += answers.iter().filter(|a| a.correct).count() as f64 / answers.len() as f64;
            covered += usize::from(lo <= true_acc && true_acc <= hi);
        }
        let mean = sum / runs as f64;
        let naive = naive_sum / runs as f64;
        assert!((mean - true_acc).abs() < 0.01, "mean estimate {mean} vs truth {true_acc}");
        // The small, bad stratum is over-sampled, so the unweighted share is biased low; the estimate is not.
        assert!(naive < true_acc - 0.01, "naive {naive}");
        let coverage = covered as f64 / runs as f64;
        println!(
            "truth {true_acc:.4}: mean estimate {mean:.4}, unweighted {naive:.4}, 95 % interval coverage {coverage:.3}"
        );
        assert!(coverage > 0.88, "95 % intervals covered the truth in only {coverage} of runs");
    }

    #[test]
    fn every_stratum_is_sampled_and_plans_are_deterministic() {
        let (cands, _) = population();
        let (strata, items) = plan(&cands, 10, 7);
        assert_eq!(strata.len(), 4);
        assert!(strata.iter().all(|s| s.sampled >= 2));
        assert_eq!(items.len(), 10);
        assert_eq!(plan(&cands, 10, 7).1, items);
        // A budget below two per stratum still gives exactly the size asked for, largest strata first.
        let (strata, items) = plan(&cands, 3, 7);
        assert_eq!(items.len(), 3);
        assert_eq!(strata.iter().filter(|s| s.sampled == 0).count(), 1);
        assert_ne!(plan(&cands, 10, 8).1, items);
        // Asking for more than there is reviews everything, and then the interval collapses to the truth.
        let (strata, items) = plan(&cands[..50], 500, 1);
        assert_eq!(items.len(), 50);
        let answers: Vec<Answer> = items.iter().map(|i| Answer { stratum: i.stratum.clone(), correct: true }).collect();
        let (est, ci, _) = estimate(&strata, &answers);
        assert_eq!(est, Some(1.0));
        assert_eq!(ci, Some((1.0, 1.0)));
        assert_eq!(estimate(&strata, &[]).0, None);
    }
}
