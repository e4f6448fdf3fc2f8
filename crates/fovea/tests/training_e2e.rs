//! The batch fine-tune story with the real binary: import digits, fine-tune, gate, promote, a running server
//! following a rollback made elsewhere, exports checked in ONNX Runtime, throw-away rules, and a killed job
//! that leaves serving untouched and is retried.

mod common;

use common::ok;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A small installation cutoff so a test-sized dataset trains for real (not as a throw-away run).
const CUTOFF: &str = "10";

fn fovea(data: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fovea"));
    // `--data` belongs to the first subcommand (`models --data D list`).
    cmd.arg(args[0]).arg("--data").arg(data).args(&args[1..]).env("FOVEA_CUTOFF", CUTOFF);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run fovea")
}

fn digits(root: &Path, per_class: usize) {
    digits_split(root, per_class, 1);
}

/// scikit-learn's 8×8 digits, upscaled: `train` and `test` images per class in `root/train` and `root/test`.
fn digits_split(root: &Path, train: usize, test: usize) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make_datasets.py");
    let (train, test) = (train.to_string(), test.to_string());
    let out = Command::new("python3")
        .arg(script)
        .args(["digits", root.to_str().unwrap(), "--train", &train, "--test", &test, "--scale", "4"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn served_version(base: &str, k: u32) -> String {
    let c: Value = ureq::post(&format!("{base}/api/v1/classify"))
        .send_bytes(&common::photo_variant("coffee.png", k))
        .unwrap()
        .into_json()
        .unwrap();
    c["model_version"].as_str().unwrap().to_owned()
}

fn model_id_from(report: &str, prefix: &str) -> String {
    let at = report.find(&format!("model {prefix}")).unwrap_or_else(|| panic!("no {prefix} model in:\n{report}"));
    report[at + 6..].split_whitespace().next().unwrap().to_owned()
}

#[test]
fn fine_tune_promote_rollback_export_and_recover_a_killed_job() {
    let dir = tempfile::tempdir().unwrap();
    let (data, set) = (dir.path().join("data"), dir.path().join("digits"));
    digits(&set, 14);
    let imported = ok(&fovea(&data, &["import", "--labelled", set.join("train").to_str().unwrap()], &[]));
    assert!(imported.contains("imported 140 new images"), "{imported}");

    // A real fine-tune: judged against the serving model on the same splits; promoted exactly when the gate passes.
    let run = fovea(&data, &["train", "--epochs", "2", "--seed", "3"], &[]);
    let report = ok(&run);
    eprintln!("{report}");
    // Its output is a pipe here, where indicatif draws nothing: progress must still show, a line per epoch.
    let progress = String::from_utf8_lossy(&run.stderr);
    assert!(progress.contains("training…") && progress.contains("epoch 1/2: loss"), "no progress lines:\n{progress}");
    let ft = model_id_from(&report, "ft-");
    // The app's evaluations of the two models pair up image by image, so the gate and the test split report the
    // paired comparison (a gate that could not pair them would refuse with "cannot be compared").
    for needle in [
        "test accuracy: serving model + online head",
        "benchmark (",
        "gate: ",
        "images scored by both models",
        "exact McNemar p = ",
        "95% intervals): serving [",
    ] {
        assert!(report.contains(needle), "{needle} missing from:\n{report}");
    }
    assert_eq!(report.contains("gate: PASSED"), report.contains("  promoted in"), "{report}");
    let list = ok(&fovea(&data, &["models", "list"], &[]));
    assert!(list.contains(&ft) && list.contains("efficientnet-lite0"), "{list}");

    // An admin may promote by hand; a running server then serves it, and follows a rollback made elsewhere.
    ok(&fovea(&data, &["models", "promote", &ft], &[]));
    let data_s = data.to_str().unwrap();
    let server = common::serve_with(
        &["serve", "--open", "--listen", "127.0.0.1:0", "--data", data_s],
        &[("FOVEA_CUTOFF", CUTOFF)],
    );
    assert!(served_version(&server.base, 1).starts_with(&format!("{ft}/")));
    let rolled = ok(&fovea(&data, &["models", "rollback"], &[]));
    assert!(rolled.contains("now serving efficientnet-lite0"), "{rolled}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut k = 2;
    while !served_version(&server.base, k).starts_with("efficientnet-lite0/") {
        assert!(Instant::now() < deadline, "the running server never followed the rollback");
        std::thread::sleep(Duration::from_millis(500));
        k += 1;
    }
    drop(server);

    // Exports: safetensors with the grown classifier; ONNX that ONNX Runtime runs like the fast path.
    let st = dir.path().join("ft.safetensors");
    ok(&fovea(&data, &["export", "model", "--format", "safetensors", "--model", &ft, st.to_str().unwrap()], &[]));
    let w = fovea_model::Weights::load_safetensors(&st).unwrap();
    assert_eq!(w.shape("_fc.weight"), Some(&[10usize, 1280][..]));
    let onnx = dir.path().join("ft.onnx");
    ok(&fovea(&data, &["export", "model", "--format", "onnx", "--model", &ft, onnx.to_str().unwrap()], &[]));
    {
        use fovea_model::Backbone;
        let variant = fovea_model::Variant::Lite0;
        let ort = fovea_model::ort_backbone::OrtBackbone::from_file(&onnx, variant, 2).unwrap();
        let fast = fovea_model::FastBackbone::new(&w, variant, 2).unwrap();
        let img = image::imageops::thumbnail(
            &image::open(set.join("train/3").read_dir().unwrap().next().unwrap().unwrap().path()).unwrap().to_rgb8(),
            64,
            64,
        );
        let x = fovea_vision::to_input(&img, 224);
        let (a, b) = (ort.run(&x, 1).unwrap(), fast.run(&x, 1).unwrap());
        let worst = a.logits.iter().zip(&b.logits).map(|(p, q)| (p - q).abs() / q.abs().max(1.0)).fold(0.0, f32::max);
        assert!(worst < 1e-4, "ONNX Runtime and the fast path differ by {worst}");
        assert_eq!(a.logits.len(), 10);
    }
    let folder = dir.path().join("export");
    ok(&fovea(&data, &["export", "dataset", "--format", "imagefolder", folder.to_str().unwrap()], &[]));
    let files: usize =
        std::fs::read_dir(&folder).unwrap().map(|c| std::fs::read_dir(c.unwrap().path()).unwrap().count()).sum();
    assert_eq!(files, 140);
    let csv = dir.path().join("labels.csv");
    ok(&fovea(&data, &["export", "dataset", "--format", "csv", csv.to_str().unwrap()], &[]));
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 141);

    // Throw-away rules: a lower cutoff needs --throw-away, and such a model is never promoted.
    let refused = fovea(&data, &["train", "--cutoff", "5", "--epochs", "1"], &[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("throw-away"));
    let report = ok(&fovea(&data, &["train", "--cutoff", "5", "--throw-away", "--epochs", "1"], &[]));
    let scratch = model_id_from(&report, "throwaway-");
    assert!(report.contains("not promoted"), "{report}");
    let refused = fovea(&data, &["models", "promote", &scratch], &[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("never promoted"));

    // A training run killed mid-way: serving is untouched, the job is picked up again once its lease runs out.
    let lease = [("FOVEA_JOB_LEASE_SECS", "2")];
    let mut child = Command::new(env!("CARGO_BIN_EXE_fovea"))
        .args(["train", "--epochs", "6", "--data", data_s])
        .env("FOVEA_CUTOFF", CUTOFF)
        .envs(lease)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let jobs = ok(&fovea(&data, &["jobs", "list"], &[]));
        if jobs.lines().next().is_some_and(|l| l.contains("running") && !l.contains(" 0% ")) {
            break;
        }
        assert!(Instant::now() < deadline, "the job never made progress:\n{jobs}");
        std::thread::sleep(Duration::from_millis(300));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let list = ok(&fovea(&data, &["models", "list"], &[]));
    let promoted: Vec<&str> = list.lines().filter(|l| l.contains(" promoted ")).collect();
    assert_eq!(promoted.len(), 1, "{list}");
    assert!(promoted[0].starts_with("efficientnet-lite0"), "serving changed after the kill:\n{list}");
    std::thread::sleep(Duration::from_secs(3));
    let retried = ok(&fovea(&data, &["jobs", "run"], &lease));
    assert!(retried.contains("model ft-"), "{retried}");
    let jobs = ok(&fovea(&data, &["jobs", "list"], &[]));
    let first = jobs.lines().next().unwrap();
    assert!(first.contains("succeeded") && first.contains("attempt 2"), "{jobs}");
}

/// The run's as-served estimate predicts what promotion then serves, on held-out images the run never saw.
#[test]
fn the_runs_estimate_matches_the_promoted_model_on_held_out_images() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("digits");
    digits_split(&set, 60, 40);
    let out = Command::new(env!("CARGO_BIN_EXE_fovea"))
        .env("FOVEA_HOME", fovea_model::fovea_home())
        .args(["eval", "finetune", "--epochs", "2", "--seed", "3", "--json", "--train"])
        .arg(set.join("train"))
        .arg("--heldout")
        .arg(set.join("test"))
        .output()
        .unwrap();
    let stdout = ok(&out);
    let result: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    eprintln!("{result:#}");
    let estimates = &result["estimates"]["as_served"];
    for (estimate, measured) in
        [(&estimates["serving"], &result["before"]), (&estimates["candidate"], &result["after"])]
    {
        let served = measured["accuracy"].as_f64().unwrap();
        let (low, high) = (estimate["low"].as_f64().unwrap(), estimate["high"].as_f64().unwrap());
        assert_eq!(measured["images"], 400);
        assert!(estimate["images"].as_u64().unwrap() >= 40, "{estimate}");
        // Loose: both sides are samples (the held-out measurement's own interval is about ±3 points).
        assert!(low - 0.05 <= served && served <= high + 0.05, "estimate [{low}, {high}] but served {served}");
    }
}
