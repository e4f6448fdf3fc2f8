//! Which instruction set the kernels use, decided once at run time.
//!
//! The crate compiles for the baseline x86_64 target (SSE2 only), so the fast kernels are separate functions compiled with
//! `#[target_feature(enable = "avx2,fma")]` and only called after `is_x86_feature_detected!` said yes. Everything else
//! takes the portable path, which the compiler still auto-vectorises with SSE2.

/// Instruction set chosen for the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust loops; correct everywhere.
    Portable,
    /// 256-bit AVX2 with fused multiply-add (checked at run time before this is ever chosen).
    Avx2Fma,
}

impl Isa {
    /// The fastest instruction set this CPU supports.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Isa::Avx2Fma;
            }
        }
        Isa::Portable
    }
}

/// ReLU6 without `clamp`: `clamp` lowers to a branchy scalar sequence (it must propagate NaN and check bounds), while
/// max/min map straight onto `maxps`/`minps`.
#[inline(always)]
#[allow(clippy::manual_clamp)]
pub fn relu6(x: f32) -> f32 {
    x.max(0.0).min(6.0)
}
