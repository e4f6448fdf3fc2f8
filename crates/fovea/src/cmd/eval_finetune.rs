//! `fovea eval finetune`: one fine-tune run measured as served. Labelled images are imported into a throwaway
//! store, the served model is measured on held-out images that the run never sees, a fine-tune runs with the
//! given settings, its model is promoted whatever the gate said, and the same held-out images are measured again.
//! The run's own estimates sit beside both measurements, so an estimate that does not predict what is served
//! shows.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use fovea_app::{App, ImportReport, TrainParams};
use fovea_model::Variant;
use serde::Serialize;
use serde_json::json;

use super::serve::{open_app, progress_bar, runtime, AppArgs};
use super::Engine;

#[derive(Args, Debug)]
pub struct FineTuneEvalArgs {
    /// ImageFolder of labelled images: imported, split and trained on as `fovea train` would
    #[arg(long)]
    pub train: PathBuf,
    /// ImageFolder of held-out images (same classes), used nowhere in the run: measures the served model
    #[arg(long)]
    pub heldout: PathBuf,
    /// At most this many held-out images (spread over the folder in file order)
    #[arg(long)]
    pub limit: Option<usize>,
    /// Images a class needs to take part (as `fovea serve --default-cutoff`)
    #[arg(long, default_value_t = 40)]
    pub cutoff: u64,
    #[command(flatten)]
    pub run: super::train::RunSettings,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// The served model on the held-out images.
#[derive(Debug, Serialize)]
struct Served {
    model: String,
    images: usize,
    right: usize,
    accuracy: f64,
    /// Wilson 95 % interval of the accuracy.
    low: f64,
    high: f64,
    ece: f64,
    wrong_above_99: f64,
    unknown_rate: f64,
}

async fn measure(app: &App, heldout: &[(PathBuf, String)]) -> anyhow::Result<Served> {
    app.recalibrate().await?;
    let bar = progress_bar(heldout.len() as u64);
    let mut outcomes = Vec::with_capacity(heldout.len());
    let mut unknown = 0;
    for (path, truth) in heldout {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let out = app.classify(bytes.into(), "eval").await?;
        let (best, p) = out.top.first().map_or(("", 0.0), |s| (s.class.as_str(), s.probability));
        let p_true = out.top.iter().find(|s| &s.class == truth).map_or(0.0, |s| s.probability);
        outcomes.push((p, best == truth, p_true));
        unknown += usize::from(out.unknown);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let r = fovea_learn::reliability(&outcomes);
    let right = outcomes.iter().filter(|o| o.1).count();
    let (low, high) = fovea_insight::stats::wilson(right as u64, outcomes.len() as u64).unwrap_or((0.0, 1.0));
    Ok(Served {
        model: app.served_model().await,
        images: outcomes.len(),
        right,
        accuracy: r.accuracy,
        low,
        high,
        ece: r.ece,
        wrong_above_99: r.wrong_above_99,
        unknown_rate: unknown as f64 / outcomes.len().max(1) as f64,
    })
}

/// Every `step`-th file, so a limit keeps every class.
fn spread<T>(items: Vec<T>, limit: Option<usize>) -> Vec<T> {
    match limit {
        Some(n) if n > 0 && n < items.len() => {
            let step = items.len() as f64 / n as f64;
            let keep: std::collections::BTreeSet<usize> = (0..n).map(|i| (i as f64 * step) as usize).collect();
            items.into_iter().enumerate().filter(|(i, _)| keep.contains(i)).map(|(_, x)| x).collect()
        }
        _ => items,
    }
}

pub fn run(home: &Path, variant: Variant, engine: Engine, a: &FineTuneEvalArgs) -> anyhow::Result<i32> {
    let train = super::eval::image_folder(&a.train)?;
    let heldout = spread(super::eval::image_folder(&a.heldout)?, a.limit);
    let store = tempfile::tempdir().context("creating a throwaway store")?;
    let app_args = AppArgs { cutoff: a.cutoff, ..AppArgs::throwaway(store.path()) };
    runtime()?.block_on(async {
        let app = open_app(home, variant, engine, &app_args).await?;
        let mut report = ImportReport::default();
        let bar = progress_bar(train.len() as u64);
        for (path, class) in &train {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            if let Err(e) = app.import_bytes(bytes.into(), "eval", Some(class), &mut report).await {
                eprintln!("skipped {}: {e}", path.display());
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let before = measure(&app, &heldout).await?;
        eprintln!("before: {:.1} % of {} held-out images", before.accuracy * 100.0, before.images);
        let params = TrainParams { no_promote: true, ..a.run.params() };
        let bar = progress_bar(1000);
        let progress_bar_handle = bar.clone();
        let run = app
            .train(
                &params,
                move |p| {
                    progress_bar_handle.set_position((p.fraction * 1000.0) as u64);
                    progress_bar_handle.set_message(format!("{} epoch {}", p.phase, p.epoch));
                },
                Arc::new(AtomicBool::new(false)),
            )
            .await?;
        bar.finish_and_clear();
        // The epoch was chosen on validation: its best accuracy is what an ablation may choose settings by.
        let history = app.model(&run.model_id).await?.metrics["history"].clone();
        let validation = history
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["validation_accuracy"].as_f64())
            .max_by(f64::total_cmp);
        app.promote(&run.model_id).await?;
        let after = measure(&app, &heldout).await?;
        let body = json!({
            "train_images": train.len(),
            "split_sizes": run.split_sizes,
            "best_epoch": run.best_epoch,
            "best_validation_accuracy": validation,
            "seconds": run.seconds,
            "estimates": {
                "serving_test_accuracy": run.serving_test_accuracy,
                "candidate_test_accuracy": run.candidate_test_accuracy,
                "classifier_test_accuracy": run.classifier_test_accuracy,
                "as_served": run.as_served,
            },
            "gate_passed": run.verdict.passed,
            "before": before,
            "after": after,
        });
        if a.json {
            println!("{}", serde_json::to_string_pretty(&body)?);
        } else {
            let line = |name: &str, s: &Served| {
                println!(
                    "{name:<8} {:<10} {:>6.1} % [{:.1}, {:.1}] of {}  ECE {:.3}  wrong above 0.99: {:.0} %  unknown {:.1} %",
                    s.model,
                    s.accuracy * 100.0,
                    s.low * 100.0,
                    s.high * 100.0,
                    s.images,
                    s.ece,
                    s.wrong_above_99 * 100.0,
                    s.unknown_rate * 100.0
                )
            };
            println!("held out, as served:");
            line("before", &before);
            line("after", &after);
            println!(
                "run's estimates on its test split: serving {:.1} %, candidate {:.1} %, classifier {:.1} %",
                run.serving_test_accuracy * 100.0,
                run.candidate_test_accuracy * 100.0,
                run.classifier_test_accuracy * 100.0
            );
            if let Some(s) = &run.as_served {
                println!("run's as-served estimates: serving {}; fine-tuned {}", s.serving, s.candidate);
            }
            println!("gate: {}", if run.verdict.passed { "would promote" } else { "would refuse" });
        }
        Ok(0)
    })
}
