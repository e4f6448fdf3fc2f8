//! `fovea bench embed`: decode + preprocess timed apart from the network, at batch 1 and 16.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use fovea_model::Variant;
use fovea_vision::DecodeLimits;

use super::{load_backbone, Engine};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BenchTarget {
    /// Backbone embedding throughput and latency
    Embed,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    pub target: BenchTarget,
    /// Timed repetitions per measurement (after one warm-up)
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Image to decode (default: the chelsea sample photo)
    #[arg(long)]
    pub image: Option<PathBuf>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn bench(home: &Path, variant: Variant, args: &BenchArgs) -> anyhow::Result<i32> {
    let BenchTarget::Embed = args.target;
    let iters = args.iters.max(1);
    let image = match &args.image {
        Some(p) => p.clone(),
        None => fovea_model::fetch::ensure_sample_photos(home)?.join("chelsea.png"),
    };
    let bytes = std::fs::read(&image)?;
    let size = variant.input_size();
    let limits = DecodeLimits::default();

    let mut decode_ms = Vec::new();
    let mut input = Vec::new();
    for _ in 0..iters + 1 {
        let t = Instant::now();
        let img = fovea_vision::decode(&bytes, &limits)?;
        input = fovea_vision::to_input(&img, size as u32);
        decode_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    decode_ms.remove(0);
    let (w, h) = image::image_dimensions(&image).unwrap_or((0, 0));
    println!(
        "backbone {} ({size} px), threads: {}",
        variant.name(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("decode + preprocess ({w}x{h} {}): {:.2} ms/img", image.display(), median(decode_ms));
    let mut per_engine = Vec::new();
    for engine in [Engine::Burn, Engine::Fast] {
        let backbone = load_backbone(home, variant, engine)?;
        for batch in [1usize, 16] {
            let data: Vec<f32> = input.iter().copied().cycle().take(input.len() * batch).collect();
            backbone.run(&data, batch)?;
            let mut times = Vec::new();
            for _ in 0..iters {
                let t = Instant::now();
                backbone.run(&data, batch)?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let per_img = median(times) / batch as f64;
            println!("{engine:?} network, batch {batch:>2}: {per_img:7.2} ms/img {:7.1} img/s", 1e3 / per_img);
            per_engine.push((engine, batch, per_img));
        }
    }
    for batch in [1usize, 16] {
        let time = |e: Engine| per_engine.iter().find(|r| r.0 == e && r.1 == batch).map(|r| r.2).unwrap_or(f64::NAN);
        println!("speed-up fast / burn at batch {batch:>2}: {:.2}x", time(Engine::Burn) / time(Engine::Fast));
    }
    Ok(0)
}
