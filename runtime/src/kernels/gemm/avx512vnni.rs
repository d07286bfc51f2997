//! x86-64 AVX-512 VNNI int8 GEMM-convolution, 8 pixels x 32 channels per tile, reduction in
//! groups of 4 (`qs8_gemm_8x32c4_avx512vnni`), on [`super::SIMD_PACK`] panels: the frame of
//! `super::avxvnni` (see there for the `vpdpbusd` scheme) with 512-bit tiles (two adjacent panels
//! per zmm), a path for pointwise layers with short reductions, and the EVEX 256-bit `vpdpbusd`
//! for the last 8 channels, so the kernel needs no AVX-VNNI (most AVX-512 servers lack it).

use super::avxvnni::{drive, panel_sums_body, tile_body, VnniTiles, MR};
use super::WeightMatrix;
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::x86::{
    broadcast4_512, clamp_i8x64, load_requant16, pack4_i8, requant16, requant16_folded, store_part, Requant16,
};
use core::arch::x86_64::*;

/// Pixels per 512-bit tile (32 zmm registers).
const MR_WIDE: usize = 8;

/// AVX-512 VNNI: the same frame, 8 pixels x 32 channels per tile (`vpdpbusd` on zmm: two
/// adjacent panels per register), then 8 x 16, then the 256-bit tiles for the last 8 channels.
///
/// # Safety
/// The CPU must support AVX2, AVX-512 F/BW/VL and AVX-512 VNNI (not AVX-VNNI: most AVX-512
/// servers lack it; the 256-bit steps use the EVEX `vpdpbusd`); otherwise as
/// [`super::avxvnni::qs8_gemm_4x16c4_avxvnni`].
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
pub unsafe fn qs8_gemm_8x32c4_avx512vnni(
    g: &ConvGeometry,
    x: &[i8],
    w: &WeightMatrix<'_>,
    rq: &Requant<'_>,
    y: &mut [i8],
) {
    // Pixel counts that are multiples of 7 but not of 8 (7x7 maps: 49 pixels) take blocks of
    // 7, wasting no row of the last block; they need every channel in the 16-wide tiles.
    let pixels = g.batch * g.out_h * g.out_w;
    // SAFETY: this function's contract.
    unsafe {
        if !pixels.is_multiple_of(8) && pixels.is_multiple_of(7) && g.out_c.is_multiple_of(16) {
            drive::<Avx512Vnni, 7>(g, x, w, rq, y)
        } else {
            drive::<Avx512Vnni, MR_WIDE>(g, x, w, rq, y)
        }
    }
}

/// The AVX-512 kernel's part of the frame.
struct Avx512Vnni;

impl VnniTiles for Avx512Vnni {
    const FLIPPED_ROWS: bool = true;
    #[inline(always)]
    unsafe fn panel_sums(panel: &[i8], sums: &mut [i32; 8]) {
        // SAFETY: the trait's contract.
        unsafe { panel_sums_evex(panel, sums) }
    }
    #[inline(always)]
    unsafe fn tile<const P: usize>(
        w: &[i8],
        kp: usize,
        j: usize,
        a: &[*const i8; MR],
        rows: usize,
        p0: usize,
        n: usize,
        c0: usize,
        corrected: &[i32],
        rq: &Requant<'_>,
        y: &mut [i8],
    ) {
        // SAFETY: the trait's contract.
        unsafe { tile_evex::<P>(w, kp, j, a, rows, p0, n, c0, corrected, rq, y) }
    }
    #[inline(always)]
    unsafe fn whole_layer(
        direct: bool,
        x: &[i8],
        w: &[i8],
        rq: &Requant<'_>,
        y: &mut [i8],
        pixels: usize,
        n: usize,
        kp: usize,
        corrected: &[i32],
    ) -> bool {
        if direct && n.is_multiple_of(16) && n <= SMALL_N && kp <= SMALL_K {
            // SAFETY: the trait's contract; the conditions are the path's.
            unsafe { pointwise_small_k(x, w, rq, y, pixels, n, kp, corrected) };
            return true;
        }
        false
    }
    #[inline(always)]
    unsafe fn wide_tiles<const R: usize>(
        w: &[i8],
        kp: usize,
        j: usize,
        rows_at: &[*const i8; R],
        rows: usize,
        p0: usize,
        n: usize,
        c0: usize,
        end: usize,
        corrected: &[i32],
        rq: &Requant<'_>,
        y: &mut [i8],
    ) -> usize {
        if (j + 2) * 8 > end {
            return 0;
        }
        let four = (j + 4) * 8 <= end;
        // 24 channels left: one tile, the last 8 on the low halves of the broadcasts.
        let three = !four && (j + 3) * 8 == end;
        // SAFETY: AVX-512 VNNI is available (the trait's contract); row pointers as in `drive`;
        // the tile's 32 (24, 16) channels exist.
        unsafe {
            if four {
                tile512::<2, R>(w, kp, j, rows_at, rows, p0, n, c0, corrected, rq, y);
                4
            } else if three {
                tile512_24::<R>(w, kp, j, rows_at, rows, p0, n, c0, corrected, rq, y);
                3
            } else {
                tile512::<1, R>(w, kp, j, rows_at, rows, p0, n, c0, corrected, rq, y);
                2
            }
        }
    }
}

