//! `fovea worker`: a process that only runs jobs (fine-tunes, identify chunks) from the shared catalog, beside
//! `fovea serve` replicas that answer requests. It follows the label log and promotions like a replica does.

use std::path::Path;

use clap::Args;
use fovea_model::Variant;

use super::serve::{open_app, runtime, AppArgs};
use super::Engine;

#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// Queue a fine-tune run on a schedule: off, hourly, daily, weekly or e.g. 12h (replicas and workers sharing a
    /// catalog may all set it: exactly one of them queues each run)
    #[arg(long, env = "FOVEA_TRAIN_SCHEDULE", default_value = "off")]
    pub train_schedule: String,
}

pub fn worker(home: &Path, variant: Variant, engine: Engine, args: &WorkerArgs) -> anyhow::Result<i32> {
    let schedule = fovea_app::parse_schedule(&args.train_schedule)?;
    runtime()?.block_on(async {
        let app = open_app(home, variant, engine, &args.app).await?;
        let jobs = app.spawn_worker(schedule);
        eprintln!("fovea worker {} is waiting for jobs (data in {})", std::process::id(), args.app.data.display());
        shutdown_signal().await;
        // A job cut short here keeps its lease until it runs out; then another worker redoes what was not committed.
        jobs.abort();
        app.snapshot().await?;
        Ok(0)
    })
}

/// Ctrl-C or SIGTERM (what a service manager or `docker stop` sends).
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
