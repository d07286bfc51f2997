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
    #[error("tensor '{name}': {reason}")]
    Tensor { name: String, reason: String },
    #[error("input '{name}': {reason}")]
    Input { name: String, reason: String },
    #[error("{0}")]
    Data(String),
    #[error("float reference (tract) failed: {0}")]
    Reference(String),
    #[error("--keep-float {0}: no node of that name (run `sparq compile` with --list-nodes to see them)")]
    NoSuchNode(String),
    #[error("the compiled model failed to load in the runtime: {0}")]
    Runtime(#[from] sparq_runtime::RuntimeError),
    #[error("{0}")]
    Options(String),
}

pub type Result<T> = std::result::Result<T, CompileError>;

pub(crate) fn invalid(node: &str, op_type: &str, reason: impl Into<String>) -> CompileError {
    CompileError::InvalidNode { node: node.to_string(), op_type: op_type.to_string(), reason: reason.into() }
}
