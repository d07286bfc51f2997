//! The op kinds of format 1.4 (MATMUL, BINARY, REDUCE, NORMALIZE, GATHER, LSTM, GRU) on tiny
//! models whose outputs are worked out by hand (the recurrent ones also against the ONNX
//! formulas in f64), on every kernel set this CPU runs (so, under qemu in `.ci/run`, the ARM ones
//! too): each set gives the same bytes, and they are the expected values.

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
    /// An op with several outputs (LSTM, GRU).
    fn op_outputs(&mut self, kind: u16, inputs: Vec<u32>, outputs: Vec<u32>, params: [i32; OP_PARAMS]) {
        let name = format!("{}_{}", op::name(kind), self.spec.ops.len());
        self.spec.ops.push(OpSpec { kind, name, inputs, outputs, params });
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
    run_outputs(bytes, input).swap_remove(0)
}

/// Every output of `bytes` run with input 0 set to `input`, on every kernel set this CPU runs;
/// the sets must agree to the bit.
fn run_outputs(bytes: &[u8], input: &[f32]) -> Vec<Vec<f32>> {
    // SPARQ_KERNELS is process-wide and tests run on parallel threads: one forced set at a time.
    static FORCED: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = FORCED.lock().unwrap_or_else(|e| e.into_inner());
    let aligned = AlignedBytes::from_slice(bytes);
    let model = Model::from_bytes(aligned.as_slice()).unwrap();
    let mut first: Option<(&str, Vec<Vec<f32>>)> = None;
    for set in registry::available() {
        std::env::set_var("SPARQ_KERNELS", set.name());
        let mut arena = AlignedBytes::zeroed(model.arena_size());
        let mut s = Session::new(&model, arena.as_mut_slice()).unwrap();
        s.set_input(0, input).unwrap();
        s.run();
        let out: Vec<Vec<f32>> = (0..model.output_count()).map(|i| s.output(i).unwrap().to_vec()).collect();
        match &first {
            None => first = Some((set.name(), out)),
            Some((name, want)) => {
                let bits =
                    |v: &[Vec<f32>]| v.iter().map(|o| o.iter().map(|x| x.to_bits()).collect()).collect::<Vec<Vec<_>>>();
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

/// One recurrent op: its sizes and attributes.
#[derive(Clone, Copy, Debug)]
struct Rnn {
    lstm: bool,
    steps: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    /// 0 forward, 1 reverse, 2 both.
    direction: i32,
    clip: f32,
    linear_before_reset: bool,
}

/// The constants of an [`Rnn`] (ONNX layouts: W `[D, gates H, I]`, R `[D, gates H, H]`, bias
/// `[D, 2 gates H]`, h0 and c0 `[D, B, H]`).
struct RnnWeights {
    w: Vec<f32>,
    r: Vec<f32>,
    bias: Vec<f32>,
    h0: Vec<f32>,
    c0: Vec<f32>,
}

impl Rnn {
    fn gates(&self) -> usize {
        if self.lstm {
            4
        } else {
            3
        }
    }
    fn dirs(&self) -> usize {
        if self.direction == 2 {
            2
        } else {
            1
        }
    }
    /// Deterministic weights in about [-1, 1] (`seed` varies them).
    fn weights(&self, seed: u32) -> RnnWeights {
        let (g, d, h, i, b) = (self.gates(), self.dirs(), self.hidden, self.input, self.batch);
        let mut k = seed;
        let mut next = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    k = k.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    ((k >> 16) % 201) as f32 / 100.0 - 1.0
                })
                .collect()
        };
        RnnWeights {
            w: next(d * g * h * i),
            r: next(d * g * h * h),
            bias: next(d * 2 * g * h),
            h0: next(d * b * h),
            c0: next(d * b * h),
        }
    }

    /// The model: graph input x, constants W, R, bias, h0 (and c0); graph outputs y, y_h (and
    /// y_c).
    fn model(&self, c: &RnnWeights) -> Vec<u8> {
        self.spec(c).to_bytes()
    }
    fn spec(&self, c: &RnnWeights) -> ModelSpec {
        let (g, d, h, i, b, t) = (self.gates(), self.dirs(), self.hidden, self.input, self.batch, self.steps);
        let mut m = Builder::default();
        let x = m.f32_act(&[t, b, i]);
        let mut inputs = vec![
            x,
            m.f32s(&[d, g * h, i], &c.w),
            m.f32s(&[d, g * h, h], &c.r),
            m.f32s(&[d, 2 * g * h], &c.bias),
            m.f32s(&[d, b, h], &c.h0),
        ];
        if self.lstm {
            inputs.push(m.f32s(&[d, b, h], &c.c0));
        }
        let mut outputs = vec![m.f32_act(&[t, d, b, h]), m.f32_act(&[d, b, h])];
        if self.lstm {
            outputs.push(m.f32_act(&[d, b, h]));
        }
        let mut p = [0; OP_PARAMS];
        p[op::RNN_DIRECTION] = self.direction;
        p[op::RNN_CLIP] = self.clip.to_bits() as i32;
        p[op::RNN_LINEAR_BEFORE_RESET] = i32::from(self.linear_before_reset);
        let kind = if self.lstm { op::LSTM } else { op::GRU };
        m.op_outputs(kind, inputs, outputs.clone(), p);
        m.spec.name = "ops_1_4".into();
        m.spec.arena_size = m.arena;
        m.spec.inputs = vec![x];
        m.spec.outputs = outputs;
        m.spec
    }

    /// ONNX's LSTM / GRU in f64, straight from the operator definitions: y `[T, D, B, H]`, y_h
    /// (and y_c) `[D, B, H]`.
    fn reference(&self, x: &[f32], c: &RnnWeights) -> Vec<Vec<f64>> {
        let (g, dirs, hn, i_n, b_n, t_n) = (self.gates(), self.dirs(), self.hidden, self.input, self.batch, self.steps);
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let clip = self.clip as f64;
        let cl = |v: f64| if clip > 0.0 { v.clamp(-clip, clip) } else { v };
        let mut y = vec![0.0; t_n * dirs * b_n * hn];
        let mut y_h = vec![0.0; dirs * b_n * hn];
        let mut y_c = vec![0.0; dirs * b_n * hn];
        for d in 0..dirs {
            let reverse = self.direction == 1 || d == 1;
            for b in 0..b_n {
                let state = (d * b_n + b) * hn;
                let mut hs: Vec<f64> = c.h0[state..state + hn].iter().map(|&v| v as f64).collect();
                let mut cs: Vec<f64> =
                    if self.lstm { c.c0[state..state + hn].iter().map(|&v| v as f64).collect() } else { vec![0.0; hn] };
                for s in 0..t_n {
                    let t = if reverse { t_n - 1 - s } else { s };
                    let xr = &x[(t * b_n + b) * i_n..][..i_n];
                    // W x + Wb and R v + Rb of gate `gate`, unit `j`.
                    let wx = |gate: usize, j: usize| {
                        let row = (d * g + gate) * hn + j;
                        c.bias[d * 2 * g * hn + gate * hn + j] as f64
                            + (0..i_n).map(|k| c.w[row * i_n + k] as f64 * xr[k] as f64).sum::<f64>()
                    };
                    let rv = |gate: usize, j: usize, v: &[f64]| {
                        let row = (d * g + gate) * hn + j;
                        c.bias[d * 2 * g * hn + (g + gate) * hn + j] as f64
                            + (0..hn).map(|k| c.r[row * hn + k] as f64 * v[k]).sum::<f64>()
                    };
                    let mut next = vec![0.0; hn];
                    if self.lstm {
                        for j in 0..hn {
                            let it = sig(cl(wx(0, j) + rv(0, j, &hs)));
                            let ot = sig(cl(wx(1, j) + rv(1, j, &hs)));
                            let ft = sig(cl(wx(2, j) + rv(2, j, &hs)));
                            let ct = cl(wx(3, j) + rv(3, j, &hs)).tanh();
                            cs[j] = ft * cs[j] + it * ct;
                            next[j] = ot * cs[j].tanh();
                        }
                    } else {
                        let rt: Vec<f64> = (0..hn).map(|j| sig(cl(wx(1, j) + rv(1, j, &hs)))).collect();
                        let r_h: Vec<f64> = (0..hn).map(|k| rt[k] * hs[k]).collect();
                        for j in 0..hn {
                            let zt = sig(cl(wx(0, j) + rv(0, j, &hs)));
                            let cand = if self.linear_before_reset {
                                wx(2, j) + rt[j] * rv(2, j, &hs)
                            } else {
                                wx(2, j) + rv(2, j, &r_h)
                            };
                            next[j] = (1.0 - zt) * cl(cand).tanh() + zt * hs[j];
                        }
                    }
                    hs = next;
                    let out = ((t * dirs + d) * b_n + b) * hn;
                    y[out..out + hn].copy_from_slice(&hs);
                }
                y_h[state..state + hn].copy_from_slice(&hs);
                y_c[state..state + hn].copy_from_slice(&cs);
            }
        }
        if self.lstm {
            vec![y, y_h, y_c]
        } else {
            vec![y, y_h]
        }
    }

    /// Run on every kernel set and compare with [`Rnn::reference`]; also y_h (and y_c) against y's
    /// rows of each direction's last step, to the bit. Returns the outputs.
    fn check(&self, c: &RnnWeights, x: &[f32]) -> Vec<Vec<f32>> {
        let got = run_outputs(&self.model(c), x);
        let want = self.reference(x, c);
        assert_eq!(got.len(), want.len(), "{self:?}");
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.len(), w.len(), "{self:?} output {k}");
            for (e, (&g, &w)) in g.iter().zip(w).enumerate() {
                assert!((g as f64 - w).abs() <= 2e-6, "{self:?} output {k} element {e}: {g}, expected {w}");
            }
        }
        let (dirs, bh) = (self.dirs(), self.batch * self.hidden);
        for d in 0..dirs {
            let last = if self.direction == 1 || d == 1 { 0 } else { self.steps - 1 };
            let row = &got[0][(last * dirs + d) * bh..][..bh];
            assert_eq!(&got[1][d * bh..(d + 1) * bh], row, "{self:?}: y_h of direction {d} is y at t = {last}");
        }
        got
    }
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// LSTM with H = I = B = 1 and T = 2, worked out step by step (gates i, o, f, c), then every
/// direction with and without clip against the ONNX formulas, and a larger one (B = 2, I = 3,
/// H = 2, T = 3).
#[test]
fn lstm_forward_reverse_bidirectional_and_clip() {
    let one = Rnn {
        lstm: true,
        steps: 2,
        batch: 1,
        input: 1,
        hidden: 1,
        direction: 0,
        clip: 0.0,
        linear_before_reset: false,
    };
    // Gates i, o, f, c: W x, R h, then Wb and Rb.
    let c = RnnWeights {
        w: vec![0.5, -0.25, 1.0, 0.75],
        r: vec![0.25, -0.5, 0.125, 1.0],
        bias: vec![0.125, 0.25, -0.5, 0.0, 0.0, -0.125, 0.5, 0.25],
        h0: vec![0.5],
        c0: vec![-0.5],
    };
    let x = [1.0f32, -2.0];
    let got = one.check(&c, &x);
    // By hand: step 1 (x = 1, h = 0.5, c = -0.5), step 2 (x = -2, h = h1, c = c1).
    let step = |x: f64, h: f64, cp: f64| {
        let i = sigmoid(0.125 + 0.0 + 0.5 * x + 0.25 * h);
        let o = sigmoid(0.25 - 0.125 - 0.25 * x - 0.5 * h);
        let f = sigmoid(-0.5 + 0.5 + 1.0 * x + 0.125 * h);
        let g = (0.0 + 0.25 + 0.75 * x + 1.0 * h).tanh();
        let c = f * cp + i * g;
        (o * c.tanh(), c)
    };
    let (h1, c1) = step(1.0, 0.5, -0.5);
    let (h2, c2) = step(-2.0, h1, c1);
    assert_close(&got[0], &[h1 as f32, h2 as f32], "LSTM y by hand");
    assert_close(&got[1], &[h2 as f32], "LSTM y_h by hand");
    assert_close(&got[2], &[c2 as f32], "LSTM y_c by hand");
    // Reverse: x[1] first, y[1] = its state, y_h = y[0].
    let reverse = Rnn { direction: 1, ..one }.check(&c, &x);
    let (r1, rc1) = step(-2.0, 0.5, -0.5);
    let (r0, rc0) = step(1.0, r1, rc1);
    assert_close(&reverse[0], &[r0 as f32, r1 as f32], "reverse LSTM y by hand");
    assert_close(&reverse[1], &[r0 as f32], "reverse LSTM y_h by hand");
    assert_close(&reverse[2], &[rc0 as f32], "reverse LSTM y_c by hand");
    // Both directions, the second direction with its own weights: y [T, 2, 1, 1].
    let both = Rnn { direction: 2, ..one };
    let mut c2w = both.weights(1);
    c2w.w = [c.w.clone(), c2w.w[4..].to_vec()].concat();
    c2w.r = [c.r.clone(), c2w.r[4..].to_vec()].concat();
    c2w.bias = [c.bias.clone(), c2w.bias[8..].to_vec()].concat();
    c2w.h0[0] = 0.5;
    c2w.c0[0] = -0.5;
    let got = both.check(&c2w, &x);
    assert_close(
        &[got[0][0], got[0][2]],
        &[h1 as f32, h2 as f32],
        "bidirectional LSTM: direction 0 is the forward one",
    );
    // Clipped: every gate pre-activation clamped to [-0.5, 0.5].
    for direction in 0..3 {
        for clip in [0.0, 0.5, 3.0] {
            let rnn = Rnn { direction, clip, ..one };
            rnn.check(&rnn.weights(7 + direction as u32), &x);
            let big = Rnn { batch: 2, input: 3, hidden: 2, steps: 3, ..rnn };
            let x: Vec<f32> = (0..18).map(|k| (k as f32 * 0.37).sin() * 2.0).collect();
            big.check(&big.weights(100 + direction as u32), &x);
        }
    }
    // A clip of 0.5 changes the hand-computed result: the pre-activations clamped.
    let clipped = Rnn { clip: 0.5, ..one }.check(&c, &x);
    let cl = |v: f64| v.clamp(-0.5, 0.5);
    let i = sigmoid(cl(0.125 + 0.5 + 0.25 * 0.5));
    let o = sigmoid(cl(0.125 - 0.25 - 0.5 * 0.5));
    let f = sigmoid(cl(1.0 + 0.125 * 0.5));
    let g = cl(0.25 + 0.75 + 0.5).tanh();
    let c1 = f * -0.5 + i * g;
    assert_close(&clipped[0][..1], &[(o * c1.tanh()) as f32], "clipped LSTM step 1 by hand");
}

