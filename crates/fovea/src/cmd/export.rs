//! `fovea export model|dataset`: the served (or any) model version and the labelled data, in portable formats.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use fovea_app::{DatasetFormat, ModelFormat};
use fovea_model::Variant;

use super::serve::{open_app, runtime, AppArgs};
use super::Engine;

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub app: AppArgs,
    #[command(subcommand)]
    pub what: ExportWhat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModelFormatArg {
    /// The network's weights under PyTorch tensor names
    Safetensors,
    /// An ONNX graph (opset 13) with outputs `embedding` and `logits`; runs in ONNX Runtime
    Onnx,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DatasetFormatArg {
    /// OUT/<class>/<image id>.<ext>, the original files
    Imagefolder,
    /// One CSV row per labelled image: image_id, class, split, width, height, source
    Csv,
}

#[derive(Subcommand, Debug)]
pub enum ExportWhat {
    /// Write a model version (default: the served one)
    Model {
        #[arg(long, value_enum)]
        format: ModelFormatArg,
        /// Model version id (see `fovea models list`)
        #[arg(long)]
        model: Option<String>,
        /// Output file
        out: PathBuf,
    },
    /// Write the labelled images (Unknown left out)
    Dataset {
        #[arg(long, value_enum)]
        format: DatasetFormatArg,
        /// Output folder (imagefolder) or file (csv)
        out: PathBuf,
    },
}

pub fn export(home: &Path, variant: Variant, engine: Engine, args: &ExportArgs) -> anyhow::Result<i32> {
    runtime()?.block_on(async {
        let app = open_app(home, variant, engine, &args.app).await?;
        match &args.what {
            ExportWhat::Model { format, model, out } => {
                let format = match format {
                    ModelFormatArg::Safetensors => ModelFormat::Safetensors,
                    ModelFormatArg::Onnx => ModelFormat::Onnx,
                };
                let id = app.export_model(model.as_deref(), format, out).await?;
                println!("wrote model {id} to {}", out.display());
            }
            ExportWhat::Dataset { format, out } => {
                let format = match format {
                    DatasetFormatArg::Imagefolder => DatasetFormat::ImageFolder,
                    DatasetFormatArg::Csv => DatasetFormat::Csv,
                };
                let n = app.export_dataset(format, out).await?;
                println!("wrote {n} labelled images to {}", out.display());
            }
        }
        Ok(0)
    })
}
