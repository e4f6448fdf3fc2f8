//! Reports, drift and evaluation routes in-process: who may do what, and bad input refused with a reason.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fovea_app::Role;
use serde_json::{json, Value};

use super::{call, crop, get, photo, post_json as post, server};

#[tokio::test]
async fn report_drift_and_evaluation_routes_check_roles_and_input() {
    let s = server().await;
    let (_, admin) = s.app.add_user("ada", Role::Admin).await.unwrap();
    let (_, annotator) = s.app.add_user("ann", Role::Annotator).await.unwrap();
    let (_, viewer) = s.app.add_user("vic", Role::Viewer).await.unwrap();
    // Two classes learned from one photo each, then four requests.
    let (cat, coffee) = (photo("chelsea.png"), photo("coffee.png"));
    let mut ids = Vec::new();
    for bytes in [crop(&cat, 0), crop(&coffee, 0), crop(&cat, 1), crop(&cat, 2), crop(&coffee, 1), crop(&coffee, 2)] {
        let req = Request::post("/api/v1/classify")
            .header("authorization", format!("Bearer {annotator}"))
            .header("content-type", "application/octet-stream")
            .body(Body::from(bytes))
            .unwrap();
        let (st, v) = call(&s.router, req).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        ids.push(v["image_id"].as_str().unwrap().to_owned());
        if ids.len() <= 2 {
            let class = if ids.len() == 1 { "cat" } else { "coffee" };
            let label =
                post(&annotator, &format!("/api/v1/images/{}/label", ids.last().unwrap()), json!({ "class": class }));
            assert_eq!(call(&s.router, label).await.0, StatusCode::OK);
        }
    }

    // Everyone signed in reads; nobody anonymous does.
    let (st, report) = call(&s.router, get(&viewer, "/api/v1/report")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(report["usage"]["requests"], 6);
    assert_eq!(report["accuracy"]["overall"]["n"], 2, "the two labelled after their prediction");
    assert_eq!(report["usage"]["by_user"][0]["user"], "ann");
    let (st, _) = call(&s.router, Request::get("/api/v1/report").body(Body::empty()).unwrap()).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let res = tower::ServiceExt::oneshot(s.router.clone(), get(&viewer, "/api/v1/report.html")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let (st, drift) = call(&s.router, get(&viewer, "/api/v1/drift")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(drift["note"].as_str().unwrap().contains("reference"), "too few labelled images is said: {drift}");
    let (st, _) = call(&s.router, get(&viewer, "/api/v1/drift/alerts?all=true&limit=5")).await;
    assert_eq!(st, StatusCode::OK);

    // Rebuilding the reference is an admin's; starting and answering a round an annotator's.
    let (st, _) = call(&s.router, post(&annotator, "/api/v1/drift/reference", json!({}))).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = call(&s.router, post(&admin, "/api/v1/drift/reference", json!({}))).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = call(&s.router, post(&viewer, "/api/v1/evaluations", json!({ "size": 2 }))).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, round) = call(&s.router, post(&annotator, "/api/v1/evaluations", json!({ "size": 2 }))).await;
    assert_eq!(st, StatusCode::CREATED, "{round}");
    let item = round["next"]["id"].as_i64().unwrap();
    let answer = |token: &str, body: Value| post(token, &format!("/api/v1/evaluations/items/{item}"), body);
    let (st, _) = call(&s.router, answer(&viewer, json!({ "verdict": "wrong", "class": "dog" }))).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, err) = call(&s.router, answer(&annotator, json!({ "verdict": "sure" }))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(err["error"]["message"].as_str().unwrap().contains("verdict"), "{err}");
    let (st, v) = call(&s.router, answer(&annotator, json!({ "verdict": "wrong", "class": "dog" }))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["estimate"]["answered"], 1);
    assert_eq!(v["estimate"]["accuracy"], 0.0);
    // The verdict taught the model: "dog" exists now, with that image.
    let (_, classes) = call(&s.router, get(&viewer, "/api/v1/classes")).await;
    assert!(classes["classes"].as_array().unwrap().iter().any(|c| c["name"] == "dog" && c["images"] == 1));

    for (body, needle) in [
        (json!({ "size": 0 }), "1 to 500"),
        (json!({ "size": 501 }), "1 to 500"),
        (json!({ "size": 5, "days": 0 }), "days"),
        (json!({ "size": 5, "model": "no-such-model" }), "no prediction"),
        (json!({ "size": "five" }), "size"),
    ] {
        let (st, err) = call(&s.router, post(&annotator, "/api/v1/evaluations", body.clone())).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert!(err["error"]["message"].as_str().unwrap().contains(needle), "{body}: {err}");
    }
    let (st, _) = call(&s.router, get(&viewer, "/api/v1/report?since=2026-02-30")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = call(&s.router, get(&viewer, "/api/v1/evaluations/77")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Creating a class is undone by deleting it while no label has named it.
    let (st, typo) = call(&s.router, post(&annotator, "/api/v1/classes", json!({ "name": "cta" }))).await;
    assert_eq!(st, StatusCode::CREATED);
    let delete = |token: &str, id: &Value| {
        Request::delete(format!("/api/v1/classes/{id}"))
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(call(&s.router, delete(&viewer, &typo["id"])).await.0, StatusCode::FORBIDDEN);
    assert_eq!(call(&s.router, delete(&annotator, &typo["id"])).await.0, StatusCode::NO_CONTENT);
    assert_eq!(call(&s.router, delete(&annotator, &typo["id"])).await.0, StatusCode::NOT_FOUND);
    let (_, classes) = call(&s.router, get(&viewer, "/api/v1/classes")).await;
    let cat = classes["classes"].as_array().unwrap().iter().find(|c| c["name"] == "cat").unwrap().clone();
    let (st, err) = call(&s.router, delete(&annotator, &cat["id"])).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(err["error"]["message"].as_str().unwrap().contains("merge or rename"), "{err}");
}
