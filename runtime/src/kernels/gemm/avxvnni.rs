//! x86-64 AVX-VNNI int8 GEMM-convolution, 4 pixels x 16 channels per tile, reduction in groups
//! of 4 (`qs8_gemm_4x16c4_avxvnni`), on [`SIMD_PACK`] panels.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes and adds each group of 4 products into an i32
//! lane without intermediate saturation, so a 32-byte panel block (8 channels x 4) times one
//! pixel's 4 broadcast bytes is 32 exact multiply-accumulates in one instruction. The int8
//! activations are made unsigned by flipping the sign bit of each broadcast (`u = x + 128`;
//! padding is `zp + 128`), and the offset is taken out once per channel:
//! `sum (x - zp) w = sum u w - (128 + zp) sum w`, folded into the bias. Wrapping i32 arithmetic
//! gives the exact result whenever it fits, as the scalar kernel's does.
//!
//! The frame ([`drive`], generic over a kernel's [`VnniTiles`]) and the 256-bit tile body are
//! shared with the AVX-512 VNNI kernel (`super::avx512vnni`), which adds its 512-bit tiles.

use super::{block_rows, correct_bias, WeightMatrix, MAX_SIMD_K, SIMD_PACK};
use crate::kernels::conv::{ConvGeometry, Requant};
use crate::kernels::x86::{load_requant8, requant8, store_i8x8};
use core::arch::x86_64::*;

/// Pixels per 256-bit tile (16 ymm registers).
pub(super) const MR: usize = 4;
/// Channels whose corrected bias is computed per pass (stack buffer); wider layers take several
/// passes, each re-reading the input.
const N_CHUNK: usize = 1024;

/// # Safety
/// The CPU must support AVX2 and AVX-VNNI. `w` must be packed with [`SIMD_PACK`],
/// `w.k <= MAX_SIMD_K`, and the slices must match the geometry (as validated at load).
#[target_feature(enable = "avx2,avxvnni")]
pub unsafe fn qs8_gemm_4x16c4_avxvnni(
    g: &ConvGeometry,
    x: &[i8],
    w: &WeightMatrix<'_>,
    rq: &Requant<'_>,
    y: &mut [i8],
) {
    // SAFETY: this function's contract.
    unsafe { drive::<AvxVnni, MR>(g, x, w, rq, y) }
}

/// The AVX-VNNI kernel's part of the frame: VEX `vpdpbusd`, rows flipped as they are read.
struct AvxVnni;

impl VnniTiles for AvxVnni {
    const FLIPPED_ROWS: bool = false;
    #[inline(always)]
    unsafe fn panel_sums(panel: &[i8], sums: &mut [i32; 8]) {
        // SAFETY: the trait's contract.
        unsafe { panel_sums_vex(panel, sums) }
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
        unsafe { tile_vex::<P>(w, kp, j, a, rows, p0, n, c0, corrected, rq, y) }
    }
}

/// What a kernel built on [`drive`] brings to it: how it sums a panel's weights, its 256-bit
/// tile, and (the AVX-512 kernel) its 512-bit tiles and short-reduction path. Each ISA file
/// implements it for a marker type; the frame is generic over it, so it imports no ISA file.
///
/// # Safety
/// Every method requires the features of the kernel that implements it, and the shapes
/// [`drive`] passes (as documented there).
pub(super) trait VnniTiles {
    /// Rows are copied with their sign bits flipped (`x ^ 0x80`) before the tiles run.
    const FLIPPED_ROWS: bool;
    /// Per-channel weight sums of one panel (8 channels x `kp`).
    unsafe fn panel_sums(panel: &[i8], sums: &mut [i32; 8]);
    /// `MR` pixels x `8 P` channels from panel `j` (see [`tile_body`]).
    #[allow(clippy::too_many_arguments)]
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
    );
    /// The whole layer on a specialised path, when one takes it (`true`: done).
    #[allow(clippy::too_many_arguments)]
    unsafe fn whole_layer(
        _direct: bool,
        _x: &[i8],
        _w: &[i8],
        _rq: &Requant<'_>,
        _y: &mut [i8],
        _pixels: usize,
        _n: usize,
        _kp: usize,
        _corrected: &[i32],
    ) -> bool {
        false
    }
    /// Wider tiles over the `R` rows from panel `j` (`c0 + chunk`: the chunk's end): the number
    /// of panels done, 0 if none fits (the 256-bit tiles then take them).
    #[allow(clippy::too_many_arguments)]
    unsafe fn wide_tiles<const R: usize>(
        _w: &[i8],
        _kp: usize,
        _j: usize,
        _a: &[*const i8; R],
        _rows: usize,
        _p0: usize,
        _n: usize,
        _c0: usize,
        _end: usize,
        _corrected: &[i32],
        _rq: &Requant<'_>,
        _y: &mut [i8],
    ) -> usize {
        0
    }
}

