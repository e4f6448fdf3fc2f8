//! `fovea bench`: every speed target measured in one run, as ratios against a baseline timed in the same run
//! (the machine is noisy, so absolute numbers are printed for the record but never asserted).
//!
//! - backbone: fovea's fast path against ONNX Runtime (and burn) on the same weights and inputs, batch 1 and 16;
//! - online: head update and predict latency;
//! - http: classify over HTTP on 127.0.0.1 (p50, p99) against the raw model time;
//! - identify: bulk identification img/s against raw embed img/s;
//! - peak RSS after each part;
//! - `fovea bench train` (not part of `all`): fine-tune epoch time with and without the frozen-prefix cache;
//! - `fovea bench prepare` (not part of `all`): peak memory of a fine-tune's data preparation.

mod backbone;
mod jpeg_reference;
mod prepare;
mod scratch;
mod service;
mod train;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use fovea_model::Variant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchTarget {
    /// Everything below except training
    All,
    /// The backbone: fast path vs ONNX Runtime vs burn, batch 1 and 16
    Backbone,
    /// Online head update and predict latency
    Online,
    /// Classify over HTTP against the raw model time
    Http,
    /// Bulk identify against raw embedding throughput
    Identify,
    /// Fine-tune epoch time with and without the frozen-prefix cache, full forward + backward img/s
    Train,
    /// Peak memory of a fine-tune's data preparation over `--prepare-images` labelled photos
    Prepare,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure
    #[arg(default_value = "all")]
    pub target: BenchTarget,
    /// Threads for every engine (fast path, ONNX Runtime, burn) [default: all cores]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seconds of timed runs per case (at least 5 runs each, after a warm-up)
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Distinct images for the HTTP part; the identify part runs six rounds of three times as many
    #[arg(long, default_value_t = 48)]
    pub images: usize,
    /// Leave out the burn network (slow; it is the training network, not a serving path)
    #[arg(long)]
    pub skip_burn: bool,
    /// Labelled photos imported for `prepare` (each goes through the network once)
    #[arg(long, default_value_t = 2000)]
    pub prepare_images: usize,
    /// Photo to time decoding with (default: the chelsea sample)
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Folder on the disk the catalog will live on, where the http and identify parts keep their throwaway data
    /// (every classify waits for its fsyncs, so the disk matters) [default: the system temp folder]. Where /dev/shm
    /// is a tmpfs, both parts run a second time with their data there, to show what the durable writes cost
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

pub fn bench(home: &Path, variant: Variant, args: &BenchArgs) -> anyhow::Result<i32> {
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // burn's flex backend sizes rayon's global pool from this when it first starts; set before anything runs.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    println!(
        "fovea bench: {} ({} px), {threads} threads, load average {}",
        variant.name(),
        variant.input_size(),
        load()
    );
    println!("CPU: {}", cpu());
    let all = args.target == BenchTarget::All;
    let mut ok = true;
    let mut raw_b1_ms = None;
    if all || args.target == BenchTarget::Backbone {
        let r = backbone::run(home, variant, threads, args)?;
        ok &= r.agree;
        raw_b1_ms = Some(r.fast_b1_ms);
        rss("backbone");
    }
    if all || args.target == BenchTarget::Online {
        service::online(args.seconds);
        rss("online");
    }
    if all || args.target == BenchTarget::Http {
        service::http(home, variant, threads, args, raw_b1_ms)?;
        rss("http");
    }
    if all || args.target == BenchTarget::Identify {
        service::identify(home, variant, threads, args)?;
        rss("identify");
    }
    if args.target == BenchTarget::Train {
        train::run(home, variant, args)?;
        rss("train");
    }
    if args.target == BenchTarget::Prepare {
        prepare::run(home, variant, threads, args)?;
    }
    println!("load average after: {}", load());
    Ok(if ok { 0 } else { 1 })
}

/// Median of per-run values, after one warm-up call; runs for `seconds` and at least 5 times.
pub(crate) fn time_runs<T>(seconds: f64, mut run: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<(f64, T)> {
    let first = run()?;
    let mut ms = timed(seconds, 5, || Ok(std::hint::black_box(run()?)))?;
    Ok((percentile(&mut ms, 0.5), first))
}

/// Milliseconds of each run for `seconds`, at least twice, with no warm-up (the caller warms up).
pub(crate) fn time_turn(seconds: f64, run: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Vec<f64>> {
    timed(seconds, 2, run)
}

/// Milliseconds of each call of `run` for `seconds`, and at least `min_runs` of them.
fn timed<T>(seconds: f64, min_runs: usize, mut run: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<Vec<f64>> {
    let mut ms = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs_f64(seconds) || ms.len() < min_runs {
        let t = Instant::now();
        std::hint::black_box(run()?);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(ms)
}

pub(crate) fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// The CPU model and the SIMD extensions it reports, so every figure says where it was measured.
fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    let model = field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let family = match (field("cpu family"), field("model")) {
        (Some(f), Some(m)) => format!(" (family {f}, model {m})"),
        _ => String::new(),
    };
    let flags = field("flags").unwrap_or_default();
    let simd: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| ["sse4_2", "avx", "avx2", "fma"].contains(f) || f.starts_with("avx512") || f.starts_with("amx"))
        .collect();
    let simd = if simd.is_empty() { "none reported".to_owned() } else { simd.join(" ") };
    format!("{model}{family}, {} logical cores; SIMD: {simd}", num_cpus())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A memory figure of this process from /proc/self/status (`VmRSS`, `VmHWM`...), in KiB.
pub(crate) fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.split(':').next() == Some(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds this process has used, user plus system, all threads (Linux: /proc/self/stat); `None` elsewhere.
pub(crate) fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are its 12th and 13th, in clock ticks (100 a
    // second on Linux, whatever the kernel's HZ).
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Peak resident memory so far (VmHWM), which only grows: each line bounds everything measured up to it.
fn rss(after: &str) {
    let peak = status_kib("VmHWM").map_or_else(|| "?".into(), |kib| format!("{kib} kB"));
    println!("peak RSS after {after}: {peak}\n");
}
