//! The `Backbone` seam: images in (normalised CHW floats), embeddings and ImageNet logits out.

use burn::prelude::*;

use crate::network::LiteNet;
use crate::weights::Weights;
use crate::{ModelError, Result, Variant};

/// Embeddings and class logits for a batch, row-major.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub batch: usize,
    pub embeddings: Vec<f32>,
    pub logits: Vec<f32>,
}

impl Embedded {
    pub fn embedding(&self, i: usize) -> &[f32] {
        let d = self.embeddings.len() / self.batch.max(1);
        &self.embeddings[i * d..(i + 1) * d]
    }
    pub fn logit_row(&self, i: usize) -> &[f32] {
        let c = self.logits.len() / self.batch.max(1);
        &self.logits[i * c..(i + 1) * c]
    }
}

/// A frozen feature extractor. Synchronous on purpose: callers run it on a dedicated compute thread.
pub trait Backbone: Send + Sync {
    fn variant(&self) -> Variant;
    fn input_size(&self) -> usize {
        self.variant().input_size()
    }
    fn embedding_dim(&self) -> usize;
    /// Which engine runs it (`fast`, `burn`, `ort`, or a test double's name), reported by `/healthz`.
    fn engine(&self) -> &'static str;
    /// `input` is `batch` images of 3×size×size floats, normalised as (pixel − 127) / 128.
    fn run(&self, input: &[f32], batch: usize) -> Result<Embedded>;
    /// Only the embeddings of [`Backbone::run`] (`batch` rows of [`Backbone::embedding_dim`]): all that serving needs,
    /// since its heads classify embeddings. An engine that can skip the ImageNet classifier does: at batch 1 reading
    /// its 5 MB of weights costs as much as one of the network's blocks.
    fn embed(&self, input: &[f32], batch: usize) -> Result<Vec<f32>> {
        Ok(self.run(input, batch)?.embeddings)
    }
}

pub(crate) fn check_input(input: &[f32], batch: usize, size: usize) -> Result<()> {
    let expected = batch * 3 * size * size;
    if input.len() != expected || batch == 0 {
        return Err(ModelError::InputShape { found: input.len(), expected, batch, size });
    }
    Ok(())
}

/// The burn network on the flex CPU backend (or any burn device).
pub struct BurnBackbone {
    net: LiteNet,
    device: Device,
    variant: Variant,
    dim: usize,
}

impl BurnBackbone {
    pub fn new(weights: &Weights, variant: Variant, device: Device) -> Result<Self> {
        let net = LiteNet::from_weights(weights, &device)?;
        let dim = weights.shape("_conv_head.weight").map(|s| s[0]).unwrap_or(1280);
        Ok(BurnBackbone { net, device, variant, dim })
    }

    pub fn net(&self) -> &LiteNet {
        &self.net
    }
}

impl Backbone for BurnBackbone {
    fn variant(&self) -> Variant {
        self.variant
    }
    fn engine(&self) -> &'static str {
        "burn"
    }
    fn embedding_dim(&self) -> usize {
        self.dim
    }
    fn run(&self, input: &[f32], batch: usize) -> Result<Embedded> {
        let size = self.input_size();
        check_input(input, batch, size)?;
        let x = Tensor::<4>::from_data(TensorData::new(input.to_vec(), [batch, 3, size, size]), &self.device);
        let emb = self.net.embed(x);
        let logits = self.net.logits(emb.clone());
        let to_vec =
            |t: Tensor<2>| t.into_data().try_to_vec::<f32>().map_err(|e| ModelError::Checkpoint(format!("{e:?}")));
        Ok(Embedded { batch, embeddings: to_vec(emb)?, logits: to_vec(logits)? })
    }
}

/// The pure-Rust NHWC inference path (`fovea-kernels`): same weights, BN folded, several times faster on CPU.
/// It serves predictions; the burn network stays the one that trains.
pub struct FastBackbone {
    net: fovea_kernels::FastLite,
    variant: Variant,
}

impl FastBackbone {
    /// `threads` 0 means one per available core.
    pub fn new(weights: &Weights, variant: Variant, threads: usize) -> Result<Self> {
        let tensors = weights
            .tensors
            .iter()
            .map(|(name, (shape, data))| {
                (name.clone(), fovea_kernels::Tensor { shape: shape.clone(), data: data.clone() })
            })
            .collect();
        let config = fovea_kernels::Config { threads, ..Default::default() };
        let net = fovea_kernels::FastLite::from_tensors_with(&tensors, &config)
            .map_err(|e| ModelError::Checkpoint(format!("fast path: {e}")))?;
        Ok(FastBackbone { net, variant })
    }

    /// The kernel path fovea-kernels dispatched to on this CPU (or was forced to with `FOVEA_KERNELS`).
    pub fn kernels(&self) -> fovea_kernels::Isa {
        self.net.isa()
    }
}

impl Backbone for FastBackbone {
    fn variant(&self) -> Variant {
        self.variant
    }
    fn engine(&self) -> &'static str {
        "fast"
    }
    fn embedding_dim(&self) -> usize {
        self.net.embedding_dim()
    }
    fn run(&self, input: &[f32], batch: usize) -> Result<Embedded> {
        let embeddings = self.embed(input, batch)?;
        let logits = self.net.classify(&embeddings, batch);
        Ok(Embedded { batch, embeddings, logits })
    }
    fn embed(&self, input: &[f32], batch: usize) -> Result<Vec<f32>> {
        let size = self.input_size();
        check_input(input, batch, size)?;
        self.net.embed(input, batch, size).map_err(|e| ModelError::Checkpoint(format!("fast path: {e}")))
    }
}

/// The one factory for backbones: every network the app serves or evaluates is built here, so the engine chosen
/// at start-up (`--engine`) holds for the base model and for every fine-tuned model promoted later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// Pure-Rust NHWC kernels with BatchNorm folded (fovea-kernels).
    #[default]
    Fast,
    /// The burn network on the flex CPU backend.
    Burn,
    /// ONNX Runtime on the exported graph (only with the `ort` feature).
    Ort,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Fast => "fast",
            Engine::Burn => "burn",
            Engine::Ort => "ort",
        }
    }

    /// Builds a backbone over `weights`; `threads` 0 means one per core (ignored by burn).
    pub fn build(self, weights: &Weights, variant: Variant, threads: usize) -> Result<Box<dyn Backbone>> {
        Ok(match self {
            Engine::Fast => Box::new(FastBackbone::new(weights, variant, threads)?),
            Engine::Burn => Box::new(BurnBackbone::new(weights, variant, Device::flex())?),
            #[cfg(feature = "ort")]
            Engine::Ort => Box::new(crate::ort_backbone::OrtBackbone::from_weights(weights, variant, threads)?),
            #[cfg(not(feature = "ort"))]
            Engine::Ort => return Err(ModelError::Checkpoint("this build of fovea has no `ort` feature".into())),
        })
    }
}
