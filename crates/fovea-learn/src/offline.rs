//! Offline baselines that see all training embeddings at once, to measure how much the online heads give up.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::calibrate::softmax_scaled;
use crate::error::{check_embedding, Error, Result};
use crate::eval::{Classifier, Example};
use crate::head::Head;
use crate::linalg::{axpy, dot};
use crate::ncm::{Metric, NcmHead};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogisticConfig {
    /// L2 penalty on the weights (not the biases), on standardised features.
    pub l2: f64,
    pub max_iterations: usize,
    /// Stop when the largest gradient component, or the relative loss change, falls below this.
    pub tolerance: f64,
    /// L-BFGS memory.
    pub history: usize,
}

impl Default for LogisticConfig {
    fn default() -> Self {
        Self { l2: 1e-4, max_iterations: 500, tolerance: 1e-6, history: 10 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    pub iterations: usize,
    pub evaluations: usize,
    pub converged: bool,
    pub loss: f64,
    pub gradient_max: f64,
}

/// Multinomial logistic regression on standardised features, fitted by L-BFGS (deterministic, single-threaded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticRegression {
    classes: Vec<String>,
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    /// `K x D` weights followed by `K` biases.
    params: Vec<f64>,
}

struct Problem<'a> {
    x: &'a [f64],
    y: &'a [usize],
    n: usize,
    d: usize,
    k: usize,
    l2: f64,
}

impl Problem<'_> {
    /// Mean NLL plus penalty, and its gradient.
    fn eval(&self, p: &[f64], grad: &mut [f64]) -> f64 {
        let (d, k) = (self.d, self.k);
        grad.fill(0.0);
        let (w, b) = p.split_at(k * d);
        let mut loss = 0.0;
        let mut z = vec![0.0; k];
        let inv_n = 1.0 / self.n as f64;
        for i in 0..self.n {
            let xi = &self.x[i * d..(i + 1) * d];
            for c in 0..k {
                z[c] = dot(&w[c * d..(c + 1) * d], xi) + b[c];
            }
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            loss += lse - z[self.y[i]];
            let (gw, gb) = grad.split_at_mut(k * d);
            for c in 0..k {
                let mut r = (z[c] - lse).exp();
                if c == self.y[i] {
                    r -= 1.0;
                }
                axpy(r * inv_n, xi, &mut gw[c * d..(c + 1) * d]);
                gb[c] += r * inv_n;
            }
        }
        let mut penalty = 0.0;
        for (g, &wv) in grad[..k * d].iter_mut().zip(w) {
            *g += self.l2 * wv;
            penalty += wv * wv;
        }
        loss * inv_n + 0.5 * self.l2 * penalty
    }
}

