//! Every registry entry this CPU runs, family by family, read from the registry tables (so a kernel
//! cannot exist unbenched; the scalar specification is each family's baseline), on MobileNetV2's
//! layer shapes. Bench ids are the kernels' registry names. Throughput is in multiply-accumulates
//! (criterion's "elem/s" = MAC/s) for the convolutions, elements for the rest. Inputs are
//! generated here; nothing outside the repo.
//!
//! `cargo bench --bench kernels` (add a filter, e.g. `-- gemm`, to run one family).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sparq_runtime::kernels::conv::ConvGeometry;
use sparq_runtime::kernels::elementwise::{AddParams, MulParams};
use sparq_runtime::kernels::gemm::{WeightMatrix, SIMD_PACK};
use sparq_runtime::kernels::registry::{self, Entry, Features, KernelSet, Query};
use sparq_runtime::quant::quantize_multiplier;
use std::time::Duration;

mod common;
use common::{block_sparse_weights, bytes, geometry, mobilenet_v2_pointwise, params, rq};

fn sets() -> Vec<KernelSet> {
    registry::available().collect()
}

/// The entries of `table` this CPU runs that take `q` (the scalar specification always does).
fn runnable<F: Copy>(table: &'static [Entry<F>], q: &Query) -> Vec<&'static Entry<F>> {
    let cpu = Features::detect();
    table.iter().filter(|e| e.accepts(cpu, q)).collect()
}

fn conv_query(geometry: &ConvGeometry, pack: Option<sparq_runtime::kernels::gemm::Pack>, k: usize) -> Query {
    Query { geometry: *geometry, pack, k }
}

fn quick<'c>(c: &'c mut Criterion, name: &str) -> criterion::BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    g
}

/// Pointwise (1x1) convolutions of MobileNetV2 (spatial, in, out), and its first 3x3 convolution.
fn bench_gemm(c: &mut Criterion) {
    let shapes = [
        ("112x112_32to16_1x1", geometry(112, 32, 16, 1, 1, 1)),
        ("112x112_16to96_1x1", geometry(112, 16, 96, 1, 1, 1)),
        ("56x56_24to144_1x1", geometry(56, 24, 144, 1, 1, 1)),
        ("56x56_144to24_1x1", geometry(56, 144, 24, 1, 1, 1)),
        ("28x28_192to32_1x1", geometry(28, 192, 32, 1, 1, 1)),
        ("14x14_64to384_1x1", geometry(14, 64, 384, 1, 1, 1)),
        ("7x7_960to320_1x1", geometry(7, 960, 320, 1, 1, 1)),
        ("7x7_320to1280_1x1", geometry(7, 320, 1280, 1, 1, 1)),
        ("224x224_3to32_3x3s2", geometry(224, 3, 32, 3, 2, 1)),
    ];
    let mut g = quick(c, "qs8_gemm");
    for (name, geo) in shapes {
        let k = geo.kernel_h * geo.kernel_w * geo.in_c;
        let x = bytes(geo.in_h * geo.in_w * geo.in_c, 1);
        let w = bytes(geo.out_c * k, 2);
        let packed = SIMD_PACK.pack(geo.out_c, k, &w);
        let m = WeightMatrix { data: &packed, n: geo.out_c, k, pack: Some(SIMD_PACK) };
        let p = params(geo.out_c);
        let r = rq(&p);
        let mut y = vec![0i8; geo.out_h * geo.out_w * geo.out_c];
        g.throughput(Throughput::Elements(geo.macs()));
        for e in runnable(registry::QS8_GEMM, &conv_query(&geo, m.pack, k)) {
            // SAFETY: `runnable` checked this CPU's features and the entry's constraints.
            g.bench_with_input(BenchmarkId::new(e.name, name), &geo, |b, geo| {
                b.iter(|| unsafe { (e.f)(geo, &x, &m, &r, &mut y) })
            });
        }
    }
    g.finish();
}

