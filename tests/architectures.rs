//! The real edge architectures of `scripts/export_models.py` (MobileNetV3-Small/-Large,
//! EfficientNet-B0, ShuffleNetV2, SqueezeNet, ResNet-18, LRASPP and DeepLabV3 segmentation, a
//! DBNet text detector, a CRNN text recognizer, a small ViT, a keyword-spotting GRU), as their
//! exported graphs with the weights stripped (`tests/models/arch`, `scripts/strip_weights.py`):
//! every stripped weight is filled with seeded random values of a sensible scale, then
//! - f32: sparq's output matches the float reference (tract, on the same filled model) within
//!   1e-4 of the largest output value;
//! - int8: the model compiles (calibrated on 4 random inputs) and its output SQNR against the
//!   float model on 2 other inputs is printed (random weights: a number to watch, not a bar).

use prost::Message;
use sparq_compiler::onnx_builder::Rng;
use sparq_compiler::tract_onnx::pb;
use sparq_compiler::{eval, reference::Reference, CalibMethod, CompileOptions, Precision};

const FLOAT: i32 = 1;

/// Fill every float initializer without data: weights with the scale their consumer expects
/// (He for convolutions and matrix products, 1/sqrt(hidden) for recurrent layers), normalization
/// parameters with their identity (scale 1, shift 0, mean 0, variance 1), anything else small.
fn fill_weights(m: &mut pb::ModelProto, seed: u64) {
    let g = m.graph.as_mut().expect("graph");
    let mut rng = Rng::new(seed);
    let uses: Vec<(String, String, usize, bool)> = g
        .node
        .iter()
        .flat_map(|n| {
            let trans_b = n.attribute.iter().any(|a| a.name == "transB" && a.i != 0);
            n.input.iter().enumerate().map(move |(k, i)| (i.clone(), n.op_type.clone(), k, trans_b))
        })
        .collect();
    for t in &mut g.initializer {
        if t.data_type != FLOAT || !t.raw_data.is_empty() || !t.float_data.is_empty() {
            continue;
        }
        let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        let n: usize = dims.iter().product();
        let use_ = uses.iter().find(|(i, ..)| *i == t.name);
        let (op, k, trans_b) = use_.map_or(("", 0, false), |(_, op, k, tb)| (op.as_str(), *k, *tb));
        let rank = dims.len();
        let fill = |v: f32| vec![v; n];
        let values = match (op, k) {
            ("BatchNormalization", 1) | ("LayerNormalization", 1) | ("InstanceNormalization", 1) => fill(1.0),
            ("BatchNormalization", 4) => fill(1.0),
            ("BatchNormalization", _) | ("LayerNormalization", _) | ("InstanceNormalization", _) => fill(0.0),
            ("Conv", 1) => rng.vec(n, (2.0 / dims[1..].iter().product::<usize>().max(1) as f32).sqrt()),
            ("ConvTranspose", 1) => rng.vec(n, (1.0 / dims[0].max(1) as f32).sqrt()),
            ("Gemm", 1) => rng.vec(n, (1.0 / dims[if trans_b { 1 } else { 0 }].max(1) as f32).sqrt()),
            ("MatMul", 1) if rank >= 2 => rng.vec(n, (1.0 / dims[rank - 2].max(1) as f32).sqrt()),
            ("LSTM" | "GRU", 1 | 2) => rng.vec(n, (1.0 / dims[2].max(1) as f32).sqrt()),
            _ => rng.vec(n, 0.1),
        };
        t.float_data = values;
    }
}

/// Every stripped graph in `tests/models/arch`.
fn models() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/arch");
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("tests/models/arch").map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let mut m = pb::ModelProto::decode(&std::fs::read(&p).unwrap()[..]).expect("ONNX");
            fill_weights(&mut m, 7);
            (name, m.encode_to_vec())
        })
        .collect()
}

/// Random N(0, 1) samples of the graph's (static) inputs, concatenated per sample.
fn samples(g: &sparq_compiler::ir::Graph, n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let len: usize = g.input_lens().iter().sum();
    (0..n).map(|_| rng.vec(len, 1.0)).collect()
}

#[test]
fn every_architecture_matches_the_float_reference_in_f32_and_compiles_in_int8() {
    let models = models();
    assert_eq!(models.len(), 12, "the architectures of scripts/export_models.py");
    for (name, onnx) in &models {
        let g = sparq_compiler::load_graph(onnx, name, &Default::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let names: Vec<String> = g.outputs.iter().map(|&o| g.tensors[o].name.clone()).collect();
        let reference = Reference::new(onnx, &g, names).unwrap_or_else(|e| panic!("{name}: {e}"));
        let test = samples(&g, 2, 11);
        let refs: Vec<Vec<Vec<f32>>> = test.iter().map(|s| reference.run(s).unwrap()).collect();
        let opts = CompileOptions { precision: Precision::F32, progress: false, ..Default::default() };
        let c = sparq_compiler::compile(onnx, name, &[], &opts).unwrap_or_else(|e| panic!("{name} f32: {e}"));
        let outs = eval::run_sparq(&c.bytes, &test, None).unwrap();
        let mut worst = 0f32;
        for k in 0..refs[0].len() {
            let scale = refs.iter().flat_map(|r| &r[k]).fold(0f32, |a, v| a.max(v.abs())).max(1e-20);
            for (o, r) in outs.iter().zip(&refs) {
                assert_eq!(o[k].len(), r[k].len(), "{name}: output {k} length");
                for (a, b) in o[k].iter().zip(&r[k]) {
                    worst = worst.max((a - b).abs() / scale);
                }
            }
        }
        assert!(worst <= 1e-4, "{name}: f32 differs from the float reference by {worst:.2e} of the largest output");
        let calib = samples(&g, 4, 12);
        let opts = CompileOptions { calib_method: CalibMethod::MinMax, progress: false, ..Default::default() };
        let c = sparq_compiler::compile(onnx, name, &calib, &opts).unwrap_or_else(|e| panic!("{name} int8: {e}"));
        let a = eval::compare(&eval::run_sparq(&c.bytes, &test, None).unwrap(), &refs, None);
        println!(
            "{name:<30} f32 max error {worst:.1e} of the largest output; int8 {} ops, {} in f32, output SQNR {:.1} dB",
            c.report.op_counts.values().sum::<usize>(),
            c.report.float_layers.len(),
            a.sqnr_db
        );
        assert!(a.sqnr_db.is_finite(), "{name}: int8 output is not finite");
    }
}
