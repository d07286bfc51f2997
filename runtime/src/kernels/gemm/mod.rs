//! Int8 GEMM family: convolutions with one group, and fully-connected layers as 1x1 convolutions
//! over `batch` rows, on an `N x K` weight matrix stored row-major or in the panels the compiler
//! packs for the SIMD kernels (format layout `Packed`, see [`sparq_format::layout::Pack`]).
//!
//! The frame shared by the SIMD kernels lives here: the implicit im2col of a block of output
//! pixels into a small stack buffer, and the tiling over pixels and channel panels.

#[cfg(sparq_arm_neon)]
pub mod armv7;
#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512vnni;
#[cfg(target_arch = "x86_64")]
pub mod avxvnni;
#[cfg(target_arch = "aarch64")]
pub mod dotprod;
#[cfg(target_arch = "aarch64")]
pub mod i8mm;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;

use crate::kernels::conv::ConvGeometry;
pub use sparq_format::layout::Pack;

/// Panels every SIMD GEMM kernel reads: 8 output channels by 4 reduction steps (one
/// `vpdpbusd` / `sdot` lane group, two `vpmaddwd` pairs).
pub const SIMD_PACK: Pack = Pack { nr: 8, kr: 4 };

/// Longest reduction the SIMD kernels take in one pass (their im2col rows live on the stack);
/// longer ones run the scalar kernel.
pub const MAX_SIMD_K: usize = 4096;

/// An `N x K` int8 weight matrix as stored in the file.
#[derive(Clone, Copy, Debug)]
pub struct WeightMatrix<'a> {
    pub data: &'a [i8],
    /// Rows: output channels.
    pub n: usize,
    /// Columns: the reduction, `kernel_h * kernel_w * in_c` in that order.
    pub k: usize,
    /// `None`: row-major `[n][k]`.
    pub pack: Option<Pack>,
}

impl<'a> WeightMatrix<'a> {
    #[inline(always)]
    pub fn get(&self, row: usize, col: usize) -> i8 {
        match self.pack {
            Some(p) => self.data[p.index(self.k, row, col)],
            None => self.data[row * self.k + col],
        }
    }

    /// The weights `w[row][col..]` in order, without per-element index arithmetic.
    #[inline(always)]
    pub fn row_from(&self, row: usize, col: usize) -> RowIter<'a> {
        match self.pack {
            Some(p) => RowIter {
                data: self.data,
                idx: p.index(self.k, row, col),
                inner: col % p.kr,
                kr: p.kr,
                jump: p.nr * p.kr - p.kr + 1,
            },
            None => RowIter { data: self.data, idx: row * self.k + col, inner: 0, kr: usize::MAX, jump: 1 },
        }
    }
}

/// Walks one row of a [`WeightMatrix`]: within a panel block the row's `kr` values are
/// contiguous, then it jumps to the same row of the next block.
pub struct RowIter<'a> {
    data: &'a [i8],
    idx: usize,
    inner: usize,
    kr: usize,
    jump: usize,
}

impl Iterator for RowIter<'_> {
    type Item = i8;
    #[inline(always)]
    fn next(&mut self) -> Option<i8> {
        let v = *self.data.get(self.idx)?;
        self.inner += 1;
        if self.inner == self.kr {
            self.inner = 0;
            self.idx += self.jump;
        } else {
            self.idx += 1;
        }
        Some(v)
    }
}

/// Fill `row[..k]` with the im2col row of output pixel `pixel` (`n, oh, ow` flattened), mapping
/// each input value through `f` and padding taps to `pad`; `row[k..]` is left as is.
#[inline(always)]
pub fn im2col_row<S: Copy, T: Copy>(
    g: &ConvGeometry,
    x: &[S],
    pixel: usize,
    row: &mut [T],
    pad: T,
    f: impl Fn(S) -> T,
) {
    let ow = pixel % g.out_w;
    let oh = (pixel / g.out_w) % g.out_h;
    let n = pixel / (g.out_w * g.out_h);
    let xn = &x[n * g.in_h * g.in_w * g.in_c..][..g.in_h * g.in_w * g.in_c];
    let c = g.in_c;
    let mut j = 0;
    let span = g.kernel_w * c;
    // The window's columns, when all of them are inside the input and adjacent (dilation 1):
    // then each kernel row is one contiguous run of `kernel_w * c` input values.
    let first_col = (ow * g.stride_w).checked_sub(g.pad_left).filter(|&iw| iw + g.kernel_w <= g.in_w);
    for kh in 0..g.kernel_h {
        let ih = g.in_row(oh, kh);
        if let (Some(ih), Some(iw), 1) = (ih, first_col, g.dilation_w) {
            for (d, &s) in row[j..j + span].iter_mut().zip(&xn[(ih * g.in_w + iw) * c..][..span]) {
                *d = f(s);
            }
            j += span;
            continue;
        }
        for kw in 0..g.kernel_w {
            let dst = &mut row[j..j + c];
            match (ih, g.in_col(ow, kw)) {
                (Some(ih), Some(iw)) => {
                    for (d, &s) in dst.iter_mut().zip(&xn[(ih * g.in_w + iw) * c..][..c]) {
                        *d = f(s);
                    }
                }
                _ => dst.fill(pad),
            }
            j += c;
        }
    }
}

