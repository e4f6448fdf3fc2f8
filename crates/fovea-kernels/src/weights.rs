//! Reading PyTorch-named EfficientNet-Lite tensors: shape checks, BatchNorm folding and inferring the block layout.
//!
//! Everything the forward pass needs (stage boundaries, strides, kernel sizes, widths) is inferred from names and shapes,
//! so one loader serves Lite0, Lite1 and Lite2 and any reduced test network that follows the same naming.

use crate::conv1x1::Packed;
use crate::depthwise::{Depthwise, MAX_K};
use crate::stem::Stem;
use crate::{Error, Result};
use std::collections::HashMap;

/// BatchNorm epsilon of the published EfficientNet-Lite checkpoints.
pub const BN_EPS: f64 = 1e-3;
/// Stride of the first block of each stage (the other blocks of a stage use stride 1).
pub const STAGE_STRIDES: [usize; 7] = [1, 2, 2, 2, 1, 2, 1];
/// Stride of the stem convolution.
pub const STEM_STRIDE: usize = 2;

/// A dense f32 tensor in row-major order (PyTorch layout for weights).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Tensor { shape, data }
    }
}

/// One inverted-residual block, ready to run.
#[derive(Clone, Debug)]
pub struct Block {
    pub cin: usize,
    pub cexp: usize,
    pub cout: usize,
    pub expand: Option<Packed>,
    pub depthwise: Depthwise,
    pub project: Packed,
    pub residual: bool,
}

/// The whole network with BatchNorm folded and weights in kernel layout.
#[derive(Clone, Debug)]
pub struct Net {
    pub stem: Stem,
    pub blocks: Vec<Block>,
    pub head: Packed,
    pub fc: Packed,
}

struct Source<'a>(&'a HashMap<String, Tensor>);

impl Source<'_> {
    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The tensor `name`; `shape` entries of `None` accept any size (they are read back from the result).
    fn get(&self, name: &str, shape: &[Option<usize>]) -> Result<&Tensor> {
        let t = self.0.get(name).ok_or_else(|| Error::MissingTensor(name.to_string()))?;
        let fits = t.shape.len() == shape.len() && t.shape.iter().zip(shape).all(|(&d, e)| e.is_none_or(|e| e == d));
        if !fits || t.shape.contains(&0) {
            let expected =
                shape.iter().map(|d| d.map_or("_".to_string(), |d| d.to_string())).collect::<Vec<_>>().join(", ");
            return Err(Error::BadShape {
                name: name.to_string(),
                expected: format!("[{expected}] (non-zero)"),
                got: t.shape.clone(),
            });
        }
        let expected: usize = t.shape.iter().product();
        if t.data.len() != expected {
            return Err(Error::DataLength {
                name: name.to_string(),
                shape: t.shape.clone(),
                expected,
                got: t.data.len(),
            });
        }
        Ok(t)
    }

    /// Conv weight `[o, ...]` times the BatchNorm `bn` scale per output channel, and the BatchNorm shift as bias.
    fn folded(&self, conv: &str, bn: &str, shape: &[Option<usize>]) -> Result<(Vec<f32>, Vec<f32>, Vec<usize>)> {
        let w = self.get(conv, shape)?;
        let c = w.shape[0];
        let part = |p: &str| self.get(&format!("{bn}.{p}"), &[Some(c)]).map(|t| &t.data);
        let (gamma, beta, mean, var) = (part("weight")?, part("bias")?, part("running_mean")?, part("running_var")?);
        let per = w.data.len() / c;
        let mut weights = Vec::with_capacity(w.data.len());
        let mut bias = Vec::with_capacity(c);
        for o in 0..c {
            // f64 so folding adds no error beyond the final rounding to f32.
            let scale = gamma[o] as f64 / (var[o] as f64 + BN_EPS).sqrt();
            weights.extend(w.data[o * per..(o + 1) * per].iter().map(|&v| (v as f64 * scale) as f32));
            bias.push((beta[o] as f64 - mean[o] as f64 * scale) as f32);
        }
        Ok((weights, bias, w.shape.clone()))
    }
}

/// Builds the runnable network from PyTorch-named tensors.
pub fn load(tensors: &HashMap<String, Tensor>) -> Result<Net> {
    let src = Source(tensors);
    let (w, b, shape) = src.folded("_conv_stem.weight", "_bn0", &[None, None, None, None])?;
    if shape[2] != shape[3] {
        return Err(Error::Layout(format!("stem kernel must be square, got {shape:?}")));
    }
    let stem = Stem::from_oihw(&w, &b, shape[0], shape[1], shape[2], STEM_STRIDE);

    let mut blocks = Vec::new();
    let mut channels = stem.cout;
    // Stage of the previous block; a block whose input and output widths differ opens the next stage.
    let mut stage: Option<usize> = None;
    for i in 0.. {
        let pre = format!("_blocks.{i}.");
        let dw_name = format!("{pre}_depthwise_conv.weight");
        if !src.has(&dw_name) {
            break;
        }
        let cin = channels;
        let expand_name = format!("{pre}_expand_conv.weight");
        let (expand, cexp) = if src.has(&expand_name) {
            let (w, b, s) = src.folded(&expand_name, &format!("{pre}_bn0"), &[None, Some(cin), Some(1), Some(1)])?;
            (Some(Packed::from_out_in(&w, &b, s[0], cin)), s[0])
        } else {
            (None, cin)
        };
        let (dw, db, ds) = src.folded(&dw_name, &format!("{pre}_bn1"), &[Some(cexp), Some(1), None, None])?;
        if ds[2] != ds[3] || ds[2] > MAX_K {
            return Err(Error::Layout(format!("{dw_name}: kernel must be square and at most {MAX_K}, got {ds:?}")));
        }
        let (pw, pb, ps) = src.folded(
            &format!("{pre}_project_conv.weight"),
            &format!("{pre}_bn2"),
            &[None, Some(cexp), Some(1), Some(1)],
        )?;
        let cout = ps[0];
        let first_of_stage = cin != cout || stage.is_none();
        let stride = if first_of_stage {
            let next = stage.map_or(0, |s| s + 1);
            if next >= STAGE_STRIDES.len() {
                return Err(Error::Layout(format!("block {i} would open stage {next}, only 7 exist")));
            }
            stage = Some(next);
            STAGE_STRIDES[next]
        } else {
            1
        };
        blocks.push(Block {
            cin,
            cexp,
            cout,
            expand,
            depthwise: Depthwise::from_oihw(&dw, &db, cexp, ds[2], stride),
            project: Packed::from_out_in(&pw, &pb, cout, cexp),
            residual: stride == 1 && cin == cout,
        });
        channels = cout;
    }
    if blocks.is_empty() {
        return Err(Error::MissingTensor("_blocks.0._depthwise_conv.weight".into()));
    }

    let (hw, hb, hs) = src.folded("_conv_head.weight", "_bn1", &[None, Some(channels), Some(1), Some(1)])?;
    let head = Packed::from_out_in(&hw, &hb, hs[0], channels);
    let fc_w = src.get("_fc.weight", &[None, Some(hs[0])])?;
    let classes = fc_w.shape[0];
    let fc_b = src.get("_fc.bias", &[Some(classes)])?;
    let fc = Packed::from_out_in(&fc_w.data, &fc_b.data, classes, hs[0]);
    Ok(Net { stem, blocks, head, fc })
}
