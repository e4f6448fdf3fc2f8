//! `fovea identify DIR`: bulk-identify a folder of images; every prediction is stored and logged.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use fovea_app::csv_field;
use fovea_model::Variant;

use super::serve::{flat_folder, open_app, progress_bar, runtime, AppArgs};
use super::Engine;

#[derive(Args, Debug)]
pub struct IdentifyArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// A folder of images (not recursive)
    pub dir: PathBuf,
    /// Also write one CSV row per image: file, image id, top class, probability, unknown
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

pub fn identify(home: &Path, variant: Variant, engine: Engine, args: &IdentifyArgs) -> anyhow::Result<i32> {
    let files = flat_folder(&args.dir)?;
    anyhow::ensure!(!files.is_empty(), "{} holds no files", args.dir.display());
    runtime()?.block_on(async {
        let app = open_app(home, variant, engine, &args.app).await?;
        let mut items = Vec::with_capacity(files.len());
        let mut failed = Vec::new();
        for f in &files {
            match std::fs::read(f) {
                Ok(b) => items.push((f.display().to_string(), b.into())),
                Err(e) => failed.push((f.display().to_string(), e.to_string())),
            }
        }
        let bar = progress_bar(items.len() as u64);
        let start = Instant::now();
        let results = app.identify(items, "identify", |done, _| bar.set_position(done as u64)).await;
        bar.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();
        let mut csv = match &args.csv {
            Some(p) => {
                let mut w = std::io::BufWriter::new(
                    std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
                );
                writeln!(w, "file,image_id,class,probability,unknown")?;
                Some(w)
            }
            None => None,
        };
        let mut by_class: BTreeMap<String, usize> = BTreeMap::new();
        let mut ok = 0;
        for (name, r) in results {
            match r {
                Ok(out) => {
                    ok += 1;
                    let (class, p) = out.top.first().map_or(("", 0.0), |s| (s.class.as_str(), s.probability));
                    let key = if out.unknown || class.is_empty() { "(unknown)".to_owned() } else { class.to_owned() };
                    *by_class.entry(key).or_default() += 1;
                    if let Some(w) = csv.as_mut() {
                        writeln!(
                            w,
                            "{},{},{},{p:.4},{}",
                            csv_field(&name),
                            out.image_id,
                            csv_field(class),
                            out.unknown
                        )?;
                    }
                }
                Err(e) => failed.push((name, e.to_string())),
            }
        }
        if let Some(mut w) = csv {
            w.flush()?;
        }
        app.snapshot().await?;
        println!(
            "identified {ok} images in {seconds:.1} s ({:.1} img/s), {} failed",
            ok as f64 / seconds,
            failed.len()
        );
        for (class, n) in &by_class {
            println!("  {class:<30} {n}");
        }
        for (name, e) in &failed {
            eprintln!("  {name}: {e}");
        }
        Ok(if failed.is_empty() { 0 } else { 1 })
    })
}
