//! `fovea report`, `fovea drift`, `fovea evaluate`: shells over the app's reports, drift monitor and manual
//! evaluation rounds.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use fovea_model::Variant;

use super::serve::{open_app, runtime, AppArgs};
use super::Engine;

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// Only predictions from this day on (YYYY-MM-DD, UTC)
    #[arg(long)]
    pub since: Option<String>,
    /// Write a self-contained HTML report (charts inline; opens offline)
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write the report's tables as CSV files into this folder
    #[arg(long, value_name = "DIR")]
    pub csv: Option<PathBuf>,
    /// Print the report as JSON (stable keys: usage, accuracy, evaluations)
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DriftArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// Rebuild the reference first (after relabelling, or to start a fresh window)
    #[arg(long)]
    pub rebuild: bool,
    /// Print as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub app: AppArgs,
    #[command(subcommand)]
    pub action: EvaluateAction,
}

#[derive(Subcommand, Debug)]
pub enum EvaluateAction {
    /// Sample recent predictions (stratified by class and confidence) for reviewers to judge in the web UI
    Start {
        /// Predictions to sample
        #[arg(long, default_value_t = 50)]
        size: usize,
        /// From the last N days
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Model version whose predictions to sample [default: the served one]
        #[arg(long)]
        model: Option<String>,
    },
    /// Every round with its accuracy estimate
    List,
    /// One round: estimate, interval and progress
    Show { id: i64 },
}

fn since_millis(since: &Option<String>) -> anyhow::Result<Option<i64>> {
    since
        .as_deref()
        .map(|d| fovea_insight::time::parse_date(d).with_context(|| format!("--since {d:?}: expected YYYY-MM-DD")))
        .transpose()
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{:.1}%", x * 100.0))
}

pub fn report(home: &Path, variant: Variant, engine: Engine, args: &ReportArgs) -> anyhow::Result<i32> {
    let since = since_millis(&args.since)?;
    runtime()?.block_on(async {
        let app = open_app(home, variant, engine, &args.app).await?;
        let report = app.report(since).await?;
        let drift = app.drift_status().await?;
        if let Some(path) = &args.html {
            let html = fovea_insight::html::render(&report, drift.scores.as_ref());
            std::fs::write(path, html).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        if let Some(dir) = &args.csv {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, body) in fovea_insight::csv::tables(&report) {
                std::fs::write(dir.join(name), body).with_context(|| format!("writing {name}"))?;
            }
            eprintln!("wrote CSV tables to {}", dir.display());
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else if args.html.is_none() && args.csv.is_none() {
            let u = &report.usage;
            let a = &report.accuracy;
            println!(
                "requests {}  corrections {} ({} of requests)  human labels {}",
                u.requests,
                u.corrections,
                pct(u.correction_rate.value),
                u.labels
            );
            println!(
                "accuracy {} [{} – {}] over {} judged predictions; ECE {}",
                pct(a.overall.value),
                pct(a.overall.low),
                pct(a.overall.high),
                a.overall.n,
                a.ece.map_or("–".into(), |e| format!("{e:.3}"))
            );
            for k in &a.by_model_version {
                println!(
                    "  {:<24} {} [{} – {}] n={}",
                    k.key,
                    pct(k.accuracy.value),
                    pct(k.accuracy.low),
                    pct(k.accuracy.high),
                    k.accuracy.n
                );
            }
            println!("{:<24} {:>8} {:>10} {:>10} {:>6}", "class", "support", "precision", "recall", "F1");
            for c in &a.by_class {
                println!(
                    "{:<24} {:>8} {:>10} {:>10} {:>6}",
                    c.class,
                    c.support,
                    pct(c.precision.value),
                    pct(c.recall.value),
                    c.f1.map_or("–".into(), |f| format!("{f:.2}"))
                );
            }
            for e in &report.evaluations {
                println!(
                    "evaluation #{} of {}: {} [{} – {}] from {} answers",
                    e.round,
                    e.model_version,
                    pct(e.accuracy),
                    pct(e.low),
                    pct(e.high),
                    e.answered
                );
            }
            println!("(--html FILE for charts, --csv DIR for tables, --json for the document)");
        }
        Ok(0)
    })
}

pub fn drift(home: &Path, variant: Variant, engine: Engine, args: &DriftArgs) -> anyhow::Result<i32> {
    runtime()?.block_on(async {
        let app = open_app(home, variant, engine, &args.app).await?;
        let status = if args.rebuild { app.rebuild_drift_reference().await? } else { app.drift_status().await? };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&status)?);
            return Ok(0);
        }
        println!(
            "reference: {} ({} images); {} requests in the window",
            status.reference, status.reference_size, status.window
        );
        if let Some(note) = &status.note {
            println!("note: {note}");
        }
        if let Some(scores) = &status.scores {
            println!("{:<14} {:>10} {:>10}  what moved", "signal", "statistic", "threshold");
            for s in &scores.signals {
                let mark = if s.exceeded { "  << over" } else { "" };
                println!("{:<14} {:>10.4} {:>10.4}  {}{mark}", s.signal.as_str(), s.statistic, s.threshold, s.detail);
            }
        }
        for a in &status.alerts {
            println!(
                "ALERT {}: {} (since {})",
                a.alert.signal,
                a.alert.detail,
                fovea_insight::time::date_string(fovea_insight::time::day_of(a.alert.since))
            );
        }
        Ok(if status.alerts.is_empty() { 0 } else { 1 })
    })
}

pub fn evaluate(home: &Path, variant: Variant, engine: Engine, args: &EvaluateArgs) -> anyhow::Result<i32> {
    runtime()?.block_on(async {
        let app = open_app(home, variant, engine, &args.app).await?;
        match &args.action {
            EvaluateAction::Start { size, days, model } => {
                let v = app.start_evaluation(*size, *days, model.as_deref(), "cli").await?;
                println!(
                    "evaluation #{}: {} predictions of {} sampled from {} in {} strata; judge them in the web UI (Reports tab)",
                    v.round.id,
                    v.items.len(),
                    v.round.model_version,
                    v.round.population,
                    v.round.strata.len()
                );
            }
            EvaluateAction::List => {
                for e in app.evaluations().await? {
                    println!("#{:<4} {:<20} {}/{} answered  accuracy {} [{} – {}]", e.round, e.model_version, e.answered, e.sampled, pct(e.accuracy), pct(e.low), pct(e.high));
                }
            }
            EvaluateAction::Show { id } => {
                let v = app.evaluation(*id).await?;
                println!("{}", serde_json::to_string_pretty(&v.estimate)?);
            }
        }
        Ok(0)
    })
}
