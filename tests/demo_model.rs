//! The embedded default model (CNN on scikit-learn's real handwritten digits, committed under
//! models/digits with its training script): int8 test accuracy within 0.5 points of float.

use sparq_compiler::{data::read_npy, eval, CompileOptions};
use std::path::Path;

fn samples(path: &str) -> Vec<Vec<f32>> {
    let a = read_npy(Path::new(path)).unwrap();
    let per: usize = a.shape[1..].iter().product();
    a.data.chunks(per).map(|c| c.to_vec()).collect()
}

#[test]
fn digits_int8_within_half_a_point_of_float() {
    let root = env!("CARGO_MANIFEST_DIR");
    let onnx = std::fs::read(format!("{root}/models/digits/digits_cnn.onnx")).unwrap();
    let calib = samples(&format!("{root}/models/digits/calib_x.npy"));
    let test = samples(&format!("{root}/models/digits/test_x.npy"));
    let labels: Vec<i64> = read_npy(Path::new(&format!("{root}/models/digits/test_y.npy")))
        .unwrap()
        .data
        .iter()
        .map(|&v| v as i64)
        .collect();
    let c = sparq_compiler::compile(&onnx, "digits", &calib, &CompileOptions::default()).unwrap();
    let g = sparq_compiler::load_graph(&onnx, "digits", &Default::default()).unwrap();
    let names = g.outputs.iter().map(|&o| g.tensors[o].name.clone()).collect();
    let r = sparq_compiler::reference::Reference::new(&onnx, &g, names).unwrap();
    let refs: Vec<_> = test.iter().map(|s| r.run(s).unwrap()).collect();
    let out = eval::run_sparq(&c.bytes, &test, None).unwrap();
    let a = eval::compare(&out, &refs, Some(&labels));
    let (acc, ref_acc) = (a.accuracy.unwrap(), a.reference_accuracy.unwrap());
    println!("digits: float {:.2}%, int8 {:.2}% ({} bytes)", ref_acc * 100.0, acc * 100.0, c.bytes.len());
    assert!(ref_acc > 0.97, "float model accuracy {ref_acc}");
    assert!(acc >= ref_acc - 0.005, "int8 accuracy {acc} more than 0.5 points below float {ref_acc}");
}
