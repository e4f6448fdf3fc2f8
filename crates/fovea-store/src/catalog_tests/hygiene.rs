//! Hygiene records: confirmations follow label rows, hashes round-trip all 64 bits, kept groups are listed.

use super::*;
use crate::hygiene::ImageHash;

#[tokio::test]
async fn a_confirmation_belongs_to_one_label_row_of_one_image() {
    let c = catalog().await;
    let (a, b) = (image(c.as_ref(), b"a").await, image(c.as_ref(), b"b").await);
    let cat = c.create_class("cat").await.unwrap();
    let first = label(c.as_ref(), &a, cat.id).await;
    c.confirm_label(&a, first.id, "ann").await.unwrap();
    c.confirm_label(&a, first.id, "bob").await.unwrap();
    assert_eq!(c.confirmed_labels().await.unwrap(), [first.id].into_iter().collect());
    // Another image's label, or a label that does not exist, is refused.
    assert!(matches!(c.confirm_label(&b, first.id, "ann").await, Err(StoreError::NotFound { .. })));
    assert!(matches!(c.confirm_label(&a, 9999, "ann").await, Err(StoreError::NotFound { .. })));
    // A relabel is a new row: not confirmed.
    let second = label(c.as_ref(), &a, c.unknown_class().await.unwrap().id).await;
    assert!(!c.confirmed_labels().await.unwrap().contains(&second.id));
}

#[tokio::test]
async fn image_hashes_keep_every_bit_and_list_what_is_missing() {
    let c = catalog().await;
    let (a, b) = (image(c.as_ref(), b"a").await, image(c.as_ref(), b"b").await);
    let hash = ImageHash { image_id: a.clone(), dhash: u64::MAX - 5, pixel_sha256: sha256_hex(b"pixels") };
    c.put_image_hash(&hash).await.unwrap();
    assert_eq!(c.image_hashes().await.unwrap(), vec![hash]);
    assert_eq!(c.images_without_hash(10).await.unwrap(), vec![b]);
    let bad = ImageHash { image_id: "nope".into(), dhash: 1, pixel_sha256: String::new() };
    assert!(matches!(c.put_image_hash(&bad).await, Err(StoreError::Invalid(_))));
}

#[tokio::test]
async fn kept_groups_are_recorded_whole_or_not_at_all() {
    let c = catalog().await;
    let (a, b) = (image(c.as_ref(), b"a").await, image(c.as_ref(), b"b").await);
    c.keep_duplicate_group("g1", &[a.clone(), b.clone()], "ann").await.unwrap();
    let kept = c.kept_duplicate_groups().await.unwrap();
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|(g, _)| g == "g1"));
    assert!(c.keep_duplicate_group("g2", std::slice::from_ref(&a), "ann").await.is_err());
    let missing = sha256_hex(b"never stored");
    assert!(c.keep_duplicate_group("g3", &[a, missing], "ann").await.is_err());
    assert_eq!(c.kept_duplicate_groups().await.unwrap().len(), 2, "a failed group leaves nothing behind");
}