/// The frame of the VNNI GEMM kernels: corrected biases per chunk of channels, blocks of `R`
/// pixels, tiles (`T`'s).
///
/// # Safety
/// As the callers; `R` is a multiple of `MR`, or any `R <= 8` when every channel lies in a tile
/// of `T::wide_tiles`.
#[inline(always)]
pub(super) unsafe fn drive<T: VnniTiles, const R: usize>(
    g: &ConvGeometry,
    x: &[i8],
    w: &WeightMatrix<'_>,
    rq: &Requant<'_>,
    y: &mut [i8],
) {
    debug_assert!(w.pack == Some(SIMD_PACK) && w.k <= MAX_SIMD_K);
    let (n, k) = (g.out_c, w.k);
    let kp = k.div_ceil(4) * 4;
    let pixels = g.batch * g.out_h * g.out_w;
    let offset = 128 + rq.input_zero_point;
    // Pointwise layers with whole groups of 4 read the input rows in place; the others gather
    // im2col rows into `a` (raw int8: padding is the zero point, which maps to `offset`).
    let direct = super::is_pointwise(g) && k % 4 == 0;
    let mut a = [[0i8; MAX_SIMD_K]; R];
    let mut corrected = [0i32; N_CHUNK + 16];
    let mut c0 = 0;
    while c0 < n {
        let chunk = N_CHUNK.min(n - c0);
        for j in c0 / 8..(c0 + chunk).div_ceil(8) {
            let panel = &w.data[j * 8 * kp..][..8 * kp];
            let mut sums = [0i32; 8];
            // SAFETY: the kernel's features (the caller's contract); `panel` holds `8 kp` bytes.
            unsafe { T::panel_sums(panel, &mut sums) };
            correct_bias(&sums, j, c0, chunk, rq.bias, offset, &mut corrected);
        }
        // SAFETY: as above; the conditions are the path's to check.
        if chunk == n && unsafe { T::whole_layer(direct, x, w.data, rq, y, pixels, n, kp, &corrected) } {
            return;
        }
        let mut p0 = 0;
        while p0 < pixels {
            let rows = R.min(pixels - p0);
            // Wide kernels read rows copied into `a` with the sign bits already flipped (once
            // per block, not once per tile and step); the others flip as they go.
            let flip = if T::FLIPPED_ROWS { i8::MIN } else { 0 };
            let rows_at = block_rows(g, x, k, direct, p0, rows, &mut a, rq.input_zero_point as i8, flip);
            let mut j = c0 / 8;
            while j * 8 < c0 + chunk {
                // SAFETY: the kernel's features; row pointers as below; the tiles check that their
                // channels exist before the chunk's end.
                let done = unsafe {
                    T::wide_tiles::<R>(w.data, kp, j, &rows_at, rows, p0, n, c0, c0 + chunk, &corrected, rq, y)
                };
                if done > 0 {
                    j += done;
                    continue;
                }
                let two = (j + 1) * 8 < c0 + chunk;
                for half in 0..R / MR {
                    let (p, sub_rows) = (p0 + half * MR, rows.saturating_sub(half * MR).min(MR));
                    if sub_rows == 0 {
                        break;
                    }
                    let sub: &[*const i8; MR] = rows_at[half * MR..][..MR].try_into().unwrap();
                    // SAFETY: the kernel's features (this function's contract); every row pointer
                    // addresses at least `kp` readable bytes (input rows of `k = kp` bytes, or `a`
                    // rows of MAX_SIMD_K >= kp).
                    unsafe {
                        if two {
                            T::tile::<2>(w.data, kp, j, sub, sub_rows, p, n, c0, &corrected, rq, y);
                        } else {
                            T::tile::<1>(w.data, kp, j, sub, sub_rows, p, n, c0, &corrected, rq, y);
                        }
                    }
                }
                j += if two { 2 } else { 1 };
            }
            p0 += R;
        }
        c0 += chunk;
    }
}

/// Per-channel weight sums of one panel (8 channels x `kp`): `vpdpbusd` with all-ones bytes.
///
/// # Safety
/// AVX2 and AVX-VNNI; `panel` holds `8 kp` bytes, `kp % 4 == 0`.
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn panel_sums_vex(panel: &[i8], sums: &mut [i32; 8]) {
    // SAFETY: the features are this function's contract.
    unsafe { panel_sums_body::<false>(panel, sums) }
}

