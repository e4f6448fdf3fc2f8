//! Scale-out as a team runs it: two `fovea serve` replicas and two `fovea worker` processes on one PostgreSQL
//! catalog and one S3 bucket (scripts/test.sh starts a throwaway PostgreSQL cluster and an S3 server on 127.0.0.1
//! and names them in FOVEA_TEST_POSTGRES and FOVEA_TEST_S3; without them these tests fail, never skip).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{photo_variant, serve_with, Served};
use serde_json::{json, Value};

/// One shared catalog and blob store, and the environment every process of the deployment gets.
struct Deployment {
    catalog: String,
    blobs: String,
    env: Vec<(&'static str, String)>,
}

impl Deployment {
    fn new(name: &str) -> Deployment {
        let admin = std::env::var("FOVEA_TEST_POSTGRES")
            .expect("FOVEA_TEST_POSTGRES is not set: run the tests with scripts/test.sh, which starts PostgreSQL");
        let s3 = std::env::var("FOVEA_TEST_S3")
            .expect("FOVEA_TEST_S3 is not set: run the tests with scripts/test.sh, which starts an S3 server");
        let db = format!("fovea_{name}_{}", std::process::id());
        for sql in [format!("DROP DATABASE IF EXISTS {db}"), format!("CREATE DATABASE {db}")] {
            let out = Command::new("psql").args([admin.as_str(), "-q", "-c", &sql]).output().expect("psql runs");
            assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let catalog = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
        let bucket = db.replace('_', "-");
        create_bucket(&s3, &bucket);
        let env = vec![
            ("AWS_ENDPOINT_URL", s3),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            // A killed worker's job is taken over within seconds, not the default half minute.
            ("FOVEA_JOB_LEASE_SECS", "4".into()),
            ("FOVEA_IDENTIFY_CHUNK", "4".into()),
        ];
        Deployment { catalog, blobs: format!("s3://{bucket}/fovea"), env }
    }

    fn args<'a>(&'a self, command: &'a str, data: &'a Path) -> Vec<&'a str> {
        vec![command, "--data", data.to_str().unwrap(), "--catalog", &self.catalog, "--blobs", &self.blobs]
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    /// A replica that only answers requests (jobs are the workers').
    fn replica(&self, data: &Path) -> Served {
        let mut args = self.args("serve", data);
        args.extend(["--open", "--listen", "127.0.0.1:0", "--no-jobs"]);
        serve_with(&args, &self.env())
    }

