//! ONNX export of the served network, so ONNX Runtime (or any other ONNX engine) can run it side by side.
//!
//! The protobuf encoding is written by hand: the graph needs only varints, fixed32 floats and length-delimited
//! fields, which is far less than a protobuf code generator and its build-time dependencies would bring in. Field
//! numbers are those of `onnx.proto` (ONNX IR version 8); the graph uses opset 13.
//!
//! BatchNorm is folded into each convolution's weight and bias at export, so the graph is a plain chain of
//! `Conv(+bias) → Clip(0, 6)` with `Add` for the residuals. TensorFlow "SAME" padding puts the extra pixel of a
//! stride-2 layer bottom/right; ONNX's `auto_pad=SAME_UPPER` would do the same, but explicit `pads` are computed
//! for the given input size instead, because every runtime honours `pads` and not every one honours `auto_pad`.

use std::path::Path;

use crate::network::block_specs;
use crate::weights::Weights;
use crate::{ModelError, Result};

const IR_VERSION: i64 = 8;
const OPSET: i64 = 13;
const BN_EPS: f64 = 1e-3;
/// `TensorProto.DataType.FLOAT`.
const FLOAT: i64 = 1;
/// `AttributeProto.AttributeType` values.
const ATTR_INT: i64 = 2;
const ATTR_INTS: i64 = 7;

/// One protobuf message under construction: fields are appended in any order, as protobuf allows.
#[derive(Debug, Default, Clone)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    /// A field key: field number and wire type (0 varint, 2 length-delimited, 5 fixed32).
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }
    /// An int64 field; negative values take ten bytes, as protobuf's int64 (not zigzag sint64) requires.
    fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }
    /// A repeated int64 field, unpacked: proto2 (which onnx.proto is) defaults to unpacked and every parser reads it.
    fn ints(&mut self, field: u32, vs: &[i64]) -> &mut Self {
        for &v in vs {
            self.int(field, v);
        }
        self
    }
    fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }
    fn msg(&mut self, field: u32, m: &Msg) -> &mut Self {
        self.bytes(field, &m.0)
    }
}

/// `AttributeProto` holding one int.
fn attr_int(name: &str, v: i64) -> Msg {
    let mut a = Msg::default();
    a.str(1, name).int(20, ATTR_INT).int(3, v);
    a
}

/// `AttributeProto` holding a list of ints.
fn attr_ints(name: &str, vs: &[i64]) -> Msg {
    let mut a = Msg::default();
    a.str(1, name).int(20, ATTR_INTS).ints(8, vs);
    a
}

/// `ValueInfoProto` of a float tensor; `None` dimensions become the symbolic batch dimension "N".
fn value_info(name: &str, dims: &[Option<usize>]) -> Msg {
    let mut shape = Msg::default();
    for d in dims {
        let mut dim = Msg::default();
        match d {
            Some(v) => dim.int(1, *v as i64),
            None => dim.str(2, "N"),
        };
        shape.msg(1, &dim);
    }
    let mut tensor_type = Msg::default();
    tensor_type.int(1, FLOAT).msg(2, &shape);
    let mut ty = Msg::default();
    ty.msg(1, &tensor_type);
    let mut vi = Msg::default();
    vi.str(1, name).msg(2, &ty);
    vi
}

/// A graph under construction: nodes, initializers, inputs and outputs all go straight into the `GraphProto`.
struct Graph {
    proto: Msg,
    nodes: usize,
}

impl Graph {
    fn new(name: &str) -> Self {
        let mut proto = Msg::default();
        proto.str(2, name);
        Graph { proto, nodes: 0 }
    }

    /// Adds a float initializer (`TensorProto` with little-endian `raw_data`).
    fn initializer(&mut self, name: &str, dims: &[usize], values: &[f32]) {
        let mut t = Msg::default();
        for &d in dims {
            t.int(1, d as i64);
        }
        t.int(2, FLOAT).str(8, name);
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        t.bytes(9, &raw);
        self.proto.msg(5, &t);
    }

