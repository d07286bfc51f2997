//! Input data for calibration, evaluation and `sparq run`: `.npy` arrays, `.npz` archives (one
//! array per model input), directories of images or of one `.npy` per sample, turned into
//! model-ready f32 samples.
//!
//! A model with several inputs gets its data per input ([`load_inputs`]); a sample of such a
//! model, as the compiler's calibration and evaluation take it, is every input's values
//! concatenated in the model's input order ([`concat_samples`]).
//!
//! Rules: uint8 data (a u8 `.npy` or images) is scaled to [0, 1] first; then, if given,
//! `(x - mean[c]) / std[c]` per channel. Data laid out NHWC (`--layout nhwc`, the default for
//! images and u8 arrays) is transposed to the model's NCHW.

use crate::error::{CompileError, Result};
use npyz::WriterBuilder;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataLayout {
    Nchw,
    Nhwc,
}

#[derive(Clone, Debug, Default)]
pub struct Preprocess {
    pub mean: Option<Vec<f32>>,
    pub std: Option<Vec<f32>>,
    /// Layout of the stored data; `None` picks NHWC for u8/images and NCHW for float arrays.
    pub layout: Option<DataLayout>,
    /// The data are uint8 camera frames for a model that takes them (`--input-dtype u8`): their
    /// values stay 0..=255 (no scaling, no mean/std: the model normalizes), and float data is
    /// refused.
    pub frames: bool,
}

/// A loaded array: shape and values as f32, plus whether it was stored as u8.
#[derive(Clone)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub was_u8: bool,
}

pub fn read_npy(path: &Path) -> Result<Array> {
    let bytes = std::fs::read(path).map_err(|source| CompileError::Io { path: path.into(), source })?;
    parse_npy(&bytes, &path.display().to_string())
}

/// Parse the bytes of a `.npy` file; `what` names it in errors.
///
/// Reads float16/32/64, int8/16/32/64 and uint8/16/32/64 arrays (either byte order) as f32;
/// float16 exactly, 64-bit integers rounded. Any other dtype is refused by name, before its size
/// is trusted.
pub fn parse_npy(bytes: &[u8], what: &str) -> Result<Array> {
    let bad = |r: String| CompileError::Data(format!("{what}: {r}"));
    let mut body = bytes;
    let header = npyz::NpyHeader::from_reader(&mut body).map_err(|e| bad(format!("not a .npy file ({e})")))?;
    // `body` is now the data after the header.
    let npy = npyz::NpyFile::with_header(header, body);
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    if npy.order() == npyz::Order::Fortran {
        return Err(bad("Fortran-ordered arrays are not supported".into()));
    }
    let dtype = npy.dtype();
    let descr = match &dtype {
        npyz::DType::Plain(t) => t.to_string(),
        _ => return Err(bad("structured arrays are not supported".into())),
    };
    let big_endian = descr.starts_with('>');
    let code = descr.trim_start_matches(['<', '>', '|', '=']);
    let item = match code {
        "u1" | "i1" => 1,
        "f2" | "i2" | "u2" => 2,
        "f4" | "i4" | "u4" => 4,
        "f8" | "i8" | "u8" => 8,
        other => {
            return Err(bad(format!(
                "dtype {other} is not supported (float16/32/64, int8/16/32/64 and uint8/16/32/64 are)"
            )))
        }
    };
    // The header's shape is not trusted: it must fit in the bytes that follow the header.
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if count.and_then(|n| n.checked_mul(item)).is_none_or(|need| need > body.len()) {
        return Err(bad(format!("shape {shape:?} of dtype {code} does not fit in the file (truncated or corrupt)")));
    }
    let count = count.unwrap_or(0);
    let read_err = |e: std::io::Error| bad(format!("truncated or corrupt data ({e})"));
    fn to_f32<T: Into<f64>>(v: Vec<T>) -> Vec<f32> {
        v.into_iter().map(|x| x.into() as f32).collect()
    }
    let data: Vec<f32> = match code {
        "f2" => body[..count * 2]
            .chunks_exact(2)
            .map(|b| {
                let bits = if big_endian { u16::from_be_bytes([b[0], b[1]]) } else { u16::from_le_bytes([b[0], b[1]]) };
                f16_to_f32(bits)
            })
            .collect(),
        "f4" => npy.into_vec::<f32>().map_err(read_err)?,
        "f8" => npy.into_vec::<f64>().map_err(read_err)?.into_iter().map(|x| x as f32).collect(),
        "u1" => to_f32(npy.into_vec::<u8>().map_err(read_err)?),
        "i1" => to_f32(npy.into_vec::<i8>().map_err(read_err)?),
        "i2" => to_f32(npy.into_vec::<i16>().map_err(read_err)?),
        "u2" => to_f32(npy.into_vec::<u16>().map_err(read_err)?),
        "i4" => to_f32(npy.into_vec::<i32>().map_err(read_err)?),
        "u4" => to_f32(npy.into_vec::<u32>().map_err(read_err)?),
        "i8" => npy.into_vec::<i64>().map_err(read_err)?.into_iter().map(|x| x as f32).collect(),
        _ => npy.into_vec::<u64>().map_err(read_err)?.into_iter().map(|x| x as f32).collect(),
    };
    if data.len() != count {
        return Err(bad("data length does not match its shape".into()));
    }
    Ok(Array { shape, data, was_u8: code == "u1" })
}

