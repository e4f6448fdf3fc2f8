//! ONNX Runtime as a [`Backbone`]: the exported ONNX graph run by the `onnxruntime` library, loaded at run time.
//!
//! The library is not linked at build time (the `ort` crate's default features download binaries, which this
//! project cannot rely on); it is opened from `ORT_DYLIB_PATH` or from the pinned `onnxruntime` wheel,
//! installed under the fovea home. It serves as a yardstick for the native paths and as an optional serving backend.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

use crate::backbone::{check_input, Backbone, Embedded};
use crate::weights::Weights;
use crate::{ModelError, Result, Variant};

fn ort_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Checkpoint(format!("onnx runtime: {e}"))
}

/// Where the ONNX Runtime shared library is: `ORT_DYLIB_PATH`, else the pinned `onnxruntime` wheel's library,
/// installed under the fovea home on first use.
pub fn find_dylib() -> Result<PathBuf> {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) => Ok(PathBuf::from(p)),
        None => crate::fetch::ensure_onnxruntime(&crate::fovea_home()),
    }
}

/// ONNX Runtime allows one environment per process, and the library can be loaded only once; the first caller's
/// library wins and a failure is remembered, so every later backbone gets the same answer.
fn environment() -> Result<&'static Environment> {
    static ENV: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let lib = find_dylib().map_err(|e| e.to_string())?;
        ort::init_from(&lib)
            .map_err(|e| format!("loading {}: {e}", lib.display()))?
            .with_name("fovea")
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(ort_err)
}

/// The network as an ONNX Runtime session. `Session::run` needs `&mut`, hence the mutex; callers run one batch at a
/// time on a compute thread anyway, and ONNX Runtime parallelises inside each run.
pub struct OrtBackbone {
    session: Mutex<Session>,
    variant: Variant,
    dim: usize,
    size: usize,
}

impl OrtBackbone {
    /// Loads an ONNX file written by [`crate::onnx::export_onnx`] for `variant`'s input size; `threads` is ONNX
    /// Runtime's intra-op thread count (0 lets it pick one per core).
    pub fn from_file(path: &Path, variant: Variant, threads: usize) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_bytes(&bytes, variant, threads)
    }

    /// Exports `weights` to ONNX in memory and loads the result, so no temporary file is needed.
    pub fn from_weights(weights: &Weights, variant: Variant, threads: usize) -> Result<Self> {
        Self::from_bytes(&crate::onnx::onnx_bytes(weights, variant.input_size())?, variant, threads)
    }

    fn from_bytes(model: &[u8], variant: Variant, threads: usize) -> Result<Self> {
        let session = Session::builder(environment()?)
            .map_err(ort_err)?
            .with_intra_threads(threads)
            .map_err(ort_err)?
            .commit_from_memory(model)
            .map_err(ort_err)?;
        // The embedding width comes from the graph's declared output shape [N, dim].
        let dim = session
            .outputs()
            .iter()
            .find(|o| o.name() == "embedding")
            .and_then(|o| o.dtype().tensor_shape().and_then(|s| s.last().copied()))
            .filter(|&d| d > 0)
            .ok_or_else(|| ort_err("the model has no `embedding` output of known width"))? as usize;
        Ok(OrtBackbone { session: Mutex::new(session), variant, dim, size: variant.input_size() })
    }
}

impl Backbone for OrtBackbone {
    fn variant(&self) -> Variant {
        self.variant
    }
    fn input_size(&self) -> usize {
        self.size
    }
    fn embedding_dim(&self) -> usize {
        self.dim
    }
    fn engine(&self) -> &'static str {
        "ort"
    }
    fn run(&self, input: &[f32], batch: usize) -> Result<Embedded> {
        check_input(input, batch, self.size)?;
        // A view, not a copy: ONNX Runtime reads the caller's buffer directly.
        let x = TensorRef::from_array_view(([batch, 3, self.size, self.size], input)).map_err(ort_err)?;
        let mut session = self.session.lock().map_err(|_| ort_err("a previous run panicked"))?;
        let outputs = session.run(ort::inputs!["input" => x]).map_err(ort_err)?;
        let take = |name: &str| -> Result<Vec<f32>> {
            let value = outputs.get(name).ok_or_else(|| ort_err(format!("no `{name}` output")))?;
            Ok(value.try_extract_tensor::<f32>().map_err(ort_err)?.1.to_vec())
        };
        let (embeddings, logits) = (take("embedding")?, take("logits")?);
        Ok(Embedded { batch, embeddings, logits })
    }
}