/// Depthwise 3x3 layers of MobileNetV2 (spatial, channels, stride).
fn bench_depthwise(c: &mut Criterion) {
    let shapes = [
        ("112x112_c32_s1", geometry(112, 32, 32, 3, 1, 32)),
        ("112x112_c96_s2", geometry(112, 96, 96, 3, 2, 96)),
        ("56x56_c144_s1", geometry(56, 144, 144, 3, 1, 144)),
        ("14x14_c576_s1", geometry(14, 576, 576, 3, 1, 576)),
        ("7x7_c960_s1", geometry(7, 960, 960, 3, 1, 960)),
    ];
    let mut g = quick(c, "qs8_dwconv");
    for (name, geo) in shapes {
        let x = bytes(geo.in_h * geo.in_w * geo.in_c, 3);
        let w = bytes(9 * geo.in_c, 4);
        let p = params(geo.out_c);
        let r = rq(&p);
        let mut y = vec![0i8; geo.out_h * geo.out_w * geo.out_c];
        g.throughput(Throughput::Elements(geo.macs()));
        for e in runnable(registry::QS8_DWCONV, &conv_query(&geo, None, 9)) {
            // SAFETY: `runnable` checked this CPU's features and the entry's constraints.
            g.bench_with_input(BenchmarkId::new(e.name, name), &geo, |b, geo| {
                b.iter(|| unsafe { (e.f)(geo, &x, &w, &r, &mut y) })
            });
        }
        let xf: Vec<f32> = x.iter().map(|&v| v as f32 / 64.0).collect();
        let wf: Vec<f32> = w.iter().map(|&v| v as f32 / 512.0).collect();
        let bias = vec![0.1f32; geo.out_c];
        let mut yf = vec![0f32; y.len()];
        for e in runnable(registry::F32_DWCONV, &conv_query(&geo, None, 9)) {
            // SAFETY: as above.
            g.bench_with_input(BenchmarkId::new(e.name, name), &geo, |b, geo| {
                b.iter(|| unsafe { (e.f)(geo, &xf, &wf, &bias, f32::NEG_INFINITY, f32::INFINITY, &mut yf) })
            });
        }
    }
    g.finish();
    // The direct int8 convolution (row-major weights: layers the compiler does not pack, and
    // grouped convolutions): MobileNetV2's stem.
    let mut g = quick(c, "qs8_conv2d");
    let geo = geometry(224, 3, 32, 3, 2, 1);
    let x = bytes(geo.in_h * geo.in_w * geo.in_c, 3);
    let w = bytes(geo.out_c * 27, 4);
    let p = params(geo.out_c);
    let r = rq(&p);
    let mut y = vec![0i8; geo.out_h * geo.out_w * geo.out_c];
    g.throughput(Throughput::Elements(geo.macs()));
    for e in runnable(registry::QS8_CONV, &conv_query(&geo, None, 27)) {
        // SAFETY: as above.
        g.bench_with_input(BenchmarkId::new(e.name, "224x224_3to32_3x3s2"), &geo, |b, geo| {
            b.iter(|| unsafe { (e.f)(geo, &x, &w, &r, &mut y) })
        });
    }
    g.finish();
}

