//! The served paths: online head latency, classify over HTTP, bulk identify — each against its raw baseline.

use std::io::{Cursor, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use fovea_app::{App, AppConfig};
use fovea_learn::head::Head;
use fovea_model::{Backbone, FastBackbone, Variant, Weights};
use image::RgbImage;

use super::{percentile, time_runs, BenchArgs};

pub fn sample_photos(home: &Path) -> anyhow::Result<Vec<RgbImage>> {
    let dir = fovea_model::fetch::ensure_sample_photos(home)?;
    ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "motorcycle_left.png"]
        .iter()
        .filter(|n| dir.join(n).exists())
        .map(|n| Ok(fovea_vision::decode_file(&dir.join(n), &Default::default())?))
        .collect()
}

pub fn png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).expect("PNG encodes into memory");
    out
}

/// `n` distinct crops of the sample photos (cycling through them), so no image repeats another, within a call or
/// across calls with different salts: the crop's place and size vary with the index and salt, and its top-left 8x8
/// pixels carry `salt` and the index as black and white squares (crops alone repeated across salts 3 apart, so a
/// later round of `bench identify` hit the embedding cache).
pub fn distinct_crops(photos: &[RgbImage], n: usize, salt: u32) -> Vec<RgbImage> {
    (0..n)
        .map(|i| {
            let img = &photos[i % photos.len()];
            let k = (i / photos.len()) as u32 * 3 + salt;
            let (w, h) = (img.width() * (90 - k % 25) / 100, img.height() * (90 - k % 21) / 100);
            let mut crop =
                image::imageops::crop_imm(img, k % (img.width() - w).max(1), k % (img.height() - h).max(1), w, h)
                    .to_image();
            stamp(&mut crop, u64::from(salt) << 32 | i as u64);
            crop
        })
        .collect()
}

/// Writes the 64 bits of `id` into the top-left 8x8 pixels, one black or white pixel per bit.
fn stamp(img: &mut RgbImage, id: u64) {
    for bit in 0..64u32 {
        let (x, y) = (bit % 8, bit / 8);
        if x < img.width() && y < img.height() {
            let v = if id >> bit & 1 == 1 { 255 } else { 0 };
            img.put_pixel(x, y, image::Rgb([v, v, v]));
        }
    }
}

/// `n` distinct camera-sized JPEGs (crops of the sample photos), so no request hits the embedding cache.
pub(super) fn distinct_jpegs(photos: &[RgbImage], n: usize, salt: u32) -> Vec<Vec<u8>> {
    distinct_crops(photos, n, salt)
        .into_iter()
        .map(|crop| {
            let mut out = Vec::new();
            crop.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg).expect("JPEG encodes");
            out
        })
        .collect()
}

pub fn online(seconds: f64) {
    use rand::{Rng, SeedableRng};
    let (dim, classes) = (1280, 50);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let means: Vec<Vec<f32>> = (0..classes).map(|_| (0..dim).map(|_| rng.random_range(0.0..2.0)).collect()).collect();
    let sample = |rng: &mut rand::rngs::StdRng, c: usize| -> Vec<f32> {
        means[c].iter().map(|m| m + rng.random_range(-0.5..0.5)).collect()
    };
    let names: Vec<String> = (0..classes).map(|c| format!("class{c}")).collect();
    let mut head = fovea_learn::slda::SldaHead::new(dim);
    for i in 0..classes * 4 {
        let x = sample(&mut rng, i % classes);
        let _ = head.learn_named(&x, &names[i % classes]);
    }
    let probes: Vec<Vec<f32>> = (0..64).map(|i| sample(&mut rng, i % classes)).collect();
    let mut i = 0;
    let update_ms = time_runs(seconds, || {
        i += 1;
        head.learn_named(&probes[i % probes.len()], &names[i % classes])?;
        Ok(())
    })
    .map_or(f64::NAN, |r| r.0);
    let predict_ms = time_runs(seconds, || {
        i += 1;
        head.predict(&probes[i % probes.len()])?;
        Ok(())
    })
    .map_or(f64::NAN, |r| r.0);
    println!(
        "online SLDA head ({dim}-d, {classes} classes): update {:.3} ms, predict {:.3} ms (medians)",
        update_ms, predict_ms
    );
}

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

