//! x86-64 block-sparse int8 GEMM-convolution with AVX-512 VNNI, on 16x4 blocks.
//!
//! `qs8_spgemm_16x16c4_avx512vnni` runs pointwise layers (1x1, stride 1, whole groups of 4 input
//! channels: every 1x1 convolution of MobileNetV2) with *channels* in the lanes
//! (`pointwise_channel_lanes`): a block-row's 16 outputs of a pixel come out as one vector in
//! pixel order, so the output stage costs what the dense kernel's does and only the
//! multiply-accumulates shrink with the stored blocks.
//!
//! Other layers (with AVX-512 VBMI) put 16 *pixels* in the lanes: the input
//! rows of 16 pixels are transposed once (a gather per 4 reduction steps) so that one zmm holds
//! the 4 bytes of every pixel at one block column, and each stored block is 16 `vpdpbusd`, one
//! per channel, whose 4 weights come as an embedded broadcast from memory. Every instruction of
//! the inner loop is then a multiply-accumulate of 64 products. The outputs (16 channels x 16
//! pixels) are requantized per channel, narrowed, and transposed back to pixel-major bytes with
//! one `vpermb` per 4 channels and a 4x4 dword transpose.
//!
//! `qs8_spgemm_8x16c4_avx512vnni` (the fallback without VBMI) keeps channels in the lanes: 8
//! pixels x 16 channels per tile, one broadcast per pixel and stored block.
//!
//! The AVX2 kernels are in `super::avx2`.
//!
//! A stored block is 16 output channels by 4 reduction steps, 64 bytes: one zmm whose i32 lane
//! `c` holds channel `c`'s 4 weights, the operand layout of `vpdpbusd`. For each stored block the
//! 4 input bytes at its column are broadcast per pixel and multiplied in one `vpdpbusd`; blocks
//! that are not stored cost nothing. Rows are copied once per block of pixels with the sign bits
//! flipped (`u = x + 128`, as in the dense kernel), and `(128 + zp) sum w` over the stored weights
//! is taken out of the bias.

use super::{BlockSparse, KERNEL_BLOCK};
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::fc::F32Out;
use crate::kernels::gemm::{block_rows, is_pointwise, MAX_SIMD_K};
use crate::kernels::x86::{clamp_i8x64, load_requant16, pack4_i8, requant16, requant16_folded, store_part, Requant16};
use core::arch::x86_64::*;

/// The set's sparse kernel: pointwise layers with channels in the lanes; the others with
/// pixels in the lanes when the CPU has AVX-512 VBMI, else channels (im2col rows).
///
/// # Safety
/// As [`qs8_spgemm_8x16c4_avx512vnni`].
pub unsafe fn qs8_spgemm_16x16c4_avx512vnni(
    g: &ConvGeometry,
    x: &[i8],
    w: &BlockSparse<'_>,
    rq: &Requant<'_>,
    y: &mut [i8],
) {
    // SAFETY: the caller's contract, plus VBMI when detected.
    unsafe {
        if is_pointwise(g) && w.k.is_multiple_of(4) {
            let pixels = g.batch * g.out_h * g.out_w;
            match w.k {
                16 => pointwise_channel_lanes::<16>(pixels, x, w, rq, y),
                24 => pointwise_channel_lanes::<24>(pixels, x, w, rq, y),
                32 => pointwise_channel_lanes::<32>(pixels, x, w, rq, y),
                64 => pointwise_channel_lanes::<64>(pixels, x, w, rq, y),
                96 => pointwise_channel_lanes::<96>(pixels, x, w, rq, y),
                _ => pointwise_channel_lanes::<0>(pixels, x, w, rq, y),
            }
        } else if has_vbmi() {
            pixel_lanes(g, x, w, rq, y)
        } else {
            qs8_spgemm_8x16c4_avx512vnni(g, x, w, rq, y)
        }
    }
}

fn has_vbmi() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512vbmi")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "avx512vbmi")
    }
}

/// The 16 channels' weight sums of block-row `rb` (lane `l`: channel `16 rb + l`), over its
/// stored blocks: `vpdpbusd` with all-ones bytes.
///
/// # Safety
/// AVX-512 F/BW/VNNI (inlined into a caller that enables them); `w` validated.
#[inline(always)]
unsafe fn weight_sums(w: &BlockSparse<'_>, rb: usize) -> __m512i {
    // SAFETY: the caller's contract; block `b` holds 64 bytes at `64 b` of the values.
    unsafe {
        let mut sums = _mm512_setzero_si512();
        for b in w.blocks(rb) {
            let wv = _mm512_loadu_si512(w.values().as_ptr().add(b * 64).cast());
            sums = _mm512_dpbusd_epi32(sums, _mm512_set1_epi8(1), wv);
        }
        sums
    }
}

