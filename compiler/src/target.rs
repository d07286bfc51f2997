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
