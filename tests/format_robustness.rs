//! The file is never trusted: mutated compiled models (bit flips, truncation at every section
//! boundary, random overwrites, huge counts) must load as a model or fail with a typed error,
//! and a model that loads must run without panicking.

mod common;

use sparq_compiler::onnx_builder::Rng;
use sparq_compiler::CompileOptions;
use sparq_runtime::{AlignedBytes, Model, Session};

fn compiled_models() -> Vec<Vec<u8>> {
    common::all_models()
        .into_iter()
        .map(|m| {
            let calib = common::samples(&m.input_shape, 4, 9);
            sparq_compiler::compile(&m.onnx, m.name, &calib, &CompileOptions::default()).unwrap().bytes
        })
        .collect()
}

/// Load, and if it loads, run once. Returns whether the model loaded.
fn exercise(bytes: &[u8], verify_crc: bool) -> bool {
    let aligned = AlignedBytes::from_slice(bytes);
    let opts = sparq_runtime::format::ParseOptions { verify_crc };
    match Model::from_bytes_with(&aligned, opts) {
        Ok(model) => {
            let _ = model.name().to_string();
            if model.arena_size() > 64 << 20 {
                return true;
            }
            let mut arena = AlignedBytes::zeroed(model.arena_size());
            let mut session = Session::new(&model, arena.as_mut_slice()).expect("arena of the declared size");
            session.run();
            true
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

#[test]
fn valid_files_load_and_round_trip() {
    for bytes in compiled_models() {
        assert!(exercise(&bytes, true));
    }
}

#[test]
fn mutated_files_never_panic() {
    let models = compiled_models();
    let mut rng = Rng::new(77);
    let (mut cases, mut loaded) = (0usize, 0usize);
    for bytes in &models {
        let view = sparq_runtime::format::FileView::parse(bytes).unwrap();
        // Truncation at every section boundary and around it.
        let mut cuts = vec![0, 1, 8, 63, 64, 65, bytes.len() - 1];
        for i in 0..view.section_count as usize {
            let e = &bytes[64 + 32 * i..64 + 32 * (i + 1)];
            let off = u64::from_le_bytes(e[8..16].try_into().unwrap()) as usize;
            let size = u64::from_le_bytes(e[16..24].try_into().unwrap()) as usize;
            for c in [off.saturating_sub(1), off, off + 1, off + size / 2, off + size] {
                cuts.push(c.min(bytes.len()));
            }
        }
        for c in cuts {
            assert!(!exercise(&bytes[..c], true) || c == bytes.len());
            cases += 1;
        }
        // Structural mutations with checksums ignored, so they reach the deeper validation:
        // bit flips, random byte overwrites, huge and zero counts in descriptors.
        for round in 0..5000 {
            let mut m = bytes.clone();
            match round % 5 {
                4 => {
                    // An op's input or output count changed (found by the fuzzer).
                    let ops =
                        sparq_compiler::onnx_builder::Rng::new(round as u64).next_u64() as usize % view.op_count();
                    let e = &bytes[64 + 32 * 3..64 + 32 * 4];
                    let ops_off = u64::from_le_bytes(e[8..16].try_into().unwrap()) as usize;
                    let field = ops_off + 128 * ops + 4 + 2 * (round / 5 % 2);
                    m[field..field + 2].copy_from_slice(&((rng.next_u64() % 9) as u16).to_le_bytes());
                }
                0 => {
                    let i = (rng.next_u64() as usize) % m.len();
                    m[i] ^= 1 << (rng.next_u64() % 8);
                }
                1 => {
                    for _ in 0..4 {
                        let i = (rng.next_u64() as usize) % m.len();
                        m[i] = rng.next_u64() as u8;
                    }
                }
                2 => {
                    // A 32-bit field in the descriptor area set to an extreme value.
                    let limit = (view.weights_span().offset).min(m.len() - 4);
                    let i = ((rng.next_u64() as usize) % (limit / 4)) * 4;
                    let v: u32 = [u32::MAX, 0, 0x8000_0000, 0x7FFF_FFFF, 1 << 20][(rng.next_u64() % 5) as usize];
                    m[i..i + 4].copy_from_slice(&v.to_le_bytes());
                }
                _ => {
                    // Two section table entries swapped.
                    let n = view.section_count as usize;
                    let (a, b) = ((rng.next_u64() as usize) % n, (rng.next_u64() as usize) % n);
                    let (ea, eb) = (64 + 32 * a, 64 + 32 * b);
                    let tmp: Vec<u8> = m[ea..ea + 32].to_vec();
                    m.copy_within(eb..eb + 32, ea);
                    m[eb..eb + 32].copy_from_slice(&tmp);
                }
            }
            loaded += exercise(&m, false) as usize;
            // With checksums on, any change to covered bytes must be caught.
            if m != *bytes {
                assert!(!exercise(&m, true), "a mutated file passed its checksums (round {round})");
            }
            cases += 2;
        }
    }
    println!("{cases} mutated files: none panicked ({loaded} structurally valid mutations loaded and ran)");
    assert!(cases >= 20_000);
}