/// Pixels per tile of [`pixel_lanes`]: two zmm of 16 lanes, so each weight broadcast feeds two
/// multiply-accumulates.
const P: usize = 32;
/// Channels whose corrected biases are computed per pass of [`pixel_lanes`].
const N_CHUNK: usize = 1024;

/// Requantize 16 lanes of one channel whose shift is in 32..=55: exactly [`requant16`]'s fast
/// path with the same constants in every lane: `mult`, `round = 2^(shift - 1) + zp 2^shift` (the
/// output zero point folded in) and `shift - 32`.
///
/// # Safety
/// AVX-512 F (inlined into a caller that enables it).
#[inline(always)]
unsafe fn requant_fast(acc: __m512i, mult: i64, round: i64, shift_minus_32: i32) -> __m512i {
    // SAFETY: the caller's contract.
    unsafe {
        let (m, round) = (_mm512_set1_epi64(mult), _mm512_set1_epi64(round));
        let even = _mm512_add_epi64(_mm512_mul_epi32(acc, m), round);
        let odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(acc, 32), m), round);
        let idx = _mm512_setr_epi32(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
        _mm512_sra_epi32(_mm512_permutex2var_epi32(even, idx, odd), _mm_cvtsi32_si128(shift_minus_32))
    }
}

/// Transpose 16 vectors of 16 dwords: dword `j` of result `i` is dword `i` of input `j`
/// (unpacks of dwords and qwords, then two rounds of 128-bit lane shuffles: 64 shuffles).
///
/// # Safety
/// AVX-512 F (inlined into a caller that enables it).
#[inline(always)]
unsafe fn transpose16x16(r: [__m512i; 16]) -> [__m512i; 16] {
    // SAFETY: the caller's contract.
    unsafe {
        let a: [__m512i; 16] = core::array::from_fn(|i| {
            let (x, y) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_epi32(x, y)
            } else {
                _mm512_unpackhi_epi32(x, y)
            }
        });
        // `b[4 q + j]`, lane `L`: dword `4 L + j` of rows `4 q .. 4 q + 4`.
        let b: [__m512i; 16] = core::array::from_fn(|i| {
            let (q, j) = (i / 4, i % 4);
            let (x, y) = (a[4 * q + j / 2], a[4 * q + 2 + j / 2]);
            if j % 2 == 0 {
                _mm512_unpacklo_epi64(x, y)
            } else {
                _mm512_unpackhi_epi64(x, y)
            }
        });
        let mut out = [_mm512_setzero_si512(); 16];
        for j in 0..4 {
            let c0 = _mm512_shuffle_i32x4::<0x88>(b[j], b[4 + j]);
            let c1 = _mm512_shuffle_i32x4::<0xdd>(b[j], b[4 + j]);
            let c2 = _mm512_shuffle_i32x4::<0x88>(b[8 + j], b[12 + j]);
            let c3 = _mm512_shuffle_i32x4::<0xdd>(b[8 + j], b[12 + j]);
            out[j] = _mm512_shuffle_i32x4::<0x88>(c0, c2);
            out[8 + j] = _mm512_shuffle_i32x4::<0xdd>(c0, c2);
            out[4 + j] = _mm512_shuffle_i32x4::<0x88>(c1, c3);
            out[12 + j] = _mm512_shuffle_i32x4::<0xdd>(c1, c3);
        }
        out
    }
}

