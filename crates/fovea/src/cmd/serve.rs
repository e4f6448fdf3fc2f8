//! `fovea serve`, `fovea import`, `fovea users`: shells over fovea-app.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use fovea_app::{App, AppConfig, Role};
use fovea_model::Variant;
use indicatif::ProgressBar;

use super::{load_backbone, Engine};

#[derive(Args, Debug, Clone)]
pub struct AppArgs {
    /// Folder for the catalog (SQLite) and the image store, unless --catalog / --blobs name others; model weights
    /// are cached here in every case
    #[arg(long, env = "FOVEA_DATA", default_value = "fovea-data", global = true)]
    pub data: PathBuf,
    /// Catalog: postgres://user:password@host:port/db to share one among several servers and workers, or a SQLite
    /// file [default: DATA/fovea.db]
    #[arg(long, env = "FOVEA_CATALOG", value_name = "URL", global = true)]
    pub catalog: Option<String>,
    /// Image store: s3://bucket/prefix (endpoint and keys from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY) or a folder [default: DATA/blobs]
    #[arg(long, env = "FOVEA_BLOBS", value_name = "URL", global = true)]
    pub blobs: Option<String>,
    /// Online head: slda, ncm or ncm-cosine
    #[arg(long, env = "FOVEA_HEAD", default_value = "slda")]
    pub head: String,
    /// Images a class needs before batch fine-tuning takes it (a run may go lower only as a throw-away)
    #[arg(long = "default-cutoff", env = "FOVEA_CUTOFF", default_value_t = 40)]
    pub cutoff: u64,
    /// Largest upload accepted, in megabytes
    #[arg(long, env = "FOVEA_MAX_UPLOAD_MB", default_value_t = 20)]
    pub max_upload_mb: usize,
    /// Largest image accepted, in megapixels (checked before decoding)
    #[arg(long, env = "FOVEA_MAX_MEGAPIXELS", default_value_t = 40)]
    pub max_megapixels: u64,
    /// What drift compares requests with: `training` (the labelled images) or a period YYYY-MM-DD..YYYY-MM-DD
    #[arg(long, env = "FOVEA_DRIFT_REFERENCE", default_value = "training")]
    pub drift_reference: String,
    /// Recent requests in the drift window
    #[arg(long, env = "FOVEA_DRIFT_WINDOW", default_value_t = 200, value_parser = clap::value_parser!(u64).range(20..=5000))]
    pub drift_window: u64,
    /// POST drift alerts as JSON to this URL
    #[arg(long, env = "FOVEA_DRIFT_WEBHOOK", value_name = "URL")]
    pub drift_webhook: Option<String>,
}

impl AppArgs {
    /// The catalog alone (no network loaded), for commands that only read or write records.
    pub async fn open_catalog(&self) -> anyhow::Result<Arc<dyn fovea_app::Catalog>> {
        Ok(fovea_app::open_catalog(&self.data, self.catalog.as_deref()).await?)
    }

