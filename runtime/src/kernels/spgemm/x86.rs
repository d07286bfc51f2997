//! x86-64 block-sparse int8 GEMM-convolution with AVX-512 VNNI, on 16x4 blocks
//! (`qs8_spgemm_8x16c4_avx512vnni`): 8 pixels x 16 channels per tile, one stored block per step.
//!
//! A stored block is 16 output channels by 4 reduction steps, 64 bytes: one zmm whose i32 lane
//! `c` holds channel `c`'s 4 weights, the operand layout of `vpdpbusd`. For each stored block the
//! 4 input bytes at its column are broadcast per pixel and multiplied in one `vpdpbusd`; blocks
//! that are not stored cost nothing. Rows are copied once per block of pixels with the sign bits
//! flipped (`u = x + 128`, as in the dense kernel), and `(128 + zp) sum w` over the stored weights
//! is taken out of the bias.

use super::{BlockSparse, KERNEL_BLOCK};
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::gemm::{block_rows, is_pointwise, MAX_SIMD_K};
use crate::kernels::x86::{clamp_i8x64, load_requant16, pack4_i8, requant16, Requant16};
use core::arch::x86_64::*;

/// Pixels per tile.
const R: usize = 8;
/// Block-rows (16 channels each) whose constants are built per pass over the pixels.
const CHUNK: usize = 16;

/// # Safety
/// The CPU must support AVX2, AVX-512 F/BW and AVX-512 VNNI; `w.block == KERNEL_BLOCK`,
/// `w.k <= MAX_SIMD_K`, `w` validated (as at load) and the slices match the geometry.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
pub unsafe fn qs8_spgemm_8x16c4_avx512vnni(
    g: &ConvGeometry,
    x: &[i8],
    w: &BlockSparse<'_>,
    rq: &Requant<'_>,
    y: &mut [i8],
) {
    debug_assert!(w.block == KERNEL_BLOCK && w.k <= MAX_SIMD_K && w.n == g.out_c);
    let (n, k) = (g.out_c, w.k);
    let pixels = g.batch * g.out_h * g.out_w;
    let direct = is_pointwise(g) && k % 4 == 0;
    let offset = _mm512_set1_epi32(128 + rq.input_zero_point);
    let (cols, values) = (w.cols(), w.values());
    let mut a = [[0i8; MAX_SIMD_K]; R];
    let nrb = w.block_rows();
    // SAFETY (whole body): the features are this function's contract. Stored block `b` is
    // `values[64 b ..][.. 64]`; its column `cols[b] < ceil(k / 4)` (validated), so the 4 bytes at
    // `4 cols[b]` lie inside each row (`a` rows hold MAX_SIMD_K >= k rounded up to 4; direct rows
    // hold `k`, a multiple of 4). Channel `16 rb + l` exists for the lanes `l < count` stored.
    unsafe {
        let mut rb0 = 0;
        while rb0 < nrb {
            let chunk = CHUNK.min(nrb - rb0);
            // Per block-row: the corrected bias and the requantization constants (lanes past
            // the last channel: multiplier 0, never stored).
            let mut bias = [_mm512_setzero_si512(); CHUNK];
            let kq: [Requant16; CHUNK] = core::array::from_fn(|i| {
                let rb = rb0 + i.min(chunk - 1);
                let c0 = rb * 16;
                let (mut b, mut m, mut s) = ([0i32; 16], [0i32; 16], [32i32; 16]);
                for l in 0..16.min(n - c0) {
                    (b[l], m[l], s[l]) = (rq.bias[c0 + l], rq.mult[c0 + l], rq.shift[c0 + l]);
                }
                let mut sums = _mm512_setzero_si512();
                for blk in w.blocks(rb) {
                    let wv = _mm512_loadu_si512(values.as_ptr().add(blk * 64).cast());
                    sums = _mm512_dpbusd_epi32(sums, _mm512_set1_epi8(1), wv);
                }
                let raw = _mm512_loadu_si512(b.as_ptr().cast());
                bias[i] = _mm512_sub_epi32(raw, _mm512_mullo_epi32(offset, sums));
                load_requant16(&m, &s, rq.output_zero_point)
            });
            let mut p0 = 0;
            while p0 < pixels {
                let rows = R.min(pixels - p0);
                let rows_at = block_rows(g, x, k, direct, p0, rows, &mut a, rq.input_zero_point as i8, i8::MIN);
                for i in 0..chunk {
                    let rb = rb0 + i;
                    let mut acc = [bias[i]; R];
                    for blk in w.blocks(rb) {
                        let kg = cols[blk] as usize * 4;
                        let wv = _mm512_loadu_si512(values.as_ptr().add(blk * 64).cast());
                        for r in 0..R {
                            let xv = _mm512_set1_epi32(rows_at[r].add(kg).cast::<i32>().read_unaligned());
                            acc[r] = _mm512_dpbusd_epi32(acc[r], xv, wv);
                        }
                    }
                    let c = rb * 16;
                    let count = 16.min(n - c);
                    for half in 0..R / 4 {
                        let q: [__m512i; 4] = core::array::from_fn(|j| requant16(acc[4 * half + j], &kq[i]));
                        let bytes = clamp_i8x64(pack4_i8(q), rq.act_min, rq.act_max);
                        let real = rows.saturating_sub(4 * half).min(4);
                        if count == 16 {
                            for j in 0..real {
                                let v = match j {
                                    0 => _mm512_castsi512_si128(bytes),
                                    1 => _mm512_extracti32x4_epi32(bytes, 1),
                                    2 => _mm512_extracti32x4_epi32(bytes, 2),
                                    _ => _mm512_extracti32x4_epi32(bytes, 3),
                                };
                                let out = y[(p0 + 4 * half + j) * n + c..][..16].as_mut_ptr();
                                _mm_storeu_si128(out.cast(), v);
                            }
                        } else {
                            let mut out = [0i8; 64];
                            _mm512_storeu_si512(out.as_mut_ptr().cast(), bytes);
                            for j in 0..real {
                                y[(p0 + 4 * half + j) * n + c..][..count].copy_from_slice(&out[16 * j..][..count]);
                            }
                        }
                    }
                }
                p0 += R;
            }
            rb0 += chunk;
        }
    }
}
