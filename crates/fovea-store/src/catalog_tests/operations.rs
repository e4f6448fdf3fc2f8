//! Transactions, embeddings, users, snapshots, model versions, jobs and durability.

use std::time::Duration;

use serde_json::json;

use super::*;

#[tokio::test]
async fn transactions_list_newest_first() {
    let catalog = catalog().await;
    let a = image(&*catalog, b"a").await;
    let first = predict(&*catalog, &a, "Cat", 0.9).await;
    let correction = NewTransaction {
        unknown: false,
        image_id: a.clone(),
        model_version: "m1".into(),
        kind: TransactionKind::Correct,
        top_k: vec![ScoredClass { class: "Cat".into(), probability: 0.9 }],
        chosen_class: Some("Dog".into()),
        user: "ann".into(),
        latency_ms: 1.25,
    };
    let second = catalog.log_transaction(correction.clone()).await.unwrap();
    let listed = catalog.list_transactions(&TransactionFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(listed.iter().map(|t| t.id).collect::<Vec<_>>(), vec![second, first]);
    assert_eq!(listed[0].kind, TransactionKind::Correct);
    assert_eq!(listed[0].top_k, correction.top_k);
    assert_eq!(listed[0].chosen_class.as_deref(), Some("Dog"));
    assert_eq!(listed[0].latency_ms, 1.25);
    assert_eq!(
        catalog.list_transactions(&TransactionFilter { limit: 1, offset: 1, ..Default::default() }).await.unwrap()[0]
            .id,
        first
    );

    // Filters narrow by kind, user, class (a correction's choice or a prediction's top-1) and time.
    let only = |f: TransactionFilter| {
        let catalog = catalog.clone();
        async move { catalog.list_transactions(&TransactionFilter { limit: 10, ..f }).await.unwrap() }
    };
    let corrections = only(TransactionFilter { kind: Some(TransactionKind::Correct), ..Default::default() }).await;
    assert_eq!(corrections.iter().map(|t| t.id).collect::<Vec<_>>(), vec![second]);
    assert_eq!(only(TransactionFilter { class: Some("dog".into()), ..Default::default() }).await.len(), 1);
    assert_eq!(only(TransactionFilter { user: Some("nobody".into()), ..Default::default() }).await.len(), 0);
    assert_eq!(only(TransactionFilter { since: Some(now_millis() + 60_000), ..Default::default() }).await.len(), 0);
    assert_eq!(only(TransactionFilter { until: Some(now_millis() + 60_000), ..Default::default() }).await.len(), 2);

    let orphan = NewTransaction { image_id: sha256_hex(b"zz"), ..correction };
    assert!(matches!(catalog.log_transaction(orphan).await, Err(StoreError::NotFound { .. })));
}

#[tokio::test]
async fn embeddings_round_trip_exactly() {
    let catalog = catalog().await;
    let a = image(&*catalog, b"a").await;
    let vector = vec![0.1f32, -3.5e-8, f32::MAX, f32::MIN_POSITIVE, -0.0, 1.0 / 3.0];
    catalog.put_embedding(&a, "dinov2-s", &vector).await.unwrap();
    let back = catalog.get_embedding(&a, "dinov2-s").await.unwrap().unwrap();
    assert_eq!(
        back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        vector.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    assert!(catalog.get_embedding(&a, "other").await.unwrap().is_none());

    catalog.put_embedding(&a, "dinov2-s", &[2.0]).await.unwrap();
    assert_eq!(catalog.get_embedding(&a, "dinov2-s").await.unwrap(), Some(vec![2.0]));
    assert!(matches!(catalog.put_embedding(&a, "x", &[]).await, Err(StoreError::Invalid(_))));
    assert!(matches!(catalog.put_embedding(&sha256_hex(b"zz"), "x", &[1.0]).await, Err(StoreError::NotFound { .. })));
}

#[tokio::test]
async fn users_are_found_by_token_hash() {
    let catalog = catalog().await;
    let hash = sha256_hex(b"secret-token");
    let user = catalog
        .create_user(NewUser { name: "ann".into(), role: Role::Annotator, token_sha256: hash.clone() })
        .await
        .unwrap();
    assert_eq!(catalog.user_by_token_hash(&hash).await.unwrap(), Some(user.clone()));
    assert!(catalog.user_by_token_hash(&sha256_hex(b"wrong")).await.unwrap().is_none());

    let same_name = NewUser { name: "ann".into(), role: Role::Admin, token_sha256: sha256_hex(b"t2") };
    assert!(matches!(catalog.create_user(same_name).await, Err(StoreError::AlreadyExists { what: "user", .. })));
    let same_token = NewUser { name: "bob".into(), role: Role::Viewer, token_sha256: hash };
    assert!(matches!(catalog.create_user(same_token).await, Err(StoreError::AlreadyExists { what: "token", .. })));
    let plain = NewUser { name: "eve".into(), role: Role::Viewer, token_sha256: "plain-token".into() };
    assert!(matches!(catalog.create_user(plain).await, Err(StoreError::Invalid(_))));
    assert_eq!(catalog.list_users().await.unwrap(), vec![user.clone()]);
    assert!(!serde_json::to_string(&user).unwrap().contains("token"), "hashes stay out of JSON");
}

#[tokio::test]
async fn latest_head_snapshot_wins() {
    let catalog = catalog().await;
    assert!(catalog.latest_head_snapshot("lite0").await.unwrap().is_none());
    let epoch = catalog.label_log_epoch().await.unwrap();
    catalog.save_head_snapshot("lite0", epoch, 3, b"old").await.unwrap();
    let newest = catalog.save_head_snapshot("lite0", epoch, 7, b"new").await.unwrap();
    let other = catalog.save_head_snapshot("ft-1", epoch, 8, b"other backbone").await.unwrap();
    let latest = catalog.latest_head_snapshot("lite0").await.unwrap().unwrap();
    assert_eq!(latest, newest);
    assert_eq!((latest.label_seq, latest.bytes.as_slice()), (7, &b"new"[..]));
    assert_eq!(catalog.prune_head_snapshots("lite0", 1).await.unwrap(), 1);
    assert_eq!(catalog.latest_head_snapshot("lite0").await.unwrap(), Some(newest));
    // Pruning one backbone's snapshots leaves another's alone.
    assert_eq!(catalog.latest_head_snapshot("ft-1").await.unwrap(), Some(other));
}

#[tokio::test]
async fn exactly_one_model_is_promoted() {
    let catalog = catalog().await;
    let new = |id: &str, parent: Option<&str>| NewModelVersion {
        id: id.into(),
        parent: parent.map(Into::into),
        kind: ModelKind::Online,
        metrics: json!({"accuracy": 0.5}),
    };
    let m1 = catalog.create_model_version(new("m1", None)).await.unwrap();
    assert_eq!(m1.status, ModelStatus::Candidate);
    catalog.create_model_version(new("m2", Some("m1"))).await.unwrap();
    assert!(matches!(catalog.create_model_version(new("m1", None)).await, Err(StoreError::AlreadyExists { .. })));
    assert!(matches!(catalog.create_model_version(new("m3", Some("nope"))).await, Err(StoreError::NotFound { .. })));
    assert!(catalog.promoted_model_version().await.unwrap().is_none());

    catalog.promote("m1").await.unwrap();
    let promoted = catalog.promote("m2").await.unwrap();
    assert_eq!(promoted.status, ModelStatus::Promoted);
    assert!(matches!(catalog.promote("nope").await, Err(StoreError::NotFound { .. })));
    let statuses: Vec<(String, ModelStatus)> =
        catalog.list_model_versions().await.unwrap().into_iter().map(|m| (m.id, m.status)).collect();
    assert!(statuses.contains(&("m1".into(), ModelStatus::Retired)));
    assert_eq!(statuses.iter().filter(|(_, s)| *s == ModelStatus::Promoted).count(), 1);
    assert_eq!(catalog.promoted_model_version().await.unwrap().unwrap().id, "m2", "a failed promote changes nothing");

    catalog.set_model_metrics("m2", &json!({"accuracy": 0.9})).await.unwrap();
    assert_eq!(catalog.get_model_version("m2").await.unwrap().unwrap().metrics["accuracy"], 0.9);
}

#[tokio::test]
async fn concurrent_reservations_get_distinct_model_ids() {
    // Two catalogs on one store stand for two processes; each also reserves from several tasks at once.
    let store = test_backend::Store::fresh().await;
    let catalogs: Vec<Arc<dyn Catalog>> = vec![store.open().await, store.open().await];
    let base = NewModelVersion { id: "base".into(), parent: None, kind: ModelKind::Online, metrics: json!({}) };
    catalogs[0].create_model_version(base).await.unwrap();
    catalogs[0].promote("base").await.unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let catalog = catalogs[i % 2].clone();
            tokio::spawn(async move { catalog.reserve_model_version("ft", Some("base"), ModelKind::FineTune).await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        let reserved = task.await.unwrap().unwrap();
        assert_eq!((reserved.status, reserved.parent.as_deref()), (ModelStatus::Training, Some("base")));
        ids.push(reserved.id);
    }
    ids.sort();
    let expected: Vec<String> = (1..=12).map(|n| format!("ft-{n:03}")).collect();
    assert_eq!(ids, expected, "every run gets its own id, numbered after the versions before it");

    let catalog = &catalogs[1];
    // A reservation is never served; once completed it is an ordinary candidate.
    assert!(matches!(catalog.promote("ft-001").await, Err(StoreError::Invalid(_))));
    assert_eq!(catalog.promoted_model_version().await.unwrap().unwrap().id, "base");
    let done = catalog.complete_model_version("ft-001", &json!({"accuracy": 0.9})).await.unwrap();
    assert_eq!((done.status, done.metrics["accuracy"].as_f64()), (ModelStatus::Candidate, Some(0.9)));
    assert!(matches!(catalog.complete_model_version("ft-001", &json!({})).await, Err(StoreError::NotFound { .. })));
    catalog.promote("ft-001").await.unwrap();
    // A failed run gives its reservation back; a registered version is never discarded.
    assert!(catalog.discard_model_version("ft-002").await.unwrap());
    assert!(!catalog.discard_model_version("ft-001").await.unwrap());
    assert!(catalog.get_model_version("ft-002").await.unwrap().is_none());
    let next = catalog.reserve_model_version("throwaway", None, ModelKind::ThrowAway).await.unwrap();
    assert_eq!(next.id, "throwaway-012");
    assert!(matches!(
        catalog.reserve_model_version("ft", Some("nope"), ModelKind::FineTune).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        catalog.reserve_model_version("a/b", None, ModelKind::FineTune).await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn job_claims_are_exclusive_and_leases_expire() {
    let catalog = catalog().await;
    let job = catalog.enqueue_job("train", &json!({"epochs": 3})).await.unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Queued, 0));
    assert!(catalog.claim_job(&["import"], Duration::from_secs(60)).await.unwrap().is_none());

    let claimed = catalog.claim_job(&["train"], Duration::from_millis(50)).await.unwrap().unwrap();
    assert_eq!((claimed.id, claimed.state, claimed.attempt), (job.id, JobState::Running, 1));
    assert_eq!(claimed.params, json!({"epochs": 3}));
    assert!(catalog.claim_job(&[], Duration::from_secs(60)).await.unwrap().is_none(), "held by a live lease");

    // The first worker dies; once its lease runs out the job is claimed again.
    tokio::time::sleep(Duration::from_millis(80)).await;
    let reclaimed = catalog.claim_job(&[], Duration::from_secs(60)).await.unwrap().unwrap();
    assert_eq!((reclaimed.id, reclaimed.attempt), (job.id, 2));
    // The stale worker's heartbeat and finish are refused; the new one's succeed.
    assert!(!catalog.heartbeat_job(job.id, 1, 0.5, None, Duration::from_secs(60)).await.unwrap());
    assert!(!catalog.finish_job(job.id, 1, JobOutcome::Failed, Some("late")).await.unwrap());
    assert!(catalog.heartbeat_job(job.id, 2, 0.5, Some("half"), Duration::from_secs(60)).await.unwrap());
    let running = catalog.get_job(job.id).await.unwrap().unwrap();
    assert_eq!((running.progress, running.message.as_deref()), (0.5, Some("half")));
    assert!(catalog.finish_job(job.id, 2, JobOutcome::Succeeded, None).await.unwrap());
    let done = catalog.get_job(job.id).await.unwrap().unwrap();
    assert_eq!((done.state, done.progress, done.lease_until), (JobState::Succeeded, 1.0, None));
    assert!(!catalog.cancel_job(job.id).await.unwrap(), "finished jobs stay finished");
    assert!(catalog.claim_job(&[], Duration::from_secs(60)).await.unwrap().is_none());

    let queued = catalog.enqueue_job("import", &json!({})).await.unwrap();
    assert!(catalog.cancel_job(queued.id).await.unwrap());
    assert!(catalog.claim_job(&[], Duration::from_secs(60)).await.unwrap().is_none());
    assert!(matches!(catalog.cancel_job(999).await, Err(StoreError::NotFound { .. })));
    assert_eq!(catalog.list_jobs(10, 0).await.unwrap().len(), 2);
}

#[tokio::test]
async fn concurrent_claims_never_share_a_job() {
    let store = test_backend::Store::fresh().await;
    let catalog = store.open().await;
    for _ in 0..20 {
        catalog.enqueue_job("embed", &json!({})).await.unwrap();
    }
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let catalog = catalog.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(job) = catalog.claim_job(&[], Duration::from_secs(60)).await.unwrap() {
                    mine.push(job.id);
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (1..=20).collect::<Vec<i64>>());
}

#[tokio::test]
async fn file_catalog_survives_reopen() {
    let store = test_backend::Store::fresh().await;
    let (image_id, label_id) = {
        let catalog = store.open().await;
        let cat = catalog.create_class("Cat").await.unwrap();
        let id = image(catalog.as_ref(), b"a").await;
        let label = label(catalog.as_ref(), &id, cat.id).await;
        catalog.put_embedding(&id, "b", &[1.5, 2.5]).await.unwrap();
        // Dropped without close(), as a crash would: every acknowledged write is already in the WAL.
        (id, label.id)
    };
    let catalog = store.open().await;
    assert!(catalog.get_image(&image_id).await.unwrap().is_some());
    assert_eq!(catalog.current_label(&image_id).await.unwrap().unwrap().id, label_id);
    assert_eq!(catalog.get_embedding(&image_id, "b").await.unwrap(), Some(vec![1.5, 2.5]));
    assert_eq!(catalog.list_classes().await.unwrap().len(), 2, "migrations are not re-applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_classifications_share_commits_and_a_bad_one_fails_alone() {
    let store = test_backend::Store::fresh().await;
    let catalog = store.open().await;
    let txn = |image_id: &str, probability: f64| NewTransaction {
        unknown: false,
        image_id: image_id.into(),
        model_version: "m1".into(),
        kind: TransactionKind::Predict,
        top_k: vec![ScoredClass { class: "cat".into(), probability }],
        chosen_class: None,
        user: "ann".into(),
        latency_ms: 1.0,
    };
    let tasks: Vec<_> = (0..40u8)
        .map(|i| {
            let catalog = catalog.clone();
            let image = new_image(&[i]);
            // Every tenth one carries a probability the catalog refuses before writing anything; another tenth
            // logs its prediction against an image that does not exist, which fails after its image row went in.
            let probability = if i % 10 == 3 { f64::NAN } else { 0.5 };
            let logged_for = if i % 10 == 7 { new_image(&[200 + i]).id } else { image.id.clone() };
            let txn = txn(&logged_for, probability);
            tokio::spawn(async move {
                let vector = [f32::from(i), 1.0];
                catalog.record_classification(image, Some(("b", &vector)), txn).await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok((record, created, id)) => {
                assert!(created && i % 10 != 3 && i % 10 != 7, "row {i}");
                assert_eq!(catalog.get_embedding(&record.id, "b").await.unwrap(), Some(vec![i as f32, 1.0]));
                ids.push(id);
            }
            Err(e) => {
                assert!(i % 10 == 3 || i % 10 == 7, "row {i} failed: {e}");
                if i % 10 == 7 {
                    assert!(matches!(e, StoreError::NotFound { .. }), "row {i}: {e}");
                }
                // Rolled back whole: no image row without its log entry.
                assert!(catalog.get_image(&new_image(&[i as u8]).id).await.unwrap().is_none());
            }
        }
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 32, "every good classification got its own log entry");
    // Durable: a second catalog on the store (another process) sees them all.
    let reopened = store.open().await;
    for i in (0..40u8).filter(|i| i % 10 != 3 && i % 10 != 7) {
        assert!(reopened.get_image(&new_image(&[i]).id).await.unwrap().is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_shared_by_processes_enqueues_once() {
    let store = test_backend::Store::fresh().await;
    let catalogs: Vec<Arc<dyn Catalog>> = vec![store.open().await, store.open().await, store.open().await];
    let since = now_millis() - 3_600_000;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let catalog = catalogs[i % 3].clone();
            tokio::spawn(async move { catalog.enqueue_job_unless_since("train", &json!({}), since).await.unwrap() })
        })
        .collect();
    let mut enqueued = 0;
    for task in tasks {
        enqueued += usize::from(task.await.unwrap().is_some());
    }
    assert_eq!(enqueued, 1, "exactly one of the racing processes enqueues");
    assert_eq!(catalogs[0].list_jobs(10, 0).await.unwrap().len(), 1);
    // Another kind, or a window that starts after the job, enqueues again.
    assert!(catalogs[1].enqueue_job_unless_since("identify", &json!({}), since).await.unwrap().is_some());
    assert!(catalogs[1].enqueue_job_unless_since("train", &json!({}), now_millis() + 1).await.unwrap().is_some());
}
