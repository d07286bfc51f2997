//! `.sparq` writer (std). Output depends only on what was added and in which order, so the
//! same model and options give byte-identical files.

use crate::crc32::crc32;
use crate::layout::*;
use std::format;
use std::io::Write;
use std::path::Path;
use std::string::String;
use std::vec;
use std::vec::Vec;

/// A tensor to be written. `data` is `Some` for constants (stored in WEIGHTS, 64-byte aligned).
#[derive(Clone, Debug)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub dims: Vec<usize>,
    pub layout: Layout,
    /// Arena offset (activations); ignored for constants.
    pub arena_offset: usize,
    pub scale: f32,
    pub zero_point: i32,
    pub data: Option<Vec<u8>>,
    /// Panel packing when `layout` is `Packed` (then `data` is already packed), or the block
    /// shape when it is `BlockSparse` (then `data` is the encoding of [`crate::sparse`]).
    pub pack: Option<Pack>,
}

#[derive(Clone, Debug)]
pub struct OpSpec {
    pub kind: u16,
    pub name: String,
    pub inputs: Vec<u32>,
    pub outputs: Vec<u32>,
    pub params: [i32; OP_PARAMS],
}

#[derive(Clone, Debug, Default)]
pub struct ModelSpec {
    pub name: String,
    pub arena_size: usize,
    pub tensors: Vec<TensorSpec>,
    pub ops: Vec<OpSpec>,
    pub inputs: Vec<u32>,
    pub outputs: Vec<u32>,
    /// Further sections `(kind, bytes)`, written after the required ones (optional sections of
    /// this or a later minor version).
    pub extra_sections: Vec<(u32, Vec<u8>)>,
    /// Minor version to write; 0 picks the lowest that can express the file (up to `VERSION_MINOR`).
    pub version_minor: u16,
}

fn align_up(v: usize) -> usize {
    v.div_ceil(ALIGN) * ALIGN
}

fn put<T: Copy>(out: &mut Vec<u8>, v: &T) {
    // SAFETY: only called with the `#[repr(C)]` layout structs of this crate, which are plain
    // old data with explicit padding fields, so every byte is initialized. Hosts are
    // little-endian (checked at compile time in lib.rs), matching the format.
    let bytes = unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) };
    out.extend_from_slice(bytes);
}

impl ModelSpec {
    /// The minor op `o` needs (`op::op_minor` with its first output's element type).
    fn op_minor(&self, o: &OpSpec) -> u16 {
        let dtype = o.outputs.first().and_then(|&t| self.tensors.get(t as usize)).map_or(DType::F32, |t| t.dtype);
        op::op_minor(o.kind, &o.params, dtype)
    }

    /// Serialize to bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut strings = Vec::new();
        let mut add_str = |s: &str| {
            let off = strings.len() as u32;
            strings.extend_from_slice(s.as_bytes());
            (off, s.len() as u32)
        };
        let (name_off, name_len) = add_str(&self.name);

