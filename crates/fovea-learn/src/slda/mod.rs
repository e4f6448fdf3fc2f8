//! Streaming linear discriminant analysis: per-class means and one shared within-class scatter.
//!
//! The fold keeps exact sufficient statistics (counts, sums, scatter in f64). Prediction needs the
//! precision `G = (S + rho I)^-1` and per-class `w_k = G mu_k`, `q_k = mu_k^T G mu_k`; those are
//! maintained with Sherman–Morrison rank-one updates so a learn costs O(D^2 + K D) instead of a
//! fresh O(D^3) inverse, and are recomputed exactly from the statistics every `refresh_every`
//! updates, on merge and on restore, which bounds floating-point drift.
//!
//! At D = 1280 the matrices are 6.5 MB each (packed), so an update is bound by memory traffic, not
//! flops. Rank-one changes to the precision and the scatter are therefore queued and applied
//! `PENDING_BATCH` at a time (one pass over each matrix per batch); until then mat-vecs add the
//! queued terms explicitly. The batch applies them in order per element, so the scatter is
//! bit-identical to applying each update immediately.

mod config;

pub use config::SldaConfig;

use crate::calibrate::Calibration;
use crate::classes::{ClassId, ClassTable};
use crate::error::{check_embedding, Error, Result};
use crate::head::{Head, HeadKind, RawScores};
use crate::linalg::{
    axpy, dot, pack_upper, packed_diag, packed_len, packed_rank_k, packed_rank_one, packed_symv, spd_inverse,
    sq_dist_to_mean, to_f64, unpack_symmetric,
};
use crate::snapshot::{HeadSnapshot, SldaSnapshot};

const PENDING_BATCH: usize = 16;

#[derive(Debug, Clone)]
pub struct SldaHead {
    cfg: SldaConfig,
    dim: usize,
    classes: ClassTable,
    counts: Vec<u64>,
    /// Row `k` = sum of class `k`'s embeddings.
    sums: Vec<f64>,
    /// Within-class scatter, packed upper triangle, plus queued rank-one terms `(c, d)`: `S += c d d^T`.
    scatter: Vec<f64>,
    pending_scatter: Vec<(f64, Vec<f64>)>,
    /// `(S + ridge I)^-1`, packed upper triangle, plus its own queue of rank-one terms.
    precision: Vec<f64>,
    pending_precision: Vec<(f64, Vec<f64>)>,
    /// Row `k` = `precision * mean_k`.
    weights: Vec<f64>,
    quad: Vec<f64>,
    since_refresh: u64,
    calibration: Calibration,
}

impl SldaHead {
    pub fn new(dim: usize) -> Self {
        Self::with_config(dim, SldaConfig::default()).expect("default config is valid")
    }

    pub fn with_config(dim: usize, cfg: SldaConfig) -> Result<Self> {
        cfg.validate()?;
        if dim == 0 {
            return Err(Error::Config("dimension must be > 0".into()));
        }
        let mut precision = vec![0.0; packed_len(dim)];
        for i in 0..dim {
            precision[crate::linalg::packed_row(i, dim)] = 1.0 / cfg.ridge();
        }
        Ok(Self {
            cfg,
            dim,
            classes: ClassTable::new(),
            counts: Vec::new(),
            sums: Vec::new(),
            scatter: vec![0.0; packed_len(dim)],
            pending_scatter: Vec::new(),
            precision,
            pending_precision: Vec::new(),
            weights: Vec::new(),
            quad: Vec::new(),
            since_refresh: 0,
            calibration: Calibration::default(),
        })
    }

    pub fn config(&self) -> &SldaConfig {
        &self.cfg
    }

    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Class sums, row-major `K x D`.
    pub fn sums(&self) -> &[f64] {
        &self.sums
    }

    /// Within-class scatter as a packed upper triangle (row `i` holds columns `i..D`).
    pub fn scatter(&self) -> Vec<f64> {
        let mut s = self.scatter.clone();
        packed_rank_k(&mut s, self.dim, &self.pending_scatter);
        s
    }

