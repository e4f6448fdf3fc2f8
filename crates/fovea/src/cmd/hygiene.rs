//! `fovea hygiene`: look at the data itself — labels the model disputes (and confirming them after a second look),
//! duplicate groups (and resolving them), a training run's split leakage, and Unknown images that fit a newer class.

use std::io::Write;
use std::path::Path;

use clap::{Args, Subcommand};
use fovea_app::{App, Resolution, ResolveRequest, SuspectLabel, MAX_LABEL_ERRORS_PAGE};
use fovea_model::Variant;

use super::serve::{open_app, runtime, AppArgs};
use super::Engine;

#[derive(Args, Debug)]
pub struct HygieneArgs {
    #[command(flatten)]
    pub app: AppArgs,
    #[command(subcommand)]
    pub action: HygieneAction,
}

#[derive(Subcommand, Debug)]
pub enum HygieneAction {
    /// Labels the served model confidently disputes, judged out of sample, most disputed first
    LabelErrors {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        /// Show at most this many
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Duplicate groups across every stored image: same pixels in other bytes, and near copies (re-encoded,
    /// resized, brightened, slightly cropped); conflicting labels inside a group are called out
    Duplicates {
        /// Print JSON instead of a list
        #[arg(long)]
        json: bool,
    },
    /// Resolve a duplicate group: keep-one (the others go to Unknown), keep-all (not shown again) or discard
    Resolve {
        /// keep-one | keep-all | discard
        #[arg(long, value_parser = parse_resolution)]
        action: Resolution,
        /// For keep-one: the image kept
        #[arg(long)]
        keep: Option<String>,
        /// The group's image ids, as `fovea hygiene duplicates` lists them
        #[arg(required = true, num_args = 2..)]
        images: Vec<String>,
        #[arg(long, default_value = "cli")]
        user: String,
    },
    /// Near-duplicate groups a training run put in different splits; a benchmark copy in the training data blocks
    /// the run's promotion
    Leakage {
        /// The run [default: the newest run with a report]
        #[arg(long)]
        model: Option<String>,
        /// Print JSON instead of a list
        #[arg(long)]
        json: bool,
    },
    /// Images labelled Unknown that the served model now assigns to a class created after they were called
    /// Unknown (relabel them, or `confirm` to keep them Unknown)
    Unknown {
        /// Only matches for this class
        #[arg(long)]
        class: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON instead of a list
        #[arg(long)]
        json: bool,
    },
    /// Keep an image's current label after a second look: it leaves the label-error queue
    Confirm {
        /// The image's id (its SHA-256)
        image_id: String,
        /// Recorded as the person who confirmed
        #[arg(long, default_value = "cli")]
        user: String,
    },
}

pub fn hygiene(home: &Path, variant: Variant, engine: Engine, args: &HygieneArgs) -> anyhow::Result<i32> {
    runtime()?.block_on(async {
        let app = open_app(home, variant, engine, &args.app).await?;
        match &args.action {
            HygieneAction::LabelErrors { json, limit } => {
                let items = all_label_errors(&app, *limit).await?;
                let report = app.label_errors(1, 0, false).await?;
                if *json {
                    let out = serde_json::json!({
                        "model": report.model, "checked": report.checked, "temperature": report.temperature,
                        "total": report.total, "confirmed": report.confirmed, "items": items,
                    });
                    println!("{}", serde_json::to_string_pretty(&out)?);
                    return Ok(0);
                }
                let mut o = std::io::stdout().lock();
                writeln!(
                    o,
                    "{} labelled images judged by {}; {} labels disputed ({} confirmed earlier and hidden)",
                    report.checked, report.model, report.total, report.confirmed
                )?;
                if !items.is_empty() {
                    writeln!(
                        o,
                        "{:<64}  {:<16} {:>6}  {:<16} {:>6}  {:>6}",
                        "image", "given", "p", "suggested", "p", "score"
                    )?;
                }
                for s in &items {
                    writeln!(
                        o,
                        "{:<64}  {:<16} {:>6.3}  {:<16} {:>6.3}  {:>6.3}",
                        s.image_id, s.given, s.given_probability, s.suggested, s.suggested_probability, s.score
                    )?;
                }
                Ok(0)
            }
            HygieneAction::Duplicates { json } => {
                let report = app.duplicates().await?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                    return Ok(0);
                }
                println!(
                    "{} images compared: {} duplicate groups ({} kept whole earlier and hidden)",
                    report.images,
                    report.groups.len(),
                    report.kept
                );
                for g in &report.groups {
                    let warn =
                        if g.conflict { format!("  CONFLICT: {}", g.labels.join(" vs ")) } else { String::new() };
                    println!("{} group of {}{warn}", g.kind, g.members.len());
                    for m in &g.members {
                        let label = m.label.as_deref().unwrap_or("unlabelled");
                        println!("  {}  {label:<20} {:<10} {}", m.image_id, m.split, m.source);
                    }
                }
                Ok(0)
            }
            HygieneAction::Resolve { action, keep, images, user } => {
                let req = ResolveRequest { action: *action, images: images.clone(), keep: keep.clone() };
                let done = app.resolve_duplicates(&req, user).await?;
                match (&done.bulk, &done.kept_group) {
                    (Some(b), _) => {
                        println!(
                            "moved {} images to Unknown (bulk action {}; `fovea collections undo {}`)",
                            b.changed, b.id, b.id
                        )
                    }
                    (None, Some(_)) => println!("kept the group whole; it is not shown again until it changes"),
                    (None, None) => println!("nothing changed"),
                }
                Ok(0)
            }
            HygieneAction::Leakage { model, json } => {
                let report = app.leakage(model.as_deref()).await?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                    return Ok(if report.benchmark_leaked { 1 } else { 0 });
                }
                let run = report.model.as_deref().unwrap_or("?");
                println!(
                    "{run}: {} images in its splits, {} duplicate groups cross splits",
                    report.images,
                    report.groups.len()
                );
                if report.benchmark_leaked {
                    println!(
                        "BLOCKED: {} benchmark images have a near duplicate in the training or validation data",
                        report.benchmark_images_leaked
                    );
                }
                for g in &report.groups {
                    println!(
                        "{}{}",
                        g.splits.join(" + "),
                        if g.benchmark_leaked { "  (benchmark leaked)" } else { "" }
                    );
                    for m in &g.members {
                        println!("  {}  {:<10} {}", m.image_id, m.split, m.label);
                    }
                }
                // A leaked benchmark is a failed check, for scripts.
                Ok(if report.benchmark_leaked { 1 } else { 0 })
            }
            HygieneAction::Unknown { class, limit, json } => {
                let review = app.unknown_review(class.as_deref(), *limit).await?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&review)?);
                    return Ok(0);
                }
                println!(
                    "{} images labelled Unknown; {} now look like a newer class",
                    review.unknown_images,
                    review.items.len()
                );
                for m in &review.items {
                    println!("  {}  {:<20} {:.3}", m.image_id, m.class, m.probability);
                }
                Ok(0)
            }
            HygieneAction::Confirm { image_id, user } => {
                let kept = app.confirm_label(image_id, user).await?;
                println!("kept label {:?} of image {} (label {})", kept.class, kept.image_id, kept.label_id);
                Ok(0)
            }
        }
    })
}

fn parse_resolution(s: &str) -> Result<Resolution, String> {
    serde_json::from_value(serde_json::Value::String(s.replace('-', "_")))
        .map_err(|_| format!("{s:?}: use keep-one, keep-all or discard"))
}

/// Up to `limit` open suspects, most disputed first, paging through the app's queue.
pub(crate) async fn all_label_errors(app: &App, limit: usize) -> anyhow::Result<Vec<SuspectLabel>> {
    let mut out = Vec::new();
    while out.len() < limit {
        let page = (limit - out.len()).min(MAX_LABEL_ERRORS_PAGE);
        let report = app.label_errors(page, out.len(), false).await?;
        let got = report.items.len();
        out.extend(report.items);
        if got < page {
            break;
        }
    }
    Ok(out)
}
