//! `/api/v1/hygiene/label-errors` in-process: a wrong label among crops of real photos is found, confirmed by an
//! annotator, and leaves the queue; roles and bad input answer 4xx.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fovea_app::{ImportReport, LabelOrigin, Role};

use super::{call, crop, get, photo, send, server, Server};

fn post(token: &str, uri: &str) -> Request<Body> {
    send("POST", token, uri, None)
}

#[tokio::test]
async fn a_wrong_label_is_found_confirmed_and_leaves_the_queue() {
    let Server { router, app, _dir } = server().await;
    let (_, viewer) = app.add_user("vic", Role::Viewer).await.unwrap();
    let (_, annotator) = app.add_user("ann", Role::Annotator).await.unwrap();

    let mut report = ImportReport::default();
    let mut wrong = String::new();
    for (file, class) in [("chelsea.png", "cat"), ("coffee.png", "coffee"), ("rocket.jpg", "rocket")] {
        let img = photo(file);
        for k in 0..6 {
            let bytes = crop(&img, k * 2);
            // One crop of the cat goes in as coffee: the only wrong label.
            let given = if class == "cat" && k == 3 { "coffee" } else { class };
            if given != class {
                wrong = fovea_app::sha256_hex(&bytes);
            }
            app.import_bytes(bytes.into(), "test", Some(given), &mut report).await.unwrap();
        }
    }
    assert_eq!(report.labelled, 18);

    let (st, q) = call(&router, get(&viewer, "/api/v1/hygiene/label-errors")).await;
    assert_eq!(st, StatusCode::OK, "{q}");
    assert_eq!(q["checked"], 18, "{q}");
    assert_eq!(q["items"][0]["image_id"], wrong.as_str(), "the wrong label is the most disputed: {q}");
    assert_eq!(q["items"][0]["given"], "coffee");
    assert_eq!(q["items"][0]["suggested"], "cat");
    assert_eq!(q["items"][0]["origin"], serde_json::to_value(LabelOrigin::Import).unwrap());
    assert!(q["total"].as_u64().unwrap() <= 2, "clean crops are not disputed: {q}");

    // Reading is a viewer's; searching again on demand and confirming are not.
    assert_eq!(call(&router, get(&viewer, "/api/v1/hygiene/label-errors?refresh=true")).await.0, StatusCode::FORBIDDEN);
    let confirm = format!("/api/v1/hygiene/label-errors/{wrong}/confirm");
    assert_eq!(call(&router, post(&viewer, &confirm)).await.0, StatusCode::FORBIDDEN);
    for bad in [
        "/api/v1/hygiene/label-errors?limit=0",
        "/api/v1/hygiene/label-errors?limit=501",
        "/api/v1/hygiene/label-errors?limit=x",
    ] {
        let (st, body) = call(&router, get(&viewer, bad)).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"]["message"].is_string());
    }
    let (st, _) = call(&router, post(&annotator, "/api/v1/hygiene/label-errors/not-an-id/confirm")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let missing = fovea_app::sha256_hex(b"never uploaded");
    let (st, _) = call(&router, post(&annotator, &format!("/api/v1/hygiene/label-errors/{missing}/confirm"))).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // A person looks again and keeps the label: it leaves the queue, and stays out after a fresh search.
    let (st, kept) = call(&router, post(&annotator, &confirm)).await;
    assert_eq!(st, StatusCode::OK, "{kept}");
    assert_eq!(kept["class"], "coffee");
    let (st, q) = call(&router, get(&annotator, "/api/v1/hygiene/label-errors?refresh=true")).await;
    assert_eq!(st, StatusCode::OK, "{q}");
    assert!(q["items"].as_array().unwrap().iter().all(|i| i["image_id"] != wrong.as_str()), "{q}");
    assert_eq!(q["confirmed"], 1, "{q}");

    // Relabelling it puts the new label up for judgement again (a new label row is not confirmed).
    app.label(&wrong, "cat", "ann", LabelOrigin::Human).await.unwrap();
    let (_, q) = call(&router, get(&annotator, "/api/v1/hygiene/label-errors?refresh=true")).await;
    assert!(q["items"].as_array().unwrap().iter().all(|i| i["image_id"] != wrong.as_str()), "now right: {q}");

    // No training run yet, so no leakage report; a blank or unknown run is refused with a message.
    let (st, body) = call(&router, get(&viewer, "/api/v1/hygiene/leakage")).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(call(&router, get(&viewer, "/api/v1/hygiene/leakage?model=")).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(call(&router, get(&viewer, "/api/v1/hygiene/leakage?model=ft-999")).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_images_are_offered_once_a_class_they_fit_exists() {
    let Server { router, app, _dir } = server().await;
    let (_, viewer) = app.add_user("vic", Role::Viewer).await.unwrap();
    let (_, annotator) = app.add_user("ann", Role::Annotator).await.unwrap();
    let mut report = ImportReport::default();
    let (cat, coffee, rocket) = (photo("chelsea.png"), photo("coffee.png"), photo("rocket.jpg"));
    let mut unknown_cats = Vec::new();
    for k in 0..4 {
        app.import_bytes(crop(&coffee, k * 2).into(), "test", Some("coffee"), &mut report).await.unwrap();
        app.import_bytes(crop(&rocket, k * 2).into(), "test", Some("rocket"), &mut report).await.unwrap();
        // Nobody could name the cat yet.
        let bytes = crop(&cat, k * 2);
        unknown_cats.push(fovea_app::sha256_hex(&bytes));
        app.import_bytes(bytes.into(), "test", Some("Unknown"), &mut report).await.unwrap();
    }
    let unknown_rocket = crop(&rocket, 9);
    let unknown_rocket_id = fovea_app::sha256_hex(&unknown_rocket);
    app.import_bytes(unknown_rocket.into(), "test", Some("Unknown"), &mut report).await.unwrap();

    // The classes they fit are older than their Unknown labels (rocket) or do not exist yet (cat): nothing offered.
    let (st, r) = call(&router, get(&viewer, "/api/v1/hygiene/unknown")).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["unknown_images"], 5);
    assert_eq!(r["items"], serde_json::json!([]), "{r}");

    // A person creates "cat" with one more picture of it: the Unknown cats are offered, the rocket is not.
    let mut more = ImportReport::default();
    app.import_bytes(crop(&cat, 7).into(), "test", None, &mut more).await.unwrap();
    app.label(&fovea_app::sha256_hex(&crop(&cat, 7)), "cat", "ann", LabelOrigin::Human).await.unwrap();
    let (st, r) = call(&router, get(&viewer, "/api/v1/hygiene/unknown?class=cat")).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let offered: Vec<&str> = r["items"].as_array().unwrap().iter().map(|i| i["image_id"].as_str().unwrap()).collect();
    assert!(offered.len() >= 3, "{r}");
    assert!(offered.iter().all(|id| unknown_cats.iter().any(|c| c == id)), "only the Unknown cats: {r}");
    assert!(!offered.contains(&unknown_rocket_id.as_str()));
    assert!(r["items"].as_array().unwrap().iter().all(|i| i["class"] == "cat"));

    // Keeping one Unknown takes it off the list; relabelling another does too.
    let confirm = format!("/api/v1/hygiene/label-errors/{}/confirm", offered[0]);
    assert_eq!(call(&router, post(&annotator, &confirm)).await.0, StatusCode::OK);
    app.label(offered[1], "cat", "ann", LabelOrigin::Human).await.unwrap();
    let (_, after) = call(&router, get(&viewer, "/api/v1/hygiene/unknown")).await;
    let left: Vec<&str> = after["items"].as_array().unwrap().iter().map(|i| i["image_id"].as_str().unwrap()).collect();
    assert_eq!(left.len(), offered.len() - 2, "{after}");
    assert!(!left.contains(&offered[0]) && !left.contains(&offered[1]));

    for bad in ["/api/v1/hygiene/unknown?limit=0", "/api/v1/hygiene/unknown?limit=many"] {
        assert_eq!(call(&router, get(&viewer, bad)).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(call(&router, get(&viewer, "/api/v1/hygiene/unknown?class=zebra")).await.0, StatusCode::NOT_FOUND);
    // The coverage filter for classes that depend on staged pictures checks its share too.
    assert_eq!(call(&router, get(&viewer, "/api/v1/coverage?min_staged_share=2")).await.0, StatusCode::BAD_REQUEST);
    let (st, none) = call(&router, get(&viewer, "/api/v1/coverage?min_staged_share=0.5")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(none, serde_json::json!([]), "nothing here is tagged staged");
}