    /// Adds a node and returns its (single) output name.
    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attrs: &[Msg]) -> String {
        let mut n = Msg::default();
        for i in inputs {
            n.str(1, i);
        }
        n.str(2, output).str(3, &format!("{op}_{}", self.nodes)).str(4, op);
        for a in attrs {
            n.msg(5, a);
        }
        self.nodes += 1;
        self.proto.msg(1, &n);
        output.to_owned()
    }

    fn input(&mut self, vi: &Msg) {
        self.proto.msg(11, vi);
    }
    fn output(&mut self, vi: &Msg) {
        self.proto.msg(12, vi);
    }
}

/// TensorFlow SAME padding along one axis of length `n`: (before, after), the odd pixel going after.
fn same_pads(n: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = n.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(n);
    (total / 2, total - total / 2)
}

/// Emits Conv (BatchNorm folded in) and, if asked, Clip(0, 6); returns the output name and spatial size.
#[allow(clippy::too_many_arguments)]
fn conv_bn(
    g: &mut Graph,
    w: &Weights,
    x: &str,
    size: usize,
    conv: &str,
    bn: &str,
    stride: usize,
    depthwise: bool,
    relu6: bool,
) -> Result<(String, usize)> {
    let shape = w.shape(conv).ok_or_else(|| ModelError::MissingTensor(conv.to_owned()))?.to_vec();
    let [cout, cin_per_group, k, _] = shape[..] else {
        return Err(ModelError::Checkpoint(format!("{conv} has shape {shape:?}, expected 4 dimensions")));
    };
    let weight = w.get(conv, &shape)?;
    let vec = |s: &str| w.get(&format!("{bn}.{s}"), &[cout]);
    let (gamma, beta, mean, var) = (vec("weight")?, vec("bias")?, vec("running_mean")?, vec("running_var")?);
    // Folding in f64 keeps the exported weights as close to the unfolded network as f32 storage allows.
    let per_out = cin_per_group * k * k;
    let mut folded = Vec::with_capacity(weight.len());
    let mut bias = Vec::with_capacity(cout);
    for o in 0..cout {
        let scale = gamma[o] as f64 / (var[o] as f64 + BN_EPS).sqrt();
        folded.extend(weight[o * per_out..(o + 1) * per_out].iter().map(|&v| (v as f64 * scale) as f32));
        bias.push((beta[o] as f64 - mean[o] as f64 * scale) as f32);
    }
    let (wname, bname) = (format!("{conv}.folded"), format!("{conv}.bias"));
    g.initializer(&wname, &shape, &folded);
    g.initializer(&bname, &[cout], &bias);
    let (before, after) = same_pads(size, k, stride);
    let (b, a) = (before as i64, after as i64);
    let attrs = [
        attr_ints("kernel_shape", &[k as i64, k as i64]),
        attr_ints("strides", &[stride as i64, stride as i64]),
        attr_ints("pads", &[b, b, a, a]),
        attr_int("group", if depthwise { cout as i64 } else { 1 }),
    ];
    let base = conv.trim_end_matches(".weight");
    let mut y = g.node("Conv", &[x, &wname, &bname], &format!("{base}.out"), &attrs);
    if relu6 {
        y = g.node("Clip", &[&y, "relu6.min", "relu6.max"], &format!("{base}.relu6"), &[]);
    }
    Ok((y, size.div_ceil(stride)))
}

