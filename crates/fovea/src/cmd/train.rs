//! `fovea train`, `fovea models …`, `fovea jobs …`: shells over the app's training, registry and job use cases.

use std::path::Path;
use std::sync::Arc;

use clap::{Args, Subcommand};
use fovea_app::{App, TrainParams, TrainReport};
use fovea_model::Variant;

use super::serve::{open_app, runtime, AppArgs};
use super::Engine;

/// How a fine-tune trains: shared by `fovea train` and `fovea eval finetune`.
#[derive(Args, Debug, Clone)]
pub struct RunSettings {
    /// Most epochs (early stopping on a validation plateau usually ends sooner)
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Layer-group policy, e.g. stem=freeze,stage0-4=freeze,stage5-6=finetune,head=finetune,classifier=reinit
    #[arg(long)]
    pub policy: Option<String>,
    /// Seed for augmentation and sampling
    #[arg(long)]
    pub seed: Option<u64>,
    /// After validation has chosen the epoch, retrain on train + validation for that many epochs (about twice
    /// as long; more training data for small datasets)
    #[arg(long)]
    pub final_fit: bool,
    /// AdamW learning rate of the fine-tuned backbone groups [default: 3e-4]
    #[arg(long, value_parser = positive_rate)]
    pub backbone_lr: Option<f64>,
    /// No left-right mirroring in the augmentation (digits, text: classes where handedness matters)
    #[arg(long)]
    pub no_flip: bool,
}

