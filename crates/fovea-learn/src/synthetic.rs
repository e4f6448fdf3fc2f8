//! Seeded synthetic embeddings for tests, benches and smoke checks of the evaluation pipeline.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::eval::Example;

/// Deterministic Gaussian source (Box–Muller over ChaCha8, so no extra distribution crate is needed).
pub struct Gaussian {
    rng: ChaCha8Rng,
    spare: Option<f64>,
}

impl Gaussian {
    pub fn new(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed), spare: None }
    }

    pub fn sample(&mut self) -> f64 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let u1: f64 = self.rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = self.rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        self.spare = Some(r * t.sin());
        r * t.cos()
    }

    pub fn vector(&mut self, dim: usize, scale: f64) -> Vec<f32> {
        (0..dim).map(|_| (self.sample() * scale) as f32).collect()
    }
}

/// `classes` isotropic clusters named `c0, c1, …`, centres drawn with std `separation`, points with std `spread`.
/// Returns `(centres, samples)`; samples are interleaved across classes.
pub fn gaussian_clusters(
    seed: u64,
    classes: usize,
    per_class: usize,
    dim: usize,
    separation: f64,
    spread: f64,
) -> (Vec<Vec<f32>>, Vec<Example>) {
    let mut g = Gaussian::new(seed);
    let centres: Vec<Vec<f32>> = (0..classes).map(|_| g.vector(dim, separation)).collect();
    let mut out = Vec::with_capacity(classes * per_class);
    for _ in 0..per_class {
        for (c, centre) in centres.iter().enumerate() {
            let x = centre.iter().map(|&m| m + (g.sample() * spread) as f32).collect();
            out.push(Example::new(x, format!("c{c}")));
        }
    }
    (centres, out)
}
