//! The int8 kernel sets, one per ISA path, and the choice of one at `Session::new`.
//! Dispatch, tests and benches all read [`available`], so a kernel cannot exist untested.

use super::conv::{ConvGeometry, Requant};
use super::elementwise::{AddParams, MulParams};
use super::fc::F32Out;
use super::gemm::{WeightMatrix, MAX_SIMD_K, SIMD_PACK};
use super::pool::GlobalPool;
use super::spgemm::{BlockSparse, KERNEL_BLOCK};

pub type ConvFn = unsafe fn(&ConvGeometry, &[i8], &[i8], &Requant<'_>, &mut [i8]);
pub type FcFn = unsafe fn(usize, usize, usize, &[i8], &[i8], &Requant<'_>, &mut [i8]);
pub type GemmFn = unsafe fn(&ConvGeometry, &[i8], &WeightMatrix<'_>, &Requant<'_>, &mut [i8]);
pub type SpGemmFn = unsafe fn(&ConvGeometry, &[i8], &BlockSparse<'_>, &Requant<'_>, &mut [i8]);
pub type AddFn = unsafe fn(&[i8], &[i8], &mut [i8], &AddParams);
pub type MulFn = unsafe fn(&[i8], &[i8], &mut [i8], &MulParams);
pub type QuantizeFn = unsafe fn(&[f32], &mut [i8], f32, i32);
pub type F32ConvFn = unsafe fn(&ConvGeometry, &[f32], &[f32], &[f32], f32, f32, &mut [f32]);
pub type MaxPoolFn = unsafe fn(&ConvGeometry, &[i8], &mut [i8]);
pub type GlobalAvgPoolFn = unsafe fn(&GlobalPool, &[i8], &mut [i8]);
pub type FcF32OutFn = unsafe fn(usize, &[i8], &WeightMatrix<'_>, &F32Out<'_>, &mut [f32]);
pub type SpFcF32OutFn = unsafe fn(usize, &[i8], &BlockSparse<'_>, &F32Out<'_>, &mut [f32]);

/// One ISA path's int8 kernels. Fields are private: a set can only be obtained through
/// [`available`] / [`select`], which check that the CPU supports it, so calling its functions is
/// sound.
#[derive(Clone, Copy)]
pub struct KernelSet {
    name: &'static str,
    qs8_conv2d: ConvFn,
    qs8_dwconv: ConvFn,
    qs8_fc: FcFn,
    /// GEMM-convolution on [`SIMD_PACK`] panels; `None`: the scalar kernel reads any layout.
    qs8_gemm: Option<(&'static str, GemmFn)>,
    /// Block-sparse GEMM-convolution on [`KERNEL_BLOCK`] blocks; `None`: the scalar kernel
    /// reads any block shape.
    qs8_spgemm: Option<(&'static str, SpGemmFn)>,
    /// Fully-connected with f32 output on [`SIMD_PACK`] panels.
    qs8_fc_f32out: Option<FcF32OutFn>,
    /// Fully-connected with f32 output on a block-sparse matrix of [`KERNEL_BLOCK`] blocks.
    qs8_spfc_f32out: Option<(&'static str, SpFcF32OutFn)>,
    /// Int8 add of contiguous operands of one shape and layout.
    qs8_add: AddFn,
    /// Int8 multiply of contiguous operands of one shape and layout.
    qs8_mul: MulFn,
    /// f32 -> int8 quantization of a contiguous slice (the model input).
    qs8_quantize: QuantizeFn,
    /// f32 convolution with one group (and fully-connected), for layers kept in float.
    f32_conv2d: F32ConvFn,
    /// Int8 max pooling (NHWC).
    qs8_max_pool: MaxPoolFn,
    /// Int8 global average pooling (NHWC), requantized.
    qs8_global_avg_pool: GlobalAvgPoolFn,
}

impl core::fmt::Debug for KernelSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name)
    }
}

impl KernelSet {
    pub fn name(&self) -> &'static str {
        self.name
    }
    pub fn qs8_conv2d(&self, g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
        // SAFETY: the set was selected for a CPU that supports it (see the type's docs).
        unsafe { (self.qs8_conv2d)(g, x, w, rq, y) }
    }
    /// Int8 multiply of contiguous operands (see `elementwise::qs8_mul_contiguous_scalar`).
    pub fn qs8_mul(&self, a: &[i8], b: &[i8], y: &mut [i8], p: &MulParams) {
        // SAFETY: as above.
        unsafe { (self.qs8_mul)(a, b, y, p) }
    }
    /// `quant::quantize_f32` over a contiguous slice.
    pub fn qs8_quantize(&self, x: &[f32], y: &mut [i8], scale: f32, zero_point: i32) {
        // SAFETY: as above.
        unsafe { (self.qs8_quantize)(x, y, scale, zero_point) }
    }
    pub fn qs8_dwconv(&self, g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
        // SAFETY: as above.
        unsafe { (self.qs8_dwconv)(g, x, w, rq, y) }
    }
    /// Convolution with one group (or fully-connected, as 1x1 over `batch` rows) on a weight
    /// matrix in any layout: this set's GEMM kernel when the matrix is packed for it, else the
    /// scalar kernel.
    pub fn qs8_gemm(&self, g: &ConvGeometry, x: &[i8], w: &WeightMatrix<'_>, rq: &Requant<'_>, y: &mut [i8]) {
        match self.qs8_gemm {
            Some((_, f)) if w.pack == Some(SIMD_PACK) && w.k <= MAX_SIMD_K => {
                // SAFETY: as above; the packing and reduction length are the kernel's to check.
                unsafe { f(g, x, w, rq, y) }
            }
            _ => super::gemm::scalar::qs8_gemm_scalar(g, x, w, rq, y),
        }
    }
    /// Convolution with one group (or fully-connected) on a block-sparse weight matrix: this
    /// set's sparse kernel for [`KERNEL_BLOCK`] blocks, else the scalar kernel.
    pub fn qs8_spgemm(&self, g: &ConvGeometry, x: &[i8], w: &BlockSparse<'_>, rq: &Requant<'_>, y: &mut [i8]) {
        match self.qs8_spgemm {
            Some((_, f)) if w.block == KERNEL_BLOCK && w.k <= MAX_SIMD_K => {
                // SAFETY: as above; the block shape and reduction length are the kernel's to check.
                unsafe { f(g, x, w, rq, y) }
            }
            _ => super::spgemm::qs8_spgemm_scalar(g, x, w, rq, y),
        }
    }
    /// Name of the sparse kernel this set runs on [`KERNEL_BLOCK`] blocks.
    pub fn spgemm_name(&self) -> &'static str {
        self.qs8_spgemm.map_or("qs8_spgemm_scalar", |(n, _)| n)
    }
    /// Fully-connected layer with f32 output from the int32 accumulator (see
    /// `fc::scalar::qs8_fc_f32out_scalar`, its specification).
    pub fn qs8_fc_f32out(&self, m: usize, x: &[i8], w: &WeightMatrix<'_>, out: &F32Out<'_>, y: &mut [f32]) {
        match self.qs8_fc_f32out {
            Some(f) if w.pack == Some(SIMD_PACK) && w.k <= MAX_SIMD_K => {
                // SAFETY: as above.
                unsafe { f(m, x, w, out, y) }
            }
            _ => super::fc::scalar::qs8_fc_f32out_scalar(m, x, w, out, y),
        }
    }
    /// Fully-connected layer with f32 output on a block-sparse matrix (see
    /// `spgemm::qs8_spfc_f32out_scalar`, its specification).
    pub fn qs8_spfc_f32out(&self, m: usize, x: &[i8], w: &BlockSparse<'_>, out: &F32Out<'_>, y: &mut [f32]) {
        match self.qs8_spfc_f32out {
            Some((_, f)) if w.block == KERNEL_BLOCK && w.k.is_multiple_of(4) && w.k <= MAX_SIMD_K => {
                // SAFETY: as above; the block shape and reduction length fit the kernel.
                unsafe { f(m, x, w, out, y) }
            }
            _ => super::spgemm::qs8_spfc_f32out_scalar(m, x, w, out, y),
        }
    }
    /// Name of the sparse f32-output fully-connected kernel of this set.
    pub fn spfc_f32out_name(&self) -> &'static str {
        self.qs8_spfc_f32out.map_or("qs8_spfc_f32out_scalar", |(n, _)| n)
    }
    /// f32 convolution (any groups) or fully-connected layer as a 1x1 convolution over rows
    /// (see `conv::scalar::f32_conv2d_scalar`): this set's vector kernel for one group and up to
    /// `conv::f32simd::MAX_IN_C` input channels, else the scalar kernel.
    #[allow(clippy::too_many_arguments)]
    pub fn f32_conv2d(&self, g: &ConvGeometry, x: &[f32], w: &[f32], bias: &[f32], lo: f32, hi: f32, y: &mut [f32]) {
        if g.groups == 1 && g.in_c <= super::conv::F32_SIMD_MAX_IN_C {
            // SAFETY: as above; the group count and channel count are the kernel's to check.
            unsafe { (self.f32_conv2d)(g, x, w, bias, lo, hi, y) }
        } else {
            super::conv::scalar::f32_conv2d_scalar(g, x, w, bias, lo, hi, y)
        }
    }
    /// Int8 max pooling over NHWC (see `pool::max_pool`).
    pub fn qs8_max_pool(&self, g: &ConvGeometry, x: &[i8], y: &mut [i8]) {
        // SAFETY: as above.
        unsafe { (self.qs8_max_pool)(g, x, y) }
    }
    /// Int8 global average pooling over NHWC (see `pool::qs8_global_avg_pool`).
    pub fn qs8_global_avg_pool(&self, p: &GlobalPool, x: &[i8], y: &mut [i8]) {
        // SAFETY: as above.
        unsafe { (self.qs8_global_avg_pool)(p, x, y) }
    }
    /// Int8 add of contiguous operands of one shape and layout (no broadcast).
    pub fn qs8_add(&self, a: &[i8], b: &[i8], y: &mut [i8], p: &AddParams) {
        // SAFETY: as above.
        unsafe { (self.qs8_add)(a, b, y, p) }
    }
    /// Name of the GEMM kernel this set runs on packed weights.
    pub fn gemm_name(&self) -> &'static str {
        self.qs8_gemm.map_or("qs8_gemm_scalar", |(n, _)| n)
    }
    #[allow(clippy::too_many_arguments)]
    pub fn qs8_fc(&self, m: usize, k: usize, n: usize, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
        // SAFETY: as above.
        unsafe { (self.qs8_fc)(m, k, n, x, w, rq, y) }
    }
}

