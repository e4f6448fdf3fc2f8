//! Report rows, evaluation rounds and drift alerts.

use fovea_insight::{PlannedItem, Stratum};

use super::*;
use crate::insight::{NewDriftAlert, Verdict};

#[tokio::test]
async fn a_verdict_counts_only_for_images_unlabelled_when_predicted_and_never_from_imports() {
    let c = catalog().await;
    let cat = c.create_class("cat").await.unwrap();
    let dog = c.create_class("dog").await.unwrap();
    let judged = image(c.as_ref(), b"judged").await;
    let known = image(c.as_ref(), b"known").await;
    let imported = image(c.as_ref(), b"imported").await;
    let unjudged = image(c.as_ref(), b"unjudged").await;
    label(c.as_ref(), &known, cat.id).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    for id in [&judged, &known, &imported, &unjudged] {
        predict(c.as_ref(), id, "cat", 0.9).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // A correction then a second thought: the newest human label is the verdict.
    label(c.as_ref(), &judged, cat.id).await;
    label(c.as_ref(), &judged, dog.id).await;
    let import =
        NewLabel { image_id: imported.clone(), class_id: dog.id, user: "import".into(), origin: LabelOrigin::Import };
    c.add_label(import).await.unwrap();

    let log = c.insight_log(None).await.unwrap();
    assert_eq!(log.predictions.len(), 4);
    let truth = |id: &str| log.predictions.iter().find(|p| p.image_id == id).unwrap().truth.clone();
    assert_eq!(truth(&judged).as_deref(), Some("dog"));
    assert_eq!(truth(&known), None, "the model had learned this image before predicting it");
    assert_eq!(truth(&imported), None, "an import is no human verdict");
    assert_eq!(truth(&unjudged), None);
    assert_eq!(log.labels.len(), 3, "human labels only");
    assert_eq!(log.predictions[0].class.as_deref(), Some("cat"));
    let later = c.insight_log(Some(now_millis() + 60_000)).await.unwrap();
    assert!(later.predictions.is_empty() && later.labels.is_empty());

    let window = c.recent_predictions(3, None).await.unwrap();
    assert_eq!(window.len(), 3);
    assert!(window[0].transaction_id < window[2].transaction_id, "oldest first");
    assert_eq!(window[2].image_id, unjudged);
    assert_eq!((window[0].look.width, window[0].look.brightness), (32, None));
    // Following the log from a transaction id: what comes after, oldest first, paged.
    let after = c.predictions_after(window[0].transaction_id, 10).await.unwrap();
    let ids: Vec<i64> = after.iter().map(|r| r.transaction_id).collect();
    assert_eq!(ids, vec![window[1].transaction_id, window[2].transaction_id]);
    assert_eq!(c.predictions_after(window[0].transaction_id, 1).await.unwrap().len(), 1);
    assert!(c.predictions_after(window[2].transaction_id, 10).await.unwrap().is_empty());
    c.set_image_look(&unjudged, 0.25, true).await.unwrap();
    assert_eq!(c.image_look(&unjudged).await.unwrap().unwrap().grayscale, Some(true));
    assert!(matches!(c.set_image_look(&unjudged, 2.0, true).await, Err(StoreError::Invalid(_))));
    assert!(matches!(c.set_image_look("nope", 0.5, true).await, Err(StoreError::NotFound { .. })));
}

#[tokio::test]
async fn evaluation_rounds_keep_their_sample_and_answers() {
    let c = catalog().await;
    let a = image(c.as_ref(), b"a").await;
    let t1 = predict(c.as_ref(), &a, "cat", 0.97).await;
    let t2 = predict(c.as_ref(), &a, "cat", 0.6).await;
    let strata = vec![Stratum { key: "cat | >=0.95".into(), population: 1, sampled: 1 }];
    let items = vec![
        PlannedItem { transaction_id: t1, stratum: "cat | >=0.95".into() },
        PlannedItem { transaction_id: t2, stratum: "cat | 0.50-0.80".into() },
    ];
    let round = c.create_evaluation("m1", 0, &strata, &items, "ann").await.unwrap();
    assert_eq!(round.population, 1);
    assert!(c.create_evaluation("m1", 0, &strata, &[], "ann").await.is_err());
    let bad = [PlannedItem { transaction_id: 999, stratum: "x".into() }];
    assert!(matches!(c.create_evaluation("m1", 0, &strata, &bad, "ann").await, Err(StoreError::NotFound { .. })));
    assert_eq!(c.list_evaluations().await.unwrap().len(), 1, "a failed round leaves nothing behind");
    let listed = c.evaluation_items(round.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].served_probability, Some(0.97));
    assert_eq!(listed[0].verdict, None);
    let answered = c.answer_evaluation(listed[1].id, Verdict::Wrong, Some("dog"), "bob").await.unwrap();
    assert_eq!((answered.verdict, answered.correct_class.as_deref()), (Some(Verdict::Wrong), Some("dog")));
    assert!(c.answer_evaluation(12345, Verdict::Right, None, "bob").await.is_err());
}

