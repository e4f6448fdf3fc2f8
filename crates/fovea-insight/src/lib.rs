//! Insight over fovea's log: how much the system is used, how accurate it is (over time, by model version, by
//! confidence, by class, from human labels and from manual evaluations), and whether what comes in has drifted
//! from what the model learned. Pure functions over plain rows: the app reads the rows from the catalog, this
//! crate computes, and [`html`] draws a report that opens offline.

pub mod csv;
pub mod drift;
pub mod evaluation;
pub mod html;
mod image_stats;
mod mmd;
pub mod report;
pub mod stats;
pub mod time;

#[cfg(test)]
mod drift_tests;

pub use drift::{Alert, DriftConfig, ImageStats, Monitor, Observation, Reference, Scores, Signal, SignalScore};
pub use evaluation::{Answer, Candidate, EvaluationEstimate, PlannedItem, Stratum};
pub use report::{report, Log, PredictionRow, Report};
pub use stats::Proportion;
