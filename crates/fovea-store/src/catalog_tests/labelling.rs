//! Images, classes, labels and the filtered listing.

use super::*;

#[tokio::test]
async fn migrations_create_exactly_one_unknown_class() {
    let catalog = catalog().await;
    let unknown = catalog.unknown_class().await.unwrap();
    assert_eq!(unknown.name, "Unknown");
    assert!(unknown.is_unknown);
    let classes = catalog.list_classes().await.unwrap();
    assert_eq!(classes.len(), 1);
    assert_eq!(classes[0].class, unknown);
    // Its name is taken like any other, case-insensitively, and it cannot be renamed or merged away.
    assert!(matches!(catalog.create_class(" unknown ").await, Err(StoreError::AlreadyExists { .. })));
    assert!(matches!(catalog.rename_class(unknown.id, "Other").await, Err(StoreError::Invalid(_))));
    let cat = catalog.create_class("Cat").await.unwrap();
    assert!(matches!(catalog.merge_classes(unknown.id, cat.id).await, Err(StoreError::Invalid(_))));
}

#[tokio::test]
async fn duplicate_image_collapses() {
    let catalog = catalog().await;
    let (first, created) = catalog.put_image(new_image(b"a")).await.unwrap();
    assert!(created);
    assert_eq!(first.split, Split::Unassigned);
    let mut again = new_image(b"a");
    again.source = "import:/elsewhere".into();
    let (second, created) = catalog.put_image(again).await.unwrap();
    assert!(!created);
    assert_eq!(second, first, "the first upload's record is kept");
    assert_eq!(catalog.count_images(&ImageFilter::default()).await.unwrap(), 1);

    let mut bad = new_image(b"b");
    bad.id = bad.id.to_uppercase();
    assert!(matches!(catalog.put_image(bad).await, Err(StoreError::Invalid(_))));

    catalog.set_split(&first.id, Split::Benchmark).await.unwrap();
    assert_eq!(catalog.get_image(&first.id).await.unwrap().unwrap().split, Split::Benchmark);
    assert!(catalog.get_image(&sha256_hex(b"zz")).await.unwrap().is_none());
}

