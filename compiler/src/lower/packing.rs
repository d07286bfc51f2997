//! How each int8 weight matrix is stored: dense row-major, packed into the target's GEMM panels,
//! or block-sparse (16x4 blocks) where the sparse kernel is faster, by the block density and the
//! target's measured crossover (the decision; `write::matrix_constant` stores it).

use super::target;

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
