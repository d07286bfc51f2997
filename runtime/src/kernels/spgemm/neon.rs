//! aarch64 block-sparse int8 GEMM-convolution on 16x4 blocks, 4 pixels x 8 channels per tile:
//! `qs8_spgemm_4x8c4_neon` (`smull` + `sadalp`, every aarch64 CPU), and the frame
//! `super::dotprod::qs8_spgemm_4x8c4_dotprod` (`sdot`) shares through its own tile.
//!
//! A stored block is 16 channels x 4 reduction steps, 64 bytes: four 16-byte vectors of 4
//! channels x 4 weights, the operand layout of `sdot`. A tile covers half a block-row (8
//! channels, two of the four vectors) for 4 pixels; per stored block, each pixel's 4 input
//! bytes at the block's column are replicated and multiplied. As in the dense kernels the raw
//! int8 products are exact, and the zero point comes out once per channel through the bias
//! (`sum (x - zp) w = sum x w - zp sum w`, the sum over the stored weights).

use super::{BlockSparse, KERNEL_BLOCK};
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::gemm::neon::{fold_neon, requant_store8, step_neon};
use crate::kernels::gemm::{block_rows, is_pointwise, MAX_SIMD_K};
use core::arch::aarch64::*;

pub(super) const MR: usize = 4;

/// Accumulates `sum x w` of half `half` (channels `8 half .. 8 half + 8`) of the block-row whose
/// stored blocks are `blocks`, for the `MR` rows.
pub(super) type Tile = unsafe fn(
    w: &BlockSparse<'_>,
    blocks: core::ops::Range<usize>,
    half: usize,
    rows: &[*const i8; MR],
) -> [[int32x4_t; 2]; MR];

/// # Safety
/// `w.block == KERNEL_BLOCK`, `w.k <= MAX_SIMD_K`, `w` validated (as at load), the slices match
/// the geometry, and `tile` must be runnable on this CPU.
#[target_feature(enable = "neon")]
#[inline]
pub(super) unsafe fn drive(
    g: &ConvGeometry,
    x: &[i8],
    w: &BlockSparse<'_>,
    rq: &Requant<'_>,
    y: &mut [i8],
    tile: Tile,
) {
    debug_assert!(w.block == KERNEL_BLOCK && w.k <= MAX_SIMD_K && w.n == g.out_c);
    let (n, k) = (g.out_c, w.k);
    let pixels = g.batch * g.out_h * g.out_w;
    let zp = rq.input_zero_point;
    let direct = is_pointwise(g) && k % 4 == 0;
    let mut a = [[0i8; MAX_SIMD_K]; MR];
    let values = w.values();
    // Corrected biases (`bias - zp sum w` over the stored blocks) of `CHUNK` block-rows per pass.
    const CHUNK: usize = 64;
    let mut corrected = [0i32; CHUNK * 16];
    let nrb = w.block_rows();
    let mut rb0 = 0;
    while rb0 < nrb {
        let chunk = CHUNK.min(nrb - rb0);
        for i in 0..chunk {
            let rb = rb0 + i;
            let mut sums = [0i32; 16];
            for b in w.blocks(rb) {
                for (l, s) in sums.iter_mut().enumerate() {
                    *s += values[b * 64 + 4 * l..][..4].iter().map(|&v| v as i32).sum::<i32>();
                }
            }
            for (l, &sum) in sums.iter().enumerate().take(n - rb * 16) {
                corrected[i * 16 + l] = rq.bias[rb * 16 + l].wrapping_sub(zp.wrapping_mul(sum));
            }
        }
        let mut p0 = 0;
        while p0 < pixels {
            let rows = MR.min(pixels - p0);
            let rows_at = block_rows(g, x, k, direct, p0, rows, &mut a, zp as i8, 0);
            for rb in rb0..rb0 + chunk {
                for half in 0..2 {
                    let c = rb * 16 + half * 8;
                    if c >= n {
                        break;
                    }
                    let cols = 8.min(n - c);
                    let at = (rb - rb0) * 16 + half * 8;
                    // SAFETY: each row pointer addresses `k` rounded up to 4 bytes (input rows
                    // of `k`, a multiple of 4, or `a` rows of MAX_SIMD_K); every stored column
                    // is below `ceil(k / 4)` (validated); `tile` is runnable (the caller's
                    // contract); `at + 8 <= corrected.len()`.
                    unsafe {
                        let acc = tile(w, w.blocks(rb), half, &rows_at);
                        requant_store8(&acc[..rows], &corrected[at..][..8], rq, c, cols, p0, n, y);
                    }
                }
            }
            p0 += MR;
        }
        rb0 += chunk;
    }
}

/// `smull` / `sadalp` tile (see the dense `tile_neon`): pair sums `(c, k01), (c, k23)` folded
/// per channel at the end.
///
/// # Safety
/// As [`Tile`]'s contract in `drive`.
#[target_feature(enable = "neon")]
unsafe fn tile_neon(
    w: &BlockSparse<'_>,
    blocks: core::ops::Range<usize>,
    half: usize,
    rows: &[*const i8; MR],
) -> [[int32x4_t; 2]; MR] {
    let (cols, values) = (w.cols(), w.values());
    // SAFETY: the caller's contract; block `b`'s vectors are `values[64 b + 16 q ..][.. 16]`.
    unsafe {
        let mut acc = [[vdupq_n_s32(0); 4]; MR];
        for b in blocks {
            let w0 = vld1q_s8(values.as_ptr().add(b * 64 + half * 32));
            let w1 = vld1q_s8(values.as_ptr().add(b * 64 + half * 32 + 16));
            step_neon(&mut acc, w0, w1, rows, cols[b] as usize * 4);
        }
        fold_neon(acc)
    }
}

/// # Safety
/// `w.block == KERNEL_BLOCK`, `w.k <= MAX_SIMD_K`, `w` validated (as at load), and the slices
/// match the geometry.
#[target_feature(enable = "neon")]
pub unsafe fn qs8_spgemm_4x8c4_neon(g: &ConvGeometry, x: &[i8], w: &BlockSparse<'_>, rq: &Requant<'_>, y: &mut [i8]) {
    // SAFETY: the caller's contract; NEON is baseline on aarch64.
    unsafe { drive(g, x, w, rq, y, tile_neon) }
}
