//! `/api/v1/hygiene/duplicates` in-process with the real backbone: transformed copies of real photos (resized,
//! re-encoded, slightly cropped, brightened) are grouped with their original; different photos — including ones of
//! the same kind, three textures and two portraits — are not; a group is resolved in one click.

use std::collections::HashMap;
use std::io::Cursor;

use axum::http::StatusCode;
use fovea_app::{ImportReport, Role};
use image::imageops::{self, FilterType};
use image::{ImageFormat, RgbImage};
use serde_json::{json, Value};

use super::{call, get, photo, post_json, server, Server};

const PHOTOS: [&str; 12] = [
    "chelsea.png",
    "coffee.png",
    "astronaut.png",
    "camera.png",
    "rocket.jpg",
    "horse.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "coins.png",
    "moon.png",
    "page.png",
];

fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(img).unwrap();
    out
}

/// The four edits, each a new file of the same picture.
fn copies(img: &RgbImage) -> Vec<(&'static str, Vec<u8>)> {
    let (w, h) = img.dimensions();
    let resized = imageops::resize(img, w * 3 / 5, h * 3 / 5, FilterType::Lanczos3);
    let cropped = imageops::crop_imm(img, w / 20, h / 20, w * 9 / 10, h * 9 / 10).to_image();
    let brighter = RgbImage::from_fn(w, h, |x, y| image::Rgb(img.get_pixel(x, y).0.map(|c| c.saturating_add(20))));
    vec![
        ("resized", encode(&resized, ImageFormat::Png)),
        ("re-encoded", jpeg(img, 70)),
        ("cropped", encode(&cropped, ImageFormat::Png)),
        ("brightened", encode(&brighter, ImageFormat::Png)),
    ]
}

#[tokio::test]
async fn transformed_copies_are_grouped_and_distinct_photos_are_not() {
    let Server { router, app, _dir } = server().await;
    let (_, viewer) = app.add_user("vic", Role::Viewer).await.unwrap();
    let (_, annotator) = app.add_user("ann", Role::Annotator).await.unwrap();

    // image id -> (photo, edit)
    let mut what: HashMap<String, (&str, &str)> = HashMap::new();
    let mut report = ImportReport::default();
    for (n, file) in PHOTOS.iter().enumerate() {
        let img = photo(file);
        let original = encode(&img, ImageFormat::Png);
        what.insert(fovea_app::sha256_hex(&original), (file, "original"));
        // Labelled as the photo, except one brightened cat copy labelled as coffee: a conflict inside its group.
        app.import_bytes(original.into(), "test", Some(file), &mut report).await.unwrap();
        for (edit, bytes) in copies(&img) {
            what.insert(fovea_app::sha256_hex(&bytes), (file, edit));
            let label = if n == 0 && edit == "brightened" { "coffee.png" } else { file };
            app.import_bytes(bytes.into(), "test", Some(label), &mut report).await.unwrap();
        }
    }
    assert_eq!(report.imported, PHOTOS.len() * 5);

    let (st, r) = call(&router, get(&viewer, "/api/v1/hygiene/duplicates")).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["images"], PHOTOS.len() * 5);
    let groups = r["groups"].as_array().unwrap();
    // No group mixes two photos, whatever their kind.
    let mut found: HashMap<&str, usize> = HashMap::new();
    for g in groups {
        let members: Vec<(&str, &str)> =
            g["members"].as_array().unwrap().iter().map(|m| what[m["image_id"].as_str().unwrap()]).collect();
        assert!(members.iter().all(|(p, _)| *p == members[0].0), "a group mixes photos: {members:?}");
        if members.iter().any(|(_, e)| *e == "original") {
            for (_, edit) in members.iter().filter(|(_, e)| *e != "original") {
                *found.entry(edit).or_default() += 1;
            }
        }
    }
    let total: usize = found.values().sum();
    let recall = total as f64 / (PHOTOS.len() * 4) as f64;
    eprintln!("near-duplicate recall {recall:.3} ({total} of {} copies); per edit {found:?}", PHOTOS.len() * 4);
    assert!(recall >= 0.9, "recall {recall:.3}; per edit {found:?}");
    for edit in ["resized", "re-encoded", "cropped", "brightened"] {
        assert!(found.get(edit).copied().unwrap_or(0) * 4 >= PHOTOS.len() * 3, "{edit}: {found:?}");
    }

    // The cat's group carries two labels: called out, and listed first.
    assert_eq!(groups[0]["conflict"], true, "{}", groups[0]);
    assert_eq!(groups[0]["labels"], json!(["chelsea.png", "coffee.png"]));
    let ids: Vec<String> =
        groups[0]["members"].as_array().unwrap().iter().map(|m| m["image_id"].as_str().unwrap().to_owned()).collect();
    let keep = ids.iter().find(|id| what[id.as_str()].1 == "original").unwrap().clone();

    let resolve = |token: &str, body: Value| post_json(token, "/api/v1/hygiene/duplicates/resolve", body);
    let keep_one = json!({"action": "keep_one", "images": ids, "keep": keep});
    assert_eq!(call(&router, resolve(&viewer, keep_one.clone())).await.0, StatusCode::FORBIDDEN);
    for bad in [
        json!({"action": "keep_one", "images": ids}),
        json!({"action": "keep_one", "images": ids, "keep": fovea_app::sha256_hex(b"elsewhere")}),
        json!({"action": "keep_all", "images": [keep]}),
        json!({"action": "shred", "images": ids}),
        json!({"action": "discard", "images": ["nope", "nada"]}),
    ] {
        let (st, body) = call(&router, resolve(&annotator, bad.clone())).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (st, done) = call(&router, resolve(&annotator, keep_one)).await;
    assert_eq!(st, StatusCode::OK, "{done}");
    assert_eq!(done["bulk"]["changed"], ids.len() - 1);
    let (_, r) = call(&router, get(&viewer, "/api/v1/hygiene/duplicates")).await;
    let cat = r["groups"].as_array().unwrap().iter().find(|g| g["members"][0]["image_id"] == ids[0].as_str()).unwrap();
    assert_eq!(cat["conflict"], false, "the copies went to Unknown: {cat}");

    // Keeping a group whole hides it.
    let before = r["groups"].as_array().unwrap().len();
    let keep_all = json!({"action": "keep_all", "images": cat["members"].as_array().unwrap().iter().map(|m| m["image_id"].clone()).collect::<Vec<_>>()});
    assert_eq!(call(&router, resolve(&annotator, keep_all)).await.0, StatusCode::OK);
    let (_, r) = call(&router, get(&viewer, "/api/v1/hygiene/duplicates")).await;
    assert_eq!(r["groups"].as_array().unwrap().len(), before - 1);
    assert_eq!(r["kept"], 1);
}