/// The A16W8 kernels (int16 activations, int8 weights; format 1.6) on the same MobileNetV2
/// shapes as the int8 GEMM and depthwise benches, weights packed as the compiler writes them for
/// x86-64 and aarch64 (and row-major, the generic target's layout).
fn bench_qs16(c: &mut Criterion) {
    let shapes = [
        ("56x56_24to144_1x1", geometry(56, 24, 144, 1, 1, 1)),
        ("56x56_144to24_1x1", geometry(56, 144, 24, 1, 1, 1)),
        ("14x14_64to384_1x1", geometry(14, 64, 384, 1, 1, 1)),
        ("7x7_960to320_1x1", geometry(7, 960, 320, 1, 1, 1)),
        ("224x224_3to32_3x3s2", geometry(224, 3, 32, 3, 2, 1)),
    ];
    let mut g = quick(c, "qs16_gemm");
    for (name, geo) in shapes {
        let k = geo.kernel_h * geo.kernel_w * geo.in_c;
        let x: Vec<i16> = bytes(geo.in_h * geo.in_w * geo.in_c, 1).iter().map(|&v| v as i16 * 97).collect();
        let w = bytes(geo.out_c * k, 2);
        let packed = SIMD_PACK.pack(geo.out_c, k, &w);
        let p = params(geo.out_c);
        let r = rq(&p);
        let mut y = vec![0i16; geo.out_h * geo.out_w * geo.out_c];
        g.throughput(Throughput::Elements(geo.macs()));
        for (m, layout) in [
            (WeightMatrix { data: &packed, n: geo.out_c, k, pack: Some(SIMD_PACK) }, "packed"),
            (WeightMatrix { data: &w, n: geo.out_c, k, pack: None }, "rowmajor"),
        ] {
            for e in runnable(registry::QS16_GEMM, &conv_query(&geo, m.pack, k)) {
                // SAFETY: `runnable` checked this CPU's features and the entry's constraints.
                g.bench_with_input(BenchmarkId::new(format!("{}_{layout}", e.name), name), &geo, |b, geo| {
                    b.iter(|| unsafe { (e.f)(geo, &x, &m, &r, &mut y) })
                });
            }
        }
    }
    g.finish();
    let shapes = [
        ("112x112_c32_s1", geometry(112, 32, 32, 3, 1, 32)),
        ("56x56_c144_s1", geometry(56, 144, 144, 3, 1, 144)),
        ("14x14_c576_s1", geometry(14, 576, 576, 3, 1, 576)),
        ("7x7_c960_s1", geometry(7, 960, 960, 3, 1, 960)),
    ];
    let mut g = quick(c, "qs16_dwconv");
    for (name, geo) in shapes {
        let x: Vec<i16> = bytes(geo.in_h * geo.in_w * geo.in_c, 3).iter().map(|&v| v as i16 * 97).collect();
        let w = bytes(9 * geo.in_c, 4);
        let p = params(geo.out_c);
        let r = rq(&p);
        let mut y = vec![0i16; geo.out_h * geo.out_w * geo.out_c];
        g.throughput(Throughput::Elements(geo.macs()));
        for e in runnable(registry::QS16_DWCONV, &conv_query(&geo, None, 9)) {
            // SAFETY: as above.
            g.bench_with_input(BenchmarkId::new(e.name, name), &geo, |b, geo| {
                b.iter(|| unsafe { (e.f)(geo, &x, &w, &r, &mut y) })
            });
        }
    }
    g.finish();
    // MobileNetV2's global average pool (7x7x1280) in int16, and the f32 -> int16 quantization of
    // its 224x224x3 input.
    let mut g = quick(c, "qs16_pool_quantize");
    let x: Vec<i16> = bytes(7 * 7 * 1280, 5).iter().map(|&v| v as i16 * 97).collect();
    let mut y = vec![0i16; 1280];
    let (mult, shift) = quantize_multiplier(1.0 / 49.0);
    let gp =
        sparq_runtime::kernels::pool::GlobalPool { batch: 1, hw: 49, channels: 1280, zp_in: 0, zp_out: 0, mult, shift };
    g.throughput(Throughput::Elements(x.len() as u64));
    for e in runnable(registry::QS16_GLOBAL_AVG_POOL, &Query::default()) {
        // SAFETY: `runnable` checked this CPU's features.
        g.bench_function(BenchmarkId::new(e.name, "global_avg_7x7x1280"), |b| {
            b.iter(|| unsafe { (e.f)(&gp, &x, &mut y) })
        });
    }
    let xf: Vec<f32> = bytes(224 * 224 * 3, 6).iter().map(|&v| v as f32 * 0.02).collect();
    let mut yq = vec![0i16; xf.len()];
    g.throughput(Throughput::Elements(xf.len() as u64));
    for e in runnable(registry::QS16_QUANTIZE, &Query::default()) {
        // SAFETY: as above.
        g.bench_function(BenchmarkId::new(e.name, "224x224x3"), |b| {
            b.iter(|| unsafe { (e.f)(&xf, &mut yq, 1.0 / 4096.0) })
        });
    }
    g.finish();
}

