//! Usage and accuracy from the transaction log. Accuracy rests on predictions a person later judged: the
//! newest human label of an image that had no label when it was predicted (so the model had not learned it),
//! compared with what was served. Every figure carries its sample size and a 95 % interval.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::evaluation::EvaluationEstimate;
use crate::stats::Proportion;
use crate::time::{date_string, day_of, week_start};

/// One served prediction and the human verdict on it, if one came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionRow {
    pub id: i64,
    pub image_id: String,
    /// Milliseconds since the epoch.
    pub at: i64,
    pub user: String,
    pub model_version: String,
    /// Top-1 class served (`None` when the model knew no class).
    pub class: Option<String>,
    pub confidence: Option<f64>,
    /// The open-set verdict served with it.
    pub unknown: bool,
    /// The newest human label given after the prediction, when the image was unlabelled at prediction time and
    /// the label names a real class (not Unknown).
    pub truth: Option<String>,
}

/// A correction logged by a person (a `correct` transaction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrectionRow {
    pub at: i64,
    pub user: String,
}

/// A label a person gave (origin human or accepted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelRow {
    pub at: i64,
    pub user: String,
}

/// What a report is computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Log {
    pub predictions: Vec<PredictionRow>,
    pub corrections: Vec<CorrectionRow>,
    pub labels: Vec<LabelRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Count {
    pub key: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserUsage {
    pub user: String,
    pub requests: u64,
    pub corrections: u64,
    pub labels: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub requests: u64,
    pub corrections: u64,
    pub labels: u64,
    /// Corrections per prediction served, with its interval.
    pub correction_rate: Proportion,
    pub by_day: Vec<Count>,
    pub by_week: Vec<Count>,
    pub by_user: Vec<UserUsage>,
    pub by_model_version: Vec<Count>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyed {
    pub key: String,
    pub accuracy: Proportion,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    /// Mean served confidence in the bin (null when empty).
    pub confidence: Option<f64>,
    /// How often the bin's answers were right, with its interval.
    pub accuracy: Proportion,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: String,
    /// Judged predictions whose true class is this one.
    pub support: u64,
    /// Judged predictions that served this class.
    pub predicted: u64,
    pub precision: Proportion,
    pub recall: Proportion,
    pub f1: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    /// Row and column order; rows are true classes, columns served classes.
    pub classes: Vec<String>,
    pub counts: Vec<Vec<u64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Top-1 accuracy of every judged prediction.
    pub overall: Proportion,
    pub by_model_version: Vec<Keyed>,
    pub by_day: Vec<Keyed>,
    pub by_week: Vec<Keyed>,
    pub reliability: Vec<ReliabilityBin>,
    /// Expected calibration error: the count-weighted mean |confidence − accuracy| over the bins.
    pub ece: Option<f64>,
    pub by_class: Vec<ClassMetrics>,
    pub confusion: Confusion,
    /// Judged predictions the model had answered "unknown" (still scored on their top-1 class).
    pub judged_unknown: u64,
}

/// The whole report; its JSON form is the stable document `fovea report --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub generated_at: i64,
    /// First day covered (`YYYY-MM-DD`), when the report was limited.
    pub since: Option<String>,
    pub usage: Usage,
    pub accuracy: Accuracy,
    /// Manual evaluation rounds and their estimates of the served model's accuracy.
    pub evaluations: Vec<EvaluationEstimate>,
}

/// The registry model a logged version belongs to: the served online head names itself
/// `<registry version>/online-<labels learned>`, a new name with every label, so reports group by the part
/// a person promotes and rolls back.
pub fn registry_version(version: &str) -> &str {
    version.split_once("/online-").map_or(version, |(model, _)| model)
}

/// Reliability diagram bins.
pub const BINS: usize = 10;

fn counts(keys: impl Iterator<Item = String>) -> Vec<Count> {
    let mut map: BTreeMap<String, u64> = BTreeMap::new();
    for k in keys {
        *map.entry(k).or_default() += 1;
    }
    map.into_iter().map(|(key, count)| Count { key, count }).collect()
}

fn keyed<'a>(rows: impl Iterator<Item = (String, &'a PredictionRow)>) -> Vec<Keyed> {
    let mut map: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (k, r) in rows {
        let e = map.entry(k).or_default();
        e.0 += u64::from(r.class == r.truth);
        e.1 += 1;
    }
    map.into_iter().map(|(key, (hits, n))| Keyed { key, accuracy: Proportion::new(hits, n) }).collect()
}