/// 32 pixels x 16 channels per tile, pixels in the lanes (see the module documentation).
///
/// # Safety
/// As [`qs8_spgemm_8x16c4_avx512vnni`], and the CPU must support AVX-512 VBMI.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni,avx512vbmi")]
unsafe fn pixel_lanes(g: &ConvGeometry, x: &[i8], w: &BlockSparse<'_>, rq: &Requant<'_>, y: &mut [i8]) {
    debug_assert!(w.block == KERNEL_BLOCK && w.k <= MAX_SIMD_K && w.n == g.out_c);
    let (n, k) = (g.out_c, w.k);
    let steps = k.div_ceil(4);
    let pixels = g.batch * g.out_h * g.out_w;
    let direct = is_pointwise(g) && k % 4 == 0;
    let offset = _mm512_set1_epi32(128 + rq.input_zero_point);
    let (cols, values) = (w.cols(), w.values());
    let (zo, lo, hi) = (rq.output_zero_point, rq.act_min, rq.act_max);
    // im2col rows, only for layers that are not pointwise (then zeroed once per call).
    let mut im2col = core::mem::MaybeUninit::<[[i8; MAX_SIMD_K]; 16]>::uninit();
    // `xt[h][kg]`: lane `r` holds pixel `16 h + r`'s 4 input bytes at `4 kg`, sign bits flipped
    // (written for `kg < steps` before any read).
    let mut xt = core::mem::MaybeUninit::<[[__m512i; MAX_SIMD_K / 4]; 2]>::uninit();
    let xt = xt.as_mut_ptr().cast::<__m512i>();
    let mut corrected = [0i32; N_CHUNK];
    // Per channel of the chunk: the multiplier, the rounding term with the zero point folded in,
    // and the shift past 32, for the fast path of `requant_channel` (`fast[c]`).
    let (mut mults, mut rounds, mut shifts, mut fast) =
        ([0i64; N_CHUNK], [0i64; N_CHUNK], [0i32; N_CHUNK], [false; N_CHUNK]);
    let nrb = w.block_rows();
    // SAFETY (whole body): the features are this function's contract. Block `b`'s weights are
    // `values[64 b ..][.. 64]` (4 per channel); its column is below `steps` (validated at load),
    // so `xt[h][cols[b]]` was written; each gathered dword lies inside its row (`4 kg + 4` is at
    // most `k` rounded up to 4: im2col rows hold MAX_SIMD_K bytes, input rows `k`, a multiple of
    // 4). Output row `p < pixels` holds channels `c0 .. c0 + count`.
    unsafe {
        let mut a = if direct {
            None
        } else {
            im2col.as_mut_ptr().write_bytes(0, 1);
            Some(im2col.assume_init_mut())
        };
        // Byte `4 p + l` of a regrouped vector takes byte `16 l + p` (channel `l`, pixel `p`).
        let to_pixels =
            _mm512_loadu_si512(core::array::from_fn::<u8, 64, _>(|i| ((i % 4) * 16 + i / 4) as u8).as_ptr().cast());
        let flip = _mm512_set1_epi8(i8::MIN);
        let mut rb0 = 0;
        while rb0 < nrb {
            let chunk = (N_CHUNK / 16).min(nrb - rb0);
            for i in 0..chunk {
                let rb = rb0 + i;
                let mut s = [0i32; 16];
                _mm512_storeu_si512(s.as_mut_ptr().cast(), _mm512_mullo_epi32(offset, weight_sums(w, rb)));
                for (l, &sum) in s.iter().enumerate() {
                    let (j, c) = (i * 16 + l, (rb * 16 + l).min(n - 1));
                    corrected[j] = rq.bias[c].wrapping_sub(sum);
                    let shift = rq.shift[c];
                    fast[j] = (32..=55).contains(&shift);
                    if fast[j] {
                        mults[j] = rq.mult[c] as i64;
                        rounds[j] = (1i64 << (shift - 1)) + ((zo as i64) << shift);
                        shifts[j] = shift - 32;
                    }
                }
            }
            let mut p0 = 0;
            while p0 < pixels {
                let rows = P.min(pixels - p0);
                // Transpose the two halves' rows (a tail repeats its last pixel).
                for h in 0..2 {
                    let start = p0 + 16 * h;
                    let real = rows.saturating_sub(16 * h).clamp(1, 16);
                    let rows_at: [*const i8; 16] = match &mut a {
                        None => core::array::from_fn(|r| x.as_ptr().add((start.min(pixels - 1) + r.min(real - 1)) * k)),
                        Some(a) => {
                            block_rows(g, x, k, false, start.min(pixels - 1), real, a, rq.input_zero_point as i8, 0)
                        }
                    };
                    let base = rows_at[0];
                    let index: [i32; 16] = core::array::from_fn(|r| rows_at[r].offset_from(base) as i32);
                    let index = _mm512_loadu_si512(index.as_ptr().cast());
                    // Whole groups of 16 steps (64 bytes per row): 16 loads and a 16x16 dword
                    // transpose; the rest one gather per step.
                    for gi in 0..steps / 16 {
                        let rows: [__m512i; 16] =
                            core::array::from_fn(|r| _mm512_loadu_si512(rows_at[r].add(64 * gi).cast()));
                        for (j, v) in transpose16x16(rows).into_iter().enumerate() {
                            xt.add(h * (MAX_SIMD_K / 4) + 16 * gi + j).write(_mm512_xor_si512(v, flip));
                        }
                    }
                    for kg in steps / 16 * 16..steps {
                        let v = _mm512_i32gather_epi32::<1>(index, base.add(4 * kg).cast());
                        xt.add(h * (MAX_SIMD_K / 4) + kg).write(_mm512_xor_si512(v, flip));
                    }
                }
                for i in 0..chunk {
                    let rb = rb0 + i;
                    let c0 = rb * 16;
                    let count = 16.min(n - c0);
                    let mut acc = [[_mm512_setzero_si512(); 2]; 16];
                    for (c, acc) in acc.iter_mut().enumerate() {
                        *acc = [_mm512_set1_epi32(corrected[i * 16 + c]); 2];
                    }
                    // Two passes of 8 channels (16 accumulators each), so that every weight
                    // broadcast feeds both halves of the pixels.
                    for half in 0..2 {
                        // A local copy (registers), written back after the blocks.
                        let mut part: [[__m512i; 2]; 8] = core::array::from_fn(|c| acc[8 * half + c]);
                        for b in w.blocks(rb) {
                            let kg = *cols.get_unchecked(b) as usize;
                            let (x0, x1) = (xt.add(kg).read(), xt.add(MAX_SIMD_K / 4 + kg).read());
                            let wp = values.as_ptr().add(b * 64 + 32 * half).cast::<i32>();
                            for (c, acc) in part.iter_mut().enumerate() {
                                let wv = _mm512_set1_epi32(wp.add(c).read_unaligned());
                                acc[0] = _mm512_dpbusd_epi32(acc[0], x0, wv);
                                acc[1] = _mm512_dpbusd_epi32(acc[1], x1, wv);
                            }
                        }
                        acc[8 * half..8 * half + 8].copy_from_slice(&part);
                    }
                    for h in 0..2 {
                        if 16 * h >= rows {
                            break;
                        }
                        // Requantize per channel; pack 4 channels (16 bytes each, pixel order)
                        // per vector; regroup by pixel (4 channel bytes per pixel).
                        let mut grouped = [_mm512_setzero_si512(); 4];
                        for (j, gv) in grouped.iter_mut().enumerate() {
                            let mut q = [_mm512_setzero_si512(); 4];
                            for (l, q) in q.iter_mut().enumerate() {
                                let (at, v) = (i * 16 + 4 * j + l, acc[4 * j + l][h]);
                                *q = if *fast.get_unchecked(at) {
                                    requant_fast(
                                        v,
                                        *mults.get_unchecked(at),
                                        *rounds.get_unchecked(at),
                                        *shifts.get_unchecked(at),
                                    )
                                } else {
                                    let c = (c0 + 4 * j + l).min(n - 1);
                                    requant16(v, &load_requant16(&[rq.mult[c]; 16], &[rq.shift[c]; 16], zo))
                                };
                            }
                            *gv = _mm512_permutexvar_epi8(to_pixels, clamp_i8x64(pack4_i8(q), lo, hi));
                        }
                        // 4x4 dword transpose per 128-bit lane: `out[i]` lane `L` is pixel
                        // `4 L + i`, its 16 channels in order.
                        let t01lo = _mm512_unpacklo_epi32(grouped[0], grouped[1]);
                        let t01hi = _mm512_unpackhi_epi32(grouped[0], grouped[1]);
                        let t23lo = _mm512_unpacklo_epi32(grouped[2], grouped[3]);
                        let t23hi = _mm512_unpackhi_epi32(grouped[2], grouped[3]);
                        let out = [
                            _mm512_unpacklo_epi64(t01lo, t23lo),
                            _mm512_unpackhi_epi64(t01lo, t23lo),
                            _mm512_unpacklo_epi64(t01hi, t23hi),
                            _mm512_unpackhi_epi64(t01hi, t23hi),
                        ];
                        for p in 0..(rows - 16 * h).min(16) {
                            let dst = y[(p0 + 16 * h + p) * n + c0..][..count].as_mut_ptr();
                            if count == 16 {
                                store_part::<16>(out[p % 4], p / 4, dst);
                            } else {
                                let mut tmp = [0i8; 16];
                                store_part::<16>(out[p % 4], p / 4, tmp.as_mut_ptr());
                                core::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, count);
                            }
                        }
                    }
                }
                p0 += P;
            }
            rb0 += chunk;
        }
    }
}

