//! Structure-aware fuzzing of the `.sparq` reader and runtime (issue 21).
//!
//! The random byte mutator of `tests/format_robustness.rs` rarely gets past the CRC-32
//! checksums. This crate gets past them on purpose: [`generate`] builds random graphs with the
//! format's own writer (every op kind, legal parameters most of the time, illegal ones now and
//! then), [`mutate`] changes fields of an existing file by the offsets of
//! `sparq_format::layout` and recomputes every checksum ([`fix_checksums`]), and [`check`] does
//! what `sparq inspect` and `sparq run` do, on every kernel path, comparing outputs with the
//! scalar path's. The `sparq-fuzz` binary drives them in batches of child processes, so a panic,
//! a signal or a hang is found and the file named; `fuzz/fuzz_targets/structured.rs` puts the
//! same library under libFuzzer.

pub mod check;
pub mod generate;
pub mod mutate;

pub use check::{check, Mismatch, Outcome};
pub use generate::generate;
pub use mutate::{fix_checksums, mutate};

/// A deterministic byte source for [`arbitrary::Unstructured`]: `len` bytes of SplitMix64 output
/// seeded with `seed` (the driver's cases are reproducible from the seed and the case number).
pub fn seed_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An error message with its numbers replaced by `#`, so that messages differing only in an
/// index count as one.
pub fn error_class(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_number = false;
    for c in message.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}
