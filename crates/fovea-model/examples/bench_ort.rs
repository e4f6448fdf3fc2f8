//! Side by side on one preprocessed input: fovea's fast path, the burn network and ONNX Runtime (the exported graph),
//! EfficientNet-Lite0 with the real weights at batch 1 and 16, each with the same thread count.
//!
//! `cargo run -p fovea-model --release --features ort --example bench_ort -- [threads] [seconds-per-case]`
//! ONNX Runtime's library comes from `ORT_DYLIB_PATH` or the `onnxruntime` Python wheel.

use std::time::{Duration, Instant};

use fovea_model::ort_backbone::OrtBackbone;
use fovea_model::{fovea_home, Backbone, BurnBackbone, Embedded, FastBackbone, Variant, Weights};

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Median milliseconds per image over repeated runs, after one warm-up run (scratch buffers, caches, lazy init).
fn time(backbone: &dyn Backbone, input: &[f32], batch: usize, seconds: f64) -> (f64, usize, Embedded) {
    let out = backbone.run(input, batch).expect("warm-up run");
    let mut runs = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs_f64(seconds) || runs.len() < 5 {
        let t = Instant::now();
        std::hint::black_box(backbone.run(input, batch).expect("run"));
        runs.push(t.elapsed().as_secs_f64() * 1e3 / batch as f64);
    }
    runs.sort_by(f64::total_cmp);
    (runs[runs.len() / 2], runs.len(), out)
}

/// Worst relative difference, scaled by max(1, |reference|) as in the tests.
fn worst(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(p, q)| (p - q).abs() / q.abs().max(1.0)).fold(0.0, f32::max)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2);
    let seconds: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3.0);
    // burn's flex backend runs on rayon's global pool, sized from RAYON_NUM_THREADS when it first starts; the fast
    // path and ONNX Runtime take the count directly. Set before anything touches rayon.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    let variant = Variant::Lite0;
    let size = variant.input_size();

    let w = Weights::load_safetensors(&fovea_model::ensure_weights(&fovea_home(), variant).expect("weights")).unwrap();
    let fast = FastBackbone::new(&w, variant, threads).expect("fast path");
    let burn = BurnBackbone::new(&w, variant, burn::prelude::Device::flex()).expect("burn");
    let ort = OrtBackbone::from_weights(&w, variant, threads).expect("onnx runtime");

    // Real photos, preprocessed once; the batch of 16 cycles through them.
    let dir = fovea_model::fetch::ensure_sample_photos(&fovea_home()).unwrap();
    let photos: Vec<Vec<f32>> = ["chelsea.png", "coffee.png", "rocket.jpg"]
        .iter()
        .map(|n| {
            fovea_vision::to_input(&fovea_vision::decode_file(&dir.join(n), &Default::default()).unwrap(), size as u32)
        })
        .collect();
    let input: Vec<f32> = (0..16).flat_map(|i| photos[i % photos.len()].iter().copied()).collect();

    println!("EfficientNet-Lite0 {size}x{size}, real weights, {threads} threads each, ~{seconds} s per case");
    println!("load average before: {}", load_average());
    println!("{:<6} {:>5} {:>10} {:>9} {:>6}", "path", "batch", "ms/img", "img/s", "runs");
    let mut ok = true;
    for batch in [1usize, 16] {
        let x = &input[..batch * 3 * size * size];
        let mut results = Vec::new();
        for (name, backbone) in [("fast", &fast as &dyn Backbone), ("burn", &burn), ("ort", &ort)] {
            let (ms, runs, out) = time(backbone, x, batch, seconds);
            println!("{name:<6} {batch:>5} {ms:>10.2} {:>9.1} {runs:>6}", 1e3 / ms);
            results.push((ms, out));
        }
        let (f, b, o) = (&results[0], &results[1], &results[2]);
        println!(
            "batch {batch}: ort/fast {:.2}x, burn/fast {:.2}x (time ratios; > 1 means fast is quicker)",
            o.0 / f.0,
            b.0 / f.0
        );
        let (de, dl) = (worst(&f.1.embeddings, &o.1.embeddings), worst(&f.1.logits, &o.1.logits));
        let (be, bl) = (worst(&b.1.embeddings, &o.1.embeddings), worst(&b.1.logits, &o.1.logits));
        println!("batch {batch}: fast vs ort worst difference: embeddings {de:.1e}, logits {dl:.1e}; burn vs ort {be:.1e}, {bl:.1e}");
        ok &= de < 1e-4 && dl < 1e-4;
    }
    println!("load average after: {}", load_average());
    assert!(ok, "the fast path and ONNX Runtime disagree beyond 1e-4");
    println!("fast and ort agree to 1e-4");
}
