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
    /// or no sparse kernel in the set). This table is for fully-connected layers and 1x1
    /// convolutions with stride 1 (the bench's `sparse_crossover` line).
    pub sparse_crossover: &'static [(usize, f64)],
    /// The same for convolutions with larger kernels, strides or padding, which the sparse
    /// kernels run on im2col rows (the bench's `sparse_crossover_spatial` line).
    pub sparse_crossover_spatial: &'static [(usize, f64)],
}

impl Target {
    /// The densest block fraction at which a layer with reduction length `k` runs sparse (0:
    /// never); `pointwise`: a fully-connected layer or a 1x1 convolution with stride 1.
    pub fn sparse_crossover(&self, k: usize, pointwise: bool) -> f64 {
        let table = if pointwise { self.sparse_crossover } else { self.sparse_crossover_spatial };
        table.iter().rev().find(|&&(min_k, _)| k >= min_k).map_or(0.0, |&(_, d)| d)
    }
}

/// The `avx512vnni` set (`qs8_spgemm_16x16c4_avx512vnni`, whose pointwise layers run channels in
/// the lanes, vs `qs8_gemm_8x32c4_avx512vnni`), `cargo bench --bench sparse_crossover`, the lower
/// of two CPUs so that the profile is never slower on either: on an AMD EPYC (Zen 5),
/// 2026-11-24, every 1x1 shape of MobileNetV2 ran faster sparse from 30% block sparsity (70%
/// density) on; on an Intel Xeon (Emerald Rapids), 2026-12-03, two runs each had a shape with
/// K < 960 still slower sparse at 30% (14x14 576 -> 96: 1.24x, 7x7 320 -> 1280: 1.04x), and every
/// shape faster from 50% on (at most 0.90x), K = 960 from 30%.
const X86_64_AVX512_CROSSOVER: &[(usize, f64)] = &[(16, 0.50), (960, 0.70)];

/// The Zen 5 run, 3x3 convolutions (pixel-lane kernel on im2col rows): never for a 3-channel stem
/// (K = 27, sparse is 1.9x slower at any sparsity), from 50% block sparsity at K = 288, from 30%
/// at K >= 576.
const X86_64_AVX512_CROSSOVER_SPATIAL: &[(usize, f64)] = &[(288, 0.50), (576, 0.70)];

/// Measured on the same host with the `avxvnni` set forced (`SPARQ_KERNELS=avxvnni cargo bench
/// --bench sparse_crossover`: `qs8_spgemm_4x8c4_avx2` vs the 256-bit `vpdpbusd` dense kernel),
/// 2026-11-24, the lower of it and the plain `avx2` set (whose `vpmaddwd` dense kernel loses to
/// sparse from 30% block sparsity on every shape, 1x1 or 3x3): the profile covers CPUs with and
/// without AVX-VNNI. 16-channel reductions never run sparse.
const X86_64_AVX2_CROSSOVER: &[(usize, f64)] =
    &[(24, 0.05), (32, 0.10), (64, 0.20), (192, 0.30), (320, 0.40), (960, 0.50)];

/// The same runs, 3x3 convolutions: never for a 3-channel stem, from 60% block sparsity at K >= 288
/// (the `avxvnni` set).
const X86_64_AVX2_CROSSOVER_SPATIAL: &[(usize, f64)] = &[(288, 0.40)];

/// Every profile `--target` accepts.
pub const TARGETS: &[Target] = &[
    Target {
        name: "x86-64",
        description: "x86-64 with AVX-512 VNNI (Zen 4+, Ice Lake+); AVX2 / AVX-VNNI kernels elsewhere",
        pack: Some(SIMD_PACK),
        sparse_crossover: X86_64_AVX512_CROSSOVER,
        sparse_crossover_spatial: X86_64_AVX512_CROSSOVER_SPATIAL,
    },
    Target {
        name: "x86-64-avx2",
        description: "x86-64 with AVX2 (AVX-VNNI used when present), no AVX-512",
        pack: Some(SIMD_PACK),
        sparse_crossover: X86_64_AVX2_CROSSOVER,
        sparse_crossover_spatial: X86_64_AVX2_CROSSOVER_SPATIAL,
    },
    Target {
        name: "aarch64",
        description: "64-bit ARM with NEON (sdot used when present): Raspberry Pi 4/5, Android arm64 (block-sparse kernels exist; no crossover measured on a device yet, so `--sparse always` opts in)",
        pack: Some(SIMD_PACK),
        sparse_crossover: &[],
        sparse_crossover_spatial: &[],
    },
    Target {
        name: "armv7",
        description: "32-bit ARM with NEON: 32-bit Raspberry Pi OS",
        pack: Some(SIMD_PACK),
        sparse_crossover: &[],
        sparse_crossover_spatial: &[],
    },
    Target {
        name: "generic",
        description: "no packing: reference layouts, for CPUs without a SIMD kernel set",
        pack: None,
        sparse_crossover: &[],
        sparse_crossover_spatial: &[],
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
    include_str!("../../../targets/profiles/rpi4.toml"),
    include_str!("../../../targets/profiles/rpi5.toml"),
    include_str!("../../../targets/profiles/android-arm64.toml"),
    include_str!("../../../targets/profiles/rpi-armv7.toml"),
    include_str!("../../../targets/profiles/x86-64-avx2.toml"),
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

    #[test]
    fn crossover_tables_tell_pointwise_from_spatial() {
        let t = find("x86-64").unwrap();
        // A 3-channel 3x3 stem (K = 27) never runs sparse; a 1x1 with the same K does from 50%,
        // and from 30% at K = 960.
        assert_eq!(t.sparse_crossover(27, false), 0.0);
        assert_eq!(t.sparse_crossover(27, true), 0.50);
        assert_eq!(t.sparse_crossover(960, true), 0.70);
        assert_eq!(t.sparse_crossover(288, false), 0.50);
        assert_eq!(t.sparse_crossover(4608, false), 0.70);
        // No measurement: never sparse.
        assert_eq!(find("aarch64").unwrap().sparse_crossover(1024, true), 0.0);
    }
}