/// The body of [`panel_sums_vex`] and the AVX-512 kernel's `panel_sums_evex`; `EVEX`: AVX-512
/// VNNI's encoding of `vpdpbusd`, else AVX-VNNI's.
///
/// # Safety
/// Always inlined into a caller that enables the features `EVEX` names; `panel` holds `8 kp`
/// bytes, `kp % 4 == 0`.
#[inline(always)]
pub(super) unsafe fn panel_sums_body<const EVEX: bool>(panel: &[i8], sums: &mut [i32; 8]) {
    // SAFETY: the caller's features; `kg * 32 + 32 <= panel.len()`.
    unsafe {
        let ones = _mm256_set1_epi8(1);
        let mut acc = _mm256_setzero_si256();
        for kg in 0..panel.len() / 32 {
            let wv = _mm256_loadu_si256(panel.as_ptr().add(kg * 32).cast());
            acc = if EVEX { _mm256_dpbusd_epi32(acc, ones, wv) } else { _mm256_dpbusd_avx_epi32(acc, ones, wv) };
        }
        _mm256_storeu_si256(sums.as_mut_ptr().cast(), acc);
    }
}

/// One tile: `MR` pixels x `8 * P` channels starting at panel `j`, on rows that are flipped as
/// they are read (AVX-VNNI).
///
/// # Safety
/// The CPU must support AVX2 and AVX-VNNI, and each `a[r]` must address `kp` readable bytes.
#[target_feature(enable = "avx2,avxvnni")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_vex<const P: usize>(
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
    unsafe { tile_body::<P, false, false>(w, kp, j, a, rows, p0, n, c0, corrected, rq, y) }
}

/// The body of [`tile_vex`] and the AVX-512 kernel's `tile_evex`: `MR` pixels x `8 * P` channels starting at panel
/// `j`; `FLIPPED`: the rows already hold `x ^ 0x80` (see `block_rows`), else each broadcast is
/// flipped here; `EVEX`: AVX-512 VNNI's encoding of `vpdpbusd`, else AVX-VNNI's.
///
/// # Safety
/// Always inlined into a caller that enables the features `EVEX` names; each `a[r]` must
/// address `kp` readable bytes.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn tile_body<const P: usize, const FLIPPED: bool, const EVEX: bool>(
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
    let panels: [&[i8]; P] = core::array::from_fn(|q| &w[(j + q) * 8 * kp..][..8 * kp]);
    // SAFETY: AVX2 is enabled by every caller this body is inlined into.
    let (mut acc, flip) = unsafe { ([[_mm256_setzero_si256(); P]; MR], _mm256_set1_epi8(-128)) };
    for kg in 0..kp / 4 {
        // SAFETY: `kg * 32 + 32 <= panel.len()`; `kg * 4 + 4 <= kp`, and each row pointer
        // addresses `kp` bytes (the caller's contract).
        unsafe {
            let wv: [__m256i; P] = core::array::from_fn(|q| _mm256_loadu_si256(panels[q].as_ptr().add(kg * 32).cast()));
            for r in 0..MR {
                // A 4-byte broadcast straight from memory (a load, no shuffle).
                let raw = _mm256_castps_si256(_mm256_broadcast_ss(&*a[r].add(kg * 4).cast::<f32>()));
                // int8 -> uint8 + 128: flip the sign bit.
                let av = if FLIPPED { raw } else { _mm256_xor_si256(raw, flip) };
                for q in 0..P {
                    acc[r][q] = if EVEX {
                        _mm256_dpbusd_epi32(acc[r][q], av, wv[q])
                    } else {
                        _mm256_dpbusd_avx_epi32(acc[r][q], av, wv[q])
                    };
                }
            }
        }
    }
    #[allow(clippy::needless_range_loop)]
    for q in 0..P {
        let c = (j + q) * 8;
        let cols = 8.min(n - c);
        // SAFETY: AVX2 is available; `c - c0 + 8 <= corrected.len()` (chunk + 16 slots).
        unsafe {
            let bias = _mm256_loadu_si256(corrected[c - c0..].as_ptr().cast());
            let k8 = load_requant8(rq, c, cols);
            for r in 0..rows {
                let v = requant8(_mm256_add_epi32(acc[r][q], bias), &k8, rq.output_zero_point, rq.act_min, rq.act_max);
                store_i8x8(v, &mut y[(p0 + r) * n + c..], cols);
            }
        }
    }
}
