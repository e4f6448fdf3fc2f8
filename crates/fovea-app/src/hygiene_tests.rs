//! Hygiene use cases on the tiny real backbone: split leakage of a constructed split, and the promotion it blocks.

use std::io::Cursor;

use fovea_store::ModelVersionRecord;
use fovea_train::dataset::{DatasetPlan, Sample};

use crate::tests::{open_app, picture, register_fine_tune};
use crate::{AppError, ImportReport};

/// A picture with its own layout per seed (random 8-pixel blocks), so no two seeds are near duplicates.
fn blocks(seed: u64) -> image::RgbImage {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let cells: Vec<[u8; 3]> = (0..30).map(|_| [rng.random(), rng.random(), rng.random()]).collect();
    image::RgbImage::from_fn(48, 40, |x, y| image::Rgb(cells[(y / 8 * 6 + x / 8) as usize]))
}

fn encoded(img: &image::RgbImage, format: image::ImageFormat) -> bytes::Bytes {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out.into()
}

/// The same pixels as `picture(seed)`, in other bytes (BMP instead of PNG).
fn same_pixels_other_bytes(seed: u8) -> bytes::Bytes {
    let img = image::load_from_memory(&picture(seed)).unwrap();
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Bmp).unwrap();
    out.into()
}

fn sample(i: i64, bytes: &[u8], class: &str) -> Sample {
    Sample {
        image_id: i,
        sha256: fovea_store::sha256_hex(bytes),
        dhash: 0,
        class: class.into(),
        train_only: false,
        link: None,
    }
}