/// GRU with H = I = B = 1 and T = 2 worked out step by step (gates z, r, h) with
/// linear_before_reset 0 and 1, then every direction with and without clip, and a larger one.
#[test]
fn gru_linear_before_reset_directions_and_clip() {
    let one = Rnn {
        lstm: false,
        steps: 2,
        batch: 1,
        input: 1,
        hidden: 1,
        direction: 0,
        clip: 0.0,
        linear_before_reset: false,
    };
    // Gates z, r, h.
    let c = RnnWeights {
        w: vec![0.5, -1.0, 0.75],
        r: vec![0.25, 0.5, -1.5],
        bias: vec![0.125, 0.25, -0.25, -0.5, 0.125, 0.5],
        h0: vec![0.5],
        c0: vec![],
    };
    let x = [1.0f32, -2.0];
    for lbr in [false, true] {
        let rnn = Rnn { linear_before_reset: lbr, ..one };
        let got = rnn.check(&c, &x);
        let step = |x: f64, h: f64| {
            let z = sigmoid(0.125 - 0.5 + 0.5 * x + 0.25 * h);
            let r = sigmoid(0.25 + 0.125 - 1.0 * x + 0.5 * h);
            let cand = if lbr { 0.75 * x - 0.25 + r * (-1.5 * h + 0.5) } else { 0.75 * x - 1.5 * (r * h) + 0.5 - 0.25 };
            (1.0 - z) * cand.tanh() + z * h
        };
        let h1 = step(1.0, 0.5);
        let h2 = step(-2.0, h1);
        assert_close(&got[0], &[h1 as f32, h2 as f32], &format!("GRU y by hand, linear_before_reset {lbr}"));
        assert_close(&got[1], &[h2 as f32], &format!("GRU y_h by hand, linear_before_reset {lbr}"));
        let reverse = Rnn { direction: 1, ..rnn }.check(&c, &x);
        let r1 = step(-2.0, 0.5);
        let r0 = step(1.0, r1);
        assert_close(&reverse[0], &[r0 as f32, r1 as f32], "reverse GRU y by hand");
        assert_close(&reverse[1], &[r0 as f32], "reverse GRU y_h by hand");
        for direction in 0..3 {
            for clip in [0.0, 0.25, 3.0] {
                let rnn = Rnn { direction, clip, ..rnn };
                rnn.check(&rnn.weights(11 + direction as u32), &x);
                let big = Rnn { batch: 2, input: 3, hidden: 2, steps: 3, ..rnn };
                let x: Vec<f32> = (0..18).map(|k| (k as f32 * 0.61).cos() * 1.5).collect();
                big.check(&big.weights(200 + direction as u32), &x);
            }
        }
    }
}

