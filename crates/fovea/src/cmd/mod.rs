pub mod bench;
pub mod collections;
pub mod eval;
pub mod eval_acquire;
pub mod eval_drift;
pub mod eval_finetune;
pub mod eval_label_errors;
pub mod export;
pub mod fetch;
pub mod hygiene;
pub mod identify;
pub mod predict;
pub(crate) mod progress;
pub mod report;
pub mod serve;
pub mod train;
pub mod worker;

use std::path::Path;

use anyhow::Context;
use fovea_model::{Backbone, Variant, Weights};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// Pure-Rust NHWC kernels with BatchNorm folded (fovea-kernels)
    Fast,
    /// The burn network on the flex CPU backend
    Burn,
    /// ONNX Runtime on the exported graph (library from the pinned `onnxruntime` wheel)
    Ort,
}

impl From<Engine> for fovea_model::Engine {
    fn from(e: Engine) -> Self {
        match e {
            Engine::Fast => fovea_model::Engine::Fast,
            Engine::Burn => fovea_model::Engine::Burn,
            Engine::Ort => fovea_model::Engine::Ort,
        }
    }
}

/// Loads the served backbone, fetching and converting its weights on first use.
pub fn load_backbone(home: &Path, variant: Variant, engine: Engine) -> anyhow::Result<Box<dyn Backbone>> {
    let path = fovea_model::ensure_weights(home, variant).context("preparing backbone weights")?;
    let weights = Weights::load_safetensors(&path)?;
    Ok(fovea_model::Engine::from(engine).build(&weights, variant, 0)?)
}

pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// Indices of the `k` largest values, largest first.
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    #[test]
    fn softmax_sums_to_one_and_top_k_orders() {
        let p = super::softmax(&[1.0, 3.0, 2.0, 1000.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(super::top_k(&[1.0, 3.0, 2.0], 2), vec![1, 2]);
    }
}
