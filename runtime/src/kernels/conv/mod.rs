//! Convolution family (NHWC activations). `scalar` is the specification every faster kernel is
//! tested against, bit for bit.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub mod f32simd;

/// Longest input-channel run of the f32 vector kernels (`f32simd`; their transposed weights live
/// on the stack).
pub const F32_SIMD_MAX_IN_C: usize = 2048;
pub mod scalar;

/// Geometry of a 2-d convolution or pooling window over NHWC tensors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
    pub groups: usize,
}

impl ConvGeometry {
    /// A fully-connected layer as a 1x1 convolution: `m` rows of `k` inputs to `n` outputs.
    pub fn rows(m: usize, k: usize, n: usize) -> ConvGeometry {
        ConvGeometry {
            batch: m,
            in_h: 1,
            in_w: 1,
            in_c: k,
            out_h: 1,
            out_w: 1,
            out_c: n,
            kernel_h: 1,
            kernel_w: 1,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            groups: 1,
            ..Default::default()
        }
    }

    /// Input row of kernel tap `kh` for output row `oh`, or `None` when it falls in the padding.
    #[inline(always)]
    pub fn in_row(&self, oh: usize, kh: usize) -> Option<usize> {
        (oh * self.stride_h + kh * self.dilation_h).checked_sub(self.pad_top).filter(|&r| r < self.in_h)
    }
    #[inline(always)]
    pub fn in_col(&self, ow: usize, kw: usize) -> Option<usize> {
        (ow * self.stride_w + kw * self.dilation_w).checked_sub(self.pad_left).filter(|&c| c < self.in_w)
    }
    pub fn macs(&self) -> u64 {
        (self.batch * self.out_h * self.out_w * self.out_c) as u64
            * (self.kernel_h * self.kernel_w * (self.in_c / self.groups.max(1))) as u64
    }
}

/// Per-output-channel int8 requantization of an int32 accumulator, with the input zero point and
/// the fused activation clamp.
#[derive(Clone, Copy, Debug)]
pub struct Requant<'a> {
    pub bias: &'a [i32],
    pub mult: &'a [i32],
    pub shift: &'a [i32],
    pub input_zero_point: i32,
    pub output_zero_point: i32,
    pub act_min: i32,
    pub act_max: i32,
}

impl Requant<'_> {
    #[inline(always)]
    pub fn apply(&self, channel: usize, acc: i32) -> i8 {
        crate::quant::requantize_to_i8(
            acc,
            self.mult[channel],
            self.shift[channel],
            self.output_zero_point,
            self.act_min,
            self.act_max,
        )
    }
}
