//! The app over a real SQLite catalog and blob folder: bounded bulk work, the engine after a promotion, and the
//! memory of a training run's preparation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use fovea_app::{App, AppConfig, Engine, ImportReport, ModelKind};
use fovea_model::Variant;

mod common;
use common::{image, Stub};

/// An image's bytes that count themselves while alive, so a test sees how many files the app holds at once.
struct Counted {
    bytes: Vec<u8>,
    alive: Arc<AtomicUsize>,
}

impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_streams_with_a_bounded_window_and_keeps_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = AppConfig { data_dir: dir.path().to_owned(), max_waiting: 8, ..Default::default() };
    let app = App::open(cfg, Box::new(Stub)).await.unwrap();
    let window = app.identify_window();
    assert_eq!(window, 4);

    // Counts how many items the app has pulled and answered, the files it holds, and the most held at once.
    let pulled = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let alive = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(Mutex::new(0usize));
    let n = 40;
    let items = (0..n).map({
        let (pulled, alive, most) = (pulled.clone(), alive.clone(), most.clone());
        move |i| {
            pulled.fetch_add(1, Ordering::SeqCst);
            let (alive, most) = (alive.clone(), most.clone());
            let load = move || {
                if i == 7 {
                    return Err("unreadable".to_owned());
                }
                let live = alive.fetch_add(1, Ordering::SeqCst) + 1;
                let mut m = most.lock().unwrap();
                *m = (*m).max(live);
                let bytes = image(i, 40, 30, image::ImageFormat::Png);
                Ok(bytes::Bytes::from_owner(Counted { bytes, alive: alive.clone() }))
            };
            (format!("img{i:02}"), load)
        }
    });
    let mut names = Vec::new();
    let ok = std::cell::Cell::new(0);
    app.identify_stream(items, "test", |(name, r)| {
        // The iterator is pulled lazily: a window being read and predicted, as many again committing, plus the one
        // item peeked at.
        let ahead = pulled.load(Ordering::SeqCst) - answered.load(Ordering::SeqCst);
        assert!(ahead <= 2 * window + 1, "{ahead} items pulled ahead of the results");
        answered.fetch_add(1, Ordering::SeqCst);
        if r.is_ok() {
            ok.set(ok.get() + 1);
        } else {
            assert_eq!(name, "img07", "{r:?}");
        }
        names.push(name);
    })
    .await;
    let expected: Vec<String> = (0..n).map(|i| format!("img{i:02}")).collect();
    assert_eq!(names, expected, "results leave in input order");
    assert_eq!(ok.get(), n - 1);
    assert_eq!(alive.load(Ordering::SeqCst), 0, "every file's bytes are dropped by the end");
    let most = *most.lock().unwrap();
    assert!((1..=window).contains(&most), "{most} files held at once, window {window}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_preparation_keeps_only_a_bounded_number_of_decoded_photos() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB holds five 257x257 photos (198 KB each once shrunk for training).
    let cfg = AppConfig { data_dir: dir.path().to_owned(), train_keep_mib: 1, ..Default::default() };
    let app = App::open(cfg, Box::new(Stub)).await.unwrap();
    let mut report = ImportReport::default();
    for i in 0..30 {
        let class = if i % 2 == 0 { "even" } else { "odd" };
        app.import_bytes(image(i, 300, 300, image::ImageFormat::Png).into(), "test", Some(class), &mut report)
            .await
            .unwrap();
    }
    let (photos, kept) = app.prepare_training().await.unwrap();
    assert_eq!(photos, 30);
    assert_eq!(kept, 5, "photos beyond the budget are reloaded on use, not held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_fine_tune_is_served_by_the_configured_engine() {
    let home = fovea_model::fovea_home();
    let base = fovea_model::ensure_weights(&home, Variant::Lite0).unwrap();
    let weights = fovea_model::Weights::load_safetensors(&base).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = AppConfig {
        data_dir: dir.path().to_owned(),
        engine: Engine::Burn,
        base_weights: Some(base.clone()),
        ..Default::default()
    };
    let app = App::open(cfg.clone(), Engine::Burn.build(&weights, Variant::Lite0, 0).unwrap()).await.unwrap();
    assert_eq!(app.engine(), "burn");
    // A "fine-tune": the base weights registered under a new id, as a training run would.
    app.save_model_weights("ft-engine", &weights).unwrap();
    app.catalog()
        .create_model_version(fovea_store::NewModelVersion {
            id: "ft-engine".into(),
            parent: Some(app.base_model_id()),
            kind: ModelKind::FineTune,
            metrics: serde_json::json!({}),
        })
        .await
        .unwrap();
    app.promote("ft-engine").await.unwrap();
    assert_eq!(app.served_model().await, "ft-engine");
    assert_eq!(app.engine(), "burn", "promotion must build the fine-tune with the configured engine");
    drop(app);

    // A restart serving the promoted fine-tune builds it with the configured engine too.
    let again = App::open(cfg, Engine::Burn.build(&weights, Variant::Lite0, 0).unwrap()).await.unwrap();
    assert_eq!(again.served_model().await, "ft-engine");
    assert_eq!(again.engine(), "burn");
    again.rollback().await.unwrap();
    assert_eq!(again.engine(), "burn");
}
