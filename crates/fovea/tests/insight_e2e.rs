//! Reports, manual evaluations and drift with the real binary and weights: digits learned as the reference,
//! requests of the same digits (no alert) and then of photos (an alert, a webhook POST, Prometheus counters);
//! the report's figures checked against what the test itself did; an evaluation round answered with the
//! truth and its estimate checked against the true accuracy; `fovea report` and `fovea eval drift` as a user
//! runs them.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::{ok, photo_variant, serve_with};
use serde_json::{json, Value};

/// `(path, class)` of an ImageFolder, interleaving classes as requests would arrive.
fn interleaved(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut per: Vec<Vec<(PathBuf, String)>> = Vec::new();
    let mut classes: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    classes.sort();
    for c in classes {
        let name = c.file_name().unwrap().to_str().unwrap().to_owned();
        let mut files: Vec<_> = std::fs::read_dir(&c).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        per.push(files.into_iter().map(|f| (f, name.clone())).collect());
    }
    let longest = per.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest).flat_map(|i| per.iter().filter_map(move |v| v.get(i).cloned())).collect()
}

/// One HTTP request received on 127.0.0.1, answered 200; its body comes out of the channel.
fn webhook_listener() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
            let _ = tx.send(String::from_utf8(body).unwrap());
        }
    });
    (url, rx)
}

fn classify(base: &str, bytes: &[u8]) -> Value {
    ureq::post(&format!("{base}/api/v1/classify")).send_bytes(bytes).unwrap().into_json().unwrap()
}

fn get(base: &str, path: &str) -> Value {
    ureq::get(&format!("{base}/api/v1{path}")).call().unwrap().into_json().unwrap()
}

