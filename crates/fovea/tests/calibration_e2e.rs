//! Confidence that means something, with the real binary and weights: digits imported as labels, a held-out
//! split identified, and the served (calibrated) probabilities and unknown verdicts checked against the truth;
//! photos unlike any digit must be answered "unknown".

mod common;

use common::ok;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fovea(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fovea"))
        .arg(args[0])
        .arg("--data")
        .arg(data)
        .args(&args[1..])
        .output()
        .expect("run fovea")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fovea-calibration-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Copies `test/<class>/x.png` to `flat/<class>__x.png`, so one identify run keeps the truth in the file name.
fn flatten(test: &Path, flat: &Path) -> usize {
    std::fs::create_dir_all(flat).unwrap();
    let mut n = 0;
    for class in std::fs::read_dir(test).unwrap() {
        let class = class.unwrap().path();
        let name = class.file_name().unwrap().to_str().unwrap().to_owned();
        for f in std::fs::read_dir(&class).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, flat.join(format!("{name}__{}", f.file_name().unwrap().to_str().unwrap()))).unwrap();
            n += 1;
        }
    }
    n
}

/// `(file, class, probability, unknown)` rows of `fovea identify --csv`.
fn read_csv(path: &Path) -> Vec<(String, String, f64, bool)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("no {name} column"));
    let (file, class, p, unknown) = (col("file"), col("class"), col("probability"), col("unknown"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[file].to_owned(), f[class].to_owned(), f[p].parse().unwrap(), f[unknown] == "true")
        })
        .collect()
}

/// Expected calibration error over 15 equal-width bins.
fn ece(outcomes: &[(f64, bool)]) -> f64 {
    let mut bins = vec![(0usize, 0f64, 0usize); 15];
    for &(p, right) in outcomes {
        let b = ((p * 15.0) as usize).min(14);
        bins[b].0 += 1;
        bins[b].1 += p;
        bins[b].2 += right as usize;
    }
    let n = outcomes.len() as f64;
    bins.iter()
        .filter(|b| b.0 > 0)
        .map(|&(c, conf, hits)| (c as f64 / n) * (conf / c as f64 - hits as f64 / c as f64).abs())
        .sum()
}

