//! Session-level tests on a tiny LiteNet-shaped network (4 blocks in 3 stages, 32 px inputs).

use std::sync::atomic::AtomicBool;

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use fovea_model::{LiteNet, Weights};
use image::{Rgb, RgbImage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cache::{Set, TrainImage};
use super::net::values;
use super::session::Session;
use super::*;

/// A small network under the real PyTorch names: stem 8 → block 0 (stage 0, 8→4, no expand) → blocks 1–2
/// (stage 1, 4→8, stride 2, then a residual one) → block 3 (stage 2, 8→12, 5×5, stride 2) → head 16 → fc.
pub(crate) fn tiny_weights(seed: u64, classes: usize) -> Weights {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = Weights::default();
    let conv = |w: &mut Weights, rng: &mut StdRng, name: String, shape: Vec<usize>| {
        let fan_in: usize = shape[1..].iter().product();
        let bound = (6.0 / fan_in as f32).sqrt();
        let v = (0..shape.iter().product()).map(|_| rng.random_range(-bound..bound)).collect();
        w.tensors.insert(name, (shape, v));
    };
    let bn = |w: &mut Weights, rng: &mut StdRng, pre: String, c: usize| {
        for (suffix, centre, spread) in
            [("weight", 1.0, 0.2), ("bias", 0.1, 0.1), ("running_mean", 0.0, 0.1), ("running_var", 1.0, 0.3)]
        {
            let v = (0..c).map(|_| centre + rng.random_range(-spread..spread)).collect();
            w.tensors.insert(format!("{pre}.{suffix}"), (vec![c], v));
        }
    };
    conv(&mut w, &mut rng, "_conv_stem.weight".into(), vec![8, 3, 3, 3]);
    bn(&mut w, &mut rng, "_bn0".into(), 8);
    let mut cin = 8;
    for (i, (cout, expand, k)) in [(4, 1, 3), (8, 2, 3), (8, 2, 3), (12, 2, 5)].into_iter().enumerate() {
        let pre = format!("_blocks.{i}.");
        let e = cin * expand;
        if expand != 1 {
            conv(&mut w, &mut rng, format!("{pre}_expand_conv.weight"), vec![e, cin, 1, 1]);
            bn(&mut w, &mut rng, format!("{pre}_bn0"), e);
        }
        conv(&mut w, &mut rng, format!("{pre}_depthwise_conv.weight"), vec![e, 1, k, k]);
        bn(&mut w, &mut rng, format!("{pre}_bn1"), e);
        conv(&mut w, &mut rng, format!("{pre}_project_conv.weight"), vec![cout, e, 1, 1]);
        bn(&mut w, &mut rng, format!("{pre}_bn2"), cout);
        cin = cout;
    }
    conv(&mut w, &mut rng, "_conv_head.weight".into(), vec![16, cin, 1, 1]);
    bn(&mut w, &mut rng, "_bn1".into(), 16);
    conv(&mut w, &mut rng, "_fc.weight".into(), vec![classes, 16, 1, 1]);
    if let Some((shape, _)) = w.tensors.get_mut("_fc.weight") {
        *shape = vec![classes, 16];
    }
    w.tensors.insert("_fc.bias".into(), (vec![classes], vec![0.0; classes]));
    w
}

/// Two easily separated classes: warm red-ish noisy photos vs cool blue-ish ones, each with a bright stripe at a
/// random place (a nuisance the classifier must ignore), 40×36 px (not square, so the crop path is exercised).
pub(crate) fn stripes(n_per_class: usize, seed: u64) -> Vec<TrainImage> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for i in 0..2 * n_per_class {
        let label = i % 2;
        let offset = rng.random_range(4..32u32);
        let vertical = rng.random_bool(0.5);
        let image = RgbImage::from_fn(40, 36, |x, y| {
            let noise = rng.random_range(0..40u8);
            let stripe = if vertical { x.abs_diff(offset) < 2 } else { y.abs_diff(offset) < 2 };
            match (label, stripe) {
                (_, true) => Rgb([230, 230, 230]),
                (0, false) => Rgb([190 + noise, 50 + noise, 30 + noise]),
                _ => Rgb([30 + noise, 60 + noise, 190 + noise]),
            }
        });
        out.push(TrainImage { image: image.into(), label });
    }
    out
}

pub(crate) fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("c{i}")).collect()
}

