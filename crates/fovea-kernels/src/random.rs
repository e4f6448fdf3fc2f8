//! EfficientNet-Lite-shaped tensor sets with seeded random weights, for benchmarks and tests (no checkpoint needed).

use crate::weights::Tensor;
use std::collections::HashMap;

/// SplitMix64: tiny, seeded and reproducible, so tests and benches need no extra dependencies.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-scale, scale)`.
    pub fn uniform(&mut self, scale: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * u - 1.0) * scale
    }

    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(scale)).collect()
    }
}

/// One inverted-residual block: output width, expansion ratio (1 = no expand conv) and depthwise kernel size.
#[derive(Clone, Copy, Debug)]
pub struct BlockSpec {
    pub cout: usize,
    pub expand: usize,
    pub kernel: usize,
}

/// Widths and blocks of a network in the EfficientNet-Lite naming scheme.
#[derive(Clone, Debug)]
pub struct NetSpec {
    pub stem: usize,
    pub blocks: Vec<BlockSpec>,
    pub head: usize,
    pub classes: usize,
}

impl NetSpec {
    /// EfficientNet-Lite0: 16 blocks in 7 stages, 1280-d embedding, 1000 classes.
    pub fn lite0() -> Self {
        let stages = [
            (1, 3, 1, 16),
            (2, 3, 6, 24),
            (2, 5, 6, 40),
            (3, 3, 6, 80),
            (3, 5, 6, 112),
            (4, 5, 6, 192),
            (1, 3, 6, 320),
        ];
        let mut blocks = Vec::new();
        for (repeats, kernel, expand, cout) in stages {
            blocks.extend((0..repeats).map(|_| BlockSpec { cout, expand, kernel }));
        }
        NetSpec { stem: 32, blocks, head: 1280, classes: 1000 }
    }

    /// Random conv weights (scaled by fan-in so activations neither vanish nor saturate) and plausible BatchNorm
    /// statistics, under PyTorch names and OIHW shapes.
    pub fn tensors(&self, seed: u64) -> HashMap<String, Tensor> {
        let mut rng = Rng::new(seed);
        let mut t = HashMap::new();
        let mut conv = |t: &mut HashMap<String, Tensor>, name: String, shape: Vec<usize>| {
            let fan_in: usize = shape[1..].iter().product();
            let data = rng.vec(shape.iter().product(), (3.0 / fan_in as f32).sqrt());
            t.insert(name, Tensor::new(shape, data));
        };
        let mut bn_rng = Rng::new(seed.wrapping_add(1));
        let mut bn = |t: &mut HashMap<String, Tensor>, prefix: String, c: usize| {
            let mut part = |p: &str, centre: f32, spread: f32| {
                let data = (0..c).map(|_| centre + bn_rng.uniform(spread)).collect();
                t.insert(format!("{prefix}.{p}"), Tensor::new(vec![c], data));
            };
            part("weight", 1.0, 0.5);
            part("bias", 0.1, 0.2);
            part("running_mean", 0.0, 0.1);
            part("running_var", 1.0, 0.5);
        };
        conv(&mut t, "_conv_stem.weight".into(), vec![self.stem, 3, 3, 3]);
        bn(&mut t, "_bn0".into(), self.stem);
        let mut cin = self.stem;
        for (i, b) in self.blocks.iter().enumerate() {
            let pre = format!("_blocks.{i}.");
            let e = cin * b.expand;
            if b.expand != 1 {
                conv(&mut t, format!("{pre}_expand_conv.weight"), vec![e, cin, 1, 1]);
                bn(&mut t, format!("{pre}_bn0"), e);
            }
            conv(&mut t, format!("{pre}_depthwise_conv.weight"), vec![e, 1, b.kernel, b.kernel]);
            bn(&mut t, format!("{pre}_bn1"), e);
            conv(&mut t, format!("{pre}_project_conv.weight"), vec![b.cout, e, 1, 1]);
            bn(&mut t, format!("{pre}_bn2"), b.cout);
            cin = b.cout;
        }
        conv(&mut t, "_conv_head.weight".into(), vec![self.head, cin, 1, 1]);
        bn(&mut t, "_bn1".into(), self.head);
        conv(&mut t, "_fc.weight".into(), vec![self.classes, self.head]);
        let fc_bias = Rng::new(seed.wrapping_add(2)).vec(self.classes, 0.1);
        t.insert("_fc.bias".into(), Tensor::new(vec![self.classes], fc_bias));
        t
    }
}
