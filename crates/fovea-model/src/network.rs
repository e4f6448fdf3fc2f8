//! EfficientNet-Lite in burn: the trainable network, built from PyTorch-named weights.
//!
//! Lite differs from EfficientNet: no squeeze-excite, ReLU6 instead of swish, and a fixed 32-channel stem and
//! 1280-channel head. Padding is TensorFlow "SAME" (the extra pixel of a stride-2 layer goes bottom/right),
//! which is what burn's `PaddingConfig2d::Same` computes.

use burn::module::{Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;

use crate::weights::Weights;
use crate::{ModelError, Result};

/// Stride of the first block of each of the seven stages.
const STAGE_STRIDES: [usize; 7] = [1, 2, 2, 2, 1, 2, 1];
const BN_EPS: f64 = 1e-3;

/// The shape of one inverted-residual block, read off the weight names and shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSpec {
    pub input: usize,
    pub expanded: usize,
    pub output: usize,
    pub kernel: usize,
    pub stride: usize,
    pub stage: usize,
}

/// Reads the block structure from the weights. A block opens a new stage exactly when it changes the channel
/// count (true for every Lite variant), which is how lite0/1/2 are told apart without a config file.
pub fn block_specs(w: &Weights) -> Result<Vec<BlockSpec>> {
    let mut specs: Vec<BlockSpec> = Vec::new();
    let mut stage: Option<usize> = None;
    for i in 0.. {
        let pre = format!("_blocks.{i}.");
        let Some(dw) = w.shape(&format!("{pre}_depthwise_conv.weight")) else { break };
        let project = w
            .shape(&format!("{pre}_project_conv.weight"))
            .ok_or_else(|| ModelError::MissingTensor(format!("{pre}_project_conv.weight")))?;
        let expanded = dw[0];
        let input = match w.shape(&format!("{pre}_expand_conv.weight")) {
            Some(e) => e[1],
            None => expanded,
        };
        let output = project[0];
        let first_of_stage = input != output;
        if first_of_stage {
            stage = Some(stage.map_or(0, |s| s + 1));
        }
        let s = stage.ok_or_else(|| ModelError::Checkpoint("block 0 does not change channels".into()))?;
        let stride = if first_of_stage {
            *STAGE_STRIDES.get(s).ok_or_else(|| ModelError::Checkpoint("more than seven stages".into()))?
        } else {
            1
        };
        specs.push(BlockSpec { input, expanded, output, kernel: dw[2], stride, stage: s });
    }
    if specs.is_empty() {
        return Err(ModelError::MissingTensor("_blocks.0._depthwise_conv.weight".into()));
    }
    Ok(specs)
}

#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
    #[module(skip)]
    pub relu6: bool,
}

impl ConvBn {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.bn.forward(self.conv.forward(x));
        // clamp(0, 6) is a slow scalar loop on flex; two one-sided clamps vectorise.
        if self.relu6 {
            y.clamp_min(0.0).clamp_max(6.0)
        } else {
            y
        }
    }
}

#[derive(Module, Debug)]
pub struct MbConv {
    pub expand: Option<ConvBn>,
    pub depthwise: ConvBn,
    pub project: ConvBn,
    #[module(skip)]
    pub residual: bool,
}

impl MbConv {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(expand) = &self.expand {
            y = expand.forward(y);
        }
        y = self.project.forward(self.depthwise.forward(y));
        if self.residual {
            y + x
        } else {
            y
        }
    }
}

#[derive(Module, Debug)]
pub struct LiteNet {
    pub stem: ConvBn,
    pub blocks: Vec<MbConv>,
    pub head: ConvBn,
    pub fc: Linear,
}

impl LiteNet {
    /// Pooled 1280-d features, the embedding the online head learns from.
    pub fn embed(&self, x: Tensor<4>) -> Tensor<2> {
        let mut y = self.stem.forward(x);
        for block in &self.blocks {
            y = block.forward(y);
        }
        let y = self.head.forward(y);
        let [n, c, _, _] = y.dims();
        y.mean_dims(&[2, 3]).reshape([n, c])
    }

