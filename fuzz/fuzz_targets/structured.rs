//! Structure-aware fuzzing: the input's first byte chooses between a file generated from the
//! rest (`sparq_fuzzgen::generate`, every op kind with mostly legal operands) and a mutant of an
//! embedded golden file with its checksums recomputed (`sparq_fuzzgen::mutate`), so libFuzzer's
//! coverage feedback works on the reader's and the ops' semantic checks rather than on CRCs.
//! `check` loads the file, walks what `sparq inspect` prints and runs it on every kernel path,
//! comparing outputs with the scalar path's; a panic or a mismatch is a crash.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

static GOLDEN: &[u8] = include_bytes!("../../tests/golden/residual_int8_packed.sparq");

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else { return };
    let mut u = Unstructured::new(rest);
    let bytes = if choice & 1 == 0 { sparq_fuzzgen::generate(&mut u) } else { sparq_fuzzgen::mutate(GOLDEN, &mut u) };
    let Ok(bytes) = bytes else { return };
    let outcome = sparq_fuzzgen::check(&bytes);
    if let Some(m) = outcome.mismatch {
        panic!("kernel paths disagree: {m:?}");
    }
    if let Some(rule) = outcome.nonconforming {
        panic!("file breaks FORMAT.md: {rule}");
    }
});
