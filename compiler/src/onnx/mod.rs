//! ONNX in: decoding ([`decode`]), the import into the IR ([`import()`]: static shapes, constant
//! folding of shape arithmetic), one importer function per operator ([`ops`]), and a small ONNX
//! builder for tests, benches and fuzzers ([`builder`]).

pub mod builder;
pub mod import;
mod importer;
mod ops;

pub use import::{decode, decodes, import};
pub use importer::broadcast;
