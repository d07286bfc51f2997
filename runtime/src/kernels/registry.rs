//! One registry table per kernel family (XNNPACK's one list per family): each entry is a kernel's
//! name, the CPU features it needs, its tile, the weight packing it reads and the shapes it takes,
//! and its function. Dispatch (the session plan), the bit-exact tests and the benches all read
//! these tables, so a kernel cannot exist unregistered, untested or unbenched.
//!
//! Entries are in order of preference, the scalar specification first: an op gets the last entry
//! whose features the CPU (or the forced path) has and whose constraints its shape meets. The
//! scalar entry takes every shape, so resolution always succeeds, and it happens once, when the
//! session is planned: a kernel that does not fit is a decision there (reported by
//! `sparq inspect` / `sparq bench --per-op`), never a silent per-call fallback.

use super::conv::{ConvGeometry, Requant};
use super::elementwise::{AddParams, MulParams, Rescale};
use super::fc::F32Out;
use super::gemm::{WeightMatrix, MAX_SIMD_K, SIMD_PACK};
use super::pool::GlobalPool;
use super::spgemm::{BlockSparse, KERNEL_BLOCK};
pub use crate::cpu::{Features, PathSpec, PATHS};
use sparq_format::layout::Pack;

pub type ConvFn = unsafe fn(&ConvGeometry, &[i8], &[i8], &Requant<'_>, &mut [i8]);
/// Int16 activations, int8 weights: GEMM on an `N x K` matrix (row-major or packed panels).
pub type Qs16GemmFn = unsafe fn(&ConvGeometry, &[i16], &WeightMatrix<'_>, &Requant<'_>, &mut [i16]);
/// Int16 activations, int8 depthwise weights `[KH, KW, C]`.
pub type Qs16DwFn = unsafe fn(&ConvGeometry, &[i16], &[i8], &Requant<'_>, &mut [i16]);
pub type FcFn = unsafe fn(usize, usize, usize, &[i8], &[i8], &Requant<'_>, &mut [i8]);
pub type GemmFn = unsafe fn(&ConvGeometry, &[i8], &WeightMatrix<'_>, &Requant<'_>, &mut [i8]);
pub type SpGemmFn = unsafe fn(&ConvGeometry, &[i8], &BlockSparse<'_>, &Requant<'_>, &mut [i8]);
pub type AddFn = unsafe fn(&[i8], &[i8], &mut [i8], &AddParams);
pub type MulFn = unsafe fn(&[i8], &[i8], &mut [i8], &MulParams);
pub type QuantizeFn = unsafe fn(&[f32], &mut [i8], f32, i32);
pub type Qs16QuantizeFn = unsafe fn(&[f32], &mut [i16], f32);
pub type Qs16AddFn = unsafe fn(&[i16], &[i16], &mut [i16], &AddParams);
pub type Qs16WidenFn = unsafe fn(&[i8], &mut [i16], &Rescale);
pub type Qs16NarrowFn = unsafe fn(&[i16], &mut [i8], &Rescale);
pub type LutFn = unsafe fn(&[i8; 256], &[i8], &mut [i8]);
pub type F32ConvFn = unsafe fn(&ConvGeometry, &[f32], &[f32], &[f32], f32, f32, &mut [f32]);
pub type MaxPoolFn = unsafe fn(&ConvGeometry, &[i8], &mut [i8]);
pub type GlobalAvgPoolFn = unsafe fn(&GlobalPool, &[i8], &mut [i8]);
pub type Qs16GlobalAvgPoolFn = unsafe fn(&GlobalPool, &[i16], &mut [i16]);
pub type FcF32OutFn = unsafe fn(usize, &[i8], &WeightMatrix<'_>, &F32Out<'_>, &mut [f32]);
pub type SpFcF32OutFn = unsafe fn(usize, &[i8], &BlockSparse<'_>, &F32Out<'_>, &mut [f32]);

/// What an op asks of a kernel: its geometry (convolution-like families; `rows(m, k, n)` for
/// fully-connected layers), the weights' packing (`None`: row-major) and reduction length.
#[derive(Clone, Copy, Debug, Default)]
pub struct Query {
    pub geometry: ConvGeometry,
    pub pack: Option<Pack>,
    pub k: usize,
}

/// Output pixels x output channels x reduction step of a kernel's inner tile (documentation and
/// bench labels; `1x1x1` for element-wise kernels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub mr: usize,
    pub nr: usize,
    pub kr: usize,
}

#[allow(dead_code)]
const fn tile(mr: usize, nr: usize, kr: usize) -> Tile {
    Tile { mr, nr, kr }
}

/// One registered kernel.
#[derive(Clone, Copy)]
pub struct Entry<F: 'static> {
    pub name: &'static str,
    /// Features the CPU must have (`NONE`: runs everywhere).
    pub requires: Features,
    pub tile: Tile,
    /// The weight layout it reads: `Some(p)` only panels / blocks `p`; `None` any (the scalar
    /// specifications read every layout of their family).
    pub pack: Option<Pack>,
    /// Shapes it takes beyond the packing (reduction length, window, groups).
    pub fits: fn(&Query) -> bool,
    pub f: F,
}

impl<F> core::fmt::Debug for Entry<F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name)
    }
}

impl<F: Copy> Entry<F> {
    /// Whether this kernel runs on a CPU with `features` and takes `q`.
    pub fn accepts(&self, features: Features, q: &Query) -> bool {
        self.requires.is_subset_of(features) && self.pack.is_none_or(|p| q.pack == Some(p)) && (self.fits)(q)
    }
}