/// IEEE 754 binary16 to binary32, exactly (every half value is an f32 value): the sign, the
/// exponent re-biased from 15 to 127 and the 10-bit mantissa shifted into the 23-bit one;
/// subnormal halves (`m * 2^-24`) become normal f32s; infinities and NaNs (payload kept) stay so.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    match exp {
        0 => {
            // Zero or subnormal: mant * 2^-24, exact in f32.
            let v = mant as f32 * (1.0 / 16_777_216.0);
            if sign != 0 {
                -v
            } else {
                v
            }
        }
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (mant << 13)),
        _ => f32::from_bits(sign | ((exp + 127 - 15) << 23) | (mant << 13)),
    }
}

/// Refuses samples (model inputs of `input_shape`) holding a value that is not a finite number:
/// the error names `what` (the file), the first such sample (counting from 0) and the value's
/// position. Calibration on a NaN or an infinity would give tensors a non-finite range, and the
/// model a scale the runtime refuses at the very end, far from the cause.
pub fn check_finite(samples: &[Vec<f32>], input_shape: &[usize], what: &str) -> Result<()> {
    for (sample, x) in samples.iter().enumerate() {
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            // The position in the model input's dims (without a batch of 1).
            let dims: Vec<usize> = if input_shape.first() == Some(&1) && input_shape.len() > 1 {
                input_shape[1..].to_vec()
            } else {
                input_shape.to_vec()
            };
            let mut rest = index;
            let mut at = vec![0; dims.len()];
            for (a, &d) in at.iter_mut().zip(&dims).rev() {
                *a = rest % d.max(1);
                rest /= d.max(1);
            }
            return Err(CompileError::NonFinite {
                what: what.to_string(),
                sample,
                position: format!("element {index}, at {at:?} of the input's {dims:?}"),
                value: x[index],
            });
        }
    }
    Ok(())
}

pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let mut out = Vec::new();
    {
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&shape.iter().map(|&d| d as u64).collect::<Vec<_>>())
            .writer(&mut out)
            .begin_nd()
            .map_err(|e| CompileError::Data(e.to_string()))?;
        w.extend(data.iter().copied()).map_err(|e| CompileError::Data(e.to_string()))?;
        w.finish().map_err(|e| CompileError::Data(e.to_string()))?;
    }
    sparq_format::writer::write_atomic(path, &out).map_err(|source| CompileError::Write { path: path.into(), source })
}

/// Load images from a directory (PNG/JPEG, sorted by name), resized to `h x w`, as a u8 NHWC
/// array.
pub fn read_image_dir(dir: &Path, h: usize, w: usize) -> Result<Array> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|source| CompileError::Io { path: dir.into(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(CompileError::Data(format!("{}: no .png/.jpg images in this directory", dir.display())));
    }
    let mut data = Vec::with_capacity(files.len() * h * w * 3);
    for f in &files {
        let img = image::open(f).map_err(|e| CompileError::Data(format!("{}: {e}", f.display())))?;
        let img = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle).to_rgb8();
        data.extend(img.into_raw().into_iter().map(|v| v as f32));
    }
    Ok(Array { shape: vec![files.len(), h, w, 3], data, was_u8: true })
}

