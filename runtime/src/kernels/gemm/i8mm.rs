//! aarch64 int8 GEMM-convolution with the Armv8.6 int8 matrix multiply (`smmla`: Cortex-A710 /
//! X2 and later phones, Neoverse V1/N2 servers), `qs8_gemm_8x8c4_i8mm`: the NEON kernel's frame
//! (`super::neon::drive`, see there for the zero-point scheme) with an `smmla` tile.
//!
//! `smmla vd.4s, vn.16b, vm.16b` multiplies the 2x8 int8 matrix in `vn` (two rows of 8 bytes)
//! by the transpose of the 2x8 matrix in `vm`, adding the 2x2 i32 result `[r0c0, r0c1, r1c0,
//! r1c1]` to `vd`: 32 multiply-accumulates, exact (`|x w| <= 2^14`, 8 per lane). Here the rows
//! of `vn` are two pixels' 8 input bytes and the rows of `vm` two channels' 8 weights, so a step
//! of 8 along K for 8 pixels x 8 channels is 16 `smmla` on 4 activation and 4 weight registers.
//!
//! The weights stay in [`super::SIMD_PACK`] panels (8 channels x 4 bytes per step of 4, the
//! layout every other kernel reads, so one `.sparq` file serves all ARM cores): two consecutive
//! steps' 16-byte halves are zipped by 32-bit lanes (`zip1`/`zip2 .4s`), which puts channel
//! `c`'s bytes 0-3 and 4-7 side by side: `[c k0-3, c k4-7, c+1 k0-3, c+1 k4-7]`, the `vm` of a
//! channel pair. A reduction that is a multiple of 4 but not of 8 ends with a half step whose
//! upper 4 bytes are zero on both sides. At the end, 64-bit zips turn the 2x2 blocks back into
//! each pixel's channels 0-3 and 4-7 for the shared output stage.

use super::neon::drive;

/// Pixels per tile: four pairs, so that each step's four weight zips serve 16 `smmla`.
const MR: usize = 8;
use super::WeightMatrix;
use crate::kernels::conv::{ConvGeometry, Requant};
use core::arch::aarch64::*;

/// `acc += x * w^T` on 2x8 int8 matrices (`smmla`; `vmmlaq_s32` is not stable Rust yet).
///
/// # Safety
/// The CPU must support i8mm (always inlined into a caller that enables it).
#[inline(always)]
unsafe fn smmla(acc: &mut int32x4_t, x: int8x16_t, w: int8x16_t) {
    // SAFETY: the caller's contract; `smmla` needs i8mm, enabled for the caller.
    unsafe {
        core::arch::asm!(
            "smmla {a:v}.4s, {x:v}.16b, {w:v}.16b",
            a = inout(vreg) *acc,
            x = in(vreg) x,
            w = in(vreg) w,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
}

/// The four channel-pair operands (`[c k0-7, c+1 k0-7]` for c = 0, 2, 4, 6) of one step of 8 from
/// two consecutive panel steps `lo` (bytes 0-3 of the channels) and `hi` (bytes 4-7).
#[inline(always)]
fn channel_pairs(lo: [int8x16_t; 2], hi: [int8x16_t; 2]) -> [int8x16_t; 4] {
    // SAFETY: NEON is baseline on aarch64.
    unsafe {
        let z = |a: int8x16_t, b: int8x16_t, second: bool| {
            let (a, b) = (vreinterpretq_s32_s8(a), vreinterpretq_s32_s8(b));
            vreinterpretq_s8_s32(if second { vzip2q_s32(a, b) } else { vzip1q_s32(a, b) })
        };
        [z(lo[0], hi[0], false), z(lo[0], hi[0], true), z(lo[1], hi[1], false), z(lo[1], hi[1], true)]
    }
}

/// `smmla` tile: 8 pixels (four pairs) x 8 channels (four pairs), 8 along K per step.
///
/// # Safety
/// The CPU must support i8mm. Each `rows[r]` must address `kp` readable bytes (`kp` a multiple of
/// 4); `panel` holds `8 * kp`.
#[target_feature(enable = "neon,i8mm")]
unsafe fn tile_i8mm(panel: &[i8], kp: usize, rows: &[*const i8; MR]) -> [[int32x4_t; 2]; MR] {
    // SAFETY: bounds as documented (full steps read bytes `at .. at + 8 <= kp` of each row and 64
    // bytes of the panel; the half step 4 bytes and 32); `smmla` needs i8mm, enabled here.
    unsafe {
        let mut acc = [[vdupq_n_s32(0); 4]; MR / 2];
        let w = panel.as_ptr();
        let full = kp / 8;
        for s in 0..full {
            let (at, wp) = (s * 8, w.add(s * 64));
            let wv = channel_pairs([vld1q_s8(wp), vld1q_s8(wp.add(16))], [vld1q_s8(wp.add(32)), vld1q_s8(wp.add(48))]);
            for (pp, acc) in acc.iter_mut().enumerate() {
                let x = vcombine_s8(vld1_s8(rows[2 * pp].add(at)), vld1_s8(rows[2 * pp + 1].add(at)));
                for (a, &wv) in acc.iter_mut().zip(&wv) {
                    smmla(a, x, wv);
                }
            }
        }
        if !kp.is_multiple_of(8) {
            // The last 4 bytes: the upper halves zero on both sides.
            let (at, wp) = (full * 8, w.add(full * 64));
            let zero = vdupq_n_s8(0);
            let wv = channel_pairs([vld1q_s8(wp), vld1q_s8(wp.add(16))], [zero, zero]);
            let word = |p: *const i8| vcreate_s8(p.cast::<u32>().read_unaligned() as u64);
            for (pp, acc) in acc.iter_mut().enumerate() {
                let x = vcombine_s8(word(rows[2 * pp].add(at)), word(rows[2 * pp + 1].add(at)));
                for (a, &wv) in acc.iter_mut().zip(&wv) {
                    smmla(a, x, wv);
                }
            }
        }
        // acc[pp][q] = [p c, p c+1, p+1 c, p+1 c+1] for pixels p = 2 pp, channels c = 2 q.
        let pick = |a: int32x4_t, b: int32x4_t, second: bool| {
            let (a, b) = (vreinterpretq_s64_s32(a), vreinterpretq_s64_s32(b));
            vreinterpretq_s32_s64(if second { vzip2q_s64(a, b) } else { vzip1q_s64(a, b) })
        };
        core::array::from_fn(|r| {
            let (pp, second) = (r / 2, r % 2 == 1);
            let a = &acc[pp];
            [pick(a[0], a[1], second), pick(a[2], a[3], second)]
        })
    }
}

/// # Safety
/// The CPU must support i8mm. `w` must be packed with [`super::SIMD_PACK`], `w.k <=
/// MAX_SIMD_K`, and the slices must match the geometry (as validated at load).
#[target_feature(enable = "neon,i8mm")]
pub unsafe fn qs8_gemm_8x8c4_i8mm(g: &ConvGeometry, x: &[i8], w: &WeightMatrix<'_>, rq: &Requant<'_>, y: &mut [i8]) {
    // SAFETY: the caller's contract (i8mm available).
    unsafe { drive(g, x, w, rq, y, tile_i8mm) }
}
