//! Layout-agnostic iteration. A tensor's logical axes (ONNX order) map to physical strides that
//! depend on its layout; elementwise, reshape, concat and softmax walk logical indices and read or
//! write through these strides, so they work on any mix of row-major and NHWC tensors.

use sparq_format::{Layout, TensorInfo};

pub const R: usize = 6;

/// Physical stride of each logical axis, for a tensor of the given layout.
pub fn logical_strides(t: &TensorInfo<'_>) -> [usize; R] {
    let mut s = [0usize; R];
    let d = t.shape();
    match t.layout {
        // Packed and block-sparse tensors are only ever conv/fully-connected weights (checked at
        // load), never walked.
        Layout::RowMajor | Layout::Packed | Layout::BlockSparse => {
            let mut acc = 1;
            for a in (0..d.len()).rev() {
                s[a] = acc;
                acc *= d[a];
            }
        }
        Layout::Nhwc => {
            // dims N, C, H, W stored as N, H, W, C
            let (c, h, w) = (d[1], d[2], d[3]);
            s[0] = h * w * c;
            s[1] = 1;
            s[2] = w * c;
            s[3] = c;
        }
    }
    s
}

/// Dims of `out` and strides of `t` aligned to them as a 6-d walk: leading axes are padded with
/// size 1, and axes along which `t` is broadcast (size 1, or absent) get stride 0.
pub fn aligned(t: &TensorInfo<'_>, out_dims: &[usize]) -> [usize; R] {
    let s = logical_strides(t);
    let mut out = [0usize; R];
    let lead = R - out_dims.len();
    let off = out_dims.len() - t.rank;
    for a in 0..t.rank {
        if t.dims[a] != 1 {
            out[lead + off + a] = s[a];
        }
    }
    out
}

pub fn padded_dims(dims: &[usize]) -> [usize; R] {
    let mut d = [1usize; R];
    d[R - dims.len()..].copy_from_slice(dims);
    d
}

/// True when a tensor is laid out in memory exactly in logical row-major order.
pub fn is_dense_row_major(t: &TensorInfo<'_>) -> bool {
    t.layout == Layout::RowMajor || (t.dims[2] == 1 && t.dims[3] == 1) || t.dims[1] == 1
}

/// Calls `f(base, len, step)` for every run of the innermost axis of `dims`, in row-major
/// logical order: `base` holds the physical offsets of the run's first element in each of the
/// `K` tensors, `step` their strides along it, `len` its length.
#[inline]
pub fn walk_rows<const K: usize>(
    dims: &[usize; R],
    strides: &[[usize; R]; K],
    mut f: impl FnMut(&[usize; K], usize, &[usize; K]),
) {
    let total: usize = dims.iter().product();
    if total == 0 {
        return;
    }
    let inner = dims[R - 1];
    let step: [usize; K] = core::array::from_fn(|k| strides[k][R - 1]);
    let mut idx = [0usize; R];
    let mut off = [0usize; K];
    for _ in 0..total / inner {
        f(&off, inner, &step);
        // Advance the outer axes (R - 2 down to 0).
        let mut d = R - 1;
        while d > 0 {
            d -= 1;
            idx[d] += 1;
            for k in 0..K {
                off[k] += strides[k][d];
            }
            if idx[d] < dims[d] {
                break;
            }
            for k in 0..K {
                off[k] -= strides[k][d] * dims[d];
            }
            idx[d] = 0;
        }
    }
}

/// Calls `f` with the physical offsets of `K` tensors for every logical index of `dims`, in
/// row-major logical order.
#[inline]
pub fn walk<const K: usize>(dims: &[usize; R], strides: &[[usize; R]; K], mut f: impl FnMut(&[usize; K])) {
    walk_rows(dims, strides, |base, len, step| {
        let mut o = *base;
        for _ in 0..len {
            f(&o);
            for k in 0..K {
                o[k] += step[k];
            }
        }
    });
}
