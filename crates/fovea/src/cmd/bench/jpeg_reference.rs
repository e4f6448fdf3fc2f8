//! An independent reference for the large-JPEG line: the same file decoded by libjpeg-turbo through Pillow, full size
//! and in its DCT-domain draft mode, in the same run. Pillow is not a dependency of fovea; when python3 with Pillow
//! is missing the line says so instead.

use std::path::Path;
use std::process::Command;

/// Pillow's median times (ms) on one file: full decode, draft at the scale fovea used, and draft at 1/8 (where
/// only the DC coefficients are transformed, so what remains is mostly entropy decoding).
pub struct PillowTimes {
    pub version: String,
    pub full_ms: f64,
    pub draft_ms: f64,
    pub eighth_ms: f64,
}

const SCRIPT: &str = r#"
import io, sys, time
import PIL
from PIL import Image
data = open(sys.argv[1], "rb").read()
w, h = int(sys.argv[2]), int(sys.argv[3])
def median(f):
    f()
    t = []
    for _ in range(9):
        s = time.perf_counter(); f(); t.append(time.perf_counter() - s)
    return sorted(t)[4] * 1e3
def full():
    Image.open(io.BytesIO(data)).load()
def draft(size):
    im = Image.open(io.BytesIO(data)); im.draft("RGB", size); im.load()
full_ms = median(full)
draft_ms = median(lambda: draft((w, h)))
eighth_ms = median(lambda: draft((1, 1)))
print(PIL.__version__, full_ms, draft_ms, eighth_ms)
"#;

/// Times `jpeg` with Pillow; `reduced` is the size fovea decoded it at. `None` when python3 or Pillow is missing.
pub fn pillow_times(jpeg: &[u8], reduced: (u32, u32), dir: &Path) -> Option<PillowTimes> {
    let file = dir.join("large.jpg");
    std::fs::write(&file, jpeg).ok()?;
    let out = Command::new(fovea_model::fetch::python())
        .args(["-c", SCRIPT])
        .arg(&file)
        .args([reduced.0.to_string(), reduced.1.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut fields = text.split_whitespace();
    let version = fields.next()?.to_owned();
    let mut ms = fields.map(|f| f.parse::<f64>().ok());
    Some(PillowTimes { version, full_ms: ms.next()??, draft_ms: ms.next()??, eighth_ms: ms.next()?? })
}
