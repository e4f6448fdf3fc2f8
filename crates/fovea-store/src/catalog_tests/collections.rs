//! Collections, filters and bulk actions against a constructed collection whose answers are known.

use super::*;
use crate::collections::*;

fn scored(pairs: &[(&str, f64)]) -> Vec<ScoredClass> {
    pairs.iter().map(|(c, p)| ScoredClass { class: (*c).into(), probability: *p }).collect()
}

fn ok_item(seq: u64, image_id: &str, top: &[(&str, f64)], unknown: bool) -> NewCollectionItem {
    NewCollectionItem {
        seq,
        path: format!("dir/{seq}.png"),
        outcome: Ok(ItemPrediction {
            image_id: image_id.into(),
            model_version: "lite0/online-3".into(),
            backbone: "lite0".into(),
            top_k: scored(top),
            unknown,
        }),
    }
}

/// Six results: two cat/dog look-alikes, a confident cat, a confident bird, an unknown and a failure.
async fn constructed() -> (Arc<dyn Catalog>, i64, Vec<String>) {
    let c = catalog().await;
    let col = c
        .create_collection(NewCollection {
            name: "trip".into(),
            source: "/photos".into(),
            model: None,
            created_by: "ann".into(),
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5u8 {
        ids.push(image(c.as_ref(), &[i, 7, 7]).await);
    }
    let items = vec![
        ok_item(0, &ids[0], &[("dog", 0.45), ("cat", 0.50)], false),
        ok_item(1, &ids[1], &[("dog", 0.52), ("cat", 0.40)], false),
        ok_item(2, &ids[2], &[("cat", 0.97), ("dog", 0.02)], false),
        ok_item(3, &ids[3], &[("bird", 0.90), ("cat", 0.05)], false),
        ok_item(4, &ids[4], &[("bird", 0.30), ("dog", 0.28)], true),
        NewCollectionItem { seq: 5, path: "dir/broken.png".into(), outcome: Err("not an image".into()) },
    ];
    assert_eq!(c.add_collection_items(col.id, &items).await.unwrap(), 6);
    (c, col.id, ids)
}

async fn seqs(c: &dyn Catalog, f: ItemFilter) -> Vec<u64> {
    let listed: Vec<u64> = c.list_collection_items(&f).await.unwrap().iter().map(|i| i.seq).collect();
    assert_eq!(c.count_collection_items(&f).await.unwrap(), listed.len() as u64, "count disagrees with {f:?}");
    listed
}

#[tokio::test]
async fn a_resumed_batch_never_counts_a_file_twice() {
    let (c, col, ids) = constructed().await;
    let again = vec![ok_item(0, &ids[0], &[("cat", 0.9)], false), ok_item(6, &ids[0], &[("cat", 0.9)], false)];
    assert_eq!(c.add_collection_items(col, &again).await.unwrap(), 1, "only the new path is added");
    let record = c.get_collection(col).await.unwrap().unwrap();
    assert_eq!((record.processed, record.failed, record.unknown), (7, 1, 1));
}

#[tokio::test]
async fn filters_combine_and_match_the_constructed_answers() {
    let (c, col, ids) = constructed().await;
    let base = ItemFilter { collection: Some(col), ..Default::default() };
    let c = c.as_ref();
    assert_eq!(seqs(c, base.clone()).await, vec![0, 1, 2, 3, 4]);
    assert_eq!(seqs(c, ItemFilter { failed: true, ..base.clone() }).await, vec![5]);
    assert_eq!(seqs(c, ItemFilter { class: Some("CAT".into()), ..base.clone() }).await, vec![0, 2]);
    let confident = ItemFilter { min_conf: Some(0.9), ..base.clone() };
    assert_eq!(seqs(c, confident).await, vec![2, 3]);
    let cat_range = ItemFilter { class: Some("cat".into()), max_conf: Some(0.6), ..base.clone() };
    assert_eq!(seqs(c, cat_range).await, vec![0]);
    let pair = ItemFilter { pair: Some(("cat".into(), "dog".into())), max_margin: Some(0.2), ..base.clone() };
    assert_eq!(seqs(c, pair).await, vec![0, 1]);
    assert_eq!(seqs(c, ItemFilter { unknown: Some(true), ..base.clone() }).await, vec![4]);
    let lowest = ItemFilter { sort: ItemSort::LowestConfidence, ..base.clone() };
    assert_eq!(seqs(c, lowest).await, vec![4, 0, 1, 3, 2]);
    let margin = ItemFilter { sort: ItemSort::SmallestMargin, limit: Some(2), ..base.clone() };
    assert_eq!(c.list_collection_items(&margin).await.unwrap().iter().map(|i| i.seq).collect::<Vec<_>>(), [4, 0]);
    assert_eq!(c.count_collection_items(&margin).await.unwrap(), 5, "the count ignores the page");

    // Labels and classes below the cutoff: "cat" gets two labelled images, "bird" none.
    let cat = c.create_class("cat").await.unwrap();
    c.create_class("bird").await.unwrap();
    label(c, &ids[2], cat.id).await;
    label(c, &ids[0], cat.id).await;
    assert_eq!(seqs(c, ItemFilter { labelled: Some(false), ..base.clone() }).await, vec![1, 3, 4]);
    assert_eq!(seqs(c, ItemFilter { below_count: Some(2), ..base.clone() }).await, vec![3], "bird has 0 < 2");
    assert_eq!(seqs(c, ItemFilter { below_count: Some(3), ..base.clone() }).await, vec![0, 2, 3]);
    assert_eq!(seqs(c, ItemFilter { model: Some("other".into()), ..base.clone() }).await, Vec::<u64>::new());

    let pairs = c.confused_pairs(Some(col), 0.2, 10).await.unwrap();
    assert_eq!(pairs, vec![ConfusedPair { a: "cat".into(), b: "dog".into(), count: 2 }]);
}

#[tokio::test]
async fn a_bulk_label_is_undone_as_a_whole_and_keeps_a_later_human_label() {
    let (c, col, ids) = constructed().await;
    let c = c.as_ref();
    let cat = c.create_class("cat").await.unwrap();
    let dog = c.create_class("dog").await.unwrap();
    label(c, &ids[1], dog.id).await;
    let epoch = c.label_log_epoch().await.unwrap();
    let targets: Vec<BulkTarget> =
        ids[..3].iter().map(|id| BulkTarget { image_id: id.clone(), class_id: Some(cat.id), item: None }).collect();
    let change = BulkChange::Label { origin: LabelOrigin::Human };
    let action = c.apply_bulk(&change, &serde_json::json!({"class": "cat"}), &targets, "ann").await.unwrap();
    assert_eq!(action.changed, 3);
    for id in &ids[..3] {
        assert_eq!(c.current_label(id).await.unwrap().unwrap().class_name, "cat");
    }
    // Someone corrects image 2 afterwards: the undo must not take their label away.
    label(c, &ids[2], dog.id).await;
    let undo = c.undo_bulk(action.id).await.unwrap();
    assert_eq!((undo.restored, undo.kept_newer, undo.labels_changed), (2, 1, true));
    assert!(c.current_label(&ids[0]).await.unwrap().is_none(), "image 0 had no label before");
    assert_eq!(c.current_label(&ids[1]).await.unwrap().unwrap().class_name, "dog", "image 1 is back to dog");
    assert_eq!(c.current_label(&ids[2]).await.unwrap().unwrap().class_name, "dog", "the later label stays");
    assert!(c.label_log_epoch().await.unwrap() > epoch, "heads folded before the undo are void");
    assert!(matches!(c.undo_bulk(action.id).await, Err(StoreError::Invalid(_))), "a second undo is refused");
    let _ = col;
}

#[tokio::test]
async fn tags_and_discards_are_undone_exactly() {
    let (c, col, ids) = constructed().await;
    let c = c.as_ref();
    let one = |i: usize| BulkTarget { image_id: ids[i].clone(), class_id: None, item: Some((col, i as u64)) };
    let tag = BulkChange::Tag { tag: "Staged".into() };
    c.apply_bulk(&tag, &serde_json::Value::Null, &[one(0)], "ann").await.unwrap();
    let again = c.apply_bulk(&tag, &serde_json::Value::Null, &[one(0), one(1)], "ann").await.unwrap();
    assert_eq!(again.changed, 1, "image 0 was already tagged");
    let base = ItemFilter { collection: Some(col), tag: Some("staged".into()), ..Default::default() };
    assert_eq!(seqs(c, base.clone()).await, vec![0, 1]);
    c.undo_bulk(again.id).await.unwrap();
    assert_eq!(seqs(c, base.clone()).await, vec![0], "the undo removes only the tag it added");
    assert_eq!(c.list_tags().await.unwrap(), vec![("staged".to_owned(), 1)]);

    let discard = c.apply_bulk(&BulkChange::Discard, &serde_json::Value::Null, &[one(2), one(3)], "ann").await.unwrap();
    let all = ItemFilter { collection: Some(col), ..Default::default() };
    assert_eq!(seqs(c, all.clone()).await, vec![0, 1, 4]);
    assert_eq!(c.get_collection(col).await.unwrap().unwrap().discarded, 2);
    c.undo_bulk(discard.id).await.unwrap();
    assert_eq!(seqs(c, all).await, vec![0, 1, 2, 3, 4]);
    assert!(c.apply_bulk(&BulkChange::Discard, &serde_json::Value::Null, &[], "ann").await.is_err());
}

#[tokio::test]
async fn coverage_counts_labels_tagged_labels_and_waiting_candidates() {
    let (c, _col, ids) = constructed().await;
    let c = c.as_ref();
    let cat = c.create_class("cat").await.unwrap();
    let bird = c.create_class("bird").await.unwrap();
    label(c, &ids[2], cat.id).await;
    let t = BulkTarget { image_id: ids[2].clone(), class_id: None, item: None };
    c.apply_bulk(&BulkChange::Tag { tag: "synthetic".into() }, &serde_json::Value::Null, &[t], "ann").await.unwrap();
    let rows = c.coverage(&["staged".into(), "synthetic".into()]).await.unwrap();
    let row = |id| rows.iter().find(|r| r.class_id == id).unwrap();
    // cat: image 2 labelled (and tagged); image 0 predicted cat and unlabelled waits.
    assert_eq!((row(cat.id).labelled, row(cat.id).tagged, row(cat.id).candidates), (1, 1, 1));
    // bird: image 3 waits; image 4 is unknown, so it does not count.
    assert_eq!((row(bird.id).labelled, row(bird.id).tagged, row(bird.id).candidates), (0, 0, 1));
    assert!(rows.iter().all(|r| r.class != "Unknown"));
}
