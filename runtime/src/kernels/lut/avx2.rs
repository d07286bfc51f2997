//! x86-64 AVX2 lookup: 32 bytes per step with 16 `vpshufb` lookups of 16-entry slices.
//!
//! `vpshufb` returns `slice[i & 15]` when byte `i` has bit 7 clear and 0 otherwise. Walking the
//! index `u = x + 128` down by 16 per slice (wrapping for the first 8 steps, then saturating
//! signed), the slices whose step leaves bit 7 clear for a given `u` are `k = 0..=j` when
//! `j = u / 16 < 8` and `k = j-7..=j` otherwise. XOR-ing their lookups telescopes when slice `k`
//! holds `P_k ^ P_{k-1}` with prefixes `P_j = C_j` for `j < 8` and `P_j = C_j ^ C_{j-8}` above
//! (`C_j` the table's entries `16j..16j+16`): the sum is exactly `C_j[u & 15]`. (The same
//! telescoping idea as XNNPACK's x8-lut kernels; derived and written here.)

use core::arch::x86_64::*;

/// The 16 XOR-telescoped slices of `table`, each broadcast to both 128-bit lanes.
#[target_feature(enable = "avx2")]
fn slices(table: &[i8; 256]) -> [__m256i; 16] {
    let mut prefix = [[0i8; 16]; 16];
    for j in 0..16 {
        for i in 0..16 {
            let c = table[16 * j + i];
            prefix[j][i] = if j < 8 { c } else { c ^ table[16 * (j - 8) + i] };
        }
    }
    core::array::from_fn(|k| {
        let d: [i8; 16] = core::array::from_fn(|i| if k == 0 { prefix[0][i] } else { prefix[k][i] ^ prefix[k - 1][i] });
        // SAFETY: `d` is 16 readable bytes.
        unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(d.as_ptr().cast())) }
    })
}

/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn qs8_lut_avx2(table: &[i8; 256], x: &[i8], y: &mut [i8]) {
    let len = x.len().min(y.len());
    let vec = len / 32 * 32;
    let t = slices(table);
    let (flip, step) = (_mm256_set1_epi8(-128), _mm256_set1_epi8(16));
    let mut i = 0;
    while i < vec {
        // SAFETY: `i + 32 <= len` for both slices.
        unsafe {
            let mut u = _mm256_xor_si256(_mm256_loadu_si256(x.as_ptr().add(i).cast()), flip);
            let mut acc = _mm256_shuffle_epi8(t[0], u);
            for (k, tk) in t.iter().enumerate().skip(1) {
                u = if k <= 8 { _mm256_sub_epi8(u, step) } else { _mm256_subs_epi8(u, step) };
                acc = _mm256_xor_si256(acc, _mm256_shuffle_epi8(*tk, u));
            }
            _mm256_storeu_si256(y.as_mut_ptr().add(i).cast(), acc);
        }
        i += 32;
    }
    super::qs8_lut_scalar(table, &x[vec..len], &mut y[vec..len]);
}
