//! The web UI in Chromium, continued: the Reports page (report, drift banner, an evaluation round), undo of
//! class changes from toasts and History, History filters and Dataset search, and the Hygiene tab.

use super::*;

// ───────────────────────── reports and drift (issue 15) ─────────────────────────

#[tokio::test]
async fn the_reports_page_shows_the_report_a_drift_banner_and_an_evaluation_card() {
    let root = tempfile::tempdir().unwrap();
    common::digits(root.path(), 10, 6, 5);
    let data = root.path().join("data");
    let data_s = data.to_str().unwrap();
    let imported = Command::new(env!("CARGO_BIN_EXE_fovea"))
        .args(["import", "--data", data_s, "--labelled", root.path().join("train").to_str().unwrap()])
        .output()
        .unwrap();
    common::ok(&imported);
    let server = common::serve_with(
        &["serve", "--open", "--listen", "127.0.0.1:0", "--data", data_s, "--drift-window", "40"],
        &[],
    );
    let base = server.base.clone();
    // Digits like the labelled ones, a few labelled afterwards, then photos: a drift alert.
    let mut ids = Vec::new();
    for class in std::fs::read_dir(root.path().join("test")).unwrap() {
        let class = class.unwrap().path();
        for f in std::fs::read_dir(&class).unwrap() {
            let c =
                ureq::post(&format!("{base}/api/v1/classify")).send_bytes(&std::fs::read(f.unwrap().path()).unwrap());
            let c: serde_json::Value = c.unwrap().into_json().unwrap();
            ids.push((
                c["image_id"].as_str().unwrap().to_owned(),
                class.file_name().unwrap().to_str().unwrap().to_owned(),
            ));
        }
    }
    for (id, class) in ids.iter().step_by(3) {
        ureq::post(&format!("{base}/api/v1/images/{id}/label"))
            .send_json(serde_json::json!({ "class": class }))
            .unwrap();
    }
    let photos = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png"];
    for k in 0..70u32 {
        ureq::post(&format!("{base}/api/v1/classify"))
            .send_bytes(&common::photo_variant(photos[k as usize % 5], k))
            .unwrap();
    }
    // The monitor is rebuilt in the background when the calibration is refitted: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&base, "/drift/alerts").as_array().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no drift alert after 70 photos: {}", get(&base, "/drift"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let Browser { client, _driver, _profile } = browser().await;
    client.goto(&format!("{base}/#/reports")).await.unwrap();
    wait_js(&client, "!document.getElementById('drift-banner').hidden").await;
    wait_text(&client, "#drift-text", "since").await;
    wait_js(&client, "document.getElementById('report-frame').srcdoc.includes('Reliability')").await;
    wait_js(&client, "document.querySelectorAll('#drift-table tbody tr.row-alert').length > 0").await;
    // The report in the frame draws its charts (inline SVG, no script).
    wait_js(&client, "document.getElementById('report-frame').contentDocument.querySelectorAll('svg').length >= 5")
        .await;

    // A reviewer starts a round and judges the first prediction with the keyboard.
    client.find(Locator::Css("#eval-form button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_js(&client, "!document.getElementById('eval-card').hidden").await;
    wait_text(&client, "#eval-progress", "0 of").await;
    js(&client, "document.activeElement && document.activeElement.blur();").await;
    press(&client, 'r').await;
    wait_text(&client, "#eval-progress", "1 of").await;
    let rounds = get(&base, "/evaluations");
    assert_eq!(rounds[0]["answered"], 1, "{rounds}");
    save_screenshot(&client, "reports-top.png").await;
    js(&client, "document.getElementById('report-frame').scrollIntoView();").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    save_screenshot(&client, "reports-report.png").await;

    // Going anywhere else keeps the banner up while the alert is open.
    client.goto(&format!("{base}/#/classify")).await.unwrap();
    wait_js(&client, "!document.getElementById('drift-banner').hidden").await;

    // More images than a page: the Dataset page selects every one matching the filter, across pages.
    client.goto(&format!("{base}/#/dataset")).await.unwrap();
    wait_js(&client, "!document.getElementById('select-matching-btn').hidden").await;
    let total = get(&base, "/images?limit=1")["total"].as_u64().unwrap();
    assert!(total > 60, "{total}");
    // Scrolled under the sticky top bar by the banner above it: clicked as a script, not at a point.
    js(&client, "document.getElementById('select-matching-btn').click();").await;
    wait_text(&client, "#selection-count", &format!("{total} selected")).await;
    assert_eq!(
        js(&client, "return document.getElementById('grid-pages').textContent").await,
        format!("{}", total.div_ceil(60))
    );
}

#[tokio::test]
async fn a_merge_made_in_the_dataset_page_is_undone_from_its_toast() {
    let data = tempfile::tempdir().unwrap();
    let server = common::serve(data.path());
    let base = server.base.clone();
    for (name, class) in [("chelsea.png", "kitty"), ("chelsea.png", "kitty"), ("coffee.png", "cat")] {
        let c: serde_json::Value = ureq::post(&format!("{base}/api/v1/classify"))
            .send_bytes(&common::photo_variant(name, class.len() as u32 + name.len() as u32))
            .unwrap()
            .into_json()
            .unwrap();
        let id = c["image_id"].as_str().unwrap();
        ureq::post(&format!("{base}/api/v1/images/{id}/label"))
            .send_json(serde_json::json!({ "class": class }))
            .unwrap();
    }
    let Browser { client, _driver, _profile } = browser().await;
    client.goto(&format!("{base}/#/dataset")).await.unwrap();
    // The class list renders again when the classes load: click the row as it is now, not a found element.
    wait_for(&client, ".class-row[data-class='kitty']").await;
    js(&client, "document.querySelector(\".class-row[data-class='kitty']\").click();").await;
    wait_js(&client, "!document.getElementById('merge-btn').disabled && !document.getElementById('merge-btn').hidden")
        .await;
    client.find(Locator::Id("merge-btn")).await.unwrap().click().await.unwrap();
    wait_js(&client, "document.getElementById('prompt-dialog').open").await;
    js(&client, "document.getElementById('prompt-select').value = 'cat';").await;
    client.find(Locator::Id("prompt-ok")).await.unwrap().click().await.unwrap();
    wait_text(&client, "#toast", "Merged").await;
    assert!(!class_names(&base).contains(&"kitty".to_string()));
    client.find(Locator::Css("#toast .toast-action")).await.unwrap().click().await.unwrap();
    wait_text(&client, "#toast", "is back").await;
    let classes = get(&base, "/classes");
    let kitty = classes["classes"].as_array().unwrap().iter().find(|c| c["name"] == "kitty").cloned();
    let kitty = kitty.expect("kitty is back");
    assert_eq!(kitty["images"], 1, "{classes}");
    save_screenshot(&client, "merge-undone.png").await;

    // Merged again elsewhere; the History tab lists merges and undoes one too.
    ureq::post(&format!("{base}/api/v1/classes/{}/merge", kitty["id"]))
        .send_json(serde_json::json!({ "into": "cat" }))
        .unwrap();
    client.goto(&format!("{base}/#/history")).await.unwrap();
    wait_js(
        &client,
        "!document.getElementById('merges-panel').hidden && document.querySelectorAll('#merges-list li').length === 2",
    )
    .await;
    wait_for(&client, "#merges-list li[data-kind=merge] button").await;
    js(&client, "document.querySelector('#merges-list li[data-kind=merge] button').click();").await;
    // The first undo's toast may still be up: wait for the list to show this merge undone, then ask the API.
    wait_js(&client, "document.querySelectorAll('#merges-list li[data-kind=merge] button').length === 0").await;
    assert!(class_names(&base).contains(&"kitty".to_string()));

    // A rename made elsewhere is undone from the History tab too: the class gets its old name back.
    ureq::patch(&format!("{base}/api/v1/classes/{}", kitty["id"]))
        .send_json(serde_json::json!({ "name": "tabby" }))
        .unwrap();
    client.goto(&format!("{base}/#/classify")).await.unwrap();
    client.goto(&format!("{base}/#/history")).await.unwrap();
    wait_for(&client, "#merges-list li[data-kind=rename] button").await;
    js(&client, "document.querySelector('#merges-list li[data-kind=rename] button').click();").await;
    // The undo is itself a rename (tabby → kitty), listed first and undoable in turn.
    wait_js(
        &client,
        "(document.querySelector('#merges-list li[data-kind=rename]')?.textContent || '').includes('to “kitty”')",
    )
    .await;
    let names = class_names(&base);
    assert!(names.contains(&"kitty".to_string()) && !names.contains(&"tabby".to_string()), "{names:?}");
}

#[tokio::test]
async fn history_filters_to_corrections_and_undoes_one() {
    let data = tempfile::tempdir().unwrap();
    let server = common::serve(data.path());
    let base = server.base.clone();
    let mut ids = Vec::new();
    for (name, k) in [("chelsea.png", 1), ("coffee.png", 2), ("rocket.jpg", 3)] {
        let c: serde_json::Value = ureq::post(&format!("{base}/api/v1/classify"))
            .send_bytes(&common::photo_variant(name, k))
            .unwrap()
            .into_json()
            .unwrap();
        ids.push(c["image_id"].as_str().unwrap().to_owned());
    }
    ureq::post(&format!("{base}/api/v1/images/{}/label", ids[0]))
        .send_json(serde_json::json!({ "class": "cat" }))
        .unwrap();
    let Browser { client, _driver, _profile } = browser().await;
    client.goto(&format!("{base}/#/history")).await.unwrap();
    wait_js(&client, "document.querySelectorAll('#history-table tbody tr[data-kind]').length === 4").await;
    js(&client, "document.getElementById('hf-kind').value = 'correct';").await;
    client.find(Locator::Css("#history-filters button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_js(&client, "document.querySelectorAll('#history-table tbody tr[data-kind]').length === 1").await;
    js(&client, "document.getElementById('hf-class').value = 'dog';").await;
    client.find(Locator::Css("#history-filters button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_js(&client, "document.querySelectorAll('#history-table tbody tr[data-kind]').length === 0").await;
    js(&client, "document.getElementById('hf-class').value = 'cat';").await;
    client.find(Locator::Css("#history-filters button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for(&client, "#history-table .undo-label").await.click().await.unwrap();
    wait_text(&client, "#toast", "Undone").await;
    let detail = get(&base, &format!("/images/{}", ids[0]));
    assert_eq!(detail["labels"][0]["class_name"], "Unknown", "{detail}");
    assert_eq!(detail["labels"].as_array().unwrap().len(), 2, "the log keeps both labels");
    save_screenshot(&client, "history-filtered.png").await;

    // The Dataset page finds an image by its id's first characters, and says how many pages there are.
    client.goto(&format!("{base}/#/dataset")).await.unwrap();
    wait_js(&client, "document.querySelectorAll('#image-grid .thumb').length === 3").await;
    assert_eq!(js(&client, "return document.getElementById('grid-pages').textContent").await, "1");
    let prefix = &ids[2][..10];
    client.find(Locator::Id("image-search")).await.unwrap().send_keys(prefix).await.unwrap();
    wait_js(&client, &format!("document.querySelectorAll('#image-grid .thumb').length === 1 && document.querySelector('#image-grid .thumb').dataset.id === '{}'", ids[2])).await;
    let bad = ureq::get(&format!("{base}/api/v1/transactions?kind=maybe")).call();
    assert!(matches!(bad, Err(ureq::Error::Status(400, _))));
}

#[tokio::test]
async fn a_second_look_relabels_a_disputed_label_and_duplicates_are_listed_in_the_browser() {
    let data = tempfile::tempdir().unwrap();
    let server = common::serve(data.path());
    let base = server.base.clone();
    // Five variants each of two photos, one cat variant labelled as coffee: the one wrong label.
    let mut wrong = String::new();
    for (name, class) in [("chelsea.png", "cat"), ("coffee.png", "coffee")] {
        for k in 0..6 {
            let answer: serde_json::Value = ureq::post(&format!("{base}/api/v1/classify"))
                .send_bytes(&common::photo_variant(name, k * 3))
                .unwrap()
                .into_json()
                .unwrap();
            let id = answer["image_id"].as_str().unwrap().to_owned();
            let given = if class == "cat" && k == 2 { "coffee" } else { class };
            if given != class {
                wrong = id.clone();
            }
            ureq::post(&format!("{base}/api/v1/images/{id}/label"))
                .send_json(serde_json::json!({ "class": given }))
                .unwrap();
        }
    }
    let Browser { client, _driver, _profile } = browser().await;
    client.goto(&format!("{base}/#/hygiene")).await.unwrap();
    wait_text(&client, "#look-summary", "labels disputed").await;
    let first = js(&client, "return document.querySelector('#look-list .look-card').dataset.id").await;
    assert_eq!(first.as_str(), Some(wrong.as_str()), "the wrong label is the first card");
    wait_for(&client, "#look-list .look-card .btn-primary").await.click().await.unwrap();
    wait_text(&client, "#toast", "Relabelled to cat").await;
    let detail = get(&base, &format!("/images/{wrong}"));
    assert_eq!(detail["labels"][0]["class_name"], "cat", "{detail}");
    // The duplicates panel compares the stored images (the variants are crops of two photos).
    wait_text(&client, "#dup-summary", "duplicate groups among 12 images").await;
    save_screenshot(&client, "hygiene.png").await;
    // The image detail lists the near copies of the image, and each opens in turn.
    js(&client, &format!("import('/detail.js').then((m) => m.showDetail('{wrong}'));")).await;
    wait_js(&client, "document.querySelectorAll('#detail-dups .detail-dup').length > 0").await;
    save_screenshot(&client, "detail-duplicates.png").await;
    client.close().await.unwrap();
}
