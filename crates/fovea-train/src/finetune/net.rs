//! The network cut into a frozen prefix and a trainable tail, with the training-time forward and the way back to
//! PyTorch-named tensors.
//!
//! BatchNorm during fine-tuning: batches of 16 photos of a handful of classes give batch statistics far noisier
//! than the ImageNet running statistics, and burn's `BatchNorm::forward` switches to batch statistics (and
//! rewrites the running ones) whenever its input is on an autodiff device and its training flag is set. Rather
//! than relying on every flag being right, the forward here never calls `BatchNorm::forward`: each conv+BN pair is
//! folded on the fly into one biased conv, `W' = W·γ/√(σ²+ε)`, `b' = β − μ·γ/√(σ²+ε)`, with the running `μ, σ²`
//! as constants. γ and β stay parameters, so they train (in fine-tuned groups) through the fold; the running
//! statistics never change; and the folded conv is one op instead of conv plus four elementwise passes over the
//! activation, which matters more in the backward pass than in the forward. Frozen and trained layers use this
//! same forward, so cached and live activations agree to the bit.

use burn::module::Module;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use fovea_model::network::{BlockSpec, ConvBn, LiteNet, MbConv};

use super::groups::{Group, GroupPolicy, Policies};
use crate::{Result, TrainError};

/// Tensors under their PyTorch names: (name, shape, row-major values).
pub(crate) type Named = Vec<(String, Vec<usize>, Vec<f32>)>;

/// TensorFlow "SAME" padding along one axis: the extra pixel of an odd total goes to the end (bottom/right),
/// exactly what burn's `PaddingConfig2d::Same` (used by [`LiteNet`]) computes.
fn same_padding(kernel: usize, stride: usize, size: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out.max(1) - 1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// Conv + BatchNorm (running statistics) + optional ReLU6 as one folded conv; see the module docs.
///
/// Pointwise (1×1, stride 1, ungrouped) convs — most of EfficientNet's FLOPs — run as a batched matmul
/// `[1, out, in] × [n, in, h·w]` instead of `conv2d`: on burn's CPU backend their backward pass is then 2–3×
/// faster (measured on Lite0's 192→1152 expand conv at 7×7: 65 ms against 165 ms for forward+backward of 16
/// images), because conv2d's backward goes through a general im2col path even for 1×1 kernels.
pub(crate) fn conv_bn(cb: &ConvBn, x: Tensor<4>) -> Tensor<4> {
    let [n, cin, h, w] = x.dims();
    let conv = &cb.conv;
    let bn = &cb.bn;
    let inv_std = bn.running_var.value().add_scalar(bn.epsilon).sqrt().recip();
    let scale = bn.gamma.val() * inv_std;
    let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
    let [cout] = scale.dims();
    let weight = conv.weight.val() * scale.reshape([cout, 1, 1, 1]);
    let pointwise = conv.kernel_size == [1, 1] && conv.stride == [1, 1] && conv.groups == 1 && conv.dilation == [1, 1];
    let y = if pointwise {
        let y = weight.reshape([1, cout, cin]).matmul(x.reshape([n, cin, h * w])) + shift.reshape([1, cout, 1]);
        y.reshape([n, cout, h, w])
    } else {
        let pad_h = same_padding(conv.kernel_size[0], conv.stride[0], h);
        let pad_w = same_padding(conv.kernel_size[1], conv.stride[1], w);
        let options = ConvOptions::new_with_padding(conv.stride, [pad_h, pad_w], conv.dilation, conv.groups);
        conv2d(x, weight, Some(shift), options)
    };
    if cb.relu6 {
        y.clamp_min(0.0).clamp_max(6.0)
    } else {
        y
    }
}

pub(crate) fn mb_conv(block: &MbConv, x: Tensor<4>) -> Tensor<4> {
    let mut y = x.clone();
    if let Some(expand) = &block.expand {
        y = conv_bn(expand, y);
    }
    y = conv_bn(&block.project, conv_bn(&block.depthwise, y));
    if block.residual {
        y + x
    } else {
        y
    }
}

/// A contiguous run of the convolutional layers: any of stem, blocks, head conv may be absent.
#[derive(Module, Debug)]
pub(crate) struct Trunk {
    pub stem: Option<ConvBn>,
    pub blocks: Vec<MbConv>,
    pub head: Option<ConvBn>,
}

impl Trunk {
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        if let Some(stem) = &self.stem {
            x = conv_bn(stem, x);
        }
        for block in &self.blocks {
            x = mb_conv(block, x);
        }
        if let Some(head) = &self.head {
            x = conv_bn(head, x);
        }
        x
    }

    /// The prefix's output. When the prefix ends with the head conv, the global average pool is applied here
    /// too (`[n, 1280, 1, 1]`): pooling commutes with caching and shrinks each cached view 49-fold.
    pub fn prefix_forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.forward(x);
        if self.head.is_some() {
            y.mean_dims(&[2, 3])
        } else {
            y
        }
    }
}

/// The trainable tail: the remaining conv layers, global average pool, classifier.
#[derive(Module, Debug)]
pub(crate) struct Tail {
    pub trunk: Trunk,
    pub fc: Linear,
}

impl Tail {
    /// Pooled embedding `[n, dim]`.
    pub fn embed(&self, x: Tensor<4>) -> Tensor<2> {
        let y = self.trunk.forward(x);
        let [n, c, _, _] = y.dims();
        y.mean_dims(&[2, 3]).reshape([n, c])
    }

    pub fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc.forward(self.embed(x))
    }
}

/// Where the network is cut, derived from the block structure and the policies.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub specs: Vec<BlockSpec>,
    pub policies: Policies,
    /// First group of the tail.
    pub first: Group,
    /// Index of the first block in the tail (== number of blocks in the prefix).
    pub first_block: usize,
}

