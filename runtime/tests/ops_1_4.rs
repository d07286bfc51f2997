//! The op kinds of format 1.4 (MATMUL, BINARY, REDUCE, NORMALIZE, GATHER) on tiny models whose
//! outputs are worked out by hand, on every kernel set this CPU runs (so, under qemu in
//! `.ci/run`, the ARM ones too): each set gives the same bytes, and they are the expected values.

use sparq_runtime::format::layout::op::{self, binary, reduce};
use sparq_runtime::format::layout::OP_PARAMS;
use sparq_runtime::format::writer::{ModelSpec, OpSpec, TensorSpec};
use sparq_runtime::format::{DType, Layout};
use sparq_runtime::kernels::registry;
use sparq_runtime::{AlignedBytes, Model, Session};

/// A model under construction: arena tensors at sequential 64-byte aligned offsets.
#[derive(Default)]
struct Builder {
    spec: ModelSpec,
    arena: usize,
}

impl Builder {
    fn tensor(&mut self, dtype: DType, dims: &[usize], data: Option<Vec<u8>>, quant: (f32, i32)) -> u32 {
        let offset = if data.is_some() {
            0
        } else {
            let at = self.arena;
            self.arena += (dims.iter().product::<usize>() * dtype.size()).div_ceil(64).max(1) * 64;
            at
        };
        self.spec.tensors.push(TensorSpec {
            name: format!("t{}", self.spec.tensors.len()),
            dtype,
            dims: dims.to_vec(),
            layout: Layout::RowMajor,
            arena_offset: offset,
            scale: quant.0,
            zero_point: quant.1,
            data,
            pack: None,
        });
        (self.spec.tensors.len() - 1) as u32
    }
    fn f32_act(&mut self, dims: &[usize]) -> u32 {
        self.tensor(DType::F32, dims, None, (0.0, 0))
    }
    fn f32s(&mut self, dims: &[usize], v: &[f32]) -> u32 {
        assert_eq!(dims.iter().product::<usize>(), v.len());
        self.tensor(DType::F32, dims, Some(v.iter().flat_map(|x| x.to_le_bytes()).collect()), (0.0, 0))
    }
    fn i32s(&mut self, dims: &[usize], v: &[i32]) -> u32 {
        assert_eq!(dims.iter().product::<usize>(), v.len());
        self.tensor(DType::I32, dims, Some(v.iter().flat_map(|x| x.to_le_bytes()).collect()), (0.0, 0))
    }
    fn op(&mut self, kind: u16, inputs: Vec<u32>, output: u32, params: [i32; OP_PARAMS]) {
        let name = format!("{}_{}", op::name(kind), self.spec.ops.len());
        self.spec.ops.push(OpSpec { kind, name, inputs, outputs: vec![output], params });
    }
    fn finish(mut self, inputs: Vec<u32>, outputs: Vec<u32>) -> Vec<u8> {
        self.spec.name = "ops_1_4".into();
        self.spec.arena_size = self.arena;
        self.spec.inputs = inputs;
        self.spec.outputs = outputs;
        self.spec.to_bytes()
    }
}

/// Output 0 of `bytes` run with input 0 set to `input`, on every kernel set this CPU runs; the
/// sets must agree to the bit.
fn run(bytes: &[u8], input: &[f32]) -> Vec<f32> {
    // SPARQ_KERNELS is process-wide and tests run on parallel threads: one forced set at a time.
    static FORCED: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = FORCED.lock().unwrap_or_else(|e| e.into_inner());
    let aligned = AlignedBytes::from_slice(bytes);
    let model = Model::from_bytes(aligned.as_slice()).unwrap();
    let mut first: Option<(&str, Vec<f32>)> = None;
    for set in registry::available() {
        std::env::set_var("SPARQ_KERNELS", set.name());
        let mut arena = AlignedBytes::zeroed(model.arena_size());
        let mut s = Session::new(&model, arena.as_mut_slice()).unwrap();
        s.set_input(0, input).unwrap();
        s.run();
        let out = s.output(0).unwrap().to_vec();
        match &first {
            None => first = Some((set.name(), out)),
            Some((name, want)) => {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&out), bits(want), "kernel set {} differs from {name}", set.name());
            }
        }
    }
    std::env::remove_var("SPARQ_KERNELS");
    first.expect("at least the scalar set").1
}

