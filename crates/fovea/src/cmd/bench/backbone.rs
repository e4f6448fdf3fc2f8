//! The backbone side by side: fast path, ONNX Runtime and burn on the same weights and preprocessed inputs.

use std::path::Path;

use fovea_model::{Backbone, BurnBackbone, Embedded, FastBackbone, Variant, Weights};

use super::{time_runs, BenchArgs};

pub struct BackboneResult {
    pub fast_b1_ms: f64,
    /// The fast path and ONNX Runtime agree to 1e-4 (relative, as in the tests).
    pub agree: bool,
}

/// Worst relative difference, scaled by max(1, |reference|).
fn worst(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(p, q)| (p - q).abs() / q.abs().max(1.0)).fold(0.0, f32::max)
}

pub fn run(home: &Path, variant: Variant, threads: usize, args: &BenchArgs) -> anyhow::Result<BackboneResult> {
    let w = Weights::load_safetensors(&fovea_model::ensure_weights(home, variant)?)?;
    let size = variant.input_size();
    let photos = super::service::sample_photos(home)?;
    let decode_image = match &args.image {
        Some(p) => fovea_vision::decode_file(p, &Default::default())?,
        None => photos[0].clone(),
    };
    let bytes = super::service::png(&decode_image);
    let (decode_ms, _) = time_runs(args.seconds.min(1.0), || {
        let img = fovea_vision::decode(&bytes, &Default::default())?;
        Ok(fovea_vision::to_input(&img, size as u32))
    })?;
    println!("decode + preprocess ({}x{} PNG): {decode_ms:.2} ms/img", decode_image.width(), decode_image.height());
    let inputs: Vec<Vec<f32>> = photos.iter().map(|p| fovea_vision::to_input(p, size as u32)).collect();
    let input: Vec<f32> = (0..16).flat_map(|i| inputs[i % inputs.len()].iter().copied()).collect();

    let mut engines: Vec<(&str, Box<dyn Backbone>)> =
        vec![("fast", Box::new(FastBackbone::new(&w, variant, threads)?))];
    match ort_engine(&w, variant, threads) {
        Ok(b) => engines.push(("ort", b)),
        Err(e) => println!("ONNX Runtime unavailable, compared with nothing: {e:#}"),
    }
    if !args.skip_burn {
        engines.push(("burn", Box::new(BurnBackbone::new(&w, variant, burn::prelude::Device::flex())?)));
    }
    println!("{:<6} {:>5} {:>9} {:>9}", "engine", "batch", "ms/img", "img/s");
    let mut agree = true;
    let mut fast_b1_ms = f64::NAN;
    for batch in [1usize, 16] {
        let x = &input[..batch * 3 * size * size];
        let mut results: Vec<(&str, f64, Embedded)> = Vec::new();
        for (name, engine) in &engines {
            let (ms, out) = time_runs(args.seconds, || Ok(engine.run(x, batch)?))?;
            let per_img = ms / batch as f64;
            println!("{name:<6} {batch:>5} {per_img:>9.2} {:>9.1}", 1e3 / per_img);
            results.push((name, per_img, out));
        }
        let fast = &results[0];
        if batch == 1 {
            fast_b1_ms = fast.1;
        }
        for (name, ms, out) in &results[1..] {
            let (de, dl) = (worst(&fast.2.embeddings, &out.embeddings), worst(&fast.2.logits, &out.logits));
            println!(
                "batch {batch:>2}: fast is {:.2}x {name} (time ratio {name}/fast; >= 1 means fast is as quick or \
                 quicker); worst difference embeddings {de:.1e}, logits {dl:.1e}",
                ms / fast.1
            );
            if *name == "ort" {
                agree &= de < 1e-4 && dl < 1e-4;
            }
        }
    }
    println!("fast path and ONNX Runtime agree to 1e-4: {}", if agree { "yes" } else { "NO" });
    Ok(BackboneResult { fast_b1_ms, agree })
}

#[cfg(feature = "ort")]
fn ort_engine(w: &Weights, variant: Variant, threads: usize) -> anyhow::Result<Box<dyn Backbone>> {
    Ok(Box::new(fovea_model::ort_backbone::OrtBackbone::from_weights(w, variant, threads)?))
}

#[cfg(not(feature = "ort"))]
fn ort_engine(_: &Weights, _: Variant, _: usize) -> anyhow::Result<Box<dyn Backbone>> {
    anyhow::bail!("this build has no `ort` feature")
}
