//! Any byte string given to `Model::from_bytes` yields a model or a typed error; a model that
//! loads runs without panicking or reading out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparq_runtime::format::ParseOptions;
use sparq_runtime::{AlignedBytes, Model, Session};

fuzz_target!(|data: &[u8]| {
    let aligned = AlignedBytes::from_slice(data);
    // With checksums the fuzzer rarely gets past them; without, it reaches the deep checks.
    for verify_crc in [true, false] {
        if let Ok(model) = Model::from_bytes_with(&aligned, ParseOptions { verify_crc }) {
            if model.arena_size() <= 16 << 20 {
                let mut arena = AlignedBytes::zeroed(model.arena_size());
                let mut session = Session::new(&model, arena.as_mut_slice()).expect("arena of the declared size");
                session.run();
            }
        }
    }
});
