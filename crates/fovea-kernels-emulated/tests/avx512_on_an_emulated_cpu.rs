//! The AVX-512 path on a CPU that has it, emulated: Bochs (through the `bochscpu-python` package) runs the library's
//! own machine code for every kernel case and for a whole Lite0 forward pass at 224x224, and the results are checked
//! against f64 references and against the portable path on the real CPU. On a machine without AVX-512 this is the only
//! place that path runs. `scripts/setup.sh --test` installs the package; without it the test fails.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The run takes about half a minute; a hung emulation must not hold the suite.
const LIMIT: Duration = Duration::from_secs(600);

/// The shared library Cargo built beside this test (in `deps/`, and in the profile folder above it).
fn shared_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("test binary folder");
    let name = format!("{}fovea_kernels_emulated{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    [deps.join(&name), deps.parent().unwrap_or(deps).join(&name)]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} is not beside {} (cargo builds it with this crate)", deps.display()))
}

#[test]
fn avx512_kernels_and_network_match_their_references_on_an_emulated_cpu() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("emulate.py");
    let python = std::env::var("FOVEA_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(shared_library())
        .args(["--isa", "avx512", "--network", "224"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let mut pipes = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
    let readers =
        (std::thread::spawn(move || read_all(&mut pipes.0)), std::thread::spawn(move || read_all(&mut pipes.1)));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the emulator") {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("the emulated run took over {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (readers.0.join().expect("stdout reader"), readers.1.join().expect("stderr reader"));
    println!("{stdout}");
    assert!(status.success(), "the emulated AVX-512 run failed ({status}):\n{stderr}");
    let cases = fovea_kernels_emulated::fovea_case_count();
    assert!(stdout.contains(&format!("{cases} of {cases} cases passed")), "not every case ran:\n{stdout}");
    assert!(stdout.contains("EfficientNet-Lite0"), "the network case did not run:\n{stdout}");
}

fn read_all(pipe: &mut impl Read) -> String {
    let mut text = String::new();
    let _ = pipe.read_to_string(&mut text);
    text
}