/// Bytes of input rows [`pointwise_channel_lanes`] copies per pass (L2-resident), and pixels
/// per inner step.
const ROW_BYTES: usize = 64 * 1024;
const GROUP: usize = 8;
/// Output bytes a pass of [`pointwise_channel_lanes`] aims to write (L1-resident).
const OUT_BYTES: usize = 40 * 1024;

/// Block-row `rb`'s requantization constants and its bias corrected for the input offset
/// (`offset` = 128 + input zero point, times the row's weight sums), as the pointwise kernels
/// set them up once per pass. Lanes past the layer's `n` channels get multiplier 0 and bias 0
/// (never stored).
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VNNI (inlined into a caller that enables them); `w`
/// validated, `rb < w.block_rows()`, and `rq` holds `n` channels.
#[inline(always)]
unsafe fn block_row_constants(
    w: &BlockSparse<'_>,
    rq: &Requant<'_>,
    rb: usize,
    offset: __m512i,
) -> (Requant16, __m512i) {
    let c0 = rb * 16;
    let count = 16.min(w.n - c0);
    // A whole block-row reads its constants in place; a partial one pads them.
    let (mut m, mut s, mut b) = ([0i32; 16], [32i32; 16], [0i32; 16]);
    let (m, s, b) = if count == 16 {
        (&rq.mult[c0..c0 + 16], &rq.shift[c0..c0 + 16], &rq.bias[c0..c0 + 16])
    } else {
        m[..count].copy_from_slice(&rq.mult[c0..c0 + count]);
        s[..count].copy_from_slice(&rq.shift[c0..c0 + count]);
        b[..count].copy_from_slice(&rq.bias[c0..c0 + count]);
        (&m[..], &s[..], &b[..])
    };
    // SAFETY: the caller's contract; `b` holds 16 values.
    unsafe {
        let bias =
            _mm512_sub_epi32(_mm512_loadu_si512(b.as_ptr().cast()), _mm512_mullo_epi32(offset, weight_sums(w, rb)));
        (load_requant16(m, s, rq.output_zero_point), bias)
    }
}

