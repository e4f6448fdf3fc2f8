//! `fovea identify DIR`: bulk-identify a folder as a collection. Every prediction is stored and logged; a run that
//! was killed is resumed by running the same command again.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use fovea_app::{csv_field, walk_files, App, CollectionItem, ResultFilter};
use fovea_model::Variant;

use super::serve::{open_app, runtime, AppArgs};
use super::Engine;

#[derive(Args, Debug)]
pub struct IdentifyArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// A folder of images, walked recursively
    pub dir: PathBuf,
    /// Also write one CSV row per image: file, image_id, class, probability (calibrated), unknown, model_version
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Identify with this registry version (any, throw-away runs included) instead of the served model
    #[arg(long, value_name = "VERSION")]
    pub model: Option<String>,
    /// Name of the collection (default: the folder's name)
    #[arg(long)]
    pub name: Option<String>,
    /// Start a new collection even if an earlier run over this folder was interrupted (default: resume it)
    #[arg(long)]
    pub fresh: bool,
}

pub fn identify(home: &Path, variant: Variant, engine: Engine, args: &IdentifyArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(args.dir.is_dir(), "{} is not a folder", args.dir.display());
    // Counting is a walk that holds nothing; it gives the progress bar its length.
    let files = walk_files(&args.dir).filter(|f| f.is_ok()).count() as u64;
    anyhow::ensure!(files > 0, "{} holds no files", args.dir.display());
    runtime()?.block_on(async {
        let app = open_app(home, variant, engine, &args.app).await?;
        let model = args.model.as_deref();
        let resumed = if args.fresh { None } else { app.unfinished_collection(&args.dir, model).await? };
        let collection = match resumed {
            Some(c) => {
                eprintln!("resuming collection {} ({}): {} of {files} files already done", c.id, c.name, c.processed);
                c
            }
            None => app.create_collection(args.name.as_deref(), &args.dir, model, "identify").await?,
        };
        let bar = super::progress::counted(files, "{bar:40} {pos}/{len} {msg} [{elapsed}<{eta}]");
        bar.set_message("identified");
        bar.set_position(collection.processed.min(files));
        let start = Instant::now();
        let before = collection.processed;
        let done = app
            .run_collection(collection.id, |p| bar.set_position(p.processed), Arc::new(AtomicBool::new(false)))
            .await?;
        bar.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();
        let now = done.processed - before;
        if let Some(path) = &args.csv {
            write_csv(&app, done.id, path).await?;
        }
        println!(
            "collection {} ({}): identified {now} images in {seconds:.1} s ({:.1} img/s); {} in all, {} unknown, {} failed",
            done.id,
            done.name,
            now as f64 / seconds.max(1e-9),
            done.processed,
            done.unknown,
            done.failed
        );
        let mut by_class: BTreeMap<String, usize> = BTreeMap::new();
        let results = ResultFilter { collection: Some(done.id), ..Default::default() };
        each_result(&app, &results, |item| {
            let class = best(item).map_or("", |s| s.class.as_str());
            let key = if item.unknown || class.is_empty() { "(unknown)".to_owned() } else { class.to_owned() };
            *by_class.entry(key).or_default() += 1;
            Ok(())
        })
        .await?;
        for (class, n) in &by_class {
            println!("  {class:<30} {n}");
        }
        let failed = ResultFilter { collection: Some(done.id), failed: true, ..Default::default() };
        each_result(&app, &failed, |item| {
            eprintln!("  {}: {}", item.path, item.error.as_deref().unwrap_or_default());
            Ok(())
        })
        .await?;
        println!("browse and act on them: fovea collections show {} (or the Collections tab)", done.id);
        Ok(if done.failed == 0 { 0 } else { 1 })
    })
}

/// Calls `f` on every result matching `filter`, a page at a time, so memory stays flat whatever the collection's size.
async fn each_result(
    app: &App,
    filter: &ResultFilter,
    mut f: impl FnMut(&CollectionItem) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    const PAGE: u32 = 1000;
    let mut offset = 0;
    loop {
        let page = ResultFilter { limit: Some(PAGE), offset, ..filter.clone() };
        let (items, _) = app.collection_items(&page).await?;
        for item in &items {
            f(item)?;
        }
        if items.len() < PAGE as usize {
            return Ok(());
        }
        offset += PAGE;
    }
}

fn best(item: &CollectionItem) -> Option<&fovea_app::ScoredClass> {
    item.top_k.iter().max_by(|a, b| a.probability.total_cmp(&b.probability))
}

/// Every result of the collection in walk order (identified, then failed), discarded ones included.
async fn write_csv(app: &App, collection: i64, path: &Path) -> anyhow::Result<()> {
    let mut w =
        std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?);
    writeln!(w, "file,image_id,class,probability,unknown,model_version,error")?;
    for failed in [false, true] {
        let filter =
            ResultFilter { collection: Some(collection), failed, include_discarded: true, ..Default::default() };
        each_result(app, &filter, |item| {
            let (class, p) = best(item).map_or(("", 0.0), |s| (s.class.as_str(), s.probability));
            writeln!(
                w,
                "{},{},{},{p:.4},{},{},{}",
                csv_field(&item.path),
                item.image_id.as_deref().unwrap_or(""),
                csv_field(class),
                item.unknown,
                csv_field(item.model_version.as_deref().unwrap_or("")),
                csv_field(item.error.as_deref().unwrap_or(""))
            )?;
            Ok(())
        })
        .await?;
    }
    w.flush()?;
    Ok(())
}
