//! `fovea hygiene`: look at the data itself — labels the model disputes (and confirming them after a second look).

use std::io::Write;
use std::path::Path;

use clap::{Args, Subcommand};
use fovea_app::{App, SuspectLabel, MAX_LABEL_ERRORS_PAGE};
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
            HygieneAction::Confirm { image_id, user } => {
                let kept = app.confirm_label(image_id, user).await?;
                println!("kept label {:?} of image {} (label {})", kept.class, kept.image_id, kept.label_id);
                Ok(0)
            }
        }
    })
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
