//! The `fovea` command as a user runs it: real weights, real photos, bad files among good ones.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fovea(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fovea")).args(args).output().expect("run fovea")
}

fn samples() -> PathBuf {
    fovea_model::fetch::ensure_sample_photos(&fovea_model::fovea_home()).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fovea-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn predict_reports_top_classes_and_skips_bad_files() {
    let dir = tmp("predict");
    let bad = dir.join("notes.jpg");
    std::fs::write(&bad, b"this is text, not a JPEG").unwrap();
    let coffee = samples().join("coffee.png");
    let out = fovea(&["predict", coffee.to_str().unwrap(), bad.to_str().unwrap(), "--top", "3", "--json"]);
    assert_eq!(out.status.code(), Some(1), "a failed file must show in the exit code");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let top = &rows[0]["top"];
    assert_eq!(top.as_array().unwrap().len(), 3);
    assert_eq!(top[0]["class"], "espresso");
    let p: Vec<f64> = top.as_array().unwrap().iter().map(|t| t["probability"].as_f64().unwrap()).collect();
    assert!(p[0] > 0.5 && p[0] >= p[1] && p[1] >= p[2]);
    assert_eq!(rows[1]["error"]["code"], "not_an_image");
    assert!(String::from_utf8_lossy(&out.stderr).contains("notes.jpg"));

    let text = fovea(&["predict", coffee.to_str().unwrap()]);
    assert_eq!(text.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&text.stdout).contains("espresso"));
}

