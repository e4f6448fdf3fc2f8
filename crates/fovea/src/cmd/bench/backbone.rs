//! The backbone side by side: fast path, ONNX Runtime and burn on the same weights and preprocessed inputs.

use std::path::Path;

use fovea_model::{Backbone, BurnBackbone, FastBackbone, Variant, Weights};
use image::RgbImage;

use super::{percentile, time_runs, time_turn, BenchArgs};

/// Turns each engine gets per batch size.
const ROUNDS: usize = 8;

pub struct BackboneResult {
    pub fast_b1_ms: f64,
    /// The fast path and ONNX Runtime agree to 1e-4 (relative, as in the tests).
    pub agree: bool,
}

/// The smallest and the largest of `v`: a ratio's range over the rounds.
fn extremes(v: &[f64]) -> (f64, f64) {
    v.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)))
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
    println!(
        "(engines take turns in {ROUNDS} rounds of {:.2} s each, so a busy spell on a shared machine hits them alike; \
         ms/img is the median of all timed runs, the ratio's range is over the rounds)",
        args.seconds / ROUNDS as f64
    );
    for batch in [1usize, 16] {
        let x = &input[..batch * 3 * size * size];
        let mut runs = vec![Vec::new(); engines.len()];
        let mut outs = Vec::new();
        for (name, engine) in &engines {
            let out = engine.run(x, batch).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            outs.push(out);
        }
        for round in 0..ROUNDS {
            // Alternating the order (ABBA) gives no engine the advantage of always going first after a pause.
            let mut order: Vec<usize> = (0..engines.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let engine = &engines[i].1;
                // ONNX Runtime's threads spin for a while after a run; a pause lets them park before the next turn,
                // and one untimed run warms the caches again.
                std::thread::sleep(std::time::Duration::from_millis(50));
                engine.run(x, batch)?;
                let turn = time_turn(args.seconds / ROUNDS as f64, || {
                    std::hint::black_box(engine.run(x, batch)?);
                    Ok(())
                })?;
                runs[i].push(turn.into_iter().map(|ms| ms / batch as f64).collect::<Vec<_>>());
            }
        }
        let medians: Vec<f64> = runs.iter().map(|r| percentile(&mut r.concat(), 0.5)).collect();
        for ((name, _), per_img) in engines.iter().zip(&medians) {
            println!("{name:<6} {batch:>5} {per_img:>9.2} {:>9.1}", 1e3 / per_img);
        }
        if batch == 1 {
            fast_b1_ms = medians[0];
        }
        for (i, (name, _)) in engines.iter().enumerate().skip(1) {
            let (de, dl) = (worst(&outs[0].embeddings, &outs[i].embeddings), worst(&outs[0].logits, &outs[i].logits));
            let per_round: Vec<f64> = (0..ROUNDS)
                .map(|r| percentile(&mut runs[i][r].clone(), 0.5) / percentile(&mut runs[0][r].clone(), 0.5))
                .collect();
            let (lo, hi) = extremes(&per_round);
            println!(
                "batch {batch:>2}: fast is {:.2}x {name} (rounds {lo:.2}-{hi:.2}x; time ratio {name}/fast, >= 1 means fast \
                 is as quick or quicker); worst difference embeddings {de:.1e}, logits {dl:.1e}",
                medians[i] / medians[0]
            );
            if *name == "ort" {
                agree &= de < 1e-4 && dl < 1e-4;
            }
        }
    }
    println!("fast path and ONNX Runtime agree to 1e-4: {}", if agree { "yes" } else { "NO" });
    let network = || -> anyhow::Result<()> {
        std::hint::black_box(engines[0].1.run(&input[..3 * size * size], 1)?);
        Ok(())
    };
    large_jpeg(&photos[0], size, args, &network)?;
    Ok(BackboneResult { fast_b1_ms, agree })
}

