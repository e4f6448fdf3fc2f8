//! A fine-tune of the real ImageNet Lite0 on a small set made from the sample photos, judged the way serving
//! judges: on held-out images, with a nearest-class-mean head fitted on the training images' embeddings (the
//! served model's own rule for user classes), the fine-tuned network must be at least as good as the served
//! one, and its fine-tuned classifier must have learned the classes. Runs in the test command (a few classes,
//! a few dozen images, two epochs).

use std::sync::atomic::AtomicBool;

use fovea_model::{Backbone, FastBackbone, Variant, Weights};
use fovea_train::finetune::{fine_tune, predict, FineTuneConfig, TrainImage};
use image::RgbImage;

const PHOTOS: [(&str, &str); 4] =
    [("cat", "chelsea.png"), ("coffee", "coffee.png"), ("rocket", "rocket.jpg"), ("motorcycle", "motorcycle_left.png")];

/// A crop covering `frac` of each side at a position chosen by `k`, optionally mirrored and darkened: views
/// of one photo that differ as much as a user's different shots of one thing might.
fn view(photo: &RgbImage, k: u32, frac: u32, flip: bool, dim: u8) -> RgbImage {
    let (w, h) = photo.dimensions();
    let (cw, ch) = (w * frac / 100, h * frac / 100);
    let (x, y) = ((k * 37) % (w - cw + 1), (k * 53) % (h - ch + 1));
    let mut img = image::imageops::crop_imm(photo, x, y, cw, ch).to_image();
    if flip {
        img = image::imageops::flip_horizontal(&img);
    }
    for p in img.pixels_mut() {
        p.0 = p.0.map(|c| c.saturating_sub(dim));
    }
    img
}

fn embeddings(weights: &Weights, images: &[TrainImage]) -> Vec<Vec<f32>> {
    let net = FastBackbone::new(weights, Variant::Lite0, 2).unwrap();
    images
        .iter()
        .map(|t| net.run(&fovea_vision::to_input(&t.image.get().unwrap(), 224), 1).unwrap().embedding(0).to_vec())
        .collect()
}

fn unit(v: &[f32]) -> Vec<f64> {
    let n = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt().max(1e-12);
    v.iter().map(|&x| f64::from(x) / n).collect()
}

/// Accuracy on `test` of the nearest class mean (cosine) of the `train` embeddings.
fn ncm_accuracy(weights: &Weights, train: &[TrainImage], test: &[TrainImage], classes: usize) -> f64 {
    let (tr, te) = (embeddings(weights, train), embeddings(weights, test));
    let dim = tr[0].len();
    let mut means = vec![vec![0.0f64; dim]; classes];
    for (e, t) in tr.iter().zip(train) {
        for (m, x) in means[t.label].iter_mut().zip(unit(e)) {
            *m += x;
        }
    }
    let right = te
        .iter()
        .zip(test)
        .filter(|(e, t)| {
            let e = unit(e);
            let score = |m: &Vec<f64>| {
                m.iter().zip(&e).map(|(a, b)| a * b).sum::<f64>() / m.iter().map(|a| a * a).sum::<f64>().sqrt()
            };
            let best = (0..classes).max_by(|&a, &b| score(&means[a]).total_cmp(&score(&means[b]))).unwrap();
            best == t.label
        })
        .count();
    right as f64 / test.len() as f64
}

#[test]
fn fine_tuned_lite0_is_at_least_as_good_as_the_served_model_on_held_out_images() {
    let home = fovea_model::fovea_home();
    let served = Weights::load_safetensors(&fovea_model::ensure_weights(&home, Variant::Lite0).unwrap()).unwrap();
    let dir = fovea_model::fetch::ensure_sample_photos(&home).unwrap();
    let photos: Vec<RgbImage> =
        PHOTOS.iter().map(|(_, f)| fovea_vision::decode_file(&dir.join(f), &Default::default()).unwrap()).collect();
    let set = |ks: std::ops::Range<u32>, frac: u32, flip: bool, dim: u8| -> Vec<TrainImage> {
        ks.flat_map(|k| photos.iter().enumerate().map(move |(label, p)| (k, label, p)))
            .map(|(k, label, p)| TrainImage { image: view(p, k, frac, flip && k % 2 == 1, dim).into(), label })
            .collect()
    };
    // Train: 6 large crops per class; validation: 2 more; held out: 4 tighter, mirrored, darker crops.
    let (train, validation, test) = (set(0..6, 80, true, 0), set(6..8, 75, false, 0), set(8..12, 55, true, 40));
    let classes: Vec<String> = PHOTOS.iter().map(|(c, _)| c.to_string()).collect();
    let config = FineTuneConfig { epochs: 2, batch_size: 8, augmented_views: 2, seed: 5, ..Default::default() };

    let start = std::time::Instant::now();
    let tuned =
        fine_tune(&served, &classes, None, &train, &validation, &config, &mut |_| {}, &AtomicBool::new(false)).unwrap();
    let seconds = start.elapsed().as_secs_f64();

    let served_acc = ncm_accuracy(&served, &train, &test, classes.len());
    let tuned_acc = ncm_accuracy(&tuned.weights, &train, &test, classes.len());
    let images: Vec<RgbImage> = test.iter().map(|t| t.image.get().unwrap().into_owned()).collect();
    let probs = predict(&tuned.weights, &images, 224, 8).unwrap();
    let argmax = |p: &Vec<f32>| (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
    let classifier_acc =
        probs.iter().zip(&test).filter(|(p, t)| argmax(p) == t.label).count() as f64 / test.len() as f64;
    eprintln!(
        "fine-tune {seconds:.1}s, best epoch {}; held-out accuracy: served + NCM {served_acc:.3}, \
         fine-tuned + NCM {tuned_acc:.3}, fine-tuned classifier {classifier_acc:.3}",
        tuned.best_epoch
    );
    assert!(tuned.history.iter().all(|r| r.train_loss.is_finite()), "{:?}", tuned.history);
    assert!(tuned_acc >= served_acc, "fine-tuning made held-out accuracy worse: {tuned_acc} < {served_acc}");
    assert!(classifier_acc >= 0.75, "the fine-tuned classifier learned too little: {classifier_acc}");
}
