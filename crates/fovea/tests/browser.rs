//! The web UI in a real headless Chromium (Debian's chromium + chromium-driver, over WebDriver): upload, see a
//! prediction, correct it to a brand-new class, upload a similar image and see the new class predicted.

use std::io::{BufRead, BufReader, Cursor};
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

fn serve(data: &Path) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fovea"))
        .args(["serve", "--open", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(rest) = line.strip_prefix("fovea is serving ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Killed(child), base)
}

fn write_variant(dir: &Path, name: &str, k: u32) -> PathBuf {
    let photos = fovea_model::fetch::ensure_sample_photos(&fovea_model::fovea_home()).unwrap();
    let img = fovea_vision::decode_file(&photos.join(name), &Default::default()).unwrap();
    let (w, h) = (img.width() * (85 - k) / 100, img.height() * (85 - k) / 100);
    let crop = image::imageops::crop_imm(&img, k * 9, k * 6, w, h).to_image();
    let path = dir.join(format!("{k}-{name}.png"));
    let mut out = Vec::new();
    crop.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    std::fs::write(&path, out).unwrap();
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

#[tokio::test]
async fn correct_to_a_new_class_in_the_browser() {
    let driver_path = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    assert!(
        Path::new(&driver_path).exists(),
        "{driver_path} missing: scripts/setup.sh --test installs chromium-driver"
    );
    let data = tempfile::tempdir().unwrap();
    let (_server, base) = serve(data.path());
    let port = free_port();
    let _driver = Killed(
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

    let files = tempfile::tempdir().unwrap();
    client.goto(&format!("{base}/#/classify")).await.unwrap();
    let input = file_input(&client).await;
    input.send_keys(write_variant(files.path(), "chelsea.png", 0).to_str().unwrap()).await.unwrap();
    wait_for(&client, "#preview img, img#preview").await;
    // The fresh model knows no classes: teach it one by typing a new name.
    let picker = wait_for(&client, "#class-input").await;
    picker.send_keys("my cat").await.unwrap();
    let option = wait_for(&client, ".class-option[data-class='my cat']").await;
    option.click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let toast = client.find(Locator::Css("#toast")).await.unwrap().text().await.unwrap_or_default();
        if toast.contains("my cat") {
            break;
        }
        assert!(Instant::now() < deadline, "no feedback that the model learned; toast: {toast:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Clear the rows the correction re-rendered, so the rows found next can only come from the new upload.
    client.execute("document.getElementById('predictions').innerHTML = ''", vec![]).await.unwrap();
    let input = file_input(&client).await;
    input.send_keys(write_variant(files.path(), "chelsea.png", 6).to_str().unwrap()).await.unwrap();
    let top = wait_for(&client, "#predictions .prediction.top[data-class='my cat']").await;
    assert!(top.text().await.unwrap().contains('%'));

    let png = client.screenshot().await.unwrap();
    let out =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fovea-classify.png");
    std::fs::write(&out, png).unwrap();
    println!("screenshot saved to {}", out.display());
    client.close().await.unwrap();
}
