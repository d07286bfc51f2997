//! Target profiles: what `sparq compile --target` tunes the file for. Every file runs on every
//! CPU (the scalar kernels read any layout); the profile decides which layout the fast kernels
//! of that CPU find.

use sparq_format::layout::Pack;
use sparq_runtime::kernels::gemm::SIMD_PACK;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    pub name: &'static str,
    pub description: &'static str,
    /// Panel packing of GEMM weights (int8 convolutions with one group, fully-connected).
    pub pack: Option<Pack>,
    /// When the block-sparse kernel beats the dense one, as measured by `cargo bench --bench
    /// sparse_crossover` on this ISA: `(reduction length K, block density)` pairs, K ascending; a
    /// layer whose K is at least an entry's runs sparse when the fraction of its 16x4 blocks that
    /// hold a non-zero weight is below that entry's density. Empty: never sparse (no measurement,
    /// or no sparse kernel in the set).
    pub sparse_crossover: &'static [(usize, f64)],
}

impl Target {
    /// The densest block fraction at which a layer with reduction length `k` runs sparse (0: never).
    pub fn sparse_crossover(&self, k: usize) -> f64 {
        self.sparse_crossover.iter().rev().find(|&&(min_k, _)| k >= min_k).map_or(0.0, |&(_, d)| d)
    }
}

/// Measured on an AMD EPYC (Zen 5) with the `avx512vnni` set (`qs8_spgemm_16x16c4_avx512vnni`,
/// whose pointwise layers run channels in the lanes, vs `qs8_gemm_8x32c4_avx512vnni`), `cargo
/// bench --bench sparse_crossover`, 2026-11-24: every 1x1 shape of MobileNetV2 runs faster
/// sparse from 30% block sparsity (70% density) on.
const X86_64_AVX512_CROSSOVER: &[(usize, f64)] = &[(16, 0.70)];

/// Measured on the same host with the `avxvnni` set forced (`SPARQ_KERNELS=avxvnni cargo bench
/// --bench sparse_crossover`: `qs8_spgemm_4x8c4_avx2` vs the 256-bit `vpdpbusd` dense kernel),
/// the lower of it and the plain `avx2` set (whose `vpmaddwd` dense kernel loses to sparse from
/// 70% block density on every shape): the profile covers CPUs with and without AVX-VNNI.
const X86_64_AVX2_CROSSOVER: &[(usize, f64)] = &[(64, 0.05), (192, 0.10), (320, 0.20), (576, 0.30), (960, 0.50)];

/// Every profile `--target` accepts.
pub const TARGETS: &[Target] = &[
    Target {
        name: "x86-64",
        description: "x86-64 with AVX-512 VNNI (Zen 4+, Ice Lake+); AVX2 / AVX-VNNI kernels elsewhere",
        pack: Some(SIMD_PACK),
        sparse_crossover: X86_64_AVX512_CROSSOVER,
    },
    Target {
        name: "x86-64-avx2",
        description: "x86-64 with AVX2 (AVX-VNNI used when present), no AVX-512",
        pack: Some(SIMD_PACK),
        sparse_crossover: X86_64_AVX2_CROSSOVER,
    },
    Target {
        name: "aarch64",
        description: "64-bit ARM with NEON (sdot used when present): Raspberry Pi 4/5, Android arm64 (block-sparse kernels exist; no crossover measured on a device yet, so `--sparse always` opts in)",
        pack: Some(SIMD_PACK),
        sparse_crossover: &[],
    },
    Target {
        name: "armv7",
        description: "32-bit ARM with NEON: 32-bit Raspberry Pi OS",
        pack: Some(SIMD_PACK),
        sparse_crossover: &[],
    },
    Target {
        name: "generic",
        description: "no packing: reference layouts, for CPUs without a SIMD kernel set",
        pack: None,
        sparse_crossover: &[],
    },
];

/// The profile for the CPU this compiler runs on.
pub fn native() -> Target {
    let arch = if cfg!(target_arch = "x86_64") {
        if sparq_runtime::kernels::registry::available().any(|s| s.name() == "avx512vnni") {
            "x86-64"
        } else {
            "x86-64-avx2"
        }
    } else if cfg!(target_arch = "aarch64") {
        "aarch64"
    } else if cfg!(target_arch = "arm") {
        "armv7"
    } else {
        "generic"
    };
    *find(arch).expect("listed")
}

pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// A device profile (`targets/profiles/*.toml`, embedded at build time): a name users know
/// (`rpi4`), the Rust target triple to build for, and the ISA profile whose weight layout it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub description: String,
    pub triple: String,
    /// Name of the [`Target`] (ISA profile) the device uses.
    pub isa: String,
    /// Kernel set the runtime picks there.
    pub kernels: String,
}

const DEVICE_FILES: &[&str] = &[
    include_str!("../../targets/profiles/rpi4.toml"),
    include_str!("../../targets/profiles/rpi5.toml"),
    include_str!("../../targets/profiles/android-arm64.toml"),
    include_str!("../../targets/profiles/rpi-armv7.toml"),
    include_str!("../../targets/profiles/x86-64-avx2.toml"),
];

/// Parse the `key = "value"` lines of a profile file (comments with `#`).
fn parse_device(text: &str) -> Option<Device> {
    let get = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
    };
    Some(Device {
        name: get("name")?,
        description: get("description")?,
        triple: get("triple")?,
        isa: get("isa")?,
        kernels: get("kernels")?,
    })
}

/// Every device profile.
pub fn devices() -> Vec<Device> {
    DEVICE_FILES.iter().filter_map(|t| parse_device(t)).collect()
}

/// The ISA profile for `name`: an ISA name (`aarch64`) or a device (`rpi4`).
pub fn resolve(name: &str) -> Option<Target> {
    if let Some(t) = find(name) {
        return Some(*t);
    }
    let d = devices().into_iter().find(|d| d.name == name)?;
    find(&d.isa).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_device_profile_parses_and_names_a_known_isa() {
        let d = devices();
        assert_eq!(d.len(), DEVICE_FILES.len(), "a profile file did not parse");
        for dev in &d {
            assert!(find(&dev.isa).is_some(), "{}: unknown isa {}", dev.name, dev.isa);
            assert_eq!(resolve(&dev.name), find(&dev.isa).copied());
        }
        assert_eq!(resolve("rpi4").unwrap().name, "aarch64");
        assert!(resolve("nope").is_none());
    }
}
