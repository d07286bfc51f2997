//! Structure-aware mutation of a `.sparq` file: fields of the header, the section table, META,
//! the tensor and op descriptors, OPERANDS and GRAPH_IO are found by the offsets of
//! `sparq_format::layout` and set to interesting values; weights (block-sparse indices above
//! all) get byte changes; descriptors are dropped or duplicated. Then every checksum is
//! recomputed ([`fix_checksums`]), so the mutant reaches the reader's semantic checks instead of
//! stopping at a CRC.

use arbitrary::{Result, Unstructured};
use core::mem::{offset_of, size_of};
use sparq_format::crc32::crc32;
use sparq_format::layout::{section, FileHeader, ModelMeta, OpDesc, SectionEntry, TensorDesc, MAX_RANK, OP_PARAMS};

const H: usize = size_of::<FileHeader>();
const E: usize = size_of::<SectionEntry>();
const TENSOR: usize = size_of::<TensorDesc>();
const OP: usize = size_of::<OpDesc>();

fn read(bytes: &[u8], at: usize, width: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(width)?)?;
    let mut v = [0u8; 8];
    v[..width].copy_from_slice(b);
    Some(u64::from_le_bytes(v))
}

fn write(bytes: &mut [u8], at: usize, width: usize, value: u64) {
    if let Some(b) = bytes.get_mut(at..at + width) {
        b.copy_from_slice(&value.to_le_bytes()[..width]);
    }
}

/// Recompute every section's CRC-32 (for entries whose range lies in the file), then the
/// section table's, then the header's. Bytes too short for a header are left alone.
pub fn fix_checksums(bytes: &mut [u8]) {
    if bytes.len() < H {
        return;
    }
    let count = (read(bytes, offset_of!(FileHeader, section_count), 4).unwrap_or(0) as usize)
        .min(sparq_format::reader::MAX_SECTIONS as usize)
        .min((bytes.len() - H) / E);
    for i in 0..count {
        let e = H + i * E;
        let offset = read(bytes, e + offset_of!(SectionEntry, offset), 8).unwrap_or(u64::MAX);
        let size = read(bytes, e + offset_of!(SectionEntry, size), 8).unwrap_or(u64::MAX);
        if let Some(end) = offset.checked_add(size).filter(|&end| end <= bytes.len() as u64) {
            let crc = crc32(&bytes[offset as usize..end as usize]);
            write(bytes, e + offset_of!(SectionEntry, crc32), 4, crc as u64);
        }
    }
    let table_crc = crc32(&bytes[H..H + count * E]);
    write(bytes, offset_of!(FileHeader, section_table_crc), 4, table_crc as u64);
    let header_crc = crc32(&bytes[..offset_of!(FileHeader, header_crc)]);
    write(bytes, offset_of!(FileHeader, header_crc), 4, header_crc as u64);
}

/// A section found through the table: its index in the table, kind and byte range.
#[derive(Clone, Copy, Debug)]
struct Section {
    entry: usize,
    kind: u32,
    offset: usize,
    size: usize,
}

fn sections(bytes: &[u8]) -> Vec<Section> {
    let Some(count) = read(bytes, offset_of!(FileHeader, section_count), 4) else { return Vec::new() };
    let count = (count as usize).min(64);
    (0..count)
        .filter_map(|i| {
            let e = H + i * E;
            let kind = read(bytes, e + offset_of!(SectionEntry, kind), 4)? as u32;
            let offset = read(bytes, e + offset_of!(SectionEntry, offset), 8)? as usize;
            let size = read(bytes, e + offset_of!(SectionEntry, size), 8)? as usize;
            (offset.checked_add(size)? <= bytes.len()).then_some(Section { entry: i, kind, offset, size })
        })
        .collect()
}

/// A field: absolute offset and width in bytes; `stride` is the record size for "the same field
/// of another record" (0 when the field is not in an array of records).
#[derive(Clone, Copy, Debug)]
struct Field {
    at: usize,
    width: usize,
    /// Start and record count of the array holding it.
    array: usize,
    stride: usize,
    records: usize,
    float: bool,
}