#[tokio::test]
async fn class_names_are_validated_and_unique() {
    let catalog = catalog().await;
    let cat = catalog.create_class("  Cat ").await.unwrap();
    assert_eq!(cat.name, "Cat");
    match catalog.create_class("CAT").await {
        Err(StoreError::AlreadyExists { what, name }) => {
            assert_eq!((what, name.as_str()), ("class", "CAT"))
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert!(matches!(catalog.create_class("").await, Err(StoreError::Invalid(_))));
    assert!(matches!(catalog.create_class("a\nb").await, Err(StoreError::Invalid(_))));
    assert_eq!(catalog.class_by_name("cat").await.unwrap(), Some(cat.clone()));
    assert_eq!(catalog.get_class(cat.id).await.unwrap(), Some(cat));
    assert!(catalog.class_by_name("dog").await.unwrap().is_none());
}

#[tokio::test]
async fn labels_form_a_sequence_with_previous_class() {
    let catalog = catalog().await;
    let cat = catalog.create_class("Cat").await.unwrap();
    let dog = catalog.create_class("Dog").await.unwrap();
    let a = image(&*catalog, b"a").await;
    let b = image(&*catalog, b"b").await;

    let first = label(&*catalog, &a, cat.id).await;
    assert_eq!(first.previous_class_id, None);
    assert_eq!(first.class_name, "Cat");
    let other = label(&*catalog, &b, dog.id).await;
    let second = label(&*catalog, &a, dog.id).await;
    assert!(first.id < other.id && other.id < second.id, "ids are the event sequence");
    assert_eq!(second.previous_class_id, Some(cat.id));
    assert_eq!(second.previous_class_name.as_deref(), Some("Cat"));

    assert_eq!(catalog.current_label(&a).await.unwrap(), Some(second.clone()));
    assert_eq!(catalog.last_label_seq().await.unwrap(), second.id);

    let all = catalog.labels_since(0, 100).await.unwrap();
    assert_eq!(all, vec![first.clone(), other.clone(), second.clone()]);
    assert_eq!(catalog.labels_since(first.id, 1).await.unwrap(), vec![other]);
    assert!(catalog.labels_since(second.id, 100).await.unwrap().is_empty());

    let missing =
        NewLabel { image_id: sha256_hex(b"zz"), class_id: cat.id, user: "u".into(), origin: LabelOrigin::Import };
    assert!(matches!(catalog.add_label(missing).await, Err(StoreError::NotFound { what: "image", .. })));
    let bad_class = NewLabel { image_id: a, class_id: 999, user: "u".into(), origin: LabelOrigin::Import };
    assert!(matches!(catalog.add_label(bad_class).await, Err(StoreError::NotFound { what: "class", .. })));
}

#[tokio::test]
async fn rename_collides_and_merge_moves_labels() {
    let catalog = catalog().await;
    let cat = catalog.create_class("Cat").await.unwrap();
    let kitty = catalog.create_class("Kitty").await.unwrap();
    let dog = catalog.create_class("Dog").await.unwrap();

    assert!(matches!(catalog.rename_class(kitty.id, "cat").await, Err(StoreError::AlreadyExists { .. })));
    assert!(matches!(catalog.rename_class(999, "x").await, Err(StoreError::NotFound { .. })));
    let renamed = catalog.rename_class(kitty.id, "Kitten").await.unwrap();
    assert_eq!((renamed.id, renamed.name.as_str()), (kitty.id, "Kitten"));
    // Renaming to a different case of its own name is allowed.
    catalog.rename_class(kitty.id, "KITTEN").await.unwrap();
    let renames = catalog.list_renames(10).await.unwrap();
    let pairs: Vec<(&str, &str)> = renames.iter().map(|r| (r.old_name.as_str(), r.new_name.as_str())).collect();
    assert_eq!(pairs, [("Kitten", "KITTEN"), ("Kitty", "Kitten")], "refused renames leave no record");

    let a = image(&*catalog, b"a").await;
    let b = image(&*catalog, b"b").await;
    let c = image(&*catalog, b"c").await;
    label(&*catalog, &a, kitty.id).await;
    label(&*catalog, &b, dog.id).await;
    label(&*catalog, &b, kitty.id).await;
    label(&*catalog, &c, cat.id).await;

    let outcome = catalog.merge_classes(kitty.id, cat.id).await.unwrap();
    assert_eq!(outcome.labels_moved, 2);
    assert_eq!((outcome.from.id, outcome.into.id), (kitty.id, cat.id));
    assert!(catalog.get_class(kitty.id).await.unwrap().is_none());
    assert_eq!(catalog.current_label(&a).await.unwrap().unwrap().class_id, cat.id);
    assert_eq!(catalog.current_label(&b).await.unwrap().unwrap().class_name, "Cat");
    let labels = catalog.labels_since(0, 100).await.unwrap();
    assert!(labels.iter().all(|l| l.class_id != kitty.id && l.previous_class_id != Some(kitty.id)));

    let stats = catalog.list_classes().await.unwrap();
    let count = |id| stats.iter().find(|s| s.class.id == id).unwrap().image_count;
    assert_eq!((count(cat.id), count(dog.id)), (3, 0), "b's current label is Cat, not Dog");

    assert!(matches!(catalog.merge_classes(cat.id, cat.id).await, Err(StoreError::Invalid(_))));
    assert!(matches!(catalog.merge_classes(kitty.id, cat.id).await, Err(StoreError::NotFound { .. })));

    // Undo: a label given after the merge stays; the rows the merge rewrote point at Kitten again.
    let d = image(&*catalog, b"d").await;
    label(&*catalog, &d, cat.id).await;
    let epoch = catalog.label_log_epoch().await.unwrap();
    let back = catalog.undo_merge(outcome.merge_id).await.unwrap();
    assert_eq!((back.id, back.name.as_str()), (kitty.id, "KITTEN"));
    assert!(catalog.label_log_epoch().await.unwrap() > epoch, "an undo rewrites history too");
    assert_eq!(catalog.current_label(&a).await.unwrap().unwrap().class_name, "KITTEN");
    let b_now = catalog.current_label(&b).await.unwrap().unwrap();
    assert_eq!((b_now.class_id, b_now.previous_class_id), (kitty.id, Some(dog.id)));
    assert_eq!(catalog.current_label(&c).await.unwrap().unwrap().class_id, cat.id);
    assert_eq!(catalog.current_label(&d).await.unwrap().unwrap().class_id, cat.id);
    let stats = catalog.list_classes().await.unwrap();
    let count = |id| stats.iter().find(|s| s.class.id == id).unwrap().image_count;
    assert_eq!((count(cat.id), count(kitty.id)), (2, 2));
    assert!(matches!(catalog.undo_merge(outcome.merge_id).await, Err(StoreError::Invalid(_))), "only once");
    assert!(matches!(catalog.undo_merge(4242).await, Err(StoreError::NotFound { .. })));
    // A class no label ever named can be deleted (its creation undone); one with history cannot.
    let typo = catalog.create_class("Ktten").await.unwrap();
    assert_eq!(catalog.delete_unused_class(typo.id).await.unwrap().name, "Ktten");
    assert!(catalog.get_class(typo.id).await.unwrap().is_none());
    assert!(matches!(catalog.delete_unused_class(dog.id).await, Err(StoreError::Invalid(_))), "b was once a dog");
    let unknown = catalog.unknown_class().await.unwrap();
    assert!(matches!(catalog.delete_unused_class(unknown.id).await, Err(StoreError::Invalid(_))));
    assert!(matches!(catalog.delete_unused_class(typo.id).await, Err(StoreError::NotFound { .. })));
    // A merge whose name was taken again meanwhile cannot come back under it.
    let again = catalog.merge_classes(kitty.id, cat.id).await.unwrap();
    catalog.create_class("kitten").await.unwrap();
    assert!(matches!(catalog.undo_merge(again.merge_id).await, Err(StoreError::AlreadyExists { .. })));
    let merges = catalog.list_merges(10).await.unwrap();
    assert_eq!(
        merges.iter().map(|m| (m.id, m.undone_at.is_some())).collect::<Vec<_>>(),
        [(again.merge_id, false), (outcome.merge_id, true)]
    );
    assert_eq!(
        (merges[1].from_name.as_str(), merges[1].into_name.as_deref(), merges[1].labels_moved),
        ("KITTEN", Some("Cat"), 2)
    );
}

#[tokio::test]
async fn an_import_never_overrides_a_human_label() {
    let catalog = catalog().await;
    let cat = catalog.create_class("Cat").await.unwrap();
    let dog = catalog.create_class("Dog").await.unwrap();
    let with =
        |image_id: &str, class_id, origin| NewLabel { image_id: image_id.into(), class_id, user: "u".into(), origin };
    let (a, b) = (image(&*catalog, b"a").await, image(&*catalog, b"b").await);

    // Imports may relabel what only imports labelled.
    catalog.add_label(with(&a, cat.id, LabelOrigin::Import)).await.unwrap();
    catalog.add_label(with(&a, dog.id, LabelOrigin::Import)).await.unwrap();
    assert!(catalog.human_label(&a).await.unwrap().is_none());
    // A person's label wins from then on, whichever import comes later.
    let human = catalog.add_label(with(&a, cat.id, LabelOrigin::Human)).await.unwrap();
    assert_eq!(catalog.human_label(&a).await.unwrap(), Some(human.clone()));
    let refused = catalog.add_label(with(&a, dog.id, LabelOrigin::Import)).await;
    assert!(matches!(refused, Err(StoreError::AlreadyExists { .. })), "{refused:?}");
    assert_eq!(catalog.current_label(&a).await.unwrap(), Some(human));
    // An accepted prediction is a person's label too; a person may still change any label.
    catalog.add_label(with(&b, cat.id, LabelOrigin::Accepted)).await.unwrap();
    assert!(catalog.add_label(with(&b, dog.id, LabelOrigin::Import)).await.is_err());
    assert_eq!(catalog.add_label(with(&b, dog.id, LabelOrigin::Human)).await.unwrap().class_name, "Dog");
}

#[tokio::test]
async fn renames_and_merges_void_every_older_head_snapshot() {
    let catalog = catalog().await;
    let cat = catalog.create_class("Cat").await.unwrap();
    let dog = catalog.create_class("Dog").await.unwrap();
    let a = image(&*catalog, b"a").await;
    let seq = label(&*catalog, &a, cat.id).await.id;
    let epoch = catalog.label_log_epoch().await.unwrap();
    let served = catalog.save_head_snapshot("lite0", epoch, seq, b"served").await.unwrap();
    let other = catalog.save_head_snapshot("ft-001", epoch, seq, b"other").await.unwrap();
    assert_eq!(served.epoch, epoch);
    assert_eq!(catalog.latest_head_snapshot("ft-001").await.unwrap(), Some(other));

    // The rename and the new epoch are one commit: no backbone's snapshot with the old names is restored again.
    catalog.rename_class(cat.id, "Kitten").await.unwrap();
    let renamed = catalog.label_log_epoch().await.unwrap();
    assert!(renamed > epoch);
    assert_eq!(catalog.latest_head_snapshot("lite0").await.unwrap(), None);
    assert_eq!(catalog.latest_head_snapshot("ft-001").await.unwrap(), None);
    // A head folded before the rename but saved after it (a save racing the rename) is never restored either.
    catalog.save_head_snapshot("ft-001", epoch, seq, b"late").await.unwrap();
    assert_eq!(catalog.latest_head_snapshot("ft-001").await.unwrap(), None);
    let fresh = catalog.save_head_snapshot("ft-001", renamed, seq, b"fresh").await.unwrap();
    assert_eq!(catalog.latest_head_snapshot("ft-001").await.unwrap(), Some(fresh));
    // Pruning drops the late, stale snapshot whatever its backbone.
    assert_eq!(catalog.prune_head_snapshots("lite0", 3).await.unwrap(), 1);

    catalog.merge_classes(dog.id, cat.id).await.unwrap();
    assert!(catalog.label_log_epoch().await.unwrap() > renamed);
    assert_eq!(catalog.latest_head_snapshot("ft-001").await.unwrap(), None);
    // A refused rename changes nothing.
    let before = catalog.label_log_epoch().await.unwrap();
    assert!(catalog.rename_class(cat.id, "").await.is_err());
    assert_eq!(catalog.label_log_epoch().await.unwrap(), before);
}

#[tokio::test]
async fn image_filters_select_the_right_rows() {
    let catalog = catalog().await;
    let cat = catalog.create_class("Cat").await.unwrap();
    let dog = catalog.create_class("Dog").await.unwrap();
    let a = image(&*catalog, b"a").await; // labelled Cat, predicted 0.9
    let b = image(&*catalog, b"b").await; // labelled Cat then Dog, predicted 0.4 then 0.6
    let c = image(&*catalog, b"c").await; // unlabelled, predicted 0.2
    let d = image(&*catalog, b"d").await; // unlabelled, never predicted
    label(&*catalog, &a, cat.id).await;
    label(&*catalog, &b, cat.id).await;
    label(&*catalog, &b, dog.id).await;
    predict(&*catalog, &a, "Cat", 0.9).await;
    predict(&*catalog, &b, "Dog", 0.4).await;
    predict(&*catalog, &b, "Dog", 0.6).await;
    predict(&*catalog, &c, "Cat", 0.2).await;

    let ids = |rows: Vec<ImageRow>| {
        let mut ids: Vec<String> = rows.into_iter().map(|r| r.image.id).collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<_>>()
    };
    let list = |filter: ImageFilter| {
        let catalog = catalog.clone();
        async move {
            let rows = catalog.list_images(&filter).await.unwrap();
            assert_eq!(catalog.count_images(&filter).await.unwrap(), rows.len() as u64);
            rows
        }
    };

    let cats = list(ImageFilter { class: Some("cat".into()), ..Default::default() }).await;
    assert_eq!(ids(cats), vec![a.clone()], "b was relabelled Dog");
    let labelled = list(ImageFilter { labelled: Some(true), ..Default::default() }).await;
    assert_eq!(ids(labelled), sorted(vec![&a, &b]));
    let unlabelled = list(ImageFilter { labelled: Some(false), ..Default::default() }).await;
    assert_eq!(ids(unlabelled), sorted(vec![&c, &d]));
    let unsure = list(ImageFilter { min_conf: Some(0.3), max_conf: Some(0.7), ..Default::default() }).await;
    assert_eq!(ids(unsure.clone()), vec![b.clone()], "only b's latest prediction counts");
    assert_eq!(unsure[0].last_top1, Some(("Dog".into(), 0.6)));
    assert_eq!(unsure[0].current_class.as_deref(), Some("Dog"));
    let low = list(ImageFilter { max_conf: Some(0.5), labelled: Some(false), ..Default::default() }).await;
    assert_eq!(ids(low), vec![c.clone()]);

    // Least confident first: c (0.2), b (latest 0.6), a (0.9), then d, never predicted.
    let unsure_first = list(ImageFilter { sort: ImageSort::LowestConfidence, ..Default::default() }).await;
    let order: Vec<String> = unsure_first.into_iter().map(|r| r.image.id).collect();
    assert_eq!(order, vec![c.clone(), b.clone(), a.clone(), d.clone()]);

    let all = list(ImageFilter::default()).await;
    assert_eq!(all.len(), 4);
    let d_row = all.iter().find(|r| r.image.id == d).unwrap();
    assert_eq!((d_row.current_class.as_ref(), d_row.last_top1.as_ref()), (None, None));

    let page = catalog.list_images(&ImageFilter { limit: Some(3), offset: 2, ..Default::default() }).await.unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(catalog.count_images(&ImageFilter { limit: Some(1), ..Default::default() }).await.unwrap(), 4);
    let nan = ImageFilter { min_conf: Some(f64::NAN), ..Default::default() };
    assert!(matches!(catalog.list_images(&nan).await, Err(StoreError::Invalid(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_of_the_label_log_never_skips_a_label_written_concurrently() {
    // What replicas rely on: reading labels_since(last id seen) while other processes write must see every label,
    // i.e. a label never commits after one with a higher id has become visible.
    let store = test_backend::Store::fresh().await;
    let writers: Vec<Arc<dyn Catalog>> = vec![store.open().await, store.open().await];
    let cat = writers[0].create_class("Cat").await.unwrap();
    let mut images = Vec::new();
    for i in 0..64u8 {
        images.push(image(writers[0].as_ref(), &[i, 7]).await);
    }
    let tasks: Vec<_> = images
        .chunks(8)
        .enumerate()
        .map(|(k, chunk)| {
            let (catalog, chunk) = (writers[k % 2].clone(), chunk.to_vec());
            tokio::spawn(async move {
                for id in chunk {
                    label(catalog.as_ref(), &id, cat.id).await;
                }
            })
        })
        .collect();
    let follower = store.open().await;
    let (mut seen, mut seq) = (Vec::new(), 0);
    let mut writing = true;
    while writing {
        // Read after checking the writers, so the last pass sees everything they committed.
        writing = tasks.iter().any(|t| !t.is_finished());
        for l in follower.labels_since(seq, 1000).await.unwrap() {
            seq = l.id;
            seen.push(l.id);
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all: Vec<i64> = follower.labels_since(0, 1000).await.unwrap().iter().map(|l| l.id).collect();
    assert_eq!(seen, all, "the follower saw every label, in order");
}
