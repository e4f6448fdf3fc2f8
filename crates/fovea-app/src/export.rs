//! Exports: a model version as safetensors or ONNX, and the labelled dataset as an ImageFolder or a CSV.

use std::io::Write;
use std::path::Path;

use fovea_store::ImageFilter;

use crate::{App, AppError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    Safetensors,
    Onnx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetFormat {
    /// One sub-folder per class holding the original image files.
    ImageFolder,
    /// One row per labelled image: id, class, split, size, source.
    Csv,
}

fn io(path: &Path, e: std::io::Error) -> AppError {
    AppError::Internal(format!("{}: {e}", path.display()))
}

/// File extension for stored image bytes, from their content.
fn extension(bytes: &[u8]) -> &'static str {
    match fovea_vision::image::guess_format(bytes) {
        Ok(fovea_vision::image::ImageFormat::Jpeg) => "jpg",
        Ok(fovea_vision::image::ImageFormat::Png) => "png",
        Ok(fovea_vision::image::ImageFormat::Gif) => "gif",
        Ok(fovea_vision::image::ImageFormat::WebP) => "webp",
        Ok(fovea_vision::image::ImageFormat::Bmp) => "bmp",
        Ok(fovea_vision::image::ImageFormat::Tiff) => "tiff",
        _ => "bin",
    }
}

/// A class name as a safe folder name (no separators, no leading dots).
fn folder_name(class: &str) -> String {
    let s: String = class.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    let s = s.trim_start_matches('.').to_owned();
    if s.is_empty() {
        "_".into()
    } else {
        s
    }
}

/// One CSV field: quoted (with doubled quotes) when it holds a comma, quote or line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

impl App {
    /// Writes model version `id` (the served one when None) to `out`; returns the version exported.
    pub async fn export_model(&self, id: Option<&str>, format: ModelFormat, out: &Path) -> Result<String> {
        let id = match id {
            Some(id) => self.model(id).await?.id,
            None => self.served_model().await,
        };
        let weights = self.model_weights(&id)?;
        match format {
            ModelFormat::Safetensors => crate::models::write_weights(out, &id, &weights)?,
            ModelFormat::Onnx => fovea_model::onnx::export_onnx(&weights, self.compute.input_size(), out)?,
        }
        Ok(id)
    }

    /// Writes every labelled image (Unknown left out) to `out`; returns how many.
    pub async fn export_dataset(&self, format: DatasetFormat, out: &Path) -> Result<usize> {
        let unknown = self.catalog.unknown_class().await?.name;
        let rows = self.catalog.list_images(&ImageFilter { labelled: Some(true), ..Default::default() }).await?;
        let rows: Vec<_> =
            rows.into_iter().filter(|r| r.current_class.as_ref().is_some_and(|c| *c != unknown)).collect();
        match format {
            DatasetFormat::ImageFolder => {
                for r in &rows {
                    let class = r.current_class.as_deref().unwrap_or_default();
                    let dir = out.join(folder_name(class));
                    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
                    let bytes = self.image_bytes(&r.image.id).await?;
                    let path = dir.join(format!("{}.{}", r.image.id, extension(&bytes)));
                    std::fs::write(&path, &bytes).map_err(|e| io(&path, e))?;
                }
            }
            DatasetFormat::Csv => {
                if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
                }
                let file = std::fs::File::create(out).map_err(|e| io(out, e))?;
                let mut w = std::io::BufWriter::new(file);
                let mut put = |line: String| writeln!(w, "{line}").map_err(|e| io(out, e));
                put("image_id,class,split,width,height,source".into())?;
                for r in &rows {
                    put(format!(
                        "{},{},{},{},{},{}",
                        r.image.id,
                        csv_field(r.current_class.as_deref().unwrap_or_default()),
                        r.image.split,
                        r.image.width,
                        r.image.height,
                        csv_field(&r.image.source)
                    ))?;
                }
                w.flush().map_err(|e| io(out, e))?;
            }
        }
        Ok(rows.len())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn class_names_become_safe_folder_names() {
        assert_eq!(super::folder_name("../etc"), "_etc");
        assert_eq!(super::folder_name("a/b"), "a_b");
        assert_eq!(super::folder_name("..."), "_");
        assert_eq!(super::folder_name("Golden retriever"), "Golden retriever");
        assert_eq!(super::csv_field("a,b"), "\"a,b\"");
    }
}
