//! Throughput of a full-size EfficientNet-Lite0 (random weights) at batch 1 and 16.
//!
//! `cargo run -p fovea-kernels --release --example bench_lite -- [threads] [size] [seconds-per-case]`

use fovea_kernels::random::{NetSpec, Rng};
use fovea_kernels::{Config, FastLite, Fusion};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: f64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let threads = arg(1, 0.0) as usize;
    let size = arg(2, 224.0) as usize;
    let seconds = arg(3, 3.0);

    let tensors = NetSpec::lite0().tensors(42);
    let fusion = match std::env::var("FUSION").as_deref() {
        Ok("always") => Fusion::Always,
        Ok("never") => Fusion::Never,
        _ => Fusion::Auto,
    };
    let config = Config { threads, fusion, ..Config::default() };
    let net = FastLite::from_tensors_with(&tensors, &config).expect("build Lite0");
    println!("EfficientNet-Lite0, {size}x{size}, {} threads, {:?}, fusion {fusion:?}", net.threads(), net.isa());
    let image = Rng::new(1).vec(3 * size * size, 1.0);
    for split in [false, true] {
        let runs = 20;
        let layers = net.profile(&image, size, runs, split);
        let mut t = [0.0; 5];
        for &(kind, secs) in &layers {
            t[kind] += secs;
        }
        if std::env::var_os("LAYERS").is_some() {
            let names = ["stem", "expand", "depthwise", "project", "head"];
            for (kind, secs) in &layers {
                println!("  {:<10} {:.3} ms", names[*kind], secs * 1e3);
            }
        }
        let ms = |v: f64| v * 1e3;
        println!(
            "profile ({}): stem {:.2} expand {:.2} depthwise {:.2} project {:.2} head {:.2} = {:.2} ms/img",
            if split { "layers split over threads" } else { "one thread" },
            ms(t[0]),
            ms(t[1]),
            ms(t[2]),
            ms(t[3]),
            ms(t[4]),
            ms(t.iter().sum())
        );
    }
    for batch in [1usize, 16] {
        let input = Rng::new(1).vec(batch * 3 * size * size, 1.0);
        // Warm-up: fills the scratch pool and the caches.
        let emb = net.embed(&input, batch, size).expect("embed");
        let mean = emb.iter().map(|v| v.abs()).sum::<f32>() / emb.len() as f32;
        let mut runs = Vec::new();
        let cpu0 = cpu_seconds();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs_f64(seconds) || runs.len() < 3 {
            let t = Instant::now();
            std::hint::black_box(net.embed(&input, batch, size).expect("embed"));
            runs.push(t.elapsed().as_secs_f64() * 1e3 / batch as f64);
        }
        let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| (b - a) * 1e3 / (runs.len() * batch) as f64);
        runs.sort_by(f64::total_cmp);
        let median = runs[runs.len() / 2];
        println!(
            "batch {batch:>2}: median {median:.2} ms/img, best {:.2} ms/img, {:.0} img/s, CPU {} ms/img ({} runs, mean |emb| {mean:.3})",
            runs[0],
            1e3 / median,
            cpu.map_or("?".to_string(), |c| format!("{c:.2}")),
            runs.len()
        );
    }
}

/// User + system CPU seconds of this process (Linux), to tell a busy shared machine from a slow kernel.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th of them, in clock ticks.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
