//! f32 convolution with one group (and fully-connected layers, as 1x1 convolutions over rows)
//! for layers kept in float: `f32_conv2d_8x32_avx512`, `f32_conv2d_6x16_avx2` and
//! `f32_conv2d_8x8_neon`, register tiles of pixels x output channels.
//!
//! Bit-exact to [`super::scalar::f32_conv2d_scalar`], which fixes every rounding: per output,
//! `acc = bias`, then for each kernel tap inside the input (row-major) and each input channel in
//! order, `acc = fma(x, w, acc)` (one IEEE fused multiply-add, rounded once), then
//! `acc.clamp(lo, hi)`. A vector lane is one output channel, so each output keeps that exact
//! chain; a tile holds `MR` pixels x `NV` vectors of channels (`MR * NV` independent chains, enough
//! to cover the FMA latency on both pipes), and a step along the reduction is `NV` weight loads,
//! `MR` broadcasts and `MR * NV` FMAs: the FMA pipes are the bound, as in a GEMM.
//!
//! The weights are stored `[out][kh][kw][in]`; for each tap and chunk of `KC` input channels the
//! tile's channels are transposed into a stack buffer once and reused for every pixel. The running
//! sums live in the output between taps and chunks (f32, as the scalar `acc`, so storing and
//! reloading changes nothing). Pixels whose tap falls in the padding skip it, as the scalar
//! kernel does: the tiles are gathered from the pixels that read the tap.

use super::ConvGeometry;

/// Longest input-channel run the vector kernels take.
pub const MAX_IN_C: usize = super::F32_SIMD_MAX_IN_C;

/// Input channels per transposed weight chunk (the buffer is `KC x 32` floats: 32 KiB).
const KC: usize = 256;
/// Widest tile, in channels.
const NR_MAX: usize = 32;
/// Most pixels per tile.
const MR_MAX: usize = 8;

/// One ISA's vector operations and tile shape.
trait Isa {
    type V: Copy;
    /// Lanes per vector.
    const LANES: usize;
    /// Vectors of channels per tile row.
    const NV: usize;
    /// Pixels per tile.
    const MR: usize;
    unsafe fn splat(v: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(v: Self::V, p: *mut f32);
    /// `a * b + c`, rounded once.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The scalar fused multiply-add (`a * b + c`, rounded once).
    unsafe fn fma1(a: f32, b: f32, c: f32) -> f32;
}

/// The loop nest of every ISA.
///
/// # Safety
/// `I`'s operations must be runnable on this CPU; `g.groups == 1`, `g.in_c <= MAX_IN_C`, and the
/// slices match the geometry.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn drive<I: Isa>(g: &ConvGeometry, x: &[f32], w: &[f32], bias: &[f32], lo: f32, hi: f32, y: &mut [f32]) {
    let nr = I::LANES * I::NV;
    debug_assert!(nr <= NR_MAX && I::MR <= MR_MAX);
    let (cin, n) = (g.in_c, g.out_c);
    let taps = g.kernel_h * g.kernel_w * cin;
    let pixels = g.batch * g.out_h * g.out_w;
    let plane = g.in_h * g.in_w * cin;
    assert!(x.len() >= g.batch * plane && w.len() >= n * taps && bias.len() >= n && y.len() >= pixels * n);
    // The tile's channels' weights of one tap and chunk, transposed: row `ic - k0` holds `nr`
    // floats (zero past the layer's channels), written before it is read.
    let mut wt_store = core::mem::MaybeUninit::<[f32; KC * NR_MAX]>::uninit();
    let wt = wt_store.as_mut_ptr().cast::<f32>();
    let mut c0 = 0;
    while c0 < n {
        let cnt = nr.min(n - c0);
        for p in 0..pixels {
            y[p * n + c0..][..cnt].copy_from_slice(&bias[c0..c0 + cnt]);
        }
        for kh in 0..g.kernel_h {
            for kw in 0..g.kernel_w {
                let t0 = (kh * g.kernel_w + kw) * cin;
                if pixels < I::MR {
                    // Too few pixels to pay for the transposed weights (a fully-connected layer
                    // on one row): the tile's channels as independent scalar chains over the
                    // weight rows in place.
                    for p in 0..pixels {
                        let (ow, oh, b) = (p % g.out_w, (p / g.out_w) % g.out_h, p / (g.out_w * g.out_h));
                        let (Some(ih), Some(iw)) = (g.in_row(oh, kh), g.in_col(ow, kw)) else { continue };
                        let xs = &x[b * plane + (ih * g.in_w + iw) * cin..][..cin];
                        // Eight channels at a time: eight independent chains, each reading its
                        // weight row in order.
                        for j0 in (0..cnt).step_by(8) {
                            let m = 8.min(cnt - j0);
                            let rows: [&[f32]; 8] =
                                core::array::from_fn(|j| &w[(c0 + j0 + j.min(m - 1)) * taps + t0..][..cin]);
                            let out = &mut y[p * n + c0 + j0..][..m];
                            let mut acc = [0f32; 8];
                            acc[..m].copy_from_slice(out);
                            for (ic, &xv) in xs.iter().enumerate() {
                                for (a, row) in acc.iter_mut().zip(&rows) {
                                    // SAFETY: the ISA is runnable (the caller's contract); every
                                    // row holds `cin > ic` weights.
                                    *a = unsafe { I::fma1(xv, *row.get_unchecked(ic), *a) };
                                }
                            }
                            out.copy_from_slice(&acc[..m]);
                        }
                    }
                    continue;
                }
                let mut k0 = 0;
                while k0 < cin {
                    let kc = KC.min(cin - k0);
                    for ic in 0..kc {
                        for j in 0..nr {
                            let v = if j < cnt { w[(c0 + j) * taps + t0 + k0 + ic] } else { 0.0 };
                            // SAFETY: `ic < KC` rows of `nr <= NR_MAX` floats.
                            unsafe { wt.add(ic * nr + j).write(v) };
                        }
                    }
                    // Tiles of up to `MR` pixels that read this tap (the last one repeats its
                    // last pixel: the copy computes and stores the same values).
                    let (mut p, mut ow, mut oh, mut b) = (0, 0, 0, 0);
                    while p < pixels {
                        let (mut at, mut xo, mut m) = ([0usize; MR_MAX], [0usize; MR_MAX], 0);
                        while p < pixels && m < I::MR {
                            if let (Some(ih), Some(iw)) = (g.in_row(oh, kh), g.in_col(ow, kw)) {
                                (at[m], xo[m]) = (p, b * plane + (ih * g.in_w + iw) * cin + k0);
                                m += 1;
                            }
                            // Pixel `p` is `(b, oh, ow)`.
                            p += 1;
                            ow += 1;
                            if ow == g.out_w {
                                (ow, oh) = (0, oh + 1);
                                if oh == g.out_h {
                                    (oh, b) = (0, b + 1);
                                }
                            }
                        }
                        if m == 0 {
                            continue;
                        }
                        for j in m..I::MR {
                            (at[j], xo[j]) = (at[m - 1], xo[m - 1]);
                        }
                        // SAFETY: the ISA is runnable (the caller's contract); `wt` rows `..kc`
                        // were written above; each `xo[j]` starts `kc <= cin - k0` values of a
                        // pixel inside `x`, each `at[j]` is a pixel of `y`.
                        unsafe { tile::<I>(x, y, n, c0, cnt, &at, &xo, kc, wt) };
                    }
                    k0 += kc;
                }
            }
        }
        if lo != f32::NEG_INFINITY || hi != f32::INFINITY {
            for p in 0..pixels {
                for v in &mut y[p * n + c0..][..cnt] {
                    *v = v.clamp(lo, hi);
                }
            }
        }
        c0 += nr;
    }
}

