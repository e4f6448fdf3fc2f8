//! Which unlabelled images a person should label next (active learning). Pure and deterministic: the same pool,
//! labelled set, `k` and configuration always give the same picks, so a review queue is reproducible and testable.
//!
//! Three strategies:
//! - `uncertainty`: the `k` candidates whose calibrated probabilities are the most torn (margin by default).
//! - `diverse`: among the most uncertain candidates, an uncertainty-weighted greedy k-center on the embeddings, so a
//!   batch covers different hard cases instead of twenty copies of one (and avoids what is already labelled).
//! - `random`: a seeded shuffle, the baseline every strategy must beat.

use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::active::Uncertainty;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    Uncertainty,
    #[default]
    Diverse,
    Random,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Uncertainty => "uncertainty",
            Strategy::Diverse => "diverse",
            Strategy::Random => "random",
        }
    }
}

impl FromStr for Strategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "uncertainty" => Ok(Strategy::Uncertainty),
            "diverse" => Ok(Strategy::Diverse),
            "random" => Ok(Strategy::Random),
            _ => Err(Error::Config(format!(
                "unknown acquisition strategy {s:?} (expected uncertainty, diverse or random)"
            ))),
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AcquireConfig {
    pub strategy: Strategy,
    /// How torn a probability vector is.
    pub uncertainty: Uncertainty,
    /// `diverse` runs k-center over the `max(shortlist_factor * k, min_shortlist)` most uncertain candidates:
    /// wide enough that a cluster of near-copies cannot fill it, narrow enough that sure cases never compete.
    pub shortlist_factor: usize,
    pub min_shortlist: usize,
    /// Seed of the `random` strategy.
    pub seed: u64,
}

impl Default for AcquireConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::Diverse,
            uncertainty: Uncertainty::Margin,
            shortlist_factor: 10,
            min_shortlist: 200,
            seed: 7,
        }
    }
}

impl AcquireConfig {
    pub fn new(strategy: Strategy) -> Self {
        Self { strategy, ..Self::default() }
    }

    /// How many of the most uncertain candidates `diverse` considers for a batch of `k`.
    pub fn shortlist(&self, k: usize) -> usize {
        self.shortlist_factor.saturating_mul(k).max(self.min_shortlist).max(k)
    }
}

/// One unlabelled image: its embedding and the head's calibrated probabilities for it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub embedding: &'a [f32],
    pub probabilities: &'a [f64],
    /// The head's open-set verdict; an image unlike every class is maximally uncertain.
    pub unknown: bool,
}

impl Candidate<'_> {
    /// Review priority in `[0, 1]`, higher = look sooner.
    pub fn uncertainty(&self, kind: Uncertainty) -> f64 {
        uncertainty_score(self.probabilities, self.unknown, kind)
    }
}

/// Review priority of a probability vector in `[0, 1]`. Margin is computed as `(1 - p1) + p2` from the
/// non-top mass, so confident predictions still rank among themselves instead of all rounding to 0.
pub fn uncertainty_score(probabilities: &[f64], unknown: bool, kind: Uncertainty) -> f64 {
    if unknown {
        return 1.0;
    }
    match kind {
        Uncertainty::Margin => stable_margin(probabilities),
        other => other.score(probabilities),
    }
}

fn stable_margin(p: &[f64]) -> f64 {
    let Some((top, &p1)) = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0))) else {
        return 1.0;
    };
    let total: f64 = p.iter().sum();
    if p1 <= 0.0 || !total.is_finite() {
        return 1.0;
    }
    let rest: f64 = p.iter().enumerate().filter(|&(i, _)| i != top).map(|(_, &v)| v).sum();
    let p2 = p.iter().enumerate().filter(|&(i, _)| i != top).map(|(_, &v)| v).fold(0.0, f64::max);
    ((rest + p2) / total).clamp(0.0, 1.0)
}

/// A chosen candidate: its index in the pool and its uncertainty score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pick {
    pub index: usize,
    pub uncertainty: f64,
}

/// Picks up to `k` candidates of `pool` to label next, best first. `labelled` holds the embeddings already
/// labelled: `diverse` prefers candidates far from them as well as from each other.
pub fn acquire(pool: &[Candidate], labelled: &[&[f32]], k: usize, cfg: &AcquireConfig) -> Result<Vec<Pick>> {
    if let Some(first) = pool.first() {
        let dim = first.embedding.len();
        for e in pool.iter().map(|c| c.embedding).chain(labelled.iter().copied()) {
            if e.len() != dim {
                return Err(Error::Dimension { expected: dim, got: e.len() });
            }
            if e.iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFinite);
            }
        }
    }
    let k = k.min(pool.len());
    if k == 0 {
        return Ok(Vec::new());
    }
    let scores: Vec<f64> = pool.iter().map(|c| c.uncertainty(cfg.uncertainty)).collect();
    let pick = |i: usize| Pick { index: i, uncertainty: scores[i] };
    Ok(match cfg.strategy {
        Strategy::Random => {
            let mut idx: Vec<usize> = (0..pool.len()).collect();
            idx.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed));
            idx.into_iter().take(k).map(pick).collect()
        }
        Strategy::Uncertainty => by_uncertainty(&scores).into_iter().take(k).map(pick).collect(),
        Strategy::Diverse => {
            let mut shortlist = by_uncertainty(&scores);
            shortlist.truncate(cfg.shortlist(k));
            k_center(pool, labelled, &scores, &shortlist, k).into_iter().map(pick).collect()
        }
    })
}

