//! Embedding shift by maximum mean discrepancy with a Gaussian kernel on unit-length embeddings. The
//! reference pool's kernel matrix is computed once; its null distribution comes from random splits of the
//! pool (a permutation test done ahead of time), so each check only costs the window's kernel rows.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub(crate) fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter().map(|x| x / n).collect()
    } else {
        v.to_vec()
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[derive(Debug, Clone)]
pub(crate) struct MmdReference {
    pool: Vec<Vec<f32>>,
    /// Kernel width: k(x, y) = exp(−gamma · |x − y|²), gamma = 1 / median pairwise squared distance.
    gamma: f32,
    /// Mean of the pool's kernel matrix, diagonal included.
    pool_mean: f64,
    /// The null distribution for each window size the monitor checks at, smallest first.
    nulls: Vec<Null>,
}

/// MMD² of windows of `size` drawn from the pool itself: mean, standard deviation and largest of the draws.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Null {
    pub size: usize,
    pub mean: f64,
    pub sd: f64,
    pub max: f64,
}

impl MmdReference {
    /// `pool`: unit-length embeddings. `windows`: the window sizes that will be tested.
    pub(crate) fn build(pool: Vec<Vec<f32>>, windows: &[usize], permutations: usize, seed: u64) -> Option<Self> {
        let r = pool.len();
        if r < 8 {
            return None;
        }
        let mut d2: Vec<f32> = Vec::with_capacity(r * (r - 1) / 2);
        let mut dots = vec![0f32; r * r];
        for i in 0..r {
            for j in i..r {
                let d = dot(&pool[i], &pool[j]);
                dots[i * r + j] = d;
                dots[j * r + i] = d;
                if j > i {
                    d2.push((2.0 - 2.0 * d).max(0.0));
                }
            }
        }
        d2.sort_by(f32::total_cmp);
        let median = d2[d2.len() / 2].max(1e-6);
        let gamma = 1.0 / median;
        let k: Vec<f32> = dots.iter().map(|&d| (-gamma * (2.0 - 2.0 * d).max(0.0)).exp()).collect();
        let pool_mean = k.iter().map(|&x| x as f64).sum::<f64>() / (r * r) as f64;
        // The null: a window of the same size drawn from the pool itself, against the rest of it. A window larger
        // than half the pool is judged with the null of half the pool, which is wider: conservative.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut idx: Vec<usize> = (0..r).collect();
        let mut sizes: Vec<usize> = windows.iter().map(|&w| w.min(r / 2).max(1)).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let nulls = sizes
            .into_iter()
            .map(|w| {
                let mut draws = Vec::with_capacity(permutations);
                for _ in 0..permutations.max(2) {
                    idx.shuffle(&mut rng);
                    let (a, b) = idx.split_at(w);
                    draws.push(mmd2_from(|i, j| k[i * r + j] as f64, a, b));
                }
                let mean = draws.iter().sum::<f64>() / draws.len() as f64;
                let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (draws.len() - 1) as f64;
                Null { size: w, mean, sd: var.sqrt(), max: draws.iter().copied().fold(0.0, f64::max) }
            })
            .collect();
        Some(MmdReference { pool, gamma, pool_mean, nulls })
    }

    /// The null for a window of `n`: that of the largest calibrated size not above `n` (smaller windows scatter
    /// more, so this errs on the side of no alarm); `None` below the smallest.
    pub(crate) fn null_for(&self, n: usize) -> Option<Null> {
        self.nulls.iter().rev().find(|z| z.size <= n).copied()
    }

    /// The kernel of a unit-length embedding against every pool member.
    pub(crate) fn row(&self, x: &[f32]) -> Vec<f32> {
        self.pool.iter().map(|p| self.kernel(x, p)).collect()
    }

    fn kernel(&self, a: &[f32], b: &[f32]) -> f32 {
        (-self.gamma * (2.0 - 2.0 * dot(a, b)).max(0.0)).exp()
    }

    /// Biased MMD² of a window (unit embeddings with their pool rows) against the pool, and each window
    /// member's witness value (how much more it resembles the window than the pool).
    pub(crate) fn score(&self, window: &[(&[f32], &[f32])]) -> (f64, Vec<f64>) {
        let n = window.len();
        if n == 0 {
            return (0.0, vec![]);
        }
        let mut ww = vec![0f64; n];
        for i in 0..n {
            for j in i..n {
                let kv = if i == j { 1.0 } else { self.kernel(window[i].0, window[j].0) as f64 };
                ww[i] += kv;
                if j != i {
                    ww[j] += kv;
                }
            }
        }
        let wp: Vec<f64> =
            window.iter().map(|(_, row)| row.iter().map(|&x| x as f64).sum::<f64>() / row.len() as f64).collect();
        let mmd2 = ww.iter().sum::<f64>() / (n * n) as f64 + self.pool_mean - 2.0 * wp.iter().sum::<f64>() / n as f64;
        let witness = ww.iter().zip(&wp).map(|(a, b)| a / n as f64 - b).collect();
        (mmd2.max(0.0), witness)
    }
}

/// Biased MMD² between index sets `a` and `b` of a precomputed kernel.
fn mmd2_from(k: impl Fn(usize, usize) -> f64, a: &[usize], b: &[usize]) -> f64 {
    let mean = |x: &[usize], y: &[usize]| {
        let mut s = 0.0;
        for &i in x {
            for &j in y {
                s += k(i, j);
            }
        }
        s / (x.len() * y.len()) as f64
    };
    mean(a, a) + mean(b, b) - 2.0 * mean(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn cloud(rng: &mut ChaCha8Rng, n: usize, shift: f32) -> Vec<Vec<f32>> {
        (0..n)
            .map(|_| unit(&(0..16).map(|d| rng.random::<f32>() + if d == 0 { shift } else { 0.0 }).collect::<Vec<_>>()))
            .collect()
    }

    #[test]
    fn a_shifted_window_scores_far_above_the_null_and_a_same_one_does_not() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let r = MmdReference::build(cloud(&mut rng, 300, 0.0), &[50, 100], 100, 1).unwrap();
        let score = |w: Vec<Vec<f32>>| {
            let rows: Vec<Vec<f32>> = w.iter().map(|x| r.row(x)).collect();
            let pairs: Vec<(&[f32], &[f32])> = w.iter().zip(&rows).map(|(a, b)| (a.as_slice(), b.as_slice())).collect();
            r.score(&pairs).0
        };
        let same = score(cloud(&mut rng, 100, 0.0));
        let moved = score(cloud(&mut rng, 100, 1.5));
        let null = r.null_for(100).unwrap();
        assert_eq!(null.size, 100);
        assert!(r.null_for(60).unwrap().mean > null.mean, "smaller windows scatter more");
        assert!(r.null_for(10).is_none());
        let threshold = null.mean + 6.0 * null.sd;
        assert!(same < threshold, "same {same} threshold {threshold}");
        assert!(moved > 3.0 * threshold, "moved {moved} threshold {threshold}");
    }
}
