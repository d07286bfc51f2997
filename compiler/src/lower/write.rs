//! Emitting into the runtime program: tensors (activations in the arena, constants with their
//! bytes) and ops into the `ModelSpec`, and the little-endian byte forms of constant data.

use super::packing::MatrixKernel;
use super::state::Lowerer;
use crate::ir::Window;
use crate::quant::QParams;
use sparq_format::layout::op::window as win;
use sparq_format::layout::OP_PARAMS;
use sparq_format::writer::{OpSpec, TensorSpec};
use sparq_format::{sparse, DType, Layout};

pub(super) fn bytes_i8(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}
pub(super) fn bytes_i32(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
pub(super) fn bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// An f32 op parameter, stored by its bits in an i32 slot.
pub(super) fn bits(x: f32) -> i32 {
    x.to_bits() as i32
}

/// The window of a convolution or pool into its op parameters.
pub(super) fn set_window(p: &mut [i32; OP_PARAMS], w: &Window) {
    p[win::KERNEL_H] = w.kernel[0] as i32;
    p[win::KERNEL_W] = w.kernel[1] as i32;
    p[win::STRIDE_H] = w.strides[0] as i32;
    p[win::STRIDE_W] = w.strides[1] as i32;
    p[win::PAD_TOP] = w.pads[0] as i32;
    p[win::PAD_LEFT] = w.pads[1] as i32;
    p[win::PAD_BOTTOM] = w.pads[2] as i32;
    p[win::PAD_RIGHT] = w.pads[3] as i32;
    p[win::DILATION_H] = w.dilations[0] as i32;
    p[win::DILATION_W] = w.dilations[1] as i32;
}

impl Lowerer<'_> {
    pub(super) fn add(&mut self, t: TensorSpec) -> u32 {
        self.spec.tensors.push(t);
        (self.spec.tensors.len() - 1) as u32
    }

    /// An activation (or input) tensor: placed in the arena by the memory plan.
    pub(super) fn act(&mut self, name: &str, dtype: DType, dims: &[usize], layout: Layout, q: Option<QParams>) -> u32 {
        let q = q.unwrap_or(QParams { scale: 0.0, zero_point: 0 });
        self.add(TensorSpec {
            name: name.to_string(),
            dtype,
            dims: dims.to_vec(),
            layout,
            arena_offset: 0,
            scale: q.scale,
            zero_point: q.zero_point,
            data: None,
            pack: None,
        })
    }

    /// A row-major constant tensor with its bytes.
    pub(super) fn constant(
        &mut self,
        name: &str,
        dtype: DType,
        dims: &[usize],
        data: Vec<u8>,
        q: Option<QParams>,
    ) -> u32 {
        let q = q.unwrap_or(QParams { scale: 0.0, zero_point: 0 });
        self.add(TensorSpec {
            name: name.to_string(),
            dtype,
            dims: dims.to_vec(),
            layout: Layout::RowMajor,
            arena_offset: 0,
            scale: q.scale,
            zero_point: q.zero_point,
            data: Some(data),
            pack: None,
        })
    }

    pub(super) fn op(&mut self, kind: u16, name: &str, inputs: Vec<u32>, output: u32, params: [i32; OP_PARAMS]) {
        self.spec.ops.push(OpSpec { kind, name: name.to_string(), inputs, outputs: vec![output], params });
    }

    /// The quantization of runtime tensor `id`, as written.
    pub(super) fn tensor_q(&self, id: u32) -> QParams {
        let t = &self.spec.tensors[id as usize];
        QParams { scale: t.scale, zero_point: t.zero_point }
    }
}

impl Lowerer<'_> {
    /// An int8 `N x K` weight matrix (row-major `q`): block-sparse when the sparse choice says so
    /// (`pointwise`: a fully-connected layer or a 1x1 convolution with stride 1 and no padding,
    /// whose crossover differs from larger kernels'), else packed into panels when the target
    /// wants.
    /// (The storage choice is `packing`'s.)
    /// An int16 layer's matrix (`dense`) is never block-sparse: its kernels read panels or rows.
    pub(super) fn matrix_constant(
        &mut self,
        name: &str,
        dims: &[usize],
        q: &[i8],
        pointwise: bool,
        dense: bool,
    ) -> u32 {
        let (n, k) = (dims[0], q.len() / dims[0].max(1));
        let block_density = sparse::block_density(sparse::KERNEL_BLOCK, n, k, q);
        let sparse = !dense && self.sparse.is_sparse(block_density, k, pointwise);
        let id = self.constant(name, DType::I8, dims, bytes_i8(q), None);
        let t = &mut self.spec.tensors[id as usize];
        if sparse {
            t.data = Some(sparse::encode(sparse::KERNEL_BLOCK, n, k, q));
            t.layout = Layout::BlockSparse;
            t.pack = Some(sparse::KERNEL_BLOCK);
        } else if let Some(p) = self.pack {
            t.data = Some(bytes_i8(&p.pack(n, k, q)));
            t.layout = Layout::Packed;
            t.pack = Some(p);
        }
        let bytes = t.data.as_ref().map_or(0, Vec::len);
        self.matrix = Some(MatrixKernel { block_density, sparse, bytes });
        id
    }
}
