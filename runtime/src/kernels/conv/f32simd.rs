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
//! of one kernel tap are transposed into a stack buffer once per tap and reused for every pixel.

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
                for p in 0..pixels {
                    let (ow, oh, b) = (p % g.out_w, (p / g.out_w) % g.out_h, p / (g.out_w * g.out_h));
                    let (Some(ih), Some(iw)) = (g.in_row(oh, kh), g.in_col(ow, kw)) else { continue };
                    let xs = &x[b * plane + (ih * g.in_w + iw) * cin..][..cin];
                    // SAFETY: the ops are runnable (the caller's contract); `wt` rows `..cin`
                    // were written above.
                    unsafe {
                        let mut part = (ops.splat)(-0.0);
                        for (ic, &xv) in xs.iter().enumerate() {
                            part = (ops.add)(part, (ops.mul)((ops.splat)(xv), (ops.load)(&*wt.add(ic))));
                        }
                        let out = &mut y[p * n + oc0..][..cnt];
                        let mut acc = [0f32; 8];
                        acc[..cnt].copy_from_slice(out);
                        let mut res = [0f32; 8];
                        (ops.store)((ops.add)((ops.load)(&acc), part), &mut res);
                        out.copy_from_slice(&res[..cnt]);
                    }
                }
            }
        }
        for p in 0..pixels {
            for v in &mut y[p * n + oc0..][..cnt] {
                *v = v.clamp(lo, hi);
            }
        }
        oc0 += 8;
    }
}

/// The vector operations [`drive`] needs (inlined function pointers).
struct Ops<V> {
    splat: unsafe fn(f32) -> V,
    load: unsafe fn(&[f32; 8]) -> V,
    store: unsafe fn(V, &mut [f32; 8]),
    add: unsafe fn(V, V) -> V,
    mul: unsafe fn(V, V) -> V,
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
    let ops = Ops { splat, load, store, add, mul };
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
    let ops = Ops { splat, load, store, add, mul };
    // SAFETY: NEON is baseline on aarch64.
    unsafe { drive(g, x, w, bias, lo, hi, y, &ops) }
}