#[test]
fn served_probabilities_are_calibrated_and_strangers_are_unknown() {
    let root = tmp("digits");
    common::digits(&root, 12, 30, 11);
    let data = root.join("data");
    ok(&fovea(&data, &["import", "--labelled", root.join("train").to_str().unwrap()]));

    // Held-out digits: nobody trained on them.
    let flat = root.join("heldout");
    let n = flatten(&root.join("test"), &flat);
    let csv = root.join("heldout.csv");
    ok(&fovea(&data, &["identify", flat.to_str().unwrap(), "--csv", csv.to_str().unwrap()]));
    let rows = read_csv(&csv);
    assert_eq!(rows.len(), n);
    let outcomes: Vec<(f64, bool)> = rows
        .iter()
        .map(|(file, class, p, _)| {
            let truth = Path::new(file).file_name().unwrap().to_str().unwrap().split("__").next().unwrap();
            (*p, class == truth)
        })
        .collect();
    let accuracy = outcomes.iter().filter(|o| o.1).count() as f64 / n as f64;
    let mean_confidence = outcomes.iter().map(|o| o.0).sum::<f64>() / n as f64;
    let wrong: Vec<f64> = outcomes.iter().filter(|o| !o.1).map(|o| o.0).collect();
    let wrong_above_99 = wrong.iter().filter(|&&p| p > 0.99).count() as f64 / wrong.len().max(1) as f64;
    let ece = ece(&outcomes);
    let false_unknown = rows.iter().filter(|r| r.3).count() as f64 / n as f64;
    eprintln!(
        "held-out digits n={n}: accuracy {accuracy:.3}, mean confidence {mean_confidence:.3}, ECE {ece:.3}, \
         wrong above 0.99 {wrong_above_99:.2} of {}, called unknown {false_unknown:.3}",
        wrong.len()
    );
    // Enough mistakes to judge confidence by, and confidence that tracks accuracy (uncalibrated, the mean
    // confidence sits near 1 whatever the accuracy).
    assert!(wrong.len() >= 15 && accuracy > 0.5, "accuracy {accuracy} leaves nothing to calibrate against");
    assert!((mean_confidence - accuracy).abs() < 0.1, "confidence {mean_confidence} vs accuracy {accuracy}");
    assert!(ece < 0.12, "ECE {ece}");
    assert!(wrong_above_99 < 0.25, "{wrong_above_99} of wrong answers above 0.99");
    assert!(false_unknown <= 0.15, "{false_unknown} of known-class digits called unknown");

    // Photos of cats, coffee and rockets are nothing like a digit.
    let strangers = root.join("strangers");
    std::fs::create_dir_all(&strangers).unwrap();
    let photos = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png"];
    for (i, name) in photos.iter().enumerate() {
        for k in 0..6u32 {
            std::fs::write(strangers.join(format!("{i}-{k}.png")), common::photo_variant(name, k * 7 + 1)).unwrap();
        }
    }
    let ood_csv = root.join("strangers.csv");
    ok(&fovea(&data, &["identify", strangers.to_str().unwrap(), "--csv", ood_csv.to_str().unwrap()]));
    let ood = read_csv(&ood_csv);
    let unknown_rate = ood.iter().filter(|r| r.3).count() as f64 / ood.len() as f64;
    eprintln!("unrelated photos n={}: called unknown {unknown_rate:.3}", ood.len());
    assert!(unknown_rate >= 0.9, "only {unknown_rate} of unrelated photos called unknown");
    assert!(ood.iter().all(|r| !r.1.is_empty()), "an unknown answer still names the nearest class");

    // The fit and its evidence are on the served model's registry row.
    let shown: Value = serde_json::from_str(&ok(&fovea(&data, &["models", "show", "efficientnet-lite0"]))).unwrap();
    let cal = &shown["metrics"]["calibration"];
    assert_eq!(cal["source"], "leave-one-out", "{cal}");
    assert!(cal["samples"].as_u64().unwrap() >= 100, "{cal}");
    assert!(cal["ece_after"].as_f64().unwrap() < cal["ece_before"].as_f64().unwrap(), "{cal}");
    assert!(cal["false_unknown_rate"].as_f64().unwrap() <= 0.05 + 1e-9, "{cal}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn with_one_photo_per_class_a_horse_is_unknown_and_a_known_photo_is_not() {
    let root = tmp("few");
    let photos = fovea_model::fetch::ensure_sample_photos(&fovea_model::fovea_home()).unwrap();
    let seed = root.join("seed");
    for (class, file) in [("cat", "chelsea.png"), ("coffee", "coffee.png"), ("rocket", "rocket.jpg")]
        .into_iter()
        .chain([("motorcycle", "motorcycle_left.png"), ("astronaut", "astronaut.png")])
    {
        std::fs::create_dir_all(seed.join(class)).unwrap();
        std::fs::copy(photos.join(file), seed.join(class).join(file)).unwrap();
    }
    let data = root.join("data");
    ok(&fovea(&data, &["import", "--labelled", seed.to_str().unwrap()]));
    let queries = root.join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    std::fs::copy(photos.join("horse.png"), queries.join("horse.png")).unwrap();
    std::fs::copy(photos.join("motorcycle_right.png"), queries.join("motorcycle_right.png")).unwrap();
    std::fs::write(queries.join("cat_crop.png"), common::photo_variant("chelsea.png", 3)).unwrap();
    let csv = root.join("q.csv");
    ok(&fovea(&data, &["identify", queries.to_str().unwrap(), "--csv", csv.to_str().unwrap()]));
    let rows = read_csv(&csv);
    let verdict = |name: &str| rows.iter().find(|r| r.0.ends_with(name)).unwrap_or_else(|| panic!("{name}")).clone();
    let horse = verdict("horse.png");
    assert!(horse.3 && !horse.1.is_empty(), "the horse silhouette: {horse:?}");
    let (cat, moto) = (verdict("cat_crop.png"), verdict("motorcycle_right.png"));
    assert!(!cat.3 && cat.1 == "cat", "{cat:?}");
    assert!(!moto.3 && moto.1 == "motorcycle", "{moto:?}");
    let _ = std::fs::remove_dir_all(&root);
}
