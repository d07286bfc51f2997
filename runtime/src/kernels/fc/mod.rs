//! Fully-connected family: `y[m][n] = x[m][:] . w[n][:] + bias[n]`, weights `[n][k]`.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
pub mod scalar;

/// The output stage of a fully-connected layer whose int32 accumulator leaves the int8 domain
/// (logits), so it is never rounded to 256 levels:
/// `y[c] = ((bias[c] + sum (x - input_zero_point) w) as f32 * scale[c]).clamp(lo, hi)`, with
/// `scale[c] = s_x * s_w[c]`.
#[derive(Clone, Copy, Debug)]
pub struct F32Out<'a> {
    pub bias: &'a [i32],
    pub scale: &'a [f32],
    pub input_zero_point: i32,
    pub lo: f32,
    pub hi: f32,
}

impl F32Out<'_> {
    /// The output of channel `c` for its accumulator (the bias already in it).
    #[inline(always)]
    pub fn apply(&self, c: usize, acc: i32) -> f32 {
        (acc as f32 * self.scale[c]).clamp(self.lo, self.hi)
    }
}