pub fn usage(log: &Log) -> Usage {
    let p = &log.predictions;
    let mut users: BTreeMap<String, UserUsage> = BTreeMap::new();
    fn user<'a>(users: &'a mut BTreeMap<String, UserUsage>, name: &str) -> &'a mut UserUsage {
        users.entry(name.to_owned()).or_insert_with(|| UserUsage {
            user: name.to_owned(),
            requests: 0,
            corrections: 0,
            labels: 0,
        })
    }
    for r in p {
        user(&mut users, &r.user).requests += 1;
    }
    for c in &log.corrections {
        user(&mut users, &c.user).corrections += 1;
    }
    for l in &log.labels {
        user(&mut users, &l.user).labels += 1;
    }
    let (requests, corrections) = (p.len() as u64, log.corrections.len() as u64);
    Usage {
        requests,
        corrections,
        labels: log.labels.len() as u64,
        correction_rate: Proportion::new(corrections.min(requests), requests),
        by_day: counts(p.iter().map(|r| date_string(day_of(r.at)))),
        by_week: counts(p.iter().map(|r| date_string(week_start(day_of(r.at))))),
        by_user: users.into_values().collect(),
        by_model_version: counts(p.iter().map(|r| registry_version(&r.model_version).to_owned())),
    }
}

pub fn accuracy(log: &Log) -> Accuracy {
    let judged: Vec<&PredictionRow> = log.predictions.iter().filter(|r| r.truth.is_some()).collect();
    let right = |r: &PredictionRow| r.class == r.truth;
    let hits = judged.iter().filter(|r| right(r)).count() as u64;

    let mut bins: Vec<(f64, u64, u64)> = vec![(0.0, 0, 0); BINS];
    for r in &judged {
        let c = r.confidence.unwrap_or(0.0).clamp(0.0, 1.0);
        let b = ((c * BINS as f64) as usize).min(BINS - 1);
        bins[b].0 += c;
        bins[b].1 += u64::from(right(r));
        bins[b].2 += 1;
    }
    let n = judged.len() as f64;
    let ece = (!judged.is_empty()).then(|| {
        bins.iter()
            .filter(|b| b.2 > 0)
            .map(|&(s, h, k)| (k as f64 / n) * (s / k as f64 - h as f64 / k as f64).abs())
            .sum()
    });
    let reliability = bins
        .iter()
        .enumerate()
        .map(|(i, &(s, h, k))| ReliabilityBin {
            lower: i as f64 / BINS as f64,
            upper: (i + 1) as f64 / BINS as f64,
            confidence: (k > 0).then(|| s / k as f64),
            accuracy: Proportion::new(h, k),
        })
        .collect();

    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    for r in &judged {
        for c in [&r.truth, &r.class].into_iter().flatten() {
            classes.entry(c.clone()).or_default();
        }
    }
    for (i, v) in classes.values_mut().enumerate() {
        *v = i;
    }
    let k = classes.len();
    let mut counts = vec![vec![0u64; k]; k];
    let mut unpredicted = vec![0u64; k];
    for r in &judged {
        let t = classes[r.truth.as_ref().expect("judged")];
        match &r.class {
            Some(c) => counts[t][classes[c]] += 1,
            None => unpredicted[t] += 1,
        }
    }
    let by_class = classes
        .iter()
        .map(|(name, &i)| {
            let tp = counts[i][i];
            let support = counts[i].iter().sum::<u64>() + unpredicted[i];
            let predicted = counts.iter().map(|row| row[i]).sum::<u64>();
            let (precision, recall) = (Proportion::new(tp, predicted), Proportion::new(tp, support));
            let f1 = match (precision.value, recall.value) {
                (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
                (Some(_), Some(_)) => Some(0.0),
                _ => None,
            };
            ClassMetrics { class: name.clone(), support, predicted, precision, recall, f1 }
        })
        .collect();

    Accuracy {
        overall: Proportion::new(hits, judged.len() as u64),
        by_model_version: keyed(judged.iter().map(|r| (registry_version(&r.model_version).to_owned(), *r))),
        by_day: keyed(judged.iter().map(|r| (date_string(day_of(r.at)), *r))),
        by_week: keyed(judged.iter().map(|r| (date_string(week_start(day_of(r.at))), *r))),
        reliability,
        ece,
        by_class,
        confusion: Confusion { classes: classes.into_keys().collect(), counts },
        judged_unknown: judged.iter().filter(|r| r.unknown).count() as u64,
    }
}

/// The report over `log`; `since` is the first day it covers, as given.
pub fn report(log: &Log, since: Option<String>, evaluations: Vec<EvaluationEstimate>, now: i64) -> Report {
    Report { generated_at: now, since, usage: usage(log), accuracy: accuracy(log), evaluations }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_date;

    fn row(
        id: i64,
        day: &str,
        user: &str,
        version: &str,
        class: &str,
        conf: f64,
        truth: Option<&str>,
    ) -> PredictionRow {
        PredictionRow {
            id,
            image_id: format!("img{id}"),
            at: parse_date(day).unwrap() + 3_600_000,
            user: user.into(),
            model_version: version.into(),
            class: Some(class.into()),
            confidence: Some(conf),
            unknown: false,
            truth: truth.map(Into::into),
        }
    }

    /// Six predictions over two days and two model versions; four judged, worked out by hand in the asserts.
    fn hand_log() -> Log {
        Log {
            predictions: vec![
                row(1, "2026-11-02", "ann", "v1", "cat", 0.95, Some("cat")),
                row(2, "2026-11-02", "ann", "v1", "cat", 0.91, Some("dog")),
                row(3, "2026-11-02", "bob", "v1", "dog", 0.55, None),
                row(4, "2026-11-03", "bob", "v2", "dog", 0.65, Some("dog")),
                row(5, "2026-11-09", "ann", "v2", "dog", 0.15, Some("cat")),
                row(6, "2026-11-09", "ann", "v2", "cat", 0.99, None),
            ],
            corrections: vec![
                CorrectionRow { at: parse_date("2026-11-02").unwrap(), user: "ann".into() },
                CorrectionRow { at: parse_date("2026-11-09").unwrap(), user: "ann".into() },
            ],
            labels: vec![
                LabelRow { at: 0, user: "ann".into() },
                LabelRow { at: 0, user: "ann".into() },
                LabelRow { at: 0, user: "bob".into() },
            ],
        }
    }

    #[test]
    fn usage_counts_match_the_hand_computed_log() {
        let u = usage(&hand_log());
        assert_eq!((u.requests, u.corrections, u.labels), (6, 2, 3));
        assert_eq!(u.correction_rate.value, Some(2.0 / 6.0));
        let days: Vec<(&str, u64)> = u.by_day.iter().map(|c| (c.key.as_str(), c.count)).collect();
        assert_eq!(days, [("2026-11-02", 3), ("2026-11-03", 1), ("2026-11-09", 2)]);
        // 2026-11-02 is a Monday: the first two days share a week.
        let weeks: Vec<(&str, u64)> = u.by_week.iter().map(|c| (c.key.as_str(), c.count)).collect();
        assert_eq!(weeks, [("2026-11-02", 4), ("2026-11-09", 2)]);
        let ann = u.by_user.iter().find(|x| x.user == "ann").unwrap();
        assert_eq!((ann.requests, ann.corrections, ann.labels), (4, 2, 2));
        assert_eq!(u.by_model_version.iter().map(|c| c.count).collect::<Vec<_>>(), [3, 3]);
        assert_eq!(registry_version("efficientnet-lite0/online-130"), "efficientnet-lite0");
        assert_eq!(registry_version("ft-003"), "ft-003");
    }

    #[test]
    fn accuracy_by_version_class_confidence_and_confusion_match_the_hand_computed_log() {
        let a = accuracy(&hand_log());
        assert_eq!((a.overall.hits, a.overall.n), (2, 4));
        let v: Vec<(u64, u64)> = a.by_model_version.iter().map(|k| (k.accuracy.hits, k.accuracy.n)).collect();
        assert_eq!(v, [(1, 2), (1, 2)]);
        // Bins: 0.15 wrong in [0.1,0.2); 0.65 right in [0.6,0.7); 0.91 wrong and 0.95 right in [0.9,1.0].
        assert_eq!(a.reliability[9].accuracy.n, 2);
        assert_eq!(a.reliability[9].accuracy.hits, 1);
        let ece = 0.25 * 0.15 + 0.25 * 0.35 + 0.5 * (0.93 - 0.5);
        assert!((a.ece.unwrap() - ece).abs() < 1e-9, "{:?} vs {ece}", a.ece);
        assert_eq!(a.confusion.classes, ["cat", "dog"]);
        assert_eq!(a.confusion.counts, [[1, 1], [1, 1]]);
        let cat = &a.by_class[0];
        assert_eq!((cat.support, cat.predicted), (2, 2));
        assert_eq!(cat.precision.value, Some(0.5));
        assert_eq!(cat.recall.value, Some(0.5));
        assert_eq!(cat.f1, Some(0.5));
        assert!(cat.recall.low.unwrap() < 0.5 && cat.recall.high.unwrap() > 0.5);
    }

    #[test]
    fn an_empty_log_reports_zero_samples_and_no_estimates() {
        let r = report(&Log::default(), None, vec![], 0);
        assert_eq!(r.accuracy.overall.n, 0);
        assert_eq!(r.accuracy.overall.value, None);
        assert_eq!(r.accuracy.ece, None);
        assert!(r.accuracy.by_class.is_empty());
    }
}