/// The ONNX model of `weights` (an EfficientNet-Lite) for square inputs of `input_size` pixels, as bytes.
pub fn onnx_bytes(weights: &Weights, input_size: usize) -> Result<Vec<u8>> {
    if input_size == 0 {
        return Err(ModelError::Checkpoint("ONNX export needs a positive input size".into()));
    }
    let specs = block_specs(weights)?;
    let mut g = Graph::new("fovea_efficientnet_lite");
    // Opset 13 Clip takes its bounds as (scalar) inputs rather than attributes.
    g.initializer("relu6.min", &[], &[0.0]);
    g.initializer("relu6.max", &[], &[6.0]);

    let (mut x, mut size) = conv_bn(&mut g, weights, "input", input_size, "_conv_stem.weight", "_bn0", 2, false, true)?;
    for (i, s) in specs.iter().enumerate() {
        let pre = format!("_blocks.{i}.");
        let block_in = x.clone();
        let expand = format!("{pre}_expand_conv.weight");
        if weights.shape(&expand).is_some() {
            (x, size) = conv_bn(&mut g, weights, &x, size, &expand, &format!("{pre}_bn0"), 1, false, true)?;
        }
        let dw = format!("{pre}_depthwise_conv.weight");
        (x, size) = conv_bn(&mut g, weights, &x, size, &dw, &format!("{pre}_bn1"), s.stride, true, true)?;
        let pj = format!("{pre}_project_conv.weight");
        (x, size) = conv_bn(&mut g, weights, &x, size, &pj, &format!("{pre}_bn2"), 1, false, false)?;
        if s.stride == 1 && s.input == s.output {
            x = g.node("Add", &[&x, &block_in], &format!("{pre}residual"), &[]);
        }
    }
    let (x, _) = conv_bn(&mut g, weights, &x, size, "_conv_head.weight", "_bn1", 1, false, true)?;
    let pooled = g.node("GlobalAveragePool", &[&x], "pooled", &[]);
    g.node("Flatten", &[&pooled], "embedding", &[attr_int("axis", 1)]);

    let fc = weights.shape("_fc.weight").ok_or_else(|| ModelError::MissingTensor("_fc.weight".into()))?.to_vec();
    let [classes, dim] = fc[..] else {
        return Err(ModelError::Checkpoint(format!("_fc.weight has shape {fc:?}, expected 2 dimensions")));
    };
    // Gemm with transB multiplies by PyTorch's [out, in] weight as stored, so no transpose is needed.
    g.initializer("_fc.weight", &fc, weights.get("_fc.weight", &fc)?);
    g.initializer("_fc.bias", &[classes], weights.get("_fc.bias", &[classes])?);
    g.node("Gemm", &["embedding", "_fc.weight", "_fc.bias"], "logits", &[attr_int("transB", 1)]);

    g.input(&value_info("input", &[None, Some(3), Some(input_size), Some(input_size)]));
    g.output(&value_info("embedding", &[None, Some(dim)]));
    g.output(&value_info("logits", &[None, Some(classes)]));

    let mut opset = Msg::default();
    opset.int(2, OPSET);
    let mut model = Msg::default();
    model.int(1, IR_VERSION).str(2, "fovea").str(3, env!("CARGO_PKG_VERSION")).msg(7, &g.proto).msg(8, &opset);
    Ok(model.0)
}

