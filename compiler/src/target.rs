//! Target profiles: what `sparq compile --target` tunes the file for. Every file runs on every
//! CPU (the scalar kernels read any layout); the profile decides which layout the fast kernels
//! of that CPU find.

use sparq_format::layout::Pack;
use sparq_runtime::kernels::gemm::SIMD_PACK;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub name: &'static str,
    pub description: &'static str,
    /// Panel packing of GEMM weights (int8 convolutions with one group, fully-connected).
    pub pack: Option<Pack>,
}

/// Every profile `--target` accepts.
pub const TARGETS: &[Target] = &[
    Target { name: "x86-64", description: "x86-64 with AVX2 (AVX-VNNI used when present)", pack: Some(SIMD_PACK) },
    Target {
        name: "aarch64",
        description: "64-bit ARM with NEON (sdot used when present): Raspberry Pi 4/5, Android arm64",
        pack: Some(SIMD_PACK),
    },
    Target { name: "armv7", description: "32-bit ARM with NEON: 32-bit Raspberry Pi OS", pack: Some(SIMD_PACK) },
    Target {
        name: "generic",
        description: "no packing: reference layouts, for CPUs without a SIMD kernel set",
        pack: None,
    },
];

/// The profile for the CPU this compiler runs on.
pub fn native() -> Target {
    let arch = if cfg!(target_arch = "x86_64") {
        "x86-64"
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
