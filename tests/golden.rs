//! Golden files pin the `.sparq` bytes of a tiny model (f32, int8, int8 with packed weights). A change in the format
//! or in what the compiler writes shows up here: bump the format version if the layout changed,
//! then regenerate on purpose with `SPARQ_UPDATE_GOLDEN=1 cargo test --release --test golden`.
//! The int8 file uses fixed activation ranges, so the bytes do not depend on tract's float math.

mod common;

use sparq_compiler::lower::{self, LowerOptions, Precision, Range, Stats};
use std::collections::HashMap;

fn golden(name: &str, bytes: &[u8]) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("SPARQ_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, bytes).unwrap();
    }
    let expected = std::fs::read(&path).unwrap_or_else(|_| panic!("{path} missing: run with SPARQ_UPDATE_GOLDEN=1"));
    assert!(
        expected == bytes,
        "{name}: compiled bytes differ from the golden file ({} vs {} bytes); if the format changed, bump its version \
         and regenerate with SPARQ_UPDATE_GOLDEN=1",
        bytes.len(),
        expected.len()
    );
    // The golden file itself must load.
    let aligned = sparq_runtime::AlignedBytes::from_slice(&expected);
    sparq_runtime::Model::from_bytes(&aligned).unwrap();
}

#[test]
fn golden_files_are_pinned() {
    let m = common::residual();
    let g = sparq_compiler::load_graph(&m.onnx, m.name, &Default::default()).unwrap();
    let f32_spec =
        lower::lower(&g, &Stats::default(), &LowerOptions { precision: Precision::F32, ..Default::default() })
            .unwrap()
            .spec;
    golden("residual_f32.sparq", &f32_spec.to_bytes());
    let ranges: HashMap<String, Range> =
        g.tensors.iter().map(|t| (t.name.clone(), Range { min: -4.0, max: 4.0 })).collect();
    let stats = Stats { ranges, ..Default::default() };
    let int8_spec =
        lower::lower(&g, &stats, &LowerOptions { precision: Precision::Int8, ..Default::default() }).unwrap().spec;
    golden("residual_int8.sparq", &int8_spec.to_bytes());
    // The same with weights packed for the SIMD GEMM kernels (format 1.1).
    let pack = sparq_compiler::target::find("x86-64").unwrap().pack;
    let packed = lower::lower(&g, &stats, &LowerOptions { precision: Precision::Int8, pack, ..Default::default() })
        .unwrap()
        .spec;
    golden("residual_int8_packed.sparq", &packed.to_bytes());
}

#[test]
fn version_compatibility_rules() {
    let m = common::residual();
    let g = sparq_compiler::load_graph(&m.onnx, m.name, &Default::default()).unwrap();
    let spec = lower::lower(&g, &Stats::default(), &LowerOptions { precision: Precision::F32, ..Default::default() })
        .unwrap()
        .spec;
    // A newer minor version: rejected, since it may give meaning to fields this reader would
    // misread (issue 21); the error names the field and its offset.
    let mut newer = spec.clone();
    newer.version_minor = sparq_format::layout::VERSION_MINOR + 1;
    let bytes = newer.to_bytes();
    let aligned = sparq_runtime::AlignedBytes::from_slice(&bytes);
    let err = sparq_runtime::Model::from_bytes(&aligned).expect_err("a newer minor is rejected").to_string();
    assert!(err.contains("version_minor at offset 10") && err.contains("newer"), "{err}");
    // A private section (kinds 0x1000 and up) is skipped by every reader.
    let mut private = spec.clone();
    private.extra_sections.push((0x5EC7, b"an app's own data".to_vec()));
    let bytes = private.to_bytes();
    let aligned = sparq_runtime::AlignedBytes::from_slice(&bytes);
    sparq_runtime::Model::from_bytes(&aligned).expect("a private section is skipped");
    // A newer major version: rejected with a clear error.
    let mut b = spec.to_bytes();
    b[8..10].copy_from_slice(&2u16.to_le_bytes());
    let crc = sparq_format::crc32::crc32(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    let aligned = sparq_runtime::AlignedBytes::from_slice(&b);
    let err = sparq_runtime::Model::from_bytes(&aligned).expect_err("newer major is rejected").to_string();
    assert!(err.contains("unsupported .sparq format version 2.0"), "{err}");
}