pub(super) async fn fresh_app(home: &Path, variant: Variant, threads: usize, dir: &Path) -> anyhow::Result<Arc<App>> {
    let w = Weights::load_safetensors(&fovea_model::ensure_weights(home, variant)?)?;
    let backbone = Box::new(FastBackbone::new(&w, variant, threads)?);
    Ok(App::open(AppConfig { data_dir: dir.to_owned(), variant, ..Default::default() }, backbone).await?)
}

/// An HTTP/1.1 client on one kept-alive connection, as browsers and HTTP libraries use a server: a fresh TCP
/// connection per request would time the connection's setup and teardown, not the classify. A dozen lines of std
/// beat pulling an HTTP client into the binary just for the benchmark.
struct KeepAlive {
    addr: String,
    stream: std::io::BufReader<TcpStream>,
}

impl KeepAlive {
    fn connect(addr: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Self { addr: addr.to_owned(), stream: std::io::BufReader::new(stream) })
    }

    /// One POST; returns the status code and the `Server-Timing` header's stages (name, ms) once the whole
    /// response has been read.
    fn post(&mut self, path: &str, body: &[u8]) -> anyhow::Result<(u16, Vec<(String, f64)>)> {
        use std::io::BufRead;
        let addr = &self.addr;
        let s = self.stream.get_mut();
        write!(s, "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n")?;
        write!(s, "Content-Length: {}\r\n\r\n", body.len())?;
        s.write_all(body)?;
        let (mut status, mut length, mut line, mut stages) = (None, None, String::new(), Vec::new());
        loop {
            line.clear();
            anyhow::ensure!(self.stream.read_line(&mut line)? > 0, "the server closed the connection");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if status.is_none() {
                status = l.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
            } else if let Some((name, value)) = l.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                } else if name.eq_ignore_ascii_case("server-timing") {
                    stages = fovea_app::read_server_timing(value);
                }
            }
        }
        let length = length.ok_or_else(|| anyhow::anyhow!("a response without Content-Length"))?;
        std::io::copy(&mut (&mut self.stream).take(length as u64), &mut std::io::sink())?;
        Ok((status.ok_or_else(|| anyhow::anyhow!("bad response status line"))?, stages))
    }
}

pub fn http(
    home: &Path,
    variant: Variant,
    threads: usize,
    args: &BenchArgs,
    raw_b1_ms: Option<f64>,
) -> anyhow::Result<()> {
    let photos = sample_photos(home)?;
    // Three requests per --images: a p50 ratio from 47 requests moved by +-0.03 between runs on the 2-core machine.
    let jpegs = distinct_jpegs(&photos, (args.images * 3).max(8), 1);
    let w = Weights::load_safetensors(&fovea_model::ensure_weights(home, variant)?)?;
    let raw = FastBackbone::new(&w, variant, threads)?;
    let size = variant.input_size() as u32;
    // The raw model time: the network alone at batch 1 (with its ImageNet classifier, as the backbone line measures
    // it), and decode + preprocess + embed on the same JPEGs.
    let network_ms = match raw_b1_ms {
        Some(ms) => ms,
        None => time_runs(args.seconds, || Ok(raw.run(&fovea_vision::to_input(&photos[0], size), 1)?))?.0,
    };
    // The pipeline embeds only, as serving does (its heads classify embeddings): the same network work as a request.
    let pipeline = |j: &[u8]| -> anyhow::Result<f64> {
        let t = Instant::now();
        let img = fovea_vision::decode(j, &Default::default())?;
        raw.embed(&fovea_vision::to_input(&img, size), 1)?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };

    let dir = super::scratch::folder(args.data_dir.as_deref())?;
    let rt = runtime()?;
    let app = rt.block_on(fresh_app(home, variant, threads, dir.path()))?;
    let mut on_disk = classify_over_http(&rt, app, &jpegs, &pipeline)?;
    let (low, high) = on_disk.ratio_interval();
    let pipeline_ms = percentile(&mut on_disk.raw_ms, 0.5);
    let (p50, p99) = (percentile(&mut on_disk.latencies, 0.5), percentile(&mut on_disk.latencies, 0.99));
    println!(
        "classify over HTTP, {} new JPEGs one at a time on one kept-alive connection: p50 {p50:.2} ms, p99 {p99:.2} ms",
        on_disk.latencies.len()
    );
    println!(
        "raw model time: network {network_ms:.2} ms, decode + preprocess + embed {pipeline_ms:.2} ms; \
         classify p50 is {:.2}x the network and {:.2}x the whole raw pipeline (95% interval {low:.2}-{high:.2}x; \
         target <= 1.2x)",
        p50 / network_ms,
        p50 / pipeline_ms
    );
    println!(
        "  inside the server (medians of its Server-Timing, ms; store runs beside decode and network): {}",
        on_disk.stage_medians()
    );
    if let Some(memory) = super::scratch::memory_folder(dir.path()) {
        let dir = tempfile::Builder::new().prefix("fovea-bench-").tempdir_in(&memory)?;
        let app = rt.block_on(fresh_app(home, variant, threads, dir.path()))?;
        let mut in_memory = classify_over_http(&rt, app, &jpegs, &pipeline)?;
        let (low, high) = in_memory.ratio_interval();
        let ratio = percentile(&mut in_memory.latencies, 0.5) / percentile(&mut in_memory.raw_ms, 0.5);
        println!(
            "  the same with the data folder on tmpfs ({}: fsync returns at once, so the difference is what durable \
             writes to this disk cost; serving always syncs): {ratio:.2}x the raw pipeline (95% interval \
             {low:.2}-{high:.2}x); {}",
            memory.display(),
            in_memory.stage_medians()
        );
    }
    rt.shutdown_background();
    Ok(())
}

