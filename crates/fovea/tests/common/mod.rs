//! What the end-to-end tests share: a `fovea serve` child process and photo variants made on the fly.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Cursor};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// A running `fovea serve --open`; killed when dropped.
pub struct Served {
    pub child: Child,
    pub base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server on a free loopback port and waits until it listens.
pub fn serve(data: &Path) -> Served {
    let data = data.to_str().unwrap();
    serve_with(&["serve", "--open", "--listen", "127.0.0.1:0", "--data", data], &[])
}

/// Starts `fovea ARGS` with extra environment variables and waits for "fovea is serving".
pub fn serve_with(args: &[&str], envs: &[(&str, &str)]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fovea"))
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("server exited before listening").unwrap();
        if let Some(rest) = line.strip_prefix("fovea is serving ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Served { child, base }
}

/// A PNG crop of one of the sample photos: similar to the original, never byte-identical for different `k`.
pub fn photo_variant(name: &str, k: u32) -> Vec<u8> {
    let dir = fovea_model::fetch::ensure_sample_photos(&fovea_model::fovea_home()).unwrap();
    let img = fovea_vision::decode_file(&dir.join(name), &Default::default()).unwrap();
    let (w, h) = (img.width() * (90 - k % 20) / 100, img.height() * (90 - k % 17) / 100);
    let crop = image::imageops::crop_imm(&img, (k * 3) % (img.width() - w), (k * 2) % (img.height() - h), w, h);
    let mut out = Vec::new();
    crop.to_image().write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// A command's stdout, after asserting it succeeded (its output shown when it did not).
pub fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// scikit-learn's 8×8 digits upscaled to 32×32 by `scripts/make_datasets.py`: `train/<digit>/` and
/// `test/<digit>/`, disjoint and seeded.
pub fn digits(root: &Path, train: usize, test: usize, seed: u64) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make_datasets.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["digits", root.to_str().unwrap(), "--train", &train.to_string(), "--test", &test.to_string()])
        .args(["--scale", "4", "--seed", &seed.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
