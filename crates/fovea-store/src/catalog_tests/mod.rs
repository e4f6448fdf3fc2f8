//! Behaviour of a catalog, exercised through the `Catalog` trait as callers see it. Every backend includes this
//! suite (`#[path]`) beside its own `test_backend` module, so SQLite and PostgreSQL pass the same tests.

use std::sync::Arc;

use super::test_backend;
use crate::model::*;
use crate::{blob_key_for, Catalog, StoreError};

mod collections;
mod hygiene;
mod insight;
mod labelling;
mod operations;

async fn catalog() -> Arc<dyn Catalog> {
    test_backend::quick().await
}

fn new_image(bytes: &[u8]) -> NewImage {
    let id = sha256_hex(bytes);
    NewImage {
        blob_key: blob_key_for(&id),
        id,
        width: 32,
        height: 24,
        format: "png".into(),
        source: "upload".into(),
        brightness: None,
        grayscale: None,
    }
}

async fn image(catalog: &dyn Catalog, bytes: &[u8]) -> String {
    catalog.put_image(new_image(bytes)).await.unwrap().0.id
}

async fn label(catalog: &dyn Catalog, image_id: &str, class_id: ClassId) -> LabelRecord {
    let label = NewLabel { image_id: image_id.into(), class_id, user: "ann".into(), origin: LabelOrigin::Human };
    catalog.add_label(label).await.unwrap()
}

async fn predict(catalog: &dyn Catalog, image_id: &str, class: &str, probability: f64) -> i64 {
    let txn = NewTransaction {
        unknown: false,
        image_id: image_id.into(),
        model_version: "m1".into(),
        kind: TransactionKind::Predict,
        top_k: vec![
            // A runner-up below the top class, listed first so top-1 must be found, not assumed.
            ScoredClass { class: "other".into(), probability: probability / 2.0 },
            ScoredClass { class: class.into(), probability },
        ],
        chosen_class: None,
        user: "ann".into(),
        latency_ms: 3.5,
    };
    catalog.log_transaction(txn).await.unwrap()
}
