//! CPU features the kernels need, detected once (`is_x86_feature_detected!` /
//! `is_aarch64_feature_detected!` with std, compile-time target features without), and the named
//! kernel paths (ruy's "paths"): a path is a set of features, and forcing one
//! (`SPARQ_KERNELS=avx2`) makes every op resolve as on a CPU with exactly those features.

/// A set of CPU features, as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Features(u32);

impl Features {
    /// No SIMD: the scalar kernels only.
    pub const NONE: Features = Features(0);
    /// x86-64 AVX2 with FMA3 (Haswell, Zen 1 and later).
    pub const AVX2: Features = Features(1 << 0);
    /// x86-64 AVX-VNNI: 256-bit VEX `vpdpbusd` (Alder Lake, Zen 5; not on most AVX-512 servers).
    pub const AVXVNNI: Features = Features(1 << 1);
    /// x86-64 AVX-512 F, BW and VL together (Skylake-X and later, Zen 4 and later).
    pub const AVX512: Features = Features(1 << 2);
    /// x86-64 AVX-512 VNNI: 512-bit (and, with VL, 256-bit EVEX) `vpdpbusd` (Cascade Lake, Ice
    /// Lake, Sapphire Rapids, Zen 4 and later).
    pub const AVX512VNNI: Features = Features(1 << 3);
    /// x86-64 AVX-512 VBMI (`vpermb`): Ice Lake and later, Zen 4 and later.
    pub const AVX512VBMI: Features = Features(1 << 4);
    /// aarch64 Advanced SIMD (every aarch64 CPU).
    pub const NEON: Features = Features(1 << 8);
    /// aarch64 dot product (`sdot`, Armv8.2): Cortex-A55/A76 and later.
    pub const DOTPROD: Features = Features(1 << 9);
    /// aarch64 int8 matrix multiply (`smmla`, Armv8.6).
    pub const I8MM: Features = Features(1 << 10);
    /// 32-bit ARM NEON (`thumbv7neon` targets).
    pub const ARMV7_NEON: Features = Features(1 << 16);

    pub const fn union(self, other: Features) -> Features {
        Features(self.0 | other.0)
    }
    pub const fn intersection(self, other: Features) -> Features {
        Features(self.0 & other.0)
    }
    /// Every feature of `self` is in `other`.
    pub const fn is_subset_of(self, other: Features) -> bool {
        self.0 & !other.0 == 0
    }
    pub const fn contains(self, other: Features) -> bool {
        other.is_subset_of(self)
    }
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// The features of the CPU this runs on.
    pub fn detect() -> Features {
        #[allow(unused_mut)]
        let mut f = Features::NONE;
        #[cfg(all(target_arch = "x86_64", feature = "std"))]
        {
            use std::is_x86_feature_detected as has;
            // Every AVX2 CPU (Haswell, Excavator, Zen and later) has FMA3; the f32 kernels use it.
            if has!("avx2") && has!("fma") {
                f = f.union(Features::AVX2);
            }
            if has!("avxvnni") {
                f = f.union(Features::AVXVNNI);
            }
            if has!("avx512f") && has!("avx512bw") && has!("avx512vl") {
                f = f.union(Features::AVX512);
            }
            if has!("avx512vnni") {
                f = f.union(Features::AVX512VNNI);
            }
            if has!("avx512vbmi") {
                f = f.union(Features::AVX512VBMI);
            }
        }
        #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
        {
            if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
                f = f.union(Features::AVX2);
            }
            if cfg!(target_feature = "avxvnni") {
                f = f.union(Features::AVXVNNI);
            }
            if cfg!(all(target_feature = "avx512f", target_feature = "avx512bw", target_feature = "avx512vl")) {
                f = f.union(Features::AVX512);
            }
            if cfg!(target_feature = "avx512vnni") {
                f = f.union(Features::AVX512VNNI);
            }
            if cfg!(target_feature = "avx512vbmi") {
                f = f.union(Features::AVX512VBMI);
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            f = f.union(Features::NEON);
            #[cfg(feature = "std")]
            {
                if std::arch::is_aarch64_feature_detected!("dotprod") {
                    f = f.union(Features::DOTPROD);
                }
                if std::arch::is_aarch64_feature_detected!("i8mm") {
                    f = f.union(Features::I8MM);
                }
            }
            #[cfg(not(feature = "std"))]
            {
                if cfg!(target_feature = "dotprod") {
                    f = f.union(Features::DOTPROD);
                }
                if cfg!(target_feature = "i8mm") {
                    f = f.union(Features::I8MM);
                }
            }
        }
        #[cfg(sparq_arm_neon)]
        {
            f = f.union(Features::ARMV7_NEON);
        }
        f
    }
}

/// A named kernel path: the features an op may use when this path is chosen. Each op still
/// takes the best registry entry those features allow, so a path is a CPU class, not a list of
/// kernels (`avx512vnni` runs the AVX2 kernels of families that have no AVX-512 entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathSpec {
    pub name: &'static str,
    pub features: Features,
}

/// Every path, from the specification to the widest; a CPU runs those whose features it has.
pub const PATHS: &[PathSpec] = &[
    PathSpec { name: "scalar", features: Features::NONE },
    PathSpec { name: "avx2", features: Features::AVX2 },
    PathSpec { name: "avxvnni", features: Features::AVX2.union(Features::AVXVNNI) },
    // Skylake-X class: AVX-512 without VNNI.
    PathSpec { name: "avx512", features: Features::AVX2.union(Features::AVX512) },
    // Cascade Lake / Ice Lake / Sapphire Rapids / Zen 4 class. No AVX-VNNI: most AVX-512 servers
    // lack it, and the AVX-512 kernels use the EVEX `vpdpbusd` instead.
    PathSpec {
        name: "avx512vnni",
        features: Features::AVX2.union(Features::AVX512).union(Features::AVX512VNNI).union(Features::AVX512VBMI),
    },
    PathSpec { name: "neon", features: Features::NEON },
    PathSpec { name: "dotprod", features: Features::NEON.union(Features::DOTPROD) },
    // Armv8.6: Cortex-A710/X2 and later, Neoverse V1/N2 (`smmla` GEMM, dotprod elsewhere).
    PathSpec { name: "i8mm", features: Features::NEON.union(Features::DOTPROD).union(Features::I8MM) },
    PathSpec { name: "armv7-neon", features: Features::ARMV7_NEON },
];

impl PathSpec {
    /// The path's features as this CPU has them (VBMI is optional within `avx512vnni`).
    pub fn on(self, cpu: Features) -> Option<Features> {
        let optional = Features::AVX512VBMI;
        let required = Features(self.features.0 & !optional.0);
        required.is_subset_of(cpu).then(|| self.features.intersection(cpu))
    }
}