/// Longest reduction, and most channels, of [`pointwise_small_k`].
const SMALL_K: usize = 32;
const SMALL_N: usize = 256;
/// Input rows copied per pass of [`pointwise_small_k`], and pixels per inner step.
const SUPER: usize = 64;
const GROUP: usize = 8;

/// Pointwise layers with a short reduction (MobileNetV2's 16-32 channel bottlenecks, whose
/// cost is in the output stage, not in the multiply-accumulates): the zmm weight vectors (two
/// panels joined) and the requantization constants of every channel are built once per call;
/// each pass copies `SUPER` input rows (sign bits flipped), then runs every channel tile over
/// them with that tile's weights and constants held across the pixels.
///
/// # Safety
/// The CPU must support AVX2, AVX-512 F/BW and AVX-512 VNNI; `n % 16 == 0`, `n <= SMALL_N`,
/// `kp <= SMALL_K`, `k == kp` (input rows of `kp` bytes), `corrected` holds the `n` corrected
/// biases, and the slices match `pixels x kp` in, `pixels x n` out.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn pointwise_small_k(
    x: &[i8],
    w: &[i8],
    rq: &Requant<'_>,
    y: &mut [i8],
    pixels: usize,
    n: usize,
    kp: usize,
    corrected: &[i32],
) {
    const STEPS: usize = SMALL_K / 4;
    let (tiles, steps) = (n / 16, kp / 4);
    // SAFETY (whole body): the features are the caller's contract; panel `p` spans
    // `w[p * 8 * kp ..][.. 8 * kp]` and `kg * 32 + 32 <= 8 * kp`; rows and outputs are in
    // bounds by the caller's shapes (`x[p * kp ..][.. kp]`, `y[p * n ..][.. n]`).
    unsafe {
        let mut wz = [[_mm512_setzero_si512(); STEPS]; SMALL_N / 16];
        for (t, wt) in wz.iter_mut().enumerate().take(tiles) {
            for (kg, v) in wt.iter_mut().enumerate().take(steps) {
                let lo = _mm256_loadu_si256(w[2 * t * 8 * kp + kg * 32..][..32].as_ptr().cast());
                let hi = _mm256_loadu_si256(w[(2 * t + 1) * 8 * kp + kg * 32..][..32].as_ptr().cast());
                *v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
            }
        }
        let zo = rq.output_zero_point;
        let kq: [Requant16; SMALL_N / 16] = core::array::from_fn(|t| {
            let c = 16 * t.min(tiles - 1);
            load_requant16(&rq.mult[c..], &rq.shift[c..], zo)
        });
        let mut a = [[0i8; SMALL_K]; SUPER];
        let row_mask: __mmask64 = (1u64 << kp) - 1;
        let mut p0 = 0;
        while p0 < pixels {
            let rows = SUPER.min(pixels - p0);
            // One masked load per row (the bytes past `kp` are not read), sign bits flipped;
            // the rows up to the next whole group repeat the last pixel.
            for (r, row) in a.iter_mut().enumerate().take(rows.div_ceil(GROUP) * GROUP) {
                let src = x[(p0 + r.min(rows - 1)) * kp..][..kp].as_ptr();
                let v = _mm512_castsi512_si256(_mm512_maskz_loadu_epi8(row_mask, src));
                _mm256_storeu_si256(row.as_mut_ptr().cast(), _mm256_xor_si256(v, _mm256_set1_epi8(i8::MIN)));
            }
            let y0 = &mut y[p0 * n..];
            let mut t = 0;
            while t < tiles {
                let two = t + 2 <= tiles;
                let h = if two { 2 } else { 1 };
                let (wt, kt, c) = (&wz[t..t + h], &kq[t..t + h], 16 * t);
                match (two, steps) {
                    (true, 4) => small_tile::<2, 4>(wt, c, &a, rows, n, corrected, kt, rq, y0),
                    (true, 6) => small_tile::<2, 6>(wt, c, &a, rows, n, corrected, kt, rq, y0),
                    (true, 8) => small_tile::<2, 8>(wt, c, &a, rows, n, corrected, kt, rq, y0),
                    (false, 4) => small_tile::<1, 4>(wt, c, &a, rows, n, corrected, kt, rq, y0),
                    (false, 6) => small_tile::<1, 6>(wt, c, &a, rows, n, corrected, kt, rq, y0),
                    (false, 8) => small_tile::<1, 8>(wt, c, &a, rows, n, corrected, kt, rq, y0),
                    (true, _) => small_tile::<2, 0>(wt, c, &a, rows, n, corrected, kt, rq, y0),
                    (false, _) => small_tile::<1, 0>(wt, c, &a, rows, n, corrected, kt, rq, y0),
                }
                t += h;
            }
            p0 += SUPER;
        }
    }
}