/// Int8 residual add (56x56x24 and 14x14x96 of MobileNetV2), and the f32-output classifier.
fn bench_elementwise_and_fc(c: &mut Criterion) {
    let mut g = quick(c, "qs8_add");
    for n in [56 * 56 * 24, 14 * 14 * 96] {
        let (a, b) = (bytes(n, 5), bytes(n, 6));
        let (m, s) = quantize_multiplier(0.7);
        let p =
            AddParams { zp_a: 3, zp_b: -5, zp_out: 1, mult_a: m, mult_b: m / 2, shift: s, act_min: -128, act_max: 127 };
        let mut y = vec![0i8; n];
        g.throughput(Throughput::Elements(n as u64));
        for e in runnable(registry::QS8_ADD, &Query::default()) {
            // SAFETY: `runnable` checked this CPU's features; the operands have one length.
            g.bench_with_input(BenchmarkId::new(e.name, n), &n, |bch, _| {
                bch.iter(|| unsafe { (e.f)(&a, &b, &mut y, &p) })
            });
        }
    }
    g.finish();
    // Int8 activations: a table lookup (any activation) against a plain clamp (ReLU6), per
    // element, on a MobileNetV3-sized activation (56x56x24).
    let mut g = quick(c, "qs8_activation");
    for n in [56 * 56 * 24] {
        let x = bytes(n, 7);
        let table: [i8; 256] = core::array::from_fn(|i| ((i as i32 - 128) / 2) as i8);
        let mut y = vec![0i8; n];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("qs8_clamp_contiguous", n), &n, |bch, _| {
            bch.iter(|| {
                for (d, &v) in y.iter_mut().zip(&x) {
                    *d = v.clamp(-20, 90);
                }
            })
        });
        for e in runnable(registry::QS8_LUT, &Query::default()) {
            // SAFETY: `runnable` checked this CPU's features; the operands have one length.
            g.bench_with_input(BenchmarkId::new(e.name, n), &n, |bch, _| {
                bch.iter(|| unsafe { (e.f)(&table, &x, &mut y) })
            });
        }
    }
    g.finish();
    let mut g = quick(c, "qs8_mul");
    for n in [14 * 14 * 96] {
        let (a, b) = (bytes(n, 5), bytes(n, 6));
        let (mult, shift) = quantize_multiplier(0.01);
        let p = MulParams { zp_a: 3, zp_b: -5, zp_out: 1, mult, shift, act_min: -128, act_max: 127 };
        let mut y = vec![0i8; n];
        g.throughput(Throughput::Elements(n as u64));
        for e in runnable(registry::QS8_MUL, &Query::default()) {
            // SAFETY: as above.
            g.bench_with_input(BenchmarkId::new(e.name, n), &n, |bch, _| {
                bch.iter(|| unsafe { (e.f)(&a, &b, &mut y, &p) })
            });
        }
    }
    g.finish();
    // The model input: f32 -> int8 (224x224x3).
    let mut g = quick(c, "qs8_quantize");
    let n = 224 * 224 * 3;
    let xf: Vec<f32> = bytes(n, 9).into_iter().map(|v| v as f32 / 50.0).collect();
    let mut y = vec![0i8; n];
    g.throughput(Throughput::Elements(n as u64));
    for e in runnable(registry::QS8_QUANTIZE, &Query::default()) {
        // SAFETY: as above.
        g.bench_function(BenchmarkId::new(e.name, n), |bch| bch.iter(|| unsafe { (e.f)(&xf, &mut y, 0.04, -3) }));
    }
    g.finish();
    // A fully-connected int8 layer on row-major weights (1280 -> 1000).
    let mut g = quick(c, "qs8_fc");
    let (k, n) = (1280, 1000);
    let x = bytes(k, 7);
    let w = bytes(n * k, 8);
    let p = params(n);
    let r = rq(&p);
    let mut y = vec![0i8; n];
    g.throughput(Throughput::Elements((n * k) as u64));
    for e in runnable(registry::QS8_FC, &conv_query(&ConvGeometry::rows(1, k, n), None, k)) {
        // SAFETY: as above.
        g.bench_function(BenchmarkId::new(e.name, "1280to1000"), |bch| {
            bch.iter(|| unsafe { (e.f)(1, k, n, &x, &w, &r, &mut y) })
        });
    }
    g.finish();
    let mut g = quick(c, "qs8_fc_f32out");
    let (k, n) = (1280, 1000);
    let x = bytes(k, 7);
    let w = bytes(n * k, 8);
    let packed = SIMD_PACK.pack(n, k, &w);
    let m = WeightMatrix { data: &packed, n, k, pack: Some(SIMD_PACK) };
    let bias = vec![7i32; n];
    let scale = vec![0.001f32; n];
    let out = sparq_runtime::kernels::fc::F32Out {
        bias: &bias,
        scale: &scale,
        input_zero_point: -128,
        lo: f32::MIN,
        hi: f32::MAX,
    };
    let mut y = vec![0f32; n];
    g.throughput(Throughput::Elements((n * k) as u64));
    for e in runnable(registry::QS8_FC_F32OUT, &conv_query(&ConvGeometry::rows(1, k, n), m.pack, k)) {
        // SAFETY: as above.
        g.bench_function(BenchmarkId::new(e.name, "1280to1000"), |b| {
            b.iter(|| unsafe { (e.f)(1, &x, &m, &out, &mut y) })
        });
    }
    // The classifier of a pruned model stored block-sparse (16x4 blocks), every sparse entry.
    for sparsity in [80u32, 90] {
        use sparq_format::sparse::{encode, BlockSparse, KERNEL_BLOCK};
        let wz = block_sparse_weights(n, k, sparsity);
        let store = sparq_runtime::AlignedBytes::from_slice(&encode(KERNEL_BLOCK, n, k, &wz));
        let s = BlockSparse::parse(store.as_slice(), n, k, KERNEL_BLOCK).unwrap();
        for e in runnable(registry::QS8_SPFC_F32OUT, &conv_query(&ConvGeometry::rows(1, k, n), Some(KERNEL_BLOCK), k)) {
            // SAFETY: as above.
            g.bench_function(BenchmarkId::new(format!("{}_sparse{sparsity}", e.name), "1280to1000"), |b| {
                b.iter(|| unsafe { (e.f)(1, &x, &s, &out, &mut y) })
            });
        }
    }
    g.finish();
}

