//! Nearest-class-mean: the cheapest head, O(D) per update, and a robust fallback with little data.

use serde::{Deserialize, Serialize};

use crate::calibrate::Calibration;
use crate::classes::{ClassId, ClassTable};
use crate::error::{check_embedding, Error, Result};
use crate::head::{Head, HeadKind, RawScores};
use crate::linalg::{axpy, dot, sq_dist_to_mean, to_f64};
use crate::snapshot::{HeadSnapshot, NcmSnapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    #[default]
    Euclidean,
    /// Embeddings are L2-normalised before they are averaged; scores are cosine similarity to the mean.
    Cosine,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NcmConfig {
    pub metric: Metric,
    /// Euclidean: the pooled isotropic variance is `(SS + nu0 sigma0^2 D) / ((N - K + nu0) D)`.
    pub prior_variance: f64,
    pub prior_strength: f64,
    /// Cosine: logits are `scale * cos`, so a softmax over them is not uselessly flat before calibration.
    pub cosine_scale: f64,
}

impl Default for NcmConfig {
    fn default() -> Self {
        Self { metric: Metric::Euclidean, prior_variance: 1.0, prior_strength: 1.0, cosine_scale: 10.0 }
    }
}

impl NcmConfig {
    pub fn cosine() -> Self {
        Self { metric: Metric::Cosine, ..Self::default() }
    }
}

#[derive(Debug, Clone)]
pub struct NcmHead {
    cfg: NcmConfig,
    dim: usize,
    classes: ClassTable,
    counts: Vec<u64>,
    sums: Vec<f64>,
    /// Pooled within-class sum of squared deviations (Welford), which scales the Euclidean logits.
    within_ss: f64,
    calibration: Calibration,
}

impl NcmHead {
    pub fn new(dim: usize, metric: Metric) -> Self {
        Self::with_config(dim, NcmConfig { metric, ..NcmConfig::default() }).expect("default config is valid")
    }

    pub fn with_config(dim: usize, cfg: NcmConfig) -> Result<Self> {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        if dim == 0 || !ok(cfg.prior_variance) || !ok(cfg.prior_strength) || !ok(cfg.cosine_scale) {
            return Err(Error::Config("ncm needs dim > 0 and positive finite prior/scale".into()));
        }
        Ok(Self {
            cfg,
            dim,
            classes: ClassTable::new(),
            counts: Vec::new(),
            sums: Vec::new(),
            within_ss: 0.0,
            calibration: Calibration::default(),
        })
    }

    pub fn config(&self) -> &NcmConfig {
        &self.cfg
    }

    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    pub fn sums(&self) -> &[f64] {
        &self.sums
    }

    pub fn within_ss(&self) -> f64 {
        self.within_ss
    }

    fn row(&self, k: usize) -> &[f64] {
        &self.sums[k * self.dim..(k + 1) * self.dim]
    }

    fn prepare(&self, x: &[f32]) -> Result<Vec<f64>> {
        check_embedding(x, self.dim)?;
        let mut v = to_f64(x);
        if self.cfg.metric == Metric::Cosine {
            let norm = dot(&v, &v).sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|e| *e /= norm);
            }
        }
        Ok(v)
    }

    fn class_index(&self, class: ClassId) -> Result<usize> {
        let k = class.index();
        if k < self.counts.len() {
            Ok(k)
        } else {
            Err(Error::UnknownClassId(class.0))
        }
    }

    fn pooled_variance(&self) -> f64 {
        let n: u64 = self.counts.iter().sum();
        let k = self.counts.iter().filter(|&&c| c > 0).count() as u64;
        let d = self.dim as f64;
        let prior = self.cfg.prior_strength * self.cfg.prior_variance * d;
        ((self.within_ss.max(0.0) + prior) / (((n - k) as f64 + self.cfg.prior_strength) * d)).max(f64::MIN_POSITIVE)
    }
}