/// `rows` pixels (of `a`) x `16 H` channels from `c` of [`pointwise_small_k`], `GROUP` pixels
/// at a time: `wz[h][kg]` are the joined weight vectors and `kq[h]` the requantization
/// constants, loaded once for all the pixels. `STEPS` is the reduction length in groups of 4
/// (a constant, so the loop unrolls and the accumulators stay in registers), or 0 for any
/// other length (read from the weights' slice: `SMALL_K / 4` steps, the unused ones zero).
///
/// # Safety
/// As [`pointwise_small_k`]; `wz.len() == kq.len() == H`, channels `c .. c + 16 H` exist, `y`
/// starts at the first pixel's output row, and `a` holds `rows` rounded up to `GROUP` rows.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn small_tile<const H: usize, const STEPS: usize>(
    wz: &[[__m512i; SMALL_K / 4]],
    c: usize,
    a: &[[i8; SMALL_K]; SUPER],
    rows: usize,
    n: usize,
    corrected: &[i32],
    kq: &[Requant16],
    rq: &Requant<'_>,
    y: &mut [i8],
) {
    let steps = if STEPS == 0 { SMALL_K / 4 } else { STEPS };
    // SAFETY (whole body): the caller's contract.
    unsafe {
        let w: [[__m512i; SMALL_K / 4]; H] = core::array::from_fn(|h| wz[h]);
        let k: [Requant16; H] = core::array::from_fn(|h| kq[h]);
        // Every channel on the folded fast path: a loop-invariant test the row loop is
        // unswitched on (see `requant16_folded`).
        let folded = k.iter().all(Requant16::folded);
        let bias: [__m512i; H] =
            core::array::from_fn(|h| _mm512_loadu_si512(corrected[c + 16 * h..][..16].as_ptr().cast()));
        let (lo, hi) = (rq.act_min, rq.act_max);
        // Raw pointers below: `a` holds whole groups of rows, and output row `r < rows` holds
        // the channels `c .. c + 16 H` (the caller's contract), so no index needs a check.
        let (a0, y0) = (a.as_ptr().cast::<i8>(), y[..rows * n].as_mut_ptr().add(c));
        let mut r0 = 0;
        while r0 < rows {
            let mut acc = [bias; GROUP];
            #[allow(clippy::needless_range_loop)]
            for kg in 0..steps {
                for r in 0..GROUP {
                    let xv = _mm512_set1_epi32(a0.add((r0 + r) * SMALL_K + kg * 4).cast::<i32>().read_unaligned());
                    for h in 0..H {
                        acc[r][h] = _mm512_dpbusd_epi32(acc[r][h], xv, w[h][kg]);
                    }
                }
            }
            // Requantize 4 vectors at a time (`4 / H` pixels), narrow to 64 bytes, clamp,
            // store each real pixel's `16 H` bytes.
            let per = 4 / H;
            let real = GROUP.min(rows - r0);
            for g0 in (0..GROUP).step_by(per) {
                let mut q = [_mm512_setzero_si512(); 4];
                for (i, q) in q.iter_mut().enumerate() {
                    *q = if folded {
                        requant16_folded(acc[g0 + i / H][i % H], &k[i % H])
                    } else {
                        requant16(acc[g0 + i / H][i % H], &k[i % H])
                    };
                }
                let bytes = clamp_i8x64(pack4_i8(q), lo, hi);
                for rr in 0..per {
                    if g0 + rr >= real {
                        break;
                    }
                    let out = y0.add((r0 + g0 + rr) * n);
                    if H == 2 {
                        store_part::<32>(bytes, rr, out);
                    } else {
                        store_part::<16>(bytes, rr, out);
                    }
                }
            }
            r0 += GROUP;
        }
    }
}

