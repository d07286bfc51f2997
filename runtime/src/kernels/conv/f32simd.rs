//! f32 convolution with one group (and fully-connected layers, as 1x1 convolutions over rows)
//! for layers kept in float: `f32_conv2d_8c_avx2` and `f32_conv2d_8c_neon`, 8 output channels
//! per step.
//!
//! Bit-exact to [`super::scalar::f32_conv2d_scalar`], which fixes the order of every rounding:
//! per output, `acc = bias`, then for each kernel tap inside the input (row-major) `acc +=
//! dot`, where `dot` sums the products from `-0.0` in input-channel order (`Iterator::sum`), then
//! `acc.clamp(lo, hi)`. The vector kernels keep that order exactly and only compute 8 outputs at
//! once: each lane is one output channel, the input value is broadcast, products and sums are
//! separate IEEE operations (no fused multiply-add), the running `acc` lives in the output
//! (f32, as the scalar `acc`), and the clamp is the scalar `f32::clamp`. The 8 channels' weights
//! of one kernel tap are transposed into a stack buffer once per tap and reused for every pixel,
//! and 8 pixels are summed side by side (8 independent chains, each in its own order).

use super::ConvGeometry;

/// Longest input-channel run the vector kernels take.
pub const MAX_IN_C: usize = super::F32_SIMD_MAX_IN_C;

