//! The C API of the sparq runtime: the functions declared in `runtime/include/sparq.h`.
//!
//! Handles are boxed Rust objects behind opaque pointers. A model owns its bytes (a copy, or a
//! memory mapping) and the validated `Model` that borrows them; a session borrows its model and
//! the caller's arena, which the C caller keeps alive (documented in the header). No global
//! state. Every entry point checks its pointers.
//!
//! Two builds:
//! - `std` (default): `sparq_model_open` maps the file, sessions may use several threads, and
//!   every entry point catches panics, so a C caller never sees an unwind;
//! - without default features (`--no-default-features`, with `panic = "abort"`, as the
//!   `device-nostd` profile sets): `#![no_std]` over the no_std runtime, for the smallest
//!   library. Handles are allocated with the C library's `malloc`, `sparq_model_open` reads the
//!   file into memory with C stdio, sessions are single-threaded (more threads is an error), and
//!   a panic (a bug) aborts the process.
#![cfg_attr(not(feature = "std"), no_std)]
#![allow(non_camel_case_types)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use core::ffi::{c_char, c_void, CStr};
#[cfg(feature = "std")]
use sparq_runtime::MappedModel;
use sparq_runtime::{Model, RuntimeError, Session, SessionOptions, DEFAULT_MAX_ARENA};

#[cfg(not(feature = "std"))]
mod sys;

/// A heap copy of a model, 64-byte aligned (the runtime reads the weights in place).
struct OwnedBytes {
    ptr: core::ptr::NonNull<u8>,
    len: usize,
}

impl OwnedBytes {
    fn layout(len: usize) -> core::alloc::Layout {
        core::alloc::Layout::from_size_align(len.max(1), 64).expect("64 is a power of two")
    }
    /// `len` zero bytes, or `None` when the allocation fails.
    fn zeroed(len: usize) -> Option<OwnedBytes> {
        if len > isize::MAX as usize - 64 {
            return None;
        }
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc::alloc_zeroed(Self::layout(len)) };
        core::ptr::NonNull::new(ptr).map(|ptr| OwnedBytes { ptr, len })
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `len` bytes were allocated (and zeroed) at `ptr`, owned by `self`.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
    /// The bytes for the lifetime of the handle that owns them: the heap block does not move
    /// when `self` does, and the handle drops its `Model` first (field order).
    unsafe fn as_static(&self) -> &'static [u8] {
        // SAFETY: as above; the caller keeps `self` alive while the slice is used.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for OwnedBytes {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { alloc::alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum sparq_status {
    SPARQ_OK = 0,
    SPARQ_ERROR_ARGUMENT = 1,
    SPARQ_ERROR_IO = 2,
    SPARQ_ERROR_MODEL = 3,
    SPARQ_ERROR_ARENA = 4,
    SPARQ_ERROR_RUNTIME = 5,
}
use sparq_status::*;

/// What a model handle owns (held for its lifetime, never read directly).
#[allow(dead_code)]
enum Bytes {
    Owned(OwnedBytes),
    #[cfg(feature = "std")]
    Mapped(MappedModel),
}

pub struct sparq_model {
    // Field order: `model` borrows from `bytes` and is dropped first.
    model: Model<'static>,
    _bytes: Bytes,
}

pub struct sparq_session {
    session: Session<'static, 'static>,
}

fn status_of(e: &RuntimeError) -> sparq_status {
    match e {
        RuntimeError::Format(_) | RuntimeError::InvalidOp { .. } | RuntimeError::UnknownOp { .. } => SPARQ_ERROR_MODEL,
        RuntimeError::ArenaTooSmall { .. } | RuntimeError::ArenaMisaligned { .. } | RuntimeError::ArenaLimit { .. } => {
            SPARQ_ERROR_ARENA
        }
        RuntimeError::GraphIo { .. } => SPARQ_ERROR_MODEL,
        RuntimeError::NoSuchInput { .. }
        | RuntimeError::NoSuchOutput { .. }
        | RuntimeError::InputLength { .. }
        | RuntimeError::InputDType { .. }
        | RuntimeError::InputNotU8 { .. } => SPARQ_ERROR_ARGUMENT,
        #[cfg(feature = "std")]
        RuntimeError::Io(_) => SPARQ_ERROR_IO,
        _ => SPARQ_ERROR_RUNTIME,
    }
}