    /// The cached precision `(S + ridge I)^-1` as a packed upper triangle (for drift checks).
    pub fn precision(&self) -> Vec<f64> {
        let mut p = self.precision.clone();
        packed_rank_k(&mut p, self.dim, &self.pending_precision);
        p
    }

    /// `out = G v` including queued terms.
    fn precision_times(&self, v: &[f64], out: &mut [f64]) {
        packed_symv(&self.precision, self.dim, v, out);
        for (c, u) in &self.pending_precision {
            axpy(c * dot(u, v), u, out);
        }
    }

    fn flush(&mut self) {
        packed_rank_k(&mut self.precision, self.dim, &self.pending_precision);
        self.pending_precision.clear();
        packed_rank_k(&mut self.scatter, self.dim, &self.pending_scatter);
        self.pending_scatter.clear();
    }

    pub fn mean(&self, class: ClassId) -> Option<Vec<f64>> {
        let k = class.index();
        let n = *self.counts.get(k)?;
        (n > 0).then(|| self.row(&self.sums, k).iter().map(|s| s / n as f64).collect())
    }

    fn row<'a>(&self, m: &'a [f64], k: usize) -> &'a [f64] {
        &m[k * self.dim..(k + 1) * self.dim]
    }

    fn class_index(&self, class: ClassId) -> Result<usize> {
        let k = class.index();
        if k < self.counts.len() {
            Ok(k)
        } else {
            Err(Error::UnknownClassId(class.0))
        }
    }

    fn trained_classes(&self) -> usize {
        self.counts.iter().filter(|&&n| n > 0).count()
    }

    /// Degrees of freedom of the pooled covariance, including the prior's pseudo-samples.
    fn dof(&self) -> f64 {
        let n: u64 = self.counts.iter().sum();
        (n - self.trained_classes() as u64) as f64 + self.cfg.prior_strength
    }

    fn refresh_class(&mut self, k: usize) {
        let d = self.dim;
        let n = self.counts[k];
        if n == 0 {
            self.weights[k * d..(k + 1) * d].fill(0.0);
            self.quad[k] = 0.0;
            return;
        }
        let mean: Vec<f64> = self.row(&self.sums, k).iter().map(|s| s / n as f64).collect();
        let mut w = vec![0.0; d];
        self.precision_times(&mean, &mut w);
        self.quad[k] = dot(&mean, &w);
        self.weights[k * d..(k + 1) * d].copy_from_slice(&w);
    }

    /// Exact recompute of the precision and per-class weights from the statistics.
    pub fn recompute(&mut self) -> Result<()> {
        let d = self.dim;
        self.flush();
        let mut a = unpack_symmetric(&self.scatter, d);
        let ridge = self.cfg.ridge();
        let mut jitter = 0.0;
        // Rounding in many downdates can leave S a hair indefinite; a growing jitter keeps the solve alive.
        for attempt in 0..8 {
            for i in 0..d {
                a[i * d + i] += ridge + jitter;
            }
            match spd_inverse(&a, d) {
                Ok(inv) => {
                    self.precision = pack_upper(&inv, d);
                    for k in 0..self.counts.len() {
                        self.refresh_class(k);
                    }
                    self.since_refresh = 0;
                    return Ok(());
                }
                Err(_) => {
                    for i in 0..d {
                        a[i * d + i] -= ridge + jitter;
                    }
                    jitter = ridge * 10f64.powi(attempt - 6);
                }
            }
        }
        Err(Error::NotPositiveDefinite)
    }

    /// Applies `S += c d d^T` and updates the cached precision/weights, where class `k`'s mean moves
    /// by `a * d` in the same step. Returns false when Sherman–Morrison is unsafe and an exact
    /// recompute is needed (the scatter is updated either way).
    fn rank_one(&mut self, k: usize, c: f64, delta: &[f64], a: f64) -> bool {
        let d = self.dim;
        let mut u = vec![0.0; d];
        self.precision_times(delta, &mut u);
        let s = dot(delta, &u);
        let denom = 1.0 + c * s;
        self.pending_scatter.push((c, delta.to_vec()));
        // Near-zero (or NaN) denominators mean the downdate would make S + ridge I singular.
        let safe = denom.is_finite() && denom > 1e-8;
        if !safe {
            return false;
        }
        let beta = c / denom;
        for j in 0..self.counts.len() {
            let n = self.counts[j];
            if n == 0 {
                continue;
            }
            let t = dot(&u, self.row(&self.sums, j)) / n as f64;
            let w = &mut self.weights[j * d..(j + 1) * d];
            axpy(-beta * t, &u, w);
            self.quad[j] -= beta * t * t;
            if j == k {
                // G_new * delta = u / (1 + c s): the moved mean's weight gets that share.
                axpy(a / denom, &u, w);
            }
        }
        self.pending_precision.push((-beta, u));
        if self.pending_precision.len() >= PENDING_BATCH {
            self.flush();
        }
        true
    }

    fn after_update(&mut self, k: usize, sm_ok: bool) -> Result<()> {
        self.since_refresh += 1;
        let due = self.cfg.refresh_every > 0 && self.since_refresh >= self.cfg.refresh_every;
        if !sm_ok || due {
            self.recompute()
        } else {
            let n = self.counts[k];
            if n > 0 {
                let w = &self.weights[k * self.dim..(k + 1) * self.dim];
                self.quad[k] = dot(self.row(&self.sums, k), w) / n as f64;
            }
            Ok(())
        }
    }
}

