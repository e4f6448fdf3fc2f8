//! Collections through the app: a stopped identify resumes with exact counts, and a bulk action is undone as a
//! whole with the online head following the label log.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fovea_app::{App, AppConfig, BulkKind, BulkRequest, ImportReport, ItemRef, ResultFilter};

mod common;
use common::{image, Stub};

async fn open(dir: &Path) -> Arc<App> {
    let cfg = AppConfig { data_dir: dir.join("data"), max_waiting: 8, cutoff: 12, ..Default::default() };
    App::open(cfg, Box::new(Stub)).await.unwrap()
}

/// `n` images numbered from `first`, spread over nested folders, plus one file that is not an image.
fn folder(root: &Path, first: usize, n: usize) {
    for i in first..first + n {
        let sub = root.join(format!("part{}", i % 3)).join(if i % 2 == 0 { "even" } else { "odd" });
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("{i:04}.png")), image(i, 32, 24, image::ImageFormat::Png)).unwrap();
    }
    std::fs::write(root.join("notes.txt"), b"not an image").unwrap();
}

/// Teaches "dark" (images 0..10) and "bright" (200..210): the stub's embedding follows the red channel, i % 256.
async fn teach(app: &App) {
    let mut report = ImportReport::default();
    for (class, from) in [("dark", 0), ("bright", 200)] {
        for i in from..from + 10 {
            let bytes = image(i, 32, 24, image::ImageFormat::Png).into();
            app.import_bytes(bytes, "test", Some(class), &mut report).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_collection_resumes_with_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    folder(&photos, 20, 100);
    let app = open(dir.path()).await;
    teach(&app).await;
    let c = app.create_collection(Some("trip"), &photos, None, "ann").await.unwrap();
    let cancel = Arc::new(AtomicBool::new(false));
    let stop = cancel.clone();
    let partial =
        app.run_collection(c.id, move |p| stop.store(p.processed >= 10, Ordering::Relaxed), cancel).await.unwrap();
    assert!(partial.total.is_none(), "a stopped walk has no total");
    assert!((10..101).contains(&partial.processed), "{} processed before the stop", partial.processed);
    drop(app);

    // A restart finds the unfinished collection of the folder and finishes it.
    let app = open(dir.path()).await;
    let unfinished = app.unfinished_collection(&photos, None).await.unwrap().expect("resumable");
    assert_eq!(unfinished.id, c.id);
    let done = app.run_collection(c.id, |_| {}, Arc::new(AtomicBool::new(false))).await.unwrap();
    assert_eq!((done.processed, done.failed, done.total), (101, 1, Some(101)));
    assert!(app.unfinished_collection(&photos, None).await.unwrap().is_none());
    let mut all = app.collection_items(&ResultFilter { collection: Some(c.id), ..Default::default() }).await.unwrap().0;
    all.extend(
        app.collection_items(&ResultFilter { collection: Some(c.id), failed: true, ..Default::default() })
            .await
            .unwrap()
            .0,
    );
    all.sort_by_key(|i| i.seq);
    assert_eq!(all.iter().map(|i| i.seq).collect::<Vec<_>>(), (0..101).collect::<Vec<_>>(), "each file once");
    let mut paths: Vec<&str> = all.iter().map(|i| i.path.as_str()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 101);
    assert!(all.iter().all(|i| i.error.is_some() == i.path.ends_with("notes.txt")));
    // Results are the served model's, calibrated: dark images are predicted dark.
    let dark = ResultFilter { collection: Some(c.id), class: Some("dark".into()), ..Default::default() };
    let (dark_items, _) = app.collection_items(&dark).await.unwrap();
    assert!(!dark_items.is_empty());
    let served = format!("{}/online-", app.served_model().await);
    assert!(dark_items.iter().all(|i| i.model_version.as_deref().unwrap().starts_with(&served)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_accept_is_learned_and_undone_as_a_whole() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    folder(&photos, 20, 30);
    let app = open(dir.path()).await;
    teach(&app).await;
    let c = app.create_collection(None, &photos, None, "ann").await.unwrap();
    app.run_collection(c.id, |_| {}, Arc::new(AtomicBool::new(false))).await.unwrap();
    let count = |name: &'static str| {
        let app = app.clone();
        async move { app.classes().await.unwrap().into_iter().find(|v| v.name == name).map_or(0, |v| v.images) }
    };
    let waiting = ResultFilter {
        collection: Some(c.id),
        labelled: Some(false),
        class: Some("dark".into()),
        ..Default::default()
    };
    let (candidates, n) = app.collection_items(&waiting).await.unwrap();
    assert!(n >= 5, "{n} dark candidates");
    let coverage = app.coverage(None).await.unwrap();
    let dark = coverage.iter().find(|r| r.class == "dark").unwrap();
    assert_eq!((dark.labelled, dark.needed, dark.candidates), (10, 2, n));

    let accept = BulkRequest {
        action: BulkKind::Accept,
        class: None,
        tag: None,
        items: Vec::new(),
        filter: Some(waiting.clone()),
    };
    let action = app.bulk(&accept, "ann").await.unwrap();
    assert_eq!(action.changed, n);
    assert_eq!(count("dark").await, 10 + n);
    assert_eq!(app.collection_items(&waiting).await.unwrap().1, 0, "nothing left waiting");
    // A person corrects one accepted image afterwards; the undo must keep that.
    let corrected = candidates[0].image_id.clone().unwrap();
    app.label(&corrected, "bright", "bob", fovea_app::LabelOrigin::Human).await.unwrap();

    let undo = app.undo_bulk(action.id).await.unwrap();
    assert_eq!((undo.restored, undo.kept_newer), (n - 1, 1));
    assert_eq!(count("dark").await, 10);
    assert_eq!(count("bright").await, 11);
    for item in &candidates[1..] {
        let id = item.image_id.as_deref().unwrap();
        assert!(app.catalog().current_label(id).await.unwrap().is_none(), "{id} had no label before");
    }
    assert!(app.undo_bulk(action.id).await.is_err(), "an action is undone once");

    // The head was rebuilt from the log: a restart, which folds the log from scratch, serves the same class
    // (probabilities may differ by a recalibration).
    let probe = image(25, 32, 24, image::ImageFormat::Png);
    let now = app.classify(probe.clone().into(), "ann").await.unwrap();
    drop(app);
    let again = open(dir.path()).await;
    let restarted = again.classify(probe.into(), "ann").await.unwrap();
    assert_eq!(now.top[0].class, restarted.top[0].class);

    // Tags and discards on picked results, undone exactly.
    let picked: Vec<ItemRef> =
        candidates[..3].iter().map(|i| ItemRef { collection: i.collection_id, seq: i.seq }).collect();
    let tag = BulkRequest {
        action: BulkKind::Tag,
        class: None,
        tag: Some("staged".into()),
        items: picked.clone(),
        filter: None,
    };
    let tagged = again.bulk(&tag, "ann").await.unwrap();
    assert_eq!(tagged.changed, 3);
    let by_tag = ResultFilter { collection: Some(c.id), tag: Some("staged".into()), ..Default::default() };
    assert_eq!(again.collection_items(&by_tag).await.unwrap().1, 3);
    let discard = BulkRequest { action: BulkKind::Discard, class: None, tag: None, items: picked, filter: None };
    let discarded = again.bulk(&discard, "ann").await.unwrap();
    assert_eq!(again.collection_items(&by_tag).await.unwrap().1, 0, "discarded results are hidden");
    again.undo_bulk(discarded.id).await.unwrap();
    again.undo_bulk(tagged.id).await.unwrap();
    assert_eq!(again.collection_items(&by_tag).await.unwrap().1, 0);
    let all = ResultFilter { collection: Some(c.id), ..Default::default() };
    assert_eq!(again.collection_items(&all).await.unwrap().1, 30);
    // Bad requests say why.
    let empty = BulkRequest { action: BulkKind::Relabel, class: None, tag: None, items: Vec::new(), filter: None };
    assert!(matches!(again.bulk(&empty, "ann").await, Err(fovea_app::AppError::Invalid(_))));
    let no_class = BulkRequest { items: vec![ItemRef { collection: c.id, seq: 0 }], ..empty };
    assert!(matches!(again.bulk(&no_class, "ann").await, Err(fovea_app::AppError::Invalid(_))));
}
