//! aarch64 int8 GEMM-convolution with the Armv8.2 dot product (`sdot`: Cortex-A55/A76 and later,
//! Raspberry Pi 5, most Android phones), `qs8_gemm_4x8c4_dotprod`: the NEON kernel's frame
//! (`super::neon::drive`, see there for the scheme) with an `sdot` tile.

use super::neon::{drive, MR};
use super::WeightMatrix;
use crate::kernels::conv::{ConvGeometry, Requant};
use core::arch::aarch64::*;

/// One step of 4 along K of the `sdot` tiles (dense and block-sparse): as `super::neon::step_neon`, each
/// channel's 4 products summed into its lane by `sdot` (`asm!`: `vdotq_laneq_s32` is not stable
/// Rust yet).
///
/// # Safety
/// The CPU must support dotprod; each `rows[r] + at` must address 4 readable bytes.
#[target_feature(enable = "neon,dotprod")]
#[inline]
pub(crate) unsafe fn step_dotprod<const R: usize>(
    acc: &mut [[int32x4_t; 2]; R],
    w0: int8x16_t,
    w1: int8x16_t,
    rows: &[*const i8; R],
    at: usize,
) {
    // SAFETY: the caller's contract; `sdot` needs dotprod, enabled for this function.
    unsafe {
        for r in 0..R {
            let av = vreinterpretq_s8_s32(vdupq_n_s32(rows[r].add(at).cast::<i32>().read_unaligned()));
            core::arch::asm!(
                "sdot {a0:v}.4s, {w0:v}.16b, {x:v}.4b[0]",
                "sdot {a1:v}.4s, {w1:v}.16b, {x:v}.4b[0]",
                a0 = inout(vreg) acc[r][0],
                a1 = inout(vreg) acc[r][1],
                w0 = in(vreg) w0,
                w1 = in(vreg) w1,
                x = in(vreg) av,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
    }
}

/// `sdot` tile: per step of 4 along K, one `sdot` per 4 channels adds each channel's 4 products
/// with the pixel's 4 bytes (selected by lane) into its i32 lane ([`step_dotprod`]).
///
/// # Safety
/// The CPU must support dotprod. Each `rows[r]` must address `kp` readable bytes; `panel` holds
/// `8 * kp`.
#[target_feature(enable = "neon,dotprod")]
unsafe fn tile_dotprod(panel: &[i8], kp: usize, rows: &[*const i8; MR]) -> [[int32x4_t; 2]; MR] {
    // SAFETY: bounds as documented; `sdot` needs dotprod, enabled for this function.
    unsafe {
        let mut acc = [[vdupq_n_s32(0); 2]; MR];
        for kg in 0..kp / 4 {
            let w0 = vld1q_s8(panel.as_ptr().add(kg * 32));
            let w1 = vld1q_s8(panel.as_ptr().add(kg * 32 + 16));
            step_dotprod(&mut acc, w0, w1, rows, kg * 4);
        }
        acc
    }
}

/// # Safety
/// The CPU must support dotprod. `w` must be packed with [`SIMD_PACK`], `w.k <= MAX_SIMD_K`, and
/// the slices must match the geometry (as validated at load).
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn qs8_gemm_4x8c4_dotprod(g: &ConvGeometry, x: &[i8], w: &WeightMatrix<'_>, rq: &Requant<'_>, y: &mut [i8]) {
    // SAFETY: the caller's contract (dotprod available).
    unsafe { drive(g, x, w, rq, y, tile_dotprod) }
}