        let mut weights = Vec::new();
        let mut tensors = Vec::new();
        for t in &self.tensors {
            let (n_off, n_len) = add_str(&t.name);
            let mut dims = [0u32; MAX_RANK];
            for (d, &v) in dims.iter_mut().zip(&t.dims) {
                *d = v as u32;
            }
            let elements: usize = match t.pack {
                // The encoding's own length (it depends on the stored blocks).
                Some(_) if t.layout == Layout::BlockSparse => t.data.as_ref().map_or(0, Vec::len),
                Some(p) => {
                    let n = t.dims.first().copied().unwrap_or(0);
                    let k: usize = t.dims.iter().skip(1).product();
                    p.elements(n as u64, k as u64).unwrap_or(0) as usize
                }
                None => t.dims.iter().product(),
            };
            let (storage, offset) = match &t.data {
                Some(bytes) => {
                    weights.resize(align_up(weights.len()), 0);
                    let off = weights.len();
                    weights.extend_from_slice(bytes);
                    (Storage::Constant, off)
                }
                None => (Storage::Arena, t.arena_offset),
            };
            put(
                &mut tensors,
                &TensorDesc {
                    name_off: n_off,
                    name_len: n_len,
                    data_offset: offset as u64,
                    data_size: (elements * t.dtype.size()) as u64,
                    dims,
                    dtype: t.dtype as u8,
                    rank: t.dims.len() as u8,
                    layout: t.layout as u8,
                    storage: storage as u8,
                    scale: t.scale,
                    zero_point: t.zero_point,
                    pack: t.pack.map_or(0, Pack::to_u32),
                },
            );
        }
        let mut operands: Vec<u8> = Vec::new();
        let mut ops = Vec::new();
        for o in &self.ops {
            let (n_off, n_len) = add_str(&o.name);
            let start = (operands.len() / 4) as u32;
            for &i in o.inputs.iter().chain(&o.outputs) {
                operands.extend_from_slice(&i.to_le_bytes());
            }
            put(
                &mut ops,
                &OpDesc {
                    kind: o.kind,
                    flags: 0,
                    input_count: o.inputs.len() as u16,
                    output_count: o.outputs.len() as u16,
                    operands_start: start,
                    name_off: n_off,
                    name_len: n_len,
                    reserved: 0,
                    params: o.params,
                },
            );
        }
        let mut graph_io = Vec::new();
        for &i in self.inputs.iter().chain(&self.outputs) {
            graph_io.extend_from_slice(&i.to_le_bytes());
        }
        let mut meta = Vec::new();
        put(
            &mut meta,
            &ModelMeta {
                arena_size: self.arena_size as u64,
                tensor_count: self.tensors.len() as u32,
                op_count: self.ops.len() as u32,
                input_count: self.inputs.len() as u32,
                output_count: self.outputs.len() as u32,
                name_off,
                name_len,
                reserved: [0; 32],
            },
        );
        let mut sections: Vec<(u32, &[u8])> = vec![
            (section::META, &meta),
            (section::STRINGS, &strings),
            (section::TENSORS, &tensors),
            (section::OPS, &ops),
            (section::OPERANDS, &operands),
            (section::GRAPH_IO, &graph_io),
            (section::WEIGHTS, &weights),
        ];
        for (kind, data) in &self.extra_sections {
            sections.push((*kind, data));
        }
        let table_end = 64 + 32 * sections.len();
        let mut offset = align_up(table_end);
        let mut table = Vec::new();
        for &(kind, data) in &sections {
            put(
                &mut table,
                &SectionEntry {
                    kind,
                    flags: 0,
                    offset: offset as u64,
                    size: data.len() as u64,
                    crc32: crc32(data),
                    reserved: 0,
                },
            );
            offset = align_up(offset + data.len());
        }
        let last_end = {
            let (_, w) = sections[sections.len() - 1];
            offset - align_up(w.len()) + w.len()
        };
        let mut header = FileHeader {
            magic: MAGIC,
            version_major: VERSION_MAJOR,
            version_minor: match self.version_minor {
                // The lowest minor version that can express the file, so older readers keep
                // reading files that use nothing newer: the highest any op or tensor needs (an
                // int16 tensor 1.6, wherever it is; block-sparse 1.2; packed 1.1).
                0 => {
                    let tensors = self.tensors.iter().map(|t| {
                        if t.dtype == DType::I16 {
                            6
                        } else if t.layout == Layout::BlockSparse {
                            2
                        } else {
                            u16::from(t.pack.is_some())
                        }
                    });
                    self.ops.iter().map(|o| self.op_minor(o)).chain(tensors).max().unwrap_or(0)
                }
                v => v,
            },
            header_size: 64,
            section_count: sections.len() as u32,
            section_table_crc: crc32(&table),
            file_size: last_end as u64,
            flags: 0,
            reserved: [0; 24],
            header_crc: 0,
        };
        let mut out = Vec::with_capacity(last_end);
        put(&mut out, &header);
        header.header_crc = crc32(&out[..60]);
        out.clear();
        put(&mut out, &header);
        out.extend_from_slice(&table);
        for &(_, data) in &sections {
            out.resize(align_up(out.len()), 0);
            out.extend_from_slice(data);
        }
        debug_assert_eq!(out.len(), last_end);
        out
    }
}

/// Write `bytes` to `path` atomically: a temporary file in the same directory, flushed and
/// synced, then renamed over `path`. An interrupted write never leaves a partial file at `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| std::io::Error::other("output path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