/// Write `msg` (truncated, NUL-terminated) into the caller's buffer, if any.
unsafe fn write_err(err: *mut c_char, err_len: usize, msg: &str) {
    if err.is_null() || err_len == 0 {
        return;
    }
    let n = msg.len().min(err_len - 1);
    // SAFETY: the caller provides `err_len` writable bytes at `err`.
    unsafe {
        core::ptr::copy_nonoverlapping(msg.as_ptr(), err.cast::<u8>(), n);
        *err.add(n) = 0;
    }
}

/// Run `f`; with std, a panic becomes an internal error instead of unwinding into C.
#[cfg(feature = "std")]
fn catch(f: impl FnOnce() -> Result<(), (sparq_status, String)>) -> Result<(), (sparq_status, String)> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err((SPARQ_ERROR_RUNTIME, "internal error (panic)".into())))
}

/// Run `f` (without std a panic aborts: the build uses `panic = "abort"`).
#[cfg(not(feature = "std"))]
fn catch(f: impl FnOnce() -> Result<(), (sparq_status, String)>) -> Result<(), (sparq_status, String)> {
    f()
}

/// Run `f`, turning its error (or a panic) into a status and a message.
unsafe fn guard(
    err: *mut c_char,
    err_len: usize,
    f: impl FnOnce() -> Result<(), (sparq_status, String)>,
) -> sparq_status {
    match catch(f) {
        Ok(()) => {
            // SAFETY: the caller's buffer contract.
            unsafe { write_err(err, err_len, "") };
            SPARQ_OK
        }
        Err((status, msg)) => {
            // SAFETY: the caller's buffer contract.
            unsafe { write_err(err, err_len, &msg) };
            status
        }
    }
}

fn runtime(e: RuntimeError) -> (sparq_status, String) {
    (status_of(&e), e.to_string())
}

fn argument(msg: &str) -> (sparq_status, String) {
    (SPARQ_ERROR_ARGUMENT, msg.to_string())
}

#[no_mangle]
pub extern "C" fn sparq_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), " (format 1.3)\0").as_ptr().cast()
}

/// # Safety
/// `data` must point to `len` readable bytes; `out` to a writable pointer; `err` to `err_len`
/// writable bytes or be NULL.
#[no_mangle]
pub unsafe extern "C" fn sparq_model_from_memory(
    data: *const c_void,
    len: usize,
    out: *mut *mut sparq_model,
    err: *mut c_char,
    err_len: usize,
) -> sparq_status {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        guard(err, err_len, || {
            if data.is_null() || out.is_null() {
                return Err(argument("data and out must not be NULL"));
            }
            let mut bytes = OwnedBytes::zeroed(len).ok_or_else(|| argument("cannot allocate a copy of the model"))?;
            bytes.as_mut_slice().copy_from_slice(core::slice::from_raw_parts(data.cast::<u8>(), len));
            // SAFETY: `bytes` moves into the handle and is dropped after `model` (field order).
            let model = Model::from_bytes(bytes.as_static()).map_err(runtime)?;
            *out = Box::into_raw(Box::new(sparq_model { model, _bytes: Bytes::Owned(bytes) }));
            Ok(())
        })
    }
}

/// # Safety
/// `path` must be a NUL-terminated string; `out` a writable pointer; `err` as above.
#[no_mangle]
pub unsafe extern "C" fn sparq_model_open(
    path: *const c_char,
    out: *mut *mut sparq_model,
    err: *mut c_char,
    err_len: usize,
) -> sparq_status {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        guard(err, err_len, || {
            if path.is_null() || out.is_null() {
                return Err(argument("path and out must not be NULL"));
            }
            let p = CStr::from_ptr(path).to_str().map_err(|_| argument("path is not UTF-8"))?;
            #[cfg(feature = "std")]
            {
                let mapped = Model::open(p).map_err(|e| {
                    let (s, m) = runtime(e);
                    (s, format!("{p}: {m}"))
                })?;
                // SAFETY: the mapping stays at its address until `mapped` is dropped, after
                // `model`.
                let model: Model<'static> = core::mem::transmute::<Model<'_>, Model<'static>>(*mapped.model());
                *out = Box::into_raw(Box::new(sparq_model { model, _bytes: Bytes::Mapped(mapped) }));
            }
            #[cfg(not(feature = "std"))]
            {
                let bytes = sys::read_file(CStr::from_ptr(path)).map_err(|m| (SPARQ_ERROR_IO, format!("{p}: {m}")))?;
                // SAFETY: as in `sparq_model_from_memory`.
                let model = Model::from_bytes(bytes.as_static()).map_err(|e| {
                    let (s, m) = runtime(e);
                    (s, format!("{p}: {m}"))
                })?;
                *out = Box::into_raw(Box::new(sparq_model { model, _bytes: Bytes::Owned(bytes) }));
            }
            Ok(())
        })
    }
}

