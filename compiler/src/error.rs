use std::path::PathBuf;

/// Everything that can stop a compile. Each message names what is wrong and where (file, node,
/// op type, tensor), so a user can fix it from the one line the CLI prints.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{what} is not a valid ONNX model: {reason}")]
    NotOnnx { what: String, reason: String },
    #[error("node '{node}': operator {op_type} (opset {opset}) is not supported by sparq")]
    UnsupportedOp { node: String, op_type: String, opset: i64 },
    #[error("node '{node}' ({op_type}): {reason}")]
    InvalidNode { node: String, op_type: String, reason: String },
    /// More than one node cannot be imported: every one of them (`UnsupportedOp` or
    /// `InvalidNode`), in graph order, in one error. Nodes that only depend on them are skipped.
    #[error("{} nodes cannot be compiled: {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Nodes(Vec<CompileError>),
    #[error("tensor '{name}': {reason}")]
    Tensor { name: String, reason: String },
    #[error("input '{name}': {reason}")]
    Input { name: String, reason: String },
    #[error("{0}")]
    Data(String),
    /// `sample` counts from 0; `position` says where in the sample (element index and
    /// coordinates).
    #[error("{what}: sample {sample} holds {value} ({position}); calibration data must be finite numbers")]
    NonFinite { what: String, sample: usize, position: String, value: f32 },
    #[error("cannot write {path}: {reason}")]
    OutputPath { path: PathBuf, reason: String },
    #[error("float reference (tract) failed: {0}")]
    Reference(String),
    #[error("--keep-float {0}: no node of that name (run `sparq compile` with --list-nodes to see them)")]
    NoSuchNode(String),
    #[error("the compiled model failed to load in the runtime: {0}")]
    Runtime(#[from] sparq_runtime::RuntimeError),
    #[error("int8 compilation needs calibration data (--calib)")]
    MissingCalibration,
    #[error("{option} has {given} values but the input has {channels} channels")]
    PreprocessChannels { option: &'static str, given: usize, channels: usize },
    #[error(
        "pruning pattern `{pattern}`: {reason} (expected `unstructured`, `blockRxC` such as `block8x1`, or `N:M` such as `2:4`)"
    )]
    PrunePattern { pattern: String, reason: &'static str },
    #[error("sparsity {0} is outside [0, 1)")]
    Sparsity(f64),
    #[error("--prune: `{0}` is neither a sparsity nor N:M")]
    PruneValue(String),
    #[error("prune policy file: {0}")]
    PrunePolicyFile(String),
    #[error("--prune names layer `{0}`, which is not a convolution or fully-connected layer of this model")]
    NoSuchPruneLayer(String),
    #[error("--prune-channels {0}: expected a fraction in [0, 1)")]
    ChannelFraction(f64),
    /// `unit` is "the channels of" (a chain) or "a residual group of" (tensors tied by Adds).
    #[error("{what}: cannot prune {unit} `{layer}`: {reason}")]
    CannotPruneChannels { what: String, unit: &'static str, layer: String, reason: String },
}

pub type Result<T> = std::result::Result<T, CompileError>;

pub(crate) fn invalid(node: &str, op_type: &str, reason: impl Into<String>) -> CompileError {
    CompileError::InvalidNode { node: node.to_string(), op_type: op_type.to_string(), reason: reason.into() }
}