/// `acc[r] += W · row r` for the GROUP copied rows from `rows` (`stride` bytes apart), over a
/// block-row's stored blocks: one `vpdpbusd` per row and block, the block's 4 input bytes as a
/// broadcast.
///
/// # Safety
/// The CPU must support AVX-512 F/VNNI (inlined into a caller that enables them); the blocks
/// are `w`'s (validated) and each of the GROUP rows holds the bytes at `4 cols[b]..+4`.
#[inline(always)]
unsafe fn accumulate_group(
    acc: &mut [__m512i; GROUP],
    blocks: core::ops::Range<usize>,
    cols: &[u16],
    values: &[i8],
    rows: *const i8,
    stride: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        for blk in blocks {
            let off = *cols.get_unchecked(blk) as usize * 4;
            let wv = _mm512_loadu_si512(values.as_ptr().add(blk * 64).cast());
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_epi32(rows.add(r * stride + off).cast::<i32>().read_unaligned());
                *acc = _mm512_dpbusd_epi32(*acc, xv, wv);
            }
        }
    }
}

/// Pointwise layers (1x1, stride 1, whole groups of 4 input channels), channels in the lanes:
/// the outputs come out in pixel order with no transpose, which matters most where the cost is
/// in the output stage (requantization, narrowing and stores per output) rather than in the
/// multiply-accumulates, as in MobileNetV2's expansions. Each pass copies as many input rows as
/// fit in `ROW_BYTES` and keep the pass's outputs within `OUT_BYTES` (at least 64 rows; sign bits
/// flipped, 64-byte loads), then runs the block-rows over them, two at a time ([`pair_rows`]:
/// 32-byte stores) and the last odd or partial one alone, with their corrected biases and
/// requantization constants held in registers, `GROUP` pixels at a time, one `vpdpbusd` per pixel
/// and stored block with the 4 input bytes as an embedded broadcast. Passes of a few hundred rows
/// rather than 64 pay the per-block-row set-up less often: 1.2-1.5x on the 16-32 channel layers.
///
/// # Safety
/// The CPU must support AVX2, AVX-512 F/BW/VL/VNNI; `w.block == KERNEL_BLOCK`, `w` validated
/// (as at load); `k % 4 == 0`, `k <= MAX_SIMD_K`, and the slices match `pixels x k` in,
/// `pixels x n` out.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn pointwise_channel_lanes<const STRIDE: usize>(
    pixels: usize,
    x: &[i8],
    w: &BlockSparse<'_>,
    rq: &Requant<'_>,
    y: &mut [i8],
) {
    debug_assert!(w.block == KERNEL_BLOCK && w.k <= MAX_SIMD_K && w.k.is_multiple_of(4));
    let (n, k) = (w.n, w.k);
    let (cols, values) = (w.cols(), w.values());
    let offset = _mm512_set1_epi32(128 + rq.input_zero_point);
    let (lo, hi) = (rq.act_min, rq.act_max);
    // Copied rows: `k` bytes each (STRIDE when not 0, a constant the addresses of a group's
    // broadcasts are then displacements of), packed as in the input so that a pass copies one
    // run of bytes; `per_pass` rows (a multiple of GROUP).
    let stride = if STRIDE == 0 { k } else { STRIDE };
    debug_assert!(k == stride);
    // As many rows as keep a pass's outputs (`rows n` bytes) within OUT_BYTES, at least 64: the
    // per-block-row set-up (corrected bias, requantization constants) is paid once per pass.
    let per_pass = (ROW_BYTES / stride).min((OUT_BYTES / n).max(64)) / GROUP * GROUP;
    // Not zeroed (64 KiB per call would cost more than a small layer): only bytes written in
    // the same pass are read.
    let mut a = core::mem::MaybeUninit::<[[i8; 64]; ROW_BYTES / 64]>::uninit();
    // SAFETY (whole body): the features are this function's contract. Stored block `b` is
    // `values[64 b ..][.. 64]`, its column below `k / 4` (validated), so the 4 bytes at
    // `4 cols[b]` lie inside a copied row, written earlier in the pass; `per_pass * stride <=
    // ROW_BYTES` (`k <= 4096` gives `per_pass >= 16`) and a pass copies `rows` rounded up to
    // GROUP rows; input row `p < pixels` is `x[p k ..][.. k]` and output row `p` holds channels
    // `c0 .. c0 + count`.
    unsafe {
        let (a0, y0) = (a.as_mut_ptr().cast::<i8>(), y[..pixels * n].as_mut_ptr());
        let mut p0 = 0;
        while p0 < pixels {
            let rows = per_pass.min(pixels - p0);
            // The pass's rows, one run of `rows k` bytes (64 at a time, the last masked), sign
            // bits flipped; a tail group's extra rows repeat the last pixel.
            let run = x[p0 * k..][..rows * k].as_ptr();
            let (len, flip) = (rows * k, _mm512_set1_epi8(i8::MIN));
            let whole = len / 64 * 64;
            for off in (0..whole).step_by(64) {
                let v = _mm512_loadu_si512(run.add(off).cast());
                _mm512_storeu_si512(a0.add(off).cast(), _mm512_xor_si512(v, flip));
            }
            if whole < len {
                let mask: __mmask64 = (1u64 << (len - whole)) - 1;
                let v = _mm512_maskz_loadu_epi8(mask, run.add(whole));
                _mm512_mask_storeu_epi8(a0.add(whole), mask, _mm512_xor_si512(v, flip));
            }
            for r in rows..rows.div_ceil(GROUP) * GROUP {
                core::ptr::copy_nonoverlapping(a0.add((rows - 1) * k), a0.add(r * k), k);
            }
            // Whole block-rows two at a time (a pixel's 32 outputs: one 32-byte store), then
            // the last odd or partial one alone.
            let mut rb0 = 0;
            while rb0 + 2 <= n / 16 {
                pair_rows::<STRIDE>(a0, rows, k, y0.add(p0 * n), n, rb0, w, rq);
                rb0 += 2;
            }
            for rb in rb0..w.block_rows() {
                let c0 = rb * 16;
                let count = 16.min(n - c0);
                let (kq, bias) = block_row_constants(w, rq, rb, offset);
                let blocks = w.blocks(rb);
                let store_mask: __mmask16 = ((1u32 << count) - 1) as u16;
                if blocks.is_empty() {
                    // Channels whose weights were all pruned: every pixel gets the requantized
                    // bias (no multiply-accumulate, one requantization for the whole pass).
                    let q = requant16(bias, &kq);
                    let part = _mm512_castsi512_si128(clamp_i8x64(pack4_i8([q; 4]), lo, hi));
                    for p in p0..p0 + rows {
                        _mm_mask_storeu_epi8(y0.add(p * n + c0), store_mask, part);
                    }
                    continue;
                }
                // The row loop, with the requantization chosen once per block-row.
                macro_rules! row_loop {
                    ($requant:expr) => {{
                        let mut r0 = 0;
                        while r0 < rows {
                            let mut acc = [bias; GROUP];
                            accumulate_group(&mut acc, blocks.clone(), cols, values, a0.add(r0 * stride), stride);
                            let real = GROUP.min(rows - r0);
                            let mut out = y0.add((p0 + r0) * n + c0);
                            for g0 in (0..GROUP).step_by(4) {
                                let q: [__m512i; 4] = core::array::from_fn(|i| $requant(acc[g0 + i]));
                                let bytes = clamp_i8x64(pack4_i8(q), lo, hi);
                                if n == 16 && g0 + 4 <= real {
                                    // Four whole rows of a 16-channel layer: one run of 64 bytes.
                                    _mm512_storeu_si512(out.cast(), bytes);
                                    out = out.wrapping_add(64);
                                    continue;
                                }
                                if count == 16 && g0 + 4 <= real {
                                    // Four whole rows: straight-line stores.
                                    store_part::<16>(bytes, 0, out);
                                    store_part::<16>(bytes, 1, out.wrapping_add(n));
                                    store_part::<16>(bytes, 2, out.wrapping_add(2 * n));
                                    store_part::<16>(bytes, 3, out.wrapping_add(3 * n));
                                    out = out.wrapping_add(4 * n);
                                    continue;
                                }
                                for i in 0..4.min(real.saturating_sub(g0)) {
                                    if i > 0 {
                                        out = out.wrapping_add(n);
                                    }
                                    if count == 16 {
                                        store_part::<16>(bytes, i, out);
                                    } else {
                                        let part = match i {
                                            0 => _mm512_castsi512_si128(bytes),
                                            1 => _mm512_extracti32x4_epi32(bytes, 1),
                                            2 => _mm512_extracti32x4_epi32(bytes, 2),
                                            _ => _mm512_extracti32x4_epi32(bytes, 3),
                                        };
                                        _mm_mask_storeu_epi8(out, store_mask, part);
                                    }
                                }
                                // Past the last row only after a tail, and never stored through.
                                out = out.wrapping_add(n);
                            }
                            r0 += GROUP;
                        }
                    }};
                }
                if kq.folded() {
                    row_loop!(|v| requant16_folded(v, &kq))
                } else {
                    row_loop!(|v| requant16(v, &kq))
                }
            }
            p0 += per_pass;
        }
    }
}