/// # Safety
/// `model` must come from `sparq_model_*` and not be used afterwards (NULL is ignored); no
/// session of it may remain.
#[no_mangle]
pub unsafe extern "C" fn sparq_model_free(model: *mut sparq_model) {
    if !model.is_null() {
        // SAFETY: created by Box::into_raw in this crate.
        drop(unsafe { Box::from_raw(model) });
    }
}

/// # Safety
/// `model` must be a live model handle or NULL (then 0).
#[no_mangle]
pub unsafe extern "C" fn sparq_model_arena_size(model: *const sparq_model) -> usize {
    // SAFETY: the caller's contract.
    unsafe { model.as_ref() }.map_or(0, |m| m.model.arena_size())
}

/// # Safety
/// As `sparq_model_arena_size`.
#[no_mangle]
pub unsafe extern "C" fn sparq_model_input_count(model: *const sparq_model) -> usize {
    // SAFETY: the caller's contract.
    unsafe { model.as_ref() }.map_or(0, |m| m.model.input_count())
}

/// # Safety
/// As `sparq_model_arena_size`.
#[no_mangle]
pub unsafe extern "C" fn sparq_model_output_count(model: *const sparq_model) -> usize {
    // SAFETY: the caller's contract.
    unsafe { model.as_ref() }.map_or(0, |m| m.model.output_count())
}

/// # Safety
/// As `sparq_model_arena_size`.
#[no_mangle]
pub unsafe extern "C" fn sparq_model_input_elements(model: *const sparq_model, index: usize) -> usize {
    // SAFETY: the caller's contract.
    unsafe { model.as_ref() }.and_then(|m| m.model.input(index)).map_or(0, |t| t.elements())
}

/// # Safety
/// As `sparq_model_arena_size`.
#[no_mangle]
pub unsafe extern "C" fn sparq_model_output_elements(model: *const sparq_model, index: usize) -> usize {
    // SAFETY: the caller's contract.
    unsafe { model.as_ref() }.and_then(|m| m.model.output(index)).map_or(0, |t| t.elements())
}

/// Copy `name` NUL-terminated into `buf` (`len` bytes, truncated to fit); returns the name's full
/// length in bytes (without the NUL), as `snprintf` does.
///
/// # Safety
/// `buf` NULL or valid for `len` bytes.
unsafe fn copy_name(name: &str, buf: *mut c_char, len: usize) -> usize {
    if !buf.is_null() && len > 0 {
        let n = name.len().min(len - 1);
        // SAFETY: `buf` holds `len > n` bytes (the caller's contract).
        unsafe {
            core::ptr::copy_nonoverlapping(name.as_ptr().cast::<c_char>(), buf, n);
            *buf.add(n) = 0;
        }
    }
    name.len()
}

/// # Safety
/// `model` a live model handle or NULL; `buf` NULL or valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn sparq_model_input_name(
    model: *const sparq_model,
    index: usize,
    buf: *mut c_char,
    len: usize,
) -> usize {
    // SAFETY: the caller's contract.
    match unsafe { model.as_ref() }.and_then(|m| m.model.input(index)) {
        Some(t) => unsafe { copy_name(t.name, buf, len) },
        None => 0,
    }
}

/// # Safety
/// As `sparq_model_input_name`.
#[no_mangle]
pub unsafe extern "C" fn sparq_model_output_name(
    model: *const sparq_model,
    index: usize,
    buf: *mut c_char,
    len: usize,
) -> usize {
    // SAFETY: the caller's contract.
    match unsafe { model.as_ref() }.and_then(|m| m.model.output(index)) {
        Some(t) => unsafe { copy_name(t.name, buf, len) },
        None => 0,
    }
}

/// The index of the input (`output` 0) or output (`output` 1) named `name`, or `SIZE_MAX`.
///
/// # Safety
/// `model` a live model handle or NULL; `name` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn sparq_model_find(model: *const sparq_model, output: i32, name: *const c_char) -> usize {
    // SAFETY: the caller's contract.
    let (Some(m), false) = (unsafe { model.as_ref() }, name.is_null()) else {
        return usize::MAX;
    };
    // SAFETY: the caller's contract.
    let Ok(name) = unsafe { CStr::from_ptr(name) }.to_str() else {
        return usize::MAX;
    };
    let name_at = |i: usize| if output != 0 { m.model.output(i) } else { m.model.input(i) }.map(|t| t.name);
    let count = if output != 0 { m.model.output_count() } else { m.model.input_count() };
    (0..count).find(|&i| name_at(i) == Some(name)).unwrap_or(usize::MAX)
}

