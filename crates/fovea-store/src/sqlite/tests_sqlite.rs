//! What only the SQLite backend has to show: its file opening under concurrent processes, and URL forms.

use super::SqliteCatalog;
use crate::{LabelOrigin, LabelStore, NewLabel};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_openers_of_one_fresh_file_all_succeed() {
    // Each opener stands for a separate process starting on an empty data directory at the same moment.
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fovea.db").to_str().unwrap().to_owned();
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { SqliteCatalog::open(&path).await.map(|c| c.pool.clone()) })
            })
            .collect();
        for opener in openers {
            let opened = opener.await.unwrap();
            assert!(opened.is_ok(), "round {round}: {:?}", opened.err());
        }
        let catalog = SqliteCatalog::open(&path).await.unwrap();
        assert_eq!(catalog.list_classes().await.unwrap().len(), 1, "the Unknown class, created once");
    }
}

#[tokio::test]
async fn opens_by_path_or_sqlite_url() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fovea.db");
    let path = path.to_str().unwrap();
    let class = SqliteCatalog::open(path).await.unwrap().create_class("Cat").await.unwrap();
    let reopened = SqliteCatalog::open(&format!("sqlite://{path}")).await.unwrap();
    assert_eq!(reopened.get_class(class.id).await.unwrap().unwrap().name, "Cat");
    reopened.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_lent_without_a_ping_and_stay_usable_after_a_refused_write() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = SqliteCatalog::open(dir.path().join("fovea.db").to_str().unwrap()).await.unwrap();
    assert!(!catalog.pool.options().get_test_before_acquire(), "a lent connection is not pinged first");
    let class = catalog.create_class("Cat").await.unwrap();
    // Nothing checks a connection before it is lent again, so a refused write (a label of an image that does not
    // exist) must leave every connection of the pool as usable as before, on every turn through it.
    for round in 0..3 * super::MAX_CONNECTIONS {
        let refused = catalog
            .add_label(NewLabel {
                image_id: format!("missing-{round}"),
                class_id: class.id,
                user: "tester".into(),
                origin: LabelOrigin::Human,
            })
            .await;
        assert!(refused.is_err(), "round {round}: a label of a missing image was accepted");
        assert_eq!(catalog.list_classes().await.unwrap().len(), 2, "round {round}");
    }
}