/// Pool indices, most uncertain first; ties keep pool order so the ranking is deterministic.
pub fn by_uncertainty(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx
}

/// Greedy k-center weighted by uncertainty: each step takes the shortlisted candidate maximising
/// `uncertainty * distance to the nearest labelled or already picked embedding`. A near-copy of a pick has
/// distance ≈ 0, so it loses to any distinct candidate that is at all uncertain.
fn k_center(pool: &[Candidate], labelled: &[&[f32]], scores: &[f64], shortlist: &[usize], k: usize) -> Vec<usize> {
    let mut nearest: Vec<f64> = shortlist
        .iter()
        .map(|&i| labelled.iter().map(|l| sq_dist(pool[i].embedding, l)).fold(f64::INFINITY, f64::min).sqrt())
        .collect();
    let mut taken = vec![false; shortlist.len()];
    let mut out = Vec::with_capacity(k);
    while out.len() < k {
        let mut best: Option<(usize, (f64, f64))> = None;
        for (j, &i) in shortlist.iter().enumerate() {
            if taken[j] {
                continue;
            }
            // With nothing to be far from yet, distance carries no information: rank by uncertainty alone.
            let key = if nearest[j].is_infinite() { (scores[i], 0.0) } else { (scores[i] * nearest[j], nearest[j]) };
            // Strictly greater only: equal keys keep the earlier (more uncertain) shortlist entry.
            if best.is_none_or(|(_, b)| key.0 > b.0 || (key.0 == b.0 && key.1 > b.1)) {
                best = Some((j, key));
            }
        }
        let Some((j, _)) = best else { break };
        taken[j] = true;
        let chosen = pool[shortlist[j]].embedding;
        out.push(shortlist[j]);
        for (m, &i) in shortlist.iter().enumerate() {
            if !taken[m] {
                nearest[m] = nearest[m].min(sq_dist(pool[i].embedding, chosen).sqrt());
            }
        }
    }
    out
}