/// The rank of input (`output` 0) or output (`output` 1) `index`, its dims (ONNX order) copied to
/// `dims` (up to `max` of them); 0 if out of range.
///
/// # Safety
/// `model` a live model handle or NULL; `dims` NULL or valid for `max` values.
#[no_mangle]
pub unsafe extern "C" fn sparq_model_dims(
    model: *const sparq_model,
    output: i32,
    index: usize,
    dims: *mut usize,
    max: usize,
) -> usize {
    // SAFETY: the caller's contract.
    let Some(m) = (unsafe { model.as_ref() }) else {
        return 0;
    };
    let t = if output != 0 { m.model.output(index) } else { m.model.input(index) };
    let Some(t) = t else {
        return 0;
    };
    let shape = t.shape();
    if !dims.is_null() {
        for (i, &d) in shape.iter().take(max).enumerate() {
            // SAFETY: `i < max` (the caller's contract).
            unsafe { *dims.add(i) = d };
        }
    }
    shape.len()
}

/// `max_arena` as the C API reads it: 0 stands for the default limit.
fn arena_limit(max_arena: usize) -> usize {
    if max_arena == 0 {
        DEFAULT_MAX_ARENA
    } else {
        max_arena
    }
}

/// # Safety
/// `model` a live model handle or NULL; `err` as above.
#[no_mangle]
pub unsafe extern "C" fn sparq_model_check_arena(
    model: *const sparq_model,
    max_arena: usize,
    err: *mut c_char,
    err_len: usize,
) -> sparq_status {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        guard(err, err_len, || {
            let m = model.as_ref().ok_or_else(|| argument("model must not be NULL"))?;
            m.model.check_arena(arena_limit(max_arena)).map_err(runtime)?;
            Ok(())
        })
    }
}

/// # Safety
/// `model` a live model handle; `arena` `arena_len` writable bytes that outlive the session and
/// are used by nothing else meanwhile; `out` writable; `err` as above.
#[no_mangle]
pub unsafe extern "C" fn sparq_session_create(
    model: *const sparq_model,
    arena: *mut c_void,
    arena_len: usize,
    threads: usize,
    out: *mut *mut sparq_session,
    err: *mut c_char,
    err_len: usize,
) -> sparq_status {
    // SAFETY: the caller's contract, forwarded.
    unsafe { sparq_session_create_ex(model, arena, arena_len, threads, 0, out, err, err_len) }
}

/// # Safety
/// As `sparq_session_create`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sparq_session_create_ex(
    model: *const sparq_model,
    arena: *mut c_void,
    arena_len: usize,
    threads: usize,
    max_arena: usize,
    out: *mut *mut sparq_session,
    err: *mut c_char,
    err_len: usize,
) -> sparq_status {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        guard(err, err_len, || {
            let m = model.as_ref().ok_or_else(|| argument("model must not be NULL"))?;
            if arena.is_null() || out.is_null() {
                return Err(argument("arena and out must not be NULL"));
            }
            // SAFETY: the caller keeps the model and the arena alive and unaliased for the
            // session's lifetime (the header's contract), which the 'static lifetimes stand for.
            let model: &'static Model<'static> = &*(&m.model as *const Model<'static>);
            let arena: &'static mut [u8] = core::slice::from_raw_parts_mut(arena.cast::<u8>(), arena_len);
            let options = SessionOptions { threads, max_arena: arena_limit(max_arena) };
            let session = Session::with_options(model, arena, options).map_err(runtime)?;
            *out = Box::into_raw(Box::new(sparq_session { session }));
            Ok(())
        })
    }
}

/// # Safety
/// `session` must come from `sparq_session_create` and not be used afterwards (NULL ignored).
#[no_mangle]
pub unsafe extern "C" fn sparq_session_free(session: *mut sparq_session) {
    if !session.is_null() {
        // SAFETY: created by Box::into_raw in this crate.
        drop(unsafe { Box::from_raw(session) });
    }
}