/// `super::avxvnni`'s panel sums with the EVEX encoding (AVX-512 VNNI + VL instead of AVX-VNNI).
///
/// # Safety
/// AVX2, AVX-512 F/VL and AVX-512 VNNI; otherwise as those.
#[target_feature(enable = "avx2,avx512f,avx512vl,avx512vnni")]
unsafe fn panel_sums_evex(panel: &[i8], sums: &mut [i32; 8]) {
    // SAFETY: the features are this function's contract.
    unsafe { panel_sums_body::<true>(panel, sums) }
}

/// [`super::avxvnni`]'s 256-bit tile inside the AVX-512 kernel: rows already flipped, EVEX `vpdpbusd` on ymm.
///
/// # Safety
/// The CPU must support AVX2, AVX-512 F/VL and AVX-512 VNNI; otherwise as that tile.
#[target_feature(enable = "avx2,avx512f,avx512vl,avx512vnni")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_evex<const P: usize>(
    w: &[i8],
    kp: usize,
    j: usize,
    a: &[*const i8; MR],
    rows: usize,
    p0: usize,
    n: usize,
    c0: usize,
    corrected: &[i32],
    rq: &Requant<'_>,
    y: &mut [i8],
) {
    // SAFETY: this function's contract.
    unsafe { tile_body::<P, true, true>(w, kp, j, a, rows, p0, n, c0, corrected, rq, y) }
}

/// [`tile512_body`] for `16 H` channels.
///
/// # Safety
/// As [`tile512_body`].
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile512<const H: usize, const R: usize>(
    w: &[i8],
    kp: usize,
    j: usize,
    a: &[*const i8; R],
    rows: usize,
    p0: usize,
    n: usize,
    c0: usize,
    corrected: &[i32],
    rq: &Requant<'_>,
    y: &mut [i8],
) {
    // SAFETY: the caller's contract.
    unsafe { tile512_body::<H, R, false>(w, kp, j, a, rows, p0, n, c0, corrected, rq, y) }
}

/// [`tile512_body`] for 24 channels (a call of its own: its extra ymm accumulators need VL).
///
/// # Safety
/// As [`tile512_body`], with AVX-512 VL.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile512_24<const R: usize>(
    w: &[i8],
    kp: usize,
    j: usize,
    a: &[*const i8; R],
    rows: usize,
    p0: usize,
    n: usize,
    c0: usize,
    corrected: &[i32],
    rq: &Requant<'_>,
    y: &mut [i8],
) {
    // SAFETY: the caller's contract.
    unsafe { tile512_body::<1, R, true>(w, kp, j, a, rows, p0, n, c0, corrected, rq, y) }
}

