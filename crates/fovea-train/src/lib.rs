//! Batch fine-tuning: the dataset builder (stable splits, frozen benchmark, cutoffs, balance), the fine-tune loop
//! (layer-group policies, discriminative learning rates, plateau stop), evaluation and the promotion gate.

pub mod balance;
pub mod dataset;
pub mod duplicates;
pub mod error;
pub mod finetune;
pub mod gate;
pub mod metrics;
pub mod perceptual;

pub use error::{Result, TrainError};
