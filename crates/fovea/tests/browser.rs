//! The web UI in a real headless Chromium (Debian's chromium + chromium-driver, over WebDriver): upload, see a
//! prediction, correct it to a brand-new class, upload a similar image and see the new class predicted; and the
//! Models page: the served model, a training run started from the form, followed until it fails; and the Hygiene
//! page: a disputed label relabelled from the second-look queue.

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        // Chromium runs as chromedriver's children in the process group it was started in; killing the driver
        // alone left them running (about 30 processes after each test run).
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.0.id())]).status();
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
    wait_text_all(client, css, &[needle]).await
}

/// Waits until the element's visible text contains every needle at once.
async fn wait_text_all(client: &fantoccini::Client, css: &str, needles: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(e) = client.find(Locator::Css(css)).await {
            let text = e.text().await.unwrap_or_default();
            if needles.iter().all(|n| text.contains(n)) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {needles:?} in {css}");
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
    let _ = rustls::crypto::ring::default_provider().install_default();
    let driver_path = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    assert!(
        Path::new(&driver_path).exists(),
        "{driver_path} missing: scripts/setup.sh --test installs chromium-driver"
    );
    let port = free_port();
    let driver = Killed(
        Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .process_group(0)
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
    // The picker offers the typed name as a new class; Enter takes the highlighted option and asks "Create class
    // …?", a second Enter creates it, as a person would.
    wait_for(&client, ".class-option.new[data-class='my cat']").await;
    picker.send_keys("\u{E007}").await.unwrap();
    wait_for(&client, ".class-option.confirm[data-class='my cat']").await;
    picker.send_keys("\u{E007}").await.unwrap();
    wait_text(&client, "#toast", "my cat").await; // visible feedback that the model learned

    // Clear the rows the correction re-rendered, so the rows found next can only come from the new upload.
    client.execute("document.getElementById('predictions').innerHTML = ''", vec![]).await.unwrap();
    let input = file_input(&client).await;
    input.send_keys(write_variant(files.path(), "chelsea.png", 6).to_str().unwrap()).await.unwrap();
    let top = wait_for(&client, "#predictions .prediction.top[data-class='my cat']").await;
    assert!(top.text().await.unwrap().contains('%'));

    save_screenshot(&client, "fovea-classify.png").await;

    // The review queue hands the unlabelled images (the second upload and a coffee) to the same keyboard flow.
    let input = file_input(&client).await;
    input.send_keys(write_variant(files.path(), "coffee.png", 2).to_str().unwrap()).await.unwrap();
    // The name shows when the upload starts and the "replace" hint once its answer is on screen; #result-meta
    // still holds the previous answer's latency meanwhile, and a review fetched before the coffee is stored
    // would hold one image, not two.
    wait_text_all(&client, "#image-meta", &["coffee", "replace"]).await;
    wait_for(&client, "#review-btn").await.click().await.unwrap();
    wait_text(&client, "#queue-text", "Classified 2 of 2").await;
    wait_text(&client, "#queue-text", "2 to label").await;
    press(&client, '\u{E007}').await;
    wait_text(&client, "#queue-text", "1 to label").await;
    press(&client, '\u{E007}').await;
    wait_text(&client, "#queue-text", "all labelled").await;
    assert_eq!(get(&base, "/review?limit=5")["items"].as_array().unwrap().len(), 0);
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

// ───────────────────────── a labeller's day (issue 13) ─────────────────────────

async fn js(client: &fantoccini::Client, script: &str) -> serde_json::Value {
    client.execute(script, vec![]).await.unwrap()
}

/// Waits until `script` (a JS expression) is truthy.
async fn wait_js(client: &fantoccini::Client, script: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = js(client, &format!("return Boolean({script});")).await;
        if v == serde_json::Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {script}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One key press sent to whatever has the focus, as a person's keyboard would (not typed into an element).
async fn press(client: &fantoccini::Client, key: char) {
    use fantoccini::actions::{InputSource, KeyAction, KeyActions};
    let keys =
        KeyActions::new("keyboard".into()).then(KeyAction::Down { value: key }).then(KeyAction::Up { value: key });
    client.perform_actions(keys).await.unwrap();
}

fn get(base: &str, path: &str) -> serde_json::Value {
    ureq::get(&format!("{base}/api/v1{path}")).call().unwrap().into_json().unwrap()
}

fn class_names(base: &str) -> Vec<String> {
    get(base, "/classes")["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

const ACTIVE_ID: &str = "return document.activeElement ? document.activeElement.id : ''";
const ENTER: char = '\u{E007}';
const ESCAPE: char = '\u{E00C}';

/// Elements whose right edge lies beyond the viewport (ignoring ones not rendered).
const OVERFLOW: &str = r#"
const w = document.documentElement.clientWidth;
const bad = [];
for (const el of document.querySelectorAll('body *')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) continue;
  if (r.right > w + 0.5) bad.push(`${el.tagName.toLowerCase()}#${el.id}.${el.className} right=${Math.round(r.right)}`);
}
return { width: w, scroll: document.documentElement.scrollWidth, bad: bad.slice(0, 15) };
"#;

#[tokio::test]
async fn a_labellers_day_keyboard_search_batch_undo_history_captions_and_a_narrow_screen() {
    let data = tempfile::tempdir().unwrap();
    let server = common::serve(data.path());
    let base = server.base.clone();
    let Browser { client, _driver, _profile } = browser().await;
    let files = tempfile::tempdir().unwrap();

    // ── One upload by the file chooser: focus leaves the hidden input, so keys work and Enter does not reopen it.
    client.goto(&format!("{base}/#/classify")).await.unwrap();
    file_input(&client).await.send_keys(write_variant(files.path(), "chelsea.png", 0).to_str().unwrap()).await.unwrap();
    wait_text(&client, "#result-meta", "ms").await;
    assert_ne!(js(&client, ACTIVE_ID).await, "file-input");
    // The fresh model knows no class, so the class box has the focus. A new name is only created after a second,
    // explicit Enter on "Create class …?".
    let picker = wait_for(&client, "#class-input").await;
    picker.send_keys(&format!("my cat{ENTER}")).await.unwrap();
    wait_for(&client, ".class-option.confirm[data-class='my cat']").await;
    save_screenshot(&client, "labeller-create-confirm.png").await;
    assert!(!class_names(&base).contains(&"my cat".to_owned()), "one Enter must not create the class");
    picker.send_keys(&ENTER.to_string()).await.unwrap();
    wait_text(&client, "#toast", "my cat").await;

    // ── Class names: the same limit in the form as on the server; two classes added from the Dataset page.
    let max = get(&base, "/classes")["max_name_chars"].as_u64().unwrap();
    client.goto(&format!("{base}/#/dataset")).await.unwrap();
    let add = wait_for(&client, "#new-class-name").await;
    assert_eq!(add.attr("maxlength").await.unwrap(), Some(max.to_string()));
    for name in ["astronaut", "Trouser"] {
        add.send_keys(&format!("{name}{ENTER}")).await.unwrap();
        wait_text(&client, "#toast", &format!("“{name}” created")).await;
    }

    // ── Search ranks a prefix match above a match inside a word: "Tro" + Enter is Trouser, never astronaut.
    client.goto(&format!("{base}/#/classify")).await.unwrap();
    file_input(&client).await.send_keys(write_variant(files.path(), "coffee.png", 1).to_str().unwrap()).await.unwrap();
    wait_text(&client, "#image-meta", "×").await;
    wait_text(&client, "#image-meta", "1-coffee").await;
    wait_js(&client, "!document.getElementById('drop-zone').classList.contains('busy')").await;
    assert_eq!(js(&client, ACTIVE_ID).await, "result-panel", "after an upload the shortcuts have the focus");
    press(&client, '/').await;
    assert_eq!(js(&client, ACTIVE_ID).await, "class-input");
    let picker = wait_for(&client, "#class-input").await;
    picker.send_keys("Tro").await.unwrap();
    wait_js(&client, "document.querySelector('#class-options .class-option')?.dataset.class === 'Trouser'").await;
    // "San" matches nothing: Enter asks, Esc takes the question back, and no class "San" exists.
    for _ in 0..3 {
        picker.send_keys("\u{E003}").await.unwrap(); // backspace
    }
    picker.send_keys(&format!("San{ENTER}")).await.unwrap();
    wait_for(&client, ".class-option.confirm[data-class='San']").await;
    picker.send_keys(&ESCAPE.to_string()).await.unwrap();
    wait_js(&client, "!document.querySelector('.class-option.confirm')").await;
    // Too long for the server: offered as an error, never created.
    picker.send_keys(&"x".repeat(max as usize - 2)).await.unwrap();
    wait_for(&client, ".class-option.too-long").await;
    picker.send_keys(&format!("{ENTER}{ENTER}")).await.unwrap();
    assert!(class_names(&base).iter().all(|n| n != "San" && !n.starts_with("Sanx")), "{:?}", class_names(&base));
    picker.send_keys(&ESCAPE.to_string()).await.unwrap();
    picker.send_keys(&format!("Tro{ENTER}")).await.unwrap();
    wait_text(&client, "#toast", "Learned: Trouser").await;
    let coffee_id: String =
        serde_json::from_value(js(&client, "return document.querySelector('.recent-item.current').dataset.id").await)
            .unwrap();

    // ── Three files at once: a queue with progress, then labelled with the keyboard alone, one Enter each.
    let paths: Vec<String> = [("chelsea.png", 2), ("coffee.png", 3), ("rocket.jpg", 4)]
        .iter()
        .map(|(n, k)| write_variant(files.path(), n, *k).to_str().unwrap().to_owned())
        .collect();
    let input = file_input(&client).await;
    assert_eq!(input.attr("multiple").await.unwrap().as_deref(), Some("true"));
    input.send_keys(&paths.join("\n")).await.unwrap();
    wait_text(&client, "#queue-text", "Classified 3 of 3").await;
    wait_text(&client, "#queue-text", "3 to label").await;
    save_screenshot(&client, "labeller-batch.png").await;
    assert_ne!(js(&client, ACTIVE_ID).await, "file-input");
    for left in ["2 to label", "1 to label", "all labelled"] {
        press(&client, ENTER).await;
        wait_text(&client, "#queue-text", left).await;
    }
    assert_eq!(get(&base, "/images?labelled=true")["total"], 5, "5 images labelled: 2 one by one, 3 in the batch");

    // ── Undo from the toast: the batch's last image had no label before, so it goes to Unknown (out of training)
    // and is back on screen for a decision.
    wait_for(&client, "#toast .toast-action").await.click().await.unwrap();
    wait_text(&client, "#toast", "Undone").await;
    wait_text(&client, "#queue-text", "1 to label").await;
    assert_eq!(get(&base, "/images?class=Unknown")["total"], 1);

    // ── History: readable times, the model's prediction beside the chosen class, corrections marked.
    client.goto(&format!("{base}/#/history")).await.unwrap();
    wait_for(&client, "#history-table tbody tr[data-kind='correct']").await;
    let times =
        js(&client, "return [...document.querySelectorAll('#history-table time')].map(t => t.textContent)").await;
    let times = times.as_array().unwrap();
    assert!(times.len() >= 9, "{times:?}");
    assert!(times.iter().map(|t| t.as_str().unwrap()).all(|t| t == "just now" || t.ends_with(" min ago")), "{times:?}");
    let predicted =
        js(&client, "return [...document.querySelectorAll('#history-table td.predicted')].filter(td => td.textContent.includes('%')).length").await;
    assert!(predicted.as_u64().unwrap() >= 7, "predicted cells with a probability: {predicted}");
    // Coffee was predicted "my cat" at upload and corrected to Trouser: shown as a correction of that prediction.
    let corrected = js(&client, &format!(
        "return [...document.querySelectorAll('#history-table tr[data-kind=correct]')].filter(tr => tr.querySelector('img')?.src.includes('{coffee_id}')).map(tr => [tr.querySelector('td.predicted').textContent, tr.querySelector('.chosen').className])"
    )).await;
    let corrected = corrected.as_array().unwrap();
    assert_eq!(corrected.len(), 1, "{corrected:?}");
    assert!(corrected[0][0].as_str().unwrap().contains("my cat"), "{corrected:?}");
    assert!(corrected[0][1].as_str().unwrap().contains("corrected"), "{corrected:?}");
    save_screenshot(&client, "labeller-history.png").await;

    // ── Dataset captions follow the model now: after merging "my cat" away no caption names it, and a labelled
    // image whose model now agrees is not shown as a disagreement.
    let classes = get(&base, "/classes");
    let my_cat = classes["classes"].as_array().unwrap().iter().find(|c| c["name"] == "my cat").unwrap()["id"].clone();
    ureq::post(&format!("{base}/api/v1/classes/{my_cat}/merge"))
        .send_json(serde_json::json!({ "into": "astronaut" }))
        .unwrap();
    let listed = get(&base, "/images?limit=100");
    let coffee = listed["images"].as_array().unwrap().iter().find(|i| i["id"] == coffee_id.as_str()).unwrap().clone();
    assert_eq!(coffee["top1"]["class"], "my cat", "the upload-time prediction stays as logged: {coffee}");
    assert_eq!(coffee["model_top1"]["class"], "Trouser", "the model learned the correction: {coffee}");
    client.goto(&format!("{base}/#/dataset")).await.unwrap();
    wait_for(&client, &format!(".thumb[data-id='{coffee_id}']")).await;
    let stale = js(
        &client,
        "return [...document.querySelectorAll('.thumb-caption')].filter(c => c.textContent.includes('my cat')).length",
    )
    .await;
    assert_eq!(stale, 0, "a caption names a merged-away class");
    let coffee_caption = js(&client, &format!(
        "const t = document.querySelector(\".thumb[data-id='{coffee_id}']\"); return [t.querySelector('.thumb-class').textContent, Boolean(t.querySelector('.mismatch'))]"
    )).await;
    assert_eq!(coffee_caption, serde_json::json!(["Trouser", false]));
    save_screenshot(&client, "labeller-dataset.png").await;

    // ── 420 px wide: no element reaches past the viewport on any page.
    client.set_window_size(420, 900).await.unwrap();
    for page in ["classify", "dataset", "collections", "hygiene", "history", "models", "reports"] {
        client.goto(&format!("{base}/#/{page}")).await.unwrap();
        wait_js(&client, &format!("!document.getElementById('view-{page}').hidden")).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let o = js(&client, OVERFLOW).await;
        assert!(o["width"].as_u64().unwrap() <= 420, "the window did not narrow: {o}");
        assert!(o["bad"].as_array().unwrap().is_empty() && o["scroll"] == o["width"], "{page} at 420 px: {o}");
        save_screenshot(&client, &format!("narrow-{page}.png")).await;
    }
    client.close().await.unwrap();
}

// ───────────────────────── collections (issue 12) ─────────────────────────

#[tokio::test]
async fn identify_files_filter_accept_all_matching_and_undo_in_the_browser() {
    let data = tempfile::tempdir().unwrap();
    let server = common::serve(data.path());
    let base = server.base.clone();
    // Teach two classes over the API, two photo variants each.
    for (name, class) in [("chelsea.png", "cat"), ("coffee.png", "coffee")] {
        for k in [0, 4] {
            let answer: serde_json::Value = ureq::post(&format!("{base}/api/v1/classify"))
                .send_bytes(&common::photo_variant(name, k))
                .unwrap()
                .into_json()
                .unwrap();
            let id = answer["image_id"].as_str().unwrap();
            ureq::post(&format!("{base}/api/v1/images/{id}/label"))
                .send_json(serde_json::json!({ "class": class }))
                .unwrap();
        }
    }
    let labelled = |class: &str| -> u64 {
        let rows = get(&base, "/coverage");
        rows.as_array().unwrap().iter().find(|r| r["class"] == class).unwrap()["labelled"].as_u64().unwrap()
    };
    let Browser { client, _driver, _profile } = browser().await;
    let files = tempfile::tempdir().unwrap();
    client.goto(&format!("{base}/#/collections")).await.unwrap();
    wait_for(&client, "#identify-files").await;
    js(&client, "const i = document.getElementById('identify-files'); i.className = ''; return 1;").await;
    let paths: Vec<String> = [("chelsea.png", 8), ("chelsea.png", 12), ("coffee.png", 9), ("coffee.png", 13)]
        .iter()
        .map(|(n, k)| write_variant(files.path(), n, *k).to_str().unwrap().to_owned())
        .collect();
    wait_for(&client, "#identify-files").await.send_keys(&paths.join("\n")).await.unwrap();
    wait_text(&client, "#identify-files-status", "4 / 4 identified").await;
    wait_js(&client, "document.querySelectorAll('#result-grid .thumb').length === 4").await;
    // Thumbnails, not originals, fill the grid.
    let src = js(&client, "return document.querySelector('#result-grid .thumb img').getAttribute('src')").await;
    assert!(src.as_str().unwrap().contains("/thumb?size="), "{src}");

    // Filter to the predicted cats, select every match, accept their predictions: one action, one undo.
    js(&client, "const s = document.getElementById('rf-class'); s.value = 'cat'; s.dispatchEvent(new Event('change', {bubbles: true})); return 1;").await;
    wait_js(&client, "document.querySelectorAll('#result-grid .thumb').length === 2").await;
    wait_for(&client, "#rs-all").await.click().await.unwrap();
    wait_text(&client, "#rs-count", "all 2 matching selected").await;
    wait_for(&client, "#result-actions [data-bulk='accept']").await.click().await.unwrap();
    wait_text(&client, "#toast", "Accepted predictions for 2 images").await;
    assert_eq!(labelled("cat"), 4);
    wait_js(&client, "document.querySelectorAll('#result-grid .thumb-label').length === 2").await;
    save_screenshot(&client, "collections.png").await;
    wait_for(&client, "#toast .toast-action").await.click().await.unwrap();
    wait_text(&client, "#toast", "Undone: 2 restored").await;
    // A double-click opens the image's detail: its history, what the model said.
    js(&client, "document.querySelector('#result-grid .thumb').dispatchEvent(new MouseEvent('dblclick', {bubbles: true})); return 1;").await;
    wait_text(&client, "#detail-body", "Predictions and corrections").await;
    wait_text(&client, "#detail-body", "predicted cat").await;
    save_screenshot(&client, "image-detail.png").await;
    wait_for(&client, "#detail-close").await.click().await.unwrap();
    assert_eq!(labelled("cat"), 2);
    wait_text(&client, "#coverage", "cat").await;
    client.close().await.unwrap();
}

// Reports, drift, evaluations, undo of class changes, history filters and hygiene: their own file.
#[path = "browser/insight_and_undo.rs"]
mod insight_and_undo;