unsafe fn conv_scalar(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    super::conv::scalar::qs8_conv2d_scalar(g, x, w, rq, y)
}
unsafe fn dw_scalar(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    super::depthwise::scalar::qs8_dwconv_scalar(g, x, w, rq, y)
}
unsafe fn add_scalar(a: &[i8], b: &[i8], y: &mut [i8], p: &AddParams) {
    super::elementwise::qs8_add_contiguous_scalar(a, b, y, p)
}
unsafe fn mul_scalar(a: &[i8], b: &[i8], y: &mut [i8], p: &MulParams) {
    super::elementwise::qs8_mul_contiguous_scalar(a, b, y, p)
}
unsafe fn quantize_scalar(x: &[f32], y: &mut [i8], scale: f32, zp: i32) {
    super::elementwise::qs8_quantize_scalar(x, y, scale, zp)
}
#[allow(clippy::too_many_arguments)]
unsafe fn f32_conv_scalar(g: &ConvGeometry, x: &[f32], w: &[f32], b: &[f32], lo: f32, hi: f32, y: &mut [f32]) {
    super::conv::scalar::f32_conv2d_scalar(g, x, w, b, lo, hi, y)
}
unsafe fn max_pool_scalar(g: &ConvGeometry, x: &[i8], y: &mut [i8]) {
    super::pool::max_pool::<i8>(g, x, y, i8::MIN)
}
unsafe fn global_avg_pool_scalar(p: &GlobalPool, x: &[i8], y: &mut [i8]) {
    super::pool::qs8_global_avg_pool(p, x, y)
}
unsafe fn fc_scalar(m: usize, k: usize, n: usize, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    super::fc::scalar::qs8_fc_scalar(m, k, n, x, w, rq, y)
}