/// One AVX-512 tile: `R` pixels x `16 H` channels (panels `j .. j + 2 H`), two panels per zmm,
/// on rows whose sign bits are already flipped (`u = x + 128`): per step of 4, each pixel's 4
/// bytes are one broadcast load and feed `H` `vpdpbusd`. `T8`: one more panel (8 channels) on
/// ymm accumulators fed by the same broadcasts (a layer of 24 channels in one tile).
///
/// Always inlined into [`tile512`] or [`tile512_24`], whose features it uses (`T8` needs
/// AVX-512 VL, which only the second enables: the other kernels run faster compiled without it).
///
/// # Safety
/// The CPU must support AVX2, AVX-512 F/BW and AVX-512 VNNI (and VL when `T8`), each `a[r]`
/// must address `kp` readable bytes, and the `16 H` (+ 8) channels from `8 j` must exist.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile512_body<const H: usize, const R: usize, const T8: bool>(
    w: &[i8],
    kp: usize,
    j: usize,
    a: &[*const i8; R],
    rows: usize,
    p0: usize,
    n: usize,
    c0: usize,
    corrected: &[i32],
    rq: &Requant<'_>,
    y: &mut [i8],
) {
    let panel = &w[j * 8 * kp..][..16 * H * kp];
    let c = j * 8;
    // SAFETY (whole body): the features are the caller's contract; panel `j + q` starts at
    // `q * 8 * kp` of `panel`, and `kg * 32 + 32 <= 8 * kp`; each row pointer addresses `kp`
    // bytes; the `16 H` channels `c ..` exist, so `corrected`, the requantization slices and
    // each output row hold them.
    unsafe {
        let mut acc = [[_mm512_setzero_si512(); H]; R];
        for h in 0..H {
            let bias = _mm512_loadu_si512(corrected[c + 16 * h - c0..][..16].as_ptr().cast());
            for acc in acc.iter_mut() {
                acc[h] = bias;
            }
        }
        let c8 = c + 16 * H;
        let mut acc8 = [_mm256_setzero_si256(); R];
        if T8 {
            acc8 = [_mm256_loadu_si256(corrected[c8 - c0..][..8].as_ptr().cast()); R];
        }
        let p = panel.as_ptr();
        let p8 = if T8 { w[(j + 2 * H) * 8 * kp..][..8 * kp].as_ptr() } else { p };
        for kg in 0..kp / 4 {
            let mut wv = [_mm512_setzero_si512(); H];
            for (h, wv) in wv.iter_mut().enumerate() {
                let lo = _mm256_loadu_si256(p.add(2 * h * 8 * kp + kg * 32).cast());
                let hi = _mm256_loadu_si256(p.add((2 * h + 1) * 8 * kp + kg * 32).cast());
                *wv = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
            }
            let wv8 = if T8 { _mm256_loadu_si256(p8.add(kg * 32).cast()) } else { _mm256_setzero_si256() };
            for r in 0..R {
                let xv = broadcast4_512(a[r].add(kg * 4));
                for h in 0..H {
                    acc[r][h] = _mm512_dpbusd_epi32(acc[r][h], xv, wv[h]);
                }
                if T8 {
                    // A second broadcast load rather than the zmm's low half, which the compiler
                    // re-broadcasts on a shuffle pipe.
                    let xv8 = _mm256_castps_si256(_mm256_set1_ps(a[r].add(kg * 4).cast::<f32>().read_unaligned()));
                    acc8[r] = _mm256_dpbusd_epi32(acc8[r], xv8, wv8);
                }
            }
        }
        // Requantize 4 vectors at a time (`4 / H` pixels), narrow them to 64 bytes, clamp, and
        // store each real pixel's `16 H` bytes.
        let (zo, lo, hi) = (rq.output_zero_point, rq.act_min, rq.act_max);
        let mut k = [load_requant16(&rq.mult[c..], &rq.shift[c..], zo); H];
        for (h, k) in k.iter_mut().enumerate().skip(1) {
            *k = load_requant16(&rq.mult[c + 16 * h..], &rq.shift[c + 16 * h..], zo);
        }
        let per = 4 / H;
        let folded = k.iter().all(Requant16::folded);
        let mut r0 = 0;
        while r0 < rows {
            let mut q = [_mm512_setzero_si512(); 4];
            for (i, q) in q.iter_mut().enumerate() {
                let v = acc[(r0 + i / H).min(R - 1)][i % H];
                *q = if folded { requant16_folded(v, &k[i % H]) } else { requant16(v, &k[i % H]) };
            }
            let bytes = clamp_i8x64(pack4_i8(q), lo, hi);
            for rr in 0..per.min(rows - r0) {
                let out = y[(p0 + r0 + rr) * n + c..][..16 * H].as_mut_ptr();
                if H == 2 {
                    store_part::<32>(bytes, rr, out);
                } else {
                    store_part::<16>(bytes, rr, out);
                }
            }
            r0 += per;
        }
        if T8 {
            // Two pixels' 8 channels per zmm, with the constants of those channels twice.
            let (mut m, mut sh) = ([0i32; 16], [0i32; 16]);
            for i in 0..16 {
                (m[i], sh[i]) = (rq.mult[c8 + i % 8], rq.shift[c8 + i % 8]);
            }
            let k8 = load_requant16(&m, &sh, zo);
            let mut q = [_mm512_setzero_si512(); 4];
            for (i, q) in q.iter_mut().enumerate() {
                let (r0, r1) = ((2 * i).min(R - 1), (2 * i + 1).min(R - 1));
                let pair = _mm512_inserti64x4(_mm512_castsi256_si512(acc8[r0]), acc8[r1], 1);
                *q = requant16(pair, &k8);
            }
            let bytes = clamp_i8x64(pack4_i8(q), lo, hi);
            let mut row_bytes = [0u64; 8];
            _mm512_storeu_si512(row_bytes.as_mut_ptr().cast(), bytes);
            for (r, &b) in row_bytes.iter().enumerate().take(rows.min(R)) {
                y[(p0 + r) * n + c8..][..8].copy_from_slice(&b.to_le_bytes().map(|v| v as i8));
            }
        }
    }
}
