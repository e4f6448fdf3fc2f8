use std::path::{Path, PathBuf};

use clap::Args;
use fovea_model::Variant;

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Also install the sample photos (scikit-image's public-domain pictures) and print their folder
    #[arg(long)]
    pub samples: bool,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Legacy PyTorch checkpoint (.pth)
    pub input: PathBuf,
    /// Output safetensors file
    pub output: PathBuf,
}

pub fn fetch(home: &Path, variant: Variant, args: &FetchArgs) -> anyhow::Result<i32> {
    let w = fovea_model::ensure_weights(home, variant)?;
    println!("weights: {}", w.display());
    let names = fovea_model::ensure_imagenet_names(home)?;
    println!("classes: {} ImageNet names", names.len());
    if args.samples {
        println!("samples: {}", fovea_model::fetch::ensure_sample_photos(home)?.display());
    }
    Ok(0)
}

pub fn convert(args: &ConvertArgs) -> anyhow::Result<i32> {
    let n = fovea_model::convert_checkpoint(&args.input, &args.output)?;
    println!("wrote {n} tensors to {}", args.output.display());
    Ok(0)
}