/// The kernel sets the tests above compare (for the CI log under qemu).
#[test]
fn kernel_sets_compared() {
    let sets: Vec<&str> = registry::available().map(|k| k.name()).collect();
    assert!(sets.contains(&"scalar"), "{sets:?}");
    println!("format 1.4 ops checked bit-exact across kernel sets {sets:?}");
}

/// `got` equals `want` within a relative `1e-6` (NaN where NaN is expected).
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() { g.is_nan() } else { (g - w).abs() <= 1e-6 * w.abs().max(1.0) };
        assert!(ok, "{what}: element {i} is {g}, expected {w} (all: {got:?})");
    }
}

/// MATMUL, batch axes broadcast and both transpose flags: a (the input) is `[2, M=2, K=2]`
/// stored `[2, K, M]`; b is `[K=2, N=3]` stored `[N, K]`, with a batch axis of 1 or none.
#[test]
fn matmul_broadcasts_batches_and_reads_transposed_operands() {
    // a0 = [[1, 2], [3, 4]], a1 = [[5, 6], [7, 8]], stored transposed.
    let a_stored = [1.0, 3.0, 2.0, 4.0, 5.0, 7.0, 6.0, 8.0];
    // b = [[1, 0, -1], [2, 1, 0]], stored transposed.
    let b_stored = [1.0, 2.0, 0.0, 1.0, -1.0, 0.0];
    // a0 b = [[5, 2, -1], [11, 4, -3]], a1 b = [[17, 6, -5], [23, 8, -7]].
    let want = [5.0, 2.0, -1.0, 11.0, 4.0, -3.0, 17.0, 6.0, -5.0, 23.0, 8.0, -7.0];
    for b_dims in [&[1, 3, 2][..], &[3, 2]] {
        let mut m = Builder::default();
        let a = m.f32_act(&[2, 2, 2]);
        let b = m.f32s(b_dims, &b_stored);
        let y = m.f32_act(&[2, 2, 3]);
        let mut p = [0; OP_PARAMS];
        p[op::MATMUL_TRANSPOSE] = 3;
        m.op(op::MATMUL, vec![a, b], y, p);
        let got = run(&m.finish(vec![a], vec![y]), &a_stored);
        assert_eq!(got, want, "b stored as {b_dims:?}");
    }
    // The same product without the flags: a `[2, 2, 2]` row-major, b `[2, 3]` row-major, and b's
    // batch axis broadcast against a's of 2 from a leading 1.
    let mut m = Builder::default();
    let a = m.f32_act(&[2, 2, 2]);
    let b = m.f32s(&[1, 2, 3], &[1.0, 0.0, -1.0, 2.0, 1.0, 0.0]);
    let y = m.f32_act(&[2, 2, 3]);
    m.op(op::MATMUL, vec![a, b], y, [0; OP_PARAMS]);
    let got = run(&m.finish(vec![a], vec![y]), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    assert_eq!(got, want);
}

/// A one-REDUCE model of `[2, 3]` over the axes of `mask`.
fn reduce_model(function: i32, mask: i32, select_last: bool) -> Vec<u8> {
    let mut m = Builder::default();
    let x = m.f32_act(&[2, 3]);
    let y = m.f32_act(&[if mask & 1 == 1 { 1 } else { 2 }, if mask & 2 == 2 { 1 } else { 3 }]);
    let mut p = [0; OP_PARAMS];
    p[op::FUNCTION] = function;
    p[op::REDUCE_AXES] = mask;
    p[op::REDUCE_SELECT_LAST] = i32::from(select_last);
    m.op(op::REDUCE, vec![x], y, p);
    m.finish(vec![x], vec![y])
}

/// Every REDUCE function on `[[1, 3, 3], [-2, 0.5, -2]]` (ties for the maximum of row 0 and the
/// minimum of row 1, so select_last matters), over axis 1, axis 0 and both.
#[test]
fn every_reduce_function_on_a_two_by_three_tensor() {
    let x = [1.0, 3.0, 3.0, -2.0, 0.5, -2.0];
    let e = |v: f32| v.exp();
    let rows: [(i32, bool, [f32; 2]); 14] = [
        (reduce::SUM, false, [7.0, -3.5]),
        (reduce::MEAN, false, [7.0 / 3.0, -3.5 / 3.0]),
        (reduce::MAX, false, [3.0, 0.5]),
        (reduce::MIN, false, [1.0, -2.0]),
        (reduce::PROD, false, [9.0, 2.0]),
        (reduce::L1, false, [7.0, 4.5]),
        (reduce::L2, false, [19f32.sqrt(), 8.25f32.sqrt()]),
        (reduce::SUM_SQUARE, false, [19.0, 8.25]),
        // ln of a negative sum: NaN.
        (reduce::LOG_SUM, false, [7f32.ln(), f32::NAN]),
        (reduce::LOG_SUM_EXP, false, [3.0 + (e(-2.0) + 2.0).ln(), 0.5 + (2.0 * e(-2.5) + 1.0).ln()]),
        (reduce::ARGMAX, false, [1.0, 1.0]),
        (reduce::ARGMAX, true, [2.0, 1.0]),
        (reduce::ARGMIN, false, [0.0, 0.0]),
        (reduce::ARGMIN, true, [0.0, 2.0]),
    ];
    for (function, last, want) in rows {
        let what = format!("{} over axis 1, select_last {last}", reduce::name(function).unwrap());
        assert_close(&run(&reduce_model(function, 0b10, last), &x), &want, &what);
    }
    // Over axis 0: the columns [1, -2], [3, 0.5], [3, -2].
    let cols: [(i32, bool, [f32; 3]); 4] = [
        (reduce::SUM, false, [-1.0, 3.5, 1.0]),
        (reduce::MAX, false, [1.0, 3.0, 3.0]),
        (reduce::ARGMAX, false, [0.0, 0.0, 0.0]),
        (reduce::ARGMIN, true, [1.0, 1.0, 1.0]),
    ];
    for (function, last, want) in cols {
        let what = format!("{} over axis 0", reduce::name(function).unwrap());
        assert_close(&run(&reduce_model(function, 0b01, last), &x), &want, &what);
    }
    // Over both: the index in row-major order of the whole tensor.
    let all: [(i32, bool, f32); 5] = [
        (reduce::SUM, false, 3.5),
        (reduce::ARGMAX, false, 1.0),
        (reduce::ARGMAX, true, 2.0),
        (reduce::ARGMIN, false, 3.0),
        (reduce::ARGMIN, true, 5.0),
    ];
    for (function, last, want) in all {
        let what = format!("{} over both axes, select_last {last}", reduce::name(function).unwrap());
        assert_close(&run(&reduce_model(function, 0b11, last), &x), &[want], &what);
    }
}

/// NORMALIZE (layer normalization): rows with mean 2 and variance 1 and 4, so that with eps 0
/// every value is exact; with scale and bias, without them, with eps 3, and over every axis.
#[test]
fn layer_normalization_with_and_without_scale_and_bias() {
    let x = [1.0, 3.0, 1.0, 3.0, 0.0, 0.0, 4.0, 4.0];
    let model = |axis: i32, eps: f32, affine: bool| {
        let mut m = Builder::default();
        let xt = m.f32_act(&[2, 4]);
        let mut inputs = vec![xt];
        if affine {
            let count = if axis == 0 { 8 } else { 4 };
            let scale: Vec<f32> = [1.0, 2.0, 0.5, -1.0].iter().cycle().take(count).copied().collect();
            let bias: Vec<f32> = [0.0, 1.0, 0.0, 10.0].iter().cycle().take(count).copied().collect();
            inputs.push(m.f32s(&[count], &scale));
            inputs.push(m.f32s(&[count], &bias));
        }
        let y = m.f32_act(&[2, 4]);
        let mut p = [0; OP_PARAMS];
        p[op::AXIS] = axis;
        p[op::NORM_EPSILON] = eps.to_bits() as i32;
        m.op(op::NORMALIZE, inputs, y, p);
        m.finish(vec![xt], vec![y])
    };
    // Row 0: (x - 2) / 1; row 1: (x - 2) / 2.
    assert_eq!(run(&model(1, 0.0, false), &x), [-1.0, 1.0, -1.0, 1.0, -1.0, -1.0, 1.0, 1.0]);
    // Times [1, 2, 0.5, -1], plus [0, 1, 0, 10].
    assert_eq!(run(&model(1, 0.0, true), &x), [-1.0, 3.0, -0.5, 9.0, -1.0, -1.0, 0.5, 9.0]);
    // eps 3: row 0 divided by sqrt(1 + 3) = 2, row 1 by sqrt(4 + 3).
    let r7 = 1.0 / 7f32.sqrt();
    assert_close(
        &run(&model(1, 3.0, false), &x),
        &[-0.5, 0.5, -0.5, 0.5, -2.0 * r7, -2.0 * r7, 2.0 * r7, 2.0 * r7],
        "eps 3",
    );
    // Over both axes: mean 2, variance (4 * 1 + 4 * 4) / 8 = 2.5.
    let r = 1.0 / 2.5f32.sqrt();
    let want: Vec<f32> = x.iter().map(|v| (v - 2.0) * r).collect();
    assert_close(&run(&model(0, 0.0, false), &x), &want, "axis 0");
}

/// GATHER along axis 1 with rank-2 indices (f32, an inner axis copied whole), and an int8
/// gather along axis 0 with a rank-0 index.
#[test]
fn gather_along_axis_one_with_rank_two_indices() {
    // x[o][a][c] = 100 o + 10 a + c, shape [2, 3, 2]; indices [[2, 0], [1, 2]].
    let x: Vec<f32> = (0..12).map(|i| (100 * (i / 6) + 10 * (i / 2 % 3) + i % 2) as f32).collect();
    let mut m = Builder::default();
    let xt = m.f32_act(&[2, 3, 2]);
    let it = m.i32s(&[2, 2], &[2, 0, 1, 2]);
    let y = m.f32_act(&[2, 2, 2, 2]);
    let mut p = [0; OP_PARAMS];
    p[op::AXIS] = 1;
    m.op(op::GATHER, vec![xt, it], y, p);
    let want = [
        20.0, 21.0, 0.0, 1.0, 10.0, 11.0, 20.0, 21.0, //
        120.0, 121.0, 100.0, 101.0, 110.0, 111.0, 120.0, 121.0,
    ];
    assert_eq!(run(&m.finish(vec![xt], vec![y]), &x), want);

    // int8: quantize (scale 0.5, zero point 3), row 1 of [2, 3], dequantize.
    let q = (0.5, 3);
    let mut m = Builder::default();
    let xt = m.f32_act(&[2, 3]);
    let xq = m.tensor(DType::I8, &[2, 3], None, q);
    m.op(op::QUANTIZE, vec![xt], xq, [0; OP_PARAMS]);
    let it = m.i32s(&[], &[1]);
    let yq = m.tensor(DType::I8, &[3], None, q);
    m.op(op::GATHER, vec![xq, it], yq, [0; OP_PARAMS]);
    let y = m.f32_act(&[3]);
    m.op(op::DEQUANTIZE, vec![yq], y, [0; OP_PARAMS]);
    assert_eq!(run(&m.finish(vec![xt], vec![y]), &[1.0, 2.0, 3.0, -4.0, 0.5, 7.5]), [-4.0, 0.5, 7.5]);
}

/// A one-BINARY f32 model: `x [dims] (op) c` (or `c (op) x` with `const_first`).
fn binary_model(function: i32, dims: &[usize], c_dims: &[usize], c: &[f32], const_first: bool) -> Vec<u8> {
    let mut m = Builder::default();
    let x = m.f32_act(dims);
    let ct = m.f32s(c_dims, c);
    let y = m.f32_act(dims);
    let mut p = [0; OP_PARAMS];
    p[op::FUNCTION] = function;
    m.op(op::BINARY, if const_first { vec![ct, x] } else { vec![x, ct] }, y, p);
    m.finish(vec![x], vec![y])
}

/// BINARY: f32 Min and Max propagate NaN from either side; Sub, Div and Pow broadcast a row
/// (either operand order); int8 Max and Min compare codes of the shared quantization.
#[test]
fn binary_min_max_with_nan_and_int8_and_the_other_functions() {
    let x = [1.0, f32::NAN, -0.5, 3.0];
    let c = [2.0, 0.0, f32::NAN, 3.0];
    for (function, want) in
        [(binary::MIN, [1.0, f32::NAN, f32::NAN, 3.0]), (binary::MAX, [2.0, f32::NAN, f32::NAN, 3.0])]
    {
        let name = binary::name(function).unwrap();
        for const_first in [false, true] {
            let got = run(&binary_model(function, &[4], &[4], &c, const_first), &x);
            assert_close(&got, &want, &format!("f32 {name}, constant first {const_first}"));
        }
    }
    // [[1, 2], [3, 4]] against the row [2, 0.5].
    let x = [1.0, 2.0, 3.0, 4.0];
    let row = [2.0, 0.5];
    let cases: [(i32, bool, [f32; 4]); 5] = [
        (binary::SUB, false, [-1.0, 1.5, 1.0, 3.5]),
        (binary::SUB, true, [1.0, -1.5, -1.0, -3.5]),
        (binary::DIV, false, [0.5, 4.0, 1.5, 8.0]),
        (binary::POW, false, [1.0, core::f32::consts::SQRT_2, 9.0, 2.0]),
        (binary::POW, true, [2.0, 0.25, 8.0, 0.0625]),
    ];
    for (function, const_first, want) in cases {
        let what = format!("{}, constant first {const_first}", binary::name(function).unwrap());
        assert_close(&run(&binary_model(function, &[2, 2], &[2], &row, const_first), &x), &want, &what);
    }
    // int8, scale 0.5 and zero point -1 for all three: x [-1, 0.5, 2, -10] quantizes to codes
    // [-3, 0, 3, -21]; the constant's codes are [0, -2, 5, -30] ([0.5, -0.5, 3, -14.5]).
    let q = (0.5, -1);
    for (function, want) in [(binary::MAX, [0.5, 0.5, 3.0, -10.0]), (binary::MIN, [-1.0, -0.5, 2.0, -14.5])] {
        let mut m = Builder::default();
        let xt = m.f32_act(&[4]);
        let xq = m.tensor(DType::I8, &[4], None, q);
        m.op(op::QUANTIZE, vec![xt], xq, [0; OP_PARAMS]);
        let codes = [0i8, -2, 5, -30].iter().map(|&v| v as u8).collect();
        let ct = m.tensor(DType::I8, &[4], Some(codes), q);
        let yq = m.tensor(DType::I8, &[4], None, q);
        let mut p = [0; OP_PARAMS];
        p[op::FUNCTION] = function;
        m.op(op::BINARY, vec![xq, ct], yq, p);
        let y = m.f32_act(&[4]);
        m.op(op::DEQUANTIZE, vec![yq], y, [0; OP_PARAMS]);
        let got = run(&m.finish(vec![xt], vec![y]), &[-1.0, 0.5, 2.0, -10.0]);
        assert_eq!(got, want, "int8 {}", binary::name(function).unwrap());
    }
}
