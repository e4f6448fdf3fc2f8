//! `fovea bench train`: one fine-tune epoch with and without the frozen-prefix cache, and a full-network
//! forward + backward step, on the real weights and labelled crops of the sample photos.

use std::path::Path;

use fovea_model::{Variant, Weights};
use fovea_train::finetune::{bench, FineTuneConfig, TrainImage};

use super::BenchArgs;

pub fn run(home: &Path, variant: Variant, args: &BenchArgs) -> anyhow::Result<()> {
    let w = Weights::load_safetensors(&fovea_model::ensure_weights(home, variant)?)?;
    let photos = super::service::sample_photos(home)?;
    let n = args.images.max(photos.len());
    let images: Vec<TrainImage> = super::service::distinct_crops(&photos, n, 0)
        .into_iter()
        .enumerate()
        .map(|(i, image)| TrainImage { image: image.into(), label: i % photos.len() })
        .collect();
    let config = FineTuneConfig { input_size: variant.input_size() as u32, ..Default::default() };
    println!(
        "fine-tune epoch over {n} images ({} views each), default policy {}, batch {}",
        config.augmented_views, config.policies, config.batch_size
    );
    let cached = bench(&w, &config, &images, true)?;
    let live = bench(&w, &config, &images, false)?;
    for r in [&live, &cached] {
        println!(
            "  cache {:<3}: prepare {:6.1} s, first epoch {:6.1} s, steady epoch {:6.1} s ({:5.1} img/s)",
            if r.cached { "on" } else { "off" },
            r.prepare_seconds,
            r.first_view_epoch_seconds,
            r.epoch_seconds,
            r.epoch_images_per_second
        );
    }
    println!("  the cache makes a steady epoch {:.2}x faster", live.epoch_seconds / cached.epoch_seconds);
    println!(
        "full network forward + backward + AdamW, batch {}: {:.2} s/step, {:.1} img/s",
        cached.full_step_batch, cached.full_step_seconds, cached.full_images_per_second
    );
    Ok(())
}