/// Split an array into per-sample model inputs of `input_shape` (which has batch 1 or the
/// per-sample batch), applying the preprocessing rules.
pub fn to_samples(a: &Array, input_shape: &[usize], pre: &Preprocess, what: &str) -> Result<Vec<Vec<f32>>> {
    if pre.frames && !a.was_u8 {
        return Err(CompileError::Data(format!(
            "{what}: the model takes uint8 camera frames (it was compiled with --input-dtype u8); this data is not uint8"
        )));
    }
    let per_sample: usize = input_shape.iter().product();
    let layout = pre.layout.unwrap_or(if a.was_u8 { DataLayout::Nhwc } else { DataLayout::Nchw });
    let shape_err = || {
        CompileError::Data(format!(
            "{what} has shape {:?}, which is not N samples of the model input shape {:?}{}",
            a.shape,
            input_shape,
            if layout == DataLayout::Nhwc { " (read as NHWC)" } else { "" }
        ))
    };
    if a.shape.is_empty() || per_sample == 0 || !a.data.len().is_multiple_of(per_sample) {
        return Err(shape_err());
    }
    // Expected per-sample dims in the data's own layout.
    let model_dims: Vec<usize> =
        if input_shape.len() == 4 && input_shape[0] == 1 { input_shape[1..].to_vec() } else { input_shape.to_vec() };
    let data_dims: Vec<usize> = if layout == DataLayout::Nhwc && model_dims.len() == 3 {
        vec![model_dims[1], model_dims[2], model_dims[0]]
    } else {
        model_dims.clone()
    };
    let tail = &a.shape[1..];
    let dims_ok = tail == data_dims.as_slice()
        || (tail.len() == data_dims.len() + 1 && tail[0] == 1 && &tail[1..] == data_dims.as_slice())
        || (a.shape.len() == data_dims.len() && a.shape == data_dims);
    if !dims_ok {
        return Err(shape_err());
    }
    let n = a.data.len() / per_sample;
    let channels = if model_dims.len() == 3 { model_dims[0] } else { 1 };
    for (name, v) in [("--mean", &pre.mean), ("--std", &pre.std)] {
        if let Some(v) = v {
            if v.len() != channels && v.len() != 1 {
                return Err(CompileError::PreprocessChannels { option: name, given: v.len(), channels });
            }
        }
    }
    let mut samples = Vec::with_capacity(n);
    for s in 0..n {
        let src = &a.data[s * per_sample..(s + 1) * per_sample];
        let mut x = vec![0f32; per_sample];
        if layout == DataLayout::Nhwc && model_dims.len() == 3 {
            let (c, h, w) = (model_dims[0], model_dims[1], model_dims[2]);
            for y in 0..h {
                for xx in 0..w {
                    for ch in 0..c {
                        x[(ch * h + y) * w + xx] = src[(y * w + xx) * c + ch];
                    }
                }
            }
        } else {
            x.copy_from_slice(src);
        }
        if pre.frames {
            samples.push(x);
            continue;
        }
        let plane = per_sample / channels;
        for (i, v) in x.iter_mut().enumerate() {
            let ch = i / plane;
            if a.was_u8 {
                *v /= 255.0;
            }
            if let Some(m) = &pre.mean {
                *v -= m[if m.len() == 1 { 0 } else { ch }];
            }
            if let Some(sd) = &pre.std {
                *v /= sd[if sd.len() == 1 { 0 } else { ch }];
            }
        }
        samples.push(x);
    }
    Ok(samples)
}

/// Load `.npy`, a directory of images or of `.npy` files (one sample each, sorted by name) as
/// samples for a model input of `input_shape`.
pub fn load_samples(path: &Path, input_shape: &[usize], pre: &Preprocess) -> Result<Vec<Vec<f32>>> {
    let what = path.display().to_string();
    if !path.exists() {
        return Err(CompileError::Io { path: path.into(), source: std::io::Error::from(std::io::ErrorKind::NotFound) });
    }
    let a = if path.is_dir() {
        match read_npy_dir(path)? {
            Some(a) => a,
            None if input_shape.len() != 4 => {
                return Err(CompileError::Data(format!(
                    "{what}: a directory of images needs a rank-4 NCHW model input (this one is {input_shape:?}); \
                     give a .npy file, or a directory of one .npy per sample"
                )))
            }
            None => read_image_dir(path, input_shape[2], input_shape[3])?,
        }
    } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz")) {
        let mut arrays = read_npz(path)?;
        if arrays.len() != 1 {
            let names: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
            return Err(CompileError::Data(format!(
                "{what}: {} arrays ({}) for one input; name the input's array after it",
                arrays.len(),
                names.join(", ")
            )));
        }
        arrays.remove(0).1
    } else {
        read_npy(path)?
    };
    to_samples(&a, input_shape, pre, &what)
}

