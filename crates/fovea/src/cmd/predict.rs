//! `fovea predict` and `fovea embed`: decode, batch, run the backbone, report per file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use fovea_model::{Backbone, Embedded, Variant};
use fovea_vision::DecodeLimits;
use indicatif::ProgressBar;
use serde_json::json;

use super::{load_backbone, softmax, top_k, Engine};

/// Images go through the network this many at a time.
const BATCH: usize = 16;

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Image files (JPEG, PNG, GIF, WebP, BMP, TIFF)
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// How many classes to show per image
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top: u16,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Image files
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Output file: .npy (rows in input order, failed files left out) or, with --json, a JSON file
    #[arg(long)]
    pub out: PathBuf,
    /// Write JSON [{"path", "embedding"}] instead of .npy
    #[arg(long)]
    pub json: bool,
}

/// What happened to one input file.
pub enum Outcome {
    Ok { path: PathBuf, embedded: Embedded },
    Failed { path: PathBuf, code: &'static str, message: String },
}

/// Runs every file through decode → preprocess → backbone, in batches, keeping input order.
pub fn run_files(backbone: &dyn Backbone, files: &[PathBuf], quiet: bool) -> anyhow::Result<Vec<Outcome>> {
    let size = backbone.input_size();
    let limits = DecodeLimits::default();
    let bar = if quiet || files.len() < BATCH * 2 {
        ProgressBar::hidden()
    } else {
        super::progress::counted(files.len() as u64, "{bar:40} {pos}/{len} images {per_sec} eta {eta}")
    };
    let mut out = Vec::with_capacity(files.len());
    for chunk in files.chunks(BATCH) {
        let mut inputs = Vec::new();
        let mut ok_paths = Vec::new();
        let mut slots = Vec::new();
        for path in chunk {
            match fovea_vision::decode_file_for_input(path, &limits, size as u32) {
                Ok(img) => {
                    inputs.extend(fovea_vision::to_input(&img, size as u32));
                    ok_paths.push(path.clone());
                    slots.push(None);
                }
                Err(e) => {
                    slots.push(Some(Outcome::Failed { path: path.clone(), code: e.code(), message: e.to_string() }))
                }
            }
        }
        let batch = if ok_paths.is_empty() { None } else { Some(backbone.run(&inputs, ok_paths.len())?) };
        let mut next = 0;
        for slot in slots {
            match slot {
                Some(failed) => out.push(failed),
                None => {
                    let all = batch.as_ref().expect("a decoded image implies a batch");
                    let embedded = Embedded {
                        batch: 1,
                        embeddings: all.embedding(next).to_vec(),
                        logits: all.logit_row(next).to_vec(),
                    };
                    out.push(Outcome::Ok { path: ok_paths[next].clone(), embedded });
                    next += 1;
                }
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

fn report_failures(outcomes: &[Outcome]) -> i32 {
    let mut failed = 0;
    for o in outcomes {
        if let Outcome::Failed { path, message, .. } = o {
            eprintln!("skipped {}: {message}", path.display());
            failed += 1;
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} files failed", outcomes.len());
        1
    } else {
        0
    }
}

pub fn predict(home: &Path, variant: Variant, engine: Engine, args: &PredictArgs) -> anyhow::Result<i32> {
    let backbone = load_backbone(home, variant, engine)?;
    let names = fovea_model::ensure_imagenet_names(home)?;
    let outcomes = run_files(backbone.as_ref(), &args.images, args.json)?;
    let mut rows = Vec::new();
    for o in &outcomes {
        match o {
            Outcome::Ok { path, embedded } => {
                let probs = softmax(embedded.logit_row(0));
                let top: Vec<_> = top_k(&probs, args.top as usize)
                    .into_iter()
                    .map(|i| json!({"class": names[i], "index": i, "probability": probs[i]}))
                    .collect();
                if !args.json {
                    println!("{}", path.display());
                    for t in &top {
                        let p = t["probability"].as_f64().unwrap_or(0.0);
                        let bar = "█".repeat((p * 30.0).round() as usize);
                        println!("  {:>6.2}%  {:<30} {}", p * 100.0, t["class"].as_str().unwrap_or(""), bar);
                    }
                }
                rows.push(json!({"path": path, "top": top}));
            }
            Outcome::Failed { path, code, message } => {
                rows.push(json!({"path": path, "error": {"code": code, "message": message}}));
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(report_failures(&outcomes))
}

pub fn embed(home: &Path, variant: Variant, engine: Engine, args: &EmbedArgs) -> anyhow::Result<i32> {
    let backbone = load_backbone(home, variant, engine)?;
    let outcomes = run_files(backbone.as_ref(), &args.images, false)?;
    let ok: Vec<(&PathBuf, &[f32])> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Ok { path, embedded } => Some((path, embedded.embedding(0))),
            Outcome::Failed { .. } => None,
        })
        .collect();
    let file = std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    if args.json {
        let rows: Vec<_> = ok.iter().map(|(p, e)| json!({"path": p, "embedding": e})).collect();
        serde_json::to_writer(&mut w, &rows)?;
    } else {
        let flat: Vec<f32> = ok.iter().flat_map(|(_, e)| e.iter().copied()).collect();
        crate::npy::write_f32_2d(&mut w, ok.len(), backbone.embedding_dim(), &flat)?;
    }
    std::io::Write::flush(&mut w)?;
    eprintln!("wrote {} embeddings of {} dimensions to {}", ok.len(), backbone.embedding_dim(), args.out.display());
    Ok(report_failures(&outcomes))
}
