//! Typed views of a model's tensors: constants in place in the file, arena tensors in the
//! session's arena.

use sparq_format::{DType, FileView, TensorInfo};

/// Element types a tensor slice can be viewed as. Any bit pattern is a valid value of each.
pub trait Element: Copy + 'static {
    const DTYPE: DType;
}
impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
impl Element for i8 {
    const DTYPE: DType = DType::I8;
}
impl Element for i16 {
    const DTYPE: DType = DType::I16;
}
impl Element for i32 {
    const DTYPE: DType = DType::I32;
}

/// A constant tensor's data, in place in the file.
pub fn constant_slice<'a, T: Element>(view: &FileView<'a>, t: &TensorInfo<'_>) -> &'a [T] {
    let bytes = view.constant_bytes(t);
    debug_assert_eq!(t.dtype.size(), core::mem::size_of::<T>());
    // SAFETY: the reader checked that the WEIGHTS section starts at a 4-byte aligned address and
    // that every constant starts at a multiple of 64 from it and lies inside it, with
    // `data_size = elements * size_of::<T>()`. Every bit pattern is a valid `T` (f32, i8, i16, i32).
    unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), bytes.len() / core::mem::size_of::<T>()) }
}