/// The loop nest of both ISAs: `V` is the 8-lane vector (two vectors on NEON).
///
/// # Safety
/// The `ops` must be runnable on this CPU; `g.groups == 1`, `g.in_c <= MAX_IN_C`, slices match.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn drive<V: Copy>(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    lo: f32,
    hi: f32,
    y: &mut [f32],
    ops: &Ops<V>,
) {
    let (cin, n) = (g.in_c, g.out_c);
    let taps = g.kernel_h * g.kernel_w * cin;
    let pixels = g.batch * g.out_h * g.out_w;
    let plane = g.in_h * g.in_w * cin;
    // The 8 channels' weights of one tap, transposed: row `ic` is written for every `ic < cin`
    // before it is read (not zeroed up front: fully-connected rows never use it).
    let mut wt_store = core::mem::MaybeUninit::<[[f32; 8]; MAX_IN_C]>::uninit();
    let wt = wt_store.as_mut_ptr().cast::<[f32; 8]>();
    let mut oc0 = 0;
    while oc0 < n {
        let cnt = 8.min(n - oc0);
        for p in 0..pixels {
            y[p * n + oc0..][..cnt].copy_from_slice(&bias[oc0..oc0 + cnt]);
        }
        for kh in 0..g.kernel_h {
            for kw in 0..g.kernel_w {
                let t0 = (kh * g.kernel_w + kw) * cin;
                if pixels < 8 {
                    // Too few pixels to pay for the transposed weights (a fully-connected layer
                    // on one row): the 8 channels' sums as 8 independent scalar chains over the
                    // weight rows in place, each in the scalar kernel's order.
                    for p in 0..pixels {
                        let (ow, oh, b) = (p % g.out_w, (p / g.out_w) % g.out_h, p / (g.out_w * g.out_h));
                        let (Some(ih), Some(iw)) = (g.in_row(oh, kh), g.in_col(ow, kw)) else { continue };
                        let xs = &x[b * plane + (ih * g.in_w + iw) * cin..][..cin];
                        let rows: [&[f32]; 8] =
                            core::array::from_fn(|j| &w[(oc0 + j.min(cnt - 1)) * taps + t0..][..cin]);
                        let mut part = [-0.0f32; 8];
                        for (ic, &xv) in xs.iter().enumerate() {
                            for (s, row) in part.iter_mut().zip(&rows) {
                                *s += xv * row[ic];
                            }
                        }
                        for (o, s) in y[p * n + oc0..][..cnt].iter_mut().zip(part) {
                            *o += s;
                        }
                    }
                    continue;
                }
                for ic in 0..cin {
                    let row: [f32; 8] =
                        core::array::from_fn(|j| if j < cnt { w[(oc0 + j) * taps + t0 + ic] } else { 0.0 });
                    // SAFETY: `ic < cin <= MAX_IN_C` rows.
                    unsafe { wt.add(ic).write(row) };
                }
                // Up to `PIXELS` pixels that read this tap at once: one sum chain each, so the
                // chains' latencies overlap (each output's own order is unchanged).
                let (mut p, mut ow, mut oh, mut b) = (0, 0, 0, 0);
                while p < pixels {
                    let (mut at, mut xo, mut m) = ([0usize; PIXELS], [0usize; PIXELS], 0);
                    while p < pixels && m < PIXELS {
                        if let (Some(ih), Some(iw)) = (g.in_row(oh, kh), g.in_col(ow, kw)) {
                            (at[m], xo[m]) = (p, b * plane + (ih * g.in_w + iw) * cin);
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
                    // SAFETY: the ops are runnable (the caller's contract); `wt` rows `..cin`
                    // were written above.
                    unsafe {
                        if m == PIXELS {
                            let xs: [&[f32]; PIXELS] = core::array::from_fn(|j| &x[xo[j]..][..cin]);
                            let mut part = [(ops.splat)(-0.0); PIXELS];
                            for ic in 0..cin {
                                let wv = (ops.load)(&*wt.add(ic));
                                for j in 0..PIXELS {
                                    // `xs[j]` holds `cin` values.
                                    let xv = *xs[j].get_unchecked(ic);
                                    part[j] = (ops.add)(part[j], (ops.mul)((ops.splat)(xv), wv));
                                }
                            }
                            for j in 0..PIXELS {
                                accumulate(&mut y[at[j] * n + oc0..][..cnt], part[j], ops);
                            }
                        } else {
                            for j in 0..m {
                                let mut part = (ops.splat)(-0.0);
                                for (ic, &xv) in x[xo[j]..][..cin].iter().enumerate() {
                                    part = (ops.add)(part, (ops.mul)((ops.splat)(xv), (ops.load)(&*wt.add(ic))));
                                }
                                accumulate(&mut y[at[j] * n + oc0..][..cnt], part, ops);
                            }
                        }
                    }
                }
            }
        }
        if lo != f32::NEG_INFINITY || hi != f32::INFINITY {
            // SAFETY: the ops are runnable (the caller's contract).
            let (vlo, vhi) = unsafe { ((ops.splat)(lo), (ops.splat)(hi)) };
            for p in 0..pixels {
                let out = &mut y[p * n + oc0..][..cnt];
                match <&mut [f32; 8]>::try_from(&mut *out) {
                    // SAFETY: as above.
                    Ok(full) => unsafe { (ops.store)((ops.clamp)((ops.load)(full), vlo, vhi), full) },
                    Err(_) => out.iter_mut().for_each(|v| *v = v.clamp(lo, hi)),
                }
            }
        }
        oc0 += 8;
    }
}

/// Pixels [`drive`] sums at once (independent chains: eight hide the add latency on both ISAs).
const PIXELS: usize = 8;

/// `out += part` for up to 8 outputs (`out.len()` lanes of `part`).
///
/// # Safety
/// The `ops` must be runnable on this CPU.
#[inline(always)]
unsafe fn accumulate<V: Copy>(out: &mut [f32], part: V, ops: &Ops<V>) {
    // SAFETY: the caller's contract.
    unsafe {
        if let Ok(full) = <&mut [f32; 8]>::try_from(&mut *out) {
            (ops.store)((ops.add)((ops.load)(full), part), full);
        } else {
            let mut acc = [0f32; 8];
            acc[..out.len()].copy_from_slice(out);
            let mut res = [0f32; 8];
            (ops.store)((ops.add)((ops.load)(&acc), part), &mut res);
            out.copy_from_slice(&res[..out.len()]);
        }
    }
}

/// The vector operations [`drive`] needs (inlined function pointers).
struct Ops<V> {
    splat: unsafe fn(f32) -> V,
    load: unsafe fn(&[f32; 8]) -> V,
    store: unsafe fn(V, &mut [f32; 8]),
    add: unsafe fn(V, V) -> V,
    mul: unsafe fn(V, V) -> V,
    /// `f32::clamp(x, lo, hi)` per lane, NaN kept: `clamp(x, lo, hi)`.
    clamp: unsafe fn(V, V, V) -> V,
}

#[cfg(target_arch = "x86_64")]
mod avx2_ops {
    use core::arch::x86_64::*;
    #[inline(always)]
    pub unsafe fn splat(v: f32) -> __m256 {
        // SAFETY: AVX is enabled in the caller.
        unsafe { _mm256_set1_ps(v) }
    }
    #[inline(always)]
    pub unsafe fn load(a: &[f32; 8]) -> __m256 {
        // SAFETY: 8 floats; AVX in the caller.
        unsafe { _mm256_loadu_ps(a.as_ptr()) }
    }
    #[inline(always)]
    pub unsafe fn store(v: __m256, a: &mut [f32; 8]) {
        // SAFETY: 8 floats; AVX in the caller.
        unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) }
    }
    #[inline(always)]
    pub unsafe fn add(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX in the caller.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    pub unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX in the caller.
        unsafe { _mm256_mul_ps(a, b) }
    }
    /// `max_ps(a, b)` is `a > b ? a : b` and `min_ps(a, b)` is `a < b ? a : b`, so with the
    /// bound first a NaN `x` falls through to `x` and `-0.0` stays as it came: `f32::clamp`.
    #[inline(always)]
    pub unsafe fn clamp(x: __m256, lo: __m256, hi: __m256) -> __m256 {
        // SAFETY: AVX in the caller.
        unsafe { _mm256_min_ps(hi, _mm256_max_ps(lo, x)) }
    }
}