    /// The defaults, on a data folder of its own: for measurements that build a store, use it and drop it.
    pub fn throwaway(data: &Path) -> Self {
        AppArgs {
            data: data.to_path_buf(),
            catalog: None,
            blobs: None,
            head: "slda".into(),
            cutoff: 40,
            max_upload_mb: 20,
            max_megapixels: 40,
            drift_reference: "training".into(),
            drift_window: 200,
            drift_webhook: None,
        }
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// Address to listen on
    #[arg(long, env = "FOVEA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Allow anonymous use without a token (only on a loopback address)
    #[arg(long)]
    pub open: bool,
    /// Queue a fine-tune run on a schedule: off, hourly, daily, weekly or e.g. 12h
    #[arg(long, env = "FOVEA_TRAIN_SCHEDULE", default_value = "off")]
    pub train_schedule: String,
    /// Leave jobs (fine-tunes, identify chunks, the schedule) to `fovea worker` processes: this server only answers
    /// requests
    #[arg(long)]
    pub no_jobs: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// A flat folder of images, or with --labelled an ImageFolder (sub-folder name = class)
    pub dir: PathBuf,
    #[arg(long)]
    pub labelled: bool,
    /// Tag every imported image, e.g. `--tag synthetic` or `--tag staged` (repeatable); the Collections page's
    /// coverage shows each class's share of staged/synthetic labels, and results filter by tag
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Queue the import for a worker (`fovea worker`, or `fovea serve` unless --no-jobs) instead of running it
    /// here; the folder must be readable by the worker at the same path
    #[arg(long)]
    pub queue: bool,
}

#[derive(Args, Debug)]
pub struct UsersArgs {
    #[command(flatten)]
    pub app: AppArgs,
    #[command(subcommand)]
    pub action: UsersAction,
}

#[derive(Subcommand, Debug)]
pub enum UsersAction {
    /// Create a user and print their API token (shown once)
    Add {
        name: String,
        /// viewer, annotator or admin
        #[arg(long, default_value = "annotator")]
        role: Role,
    },
    /// List users and roles
    List,
}

pub(crate) async fn open_app(home: &Path, variant: Variant, engine: Engine, a: &AppArgs) -> anyhow::Result<Arc<App>> {
    let backbone = load_backbone(home, variant, engine)?;
    let limits = fovea_vision::DecodeLimits {
        max_bytes: a.max_upload_mb * 1024 * 1024,
        max_pixels: a.max_megapixels * 1_000_000,
        ..Default::default()
    };
    let drift_reference: fovea_app::DriftReference = a.drift_reference.parse()?;
    if let Some(url) = &a.drift_webhook {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--drift-webhook {url:?}: expected an http:// or https:// URL");
        }
    }
    let drift = fovea_app::DriftConfig { window: a.drift_window as usize, ..Default::default() };
    let cfg = AppConfig {
        drift,
        drift_reference,
        drift_webhook: a.drift_webhook.clone(),
        data_dir: a.data.clone(),
        catalog: a.catalog.clone(),
        blobs: a.blobs.clone(),
        variant,
        head: a.head.clone(),
        cutoff: a.cutoff,
        limits,
        base_weights: Some(fovea_model::ensure_weights(home, variant)?),
        engine: engine.into(),
        ..Default::default()
    };
    Ok(App::open(cfg, backbone).await?)
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

pub fn serve(home: &Path, variant: Variant, engine: Engine, args: &ServeArgs) -> anyhow::Result<i32> {
    if args.open && !args.listen.ip().is_loopback() {
        bail!("--open allows anonymous writes, so it only works on a loopback address (not {})", args.listen);
    }
    let schedule = fovea_app::parse_schedule(&args.train_schedule)?;
    runtime()?.block_on(async {
        let app = open_app(home, variant, engine, &args.app).await?;
        // Runs queued jobs here too, unless workers do.
        let worker = (!args.no_jobs).then(|| app.spawn_worker(schedule));
        if let Some(token) = app.ensure_admin().await? {
            println!("first start: created user `admin` with token\n\n    {token}\n\nkeep it: it is shown only once");
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        println!("fovea is serving http://{} (data in {})", listener.local_addr()?, args.app.data.display());
        let router = fovea_server::create_app(app.clone(), args.open);
        axum::serve(listener, router).with_graceful_shutdown(super::worker::shutdown_signal()).await?;
        if let Some(worker) = worker {
            worker.abort();
        }
        app.snapshot().await?;
        Ok(0)
    })
}

pub fn import(home: &Path, variant: Variant, engine: Engine, args: &ImportArgs) -> anyhow::Result<i32> {
    let request = fovea_app::ImportRequest {
        folder: std::path::absolute(&args.dir).with_context(|| format!("{}", args.dir.display()))?,
        labelled: args.labelled,
        tags: args.tags.clone(),
    };
    runtime()?.block_on(async {
        let app = open_app(home, variant, engine, &args.app).await?;
        if args.queue {
            let job = app.enqueue_import(&request).await?;
            println!(
                "queued import job {} ({}): a `fovea worker` or `fovea serve` will run it",
                job.id,
                request.folder.display()
            );
            return Ok(0);
        }
        let bar = progress_bar(0);
        let report = app
            .import_folder(
                &request,
                |p| {
                    bar.set_length(p.total);
                    bar.set_position(p.done);
                },
                &std::sync::atomic::AtomicBool::new(false),
            )
            .await?;
        bar.finish_and_clear();
        for (tag, tagged) in &report.tagged {
            println!("tagged {tagged} images {tag:?}");
        }
        if report.restored_tags > 0 {
            println!("restored {} tags from {}", report.restored_tags, fovea_app::TAGS_FILE);
        }
        println!(
            "imported {} new images ({} already present), {} labels, {} human labels left alone, {} failed",
            report.imported,
            report.duplicates,
            report.labelled,
            report.kept_human,
            report.failed.len()
        );
        for (p, e) in &report.failed {
            eprintln!("  {p}: {e}");
        }
        Ok(if report.failed.is_empty() { 0 } else { 1 })
    })
}

pub fn users(home: &Path, variant: Variant, engine: Engine, args: &UsersArgs) -> anyhow::Result<i32> {
    runtime()?.block_on(async {
        match &args.action {
            UsersAction::Add { name, role } => {
                let app = open_app(home, variant, engine, &args.app).await?;
                let (user, token) = app.add_user(name, *role).await?;
                println!("created {} ({}); token:\n{token}", user.name, user.role.as_str());
            }
            // Reading records needs no network: only the catalog is opened.
            UsersAction::List => {
                for u in args.app.open_catalog().await?.list_users().await? {
                    println!("{:<20} {}", u.name, u.role.as_str());
                }
            }
        }
        Ok(0)
    })
}

/// The files directly inside `dir`, sorted.
pub(crate) fn flat_folder(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Ok(fovea_app::flat_folder(dir)?)
}

pub(crate) fn progress_bar(len: u64) -> ProgressBar {
    super::progress::counted(len, "{bar:40} {pos}/{len} {msg} eta {eta}")
}
