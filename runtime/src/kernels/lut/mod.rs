//! Int8 lookup tables: `y = table[x + 128]` over contiguous int8 operands. A 256-entry table
//! computed by the compiler (the activation with the input's dequantization and the output's
//! quantization folded in) stands for any unary activation in int8: sigmoid, tanh, hard-swish,
//! GELU, ... The SIMD kernels are bit-exact by construction (a lookup has one answer); what they
//! change is how many bytes one instruction sequence looks up.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512vbmi;
#[cfg(target_arch = "aarch64")]
pub mod neon;

/// The table entry of one int8 value: index `x + 128`.
#[inline(always)]
pub fn lookup(table: &[i8; 256], x: i8) -> i8 {
    table[(x as u8 ^ 0x80) as usize]
}

/// The specification: one lookup per element.
pub fn qs8_lut_scalar(table: &[i8; 256], x: &[i8], y: &mut [i8]) {
    for (d, &v) in y.iter_mut().zip(x) {
        *d = lookup(table, v);
    }
}
