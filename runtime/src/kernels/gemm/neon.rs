//! aarch64 int8 GEMM-convolution on [`SIMD_PACK`] panels, 4 pixels x 8 channels per tile
//! (`R` pixels for a tile passed to [`drive`]):
//! `qs8_gemm_4x8c4_neon` (`smull` + `sadalp`, every aarch64 CPU), and the frame
//! `super::dotprod::qs8_gemm_4x8c4_dotprod` (`sdot`) shares: it passes its own tile to [`drive`].
//!
//! Both multiply the raw int8 activations by the int8 weights (`|x * w| <= 2^14`, so `smull`'s
//! i16 products and `sadalp`'s pair sums are exact) and take the zero point out once per
//! channel: `sum (x - zp) w = sum x w - zp sum w`, folded into the bias. Pointwise layers whose
//! reduction is a multiple of 4 read the input rows in place; the others gather im2col rows
//! (padding is the zero point) into a stack buffer.

use super::{block_rows, correct_bias, is_pointwise, WeightMatrix, MAX_SIMD_K, SIMD_PACK};
use crate::kernels::arm::{load_requant4, requant4, store_i8x8};
use crate::kernels::conv::{ConvGeometry, Requant};
use core::arch::aarch64::*;

pub(super) const MR: usize = 4;
/// Channels whose corrected bias is computed per pass (stack buffer).
const N_CHUNK: usize = 1024;

/// The 8-channel x 4-pixel inner loop: accumulates `sum x w` for panel `panel` into `acc`
/// (channels 0-3 and 4-7 of each row, as exact i32 sums).
pub(super) type Tile<const R: usize> = unsafe fn(panel: &[i8], kp: usize, rows: &[*const i8; R]) -> [[int32x4_t; 2]; R];

/// # Safety
/// `w` must be packed with [`SIMD_PACK`], `w.k <= MAX_SIMD_K`, the slices must match the
/// geometry (as validated at load), and `tile` must be runnable on this CPU.
#[target_feature(enable = "neon")]
#[inline]
pub(super) unsafe fn drive<const R: usize>(
    g: &ConvGeometry,
    x: &[i8],
    w: &WeightMatrix<'_>,
    rq: &Requant<'_>,
    y: &mut [i8],
    tile: Tile<R>,
) {
    debug_assert!(w.pack == Some(SIMD_PACK) && w.k <= MAX_SIMD_K);
    let (n, k) = (g.out_c, w.k);
    let kp = k.div_ceil(4) * 4;
    let pixels = g.batch * g.out_h * g.out_w;
    let zp = rq.input_zero_point;
    let direct = is_pointwise(g) && k % 4 == 0;
    let mut a = [[0i8; MAX_SIMD_K]; R];
    let mut corrected = [0i32; N_CHUNK + 8];
    let mut c0 = 0;
    while c0 < n {
        let chunk = N_CHUNK.min(n - c0);
        for j in c0 / 8..(c0 + chunk).div_ceil(8) {
            let panel = &w.data[j * 8 * kp..][..8 * kp];
            let mut sums = [0i32; 8];
            // SAFETY: NEON is baseline; `kg * 32 + 32 <= panel.len()`.
            unsafe {
                let (mut s0, mut s1) = (vdupq_n_s32(0), vdupq_n_s32(0));
                for kg in 0..kp / 4 {
                    let wv0 = vld1q_s8(panel.as_ptr().add(kg * 32));
                    let wv1 = vld1q_s8(panel.as_ptr().add(kg * 32 + 16));
                    s0 = vpadalq_s16(s0, vpaddlq_s8(wv0));
                    s1 = vpadalq_s16(s1, vpaddlq_s8(wv1));
                }
                // Bytes pair into (c, k01), (c, k23); those pair into one lane per channel.
                vst1q_s32(sums.as_mut_ptr(), s0);
                vst1q_s32(sums.as_mut_ptr().add(4), s1);
            }
            correct_bias(&sums, j, c0, chunk, rq.bias, zp, &mut corrected);
        }
        let mut p0 = 0;
        while p0 < pixels {
            let rows = R.min(pixels - p0);
            let rows_at = block_rows(g, x, k, direct, p0, rows, &mut a, zp as i8, 0);
            for j in c0 / 8..(c0 + chunk).div_ceil(8) {
                let c = j * 8;
                let cols = 8.min(n - c);
                // SAFETY: each row pointer addresses `kp` bytes (input rows of `k = kp` bytes, or
                // `a` rows of MAX_SIMD_K >= kp); `tile` is runnable (the caller's contract);
                // `c - c0 + 8 <= corrected.len()`.
                unsafe {
                    let acc = tile(&w.data[j * 8 * kp..][..8 * kp], kp, &rows_at);
                    requant_store8(&acc[..rows], &corrected[c - c0..][..8], rq, c, cols, p0, n, y);
                }
            }
            p0 += R;
        }
        c0 += chunk;
    }
}