/// Block-sparse int8 GEMM (16x4 blocks, the best kernel set of this CPU) against the same set's
/// dense kernel on every 1x1 shape of MobileNetV2, at 50, 80 and 90% block sparsity. The crossover
/// (the densest matrix the sparse kernel still wins on) is measured by `cargo bench --bench
/// sparse_crossover`, which writes the number the target profiles hold.
fn bench_sparse(c: &mut Criterion) {
    use sparq_format::sparse::{encode, BlockSparse, KERNEL_BLOCK};
    let shapes = mobilenet_v2_pointwise();
    let set = *sets().last().expect("scalar at least");
    let mut g = quick(c, "qs8_spgemm");
    for (name, geo) in shapes {
        let k = geo.in_c;
        let x = bytes(geo.in_h * geo.in_w * k, 1);
        let p = params(geo.out_c);
        let r = rq(&p);
        let mut y = vec![0i8; geo.out_h * geo.out_w * geo.out_c];
        g.throughput(Throughput::Elements(geo.macs()));
        let w = bytes(geo.out_c * k, 2);
        let packed = SIMD_PACK.pack(geo.out_c, k, &w);
        let m = WeightMatrix { data: &packed, n: geo.out_c, k, pack: Some(SIMD_PACK) };
        g.bench_with_input(BenchmarkId::new(format!("{}_dense", set.name()), name), &geo, |b, geo| {
            b.iter(|| set.qs8_gemm(geo, &x, &m, &r, &mut y))
        });
        for sparsity in [50u32, 80, 90] {
            let wz = block_sparse_weights(geo.out_c, k, sparsity);
            let enc = encode(KERNEL_BLOCK, geo.out_c, k, &wz);
            let store = sparq_runtime::AlignedBytes::from_slice(&enc);
            let s = BlockSparse::parse(store.as_slice(), geo.out_c, k, KERNEL_BLOCK).unwrap();
            g.bench_with_input(BenchmarkId::new(format!("{}_sparse{sparsity}", set.name()), name), &geo, |b, geo| {
                b.iter(|| set.qs8_spgemm(geo, &x, &s, &r, &mut y))
            });
            if sparsity == 80 {
                // Every other sparse entry this CPU runs, at 80% (the best path's one is above).
                for e in runnable(registry::QS8_SPGEMM, &conv_query(&geo, Some(KERNEL_BLOCK), k)) {
                    if e.name != set.spgemm_name() {
                        // SAFETY: `runnable` checked this CPU's features and the entry's constraints.
                        g.bench_with_input(BenchmarkId::new(format!("{}_sparse80", e.name), name), &geo, |b, geo| {
                            b.iter(|| unsafe { (e.f)(geo, &x, &s, &r, &mut y) })
                        });
                    }
                }
            }
        }
    }
    g.finish();
}

