//! The JSON API in-process (`create_app`), with the real backbone, a real SQLite file and real image bytes.

use std::io::Cursor;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fovea_app::{App, AppConfig, Role};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

fn backbone() -> Box<dyn fovea_model::Backbone> {
    let home = fovea_model::fovea_home();
    let path = fovea_model::ensure_weights(&home, fovea_model::Variant::Lite0).unwrap();
    let w = fovea_model::Weights::load_safetensors(&path).unwrap();
    Box::new(fovea_model::FastBackbone::new(&w, fovea_model::Variant::Lite0, 2).unwrap())
}

fn photo(name: &str) -> image::RgbImage {
    let dir = fovea_model::fetch::ensure_sample_photos(&fovea_model::fovea_home()).unwrap();
    fovea_vision::decode_file(&dir.join(name), &Default::default()).unwrap()
}

fn png(img: &image::RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// A crop of a photo: a "similar image" that is not byte-identical.
fn crop(img: &image::RgbImage, k: u32) -> Vec<u8> {
    let (w, h) = (img.width() * (85 - k) / 100, img.height() * (85 - k) / 100);
    png(&image::imageops::crop_imm(img, k * 9, k * 6, w, h).to_image())
}

struct Server {
    router: axum::Router,
    app: Arc<App>,
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let cfg = AppConfig { data_dir: dir.path().to_owned(), ..Default::default() };
    let app = App::open(cfg, backbone()).await.unwrap();
    Server { router: fovea_server::create_app(app.clone(), false), app, _dir: dir }
}

async fn call(router: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn upload(token: Option<&str>, bytes: Vec<u8>) -> Request<Body> {
    let mut b = Request::post("/api/v1/classify").header("content-type", "application/octet-stream");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(bytes)).unwrap()
}

fn label(token: &str, image: &str, class: &str) -> Request<Body> {
    Request::post(format!("/api/v1/images/{image}/label"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(json!({ "class": class }).to_string()))
        .unwrap()
}

fn post_json(token: &str, uri: &str, body: Value) -> Request<Body> {
    Request::post(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get(token: &str, uri: &str) -> Request<Body> {
    Request::get(uri).header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn correcting_to_a_new_class_changes_the_next_prediction() {
    let s = server().await;
    let (_, admin) = s.app.add_user("ada", Role::Admin).await.unwrap();
    let cat = photo("chelsea.png");
    let coffee = photo("coffee.png");

    let (st, first) = call(&s.router, upload(Some(&admin), crop(&cat, 0))).await;
    assert_eq!(st, StatusCode::OK, "{first}");
    assert_eq!(first["top"], json!([]), "a fresh model knows no classes");
    assert_eq!(first["unknown"], true);
    let cat_id = first["image_id"].as_str().unwrap().to_owned();

    let (st, learned) = call(&s.router, label(&admin, &cat_id, "my cat")).await;
    assert_eq!(st, StatusCode::OK, "{learned}");
    assert_eq!(learned["created_class"], true);
    assert_eq!(learned["prediction"]["top"][0]["class"], "my cat");

    let (_, c) = call(&s.router, upload(Some(&admin), crop(&coffee, 0))).await;
    call(&s.router, label(&admin, c["image_id"].as_str().unwrap(), "coffee")).await;

    // A different crop of each photo is now recognised, with no retraining.
    let (_, again) = call(&s.router, upload(Some(&admin), crop(&cat, 5))).await;
    assert_eq!(again["top"][0]["class"], "my cat", "{again}");
    let (_, again) = call(&s.router, upload(Some(&admin), crop(&coffee, 5))).await;
    assert_eq!(again["top"][0]["class"], "coffee", "{again}");
    assert_ne!(again["model_version"], first["model_version"]);

    let (_, classes) = call(&s.router, get(&admin, "/api/v1/classes")).await;
    let names: Vec<&str> = classes["classes"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"my cat") && names.contains(&"coffee") && names.contains(&"Unknown"), "{classes}");
    let (_, imgs) = call(&s.router, get(&admin, "/api/v1/images?class=coffee")).await;
    assert_eq!(imgs["total"], 1);
    let (_, tx) = call(&s.router, get(&admin, "/api/v1/transactions?limit=100")).await;
    assert_eq!(tx["transactions"].as_array().unwrap().len(), 6, "4 predictions + 2 corrections are logged");
}

#[tokio::test]
async fn every_route_checks_the_callers_role() {
    let s = server().await;
    let (_, viewer) = s.app.add_user("vic", Role::Viewer).await.unwrap();
    let (_, annotator) = s.app.add_user("ann", Role::Annotator).await.unwrap();
    let (_, admin) = s.app.add_user("adm", Role::Admin).await.unwrap();
    let img = crop(&photo("rocket.jpg"), 0);

    let (st, body) = call(&s.router, upload(None, img.clone())).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(call(&s.router, upload(Some("fv_wrong"), img.clone())).await.0, StatusCode::UNAUTHORIZED);

    let (st, c) = call(&s.router, upload(Some(&viewer), img.clone())).await;
    assert_eq!(st, StatusCode::OK);
    let id = c["image_id"].as_str().unwrap().to_owned();
    for uri in ["/api/v1/classes", "/api/v1/images", "/api/v1/transactions", "/api/v1/me"] {
        assert_eq!(call(&s.router, get(&viewer, uri)).await.0, StatusCode::OK, "{uri}");
    }
    let res = s.router.clone().oneshot(get(&viewer, &format!("/api/v1/images/{id}/blob"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (st, body) = call(&s.router, label(&viewer, &id, "rocket")).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(call(&s.router, label(&annotator, &id, "rocket")).await.0, StatusCode::OK);

    // Annotators create classes (a label with a new name does the same); renaming and merging stay admin's.
    let new_class = |t: &str, name: &str| {
        Request::post("/api/v1/classes")
            .header("authorization", format!("Bearer {t}"))
            .header("content-type", "application/json")
            .body(Body::from(json!({ "name": name }).to_string()))
            .unwrap()
    };
    assert_eq!(call(&s.router, new_class(&viewer, "boat")).await.0, StatusCode::FORBIDDEN);
    let (st, boat) = call(&s.router, new_class(&annotator, "boat")).await;
    assert_eq!(st, StatusCode::CREATED, "{boat}");
    assert_eq!(call(&s.router, new_class(&admin, "boat")).await.0, StatusCode::CONFLICT);
    let (st, _) = call(&s.router, new_class(&admin, "plane")).await;
    assert_eq!(st, StatusCode::CREATED);
    let with_body = |method: &str, uri: String, t: &str, body: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {t}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let rename = |t: &str| with_body("PATCH", format!("/api/v1/classes/{}", boat["id"]), t, r#"{"name":"ship"}"#);
    let merge = |t: &str| with_body("POST", format!("/api/v1/classes/{}/merge", boat["id"]), t, r#"{"into":"rocket"}"#);
    for who in [&viewer, &annotator] {
        assert_eq!(call(&s.router, rename(who)).await.0, StatusCode::FORBIDDEN);
        assert_eq!(call(&s.router, merge(who)).await.0, StatusCode::FORBIDDEN);
    }
    let (_, classes) = call(&s.router, get(&admin, "/api/v1/classes")).await;
    assert!(classes["classes"].as_array().unwrap().iter().any(|c| c["name"] == "boat"), "a refused rename renamed");
    assert_eq!(call(&s.router, rename(&admin)).await.0, StatusCode::NO_CONTENT);
    let (st, merged) = call(&s.router, merge(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{merged}");
    assert_eq!(merged["into"], "rocket");
    // The merge can be undone, once, by an admin: "ship" is back with its image.
    let undo = |t: &str| with_body("POST", format!("/api/v1/classes/merges/{}/undo", merged["merge_id"]), t, "");
    assert_eq!(call(&s.router, undo(&annotator)).await.0, StatusCode::FORBIDDEN);
    let (st, back) = call(&s.router, undo(&admin)).await;
    assert_eq!(st, StatusCode::OK, "{back}");
    assert_eq!(back["class"], "ship");
    let (_, classes) = call(&s.router, get(&admin, "/api/v1/classes")).await;
    let ship = classes["classes"].as_array().unwrap().iter().find(|c| c["name"] == "ship").unwrap().clone();
    assert_eq!(ship["id"], boat["id"]);
    assert_eq!(call(&s.router, undo(&admin)).await.0, StatusCode::BAD_REQUEST);
    let bogus = with_body("POST", "/api/v1/classes/merges/abc/undo".into(), &admin, "");
    assert_eq!(call(&s.router, bogus).await.0, StatusCode::BAD_REQUEST);

    // `?token=` works only where an <img> tag needs it: GET of an image's bytes. Anywhere else it is ignored.
    let bare = |method: &str, uri: String| Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
    let res = s.router.clone().oneshot(bare("GET", format!("/api/v1/images/{id}/blob?token={viewer}"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = s.router.clone().oneshot(bare("GET", format!("/api/v1/images/{id}/blob?token=fv_wrong"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    for uri in ["/api/v1/classes", "/api/v1/me", "/api/v1/transactions", "/api/v1/images"] {
        let (st, _) = call(&s.router, bare("GET", format!("{uri}?token={admin}"))).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{uri} accepted a query token");
    }
    let by_query = Request::post(format!("/api/v1/images/{id}/label?token={admin}"))
        .header("content-type", "application/json")
        .body(Body::from(r#"{"class":"boat"}"#))
        .unwrap();
    assert_eq!(call(&s.router, by_query).await.0, StatusCode::UNAUTHORIZED);
    let by_query = Request::post(format!("/api/v1/classes?token={admin}"))
        .header("content-type", "application/json")
        .body(Body::from(r#"{"name":"kite"}"#))
        .unwrap();
    assert_eq!(call(&s.router, by_query).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&s.router, get(&admin, "/healthz")).await.0, StatusCode::OK);
}

/// `--open` makes anonymous callers admins, so the server refuses what a hostile web page could make a browser send:
/// requests addressed to another host name (DNS rebinding) and cross-site writes.
#[tokio::test]
async fn open_mode_refuses_rebound_hosts_and_cross_site_writes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = AppConfig { data_dir: dir.path().to_owned(), ..Default::default() };
    let app = App::open(cfg, backbone()).await.unwrap();
    let router = fovea_server::create_app(app, true);
    let req = |method: &str, uri: &str, headers: &[(&str, &str)], json: Option<&str>| {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        match json {
            Some(j) => b.header("content-type", "application/json").body(Body::from(j.to_owned())).unwrap(),
            None => b.body(Body::empty()).unwrap(),
        }
    };
    let host = ("host", "127.0.0.1:8080");
    assert_eq!(call(&router, req("GET", "/api/v1/me", &[host], None)).await.0, StatusCode::OK);
    assert_eq!(call(&router, req("GET", "/api/v1/me", &[("host", "localhost:8080")], None)).await.0, StatusCode::OK);
    let (st, body) = call(&router, req("GET", "/api/v1/me", &[("host", "evil.example:8080")], None)).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "a rebound host name was served");
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(call(&router, req("GET", "/", &[("host", "evil.example")], None)).await.0, StatusCode::FORBIDDEN);

    let class = Some(r#"{"name":"boat"}"#);
    for cross in [[("origin", "http://evil.example")], [("sec-fetch-site", "cross-site")], [("origin", "null")]] {
        let headers = [host, cross[0]];
        let (st, body) = call(&router, req("POST", "/api/v1/classes", &headers, class)).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{cross:?}: {body}");
    }
    // A cross-site form post of an image is refused too; the same page's own fetch, and curl, are served.
    let form = req("POST", "/api/v1/classify", &[host, ("origin", "http://evil.example")], None);
    assert_eq!(call(&router, form).await.0, StatusCode::FORBIDDEN);
    let same = [host, ("origin", "http://127.0.0.1:8080"), ("sec-fetch-site", "same-origin")];
    assert_eq!(call(&router, req("POST", "/api/v1/classes", &same, class)).await.0, StatusCode::CREATED);
    let curl = req("POST", "/api/v1/classes", &[host], Some(r#"{"name":"kite"}"#));
    assert_eq!(call(&router, curl).await.0, StatusCode::CREATED);
    // Only the two allowed writes happened (plus the built-in Unknown class).
    let (_, classes) = call(&router, req("GET", "/api/v1/classes", &[host], None)).await;
    assert_eq!(classes["classes"].as_array().unwrap().len(), 3, "{classes}");
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_the_server_stays_healthy() {
    let s = server().await;
    let (_, t) = s.app.add_user("t", Role::Admin).await.unwrap();
    let good = png(&photo("coffee.png"));
    let tiny = png(&image::RgbImage::new(1, 1));
    let mut huge_header = good[..33].to_vec(); // PNG signature + IHDR, then claim 100000 x 100000 pixels
    huge_header[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    huge_header[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&huge_header[12..29]); // a valid IHDR checksum: the header must be believed, not rejected as corrupt
    huge_header[29..33].copy_from_slice(&crc.to_be_bytes());
    huge_header.extend_from_slice(&good[33..]); // the rest of a complete file, so only the dimensions are wrong
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        ("zero bytes", vec![], StatusCode::UNPROCESSABLE_ENTITY, "empty"),
        ("text", b"hello, not an image".to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_an_image"),
        ("truncated", good[..good.len() / 2].to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "truncated"),
        ("1x1", tiny, StatusCode::UNPROCESSABLE_ENTITY, "too_small"),
        ("bomb", huge_header, StatusCode::PAYLOAD_TOO_LARGE, "too_many_pixels"),
    ];
    for (what, bytes, status, code) in cases {
        let (st, body) = call(&s.router, upload(Some(&t), bytes)).await;
        assert_eq!((st, body["error"]["code"].as_str()), (status, Some(code)), "{what}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    let (st, _) = call(&s.router, label(&t, "0000", "x")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let garbage = Request::post("/api/v1/images/abc/label")
        .header("authorization", format!("Bearer {t}"))
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    assert_eq!(call(&s.router, garbage).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(call(&s.router, get(&t, "/api/v1/images?min_conf=7")).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(call(&s.router, get(&t, "/api/v1/images?sort=sideways")).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(call(&s.router, get(&t, "/api/v1/images?sort=lowest_confidence")).await.0, StatusCode::OK);
    let (st, ok) = call(&s.router, upload(Some(&t), good)).await;
    assert_eq!(st, StatusCode::OK, "still healthy after bad input: {ok}");
}

#[tokio::test]
async fn a_restarted_app_predicts_exactly_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = AppConfig { data_dir: dir.path().to_owned(), snapshot_every: 2, ..Default::default() };
    let probe = crop(&photo("rocket.jpg"), 3);
    let before = {
        let app = App::open(cfg.clone(), backbone()).await.unwrap();
        for (i, (file, class)) in
            [("chelsea.png", "cat"), ("coffee.png", "coffee"), ("rocket.jpg", "rocket")].iter().enumerate()
        {
            let out = app.classify(crop(&photo(file), i as u32).into(), "t").await.unwrap();
            app.label(&out.image_id, class, "t", fovea_store::LabelOrigin::Human).await.unwrap();
        }
        // No clean shutdown: the third label is only in the log, not in a snapshot.
        app.classify(probe.clone().into(), "t").await.unwrap()
    };
    let app = App::open(cfg, backbone()).await.unwrap();
    let after = app.classify(probe.into(), "t").await.unwrap();
    assert_eq!(after.model_version, before.model_version);
    assert_eq!(after.top.len(), before.top.len());
    for (a, b) in after.top.iter().zip(&before.top) {
        assert_eq!(a.class, b.class);
        assert!((a.probability - b.probability).abs() < 1e-9, "{} vs {}", a.probability, b.probability);
    }
}

fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

#[tokio::test]
async fn every_common_format_and_pixel_layout_is_classified() {
    use image::{DynamicImage, ImageFormat};
    let s = server().await;
    let (_, t) = s.app.add_user("t", Role::Viewer).await.unwrap();
    let rgb = DynamicImage::ImageRgb8(image::imageops::thumbnail(&photo("coffee.png"), 120, 80));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("16-bit PNG", encode(DynamicImage::ImageRgb16(rgb.to_rgb16()), ImageFormat::Png)),
        ("RGBA PNG", encode(DynamicImage::ImageRgba8(rgb.to_rgba8()), ImageFormat::Png)),
        ("gray PNG", encode(DynamicImage::ImageLuma8(rgb.to_luma8()), ImageFormat::Png)),
        ("JPEG", encode(rgb.clone(), ImageFormat::Jpeg)),
        ("GIF", encode(DynamicImage::ImageRgba8(rgb.to_rgba8()), ImageFormat::Gif)),
        ("WebP", encode(rgb.clone(), ImageFormat::WebP)),
        ("BMP", encode(rgb.clone(), ImageFormat::Bmp)),
        ("TIFF", encode(rgb.clone(), ImageFormat::Tiff)),
        ("CMYK JPEG", include_bytes!("../../fovea-vision/tests/data/cmyk.jpg").to_vec()),
    ];
    for (what, bytes) in cases {
        let (st, body) = call(&s.router, upload(Some(&t), bytes)).await;
        assert_eq!(st, StatusCode::OK, "{what}: {body}");
        assert!(body["width"].as_u64().unwrap() > 0, "{what}");
    }
    // Content decides, never the name: a JPEG uploaded as "photo.png" in a multipart form.
    let jpeg = encode(rgb, ImageFormat::Jpeg);
    let boundary = "fovea-test-boundary";
    let mut form = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"image\"; filename=\"photo.png\"\r\ncontent-type: image/png\r\n\r\n"
    )
    .into_bytes();
    form.extend(&jpeg);
    form.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    let req = Request::post("/api/v1/classify")
        .header("authorization", format!("Bearer {t}"))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(Body::from(form))
        .unwrap();
    let (st, body) = call(&s.router, req).await;
    assert_eq!(st, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_exif_rotated_photo_is_turned_upright_before_it_is_classified() {
    use image::{DynamicImage, ImageFormat};
    let s = server().await;
    let (_, t) = s.app.add_user("t", Role::Viewer).await.unwrap();
    let upright = image::imageops::thumbnail(&photo("chelsea.png"), 160, 106);
    // Stored sideways with orientation 6 ("rotate 90° clockwise to view"), as phones do.
    let sideways = image::imageops::rotate270(&upright);
    let tagged =
        fovea_vision::fixtures::with_exif_orientation(&encode(DynamicImage::ImageRgb8(sideways), ImageFormat::Jpeg), 6);
    let (st, rotated) = call(&s.router, upload(Some(&t), tagged)).await;
    assert_eq!(st, StatusCode::OK, "{rotated}");
    assert_eq!((rotated["width"].as_u64(), rotated["height"].as_u64()), (Some(160), Some(106)), "{rotated}");
    let (_, direct) =
        call(&s.router, upload(Some(&t), encode(DynamicImage::ImageRgb8(upright), ImageFormat::Jpeg))).await;
    assert_eq!(rotated["top"][0]["class"], direct["top"][0]["class"], "{rotated} vs {direct}");
}

#[tokio::test]
async fn openapi_document_is_generated_from_the_routes() {
    let s = server().await;
    let res = s.router.clone().oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (path, method) in [
        ("/api/v1/classify", "post"),
        ("/api/v1/images/{id}/label", "post"),
        ("/api/v1/images", "get"),
        ("/api/v1/classes", "get"),
        ("/api/v1/transactions", "get"),
        ("/api/v1/models", "get"),
        ("/api/v1/models/{id}/promote", "post"),
        ("/api/v1/train", "post"),
        ("/api/v1/jobs/{id}", "get"),
        ("/healthz", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} missing");
    }
    let schemas = &doc["components"]["schemas"];
    for name in ["ClassifyOutcome", "LabelOutcome", "ClassView", "ErrorBody", "TransactionRecord"] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    assert!(schemas["ClassifyOutcome"]["properties"]["top"].is_object());
}

fn send(method: &str, token: &str, uri: &str, json: Option<&str>) -> Request<Body> {
    let b = Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {token}"));
    let b = if json.is_some() { b.header("content-type", "application/json") } else { b };
    b.body(json.map_or_else(Body::empty, |j| Body::from(j.to_owned()))).unwrap()
}

#[tokio::test]
async fn models_and_training_jobs_are_exposed_with_roles_and_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let weights = fovea_model::ensure_weights(&fovea_model::fovea_home(), fovea_model::Variant::Lite0).unwrap();
    let cfg = AppConfig { data_dir: dir.path().to_owned(), base_weights: Some(weights), ..Default::default() };
    let app = App::open(cfg, backbone()).await.unwrap();
    let router = fovea_server::create_app(app.clone(), false);
    let mut tokens = Vec::new();
    for (name, role) in [("vic", Role::Viewer), ("ann", Role::Annotator), ("adm", Role::Admin)] {
        tokens.push(app.add_user(name, role).await.unwrap().1);
    }
    let (viewer, annotator, admin) = (&tokens[0], &tokens[1], &tokens[2]);
    let base = app.served_model().await;

    for t in [viewer, annotator, admin] {
        for uri in ["/api/v1/models".to_owned(), format!("/api/v1/models/{base}"), "/api/v1/jobs".to_owned()] {
            assert_eq!(call(&router, get(t, &uri)).await.0, StatusCode::OK, "{uri}");
        }
    }
    let (_, page) = call(&router, get(viewer, "/api/v1/models")).await;
    assert_eq!(page["served"], base.as_str());
    assert_eq!(page["models"][0]["status"], "promoted", "{page}");
    let promote = format!("/api/v1/models/{base}/promote");
    for t in [viewer, annotator] {
        for (uri, body) in [("/api/v1/train", Some("{}")), (&promote, None), ("/api/v1/models/rollback", None)] {
            let (st, err) = call(&router, send("POST", t, uri, body)).await;
            assert_eq!((st, err["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{uri}");
        }
        assert_eq!(call(&router, send("POST", t, "/api/v1/jobs/1/cancel", None)).await.0, StatusCode::FORBIDDEN);
    }

    let train = |body: &str| send("POST", admin, "/api/v1/train", Some(body));
    let bad = [
        (train(r#"{"epochs":3,"colour":"red"}"#), StatusCode::BAD_REQUEST, "unknown field"),
        (train(r#"{"cutoff":2}"#), StatusCode::BAD_REQUEST, "throw-away"),
        (train(r#"{"policy":"stem=melt"}"#), StatusCode::BAD_REQUEST, "melt"),
        (train(r#"{"epochs":0}"#), StatusCode::BAD_REQUEST, "epochs"),
        (get(admin, "/api/v1/models/nope"), StatusCode::NOT_FOUND, "nope"),
        (send("POST", admin, "/api/v1/models/nope/promote", None), StatusCode::NOT_FOUND, "nope"),
        (send("POST", admin, "/api/v1/models/rollback", None), StatusCode::BAD_REQUEST, "no parent"),
        (get(admin, "/api/v1/jobs/999"), StatusCode::NOT_FOUND, "999"),
        (get(admin, "/api/v1/jobs/abc"), StatusCode::BAD_REQUEST, "not a job id"),
        (send("POST", admin, "/api/v1/jobs/999/cancel", None), StatusCode::NOT_FOUND, "999"),
    ];
    for (req, status, says) in bad {
        let what = format!("{} {}", req.method(), req.uri());
        let (st, body) = call(&router, req).await;
        assert_eq!(st, status, "{what}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(says), "{what}: {body}");
    }

    // No worker runs in-process, so the job stays queued until it is cancelled.
    let (st, job) = call(&router, train(r#"{"throw_away":true,"cutoff":5,"epochs":2}"#)).await;
    assert_eq!((st, job["state"].as_str()), (StatusCode::ACCEPTED, Some("queued")), "{job}");
    let id = job["id"].as_i64().unwrap();
    let (_, list) = call(&router, get(viewer, "/api/v1/jobs")).await;
    assert!(list["jobs"].as_array().unwrap().iter().any(|j| j["id"] == id && j["state"] == "queued"), "{list}");
    let cancel = format!("/api/v1/jobs/{id}/cancel");
    let (st, done) = call(&router, send("POST", admin, &cancel, None)).await;
    assert_eq!((st, done["state"].as_str()), (StatusCode::OK, Some("cancelled")), "{done}");
    assert_eq!(call(&router, get(viewer, &format!("/api/v1/jobs/{id}"))).await.1["state"], "cancelled");
    assert_eq!(call(&router, send("POST", admin, &cancel, None)).await.0, StatusCode::CONFLICT);

    let (st, served) = call(&router, send("POST", admin, &promote, None)).await;
    assert_eq!((st, served["status"].as_str()), (StatusCode::OK, Some("promoted")), "{served}");
    assert_eq!(app.served_model().await, base);
}

#[tokio::test]
async fn a_due_training_schedule_queues_a_run_that_the_worker_runs() {
    let s = server().await;
    let worker = s.app.spawn_worker(fovea_app::parse_schedule("weekly").unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let job = loop {
        let jobs = s.app.jobs(10).await.unwrap();
        if let Some(j) = jobs.iter().find(|j| j.state.is_terminal()) {
            break j.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no scheduled run finished: {jobs:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    worker.abort();
    // Nothing is labelled, so the scheduled run fails cleanly, and says why; serving is untouched.
    assert_eq!(job.kind, fovea_app::TRAIN_JOB);
    assert_eq!(job.state, fovea_app::JobState::Failed);
    assert!(job.message.as_deref().unwrap_or("").contains("not enough data"), "{job:?}");
    assert_eq!(s.app.served_model().await, s.app.base_model_id());
    // The schedule is not due again right away: exactly one run was queued.
    assert_eq!(s.app.jobs(10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_storage_failure_is_a_5xx_that_names_no_internal_path() {
    let s = server().await;
    let (_, t) = s.app.add_user("t", Role::Admin).await.unwrap();
    let data = s._dir.path().to_str().unwrap().to_owned();
    // The blob folder turned into a file: every write of new image bytes now fails on the server's side.
    let blobs = s._dir.path().join("blobs");
    std::fs::remove_dir_all(&blobs).unwrap();
    std::fs::write(&blobs, b"not a folder").unwrap();
    let (st, body) = call(&s.router, upload(Some(&t), crop(&photo("coffee.png"), 0))).await;
    assert!(st.is_server_error(), "{st}: {body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(!message.is_empty(), "{body}");
    assert!(!message.contains(&data) && !message.contains("blobs") && !message.contains('/'), "{body}");
    // The caller's own mistakes are still 4xx, with the message that tells them what to fix.
    let (st, body) = call(&s.router, upload(Some(&t), b"hello, not an image".to_vec())).await;
    assert_eq!((st, body["error"]["code"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("not_an_image")));
    assert_eq!(call(&s.router, get(&t, "/healthz")).await.0, StatusCode::OK);
}

#[path = "integration/bounded.rs"]
mod bounded;
#[path = "integration/collections.rs"]
mod collections;
#[path = "integration/duplicates.rs"]
mod duplicates;
#[path = "integration/hygiene.rs"]
mod hygiene;
#[path = "integration/insight.rs"]
mod insight;
#[path = "integration/review.rs"]
mod review;

#[tokio::test]
async fn a_classify_says_where_its_time_went_in_server_timing() {
    let s = server().await;
    let (_, t) = s.app.add_user("t", Role::Viewer).await.unwrap();
    let timed = |bytes: Vec<u8>| {
        let router = s.router.clone();
        let req = upload(Some(&t), bytes);
        async move {
            let res = router.oneshot(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let header = res.headers().get("server-timing").expect("a Server-Timing header").to_str().unwrap();
            let stages: std::collections::HashMap<String, f64> =
                fovea_app::read_server_timing(header).into_iter().collect();
            stages
        }
    };
    let cat = photo("chelsea.png");
    let first = timed(crop(&cat, 0)).await;
    let names = ["decode", "network", "wait", "store", "predict", "commit", "total"];
    assert_eq!(first.len(), names.len(), "{first:?}");
    for name in names {
        assert!(first[name] >= 0.0 && first[name].is_finite(), "{name}: {first:?}");
    }
    // The request's own stages follow one another inside the total; the store runs beside decode and network.
    let path: f64 = ["decode", "network", "wait", "predict", "commit"].iter().map(|n| first[*n]).sum();
    assert!(path <= first["total"] + 1e-3, "{first:?}");
    assert!(first["store"] <= first["total"] + 1e-3, "{first:?}");
    assert!(first["decode"] > 0.0 && first["network"] > 0.0 && first["commit"] > 0.0, "{first:?}");
    // The same bytes again: the embedding comes from the cache, so no network pass is waited for.
    let again = timed(crop(&cat, 0)).await;
    assert_eq!(again["network"], 0.0, "a cache hit ran the network: {again:?} after {first:?}");
}
