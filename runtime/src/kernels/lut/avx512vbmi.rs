//! x86-64 AVX-512 VBMI lookup: 64 bytes per step. `vpermi2b` looks up 64 bytes in a 128-entry
//! table (two registers) by the low 7 bits of each index; two of them cover the 256 entries and
//! a blend on bit 7 picks between them. The table is stored rotated by 128 so the raw int8 code
//! is the index (entry `x + 128` of the table sits at byte `x as u8`).

use core::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX-512 F/BW and VBMI.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vbmi")]
pub unsafe fn qs8_lut_avx512vbmi(table: &[i8; 256], x: &[i8], y: &mut [i8]) {
    let len = x.len().min(y.len());
    // SAFETY: 64-byte loads inside the 256-byte table. Rotated by 128: `rot[b] = table[b ^ 128]`.
    let (t0, t1, t2, t3) = unsafe {
        let p = table.as_ptr();
        (
            _mm512_loadu_si512(p.add(128).cast()),
            _mm512_loadu_si512(p.add(192).cast()),
            _mm512_loadu_si512(p.cast()),
            _mm512_loadu_si512(p.add(64).cast()),
        )
    };
    let look = |v: __m512i| {
        let low = _mm512_permutex2var_epi8(t0, v, t1);
        let high = _mm512_permutex2var_epi8(t2, v, t3);
        _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), low, high)
    };
    let mut i = 0;
    while i + 64 <= len {
        // SAFETY: `i + 64 <= len` for both slices.
        unsafe {
            let v = _mm512_loadu_si512(x.as_ptr().add(i).cast());
            _mm512_storeu_si512(y.as_mut_ptr().add(i).cast(), look(v));
        }
        i += 64;
    }
    if i < len {
        // The tail under a mask: masked-off bytes are neither read nor written.
        let m: __mmask64 = (1u64 << (len - i)) - 1;
        // SAFETY: the mask limits the access to the `len - i` remaining bytes.
        unsafe {
            let v = _mm512_maskz_loadu_epi8(m, x.as_ptr().add(i));
            _mm512_mask_storeu_epi8(y.as_mut_ptr().add(i), m, look(v));
        }
    }
}