/// Decode + preprocess of a 12-megapixel JPEG, full size and reduced in the DCT domain, against the fast path's
/// batch-1 network time (`network` runs it once), the two taking turns as the engines do. The JPEG is `--image`
/// when that is a JPEG, else the sample photo enlarged to 4000 x 3000 with sensor-like grain (an enlarged photo
/// alone is unnaturally smooth, and smooth JPEGs decode faster), written twice: with 4:2:0 chroma as phones write
/// it, and with full chroma (4:4:4) as some editors do.
fn large_jpeg(photo: &RgbImage, size: usize, args: &BenchArgs, network: Network) -> anyhow::Result<()> {
    let given = args.image.as_ref().map(std::fs::read).transpose()?;
    let files = match given.filter(|b| b.starts_with(&[0xFF, 0xD8])) {
        Some(b) => vec![("--image", b)],
        None => {
            let mut big = image::imageops::resize(photo, 4000, 3000, image::imageops::FilterType::Triangle);
            let grain = fovea_vision::fixtures::noise(big.as_raw().len(), 12);
            for (p, g) in big.iter_mut().zip(grain) {
                *p = p.saturating_add(g % 13).saturating_sub(6);
            }
            vec![
                ("4:2:0", fovea_vision::fixtures::jpeg_420(&big, 90)),
                ("4:4:4", fovea_vision::fixtures::jpeg(&big, 90)),
            ]
        }
    };
    for (kind, bytes) in files {
        one_large_jpeg(kind, &bytes, size, args, network)?;
    }
    Ok(())
}

/// One batch-1 run of the fast path.
type Network<'a> = &'a dyn Fn() -> anyhow::Result<()>;

fn one_large_jpeg(kind: &str, bytes: &[u8], size: usize, args: &BenchArgs, network: Network) -> anyhow::Result<()> {
    let limits = fovea_vision::DecodeLimits::default();
    let header = fovea_vision::decode(bytes, &limits)?;
    let size = size as u32;
    let (full_ms, _) =
        time_runs(args.seconds.min(2.0), || Ok(fovea_vision::to_input(&fovea_vision::decode(bytes, &limits)?, size)))?;
    let reduced_decode = || -> anyhow::Result<(Vec<f32>, (u32, u32))> {
        let img = fovea_vision::decode_for_input(bytes, &limits, size)?;
        Ok((fovea_vision::to_input(&img, size), img.dimensions()))
    };
    let reduced = reduced_decode()?;
    network()?;
    // Turns as the engines take them (ABBA), so that a busy spell on a shared machine slows both alike.
    let turn = args.seconds.min(2.0) / ROUNDS as f64;
    let (mut decode_runs, mut network_runs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let decode = || time_turn(turn, || reduced_decode().map(|_| ()));
        let (mut d, mut n) = if round % 2 == 0 {
            let d = decode()?;
            (d, time_turn(turn, network)?)
        } else {
            let n = time_turn(turn, network)?;
            (decode()?, n)
        };
        ratios.push(percentile(&mut d, 0.5) / percentile(&mut n, 0.5));
        decode_runs.extend(d);
        network_runs.extend(n);
    }
    let (reduced_ms, network_ms) = (percentile(&mut decode_runs, 0.5), percentile(&mut network_runs, 0.5));
    let (lo, hi) = extremes(&ratios);
    let (w, h) = header.dimensions();
    println!(
        "decode + preprocess of a {:.1} MP JPEG ({kind}, {w}x{h}, {:.1} MB): full decode {full_ms:.1} ms, reduced \
         decode (to {}x{}) {reduced_ms:.1} ms = {:.2}x the fast path's batch-1 network time ({network_ms:.2} ms, \
         timed in turns with the decode; rounds {lo:.2}-{hi:.2}x)",
        f64::from(w) * f64::from(h) / 1e6,
        bytes.len() as f64 / 1e6,
        reduced.1 .0,
        reduced.1 .1,
        reduced_ms / network_ms,
    );
    let dir = tempfile::tempdir()?;
    match super::jpeg_reference::pillow_times(bytes, reduced.1, dir.path()) {
        Some(p) => println!(
            "  the same file with Pillow {} (libjpeg-turbo, one thread), independent reference: full decode {:.1} ms, \
             draft to {}x{} {:.1} ms, draft to 1/8 {:.1} ms (mostly entropy decoding, which every scale must do in \
             full: {:.2}x the network)",
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
