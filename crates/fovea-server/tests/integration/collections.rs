//! Collections over HTTP in-process: uploads and a server folder identified, the results browser's filters, bulk
//! actions with undo, coverage, thumbnails, and clear 4xx answers to bad input.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fovea_app::{App, AppConfig, Role};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{backbone, call, crop, get, label, photo, png, post_json, upload};

fn post_bytes(token: &str, uri: &str, bytes: Vec<u8>) -> Request<Body> {
    Request::post(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/octet-stream")
        .body(Body::from(bytes))
        .unwrap()
}

#[tokio::test]
async fn collections_filters_bulk_actions_and_undo_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let app =
        App::open(AppConfig { data_dir: dir.path().join("data"), ..Default::default() }, backbone()).await.unwrap();
    let router = fovea_server::create_app(app.clone(), false);
    let (_, admin) = app.add_user("ada", Role::Admin).await.unwrap();
    let (_, annotator) = app.add_user("ann", Role::Annotator).await.unwrap();
    let (_, viewer) = app.add_user("vic", Role::Viewer).await.unwrap();

    // Teach three classes with two crops each.
    let photos = [("chelsea.png", "cat"), ("coffee.png", "coffee"), ("rocket.jpg", "rocket")];
    for (file, class) in photos {
        let img = photo(file);
        for k in [0, 2] {
            let (st, v) = call(&router, upload(Some(&annotator), crop(&img, k))).await;
            assert_eq!(st, StatusCode::OK, "{v}");
            let (st, v) = call(&router, label(&annotator, v["image_id"].as_str().unwrap(), class)).await;
            assert_eq!(st, StatusCode::OK, "{v}");
        }
    }

    // Files uploaded into an upload collection, three new crops of each photo.
    let (st, started) = call(&router, post_json(&annotator, "/api/v1/collections", json!({"name": "batch"}))).await;
    assert_eq!(st, StatusCode::CREATED, "{started}");
    let id = started["collection"]["id"].as_i64().unwrap();
    assert!(started["job"].is_null());
    for (file, _) in photos {
        let img = photo(file);
        for k in [4, 6, 8] {
            let uri = format!("/api/v1/collections/{id}/images?name={file}");
            let (st, item) = call(&router, post_bytes(&annotator, &uri, crop(&img, k))).await;
            assert_eq!(st, StatusCode::OK, "{item}");
            assert!(item["top_k"][0]["probability"].as_f64().unwrap() > 0.0, "{item}");
        }
    }
    let (st, v) =
        call(&router, post_bytes(&annotator, &format!("/api/v1/collections/{id}/images"), b"nope".to_vec())).await;
    assert!(st.is_client_error(), "not an image: {st} {v}");
    let results = |q: &str| get(&viewer, &format!("/api/v1/results?collection={id}{q}"));
    let (st, all) = call(&router, results("")).await;
    assert_eq!(st, StatusCode::OK, "{all}");
    assert_eq!(all["total"], 9, "{all}");
    let (_, cats) = call(&router, results("&class=cat&labelled=false")).await;
    assert_eq!(cats["total"], 3, "crops of the cat photo are predicted cat: {cats}");
    let (_, confident) = call(&router, results("&min_conf=0.0&max_conf=1.0&sort=lowest_confidence&limit=2")).await;
    assert_eq!(confident["items"].as_array().unwrap().len(), 2);
    let p = |v: &Value, i: usize| v["items"][i]["top_k"][0]["probability"].as_f64().unwrap();
    assert!(p(&confident, 0) <= p(&confident, 1), "lowest first: {confident}");
    let (st, pairs) = call(&router, get(&viewer, &format!("/api/v1/collections/{id}/pairs?max_margin=1"))).await;
    assert_eq!(st, StatusCode::OK, "{pairs}");
    assert!(!pairs.as_array().unwrap().is_empty(), "every result has a runner-up: {pairs}");

    let coverage = |class: &'static str| {
        let router = router.clone();
        let viewer = viewer.clone();
        async move {
            let (_, rows) = call(&router, get(&viewer, "/api/v1/coverage")).await;
            rows.as_array().unwrap().iter().find(|r| r["class"] == class).cloned().unwrap()
        }
    };
    let cat = coverage("cat").await;
    assert_eq!((cat["labelled"].as_u64(), cat["candidates"].as_u64()), (Some(2), Some(3)), "{cat}");

    // Accept every matching result in one action, then undo it as a whole.
    let accept = json!({"action": "accept", "filter": {"collection": id, "class": "cat", "labelled": false}});
    let (st, viewer_try) = call(&router, post_json(&viewer, "/api/v1/bulk", accept.clone())).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{viewer_try}");
    let (st, action) = call(&router, post_json(&annotator, "/api/v1/bulk", accept)).await;
    assert_eq!(st, StatusCode::OK, "{action}");
    assert_eq!(action["changed"], 3);
    assert_eq!(coverage("cat").await["labelled"], 5);
    let undo_uri = format!("/api/v1/bulk/{}/undo", action["id"]);
    let (st, undo) = call(&router, post_json(&annotator, &undo_uri, json!({}))).await;
    assert_eq!(st, StatusCode::OK, "{undo}");
    assert_eq!(undo["restored"], 3);
    assert_eq!(coverage("cat").await["labelled"], 2);
    let (st, again) = call(&router, post_json(&annotator, &undo_uri, json!({}))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "undone once: {again}");

    // Tag two picked results; the tag filter finds exactly them.
    let picked = json!([{"collection": id, "seq": 0}, {"collection": id, "seq": 1}]);
    let (st, tagged) = call(
        &router,
        post_json(&annotator, "/api/v1/bulk", json!({"action": "tag", "tag": "staged", "items": picked})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{tagged}");
    let (_, staged) = call(&router, results("&tag=staged")).await;
    assert_eq!(staged["total"], 2, "{staged}");

    // Bad input gets a 4xx that says why.
    for (body, why) in [
        (json!({"action": "accept"}), "empty selection"),
        (json!({"action": "relabel", "items": [{"collection": id, "seq": 0}]}), "relabel without class"),
        (json!({"action": "tag", "tag": "two words", "items": [{"collection": id, "seq": 0}]}), "bad tag"),
        (json!({"action": "explode", "items": []}), "unknown action"),
    ] {
        let (st, v) = call(&router, post_json(&annotator, "/api/v1/bulk", body)).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{why}: {v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{why}: {v}");
    }
    for q in ["&pair=cat", "&min_conf=2", "&sort=sideways", "&collection=x"] {
        let (st, v) = call(&router, results(q)).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {v}");
    }
    let (st, _) = call(&router, post_json(&annotator, "/api/v1/bulk/999/undo", json!({}))).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = call(&router, get(&viewer, "/api/v1/collections/999")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Thumbnails: small JPEGs, a fixed set of sizes.
    let image_id = all["items"][0]["image_id"].as_str().unwrap().to_owned();
    let res = router.clone().oneshot(get(&viewer, &format!("/api/v1/images/{image_id}/thumb?size=96"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let thumb = image::load_from_memory(&bytes).unwrap();
    assert!(thumb.width().max(thumb.height()) <= 96, "{}x{}", thumb.width(), thumb.height());
    let (st, _) = call(&router, get(&viewer, &format!("/api/v1/images/{image_id}/thumb?size=50"))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // The detail view: tags, what the model said, and no label (the accept was undone).
    let (st, detail) = call(&router, get(&viewer, &format!("/api/v1/images/{image_id}"))).await;
    assert_eq!(st, StatusCode::OK, "{detail}");
    assert_eq!(detail["tags"], json!(["staged"]), "{detail}");
    assert!(detail["labels"].as_array().unwrap().is_empty(), "{detail}");
    assert_eq!(detail["transactions"][0]["kind"], "predict", "{detail}");
    assert!(detail["now"]["class"].is_string(), "{detail}");
    let (st, _) = call(&router, get(&viewer, &format!("/api/v1/images/{}", "0".repeat(64)))).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // A server folder: admins only, identified by a job.
    let folder = dir.path().join("incoming").join("deeper");
    std::fs::create_dir_all(&folder).unwrap();
    for (i, (file, _)) in photos.iter().enumerate() {
        std::fs::write(folder.join(format!("{i}.png")), png(&photo(file))).unwrap();
    }
    let body = json!({"folder": dir.path().join("incoming").to_str().unwrap()});
    let (st, v) = call(&router, post_json(&annotator, "/api/v1/collections", body.clone())).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, v) = call(&router, post_json(&admin, "/api/v1/collections", json!({"folder": "/no/such/folder"}))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, v) =
        call(&router, post_json(&admin, "/api/v1/collections", json!({"folder": "/", "model": "nope"}))).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, started) = call(&router, post_json(&admin, "/api/v1/collections", body)).await;
    assert_eq!(st, StatusCode::CREATED, "{started}");
    assert_eq!(started["job"]["kind"], "identify");
    let folder_id = started["collection"]["id"].as_i64().unwrap();
    let (job, outcome) = app.run_next_identify_job().await.unwrap().expect("the job was queued");
    assert_eq!(job.state, fovea_app::JobState::Succeeded, "{outcome:?}");
    let (_, c) = call(&router, get(&viewer, &format!("/api/v1/collections/{folder_id}"))).await;
    assert_eq!((c["processed"].as_u64(), c["total"].as_u64()), (Some(3), Some(3)), "{c}");

    // The same folder queued for import: admins only, a job a worker runs; its images are already stored.
    let body = json!({"folder": folder.to_str().unwrap(), "tags": ["batch-7"]});
    let (st, v) = call(&router, post_json(&annotator, "/api/v1/imports", body.clone())).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, v) = call(&router, post_json(&admin, "/api/v1/imports", json!({"folder": "/no/such/folder"}))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, v) = call(&router, post_json(&admin, "/api/v1/imports", json!({"folder": " "}))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, queued) = call(&router, post_json(&admin, "/api/v1/imports", body)).await;
    assert_eq!((st, queued["kind"].as_str()), (StatusCode::ACCEPTED, Some("import")), "{queued}");
    let (job, report) = app.run_next_import_job().await.unwrap().expect("the import was queued");
    let report = report.unwrap();
    assert_eq!((job.state, report.imported, report.duplicates), (fovea_app::JobState::Succeeded, 0, 3));
    assert_eq!(report.tagged, vec![("batch-7".to_owned(), 3)]);
    let reported: serde_json::Value = serde_json::from_str(job.message.as_deref().unwrap()).unwrap();
    assert_eq!(reported["duplicates"], 3, "the job's message is the import report");

    let (_, doc) = call(&router, Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    for path in ["/api/v1/results", "/api/v1/bulk", "/api/v1/collections", "/api/v1/coverage", "/api/v1/imports"] {
        assert!(doc["paths"][path].is_object(), "{path} listed in /openapi.json");
    }
}
