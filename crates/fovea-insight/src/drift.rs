//! Drift: does what comes in still look like what the model learned from? A reference (the served model's
//! training images as the model sees them out-of-sample, or a chosen period of requests) is compared with a
//! sliding window of recent requests on eight signals. A signal alerts when it stays over its threshold for
//! `persistence` checks in a row, and stays raised until it has been back under for as many.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

pub use crate::image_stats::ImageStats;
use crate::mmd::{unit, MmdReference};
use crate::stats::{ks_critical, ks_statistic, mean, proportion_z, psi, sorted};

/// One request as drift sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub image_id: String,
    pub at: i64,
    pub embedding: Vec<f32>,
    pub class: Option<String>,
    pub confidence: f64,
    pub unknown: bool,
    pub stats: Option<ImageStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    ClassMix,
    Confidence,
    Embedding,
    UnknownRate,
    Brightness,
    Size,
    Aspect,
    Grayscale,
}

impl Signal {
    pub const ALL: [Signal; 8] = [
        Signal::ClassMix,
        Signal::Confidence,
        Signal::Embedding,
        Signal::UnknownRate,
        Signal::Brightness,
        Signal::Size,
        Signal::Aspect,
        Signal::Grayscale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::ClassMix => "class_mix",
            Signal::Confidence => "confidence",
            Signal::Embedding => "embedding",
            Signal::UnknownRate => "unknown_rate",
            Signal::Brightness => "brightness",
            Signal::Size => "size",
            Signal::Aspect => "aspect",
            Signal::Grayscale => "grayscale",
        }
    }
}

/// Thresholds and window sizes. The defaults were chosen for few false alarms over thousands of requests
/// (see the measured rates in the project's notes) while a clear change of domain alerts within a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DriftConfig {
    /// Recent requests compared with the reference.
    pub window: usize,
    /// Checks start once the window holds this many (a fresh window is judged before it is full).
    pub min_window: usize,
    /// Requests between checks.
    pub step: usize,
    /// Below this many reference images nothing is judged.
    pub min_reference: usize,
    /// Reference images kept (a deterministic sample beyond it).
    pub max_reference: usize,
    /// Class-mix alert when the population stability index exceeds both this and its chance level.
    pub psi: f64,
    /// Significance of the KS tests (confidence, brightness, size, aspect) and of the class-mix chance level.
    pub alpha: f64,
    /// Embedding alert when MMD² exceeds the null mean by this many null standard deviations (and every
    /// permutation of the null).
    pub mmd_sigmas: f64,
    pub permutations: usize,
    /// Unknown-rate and grayscale-share alerts need this z and at least this absolute change.
    pub rate_z: f64,
    pub rate_min_change: f64,
    /// Checks in a row over the threshold before an alert is raised.
    pub persistence: u32,
    /// Signals never alerted on (still scored).
    pub disabled: Vec<Signal>,
    pub seed: u64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            window: 200,
            min_window: 50,
            step: 25,
            min_reference: 30,
            max_reference: 600,
            psi: 0.25,
            alpha: 1e-4,
            mmd_sigmas: 6.0,
            permutations: 200,
            rate_z: 4.0,
            rate_min_change: 0.1,
            persistence: 2,
            disabled: vec![],
            seed: 7,
        }
    }
}

impl DriftConfig {
    /// Window sizes a check can happen at, up to the full window (one per step from `min_window`).
    pub fn check_sizes(&self) -> Vec<usize> {
        let (lo, hi) = (self.min_window.clamp(1, self.window.max(1)), self.window.max(1));
        let step = self.step.max(1);
        let mut sizes: Vec<usize> = (lo..hi).step_by(step).collect();
        sizes.push(hi);
        sizes
    }
}

/// What the reference looks like, summarised once.
#[derive(Debug, Clone)]
pub struct Reference {
    pub size: usize,
    classes: BTreeMap<String, u64>,
    confidence: Vec<f64>,
    unknown: (u64, u64),
    brightness: Vec<f64>,
    pixels: Vec<f64>,
    aspect: Vec<f64>,
    grayscale: (u64, u64),
    mmd: Option<MmdReference>,
}