/// The specification: runs everywhere.
pub const SCALAR: KernelSet = KernelSet {
    name: "scalar",
    qs8_conv2d: conv_scalar,
    qs8_dwconv: dw_scalar,
    qs8_fc: fc_scalar,
    qs8_gemm: None,
    qs8_spgemm: None,
    qs8_fc_f32out: None,
    qs8_spfc_f32out: None,
    qs8_add: add_scalar,
    qs8_mul: mul_scalar,
    qs8_quantize: quantize_scalar,
    f32_conv2d: f32_conv_scalar,
    qs8_max_pool: max_pool_scalar,
    qs8_global_avg_pool: global_avg_pool_scalar,
};

#[cfg(target_arch = "x86_64")]
const AVX2: KernelSet = KernelSet {
    name: "avx2",
    qs8_conv2d: super::conv::avx2::qs8_conv2d_avx2,
    qs8_dwconv: super::depthwise::avx2::qs8_dwconv_c16_avx2,
    qs8_fc: super::fc::avx2::qs8_fc_avx2,
    qs8_gemm: Some(("qs8_gemm_4x8c4_avx2", super::gemm::avx2::qs8_gemm_4x8c4_avx2)),
    qs8_spgemm: Some(("qs8_spgemm_4x8c4_avx2", super::spgemm::x86::qs8_spgemm_4x8c4_avx2)),
    qs8_fc_f32out: Some(super::gemm::avx2::qs8_fc_f32out_1x8c4_avx2),
    qs8_spfc_f32out: Some(("qs8_spfc_f32out_avx2", super::spgemm::x86::qs8_spfc_f32out_avx2)),
    qs8_add: super::x86::qs8_add_avx2,
    qs8_mul: super::x86::qs8_mul_avx2,
    qs8_quantize: super::x86::qs8_quantize_avx2,
    f32_conv2d: super::conv::f32simd::f32_conv2d_8c_avx2,
    qs8_max_pool: super::pool::x86::qs8_max_pool_avx2,
    qs8_global_avg_pool: super::pool::x86::qs8_global_avg_pool_avx2,
};

