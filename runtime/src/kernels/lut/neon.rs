//! aarch64 NEON lookup: 16 bytes per step with one `tbl` and three `tbx` over 64-byte quarters of
//! the table (`tbl` yields 0 and `tbx` keeps the destination for an index past 63, so each
//! quarter fills exactly the bytes whose index falls in it).

use core::arch::aarch64::*;

/// # Safety
/// aarch64 NEON (every aarch64 CPU).
#[target_feature(enable = "neon")]
pub unsafe fn qs8_lut_neon(table: &[i8; 256], x: &[i8], y: &mut [i8]) {
    let len = x.len().min(y.len());
    let vec = len / 16 * 16;
    // SAFETY: sixteen 16-byte loads inside the 256-byte table.
    let q = |k: usize| unsafe {
        let p = table.as_ptr().cast::<u8>().add(64 * k);
        uint8x16x4_t(vld1q_u8(p), vld1q_u8(p.add(16)), vld1q_u8(p.add(32)), vld1q_u8(p.add(48)))
    };
    let (q0, q1, q2, q3) = (q(0), q(1), q(2), q(3));
    let (flip, quarter) = (vdupq_n_u8(0x80), vdupq_n_u8(64));
    let mut i = 0;
    while i < vec {
        // SAFETY: `i + 16 <= len` for both slices.
        unsafe {
            let u = veorq_u8(vld1q_u8(x.as_ptr().add(i).cast()), flip);
            let mut r = vqtbl4q_u8(q0, u);
            let u1 = vsubq_u8(u, quarter);
            r = vqtbx4q_u8(r, q1, u1);
            let u2 = vsubq_u8(u1, quarter);
            r = vqtbx4q_u8(r, q2, u2);
            r = vqtbx4q_u8(r, q3, vsubq_u8(u2, quarter));
            vst1q_u8(y.as_mut_ptr().add(i).cast(), r);
        }
        i += 16;
    }
    super::qs8_lut_scalar(table, &x[vec..len], &mut y[vec..len]);
}