#[test]
fn embed_writes_one_npy_row_per_good_image() {
    let dir = tmp("embed");
    let out_file = dir.join("e.npy");
    let s = samples();
    let out = fovea(&[
        "embed",
        s.join("chelsea.png").to_str().unwrap(),
        s.join("rocket.jpg").to_str().unwrap(),
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&out_file).unwrap();
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert!(String::from_utf8_lossy(&bytes[10..10 + hlen]).contains("(2, 1280)"));
    assert_eq!(bytes.len(), 10 + hlen + 2 * 1280 * 4);
}

/// A small ImageFolder of photo variants (crops and mirror images), made here so the test needs no dataset.
fn photo_folder(root: &Path, per_class: usize, offset: u32) {
    for (class, file) in [("cat", "chelsea.png"), ("coffee", "coffee.png"), ("rocket", "rocket.jpg")] {
        let img = fovea_vision::decode_file(&samples().join(file), &Default::default()).unwrap();
        let folder = root.join(class);
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..per_class as u32 {
            let k = i + offset;
            let (w, h) = (img.width() * (80 - 3 * (k % 7)) / 100, img.height() * (80 - 2 * (k % 5)) / 100);
            let crop = image::imageops::crop_imm(&img, (k * 7) % (img.width() - w), (k * 5) % (img.height() - h), w, h)
                .to_image();
            let crop = if k % 2 == 1 { image::imageops::flip_horizontal(&crop) } else { crop };
            crop.save(folder.join(format!("{k}.png"))).unwrap();
        }
    }
}

#[test]
fn eval_stream_compares_online_and_offline_on_an_image_folder() {
    let dir = tmp("eval");
    photo_folder(&dir.join("train"), 4, 0);
    photo_folder(&dir.join("test"), 2, 100);
    let out = Command::new(env!("CARGO_BIN_EXE_fovea"))
        .env("FOVEA_HOME", fovea_model::fovea_home())
        .args(["eval", "stream", "--train", dir.join("train").to_str().unwrap(), "--test"])
        .arg(dir.join("test"))
        .args(["--correction-check", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["classes"], 3);
    assert_eq!(r["train_images"], 12);
    assert_eq!(r["online"]["checkpoints"].as_array().unwrap().len(), 3);
    // Three very different photos: the online head and batch NCM get every held-out variant right; logistic
    // regression on 12 samples in 1280 dimensions is only asked to beat chance.
    assert!(r["online"]["final_accuracy"].as_f64().unwrap() >= 0.99, "{r}");
    assert!(r["offline_ncm_accuracy"].as_f64().unwrap() >= 0.99, "{r}");
    assert!(r["offline_logistic_accuracy"].as_f64().unwrap() > 0.5, "{r}");
    assert!(r["ratio_online_offline"].as_f64().unwrap() > 0.97);

    let missing = fovea(&["eval", "stream", "--train", "/nonexistent", "--test", "/nonexistent"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent"));
}

#[test]
fn a_labelled_reimport_leaves_a_persons_label_alone_and_says_so() {
    let dir = tmp("reimport");
    let (folder, data) = (dir.join("folder"), dir.join("data"));
    for (class, photo, k) in [("cat", "chelsea.png", 1), ("cat", "chelsea.png", 2), ("coffee", "coffee.png", 3)] {
        std::fs::create_dir_all(folder.join(class)).unwrap();
        std::fs::write(folder.join(class).join(format!("{k}.png")), common::photo_variant(photo, k)).unwrap();
    }
    let import = || {
        let out = fovea(&["import", "--data", data.to_str().unwrap(), "--labelled", folder.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = import();
    assert!(first.contains("3 labels, 0 human labels left alone"), "{first}");

    // A person corrects one imported cat to coffee in the web app.
    let server = common::serve(&data);
    let bytes = std::fs::read(folder.join("cat").join("1.png")).unwrap();
    let c: serde_json::Value =
        ureq::post(&format!("{}/api/v1/classify", server.base)).send_bytes(&bytes).unwrap().into_json().unwrap();
    let label = format!("{}/api/v1/images/{}/label", server.base, c["image_id"].as_str().unwrap());
    ureq::post(&label).send_json(serde_json::json!({ "class": "coffee" })).unwrap();
    drop(server);

    // Importing the same folder again keeps the person's label and reports it.
    let again = import();
    assert!(again.contains("0 labels, 1 human labels left alone"), "{again}");
    let server = common::serve(&data);
    let rows: serde_json::Value =
        ureq::get(&format!("{}/api/v1/images?class=coffee", server.base)).call().unwrap().into_json().unwrap();
    assert_eq!(rows["total"], 2, "{rows}");
}

#[test]
fn listing_commands_work_without_readable_weights() {
    // A home whose weights file is garbage: any command that loads the network fails on it.
    let home = tmp("no-weights");
    std::fs::create_dir_all(home.join("models")).unwrap();
    std::fs::write(home.join("models").join("lite0.safetensors"), b"not weights").unwrap();
    let data = tmp("no-weights-data");
    // `fovea GROUP --data DIR ACTION`
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fovea"))
            .env("FOVEA_HOME", &home)
            .arg(args[0])
            .args(["--data", data.to_str().unwrap()])
            .args(&args[1..])
            .output()
            .unwrap()
    };
    for cmd in [&["users", "list"][..], &["jobs", "list"], &["models", "list"]] {
        let out = run(cmd);
        assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(String::from_utf8_lossy(&run(&["models", "list"]).stdout).contains("status"));
    // A command that needs the network still says why it cannot run.
    let identify = Command::new(env!("CARGO_BIN_EXE_fovea"))
        .env("FOVEA_HOME", &home)
        .args(["identify", "--data", data.to_str().unwrap(), data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!identify.status.success());
}

#[test]
fn identify_walks_a_folder_recursively() {
    let dir = tmp("identify-tree");
    photo_folder(&dir.join("photos"), 2, 0);
    std::fs::create_dir_all(dir.join("photos").join("cat").join("deeper")).unwrap();
    std::fs::copy(samples().join("chelsea.png"), dir.join("photos").join("cat").join("deeper").join("x.png")).unwrap();
    let csv = dir.join("out.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_fovea"))
        .env("FOVEA_HOME", fovea_model::fovea_home())
        .args(["identify", dir.join("photos").to_str().unwrap(), "--data"])
        .arg(dir.join("data"))
        .arg("--csv")
        .arg(&csv)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("identified 7 images"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let rows: Vec<String> = std::fs::read_to_string(&csv).unwrap().lines().skip(1).map(str::to_owned).collect();
    assert_eq!(rows.len(), 7);
    // Rows follow the walk's sorted order.
    assert!(rows[0].contains("cat/0.png") && rows[2].contains("cat/deeper/x.png"), "{rows:?}");
}

/// `processed` of collection 1, from `fovea collections list` (reads only the catalog).
fn processed(data: &Path) -> Option<(u64, String)> {
    let out = fovea(&["collections", "list", "--data", data.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = text.lines().nth(1)?.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    Some((row.get(2)?.parse().ok()?, row.get(5)?.clone()))
}

#[test]
fn a_collection_killed_mid_run_resumes_with_exact_counts() {
    let dir = tmp("identify-kill");
    let photos = dir.join("photos");
    photo_folder(&photos, 50, 0);
    let (data, csv) = (dir.join("data"), dir.join("out.csv"));
    let run = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fovea"));
        c.env("FOVEA_HOME", fovea_model::fovea_home())
            .args(["identify", photos.to_str().unwrap(), "--data", data.to_str().unwrap(), "--csv"])
            .arg(&csv);
        c
    };
    let log = dir.join("identify.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let mut child = run().stdout(std::process::Stdio::null()).stderr(stderr).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let at_kill = loop {
        assert!(std::time::Instant::now() < deadline, "identify never committed a result");
        if let Some(status) = child.try_wait().unwrap() {
            let why = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("identify ended ({status}) before a committed result was seen: {:?}\n{why}", processed(&data));
        }
        if let Some((n, total)) = processed(&data) {
            if n > 0 {
                child.kill().unwrap(); // SIGKILL: no clean shutdown
                break (n, total);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    child.wait().unwrap();
    let (n, total) = processed(&data).unwrap();
    assert!(n >= at_kill.0, "committed results survive a kill");
    assert!(n < 150 && total == "running?", "killed before the end: {n} done, total {total} (at kill {at_kill:?})");

    let out = run().output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("resuming collection 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(processed(&data), Some((150, "150".to_owned())), "every file once, none lost");
    let rows: Vec<String> = std::fs::read_to_string(&csv).unwrap().lines().skip(1).map(str::to_owned).collect();
    assert_eq!(rows.len(), 150);
    let mut files: Vec<&str> = rows.iter().map(|r| r.split(',').next().unwrap()).collect();
    files.sort();
    files.dedup();
    assert_eq!(files.len(), 150, "no file counted twice");
    // Nothing was taught, so every result is unknown.
    let show = fovea(&["collections", "show", "1", "--data", data.to_str().unwrap(), "--json", "--unknown"]);
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["total"], 150, "{v}");

    // One bulk action over a filter, then its undo.
    let d = data.to_str().unwrap();
    let tag = fovea(&["collections", "--data", d, "bulk", "1", "--action", "tag", "--with-tag", "staged", "--unknown"]);
    assert!(tag.status.success(), "{}", String::from_utf8_lossy(&tag.stderr));
    assert!(
        String::from_utf8_lossy(&tag.stdout).contains("changed 150 images"),
        "{}",
        String::from_utf8_lossy(&tag.stdout)
    );
    let tagged = fovea(&["collections", "--data", d, "show", "1", "--tag", "staged", "--json"]);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&tagged.stdout).unwrap()["total"], 150);
    let undo = fovea(&["collections", "--data", d, "undo", "1"]);
    assert!(
        String::from_utf8_lossy(&undo.stdout).contains("150 images restored"),
        "{}",
        String::from_utf8_lossy(&undo.stdout)
    );
    let bad = fovea(&["collections", "--data", d, "bulk", "1", "--action", "explode"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("use accept, relabel"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn an_import_tagged_synthetic_shows_in_coverage_and_the_tag_filter() {
    let dir = tmp("import-tag");
    photo_folder(&dir.join("photos"), 2, 3);
    let d = dir.join("data");
    let d = d.to_str().unwrap();
    let bad = fovea(&["import", "--data", d, "--labelled", dir.join("photos").to_str().unwrap(), "--tag", "two words"]);
    assert_eq!(bad.status.code(), Some(2), "a bad tag is refused before anything is read");
    let out = fovea(&["import", "--data", d, "--labelled", dir.join("photos").to_str().unwrap(), "--tag", "Synthetic"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("tagged 6 images"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let coverage = fovea(&["collections", "--data", d, "coverage"]);
    let text = String::from_utf8_lossy(&coverage.stdout);
    let cat = text.lines().find(|l| l.starts_with("cat ")).unwrap_or_else(|| panic!("{text}"));
    assert!(cat.contains("100%"), "every cat label is synthetic: {cat}");
}