fn header_fields() -> Vec<(usize, usize)> {
    let mut f = vec![
        (offset_of!(FileHeader, version_major), 2),
        (offset_of!(FileHeader, version_minor), 2),
        (offset_of!(FileHeader, header_size), 4),
        (offset_of!(FileHeader, section_count), 4),
        (offset_of!(FileHeader, file_size), 8),
        (offset_of!(FileHeader, flags), 4),
    ];
    f.extend((0..6).map(|i| (offset_of!(FileHeader, reserved) + 4 * i, 4)));
    f
}

fn entry_fields() -> Vec<(usize, usize)> {
    vec![
        (offset_of!(SectionEntry, kind), 4),
        (offset_of!(SectionEntry, flags), 4),
        (offset_of!(SectionEntry, offset), 8),
        (offset_of!(SectionEntry, size), 8),
        (offset_of!(SectionEntry, reserved), 4),
    ]
}

fn meta_fields() -> Vec<(usize, usize)> {
    let mut f = vec![
        (offset_of!(ModelMeta, arena_size), 8),
        (offset_of!(ModelMeta, tensor_count), 4),
        (offset_of!(ModelMeta, op_count), 4),
        (offset_of!(ModelMeta, input_count), 4),
        (offset_of!(ModelMeta, output_count), 4),
        (offset_of!(ModelMeta, name_off), 4),
        (offset_of!(ModelMeta, name_len), 4),
    ];
    f.extend((0..8).map(|i| (offset_of!(ModelMeta, reserved) + 4 * i, 4)));
    f
}

/// Tensor descriptor fields; the bool marks the f32 scale.
fn tensor_fields() -> Vec<(usize, usize, bool)> {
    let mut f = vec![
        (offset_of!(TensorDesc, name_off), 4, false),
        (offset_of!(TensorDesc, name_len), 4, false),
        (offset_of!(TensorDesc, data_offset), 8, false),
        (offset_of!(TensorDesc, data_size), 8, false),
        (offset_of!(TensorDesc, dtype), 1, false),
        (offset_of!(TensorDesc, rank), 1, false),
        (offset_of!(TensorDesc, layout), 1, false),
        (offset_of!(TensorDesc, storage), 1, false),
        (offset_of!(TensorDesc, scale), 4, true),
        (offset_of!(TensorDesc, zero_point), 4, false),
        (offset_of!(TensorDesc, pack), 4, false),
    ];
    f.extend((0..MAX_RANK).map(|d| (offset_of!(TensorDesc, dims) + 4 * d, 4, false)));
    f
}

fn op_fields() -> Vec<(usize, usize)> {
    let mut f = vec![
        (offset_of!(OpDesc, kind), 2),
        (offset_of!(OpDesc, flags), 2),
        (offset_of!(OpDesc, input_count), 2),
        (offset_of!(OpDesc, output_count), 2),
        (offset_of!(OpDesc, operands_start), 4),
        (offset_of!(OpDesc, name_off), 4),
        (offset_of!(OpDesc, name_len), 4),
        (offset_of!(OpDesc, reserved), 4),
    ];
    // The parameter slots in use are weighted up: they appear twice.
    f.extend((0..OP_PARAMS).map(|s| (offset_of!(OpDesc, params) + 4 * s, 4)));
    f.extend((0..18).map(|s| (offset_of!(OpDesc, params) + 4 * s, 4)));
    f
}

