//! Matrix product of two activations (`MatMul` of attention, `Gemm` with a computed operand), f32:
//! `y[.., i, j] = sum_k a[.., i, k] b[.., k, j]` with k ascending, batch axes broadcast as numpy's
//! `matmul`. The operands may have any layout (they are addressed through logical strides); the
//! output is row-major.

use super::{expect_inputs, invalid, Decoder, Exec, MAX_REDUCTION};
use crate::error::RuntimeError;
use crate::kernels::strided::{logical_strides, R};
use sparq_format::{DType, Layout, OpInfo, TensorInfo};

/// Batch axes: at most `R - 2`.
const B: usize = R - 2;

#[derive(Clone, Copy)]
pub struct MatMul<'a> {
    pub a: TensorInfo<'a>,
    pub b: TensorInfo<'a>,
    pub y: TensorInfo<'a>,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Output batch dims (leading axes padded with 1) and each operand's batch strides (0 where
    /// it broadcasts).
    pub batch: [usize; B],
    pub a_batch: [usize; B],
    pub b_batch: [usize; B],
    /// Strides of a along M and K, of b along K and N.
    pub a_mk: [usize; 2],
    pub b_kn: [usize; 2],
}

/// Batch strides of `t` (rank >= 2) aligned to `batch_rank` output batch axes.
fn batch_strides(t: &TensorInfo<'_>, batch_rank: usize) -> [usize; B] {
    let s = logical_strides(t);
    let mut out = [0usize; B];
    let tb = t.rank - 2;
    for a in 0..tb {
        if t.dims[a] != 1 {
            out[B - batch_rank + (batch_rank - tb) + a] = s[a];
        }
    }
    out
}

impl<'a> MatMul<'a> {
    pub(crate) fn decode(d: &Decoder<'_, 'a>, o: &OpInfo<'a>) -> Result<Self, RuntimeError> {
        let bad = |reason| invalid(o, reason);
        expect_inputs(o, 2)?;
        let (a, b, y) = (d.input(o, 0), d.input(o, 1), d.view.tensor(o.output(0)));
        if a.dtype != DType::F32 || b.dtype != DType::F32 || y.dtype != DType::F32 {
            return Err(bad("operands must be f32"));
        }
        if y.layout != Layout::RowMajor {
            return Err(bad("output must be row-major"));
        }
        if a.rank < 2 || b.rank < 2 || y.rank != a.rank.max(b.rank) {
            return Err(bad("operands need rank >= 2 and the output the larger rank"));
        }
        let t = o.params[sparq_format::layout::op::MATMUL_TRANSPOSE];
        if !(0..=3).contains(&t) {
            return Err(bad("transpose flags must be 0 to 3"));
        }
        let (ta, tb) = (t & 1 == 1, t & 2 == 2);
        let (mut m, mut k) = (a.dims[a.rank - 2], a.dims[a.rank - 1]);
        let (mut k2, mut n) = (b.dims[b.rank - 2], b.dims[b.rank - 1]);
        if ta {
            core::mem::swap(&mut m, &mut k);
        }
        if tb {
            core::mem::swap(&mut k2, &mut n);
        }
        if k != k2 || y.dims[y.rank - 2] != m || y.dims[y.rank - 1] != n {
            return Err(bad("operand and output shapes do not match [.., M, K] x [.., K, N] -> [.., M, N]"));
        }
        if k > MAX_REDUCTION {
            return Err(bad("reduction longer than 65536"));
        }
        let yb = y.rank - 2;
        for (t, tb) in [(&a, a.rank - 2), (&b, b.rank - 2)] {
            for i in 0..tb {
                let (dt, dy) = (t.dims[i], y.dims[yb - tb + i]);
                if dt != dy && dt != 1 {
                    return Err(bad("batch axes do not broadcast to the output's"));
                }
            }
        }
        let mut batch = [1usize; B];
        batch[B - yb..].copy_from_slice(&y.dims[..yb]);
        let (sa, sb) = (logical_strides(&a), logical_strides(&b));
        let (mut a_mk, mut b_kn) = ([sa[a.rank - 2], sa[a.rank - 1]], [sb[b.rank - 2], sb[b.rank - 1]]);
        if ta {
            a_mk.swap(0, 1);
        }
        if tb {
            b_kn.swap(0, 1);
        }
        Ok(MatMul {
            a,
            b,
            y,
            m,
            k,
            n,
            batch,
            a_batch: batch_strides(&a, yb),
            b_batch: batch_strides(&b, yb),
            a_mk,
            b_kn,
        })
    }

    pub fn kernel_name(&self) -> &'static str {
        "f32_matmul_scalar"
    }

    pub fn macs(&self) -> u64 {
        (self.batch.iter().product::<usize>() * self.m * self.k * self.n) as u64
    }

    pub(crate) fn run(&self, e: &Exec<'a, '_>) {
        let (a, b, y) = (e.data::<f32>(&self.a), e.data::<f32>(&self.b), e.out::<f32>(&self.y));
        let (m, k, n) = (self.m, self.k, self.n);
        let mut idx = [0usize; B];
        let count: usize = self.batch.iter().product();
        for bi in 0..count {
            let ab: usize = (0..B).map(|i| idx[i] * self.a_batch[i]).sum();
            let bb: usize = (0..B).map(|i| idx[i] * self.b_batch[i]).sum();
            let out = &mut y[bi * m * n..(bi + 1) * m * n];
            matmul_f32(&a[ab..], self.a_mk, &b[bb..], self.b_kn, out, m, k, n);
            for i in (0..B).rev() {
                idx[i] += 1;
                if idx[i] < self.batch[i] {
                    break;
                }
                idx[i] = 0;
            }
        }
    }
}

/// One `[M, K] x [K, N]` product into row-major `y`, k ascending for every output.
#[allow(clippy::too_many_arguments)]
pub fn matmul_f32(
    a: &[f32],
    a_mk: [usize; 2],
    b: &[f32],
    b_kn: [usize; 2],
    y: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    for i in 0..m {
        let row = &mut y[i * n..(i + 1) * n];
        row.fill(0.0);
        for kk in 0..k {
            let av = a[i * a_mk[0] + kk * a_mk[1]];
            let base = kk * b_kn[0];
            if b_kn[1] == 1 {
                for (o, &bv) in row.iter_mut().zip(&b[base..base + n]) {
                    *o += av * bv;
                }
            } else {
                for (j, o) in row.iter_mut().enumerate() {
                    *o += av * b[base + j * b_kn[1]];
                }
            }
        }
    }
}