/// A directory's `.npy` files (sorted by name), one sample each, stacked; `None` when it has none.
fn read_npy_dir(dir: &Path) -> Result<Option<Array>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|source| CompileError::Io { path: dir.into(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")))
        .collect();
    if files.is_empty() {
        return Ok(None);
    }
    files.sort();
    let mut stacked: Option<Array> = None;
    for f in &files {
        let a = read_npy(f)?;
        match &mut stacked {
            None => {
                let mut shape = vec![1];
                shape.extend_from_slice(&a.shape);
                stacked = Some(Array { shape, data: a.data, was_u8: a.was_u8 });
            }
            Some(s) => {
                if s.shape[1..] != a.shape[..] || s.was_u8 != a.was_u8 {
                    return Err(CompileError::Data(format!(
                        "{}: shape {:?} differs from the directory's first sample {:?}",
                        f.display(),
                        a.shape,
                        &s.shape[1..]
                    )));
                }
                s.shape[0] += 1;
                s.data.extend_from_slice(&a.data);
            }
        }
    }
    Ok(stacked)
}

/// The arrays of a `.npz` archive (`numpy.savez`, compressed or not), by name without `.npy`,
/// in archive order.
pub fn read_npz(path: &Path) -> Result<Vec<(String, Array)>> {
    use std::io::Read;
    let what = path.display().to_string();
    let bad = |r: String| CompileError::Data(format!("{what}: {r}"));
    let file = std::fs::File::open(path).map_err(|source| CompileError::Io { path: path.into(), source })?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a .npz archive ({e})")))?;
    let mut out = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| bad(format!("entry {i}: {e}")))?;
        let name = entry.name().to_string();
        // The size a corrupt archive claims is not trusted for the allocation.
        let mut bytes = Vec::with_capacity((entry.size() as usize).min(1 << 26));
        entry.read_to_end(&mut bytes).map_err(|e| bad(format!("{name}: {e}")))?;
        let array = parse_npy(&bytes, &format!("{what}:{name}"))?;
        out.push((name.strip_suffix(".npy").unwrap_or(&name).to_string(), array));
    }
    Ok(out)
}

/// The data for every model input (`inputs`: name and shape, in the model's order), from a
/// command-line flag's values `specs`: one `.npz` whose arrays are named after the inputs, or one
/// `NAME=PATH` per input, or plain paths in input order (each a `.npy`, an image directory or a
/// directory of `.npy` samples). Every input must get the same number of samples; with `finite`,
/// every value must be a finite number (calibration data), and the error names the file. Returns
/// each input's samples.
pub fn load_inputs(
    specs: &[String],
    inputs: &[(String, Vec<usize>)],
    pre: &Preprocess,
    flag: &str,
    finite: bool,
) -> Result<Vec<Vec<Vec<f32>>>> {
    let err = |r: String| CompileError::Data(format!("{flag}: {r}"));
    let names: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
    let listed = || names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    let is_npz = |p: &str| Path::new(p).extension().is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    if specs.len() == 1 && is_npz(&specs[0]) && Path::new(&specs[0]).is_file() {
        let path = Path::new(&specs[0]);
        return load_arrays(read_npz(path)?, &path.display().to_string(), inputs, pre, flag, finite);
    }
    let mut per_input: Vec<Option<(String, Vec<Vec<f32>>)>> = vec![None; inputs.len()];
    if specs.len() != inputs.len() {
        return Err(err(format!(
            "the model has {} input(s) ({}); got {} (give NAME=PATH per input, or one .npz with an array per input)",
            inputs.len(),
            listed(),
            specs.len()
        )));
    }
    for (k, spec) in specs.iter().enumerate() {
        let (slot, file) = match spec.split_once('=') {
            Some((name, file)) if !Path::new(spec).exists() => {
                let i = names
                    .iter()
                    .position(|n| *n == name)
                    .ok_or_else(|| err(format!("{spec}: the model has no input '{name}' (inputs: {})", listed())))?;
                (i, file)
            }
            _ => (k, spec.as_str()),
        };
        if per_input[slot].is_some() {
            return Err(err(format!("input '{}' is given twice", names[slot])));
        }
        let path = Path::new(file);
        per_input[slot] = Some((path.display().to_string(), load_samples(path, &inputs[slot].1, pre)?));
    }
    let per_input: Vec<(String, Vec<Vec<f32>>)> = per_input
        .into_iter()
        .enumerate()
        .map(|(i, p)| p.ok_or_else(|| err(format!("no data for input '{}'", names[i]))))
        .collect::<Result<_>>()?;
    check_counts(per_input, inputs, flag, finite)
}