fn status_of(r: Result<ureq::Response, ureq::Error>) -> u16 {
    match r {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn reports_evaluations_and_a_drift_alert_through_the_running_server() {
    let root = tempfile::tempdir().unwrap();
    common::digits(root.path(), 10, 8, 5);
    let data = root.path().join("data");
    let data_s = data.to_str().unwrap();
    let train = root.path().join("train");
    ok(&Command::new(env!("CARGO_BIN_EXE_fovea"))
        .args(["import", "--data", data_s, "--labelled", train.to_str().unwrap()])
        .output()
        .unwrap());
    let (hook, bodies) = webhook_listener();
    let server = serve_with(
        &["serve", "--open", "--listen", "127.0.0.1:0", "--data", data_s, "--drift-window", "40"],
        &[("FOVEA_DRIFT_WEBHOOK", hook.as_str())],
    );
    let base = server.base.clone();

    // Requests from the reference domain: digits the model never learned.
    let mut truth: HashMap<String, String> = HashMap::new();
    let mut served: HashMap<String, String> = HashMap::new();
    let stream = interleaved(&root.path().join("test"));
    assert_eq!(stream.len(), 80);
    for (path, class) in &stream {
        let c = classify(&base, &std::fs::read(path).unwrap());
        let id = c["image_id"].as_str().unwrap().to_owned();
        served.insert(id.clone(), c["top"][0]["class"].as_str().unwrap().to_owned());
        truth.insert(id, class.clone());
    }
    let drift = get(&base, "/drift");
    assert_eq!(drift["reference_size"], 100, "{drift}");
    assert!(drift["scores"]["signals"].as_array().unwrap().len() >= 7, "{drift}");
    assert_eq!(get(&base, "/drift/alerts"), json!([]), "no alert on the reference domain: {drift}");

    // A person labels the first 30 with the truth: those are the judged predictions.
    let ids: Vec<String> = stream.iter().map(|(p, _)| fovea_app::sha256_hex(&std::fs::read(p).unwrap())).collect();
    let mut expected_right = 0;
    for id in &ids[..30] {
        ureq::post(&format!("{base}/api/v1/images/{id}/label")).send_json(json!({ "class": truth[id] })).unwrap();
        expected_right += usize::from(served[id] == truth[id]);
    }
    let report = get(&base, "/report");
    assert_eq!(report["usage"]["requests"], 80);
    assert_eq!(report["usage"]["corrections"], 30);
    assert_eq!(report["usage"]["labels"], 30, "imports are not human labels");
    let overall = &report["accuracy"]["overall"];
    assert_eq!((overall["n"].as_u64(), overall["hits"].as_u64()), (Some(30), Some(expected_right as u64)));
    assert!(overall["low"].as_f64().unwrap() <= overall["value"].as_f64().unwrap());
    let support: u64 =
        report["accuracy"]["by_class"].as_array().unwrap().iter().map(|c| c["support"].as_u64().unwrap()).sum();
    assert_eq!(support, 30);
    assert_eq!(report["accuracy"]["by_model_version"][0]["accuracy"]["n"], 30);
    let binned: u64 = report["accuracy"]["reliability"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["accuracy"]["n"].as_u64().unwrap())
        .sum();
    assert_eq!(binned, 30);

    // Then photos arrive: nothing like a digit.
    let photos = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png"];
    let mut first_alert = None;
    for k in 0..60u32 {
        let c = classify(&base, &photo_variant(photos[k as usize % 5], k));
        let id = c["image_id"].as_str().unwrap().to_owned();
        served.insert(id.clone(), c["top"][0]["class"].as_str().unwrap().to_owned());
        truth.insert(id, "photo".into());
        if first_alert.is_none() && !get(&base, "/drift/alerts").as_array().unwrap().is_empty() {
            first_alert = Some(k);
        }
    }
    // Checks run every 25 requests and need two in a row, so the alert comes within a window and a half; a
    // reference rebuilt in the background meanwhile (the calibration refits after the labels) may add a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while first_alert.is_none() {
        assert!(std::time::Instant::now() < deadline, "no drift alert after 60 photos: {}", get(&base, "/drift"));
        std::thread::sleep(Duration::from_millis(250));
        if !get(&base, "/drift/alerts").as_array().unwrap().is_empty() {
            first_alert = Some(60);
        }
    }
    let first = first_alert.unwrap();
    assert!(first <= 60, "the alert took {first} photos");
    let alerts = get(&base, "/drift/alerts");
    let signals: Vec<&str> = alerts.as_array().unwrap().iter().map(|a| a["signal"].as_str().unwrap()).collect();
    assert!(!signals.is_empty());
    let now = get(&base, "/drift");
    let embedding = now["scores"]["signals"].as_array().unwrap().iter().find(|s| s["signal"] == "embedding").unwrap();
    assert_eq!(embedding["exceeded"], true, "{now}");
    assert!(!alerts[0]["examples"].as_array().unwrap().is_empty());
    let posted: Value = serde_json::from_str(&bodies.recv_timeout(Duration::from_secs(20)).unwrap()).unwrap();
    assert_eq!(posted["event"], "fovea.drift_alert");
    assert!(signals.contains(&posted["alert"]["signal"].as_str().unwrap()), "{posted}");
    let metrics = ureq::get(&format!("{base}/metrics")).call().unwrap().into_string().unwrap();
    assert!(metrics.contains("fovea_drift_alerts_total"), "alert counter missing");
    assert!(metrics.contains("fovea_drift_statistic{signal=\"embedding\"}"), "gauges missing");

    // A manual evaluation round over all 140 predictions, answered with the truth.
    let round: Value = ureq::post(&format!("{base}/api/v1/evaluations"))
        .send_json(json!({ "size": 40, "days": 1 }))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(round["round"]["population"], 140);
    let items = round["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 40);
    let mut last = Value::Null;
    for item in &items {
        let id = item["image_id"].as_str().unwrap();
        let right = item["served_class"].as_str() == Some(truth[id].as_str());
        let body =
            if right { json!({ "verdict": "right" }) } else { json!({ "verdict": "wrong", "class": truth[id] }) };
        last = ureq::post(&format!("{base}/api/v1/evaluations/items/{}", item["id"]))
            .send_json(body)
            .unwrap()
            .into_json()
            .unwrap();
    }
    let true_accuracy =
        ids.iter().chain(truth.keys().filter(|k| truth[*k] == "photo")).filter(|id| served[*id] == truth[*id]).count()
            as f64
            / 140.0;
    let e = &last["estimate"];
    assert_eq!(e["answered"], 40);
    assert!(last["next"].is_null());
    let (low, high) = (e["low"].as_f64().unwrap(), e["high"].as_f64().unwrap());
    assert!(low <= true_accuracy && true_accuracy <= high, "{true_accuracy} outside [{low}, {high}]");

    // Bad input is refused with a reason, and nothing is recorded.
    let post = |path: &str, body: Value| status_of(ureq::post(&format!("{base}/api/v1{path}")).send_json(body));
    assert_eq!(post("/evaluations", json!({ "size": 0 })), 400);
    assert_eq!(post("/evaluations", json!({ "size": 5, "colour": "red" })), 400);
    let item = items[0]["id"].clone();
    assert_eq!(post(&format!("/evaluations/items/{item}"), json!({ "verdict": "maybe" })), 400);
    assert_eq!(post(&format!("/evaluations/items/{item}"), json!({ "verdict": "right", "class": "3" })), 400);
    assert_eq!(post("/evaluations/items/999999", json!({ "verdict": "skip" })), 404);
    assert_eq!(status_of(ureq::get(&format!("{base}/api/v1/evaluations/424242")).call()), 404);
    assert_eq!(status_of(ureq::get(&format!("{base}/api/v1/report?since=yesterday")).call()), 400);
    assert_eq!(get(&base, "/evaluations").as_array().unwrap().len(), 1);
    let html = ureq::get(&format!("{base}/api/v1/report.html")).call().unwrap().into_string().unwrap();
    assert!(html.contains("<svg") && html.contains("Manual evaluations") && html.contains("embedding"));
    drop(server);

    // The CLI writes the same report as files.
    let out = root.path().join("out");
    let html_path = out.join("report.html");
    std::fs::create_dir_all(&out).unwrap();
    let json_text = ok(&Command::new(env!("CARGO_BIN_EXE_fovea"))
        .args(["report", "--data", data_s, "--json", "--html", html_path.to_str().unwrap()])
        .args(["--csv", out.join("csv").to_str().unwrap()])
        .output()
        .unwrap());
    let doc: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(doc["usage"]["requests"], 140);
    assert_eq!(doc["evaluations"][0]["answered"], 40);
    assert!(std::fs::read_to_string(&html_path).unwrap().contains("Reliability"));
    let by_class = std::fs::read_to_string(out.join("csv/accuracy_by_class.csv")).unwrap();
    assert!(by_class.starts_with("class,support,predicted,precision"));
    let status = Command::new(env!("CARGO_BIN_EXE_fovea")).args(["drift", "--data", data_s]).output().unwrap();
    assert_eq!(status.status.code(), Some(1), "fovea drift exits 1 while an alert is open");
    assert!(String::from_utf8_lossy(&status.stdout).contains("ALERT"));
}

#[test]
fn eval_drift_replays_streams_after_a_reference_and_reports_the_first_alert() {
    let root = tempfile::tempdir().unwrap();
    common::digits(root.path(), 10, 8, 5);
    let photos = root.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let names = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png"];
    for k in 0..100u32 {
        std::fs::write(photos.join(format!("p{k:03}.png")), photo_variant(names[k as usize % 5], k)).unwrap();
    }
    let out = ok(&Command::new(env!("CARGO_BIN_EXE_fovea"))
        .args(["eval", "drift", "--reference", root.path().join("train").to_str().unwrap()])
        .args(["--stream", root.path().join("test").to_str().unwrap(), "--stream", photos.to_str().unwrap()])
        .args(["--window", "40", "--json"])
        .output()
        .unwrap());
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["reference"]["used"], 100);
    let streams = doc["streams"].as_array().unwrap();
    assert_eq!(streams[0]["images"], 80);
    assert_eq!(streams[0]["first_alert"], Value::Null, "false alarm on the reference domain: {}", streams[0]);
    // A fresh window is first judged at 40 requests (the window), then every 25; two checks in a row alert.
    let first = streams[1]["first_alert"].as_u64().expect("no alert on photos");
    assert_eq!(first, 64, "{}", streams[1]);
    assert!(streams[1]["signal"].is_string());
    let bad = Command::new(env!("CARGO_BIN_EXE_fovea"))
        .args(["eval", "drift", "--reference", "/nonexistent", "--stream", photos.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent"));
}
