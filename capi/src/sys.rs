//! What the standard library provides in the `std` build, from the C library instead: the
//! allocator behind the handles, the panic handler, and reading a model file.

use super::OwnedBytes;
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_char, c_int, c_long, c_void, CStr};

#[link(name = "c")]
extern "C" {
    fn malloc(size: usize) -> *mut c_void;
    fn free(ptr: *mut c_void);
    fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int;
    fn abort() -> !;
    fn fopen(path: *const c_char, mode: *const c_char) -> *mut c_void;
    fn fclose(file: *mut c_void) -> c_int;
    fn fread(ptr: *mut c_void, size: usize, count: usize, file: *mut c_void) -> usize;
    fn fseek(file: *mut c_void, offset: c_long, whence: c_int) -> c_int;
    fn ftell(file: *mut c_void) -> c_long;
}

const SEEK_SET: c_int = 0;
const SEEK_END: c_int = 2;

/// `malloc` for the usual alignments, `posix_memalign` for larger ones (the 64-byte model copy).
struct CAllocator;

// SAFETY: the C allocator returns blocks of at least the requested size and alignment (or NULL),
// and `free` releases blocks from either function.
unsafe impl GlobalAlloc for CAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= 16 {
            // SAFETY: plain C call; glibc and bionic align malloc to 16 bytes on 64-bit targets
            // (8 on 32-bit ARM, whose largest Rust alignment here is 8).
            return unsafe { malloc(layout.size()) }.cast();
        }
        let mut p = core::ptr::null_mut();
        // SAFETY: `align` is a power of two and a multiple of the pointer size.
        if unsafe { posix_memalign(&mut p, layout.align(), layout.size()) } != 0 {
            return core::ptr::null_mut();
        }
        p.cast()
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc`.
        unsafe { free(ptr.cast()) }
    }
}

#[global_allocator]
static ALLOCATOR: CAllocator = CAllocator;

/// A panic is a bug in sparq; without std there is nothing to unwind into, so the process stops.
#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: plain C call.
    unsafe { abort() }
}

/// The whole file at `path`, 64-byte aligned.
pub(crate) fn read_file(path: &CStr) -> Result<OwnedBytes, &'static str> {
    // SAFETY: C stdio on a NUL-terminated path; the file is closed on every path out.
    unsafe {
        let f = fopen(path.as_ptr(), c"rb".as_ptr());
        if f.is_null() {
            return Err("cannot open the file");
        }
        let result = (|| {
            if fseek(f, 0, SEEK_END) != 0 {
                return Err("cannot seek in the file");
            }
            let len = ftell(f);
            if len < 0 || fseek(f, 0, SEEK_SET) != 0 {
                return Err("cannot tell the file's size");
            }
            let mut bytes = OwnedBytes::zeroed(len as usize).ok_or("cannot allocate memory for the file")?;
            let buf = bytes.as_mut_slice();
            if fread(buf.as_mut_ptr().cast(), 1, buf.len(), f) != buf.len() {
                return Err("cannot read the whole file");
            }
            Ok(bytes)
        })();
        fclose(f);
        result
    }
}

/// The precompiled `core`/`alloc` objects refer to the unwinder's personality routine from their
/// unwind tables, even with `panic = "abort"`, where it is never called. The std build gets it
/// from std; a static library without std must define the symbol for the C linker.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}
