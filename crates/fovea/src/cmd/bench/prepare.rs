//! Peak memory of a fine-tune's data preparation (`fovea bench prepare`): the catalog read, every labelled photo
//! decoded once for its hash, and only the photos within the memory budget held decoded — the rest are reloaded
//! when training uses them. Without the budget every decoded photo was held: about 4.4 GiB for 20 000 photos.

use std::time::Instant;

use super::service::{distinct_jpegs, fresh_app, runtime, sample_photos};
use super::{status_kib, BenchArgs};
use fovea_app::ImportReport;
use fovea_model::Variant;

/// Resident memory now (`VmRSS`) and its peak since the last reset (`VmHWM`), in KiB.
fn memory() -> anyhow::Result<(u64, u64)> {
    let field = |key: &str| status_kib(key).ok_or_else(|| anyhow::anyhow!("no {key} in /proc/self/status"));
    Ok((field("VmRSS")?, field("VmHWM")?))
}

pub fn run(home: &std::path::Path, variant: Variant, threads: usize, args: &BenchArgs) -> anyhow::Result<()> {
    let photos = sample_photos(home)?;
    let n = args.prepare_images;
    let dir = tempfile::tempdir()?;
    let rt = runtime()?;
    let app = rt.block_on(fresh_app(home, variant, threads, dir.path()))?;
    let t = Instant::now();
    let progress = indicatif::ProgressBar::new(n as u64).with_message("importing labelled photos");
    let mut report = ImportReport::default();
    // In slices, so the generated files never add up in memory before the measurement.
    for start in (0..n).step_by(100) {
        let jpegs = distinct_jpegs(&photos, (n - start).min(100), 1000 + start as u32);
        for (i, jpeg) in jpegs.into_iter().enumerate() {
            let class = format!("c{}", (start + i) % 10);
            rt.block_on(app.import_bytes(jpeg.into(), "bench", Some(&class), &mut report))?;
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    println!("imported {} labelled photos in 10 classes in {:.0} s", report.imported, t.elapsed().as_secs_f64());
    let (before, _) = memory()?;
    // Resets the peak to the current RSS, so the peak read below is the preparation's own.
    std::fs::write("/proc/self/clear_refs", "5")?;
    let t = Instant::now();
    let (prepared, kept) = rt.block_on(app.prepare_training())?;
    let (_, peak) = memory()?;
    println!(
        "training preparation of {prepared} labelled photos ({kept} held decoded, the rest reloaded on use) in {:.1} s: \
         RSS before {} MiB, peak {} MiB (+{} MiB)",
        t.elapsed().as_secs_f64(),
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before) / 1024
    );
    rt.shutdown_background();
    Ok(())
}