pub(crate) fn small_config(policy: &str) -> FineTuneConfig {
    FineTuneConfig {
        policies: policy.parse().unwrap(),
        input_size: 32,
        batch_size: 6,
        epochs: 3,
        augmented_views: 2,
        backbone_lr: 1e-3,
        classifier_lr: 1e-3,
        ..FineTuneConfig::default()
    }
}

fn session<'a>(
    w: &Weights,
    train: &'a [TrainImage],
    val: &'a [TrainImage],
    config: &FineTuneConfig,
) -> (Session<'a>, net::Tail) {
    Session::new(w, &names(2), None, train, val, config, &mut |_| {}, &AtomicBool::new(false)).unwrap()
}

const TAIL_FROM_STAGE2: &str = "all=freeze,stage2=finetune,head=finetune,classifier=reinit";

#[test]
fn cached_and_live_paths_agree_on_the_first_step_and_after_it() {
    let w = tiny_weights(1, 5);
    let train = stripes(6, 2);
    let mut cached_cfg = small_config(TAIL_FROM_STAGE2);
    cached_cfg.cache = true;
    let live_cfg = FineTuneConfig { cache: false, ..cached_cfg.clone() };
    let (mut a, ta) = session(&w, &train, &[], &cached_cfg);
    let (mut b, tb) = session(&w, &train, &[], &live_cfg);
    assert!(a.features.is_cached() && !b.features.is_cached());
    assert_eq!(a.features.dims, [8, 8, 8]);
    let items = a.epoch_items(0);
    assert_eq!(items, b.epoch_items(0));
    let batch = &items[..6];
    let (ta, la) = a.step(ta, batch).unwrap();
    let (tb, lb) = b.step(tb, batch).unwrap();
    assert!((la - lb).abs() < 1e-4, "cached {la} vs live {lb}");
    // Epoch 1 shows view 1, which the cached path computes and stores on first use.
    let items = a.epoch_items(1);
    assert!(items.iter().all(|&(_, v)| v == 1));
    let (ta, la2) = a.step(ta, &items[..6]).unwrap();
    let (tb, lb2) = b.step(tb, &items[..6]).unwrap();
    assert!((la2 - lb2).abs() < 1e-4, "second step: cached {la2} vs live {lb2}");
    let (_, la3) = a.step(ta, &items[..6]).unwrap();
    let (_, lb3) = b.step(tb, &items[..6]).unwrap();
    assert!((la3 - lb3).abs() < 1e-4, "from the filled cache: {la3} vs live {lb3}");
    // Every view really is distinct input (augmentation is on) and the live path regenerates the same one.
    let v0 = a.features.input(Set::Train, 0, 0).unwrap();
    let v1 = a.features.input(Set::Train, 0, 1).unwrap();
    assert_ne!(v0, v1);
    assert_eq!(v1, b.features.input(Set::Train, 0, 1).unwrap());
}

