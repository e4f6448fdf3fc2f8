//! Fine-tuning EfficientNet-Lite on the user's labelled photos.
//!
//! - [`groups`]: the layer groups (stem, stages 0–6, head conv, classifier) and a policy per group
//!   (freeze / fine-tune / re-initialise), with a CLI string parser.
//! - [`extended_classifier`]: the classifier for a grown class list, old rows kept, new rows from class means.
//! - The frozen prefix's activations are computed once per run (the cache), so an epoch pays only for the tail.
//! - [`fine_tune`]: AdamW with separate backbone / classifier learning rates, class-balanced loss, early
//!   stopping on validation plateaus, best-epoch weights written back under the input's PyTorch tensor names.
//! - [`predict`] and [`bench`] for evaluation and for measuring the cache.
//!
//! Everything runs on burn's CPU (flex) backend, training through its autodiff device.

mod bench;
mod cache;
mod classifier;
mod config;
pub mod groups;
mod net;
mod session;
mod trainer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_train;

pub use bench::{bench, predict, BenchReport, PhotoRef};
pub use cache::{Photo, TrainImage};
pub use classifier::{extended_classifier, ClassifierRows};
pub use config::FineTuneConfig;
pub use groups::{Group, GroupPolicy, Policies};
pub use trainer::{fine_tune, EpochRecord, FineTuned, Progress, FINAL_FIT_PHASE};
