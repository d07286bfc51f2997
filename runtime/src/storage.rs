//! Owning byte buffers for std hosts: a memory-mapped model file, and 64-byte aligned heap
//! buffers for models read into memory and for arenas.

use crate::error::RuntimeError;
use std::path::Path;
use std::vec::Vec;

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

/// A zero-initialized heap buffer whose start is 64-byte aligned (for arenas, or for model bytes
/// that did not come from a mapped file).
pub struct AlignedBytes {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBytes {
    pub fn zeroed(len: usize) -> AlignedBytes {
        AlignedBytes { lines: std::vec![Line([0; 64]); len.div_ceil(64)], len }
    }
    pub fn from_slice(bytes: &[u8]) -> AlignedBytes {
        let mut a = AlignedBytes::zeroed(bytes.len());
        a.as_mut_slice().copy_from_slice(bytes);
        a
    }
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `lines` holds at least `len` initialized bytes (64 per line) contiguously.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<u8>(), self.len) }
    }
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

impl std::ops::Deref for AlignedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// The bytes of a model file, mapped read-only (page aligned, loaded lazily by the OS).
pub struct MappedModel {
    map: memmap2::Mmap,
}

impl MappedModel {
    /// Map `path`. Validate with `Model::from_bytes(mapped.bytes())`; weights are then read in
    /// place from the mapping.
    pub fn open(path: &Path) -> Result<MappedModel, RuntimeError> {
        let file = std::fs::File::open(path).map_err(|e| RuntimeError::Io(e.kind()))?;
        // SAFETY: the mapping is read-only and private to this process; the model file must
        // not be truncated or rewritten while mapped (the compiler replaces files by rename,
        // which leaves existing mappings intact).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| RuntimeError::Io(e.kind()))?;
        Ok(MappedModel { map })
    }
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
}