/// Squared Euclidean distance; eight partial sums so the loop vectorises over 1280-dim embeddings.
pub fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8 * 8;
    for (ca, cb) in a[..chunks].chunks_exact(8).zip(b[..chunks].chunks_exact(8)) {
        for ((s, x), y) in acc.iter_mut().zip(ca).zip(cb) {
            let d = x - y;
            *s += d * d;
        }
    }
    let tail: f32 = a[chunks..].iter().zip(&b[chunks..]).map(|(x, y)| (x - y) * (x - y)).sum();
    acc.iter().map(|&v| v as f64).sum::<f64>() + tail as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand<'a>(e: &'a [f32], p: &'a [f64]) -> Candidate<'a> {
        Candidate { embedding: e, probabilities: p, unknown: false }
    }

    #[test]
    fn uncertainty_ranks_a_tie_above_a_sure_one() {
        let e = [0.0f32; 4];
        let (sure, tie, leaning) = ([0.98, 0.01, 0.01], [0.5, 0.5, 0.0], [0.7, 0.2, 0.1]);
        let pool = [cand(&e, &sure), cand(&e, &tie), cand(&e, &leaning)];
        for u in [Uncertainty::Margin, Uncertainty::Entropy, Uncertainty::LeastConfidence] {
            let cfg = AcquireConfig { uncertainty: u, ..AcquireConfig::new(Strategy::Uncertainty) };
            let picks = acquire(&pool, &[], 3, &cfg).unwrap();
            let order: Vec<usize> = picks.iter().map(|p| p.index).collect();
            assert_eq!(order, vec![1, 2, 0], "{u:?}");
            assert!(picks[0].uncertainty > picks[2].uncertainty, "{u:?} {picks:?}");
        }
    }

    #[test]
    fn margin_still_orders_predictions_that_round_to_certain() {
        // 1 - (p1 - p2) is exactly 0 for both in f64; the non-top mass still tells them apart.
        let a = [1.0 - 1e-18, 1e-18];
        let b = [1.0 - 1e-30, 1e-30];
        assert!(uncertainty_score(&a, false, Uncertainty::Margin) > uncertainty_score(&b, false, Uncertainty::Margin));
        assert_eq!(uncertainty_score(&b, true, Uncertainty::Margin), 1.0);
        assert_eq!(uncertainty_score(&[], false, Uncertainty::Margin), 1.0);
        assert!((uncertainty_score(&[0.45, 0.45, 0.1], false, Uncertainty::Margin) - 1.0).abs() < 1e-12);
    }

    /// Ten near-copies of one very hard case, five distinct moderately uncertain cases, and sure ones.
    fn clustered_pool() -> (Vec<Vec<f32>>, Vec<Vec<f64>>) {
        let dim = 16;
        let mut embs = Vec::new();
        let mut probs = Vec::new();
        for c in 0..10 {
            let mut e = vec![0f32; dim];
            e[0] = 5.0;
            e[1] = 1e-3 * c as f32;
            embs.push(e);
            probs.push(vec![0.5, 0.5]);
        }
        for d in 0..5 {
            let mut e = vec![0f32; dim];
            e[2 + d] = 5.0;
            embs.push(e);
            probs.push(vec![0.7, 0.3]);
        }
        for s in 0..20 {
            let mut e = vec![0f32; dim];
            e[8 + s % 8] = 3.0 + s as f32;
            embs.push(e);
            probs.push(vec![0.999, 0.001]);
        }
        (embs, probs)
    }

    #[test]
    fn diverse_never_picks_near_duplicates_when_distinct_uncertain_candidates_exist() {
        let (embs, probs) = clustered_pool();
        let pool: Vec<Candidate> = embs.iter().zip(&probs).map(|(e, p)| cand(e, p)).collect();
        // Plain uncertainty takes copies of the one hard case.
        let plain = acquire(&pool, &[], 6, &AcquireConfig::new(Strategy::Uncertainty)).unwrap();
        assert!(plain.iter().all(|p| p.index < 10), "{plain:?}");

        for k in 1..=6 {
            let picks = acquire(&pool, &[], k, &AcquireConfig::new(Strategy::Diverse)).unwrap();
            assert_eq!(picks.len(), k);
            let copies = picks.iter().filter(|p| p.index < 10).count();
            assert_eq!(copies, 1, "k={k}: {picks:?}");
            // The hardest case comes first, then the distinct uncertain ones, never a sure one.
            assert!(picks[0].index < 10, "{picks:?}");
            assert!(picks.iter().all(|p| p.index < 15), "k={k}: {picks:?}");
            for (a, b) in picks.iter().zip(picks.iter().skip(1)) {
                assert!(sq_dist(&embs[a.index], &embs[b.index]) > 1.0, "{picks:?}");
            }
        }

        // A hard case that is already labelled (a copy of it) is not asked for again.
        let labelled: Vec<&[f32]> = vec![&embs[3]];
        let picks = acquire(&pool, &labelled, 5, &AcquireConfig::new(Strategy::Diverse)).unwrap();
        assert!(picks.iter().all(|p| (10..15).contains(&p.index)), "{picks:?}");
    }

    #[test]
    fn random_is_seeded_deterministic() {
        let (embs, probs) = clustered_pool();
        let pool: Vec<Candidate> = embs.iter().zip(&probs).map(|(e, p)| cand(e, p)).collect();
        let cfg = AcquireConfig { seed: 11, ..AcquireConfig::new(Strategy::Random) };
        let a = acquire(&pool, &[], 8, &cfg).unwrap();
        assert_eq!(a, acquire(&pool, &[], 8, &cfg).unwrap());
        let other = acquire(&pool, &[], 8, &AcquireConfig { seed: 12, ..cfg }).unwrap();
        assert_ne!(a, other, "another seed gives another draw");
        let mut idx: Vec<usize> = a.iter().map(|p| p.index).collect();
        idx.sort();
        idx.dedup();
        assert_eq!(idx.len(), 8, "no candidate twice");
        // Deterministic strategies are too.
        let d = AcquireConfig::new(Strategy::Diverse);
        assert_eq!(acquire(&pool, &[], 5, &d).unwrap(), acquire(&pool, &[], 5, &d).unwrap());
    }

    #[test]
    fn edge_cases() {
        let cfg = AcquireConfig::default();
        assert!(acquire(&[], &[], 5, &cfg).unwrap().is_empty());
        let e = [1.0f32, 2.0];
        let p = [0.6, 0.4];
        let pool = [cand(&e, &p)];
        assert_eq!(acquire(&pool, &[], 0, &cfg).unwrap(), vec![]);
        assert_eq!(acquire(&pool, &[], 9, &cfg).unwrap().len(), 1, "k is capped at the pool size");
        let short = [1.0f32];
        assert!(matches!(acquire(&pool, &[&short], 1, &cfg), Err(Error::Dimension { .. })));
        let bad = [f32::NAN, 0.0];
        assert!(matches!(acquire(&[cand(&bad, &p)], &[], 1, &cfg), Err(Error::NonFinite)));
        assert_eq!("Diverse".parse::<Strategy>().unwrap(), Strategy::Diverse);
        assert!("best".parse::<Strategy>().is_err());
        assert_eq!(cfg.shortlist(5), 200);
        assert_eq!(cfg.shortlist(50), 500);
    }
}