/// One tile: the running sums of `MR` pixels (`at`) x the `cnt` channels from `c0`, loaded from
/// the output, `kc` steps of broadcast input x weight row FMAs, stored back.
///
/// # Safety
/// As in [`drive`]: `I` runnable, `wt` holds `kc` written rows of `LANES * NV` floats, every
/// `x[xo[j]..][..kc]` and `y[at[j] * n + c0..][..cnt]` in bounds.
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn tile<I: Isa>(
    x: &[f32],
    y: &mut [f32],
    n: usize,
    c0: usize,
    cnt: usize,
    at: &[usize; MR_MAX],
    xo: &[usize; MR_MAX],
    kc: usize,
    wt: *const f32,
) {
    let nr = I::LANES * I::NV;
    // SAFETY: the caller's contract.
    unsafe {
        let mut acc = [[I::splat(0.0); 4]; MR_MAX];
        let mut buf = [0f32; NR_MAX];
        for j in 0..I::MR {
            let out = y.as_ptr().add(at[j] * n + c0);
            let src = if cnt == nr {
                out
            } else {
                core::ptr::copy_nonoverlapping(out, buf.as_mut_ptr(), cnt);
                buf.as_ptr()
            };
            for v in 0..I::NV {
                acc[j][v] = I::load(src.add(v * I::LANES));
            }
        }
        let xp: [*const f32; MR_MAX] = core::array::from_fn(|j| x.as_ptr().add(xo[j]));
        for ic in 0..kc {
            let mut wv = [I::splat(0.0); 4];
            for (v, wvv) in wv.iter_mut().enumerate().take(I::NV) {
                *wvv = I::load(wt.add(ic * nr + v * I::LANES));
            }
            for j in 0..I::MR {
                let xv = I::splat(*xp[j].add(ic));
                for v in 0..I::NV {
                    acc[j][v] = I::fma(xv, wv[v], acc[j][v]);
                }
            }
        }
        for j in 0..I::MR {
            let out = y.as_mut_ptr().add(at[j] * n + c0);
            if cnt == nr {
                for v in 0..I::NV {
                    I::store(acc[j][v], out.add(v * I::LANES));
                }
            } else {
                for v in 0..I::NV {
                    I::store(acc[j][v], buf.as_mut_ptr().add(v * I::LANES));
                }
                core::ptr::copy_nonoverlapping(buf.as_ptr(), out, cnt);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Isa;
    use core::arch::x86_64::*;

    /// `a * b + c` rounded once, as an instruction the compiler cannot merge: independent scalar
    /// chains over weight rows in place would otherwise be vectorized with `vgatherqps`, several
    /// times slower on AMD cores than the scalar FMAs.
    ///
    /// # Safety
    /// The CPU must support FMA.
    #[inline(always)]
    pub unsafe fn fma1(a: f32, b: f32, c: f32) -> f32 {
        let mut acc = c;
        // SAFETY: the caller's contract; register operands only.
        unsafe {
            core::arch::asm!(
                "vfmadd231ss {c}, {a}, {b}",
                c = inout(xmm_reg) acc,
                a = in(xmm_reg) a,
                b = in(xmm_reg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        acc
    }

    /// AVX2 + FMA: 6 pixels x 16 channels (12 ymm sums).
    pub struct Avx2;
    impl Isa for Avx2 {
        type V = __m256;
        const LANES: usize = 8;
        const NV: usize = 2;
        const MR: usize = 6;
        #[inline(always)]
        unsafe fn splat(v: f32) -> __m256 {
            // SAFETY: AVX in the caller.
            unsafe { _mm256_set1_ps(v) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            // SAFETY: 8 floats at `p`; AVX in the caller.
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(v: __m256, p: *mut f32) {
            // SAFETY: 8 floats at `p`; AVX in the caller.
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            // SAFETY: FMA in the caller.
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn fma1(a: f32, b: f32, c: f32) -> f32 {
            // SAFETY: FMA in the caller.
            unsafe { fma1(a, b, c) }
        }
    }

    /// AVX-512: 8 pixels x 32 channels (16 zmm sums).
    pub struct Avx512;
    impl Isa for Avx512 {
        type V = __m512;
        const LANES: usize = 16;
        const NV: usize = 2;
        const MR: usize = 8;
        #[inline(always)]
        unsafe fn splat(v: f32) -> __m512 {
            // SAFETY: AVX-512 F in the caller.
            unsafe { _mm512_set1_ps(v) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            // SAFETY: 16 floats at `p`; AVX-512 F in the caller.
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(v: __m512, p: *mut f32) {
            // SAFETY: 16 floats at `p`; AVX-512 F in the caller.
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            // SAFETY: AVX-512 F in the caller.
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn fma1(a: f32, b: f32, c: f32) -> f32 {
            // SAFETY: FMA in the caller.
            unsafe { fma1(a, b, c) }
        }
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `g.groups == 1`, `g.in_c <= MAX_IN_C`, and the slices
/// match the geometry (as validated at load).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn f32_conv2d_6x16_avx2(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    lo: f32,
    hi: f32,
    y: &mut [f32],
) {
    // SAFETY: AVX2 and FMA are available (this function's contract).
    unsafe { drive::<x86::Avx2>(g, x, w, bias, lo, hi, y) }
}

/// # Safety
/// The CPU must support AVX2, FMA and AVX-512 F; otherwise as [`f32_conv2d_6x16_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f")]
pub unsafe fn f32_conv2d_8x32_avx512(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    lo: f32,
    hi: f32,
    y: &mut [f32],
) {
    // SAFETY: the features are this function's contract.
    unsafe { drive::<x86::Avx512>(g, x, w, bias, lo, hi, y) }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::Isa;
    use core::arch::aarch64::*;

    /// NEON: 8 pixels x 8 channels (16 q-register sums).
    pub struct Neon;
    impl Isa for Neon {
        type V = float32x4_t;
        const LANES: usize = 4;
        const NV: usize = 2;
        const MR: usize = 8;
        #[inline(always)]
        unsafe fn splat(v: f32) -> float32x4_t {
            // SAFETY: NEON is baseline on aarch64.
            unsafe { vdupq_n_f32(v) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> float32x4_t {
            // SAFETY: 4 floats at `p`.
            unsafe { vld1q_f32(p) }
        }
        #[inline(always)]
        unsafe fn store(v: float32x4_t, p: *mut f32) {
            // SAFETY: 4 floats at `p`.
            unsafe { vst1q_f32(p, v) }
        }
        #[inline(always)]
        unsafe fn fma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
            // SAFETY: NEON is baseline; `vfmaq_f32(c, a, b)` is `c + a * b` fused (`fmla`).
            unsafe { vfmaq_f32(c, a, b) }
        }
        #[inline(always)]
        unsafe fn fma1(a: f32, b: f32, c: f32) -> f32 {
            // SAFETY: NEON is baseline; lane 0 of a fused `fmla` on 2 lanes.
            unsafe { vget_lane_f32::<0>(vfma_f32(vdup_n_f32(c), vdup_n_f32(a), vdup_n_f32(b))) }
        }
    }
}

/// # Safety
/// `g.groups == 1`, `g.in_c <= MAX_IN_C`, and the slices match the geometry (as validated at
/// load).
#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "neon")]
pub unsafe fn f32_conv2d_8x8_neon(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    lo: f32,
    hi: f32,
    y: &mut [f32],
) {
    // SAFETY: NEON is baseline on aarch64.
    unsafe { drive::<arm::Neon>(g, x, w, bias, lo, hi, y) }
}
