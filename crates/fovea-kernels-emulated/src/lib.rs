//! C entry points over `fovea_kernels::check`'s cases, for `emulate.py`: it loads this crate as a shared library, builds
//! the cases on the real CPU, runs [`fovea_case_run`] for the AVX-512 path on an emulated CPU that has AVX-512 (Bochs,
//! through the `bochscpu-python` package) and checks the outputs here against the f64 references.
//!
//! [`fovea_case_run`] allocates nothing and makes no system call, because the emulated CPU runs it with no operating
//! system underneath; everything else runs on the real CPU.

use fovea_kernels::check::KernelCase;
use fovea_kernels::random::{NetSpec, Rng};
use fovea_kernels::{Config, FastLite, Isa};

/// One kernel case of `fovea_kernels::check`: its inputs, outputs and reference.
pub struct Case(Box<dyn KernelCase>);

/// The path numbered `isa` in `Isa::ALL` (0 portable, 1 AVX2, 2 AVX-512).
fn isa(isa: u32) -> Option<Isa> {
    Isa::ALL.get(isa as usize).copied()
}

/// How many cases [`fovea_case_new`] can build.
#[no_mangle]
pub extern "C" fn fovea_case_count() -> usize {
    fovea_kernels::check::case_count()
}

/// Case `index` with its outputs unwritten, or null past the last; free it with [`fovea_case_free`].
#[no_mangle]
pub extern "C" fn fovea_case_new(index: usize) -> *mut Case {
    match fovea_kernels::check::case(index) {
        Some(case) => Box::into_raw(Box::new(Case(case))),
        None => std::ptr::null_mut(),
    }
}

/// Runs the case's kernels on path `isa` (see `Isa::ALL`), whether or not this CPU has it; an unknown number does
/// nothing, so the outputs stay unwritten and the case fails.
///
/// # Safety
/// `case` comes from [`fovea_case_new`]. The CPU running this must have the path's instructions.
#[no_mangle]
pub unsafe extern "C" fn fovea_case_run(case: *mut Case, isa: u32) {
    if let (Some(case), Some(isa)) = (case.as_mut(), self::isa(isa)) {
        case.0.run(isa);
    }
}

/// Sets the case's outputs back to unwritten.
///
/// # Safety
/// `case` comes from [`fovea_case_new`].
#[no_mangle]
pub unsafe extern "C" fn fovea_case_clear(case: *mut Case) {
    if let Some(case) = case.as_mut() {
        case.0.clear();
    }
}

/// Largest difference of the case's outputs from its reference (infinite where an output is unwritten).
///
/// # Safety
/// `case` comes from [`fovea_case_new`].
#[no_mangle]
pub unsafe extern "C" fn fovea_case_error(case: *const Case) -> f32 {
    case.as_ref().map_or(f32::INFINITY, |c| c.0.error())
}

/// Writes the case's description (UTF-8, NUL-terminated, cut to fit) into `buf` of `len` bytes.
///
/// # Safety
/// `case` comes from [`fovea_case_new`]; `buf` is valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn fovea_case_describe(case: *const Case, buf: *mut u8, len: usize) {
    let (Some(case), false) = (case.as_ref(), buf.is_null() || len == 0) else { return };
    let text = case.0.describe();
    let n = text.len().min(len - 1);
    std::ptr::copy_nonoverlapping(text.as_ptr(), buf, n);
    *buf.add(n) = 0;
}

/// # Safety
/// `case` comes from [`fovea_case_new`] and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn fovea_case_free(case: *mut Case) {
    if !case.is_null() {
        drop(Box::from_raw(case));
    }
}

/// Whether this (real) CPU can run path `isa`.
#[no_mangle]
pub extern "C" fn fovea_isa_supported(isa: u32) -> bool {
    self::isa(isa).is_some_and(Isa::supported)
}

/// The whole network (EfficientNet-Lite0 shapes, seeded random weights) on one random image, once per path.
pub struct NetCase {
    size: usize,
    image: Vec<f32>,
    /// One network per entry of `Isa::ALL`, each already run once on the real CPU at `size` (see [`NetCase::new`]).
    nets: Vec<FastLite>,
    embeddings: Vec<Vec<f32>>,
    logits: Vec<Vec<f32>>,
}

impl NetCase {
    /// Builds a network per path on one thread and runs each once at `size` on the portable path, so its activation
    /// buffers exist; then switches each to its own path, whose calls at `size` then allocate only their results.
    pub fn new(size: usize, seed: u64) -> Result<Self, fovea_kernels::Error> {
        let tensors = NetSpec::lite0().tensors(seed);
        let image = Rng::new(seed ^ 0x5eed).vec(3 * size * size, 1.0);
        let mut nets = Vec::new();
        for isa in Isa::ALL {
            let config = Config { threads: 1, isa: Some(Isa::Portable), ..Config::default() };
            let net = FastLite::from_tensors_with(&tensors, &config)?;
            net.embed(&image, 1, size)?;
            // SAFETY: the network runs `isa` only where the caller of `fovea_net_run` vouches for the CPU.
            nets.push(unsafe { net.with_isa_unchecked(isa) });
        }
        let none = vec![Vec::new(); Isa::ALL.len()];
        Ok(NetCase { size, image, nets, embeddings: none.clone(), logits: none })
    }

