//! One graph, one float reference: a pruned compile (channels removed, weights pruned and
//! re-fitted, int8) decodes the ONNX model once and builds tract once; the passes and the
//! calibration of the changed graph run on sparq's own IR and runtime. Its own test binary, so
//! that no other test moves the process-wide counters while it runs.

mod common;

use sparq_compiler::prune::{Pattern, PrunePolicy};
use sparq_compiler::CompileOptions;

#[test]
fn a_pruned_compile_imports_once_and_builds_tract_once() {
    let m = common::residual_group(0);
    let calib = common::samples(&m.input_shape, 16, 7);
    let opts = CompileOptions {
        prune: Some(PrunePolicy::parse("0.5", Pattern::Unstructured).unwrap()),
        prune_channels: Some(0.5),
        prune_channels_residual: true,
        ..Default::default()
    };
    let (decodes, builds) = (sparq_compiler::onnx::decodes(), sparq_compiler::reference::builds());
    let c = sparq_compiler::compile(&m.onnx, m.name, &calib, &opts).unwrap();
    let (decodes, builds) = (sparq_compiler::onnx::decodes() - decodes, sparq_compiler::reference::builds() - builds);
    println!("{}: {decodes} ONNX decode(s), {builds} tract build(s)\n{}", m.name, c.report);
    assert!(c.report.channels.iter().any(|ch| ch.removed > 0), "no channel was removed");
    assert!(c.report.sparsity.iter().any(|l| l.policy.is_some()), "no layer was pruned");
    assert_eq!(decodes, 1, "the ONNX model was decoded {decodes} times");
    assert_eq!(builds, 1, "tract built the model {builds} times");
}
