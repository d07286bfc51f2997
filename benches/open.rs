//! Loading cost of a `.sparq` file: `Model::open` (mmap + validation) on a ~1 MB and a ~14 MB
//! model, with and without the CRC pass. Without CRC the cost is O(header + descriptors) and
//! should not grow with the weights; with CRC it is one pass over the file.
//! Models are generated here (int8 MLPs), so the bench needs nothing outside the repo.

use criterion::{criterion_group, criterion_main, Criterion};
use sparq_compiler::onnx_builder::{OnnxBuilder, Rng};
use sparq_compiler::CompileOptions;
use sparq_runtime::format::ParseOptions;
use sparq_runtime::MappedModel;
use std::path::PathBuf;

/// An int8 MLP of `layers` square layers of `width`: about `layers * width^2` bytes.
fn model_file(name: &str, width: usize, layers: usize) -> PathBuf {
    let mut rng = Rng::new(3);
    let mut b = OnnxBuilder::new(name, 13);
    let mut h = b.input("input", &[1, width]);
    for _ in 0..layers {
        let w = b.constant(&[width, width], rng.vec(width * width, 0.05));
        h = b.node("MatMul", &[&h, &w], vec![]);
        h = b.node("Relu", &[&h], vec![]);
    }
    b.output(&h);
    let onnx = b.build();
    let calib: Vec<Vec<f32>> = (0..2).map(|_| rng.vec(width, 1.0)).collect();
    let c = sparq_compiler::compile(&onnx, name, &calib, &CompileOptions::default()).expect("compile");
    let path = std::env::temp_dir().join(format!("sparq-bench-{name}.sparq"));
    sparq_format::writer::write_atomic(&path, &c.bytes).expect("write");
    path
}

fn bench_open(c: &mut Criterion) {
    // Same graph (4 layers, same descriptors), different widths: only the weight bytes differ.
    let small = model_file("open_1mb", 512, 4); // 4 x 512 x 512 = 1 MB of int8 weights
    let large = model_file("open_14mb", 1915, 4); // 4 x 1915 x 1915 = 14 MB
    let mut g = c.benchmark_group("model_open");
    for (label, path) in [("1MB", &small), ("14MB", &large)] {
        let size = std::fs::metadata(path).unwrap().len();
        println!("{label}: {} bytes", size);
        g.bench_function(format!("{label}/no_crc"), |b| {
            b.iter(|| MappedModel::open_with(path, ParseOptions { verify_crc: false }).unwrap())
        });
        g.bench_function(format!("{label}/crc"), |b| {
            b.iter(|| MappedModel::open_with(path, ParseOptions { verify_crc: true }).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench_open);
criterion_main!(benches);