impl Head for SldaHead {
    fn kind(&self) -> HeadKind {
        HeadKind::Slda
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn classes(&self) -> &ClassTable {
        &self.classes
    }

    fn count(&self, class: ClassId) -> u64 {
        self.counts.get(class.index()).copied().unwrap_or(0)
    }

    fn add_class(&mut self, name: &str) -> ClassId {
        let (id, new) = self.classes.get_or_insert(name);
        if new {
            self.counts.push(0);
            self.sums.extend(std::iter::repeat_n(0.0, self.dim));
            self.weights.extend(std::iter::repeat_n(0.0, self.dim));
            self.quad.push(0.0);
        }
        id
    }

    fn learn(&mut self, x: &[f32], class: ClassId) -> Result<()> {
        check_embedding(x, self.dim)?;
        let k = self.class_index(class)?;
        let d = self.dim;
        let x = to_f64(x);
        let n = self.counts[k];
        let mut sm_ok = true;
        if n == 0 {
            self.sums[k * d..(k + 1) * d].copy_from_slice(&x);
            self.counts[k] = 1;
            self.refresh_class(k);
        } else {
            let nf = n as f64;
            let delta: Vec<f64> = x.iter().zip(self.row(&self.sums, k)).map(|(xi, s)| xi - s / nf).collect();
            sm_ok = self.rank_one(k, nf / (nf + 1.0), &delta, 1.0 / (nf + 1.0));
            axpy(1.0, &x, &mut self.sums[k * d..(k + 1) * d]);
            self.counts[k] += 1;
        }
        self.after_update(k, sm_ok)
    }

    fn unlearn(&mut self, x: &[f32], class: ClassId) -> Result<()> {
        check_embedding(x, self.dim)?;
        let k = self.class_index(class)?;
        let d = self.dim;
        let x = to_f64(x);
        let n = self.counts[k];
        let mut sm_ok = true;
        match n {
            0 => {
                let name = self.classes.name(class).unwrap_or_default().to_owned();
                return Err(Error::NothingToUnlearn(name));
            }
            1 => {
                // The last sample leaves no scatter behind; reset exactly instead of subtracting.
                self.sums[k * d..(k + 1) * d].fill(0.0);
                self.counts[k] = 0;
                self.refresh_class(k);
            }
            _ => {
                let nf = n as f64;
                // Mean without x, then the Welford downdate that inverts learning x into that mean.
                let delta: Vec<f64> =
                    x.iter().zip(self.row(&self.sums, k)).map(|(xi, s)| xi - (s - xi) / (nf - 1.0)).collect();
                sm_ok = self.rank_one(k, -(nf - 1.0) / nf, &delta, -1.0 / nf);
                axpy(-1.0, &x, &mut self.sums[k * d..(k + 1) * d]);
                self.counts[k] -= 1;
            }
        }
        self.after_update(k, sm_ok)
    }

    fn raw_scores(&self, x: &[f32]) -> Result<RawScores> {
        check_embedding(x, self.dim)?;
        let d = self.dim;
        let x = to_f64(x);
        let m = self.dof();
        let total: u64 = self.counts.iter().sum();
        // Diagonal of the regularised covariance gives a cheap O(K D) standardised distance for open-set.
        let inv_var: Vec<f64> = (0..d)
            .map(|j| {
                let queued: f64 = self.pending_scatter.iter().map(|(c, v)| c * v[j] * v[j]).sum();
                m / (packed_diag(&self.scatter, d, j) + queued + self.cfg.ridge())
            })
            .collect();
        let mut logits = Vec::with_capacity(self.counts.len());
        let mut best_dist = f64::INFINITY;
        for (k, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                logits.push(f64::NEG_INFINITY);
                continue;
            }
            let w = &self.weights[k * d..(k + 1) * d];
            let mut logit = m * (dot(w, &x) - 0.5 * self.quad[k]);
            if self.cfg.use_class_priors {
                logit += (n as f64 / total as f64).ln();
            }
            logits.push(logit);
            let dist = sq_dist_to_mean(&x, self.row(&self.sums, k), 1.0 / n as f64, Some(&inv_var));
            best_dist = best_dist.min(dist / d as f64);
        }
        Ok(RawScores { logits, distance: best_dist.is_finite().then_some(best_dist) })
    }

    fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    fn set_calibration(&mut self, calibration: Calibration) {
        self.calibration = calibration;
    }

    fn merge(&mut self, other: &Self) -> Result<()> {
        if other.dim != self.dim {
            return Err(Error::Incompatible(format!("dimension {} vs {}", self.dim, other.dim)));
        }
        if other.cfg.ridge() != self.cfg.ridge() || other.cfg.prior_strength != self.cfg.prior_strength {
            return Err(Error::Incompatible("different SLDA priors".into()));
        }
        let d = self.dim;
        self.flush();
        for (j, name) in other.classes.iter() {
            let k = self.add_class(name).index();
            let nb = other.counts[j.index()];
            if nb == 0 {
                continue;
            }
            let sb = other.row(&other.sums, j.index());
            let na = self.counts[k];
            if na > 0 {
                // Chan et al.: pooling two groups adds the between-group term n_a n_b / n (mu_a - mu_b)^2.
                let (fa, fb) = (na as f64, nb as f64);
                let diff: Vec<f64> = self.row(&self.sums, k).iter().zip(sb).map(|(a, b)| a / fa - b / fb).collect();
                packed_rank_one(&mut self.scatter, d, fa * fb / (fa + fb), &diff);
            }
            axpy(1.0, sb, &mut self.sums[k * d..(k + 1) * d]);
            self.counts[k] += nb;
        }
        axpy(1.0, &other.scatter(), &mut self.scatter);
        self.recompute()
    }

    fn snapshot(&self) -> HeadSnapshot {
        HeadSnapshot::Slda(SldaSnapshot {
            config: self.cfg,
            dim: self.dim,
            classes: self.classes.clone(),
            counts: self.counts.clone(),
            sums: self.sums.clone(),
            scatter: self.scatter(),
            since_refresh: self.since_refresh,
            calibration: self.calibration,
        })
    }

    fn restore(snapshot: HeadSnapshot) -> Result<Self> {
        let HeadSnapshot::Slda(s) = snapshot else {
            return Err(Error::Snapshot("not an slda snapshot".into()));
        };
        let k = s.classes.len();
        if s.counts.len() != k || s.sums.len() != k * s.dim || s.scatter.len() != packed_len(s.dim) {
            return Err(Error::Snapshot("slda statistics have inconsistent sizes".into()));
        }
        let mut head = SldaHead::with_config(s.dim, s.config)?;
        head.classes = s.classes;
        head.counts = s.counts;
        head.sums = s.sums;
        head.scatter = s.scatter;
        head.weights = vec![0.0; k * s.dim];
        head.quad = vec![0.0; k];
        head.calibration = s.calibration;
        head.recompute()?;
        // Keep the periodic-refresh phase so later events refresh at the same step as in the original fold.
        head.since_refresh = s.since_refresh;
        Ok(head)
    }
}

#[cfg(test)]
mod tests;