fn bits(w: &Weights, name: &str) -> Vec<u32> {
    w.tensors[name].1.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn frozen_groups_stay_bit_for_bit_and_trained_groups_move() {
    let w = tiny_weights(3, 1000);
    let train = stripes(6, 4);
    // Head frozen *after* a trainable stage: it stays in the tail, gradient flows through it, it never moves.
    let config = small_config("all=freeze,stage1=finetune,classifier=reinit");
    let out = fine_tune(&w, &names(2), None, &train, &[], &config, &mut |_| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!(out.history.len(), 3);
    assert_eq!(out.best_epoch, 3);
    let specs = fovea_model::network::block_specs(&w).unwrap();
    let group = |n: &str| Group::of_tensor(n, |b| specs.get(b).map(|s| s.stage));
    let mut moved = 0;
    for (name, (shape, _)) in &w.tensors {
        let (new_shape, _) = &out.weights.tensors[name];
        match group(name) {
            Some(Group::Classifier) => continue,
            Some(Group::Stage(1)) if !name.contains("running") => {
                assert_eq!(shape, new_shape);
                moved += usize::from(bits(&w, name) != bits(&out.weights, name));
            }
            _ => assert_eq!(bits(&w, name), bits(&out.weights, name), "{name} changed"),
        }
    }
    // Stage 1 has 2 blocks × (expand, depthwise, project) × (conv, γ, β) = 18 trained tensors.
    assert!(moved >= 15, "only {moved} stage-1 tensors moved");
    assert_eq!(out.weights.tensors.len(), w.tensors.len());
    assert_eq!(out.weights.shape("_fc.weight"), Some(&[2, 16][..]));
    assert_eq!(out.weights.shape("_fc.bias"), Some(&[2][..]));
}

#[test]
fn written_back_weights_reload_with_the_trained_logits() {
    let w = tiny_weights(5, 3);
    let train = stripes(5, 6);
    let (mut s, tail) = session(&w, &train, &[], &small_config("stem=finetune,classifier=reinit"));
    let (tail, _) = s.epoch(tail, 0, &AtomicBool::new(false), &mut |_, _, _| {}).unwrap();
    let exported = s.weights_with(&s.layout.export(&tail).unwrap());

    // The trained module's own probabilities on the centre crops (view 0)...
    let items: Vec<(usize, usize)> = (0..train.len()).map(|i| (i, 0)).collect();
    let x = Tensor::<4>::from_data(
        TensorData::new(s.features.batch(Set::Train, &items).unwrap(), [items.len(), 3, 32, 32]),
        &Device::flex(),
    );
    let (trained, _) = values(softmax(tail.valid().logits(x), 1)).unwrap();
    // ... match serving's LiteNet (burn BatchNorm, no fold) built from the written-back tensors.
    let images: Vec<RgbImage> = train.iter().map(|t| t.image.get().unwrap().into_owned()).collect();
    let reloaded: Vec<f32> = predict(&exported, &images, 32, 4).unwrap().concat();
    let worst = trained.iter().zip(&reloaded).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst < 1e-4, "probabilities differ by {worst}");
    assert_ne!(bits(&w, "_conv_stem.weight"), bits(&exported, "_conv_stem.weight"));

    // The ONNX export accepts it (the classifier width comes from the tensor shapes).
    let onnx = std::env::temp_dir().join(format!("fovea-finetune-{}.onnx", std::process::id()));
    fovea_model::onnx::export_onnx(&exported, 32, &onnx).unwrap();
    assert!(std::fs::metadata(&onnx).unwrap().len() > 0);
    std::fs::remove_file(&onnx).unwrap();

    // The fast inference path loads the same file and agrees with burn on the logits.
    let fast = fovea_model::FastBackbone::new(&exported, fovea_model::Variant::Lite0, 1).unwrap();
    let input = fovea_vision::to_input(&images[0], 224);
    let fast_logits = fovea_model::Backbone::run(&fast, &input, 1).unwrap().logits;
    let net = LiteNet::from_weights(&exported, &Device::flex()).unwrap();
    let x = Tensor::<4>::from_data(TensorData::new(input, [1, 3, 224, 224]), &Device::flex());
    let (burn_logits, _) = values(net.logits(net.embed(x))).unwrap();
    assert_eq!(fast_logits.len(), 2);
    let worst = fast_logits.iter().zip(&burn_logits).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst < 1e-3, "fast path logits differ by {worst}: {fast_logits:?} vs {burn_logits:?}");
}

#[test]
fn linear_probe_caches_pooled_embeddings() {
    let w = tiny_weights(7, 4);
    let train = stripes(3, 8);
    let (s, _) = session(&w, &train, &[], &small_config("all=freeze,classifier=reinit"));
    assert_eq!(s.features.dims, [16, 1, 1]);
}

#[test]
fn reinit_replaces_a_backbone_group_deterministically() {
    let w = tiny_weights(9, 3);
    let train = stripes(3, 10);
    let config = FineTuneConfig { epochs: 1, ..small_config("all=freeze,stage2=reinit,head=finetune") };
    let run = || fine_tune(&w, &names(2), None, &train, &[], &config, &mut |_| {}, &AtomicBool::new(false)).unwrap();
    let (a, b) = (run(), run());
    let name = "_blocks.3._depthwise_conv.weight";
    assert_ne!(bits(&w, name), bits(&a.weights, name));
    assert_eq!(bits(&a.weights, name), bits(&b.weights, name));
    // Identity BatchNorm statistics, which training never changes.
    assert!(a.weights.tensors["_blocks.3._bn1.running_var"].1.iter().all(|&v| v == 1.0));
    assert!(a.weights.tensors["_blocks.3._bn1.running_mean"].1.iter().all(|&v| v == 0.0));
    assert_eq!(bits(&w, "_blocks.2._bn1.weight"), bits(&a.weights, "_blocks.2._bn1.weight"));
}
