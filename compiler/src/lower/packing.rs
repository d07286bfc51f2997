//! How each int8 weight matrix is stored: dense row-major, packed into the target's GEMM panels,
//! or block-sparse (16x4 blocks) where the sparse kernel is faster, by the block density and the
//! target's measured crossover.

use super::target;
use super::write::bytes_i8;
use super::Lowerer;
use sparq_format::{sparse, DType, Layout};

/// How the compiler picks between the dense and the block-sparse kernel for each int8 weight
/// matrix (convolutions with one group, fully-connected layers with int8 output).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum SparseChoice {
    /// Never block-sparse.
    #[default]
    Never,
    /// Every matrix with at least one all-zero 16x4 block.
    Always,
    /// The target's measured crossover: sparse when the block density is below the crossover
    /// for the layer's reduction length (see `Target::sparse_crossover`).
    Crossover(target::Target),
}

/// How a layer's weight matrix is stored and run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatrixKernel {
    /// Fraction of its 16x4 blocks holding a non-zero weight.
    pub block_density: f64,
    /// Stored block-sparse (run by the sparse kernel); else dense.
    pub sparse: bool,
    /// Bytes of the matrix as stored.
    pub bytes: usize,
}

impl SparseChoice {
    /// Whether a matrix with `block_density` and reduction length `k` is stored block-sparse.
    pub fn is_sparse(self, block_density: f64, k: usize, pointwise: bool) -> bool {
        match self {
            SparseChoice::Never => false,
            SparseChoice::Always => block_density < 1.0,
            SparseChoice::Crossover(t) => block_density < t.sparse_crossover(k, pointwise),
        }
    }
}

impl Lowerer<'_> {
    /// An int8 `N x K` weight matrix (row-major `q`): block-sparse when the sparse choice says so
    /// (`pointwise`: a fully-connected layer or a 1x1 convolution with stride 1 and no padding,
    /// whose crossover differs from larger kernels'), else packed into panels when the target
    /// wants.
    pub(super) fn matrix_constant(&mut self, name: &str, dims: &[usize], q: &[i8], pointwise: bool) -> u32 {
        let (n, k) = (dims[0], q.len() / dims[0].max(1));
        let block_density = sparse::block_density(sparse::KERNEL_BLOCK, n, k, q);
        let sparse = self.sparse.is_sparse(block_density, k, pointwise);
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