impl LogisticRegression {
    pub fn fit(data: &[Example], cfg: &LogisticConfig) -> Result<(Self, FitReport)> {
        let first = data.first().ok_or_else(|| Error::NotEnoughData("no training examples".into()))?;
        let d = first.x.len();
        let classes: Vec<String> = data.iter().map(|e| e.class.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let k = classes.len();
        let n = data.len();
        let mut mean = vec![0.0; d];
        for e in data {
            check_embedding(&e.x, d)?;
            for (m, &v) in mean.iter_mut().zip(&e.x) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0.0; d];
        for e in data {
            for ((s, &v), m) in var.iter_mut().zip(&e.x).zip(&mean) {
                *s += (v as f64 - m).powi(2);
            }
        }
        // Constant features get unit scale so they contribute nothing instead of dividing by zero.
        let inv_std: Vec<f64> = var
            .iter()
            .map(|s| {
                let sd = (s / n as f64).sqrt();
                if sd > 1e-12 {
                    1.0 / sd
                } else {
                    1.0
                }
            })
            .collect();
        let mut x = Vec::with_capacity(n * d);
        for e in data {
            x.extend(e.x.iter().zip(&mean).zip(&inv_std).map(|((&v, m), s)| (v as f64 - m) * s));
        }
        let y: Vec<usize> =
            data.iter().map(|e| classes.binary_search(&e.class).expect("class collected above")).collect();
        let problem = Problem { x: &x, y: &y, n, d, k, l2: cfg.l2 };
        let mut params = vec![0.0; k * d + k];
        let report = lbfgs(&problem, &mut params, cfg);
        Ok((Self { classes, mean, inv_std, params }, report))
    }

    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    pub fn logits(&self, x: &[f32]) -> Result<Vec<f64>> {
        let d = self.mean.len();
        check_embedding(x, d)?;
        let xs: Vec<f64> = x.iter().zip(&self.mean).zip(&self.inv_std).map(|((&v, m), s)| (v as f64 - m) * s).collect();
        let k = self.classes.len();
        let (w, b) = self.params.split_at(k * d);
        Ok((0..k).map(|c| dot(&w[c * d..(c + 1) * d], &xs) + b[c]).collect())
    }

    pub fn probabilities(&self, x: &[f32]) -> Result<Vec<f64>> {
        Ok(softmax_scaled(&self.logits(x)?, 1.0))
    }
}

impl Classifier for LogisticRegression {
    fn top_class_name(&self, x: &[f32]) -> Result<Option<String>> {
        let z = self.logits(x)?;
        let best = z
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
            .map(|(i, _)| self.classes[i].clone());
        Ok(best)
    }
}

/// L-BFGS with a backtracking Armijo line search; fully deterministic.
fn lbfgs(problem: &Problem, p: &mut [f64], cfg: &LogisticConfig) -> FitReport {
    let dim = p.len();
    let mut g = vec![0.0; dim];
    let mut f = problem.eval(p, &mut g);
    let mut evaluations = 1;
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut rho_hist: Vec<f64> = Vec::new();
    let gmax = |g: &[f64]| g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut report =
        FitReport { iterations: 0, evaluations, converged: gmax(&g) < cfg.tolerance, loss: f, gradient_max: gmax(&g) };
    let mut new_g = vec![0.0; dim];
    let mut trial = vec![0.0; dim];
    while !report.converged && report.iterations < cfg.max_iterations {
        // Two-loop recursion: direction = -H g.
        let mut q = g.clone();
        let mut alpha = vec![0.0; s_hist.len()];
        for i in (0..s_hist.len()).rev() {
            alpha[i] = rho_hist[i] * dot(&s_hist[i], &q);
            axpy(-alpha[i], &y_hist[i], &mut q);
        }
        let gamma = match (s_hist.last(), y_hist.last()) {
            (Some(s), Some(y)) => dot(s, y) / dot(y, y),
            _ => 1.0 / gmax(&g).max(1.0),
        };
        q.iter_mut().for_each(|v| *v *= gamma);
        for i in 0..s_hist.len() {
            let beta = rho_hist[i] * dot(&y_hist[i], &q);
            axpy(alpha[i] - beta, &s_hist[i], &mut q);
        }
        let mut dir: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &dir);
        if slope >= 0.0 {
            // Not a descent direction (curvature history went stale): restart from steepest descent.
            s_hist.clear();
            y_hist.clear();
            rho_hist.clear();
            dir = g.iter().map(|v| -v / gmax(&g).max(1.0)).collect();
            slope = dot(&g, &dir);
        }
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..40 {
            for ((t, &pi), &di) in trial.iter_mut().zip(p.iter()).zip(&dir) {
                *t = pi + step * di;
            }
            let ft = problem.eval(&trial, &mut new_g);
            evaluations += 1;
            if ft.is_finite() && ft <= f + 1e-4 * step * slope {
                accepted = Some(ft);
                break;
            }
            step *= 0.5;
        }
        report.iterations += 1;
        let Some(ft) = accepted else {
            break; // no decrease possible at machine precision: we are at the optimum
        };
        let s: Vec<f64> = dir.iter().map(|d| d * step).collect();
        let y: Vec<f64> = new_g.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 {
            if s_hist.len() == cfg.history.max(1) {
                s_hist.remove(0);
                y_hist.remove(0);
                rho_hist.remove(0);
            }
            s_hist.push(s);
            y_hist.push(y);
            rho_hist.push(1.0 / sy);
        }
        p.copy_from_slice(&trial);
        g.copy_from_slice(&new_g);
        let rel = (f - ft).abs() / f.abs().max(1.0);
        f = ft;
        report.gradient_max = gmax(&g);
        report.converged = report.gradient_max < cfg.tolerance || rel < cfg.tolerance * 1e-3;
    }
    report.loss = f;
    report.evaluations = evaluations;
    report
}

/// Plain batch nearest-class-mean over all examples (same model as the online NCM head fed everything).
pub fn batch_ncm(data: &[Example], metric: Metric) -> Result<NcmHead> {
    let first = data.first().ok_or_else(|| Error::NotEnoughData("no training examples".into()))?;
    let mut head = NcmHead::new(first.x.len(), metric);
    for e in data {
        head.learn_named(&e.x, &e.class)?;
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::accuracy;
    use crate::synthetic::gaussian_clusters;

    #[test]
    fn logistic_regression_converges_and_separates() {
        let (_, data) = gaussian_clusters(31, 4, 60, 8, 2.0, 1.0);
        let (train, test) = data.split_at(160);
        let (model, report) = LogisticRegression::fit(train, &LogisticConfig::default()).unwrap();
        assert!(report.converged, "{report:?}");
        assert!(report.iterations > 1 && report.iterations < 500, "{report:?}");
        assert!(accuracy(&model, test).unwrap() > 0.95);
        let p = model.probabilities(&test[0].x).unwrap();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Deterministic: a second fit gives identical parameters.
        let (again, _) = LogisticRegression::fit(train, &LogisticConfig::default()).unwrap();
        assert_eq!(model, again);
    }

    #[test]
    fn logistic_regression_reaches_the_optimum() {
        // With a strong penalty the optimum is well defined; the gradient at the returned point must be ~0.
        let (_, data) = gaussian_clusters(37, 3, 30, 5, 1.0, 1.0);
        let cfg = LogisticConfig { l2: 0.1, tolerance: 1e-8, ..LogisticConfig::default() };
        let (_, report) = LogisticRegression::fit(&data, &cfg).unwrap();
        assert!(report.gradient_max < 1e-6, "{report:?}");
    }

    #[test]
    fn batch_ncm_matches_online_ncm() {
        let (_, data) = gaussian_clusters(41, 3, 20, 6, 2.0, 1.0);
        let batch = batch_ncm(&data, Metric::Euclidean).unwrap();
        assert!(accuracy(&batch, &data).unwrap() > 0.95);
        assert!(batch_ncm(&[], Metric::Cosine).is_err());
        assert!(LogisticRegression::fit(&[], &LogisticConfig::default()).is_err());
    }
}
