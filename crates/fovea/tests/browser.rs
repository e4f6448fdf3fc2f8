//! The web UI in a real headless Chromium (Debian's chromium + chromium-driver, over WebDriver): upload, see a
//! prediction, correct it to a brand-new class, upload a similar image and see the new class predicted; and the
//! Models page: the served model, a training run started from the form, followed until it fails.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn write_variant(dir: &Path, name: &str, k: u32) -> PathBuf {
    let path = dir.join(format!("{k}-{name}.png"));
    std::fs::write(&path, common::photo_variant(name, k)).unwrap();
    path
}

/// The file input sits hidden inside its drop zone (styled for people); WebDriver can only type into visible ones.
async fn file_input(client: &fantoccini::Client) -> fantoccini::elements::Element {
    wait_for(client, "#file-input").await;
    client
        .execute("const i = document.getElementById('file-input'); i.style.cssText = 'display:block;opacity:1;position:static;width:10px;height:10px'; i.hidden = false;", vec![])
        .await
        .unwrap();
    wait_for(client, "#file-input").await
}

/// Waits until the element's visible text contains `needle`.
async fn wait_text(client: &fantoccini::Client, css: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(e) = client.find(Locator::Css(css)).await {
            if e.text().await.unwrap_or_default().contains(needle) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {needle:?} in {css}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_for(client: &fantoccini::Client, css: &str) -> fantoccini::elements::Element {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(e) = client.find(Locator::Css(css)).await {
            return e;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {css}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A headless Chromium driven by chromedriver; both end when this is dropped.
struct Browser {
    client: fantoccini::Client,
    _driver: Killed,
    _profile: tempfile::TempDir,
}

async fn browser() -> Browser {
    let driver_path = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    assert!(
        Path::new(&driver_path).exists(),
        "{driver_path} missing: scripts/setup.sh --test installs chromium-driver"
    );
    let port = free_port();
    let driver = Killed(
        Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let profile = tempfile::tempdir().unwrap();
    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        "goog:chromeOptions": {
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                     "--disable-background-networking", "--disable-component-update", "--no-first-run",
                     format!("--user-data-dir={}", profile.path().display())]
        }
    }))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        match ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(250)).await
            }
            Err(e) => panic!("chromedriver did not start: {e}"),
        }
    };
    Browser { client, _driver: driver, _profile: profile }
}

async fn save_screenshot(client: &fantoccini::Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&out, png).unwrap();
    println!("screenshot saved to {}", out.display());
}

#[tokio::test]
async fn correct_to_a_new_class_in_the_browser() {
    let data = tempfile::tempdir().unwrap();
    let server = common::serve(data.path());
    let base = server.base.clone();
    let Browser { client, _driver, _profile } = browser().await;

    let files = tempfile::tempdir().unwrap();
    client.goto(&format!("{base}/#/classify")).await.unwrap();
    let input = file_input(&client).await;
    input.send_keys(write_variant(files.path(), "chelsea.png", 0).to_str().unwrap()).await.unwrap();
    wait_text(&client, "#result-meta", "ms").await; // the answer (latency shown) has arrived
                                                    // The fresh model knows no classes: teach it one by typing a new name.
    let picker = wait_for(&client, "#class-input").await;
    picker.send_keys("my cat").await.unwrap();
    // The picker offers the typed name as a new class; Enter takes the highlighted option, as a person would.
    wait_for(&client, ".class-option.new[data-class='my cat']").await;
    picker.send_keys("\u{E007}").await.unwrap();
    wait_text(&client, "#toast", "my cat").await; // visible feedback that the model learned

    // Clear the rows the correction re-rendered, so the rows found next can only come from the new upload.
    client.execute("document.getElementById('predictions').innerHTML = ''", vec![]).await.unwrap();
    let input = file_input(&client).await;
    input.send_keys(write_variant(files.path(), "chelsea.png", 6).to_str().unwrap()).await.unwrap();
    let top = wait_for(&client, "#predictions .prediction.top[data-class='my cat']").await;
    assert!(top.text().await.unwrap().contains('%'));

    save_screenshot(&client, "fovea-classify.png").await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn the_models_page_shows_the_served_model_and_a_failed_training_run() {
    let data = tempfile::tempdir().unwrap();
    let server = common::serve(data.path());
    let registry: serde_json::Value =
        ureq::get(&format!("{}/api/v1/models", server.base)).call().unwrap().into_json().unwrap();
    let served = registry["served"].as_str().unwrap().to_owned();
    let Browser { client, _driver, _profile } = browser().await;

    client.goto(&format!("{}/#/models", server.base)).await.unwrap();
    wait_text(&client, "#served-model", &served).await;
    let row = wait_for(&client, &format!("#models-table tr.served[data-model='{served}']")).await;
    let text = row.text().await.unwrap();
    assert!(text.contains("promoted") && text.contains("serving"), "served row: {text}");

    // Train with the defaults: an empty catalog has no class at the cutoff, so the server's worker (which polls
    // every 2 s) takes the job and fails it at once; the page follows the job and shows why.
    wait_for(&client, "#train-btn").await.click().await.unwrap();
    wait_text(&client, "#job-outcome", "not enough data").await;
    wait_text(&client, "#job-state", "failed").await;
    let job = client.find(Locator::Css("#job-meta")).await.unwrap().text().await.unwrap();
    assert!(job.contains("job #1"), "{job}");
    assert!(client.find(Locator::Css("#train-btn")).await.unwrap().is_enabled().await.unwrap());

    save_screenshot(&client, "models.png").await;
    client.close().await.unwrap();
}