/// The int8 output stage of 8 channels `c .. c + cols` of the tiles (dense and block-sparse):
/// each row's channel sums `acc[r]` (channels 0-3, 4-7) plus the corrected biases `bias`,
/// requantized and stored at `y[(p0 + r) n + c ..]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn requant_store8(
    acc: &[[int32x4_t; 2]],
    bias: &[i32],
    rq: &Requant<'_>,
    c: usize,
    cols: usize,
    p0: usize,
    n: usize,
    y: &mut [i8],
) {
    // SAFETY: NEON is baseline on aarch64; `bias` holds 8 values (sliced by the caller).
    unsafe {
        let (b0, b1) = (vld1q_s32(bias[..8].as_ptr()), vld1q_s32(bias[4..8].as_ptr()));
        let k0 = load_requant4(rq, c, cols.min(4));
        let k1 = load_requant4(rq, (c + 4).min(n), cols.saturating_sub(4));
        let (zo, lo, hi) = (rq.output_zero_point, rq.act_min, rq.act_max);
        for (r, acc) in acc.iter().enumerate() {
            let v0 = requant4(vaddq_s32(acc[0], b0), &k0, zo, lo, hi);
            let v1 = requant4(vaddq_s32(acc[1], b1), &k1, zo, lo, hi);
            store_i8x8(v0, v1, &mut y[(p0 + r) * n + c..], cols);
        }
    }
}

/// `smull` / `sadalp` tile: per step of 4 along K, each pixel's 4 bytes are replicated across
/// the vector, multiplied by two channels' 4 weights at a time, and pair-summed into i32 lanes
/// `(c, k01), (c, k23)`, folded per channel at the end.
///
/// # Safety
/// Each `rows[r]` must address `kp` readable bytes; `panel` holds `8 * kp`.
#[target_feature(enable = "neon")]
unsafe fn tile_neon(panel: &[i8], kp: usize, rows: &[*const i8; MR]) -> [[int32x4_t; 2]; MR] {
    // SAFETY: bounds as documented; NEON is baseline.
    unsafe {
        let mut acc = [[vdupq_n_s32(0); 4]; MR];
        for kg in 0..kp / 4 {
            let w0 = vld1q_s8(panel.as_ptr().add(kg * 32));
            let w1 = vld1q_s8(panel.as_ptr().add(kg * 32 + 16));
            step_neon(&mut acc, w0, w1, rows, kg * 4);
        }
        fold_neon(acc)
    }
}

/// One step of 4 along K of the `smull` / `sadalp` tiles (dense and block-sparse): 8 channels'
/// 4 weights (`w0`: channels 0-3, `w1`: 4-7) times the 4 bytes at `rows[r] + at` of each row,
/// pair sums `(c, k01), (c, k23)` per channel.
///
/// # Safety
/// Each `rows[r] + at` must address 4 readable bytes (always inlined into a NEON caller).
#[inline(always)]
pub(crate) unsafe fn step_neon<const R: usize>(
    acc: &mut [[int32x4_t; 4]; R],
    w0: int8x16_t,
    w1: int8x16_t,
    rows: &[*const i8; R],
    at: usize,
) {
    // SAFETY: the caller's contract; NEON is baseline.
    unsafe {
        for r in 0..R {
            let av = vreinterpretq_s8_s32(vdupq_n_s32(rows[r].add(at).cast::<i32>().read_unaligned()));
            let a8 = vget_low_s8(av);
            acc[r][0] = vpadalq_s16(acc[r][0], vmull_s8(vget_low_s8(w0), a8));
            acc[r][1] = vpadalq_s16(acc[r][1], vmull_high_s8(w0, av));
            acc[r][2] = vpadalq_s16(acc[r][2], vmull_s8(vget_low_s8(w1), a8));
            acc[r][3] = vpadalq_s16(acc[r][3], vmull_high_s8(w1, av));
        }
    }
}

/// The per-channel sums of [`step_neon`]'s pair sums: channels 0-3 and 4-7 of each row.
#[inline(always)]
pub(crate) fn fold_neon<const R: usize>(acc: [[int32x4_t; 4]; R]) -> [[int32x4_t; 2]; R] {
    // SAFETY: NEON is baseline on aarch64.
    core::array::from_fn(|r| unsafe { [vpaddq_s32(acc[r][0], acc[r][1]), vpaddq_s32(acc[r][2], acc[r][3])] })
}

/// # Safety
/// `w` must be packed with [`SIMD_PACK`], `w.k <= MAX_SIMD_K`, and the slices must match the
/// geometry (as validated at load).
#[target_feature(enable = "neon")]
pub unsafe fn qs8_gemm_4x8c4_neon(g: &ConvGeometry, x: &[i8], w: &WeightMatrix<'_>, rq: &Requant<'_>, y: &mut [i8]) {
    // SAFETY: the caller's contract; NEON is baseline on aarch64.
    unsafe { drive(g, x, w, rq, y, tile_neon) }
}