    /// Embeds and classifies the image on path `isa` (an index into `Isa::ALL`).
    pub fn run(&mut self, isa: usize) {
        let Some(net) = self.nets.get(isa) else { return };
        if let Ok(embedding) = net.embed(&self.image, 1, self.size) {
            self.logits[isa] = net.classify(&embedding, 1);
            self.embeddings[isa] = embedding;
        }
    }

    /// Cosine similarity of the embeddings of two paths (0 where either has not run) and whether their top classes
    /// agree.
    pub fn compare(&self, isa: usize, reference: usize) -> (f32, bool) {
        let (a, b) = (&self.embeddings[isa], &self.embeddings[reference]);
        if a.is_empty() || a.len() != b.len() {
            return (0.0, false);
        }
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| *p as f64 * *q as f64).sum::<f64>();
        let cosine = dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt());
        let top = |l: &[f32]| l.iter().enumerate().max_by(|x, y| x.1.total_cmp(y.1)).map(|(i, _)| i);
        (cosine as f32, top(&self.logits[isa]) == top(&self.logits[reference]))
    }
}

/// A network case at input size `size` (see [`NetCase::new`]), or null if it cannot be built.
#[no_mangle]
pub extern "C" fn fovea_net_new(size: usize, seed: u64) -> *mut NetCase {
    match NetCase::new(size, seed) {
        Ok(case) => Box::into_raw(Box::new(case)),
        Err(_) => std::ptr::null_mut(),
    }
}

/// Embeds and classifies the case's image on path `isa` (see `Isa::ALL`).
///
/// # Safety
/// `case` comes from [`fovea_net_new`]. The CPU running this must have the path's instructions.
#[no_mangle]
pub unsafe extern "C" fn fovea_net_run(case: *mut NetCase, isa: u32) {
    if let Some(case) = case.as_mut() {
        case.run(isa as usize);
    }
}

/// Cosine similarity of the embeddings of paths `isa` and `reference` (0 if either has not run), negated if their
/// top classes differ.
///
/// # Safety
/// `case` comes from [`fovea_net_new`].
#[no_mangle]
pub unsafe extern "C" fn fovea_net_agreement(case: *const NetCase, isa: u32, reference: u32) -> f32 {
    let Some(case) = case.as_ref() else { return 0.0 };
    if isa as usize >= Isa::ALL.len() || reference as usize >= Isa::ALL.len() {
        return 0.0;
    }
    let (cosine, same_top) = case.compare(isa as usize, reference as usize);
    if same_top {
        cosine
    } else {
        -cosine
    }
}

/// # Safety
/// `case` comes from [`fovea_net_new`] and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn fovea_net_free(case: *mut NetCase) {
    if !case.is_null() {
        drop(Box::from_raw(case));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_passes_on_this_cpus_paths_through_the_c_entry_points() {
        assert!(fovea_case_new(fovea_case_count()).is_null());
        for index in 0..fovea_case_count() {
            let case = fovea_case_new(index);
            for (number, isa) in Isa::ALL.iter().enumerate().filter(|(_, isa)| isa.supported()) {
                // SAFETY: `case` came from `fovea_case_new` and this CPU has the path.
                unsafe {
                    fovea_case_clear(case);
                    assert_eq!(fovea_case_error(case), f32::INFINITY, "a case nobody ran must fail");
                    fovea_case_run(case, number as u32);
                    let error = fovea_case_error(case);
                    assert!(error < fovea_kernels::check::TOLERANCE, "{isa:?} {}: {error}", (*case).0.describe());
                }
            }
            // SAFETY: as above, and `case` is not used again.
            unsafe { fovea_case_free(case) };
        }
    }

    #[test]
    fn the_network_agrees_across_this_cpus_paths() {
        let case = fovea_net_new(64, 3);
        assert!(!case.is_null());
        // SAFETY: `case` came from `fovea_net_new`; only paths this CPU has run.
        unsafe {
            assert_eq!(fovea_net_agreement(case, 0, 0), 0.0, "nothing has run yet");
            for (number, _) in Isa::ALL.iter().enumerate().filter(|(_, isa)| isa.supported()) {
                fovea_net_run(case, number as u32);
                let agreement = fovea_net_agreement(case, number as u32, 0);
                assert!(agreement > 0.99999, "path {number} vs portable: {agreement}");
            }
            fovea_net_free(case);
        }
    }
}