fn class_key(o: &Observation) -> String {
    o.class.clone().unwrap_or_else(|| "(none)".into())
}

fn stat_series(obs: &[&Observation], f: impl Fn(&ImageStats) -> f64) -> Vec<f64> {
    sorted(obs.iter().filter_map(|o| o.stats.as_ref().map(&f)).collect())
}

fn log_pixels(s: &ImageStats) -> f64 {
    ((s.width as f64) * (s.height as f64)).max(1.0).ln()
}

fn aspect(s: &ImageStats) -> f64 {
    s.width as f64 / s.height.max(1) as f64
}

impl Reference {
    /// Summarises `obs` (at most `cfg.max_reference` of them, evenly spaced, are kept).
    pub fn build(obs: &[Observation], cfg: &DriftConfig) -> Reference {
        let keep = cfg.max_reference.max(1);
        let picked: Vec<&Observation> = if obs.len() <= keep {
            obs.iter().collect()
        } else {
            (0..keep).map(|i| &obs[i * obs.len() / keep]).collect()
        };
        let mut classes = BTreeMap::new();
        for o in &picked {
            *classes.entry(class_key(o)).or_insert(0u64) += 1;
        }
        let with_stats = picked.iter().filter(|o| o.stats.is_some()).count() as u64;
        let pool: Vec<Vec<f32>> = picked.iter().map(|o| unit(&o.embedding)).collect();
        let mmd = (picked.len() >= cfg.min_reference)
            .then(|| MmdReference::build(pool, &cfg.check_sizes(), cfg.permutations, cfg.seed))
            .flatten();
        Reference {
            size: picked.len(),
            classes,
            confidence: sorted(picked.iter().map(|o| o.confidence).collect()),
            unknown: (picked.iter().filter(|o| o.unknown).count() as u64, picked.len() as u64),
            brightness: stat_series(&picked, |s| s.brightness),
            pixels: stat_series(&picked, log_pixels),
            aspect: stat_series(&picked, aspect),
            grayscale: (picked.iter().filter(|o| o.stats.is_some_and(|s| s.grayscale)).count() as u64, with_stats),
            mmd,
        }
    }

    pub fn unknown_rate(&self) -> f64 {
        self.unknown.0 as f64 / self.unknown.1.max(1) as f64
    }
}

/// One signal's value now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalScore {
    pub signal: Signal,
    /// The test statistic (PSI, KS distance, MMD², or z).
    pub statistic: f64,
    pub threshold: f64,
    pub exceeded: bool,
    /// A plain summary on both sides (mean confidence, unknown share, mean brightness, …).
    pub reference: f64,
    pub current: f64,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub reference_size: usize,
    pub window: usize,
    pub signals: Vec<SignalScore>,
}

/// An alert raised by the monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub signal: Signal,
    pub score: SignalScore,
    /// Index (among observations pushed) and time of the first check of the streak that raised it.
    pub since_index: u64,
    pub since: i64,
    /// Index of the observation whose check raised it.
    pub fired_index: u64,
    /// Images of the window that show the change most.
    pub examples: Vec<String>,
}

/// Chi-square quantile by the Wilson–Hilferty approximation, for `k` degrees of freedom at upper tail `alpha`.
fn chi2_quantile(k: f64, alpha: f64) -> f64 {
    let z = normal_upper_quantile(alpha);
    let h = 2.0 / (9.0 * k);
    k * (1.0 - h + z * h.sqrt()).powi(3)
}

