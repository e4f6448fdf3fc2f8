//! `fovea eval drift`: replays folders through the app as requests would arrive, after a reference, and reports
//! where the drift monitor first alerted in each. Measures detection delay and false alarms as served.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use fovea_app::{AppConfig, DriftReference, ImportReport};
use fovea_model::Variant;
use serde::Serialize;

use super::serve::{flat_folder, progress_bar, runtime};
use super::{load_backbone, Engine};

#[derive(Args, Debug)]
pub struct DriftEvalArgs {
    /// Reference images: an ImageFolder (sub-folder = class: imported as labelled training images) or a flat
    /// folder (classified as a reference period of requests)
    #[arg(long)]
    pub reference: PathBuf,
    /// A stream to replay after the reference (repeatable): an ImageFolder or a flat folder, in file-name order
    #[arg(long = "stream", required = true)]
    pub streams: Vec<PathBuf>,
    /// Requests in the sliding window
    #[arg(long, default_value_t = fovea_app::DriftConfig::default().window)]
    pub window: usize,
    /// At most this many images of each stream
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Raised {
    index: usize,
    signal: String,
    detail: String,
}

#[derive(Serialize)]
struct StreamResult {
    dir: String,
    images: usize,
    /// Index (0-based, among the stream's images) at which the first alert fired, or null.
    first_alert: Option<usize>,
    signal: Option<String>,
    alerts: Vec<Raised>,
    seconds: f64,
}

/// Files of an ImageFolder or a flat folder, ordered by file name (then path, so classes interleave as a
/// stream would) with the class folder when there is one.
fn stream_files(dir: &Path) -> anyhow::Result<Vec<(PathBuf, Option<String>)>> {
    let has_classes = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .any(|e| e.path().is_dir());
    let mut files: Vec<(PathBuf, Option<String>)> = if has_classes {
        super::eval::image_folder(dir)?.into_iter().map(|(p, c)| (p, Some(c))).collect()
    } else {
        flat_folder(dir)?.into_iter().map(|p| (p, None)).collect()
    };
    files.sort_by(|a, b| a.0.file_name().cmp(&b.0.file_name()).then(a.0.cmp(&b.0)));
    if files.is_empty() {
        bail!("{} holds no images", dir.display());
    }
    Ok(files)
}

pub fn eval_drift(home: &Path, variant: Variant, engine: Engine, args: &DriftEvalArgs) -> anyhow::Result<i32> {
    let reference = stream_files(&args.reference)?;
    let labelled = reference.iter().all(|(_, c)| c.is_some());
    let tmp = tempfile::tempdir()?;
    runtime()?.block_on(async {
        let backbone = load_backbone(home, variant, engine)?;
        let mut cfg = AppConfig {
            data_dir: tmp.path().to_path_buf(),
            variant,
            base_weights: Some(fovea_model::ensure_weights(home, variant)?),
            engine: engine.into(),
            ..Default::default()
        };
        cfg.drift.window = args.window;
        let start = fovea_app::now_millis();
        let reference_cfg = cfg.clone();
        let app = fovea_app::App::open(cfg, backbone).await?;
        eprintln!("reference: {} images from {}", reference.len(), args.reference.display());
        let bar = progress_bar(reference.len() as u64);
        let mut report = ImportReport::default();
        for (path, class) in &reference {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            if labelled {
                let source = format!("import:{}", args.reference.display());
                if let Err(e) = app.import_bytes(bytes.into(), &source, class.as_deref(), &mut report).await {
                    report.failed.push((path.display().to_string(), e.to_string()));
                }
            } else if let Err(e) = app.classify(bytes.into(), "reference").await {
                report.failed.push((path.display().to_string(), e.to_string()));
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        drop(app);
        // A flat reference is a period of requests; reopen the app with that period as the drift reference.
        let mut cfg = reference_cfg;
        if !labelled {
            cfg.drift_reference = DriftReference::Period { from: start, to: fovea_app::now_millis() + 1 };
        }
        let app = fovea_app::App::open(cfg, load_backbone(home, variant, engine)?).await?;
        app.recalibrate().await.ok();
        let status = app.rebuild_drift_reference().await?;
        if status.reference_size == 0 {
            bail!("no drift reference could be built: {}", status.note.unwrap_or_default());
        }
        let mut results = Vec::new();
        for dir in &args.streams {
            let mut files = stream_files(dir)?;
            if let Some(n) = args.limit {
                files.truncate(n);
            }
            app.restart_drift_window().await?;
            let t = Instant::now();
            let bar = progress_bar(files.len() as u64);
            bar.set_message(dir.display().to_string());
            let mut alerts = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            for (i, (path, _)) in files.iter().enumerate() {
                let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                app.classify(bytes.into(), "stream")
                    .await
                    .with_context(|| format!("classifying {}", path.display()))?;
                for a in app.drift_alerts(true, 20).await? {
                    if seen.insert(a.id) {
                        alerts.push(Raised {
                            index: i,
                            signal: a.alert.signal.clone(),
                            detail: a.alert.detail.clone(),
                        });
                    }
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            if std::env::var_os("FOVEA_DRIFT_DEBUG").is_some() {
                eprintln!("{}", serde_json::to_string(&app.drift_status().await?)?);
            }
            let first = alerts.first();
            results.push(StreamResult {
                dir: dir.display().to_string(),
                images: files.len(),
                first_alert: first.map(|a| a.index),
                signal: first.map(|a| a.signal.clone()),
                seconds: t.elapsed().as_secs_f64(),
                alerts,
            });
        }
        let out = serde_json::json!({
            "reference": {
                "dir": args.reference.display().to_string(),
                "images": reference.len(),
                "labelled": labelled,
                "used": status.reference_size,
                "failed": report.failed.len(),
            },
            "window": args.window,
            "config": app.config().drift,
            "streams": results,
        });
        if args.json {
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            for r in &results {
                match (&r.first_alert, &r.signal) {
                    (Some(i), Some(s)) => {
                        println!("{}: first alert at image {i} of {} ({s}); {} alerts", r.dir, r.images, r.alerts.len())
                    }
                    _ => println!("{}: no alert over {} images", r.dir, r.images),
                }
            }
        }
        Ok(0)
    })
}
