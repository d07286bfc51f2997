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

/// Per-channel tables (format 1.7): element `i` of `x` is in channel `(i / inner) % channels`
/// and looks up `tables[channel * 256 + x + 128]` (NHWC: `inner` 1; row-major NCHW: `H * W`).
/// How a model taking uint8 camera frames normalizes them in int8: the frame's bytes, as the
/// codes `u - 128`, map per channel to the normalized input's codes, exactly as the float path
/// would quantize them. Scalar on every path: one gather per byte is as fast as the loop that
/// feeds it for the few channels of an image.
pub fn qs8_lut_per_channel_scalar(tables: &[i8], channels: usize, inner: usize, x: &[i8], y: &mut [i8]) {
    per_channel(tables, channels, inner, x, y)
}

/// `qs8_lut_per_channel_scalar` into int16 codes (int16 tables, format 1.7): a frame normalized
/// for an int16 first layer.
pub fn qs16_lut_per_channel_scalar(tables: &[i16], channels: usize, inner: usize, x: &[i8], y: &mut [i16]) {
    per_channel(tables, channels, inner, x, y)
}

fn per_channel<T: Copy>(tables: &[T], channels: usize, inner: usize, x: &[i8], y: &mut [T]) {
    if channels == 0 || inner == 0 {
        return;
    }
    if inner == 1 {
        // Interleaved channels (NHWC): pixel by pixel, the image channel counts unrolled.
        match channels {
            1 => return per_pixel::<T, 1>(tables, x, y),
            3 => return per_pixel::<T, 3>(tables, x, y),
            4 => return per_pixel::<T, 4>(tables, x, y),
            _ => {}
        }
    }
    let block = channels * inner;
    for (xb, yb) in x.chunks(block).zip(y.chunks_mut(block)) {
        for (c, (xc, yc)) in xb.chunks(inner).zip(yb.chunks_mut(inner)).enumerate() {
            let t: &[T; 256] = tables[c * 256..(c + 1) * 256].try_into().expect("256 entries per channel");
            for (d, &v) in yc.iter_mut().zip(xc) {
                *d = t[(v as u8 ^ 0x80) as usize];
            }
        }
    }
}

/// `qs8_lut_per_channel_scalar` for `C` interleaved channels.
fn per_pixel<T: Copy, const C: usize>(tables: &[T], x: &[i8], y: &mut [T]) {
    let t: [&[T; 256]; C] =
        core::array::from_fn(|c| tables[c * 256..(c + 1) * 256].try_into().expect("256 entries per channel"));
    for (xp, yp) in x.chunks_exact(C).zip(y.chunks_exact_mut(C)) {
        for c in 0..C {
            yp[c] = t[c][(xp[c] as u8 ^ 0x80) as usize];
        }
    }
}

/// The specification: one lookup per element.
pub fn qs8_lut_scalar(table: &[i8; 256], x: &[i8], y: &mut [i8]) {
    for (d, &v) in y.iter_mut().zip(x) {
        *d = lookup(table, v);
    }
}
