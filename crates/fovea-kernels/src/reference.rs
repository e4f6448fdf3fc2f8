//! Test-only reference forward: direct NCHW convolutions in f64 with explicit zero padding and unfused BatchNorm,
//! written to be obviously correct rather than fast (it mirrors tests/reference/lite_numpy.py).

use crate::weights::{Tensor, BN_EPS};
use std::collections::HashMap;

/// A CHW feature map in f64.
#[derive(Clone)]
struct Map {
    c: usize,
    h: usize,
    w: usize,
    v: Vec<f64>,
}

impl Map {
    fn at(&self, c: usize, y: usize, x: usize) -> f64 {
        self.v[(c * self.h + y) * self.w + x]
    }
}

fn get<'a>(p: &'a HashMap<String, Tensor>, name: &str) -> &'a Tensor {
    p.get(name).unwrap_or_else(|| panic!("reference: missing {name}"))
}

/// TensorFlow SAME convolution; `groups` is 1 (dense) or the channel count (depthwise).
fn conv(x: &Map, wt: &Tensor, stride: usize, depthwise: bool) -> Map {
    let (co, k) = (wt.shape[0], wt.shape[2]);
    let amounts = |n: usize| {
        let out = n.div_ceil(stride);
        let total = ((out - 1) * stride + k).saturating_sub(n);
        (out, total / 2)
    };
    let ((oh, pt), (ow, pl)) = (amounts(x.h), amounts(x.w));
    let mut v = vec![0.0; co * oh * ow];
    for o in 0..co {
        let inputs: Vec<usize> = if depthwise { vec![o] } else { (0..x.c).collect() };
        for oy in 0..oh {
            for ox in 0..ow {
                let mut s = 0.0;
                for (j, &ci) in inputs.iter().enumerate() {
                    for dy in 0..k {
                        for dx in 0..k {
                            let iy = (oy * stride + dy) as isize - pt as isize;
                            let ix = (ox * stride + dx) as isize - pl as isize;
                            if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize {
                                continue;
                            }
                            let widx = ((o * inputs.len() + j) * k + dy) * k + dx;
                            s += x.at(ci, iy as usize, ix as usize) * wt.data[widx] as f64;
                        }
                    }
                }
                v[(o * oh + oy) * ow + ox] = s;
            }
        }
    }
    Map { c: co, h: oh, w: ow, v }
}

fn bn(mut x: Map, p: &HashMap<String, Tensor>, name: &str, relu6: bool) -> Map {
    let part = |s: &str| &get(p, &format!("{name}.{s}")).data;
    let (g, b, m, var) = (part("weight"), part("bias"), part("running_mean"), part("running_var"));
    let hw = x.h * x.w;
    for c in 0..x.c {
        for v in &mut x.v[c * hw..(c + 1) * hw] {
            let y = (*v - m[c] as f64) / (var[c] as f64 + BN_EPS).sqrt() * g[c] as f64 + b[c] as f64;
            *v = if relu6 { y.clamp(0.0, 6.0) } else { y };
        }
    }
    x
}

/// Embeddings and logits of one CHW image; `strides[i]` is block i's depthwise stride, given by the test.
pub fn forward(
    p: &HashMap<String, Tensor>,
    strides: &[usize],
    image: &[f32],
    h: usize,
    w: usize,
) -> (Vec<f32>, Vec<f32>) {
    let x = Map { c: 3, h, w, v: image.iter().map(|&v| v as f64).collect() };
    let mut x = bn(conv(&x, get(p, "_conv_stem.weight"), 2, false), p, "_bn0", true);
    for (i, &stride) in strides.iter().enumerate() {
        let pre = format!("_blocks.{i}.");
        let input = x.clone();
        if let Some(wt) = p.get(&format!("{pre}_expand_conv.weight")) {
            x = bn(conv(&x, wt, 1, false), p, &format!("{pre}_bn0"), true);
        }
        x = bn(conv(&x, get(p, &format!("{pre}_depthwise_conv.weight")), stride, true), p, &format!("{pre}_bn1"), true);
        x = bn(conv(&x, get(p, &format!("{pre}_project_conv.weight")), 1, false), p, &format!("{pre}_bn2"), false);
        if stride == 1 && input.c == x.c {
            x.v.iter_mut().zip(&input.v).for_each(|(a, b)| *a += b);
        }
    }
    let x = bn(conv(&x, get(p, "_conv_head.weight"), 1, false), p, "_bn1", true);
    let hw = (x.h * x.w) as f64;
    let emb: Vec<f64> = x.v.chunks_exact(x.h * x.w).map(|c| c.iter().sum::<f64>() / hw).collect();
    let (fw, fb) = (get(p, "_fc.weight"), get(p, "_fc.bias"));
    let logits = (0..fw.shape[0])
        .map(|o| {
            let s: f64 = emb.iter().enumerate().map(|(i, e)| e * fw.data[o * emb.len() + i] as f64).sum();
            (s + fb.data[o] as f64) as f32
        })
        .collect();
    (emb.into_iter().map(|v| v as f32).collect(), logits)
}