/// Bad operands of the recurrent ops are typed load errors: an output too few or too many,
/// outputs that are one tensor or overlap in the arena, an output over the input, an output that
/// is a graph input.
#[test]
fn recurrent_ops_with_bad_outputs_are_refused_at_load() {
    use sparq_runtime::RuntimeError;
    let lstm = Rnn {
        lstm: true,
        steps: 2,
        batch: 1,
        input: 2,
        hidden: 2,
        direction: 0,
        clip: 0.0,
        linear_before_reset: false,
    };
    let gru = Rnn { lstm: false, ..lstm };
    let reason = |bytes: Vec<u8>| -> (&'static str, &'static str) {
        let aligned = AlignedBytes::from_slice(&bytes);
        match Model::from_bytes(aligned.as_slice()) {
            Err(RuntimeError::InvalidOp { index: 0, kind, reason }) => (kind, reason),
            Err(e) => panic!("not an InvalidOp of op 0: {e}"),
            Ok(_) => panic!("loads"),
        }
    };
    // Edit the op (and tensors) of a valid model before writing it.
    let edited = |rnn: Rnn, edit: &dyn Fn(&mut ModelSpec)| -> Vec<u8> {
        let c = rnn.weights(3);
        let bytes = rnn.model(&c);
        let aligned = AlignedBytes::from_slice(&bytes);
        Model::from_bytes(aligned.as_slice()).expect("the unedited model loads");
        let mut spec = rnn.spec(&c);
        edit(&mut spec);
        spec.to_bytes()
    };
    for rnn in [lstm, gru] {
        let kind = if rnn.lstm { "LSTM" } else { "GRU" };
        let n = if rnn.lstm { 3 } else { 2 };
        // One output too few, one too many.
        let fewer = edited(rnn, &|s| {
            s.ops[0].outputs.pop();
        });
        assert_eq!(reason(fewer), (kind, "wrong number of outputs"));
        let more = edited(rnn, &|s| {
            let extra = arena_like(s, s.ops[0].outputs[1]);
            s.ops[0].outputs.push(extra);
        });
        assert_eq!(reason(more), (kind, "wrong number of outputs"));
        // y_h is y; the last output at y_h's offset.
        let same = edited(rnn, &|s| s.ops[0].outputs[1] = s.ops[0].outputs[0]);
        assert_eq!(reason(same), (kind, "outputs overlap in the arena"));
        let over = edited(rnn, &|s| {
            let (a, b) = (s.ops[0].outputs[n - 2] as usize, s.ops[0].outputs[n - 1] as usize);
            s.tensors[b].arena_offset = s.tensors[a].arena_offset;
        });
        assert_eq!(reason(over), (kind, "outputs overlap in the arena"));
        // y_h over x.
        let on_input = edited(rnn, &|s| {
            let (x, yh) = (s.ops[0].inputs[0] as usize, s.ops[0].outputs[1] as usize);
            s.tensors[yh].arena_offset = s.tensors[x].arena_offset;
        });
        assert_eq!(reason(on_input), (kind, "output overlaps an input in the arena"));
        // The last output a second graph input (one the op does not read): the loader looked at
        // an op's first output only.
        let writes_input = edited(rnn, &|s| {
            let last = *s.ops[0].outputs.last().unwrap();
            s.inputs.push(last);
            s.outputs.retain(|&o| o != last);
        });
        assert_eq!(reason(writes_input), (kind, "writes a graph input"));
    }
}