/// Named arrays already in memory (a `.npz` file's, or numpy arrays handed over by the Python
/// package) as each input's samples: the array named after the input, or the only array for a
/// one-input model whatever its name (`numpy.savez(f, x)` calls it `arr_0`). `source` names where
/// they came from in errors.
pub fn load_arrays(
    mut arrays: Vec<(String, Array)>,
    source: &str,
    inputs: &[(String, Vec<usize>)],
    pre: &Preprocess,
    flag: &str,
    finite: bool,
) -> Result<Vec<Vec<Vec<f32>>>> {
    let mut per_input = Vec::with_capacity(inputs.len());
    for (name, shape) in inputs {
        let only = inputs.len() == 1 && arrays.len() == 1;
        let k = arrays.iter().position(|(n, _)| n == name || only).ok_or_else(|| {
            let have: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
            CompileError::Data(format!(
                "{flag}: {source} has no array '{name}' for input '{name}' (arrays: {})",
                have.join(", ")
            ))
        })?;
        let (n, a) = arrays.remove(k);
        let what = if n == source { n } else { format!("{source}:{n}") };
        let samples = to_samples(&a, shape, pre, &what)?;
        per_input.push((what, samples));
    }
    check_counts(per_input, inputs, flag, finite)
}

/// Every input's samples, after checking that they are as many for each input and, with
/// `finite`, that every value is a finite number; the errors name each input's source.
fn check_counts(
    per_input: Vec<(String, Vec<Vec<f32>>)>,
    inputs: &[(String, Vec<usize>)],
    flag: &str,
    finite: bool,
) -> Result<Vec<Vec<Vec<f32>>>> {
    let err = |r: String| CompileError::Data(format!("{flag}: {r}"));
    let names: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
    let count = per_input[0].1.len();
    if let Some(i) = per_input.iter().position(|(_, s)| s.len() != count) {
        return Err(err(format!(
            "input '{}' has {} samples ({}), input '{}' {count} ({})",
            names[i],
            per_input[i].1.len(),
            per_input[i].0,
            names[0],
            per_input[0].0
        )));
    }
    if finite {
        for ((what, samples), (_, shape)) in per_input.iter().zip(inputs) {
            check_finite(samples, shape, what)?;
        }
    }
    Ok(per_input.into_iter().map(|(_, s)| s).collect())
}

/// Samples of a several-input model as the compiler takes them: sample `s` is every input's
/// sample `s`, concatenated in input order.
pub fn concat_samples(per_input: &[Vec<Vec<f32>>]) -> Vec<Vec<f32>> {
    let count = per_input.first().map_or(0, |p| p.len());
    (0..count).map(|s| per_input.iter().flat_map(|p| p[s].iter().copied()).collect()).collect()
}