/// Whether a convolution is a plain matrix product over NHWC rows (1x1, stride 1, no padding):
/// then the im2col row of a pixel is its input row.
pub fn is_pointwise(g: &ConvGeometry) -> bool {
    g.kernel_h == 1
        && g.kernel_w == 1
        && g.stride_h == 1
        && g.stride_w == 1
        && g.pad_top == 0
        && g.pad_left == 0
        && g.in_h == g.out_h
        && g.in_w == g.out_w
}

/// Row pointers of the `MR` output pixels from `p0` (`rows` of them real: a tail block repeats
/// its last pixel, whose extra results are not stored), each byte xor-ed with `flip` (0, or
/// `i8::MIN` for kernels that multiply unsigned activations `x + 128`). Pointwise layers
/// (`direct`) point into the input rows in place when `flip` is 0, or copy them into `a`
/// flipped; the others gather im2col rows into `a`, padding with the zero point. Each pointer
/// addresses at least `k` rounded up to 4 bytes (`a` rows hold `MAX_SIMD_K`, and `direct`
/// requires `k % 4 == 0`); bytes of an `a` row past `k` are left as they are (the packed
/// weights there are zero).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn block_rows<const MR: usize>(
    g: &ConvGeometry,
    x: &[i8],
    k: usize,
    direct: bool,
    p0: usize,
    rows: usize,
    a: &mut [[i8; MAX_SIMD_K]; MR],
    zero_point: i8,
    flip: i8,
) -> [*const i8; MR] {
    if direct && flip == 0 {
        return core::array::from_fn(|r| x[(p0 + r.min(rows - 1)) * k..][..k].as_ptr());
    }
    if direct {
        for (r, row) in a.iter_mut().enumerate() {
            let src = &x[(p0 + r.min(rows - 1)) * k..][..k];
            for (d, &s) in row[..k].iter_mut().zip(src) {
                *d = s ^ flip;
            }
        }
    } else {
        im2col_block(g, x, p0, rows, a, zero_point, flip);
    }
    core::array::from_fn(|r| a[r].as_ptr())
}

/// The im2col rows of the `MR` pixels from `p0` (the tail repeating the last real one), each
/// byte xor-ed with `flip` (0, or `i8::MIN` for unsigned kernels).
#[inline(always)]
fn im2col_block<const MR: usize>(
    g: &ConvGeometry,
    x: &[i8],
    p0: usize,
    rows: usize,
    a: &mut [[i8; MAX_SIMD_K]; MR],
    zero_point: i8,
    flip: i8,
) {
    // The first pixel's coordinates by division, the others by stepping (a division per row
    // would cost more than a small layer's whole im2col row).
    let (mut ow, mut oh, mut n) = (p0 % g.out_w, (p0 / g.out_w) % g.out_h, p0 / (g.out_w * g.out_h));
    // All `MR` pixels in one output row with their windows inside the input, and kernel rows
    // of at most 16 bytes (the first convolution of an image model): straight 16-byte moves,
    // the source advancing by `stride_w * c` per pixel, checked once for the whole block.
    let c = g.in_c;
    let span = g.kernel_w * c;
    if rows == MR && ow + MR <= g.out_w && g.dilation_w == 1 && span <= 16 && g.kernel_h * span + 16 <= MAX_SIMD_K {
        if let (Some(ih0), Some(iw0)) =
            ((oh * g.stride_h).checked_sub(g.pad_top), (ow * g.stride_w).checked_sub(g.pad_left))
        {
            let plane = g.in_h * g.in_w * c;
            let xn = &x[n * plane..][..plane];
            let row_step = g.dilation_h * g.in_w * c;
            let pix_step = g.stride_w * c;
            let base = (ih0 * g.in_w + iw0) * c;
            let last_col = iw0 + (MR - 1) * g.stride_w + g.kernel_w;
            let end = base + (MR - 1) * pix_step + (g.kernel_h - 1) * row_step + 16;
            if ih0 + (g.kernel_h - 1) * g.dilation_h < g.in_h && last_col <= g.in_w && end <= xn.len() {
                let flip16 = [flip; 16];
                for (r, row) in a.iter_mut().enumerate() {
                    for kh in 0..g.kernel_h {
                        let src = base + r * pix_step + kh * row_step;
                        // SAFETY: `src + 16 <= end <= xn.len()` (checked above for the largest
                        // `r` and `kh`), and `kh * span + 16 <= MAX_SIMD_K`.
                        unsafe {
                            let v = xn.as_ptr().add(src).cast::<[i8; 16]>().read_unaligned();
                            let mut o = [0i8; 16];
                            for i in 0..16 {
                                o[i] = v[i] ^ flip16[i];
                            }
                            row.as_mut_ptr().add(kh * span).cast::<[i8; 16]>().write_unaligned(o);
                        }
                    }
                }
                return;
            }
        }
    }
    for (r, row) in a.iter_mut().enumerate() {
        im2col_row_i8(g, x, (n, oh, ow), row, zero_point, flip);
        if r + 1 < rows {
            ow += 1;
            if ow == g.out_w {
                ow = 0;
                oh += 1;
                if oh == g.out_h {
                    oh = 0;
                    n += 1;
                }
            }
        }
    }
}