#[tokio::test]
async fn drift_alerts_open_and_clear_by_signal() {
    let c = catalog().await;
    let alert = |signal: &str| NewDriftAlert {
        signal: signal.into(),
        statistic: 0.4,
        threshold: 0.2,
        reference: 0.1,
        current: 0.5,
        detail: "moved".into(),
        since: 5,
        examples: vec!["img".into()],
        model_version: "m1".into(),
    };
    assert!(c.raise_drift_alert(alert("embedding")).await.unwrap().is_some());
    assert!(c.raise_drift_alert(alert("brightness")).await.unwrap().is_some());
    assert!(c.raise_drift_alert(alert("embedding")).await.unwrap().is_none(), "one open alert per signal");
    let mut bad = alert("x");
    bad.statistic = f64::NAN;
    assert!(c.raise_drift_alert(bad).await.is_err());
    assert_eq!(c.list_drift_alerts(true, 10).await.unwrap().len(), 2);
    assert_eq!(c.clear_drift_alerts("embedding").await.unwrap(), 1);
    let open = c.list_drift_alerts(true, 10).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].alert.examples, ["img"]);
    assert_eq!(c.list_drift_alerts(false, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn images_are_found_by_id_prefix_file_name_or_class_and_sorted() {
    let c = catalog().await;
    let mut whiskers = new_image(b"whiskers");
    whiskers.source = "import:/photos/Whiskers_100%.png".into();
    let whiskers = c.put_image(whiskers).await.unwrap().0.id;
    let other = image(c.as_ref(), b"other").await;
    let dog = c.create_class("Dog").await.unwrap();
    label(c.as_ref(), &other, dog.id).await;
    let find = |q: &str, sort: ImageSort| {
        let c = c.clone();
        let filter = ImageFilter { search: Some(q.into()), sort, ..Default::default() };
        async move { c.list_images(&filter).await.unwrap().into_iter().map(|r| r.image.id).collect::<Vec<_>>() }
    };
    assert_eq!(find("whiskers_100%", ImageSort::Newest).await, vec![whiskers.clone()], "wildcards match literally");
    assert!(find("whiskers_1000", ImageSort::Newest).await.is_empty());
    assert!(find("s%p", ImageSort::Newest).await.is_empty(), "% is no wildcard");
    assert_eq!(find("0%.", ImageSort::Newest).await, vec![whiskers.clone()]);
    assert_eq!(find(&other[..8], ImageSort::Newest).await, vec![other.clone()]);
    assert_eq!(find("DO", ImageSort::Newest).await, vec![other.clone()], "class names, any case");
    let all = ImageFilter { sort: ImageSort::Oldest, ..Default::default() };
    assert_eq!(c.list_images(&all).await.unwrap()[0].image.id, whiskers);
    let by_class = ImageFilter { sort: ImageSort::Class, ..Default::default() };
    assert_eq!(c.list_images(&by_class).await.unwrap()[0].image.id, other, "labelled first, unlabelled last");
    let long = ImageFilter { search: Some("x".repeat(201)), ..Default::default() };
    assert!(matches!(c.list_images(&long).await, Err(StoreError::Invalid(_))));
}