impl Head for NcmHead {
    fn kind(&self) -> HeadKind {
        match self.cfg.metric {
            Metric::Euclidean => HeadKind::Ncm,
            Metric::Cosine => HeadKind::NcmCosine,
        }
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
        }
        id
    }

    fn learn(&mut self, x: &[f32], class: ClassId) -> Result<()> {
        let x = self.prepare(x)?;
        let k = self.class_index(class)?;
        let n = self.counts[k] as f64;
        if n > 0.0 {
            let dev: f64 = x.iter().zip(self.row(k)).map(|(xi, s)| (xi - s / n).powi(2)).sum();
            self.within_ss += n / (n + 1.0) * dev;
        }
        let d = self.dim;
        axpy(1.0, &x, &mut self.sums[k * d..(k + 1) * d]);
        self.counts[k] += 1;
        Ok(())
    }

    fn unlearn(&mut self, x: &[f32], class: ClassId) -> Result<()> {
        let x = self.prepare(x)?;
        let k = self.class_index(class)?;
        let d = self.dim;
        match self.counts[k] {
            0 => {
                let name = self.classes.name(class).unwrap_or_default().to_owned();
                return Err(Error::NothingToUnlearn(name));
            }
            1 => self.sums[k * d..(k + 1) * d].fill(0.0),
            n => {
                let n = n as f64;
                let dev: f64 = x.iter().zip(self.row(k)).map(|(xi, s)| (xi - (s - xi) / (n - 1.0)).powi(2)).sum();
                self.within_ss -= (n - 1.0) / n * dev;
                axpy(-1.0, &x, &mut self.sums[k * d..(k + 1) * d]);
            }
        }
        self.counts[k] -= 1;
        if self.counts.iter().all(|&c| c <= 1) {
            // No class holds two samples, so the pooled scatter is exactly zero; drop accumulated rounding.
            self.within_ss = 0.0;
        }
        Ok(())
    }

    fn raw_scores(&self, x: &[f32]) -> Result<RawScores> {
        let x = self.prepare(x)?;
        let var = self.pooled_variance();
        let d = self.dim as f64;
        let mut logits = Vec::with_capacity(self.counts.len());
        let mut best = f64::INFINITY;
        for (k, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                logits.push(f64::NEG_INFINITY);
                continue;
            }
            let inv_n = 1.0 / n as f64;
            match self.cfg.metric {
                Metric::Euclidean => {
                    let dist2 = sq_dist_to_mean(&x, self.row(k), inv_n, None);
                    logits.push(-0.5 * dist2 / var);
                    best = best.min(dist2 / (var * d));
                }
                Metric::Cosine => {
                    let mean = self.row(k);
                    let norm = dot(mean, mean).sqrt();
                    let cos = if norm > 0.0 { dot(&x, mean) / norm } else { 0.0 };
                    logits.push(self.cfg.cosine_scale * cos);
                    best = best.min(1.0 - cos);
                }
            }
        }
        Ok(RawScores { logits, distance: best.is_finite().then_some(best) })
    }

    fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    fn set_calibration(&mut self, calibration: Calibration) {
        self.calibration = calibration;
    }

    fn merge(&mut self, other: &Self) -> Result<()> {
        if other.dim != self.dim || other.cfg != self.cfg {
            return Err(Error::Incompatible("ncm heads differ in dim or config".into()));
        }
        let d = self.dim;
        let mut ss = self.within_ss + other.within_ss;
        for (j, name) in other.classes.iter() {
            let k = self.add_class(name).index();
            let nb = other.counts[j.index()];
            if nb == 0 {
                continue;
            }
            let sb = other.row(j.index());
            let na = self.counts[k];
            if na > 0 {
                let (fa, fb) = (na as f64, nb as f64);
                let between: f64 = self.row(k).iter().zip(sb).map(|(a, b)| (a / fa - b / fb).powi(2)).sum();
                ss += fa * fb / (fa + fb) * between;
            }
            axpy(1.0, sb, &mut self.sums[k * d..(k + 1) * d]);
            self.counts[k] += nb;
        }
        self.within_ss = ss;
        Ok(())
    }

    fn snapshot(&self) -> HeadSnapshot {
        HeadSnapshot::Ncm(NcmSnapshot {
            config: self.cfg,
            dim: self.dim,
            classes: self.classes.clone(),
            counts: self.counts.clone(),
            sums: self.sums.clone(),
            within_ss: self.within_ss,
            calibration: self.calibration,
        })
    }

    fn restore(snapshot: HeadSnapshot) -> Result<Self> {
        let HeadSnapshot::Ncm(s) = snapshot else {
            return Err(Error::Snapshot("not an ncm snapshot".into()));
        };
        if s.counts.len() != s.classes.len() || s.sums.len() != s.classes.len() * s.dim {
            return Err(Error::Snapshot("ncm statistics have inconsistent sizes".into()));
        }
        let mut head = NcmHead::with_config(s.dim, s.config)?;
        head.classes = s.classes;
        head.counts = s.counts;
        head.sums = s.sums;
        head.within_ss = s.within_ss;
        head.calibration = s.calibration;
        Ok(head)
    }
}
