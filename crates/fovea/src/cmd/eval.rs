//! `fovea eval stream`: the online head against offline training, on real ImageFolders through the backbone.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use fovea_learn::{
    batch_ncm, correction_check, run_stream, stream_order, AnyHead, Example, HeadKind, LogisticConfig,
    LogisticRegression, Metric, SldaConfig, SldaHead, StreamOrder,
};
use fovea_model::{Backbone, Variant};
use serde_json::json;

use super::eval_acquire::{self, Acquire, Plan};
use super::predict::{run_files, Outcome};
use super::{load_backbone, Engine};

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub what: EvalWhat,
}

#[derive(Subcommand, Debug)]
pub enum EvalWhat {
    /// Feed training images one at a time to an online head; compare with offline training on all of them
    Stream(StreamArgs),
    /// Replay streams of images after a reference and report where the drift monitor first alerts
    Drift(super::eval_drift::DriftEvalArgs),
    /// Find wrong labels in an ImageFolder whose folder names are the given labels (a throwaway store)
    LabelErrors(super::eval_label_errors::LabelErrorArgs),
    /// One fine-tune run measured as served on held-out images, before and after promotion, beside the run's
    /// own estimates (a throwaway store)
    Finetune(super::eval_finetune::FineTuneEvalArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Order {
    /// All of class 1, then all of class 2, ... (the hard case: no replay of old classes)
    ClassIncremental,
    /// Random order (seeded)
    Shuffled,
}

#[derive(Args, Debug)]
pub struct StreamArgs {
    /// Training ImageFolder: one sub-folder per class
    #[arg(long)]
    pub train: PathBuf,
    /// Test ImageFolder with the same class folders
    #[arg(long)]
    pub test: PathBuf,
    #[arg(long, value_enum, default_value = "class-incremental")]
    pub order: Order,
    /// Online head: slda, ncm or ncm-cosine
    #[arg(long, default_value = "slda")]
    pub head: String,
    /// Also measure what a single correction does to wrongly predicted test images
    #[arg(long)]
    pub correction_check: bool,
    /// SLDA shrinkage: weight of the isotropic prior covariance, in pseudo-samples
    #[arg(long, default_value_t = fovea_learn::SldaConfig::default().prior_strength)]
    pub prior_strength: f64,
    /// Seed for the shuffled order
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Active learning instead: the training folder is an unlabelled pool; from one image per class, pick the
    /// next image(s) to label with these strategies (comma-separated) and print each learning curve
    #[arg(long, value_enum, value_delimiter = ',')]
    pub acquire: Vec<Acquire>,
    /// With --acquire: images picked per round before the head is asked again
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// With --acquire: measure test accuracy after every N labels
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub every: u64,
    /// With --acquire: stop after this many labels, seed set included [default: the whole pool]
    #[arg(long)]
    pub budget: Option<usize>,
}

pub fn eval(home: &Path, variant: Variant, engine: Engine, args: &EvalArgs) -> anyhow::Result<i32> {
    let a = match &args.what {
        EvalWhat::Stream(a) => a,
        EvalWhat::Drift(d) => return super::eval_drift::eval_drift(home, variant, engine, d),
        EvalWhat::LabelErrors(a) => return super::eval_label_errors::run(home, variant, engine, a),
        EvalWhat::Finetune(a) => return super::eval_finetune::run(home, variant, engine, a),
    };
    let backbone = load_backbone(home, variant, engine)?;
    let cache = home.join("embeddings").join(format!("{}.json", variant.name()));
    let train = embed_folder(backbone.as_ref(), &a.train, &cache)?;
    let test = embed_folder(backbone.as_ref(), &a.test, &cache)?;
    let dim = backbone.embedding_dim();
    let kind: HeadKind = a.head.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let new_head = || -> anyhow::Result<AnyHead> {
        Ok(match kind {
            // The prior's scale comes from the data (only its overall variance, not labels), as a user's first images would give.
            HeadKind::Slda => {
                let cfg = SldaConfig { prior_strength: a.prior_strength, ..SldaConfig::default() }
                    .with_prior_from(train.iter().map(|e| e.x.as_slice()));
                AnyHead::Slda(SldaHead::with_config(dim, cfg)?)
            }
            other => AnyHead::new(other, dim)?,
        })
    };
    if !a.acquire.is_empty() {
        let plan = Plan { batch: a.batch as usize, every: a.every as usize, budget: a.budget, seed: a.seed };
        let runs = a
            .acquire
            .iter()
            .map(|&s| eval_acquire::run(new_head()?, &train, &test, s.into(), plan))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if a.json {
            let out = json!({"pool_images": train.len(), "test_images": test.len(), "head": a.head, "runs": runs});
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            eval_acquire::print(&runs, train.len(), test.len(), &mut std::io::stdout().lock())?;
        }
        return Ok(0);
    }
    let mut head = new_head()?;
    let order = match a.order {
        Order::ClassIncremental => StreamOrder::ClassIncremental,
        Order::Shuffled => StreamOrder::Shuffled,
    };
    let idx = stream_order(&train, order, a.seed);
    let report = run_stream(&mut head, &train, &test, &idx)?;

    let (logistic, fit) = LogisticRegression::fit(&train, &LogisticConfig::default())?;
    let offline_lr = fovea_learn::accuracy(&logistic, &test)?;
    let offline_ncm = fovea_learn::accuracy(&batch_ncm(&train, Metric::Euclidean)?, &test)?;
    // Corrections are probed on one half of the test set and their side effects measured on the other.
    let (probe, heldout) = test.split_at(test.len() / 2);
    let correction = if a.correction_check { Some(correction_check(&head, probe, heldout, None)?) } else { None };

    let predict_us = time_predictions(&head, &test);
    if a.json {
        let out = json!({
            "train_images": train.len(), "test_images": test.len(), "classes": report.classes, "head": a.head,
            "order": format!("{:?}", a.order), "online": report, "offline_logistic_accuracy": offline_lr,
            "offline_logistic_fit": {"iterations": fit.iterations, "converged": fit.converged},
            "offline_ncm_accuracy": offline_ncm, "ratio_online_offline": report.online_offline_ratio(offline_lr),
            "predict_latency_us_mean": predict_us, "correction": correction,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    let mut o = std::io::stdout().lock();
    writeln!(
        o,
        "{} training and {} test images, {} classes, head {}, order {:?}",
        train.len(),
        test.len(),
        report.classes,
        a.head,
        a.order
    )?;
    writeln!(o, "accuracy on the test folder as classes arrive:")?;
    for c in &report.checkpoints {
        writeln!(
            o,
            "  after {:>3} classes ({:>5} images): {:>6.2}% on seen classes, {:>6.2}% overall",
            c.classes_seen,
            c.samples_seen,
            c.seen_class_accuracy * 100.0,
            c.accuracy * 100.0
        )?;
    }
    writeln!(o, "online {:<28} {:>6.2}%", a.head, report.final_accuracy * 100.0)?;
    writeln!(
        o,
        "offline logistic regression  {:>6.2}%  ({} L-BFGS iterations, converged: {})",
        offline_lr * 100.0,
        fit.iterations,
        fit.converged
    )?;
    writeln!(o, "offline nearest-class-mean   {:>6.2}%", offline_ncm * 100.0)?;
    writeln!(o, "ratio online / offline       {:>6.3}   (target >= 0.97)", report.online_offline_ratio(offline_lr))?;
    let l = &report.update_latency;
    writeln!(o, "update latency               mean {:.0} µs, p99 {:.0} µs   (target < 2000 µs)", l.mean_us, l.p99_us)?;
    writeln!(o, "predict latency              mean {predict_us:.0} µs   (target < 1000 µs)")?;
    if let Some(c) = correction {
        writeln!(
            o,
            "single corrections: {} wrong test images, {} fixed by one correction ({:.1}%, target >= 99%)",
            c.wrong,
            c.fixed,
            c.fix_rate * 100.0
        )?;
        writeln!(
            o,
            "  held-out accuracy moved by {:+.2} pt on average (min {:+.2}, max {:+.2}; target |Δ| < 0.5 pt)",
            c.mean_heldout_delta * 100.0,
            c.min_heldout_delta * 100.0,
            c.max_heldout_delta * 100.0
        )?;
    }
    Ok(0)
}

fn time_predictions(head: &AnyHead, test: &[Example]) -> f64 {
    use fovea_learn::Head;
    let start = std::time::Instant::now();
    for e in test {
        let _ = head.predict(&e.x);
    }
    start.elapsed().as_secs_f64() * 1e6 / test.len().max(1) as f64
}

/// Lists `dir/<class>/<image>` in a stable order.
pub fn image_folder(dir: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    Ok(fovea_app::image_folder(dir)?)
}

/// Embeds every image once; embeddings are cached by file content hash so repeated runs skip the network.
fn embed_folder(backbone: &dyn Backbone, dir: &Path, cache_path: &Path) -> anyhow::Result<Vec<Example>> {
    let files = image_folder(dir)?;
    let mut cache: HashMap<String, Vec<f32>> =
        std::fs::read(cache_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let keys: Vec<String> =
        files.iter().map(|(p, _)| std::fs::read(p).map(|b| content_key(&b))).collect::<std::io::Result<_>>()?;
    let missing: Vec<PathBuf> =
        files.iter().zip(&keys).filter(|(_, k)| !cache.contains_key(*k)).map(|((p, _), _)| p.clone()).collect();
    if !missing.is_empty() {
        eprintln!("embedding {} images from {}", missing.len(), dir.display());
        for outcome in run_files(backbone, &missing, false)? {
            match outcome {
                Outcome::Ok { path, embedded } => {
                    let key = content_key(&std::fs::read(&path)?);
                    cache.insert(key, embedded.embedding(0).to_vec());
                }
                Outcome::Failed { path, message, .. } => eprintln!("skipped {}: {message}", path.display()),
            }
        }
        if let Some(parent) = cache_path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = cache_path.with_extension("partial");
        std::fs::write(&tmp, serde_json::to_vec(&cache)?)?;
        std::fs::rename(&tmp, cache_path)?;
    }
    Ok(files
        .into_iter()
        .zip(keys)
        .filter_map(|((_, class), key)| cache.get(&key).map(|x| Example::new(x.clone(), class)))
        .collect())
}

/// FNV-1a over the bytes plus their length: a cache key, not a security boundary.
fn content_key(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}-{}", bytes.len())
}
