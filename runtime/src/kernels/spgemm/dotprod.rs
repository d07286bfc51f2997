//! aarch64 block-sparse int8 GEMM-convolution with the Armv8.2 dot product,
//! `qs8_spgemm_4x8c4_dotprod`: the NEON kernel's frame (`super::neon::drive`, see there) with an
//! `sdot` tile, one `sdot` per 4 channels and stored block.

use super::neon::{drive, MR};
use super::BlockSparse;
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::gemm::dotprod::step_dotprod;
use core::arch::aarch64::*;

/// `sdot` tile: one `sdot` per 4 channels and stored block (`gemm::dotprod::step_dotprod`).
///
/// # Safety
/// The CPU must support dotprod; otherwise as `super::neon::Tile`'s contract.
#[target_feature(enable = "neon,dotprod")]
unsafe fn tile_dotprod(
    w: &BlockSparse<'_>,
    blocks: core::ops::Range<usize>,
    half: usize,
    rows: &[*const i8; MR],
) -> [[int32x4_t; 2]; MR] {
    let (cols, values) = (w.cols(), w.values());
    // SAFETY: as `super::neon::tile_neon`; `sdot` needs dotprod, enabled for this function.
    unsafe {
        let mut acc = [[vdupq_n_s32(0); 2]; MR];
        for b in blocks {
            let w0 = vld1q_s8(values.as_ptr().add(b * 64 + half * 32));
            let w1 = vld1q_s8(values.as_ptr().add(b * 64 + half * 32 + 16));
            step_dotprod(&mut acc, w0, w1, rows, cols[b] as usize * 4);
        }
        acc
    }
}

/// # Safety
/// The CPU must support dotprod; otherwise as `super::neon::qs8_spgemm_4x8c4_neon`.
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn qs8_spgemm_4x8c4_dotprod(
    g: &ConvGeometry,
    x: &[i8],
    w: &BlockSparse<'_>,
    rq: &Requant<'_>,
    y: &mut [i8],
) {
    // SAFETY: the caller's contract (dotprod available).
    unsafe { drive(g, x, w, rq, y, tile_dotprod) }
}