/// z with upper-tail probability `alpha` (Acklam-free: a few bisection steps on erfc suffice here).
fn normal_upper_quantile(alpha: f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 10.0f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if upper_tail(mid) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// P(Z > z) from the complementary error function (Numerical Recipes' Chebyshev fit, 1e-7 relative).
fn upper_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let y = t
        * (-x * x - 1.26551223
            + t * (1.00002368
                + t * (0.37409196
                    + t * (0.09678418
                        + t * (-0.18628806
                            + t * (0.27886807
                                + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
            .exp();
    let erfc = if x >= 0.0 { y } else { 2.0 - y };
    0.5 * erfc
}

struct Entry {
    obs: Observation,
    unit: Vec<f32>,
    row: Vec<f32>,
}

/// The sliding window and the alert state.
pub struct Monitor {
    reference: Reference,
    cfg: DriftConfig,
    window: VecDeque<Entry>,
    seen: u64,
    streaks: BTreeMap<Signal, (u32, u64, i64)>,
    /// Checks in a row under the threshold, per raised signal.
    calm: BTreeMap<Signal, u32>,
    raised: BTreeMap<Signal, Alert>,
    last: Option<Scores>,
    /// The last push ran a check.
    checked: bool,
}

impl Monitor {
    pub fn new(reference: Reference, cfg: DriftConfig) -> Self {
        Monitor {
            reference,
            cfg,
            window: VecDeque::new(),
            seen: 0,
            streaks: BTreeMap::new(),
            calm: BTreeMap::new(),
            raised: BTreeMap::new(),
            last: None,
            checked: false,
        }
    }

    pub fn config(&self) -> &DriftConfig {
        &self.cfg
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Observations pushed so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Alerts raised and not yet cleared.
    pub fn raised(&self) -> Vec<Alert> {
        self.raised.values().cloned().collect()
    }

    /// Whether the last push ran a check.
    pub fn just_checked(&self) -> bool {
        self.checked
    }

    /// The scores of the last check, if one ran.
    pub fn last_scores(&self) -> Option<&Scores> {
        self.last.as_ref()
    }

    /// Adds one request; every `step` requests (once the window is full) the signals are checked. Returns the
    /// alerts raised by this request and the signals whose alert cleared.
    pub fn push(&mut self, obs: Observation) -> (Vec<Alert>, Vec<Signal>) {
        let u = unit(&obs.embedding);
        let row = self.reference.mmd.as_ref().map(|m| m.row(&u)).unwrap_or_default();
        if self.window.len() == self.cfg.window.max(1) {
            self.window.pop_front();
        }
        self.window.push_back(Entry { obs, unit: u, row });
        self.seen += 1;
        // Checks run when the window first holds `min_window` requests and every `step` after that.
        let first = self.cfg.min_window.clamp(1, self.cfg.window.max(1)) as u64;
        let due = self.seen >= first && (self.seen - first).is_multiple_of(self.cfg.step.max(1) as u64);
        self.checked = due && self.reference.size >= self.cfg.min_reference;
        if !self.checked {
            return (vec![], vec![]);
        }
        let scores = self.score();
        let mut raised = Vec::new();
        let mut cleared = Vec::new();
        let now_index = self.seen - 1;
        let now_at = self.window.back().map_or(0, |e| e.obs.at);
        for s in &scores.signals {
            if self.cfg.disabled.contains(&s.signal) {
                continue;
            }
            if s.exceeded {
                self.calm.remove(&s.signal);
                let streak = self.streaks.entry(s.signal).or_insert((0, now_index, now_at));
                streak.0 += 1;
                if streak.0 >= self.cfg.persistence.max(1) && !self.raised.contains_key(&s.signal) {
                    let alert = Alert {
                        signal: s.signal,
                        score: s.clone(),
                        since_index: streak.1,
                        since: streak.2,
                        fired_index: now_index,
                        examples: self.examples(s.signal, 6),
                    };
                    self.raised.insert(s.signal, alert.clone());
                    raised.push(alert);
                }
            } else {
                self.streaks.remove(&s.signal);
                // A raised alert clears only after as many calm checks in a row as it took to raise it, so a
                // signal hovering at its threshold does not flap.
                if self.raised.contains_key(&s.signal) {
                    let calm = self.calm.entry(s.signal).or_insert(0);
                    *calm += 1;
                    if *calm >= self.cfg.persistence.max(1) {
                        self.calm.remove(&s.signal);
                        self.raised.remove(&s.signal);
                        cleared.push(s.signal);
                    }
                }
            }
        }
        self.last = Some(scores);
        (raised, cleared)
    }

    /// Scores the current window now (whatever its size).
    pub fn score(&self) -> Scores {
        let r = &self.reference;
        let obs: Vec<&Observation> = self.window.iter().map(|e| &e.obs).collect();
        let n = obs.len();
        let mut signals = Vec::new();

        // Class mix.
        let mut keys: BTreeMap<String, (u64, u64)> = r.classes.iter().map(|(k, &v)| (k.clone(), (v, 0))).collect();
        for o in &obs {
            keys.entry(class_key(o)).or_default().1 += 1;
        }
        let (expected, actual): (Vec<u64>, Vec<u64>) = keys.values().copied().unzip();
        let value = psi(&expected, &actual);
        let k = keys.len().max(2) as f64;
        let chance = chi2_quantile(k - 1.0, self.cfg.alpha) * (1.0 / n.max(1) as f64 + 1.0 / r.size.max(1) as f64);
        let threshold = self.cfg.psi.max(chance);
        let share = |c: u64, t: usize| c as f64 / t.max(1) as f64;
        let (moved, (re, cu)) = keys
            .iter()
            .max_by(|a, b| {
                let d = |v: &(u64, u64)| (share(v.1, n) - share(v.0, r.size)).abs();
                d(a.1).total_cmp(&d(b.1))
            })
            .map(|(k, v)| (k.clone(), (share(v.0, r.size), share(v.1, n))))
            .unwrap_or_default();
        signals.push(SignalScore {
            signal: Signal::ClassMix,
            statistic: value,
            threshold,
            exceeded: value > threshold,
            reference: re,
            current: cu,
            detail: format!("largest move: '{moved}' {:.0}% → {:.0}% of predictions", re * 100.0, cu * 100.0),
        });

        // Confidence and image statistics: two-sample KS.
        let mut ks = |signal: Signal, reference: &[f64], current: Vec<f64>, what: &str| {
            let current = sorted(current);
            let d = ks_statistic(reference, &current);
            let threshold = ks_critical(self.cfg.alpha, reference.len(), current.len());
            let (a, b) = (mean(reference), mean(&current));
            signals.push(SignalScore {
                signal,
                statistic: d,
                threshold,
                exceeded: d > threshold,
                reference: a,
                current: b,
                detail: format!("mean {what} {a:.3} → {b:.3} (KS distance {d:.3})"),
            });
        };
        ks(Signal::Confidence, &r.confidence, obs.iter().map(|o| o.confidence).collect(), "confidence");
        let stats: Vec<&ImageStats> = obs.iter().filter_map(|o| o.stats.as_ref()).collect();
        ks(Signal::Brightness, &r.brightness, stats.iter().map(|s| s.brightness).collect(), "brightness");
        ks(Signal::Size, &r.pixels, stats.iter().map(|s| log_pixels(s)).collect(), "log pixel count");
        ks(Signal::Aspect, &r.aspect, stats.iter().map(|s| aspect(s)).collect(), "aspect ratio");

        // Embedding shift.
        if let Some((m, null)) = r.mmd.as_ref().and_then(|m| Some((m, m.null_for(n)?))) {
            let pairs: Vec<(&[f32], &[f32])> =
                self.window.iter().map(|e| (e.unit.as_slice(), e.row.as_slice())).collect();
            let (mmd2, _) = m.score(&pairs);
            let threshold = (null.mean + self.cfg.mmd_sigmas * null.sd).max(null.max);
            signals.push(SignalScore {
                signal: Signal::Embedding,
                statistic: mmd2,
                threshold,
                exceeded: mmd2 > threshold,
                reference: null.mean,
                current: mmd2,
                detail: format!("MMD² {mmd2:.4} against {:.4} ± {:.4} by chance", null.mean, null.sd),
            });
        }

        // Shares: unknown verdicts and grayscale images.
        let mut rate = |signal: Signal, (rh, rn): (u64, u64), hits: u64, total: u64, what: &str| {
            if rn == 0 || total == 0 {
                return;
            }
            let p0 = rh as f64 / rn as f64;
            let p = hits as f64 / total as f64;
            let z = proportion_z(hits, total, p0);
            signals.push(SignalScore {
                signal,
                statistic: z,
                threshold: self.cfg.rate_z,
                exceeded: z.abs() > self.cfg.rate_z && (p - p0).abs() > self.cfg.rate_min_change,
                reference: p0,
                current: p,
                detail: format!("{what} {:.0}% → {:.0}%", p0 * 100.0, p * 100.0),
            });
        };
        rate(Signal::UnknownRate, r.unknown, obs.iter().filter(|o| o.unknown).count() as u64, n as u64, "unknown");
        let gray = stats.iter().filter(|s| s.grayscale).count() as u64;
        rate(Signal::Grayscale, r.grayscale, gray, stats.len() as u64, "grayscale");

        Scores { reference_size: r.size, window: n, signals }
    }

    /// The window's images that show `signal`'s change most.
    fn examples(&self, signal: Signal, k: usize) -> Vec<String> {
        let r = &self.reference;
        let entries: Vec<&Entry> = self.window.iter().collect();
        let share = |k: usize| k as f64 / entries.len().max(1) as f64;
        let mut keyed: Vec<(f64, &Entry)> = match signal {
            Signal::Embedding => match &r.mmd {
                Some(m) => {
                    let pairs: Vec<(&[f32], &[f32])> =
                        entries.iter().map(|e| (e.unit.as_slice(), e.row.as_slice())).collect();
                    let (_, witness) = m.score(&pairs);
                    witness.into_iter().zip(entries.iter().copied()).collect()
                }
                None => vec![],
            },
            Signal::Confidence => {
                let up = entries.iter().map(|e| e.obs.confidence).sum::<f64>() / entries.len().max(1) as f64
                    > mean(&r.confidence);
                entries.iter().map(|e| (if up { e.obs.confidence } else { -e.obs.confidence }, *e)).collect()
            }
            Signal::UnknownRate => {
                let up = share(entries.iter().filter(|e| e.obs.unknown).count()) > r.unknown_rate();
                entries.iter().filter(|e| e.obs.unknown == up).map(|e| (e.obs.at as f64, *e)).collect()
            }
            Signal::ClassMix => {
                let mut counts: BTreeMap<String, u64> = BTreeMap::new();
                for e in &entries {
                    *counts.entry(class_key(&e.obs)).or_default() += 1;
                }
                let gain = |c: &str| {
                    counts.get(c).copied().unwrap_or(0) as f64 / entries.len().max(1) as f64
                        - r.classes.get(c).copied().unwrap_or(0) as f64 / r.size.max(1) as f64
                };
                entries.iter().map(|e| (gain(&class_key(&e.obs)), *e)).collect()
            }
            Signal::Grayscale => {
                entries.iter().filter(|e| e.obs.stats.is_some_and(|s| s.grayscale)).map(|e| (0.0, *e)).collect()
            }
            Signal::Brightness | Signal::Size | Signal::Aspect => {
                let f = |s: &ImageStats| match signal {
                    Signal::Brightness => s.brightness,
                    Signal::Size => log_pixels(s),
                    _ => aspect(s),
                };
                let reference = match signal {
                    Signal::Brightness => &r.brightness,
                    Signal::Size => &r.pixels,
                    _ => &r.aspect,
                };
                let centre = mean(reference);
                entries.iter().filter_map(|e| e.obs.stats.as_ref().map(|s| ((f(s) - centre).abs(), *e))).collect()
            }
        };
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
        if keyed.is_empty() {
            keyed = entries.iter().rev().map(|e| (0.0, *e)).collect();
        }
        let mut out: Vec<String> = Vec::new();
        for (_, e) in keyed {
            if !out.contains(&e.obs.image_id) {
                out.push(e.obs.image_id.clone());
            }
            if out.len() == k {
                break;
            }
        }
        out
    }
}