/// Writes the ONNX model of `weights` for `input_size`-pixel inputs to `path`. The graph takes `input`
/// [N, 3, size, size] (normalised like [`crate::Backbone::run`]'s input) and gives `embedding` [N, 1280] and
/// `logits` [N, 1000]. Padding is baked in for `input_size`, so other sizes are refused by the runtime.
pub fn export_onnx(weights: &Weights, input_size: usize, path: &Path) -> Result<()> {
    let bytes = onnx_bytes(weights, input_size)?;
    // Write beside the target and rename, so a reader never sees a half-written model.
    let tmp = path.with_extension(format!("partial.{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| ModelError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn varints_and_field_keys_follow_the_protobuf_wire_format() {
        let mut m = Msg::default();
        m.varint(1);
        m.varint(300);
        assert_eq!(m.0, [0x01, 0xac, 0x02]);
        let mut m = Msg::default();
        m.int(1, 8); // ModelProto.ir_version: field 1, varint
        assert_eq!(m.0, [0x08, 0x08]);
        let mut m = Msg::default();
        m.str(4, "Conv"); // NodeProto.op_type: field 4, length-delimited
        assert_eq!(m.0, [0x22, 0x04, b'C', b'o', b'n', b'v']);
        let mut m = Msg::default();
        m.int(3, -1); // int64 −1 is ten bytes, not zigzag
        assert_eq!(m.0.len(), 11);
        assert_eq!(m.0[10], 0x01);
        let mut m = Msg::default();
        m.key(20, 0); // a field number above 15 needs a two-byte key
        assert_eq!(m.0, [0xa0, 0x01]);
    }

    #[test]
    fn same_padding_puts_the_odd_pixel_after() {
        assert_eq!(same_pads(224, 3, 2), (0, 1));
        assert_eq!(same_pads(112, 3, 1), (1, 1));
        assert_eq!(same_pads(28, 5, 2), (1, 2));
        assert_eq!(same_pads(7, 1, 1), (0, 0));
    }

    /// A two-block Lite-shaped network small enough to write by hand.
    fn tiny() -> Weights {
        let mut w = Weights::default();
        let mut put = |name: &str, shape: &[usize], v: f32| {
            let n = shape.iter().product();
            w.tensors.insert(name.to_owned(), (shape.to_vec(), vec![v; n]));
        };
        put("_conv_stem.weight", &[4, 3, 3, 3], 0.1);
        put("_blocks.0._depthwise_conv.weight", &[4, 1, 3, 3], 0.2);
        put("_blocks.0._project_conv.weight", &[2, 4, 1, 1], 0.3);
        put("_blocks.1._expand_conv.weight", &[6, 2, 1, 1], 0.1);
        put("_blocks.1._depthwise_conv.weight", &[6, 1, 3, 3], 0.1);
        put("_blocks.1._project_conv.weight", &[2, 6, 1, 1], 0.1);
        put("_conv_head.weight", &[8, 2, 1, 1], 0.1);
        put("_fc.weight", &[5, 8], 0.1);
        put("_fc.bias", &[5], 0.0);
        let bns =
            ["_bn0", "_bn1", "_blocks.0._bn1", "_blocks.0._bn2", "_blocks.1._bn0", "_blocks.1._bn1", "_blocks.1._bn2"];
        let channels = [4, 8, 4, 2, 6, 6, 2];
        for (bn, c) in bns.iter().zip(channels) {
            for (s, v) in [("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)] {
                put(&format!("{bn}.{s}"), &[c], v);
            }
        }
        w
    }

    #[test]
    fn tiny_network_encodes_header_nodes_and_io() {
        let bytes = onnx_bytes(&tiny(), 16).unwrap();
        // ir_version 8 first, opset_import {version: 13} (field 8 → key 0x42) last.
        assert_eq!(&bytes[..2], &[0x08, 0x08]);
        assert_eq!(&bytes[bytes.len() - 4..], &[0x42, 0x02, 0x10, 0x0d]);
        let count = |op: &[u8]| {
            let mut key = vec![0x22, op.len() as u8];
            key.extend_from_slice(op);
            bytes.windows(key.len()).filter(|w| *w == key.as_slice()).count()
        };
        // stem + (dw, project) + (expand, dw, project) + head = 7 convs; the second block keeps its shape → 1 Add.
        assert_eq!(count(b"Conv"), 7);
        assert_eq!(count(b"Clip"), 5);
        assert_eq!(count(b"Add"), 1);
        assert_eq!(count(b"Gemm"), 1);
        assert!(contains(&bytes, b"embedding") && contains(&bytes, b"logits"));
        // The stem's stride-2 SAME pads on 16 px: [0, 0, 1, 1] as a repeated int64 field 8 of the attribute.
        assert!(contains(
            &bytes,
            &[b'p', b'a', b'd', b's', 0xa0, 0x01, 0x07, 0x40, 0x00, 0x40, 0x00, 0x40, 0x01, 0x40, 0x01]
        ));
        assert!(onnx_bytes(&tiny(), 0).is_err());
        assert!(onnx_bytes(&Weights::default(), 16).is_err());
    }
}