/// One app's classify requests over HTTP, each beside a run of the raw pipeline on the same JPEG.
struct HttpRun {
    latencies: Vec<f64>,
    raw_ms: Vec<f64>,
    /// Each Server-Timing stage's durations, in the order the server names them.
    stages: Vec<(String, Vec<f64>)>,
}

impl HttpRun {
    fn ratio_interval(&self) -> (f64, f64) {
        median_ratio_interval(&self.latencies, &self.raw_ms)
    }

    /// `name median` of each stage, as the server reported them.
    fn stage_medians(&mut self) -> String {
        let medians: Vec<String> =
            self.stages.iter_mut().map(|(name, all)| format!("{name} {:.2}", percentile(all, 0.5))).collect();
        medians.join(", ")
    }
}

/// Serves `app` on a local port and classifies every JPEG but the first (the warm-up) one at a time on one kept-alive
/// connection, each back to back with the raw pipeline on the same bytes (in alternating order), so a busy spell on
/// a shared machine hits both alike. The raw pipeline does not touch the app, so each request is a cache miss.
fn classify_over_http(
    rt: &tokio::runtime::Runtime,
    app: Arc<App>,
    jpegs: &[Vec<u8>],
    pipeline: &dyn Fn(&[u8]) -> anyhow::Result<f64>,
) -> anyhow::Result<HttpRun> {
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?.to_string();
    let server = rt.spawn(async move { axum::serve(listener, fovea_server::create_app(app, true)).await });
    let mut client = KeepAlive::connect(&addr)?;
    let mut run = HttpRun { latencies: Vec::new(), raw_ms: Vec::new(), stages: Vec::new() };
    client.post("/api/v1/classify", &jpegs[0])?;
    pipeline(&jpegs[0])?;
    for (i, j) in jpegs[1..].iter().enumerate() {
        if i % 2 == 0 {
            run.raw_ms.push(pipeline(j)?);
        }
        let t = Instant::now();
        let (status, timing) = client.post("/api/v1/classify", j)?;
        run.latencies.push(t.elapsed().as_secs_f64() * 1e3);
        for (name, ms) in timing {
            match run.stages.iter_mut().find(|(n, _)| *n == name) {
                Some((_, all)) => all.push(ms),
                None => run.stages.push((name, vec![ms])),
            }
        }
        anyhow::ensure!(status == 200, "classify answered {status}");
        if i % 2 == 1 {
            run.raw_ms.push(pipeline(j)?);
        }
    }
    server.abort();
    Ok(run)
}

