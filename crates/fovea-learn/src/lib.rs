//! The online learning core of fovea: heads that learn image classes from embeddings one sample at a
//! time, calibrated probabilities, open-set "unknown" verdicts, active-learning scores, and offline
//! baselines to judge them against. Pure f64 math; no I/O, no network code.

pub mod acquire;
pub mod active;
pub mod any;
pub mod calibrate;
pub mod classes;
pub mod error;
pub mod eval;
pub mod head;
pub mod heldout;
pub mod label_errors;
mod linalg;
pub mod ncm;
pub mod offline;
pub mod slda;
pub mod snapshot;
pub mod synthetic;

pub use acquire::{acquire, uncertainty_score, AcquireConfig, Candidate, Pick, Strategy};
pub use active::{entropy, least_confidence, margin, Uncertainty};
pub use any::AnyHead;
pub use calibrate::{
    calibrate_open_set, calibrate_temperature, fit_temperature, nll, softmax_scaled, Calibration, OpenSetFit,
    OpenSetRule, TemperatureFit,
};
pub use classes::{ClassId, ClassTable};
pub use error::{Error, Result};
pub use eval::{
    accuracy, balanced_accuracy, correction_check, per_class_accuracy, run_stream, stream_order, Checkpoint,
    ClassAccuracy, Classifier, CorrectionCase, CorrectionReport, Example, LatencyStats, StreamOrder, StreamReport,
};
pub use head::{Event, Head, HeadKind, Prediction, RawScores, Scored};
pub use heldout::{
    fit_held_out, held_out_reliability, leave_one_out, reliability, CalibrationFit, HeldOut, Reliability,
};
pub use label_errors::{find_label_errors, LabelErrorConfig, LabelErrors, Suspect};
pub use ncm::{Metric, NcmConfig, NcmHead};
pub use offline::{batch_ncm, FitReport, LogisticConfig, LogisticRegression};
pub use slda::{SldaConfig, SldaHead};
pub use snapshot::{HeadSnapshot, NcmSnapshot, SldaSnapshot};
