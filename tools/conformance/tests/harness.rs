//! The harness on cases written here (no onnx wheel needed): a model from `OnnxBuilder` and its
//! test data as `TensorProto` files, laid out as the ONNX node tests are.

use prost::Message;
use sparq_compiler::onnx::builder::{Attr, OnnxBuilder};
use sparq_conformance::{
    allclose, assign_groups, failures, guarded, parse_known, run_case, supported_set, CaseResult, Int8, Outcome,
};
use std::path::{Path, PathBuf};
use tract_onnx::pb;

/// A fresh case directory `<tmp>/sparq-conformance-<pid>-<name>/<name>`, removed on drop.
struct CaseDir(PathBuf);

impl std::ops::Deref for CaseDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for CaseDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().expect("in its own folder"));
    }
}

fn case_dir(name: &str) -> CaseDir {
    let dir = std::env::temp_dir().join(format!("sparq-conformance-{}-{name}", std::process::id())).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("test_data_set_0")).unwrap();
    CaseDir(dir)
}

fn f32_tensor(name: &str, dims: &[usize], values: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: 1,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn i64_tensor(name: &str, values: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: 7,
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

/// Write `model.onnx` and the data set's `input_<k>.pb` / `output_<k>.pb`.
fn write_case(dir: &Path, onnx: &[u8], inputs: &[pb::TensorProto], outputs: &[pb::TensorProto]) {
    std::fs::write(dir.join("model.onnx"), onnx).unwrap();
    let data = dir.join("test_data_set_0");
    for (k, t) in inputs.iter().enumerate() {
        std::fs::write(data.join(format!("input_{k}.pb")), t.encode_to_vec()).unwrap();
    }
    for (k, t) in outputs.iter().enumerate() {
        std::fs::write(data.join(format!("output_{k}.pb")), t.encode_to_vec()).unwrap();
    }
}

const X: [f32; 8] = [-2.0, -1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 3.0];

/// A Relu case whose expected output is `expected`.
fn relu_case(name: &str, expected: &[f32]) -> CaseDir {
    let dir = case_dir(name);
    let mut b = OnnxBuilder::new("relu", 13);
    let x = b.input("x", &[2, 4]);
    let y = b.node("Relu", &[&x], vec![]);
    b.output(&y);
    write_case(&dir, &b.build(), &[f32_tensor("x", &[2, 4], &X)], &[f32_tensor(&y, &[2, 4], expected)]);
    dir
}

fn run(dir: &Path) -> CaseResult {
    run_case(dir, &supported_set(), true, true)
}

#[test]
fn a_relu_case_passes_and_compiles_in_int8() {
    let want: Vec<f32> = X.iter().map(|v| v.max(0.0)).collect();
    let r = run(&relu_case("test_relu", &want));
    assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
    assert_eq!((r.group.as_str(), r.nodes), ("Relu", 1));
    assert_eq!(r.frozen, None);
    match r.int8 {
        Some(Int8::Compiled { sqnr_db }) => assert!(sqnr_db > 30.0, "int8 SQNR {sqnr_db}"),
        other => panic!("int8: {other:?}"),
    }
}

#[test]
fn wrong_expected_values_are_a_mismatch_naming_the_output() {
    let mut want: Vec<f32> = X.iter().map(|v| v.max(0.0)).collect();
    want[6] = 1.01; // 1% off: outside rtol = 1e-3
    let r = run(&relu_case("test_relu_wrong", &want));
    let Outcome::Mismatched(m) = &r.outcome else { panic!("{r:?}") };
    assert!(m.contains("1/8 values differ") && m.contains("got 1, expected 1.01"), "{m}");
    // No int8 compile of a case that does not pass.
    assert_eq!(r.int8, None);
}

#[test]
fn a_wrong_shape_is_a_mismatch() {
    let dir = case_dir("test_relu_shape");
    let mut b = OnnxBuilder::new("relu", 13);
    let x = b.input("x", &[2, 4]);
    let y = b.node("Relu", &[&x], vec![]);
    b.output(&y);
    let want: Vec<f32> = X.iter().map(|v| v.max(0.0)).collect();
    write_case(&dir, &b.build(), &[f32_tensor("x", &[2, 4], &X)], &[f32_tensor(&y, &[8], &want)]);
    let r = run(&dir);
    assert!(matches!(&r.outcome, Outcome::Mismatched(m) if m.contains("shape [2, 4], expected [8]")), "{r:?}");
}

#[test]
fn an_op_without_importer_is_not_claimed() {
    let dir = case_dir("test_foo");
    let mut b = OnnxBuilder::new("foo", 13);
    let x = b.input("x", &[2, 4]);
    let y = b.node("Relu", &[&x], vec![]);
    let z = b.node("NoSuchOp", &[&y], vec![]);
    b.output(&z);
    write_case(&dir, &b.build(), &[f32_tensor("x", &[2, 4], &X)], &[f32_tensor(&z, &[2, 4], &X)]);
    let r = run(&dir);
    assert_eq!(r.outcome, Outcome::NotClaimed(vec!["NoSuchOp".into()]));
    assert_eq!((r.ops.clone(), r.frozen.clone(), r.int8.clone()), (vec!["Relu".into(), "NoSuchOp".into()], None, None));
}

#[test]
fn weights_given_as_inputs_are_refused_then_pass_frozen() {
    // The node tests feed Conv weights as graph inputs; sparq wants constants.
    let dir = case_dir("test_conv_weight_input");
    let mut b = OnnxBuilder::new("conv", 13);
    let x = b.input("x", &[1, 1, 2, 4]);
    let w = b.input("w", &[1, 1, 1, 1]);
    let y = b.node("Conv", &[&x, &w], vec![("kernel_shape", Attr::Ints(vec![1, 1]))]);
    b.output(&y);
    let want: Vec<f32> = X.iter().map(|v| v * 2.0).collect();
    write_case(
        &dir,
        &b.build(),
        &[f32_tensor("x", &[1, 1, 2, 4], &X), f32_tensor("w", &[1, 1, 1, 1], &[2.0])],
        &[f32_tensor(&y, &[1, 1, 2, 4], &want)],
    );
    let r = run(&dir);
    assert!(matches!(&r.outcome, Outcome::Refused { dtype: false, reason } if reason.contains("constant")), "{r:?}");
    assert_eq!(r.frozen, Some(Outcome::Passed));
    // Frozen, it has one input: compiled in int8 too.
    assert!(matches!(r.int8, Some(Int8::Compiled { .. })), "{r:?}");
    // Without the retry it stays refused.
    assert_eq!(run_case(&dir, &supported_set(), false, false).frozen, None);
}

#[test]
fn an_int64_input_is_refused_for_its_dtype_and_frozen_as_a_constant() {
    let dir = case_dir("test_reshape_shape_input");
    let mut b = OnnxBuilder::new("reshape", 13);
    let x = b.input("x", &[2, 4]);
    let s = b.input("shape", &[2]);
    let y = b.node("Reshape", &[&x, &s], vec![]);
    b.output(&y);
    write_case(
        &dir,
        &b.build(),
        &[f32_tensor("x", &[2, 4], &X), i64_tensor("shape", &[4, -1])],
        &[f32_tensor(&y, &[4, 2], &X)],
    );
    let r = run(&dir);
    assert!(
        matches!(&r.outcome, Outcome::Refused { dtype: true, reason } if reason == "input 'shape' is int64"),
        "{r:?}"
    );
    assert_eq!(r.frozen, Some(Outcome::Passed));
}

#[test]
fn allclose_follows_numpy() {
    assert_eq!(allclose(&[1.0, f32::NAN, f32::INFINITY], &[1.0005, f32::NAN, f32::INFINITY], 1e-3, 1e-7), None);
    assert!(allclose(&[1.0], &[1.002], 1e-3, 1e-7).is_some());
    assert!(allclose(&[0.0], &[1e-6], 1e-3, 1e-7).is_some());
    assert!(allclose(&[f32::NAN], &[0.0], 1e-3, 1e-7).is_some());
    assert!(allclose(&[f32::INFINITY], &[f32::NEG_INFINITY], 1e-3, 1e-7).is_some());
    assert!(allclose(&[1.0], &[1.0, 2.0], 1e-3, 1e-7).is_some());
}

fn result(name: &str, nodes: usize, group: &str, outcome: Outcome) -> CaseResult {
    CaseResult {
        name: name.into(),
        group: group.into(),
        ops: Vec::new(),
        nodes,
        outcome,
        frozen: None,
        int8: None,
        millis: 0,
    }
}

#[test]
fn the_known_list_excuses_mismatches_and_must_stay_truthful() {
    let known = parse_known("# header\n\ntest_a  # numerics: a reason\ntest_b # fixed since\ntest_c\n");
    assert_eq!(known.len(), 3);
    assert_eq!(known["test_a"], "numerics: a reason");
    let mismatch = || Outcome::Mismatched("output 'y': 1/8 values differ".into());
    let mut int8_crash = result("test_f", 1, "Relu", Outcome::Passed);
    int8_crash.int8 = Some(Int8::Crashed("panic: boom".into()));
    let results = [
        result("test_a", 1, "Relu", mismatch()),                          // known: fine
        result("test_b", 1, "Relu", Outcome::Passed),                     // known but passes: fails
        result("test_c", 1, "Relu", Outcome::Crashed("panic: x".into())), // a crash is never excused
        result("test_d", 1, "Relu", mismatch()),                          // unknown mismatch: fails
        result("test_e", 1, "Relu", Outcome::Passed),
        int8_crash, // unknown int8 crash: fails
    ];
    let f = failures(&results, &known);
    assert_eq!(f.len(), 4, "{f:#?}");
    assert!(f[0].starts_with("test_b") && f[0].contains("remove it"), "{}", f[0]);
    assert!(f[1].starts_with("test_c: crashed"), "{}", f[1]);
    assert!(f[2].starts_with("test_d: not a known failure"), "{}", f[2]);
    assert!(f[3].starts_with("test_f: not a known failure: int8 crashed"), "{}", f[3]);
    assert!(failures(&results[..1], &known).is_empty());
}

#[test]
fn multi_node_cases_are_grouped_under_the_op_their_name_starts_with() {
    let mut rs = vec![
        result("test_reduce_mean_default", 1, "ReduceMean", Outcome::Passed),
        result("test_reduce_max_x", 1, "ReduceMax", Outcome::Passed),
        result("test_hardswish", 1, "HardSwish", Outcome::Passed),
        result("test_reduce_mean_default_expanded", 4, "", Outcome::Passed),
        result("test_hardswish_expanded", 2, "", Outcome::Passed),
        result("test_hardswish_chain", 2, "", Outcome::Passed),
        result("test_something_else", 3, "", Outcome::Passed),
    ];
    assign_groups(&mut rs);
    let groups: Vec<&str> = rs[3..].iter().map(|r| r.group.as_str()).collect();
    assert_eq!(groups, ["ReduceMean (expanded)", "HardSwish (expanded)", "HardSwish (multi-node)", "(multi-node)"]);
}

#[test]
fn a_panic_is_caught_with_its_message_and_location() {
    let e = guarded(|| -> u32 { panic!("boom {}", 42) }).unwrap_err();
    assert!(e.starts_with("panic: boom 42 at ") && e.contains("harness.rs:"), "{e}");
    assert_eq!(guarded(|| 7), Ok(7));
}