fn plan(train: Vec<Sample>, benchmark: Vec<Sample>, test: Vec<Sample>) -> DatasetPlan {
    DatasetPlan {
        classes: vec!["cat".into(), "dog".into()],
        train,
        validation: Vec::new(),
        test,
        benchmark,
        excluded: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_across_splits_is_reported_and_a_benchmark_copy_in_training_is_a_leak() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(dir.path()).await;
    let (png, bmp) = (picture(1), same_pixels_other_bytes(1));
    let (dog, other) = (encoded(&blocks(2), image::ImageFormat::Png), encoded(&blocks(3), image::ImageFormat::Png));
    let mut report = ImportReport::default();
    for (bytes, class) in [(&png, "cat"), (&bmp, "cat"), (&dog, "dog"), (&other, "dog")] {
        app.import_bytes(bytes.clone(), "test", Some(class), &mut report).await.unwrap();
    }
    assert_eq!(report.imported, 4, "other bytes are another image to the store");

    // The copy on the benchmark side, its original in training: a leak that blocks promotion.
    let leaky = plan(
        vec![sample(0, &png, "cat"), sample(2, &dog, "dog")],
        vec![sample(1, &bmp, "cat")],
        vec![sample(3, &other, "dog")],
    );
    let r = app.split_leakage(&leaky).await.unwrap();
    assert_eq!(r.images, 4);
    assert!(r.benchmark_leaked, "{r:?}");
    assert_eq!(r.benchmark_images_leaked, 1);
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].splits, vec!["train", "benchmark"]);

    // Both copies on the benchmark side: nothing crosses.
    let clean = plan(
        vec![sample(2, &dog, "dog")],
        vec![sample(0, &png, "cat"), sample(1, &bmp, "cat")],
        vec![sample(3, &other, "dog")],
    );
    let r = app.split_leakage(&clean).await.unwrap();
    assert!(!r.benchmark_leaked && r.groups.is_empty(), "{r:?}");
    // A copy in test and one in training is reported, but does not block: the gate judges on the benchmark.
    let test_only = plan(vec![sample(0, &png, "cat")], vec![sample(2, &dog, "dog")], vec![sample(1, &bmp, "cat")]);
    let r = app.split_leakage(&test_only).await.unwrap();
    assert_eq!(r.groups.len(), 1);
    assert!(!r.benchmark_leaked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_judged_on_a_leaked_benchmark_is_never_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(dir.path()).await;
    assert!(matches!(app.leakage(None).await, Err(AppError::NotFound { .. })), "no run has a report yet");
    register_fine_tune(&app, "ft-001").await;
    let leaked = crate::leakage::crossing(
        vec![vec![
            ("a".into(), fovea_train::dataset::Split::Train, "cat".into()),
            ("b".into(), fovea_train::dataset::Split::Benchmark, "cat".into()),
        ]],
        2,
    );
    let metrics = serde_json::json!({ "leakage": leaked });
    app.catalog().set_model_metrics("ft-001", &metrics).await.unwrap();
    let refused = app.promote("ft-001").await;
    assert!(matches!(&refused, Err(AppError::Conflict(m)) if m.contains("leaked")), "{refused:?}");
    let served: ModelVersionRecord = app.model(&app.served_model().await).await.unwrap();
    assert_ne!(served.id, "ft-001");
    let r = app.leakage(None).await.unwrap();
    assert_eq!(r.model.as_deref(), Some("ft-001"));
    assert!(r.benchmark_leaked);
    assert!(matches!(app.leakage(Some(&app.base_model_id())).await, Err(AppError::Invalid(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_survive_export_and_import_and_staged_classes_can_be_picked_out() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(&dir.path().join("a")).await;
    let mut report = ImportReport::default();
    let mut ids = Vec::new();
    for (seed, class) in [(10, "cat"), (11, "cat"), (12, "cat"), (13, "dog"), (14, "dog")] {
        let bytes = encoded(&blocks(seed), image::ImageFormat::Png);
        ids.push(fovea_store::sha256_hex(&bytes));
        app.import_bytes(bytes, "test", Some(class), &mut report).await.unwrap();
    }
    assert_eq!(app.tag_images(&ids[..2], "synthetic", "ann").await.unwrap(), 2);
    assert_eq!(app.tag_images(&ids[1..2], "staged", "ann").await.unwrap(), 1);

    // Two of the three cats are synthetic: cat depends on them, dog does not.
    let staged: Vec<String> = app.coverage(Some(0.5)).await.unwrap().into_iter().map(|c| c.class).collect();
    assert_eq!(staged, vec!["cat"]);
    assert_eq!(app.coverage(None).await.unwrap().len(), 2);
    assert!(matches!(app.coverage(Some(1.5)).await, Err(AppError::Invalid(_))));

    let out = dir.path().join("export");
    assert_eq!(app.export_dataset(crate::DatasetFormat::ImageFolder, &out).await.unwrap(), 5);
    let csv = dir.path().join("labels.csv");
    app.export_dataset(crate::DatasetFormat::Csv, &csv).await.unwrap();
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",tags"));
    assert!(csv.lines().any(|l| l.starts_with(&ids[1]) && l.ends_with(",staged;synthetic")), "{csv}");

    // A fresh store imports the exported folder (as `fovea import --labelled` does) and gets the tags back.
    let other = open_app(&dir.path().join("b")).await;
    let mut imported = Vec::new();
    let mut again = ImportReport::default();
    for class in std::fs::read_dir(&out).unwrap().flatten().filter(|e| e.path().is_dir()) {
        let name = class.file_name().to_string_lossy().into_owned();
        for file in std::fs::read_dir(class.path()).unwrap().flatten() {
            let bytes = bytes::Bytes::from(std::fs::read(file.path()).unwrap());
            imported.push((file.path(), fovea_store::sha256_hex(&bytes)));
            other.import_bytes(bytes, "reimport", Some(&name), &mut again).await.unwrap();
        }
    }
    assert_eq!(again.labelled, 5);
    assert_eq!(other.apply_folder_tags(&out, &imported, "import").await.unwrap(), 3);
    let tags_of = |i: usize| {
        let (other, id) = (other.clone(), ids[i].clone());
        async move { other.catalog().image_tags(&id).await.unwrap() }
    };
    assert_eq!(tags_of(0).await, vec!["synthetic"]);
    assert_eq!(tags_of(1).await, vec!["staged", "synthetic"]);
    assert!(tags_of(2).await.is_empty() && tags_of(4).await.is_empty());
}