/// Int8 pooling: MobileNetV2's global average pool (7x7x1280) and a 2x2 max pool (56x56x64).
fn bench_pool(c: &mut Criterion) {
    let mut g = quick(c, "qs8_pool");
    let x = bytes(7 * 7 * 1280, 5);
    let mut y = vec![0i8; 1280];
    let (mult, shift) = quantize_multiplier(1.0 / 49.0);
    let gp = sparq_runtime::kernels::pool::GlobalPool {
        batch: 1,
        hw: 49,
        channels: 1280,
        zp_in: -3,
        zp_out: 5,
        mult,
        shift,
    };
    g.throughput(Throughput::Elements(x.len() as u64));
    for e in runnable(registry::QS8_GLOBAL_AVG_POOL, &Query::default()) {
        // SAFETY: `runnable` checked this CPU's features.
        g.bench_function(BenchmarkId::new(e.name, "global_avg_7x7x1280"), |b| {
            b.iter(|| unsafe { (e.f)(&gp, &x, &mut y) })
        });
    }
    let geo = geometry(56, 64, 64, 2, 2, 1);
    let geo = sparq_runtime::kernels::conv::ConvGeometry { pad_top: 0, pad_left: 0, out_h: 28, out_w: 28, ..geo };
    let x = bytes(56 * 56 * 64, 6);
    let mut y = vec![0i8; 28 * 28 * 64];
    g.throughput(Throughput::Elements(x.len() as u64));
    for e in runnable(registry::QS8_MAX_POOL, &conv_query(&geo, None, 4)) {
        // SAFETY: `runnable` checked this CPU's features.
        g.bench_function(BenchmarkId::new(e.name, "max_2x2s2_56x56x64"), |b| {
            b.iter(|| unsafe { (e.f)(&geo, &x, &mut y) })
        });
    }
    g.finish();
}

/// f32 convolution (layers kept in float): a large 1x1 layer (a GEMM of 3136 x 256 x 256), a
/// MobileNetV2 1x1 layer and its classifier as 1x1 over one row. Then each SIMD kernel's GFLOP/s on
/// the large GEMM next to the FMA peak of its vector width, measured in the same run by a loop of
/// independent fused multiply-adds (the ratio is the claim; both numbers are printed).
fn bench_f32(c: &mut Criterion) {
    let mut g = quick(c, "f32_conv2d");
    let shapes = [
        ("56x56_256to256_1x1", geometry(56, 256, 256, 1, 1, 1)),
        ("14x14_64to384_1x1", geometry(14, 64, 384, 1, 1, 1)),
        ("fc_1280to1000", geometry(1, 1280, 1000, 1, 1, 1)),
    ];
    let data = |geo: &ConvGeometry| {
        let k = geo.in_c;
        let x: Vec<f32> = bytes(geo.in_h * geo.in_w * k, 7).into_iter().map(|v| v as f32 / 64.0).collect();
        let w: Vec<f32> = bytes(geo.out_c * k, 8).into_iter().map(|v| v as f32 / 512.0).collect();
        (x, w, vec![0.1f32; geo.out_c], vec![0f32; geo.out_h * geo.out_w * geo.out_c])
    };
    for (name, geo) in &shapes {
        let (x, w, b, mut y) = data(geo);
        g.throughput(Throughput::Elements(geo.macs()));
        for e in runnable(registry::F32_CONV, &conv_query(geo, None, geo.in_c)) {
            if e.name.ends_with("_scalar") && geo.macs() > 50_000_000 {
                continue; // the scalar specification takes seconds on the large GEMM
            }
            // SAFETY: `runnable` checked this CPU's features and the entry's constraints.
            g.bench_with_input(BenchmarkId::new(e.name, name), geo, |bch, geo| {
                bch.iter(|| unsafe { (e.f)(geo, &x, &w, &b, f32::NEG_INFINITY, f32::INFINITY, &mut y) })
            });
        }
    }
    g.finish();
    let (name, geo) = &shapes[0];
    let (x, w, b, mut y) = data(geo);
    for e in runnable(registry::F32_CONV, &conv_query(geo, None, geo.in_c)) {
        let Some(lanes) = fma_lanes(e.name) else { continue };
        let best = min_seconds(|| {
            // SAFETY: `runnable` checked this CPU's features and the entry's constraints.
            unsafe { (e.f)(geo, &x, &w, &b, f32::NEG_INFINITY, f32::INFINITY, &mut y) }
        });
        let gflops = 2.0 * geo.macs() as f64 / best / 1e9;
        let peak = fma_peak_gflops(lanes);
        println!(
            "f32 GEMM {name} ({} MACs), {}: {gflops:.1} GFLOP/s = {:.0}% of the {lanes}-lane FMA peak measured now, {peak:.1} GFLOP/s",
            geo.macs(),
            e.name,
            100.0 * gflops / peak
        );
    }
}