/// AVX2 plus AVX-VNNI (`vpdpbusd`): Intel Alder Lake and later, AMD Zen 4 and later.
#[cfg(target_arch = "x86_64")]
const AVXVNNI: KernelSet = KernelSet {
    name: "avxvnni",
    qs8_gemm: Some(("qs8_gemm_4x16c4_avxvnni", super::gemm::avxvnni::qs8_gemm_4x16c4_avxvnni)),
    ..AVX2
};

/// aarch64 NEON (every aarch64 CPU: Raspberry Pi 3/4, Cortex-A53/A72).
#[cfg(target_arch = "aarch64")]
const NEON: KernelSet = KernelSet {
    name: "neon",
    qs8_conv2d: conv_scalar,
    qs8_dwconv: super::depthwise::neon::qs8_dwconv_c16_neon,
    qs8_fc: fc_scalar,
    qs8_gemm: Some(("qs8_gemm_4x8c4_neon", super::gemm::neon::qs8_gemm_4x8c4_neon)),
    qs8_spgemm: Some(("qs8_spgemm_4x8c4_neon", super::spgemm::neon::qs8_spgemm_4x8c4_neon)),
    qs8_fc_f32out: None,
    qs8_spfc_f32out: None,
    qs8_add: super::arm::qs8_add_neon,
    qs8_mul: super::arm::qs8_mul_neon,
    qs8_quantize: quantize_scalar,
    f32_conv2d: super::conv::f32simd::f32_conv2d_8c_neon,
    qs8_max_pool: super::pool::neon::qs8_max_pool_neon,
    qs8_global_avg_pool: super::pool::neon::qs8_global_avg_pool_neon,
};

