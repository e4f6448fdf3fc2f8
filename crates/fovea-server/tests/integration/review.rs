//! `GET /api/v1/review` in-process, with the real backbone, a real SQLite file and real photos.

use std::collections::HashSet;
use std::io::Cursor;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fovea_app::Role;
use serde_json::{json, Value};

use super::{call, get, photo, server, Server};

/// A crop of a photo: similar to the others of the same photo, never byte-identical.
fn crop(img: &image::RgbImage, k: u32) -> Vec<u8> {
    let (w, h) = (img.width() * (85 - k) / 100, img.height() * (85 - k) / 100);
    let mut out = Vec::new();
    image::imageops::crop_imm(img, k * 9, k * 6, w, h)
        .to_image()
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn with_token(b: axum::http::request::Builder, token: &str) -> axum::http::request::Builder {
    b.header("authorization", format!("Bearer {token}"))
}

async fn classify(router: &axum::Router, token: &str, bytes: Vec<u8>) -> String {
    let req = with_token(Request::post("/api/v1/classify"), token)
        .header("content-type", "application/octet-stream")
        .body(Body::from(bytes))
        .unwrap();
    let (st, v) = call(router, req).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["image_id"].as_str().unwrap().to_owned()
}

async fn label(router: &axum::Router, token: &str, image: &str, class: &str) {
    let req = with_token(Request::post(format!("/api/v1/images/{image}/label")), token)
        .header("content-type", "application/json")
        .body(Body::from(json!({ "class": class }).to_string()))
        .unwrap();
    let (st, v) = call(router, req).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

fn ids(queue: &Value) -> Vec<String> {
    queue["items"].as_array().unwrap().iter().map(|i| i["image_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn review_queue_excludes_labelled_images_and_follows_new_labels() {
    let Server { router, app, _dir } = server().await;
    let (_, admin) = app.add_user("ada", Role::Admin).await.unwrap();
    let (_, viewer) = app.add_user("vic", Role::Viewer).await.unwrap();

    let mut truth = Vec::new();
    for (file, class) in [("chelsea.png", "cat"), ("coffee.png", "coffee"), ("rocket.jpg", "rocket")] {
        let img = photo(file);
        for k in 0..4 {
            truth.push((classify(&router, &admin, crop(&img, k * 3)).await, class));
        }
    }
    // An empty model: everything is unknown, so every image is a candidate with the top priority.
    let (st, q) = call(&router, get(&viewer, "/api/v1/review?limit=100")).await;
    assert_eq!(st, StatusCode::OK, "{q}");
    assert_eq!(q["candidates"], 12, "{q}");
    assert_eq!(ids(&q).len(), 12);

    let mut labelled: HashSet<String> = HashSet::new();
    for (id, class) in [&truth[0], &truth[4]] {
        label(&router, &admin, id, class).await;
        labelled.insert(id.clone());
    }
    let (st, q) = call(&router, get(&viewer, "/api/v1/review?limit=100")).await;
    assert_eq!(st, StatusCode::OK, "{q}");
    assert_eq!(q["candidates"], 10, "{q}");
    assert_eq!(q["not_embedded"], 0, "{q}");
    let all = ids(&q);
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), 10, "every unlabelled image once: {q}");
    assert!(all.iter().all(|id| !labelled.contains(id)), "labelled images never appear: {q}");
    for item in q["items"].as_array().unwrap() {
        let u = item["uncertainty"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&u), "{item}");
        assert!(!item["top"].as_array().unwrap().is_empty(), "a trained model names classes: {item}");
    }

    // Label the head of the queue: it leaves the queue, and the ranking is recomputed under the new model.
    let (_, before) = call(&router, get(&viewer, "/api/v1/review?limit=3")).await;
    let first = ids(&before);
    assert_eq!(first.len(), 3, "{before}");
    let next = &first[0];
    let class = truth.iter().find(|(id, _)| id == next).unwrap().1;
    label(&router, &admin, next, class).await;
    let (_, after) = call(&router, get(&viewer, "/api/v1/review?limit=3")).await;
    let second = ids(&after);
    assert_eq!(second.len(), 3, "{after}");
    assert!(!second.contains(next), "the image just labelled left the queue: {after}");
    assert_ne!(first, second);
    assert_ne!(before["model_version"], after["model_version"]);
    assert_eq!(after["candidates"], 9);

    // Labelled as Unknown still counts as labelled.
    label(&router, &admin, &second[0], "Unknown").await;
    let (_, q) = call(&router, get(&viewer, "/api/v1/review?limit=100")).await;
    assert!(!ids(&q).contains(&second[0]), "{q}");
    assert_eq!(q["candidates"], 8);

    for bad in ["0", "101", "x"] {
        let (st, v) = call(&router, get(&viewer, &format!("/api/v1/review?limit={bad}"))).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "limit={bad}: {v}");
    }
    let anonymous = Request::get("/api/v1/review").body(Body::empty()).unwrap();
    assert_eq!(call(&router, anonymous).await.0, StatusCode::UNAUTHORIZED);
    let (_, doc) = call(&router, Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    assert!(doc["paths"]["/api/v1/review"]["get"].is_object(), "listed in /openapi.json");
}