/// `row[j..j + len] = xn[src..src + len] ^ flip`, with one 16-byte move for runs of up to 16
/// bytes when both sides have room.
#[inline(always)]
fn copy_run(row: &mut [i8; MAX_SIMD_K], j: usize, xn: &[i8], src: usize, len: usize, flip: i8) {
    if len <= 16 && j + 16 <= MAX_SIMD_K && src + 16 <= xn.len() {
        let chunk: [i8; 16] = xn[src..src + 16].try_into().unwrap();
        row[j..j + 16].copy_from_slice(&chunk.map(|b| b ^ flip));
    } else {
        for (d, &s) in row[j..j + len].iter_mut().zip(&xn[src..src + len]) {
            *d = s ^ flip;
        }
    }
}

/// [`im2col_row`] for raw int8 rows of `MAX_SIMD_K` bytes at pixel `(n, oh, ow)`. Runs of up to
/// 16 bytes are moved with one 16-byte copy when both sides have room (the bytes written past
/// the run are overwritten by the next run or lie past `k`).
#[inline(always)]
fn im2col_row_i8(
    g: &ConvGeometry,
    x: &[i8],
    (n, oh, ow): (usize, usize, usize),
    row: &mut [i8; MAX_SIMD_K],
    pad: i8,
    flip: i8,
) {
    let plane = g.in_h * g.in_w * g.in_c;
    let xn = &x[n * plane..][..plane];
    let c = g.in_c;
    let span = g.kernel_w * c;
    let first_col = (ow * g.stride_w).checked_sub(g.pad_left).filter(|&iw| iw + g.kernel_w <= g.in_w);
    // The usual case of a small layer (the first convolution: 3 channels, 3x3): the whole
    // window inside the input and each kernel row at most 16 bytes, so one 16-byte move each.
    let first_row = (oh * g.stride_h).checked_sub(g.pad_top);
    if let (Some(ih0), Some(iw0), 1) = (first_row, first_col, g.dilation_w) {
        let last = ih0 + (g.kernel_h - 1) * g.dilation_h;
        let row_step = g.dilation_h * g.in_w * c;
        let base = (ih0 * g.in_w + iw0) * c;
        if span <= 16
            && last < g.in_h
            && base + (g.kernel_h - 1) * row_step + 16 <= xn.len()
            && g.kernel_h * span + 16 <= MAX_SIMD_K
        {
            for kh in 0..g.kernel_h {
                let src = base + kh * row_step;
                let chunk: [i8; 16] = xn[src..src + 16].try_into().unwrap();
                row[kh * span..kh * span + 16].copy_from_slice(&chunk.map(|b| b ^ flip));
            }
            return;
        }
    }
    let mut j = 0;
    for kh in 0..g.kernel_h {
        let ih = g.in_row(oh, kh);
        if let (Some(ih), Some(iw), 1) = (ih, first_col, g.dilation_w) {
            copy_run(row, j, xn, (ih * g.in_w + iw) * c, span, flip);
            j += span;
            continue;
        }
        for kw in 0..g.kernel_w {
            match (ih, g.in_col(ow, kw)) {
                (Some(ih), Some(iw)) => copy_run(row, j, xn, (ih * g.in_w + iw) * c, c, flip),
                _ => row[j..j + c].fill(pad ^ flip),
            }
            j += c;
        }
    }
}

/// `corrected[c - c0] = bias[c] - offset * sums[lane]` for the channels `c = 8 j + lane` of panel
/// `j` that lie in the chunk `[c0, c0 + chunk)`: the zero-point correction of the SIMD kernels
/// that multiply raw (or sign-flipped) activations, `sum (x - zp) w = sum x' w - offset sum w`.
#[inline(always)]
pub fn correct_bias(
    sums: &[i32; 8],
    j: usize,
    c0: usize,
    chunk: usize,
    bias: &[i32],
    offset: i32,
    corrected: &mut [i32],
) {
    for (lane, &sum) in sums.iter().enumerate().take(c0 + chunk - j * 8) {
        let c = j * 8 + lane;
        corrected[c - c0] = bias[c].wrapping_sub(offset.wrapping_mul(sum));
    }
}
