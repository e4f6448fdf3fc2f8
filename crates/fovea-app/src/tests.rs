//! The app's integrity rules, on a real (tiny, random) LiteNet-shaped backbone so promotions and rollbacks run the
//! same code as with the real weights: an import never overrides a person's label, every backbone's head follows
//! class renames and merges (also across a crash), and concurrent runs never share a model id.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use fovea_learn::Head;
use fovea_model::{FastBackbone, Variant, Weights};
use fovea_store::{LabelOrigin, ModelKind, ModelStatus, NewModelVersion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::models::write_weights;
use crate::{App, AppConfig, ImportReport};

/// A small network under the real PyTorch names (stem 8 → 4 blocks in 3 stages → head 16 → fc), random weights.
fn tiny_weights(seed: u64) -> Weights {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = Weights::default();
    let conv = |w: &mut Weights, name: String, shape: Vec<usize>, rng: &mut StdRng| {
        let fan_in: usize = shape[1..].iter().product::<usize>().max(1);
        let bound = (6.0 / fan_in as f32).sqrt();
        let v = (0..shape.iter().product()).map(|_| rng.random_range(-bound..bound)).collect();
        w.tensors.insert(name, (shape, v));
    };
    let bn = |w: &mut Weights, pre: String, c: usize, rng: &mut StdRng| {
        for (suffix, centre, spread) in
            [("weight", 1.0, 0.2), ("bias", 0.1, 0.1), ("running_mean", 0.0, 0.1), ("running_var", 1.0, 0.3)]
        {
            let v = (0..c).map(|_| centre + rng.random_range(-spread..spread)).collect();
            w.tensors.insert(format!("{pre}.{suffix}"), (vec![c], v));
        }
    };
    conv(&mut w, "_conv_stem.weight".into(), vec![8, 3, 3, 3], &mut rng);
    bn(&mut w, "_bn0".into(), 8, &mut rng);
    let mut cin = 8;
    for (i, (cout, expand, k)) in [(4, 1, 3), (8, 2, 3), (8, 2, 3), (12, 2, 5)].into_iter().enumerate() {
        let pre = format!("_blocks.{i}.");
        let e = cin * expand;
        if expand != 1 {
            conv(&mut w, format!("{pre}_expand_conv.weight"), vec![e, cin, 1, 1], &mut rng);
            bn(&mut w, format!("{pre}_bn0"), e, &mut rng);
        }
        conv(&mut w, format!("{pre}_depthwise_conv.weight"), vec![e, 1, k, k], &mut rng);
        bn(&mut w, format!("{pre}_bn1"), e, &mut rng);
        conv(&mut w, format!("{pre}_project_conv.weight"), vec![cout, e, 1, 1], &mut rng);
        bn(&mut w, format!("{pre}_bn2"), cout, &mut rng);
        cin = cout;
    }
    conv(&mut w, "_conv_head.weight".into(), vec![16, cin, 1, 1], &mut rng);
    bn(&mut w, "_bn1".into(), 16, &mut rng);
    conv(&mut w, "_fc.weight".into(), vec![3, 16], &mut rng);
    w.tensors.insert("_fc.bias".into(), (vec![3], vec![0.0; 3]));
    w
}

/// Opens (or reopens) an app over `dir`, serving whatever the registry says is promoted.
pub(crate) async fn open_app(dir: &Path) -> Arc<App> {
    let base_file = dir.join("base.safetensors");
    if !base_file.exists() {
        write_weights(&base_file, &Variant::Lite0.name(), &tiny_weights(1)).unwrap();
    }
    let cfg = AppConfig { data_dir: dir.join("data"), base_weights: Some(base_file), ..Default::default() };
    let backbone = FastBackbone::new(&tiny_weights(1), Variant::Lite0, 1).unwrap();
    App::open(cfg, Box::new(backbone)).await.unwrap()
}

/// A distinct little picture per `seed`.
pub(crate) fn picture(seed: u8) -> Bytes {
    let img = image::RgbImage::from_fn(48, 40, |x, y| {
        image::Rgb([seed.wrapping_mul(37).wrapping_add(x as u8 * 3), (y as u8 * 5) ^ seed, seed.wrapping_mul(11)])
    });
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out.into()
}

async fn import(app: &App, seed: u8, class: &str) -> ImportReport {
    let mut report = ImportReport::default();
    app.import_bytes(picture(seed), "import:test", Some(class), &mut report).await.unwrap();
    report
}

fn image_id(seed: u8) -> String {
    fovea_store::sha256_hex(&picture(seed))
}

async fn current_class(app: &App, seed: u8) -> String {
    app.catalog().current_label(&image_id(seed)).await.unwrap().unwrap().class_name
}

/// The classes the served online head has learned at least one image of.
async fn head_classes(app: &App) -> BTreeSet<String> {
    let state = app.head.lock().await;
    let head = &state.head;
    head.classes().iter().filter(|(id, _)| head.count(*id) > 0).map(|(_, name)| name.to_owned()).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// Registers a second model whose weights differ from the base's, as a fine-tune of it.
pub(crate) async fn register_fine_tune(app: &App, id: &str) {
    write_weights(&app.model_path(id), id, &tiny_weights(2)).unwrap();
    let version = NewModelVersion {
        id: id.into(),
        parent: Some(app.base_model_id()),
        kind: ModelKind::FineTune,
        metrics: serde_json::json!({}),
    };
    app.catalog().create_model_version(version).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reimport_never_overrides_a_human_label() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(dir.path()).await;
    assert_eq!(import(&app, 1, "cat").await.labelled, 1);
    app.label(&image_id(1), "dog", "ann", LabelOrigin::Human).await.unwrap();
    // Accepting a prediction is a person's label too.
    import(&app, 2, "cat").await;
    app.label(&image_id(2), "cat", "ann", LabelOrigin::Accepted).await.unwrap();
    assert_eq!(import(&app, 3, "cat").await.labelled, 1);

    // The same folder imported again: the person's labels stay, and the report says so.
    let mut report = ImportReport::default();
    for seed in [1, 2, 3] {
        app.import_bytes(picture(seed), "import:again", Some("bird"), &mut report).await.unwrap();
    }
    assert_eq!((report.duplicates, report.kept_human, report.labelled), (3, 2, 1), "{report:?}");
    assert_eq!(current_class(&app, 1).await, "dog");
    assert_eq!(current_class(&app, 2).await, "cat");
    // An image only an import labelled follows the folder.
    assert_eq!(current_class(&app, 3).await, "bird");
    // A folder that agrees with a person's label changes nothing and is not counted as left alone.
    let agrees = import(&app, 1, "Dog").await;
    assert_eq!((agrees.kept_human, agrees.labelled), (0, 0));
    assert_eq!(head_classes(&app).await, set(&["dog", "cat", "bird"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backbone_serves_the_current_class_names_after_rename_and_merge() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(dir.path()).await;
    let base = app.base_model_id();
    for (seed, class) in [(1, "cat"), (2, "cat"), (3, "dog"), (4, "bird")] {
        import(&app, seed, class).await;
    }
    register_fine_tune(&app, "ft-test").await;
    // Each backbone gets a head snapshot under the names of the moment.
    app.promote("ft-test").await.unwrap();
    assert_eq!(head_classes(&app).await, set(&["cat", "dog", "bird"]));
    assert_eq!(app.rollback().await.unwrap().id, base);

    // Renamed while the base is served: the fine-tune's snapshot still holds "cat".
    let cat = app.catalog().class_by_name("cat").await.unwrap().unwrap();
    app.rename_class(cat.id, "kitten").await.unwrap();
    assert_eq!(head_classes(&app).await, set(&["kitten", "dog", "bird"]));
    app.promote("ft-test").await.unwrap();
    assert_eq!(app.served_model().await, "ft-test");
    assert_eq!(head_classes(&app).await, set(&["kitten", "dog", "bird"]), "promotion restored a stale head");

    // Merged while the fine-tune is served: the base's snapshot still holds "dog".
    let dog = app.catalog().class_by_name("dog").await.unwrap().unwrap();
    app.merge_classes(dog.id, "kitten").await.unwrap();
    assert_eq!(head_classes(&app).await, set(&["kitten", "bird"]));
    app.rollback().await.unwrap();
    assert_eq!(app.served_model().await, base);
    assert_eq!(head_classes(&app).await, set(&["kitten", "bird"]), "rollback restored a stale head");

    // A classification names only current classes.
    let outcome = app.classify(picture(9), "viewer").await.unwrap();
    let named: BTreeSet<String> = outcome.top.iter().map(|s| s.class.clone()).collect();
    assert!(named.is_subset(&set(&["kitten", "bird"])), "{named:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_a_rename_and_the_head_rebuild_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let app = open_app(dir.path()).await;
        for (seed, class) in [(1, "cat"), (2, "dog"), (3, "bird")] {
            import(&app, seed, class).await;
        }
        app.snapshot().await.unwrap();
        // The catalog's commit without the app's rebuild after it: what a crash right after the commit leaves.
        let cat = app.catalog().class_by_name("cat").await.unwrap().unwrap();
        app.catalog().rename_class(cat.id, "kitten").await.unwrap();
        // Dropped without a snapshot, as a crash would.
    }
    let app = open_app(dir.path()).await;
    assert_eq!(head_classes(&app).await, set(&["kitten", "dog", "bird"]));

    // The same when the merge was made by another process while this one runs: its worker picks it up.
    let other = open_app(dir.path()).await;
    let dog = other.catalog().class_by_name("dog").await.unwrap().unwrap();
    let kitten = other.catalog().class_by_name("kitten").await.unwrap().unwrap();
    other.catalog().merge_classes(dog.id, kitten.id).await.unwrap();
    drop(other);
    app.sync_model().await.unwrap();
    assert_eq!(head_classes(&app).await, set(&["kitten", "bird"]));
    // And a restart after it restores a head of the current epoch.
    drop(app);
    let app = open_app(dir.path()).await;
    assert_eq!(head_classes(&app).await, set(&["kitten", "bird"]));
    app.label(&image_id(3), "kitten", "ann", LabelOrigin::Human).await.unwrap();
    assert_eq!(head_classes(&app).await, set(&["kitten"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_never_share_a_model_id_or_weights_file() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(dir.path()).await;
    let base = app.base_model_id();
    let runs: Vec<_> = (0..4u64)
        .map(|seed| {
            let (app, base) = (app.clone(), base.clone());
            tokio::spawn(async move {
                let weights = tiny_weights(10 + seed);
                let (kind, prefix) =
                    if seed % 2 == 0 { (ModelKind::FineTune, "ft") } else { (ModelKind::ThrowAway, "throwaway") };
                app.register_model(prefix, &base, kind, &weights, |id| {
                    (id.to_owned(), serde_json::json!({ "seed": seed, "model_id": id }))
                })
                .await
                .map(|id| (id, seed, weights))
            })
        })
        .collect();
    let mut ids = BTreeSet::new();
    for run in runs {
        let (id, seed, weights) = run.await.unwrap().unwrap();
        assert!(ids.insert(id.clone()), "{id} was handed out twice");
        let record = app.model(&id).await.unwrap();
        assert_eq!((record.status, record.metrics["seed"].as_u64()), (ModelStatus::Candidate, Some(seed)));
        assert_eq!(record.metrics["model_id"], id.as_str());
        // The file under the id holds this run's weights, not another's.
        let stored = Weights::load_safetensors(&app.model_path(&id)).unwrap();
        assert_eq!(stored.tensors["_conv_stem.weight"], weights.tensors["_conv_stem.weight"], "{id}");
    }
    assert_eq!(ids.len(), 4);

    // A run that fails to write its weights gives its id back and leaves no row behind.
    std::fs::remove_dir_all(dir.path().join("data").join("models")).unwrap();
    std::fs::write(dir.path().join("data").join("models"), b"not a folder").unwrap();
    let weights = tiny_weights(3);
    let failed = app.register_model("ft", &base, ModelKind::FineTune, &weights, |_| ((), serde_json::json!({}))).await;
    assert!(failed.is_err());
    let statuses: Vec<ModelStatus> = app.models().await.unwrap().into_iter().map(|m| m.status).collect();
    assert_eq!(statuses.len(), 5, "{statuses:?}");
    assert!(!statuses.contains(&ModelStatus::Training));
}

/// A head snapshot is over 10 MB for a 1280-d SLDA head; identifying a folder teaches the head nothing, so it must
/// not write one (it cost a quarter of a 48-image identify run), while a label still leads to a fresh snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_written_only_when_the_head_learnt_something() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(dir.path()).await;
    for (seed, class) in [(1, "cat"), (2, "dog")] {
        import(&app, seed, class).await;
    }
    app.snapshot().await.unwrap();
    let backbone = app.served_model().await;
    let latest = || async { app.catalog().latest_head_snapshot(&backbone).await.unwrap().expect("a snapshot").id };
    let first = latest().await;

    app.snapshot().await.unwrap();
    assert_eq!(latest().await, first, "a snapshot of an unchanged head was written again");
    let folder = dir.path().join("unlabelled");
    std::fs::create_dir_all(&folder).unwrap();
    for seed in 10..14 {
        std::fs::write(folder.join(format!("{seed}.png")), picture(seed)).unwrap();
    }
    let c = app.create_collection(None, &folder, None, "tester").await.unwrap();
    let done = app.run_collection(c.id, |_| {}, Default::default()).await.unwrap();
    assert_eq!(done.processed, 4);
    assert_eq!(latest().await, first, "identifying a folder wrote a head snapshot");

    app.label(&image_id(10), "cat", "tester", LabelOrigin::Human).await.unwrap();
    app.snapshot().await.unwrap();
    let after_label = latest().await;
    assert!(after_label > first, "a label was learnt but no snapshot followed");
    // And the new snapshot restores to the same head.
    drop(app);
    let reopened = open_app(dir.path()).await;
    let p = reopened.classify(picture(10), "tester").await.unwrap();
    assert_eq!(p.top[0].class, "cat");
}
