//! The generator makes files that mostly load and use every op kind; `fix_checksums` gets a
//! mutant past the CRCs; mutants reach the reader's and the ops' semantic checks.
//!
//! These tests only load files (`Model::from_bytes`): running them is the driver's job, in child
//! processes, where a panic of the runtime is a finding rather than a failed test.

use arbitrary::Unstructured;
use sparq_format::layout::op;
use sparq_format::{DType, Storage};
use sparq_fuzzgen::generate::KINDS;
use sparq_fuzzgen::{error_class, fix_checksums, generate, mutate, seed_bytes};
use sparq_runtime::{AlignedBytes, Model, RuntimeError};
use std::collections::{BTreeMap, BTreeSet};

const GOLDEN: &[&[u8]] = &[
    include_bytes!("../../../tests/golden/residual_f32.sparq"),
    include_bytes!("../../../tests/golden/residual_int8.sparq"),
    include_bytes!("../../../tests/golden/residual_int8_packed.sparq"),
];

fn load(bytes: &[u8]) -> (AlignedBytes, Result<(), String>) {
    let aligned = AlignedBytes::from_slice(bytes);
    let r = Model::from_bytes(aligned.as_slice()).map(|_| ()).map_err(|e| e.to_string());
    (aligned, r)
}

#[test]
fn generated_files_mostly_load_and_cover_every_op_kind() {
    let (mut loaded, mut made) = (0, 0);
    let mut kinds = BTreeSet::new();
    let mut packed_or_sparse = BTreeSet::new();
    // (kind, output dtype) of the int16 forms (1.6) and per-channel lookups (1.7) that loaded.
    let mut int16_forms = BTreeSet::new();
    for seed in 0..500u64 {
        let data = seed_bytes(seed, 8192);
        let Ok(bytes) = generate(&mut Unstructured::new(&data)) else { continue };
        made += 1;
        let aligned = AlignedBytes::from_slice(&bytes);
        let Ok(model) = Model::from_bytes(aligned.as_slice()) else { continue };
        loaded += 1;
        for i in 0..model.op_count() {
            let o = model.op(i);
            kinds.insert(o.kind);
            let (x, y) = (model.tensor(o.input(0)).dtype, model.tensor(o.output(0)).dtype);
            if x == DType::I16 || y == DType::I16 || (o.kind == op::LOOKUP && o.params[op::LOOKUP_PER_CHANNEL] == 1) {
                int16_forms.insert((o.kind, x as u8, y as u8));
            }
            if matches!(o.kind, op::CONV2D | op::FULLY_CONNECTED) {
                let w = model.tensor(o.input(1));
                let y = model.tensor(o.output(0));
                packed_or_sparse.insert((o.kind, w.layout as u8, model.tensor(o.input(0)).dtype == y.dtype));
            }
        }
    }
    assert!(made >= 490, "only {made} of 500 seeds made a file");
    assert!(loaded * 100 >= 60 * made, "only {loaded} of {made} generated files load");
    let missing: Vec<&str> = KINDS.iter().filter(|k| !kinds.contains(k)).map(|&k| op::name(k)).collect();
    assert!(missing.is_empty(), "no loaded file has {missing:?}");
    // Conv2d and FullyConnected on row-major, packed and block-sparse weights, FullyConnected
    // also i8 -> f32.
    for layout in [0u8, 2, 3] {
        assert!(packed_or_sparse.contains(&(op::CONV2D, layout, true)), "Conv2d, weight layout {layout}");
        assert!(packed_or_sparse.contains(&(op::FULLY_CONNECTED, layout, true)), "FC, weight layout {layout}");
    }
    assert!(packed_or_sparse.contains(&(op::FULLY_CONNECTED, 3, false)), "block-sparse FC i8 -> f32");
    // Every int16 form runs in some loaded file, and per-channel lookups into int8 and int16.
    let (i8, i16, f32) = (DType::I8 as u8, DType::I16 as u8, DType::F32 as u8);
    for form in [
        (op::CONV2D, i16, i16),
        (op::DEPTHWISE_CONV2D, i16, i16),
        (op::FULLY_CONNECTED, i16, i16),
        (op::ADD, i16, i16),
        (op::GLOBAL_AVERAGE_POOL, i16, i16),
        (op::RESHAPE, i16, i16),
        (op::QUANTIZE, f32, i16),
        (op::DEQUANTIZE, i16, f32),
        (op::REQUANTIZE, i8, i16),
        (op::REQUANTIZE, i16, i8),
        (op::LOOKUP, i8, i8),
        (op::LOOKUP, i8, i16),
    ] {
        assert!(int16_forms.contains(&form), "no loaded file has {} {} -> {}", op::name(form.0), form.1, form.2);
    }
    eprintln!("{loaded} of {made} generated files load");
}

