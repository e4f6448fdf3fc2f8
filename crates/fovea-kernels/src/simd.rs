//! Which instruction set the kernels use, decided once at run time.
//!
//! The crate compiles for the baseline x86_64 target (SSE2 only), so the fast kernels are separate functions compiled with
//! `#[target_feature(enable = "...")]` and only called after `is_x86_feature_detected!` said yes. Everything else
//! takes the portable path, which the compiler still auto-vectorises with SSE2.
//!
//! [`KERNELS_ENV`] forces a path (for tests, benchmarks and comparing paths on one machine); asking for one the CPU
//! lacks is an error rather than a silent fallback, so a figure never claims a path that did not run.

use crate::{Error, Result};

/// Environment variable that forces a kernel path: `avx512`, `avx2` or `portable` (`auto` or unset: the fastest).
pub const KERNELS_ENV: &str = "FOVEA_KERNELS";

/// Instruction set chosen for the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust loops; correct everywhere.
    Portable,
    /// 256-bit AVX2 with fused multiply-add (checked at run time before this is ever chosen).
    Avx2Fma,
    /// 512-bit AVX-512 (F, plus AVX2/FMA for half-width tails), checked at run time like AVX2.
    Avx512,
}

impl Isa {
    /// Every path, slowest first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2Fma, Isa::Avx512];

    /// The fastest instruction set this CPU supports.
    pub fn detect() -> Self {
        Isa::ALL.into_iter().rev().find(|i| i.supported()).unwrap_or(Isa::Portable)
    }

    /// Whether this CPU can run the path.
    pub fn supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2Fma.supported()
                    && std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every path this CPU can run, slowest first (tests check each of them).
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.supported()).collect()
    }

    /// The name [`KERNELS_ENV`] takes for this path.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2Fma => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// What the path uses, for reports: e.g. "AVX-512F (512-bit FMA)".
    pub fn describe(self) -> &'static str {
        match self {
            Isa::Portable => "portable Rust (SSE2 auto-vectorised)",
            Isa::Avx2Fma => "AVX2 + FMA (256-bit)",
            Isa::Avx512 if splits_512_bit_fma() => {
                "AVX-512F/VL (512-bit FMA, masked tails; AVX2 matrix tiles below k 64: this CPU splits 512-bit FMAs)"
            }
            Isa::Avx512 => "AVX-512F/VL (512-bit FMA, masked tails)",
        }
    }

    /// Parses a [`KERNELS_ENV`] value; `None` for `auto` or an empty value.
    pub fn parse(value: &str) -> Result<Option<Isa>> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(None),
            "portable" => Ok(Some(Isa::Portable)),
            "avx2" => Ok(Some(Isa::Avx2Fma)),
            "avx512" => Ok(Some(Isa::Avx512)),
            other => Err(Error::KernelsEnv(other.to_string())),
        }
    }

    /// `requested` if given, else [`KERNELS_ENV`] if set, else [`Isa::detect`]; a requested path the CPU lacks is an
    /// error.
    pub fn choose(requested: Option<Isa>) -> Result<Isa> {
        let requested = match requested {
            Some(isa) => Some(isa),
            None => match std::env::var(KERNELS_ENV) {
                Ok(v) => Isa::parse(&v)?,
                Err(_) => None,
            },
        };
        match requested {
            Some(isa) if isa.supported() => Ok(isa),
            Some(isa) => Err(Error::UnsupportedIsa(isa.name())),
            None => Ok(Isa::detect()),
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether this CPU executes 512-bit FMAs as two 256-bit halves: AMD's Zen 4 (family 19h) is the one AVX-512 CPU
/// that does. There the 512-bit matrix tiles gain nothing in arithmetic and lose on short dot products (see
/// `conv1x1::avx512`); on CPUs with whole 512-bit FMA units they are up to twice as fast even there (Zen 5, family
/// 1Ah: 72 against 40 GMAC/s at k = 16).
pub(crate) fn splits_512_bit_fma() -> bool {
    use std::sync::OnceLock;
    static SPLITS: OnceLock<bool> = OnceLock::new();
    *SPLITS.get_or_init(|| {
        cpu_vendor_family().is_some_and(|(vendor, family)| &vendor == b"AuthenticAMD" && family == 0x19)
    })
}

/// The CPU's vendor string and display family (base family plus extended family), from CPUID leaf 1.
#[cfg(target_arch = "x86_64")]
fn cpu_vendor_family() -> Option<([u8; 12], u32)> {
    use std::arch::x86_64::__cpuid;
    // Leaves 0 and 1 exist on every x86_64 CPU.
    let (leaf0, leaf1) = (__cpuid(0), __cpuid(1));
    let mut vendor = [0u8; 12];
    for (i, r) in [leaf0.ebx, leaf0.edx, leaf0.ecx].into_iter().enumerate() {
        vendor[i * 4..i * 4 + 4].copy_from_slice(&r.to_le_bytes());
    }
    let base = (leaf1.eax >> 8) & 0xF;
    let family = if base == 0xF { base + ((leaf1.eax >> 20) & 0xFF) } else { base };
    Some((vendor, family))
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_vendor_family() -> Option<([u8; 12], u32)> {
    None
}

/// ReLU6 without `clamp`: `clamp` lowers to a branchy scalar sequence (it must propagate NaN and check bounds), while
/// max/min map straight onto `maxps`/`minps`.
#[inline(always)]
#[allow(clippy::manual_clamp)]
pub fn relu6(x: f32) -> f32 {
    x.max(0.0).min(6.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_env_values_and_refuses_unknown_ones() {
        assert_eq!(Isa::parse("AVX512").unwrap(), Some(Isa::Avx512));
        assert_eq!(Isa::parse(" avx2 ").unwrap(), Some(Isa::Avx2Fma));
        assert_eq!(Isa::parse("portable").unwrap(), Some(Isa::Portable));
        assert_eq!(Isa::parse("auto").unwrap(), None);
        assert!(matches!(Isa::parse("sse9"), Err(Error::KernelsEnv(v)) if v == "sse9"));
        for isa in Isa::ALL {
            assert_eq!(Isa::parse(isa.name()).unwrap(), Some(isa));
        }
    }

    #[test]
    fn reads_the_cpu_family_the_kernel_reports() {
        // The kernel's /proc/cpuinfo decodes the same CPUID fields; the two must agree wherever both exist.
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else { return };
        let field = |name: &str| {
            info.lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        };
        if let (Some(family), Some(vendor), Some((v, f))) =
            (field("cpu family"), field("vendor_id"), cpu_vendor_family())
        {
            assert_eq!(family.parse::<u32>().ok(), Some(f));
            assert_eq!(vendor.as_bytes(), &v);
            assert_eq!(splits_512_bit_fma(), vendor == "AuthenticAMD" && f == 0x19);
        }
    }

    #[test]
    fn choose_honours_requests_and_refuses_missing_features() {
        assert_eq!(Isa::choose(Some(Isa::Portable)).unwrap(), Isa::Portable);
        let best = Isa::detect();
        assert!(best.supported());
        assert_eq!(Isa::available().last(), Some(&best));
        for isa in Isa::ALL {
            match Isa::choose(Some(isa)) {
                Ok(got) => assert!(got == isa && isa.supported()),
                Err(Error::UnsupportedIsa(name)) => assert!(!isa.supported() && name == isa.name()),
                Err(e) => panic!("{e}"),
            }
        }
    }
}
