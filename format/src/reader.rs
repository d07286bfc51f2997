//! Zero-copy, allocation-free reader. [`FileView::parse`] validates the whole structure of a file
//! before returning; every accessor afterwards is infallible on the validated data.

use crate::crc32::crc32;
use crate::error::FormatError;
use crate::layout::*;
use core::mem::offset_of;

/// At most this many sections; a larger count is rejected before anything is read.
pub const MAX_SECTIONS: u32 = 64;

fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// `Err` naming `field` unless its `len` bytes at `at` are all zero (reserved fields, flags).
fn zero_field(b: &[u8], at: usize, len: usize, field: &'static str) -> Result<(), FormatError> {
    let field_bytes = &b[at..at + len];
    if len <= 8 {
        let value = field_bytes.iter().rev().fold(0u64, |v, &x| v << 8 | x as u64);
        return if value == 0 { Ok(()) } else { Err(FormatError::NonZeroField { field, offset: at as u64, value }) };
    }
    // A reserved byte array: name its first non-zero byte.
    match field_bytes.iter().position(|&x| x != 0) {
        None => Ok(()),
        Some(j) => Err(FormatError::NonZeroField { field, offset: (at + j) as u64, value: field_bytes[j] as u64 }),
    }
}

/// Byte range of a section inside the file.
#[derive(Clone, Copy, Debug, Default)]
pub struct Span {
    pub offset: usize,
    pub size: usize,
}

/// A validated `.sparq` file, borrowed from the caller's bytes.
#[derive(Clone, Copy, Debug)]
pub struct FileView<'a> {
    bytes: &'a [u8],
    pub version_minor: u16,
    pub section_count: u32,
    pub meta: ModelMeta,
    strings: &'a [u8],
    tensors: &'a [u8],
    ops: &'a [u8],
    operands: &'a [u8],
    graph_io: &'a [u8],
    weights: Span,
}

/// A tensor descriptor, decoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorInfo<'a> {
    pub index: usize,
    pub name: &'a str,
    pub dtype: DType,
    pub rank: usize,
    pub dims: [usize; MAX_RANK],
    pub layout: Layout,
    pub storage: Storage,
    pub data_offset: usize,
    pub data_size: usize,
    pub scale: f32,
    pub zero_point: i32,
    /// Panel packing, for layout `Packed`.
    pub pack: Option<Pack>,
}

impl TensorInfo<'_> {
    pub fn shape(&self) -> &[usize] {
        &self.dims[..self.rank]
    }
    pub fn elements(&self) -> usize {
        self.data_size / self.dtype.size()
    }
}

/// An op descriptor, decoded.
#[derive(Clone, Copy, Debug)]
pub struct OpInfo<'a> {
    pub index: usize,
    pub kind: u16,
    pub flags: u16,
    pub name: &'a str,
    operands: &'a [u8],
    pub input_count: usize,
    pub output_count: usize,
    pub params: [i32; OP_PARAMS],
}

impl OpInfo<'_> {
    /// Tensor index of input `i` (`i < input_count`).
    pub fn input(&self, i: usize) -> usize {
        read_u32(self.operands, 4 * i) as usize
    }
    /// Tensor index of output `i` (`i < output_count`).
    pub fn output(&self, i: usize) -> usize {
        read_u32(self.operands, 4 * (self.input_count + i)) as usize
    }
    pub fn param_f32(&self, slot: usize) -> f32 {
        f32::from_bits(self.params[slot] as u32)
    }
}

/// Options of [`FileView::parse_with`].
#[derive(Clone, Copy, Debug)]
pub struct ParseOptions {
    /// Check the CRC-32 of every section (a pass over the weights). On by default.
    pub verify_crc: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions { verify_crc: true }
    }
}