/// Sample `s`'s values for each input, from a concatenated sample and the inputs' element counts.
pub fn split_sample<'a>(sample: &'a [f32], lens: &[usize]) -> Vec<&'a [f32]> {
    let mut rest = sample;
    lens.iter()
        .map(|&n| {
            let (head, tail) = rest.split_at(n.min(rest.len()));
            rest = tail;
            head
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.npy` file of `descr` with `shape` and raw little-endian `data`.
    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}").into_bytes();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn half_floats_convert_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        // Every finite half against its definition, (-1)^s * 2^(e-15) * (1 + m/1024) (or
        // 2^-14 * m/1024 for e = 0), computed in f64.
        for h in 0..=u16::MAX {
            let (s, e, m) = (h >> 15, (h >> 10) & 0x1f, h & 0x3ff);
            if e == 0x1f {
                continue;
            }
            let mag = if e == 0 {
                2f64.powi(-14) * m as f64 / 1024.0
            } else {
                2f64.powi(e as i32 - 15) * (1.0 + m as f64 / 1024.0)
            };
            let want = if s == 1 { -mag } else { mag };
            assert_eq!(f16_to_f32(h) as f64, want, "{h:#06x}");
        }
    }

    #[test]
    fn every_dtype_is_read_or_refused_by_name() {
        let half: Vec<u8> = [0x3c00u16, 0xb800, 0x4200].iter().flat_map(|h| h.to_le_bytes()).collect();
        let a = parse_npy(&npy("<f2", "(3,)", &half), "h.npy").unwrap();
        assert_eq!((a.shape, a.data, a.was_u8), (vec![3], vec![1.0, -0.5, 3.0], false));
        let half_be: Vec<u8> = [0x3c00u16, 0xb800].iter().flat_map(|h| h.to_be_bytes()).collect();
        assert_eq!(parse_npy(&npy(">f2", "(2,)", &half_be), "h.npy").unwrap().data, [1.0, -0.5]);
        let cases: [(&str, Vec<u8>); 9] = [
            ("<f4", 1.5f32.to_le_bytes().to_vec()),
            ("<f8", 1.5f64.to_le_bytes().to_vec()),
            ("|u1", vec![200]),
            ("|i1", vec![0xfe]),
            ("<i2", (-7i16).to_le_bytes().to_vec()),
            ("<u2", 7u16.to_le_bytes().to_vec()),
            ("<i4", (-7i32).to_le_bytes().to_vec()),
            ("<i8", (-7i64).to_le_bytes().to_vec()),
            ("<u8", 7u64.to_le_bytes().to_vec()),
        ];
        for (descr, data) in cases {
            let a = parse_npy(&npy(descr, "(1,)", &data), "x.npy").unwrap_or_else(|e| panic!("{descr}: {e}"));
            assert_eq!(a.was_u8, descr == "|u1", "{descr}");
            let want = match descr {
                "<f4" | "<f8" => 1.5,
                "|u1" => 200.0,
                "|i1" => -2.0,
                d if d.starts_with("<u") => 7.0,
                _ => -7.0,
            };
            assert_eq!(a.data, [want], "{descr}");
        }
        // Other dtypes are refused by name, however short the file.
        for descr in ["<c8", "|b1", "<M8[s]", "|S4"] {
            let err = parse_npy(&npy(descr, "(1,)", &[0; 2]), "x.npy").err().expect(descr).to_string();
            assert!(err.contains("is not supported") && !err.contains("truncated"), "{descr}: {err}");
        }
        // A file really missing data is still called truncated.
        let err = parse_npy(&npy("<f2", "(3,)", &half[..4]), "t.npy").err().expect("short").to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn non_finite_samples_are_named_with_their_position() {
        let mut samples = vec![vec![0.0f32; 2 * 3 * 4]; 3];
        assert!(check_finite(&samples, &[1, 2, 3, 4], "c.npy").is_ok());
        samples[2][4 + 12] = f32::NAN; // channel 1, row 1, column 0
        let err = check_finite(&samples, &[1, 2, 3, 4], "c.npy").unwrap_err();
        assert!(matches!(err, CompileError::NonFinite { sample: 2, .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("c.npy") && msg.contains("sample 2") && msg.contains("[1, 1, 0]"), "{msg}");
        samples[2][16] = f32::INFINITY;
        assert!(check_finite(&samples, &[1, 2, 3, 4], "c.npy").unwrap_err().to_string().contains("inf"));
    }

    /// A .npy header claiming far more data than the file holds is an error, not an allocation.
    #[test]
    fn npy_shape_is_not_trusted() {
        let bytes = npy("<f4", "(100000000000, 8)", &[0u8; 64]);
        let err = super::parse_npy(&bytes, "crafted.npy").err().expect("rejected").to_string();
        assert!(err.contains("does not fit"), "{err}");
    }
}