impl RunSettings {
    /// The run's parameters with these settings.
    pub fn params(&self) -> TrainParams {
        TrainParams {
            epochs: self.epochs,
            policy: self.policy.clone(),
            seed: self.seed,
            final_fit: self.final_fit,
            backbone_lr: self.backbone_lr,
            no_flip: self.no_flip,
            ..Default::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// Images a class needs to take part (below the app's cutoff only with --throw-away)
    #[arg(long = "cutoff", id = "run_cutoff")]
    pub run_cutoff: Option<usize>,
    /// A quick run with a lower cutoff allowed; never promoted
    #[arg(long)]
    pub throw_away: bool,
    #[command(flatten)]
    pub run: RunSettings,
    /// Keep the result as a candidate even if it passes the benchmark gate
    #[arg(long)]
    pub no_promote: bool,
    /// Keep images tagged staged or synthetic out of the test, validation and benchmark splits: train on them,
    /// judge the model on real pictures only
    #[arg(long)]
    pub staged_train_only: bool,
    /// Only queue the run for a server's worker, do not run it here
    #[arg(long)]
    pub queue: bool,
}

#[derive(Args, Debug)]
pub struct ModelsArgs {
    #[command(flatten)]
    pub app: AppArgs,
    #[command(subcommand)]
    pub action: ModelsAction,
}

#[derive(Subcommand, Debug)]
pub enum ModelsAction {
    /// Every model version: kind, status, parent, accuracy
    List,
    /// One version's full record (metrics, gate verdict, history) as JSON
    Show { id: String },
    /// Serve this version from now on (a running server follows within seconds)
    Promote { id: String },
    /// Go back to the served version's parent
    Rollback,
}

#[derive(Args, Debug)]
pub struct JobsArgs {
    #[command(flatten)]
    pub app: AppArgs,
    #[command(subcommand)]
    pub action: JobsAction,
}

#[derive(Subcommand, Debug)]
pub enum JobsAction {
    /// Recent jobs and their state
    List,
    /// Run queued (or abandoned) training jobs here until none is left
    Run,
    /// Cancel a queued or running job
    Cancel { id: i64 },
}

pub fn train(home: &Path, variant: Variant, engine: Engine, args: &TrainArgs) -> anyhow::Result<i32> {
    let params = TrainParams {
        cutoff: args.run_cutoff,
        throw_away: args.throw_away,
        no_promote: args.no_promote,
        staged_train_only: args.staged_train_only,
        ..args.run.params()
    };
    runtime()?.block_on(async {
        let app = open_app(home, variant, engine, &args.app).await?;
        let job = app.enqueue_training(&params).await?;
        println!("queued training job {}", job.id);
        if args.queue {
            return Ok(0);
        }
        run_jobs(&app).await
    })
}

async fn run_jobs(app: &Arc<App>) -> anyhow::Result<i32> {
    let mut code = 0;
    loop {
        // A bar on a terminal; in a log or pipe (where indicatif draws nothing) a line per phase and epoch.
        let bar = if super::progress::interactive() {
            indicatif::ProgressBar::new(1000)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} [{elapsed_precise}]")
                .expect("valid template"),
        );
        let b = bar.clone();
        let log =
            (!super::progress::interactive()).then(|| std::sync::Mutex::new(super::progress::TrainLog::default()));
        let ran = app
            .run_next_job(move |p| {
                let lines = log.as_ref().map(|l| l.lock().unwrap_or_else(|e| e.into_inner()).lines(p));
                for line in lines.unwrap_or_default() {
                    eprintln!("{line}");
                }
                b.set_position((p.fraction * 1000.0) as u64);
                let acc = p.validation_accuracy.map(|a| format!(", val acc {:.1}%", a * 100.0)).unwrap_or_default();
                let loss = p.train_loss.map(|l| format!(", loss {l:.3}")).unwrap_or_default();
                b.set_message(format!("{} epoch {}/{}{loss}{acc}", p.phase, p.epoch, p.epochs));
            })
            .await?;
        bar.finish_and_clear();
        match ran {
            None => return Ok(code),
            Some((job, Ok(report))) => print_report(job.id, &report),
            Some((job, Err(e))) => {
                eprintln!("training job {} failed: {e}", job.id);
                code = 1;
            }
        }
    }
}

fn print_report(job: i64, r: &TrainReport) {
    println!("job {job}: model {} (from {}){}", r.model_id, r.parent, if r.throw_away { ", throw-away" } else { "" });
    let sizes: Vec<String> = r.split_sizes.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!("  classes: {} ({}); splits: {}", r.classes.len(), r.classes.join(", "), sizes.join(", "));
    for (c, n) in &r.excluded {
        println!("  left out (below the cutoff): {c} with {n} images");
    }
    println!("  best epoch {}{}", r.best_epoch, if r.stopped_early { " (stopped early on a plateau)" } else { "" });
    if let Some(epochs) = r.final_fit_epochs {
        println!("  final fit: {epochs} epochs on train + validation");
    }
    println!(
        "  test accuracy: serving model + online head {:.1}%, fine-tuned + online head {:.1}%, fine-tuned classifier {:.1}%",
        r.serving_test_accuracy * 100.0,
        r.candidate_test_accuracy * 100.0,
        r.classifier_test_accuracy * 100.0
    );
    if let Some(a) = &r.as_served {
        // What a person will see after promotion: the head refitted on every label, calibrated.
        println!("  as served after promotion (images it never trained on): serving {}", a.serving);
        println!("                                                       fine-tuned {}", a.candidate);
    }
    if let Some(c) = &r.test_comparison {
        // The test split is small on small datasets: say how far off the estimates above may be.
        let (pc, ps) = (c.confidence * 100.0, |x: f64| x * 100.0);
        println!(
            "  test split ({} images, {pc:.0}% intervals): serving [{:.1}%, {:.1}%], fine-tuned [{:.1}%, {:.1}%], \
             difference {:+.1} points [{:+.1}, {:+.1}]",
            c.images,
            ps(c.serving_interval.0),
            ps(c.serving_interval.1),
            ps(c.candidate_interval.0),
            ps(c.candidate_interval.1),
            ps(c.difference),
            ps(c.difference_interval.0),
            ps(c.difference_interval.1)
        );
    }
    println!(
        "  benchmark ({} images): serving {:.1}%, candidate {:.1}%",
        r.candidate_benchmark.count,
        r.serving_benchmark.accuracy * 100.0,
        r.candidate_benchmark.accuracy * 100.0
    );
    println!("  gate: {}", if r.verdict.passed { "PASSED" } else { "FAILED" });
    for reason in &r.verdict.reasons {
        println!("    {reason}");
    }
    println!("  {} in {:.0} s", if r.promoted { "promoted" } else { "not promoted" }, r.seconds);
}

pub fn models(home: &Path, variant: Variant, engine: Engine, args: &ModelsArgs) -> anyhow::Result<i32> {
    runtime()?.block_on(async {
        // Listing and showing read the registry only: no network is loaded for them.
        let catalog = args.app.open_catalog().await?;
        match &args.action {
            ModelsAction::List => {
                println!("{:<20} {:<11} {:<10} {:<20} {:>9}", "id", "kind", "status", "parent", "test acc");
                for m in catalog.list_model_versions().await? {
                    let acc = m.metrics["report"]["candidate_test_accuracy"]
                        .as_f64()
                        .map(|a| format!("{:.1}%", a * 100.0))
                        .unwrap_or_else(|| "-".into());
                    println!(
                        "{:<20} {:<11} {:<10} {:<20} {acc:>9}",
                        m.id,
                        m.kind.as_str(),
                        m.status.as_str(),
                        m.parent.as_deref().unwrap_or("-")
                    );
                }
            }
            ModelsAction::Show { id } => {
                let m = catalog.get_model_version(id).await?.ok_or_else(|| anyhow::anyhow!("model {id} not found"))?;
                println!("{}", serde_json::to_string_pretty(&m)?);
            }
            ModelsAction::Promote { id } => {
                let app = open_app(home, variant, engine, &args.app).await?;
                let m = app.promote(id).await?;
                println!("now serving {}", m.id);
            }
            ModelsAction::Rollback => {
                let app = open_app(home, variant, engine, &args.app).await?;
                let m = app.rollback().await?;
                println!("rolled back; now serving {}", m.id);
            }
        }
        Ok(0)
    })
}

pub fn jobs(home: &Path, variant: Variant, engine: Engine, args: &JobsArgs) -> anyhow::Result<i32> {
    runtime()?.block_on(async {
        if let JobsAction::List = args.action {
            // Reading the queue needs no network: only the catalog is opened.
            for j in args.app.open_catalog().await?.list_jobs(20, 0).await? {
                println!(
                    "{:>4} {:<6} {:<10} {:>5.0}% attempt {} {}",
                    j.id,
                    j.kind,
                    j.state.as_str(),
                    j.progress * 100.0,
                    j.attempt,
                    j.message.as_deref().unwrap_or("")
                );
            }
            return Ok(0);
        }
        let app = open_app(home, variant, engine, &args.app).await?;
        match &args.action {
            JobsAction::List => Ok(0),
            JobsAction::Run => run_jobs(&app).await,
            JobsAction::Cancel { id } => {
                let cancelled = app.cancel_job(*id).await?;
                println!("{}", if cancelled { "cancelled" } else { "already finished" });
                Ok(if cancelled { 0 } else { 1 })
            }
        }
    })
}

/// A learning rate: finite, above 0 and at most 1.
pub(crate) fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1.0 => Ok(r),
        _ => Err(format!("{text:?} is not a learning rate (a number above 0 and at most 1, e.g. 1e-4)")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn learning_rates_must_be_positive_and_at_most_one() {
        assert_eq!(super::positive_rate("3e-4"), Ok(3e-4));
        for bad in ["0", "-1e-4", "2", "NaN", "inf", "fast"] {
            assert!(super::positive_rate(bad).unwrap_err().contains("learning rate"), "{bad}");
        }
    }
}
