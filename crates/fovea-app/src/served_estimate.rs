//! What a model will serve, estimated before it is served. Promotion rebuilds the online head on the new
//! backbone's embeddings of every labelled image and calibrates it on leave-one-out predictions; a new image is
//! then scored by that head. So the estimate does the same on the run's labelled images: the head learns all of
//! them, the calibration is fitted as the app fits it, and each image the candidate never trained on (validation,
//! test and benchmark; not validation after a final fit) is predicted with only itself left out.
//!
//! A head fitted on the train split alone (the run's older comparison) misses what serving adds, and the test
//! split alone is small and, because near duplicates share a split, not a fair sample of the classes: on 600
//! upscaled 8×8 digits its 48 images put the serving model at 73 % while 400 held-out images measured 92 %. The
//! estimate therefore uses every untrained image and weights each class by its share of the labelled images
//! (a stratified estimate, with its interval).

use std::collections::BTreeMap;

use fovea_insight::{Answer, Stratum};
use fovea_learn::{held_out_reliability, leave_one_out, Head};
use serde::{Deserialize, Serialize};

use crate::calibration::{spread_over_classes, MAX_EVIDENCE};
use crate::head::new_head;
use crate::Result;

/// One labelled image of a run, embedded by the backbone being estimated.
pub(crate) struct Labelled<'a> {
    pub embedding: Vec<f32>,
    pub class: &'a str,
    /// Whether the estimate scores it: the candidate never trained on it.
    pub scored: bool,
}

/// A model as it would serve, estimated on the run's untrained labelled images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServedEstimate {
    /// Images scored.
    pub images: usize,
    /// Of those, answered right.
    pub right: usize,
    /// Accuracy with each class weighted by its share of the labelled images.
    pub accuracy: f64,
    /// 95 % interval of that accuracy.
    pub low: f64,
    pub high: f64,
    /// Expected calibration error of the calibrated probabilities (images unweighted).
    pub ece: f64,
    /// Of the wrong answers, the share served above probability 0.99.
    pub wrong_above_99: f64,
    /// The temperature the app would fit.
    pub temperature: f64,
}

impl std::fmt::Display for ServedEstimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} % [{:.1}, {:.1}] on {} images, ECE {:.3}, wrong above 0.99: {:.0} %",
            self.accuracy * 100.0,
            self.low * 100.0,
            self.high * 100.0,
            self.images,
            self.ece,
            self.wrong_above_99 * 100.0
        )
    }
}

/// The serving model and the candidate, each as it would serve, on the same images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AsServed {
    pub serving: ServedEstimate,
    pub candidate: ServedEstimate,
}

/// Estimates how a backbone's online head will serve; see the module comment.
pub(crate) fn estimate(head_kind: &str, labelled: &[Labelled<'_>]) -> Result<ServedEstimate> {
    let dim = labelled.first().map_or(1, |l| l.embedding.len());
    let mut head = new_head(head_kind, dim)?;
    let mut population: BTreeMap<&str, u64> = BTreeMap::new();
    for l in labelled {
        head.learn_named(&l.embedding, l.class)?;
        *population.entry(l.class).or_default() += 1;
    }
    // The app's evidence: leave-one-out over up to MAX_EVIDENCE labelled images spread over the classes.
    let rows = labelled.iter().enumerate().map(|(i, l)| (format!("{i:09}"), l.class.to_owned())).collect();
    let evidence: Vec<(&[f32], &str)> = spread_over_classes(rows, MAX_EVIDENCE)
        .iter()
        .filter_map(|(id, _)| id.parse::<usize>().ok())
        .map(|i| (labelled[i].embedding.as_slice(), labelled[i].class))
        .collect();
    let temperature = crate::calibration::fit(&leave_one_out(&head, &evidence)?).calibration.temperature;

    let scored: Vec<(&[f32], &str)> =
        labelled.iter().filter(|l| l.scored).map(|l| (l.embedding.as_slice(), l.class)).collect();
    let held = leave_one_out(&head, &scored)?;
    let answers: Vec<Answer> = held
        .iter()
        .map(|h| {
            let best = (0..h.logits.len()).max_by(|&a, &b| h.logits[a].total_cmp(&h.logits[b]).then(b.cmp(&a)));
            let class = head.class_name(fovea_learn::ClassId(h.truth as u32)).unwrap_or_default();
            Answer { stratum: class.to_owned(), correct: best == Some(h.truth) }
        })
        .collect();
    let strata: Vec<Stratum> =
        population.iter().map(|(class, &n)| Stratum { key: (*class).to_owned(), population: n, sampled: n }).collect();
    let (accuracy, interval, _) = fovea_insight::evaluation::estimate(&strata, &answers);
    let r = held_out_reliability(&held, temperature);
    let (low, high) = interval.unwrap_or((0.0, 1.0));
    Ok(ServedEstimate {
        images: answers.len(),
        right: answers.iter().filter(|a| a.correct).count(),
        accuracy: accuracy.unwrap_or(0.0),
        low,
        high,
        ece: r.ece,
        wrong_above_99: r.wrong_above_99,
        temperature,
    })
}
