//! `fovea serve` as a real process: a burst of corrections cut by `kill -9`, and a bounded load test.

mod common;

use std::time::{Duration, Instant};

use common::{photo_variant, serve};

use serde_json::Value;

fn classify(base: &str, bytes: &[u8]) -> Value {
    ureq::post(&format!("{base}/api/v1/classify")).send_bytes(bytes).unwrap().into_json().unwrap()
}

#[test]
fn kill_9_during_a_burst_of_corrections_loses_no_acknowledged_label() {
    let data = tempfile::tempdir().unwrap();
    let photos = ["chelsea.png", "coffee.png", "rocket.jpg"];
    let classes = ["cat", "coffee", "rocket"];
    let server = serve(data.path());
    let mut images = Vec::new();
    for k in 0..30u32 {
        let c = classify(&server.base, &photo_variant(photos[k as usize % 3], k));
        images.push((c["image_id"].as_str().unwrap().to_owned(), classes[k as usize % 3]));
    }
    // Corrections from another thread; the server is killed while they are in flight: as soon as a few are
    // acknowledged, so the kill lands mid-burst (checked below) rather than after the last one.
    let sent = images.len();
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (base, counter) = (server.base.clone(), acked.clone());
    let burst = std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        for (id, class) in images {
            let r = ureq::post(&format!("{base}/api/v1/images/{id}/label"))
                .send_json(serde_json::json!({ "class": class }));
            match r {
                Ok(_) => acknowledged.push((id, class)),
                Err(_) => break,
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        acknowledged
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(std::sync::atomic::Ordering::SeqCst) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut server = server;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let acknowledged = burst.join().unwrap();
    eprintln!("{} of {sent} corrections acknowledged before kill -9", acknowledged.len());
    assert!(!acknowledged.is_empty(), "no correction finished before the kill; the test proves nothing");
    assert!(acknowledged.len() < sent, "every correction finished before the kill; it did not land mid-burst");

    let restarted = serve(data.path());
    for (id, class) in &acknowledged {
        let rows: Value = ureq::get(&format!("{}/api/v1/images?class={class}&limit=500", restarted.base))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        assert!(rows["images"].as_array().unwrap().iter().any(|r| r["id"] == id.as_str()), "label of {id} lost");
    }
    // The restored head answers as the labels say: a fresh variant of each photo gets its class.
    let known: std::collections::HashSet<&str> = acknowledged.iter().map(|(_, c)| *c).collect();
    for (photo, class) in photos.iter().zip(classes) {
        if known.contains(class) {
            let c = classify(&restarted.base, &photo_variant(photo, 97));
            assert_eq!(c["top"][0]["class"], class, "{c}");
        }
    }
}

#[test]
fn fifty_concurrent_clients_get_no_server_errors() {
    let data = tempfile::tempdir().unwrap();
    let server = serve(data.path());
    let bodies: Vec<Vec<u8>> = (0..8).map(|k| photo_variant(["chelsea.png", "coffee.png"][k % 2], k as u32)).collect();
    let first = classify(&server.base, &bodies[0]);
    ureq::post(&format!("{}/api/v1/images/{}/label", server.base, first["image_id"].as_str().unwrap()))
        .send_json(serde_json::json!({"class": "cat"}))
        .unwrap();
    let duration =
        Duration::from_secs(std::env::var("FOVEA_LOAD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(15));
    let deadline = Instant::now() + duration;
    let workers: Vec<_> = (0..50)
        .map(|i| {
            let base = server.base.clone();
            let body = bodies[i % bodies.len()].clone();
            std::thread::spawn(move || {
                let (mut ok, mut busy, mut server_errors, mut lat) = (0u32, 0u32, 0u32, Vec::new());
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match ureq::post(&format!("{base}/api/v1/classify"))
                        .timeout(Duration::from_secs(60))
                        .send_bytes(&body)
                    {
                        Ok(_) => {
                            ok += 1;
                            lat.push(t.elapsed().as_secs_f64() * 1e3);
                        }
                        Err(ureq::Error::Status(429, _)) => {
                            busy += 1;
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(ureq::Error::Status(s, _)) if s >= 500 => server_errors += 1,
                        Err(e) => panic!("request failed: {e}"),
                    }
                }
                (ok, busy, server_errors, lat)
            })
        })
        .collect();
    let (mut ok, mut busy, mut errors, mut lat) = (0, 0, 0, Vec::new());
    for w in workers {
        let (o, b, e, l) = w.join().unwrap();
        ok += o;
        busy += b;
        errors += e;
        lat.extend(l);
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
    };
    println!(
        "load: 50 clients for {:?}: {ok} ok ({:.1}/s), {busy} told busy (429), {errors} 5xx; latency p50 {:.0} ms, p99 {:.0} ms",
        duration,
        ok as f64 / duration.as_secs_f64(),
        pct(0.5),
        pct(0.99)
    );
    assert_eq!(errors, 0, "server errors under load");
    assert!(ok > 0);
    let health: Value = ureq::get(&format!("{}/healthz", server.base)).call().unwrap().into_json().unwrap();
    assert_eq!(health["status"], "ok");
}

#[test]
fn a_config_file_sets_what_flags_and_environment_leave_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-file");
    let file = dir.path().join("fovea.toml");
    std::fs::write(&file, format!("data = {:?}\nlisten = \"127.0.0.1:0\"\ncutoff = 7\n", data.to_str().unwrap()))
        .unwrap();
    let config = file.to_str().unwrap();
    // The environment overrides the file's cutoff; the file still decides the data folder and address.
    let served = common::serve_with(&["serve", "--open", "--config", config], &[("FOVEA_CUTOFF", "9")]);
    let classes: Value = ureq::get(&format!("{}/api/v1/classes", served.base)).call().unwrap().into_json().unwrap();
    assert_eq!(classes["cutoff"], 9, "{classes}");
    assert!(std::fs::read_dir(&data).unwrap().next().is_some(), "the file's data folder was not used");
    drop(served);

    std::fs::write(&file, "cutof = 3\n").unwrap();
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_fovea")).args(["serve", "--config", config]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown setting `cutof`"), "{err}");
}