impl<'a> FileView<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<FileView<'a>, FormatError> {
        Self::parse_with(bytes, ParseOptions::default())
    }

    pub fn parse_with(bytes: &'a [u8], opts: ParseOptions) -> Result<FileView<'a>, FormatError> {
        const H: usize = core::mem::size_of::<FileHeader>();
        if bytes.len() < H {
            return Err(FormatError::TooShort { len: bytes.len(), need: H });
        }
        if bytes[..8] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let major = read_u16(bytes, offset_of!(FileHeader, version_major));
        let minor = read_u16(bytes, offset_of!(FileHeader, version_minor));
        if major != VERSION_MAJOR {
            return Err(FormatError::UnsupportedVersion { major, minor });
        }
        if minor > VERSION_MINOR {
            return Err(FormatError::NewerMinor { minor });
        }
        let header_crc = read_u32(bytes, offset_of!(FileHeader, header_crc));
        if opts.verify_crc && crc32(&bytes[..offset_of!(FileHeader, header_crc)]) != header_crc {
            return Err(FormatError::HeaderChecksum);
        }
        zero_field(bytes, offset_of!(FileHeader, flags), 4, "header flags")?;
        zero_field(bytes, offset_of!(FileHeader, reserved), 24, "header reserved bytes")?;
        let header_size = read_u32(bytes, offset_of!(FileHeader, header_size));
        if header_size as usize != H {
            return Err(FormatError::BadHeaderSize { found: header_size });
        }
        let file_size = read_u64(bytes, offset_of!(FileHeader, file_size));
        if file_size != bytes.len() as u64 {
            return Err(FormatError::FileSizeMismatch { header: file_size, actual: bytes.len() as u64 });
        }
        let section_count = read_u32(bytes, offset_of!(FileHeader, section_count));
        if section_count > MAX_SECTIONS {
            return Err(FormatError::TooManySections { count: section_count, max: MAX_SECTIONS });
        }
        const E: usize = core::mem::size_of::<SectionEntry>();
        let table_end = H + section_count as usize * E;
        if table_end > bytes.len() {
            return Err(FormatError::TooShort { len: bytes.len(), need: table_end });
        }
        let table = &bytes[H..table_end];
        let table_crc = read_u32(bytes, offset_of!(FileHeader, section_table_crc));
        if opts.verify_crc && crc32(table) != table_crc {
            return Err(FormatError::SectionTableChecksum);
        }

        let mut found: [Option<Span>; 8] = [None; 8];
        for i in 0..section_count as usize {
            let e = &table[i * E..(i + 1) * E];
            let kind = read_u32(e, offset_of!(SectionEntry, kind));
            let offset = read_u64(e, offset_of!(SectionEntry, offset));
            let size = read_u64(e, offset_of!(SectionEntry, size));
            let crc = read_u32(e, offset_of!(SectionEntry, crc32));
            let at = H + i * E;
            zero_field(bytes, at + offset_of!(SectionEntry, flags), 4, "section flags")?;
            zero_field(bytes, at + offset_of!(SectionEntry, reserved), 4, "section reserved field")?;
            let end = offset.checked_add(size).ok_or(FormatError::SectionOutOfBounds { index: i, kind })?;
            if offset < table_end as u64 || end > bytes.len() as u64 {
                return Err(FormatError::SectionOutOfBounds { index: i, kind });
            }
            if !offset.is_multiple_of(ALIGN as u64) {
                return Err(FormatError::SectionMisaligned { index: i, kind, offset });
            }
            // Sections may not overlap: compare with every earlier one (count is capped).
            for j in 0..i {
                let o = &table[j * E..(j + 1) * E];
                let o_off = read_u64(o, offset_of!(SectionEntry, offset));
                let o_end = o_off + read_u64(o, offset_of!(SectionEntry, size));
                if offset < o_end && o_off < end && size > 0 {
                    return Err(FormatError::SectionsOverlap { first: j, second: i });
                }
            }
            let span = Span { offset: offset as usize, size: size as usize };
            if opts.verify_crc && crc32(&bytes[span.offset..span.offset + span.size]) != crc {
                return Err(FormatError::SectionChecksum { index: i, kind });
            }
            if (1..=7).contains(&kind) {
                if found[kind as usize].is_some() {
                    return Err(FormatError::DuplicateSection { kind });
                }
                found[kind as usize] = Some(span);
            } else if kind < section::PRIVATE {
                // No minor up to this reader's defines another kind; private kinds are skipped.
                return Err(FormatError::UnknownSection { index: i, kind });
            }
        }
        // Every byte outside the header, the table and the sections is zero padding, so a change
        // anywhere in the file is caught by a checksum or by this check.
        // Sections are visited in (offset, index) order; `last` is the key of the previous one.
        let mut cursor = table_end;
        let mut last: Option<(usize, usize)> = None;
        loop {
            let next = (0..section_count as usize)
                .map(|i| {
                    let e = &table[i * E..(i + 1) * E];
                    (read_u64(e, offset_of!(SectionEntry, offset)) as usize, i)
                })
                .filter(|&key| last.is_none_or(|l| key > l))
                .min();
            let gap_end = next.map_or(bytes.len(), |(off, _)| off.max(cursor));
            if bytes[cursor..gap_end].iter().any(|&b| b != 0) {
                return Err(FormatError::NonZeroPadding { offset: cursor as u64 });
            }
            let Some((off, i)) = next else { break };
            let size = read_u64(&table[i * E..(i + 1) * E], offset_of!(SectionEntry, size)) as usize;
            cursor = cursor.max(off + size);
            last = Some((off, i));
        }
        let get = |kind: u32| found[kind as usize].ok_or(FormatError::MissingSection { kind });
        let slice = |s: Span| &bytes[s.offset..s.offset + s.size];

        let meta_span = get(section::META)?;
        if meta_span.size != core::mem::size_of::<ModelMeta>() {
            return Err(FormatError::SectionSize { kind: section::META, size: meta_span.size as u64 });
        }
        let m = slice(meta_span);
        zero_field(bytes, meta_span.offset + offset_of!(ModelMeta, reserved), 32, "META reserved bytes")?;
        let meta = ModelMeta {
            arena_size: read_u64(m, offset_of!(ModelMeta, arena_size)),
            tensor_count: read_u32(m, offset_of!(ModelMeta, tensor_count)),
            op_count: read_u32(m, offset_of!(ModelMeta, op_count)),
            input_count: read_u32(m, offset_of!(ModelMeta, input_count)),
            output_count: read_u32(m, offset_of!(ModelMeta, output_count)),
            name_off: read_u32(m, offset_of!(ModelMeta, name_off)),
            name_len: read_u32(m, offset_of!(ModelMeta, name_len)),
            reserved: [0; 32],
        };
        if meta.arena_size > usize::MAX as u64 / 2 {
            return Err(FormatError::ArenaTooLarge { size: meta.arena_size });
        }
        let strings = slice(get(section::STRINGS)?);
        let tensors = slice(get(section::TENSORS)?);
        let ops = slice(get(section::OPS)?);
        let operands = slice(get(section::OPERANDS)?);
        let graph_io = slice(get(section::GRAPH_IO)?);
        let weights = get(section::WEIGHTS)?;
        let expect = |kind: u32, got: usize, count: u32, each: usize| {
            if (count as u64) * (each as u64) != got as u64 {
                Err(FormatError::SectionSize { kind, size: got as u64 })
            } else {
                Ok(())
            }
        };
        expect(section::TENSORS, tensors.len(), meta.tensor_count, 64)?;
        expect(section::OPS, ops.len(), meta.op_count, 128)?;
        let io_count = meta
            .input_count
            .checked_add(meta.output_count)
            .ok_or(FormatError::SectionSize { kind: section::GRAPH_IO, size: graph_io.len() as u64 })?;
        expect(section::GRAPH_IO, graph_io.len(), io_count, 4)?;
        if operands.len() % 4 != 0 {
            return Err(FormatError::SectionSize { kind: section::OPERANDS, size: operands.len() as u64 });
        }
        if meta.input_count == 0 || meta.output_count == 0 {
            return Err(FormatError::NoInputsOrOutputs);
        }
        // Typed slices of constants are made in place: the weights must sit at an address that
        // is a multiple of 4 (f32/i32). 64-byte aligned buffers (mmap, AlignedBytes) always are.
        if !(bytes.as_ptr() as usize + weights.offset).is_multiple_of(4) {
            return Err(FormatError::MisalignedBuffer { address: bytes.as_ptr() as usize });
        }

        let view = FileView {
            bytes,
            version_minor: minor,
            section_count,
            meta,
            strings,
            tensors,
            ops,
            operands,
            graph_io,
            weights,
        };
        view.string(meta.name_off, meta.name_len, "model name")?;
        for i in 0..meta.tensor_count as usize {
            view.check_tensor(i)?;
        }
        for i in 0..meta.op_count as usize {
            view.check_op(i)?;
        }
        for i in 0..io_count as usize {
            let t = read_u32(graph_io, 4 * i);
            if t >= meta.tensor_count {
                return Err(FormatError::BadGraphIo { position: i, tensor: t });
            }
            if view.tensor(t as usize).storage != Storage::Arena {
                return Err(FormatError::BadGraphIo { position: i, tensor: t });
            }
        }
        Ok(view)
    }

    fn string(&self, off: u32, len: u32, what: &'static str) -> Result<&'a str, FormatError> {
        let end = (off as usize).checked_add(len as usize).ok_or(FormatError::BadString { what })?;
        let b = self.strings.get(off as usize..end).ok_or(FormatError::BadString { what })?;
        core::str::from_utf8(b).map_err(|_| FormatError::BadString { what })
    }

    fn check_tensor(&self, index: usize) -> Result<(), FormatError> {
        /// Product of the logical dims (already checked not to overflow).
        fn elements_of(t: &[u8], rank: usize) -> u64 {
            (0..rank).map(|d| read_u32(t, offset_of!(TensorDesc, dims) + 4 * d) as u64).product()
        }
        let t = &self.tensors[index * 64..(index + 1) * 64];
        let at = self.offset_of(self.tensors) + index * 64;
        let bad = |reason: &'static str| FormatError::BadTensor { index, reason };
        self.string(
            read_u32(t, offset_of!(TensorDesc, name_off)),
            read_u32(t, offset_of!(TensorDesc, name_len)),
            "tensor name",
        )?;
        let dtype = DType::from_u8(t[offset_of!(TensorDesc, dtype)]).ok_or(bad("unknown dtype"))?;
        let rank = t[offset_of!(TensorDesc, rank)] as usize;
        if rank > MAX_RANK {
            return Err(bad("rank above 6"));
        }
        let layout = Layout::from_u8(t[offset_of!(TensorDesc, layout)]).ok_or(bad("unknown layout"))?;
        if layout == Layout::Nhwc && rank != 4 {
            return Err(bad("NHWC layout on a tensor whose rank is not 4"));
        }
        let storage = Storage::from_u8(t[offset_of!(TensorDesc, storage)]).ok_or(bad("unknown storage"))?;
        let pack_bits = read_u32(t, offset_of!(TensorDesc, pack));
        let needed = match layout {
            _ if dtype == DType::I16 => Some((6, "an i16 tensor")),
            Layout::Packed => Some((1, "a packed weight layout")),
            Layout::BlockSparse => Some((2, "a block-sparse weight layout")),
            _ => None,
        };
        if let Some((needed, feature)) = needed.filter(|&(n, _)| self.version_minor < n) {
            let offset = (at + offset_of!(TensorDesc, layout)) as u64;
            return Err(FormatError::MinorTooLow { minor: self.version_minor, needed, feature, offset });
        }
        let pack = match layout {
            Layout::Packed => {
                if rank < 2 || storage != Storage::Constant {
                    return Err(bad("packed layout on a tensor that is not a constant matrix"));
                }
                Some(Pack::from_u32(pack_bits).ok_or(bad("packed layout with bad panel sizes"))?)
            }
            Layout::BlockSparse => {
                if rank < 2 || storage != Storage::Constant || dtype != DType::I8 {
                    return Err(bad("block-sparse layout on a tensor that is not a constant int8 matrix"));
                }
                Some(Pack::from_u32(pack_bits).ok_or(bad("block-sparse layout with bad block sizes"))?)
            }
            _ if pack_bits != 0 => return Err(bad("panel sizes set on an unpacked tensor")),
            _ => None,
        };
        let mut elements: u64 = 1;
        for d in 0..MAX_RANK {
            let v = read_u32(t, offset_of!(TensorDesc, dims) + 4 * d) as u64;
            if d >= rank {
                if v != 0 {
                    return Err(bad("dimension set past the rank"));
                }
                continue;
            }
            elements = elements.checked_mul(v).ok_or(bad("element count overflows"))?;
        }
        let size = read_u64(t, offset_of!(TensorDesc, data_size));
        let offset = read_u64(t, offset_of!(TensorDesc, data_offset));
        let n = read_u32(t, offset_of!(TensorDesc, dims)) as u64;
        match pack {
            // Its size follows from its index, checked below once the range is known.
            Some(_) if layout == Layout::BlockSparse => elements = size,
            Some(p) => elements = p.elements(n, elements / n.max(1)).ok_or(bad("element count overflows"))?,
            None => {}
        }
        if elements.checked_mul(dtype.size() as u64) != Some(size) {
            return Err(bad("data size does not match shape and dtype"));
        }
        let end = offset.checked_add(size).ok_or(bad("data range overflows"))?;
        match storage {
            Storage::Constant => {
                if !offset.is_multiple_of(ALIGN as u64) {
                    return Err(bad("constant data not 64-byte aligned"));
                }
                if end > self.weights.size as u64 {
                    return Err(bad("constant data outside the weights section"));
                }
                if let (Layout::BlockSparse, Some(block)) = (layout, pack) {
                    let start = self.weights.offset + offset as usize;
                    let k = elements_of(t, rank).checked_div(n).unwrap_or(0) as usize;
                    crate::sparse::BlockSparse::parse(&self.bytes[start..start + size as usize], n as usize, k, block)
                        .map_err(bad)?;
                }
                if let (Layout::Packed, Some(p)) = (layout, pack) {
                    // Rows and columns past N and K are zero: kernels that multiply the padding
                    // (with inputs they pad differently) then agree with the ones that skip it.
                    let start = self.weights.offset + offset as usize;
                    let k = elements_of(t, rank).checked_div(n).unwrap_or(0) as usize;
                    let data = &self.bytes[start..start + size as usize];
                    if !p.padding_is_zero(data, n as usize, k, dtype.size()) {
                        return Err(bad(
                            "packed weights have a non-zero value in the padding past N rows or K columns",
                        ));
                    }
                }
            }
            Storage::Arena => {
                if !offset.is_multiple_of(dtype.size() as u64) {
                    return Err(bad("arena offset not aligned to its element size"));
                }
                if end > self.meta.arena_size {
                    return Err(bad("arena data outside the planned arena"));
                }
            }
        }
        let scale = f32::from_bits(read_u32(t, offset_of!(TensorDesc, scale)));
        let zp = read_u32(t, offset_of!(TensorDesc, zero_point)) as i32;
        // Constant int8 weights are quantized per channel (their scales are folded into the
        // consuming op's multipliers) and may carry scale 0; activations need a real scale.
        if dtype == DType::I16 && storage != Storage::Arena {
            // Int16 constants (1.7): the tables of a per-channel LOOKUP into int16, whose codes
            // are the output's (scale and zero point 0).
            if self.version_minor < 7 {
                return Err(bad(
                    "int16 tensors are activations (arena tensors) only, or from format 1.7 lookup tables",
                ));
            }
            if scale != 0.0 || zp != 0 {
                return Err(bad("an int16 constant (a lookup table) has scale and zero point 0"));
            }
        } else if dtype == DType::I16 {
            // Int16 (1.6): activations, symmetric.
            if !(scale.is_finite() && scale > 0.0) {
                return Err(bad("int16 tensor scale is not a positive finite number"));
            }
            if zp != 0 {
                return Err(bad("int16 zero point is not 0 (int16 activations are symmetric)"));
            }
        } else if dtype != DType::I8 {
            // Quantization parameters are reserved as 0 on f32 and i32 tensors.
            zero_field(self.bytes, at + offset_of!(TensorDesc, scale), 4, "scale of an f32/i32 tensor")?;
            zero_field(self.bytes, at + offset_of!(TensorDesc, zero_point), 4, "zero point of an f32/i32 tensor")?;
        }
        if dtype == DType::I8 && (storage == Storage::Arena || scale != 0.0) {
            if !(scale.is_finite() && scale > 0.0) {
                return Err(bad("int8 tensor scale is not a positive finite number"));
            }
            if !(-128..=127).contains(&zp) {
                return Err(bad("int8 zero point outside [-128, 127]"));
            }
        }
        Ok(())
    }

    fn check_op(&self, index: usize) -> Result<(), FormatError> {
        let o = &self.ops[index * 128..(index + 1) * 128];
        let at = self.offset_of(self.ops) + index * 128;
        let bad = |reason: &'static str| FormatError::BadOp { index, reason };
        zero_field(self.bytes, at + offset_of!(OpDesc, flags), 2, "op flags")?;
        zero_field(self.bytes, at + offset_of!(OpDesc, reserved), 4, "op reserved field")?;
        let kind = read_u16(o, offset_of!(OpDesc, kind));
        let params: [i32; OP_PARAMS] = core::array::from_fn(|s| read_u32(o, offset_of!(OpDesc, params) + 4 * s) as i32);
        if let Some(used) = op::param_slots(kind) {
            for slot in (0..OP_PARAMS).filter(|&s| used & (1 << s) == 0) {
                let value = read_u32(o, offset_of!(OpDesc, params) + 4 * slot);
                if value != 0 {
                    let offset = (at + offset_of!(OpDesc, params) + 4 * slot) as u64;
                    return Err(FormatError::UnusedParam { index, kind, slot, offset, value });
                }
            }
        }
        self.string(read_u32(o, offset_of!(OpDesc, name_off)), read_u32(o, offset_of!(OpDesc, name_len)), "op name")?;
        let n_in = read_u16(o, offset_of!(OpDesc, input_count)) as usize;
        let n_out = read_u16(o, offset_of!(OpDesc, output_count)) as usize;
        let start = read_u32(o, offset_of!(OpDesc, operands_start)) as usize;
        let end =
            start.checked_add(n_in + n_out).and_then(|e| e.checked_mul(4)).ok_or(bad("operand range overflows"))?;
        let list = self.operands.get(start * 4..end).ok_or(bad("operand list outside the operands section"))?;
        for k in 0..n_in + n_out {
            if read_u32(list, 4 * k) >= self.meta.tensor_count {
                return Err(bad("operand refers to a tensor that does not exist"));
            }
        }
        if n_out == 0 {
            return Err(bad("op has no output"));
        }
        // The minor an op needs may depend on its element type (int8 forms of 1.5): the first
        // output's, read from its (already checked) tensor descriptor.
        let out = read_u32(list, 4 * n_in) as usize;
        let dtype_at = out * 64 + offset_of!(TensorDesc, dtype);
        let dtype = self.tensors.get(dtype_at).and_then(|&d| DType::from_u8(d)).unwrap_or(DType::F32);
        let needed = op::op_minor(kind, &params, dtype);
        if self.version_minor < needed {
            let offset = (at + offset_of!(OpDesc, kind)) as u64;
            return Err(FormatError::MinorTooLow {
                minor: self.version_minor,
                needed,
                feature: op::name(kind),
                offset,
            });
        }
        Ok(())
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// File offset of `part`, a slice of this file's bytes.
    fn offset_of(&self, part: &[u8]) -> usize {
        part.as_ptr() as usize - self.bytes.as_ptr() as usize
    }
    pub fn model_name(&self) -> &'a str {
        self.string(self.meta.name_off, self.meta.name_len, "").unwrap_or("")
    }
    pub fn tensor_count(&self) -> usize {
        self.meta.tensor_count as usize
    }
    pub fn op_count(&self) -> usize {
        self.meta.op_count as usize
    }
    pub fn arena_size(&self) -> usize {
        self.meta.arena_size as usize
    }
    pub fn input(&self, i: usize) -> usize {
        read_u32(self.graph_io, 4 * i) as usize
    }
    pub fn output(&self, i: usize) -> usize {
        read_u32(self.graph_io, 4 * (self.meta.input_count as usize + i)) as usize
    }
    pub fn input_count(&self) -> usize {
        self.meta.input_count as usize
    }
    pub fn output_count(&self) -> usize {
        self.meta.output_count as usize
    }
    pub fn weights_span(&self) -> Span {
        self.weights
    }

    /// Decoded descriptor of a tensor (index checked by the caller: `< tensor_count()`).
    pub fn tensor(&self, index: usize) -> TensorInfo<'a> {
        let t = &self.tensors[index * 64..(index + 1) * 64];
        let rank = t[offset_of!(TensorDesc, rank)] as usize;
        let mut dims = [0usize; MAX_RANK];
        for (d, v) in dims.iter_mut().enumerate().take(rank) {
            *v = read_u32(t, offset_of!(TensorDesc, dims) + 4 * d) as usize;
        }
        TensorInfo {
            index,
            name: self
                .string(
                    read_u32(t, offset_of!(TensorDesc, name_off)),
                    read_u32(t, offset_of!(TensorDesc, name_len)),
                    "",
                )
                .unwrap_or(""),
            dtype: DType::from_u8(t[offset_of!(TensorDesc, dtype)]).unwrap_or(DType::I8),
            rank,
            dims,
            layout: Layout::from_u8(t[offset_of!(TensorDesc, layout)]).unwrap_or(Layout::RowMajor),
            storage: Storage::from_u8(t[offset_of!(TensorDesc, storage)]).unwrap_or(Storage::Arena),
            data_offset: read_u64(t, offset_of!(TensorDesc, data_offset)) as usize,
            data_size: read_u64(t, offset_of!(TensorDesc, data_size)) as usize,
            scale: f32::from_bits(read_u32(t, offset_of!(TensorDesc, scale))),
            zero_point: read_u32(t, offset_of!(TensorDesc, zero_point)) as i32,
            pack: Pack::from_u32(read_u32(t, offset_of!(TensorDesc, pack))),
        }
    }

    /// Decoded descriptor of an op (index checked by the caller: `< op_count()`).
    pub fn op(&self, index: usize) -> OpInfo<'a> {
        let o = &self.ops[index * 128..(index + 1) * 128];
        let n_in = read_u16(o, offset_of!(OpDesc, input_count)) as usize;
        let n_out = read_u16(o, offset_of!(OpDesc, output_count)) as usize;
        let start = read_u32(o, offset_of!(OpDesc, operands_start)) as usize;
        let mut params = [0i32; OP_PARAMS];
        for (k, p) in params.iter_mut().enumerate() {
            *p = read_u32(o, offset_of!(OpDesc, params) + 4 * k) as i32;
        }
        OpInfo {
            index,
            kind: read_u16(o, offset_of!(OpDesc, kind)),
            flags: read_u16(o, offset_of!(OpDesc, flags)),
            name: self
                .string(read_u32(o, offset_of!(OpDesc, name_off)), read_u32(o, offset_of!(OpDesc, name_len)), "")
                .unwrap_or(""),
            operands: &self.operands[start * 4..(start + n_in + n_out) * 4],
            input_count: n_in,
            output_count: n_out,
            params,
        }
    }

    /// The bytes of a constant tensor, in place in the file.
    pub fn constant_bytes(&self, t: &TensorInfo<'_>) -> &'a [u8] {
        let start = self.weights.offset + t.data_offset;
        &self.bytes[start..start + t.data_size]
    }
}