/// [`pointwise_channel_lanes`] on two whole block-rows at once, GROUP pixels at a time: a
/// pixel's 32 outputs are contiguous, so 4 requantized vectors (2 pixels x 2 block-rows) are one
/// pack and two 32-byte stores, where one block-row at a time takes four 16-byte stores and three
/// extracts (1.1-1.2x on MobileNetV2's 16-32 channel expansions at 80%; four block-rows at once,
/// one 64-byte store per pixel, ran slower: the constants of four no longer stay in registers).
/// A block-row with no stored block contributes its requantized bias.
///
/// # Safety
/// As [`pointwise_channel_lanes`]: `a0` holds the pass's `rows` rounded up to GROUP copied rows
/// of `k` bytes (STRIDE when not 0), `y0` is the output row of the pass's first pixel, and
/// channels `16 rb0 .. 16 rb0 + 32` exist.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn pair_rows<const STRIDE: usize>(
    a0: *const i8,
    rows: usize,
    k: usize,
    y0: *mut i8,
    n: usize,
    rb0: usize,
    w: &BlockSparse<'_>,
    rq: &Requant<'_>,
) {
    debug_assert!(16 * rb0 + 32 <= n);
    let stride = if STRIDE == 0 { k } else { STRIDE };
    let (cols, values) = (w.cols(), w.values());
    let (lo, hi, c0) = (rq.act_min, rq.act_max, rb0 * 16);
    // SAFETY (whole body): the caller's contract; stored block `b`'s 4 input bytes at
    // `4 cols[b] < k` lie inside each copied row.
    unsafe {
        let offset = _mm512_set1_epi32(128 + rq.input_zero_point);
        let ((kq0, bias0), (kq1, bias1)) =
            (block_row_constants(w, rq, rb0, offset), block_row_constants(w, rq, rb0 + 1, offset));
        let (kq, bias) = ([kq0, kq1], [bias0, bias1]);
        let blocks = [w.blocks(rb0), w.blocks(rb0 + 1)];
        let empty = [blocks[0].is_empty(), blocks[1].is_empty()];
        let konst = [requant16(bias[0], &kq[0]), requant16(bias[1], &kq[1])];
        // The requantization chosen once per call (see `requant16_folded`).
        macro_rules! run {
            ($requant:ident, $empty:expr) => {{
                let empty: [bool; 2] = $empty;
                let mut r0 = 0;
                while r0 < rows {
                    // acc[h][r]: block-row h, pixel r0 + r.
                    let mut acc = [[bias[0]; GROUP], [bias[1]; GROUP]];
                    for h in 0..2 {
                        accumulate_group(&mut acc[h], blocks[h].clone(), cols, values, a0.add(r0 * stride), stride);
                    }
                    let real = GROUP.min(rows - r0);
                    for r in (0..GROUP).step_by(2) {
                        // Pixels `r` and `r + 1`, each block-row's 16 lanes in turn.
                        let mut q = [_mm512_setzero_si512(); 4];
                        for (i, q) in q.iter_mut().enumerate() {
                            let h = i % 2;
                            *q = if empty[h] { konst[h] } else { $requant(acc[h][r + i / 2], &kq[h]) };
                        }
                        let bytes = clamp_i8x64(pack4_i8(q), lo, hi);
                        if n == 32 && r + 1 < real {
                            // Both pixels' outputs of a 32-channel layer: one run of 64 bytes.
                            _mm512_storeu_si512(y0.add((r0 + r) * n + c0).cast(), bytes);
                            continue;
                        }
                        if r < real {
                            store_part::<32>(bytes, 0, y0.add((r0 + r) * n + c0));
                        }
                        if r + 1 < real {
                            store_part::<32>(bytes, 1, y0.add((r0 + r + 1) * n + c0));
                        }
                    }
                    r0 += GROUP;
                }
            }};
        }
        // Unswitched on the requantization and on which block-row is empty (constants).
        match (kq[0].folded() && kq[1].folded(), empty) {
            (true, [false, false]) => run!(requant16_folded, [false, false]),
            (true, [true, false]) => run!(requant16_folded, [true, false]),
            (true, [false, true]) => run!(requant16_folded, [false, true]),
            (true, _) => run!(requant16_folded, [true, true]),
            (false, _) => run!(requant16, empty),
        }
    }
}

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
                let raw = _mm512_loadu_si512(b.as_ptr().cast());
                bias[i] = _mm512_sub_epi32(raw, _mm512_mullo_epi32(offset, weight_sums(w, rb)));
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
                                store_part::<16>(bytes, j, y[(p0 + 4 * half + j) * n + c..][..16].as_mut_ptr());
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

