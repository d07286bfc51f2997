//! Owning byte buffers for std hosts: a memory-mapped model file, and 64-byte aligned heap
//! buffers for models read into memory and for arenas.

use crate::error::RuntimeError;
use crate::model::Model;
use sparq_format::ParseOptions;
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
    /// Panics if the allocation fails; use [`AlignedBytes::try_zeroed`] for sizes that come from
    /// a file.
    pub fn zeroed(len: usize) -> AlignedBytes {
        Self::try_zeroed(len).expect("allocation of an aligned buffer")
    }

    /// A zeroed buffer, or `ArenaAllocation` if `len` bytes cannot be allocated (a model file
    /// may declare any arena size).
    pub fn try_zeroed(len: usize) -> Result<AlignedBytes, RuntimeError> {
        let n = len.div_ceil(64);
        let mut lines = Vec::new();
        lines.try_reserve_exact(n).map_err(|_| RuntimeError::ArenaAllocation { size: len })?;
        lines.resize(n, Line([0; 64]));
        Ok(AlignedBytes { lines, len })
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

/// A validated model mapped read-only from a file (page aligned, loaded lazily by the OS).
/// Weights are read in place from the mapping. Obtain it with [`Model::open`].
pub struct MappedModel {
    // Field order matters: `model` borrows from `map` and is dropped first.
    model: Model<'static>,
    map: memmap2::Mmap,
}

impl MappedModel {
    /// Map and validate `path`.
    pub fn open(path: &Path) -> Result<MappedModel, RuntimeError> {
        Self::open_with(path, ParseOptions::default())
    }

    pub fn open_with(path: &Path, opts: ParseOptions) -> Result<MappedModel, RuntimeError> {
        let file = std::fs::File::open(path).map_err(|e| RuntimeError::Io(e.kind()))?;
        let len = file.metadata().map_err(|e| RuntimeError::Io(e.kind()))?.len();
        if len == 0 {
            // mmap rejects empty files; report it as the format error it is.
            return Err(RuntimeError::Format(sparq_format::FormatError::TooShort { len: 0, need: 64 }));
        }
        // SAFETY: the mapping is read-only and private to this process; the model file must
        // not be truncated or rewritten in place while mapped (the compiler replaces files by
        // rename, which leaves existing mappings intact).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| RuntimeError::Io(e.kind()))?;
        // SAFETY: the mapped bytes stay at the same address, unchanged, until `map` is dropped,
        // which happens after `model` (field order) and never while a borrow from `model()`
        // is alive, since that borrow is tied to `&self`.
        let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(map.as_ptr(), map.len()) };
        let model = Model::from_bytes_with(bytes, opts)?;
        Ok(MappedModel { model, map })
    }

    pub fn model(&self) -> &Model<'_> {
        &self.model
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
}

impl Model<'_> {
    /// Map a `.sparq` file and validate it (std only). Loading costs O(header) plus one CRC pass
    /// over the file; weights are then used in place from the mapping.
    pub fn open(path: impl AsRef<Path>) -> Result<MappedModel, RuntimeError> {
        MappedModel::open(path.as_ref())
    }
}
