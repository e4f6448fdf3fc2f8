//! The backbone side by side: fast path, ONNX Runtime and burn on the same weights and preprocessed inputs.

use std::path::Path;

use fovea_model::{Backbone, BurnBackbone, Embedded, FastBackbone, Variant, Weights};
use image::RgbImage;

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

    let fast = FastBackbone::new(&w, variant, threads)?;
    let isa = fast.kernels();
    println!(
        "instruction sets: fast = {} [{}] (dispatched at run time; FOVEA_KERNELS forces one)",
        isa,
        isa.describe()
    );
    let mut engines: Vec<(&str, Box<dyn Backbone>)> = vec![("fast", Box::new(fast))];
    match ort_engine(&w, variant, threads) {
        Ok(b) => {
            println!(
                "instruction sets: ort = not reported by ONNX Runtime; its MLAS kernels are picked from CPUID at run \
                 time (AVX-512 ones where avx512f/bw/dq/vl are present)"
            );
            engines.push(("ort", b))
        }
        Err(e) => println!("ONNX Runtime unavailable, compared with nothing: {e:#}"),
    }
    if !args.skip_burn {
        println!("instruction sets: burn = the flex backend's own (not reported)");
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
    large_jpeg(&photos[0], size, args, fast_b1_ms)?;
    Ok(BackboneResult { fast_b1_ms, agree })
}

/// Decode + preprocess of a 12-megapixel JPEG, full size and reduced in the DCT domain, against the fast path's
/// batch-1 network time. The JPEG is `--image` when that is a JPEG, else the sample photo enlarged to 4000 x 3000
/// with sensor-like grain (an enlarged photo alone is unnaturally smooth, and smooth JPEGs decode faster).
fn large_jpeg(photo: &RgbImage, size: usize, args: &BenchArgs, network_ms: f64) -> anyhow::Result<()> {
    let given = args.image.as_ref().map(std::fs::read).transpose()?;
    let bytes = match given.filter(|b| b.starts_with(&[0xFF, 0xD8])) {
        Some(b) => b,
        None => {
            let mut big = image::imageops::resize(photo, 4000, 3000, image::imageops::FilterType::Triangle);
            let grain = fovea_vision::fixtures::noise(big.as_raw().len(), 12);
            for (p, g) in big.iter_mut().zip(grain) {
                *p = p.saturating_add(g % 13).saturating_sub(6);
            }
            fovea_vision::fixtures::jpeg(&big, 90)
        }
    };
    let limits = fovea_vision::DecodeLimits::default();
    let header = fovea_vision::decode(&bytes, &limits)?;
    let size = size as u32;
    let (full_ms, _) =
        time_runs(args.seconds.min(2.0), || Ok(fovea_vision::to_input(&fovea_vision::decode(&bytes, &limits)?, size)))?;
    let (reduced_ms, reduced) = time_runs(args.seconds.min(2.0), || {
        let img = fovea_vision::decode_for_input(&bytes, &limits, size)?;
        Ok((fovea_vision::to_input(&img, size), img.dimensions()))
    })?;
    let (w, h) = header.dimensions();
    println!(
        "decode + preprocess of a {:.1} MP JPEG ({w}x{h}, {:.1} MB): full decode {full_ms:.1} ms, reduced decode \
         (to {}x{}) {reduced_ms:.1} ms = {:.2}x the fast path's batch-1 network time ({network_ms:.2} ms)",
        f64::from(w) * f64::from(h) / 1e6,
        bytes.len() as f64 / 1e6,
        reduced.1 .0,
        reduced.1 .1,
        reduced_ms / network_ms,
    );
    let dir = tempfile::tempdir()?;
    match super::jpeg_reference::pillow_times(&bytes, reduced.1, dir.path()) {
        Some(p) => println!(
            "  the same file with Pillow {} (libjpeg-turbo), independent reference: full decode {:.1} ms, draft to \
             {}x{} {:.1} ms, draft to 1/8 {:.1} ms (mostly entropy decoding, which every scale \
             must do in full: {:.2}x the network)",
            p.version,
            p.full_ms,
            reduced.1 .0,
            reduced.1 .1,
            p.draft_ms,
            p.eighth_ms,
            p.eighth_ms / network_ms
        ),
        None => {
            println!("  independent reference: not measured (python3 with Pillow not found; FOVEA_PYTHON names one)")
        }
    }
    Ok(())
}

#[cfg(feature = "ort")]
fn ort_engine(w: &Weights, variant: Variant, threads: usize) -> anyhow::Result<Box<dyn Backbone>> {
    Ok(Box::new(fovea_model::ort_backbone::OrtBackbone::from_weights(w, variant, threads)?))
}

#[cfg(not(feature = "ort"))]
fn ort_engine(_: &Weights, _: Variant, _: usize) -> anyhow::Result<Box<dyn Backbone>> {
    anyhow::bail!("this build has no `ort` feature")
}