/// # Safety
/// The CPU must support AVX2; `g.groups == 1`, `g.in_c <= MAX_IN_C`, and the slices match the
/// geometry (as validated at load).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn f32_conv2d_8c_avx2(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    lo: f32,
    hi: f32,
    y: &mut [f32],
) {
    use avx2_ops::*;
    let ops = Ops { splat, load, store, add, mul, clamp };
    // SAFETY: AVX2 is available (this function's contract).
    unsafe { drive(g, x, w, bias, lo, hi, y, &ops) }
}

#[cfg(target_arch = "aarch64")]
mod neon_ops {
    use core::arch::aarch64::*;
    pub type V = (float32x4_t, float32x4_t);
    #[inline(always)]
    pub unsafe fn splat(v: f32) -> V {
        // SAFETY: NEON is baseline on aarch64.
        unsafe { (vdupq_n_f32(v), vdupq_n_f32(v)) }
    }
    #[inline(always)]
    pub unsafe fn load(a: &[f32; 8]) -> V {
        // SAFETY: 8 floats.
        unsafe { (vld1q_f32(a.as_ptr()), vld1q_f32(a.as_ptr().add(4))) }
    }
    #[inline(always)]
    pub unsafe fn store(v: V, a: &mut [f32; 8]) {
        // SAFETY: 8 floats.
        unsafe {
            vst1q_f32(a.as_mut_ptr(), v.0);
            vst1q_f32(a.as_mut_ptr().add(4), v.1);
        }
    }
    #[inline(always)]
    pub unsafe fn add(a: V, b: V) -> V {
        // SAFETY: NEON is baseline.
        unsafe { (vaddq_f32(a.0, b.0), vaddq_f32(a.1, b.1)) }
    }
    #[inline(always)]
    pub unsafe fn mul(a: V, b: V) -> V {
        // SAFETY: NEON is baseline.
        unsafe { (vmulq_f32(a.0, b.0), vmulq_f32(a.1, b.1)) }
    }
    /// `x < lo ? lo : (x > hi ? hi : x)` by compare and select (NEON's min/max would turn a NaN
    /// into the default NaN): `f32::clamp`.
    #[inline(always)]
    pub unsafe fn clamp(x: V, lo: V, hi: V) -> V {
        // SAFETY: NEON is baseline.
        unsafe {
            let one = |x, lo, hi| vbslq_f32(vcltq_f32(x, lo), lo, vbslq_f32(vcgtq_f32(x, hi), hi, x));
            (one(x.0, lo.0, hi.0), one(x.1, lo.1, hi.1))
        }
    }
}

/// # Safety
/// `g.groups == 1`, `g.in_c <= MAX_IN_C`, and the slices match the geometry (as validated at
/// load).
#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "neon")]
pub unsafe fn f32_conv2d_8c_neon(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    lo: f32,
    hi: f32,
    y: &mut [f32],
) {
    use neon_ops::*;
    let ops = Ops { splat, load, store, add, mul, clamp };
    // SAFETY: NEON is baseline on aarch64.
    unsafe { drive(g, x, w, bias, lo, hi, y, &ops) }
}