/// NEON plus the Armv8.2 dot product (`sdot`): Raspberry Pi 5 (Cortex-A76), most Android phones.
#[cfg(target_arch = "aarch64")]
const DOTPROD: KernelSet = KernelSet {
    name: "dotprod",
    qs8_gemm: Some(("qs8_gemm_4x8c4_dotprod", super::gemm::neon::qs8_gemm_4x8c4_dotprod)),
    qs8_spgemm: Some(("qs8_spgemm_4x8c4_dotprod", super::spgemm::neon::qs8_spgemm_4x8c4_dotprod)),
    ..NEON
};

/// 32-bit ARM NEON (`thumbv7neon`: 32-bit Raspberry Pi OS on a Pi 2/3/4): GEMM and depthwise.
#[cfg(sparq_arm_neon)]
const ARMV7_NEON: KernelSet = KernelSet {
    name: "armv7-neon",
    qs8_dwconv: super::depthwise::armv7::qs8_dwconv_c8_armv7,
    qs8_gemm: Some(("qs8_gemm_1x8c4_armv7", super::gemm::armv7::qs8_gemm_1x8c4_armv7)),
    ..SCALAR
};

#[cfg(target_arch = "aarch64")]
fn has_dotprod() -> bool {
    #[cfg(feature = "std")]
    {
        std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "dotprod")
    }
}

/// AVX-VNNI plus AVX-512 VNNI (512-bit `vpdpbusd`): Intel Ice Lake / Sapphire Rapids, AMD Zen 4+.
#[cfg(target_arch = "x86_64")]
const AVX512VNNI: KernelSet = KernelSet {
    name: "avx512vnni",
    qs8_gemm: Some(("qs8_gemm_8x32c4_avx512vnni", super::gemm::avxvnni::qs8_gemm_8x32c4_avx512vnni)),
    qs8_dwconv: super::depthwise::vnni::qs8_dwconv_c64_avx512vnni,
    qs8_spgemm: Some(("qs8_spgemm_16x16c4_avx512vnni", super::spgemm::x86::qs8_spgemm_16x16c4_avx512vnni)),
    qs8_spfc_f32out: Some(("qs8_spfc_f32out_avx512vnni", super::spgemm::x86::qs8_spfc_f32out_avx512vnni)),
    qs8_add: super::x86::qs8_add_avx512,
    qs8_quantize: super::x86::qs8_quantize_avx512,
    ..AVXVNNI
};

#[cfg(target_arch = "x86_64")]
fn has_avx512vnni() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vl",
            target_feature = "avx512vnni"
        ))
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "avx2")
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avxvnni() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "avxvnni")
    }
}

/// Every set this CPU can run, best last.
pub fn available() -> impl Iterator<Item = KernelSet> {
    #[allow(unused_mut)] // no set is added on targets without a SIMD set
    let mut sets = [Some(SCALAR), None, None, None];
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        sets[1] = Some(AVX2);
        if has_avxvnni() {
            sets[2] = Some(AVXVNNI);
            if has_avx512vnni() {
                sets[3] = Some(AVX512VNNI);
            }
        }
    }
    #[cfg(sparq_arm_neon)]
    {
        sets[1] = Some(ARMV7_NEON);
    }
    #[cfg(target_arch = "aarch64")]
    {
        sets[1] = Some(NEON);
        if has_dotprod() {
            sets[2] = Some(DOTPROD);
        }
    }
    sets.into_iter().flatten()
}

/// The set to use: the best available, or the one named by `force` (`SPARQ_KERNELS`) if this
/// CPU can run it.
pub fn select(force: Option<&str>) -> Option<KernelSet> {
    match force {
        Some(name) => available().find(|k| k.name == name),
        None => available().last(),
    }
}