/// A new arena tensor shaped as tensor `t`, after the others.
fn arena_like(s: &mut ModelSpec, t: u32) -> u32 {
    let mut new = s.tensors[t as usize].clone();
    new.name = format!("t{}", s.tensors.len());
    new.arena_offset = s.arena_size.div_ceil(64) * 64;
    s.arena_size = new.arena_offset + (new.dims.iter().product::<usize>() * 4).div_ceil(64) * 64;
    s.tensors.push(new);
    (s.tensors.len() - 1) as u32
}

/// WHERE: a computed condition (NaN counts as true) selects between x and a broadcast row; the
/// comparisons of BINARY give the 1.0 / 0.0 conditions.
#[test]
fn where_selects_and_comparisons_give_conditions() {
    // x = [[1, -2], [NaN, 0]] as the condition; a = x + 10 row [10, 20]; b = the constant 7.
    let mut m = Builder::default();
    let x = m.f32_act(&[2, 2]);
    let row = m.f32s(&[2], &[10.0, 20.0]);
    let seven = m.f32s(&[1], &[7.0]);
    let y = m.f32_act(&[2, 2]);
    m.op(op::WHERE, vec![x, row, seven], y, [0; OP_PARAMS]);
    let bytes = m.finish(vec![x], vec![y]);
    assert_close(&run(&bytes, &[1.0, -2.0, f32::NAN, 0.0]), &[10.0, 20.0, 10.0, 7.0], "where");
    let x = [1.0, 2.0, f32::NAN, 4.0];
    let c = [2.0, 2.0, 2.0, 3.0];
    for (function, want) in [
        (binary::EQUAL, [0.0, 1.0, 0.0, 0.0]),
        (binary::LESS, [1.0, 0.0, 0.0, 0.0]),
        (binary::GREATER, [0.0, 0.0, 0.0, 1.0]),
        (binary::LESS_OR_EQUAL, [1.0, 1.0, 0.0, 0.0]),
        (binary::GREATER_OR_EQUAL, [0.0, 1.0, 0.0, 1.0]),
    ] {
        let got = run(&binary_model(function, &[4], &[4], &c, false), &x);
        assert_close(&got, &want, binary::name(function).unwrap());
    }
}
