//! 32-bit ARM NEON int8 GEMM-convolution on [`SIMD_PACK`] panels (`qs8_gemm_1x8c4_armv7`), for
//! the `thumbv7neon` target (NEON is part of its baseline). NEON intrinsics are not stable Rust
//! on 32-bit ARM, so the reduction is `asm!`: per step of 4 along K, the pixel's 4 bytes are
//! replicated (`vld1.32 {d0[]}`), multiplied by the 8 channels' 4 weights (`vmull.s8`, exact
//! i16) and pair-summed into i32 (`vpadal.s16`); the pairs are folded per channel at the end.
//! The zero point is taken out once per channel (`sum x w - zp sum w`), and the requantization
//! is the scalar one.

use super::{im2col_row, is_pointwise, WeightMatrix, MAX_SIMD_K, SIMD_PACK};
use crate::kernels::conv::{ConvGeometry, Requant};

/// `out[c] = sum_k row[k] * panel[c][k]` for the 8 channels of one panel.
///
/// # Safety
/// NEON must be available; `row` must address `kp` readable bytes, `panel` holds `8 * kp`.
#[inline(always)]
unsafe fn dot_row_panel(row: *const i8, panel: *const i8, kp: usize) -> [i32; 8] {
    let mut out = [0i32; 8];
    if kp == 0 {
        return out;
    }
    // SAFETY: the loop reads `kp` bytes of `row` and `8 * kp` of `panel` (the caller's
    // contract) and writes the 32 bytes of `out`.
    unsafe {
        core::arch::asm!(
            "vmov.i32 q8, #0",
            "vmov.i32 q9, #0",
            "vmov.i32 q10, #0",
            "vmov.i32 q11, #0",
            "2:",
            "vld1.32 {{d0[]}}, [{a}]!",
            "vld1.8 {{d2-d5}}, [{w}]!",
            "vmull.s8 q3, d2, d0",
            "vpadal.s16 q8, q3",
            "vmull.s8 q3, d3, d0",
            "vpadal.s16 q9, q3",
            "vmull.s8 q3, d4, d0",
            "vpadal.s16 q10, q3",
            "vmull.s8 q3, d5, d0",
            "vpadal.s16 q11, q3",
            "subs {n}, {n}, #1",
            "bne 2b",
            "vpadd.i32 d24, d16, d17",
            "vpadd.i32 d25, d18, d19",
            "vpadd.i32 d26, d20, d21",
            "vpadd.i32 d27, d22, d23",
            "vst1.32 {{d24-d27}}, [{out}]",
            a = inout(reg) row => _,
            w = inout(reg) panel => _,
            n = inout(reg) kp / 4 => _,
            out = in(reg) out.as_mut_ptr(),
            out("q0") _, out("q1") _, out("q2") _, out("q3") _,
            out("q8") _, out("q9") _, out("q10") _, out("q11") _, out("q12") _, out("q13") _,
            options(nostack)
        );
    }
    out
}

/// # Safety
/// NEON must be available (`thumbv7neon` baseline). `w` must be packed with [`SIMD_PACK`],
/// `w.k <= MAX_SIMD_K`, and the slices must match the geometry (as validated at load).
pub unsafe fn qs8_gemm_1x8c4_armv7(g: &ConvGeometry, x: &[i8], w: &WeightMatrix<'_>, rq: &Requant<'_>, y: &mut [i8]) {
    debug_assert!(w.pack == Some(SIMD_PACK) && w.k <= MAX_SIMD_K);
    let (n, k) = (g.out_c, w.k);
    let kp = k.div_ceil(4) * 4;
    let pixels = g.batch * g.out_h * g.out_w;
    let zp = rq.input_zero_point;
    let direct = is_pointwise(g) && k % 4 == 0;
    let mut a = [0i8; MAX_SIMD_K];
    let ones = [1i8; MAX_SIMD_K];
    // Per-channel weight sums (for the zero-point correction), a chunk of panels at a time.
    const N_CHUNK: usize = 1024;
    let mut sums = [0i32; N_CHUNK];
    let mut c0 = 0;
    while c0 < n {
        let chunk = N_CHUNK.min(n - c0);
        for j in c0 / 8..(c0 + chunk).div_ceil(8) {
            // SAFETY: `ones` holds MAX_SIMD_K >= kp bytes; the panel holds `8 * kp`.
            let s = unsafe { dot_row_panel(ones.as_ptr(), w.data[j * 8 * kp..][..8 * kp].as_ptr(), kp) };
            for (lane, &v) in s.iter().enumerate().take(c0 + chunk - j * 8) {
                sums[j * 8 + lane - c0] = v;
            }
        }
        for p in 0..pixels {
            let row = if direct {
                x[p * k..][..k].as_ptr()
            } else {
                im2col_row(g, x, p, &mut a, zp as i8, |v| v);
                a.as_ptr()
            };
            for j in c0 / 8..(c0 + chunk).div_ceil(8) {
                // SAFETY: `row` addresses `kp` bytes (an input row of `k = kp` bytes, or `a`);
                // the panel holds `8 * kp` bytes.
                let acc = unsafe { dot_row_panel(row, w.data[j * 8 * kp..][..8 * kp].as_ptr(), kp) };
                for (lane, &v) in acc.iter().enumerate().take(c0 + chunk - j * 8) {
                    let c = j * 8 + lane;
                    let total = rq.bias[c].wrapping_add(v).wrapping_sub(zp.wrapping_mul(sums[c - c0]));
                    y[p * n + c] = rq.apply(c, total);
                }
            }
        }
        c0 += chunk;
    }
}