/// Fully-connected with f32 output on a block-sparse matrix (the classifier of a pruned model),
/// specified by `super::qs8_spfc_f32out_scalar`: per block-row, one zmm accumulator of its 16
/// channels and one `vpdpbusd` per stored block with the row's 4 input bytes broadcast (sign
/// bits flipped; `(128 + zp) sum w` comes off the bias), four accumulators in turn to hide the
/// latency; then `vcvtdq2ps`, the scale, the clamp (the order of [`F32Out::apply`]).
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VNNI; `w.block == KERNEL_BLOCK`, `w.k % 4 == 0`, `w`
/// validated (as at load) and the slices match `m x k -> m x n`.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
pub unsafe fn qs8_spfc_f32out_avx512vnni(m: usize, x: &[i8], w: &BlockSparse<'_>, out: &F32Out<'_>, y: &mut [f32]) {
    debug_assert!(w.block == KERNEL_BLOCK && w.k.is_multiple_of(4));
    let (n, k) = (w.n, w.k);
    let (cols, values) = (w.cols(), w.values());
    let offset = _mm512_set1_epi32(128 + out.input_zero_point);
    let (vlo, vhi) = (_mm512_set1_ps(out.lo), _mm512_set1_ps(out.hi));
    // SAFETY (whole body): the features are this function's contract. Block `b` holds 64 bytes
    // at `64 b`; its column is below `k / 4` (validated), so the 4 bytes at `4 cols[b]` lie in
    // the row. Lanes past the last channel are masked off in every load and store.
    unsafe {
        for rb in 0..w.block_rows() {
            let c0 = rb * 16;
            let mask: __mmask16 = (((1u32 << 16.min(n - c0)) - 1) & 0xffff) as u16;
            let raw = _mm512_maskz_loadu_epi32(mask, out.bias.as_ptr().add(c0));
            let base = _mm512_sub_epi32(raw, _mm512_mullo_epi32(offset, weight_sums(w, rb)));
            let sc = _mm512_maskz_loadu_ps(mask, out.scale.as_ptr().add(c0));
            for row in 0..m {
                let xr = x.as_ptr().add(row * k);
                let mut acc = [base, _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()];
                for (i, b) in w.blocks(rb).enumerate() {
                    let kg = *cols.get_unchecked(b) as usize * 4;
                    let xv =
                        _mm512_set1_epi32(xr.add(kg).cast::<i32>().read_unaligned() ^ i32::from_ne_bytes([0x80; 4]));
                    let wv = _mm512_loadu_si512(values.as_ptr().add(b * 64).cast());
                    acc[i % 4] = _mm512_dpbusd_epi32(acc[i % 4], xv, wv);
                }
                let sum = _mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]), _mm512_add_epi32(acc[2], acc[3]));
                let v = _mm512_mul_ps(_mm512_cvtepi32_ps(sum), sc);
                let v = _mm512_min_ps(_mm512_max_ps(v, vlo), vhi);
                _mm512_mask_storeu_ps(y.as_mut_ptr().add(row * n + c0), mask, v);
            }
        }
    }
}