/// # Safety
/// `session` a live session handle; `data` `len` readable floats; `err` as above.
#[no_mangle]
pub unsafe extern "C" fn sparq_session_set_input_f32(
    session: *mut sparq_session,
    index: usize,
    data: *const f32,
    len: usize,
    err: *mut c_char,
    err_len: usize,
) -> sparq_status {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        guard(err, err_len, || {
            let s = session.as_mut().ok_or_else(|| argument("session must not be NULL"))?;
            if data.is_null() {
                return Err(argument("data must not be NULL"));
            }
            s.session.set_input(index, core::slice::from_raw_parts(data, len)).map_err(runtime)
        })
    }
}

/// # Safety
/// `session` a live session handle; `data` `len` readable bytes; `err` as above.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sparq_session_set_input_i8(
    session: *mut sparq_session,
    index: usize,
    data: *const i8,
    len: usize,
    scale: f32,
    zero_point: i32,
    err: *mut c_char,
    err_len: usize,
) -> sparq_status {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        guard(err, err_len, || {
            let s = session.as_mut().ok_or_else(|| argument("session must not be NULL"))?;
            if data.is_null() {
                return Err(argument("data must not be NULL"));
            }
            if !(scale.is_finite() && scale > 0.0) {
                return Err(argument("scale must be a positive finite number"));
            }
            let q = core::slice::from_raw_parts(data, len);
            let x = s.session.input_mut(index).map_err(runtime)?;
            if x.len() != len {
                return Err(runtime(RuntimeError::InputLength { index, expected: x.len(), given: len }));
            }
            for (d, &v) in x.iter_mut().zip(q) {
                *d = sparq_runtime::quant::dequantize_i8(v, scale, zero_point);
            }
            Ok(())
        })
    }
}

/// # Safety
/// `session` a live session handle; `data` `len` readable bytes; `err` as above.
#[no_mangle]
pub unsafe extern "C" fn sparq_session_set_input_u8(
    session: *mut sparq_session,
    index: usize,
    data: *const u8,
    len: usize,
    err: *mut c_char,
    err_len: usize,
) -> sparq_status {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        guard(err, err_len, || {
            let s = session.as_mut().ok_or_else(|| argument("session must not be NULL"))?;
            if data.is_null() {
                return Err(argument("data must not be NULL"));
            }
            s.session.set_input_u8(index, core::slice::from_raw_parts(data, len)).map_err(runtime)
        })
    }
}

/// # Safety
/// `session` a live session handle; `err` as above.
#[no_mangle]
pub unsafe extern "C" fn sparq_session_run(
    session: *mut sparq_session,
    err: *mut c_char,
    err_len: usize,
) -> sparq_status {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        guard(err, err_len, || {
            let s = session.as_mut().ok_or_else(|| argument("session must not be NULL"))?;
            s.session.run();
            Ok(())
        })
    }
}

/// # Safety
/// `session` a live session handle; `out` `len` writable floats; `err` as above.
#[no_mangle]
pub unsafe extern "C" fn sparq_session_get_output_f32(
    session: *const sparq_session,
    index: usize,
    out: *mut f32,
    len: usize,
    err: *mut c_char,
    err_len: usize,
) -> sparq_status {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        guard(err, err_len, || {
            let s = session.as_ref().ok_or_else(|| argument("session must not be NULL"))?;
            if out.is_null() {
                return Err(argument("out must not be NULL"));
            }
            let y = s.session.output(index).map_err(runtime)?;
            if y.len() != len {
                return Err(argument(&format!("output {index} has {} values, {len} requested", y.len())));
            }
            core::slice::from_raw_parts_mut(out, len).copy_from_slice(y);
            Ok(())
        })
    }
}

/// # Safety
/// `session` a live session handle or NULL.
#[no_mangle]
pub unsafe extern "C" fn sparq_session_kernels(session: *const sparq_session) -> *const c_char {
    // SAFETY: the caller's contract.
    match unsafe { session.as_ref() }.map(|s| s.session.kernels()) {
        Some("avx2") => c"avx2".as_ptr(),
        Some("avxvnni") => c"avxvnni".as_ptr(),
        Some("avx512") => c"avx512".as_ptr(),
        Some("avx512vnni") => c"avx512vnni".as_ptr(),
        Some("neon") => c"neon".as_ptr(),
        Some("dotprod") => c"dotprod".as_ptr(),
        Some("i8mm") => c"i8mm".as_ptr(),
        Some("armv7-neon") => c"armv7-neon".as_ptr(),
        Some(_) => c"scalar".as_ptr(),
        None => c"".as_ptr(),
    }
}