    pub fn logits(&self, embedding: Tensor<2>) -> Tensor<2> {
        self.fc.forward(embedding)
    }

    pub fn from_weights(w: &Weights, device: &Device) -> Result<Self> {
        let specs = block_specs(w)?;
        let stem_out =
            w.shape("_conv_stem.weight").ok_or_else(|| ModelError::MissingTensor("_conv_stem.weight".into()))?[0];
        let stem = conv_bn(w, "_conv_stem.weight", "_bn0", [3, stem_out], 3, 2, 1, true, device)?;
        let mut blocks = Vec::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            let pre = format!("_blocks.{i}.");
            let expand = if w.shape(&format!("{pre}_expand_conv.weight")).is_some() {
                let name = format!("{pre}_expand_conv.weight");
                Some(conv_bn(w, &name, &format!("{pre}_bn0"), [s.input, s.expanded], 1, 1, 1, true, device)?)
            } else {
                None
            };
            let dw = format!("{pre}_depthwise_conv.weight");
            let depthwise = conv_bn(
                w,
                &dw,
                &format!("{pre}_bn1"),
                [s.expanded, s.expanded],
                s.kernel,
                s.stride,
                s.expanded,
                true,
                device,
            )?;
            let pj = format!("{pre}_project_conv.weight");
            let project = conv_bn(w, &pj, &format!("{pre}_bn2"), [s.expanded, s.output], 1, 1, 1, false, device)?;
            blocks.push(MbConv { expand, depthwise, project, residual: s.stride == 1 && s.input == s.output });
        }
        let last = specs.last().map(|s| s.output).unwrap_or(stem_out);
        let head_out =
            w.shape("_conv_head.weight").ok_or_else(|| ModelError::MissingTensor("_conv_head.weight".into()))?[0];
        let head = conv_bn(w, "_conv_head.weight", "_bn1", [last, head_out], 1, 1, 1, true, device)?;
        let classes = w.shape("_fc.weight").ok_or_else(|| ModelError::MissingTensor("_fc.weight".into()))?[0];
        let fc = linear(w, "_fc", head_out, classes, device)?;
        Ok(LiteNet { stem, blocks, head, fc })
    }
}

fn tensor<const D: usize>(values: &[f32], shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

#[allow(clippy::too_many_arguments)]
fn conv_bn(
    w: &Weights,
    conv_name: &str,
    bn: &str,
    [cin, cout]: [usize; 2],
    kernel: usize,
    stride: usize,
    groups: usize,
    relu6: bool,
    device: &Device,
) -> Result<ConvBn> {
    let wshape = [cout, cin / groups, kernel, kernel];
    let mut conv = Conv2dConfig::new([cin, cout], [kernel, kernel])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Same)
        .with_bias(false)
        .init(device);
    conv.weight = Param::from_tensor(tensor(w.get(conv_name, &wshape)?, wshape, device));
    let mut norm = BatchNormConfig::new(cout).with_epsilon(BN_EPS).init(device);
    let vec =
        |suffix: &str| -> Result<Tensor<1>> { Ok(tensor(w.get(&format!("{bn}.{suffix}"), &[cout])?, [cout], device)) };
    norm.gamma = Param::from_tensor(vec("weight")?);
    norm.beta = Param::from_tensor(vec("bias")?);
    norm.running_mean = RunningState::new(vec("running_mean")?);
    norm.running_var = RunningState::new(vec("running_var")?);
    Ok(ConvBn { conv, bn: norm, relu6 })
}

fn linear(w: &Weights, name: &str, d_in: usize, d_out: usize, device: &Device) -> Result<Linear> {
    let mut fc = LinearConfig::new(d_in, d_out).init(device);
    // PyTorch keeps [out, in]; burn multiplies by [in, out].
    let weight = tensor(w.get(&format!("{name}.weight"), &[d_out, d_in])?, [d_out, d_in], device).transpose();
    fc.weight = Param::from_tensor(weight);
    fc.bias = Some(Param::from_tensor(tensor(w.get(&format!("{name}.bias"), &[d_out])?, [d_out], device)));
    Ok(fc)
}