/// The entry of `table` an op with query `q` runs on a CPU with `features`: the last that accepts
/// it. Every table starts with its scalar specification, which accepts everything.
pub fn resolve<F: Copy>(table: &'static [Entry<F>], features: Features, q: &Query) -> &'static Entry<F> {
    table.iter().rev().find(|e| e.accepts(features, q)).unwrap_or(&table[0])
}

fn any(_: &Query) -> bool {
    true
}
// (Unused on targets without SIMD kernels.)
/// The im2col rows of the SIMD GEMM kernels live on the stack.
#[allow(dead_code)]
fn simd_k(q: &Query) -> bool {
    q.k <= MAX_SIMD_K
}
/// As [`simd_k`], and whole groups of 4 reduction steps.
#[allow(dead_code)]
fn simd_k4(q: &Query) -> bool {
    q.k <= MAX_SIMD_K && q.k.is_multiple_of(4)
}
/// One group and an input-channel run the f32 vector kernels keep on the stack.
#[allow(dead_code)]
fn f32_simd(q: &Query) -> bool {
    q.geometry.groups == 1 && q.geometry.in_c <= super::conv::F32_SIMD_MAX_IN_C
}
/// Row-major weights and a reduction whose int16 im2col rows the A16W8 GEMM kernels keep on the
/// stack.
#[allow(dead_code)]
fn qs16_rowmajor_k(q: &Query) -> bool {
    q.pack.is_none() && q.k <= super::qs16::MAX_SIMD_K
}
/// A depthwise window the x86 A16W8 kernels keep on the stack.
#[allow(dead_code)]
fn qs16_dw_taps(q: &Query) -> bool {
    q.geometry.kernel_h * q.geometry.kernel_w <= super::qs16::MAX_DW_TAPS
}
/// A reduction whose int16 im2col rows the packed A16W8 GEMM kernels keep on the stack.
#[allow(dead_code)]
fn qs16_simd_k(q: &Query) -> bool {
    q.k <= super::qs16::MAX_SIMD_K
}
#[cfg(sparq_arm_neon)]
fn armv7_dw(q: &Query) -> bool {
    q.geometry.kernel_h * q.geometry.kernel_w <= super::depthwise::armv7::MAX_TAPS
}

// Scalar specifications, as `unsafe fn` to share the tables' function types.
unsafe fn conv_scalar(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    super::conv::scalar::qs8_conv2d_scalar(g, x, w, rq, y)
}
unsafe fn dw_scalar(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    super::depthwise::scalar::qs8_dwconv_scalar(g, x, w, rq, y)
}
unsafe fn gemm_scalar(g: &ConvGeometry, x: &[i8], w: &WeightMatrix<'_>, rq: &Requant<'_>, y: &mut [i8]) {
    super::gemm::scalar::qs8_gemm_scalar(g, x, w, rq, y)
}
unsafe fn spgemm_scalar(g: &ConvGeometry, x: &[i8], w: &BlockSparse<'_>, rq: &Requant<'_>, y: &mut [i8]) {
    super::spgemm::qs8_spgemm_scalar(g, x, w, rq, y)
}
unsafe fn qs16_gemm_scalar(g: &ConvGeometry, x: &[i16], w: &WeightMatrix<'_>, rq: &Requant<'_>, y: &mut [i16]) {
    super::qs16::scalar::qs16_gemm_scalar(g, x, w, rq, y)
}
unsafe fn qs16_dw_scalar(g: &ConvGeometry, x: &[i16], w: &[i8], rq: &Requant<'_>, y: &mut [i16]) {
    super::qs16::scalar::qs16_dwconv_scalar(g, x, w, rq, y)
}
unsafe fn fc_scalar(m: usize, k: usize, n: usize, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    super::fc::scalar::qs8_fc_scalar(m, k, n, x, w, rq, y)
}
unsafe fn fc_f32out_scalar(m: usize, x: &[i8], w: &WeightMatrix<'_>, out: &F32Out<'_>, y: &mut [f32]) {
    super::fc::scalar::qs8_fc_f32out_scalar(m, x, w, out, y)
}
unsafe fn spfc_f32out_scalar(m: usize, x: &[i8], w: &BlockSparse<'_>, out: &F32Out<'_>, y: &mut [f32]) {
    super::spgemm::qs8_spfc_f32out_scalar(m, x, w, out, y)
}
unsafe fn add_scalar(a: &[i8], b: &[i8], y: &mut [i8], p: &AddParams) {
    super::elementwise::qs8_add_contiguous_scalar(a, b, y, p)
}
unsafe fn qs16_add_scalar(a: &[i16], b: &[i16], y: &mut [i16], p: &AddParams) {
    super::elementwise::qs16_add_contiguous_scalar(a, b, y, p)
}
unsafe fn qs16_global_avg_pool_scalar(p: &GlobalPool, x: &[i16], y: &mut [i16]) {
    super::pool::qs16_global_avg_pool(p, x, y)
}
unsafe fn qs16_quantize_scalar(x: &[f32], y: &mut [i16], scale: f32) {
    super::elementwise::qs16_quantize_scalar(x, y, scale)
}
unsafe fn qs16_widen_scalar(x: &[i8], y: &mut [i16], p: &Rescale) {
    super::elementwise::qs16_widen_scalar(x, y, p)
}
unsafe fn qs16_narrow_scalar(x: &[i16], y: &mut [i8], p: &Rescale) {
    super::elementwise::qs16_narrow_scalar(x, y, p)
}
unsafe fn mul_scalar(a: &[i8], b: &[i8], y: &mut [i8], p: &MulParams) {
    super::elementwise::qs8_mul_contiguous_scalar(a, b, y, p)
}
unsafe fn lut_scalar(table: &[i8; 256], x: &[i8], y: &mut [i8]) {
    super::lut::qs8_lut_scalar(table, x, y)
}
unsafe fn quantize_scalar(x: &[f32], y: &mut [i8], scale: f32, zp: i32) {
    super::elementwise::qs8_quantize_scalar(x, y, scale, zp)
}
#[allow(clippy::too_many_arguments)]
unsafe fn f32_conv_scalar(g: &ConvGeometry, x: &[f32], w: &[f32], b: &[f32], lo: f32, hi: f32, y: &mut [f32]) {
    super::conv::scalar::f32_conv2d_scalar(g, x, w, b, lo, hi, y)
}
#[allow(clippy::too_many_arguments)]
unsafe fn f32_dw_scalar(g: &ConvGeometry, x: &[f32], w: &[f32], b: &[f32], lo: f32, hi: f32, y: &mut [f32]) {
    super::depthwise::scalar::f32_dwconv_scalar(g, x, w, b, lo, hi, y)
}
unsafe fn max_pool_scalar(g: &ConvGeometry, x: &[i8], y: &mut [i8]) {
    super::pool::max_pool::<i8>(g, x, y, i8::MIN)
}
unsafe fn global_avg_pool_scalar(p: &GlobalPool, x: &[i8], y: &mut [i8]) {
    super::pool::qs8_global_avg_pool(p, x, y)
}

const SCALAR_TILE: Tile = tile(1, 1, 1);

macro_rules! entry {
    ($name:literal, $requires:expr, $tile:expr, $pack:expr, $fits:expr, $f:expr) => {
        Entry { name: $name, requires: $requires, tile: $tile, pack: $pack, fits: $fits, f: $f }
    };
}

#[cfg(target_arch = "x86_64")]
const AVX2: Features = Features::AVX2;
#[cfg(target_arch = "x86_64")]
const AVXVNNI: Features = Features::AVX2.union(Features::AVXVNNI);
#[cfg(target_arch = "x86_64")]
const AVX512: Features = Features::AVX2.union(Features::AVX512);
#[cfg(target_arch = "x86_64")]
const AVX512VNNI: Features = AVX512.union(Features::AVX512VNNI);
#[cfg(target_arch = "x86_64")]
const AVX512VBMI: Features = AVX512.union(Features::AVX512VBMI);
#[cfg(target_arch = "aarch64")]
const DOTPROD: Features = Features::NEON.union(Features::DOTPROD);
/// Armv8.6 cores with the int8 matrix multiply have the dot product too (both in Armv8.6-A).
#[cfg(target_arch = "aarch64")]
const I8MM: Features = DOTPROD.union(Features::I8MM);

/// Direct int8 convolution (any groups) on row-major weights.
pub const QS8_CONV: &[Entry<ConvFn>] = &[
    entry!("qs8_conv2d_scalar", Features::NONE, SCALAR_TILE, None, any, conv_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("qs8_conv2d_avx2", AVX2, tile(1, 1, 32), None, any, super::conv::avx2::qs8_conv2d_avx2),
];

/// Int8 depthwise convolution, weights `[KH, KW, C]`.
pub const QS8_DWCONV: &[Entry<ConvFn>] = &[
    entry!("qs8_dwconv_scalar", Features::NONE, SCALAR_TILE, None, any, dw_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("qs8_dwconv_c16_avx2", AVX2, tile(1, 16, 1), None, any, super::depthwise::avx2::qs8_dwconv_c16_avx2),
    #[cfg(target_arch = "x86_64")]
    entry!("qs8_dwconv_c32_avx512", AVX512, tile(1, 32, 1), None, any, super::depthwise::avx512::qs8_dwconv_c32_avx512),
    #[cfg(target_arch = "x86_64")]
    entry!(
        "qs8_dwconv_c64_avx512vnni",
        AVX512VNNI,
        tile(2, 64, 1),
        None,
        any,
        super::depthwise::avx512vnni::qs8_dwconv_c64_avx512vnni
    ),
    #[cfg(target_arch = "aarch64")]
    entry!(
        "qs8_dwconv_c16_neon",
        Features::NEON,
        tile(1, 16, 1),
        None,
        any,
        super::depthwise::neon::qs8_dwconv_c16_neon
    ),
    #[cfg(sparq_arm_neon)]
    entry!(
        "qs8_dwconv_c8_armv7",
        Features::ARMV7_NEON,
        tile(1, 8, 1),
        None,
        armv7_dw,
        super::depthwise::armv7::qs8_dwconv_c8_armv7
    ),
];

/// Int8 GEMM-convolution (one group; fully-connected layers as 1x1 over rows) on an `N x K`
/// weight matrix, row-major or packed in [`SIMD_PACK`] panels.
pub const QS8_GEMM: &[Entry<GemmFn>] = &[
    entry!("qs8_gemm_scalar", Features::NONE, SCALAR_TILE, None, any, gemm_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("qs8_gemm_4x8c4_avx2", AVX2, tile(4, 8, 4), Some(SIMD_PACK), simd_k, super::gemm::avx2::qs8_gemm_4x8c4_avx2),
    #[cfg(target_arch = "x86_64")]
    entry!(
        "qs8_gemm_4x16c4_avxvnni",
        AVXVNNI,
        tile(4, 16, 4),
        Some(SIMD_PACK),
        simd_k,
        super::gemm::avxvnni::qs8_gemm_4x16c4_avxvnni
    ),
    #[cfg(target_arch = "x86_64")]
    entry!(
        "qs8_gemm_8x32c4_avx512vnni",
        AVX512VNNI,
        tile(8, 32, 4),
        Some(SIMD_PACK),
        simd_k,
        super::gemm::avx512vnni::qs8_gemm_8x32c4_avx512vnni
    ),
    #[cfg(target_arch = "aarch64")]
    entry!(
        "qs8_gemm_4x8c4_neon",
        Features::NEON,
        tile(4, 8, 4),
        Some(SIMD_PACK),
        simd_k,
        super::gemm::neon::qs8_gemm_4x8c4_neon
    ),
    #[cfg(target_arch = "aarch64")]
    entry!(
        "qs8_gemm_4x8c4_dotprod",
        DOTPROD,
        tile(4, 8, 4),
        Some(SIMD_PACK),
        simd_k,
        super::gemm::dotprod::qs8_gemm_4x8c4_dotprod
    ),
    #[cfg(target_arch = "aarch64")]
    entry!("qs8_gemm_8x8c4_i8mm", I8MM, tile(8, 8, 4), Some(SIMD_PACK), simd_k, super::gemm::i8mm::qs8_gemm_8x8c4_i8mm),
    #[cfg(sparq_arm_neon)]
    entry!(
        "qs8_gemm_1x8c4_armv7",
        Features::ARMV7_NEON,
        tile(1, 8, 4),
        Some(SIMD_PACK),
        simd_k,
        super::gemm::armv7::qs8_gemm_1x8c4_armv7
    ),
];

/// A16W8 GEMM-convolution (one group; fully-connected layers as 1x1 over rows) on an `N x K`
/// int8 weight matrix, row-major or packed in [`SIMD_PACK`] panels, int16 activations in and
/// out (format 1.6).
pub const QS16_GEMM: &[Entry<Qs16GemmFn>] = &[
    entry!("qs16_gemm_scalar", Features::NONE, SCALAR_TILE, None, any, qs16_gemm_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("qs16_gemm_4x2c16_avx2", AVX2, tile(4, 2, 16), None, qs16_rowmajor_k, super::qs16::avx2::qs16_gemm_4x2_avx2),
    #[cfg(target_arch = "x86_64")]
    entry!(
        "qs16_gemm_4x8c4_avx2",
        AVX2,
        tile(4, 8, 4),
        Some(SIMD_PACK),
        qs16_simd_k,
        super::qs16::avx2::qs16_gemm_4x8c4_avx2
    ),
    #[cfg(target_arch = "x86_64")]
    entry!(
        "qs16_gemm_4x4c32_avx512vnni",
        AVX512VNNI,
        tile(4, 4, 32),
        None,
        qs16_rowmajor_k,
        super::qs16::avx512vnni::qs16_gemm_4x4_avx512vnni
    ),
    #[cfg(target_arch = "x86_64")]
    entry!(
        "qs16_gemm_8x16c4_avx512vnni",
        AVX512VNNI,
        tile(8, 16, 4),
        Some(SIMD_PACK),
        qs16_simd_k,
        super::qs16::avx512vnni::qs16_gemm_8x16c4_avx512vnni
    ),
    #[cfg(target_arch = "aarch64")]
    entry!(
        "qs16_gemm_4x2c8_neon",
        Features::NEON,
        tile(4, 2, 8),
        None,
        qs16_rowmajor_k,
        super::qs16::neon::qs16_gemm_4x2_neon
    ),
    #[cfg(target_arch = "aarch64")]
    entry!(
        "qs16_gemm_2x8c4_neon",
        Features::NEON,
        tile(2, 8, 4),
        Some(SIMD_PACK),
        qs16_simd_k,
        super::qs16::neon::qs16_gemm_2x8c4_neon
    ),
];

/// A16W8 depthwise convolution, weights `[KH, KW, C]` int8, int16 activations (format 1.6).
pub const QS16_DWCONV: &[Entry<Qs16DwFn>] = &[
    entry!("qs16_dwconv_scalar", Features::NONE, SCALAR_TILE, None, any, qs16_dw_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("qs16_dwconv_c16_avx2", AVX2, tile(1, 16, 2), None, qs16_dw_taps, super::qs16::avx2::qs16_dwconv_c16_avx2),
    #[cfg(target_arch = "x86_64")]
    entry!(
        "qs16_dwconv_c32_avx512vnni",
        AVX512VNNI,
        tile(1, 32, 2),
        None,
        qs16_dw_taps,
        super::qs16::avx512vnni::qs16_dwconv_c32_avx512vnni
    ),
    #[cfg(target_arch = "aarch64")]
    entry!("qs16_dwconv_c8_neon", Features::NEON, tile(1, 8, 1), None, any, super::qs16::neon::qs16_dwconv_c8_neon),
];

/// Int8 block-sparse GEMM-convolution (one group) on [`KERNEL_BLOCK`] blocks.
pub const QS8_SPGEMM: &[Entry<SpGemmFn>] = &[
    entry!("qs8_spgemm_scalar", Features::NONE, SCALAR_TILE, None, any, spgemm_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!(
        "qs8_spgemm_4x8c4_avx2",
        AVX2,
        tile(4, 8, 4),
        Some(KERNEL_BLOCK),
        simd_k,
        super::spgemm::avx2::qs8_spgemm_4x8c4_avx2
    ),
    #[cfg(target_arch = "x86_64")]
    entry!(
        "qs8_spgemm_16x16c4_avx512vnni",
        AVX512VNNI,
        tile(16, 16, 4),
        Some(KERNEL_BLOCK),
        simd_k,
        super::spgemm::avx512vnni::qs8_spgemm_16x16c4_avx512vnni
    ),
    #[cfg(target_arch = "aarch64")]
    entry!(
        "qs8_spgemm_4x8c4_neon",
        Features::NEON,
        tile(4, 8, 4),
        Some(KERNEL_BLOCK),
        simd_k,
        super::spgemm::neon::qs8_spgemm_4x8c4_neon
    ),
    #[cfg(target_arch = "aarch64")]
    entry!(
        "qs8_spgemm_4x8c4_dotprod",
        DOTPROD,
        tile(4, 8, 4),
        Some(KERNEL_BLOCK),
        simd_k,
        super::spgemm::dotprod::qs8_spgemm_4x8c4_dotprod
    ),
];

/// Int8 fully-connected on a row-major `[N][K]` matrix.
pub const QS8_FC: &[Entry<FcFn>] = &[
    entry!("qs8_fc_scalar", Features::NONE, SCALAR_TILE, None, any, fc_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("qs8_fc_1x1c32_avx2", AVX2, tile(1, 1, 32), None, any, super::fc::avx2::qs8_fc_avx2),
];

/// Int8 fully-connected with f32 output (logits), row-major or [`SIMD_PACK`] panels.
pub const QS8_FC_F32OUT: &[Entry<FcF32OutFn>] = &[
    entry!("qs8_fc_f32out_scalar", Features::NONE, SCALAR_TILE, None, any, fc_f32out_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!(
        "qs8_fc_f32out_1x8c4_avx2",
        AVX2,
        tile(1, 8, 4),
        Some(SIMD_PACK),
        simd_k,
        super::gemm::avx2::qs8_fc_f32out_1x8c4_avx2
    ),
];

/// Int8 fully-connected with f32 output on [`KERNEL_BLOCK`] blocks.
pub const QS8_SPFC_F32OUT: &[Entry<SpFcF32OutFn>] = &[
    entry!("qs8_spfc_f32out_scalar", Features::NONE, SCALAR_TILE, None, any, spfc_f32out_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!(
        "qs8_spfc_f32out_1x8c4_avx2",
        AVX2,
        tile(1, 8, 4),
        Some(KERNEL_BLOCK),
        simd_k4,
        super::spgemm::avx2::qs8_spfc_f32out_avx2
    ),
    #[cfg(target_arch = "x86_64")]
    entry!(
        "qs8_spfc_f32out_1x16c4_avx512vnni",
        AVX512VNNI,
        tile(1, 16, 4),
        Some(KERNEL_BLOCK),
        simd_k4,
        super::spgemm::avx512vnni::qs8_spfc_f32out_avx512vnni
    ),
];

/// Int8 add of contiguous operands of one shape and layout.
pub const QS8_ADD: &[Entry<AddFn>] = &[
    entry!("qs8_add_scalar", Features::NONE, SCALAR_TILE, None, any, add_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("qs8_add_x16_avx2", AVX2, tile(1, 16, 1), None, any, super::elementwise::avx2::qs8_add_avx2),
    #[cfg(target_arch = "x86_64")]
    entry!("qs8_add_x32_avx512", AVX512, tile(1, 32, 1), None, any, super::elementwise::avx512::qs8_add_avx512),
    #[cfg(target_arch = "aarch64")]
    entry!("qs8_add_x8_neon", Features::NEON, tile(1, 8, 1), None, any, super::elementwise::neon::qs8_add_neon),
];

/// Int16 add (format 1.6) of contiguous operands of one shape and layout.
pub const QS16_ADD: &[Entry<Qs16AddFn>] = &[
    entry!("qs16_add_scalar", Features::NONE, SCALAR_TILE, None, any, qs16_add_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("qs16_add_x8_avx2", AVX2, tile(1, 8, 1), None, any, super::elementwise::avx2::qs16_add_avx2),
    #[cfg(target_arch = "x86_64")]
    entry!("qs16_add_x16_avx512", AVX512, tile(1, 16, 1), None, any, super::elementwise::avx512::qs16_add_avx512),
    #[cfg(target_arch = "aarch64")]
    entry!("qs16_add_x8_neon", Features::NEON, tile(1, 8, 1), None, any, super::elementwise::neon::qs16_add_neon),
];

/// f32 -> int16 quantization (format 1.6) of a contiguous slice.
pub const QS16_QUANTIZE: &[Entry<Qs16QuantizeFn>] = &[
    entry!("qs16_quantize_scalar", Features::NONE, SCALAR_TILE, None, any, qs16_quantize_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("qs16_quantize_x8_avx2", AVX2, tile(1, 8, 1), None, any, super::elementwise::avx2::qs16_quantize_avx2),
    #[cfg(target_arch = "x86_64")]
    entry!(
        "qs16_quantize_x16_avx512",
        AVX512,
        tile(1, 16, 1),
        None,
        any,
        super::elementwise::avx512::qs16_quantize_avx512
    ),
    #[cfg(target_arch = "aarch64")]
    entry!(
        "qs16_quantize_x8_neon",
        Features::NEON,
        tile(1, 8, 1),
        None,
        any,
        super::elementwise::neon::qs16_quantize_neon
    ),
];

/// Int8 to int16 codes (REQUANTIZE, format 1.6) of contiguous operands of one shape and layout.
pub const QS16_WIDEN: &[Entry<Qs16WidenFn>] = &[
    entry!("qs16_widen_scalar", Features::NONE, SCALAR_TILE, None, any, qs16_widen_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("qs16_widen_x8_avx2", AVX2, tile(1, 8, 1), None, any, super::elementwise::avx2::qs16_widen_avx2),
    #[cfg(target_arch = "x86_64")]
    entry!("qs16_widen_x16_avx512", AVX512, tile(1, 16, 1), None, any, super::elementwise::avx512::qs16_widen_avx512),
    #[cfg(target_arch = "aarch64")]
    entry!("qs16_widen_x8_neon", Features::NEON, tile(1, 8, 1), None, any, super::elementwise::neon::qs16_widen_neon),
];

/// Int16 to int8 codes (REQUANTIZE, format 1.6) of contiguous operands of one shape and layout.
pub const QS16_NARROW: &[Entry<Qs16NarrowFn>] = &[
    entry!("qs16_narrow_scalar", Features::NONE, SCALAR_TILE, None, any, qs16_narrow_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("qs16_narrow_x8_avx2", AVX2, tile(1, 8, 1), None, any, super::elementwise::avx2::qs16_narrow_avx2),
    #[cfg(target_arch = "x86_64")]
    entry!("qs16_narrow_x16_avx512", AVX512, tile(1, 16, 1), None, any, super::elementwise::avx512::qs16_narrow_avx512),
    #[cfg(target_arch = "aarch64")]
    entry!("qs16_narrow_x8_neon", Features::NEON, tile(1, 8, 1), None, any, super::elementwise::neon::qs16_narrow_neon),
];

/// Int8 multiply of contiguous operands of one shape and layout.
pub const QS8_MUL: &[Entry<MulFn>] = &[
    entry!("qs8_mul_scalar", Features::NONE, SCALAR_TILE, None, any, mul_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("qs8_mul_x8_avx2", AVX2, tile(1, 8, 1), None, any, super::elementwise::avx2::qs8_mul_avx2),
    #[cfg(target_arch = "x86_64")]
    entry!("qs8_mul_x16_avx512", AVX512, tile(1, 16, 1), None, any, super::elementwise::avx512::qs8_mul_avx512),
    #[cfg(target_arch = "aarch64")]
    entry!("qs8_mul_x4_neon", Features::NEON, tile(1, 4, 1), None, any, super::elementwise::neon::qs8_mul_neon),
];

/// f32 -> int8 quantization of a contiguous slice.
pub const QS8_QUANTIZE: &[Entry<QuantizeFn>] = &[
    entry!("qs8_quantize_scalar", Features::NONE, SCALAR_TILE, None, any, quantize_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("qs8_quantize_x8_avx2", AVX2, tile(1, 8, 1), None, any, super::elementwise::avx2::qs8_quantize_avx2),
    #[cfg(target_arch = "x86_64")]
    entry!(
        "qs8_quantize_x16_avx512",
        AVX512,
        tile(1, 16, 1),
        None,
        any,
        super::elementwise::avx512::qs8_quantize_avx512
    ),
    #[cfg(target_arch = "aarch64")]
    entry!(
        "qs8_quantize_x8_neon",
        Features::NEON,
        tile(1, 8, 1),
        None,
        any,
        super::elementwise::neon::qs8_quantize_neon
    ),
];

/// f32 convolution (any groups; fully-connected layers as 1x1 over rows).
pub const F32_CONV: &[Entry<F32ConvFn>] = &[
    entry!("f32_conv2d_scalar", Features::NONE, SCALAR_TILE, None, any, f32_conv_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("f32_conv2d_6x16_avx2", AVX2, tile(6, 16, 1), None, f32_simd, super::conv::f32simd::f32_conv2d_6x16_avx2),
    #[cfg(target_arch = "x86_64")]
    entry!(
        "f32_conv2d_8x32_avx512",
        AVX512,
        tile(8, 32, 1),
        None,
        f32_simd,
        super::conv::f32simd::f32_conv2d_8x32_avx512
    ),
    #[cfg(target_arch = "aarch64")]
    entry!(
        "f32_conv2d_8x8_neon",
        Features::NEON,
        tile(8, 8, 1),
        None,
        f32_simd,
        super::conv::f32simd::f32_conv2d_8x8_neon
    ),
];

/// f32 depthwise convolution.
pub const F32_DWCONV: &[Entry<F32ConvFn>] =
    &[entry!("f32_dwconv_scalar", Features::NONE, SCALAR_TILE, None, any, f32_dw_scalar)];

/// Int8 max pooling (NHWC).
pub const QS8_MAX_POOL: &[Entry<MaxPoolFn>] = &[
    entry!("qs8_max_pool_scalar", Features::NONE, SCALAR_TILE, None, any, max_pool_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("qs8_max_pool_c32_avx2", AVX2, tile(1, 32, 1), None, any, super::pool::avx2::qs8_max_pool_avx2),
    #[cfg(target_arch = "aarch64")]
    entry!("qs8_max_pool_c16_neon", Features::NEON, tile(1, 16, 1), None, any, super::pool::neon::qs8_max_pool_neon),
];

/// Int8 global average pooling (NHWC), requantized.
pub const QS8_GLOBAL_AVG_POOL: &[Entry<GlobalAvgPoolFn>] = &[
    entry!("qs8_global_avg_pool_scalar", Features::NONE, SCALAR_TILE, None, any, global_avg_pool_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("qs8_global_avg_pool_c8_avx2", AVX2, tile(1, 8, 1), None, any, super::pool::avx2::qs8_global_avg_pool_avx2),
    #[cfg(target_arch = "aarch64")]
    entry!(
        "qs8_global_avg_pool_c8_neon",
        Features::NEON,
        tile(1, 8, 1),
        None,
        any,
        super::pool::neon::qs8_global_avg_pool_neon
    ),
];

/// Int16 global average pooling (NHWC, format 1.6), requantized.
pub const QS16_GLOBAL_AVG_POOL: &[Entry<Qs16GlobalAvgPoolFn>] = &[
    entry!("qs16_global_avg_pool_scalar", Features::NONE, SCALAR_TILE, None, any, qs16_global_avg_pool_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!(
        "qs16_global_avg_pool_c16_avx2",
        AVX2,
        tile(1, 16, 1),
        None,
        any,
        super::pool::avx2::qs16_global_avg_pool_avx2
    ),
    #[cfg(target_arch = "aarch64")]
    entry!(
        "qs16_global_avg_pool_c8_neon",
        Features::NEON,
        tile(1, 8, 1),
        None,
        any,
        super::pool::neon::qs16_global_avg_pool_neon
    ),
];

/// Int8 table lookup (any unary activation in int8) of contiguous operands.
pub const QS8_LUT: &[Entry<LutFn>] = &[
    entry!("qs8_lut_scalar", Features::NONE, SCALAR_TILE, None, any, lut_scalar),
    #[cfg(target_arch = "x86_64")]
    entry!("qs8_lut_x32_avx2", AVX2, tile(1, 32, 1), None, any, super::lut::avx2::qs8_lut_avx2),
    #[cfg(target_arch = "x86_64")]
    entry!("qs8_lut_x64_avx512vbmi", AVX512VBMI, tile(1, 64, 1), None, any, super::lut::avx512vbmi::qs8_lut_avx512vbmi),
    #[cfg(target_arch = "aarch64")]
    entry!("qs8_lut_x16_neon", Features::NEON, tile(1, 16, 1), None, any, super::lut::neon::qs8_lut_neon),
];

/// Names and features of every entry of every family, `(family, name, requires)`.
pub fn all_entries() -> impl Iterator<Item = (&'static str, &'static str, Features)> {
    fn of<F: Copy>(
        family: &'static str,
        t: &'static [Entry<F>],
    ) -> impl Iterator<Item = (&'static str, &'static str, Features)> {
        t.iter().map(move |e| (family, e.name, e.requires))
    }
    of("qs8_conv", QS8_CONV)
        .chain(of("qs8_dwconv", QS8_DWCONV))
        .chain(of("qs8_gemm", QS8_GEMM))
        .chain(of("qs8_spgemm", QS8_SPGEMM))
        .chain(of("qs16_gemm", QS16_GEMM))
        .chain(of("qs16_dwconv", QS16_DWCONV))
        .chain(of("qs16_add", QS16_ADD))
        .chain(of("qs16_quantize", QS16_QUANTIZE))
        .chain(of("qs16_widen", QS16_WIDEN))
        .chain(of("qs16_narrow", QS16_NARROW))
        .chain(of("qs8_fc", QS8_FC))
        .chain(of("qs8_fc_f32out", QS8_FC_F32OUT))
        .chain(of("qs8_spfc_f32out", QS8_SPFC_F32OUT))
        .chain(of("qs8_add", QS8_ADD))
        .chain(of("qs8_mul", QS8_MUL))
        .chain(of("qs8_quantize", QS8_QUANTIZE))
        .chain(of("qs8_lut", QS8_LUT))
        .chain(of("f32_conv", F32_CONV))
        .chain(of("f32_dwconv", F32_DWCONV))
        .chain(of("qs8_max_pool", QS8_MAX_POOL))
        .chain(of("qs8_global_avg_pool", QS8_GLOBAL_AVG_POOL))
        .chain(of("qs16_global_avg_pool", QS16_GLOBAL_AVG_POOL))
}

/// A kernel path bound to the features it may use on this CPU: what tests and benches iterate
/// to run every family as a CPU of that class would. Its methods resolve the family's entry for
/// each call (the session resolves once, in its plan).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KernelSet {
    name: &'static str,
    features: Features,
}

impl core::fmt::Debug for KernelSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name)
    }
}

/// The specification: every op on its scalar kernel.
pub const SCALAR: KernelSet = KernelSet { name: "scalar", features: Features::NONE };

fn conv_query(g: &ConvGeometry, pack: Option<Pack>, k: usize) -> Query {
    Query { geometry: *g, pack, k }
}

impl KernelSet {
    /// A path with explicit features (for tests that check resolution on CPUs other than this
    /// one: the functions it resolves must not be called unless this CPU has the features).
    pub const fn with_features(name: &'static str, features: Features) -> KernelSet {
        KernelSet { name, features }
    }
    pub fn name(&self) -> &'static str {
        self.name
    }
    pub fn features(&self) -> Features {
        self.features
    }
    /// The entry of `table` this path runs for `q`.
    pub fn entry<F: Copy>(&self, table: &'static [Entry<F>], q: &Query) -> &'static Entry<F> {
        resolve(table, self.features, q)
    }
    pub fn qs8_conv2d(&self, g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
        let e = self.entry(QS8_CONV, &conv_query(g, None, 0));
        // SAFETY: a set is only obtained for a CPU that has its features (see `available`), and
        // the entry accepted the shape.
        unsafe { (e.f)(g, x, w, rq, y) }
    }
    pub fn qs8_dwconv(&self, g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
        let e = self.entry(QS8_DWCONV, &conv_query(g, None, 0));
        // SAFETY: as above.
        unsafe { (e.f)(g, x, w, rq, y) }
    }
    pub fn qs8_gemm(&self, g: &ConvGeometry, x: &[i8], w: &WeightMatrix<'_>, rq: &Requant<'_>, y: &mut [i8]) {
        let e = self.entry(QS8_GEMM, &conv_query(g, w.pack, w.k));
        // SAFETY: as above.
        unsafe { (e.f)(g, x, w, rq, y) }
    }
    pub fn qs8_spgemm(&self, g: &ConvGeometry, x: &[i8], w: &BlockSparse<'_>, rq: &Requant<'_>, y: &mut [i8]) {
        let e = self.entry(QS8_SPGEMM, &conv_query(g, Some(w.block), w.k));
        // SAFETY: as above.
        unsafe { (e.f)(g, x, w, rq, y) }
    }
    pub fn qs16_gemm(&self, g: &ConvGeometry, x: &[i16], w: &WeightMatrix<'_>, rq: &Requant<'_>, y: &mut [i16]) {
        let e = self.entry(QS16_GEMM, &conv_query(g, w.pack, w.k));
        // SAFETY: as above.
        unsafe { (e.f)(g, x, w, rq, y) }
    }
    pub fn qs16_dwconv(&self, g: &ConvGeometry, x: &[i16], w: &[i8], rq: &Requant<'_>, y: &mut [i16]) {
        let e = self.entry(QS16_DWCONV, &conv_query(g, None, g.kernel_h * g.kernel_w));
        // SAFETY: as above.
        unsafe { (e.f)(g, x, w, rq, y) }
    }
    #[allow(clippy::too_many_arguments)]
    pub fn qs8_fc(&self, m: usize, k: usize, n: usize, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
        let e = self.entry(QS8_FC, &conv_query(&ConvGeometry::rows(m, k, n), None, k));
        // SAFETY: as above.
        unsafe { (e.f)(m, k, n, x, w, rq, y) }
    }
    pub fn qs8_fc_f32out(&self, m: usize, x: &[i8], w: &WeightMatrix<'_>, out: &F32Out<'_>, y: &mut [f32]) {
        let e = self.entry(QS8_FC_F32OUT, &conv_query(&ConvGeometry::rows(m, w.k, w.n), w.pack, w.k));
        // SAFETY: as above.
        unsafe { (e.f)(m, x, w, out, y) }
    }
    pub fn qs8_spfc_f32out(&self, m: usize, x: &[i8], w: &BlockSparse<'_>, out: &F32Out<'_>, y: &mut [f32]) {
        let e = self.entry(QS8_SPFC_F32OUT, &conv_query(&ConvGeometry::rows(m, w.k, w.n), Some(w.block), w.k));
        // SAFETY: as above.
        unsafe { (e.f)(m, x, w, out, y) }
    }
    pub fn qs8_add(&self, a: &[i8], b: &[i8], y: &mut [i8], p: &AddParams) {
        let e = self.entry(QS8_ADD, &Query::default());
        // SAFETY: as above.
        unsafe { (e.f)(a, b, y, p) }
    }
    pub fn qs16_add(&self, a: &[i16], b: &[i16], y: &mut [i16], p: &AddParams) {
        let e = self.entry(QS16_ADD, &Query::default());
        // SAFETY: as above.
        unsafe { (e.f)(a, b, y, p) }
    }
    pub fn qs16_quantize(&self, x: &[f32], y: &mut [i16], scale: f32) {
        let e = self.entry(QS16_QUANTIZE, &Query::default());
        // SAFETY: as above.
        unsafe { (e.f)(x, y, scale) }
    }
    pub fn qs16_widen(&self, x: &[i8], y: &mut [i16], p: &Rescale) {
        let e = self.entry(QS16_WIDEN, &Query::default());
        // SAFETY: as above.
        unsafe { (e.f)(x, y, p) }
    }
    pub fn qs16_narrow(&self, x: &[i16], y: &mut [i8], p: &Rescale) {
        let e = self.entry(QS16_NARROW, &Query::default());
        // SAFETY: as above.
        unsafe { (e.f)(x, y, p) }
    }
    pub fn qs8_mul(&self, a: &[i8], b: &[i8], y: &mut [i8], p: &MulParams) {
        let e = self.entry(QS8_MUL, &Query::default());
        // SAFETY: as above.
        unsafe { (e.f)(a, b, y, p) }
    }
    pub fn qs8_lut(&self, table: &[i8; 256], x: &[i8], y: &mut [i8]) {
        let e = self.entry(QS8_LUT, &Query::default());
        // SAFETY: as above.
        unsafe { (e.f)(table, x, y) }
    }
    pub fn qs8_quantize(&self, x: &[f32], y: &mut [i8], scale: f32, zero_point: i32) {
        let e = self.entry(QS8_QUANTIZE, &Query::default());
        // SAFETY: as above.
        unsafe { (e.f)(x, y, scale, zero_point) }
    }
    #[allow(clippy::too_many_arguments)]
    pub fn f32_conv2d(&self, g: &ConvGeometry, x: &[f32], w: &[f32], bias: &[f32], lo: f32, hi: f32, y: &mut [f32]) {
        let e = self.entry(F32_CONV, &conv_query(g, None, 0));
        // SAFETY: as above.
        unsafe { (e.f)(g, x, w, bias, lo, hi, y) }
    }
    pub fn qs8_max_pool(&self, g: &ConvGeometry, x: &[i8], y: &mut [i8]) {
        let e = self.entry(QS8_MAX_POOL, &conv_query(g, None, 0));
        // SAFETY: as above.
        unsafe { (e.f)(g, x, y) }
    }
    pub fn qs8_global_avg_pool(&self, p: &GlobalPool, x: &[i8], y: &mut [i8]) {
        let e = self.entry(QS8_GLOBAL_AVG_POOL, &Query::default());
        // SAFETY: as above.
        unsafe { (e.f)(p, x, y) }
    }
    pub fn qs16_global_avg_pool(&self, p: &GlobalPool, x: &[i16], y: &mut [i16]) {
        let e = self.entry(QS16_GLOBAL_AVG_POOL, &Query::default());
        // SAFETY: as above.
        unsafe { (e.f)(p, x, y) }
    }
    /// Name of the GEMM kernel this path runs on packed weights.
    pub fn gemm_name(&self) -> &'static str {
        self.entry(QS8_GEMM, &Query { pack: Some(SIMD_PACK), k: 64, ..Query::default() }).name
    }
    /// Name of the sparse kernel this path runs on [`KERNEL_BLOCK`] blocks.
    pub fn spgemm_name(&self) -> &'static str {
        self.entry(QS8_SPGEMM, &Query { pack: Some(KERNEL_BLOCK), k: 64, ..Query::default() }).name
    }
    /// Name of the sparse f32-output fully-connected kernel of this path.
    pub fn spfc_f32out_name(&self) -> &'static str {
        self.entry(QS8_SPFC_F32OUT, &Query { pack: Some(KERNEL_BLOCK), k: 64, ..Query::default() }).name
    }
}

/// Every path this CPU can run, the specification first and the widest last.
pub fn available() -> impl Iterator<Item = KernelSet> {
    let cpu = Features::detect();
    PATHS.iter().filter_map(move |p| p.on(cpu).map(|features| KernelSet { name: p.name, features }))
}

/// The path to use: the widest this CPU runs, or the one named by `force` (`SPARQ_KERNELS`) if
/// this CPU can run it.
pub fn select(force: Option<&str>) -> Option<KernelSet> {
    match force {
        Some(name) => available().find(|k| k.name == name),
        None => available().last(),
    }
}