    fn worker(&self, data: &Path) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fovea"))
            .args(self.args("worker", data))
            .envs(self.env())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("worker exited before it was ready").unwrap();
            eprintln!("worker: {line}");
            if line.contains("is waiting for jobs") {
                break;
            }
        }
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| eprintln!("worker: {l}")));
        Worker(child)
    }
}

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Creates a bucket with one plain S3 request (the test server needs no signature for it).
fn create_bucket(endpoint: &str, bucket: &str) {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut conn = std::net::TcpStream::connect(host).expect("connect to the test S3 server");
    write!(conn, "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "creating bucket {bucket}: {answer}");
}

fn classify(base: &str, bytes: &[u8]) -> Value {
    ureq::post(&format!("{base}/api/v1/classify")).send_bytes(bytes).unwrap().into_json().unwrap()
}

fn label(base: &str, image_id: &str, class: &str) {
    ureq::post(&format!("{base}/api/v1/images/{image_id}/label")).send_json(json!({ "class": class })).unwrap();
}

fn get(base: &str, path: &str) -> Value {
    ureq::get(&format!("{base}{path}")).call().unwrap().into_json().unwrap()
}

fn top(answer: &Value) -> &str {
    answer["top"][0]["class"].as_str().unwrap_or_default()
}

/// Classifies `bytes` on `base` until the top class is `class`; returns how long that took.
fn until_top(base: &str, bytes: &[u8], class: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let answer = classify(base, bytes);
        if top(&answer) == class {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{base} still answers {answer} after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_replicas_and_two_workers_share_one_postgres_catalog_and_one_s3_bucket() {
    let deployment = Deployment::new("replicas");
    let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = deployment.replica(dirs[0].path());
    let b = deployment.replica(dirs[1].path());

    // A correction on A changes B's predictions, and one on B changes A's.
    let cat = classify(&a.base, &photo_variant("chelsea.png", 1));
    let corrected = Instant::now();
    label(&a.base, cat["image_id"].as_str().unwrap(), "cat");
    let seen_on_b = until_top(&b.base, &photo_variant("chelsea.png", 2), "cat", Duration::from_secs(10));
    eprintln!("a correction on replica A reached replica B in {:?} (first answer after it)", corrected.elapsed());
    let coffee = classify(&b.base, &photo_variant("coffee.png", 1));
    label(&b.base, coffee["image_id"].as_str().unwrap(), "coffee");
    let seen_on_a = until_top(&a.base, &photo_variant("coffee.png", 2), "coffee", Duration::from_secs(10));
    eprintln!("replica B -> A: {seen_on_a:?}; A -> B: {seen_on_b:?}");

    // Image bytes stored through A are served by B: both read the one bucket.
    let id = cat["image_id"].as_str().unwrap();
    let mut stored = Vec::new();
    ureq::get(&format!("{}/api/v1/images/{id}/blob", b.base))
        .call()
        .unwrap()
        .into_reader()
        .read_to_end(&mut stored)
        .unwrap();
    assert_eq!(stored, photo_variant("chelsea.png", 1));

    // A replica restarted (on an empty data folder) against the same catalog predicts identically.
    let probe = photo_variant("chelsea.png", 5);
    let before = classify(&b.base, &probe);
    drop(b);
    let b = deployment.replica(dirs[2].path());
    let after = classify(&b.base, &probe);
    // The same classes in the same order with the same probabilities (to float rounding: the restarted head is
    // restored from a snapshot and the log, the running one was folded label by label).
    let (before, after) = (before["top"].as_array().unwrap(), after["top"].as_array().unwrap());
    assert_eq!(before.len(), after.len());
    for (x, y) in before.iter().zip(after) {
        assert_eq!(x["class"], y["class"], "restarted replica answers differently: {before:?} / {after:?}");
        let (p, q) = (x["probability"].as_f64().unwrap(), y["probability"].as_f64().unwrap());
        assert!((p - q).abs() < 1e-6, "restarted replica answers differently: {before:?} / {after:?}");
    }

    // A folder identified by two workers, one killed midway: every file counted exactly once, and the chunk the
    // killed worker held is redone once its lease runs out. The test sees chunks, not which worker holds one, so a
    // kill can land while the worker is between two chunks (its last chunk done, the next not yet claimed, the test
    // thread descheduled in between on a busy machine); then nothing is redone, and a round with a new worker and a
    // new folder follows.
    let _w2 = deployment.worker(dirs[4].path());
    let redone = (0..3).any(|round| identify_with_one_worker_killed(&deployment, &a.base, &b.base, &dirs[3], round));
    assert!(redone, "in three rounds no killed worker's chunk was redone");
}

/// Identifies a new folder with the standing worker and a new one, kills the new one while both hold a chunk, and
/// checks every file is counted once. Returns whether a chunk was redone after the kill.
fn identify_with_one_worker_killed(
    deployment: &Deployment,
    a: &str,
    b: &str,
    dir: &tempfile::TempDir,
    round: usize,
) -> bool {
    let folder = dir.path().join(format!("photos-{round}"));
    std::fs::create_dir(&folder).unwrap();
    let n = 36usize;
    for k in 0..n {
        let photo = ["chelsea.png", "coffee.png", "rocket.jpg"][k % 3];
        std::fs::write(folder.join(format!("{k:03}.png")), photo_variant(photo, 10 + (k + 100 * round) as u32))
            .unwrap();
    }
    let data = dir.path().join(format!("worker-{round}"));
    std::fs::create_dir(&data).unwrap();
    let doomed = deployment.worker(&data);
    let started: Value = ureq::post(&format!("{a}/api/v1/collections"))
        .send_json(json!({ "folder": folder.to_str().unwrap(), "name": format!("shared {round}") }))
        .unwrap()
        .into_json()
        .unwrap();
    let collection = started["collection"]["id"].as_i64().unwrap();
    let identify_start = Instant::now();
    let progress = |base: &str| get(base, &format!("/api/v1/collections/{collection}"));
    let chunks = || {
        let jobs = get(a, "/api/v1/jobs");
        let ours = |j: &&Value| j["kind"] == "identify" && j["params"]["collection"] == collection;
        jobs["jobs"].as_array().unwrap().iter().filter(ours).cloned().collect::<Vec<Value>>()
    };
    // Both workers hold a chunk at once (an idle worker sleeps up to a second between polls, so a worker that has
    // not claimed anything yet would die holding nothing), and some results are in. The chunks of one collection
    // start together and so end nearly together: the moment results first land is the moment a worker may be
    // between two chunks. So the same two chunks must still be running after a pause before the kill.
    let identify_running = || {
        let running = |j: &&Value| j["state"] == "running";
        chunks().iter().filter(running).map(|j| j["id"].as_i64().unwrap()).collect::<Vec<_>>()
    };
    loop {
        assert!(identify_start.elapsed() < Duration::from_secs(300), "{}", progress(a));
        if progress(a)["processed"].as_u64().unwrap() >= 4 {
            let held = identify_running();
            if held.len() == 2 {
                std::thread::sleep(Duration::from_millis(100));
                if identify_running() == held {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(doomed); // SIGKILL while it holds a chunk
    let done = loop {
        let c = progress(b);
        if c["total"].as_u64().is_some() {
            break c;
        }
        assert!(identify_start.elapsed() < Duration::from_secs(300), "{c}");
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("{n} files identified by two workers (one killed) in {:?}: {done}", identify_start.elapsed());
    assert_eq!(
        (done["total"].as_u64(), done["processed"].as_u64(), done["failed"].as_u64()),
        (Some(n as u64), Some(n as u64), Some(0))
    );
    let results = get(a, &format!("/api/v1/results?collection={collection}&limit=500"));
    let items = results["items"].as_array().unwrap_or_else(|| panic!("{results}"));
    let paths: BTreeSet<&str> = items.iter().map(|i| i["path"].as_str().unwrap()).collect();
    let seqs: BTreeSet<u64> = items.iter().map(|i| i["seq"].as_u64().unwrap()).collect();
    assert_eq!((items.len(), paths.len()), (n, n), "every file once");
    assert_eq!(seqs, (0..n as u64).collect::<BTreeSet<_>>());
    // The killed worker's chunk finishes once its lease has run out and the other worker has taken it over.
    let chunks = loop {
        let chunks = chunks();
        if chunks.iter().all(|j| ["succeeded", "failed"].contains(&j["state"].as_str().unwrap())) {
            break chunks;
        }
        assert!(identify_start.elapsed() < Duration::from_secs(300), "{chunks:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(chunks.len(), n.div_ceil(4), "{chunks:?}");
    assert!(chunks.iter().all(|j| j["state"] == "succeeded"), "{chunks:?}");
    let redone = chunks.iter().any(|j| j["attempt"].as_i64() > Some(1));
    if !redone {
        eprintln!("round {round}: the killed worker held no chunk when it died (between two chunks); again");
    }
    redone
}

/// The job's record in `GET /api/v1/jobs`.
fn job(base: &str, id: i64) -> Value {
    let jobs = get(base, "/api/v1/jobs");
    jobs["jobs"].as_array().unwrap().iter().find(|j| j["id"] == id).cloned().unwrap_or_else(|| panic!("{jobs}"))
}

fn served_model(base: &str, k: u32) -> String {
    let answer = classify(base, &photo_variant("coffee.png", k));
    answer["model_version"].as_str().unwrap().split('/').next().unwrap().to_owned()
}

/// Waits until `base` serves `model`.
fn until_served(base: &str, model: &str) -> Duration {
    let start = Instant::now();
    while served_model(base, 3) != model {
        assert!(start.elapsed() < Duration::from_secs(120), "{base} never switched to {model}");
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

#[test]
fn a_training_job_survives_its_worker_and_promotion_and_rollback_switch_every_replica() {
    let mut deployment = Deployment::new("training");
    deployment.env.push(("FOVEA_CUTOFF", "10".into()));
    let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let digits = dirs[4].path().join("digits");
    common::digits(&digits, 14, 1, 7);
    let a = deployment.replica(dirs[0].path());
    let b = deployment.replica(dirs[1].path());
    let w1 = deployment.worker(dirs[2].path());

    // An import queued from the command line is run by a worker.
    let train = digits.join("train");
    let mut import = deployment.args("import", dirs[4].path());
    import.extend(["--queue", "--labelled", train.to_str().unwrap()]);
    let queued = Command::new(env!("CARGO_BIN_EXE_fovea")).args(&import).envs(deployment.env()).output().unwrap();
    let queued = common::ok(&queued);
    let import_job: i64 =
        queued.split_whitespace().nth(3).and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("{queued}"));
    let start = Instant::now();
    let imported = loop {
        let j = job(&a.base, import_job);
        if j["state"] == "succeeded" {
            break serde_json::from_str::<Value>(j["message"].as_str().unwrap()).unwrap();
        }
        assert!(j["state"] != "failed" && start.elapsed() < Duration::from_secs(300), "{j}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!((imported["imported"].as_u64(), imported["labelled"].as_u64()), (Some(140), Some(140)), "{imported}");
    let base_model = served_model(&a.base, 1);
    let queued: Value = ureq::post(&format!("{}/api/v1/train", b.base))
        .send_json(json!({ "epochs": 3, "seed": 3 }))
        .unwrap()
        .into_json()
        .unwrap();
    let id = queued["id"].as_i64().unwrap_or_else(|| panic!("{queued}"));
    // The first worker dies mid-run; both replicas serve the old model throughout.
    while !(job(&a.base, id)["state"] == "running" && job(&a.base, id)["progress"].as_f64() > Some(0.0)) {
        assert!(start.elapsed() < Duration::from_secs(300), "{}", job(&a.base, id));
        assert_eq!(served_model(&a.base, 2), base_model);
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(w1);
    let _w2 = deployment.worker(dirs[3].path());
    // Promotion is the run's last step, a moment before its job is marked done: a replica may serve the new model
    // while the job still reads "running", but only the model this job promoted (checked once it is done).
    let mut seen_early = BTreeSet::new();
    let finished = loop {
        let j = job(&b.base, id);
        if j["state"] != "running" && j["state"] != "queued" {
            break j;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "{j}");
        for replica in [&a.base, &b.base] {
            let served = served_model(replica, 4);
            if served != base_model {
                seen_early.insert(served);
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!((finished["state"].as_str(), finished["attempt"].as_i64()), (Some("succeeded"), Some(2)), "{finished}");
    // Photos served to a model of digits drift on both replicas; each signal's alert is raised once, not per replica.
    let alerts = get(&a.base, "/api/v1/drift/alerts");
    let signals: Vec<&str> = alerts.as_array().unwrap().iter().map(|a| a["signal"].as_str().unwrap()).collect();
    let distinct: BTreeSet<&&str> = signals.iter().collect();
    assert!(!signals.is_empty() && distinct.len() == signals.len(), "{alerts}");
    assert_eq!(get(&b.base, "/api/v1/drift/alerts"), alerts, "both replicas show the same alerts");
    let outcome: Value = serde_json::from_str(finished["message"].as_str().unwrap()).unwrap();
    let model = outcome["model"].as_str().unwrap().to_owned();
    eprintln!("training job retried by the second worker: {outcome}");
    if !seen_early.is_empty() {
        assert!(
            outcome["promoted"] == true && seen_early == BTreeSet::from([model.clone()]),
            "serving changed while the job ran: {seen_early:?}, but the job's outcome is {outcome}"
        );
    }

    // Promotion on one replica (the weights come from the bucket, written by the worker) switches both.
    if outcome["promoted"] != true {
        ureq::post(&format!("{}/api/v1/models/{model}/promote", a.base)).call().unwrap();
    }
    let took = until_served(&b.base, &model);
    until_served(&a.base, &model);
    eprintln!("replica B served the promoted model {took:?} after the promotion was seen on A");
    ureq::post(&format!("{}/api/v1/models/rollback", b.base)).call().unwrap();
    until_served(&a.base, &base_model);
    until_served(&b.base, &base_model);
}
