//! `fovea eval label-errors`: the label-error finder measured on an ImageFolder whose folder names are the given
//! labels (some of them wrong on purpose), through the product's own path — a throwaway store, an import, the
//! served backbone's embeddings and the second-look queue.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use fovea_app::ImportReport;
use fovea_model::Variant;
use serde_json::json;

use super::hygiene::all_label_errors;
use super::serve::{open_app, runtime, AppArgs};
use super::Engine;

#[derive(Args, Debug)]
pub struct LabelErrorArgs {
    /// ImageFolder: one sub-folder per (given) class
    #[arg(long)]
    pub data: PathBuf,
    /// Print JSON: `flagged` lists the suspected images' paths relative to --data, most disputed first
    #[arg(long)]
    pub json: bool,
    /// Also write the embeddings the judgement used, as JSON {paths, labels, embeddings}, for other tools to
    /// judge the same numbers
    #[arg(long, value_name = "FILE")]
    pub embeddings_out: Option<PathBuf>,
}

pub fn run(home: &Path, variant: Variant, engine: Engine, a: &LabelErrorArgs) -> anyhow::Result<i32> {
    let files = super::eval::image_folder(&a.data)?;
    let store = tempfile::tempdir().context("creating a throwaway store")?;
    let app_args = AppArgs::throwaway(store.path());
    runtime()?.block_on(async {
        let app = open_app(home, variant, engine, &app_args).await?;
        let mut report = ImportReport::default();
        // Exact copies share an id, so one image may stand for several paths.
        let mut paths_of: HashMap<String, Vec<String>> = HashMap::new();
        let mut order = Vec::with_capacity(files.len());
        for (i, (path, class)) in files.iter().enumerate() {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let id = fovea_app::sha256_hex(&bytes);
            let relative = path.strip_prefix(&a.data).unwrap_or(path).to_string_lossy().into_owned();
            match app.import_bytes(bytes.into(), "eval", Some(class), &mut report).await {
                Ok(()) => {
                    paths_of.entry(id.clone()).or_default().push(relative.clone());
                    order.push((id, relative, class.clone()));
                }
                Err(e) => eprintln!("skipped {relative}: {e}"),
            }
            if (i + 1) % 500 == 0 {
                eprintln!("imported {} of {} images", i + 1, files.len());
            }
        }
        let suspects = all_label_errors(&app, usize::MAX).await?;
        let summary = app.label_errors(1, 0, false).await?;
        let flagged: Vec<&String> = suspects.iter().flat_map(|s| paths_of.get(&s.image_id)).flatten().collect();
        if let Some(out) = &a.embeddings_out {
            let backbone = app.served_model().await;
            let (mut paths, mut labels, mut embeddings) = (Vec::new(), Vec::new(), Vec::new());
            for (id, relative, class) in &order {
                if let Some(e) = app.catalog().get_embedding(id, &backbone).await? {
                    paths.push(relative);
                    labels.push(class);
                    embeddings.push(e);
                }
            }
            let body = json!({"paths": paths, "labels": labels, "embeddings": embeddings});
            std::fs::write(out, serde_json::to_vec(&body)?).with_context(|| format!("writing {}", out.display()))?;
        }
        if a.json {
            let out = json!({
                "images": files.len(), "checked": summary.checked, "temperature": summary.temperature,
                "flagged": flagged, "suspects": suspects,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            println!("{} images, {} judged, {} labels disputed:", files.len(), summary.checked, flagged.len());
            for s in &suspects {
                for p in paths_of.get(&s.image_id).into_iter().flatten() {
                    println!("  {p}: given {}, model says {} ({:.3})", s.given, s.suggested, s.score);
                }
            }
        }
        Ok(0)
    })
}
