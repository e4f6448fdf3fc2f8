use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::calibrate::Calibration;
use crate::classes::{ClassId, ClassTable};
use crate::error::{Error, Result};
use crate::snapshot::HeadSnapshot;

/// Which head implementation to build; parsed from `slda | ncm | ncm-cosine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    #[default]
    Slda,
    Ncm,
    NcmCosine,
}

impl HeadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HeadKind::Slda => "slda",
            HeadKind::Ncm => "ncm",
            HeadKind::NcmCosine => "ncm-cosine",
        }
    }
}

impl FromStr for HeadKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "slda" | "lda" => Ok(HeadKind::Slda),
            "ncm" | "ncm-euclidean" => Ok(HeadKind::Ncm),
            "ncm-cosine" | "cosine" => Ok(HeadKind::NcmCosine),
            _ => Err(Error::UnknownKind(s.to_owned())),
        }
    }
}

impl std::fmt::Display for HeadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Uncalibrated output of a head, one logit per class id.
#[derive(Debug, Clone, PartialEq)]
pub struct RawScores {
    /// `f64::NEG_INFINITY` for classes that exist but hold no sample (they can never be predicted).
    pub logits: Vec<f64>,
    /// Open-set distance to the nearest trained class (scale depends on the head; larger = stranger).
    /// `None` when no class is trained.
    pub distance: Option<f64>,
}

/// One class in a ranked prediction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub class: ClassId,
    /// Raw logit from the head.
    pub score: f64,
    /// Calibrated probability.
    pub probability: f64,
}

/// Calibrated prediction. Untrained classes never appear in `ranked` and have probability 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Trained classes, most probable first (ties broken by lower class id, so the order is deterministic).
    pub ranked: Vec<Scored>,
    /// Probability per class id, for every class the head knows.
    pub probabilities: Vec<f64>,
    /// Distance to the nearest trained class (see [`RawScores::distance`]).
    pub distance: Option<f64>,
    /// Open-set verdict: the input looks unlike every class (always true for a head with no trained class).
    pub unknown: bool,
}

impl Prediction {
    pub fn best(&self) -> Option<&Scored> {
        self.ranked.first()
    }

    /// The predicted class, or `None` when the verdict is unknown.
    pub fn class(&self) -> Option<ClassId> {
        if self.unknown {
            None
        } else {
            self.best().map(|s| s.class)
        }
    }

    /// The arg-max class ignoring the open-set verdict (closed-set accuracy uses this).
    pub fn top_class(&self) -> Option<ClassId> {
        self.best().map(|s| s.class)
    }

    pub fn top_k(&self, k: usize) -> &[Scored] {
        &self.ranked[..k.min(self.ranked.len())]
    }

    pub fn max_probability(&self) -> f64 {
        self.best().map_or(0.0, |s| s.probability)
    }
}

/// One step of the fold that defines a head. Classes are named so logs stay meaningful across heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Event {
    AddClass { class: String },
    Learn { class: String, embedding: Vec<f32> },
    Unlearn { class: String, embedding: Vec<f32> },
}

/// An online classifier over fixed-size embeddings.
///
/// A head is a deterministic fold over [`Event`]s: the same events in the same order give the same head.
pub trait Head: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> HeadKind;
    fn dim(&self) -> usize;
    fn classes(&self) -> &ClassTable;
    /// Number of samples currently learned for a class (0 for unknown ids).
    fn count(&self, class: ClassId) -> u64;
    /// Create a class (idempotent: an existing name returns its id).
    fn add_class(&mut self, name: &str) -> ClassId;
    fn learn(&mut self, x: &[f32], class: ClassId) -> Result<()>;
    /// Remove one earlier `learn(x, class)` exactly (same `x`), e.g. when a human relabels an image.
    fn unlearn(&mut self, x: &[f32], class: ClassId) -> Result<()>;
    fn raw_scores(&self, x: &[f32]) -> Result<RawScores>;
    fn calibration(&self) -> &Calibration;
    fn set_calibration(&mut self, calibration: Calibration);
    /// Add another head's statistics (classes are matched by name; missing ones are created).
    fn merge(&mut self, other: &Self) -> Result<()>
    where
        Self: Sized;
    fn snapshot(&self) -> HeadSnapshot;
    fn restore(snapshot: HeadSnapshot) -> Result<Self>
    where
        Self: Sized;

    fn predict(&self, x: &[f32]) -> Result<Prediction> {
        Ok(self.calibration().apply(self.raw_scores(x)?))
    }

    fn class_id(&self, name: &str) -> Option<ClassId> {
        self.classes().id(name)
    }

    fn class_name(&self, id: ClassId) -> Option<&str> {
        self.classes().name(id)
    }

    /// Total number of samples learned.
    fn total(&self) -> u64 {
        self.classes().iter().map(|(id, _)| self.count(id)).sum()
    }

    /// Learn under a class name, creating the class on first use.
    fn learn_named(&mut self, x: &[f32], class: &str) -> Result<ClassId> {
        let id = self.add_class(class);
        self.learn(x, id)?;
        Ok(id)
    }

    fn unlearn_named(&mut self, x: &[f32], class: &str) -> Result<ClassId> {
        let id = self.class_id(class).ok_or_else(|| Error::UnknownClass(class.to_owned()))?;
        self.unlearn(x, id)?;
        Ok(id)
    }

    /// Re-label: unlearn under the old class, learn under the new one.
    fn relabel(&mut self, x: &[f32], from: &str, to: &str) -> Result<ClassId> {
        self.unlearn_named(x, from)?;
        self.learn_named(x, to)
    }

    fn apply(&mut self, event: &Event) -> Result<()> {
        match event {
            Event::AddClass { class } => {
                self.add_class(class);
            }
            Event::Learn { class, embedding } => {
                self.learn_named(embedding, class)?;
            }
            Event::Unlearn { class, embedding } => {
                self.unlearn_named(embedding, class)?;
            }
        }
        Ok(())
    }

    fn replay<'a, I>(&mut self, events: I) -> Result<()>
    where
        I: IntoIterator<Item = &'a Event>,
        Self: Sized,
    {
        for e in events {
            self.apply(e)?;
        }
        Ok(())
    }
}
