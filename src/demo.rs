//! `sparq demo`: the whole path on the embedded default model, a small CNN trained on real
//! handwritten digits (scikit-learn's digits; see scripts/train_digits.py): compile to int8,
//! compare test accuracy with the float model, and time it.

use anyhow::Result;
use sparq_compiler::data::{parse_npy, Array};
use sparq_compiler::report::human_bytes;
use sparq_compiler::{CompileOptions, Precision};
use sparq_runtime::Model;
use std::time::Instant;

const ONNX: &[u8] = include_bytes!("../models/digits/digits_cnn.onnx");
const CALIB: &[u8] = include_bytes!("../models/digits/calib_x.npy");
const TEST_X: &[u8] = include_bytes!("../models/digits/test_x.npy");
const TEST_Y: &[u8] = include_bytes!("../models/digits/test_y.npy");

fn npy(bytes: &[u8], name: &str) -> Result<Array> {
    Ok(parse_npy(bytes, name)?)
}

fn samples(a: &Array) -> Vec<Vec<f32>> {
    let per: usize = a.shape[1..].iter().product();
    a.data.chunks(per).map(|c| c.to_vec()).collect()
}

pub fn demo() -> Result<()> {
    println!(
        "sparq demo: a CNN trained on real handwritten digits (scikit-learn digits, 8x8), embedded in this binary\n"
    );
    let calib = samples(&npy(CALIB, "calib.npy")?);
    let test = samples(&npy(TEST_X, "test_x.npy")?);
    let labels: Vec<i64> = npy(TEST_Y, "test_y.npy")?.data.iter().map(|&v| v as i64).collect();

    let opts = CompileOptions { progress: crate::progress(), ..Default::default() };
    let t = Instant::now();
    let int8 = sparq_compiler::compile(ONNX, "digits_cnn.onnx", &calib, &opts)?;
    let compile_s = t.elapsed().as_secs_f64();
    let f32m = sparq_compiler::compile(
        ONNX,
        "digits_cnn.onnx",
        &calib,
        &CompileOptions { precision: Precision::F32, ..Default::default() },
    )?;
    print!("{}", int8.report);
    let out_dir = std::env::temp_dir().join("sparq-demo");
    std::fs::create_dir_all(&out_dir)?;
    let path = out_dir.join("digits_cnn.sparq");
    sparq_format::writer::write_atomic(&path, &int8.bytes)?;
    println!("compiled in {compile_s:.2} s -> {}\n", path.display());

    // Accuracy on the held-out test split: float (tract, the original ONNX) vs sparq.
    let g = sparq_compiler::load_graph(ONNX, "digits_cnn.onnx", &Default::default())?;
    let names: Vec<String> = g.outputs.iter().map(|&o| g.tensors[o].name.clone()).collect();
    let reference = sparq_compiler::reference::Reference::new(ONNX, &g, names)?;
    let refs = test.iter().map(|s| reference.run(s)).collect::<Result<Vec<_>, _>>()?;
    let out8 = sparq_compiler::eval::run_sparq(&int8.bytes, &test, None)?;
    let out32 = sparq_compiler::eval::run_sparq(&f32m.bytes, &test, None)?;
    let a8 = sparq_compiler::eval::compare(&out8, &refs, Some(&labels));
    let a32 = sparq_compiler::eval::compare(&out32, &refs, Some(&labels));
    let pct = |x: Option<f64>| x.unwrap_or(0.0) * 100.0;
    println!("test accuracy on {} held-out digits:", test.len());
    println!("  float (tract, ONNX)   {:6.2}%   {}", pct(a8.reference_accuracy), human_bytes(ONNX.len()));
    println!("  sparq f32             {:6.2}%   {}", pct(a32.accuracy), human_bytes(f32m.bytes.len()));
    println!(
        "  sparq int8            {:6.2}%   {}   ({:+.2} points vs float; top-1 agreement {:.2}%, logit SQNR {:.1} dB)",
        pct(a8.accuracy),
        human_bytes(int8.bytes.len()),
        pct(a8.accuracy) - pct(a8.reference_accuracy),
        a8.top1_agreement * 100.0,
        a8.sqnr_db
    );

    // Latency, one thread, same process and run: sparq int8, sparq f32 and tract f32.
    let aligned = sparq_runtime::AlignedBytes::from_slice(&int8.bytes);
    let model = Model::from_bytes(&aligned)?;
    let l8 = crate::bench::time_model(&model, 50, 2000, 1)?;
    let aligned32 = sparq_runtime::AlignedBytes::from_slice(&f32m.bytes);
    let model32 = Model::from_bytes(&aligned32)?;
    let l32 = crate::bench::time_model(&model32, 50, 2000, 1)?;
    let mut ms = Vec::with_capacity(2000);
    for _ in 0..50 {
        reference.run(&test[0])?;
    }
    for _ in 0..2000 {
        let t = Instant::now();
        reference.run(&test[0])?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let lt = crate::bench::Latency::from_samples("tract", &ms);
    println!("\nlatency, batch 1, one thread, 2000 runs ({} kernels for int8):", l8.kernels);
    for (name, l) in [("sparq int8", l8), ("sparq f32", l32), ("tract f32", lt)] {
        println!(
            "  {name:<11} p50 {:7.4} ms   p90 {:7.4} ms   p99 {:7.4} ms   ({:.2}x tract f32 p50)",
            l.p50,
            l.p90,
            l.p99,
            l.p50 / lt.p50
        );
    }
    Ok(())
}
