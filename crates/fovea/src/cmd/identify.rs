//! `fovea identify DIR`: bulk-identify a folder of images; every prediction is stored and logged.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use fovea_app::csv_field;
use fovea_model::Variant;

use super::serve::{open_app, runtime, AppArgs};
use super::Engine;

#[derive(Args, Debug)]
pub struct IdentifyArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// A folder of images, walked recursively
    pub dir: PathBuf,
    /// Also write one CSV row per image: file, image id, top class, probability, unknown
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

/// The files under `dir`, recursively, in sorted order, found lazily: a folder's listing is read when the walk
/// reaches it, so a collection of any size is never listed into memory at once.
pub(crate) fn walk_files(dir: &Path) -> impl Iterator<Item = Result<PathBuf, String>> {
    walkdir::WalkDir::new(dir).sort_by_file_name().into_iter().filter_map(|e| match e {
        Ok(e) if e.file_type().is_file() => Some(Ok(e.into_path())),
        Ok(_) => None,
        Err(e) => Some(Err(e.to_string())),
    })
}

pub fn identify(home: &Path, variant: Variant, engine: Engine, args: &IdentifyArgs) -> anyhow::Result<i32> {
    // Stops at the first file: the walk itself is never collected.
    anyhow::ensure!(walk_files(&args.dir).any(|f| f.is_ok()), "{} holds no files", args.dir.display());
    runtime()?.block_on(async {
        let app = open_app(home, variant, engine, &args.app).await?;
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
        // The total is unknown until the walk ends: a count, not a bar.
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {pos} images [{elapsed}]").expect("valid"));
        let start = Instant::now();
        let mut by_class: BTreeMap<String, usize> = BTreeMap::new();
        let (mut ok, mut failed, mut write_error) = (0usize, Vec::new(), None);
        let items = walk_files(&args.dir).map(|f| match f {
            Ok(path) => (
                path.display().to_string(),
                Box::new(move || std::fs::read(&path).map(Into::into).map_err(|e| e.to_string())) as Loader,
            ),
            Err(e) => (e.clone(), Box::new(move || Err(e)) as Loader),
        });
        app.identify_stream(items, "identify", |(name, r)| {
            bar.inc(1);
            match r {
                Ok(out) => {
                    ok += 1;
                    let (class, p) = out.top.first().map_or(("", 0.0), |s| (s.class.as_str(), s.probability));
                    let key = if out.unknown || class.is_empty() { "(unknown)".to_owned() } else { class.to_owned() };
                    *by_class.entry(key).or_default() += 1;
                    if let Some(w) = csv.as_mut() {
                        let row = writeln!(
                            w,
                            "{},{},{},{p:.4},{}",
                            csv_field(&name),
                            out.image_id,
                            csv_field(class),
                            out.unknown
                        );
                        if let Err(e) = row {
                            write_error.get_or_insert(e);
                        }
                    }
                }
                Err(e) => failed.push((name, e.to_string())),
            }
        })
        .await;
        bar.finish_and_clear();
        if let Some(e) = write_error {
            return Err(e).context("writing the CSV");
        }
        let seconds = start.elapsed().as_secs_f64();
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

type Loader = Box<dyn FnOnce() -> Result<bytes::Bytes, String> + Send>;