/// Every mutable field of the file, weighted towards the descriptors.
fn fields(bytes: &[u8], secs: &[Section]) -> Vec<Field> {
    let mut out = Vec::new();
    let single = |at: usize, width: usize| Field { at, width, array: at, stride: 0, records: 1, float: false };
    for (at, w) in header_fields() {
        out.push(single(at, w));
    }
    let count = secs.iter().map(|s| s.entry + 1).max().unwrap_or(0);
    for (at, w) in entry_fields() {
        for i in 0..count {
            out.push(Field { at: H + i * E + at, width: w, array: H, stride: E, records: count, float: false });
        }
    }
    for s in secs {
        match s.kind {
            section::META if s.size >= size_of::<ModelMeta>() => {
                for (at, w) in meta_fields() {
                    out.push(single(s.offset + at, w));
                }
            }
            section::TENSORS => {
                let n = s.size / TENSOR;
                for i in 0..n {
                    for _ in 0..2 {
                        for (at, w, float) in tensor_fields() {
                            out.push(Field {
                                at: s.offset + i * TENSOR + at,
                                width: w,
                                array: s.offset,
                                stride: TENSOR,
                                records: n,
                                float,
                            });
                        }
                    }
                }
            }
            section::OPS => {
                let n = s.size / OP;
                for i in 0..n {
                    for (at, w) in op_fields() {
                        out.push(Field {
                            at: s.offset + i * OP + at,
                            width: w,
                            array: s.offset,
                            stride: OP,
                            records: n,
                            float: false,
                        });
                    }
                }
            }
            section::OPERANDS | section::GRAPH_IO => {
                let n = s.size / 4;
                for i in 0..n {
                    for _ in 0..4 {
                        out.push(Field {
                            at: s.offset + 4 * i,
                            width: 4,
                            array: s.offset,
                            stride: 4,
                            records: n,
                            float: false,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out.retain(|f| f.at + f.width <= bytes.len());
    out
}

fn interesting(u: &mut Unstructured, bytes: &[u8], f: &Field) -> Result<u64> {
    let bits = 8 * f.width as u32;
    let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let cur = read(bytes, f.at, f.width).unwrap_or(0);
    let v = match u.int_in_range(0..=13)? {
        0 => 0,
        1 => 1,
        2 => u64::MAX,
        3 => mask >> 1,
        4 => cur.wrapping_add(1),
        5 => cur.wrapping_sub(1),
        6 => 1u64 << u.int_in_range(0..=bits - 1)?,
        7 => *u.choose(&[64, 65535, 65536, 1 << 31, 255, 128, 127, 3, 6, 7])?,
        8 if f.stride > 0 && f.records > 1 => {
            let r = u.int_in_range(0..=f.records - 1)?;
            let within = (f.at - f.array) % f.stride;
            read(bytes, f.array + r * f.stride + within, f.width).unwrap_or(0)
        }
        9 if f.float => {
            (*u.choose(&[0.0f32, -1.0, f32::NAN, f32::INFINITY, f32::MIN_POSITIVE, 1e-45, 3e38])?).to_bits() as u64
        }
        10 => cur ^ (1u64 << u.int_in_range(0..=bits - 1)?),
        11 => (cur as i64).wrapping_neg() as u64,
        12 => cur.wrapping_mul(2),
        _ => u.arbitrary()?,
    };
    Ok(v & mask)
}

/// Lay the sections out again (in table order, 64-byte aligned, as the writer does) after one
/// of them changed size; header fields other than the file size stay as they were.
fn relayout(bytes: &[u8], secs: &[Section], replace: usize, new: Vec<u8>) -> Vec<u8> {
    let count = secs.len();
    let table_end = H + count * E;
    let mut out = bytes[..H].to_vec();
    out.resize(table_end.div_ceil(64) * 64, 0);
    let mut body: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut cursor = out.len();
    for (i, s) in secs.iter().enumerate() {
        let data = if i == replace { new.clone() } else { bytes[s.offset..s.offset + s.size].to_vec() };
        cursor = cursor.div_ceil(64) * 64;
        body.push((cursor, data));
        cursor += body.last().unwrap().1.len();
    }
    for (i, s) in secs.iter().enumerate() {
        let e = H + i * E;
        out[e..e + E].copy_from_slice(&bytes[H + s.entry * E..H + (s.entry + 1) * E]);
        write(&mut out, e + offset_of!(SectionEntry, offset), 8, body[i].0 as u64);
        write(&mut out, e + offset_of!(SectionEntry, size), 8, body[i].1.len() as u64);
    }
    for (at, data) in body {
        out.resize(at, 0);
        out.extend_from_slice(&data);
    }
    write(&mut out, offset_of!(FileHeader, section_count), 4, count as u64);
    let len = out.len() as u64;
    write(&mut out, offset_of!(FileHeader, file_size), 8, len);
    out
}

/// Drop or duplicate one record of TENSORS or OPS (or one u32 of OPERANDS), updating META's count
/// most of the time.
fn resize_array(u: &mut Unstructured, bytes: &[u8], secs: &[Section]) -> Result<Option<Vec<u8>>> {
    let arrays: Vec<(usize, usize, usize)> = secs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s.kind {
            section::TENSORS => Some((i, TENSOR, offset_of!(ModelMeta, tensor_count))),
            section::OPS => Some((i, OP, offset_of!(ModelMeta, op_count))),
            section::OPERANDS => Some((i, 4, usize::MAX)),
            _ => None,
        })
        .collect();
    if arrays.is_empty() {
        return Ok(None);
    }
    let &(i, stride, count_at) = u.choose(&arrays)?;
    let s = secs[i];
    let n = s.size / stride;
    let mut data = bytes[s.offset..s.offset + s.size].to_vec();
    let grow = n == 0 || u.ratio(1, 2)?;
    if grow {
        let r = if n == 0 { 0 } else { u.int_in_range(0..=n - 1)? };
        let record = if n == 0 { vec![0; stride] } else { data[r * stride..(r + 1) * stride].to_vec() };
        let at = u.int_in_range(0..=n)? * stride;
        data.splice(at..at, record);
    } else {
        let r = u.int_in_range(0..=n - 1)?;
        data.drain(r * stride..(r + 1) * stride);
    }
    let mut out = relayout(bytes, secs, i, data);
    if count_at != usize::MAX && u.ratio(4, 5)? {
        if let Some(meta) = sections(&out).into_iter().find(|m| m.kind == section::META && m.size >= 64) {
            let n = read(&out, meta.offset + count_at, 4).unwrap_or(0);
            let n = if grow { n.wrapping_add(1) } else { n.wrapping_sub(1) } & 0xffff_ffff;
            write(&mut out, meta.offset + count_at, 4, n);
        }
    }
    Ok(Some(out))
}

/// Change a byte of WEIGHTS, mostly in the first 64 bytes of a blob (where a block-sparse
/// tensor keeps its row pointers and columns).
fn weight_byte(u: &mut Unstructured, bytes: &mut [u8], secs: &[Section]) -> Result<()> {
    let Some(w) = secs.iter().find(|s| s.kind == section::WEIGHTS && s.size > 0) else { return Ok(()) };
    let at = if u.ratio(2, 3)? {
        let blobs = w.size.div_ceil(64);
        let blob = u.int_in_range(0..=blobs - 1)? * 64;
        (blob + u.int_in_range(0..=15)?).min(w.size - 1)
    } else {
        u.int_in_range(0..=w.size - 1)?
    };
    let v: u8 = match u.int_in_range(0..=3)? {
        0 => bytes[w.offset + at] ^ (1 << u.int_in_range(0..=7)?),
        1 => bytes[w.offset + at].wrapping_add(1),
        2 => 0xff,
        _ => u.arbitrary()?,
    };
    bytes[w.offset + at] = v;
    Ok(())
}

/// A structure-aware mutant of `bytes` with all checksums recomputed.
pub fn mutate(bytes: &[u8], u: &mut Unstructured) -> Result<Vec<u8>> {
    let mut out = bytes.to_vec();
    let rounds = if u.ratio(2, 3)? { 1 } else { u.int_in_range(2..=4)? };
    for _ in 0..rounds {
        let secs = sections(&out);
        match u.int_in_range(0..=19)? {
            0..=14 => {
                let fs = fields(&out, &secs);
                if fs.is_empty() {
                    continue;
                }
                let f = *u.choose(&fs)?;
                let v = interesting(u, &out, &f)?;
                write(&mut out, f.at, f.width, v);
            }
            15..=16 => weight_byte(u, &mut out, &secs)?,
            17..=18 => {
                if let Some(m) = resize_array(u, &out, &secs)? {
                    out = m;
                }
            }
            _ => {
                // The file cut short or grown (rarely useful beyond the size checks).
                if u.ratio(1, 2)? && !out.is_empty() {
                    let len = u.int_in_range(0..=out.len() - 1)?;
                    out.truncate(len);
                } else {
                    let extra = u.int_in_range(1..=128)?;
                    out.resize(out.len() + extra, 0);
                }
            }
        }
    }
    fix_checksums(&mut out);
    Ok(out)
}