#[test]
fn generation_is_deterministic() {
    let data = seed_bytes(42, 8192);
    let a = generate(&mut Unstructured::new(&data)).unwrap();
    let b = generate(&mut Unstructured::new(&data)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn fix_checksums_gets_a_changed_golden_file_past_the_crcs() {
    let golden = GOLDEN[2];
    let (_, ok) = load(golden);
    ok.unwrap();
    // Change one bias value of an int8 layer: a semantically harmless edit in WEIGHTS.
    let aligned = AlignedBytes::from_slice(golden);
    let model = Model::from_bytes(aligned.as_slice()).unwrap();
    let v = model.view();
    let bias = (0..v.tensor_count())
        .map(|i| v.tensor(i))
        .find(|t| t.storage == Storage::Constant && t.dtype == DType::I32 && t.data_size > 0)
        .expect("an int32 constant");
    let at = v.weights_span().offset + bias.data_offset;
    let mut changed = golden.to_vec();
    changed[at] ^= 0x10;
    let (_, before) = load(&changed);
    let before = before.unwrap_err();
    assert!(before.contains("checksum"), "{before}");
    fix_checksums(&mut changed);
    let (_, after) = load(&changed);
    after.unwrap();
    // And on an untouched file it changes nothing.
    let mut same = golden.to_vec();
    fix_checksums(&mut same);
    assert_eq!(same, golden);
}

#[test]
fn mutants_reach_tensor_and_op_errors() {
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    let (mut total, mut loaded, mut checksum) = (0, 0, 0);
    for j in 0..3000u64 {
        let data = seed_bytes(1 << 40 | j, 4096);
        let parent = GOLDEN[j as usize % GOLDEN.len()];
        let bytes = mutate(parent, &mut Unstructured::new(&data)).unwrap();
        total += 1;
        match load(&bytes).1 {
            Ok(()) => loaded += 1,
            Err(e) => {
                checksum += e.contains("checksum") as usize;
                *classes.entry(error_class(&e)).or_default() += 1;
            }
        }
    }
    let has = |needle: &str| classes.keys().any(|k| k.contains(needle));
    assert!(has("tensor #:"), "no tensor error among {classes:#?}");
    assert!(has("op # ("), "no op error (from an op's decode) among {classes:#?}");
    assert!(has("op #:"), "no op descriptor error among {classes:#?}");
    assert!(checksum * 100 < total, "{checksum} of {total} mutants stop at a checksum");
    assert!(classes.len() >= 25, "only {} distinct errors: {classes:#?}", classes.len());
    eprintln!("{total} mutants: {loaded} load, {} distinct errors, {checksum} checksum errors", classes.len());
}

#[test]
fn error_classes_ignore_numbers() {
    assert_eq!(error_class("op 12 (Conv2d): x 3"), "op # (Conv#d): x #");
    let _ = RuntimeError::KernelsUnavailable;
}

/// Every crash and misread the fuzzer found (`tests/fuzz/regressions/`): checked as the fuzzer
/// checks a file, each is refused at load, or loads and runs with the same outputs on every
/// kernel path and breaks no rule of FORMAT.md (the 4 GiB arena loads and is refused by the
/// arena limit; the `runs_` files are valid models and must run). A panic fails this test.
#[test]
fn every_regression_file_is_refused_or_runs_identically() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fuzz/regressions");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sparq"))
        .collect();
    files.sort();
    assert!(files.len() >= 16, "{} regression files", files.len());
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let outcome = sparq_fuzzgen::check(&bytes);
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(outcome.mismatch.is_none(), "{name}: {:?}", outcome.mismatch);
        assert!(outcome.nonconforming.is_none(), "{name}: {:?}", outcome.nonconforming);
        match &outcome.loaded {
            Err(e) => println!("{name}: refused: {e}"),
            Ok(()) if name.starts_with("runs_") => {
                assert!(outcome.ran, "{name} loads but did not run");
                println!("{name}: runs identically on {:?}", outcome.paths);
            }
            Ok(()) => {
                assert!(name.starts_with("arena_declared"), "{name} loads");
                let aligned = AlignedBytes::from_slice(&bytes);
                let model = Model::from_bytes(aligned.as_slice()).unwrap();
                let e = model.check_arena(sparq_runtime::DEFAULT_MAX_ARENA).unwrap_err();
                println!("{name}: loads; {e}");
            }
        }
    }
}

/// Outputs are compared as values: NaNs of another sign or payload (which operand order and CPU
/// decide) are equal, every other value is compared to the bit.
#[test]
fn nans_compare_equal_whatever_their_bits() {
    use sparq_fuzzgen::check::{canonical_nan, canonical_npy};
    let negative = f32::from_bits(0xFFC0_0000);
    assert!(negative.is_nan());
    assert_eq!(canonical_nan(negative).to_bits(), f32::NAN.to_bits());
    assert_eq!(canonical_nan(-0.0).to_bits(), (-0.0f32).to_bits());
    assert_eq!(canonical_nan(f32::NEG_INFINITY), f32::NEG_INFINITY);
    let npy = |v: &[f32]| {
        let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }".to_string();
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        out
    };
    assert_eq!(canonical_npy(&npy(&[negative, 1.0])), canonical_npy(&npy(&[f32::NAN, 1.0])));
    assert_ne!(canonical_npy(&npy(&[0.0, 1.0])), canonical_npy(&npy(&[-0.0, 1.0])));
}