/// Vector lanes of an f32 kernel, by its ISA suffix (`None` for scalar).
fn fma_lanes(name: &str) -> Option<usize> {
    [("_avx512", 16), ("_avx2", 8), ("_neon", 4)].iter().find(|(s, _)| name.ends_with(s)).map(|&(_, l)| l)
}

/// The fastest of 30 timed calls, in seconds.
fn min_seconds(mut f: impl FnMut()) -> f64 {
    f();
    (0..30)
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// The f32 FMA peak of `lanes`-wide vectors on this core: independent accumulator chains (more
/// than latency x pipes on any current core), 2 flops per lane per instruction.
fn fma_peak_gflops(lanes: usize) -> f64 {
    const ITERS: usize = 1 << 20;
    let (mut sink, mut chains) = (0f32, 0);
    let best = min_seconds(|| {
        let (s, c) = fma_loop(lanes, ITERS);
        (sink, chains) = (sink + s, c);
    });
    std::hint::black_box(sink);
    2.0 * (lanes * chains * ITERS) as f64 / best / 1e9
}

#[cfg(target_arch = "x86_64")]
/// `(a value to keep, the chains run)` of `iters` steps of independent FMAs.
fn fma_loop(lanes: usize, iters: usize) -> (f32, usize) {
    use std::arch::x86_64::*;
    /// Independent accumulators as separate locals (an array could live on the stack): 16 for
    /// zmm (32 registers), 12 for ymm (16 registers without AVX-512).
    macro_rules! chains {
        ($fma:ident, $a:expr, $b:expr, $iters:expr, $sum:expr, $($c:ident)+) => {{
            let (a, b) = ($a, $b);
            $(let mut $c = a;)+
            for _ in 0..$iters {
                $($c = $fma($c, a, b);)+
            }
            [$($c),+].iter().map($sum).sum::<f32>()
        }};
    }
    #[target_feature(enable = "avx512f")]
    unsafe fn zmm(iters: usize) -> f32 {
        let a = _mm512_set1_ps(std::hint::black_box(0.999));
        let b = _mm512_set1_ps(std::hint::black_box(1e-3));
        chains!(_mm512_fmadd_ps, a, b, iters, |&v| _mm512_reduce_add_ps(v), c0 c1 c2 c3 c4 c5 c6 c7 c8 c9 c10 c11 c12 c13 c14 c15)
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn ymm(iters: usize) -> f32 {
        let a = _mm256_set1_ps(std::hint::black_box(0.999));
        let b = _mm256_set1_ps(std::hint::black_box(1e-3));
        let sum = |&v: &__m256| {
            let mut out = [0f32; 8];
            _mm256_storeu_ps(out.as_mut_ptr(), v);
            out.iter().sum::<f32>()
        };
        chains!(_mm256_fmadd_ps, a, b, iters, sum, c0 c1 c2 c3 c4 c5 c6 c7 c8 c9 c10 c11)
    }
    // SAFETY: only called for a kernel this CPU runs, which needs these features.
    unsafe {
        if lanes == 16 {
            (zmm(iters), 16)
        } else {
            (ymm(iters), 12)
        }
    }
}

#[cfg(target_arch = "aarch64")]
fn fma_loop(_lanes: usize, iters: usize) -> (f32, usize) {
    use std::arch::aarch64::*;
    // SAFETY: NEON is baseline on aarch64.
    unsafe {
        let (a, b) = (vdupq_n_f32(std::hint::black_box(0.999)), vdupq_n_f32(std::hint::black_box(1e-3)));
        let mut acc = [vdupq_n_f32(1.0); 16];
        for _ in 0..iters {
            for v in &mut acc {
                *v = vfmaq_f32(b, *v, a);
            }
        }
        (acc.iter().map(|&v| vaddvq_f32(v)).sum(), 16)
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn fma_loop(_lanes: usize, _iters: usize) -> (f32, usize) {
    (0.0, 0)
}

criterion_group!(
    benches,
    bench_gemm,
    bench_depthwise,
    bench_qs16,
    bench_elementwise_and_fc,
    bench_sparse,
    bench_pool,
    bench_f32
);
criterion_main!(benches);
