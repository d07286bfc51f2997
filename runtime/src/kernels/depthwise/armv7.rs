//! 32-bit ARM NEON int8 depthwise convolution, 8 channels per step (`qs8_dwconv_c8_armv7`), for
//! the `thumbv7neon` target. The valid taps of each output pixel are listed once (input and
//! weight offsets); an `asm!` loop runs over them per block of 8 channels: `x - zp` in i16
//! (`vsubl.s8`), weights widened (`vmovl.s8`), exact products accumulated in i32
//! (`vmlal.s16`). Requantization is the scalar one; channels past the last multiple of 8 run
//! the scalar loop.

use super::tap_range;
use crate::kernels::conv::{ConvGeometry, Requant};

/// Most taps a window may have on this path (larger windows run the scalar kernel).
pub const MAX_TAPS: usize = 64;

/// # Safety
/// NEON must be available (`thumbv7neon` baseline); the slices must match the geometry (asserted).
pub unsafe fn qs8_dwconv_c8_armv7(g: &ConvGeometry, x: &[i8], w: &[i8], rq: &Requant<'_>, y: &mut [i8]) {
    if g.kernel_h * g.kernel_w > MAX_TAPS {
        return super::scalar::qs8_dwconv_scalar(g, x, w, rq, y);
    }
    let c_all = g.in_c;
    let plane = g.in_h * g.in_w * c_all;
    super::assert_lengths(g, x, w, rq, y);
    let vec_c = c_all / 8 * 8;
    let zp = rq.input_zero_point as i8 as u32;
    let mut xo = [0usize; MAX_TAPS];
    let mut wo = [0usize; MAX_TAPS];
    for n in 0..g.batch {
        let xn = &x[n * plane..][..plane];
        for oh in 0..g.out_h {
            let (kh0, kh1) = tap_range(oh, g.stride_h, g.dilation_h, g.pad_top, g.in_h, g.kernel_h);
            let yrow = ((n * g.out_h + oh) * g.out_w) * c_all;
            for ow in 0..g.out_w {
                let (kw0, kw1) = tap_range(ow, g.stride_w, g.dilation_w, g.pad_left, g.in_w, g.kernel_w);
                let mut taps = 0;
                for kh in kh0..kh1 {
                    let ih = oh * g.stride_h + kh * g.dilation_h - g.pad_top;
                    for kw in kw0..kw1 {
                        let iw = ow * g.stride_w + kw * g.dilation_w - g.pad_left;
                        xo[taps] = (ih * g.in_w + iw) * c_all;
                        wo[taps] = (kh * g.kernel_w + kw) * c_all;
                        taps += 1;
                    }
                }
                let mut c0 = 0;
                while c0 < vec_c {
                    let mut acc = [0i32; 8];
                    if taps > 0 {
                        // SAFETY: every listed offset plus `c0 + 8 <= c_all` stays inside the
                        // input plane / weights (tap ranges, asserted lengths); `acc` is 32 bytes.
                        unsafe {
                            core::arch::asm!(
                                "vdup.8 d30, {zp}",
                                "vmov.i32 q8, #0",
                                "vmov.i32 q9, #0",
                                "2:",
                                "ldr {t}, [{xo}], #4",
                                "ldr {u}, [{wo}], #4",
                                "add {t}, {t}, {xb}",
                                "add {u}, {u}, {wb}",
                                "vld1.8 {{d0}}, [{t}]",
                                "vld1.8 {{d1}}, [{u}]",
                                "vsubl.s8 q1, d0, d30",
                                "vmovl.s8 q2, d1",
                                "vmlal.s16 q8, d2, d4",
                                "vmlal.s16 q9, d3, d5",
                                "subs {n}, {n}, #1",
                                "bne 2b",
                                "vst1.32 {{d16-d19}}, [{out}]",
                                zp = in(reg) zp,
                                xo = inout(reg) xo.as_ptr() => _,
                                wo = inout(reg) wo.as_ptr() => _,
                                xb = in(reg) xn.as_ptr().add(c0),
                                wb = in(reg) w.as_ptr().add(c0),
                                n = inout(reg) taps => _,
                                out = in(reg) acc.as_mut_ptr(),
                                t = out(reg) _,
                                u = out(reg) _,
                                out("q0") _, out("q1") _, out("q2") _, out("q8") _, out("q9") _, out("d30") _,
                                options(nostack)
                            );
                        }
                    }
                    for (i, &a) in acc.iter().enumerate() {
                        let c = c0 + i;
                        y[yrow + ow * c_all + c] = rq.apply(c, rq.bias[c].wrapping_add(a));
                    }
                    c0 += 8;
                }
            }
            if vec_c < c_all {
                super::scalar::dw_channels(g, xn, w, rq, y, n, oh, vec_c..c_all);
            }
        }
    }
}