/// A 95% bootstrap interval of `median(a) / median(b)`, resampling the pairs `(a[i], b[i])` together (each pair was
/// measured back to back, so a busy spell hits both); seeded, so a run's interval repeats.
fn median_ratio_interval(a: &[f64], b: &[f64]) -> (f64, f64) {
    use rand::{Rng, SeedableRng};
    let n = a.len().min(b.len());
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut ratios: Vec<f64> = (0..2000)
        .map(|_| {
            let picks: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            let mut ra: Vec<f64> = picks.iter().map(|&i| a[i]).collect();
            let mut rb: Vec<f64> = picks.iter().map(|&i| b[i]).collect();
            percentile(&mut ra, 0.5) / percentile(&mut rb, 0.5)
        })
        .collect();
    (percentile(&mut ratios, 0.025), percentile(&mut ratios, 0.975))
}

fn write_files(dir: &Path, jpegs: &[Vec<u8>]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (i, j) in jpegs.iter().enumerate() {
        std::fs::write(dir.join(format!("img{i:05}.jpg")), j)?;
    }
    Ok(())
}

pub fn identify(home: &Path, variant: Variant, threads: usize, args: &BenchArgs) -> anyhow::Result<()> {
    let photos = sample_photos(home)?;
    // A bulk run is judged on its steady state: each round starts with an empty pipeline (the network waits for the
    // first decodes) and ends by draining it, which took 3-7% of a 48-image round on a 2-core machine and 1-2% of
    // a 144-image one.
    let n = args.images.max(16) * 3;
    let w = Weights::load_safetensors(&fovea_model::ensure_weights(home, variant)?)?;
    let size = variant.input_size() as u32;
    let raw = FastBackbone::new(&w, variant, threads)?;
    raw.run(&fovea_vision::to_input(&photos[0], size), 1)?;
    let dir = super::scratch::folder(args.data_dir.as_deref())?;
    let rt = runtime()?;
    // The same run with the app's data on tmpfs, where fsync returns at once (see `scratch`): what durable writes
    // to this disk cost a bulk run.
    let memory = super::scratch::memory_folder(dir.path())
        .map(|m| tempfile::Builder::new().prefix("fovea-bench-").tempdir_in(m))
        .transpose()?;
    let mut apps = vec![rt.block_on(fresh_app(home, variant, threads, dir.path()))?];
    if let Some(m) = &memory {
        apps.push(rt.block_on(fresh_app(home, variant, threads, m.path()))?);
    }
    // Warmed like the raw network above, with an image no round repeats: the first round must not carry the app's
    // first pass and first commit alone.
    let warm = distinct_jpegs(&photos, 1, 9).remove(0);
    for app in &apps {
        rt.block_on(app.classify(warm.clone().into(), "bench"))?;
    }
    // Rounds alternate the two, each on images never seen before, so a noisy neighbour hurts both alike.
    // CPU time beside wall time: on a machine whose cores the bulk run fills, the ratio is what each image costs the
    // CPU, so this says whether a shortfall is work the app adds or cores left idle.
    let mut raw_cpu = 0.0;
    let mut app_cpu = vec![0.0; apps.len()];
    let cpu = || super::process_cpu_seconds().unwrap_or(f64::NAN);
    // Each round's times, for an interval: on a shared 2-core VM the whole-run ratio of one binary ranged
    // 0.71-0.86x over five runs of three rounds.
    let mut raw_rounds = Vec::new();
    let mut app_rounds = vec![Vec::new(); apps.len()];
    const ROUNDS: u32 = 6;
    for round in 0..ROUNDS {
        // Raw embed: read, decode and preprocess each file, then the network in batches of 16 — what a script
        // would do.
        let raw_dir = dir.path().join(format!("raw{round}"));
        write_files(&raw_dir, &distinct_jpegs(&photos, n, 10 + round))?;
        let (t, cpu0) = (Instant::now(), cpu());
        let files: Vec<_> = fovea_app::walk_files(&raw_dir).collect::<Result<_, _>>().map_err(anyhow::Error::msg)?;
        for chunk in files.chunks(16) {
            let mut input = Vec::new();
            for f in chunk {
                input.extend(fovea_vision::to_input(
                    &fovea_vision::decode(&std::fs::read(f)?, &Default::default())?,
                    size,
                ));
            }
            raw.embed(&input, chunk.len())?;
        }
        raw_rounds.push(t.elapsed().as_secs_f64());
        raw_cpu += cpu() - cpu0;
        // The same as `fovea identify DIR`: a collection walked, stored, embedded, predicted, logged and committed.
        for (a, app) in apps.iter().enumerate() {
            let folder = dir.path().join(format!("collection{round}-{a}"));
            write_files(&folder, &distinct_jpegs(&photos, n, 20 + round))?;
            let (t, cpu0) = (Instant::now(), cpu());
            let done = rt.block_on(async {
                let c = app.create_collection(None, &folder, None, "bench").await?;
                app.run_collection(c.id, |_| {}, Default::default()).await
            })?;
            app_rounds[a].push(t.elapsed().as_secs_f64());
            app_cpu[a] += cpu() - cpu0;
            anyhow::ensure!(done.failed == 0 && done.processed == n as u64, "identify: {done:?}");
        }
    }
    let total = (n as u32 * ROUNDS) as f64;
    let (raw_s, app_s): (f64, f64) = (raw_rounds.iter().sum(), app_rounds[0].iter().sum());
    let (rate, raw_rate) = (total / app_s, total / raw_s);
    let (low, high) = median_ratio_interval(&raw_rounds, &app_rounds[0]);
    println!(
        "bulk identify of {} new JPEG files as collections: {rate:.1} img/s (stored, embedded, predicted, logged, \
         committed); raw read + decode + embed {raw_rate:.1} img/s; ratio {:.2}x (rounds' median 95% interval \
         {low:.2}-{high:.2}x; target >= 0.95x)",
        total,
        rate / raw_rate
    );
    println!(
        "  CPU per image (all threads): identify {:.2} ms, raw {:.2} ms; cores busy: identify {:.2}, raw {:.2}",
        app_cpu[0] * 1e3 / total,
        raw_cpu * 1e3 / total,
        app_cpu[0] / app_s,
        raw_cpu / raw_s
    );
    if let (Some(m), Some(rounds)) = (&memory, app_rounds.get(1)) {
        let (low, high) = median_ratio_interval(&raw_rounds, rounds);
        println!(
            "  the same with the data folder on tmpfs ({}: fsync returns at once, so the difference is what durable \
             writes to this disk cost; serving always syncs): {:.1} img/s, ratio {:.2}x (rounds' median 95% interval \
             {low:.2}-{high:.2}x); CPU per image {:.2} ms",
            m.path().parent().unwrap_or(m.path()).display(),
            total / rounds.iter().sum::<f64>(),
            raw_s / rounds.iter().sum::<f64>(),
            app_cpu[1] * 1e3 / total
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_with_different_salts_never_repeat() {
        let photo = RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 90]));
        let photos = [photo.clone(), image::imageops::flip_horizontal(&photo)];
        let mut seen = std::collections::HashSet::new();
        for salt in [20, 21, 22, 23, 26, 29] {
            for crop in distinct_crops(&photos, 40, salt) {
                assert!(seen.insert(crop.into_raw()), "salt {salt} repeats a crop");
            }
        }
    }

    #[test]
    fn the_median_ratio_interval_brackets_the_ratio_and_narrows_with_more_pairs() {
        let pairs = |n: usize| -> (Vec<f64>, Vec<f64>) {
            let b: Vec<f64> = (0..n).map(|i| 10.0 + (i * 7 % 13) as f64 / 13.0).collect();
            let a: Vec<f64> = b.iter().enumerate().map(|(i, x)| x * 1.2 + (i * 5 % 11) as f64 / 11.0).collect();
            (a, b)
        };
        let (a, b) = pairs(48);
        let (mut ma, mut mb) = (a.clone(), b.clone());
        let ratio = percentile(&mut ma, 0.5) / percentile(&mut mb, 0.5);
        let (low, high) = median_ratio_interval(&a, &b);
        assert!(low <= ratio && ratio <= high && low < high, "{low} {ratio} {high}");
        let (low2, high2) = median_ratio_interval(&pairs(480).0, &pairs(480).1);
        assert!(high2 - low2 < high - low, "{low2}-{high2} against {low}-{high}");
        assert!(median_ratio_interval(&[], &[]).0.is_nan());
    }
}
