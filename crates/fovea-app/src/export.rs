//! Exports: a model version as safetensors or ONNX, and the labelled dataset as an ImageFolder or a CSV.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// One row per labelled image: id, class, split, size, source, tags.
    Csv,
}

/// Written beside an ImageFolder export (`file,tags`, tags separated by `;`) and read back by a labelled import, so
/// tags such as `staged` and `synthetic` survive the round trip.
pub const TAGS_FILE: &str = "tags.csv";

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
        let weights = self.shared_model_weights(&id).await?;
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
                let mut tagged = Vec::new();
                for r in &rows {
                    let class = folder_name(r.current_class.as_deref().unwrap_or_default());
                    let dir = out.join(&class);
                    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
                    let bytes = self.image_bytes(&r.image.id).await?;
                    let file = format!("{}.{}", r.image.id, extension(&bytes));
                    let path = dir.join(&file);
                    std::fs::write(&path, &bytes).map_err(|e| io(&path, e))?;
                    let tags = self.catalog.image_tags(&r.image.id).await?;
                    if !tags.is_empty() {
                        tagged.push(format!("{},{}", csv_field(&format!("{class}/{file}")), tags.join(";")));
                    }
                }
                if !tagged.is_empty() {
                    let path = out.join(TAGS_FILE);
                    let body = format!("file,tags\n{}\n", tagged.join("\n"));
                    std::fs::write(&path, body).map_err(|e| io(&path, e))?;
                }
            }
            DatasetFormat::Csv => {
                if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
                }
                let file = std::fs::File::create(out).map_err(|e| io(out, e))?;
                let mut w = std::io::BufWriter::new(file);
                let mut put = |line: String| writeln!(w, "{line}").map_err(|e| io(out, e));
                put("image_id,class,split,width,height,source,tags".into())?;
                for r in &rows {
                    let tags = self.catalog.image_tags(&r.image.id).await?.join(";");
                    put(format!(
                        "{},{},{},{},{},{},{tags}",
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

/// The first field of a CSV line (quoted or not) and the rest after its comma.
fn first_csv_field(line: &str) -> Option<(String, &str)> {
    let Some(quoted) = line.strip_prefix('"') else {
        let (field, rest) = line.split_once(',')?;
        return Some((field.to_owned(), rest));
    };
    let mut field = String::new();
    let mut chars = quoted.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '"' {
            field.push(c);
        } else if matches!(chars.peek(), Some((_, '"'))) {
            field.push('"');
            chars.next();
        } else {
            return quoted[i + 1..].strip_prefix(',').map(|rest| (field, rest));
        }
    }
    None
}

/// Reads an export's [`TAGS_FILE`]: tags by file path relative to the folder (empty when there is no such file).
pub fn read_folder_tags(dir: &Path) -> Result<HashMap<String, Vec<String>>> {
    let path = dir.join(TAGS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(io(&path, e)),
    };
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
        let (file, tags) = first_csv_field(line)
            .ok_or_else(|| AppError::Invalid(format!("{} line {}: expected `file,tags`", path.display(), n + 1)))?;
        let tags = tags.split(';').filter(|t| !t.trim().is_empty()).map(fovea_store::normalise_tag);
        out.insert(file, tags.collect::<std::result::Result<Vec<_>, _>>()?);
    }
    Ok(out)
}

impl App {
    /// Puts back the tags an export recorded in `dir`'s [`TAGS_FILE`] on the images just imported from it
    /// (`imported`: each file's path and image id), as undoable bulk actions. Returns how many tags were added.
    pub async fn apply_folder_tags(&self, dir: &Path, imported: &[(PathBuf, String)], user: &str) -> Result<u64> {
        let tags = read_folder_tags(dir)?;
        let mut by_tag: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (path, id) in imported {
            let relative = path.strip_prefix(dir).unwrap_or(path);
            let key = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            for tag in tags.get(&key).into_iter().flatten() {
                by_tag.entry(tag).or_default().push(id.clone());
            }
        }
        let mut added = 0;
        for (tag, ids) in by_tag {
            added += self.tag_images(&ids, tag, user).await?;
        }
        Ok(added)
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

    #[test]
    fn the_first_csv_field_may_be_quoted() {
        assert_eq!(super::first_csv_field("a/b.png,staged"), Some(("a/b.png".into(), "staged")));
        assert_eq!(super::first_csv_field("\"x, \"\"y\"\"/b.png\",s;t"), Some(("x, \"y\"/b.png".into(), "s;t")));
        assert_eq!(super::first_csv_field("\"unterminated,x"), None);
        assert_eq!(super::first_csv_field("no comma"), None);
    }
}
