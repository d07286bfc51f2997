//! MobileNetV2 end to end (int8, batch 1): every kernel set this CPU runs, 1 and 2 threads.
//! Throughput is in multiply-accumulates (criterion's "elem/s" = MAC/s).
//!
//! Uses `../shared/models/mobilenet_v2_1.0_pretrained.onnx` and the first 16 crops of
//! `../shared/data/imagenet-like/crops_224_nhwc_u8.npy` for calibration (latency does not depend
//! on calibration quality); prints a note and benches nothing when they are absent.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sparq_compiler::data::{self, Preprocess};
use sparq_compiler::CompileOptions;
use sparq_runtime::{AlignedBytes, Model, Session, SessionOptions};
use std::path::Path;
use std::time::Duration;

fn bench_mobilenet(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    let onnx_path = root.join("models/mobilenet_v2_1.0_pretrained.onnx");
    let crops = root.join("data/imagenet-like/crops_224_nhwc_u8.npy");
    if !onnx_path.exists() || !crops.exists() {
        println!("mobilenet bench skipped: {} or {} not found", onnx_path.display(), crops.display());
        return;
    }
    let onnx = std::fs::read(&onnx_path).expect("read model");
    let pre = Preprocess {
        mean: Some(vec![0.485, 0.456, 0.406]),
        std: Some(vec![0.229, 0.224, 0.225]),
        ..Default::default()
    };
    let mut samples = data::load_samples(&crops, &[1, 3, 224, 224], &pre).expect("crops");
    samples.truncate(16);
    let compiled =
        sparq_compiler::compile(&onnx, "mobilenet_v2", &samples, &CompileOptions::default()).expect("compile");
    let bytes = AlignedBytes::from_slice(&compiled.bytes);
    let model = Model::from_bytes(&bytes).expect("load");
    let macs: u64 = (0..model.op_count()).map(|i| model.op_macs(i)).sum();
    let mut g = c.benchmark_group("mobilenet_v2_int8");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(macs));
    let names: Vec<&str> = sparq_runtime::kernels::registry::available().map(|k| k.name()).collect();
    for name in names {
        for threads in [1usize, 2] {
            // The session picks its kernels from SPARQ_KERNELS.
            std::env::set_var("SPARQ_KERNELS", name);
            let mut arena = AlignedBytes::try_zeroed(model.arena_size()).expect("arena");
            let mut s =
                Session::with_options(&model, arena.as_mut_slice(), SessionOptions { threads, ..Default::default() })
                    .expect("session");
            s.set_input(0, &samples[0]).expect("input");
            g.bench_function(BenchmarkId::new(name, format!("{threads}t")), |b| b.iter(|| s.run()));
        }
    }
    std::env::remove_var("SPARQ_KERNELS");
    g.finish();
}

criterion_group!(benches, bench_mobilenet);
criterion_main!(benches);
