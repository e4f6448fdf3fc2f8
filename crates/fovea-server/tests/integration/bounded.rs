//! Back-pressure before a body is read, and a network that panics.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use fovea_app::{App, AppConfig, Role};
use fovea_model::{Backbone, Embedded, Variant};

use super::{call, get, png, upload};

/// A cheap network that panics while `panic` is set.
struct Flaky {
    panic: Arc<AtomicBool>,
}

impl Backbone for Flaky {
    fn variant(&self) -> Variant {
        Variant::Lite0
    }
    fn embedding_dim(&self) -> usize {
        4
    }
    fn engine(&self) -> &'static str {
        "flaky"
    }
    fn run(&self, input: &[f32], batch: usize) -> fovea_model::Result<Embedded> {
        assert!(!self.panic.load(Ordering::SeqCst), "injected failure in the network");
        let per = input.len() / batch;
        let embeddings = input.chunks(per).flat_map(|c| [c[0], c[per / 2], c[per - 1], 1.0]).collect();
        Ok(Embedded { batch, embeddings, logits: vec![0.0; batch] })
    }
}

/// A request body that never delivers a byte, and says when someone tried to read it.
struct Stalled(Arc<AtomicBool>);

impl http_body::Body for Stalled {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.0.store(true, Ordering::SeqCst);
        Poll::Pending
    }
}

fn small_png(k: u8) -> Vec<u8> {
    png(&image::RgbImage::from_fn(48, 40, |x, y| image::Rgb([k, (x * 5) as u8, (y * 6) as u8])))
}

async fn flaky_server(max_waiting: usize) -> (axum::Router, Arc<App>, String, Arc<AtomicBool>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let panic = Arc::new(AtomicBool::new(false));
    let cfg = AppConfig { data_dir: dir.path().to_owned(), max_waiting, ..Default::default() };
    let app = App::open(cfg, Box::new(Flaky { panic: panic.clone() })).await.unwrap();
    let (_, token) = app.add_user("ada", Role::Admin).await.unwrap();
    (fovea_server::create_app(app.clone(), false), app, token, panic, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_beyond_the_queue_get_429_before_their_body_is_read() {
    let (router, _app, token, _, _dir) = flaky_server(2).await;
    let stalled = |read: &Arc<AtomicBool>| {
        Request::post("/api/v1/classify")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/octet-stream")
            .body(Body::new(Stalled(read.clone())))
            .unwrap()
    };
    // Two slow uploads take both slots and sit reading their bodies.
    let reads: Vec<Arc<AtomicBool>> = (0..2).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let mut holders = Vec::new();
    for read in &reads {
        let (r, req) = (router.clone(), stalled(read));
        holders.push(tokio::spawn(async move { tower::ServiceExt::oneshot(r, req).await }));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !reads.iter().all(|r| r.load(Ordering::SeqCst)) {
        assert!(std::time::Instant::now() < deadline, "the first uploads never started reading");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A third is refused at once, without a byte of its body read.
    let third = Arc::new(AtomicBool::new(false));
    let (st, body) = tokio::time::timeout(Duration::from_secs(5), call(&router, stalled(&third)))
        .await
        .expect("a full queue must answer at once, not wait for the body");
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "overloaded");
    assert!(!third.load(Ordering::SeqCst), "the refused upload's body was read");

    // Slots free up when those uploads go away; then uploads are served again.
    for h in holders {
        h.abort();
        let _ = h.await;
    }
    let (st, body) = call(&router, upload(Some(&token), small_png(1))).await;
    assert_eq!(st, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_network_fails_its_batch_and_healthz_reports_it_until_it_recovers() {
    let (router, app, token, panic, _dir) = flaky_server(8).await;
    let (st, body) = call(&router, upload(Some(&token), small_png(1))).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, health) = call(&router, get(&token, "/healthz")).await;
    assert_eq!((st, health["status"].as_str(), health["engine"].as_str()), (StatusCode::OK, Some("ok"), Some("flaky")));

    panic.store(true, Ordering::SeqCst);
    let (st, body) = call(&router, upload(Some(&token), small_png(2))).await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let (st, health) = call(&router, get(&token, "/healthz")).await;
    assert_eq!((st, health["status"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("unhealthy")), "{health}");
    assert!(!app.compute_healthy());

    // The worker survived: once the network runs again, health comes back on its own (a probe, no traffic)...
    panic.store(false, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (st, _) = call(&router, get(&token, "/healthz")).await;
        if st == StatusCode::OK {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "healthz never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... and requests are answered again.
    let (st, body) = call(&router, upload(Some(&token), small_png(3))).await;
    assert_eq!(st, StatusCode::OK, "{body}");
}