impl Layout {
    pub fn new(specs: Vec<BlockSpec>, policies: &Policies) -> Result<Self> {
        let first = policies.first_trainable()?;
        let first_block = specs.iter().take_while(|s| Group::Stage(s.stage) < first).count();
        Ok(Layout { specs, policies: policies.clone(), first, first_block })
    }

    pub fn block_group(&self, block: usize) -> Option<Group> {
        self.specs.get(block).map(|s| Group::Stage(s.stage))
    }

    pub fn group_of(&self, name: &str) -> Option<Group> {
        Group::of_tensor(name, |b| self.specs.get(b).map(|s| s.stage))
    }

    /// True when nothing is frozen ahead of the tail, so the "prefix" is the identity on the input image.
    pub fn prefix_is_empty(&self) -> bool {
        self.first == Group::Stem
    }

    fn frozen(&self, group: Group) -> bool {
        self.policies.get(group) == GroupPolicy::Freeze
    }

    /// Splits a network into the prefix (groups before `first`) and the tail. Tail layers of frozen groups lose
    /// their gradients, so the optimiser never touches them while the gradient still flows through them.
    pub fn split(&self, net: LiteNet) -> (Trunk, Tail) {
        let LiteNet { stem, mut blocks, head, fc } = net;
        let tail_blocks = blocks.split_off(self.first_block.min(blocks.len()));
        let in_prefix = |g: Group| g < self.first;
        let freeze_if = |frozen: bool, cb: ConvBn| if frozen { cb.no_grad() } else { cb };
        let (p_stem, t_stem) = if in_prefix(Group::Stem) {
            (Some(stem), None)
        } else {
            (None, Some(freeze_if(self.frozen(Group::Stem), stem)))
        };
        let (p_head, t_head) = if in_prefix(Group::HeadConv) {
            (Some(head), None)
        } else {
            (None, Some(freeze_if(self.frozen(Group::HeadConv), head)))
        };
        let tail_blocks = tail_blocks
            .into_iter()
            .enumerate()
            .map(|(j, b)| {
                let frozen = self.block_group(self.first_block + j).is_none_or(|g| self.frozen(g));
                if frozen {
                    b.no_grad()
                } else {
                    b
                }
            })
            .collect();
        let fc = if self.frozen(Group::Classifier) { fc.no_grad() } else { fc };
        let prefix = Trunk { stem: p_stem, blocks, head: p_head };
        let tail = Tail { trunk: Trunk { stem: t_stem, blocks: tail_blocks, head: t_head }, fc };
        (prefix, tail)
    }

    /// The tail's trained tensors under their PyTorch names and shapes (frozen tail groups are skipped: their
    /// values are the input's, untouched).
    pub fn export(&self, tail: &Tail) -> Result<Named> {
        let mut out = Vec::new();
        let trains = |g: Group| !self.frozen(g);
        if let (Some(stem), true) = (&tail.trunk.stem, trains(Group::Stem)) {
            export_conv_bn(stem, "_conv_stem.weight", "_bn0", &mut out)?;
        }
        for (j, block) in tail.trunk.blocks.iter().enumerate() {
            let i = self.first_block + j;
            if !self.block_group(i).is_some_and(trains) {
                continue;
            }
            let pre = format!("_blocks.{i}.");
            if let Some(expand) = &block.expand {
                export_conv_bn(expand, &format!("{pre}_expand_conv.weight"), &format!("{pre}_bn0"), &mut out)?;
            }
            export_conv_bn(&block.depthwise, &format!("{pre}_depthwise_conv.weight"), &format!("{pre}_bn1"), &mut out)?;
            export_conv_bn(&block.project, &format!("{pre}_project_conv.weight"), &format!("{pre}_bn2"), &mut out)?;
        }
        if let (Some(head), true) = (&tail.trunk.head, trains(Group::HeadConv)) {
            export_conv_bn(head, "_conv_head.weight", "_bn1", &mut out)?;
        }
        // The classifier is always written: even frozen, it is the rebuilt one for the new class list.
        let (w, shape) = values(tail.fc.weight.val())?;
        let (d_in, d_out) = (shape[0], shape[1]);
        // burn keeps [in, out]; PyTorch [out, in].
        let mut w_out = vec![0f32; w.len()];
        for i in 0..d_in {
            for o in 0..d_out {
                w_out[o * d_in + i] = w[i * d_out + o];
            }
        }
        out.push(("_fc.weight".into(), vec![d_out, d_in], w_out));
        let bias = match &tail.fc.bias {
            Some(b) => values(b.val())?.0,
            None => vec![0.0; d_out],
        };
        out.push(("_fc.bias".into(), vec![d_out], bias));
        Ok(out)
    }
}

fn export_conv_bn(cb: &ConvBn, conv: &str, bn: &str, out: &mut Named) -> Result<()> {
    let (w, shape) = values(cb.conv.weight.val())?;
    out.push((conv.to_owned(), shape, w));
    for (suffix, t) in [
        ("weight", cb.bn.gamma.val()),
        ("bias", cb.bn.beta.val()),
        ("running_mean", cb.bn.running_mean.value()),
        ("running_var", cb.bn.running_var.value()),
    ] {
        let (v, shape) = values(t)?;
        out.push((format!("{bn}.{suffix}"), shape, v));
    }
    Ok(())
}

/// Host copy of a tensor's values and shape.
pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Result<(Vec<f32>, Vec<usize>)> {
    let shape = t.dims().to_vec();
    let v = t.into_data().try_into_vec::<f32>().map_err(|e| TrainError::Backend(format!("reading a tensor: {e:?}")))?;
    Ok((v, shape))
}
