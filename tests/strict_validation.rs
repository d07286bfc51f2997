//! Issue 21's regressions: degenerate shapes are rejected at load (one rule: no zero-size
//! tensors, FORMAT.md "Validation"), the reader is strict about reserved fields and versions,
//! and the arena a file declares is bounded. Each test here failed on the commit before the fix
//! (a panic, a division by zero, an unwritten output, or a file accepted that must not be).

mod common;

use sparq_format::layout::op::{self as rop, window as win};
use sparq_format::layout::OP_PARAMS;
use sparq_format::writer::{ModelSpec, OpSpec, TensorSpec};
use sparq_format::{sparse, DType, Layout};
use sparq_runtime::cpu::{Features, PATHS};
use sparq_runtime::{AlignedBytes, Model, RuntimeError, Session};

fn f32_bits(v: f32) -> i32 {
    v.to_bits() as i32
}

/// A model under construction: arena tensors get sequential 64-byte aligned offsets.
#[derive(Default)]
struct Builder {
    spec: ModelSpec,
    arena: usize,
}

impl Builder {
    fn act(&mut self, dtype: DType, dims: &[usize], layout: Layout, scale: f32) -> u32 {
        let bytes = dims.iter().product::<usize>() * dtype.size();
        let offset = self.arena;
        self.arena += bytes.div_ceil(64).max(1) * 64;
        self.spec.tensors.push(TensorSpec {
            name: format!("t{}", self.spec.tensors.len()),
            dtype,
            dims: dims.to_vec(),
            layout,
            arena_offset: offset,
            scale,
            zero_point: 0,
            data: None,
            pack: None,
        });
        (self.spec.tensors.len() - 1) as u32
    }
    fn constant(&mut self, dtype: DType, dims: &[usize], data: Vec<u8>) -> u32 {
        self.spec.tensors.push(TensorSpec {
            name: format!("c{}", self.spec.tensors.len()),
            dtype,
            dims: dims.to_vec(),
            layout: Layout::RowMajor,
            arena_offset: 0,
            scale: 0.0,
            zero_point: 0,
            data: Some(data),
            pack: None,
        });
        (self.spec.tensors.len() - 1) as u32
    }
    fn f32s(&mut self, dims: &[usize], v: f32) -> u32 {
        let n: usize = dims.iter().product();
        self.constant(DType::F32, dims, std::iter::repeat_n(v.to_le_bytes(), n).flatten().collect())
    }
    fn i32s(&mut self, dims: &[usize], v: i32) -> u32 {
        let n: usize = dims.iter().product();
        self.constant(DType::I32, dims, std::iter::repeat_n(v.to_le_bytes(), n).flatten().collect())
    }
    fn op(&mut self, kind: u16, inputs: Vec<u32>, output: u32, params: [i32; OP_PARAMS]) {
        let name = format!("{}_{}", rop::name(kind), self.spec.ops.len());
        self.spec.ops.push(OpSpec { kind, name, inputs, outputs: vec![output], params });
    }
    /// An op with several outputs (LSTM, GRU).
    fn op_outputs(&mut self, kind: u16, inputs: Vec<u32>, outputs: Vec<u32>, params: [i32; OP_PARAMS]) {
        let name = format!("{}_{}", rop::name(kind), self.spec.ops.len());
        self.spec.ops.push(OpSpec { kind, name, inputs, outputs, params });
    }
    fn finish(mut self, inputs: Vec<u32>, outputs: Vec<u32>) -> ModelSpec {
        self.spec.name = "degenerate".into();
        self.spec.arena_size = self.arena;
        self.spec.inputs = inputs;
        self.spec.outputs = outputs;
        self.spec
    }
}

fn no_clamp() -> [i32; OP_PARAMS] {
    let mut p = [0; OP_PARAMS];
    p[rop::ACT_MIN] = f32_bits(f32::NEG_INFINITY);
    p[rop::ACT_MAX] = f32_bits(f32::INFINITY);
    p
}

fn window(k: usize) -> [i32; OP_PARAMS] {
    let mut p = [0; OP_PARAMS];
    p[win::KERNEL_H] = k as i32;
    p[win::KERNEL_W] = k as i32;
    p[win::STRIDE_H] = 1;
    p[win::STRIDE_W] = 1;
    p[win::DILATION_H] = 1;
    p[win::DILATION_W] = 1;
    p
}

/// One small model per op kind, with `n` the size of the dimension the zero-size variants set to
/// 0 (`n = 0` builds the degenerate model). Graph input and output are f32; int8 ops sit between
/// a Quantize and a Dequantize.
fn single_op(kind: u16, n: usize) -> Vec<u8> {
    single_op_spec(kind, n).to_bytes()
}

fn single_op_spec(kind: u16, n: usize) -> ModelSpec {
    let mut b = Builder::default();
    let nhwc = |b: &mut Builder, c: usize| b.act(DType::F32, &[1, c, 3, 3], Layout::Nhwc, 0.0);
    let (x, y) = match kind {
        rop::CONV2D | rop::DEPTHWISE_CONV2D => {
            let x = nhwc(&mut b, n);
            let y = nhwc(&mut b, n);
            let (w, groups) = if kind == rop::CONV2D {
                (b.f32s(&[n, 1, 1, n], 0.5), 1)
            } else {
                (b.f32s(&[1, 1, 1, n], 0.5), n as i32)
            };
            let bias = b.f32s(&[n], 1.0);
            let mut p = window(1);
            p[win::GROUPS] = groups;
            p[rop::ACT_MIN] = no_clamp()[rop::ACT_MIN];
            p[rop::ACT_MAX] = no_clamp()[rop::ACT_MAX];
            b.op(kind, vec![x, w, bias], y, p);
            (x, y)
        }
        rop::FULLY_CONNECTED => {
            // The reduction length is the degenerate dimension: a bias-only layer if it is 0.
            let x = b.act(DType::F32, &[1, n], Layout::RowMajor, 0.0);
            let y = b.act(DType::F32, &[1, 2], Layout::RowMajor, 0.0);
            let (w, bias) = (b.f32s(&[2, n], 0.5), b.f32s(&[2], 500.0));
            b.op(kind, vec![x, w, bias], y, no_clamp());
            (x, y)
        }
        rop::ADD | rop::MUL | rop::CLAMP => {
            let x = b.act(DType::F32, &[1, n], Layout::RowMajor, 0.0);
            let y = b.act(DType::F32, &[1, n], Layout::RowMajor, 0.0);
            let inputs = if kind == rop::CLAMP { vec![x] } else { vec![x, b.f32s(&[1, n], 2.0)] };
            b.op(kind, inputs, y, no_clamp());
            (x, y)
        }
        rop::MAX_POOL | rop::AVERAGE_POOL => {
            let x = nhwc(&mut b, n);
            let y = b.act(DType::F32, &[1, n, 2, 2], Layout::Nhwc, 0.0);
            b.op(kind, vec![x], y, window(2));
            (x, y)
        }
        rop::GLOBAL_AVERAGE_POOL => {
            let x = nhwc(&mut b, n);
            let y = b.act(DType::F32, &[1, n, 1, 1], Layout::Nhwc, 0.0);
            b.op(kind, vec![x], y, [0; OP_PARAMS]);
            (x, y)
        }
        rop::RESHAPE => {
            let x = b.act(DType::F32, &[1, 2 * n], Layout::RowMajor, 0.0);
            let y = b.act(DType::F32, &[2, n], Layout::RowMajor, 0.0);
            b.op(kind, vec![x], y, [0; OP_PARAMS]);
            (x, y)
        }
        rop::CONCAT | rop::SOFTMAX => {
            let x = b.act(DType::F32, &[1, n, 2], Layout::RowMajor, 0.0);
            let mut p = [0; OP_PARAMS];
            p[rop::AXIS] = 2;
            if kind == rop::CONCAT {
                // Along the axis of non-zero size: the output's other dimension is the zero one.
                let other = b.f32s(&[1, n, 3], 1.0);
                let y = b.act(DType::F32, &[1, n, 5], Layout::RowMajor, 0.0);
                b.op(kind, vec![x, other], y, p);
                (x, y)
            } else {
                let y = b.act(DType::F32, &[1, n, 2], Layout::RowMajor, 0.0);
                b.op(kind, vec![x], y, p);
                (x, y)
            }
        }
        rop::CONV_TRANSPOSE => {
            let x = nhwc(&mut b, n);
            let y = b.act(DType::F32, &[1, n, 6, 6], Layout::Nhwc, 0.0);
            let (w, bias) = (b.f32s(&[n, 1, 2, 2], 0.5), b.f32s(&[n], 1.0));
            let mut p = window(2);
            p[win::STRIDE_H] = 2;
            p[win::STRIDE_W] = 2;
            p[win::GROUPS] = n as i32;
            p[rop::ACT_MIN] = no_clamp()[rop::ACT_MIN];
            p[rop::ACT_MAX] = no_clamp()[rop::ACT_MAX];
            b.op(kind, vec![x, w, bias], y, p);
            (x, y)
        }
        rop::PAD => {
            let x = b.act(DType::F32, &[2, n, 3], Layout::RowMajor, 0.0);
            let y = b.act(DType::F32, &[3, n + 2, 4], Layout::RowMajor, 0.0);
            let mut p = [0; OP_PARAMS];
            p[rop::PAD_BEFORE..rop::PAD_BEFORE + 3].copy_from_slice(&[1, 1, 0]);
            p[rop::PAD_AFTER..rop::PAD_AFTER + 3].copy_from_slice(&[0, 1, 1]);
            p[rop::PAD_MODE] = 2;
            b.op(kind, vec![x], y, p);
            (x, y)
        }
        rop::RESIZE => {
            let x = nhwc(&mut b, n);
            let y = b.act(DType::F32, &[1, n, 5, 4], Layout::Nhwc, 0.0);
            let mut p = [0; OP_PARAMS];
            p[rop::RESIZE_MODE] = 1;
            p[rop::RESIZE_SCALE_H] = f32_bits(5.0 / 3.0);
            p[rop::RESIZE_SCALE_W] = f32_bits(4.0 / 3.0);
            b.op(kind, vec![x], y, p);
            (x, y)
        }
        rop::TRANSPOSE | rop::SLICE => {
            let x = b.act(DType::F32, &[2, n, 3], Layout::RowMajor, 0.0);
            let mut p = [0; OP_PARAMS];
            let y = if kind == rop::TRANSPOSE {
                p[..3].copy_from_slice(&[1, 2, 0]);
                b.act(DType::F32, &[n, 3, 2], Layout::RowMajor, 0.0)
            } else {
                // The last row of axis 0, every element of axis 1, axis 2 reversed.
                p[rop::SLICE_START..rop::SLICE_START + 3].copy_from_slice(&[1, 0, 2]);
                p[rop::SLICE_STEP..rop::SLICE_STEP + 3].copy_from_slice(&[1, 1, -1]);
                b.act(DType::F32, &[1, n, 3], Layout::RowMajor, 0.0)
            };
            b.op(kind, vec![x], y, p);
            (x, y)
        }
        rop::UNARY => {
            let x = b.act(DType::F32, &[1, n], Layout::RowMajor, 0.0);
            let y = b.act(DType::F32, &[1, n], Layout::RowMajor, 0.0);
            let mut p = [0; OP_PARAMS];
            p[rop::FUNCTION] = rop::unary::HARD_SIGMOID;
            p[rop::ALPHA] = f32_bits(0.2);
            p[rop::BETA] = f32_bits(0.5);
            b.op(kind, vec![x], y, p);
            (x, y)
        }
        rop::QUANTIZE | rop::DEQUANTIZE | rop::REQUANTIZE | rop::LOOKUP => {
            let x = b.act(DType::F32, &[1, n], Layout::RowMajor, 0.0);
            let q = b.act(DType::I8, &[1, n], Layout::RowMajor, 0.05);
            b.op(rop::QUANTIZE, vec![x], q, [0; OP_PARAMS]);
            let q = if kind == rop::LOOKUP {
                let table: Vec<u8> = (0..256).map(|i| (255 - i) as u8).collect();
                let table = b.constant(DType::I8, &[256], table);
                let r = b.act(DType::I8, &[1, n], Layout::RowMajor, 0.1);
                b.op(rop::LOOKUP, vec![q, table], r, [0; OP_PARAMS]);
                r
            } else if kind == rop::REQUANTIZE {
                let r = b.act(DType::I8, &[1, n], Layout::RowMajor, 0.1);
                let mut p = [0; OP_PARAMS];
                p[rop::MULT_A] = 1 << 30;
                p[rop::SHIFT] = 31;
                b.op(rop::REQUANTIZE, vec![q], r, p);
                r
            } else {
                q
            };
            let y = b.act(DType::F32, &[1, n], Layout::RowMajor, 0.0);
            b.op(rop::DEQUANTIZE, vec![q], y, [0; OP_PARAMS]);
            (x, y)
        }
        rop::MATMUL => {
            // a `[2, n, 3]` times a constant `[1, 2, 3]` read transposed (`[3, 2]` per batch,
            // broadcast over a's 2): y `[2, n, 2]`.
            let x = b.act(DType::F32, &[2, n, 3], Layout::RowMajor, 0.0);
            let w = b.f32s(&[1, 2, 3], 0.5);
            let y = b.act(DType::F32, &[2, n, 2], Layout::RowMajor, 0.0);
            let mut p = [0; OP_PARAMS];
            p[rop::MATMUL_TRANSPOSE] = 2;
            b.op(kind, vec![x, w], y, p);
            (x, y)
        }
        rop::BINARY => {
            // x ^ 2 (Pow), the exponent a broadcast constant.
            let x = b.act(DType::F32, &[1, n], Layout::RowMajor, 0.0);
            let e = b.f32s(&[1], 2.0);
            let y = b.act(DType::F32, &[1, n], Layout::RowMajor, 0.0);
            let mut p = [0; OP_PARAMS];
            p[rop::FUNCTION] = rop::binary::POW;
            b.op(kind, vec![x, e], y, p);
            (x, y)
        }
        rop::WHERE => {
            // Select between x and a broadcast constant on a broadcast constant condition.
            let x = b.act(DType::F32, &[1, n], Layout::RowMajor, 0.0);
            let (c, other) = (b.f32s(&[1], 1.0), b.f32s(&[1], 2.0));
            let y = b.act(DType::F32, &[1, n], Layout::RowMajor, 0.0);
            b.op(kind, vec![c, x, other], y, [0; OP_PARAMS]);
            (x, y)
        }
        rop::REDUCE => {
            // The sum over axes 1 and 2: with n = 0 an empty reduction.
            let x = b.act(DType::F32, &[2, n, 3], Layout::RowMajor, 0.0);
            let y = b.act(DType::F32, &[2, 1, 1], Layout::RowMajor, 0.0);
            let mut p = [0; OP_PARAMS];
            p[rop::FUNCTION] = rop::reduce::SUM;
            p[rop::REDUCE_AXES] = 0b110;
            b.op(kind, vec![x], y, p);
            (x, y)
        }
        rop::NORMALIZE => {
            let x = b.act(DType::F32, &[2, n, 3], Layout::RowMajor, 0.0);
            let (scale, bias) = (b.f32s(&[n, 3], 2.0), b.f32s(&[n, 3], 0.5));
            let y = b.act(DType::F32, &[2, n, 3], Layout::RowMajor, 0.0);
            let mut p = [0; OP_PARAMS];
            p[rop::AXIS] = 1;
            p[rop::NORM_EPSILON] = f32_bits(1e-5);
            b.op(kind, vec![x, scale, bias], y, p);
            (x, y)
        }
        rop::GATHER => {
            // Axis 2 of `[2, n, 3]` by indices `[2, 2]`: y `[2, n, 2, 2]`.
            let x = b.act(DType::F32, &[2, n, 3], Layout::RowMajor, 0.0);
            let indices = [2i32, 0, 0, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
            let indices = b.constant(DType::I32, &[2, 2], indices);
            let y = b.act(DType::F32, &[2, n, 2, 2], Layout::RowMajor, 0.0);
            let mut p = [0; OP_PARAMS];
            p[rop::AXIS] = 2;
            b.op(kind, vec![x, indices], y, p);
            (x, y)
        }
        rop::LSTM | rop::GRU => {
            // x `[T = n, B = 2, I = 3]`, H = 2: a bidirectional LSTM clipped at 3, a reverse GRU
            // with linear_before_reset; y `[n, D, 2, 2]`, y_h (and y_c) `[D, 2, 2]`.
            let lstm = kind == rop::LSTM;
            let (gates, dirs, hidden) = (if lstm { 4 } else { 3 }, if lstm { 2 } else { 1 }, 2);
            let x = b.act(DType::F32, &[n, 2, 3], Layout::RowMajor, 0.0);
            let w = b.f32s(&[dirs, gates * hidden, 3], 0.25);
            let r = b.f32s(&[dirs, gates * hidden, hidden], -0.5);
            let bias = b.f32s(&[dirs, 2 * gates * hidden], 0.125);
            let h0 = b.f32s(&[dirs, 2, hidden], 0.5);
            let mut inputs = vec![x, w, r, bias, h0];
            if lstm {
                inputs.push(b.f32s(&[dirs, 2, hidden], -1.0));
            }
            let y = b.act(DType::F32, &[n, dirs, 2, hidden], Layout::RowMajor, 0.0);
            let mut outputs = vec![y];
            // y_h, and the LSTM's y_c.
            for _ in 0..if lstm { 2 } else { 1 } {
                outputs.push(b.act(DType::F32, &[dirs, 2, hidden], Layout::RowMajor, 0.0));
            }
            let mut p = [0; OP_PARAMS];
            p[rop::RNN_DIRECTION] = if lstm { 2 } else { 1 };
            p[rop::RNN_CLIP] = f32_bits(if lstm { 3.0 } else { 0.0 });
            p[rop::RNN_LINEAR_BEFORE_RESET] = i32::from(!lstm);
            b.op_outputs(kind, inputs, outputs, p);
            (x, y)
        }
        _ => unreachable!("op kind {kind}"),
    };
    b.finish(vec![x], vec![y])
}

const KINDS: [u16; 30] = [
    rop::CONV2D,
    rop::DEPTHWISE_CONV2D,
    rop::FULLY_CONNECTED,
    rop::ADD,
    rop::MUL,
    rop::CLAMP,
    rop::MAX_POOL,
    rop::AVERAGE_POOL,
    rop::GLOBAL_AVERAGE_POOL,
    rop::RESHAPE,
    rop::CONCAT,
    rop::SOFTMAX,
    rop::QUANTIZE,
    rop::DEQUANTIZE,
    rop::REQUANTIZE,
    rop::LOOKUP,
    rop::UNARY,
    rop::TRANSPOSE,
    rop::SLICE,
    rop::RESIZE,
    rop::PAD,
    rop::CONV_TRANSPOSE,
    rop::MATMUL,
    rop::BINARY,
    rop::REDUCE,
    rop::NORMALIZE,
    rop::GATHER,
    rop::LSTM,
    rop::GRU,
    rop::WHERE,
];

fn load(bytes: &[u8]) -> Result<(), RuntimeError> {
    let aligned = AlignedBytes::from_slice(bytes);
    Model::from_bytes(&aligned).map(|_| ())
}

/// Every output of `bytes` run on kernel path `path` (forced through `SPARQ_KERNELS`).
fn run_on(bytes: &[u8], path: &str) -> Vec<f32> {
    // The variable is process-wide and tests run on parallel threads: one forced path at a time.
    static FORCED: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = FORCED.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("SPARQ_KERNELS", path);
    let aligned = AlignedBytes::from_slice(bytes);
    let model = Model::from_bytes(&aligned).unwrap();
    let mut arena = AlignedBytes::zeroed(model.arena_size());
    let mut s = Session::new(&model, arena.as_mut_slice()).unwrap();
    let input = s.input_mut(0).unwrap();
    for (i, v) in input.iter_mut().enumerate() {
        *v = (i % 7) as f32 * 0.25 - 0.5;
    }
    s.run();
    let out = s.output(0).unwrap().to_vec();
    std::env::remove_var("SPARQ_KERNELS");
    out
}

fn paths() -> Vec<&'static str> {
    let cpu = Features::detect();
    PATHS.iter().filter(|p| p.on(cpu).is_some()).map(|p| p.name).collect()
}

/// The rule, for every op kind: a model with a zero-size dimension is refused at load with an
/// error naming the op; the same model with the dimension 1 or 3 loads and gives the same output
/// on every kernel path this CPU has.
#[test]
fn zero_size_tensors_are_rejected_for_every_op_kind() {
    let paths = paths();
    for kind in KINDS {
        for n in [1, 3] {
            let bytes = single_op(kind, n);
            load(&bytes).unwrap_or_else(|e| panic!("{} with n = {n}: {e}", rop::name(kind)));
            let want = run_on(&bytes, "scalar");
            for p in &paths {
                assert_eq!(run_on(&bytes, p), want, "{} with n = {n} on {p}", rop::name(kind));
            }
        }
        let err = load(&single_op(kind, 0)).expect_err(rop::name(kind)).to_string();
        assert!(err.contains("zero-size"), "{}: {err}", rop::name(kind));
        assert!(err.contains(" op ") || err.contains("graph input/output"), "{}: {err}", rop::name(kind));
    }
    println!("zero-size rule checked for {} op kinds on kernel paths {paths:?}", KINDS.len());
}

/// Defect 1: a Concat whose output has a zero-size dimension loaded and then panicked in
/// `Session::run` (slice index out of range) on every kernel set.
#[test]
fn concat_with_a_zero_size_output_is_rejected_at_load() {
    let err = load(&single_op(rop::CONCAT, 0)).unwrap_err().to_string();
    assert!(err.contains("op 0 (Concat)") && err.contains("zero-size"), "{err}");
}

/// Defect 3: a fully connected layer with a zero reduction length loaded and ran but never wrote
/// its output (0.0 where the bias, 500.0, is expected).
#[test]
fn fully_connected_with_a_zero_reduction_is_rejected_at_load() {
    let err = load(&single_op(rop::FULLY_CONNECTED, 0)).unwrap_err().to_string();
    assert!(err.contains("op 0 (FullyConnected)") && err.contains("zero-size"), "{err}");
    // With a reduction of 1 the bias is there: 500 + 0.5 * x.
    let out = run_on(&single_op(rop::FULLY_CONNECTED, 1), "scalar");
    assert_eq!(out, [500.0 - 0.25, 500.0 - 0.25]);
}

/// An int8 fully-connected layer on block-sparse weights `[n, k]` (f32 output).
fn sparse_fc(n: usize, k: usize) -> Vec<u8> {
    let mut b = Builder::default();
    let x = b.act(DType::F32, &[1, k], Layout::RowMajor, 0.0);
    let q = b.act(DType::I8, &[1, k], Layout::RowMajor, 0.05);
    b.op(rop::QUANTIZE, vec![x], q, [0; OP_PARAMS]);
    let weights: Vec<i8> = (0..n * k).map(|i| if i % 3 == 0 { (i % 11) as i8 - 5 } else { 0 }).collect();
    let w = b.constant(DType::I8, &[n, k], sparse::encode(sparse::KERNEL_BLOCK, n, k, &weights));
    let t = &mut b.spec.tensors[w as usize];
    t.layout = Layout::BlockSparse;
    t.pack = Some(sparse::KERNEL_BLOCK);
    let bias = b.i32s(&[n], 7);
    let scales = b.f32s(&[n], 0.01);
    let y = b.act(DType::F32, &[1, n], Layout::RowMajor, 0.0);
    b.op(rop::FULLY_CONNECTED, vec![q, w, bias, scales], y, no_clamp());
    b.finish(vec![x], vec![y]).to_bytes()
}

/// Defect 2: a block-sparse int8 layer with zero output channels or a zero reduction length
/// divided by zero in the AVX-512 sparse kernel while the other kernel sets ran it.
#[test]
fn block_sparse_layer_with_zero_channels_or_reduction_is_rejected_at_load() {
    for (n, k) in [(0, 8), (16, 0), (0, 0)] {
        let err = load(&sparse_fc(n, k)).unwrap_err().to_string();
        assert!(err.contains("zero-size"), "[{n}, {k}]: {err}");
    }
    // The smallest legal ones run identically on every kernel path.
    for (n, k) in [(1, 1), (1, 5), (17, 1), (33, 9)] {
        let bytes = sparse_fc(n, k);
        let want = run_on(&bytes, "scalar");
        for p in paths() {
            assert_eq!(run_on(&bytes, p), want, "[{n}, {k}] on {p}");
        }
    }
}

/// The bytes of a golden file with `f` applied and every checksum recomputed, so the change
/// reaches the reader's semantic checks.
fn golden_with(name: &str, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = std::fs::read(format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    f(&mut b);
    common::fix_checksums(&mut b);
    b
}

fn section(b: &[u8], kind: u32) -> usize {
    let n = u32::from_le_bytes(b[16..20].try_into().unwrap()) as usize;
    (0..n)
        .map(|i| &b[64 + 32 * i..96 + 32 * i])
        .find(|e| u32::from_le_bytes(e[0..4].try_into().unwrap()) == kind)
        .map(|e| u64::from_le_bytes(e[8..16].try_into().unwrap()) as usize)
        .unwrap()
}

/// Defect 4: the reader accepted non-zero values in fields the spec reserves as 0, `version_minor`
/// 3 and 65535, and minor 0 on a file that uses packed panels. Each is now a typed error that
/// names the field and its offset.
#[test]
fn the_reader_rejects_reserved_fields_newer_minors_and_features_above_the_declared_minor() {
    let packed = "residual_int8_packed.sparq";
    let ops = |b: &[u8]| section(b, 4);
    let meta = |b: &[u8]| section(b, 1);
    type Mutation = Box<dyn Fn(&mut Vec<u8>) -> usize>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "header flags",
            Box::new(|b| {
                b[32] = 1;
                32
            }),
        ),
        (
            "header reserved",
            Box::new(|b| {
                b[47] = 9;
                47
            }),
        ),
        (
            "section flags",
            Box::new(|b| {
                b[64 + 32 + 4] = 2;
                100
            }),
        ),
        (
            "section reserved",
            Box::new(|b| {
                b[64 + 28] = 1;
                92
            }),
        ),
        (
            "META reserved",
            Box::new(move |b| {
                let at = meta(b) + 40;
                b[at] = 1;
                at
            }),
        ),
        (
            "op flags",
            Box::new(move |b| {
                let at = ops(b) + 128 + 2;
                b[at] = 1;
                at
            }),
        ),
        (
            "op reserved",
            Box::new(move |b| {
                let at = ops(b) + 20;
                b[at + 3] = 1;
                at
            }),
        ),
        (
            "parameter slot",
            Box::new(move |b| {
                // Slot 11 is used by no op kind.
                let at = ops(b) + 24 + 4 * 11;
                b[at] = 5;
                at
            }),
        ),
        (
            "newer than this reader",
            Box::new(|b| {
                b[10..12].copy_from_slice(&(sparq_format::layout::VERSION_MINOR + 1).to_le_bytes());
                10
            }),
        ),
        (
            "newer than this reader",
            Box::new(|b| {
                b[10..12].copy_from_slice(&u16::MAX.to_le_bytes());
                10
            }),
        ),
        (
            "packed weight layout",
            Box::new(|b| {
                b[10..12].copy_from_slice(&0u16.to_le_bytes());
                10
            }),
        ),
    ];
    for (what, mutate) in cases {
        let mut offset = 0;
        let bytes = golden_with(packed, |b| offset = mutate(b));
        let err = load(&bytes).expect_err(what).to_string();
        assert!(err.contains(what.split(' ').next().unwrap()), "{what}: {err}");
        assert!(
            err.contains(&format!("offset {offset}")) || err.contains(&format!("at offset {offset}")),
            "{what} at {offset}: {err}"
        );
    }
    // An op kind of format 1.3 in a file that says 1.2.
    let mut bytes = single_op(rop::LOOKUP, 2);
    bytes[10..12].copy_from_slice(&2u16.to_le_bytes());
    common::fix_checksums(&mut bytes);
    let err = load(&bytes).unwrap_err().to_string();
    assert!(err.contains("Lookup") && err.contains("needs format 1.3"), "{err}");
    // Each op kind of format 1.4 in a file that says 1.3.
    for kind in [rop::MATMUL, rop::BINARY, rop::REDUCE, rop::NORMALIZE, rop::GATHER, rop::LSTM, rop::GRU, rop::WHERE] {
        let mut bytes = single_op(kind, 2);
        bytes[10..12].copy_from_slice(&3u16.to_le_bytes());
        common::fix_checksums(&mut bytes);
        let err = load(&bytes).unwrap_err().to_string();
        assert!(err.contains(rop::name(kind)) && err.contains("needs format 1.4"), "{err}");
    }
    // The f32 golden file: an f32 tensor's scale is reserved as 0.
    let bytes = golden_with("residual_f32.sparq", |b| {
        let at = section(b, 3) + 52;
        b[at..at + 4].copy_from_slice(&0.5f32.to_le_bytes());
    });
    let err = load(&bytes).unwrap_err().to_string();
    assert!(err.contains("scale of an f32/i32 tensor"), "{err}");
    // A section kind no minor defines is refused; a private one (0x1000 and up) is skipped.
    let with_section = |kind: u32| {
        let mut spec = single_op_spec(rop::CLAMP, 2);
        spec.extra_sections.push((kind, b"profile".to_vec()));
        spec.to_bytes()
    };
    let err = load(&with_section(9)).unwrap_err().to_string();
    assert!(err.contains("section 7 (entry at offset 288) has kind 9"), "{err}");
    load(&with_section(0x1000)).expect("private sections are skipped");
    // The untouched golden files load.
    for name in ["residual_f32.sparq", "residual_int8.sparq", packed] {
        load(&golden_with(name, |_| {})).unwrap();
    }
}

/// Defect 5 (library side): a file may declare any arena; the session refuses one above its
/// limit before anything is allocated, and `Model::check_arena` lets callers check first.
#[test]
fn an_arena_above_the_limit_is_refused_before_allocation() {
    let bytes = golden_with("residual_int8.sparq", |b| {
        let at = section(b, 1);
        b[at..at + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
    });
    let aligned = AlignedBytes::from_slice(&bytes);
    let model = Model::from_bytes(&aligned).expect("a huge declared arena is not itself invalid");
    let err = model.check_arena(sparq_runtime::DEFAULT_MAX_ARENA).unwrap_err();
    assert!(matches!(err, RuntimeError::ArenaLimit { limit, .. } if limit == 1 << 30), "{err}");
    let mut small = AlignedBytes::zeroed(4096);
    let err = Session::new(&model, small.as_mut_slice()).err().unwrap();
    assert!(matches!(err, RuntimeError::ArenaLimit { .. }), "{err}");
    assert!(err.to_string().contains("limit"), "{err}");
}

/// An int8 Add or Mul of an NHWC tensor and a per-channel vector `[1, C, 1, 1]`, either operand
/// order, or (`expand`) of the vector written out to the full shape: the output.
fn channel_binary(kind: u16, small_first: bool, expand: bool) -> Vec<u8> {
    let (c, h, w) = (19, 5, 3);
    let mut b = Builder::default();
    let x = b.act(DType::F32, &[1, c, h, w], Layout::Nhwc, 0.0);
    let q = b.act(DType::I8, &[1, c, h, w], Layout::Nhwc, 0.05);
    b.op(rop::QUANTIZE, vec![x], q, [0; OP_PARAMS]);
    let vec: Vec<u8> = (0..c).map(|i| (i as i32 * 37 % 255 - 127) as u8).collect();
    let s = if expand {
        let full: Vec<u8> = (0..h * w).flat_map(|_| vec.clone()).collect();
        let t = b.constant(DType::I8, &[1, c, h, w], full);
        b.spec.tensors[t as usize].layout = Layout::Nhwc;
        t
    } else {
        b.constant(DType::I8, &[1, c, 1, 1], vec)
    };
    b.spec.tensors[s as usize].scale = 0.02;
    b.spec.tensors[s as usize].zero_point = 3;
    let r = b.act(DType::I8, &[1, c, h, w], Layout::Nhwc, 0.07);
    b.spec.tensors[r as usize].zero_point = -9;
    let mut p = [0; OP_PARAMS];
    p[rop::ACT_MIN] = -128;
    p[rop::ACT_MAX] = 127;
    p[rop::SHIFT] = 20;
    p[rop::MULT_A] = 11_000;
    if kind == rop::ADD {
        p[rop::MULT_B] = 250_000;
    }
    let inputs = if small_first { vec![s, q] } else { vec![q, s] };
    b.op(kind, inputs, r, p);
    let y = b.act(DType::F32, &[1, c, h, w], Layout::Nhwc, 0.0);
    b.op(rop::DEQUANTIZE, vec![r], y, [0; OP_PARAMS]);
    b.finish(vec![x], vec![y]).to_bytes()
}

/// The per-pixel kernel of a channel broadcast gives what the contiguous kernel gives on the
/// broadcast written out, on every kernel path, in either operand order.
#[test]
fn per_channel_broadcasts_match_the_written_out_operand() {
    for kind in [rop::ADD, rop::MUL] {
        for small_first in [false, true] {
            let (rows, full) = (channel_binary(kind, small_first, false), channel_binary(kind, small_first, true));
            let want = run_on(&full, "scalar");
            for p in paths() {
                assert_eq!(run_on(&rows, p), want, "{} small first {small_first} on {p}", rop::name(kind));
            }
        }
    }
}

/// An int16 fully-connected layer (format 1.6): f32 `[1, k]` quantized to int16, A16W8 with int8
/// weights `w` `[n, k]` and bias `bias`, dequantized; `edit` changes the spec before writing.
fn int16_fc(n: usize, k: usize, w: i8, bias: i32, edit: impl FnOnce(&mut ModelSpec)) -> Vec<u8> {
    let mut b = Builder::default();
    let x = b.act(DType::F32, &[1, k], Layout::RowMajor, 0.0);
    let q = b.act(DType::I16, &[1, k], Layout::RowMajor, 1.0 / 4096.0);
    b.op(rop::QUANTIZE, vec![x], q, [0; OP_PARAMS]);
    let wt = b.constant(DType::I8, &[n, k], vec![w as u8; n * k]);
    let bias = b.i32s(&[n], bias);
    let (m, s) = sparq_runtime::quant::quantize_multiplier(1.0 / 32.0);
    let mult = b.i32s(&[n], m);
    let shift = b.i32s(&[n], s);
    let y = b.act(DType::I16, &[1, n], Layout::RowMajor, 1.0 / 1024.0);
    let mut p = [0i32; OP_PARAMS];
    (p[rop::ACT_MIN], p[rop::ACT_MAX]) = (i16::MIN as i32, i16::MAX as i32);
    b.op(rop::FULLY_CONNECTED, vec![q, wt, bias, mult, shift], y, p);
    let z = b.act(DType::F32, &[1, n], Layout::RowMajor, 0.0);
    b.op(rop::DEQUANTIZE, vec![y], z, [0; OP_PARAMS]);
    let mut spec = b.finish(vec![x], vec![z]);
    edit(&mut spec);
    spec.to_bytes()
}

/// Int16 tensors (format 1.6) are refused where they are not defined, each with a reason: in a
/// file that declares 1.5, as a constant, with a zero point, as an operand of an op without an
/// int16 form, and in a layer whose int32 accumulator could overflow. The legal file loads,
/// declares 1.6 and gives the same outputs on every kernel path.
#[test]
fn int16_tensors_are_refused_where_format_1_6_does_not_define_them() {
    let ok = int16_fc(3, 40, 5, 100, |_| {});
    assert_eq!(sparq_format::FileView::parse(&ok).unwrap().version_minor, 6);
    let want = run_on(&ok, "scalar");
    // x = (i % 7) / 4 - 0.5 -> codes 4096 x; acc = 100 + 5 sum(codes); y = acc / 32 (rounded half
    // up) codes of 1/1024.
    let codes: i32 = (0..40).map(|i| (((i % 7) as f32 * 0.25 - 0.5) * 4096.0) as i32).sum();
    let acc = 100 + 5 * codes;
    let expect = ((acc as f64 / 32.0 + 0.5).floor() / 1024.0) as f32;
    assert_eq!(want, [expect; 3]);
    for p in paths() {
        assert_eq!(run_on(&ok, p), want, "int16 fully-connected on {p}");
    }
    let declared_1_5 = int16_fc(3, 40, 5, 100, |s| s.version_minor = 5);
    let err = load(&declared_1_5).unwrap_err().to_string();
    assert!(err.contains("i16 tensor") && err.contains("1.6"), "{err}");
    let zero_point = int16_fc(3, 40, 5, 100, |s| s.tensors[1].zero_point = 3);
    let err = load(&zero_point).unwrap_err().to_string();
    assert!(err.contains("int16 zero point"), "{err}");
    let constant = int16_fc(3, 40, 5, 100, |s| {
        s.tensors[2].dtype = DType::I16;
        s.tensors[2].data = Some(vec![5; 2 * 3 * 40]);
    });
    let err = load(&constant).unwrap_err().to_string();
    assert!(err.contains("int16 tensors are activations"), "{err}");
    // 127 * 32768 * 600 > 2^31: the accumulator could overflow.
    let overflow = int16_fc(2, 600, 127, 0, |_| {});
    let err = load(&overflow).unwrap_err().to_string();
    assert!(err.contains("op 1 (FullyConnected)") && err.contains("overflow"), "{err}");
    // Int16 operands of a Mul (the int16 `x` twice into the layer's `[1, 40]` output).
    let mul = int16_fc(40, 40, 1, 0, |s| {
        s.ops[1] =
            OpSpec { kind: rop::MUL, name: "mul".into(), inputs: vec![1, 1], outputs: vec![7], params: [0; OP_PARAMS] };
    });
    let err = load(&mul).unwrap_err().to_string();
    assert!(err.contains("Mul") && err.contains("int16"), "{err}");
}

/// QUANTIZE (scale 1/4) -> LOOKUP with one table per channel (format 1.7; table `c` maps code
/// `q` to `q (c + 1)`) in `layout` -> DEQUANTIZE, on a `[1, c, 2, 3]` input; `edit` breaks it.
fn per_channel_lookup(c: usize, layout: Layout, edit: impl FnOnce(&mut ModelSpec)) -> Vec<u8> {
    per_channel_lookup_into(DType::I8, c, layout, edit)
}

/// `per_channel_lookup` into int8 or (int16 tables, y scale 1/100) int16.
fn per_channel_lookup_into(dtype: DType, c: usize, layout: Layout, edit: impl FnOnce(&mut ModelSpec)) -> Vec<u8> {
    let mut b = Builder::default();
    let x = b.act(DType::F32, &[1, c, 2, 3], Layout::RowMajor, 0.0);
    let q = b.act(DType::I8, &[1, c, 2, 3], layout, 0.25);
    b.op(rop::QUANTIZE, vec![x], q, [0; OP_PARAMS]);
    let entry = |ch: usize, k: i32| (k - 128) * (ch as i32 + 1);
    let tables: Vec<u8> = if dtype == DType::I16 {
        (0..c).flat_map(|ch| (0..256).flat_map(move |k| ((entry(ch, k) * 100) as i16).to_le_bytes())).collect()
    } else {
        (0..c).flat_map(|ch| (0..256).map(move |k| entry(ch, k).clamp(-128, 127) as i8 as u8)).collect()
    };
    let t = b.constant(dtype, &[c, 256], tables);
    let y = b.act(dtype, &[1, c, 2, 3], layout, if dtype == DType::I16 { 0.01 } else { 1.0 });
    let mut p = [0i32; OP_PARAMS];
    p[rop::LOOKUP_PER_CHANNEL] = 1;
    b.op(rop::LOOKUP, vec![q, t], y, p);
    let z = b.act(DType::F32, &[1, c, 2, 3], Layout::RowMajor, 0.0);
    b.op(rop::DEQUANTIZE, vec![y], z, [0; OP_PARAMS]);
    let mut spec = b.finish(vec![x], vec![z]);
    edit(&mut spec);
    spec.to_bytes()
}

/// Per-channel lookup tables (format 1.7, how a model taking uint8 camera frames normalizes
/// them) give each channel its own table in either layout, on every kernel path; a file declaring
/// 1.6, a table of the wrong shape, an unknown flag or layouts that differ are refused by name.
#[test]
fn per_channel_lookup_tables_are_format_1_7_and_checked() {
    for (c, layout) in [(3, Layout::Nhwc), (3, Layout::RowMajor), (5, Layout::Nhwc), (2, Layout::Nhwc)] {
        let ok = per_channel_lookup(c, layout, |_| {});
        assert_eq!(sparq_format::FileView::parse(&ok).unwrap().version_minor, 7);
        // x_i = (i % 7) / 4 - 1/2: code i % 7 - 2, in channel i / 6.
        let want: Vec<f32> = (0..c * 6).map(|i| ((i % 7) as f32 - 2.0) * (i / 6 + 1) as f32).collect();
        for p in paths() {
            assert_eq!(run_on(&ok, p), want, "{c} channels, {layout:?}, on {p}");
        }
    }
    let declared_1_6 = per_channel_lookup(3, Layout::Nhwc, |s| s.version_minor = 6);
    let err = load(&declared_1_6).unwrap_err().to_string();
    assert!(err.contains("Lookup") && err.contains("1.7"), "{err}");
    let wrong_shape = per_channel_lookup(3, Layout::Nhwc, |s| s.tensors[2].dims = vec![3 * 256]);
    let err = load(&wrong_shape).unwrap_err().to_string();
    assert!(err.contains("[C, 256]"), "{err}");
    let flag = per_channel_lookup(3, Layout::Nhwc, |s| s.ops[1].params[rop::LOOKUP_PER_CHANNEL] = 2);
    let err = load(&flag).unwrap_err().to_string();
    assert!(err.contains("per-channel flag"), "{err}");
    let layouts = per_channel_lookup(3, Layout::Nhwc, |s| s.tensors[3].layout = Layout::RowMajor);
    let err = load(&layouts).unwrap_err().to_string();
    assert!(err.contains("output of its layout"), "{err}");
    // Into int16 (int16 tables: the one int16 constant 1.7 defines).
    let ok16 = per_channel_lookup_into(DType::I16, 3, Layout::Nhwc, |_| {});
    assert_eq!(sparq_format::FileView::parse(&ok16).unwrap().version_minor, 7);
    let want: Vec<f32> = (0..18).map(|i| ((i % 7) as f32 - 2.0) * (i / 6 + 1) as f32).collect();
    for p in paths() {
        let got = run_on(&ok16, p);
        assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-4), "int16 tables on {p}: {got:?}");
    }
    let declared_1_6 = per_channel_lookup_into(DType::I16, 3, Layout::Nhwc, |s| s.version_minor = 6);
    let err = load(&declared_1_6).unwrap_err().to_string();
    assert!(err.contains("1.7 lookup tables"), "{err}");
    let int8_tables = per_channel_lookup_into(DType::I16, 3, Layout::Nhwc, |s| {
        s.tensors[2].dtype = DType::I8;
        s.tensors[2].data = Some(vec![0; 3 * 256]);
    });
    let err = load(&int8_tables).unwrap_err().to_string();
    assert!(err.contains("of the output's dtype"), "{err}");
    let one_table =
        per_channel_lookup_into(DType::I16, 3, Layout::Nhwc, |s| s.ops[1].params[rop::LOOKUP_PER_CHANNEL] = 0);
    assert!(load(&one_table).is_err());
}

/// The int16 form (format 1.6) of `kind` with `n` channels: an f32 `[1, n, 3, 3]` NHWC input
/// quantized to int16 codes (scale 1/256), the op in int16 (int8 weights 3 and bias 5 for the
/// 1x1 convolutions, the input added to itself, the 3x3 mean, or int16 -> int8 -> int16 codes),
/// dequantized.
fn int16_single_op(kind: u16, n: usize) -> Vec<u8> {
    let mut b = Builder::default();
    let x = b.act(DType::F32, &[1, n, 3, 3], Layout::Nhwc, 0.0);
    let q = b.act(DType::I16, &[1, n, 3, 3], Layout::Nhwc, 1.0 / 256.0);
    b.op(rop::QUANTIZE, vec![x], q, [0; OP_PARAMS]);
    let mut p = [0i32; OP_PARAMS];
    (p[rop::ACT_MIN], p[rop::ACT_MAX]) = (i16::MIN as i32, i16::MAX as i32);
    let y = match kind {
        rop::CONV2D | rop::DEPTHWISE_CONV2D => {
            let (dims, groups) = if kind == rop::CONV2D { ([n, 1, 1, n], 1) } else { ([1, 1, 1, n], n as i32) };
            let w = b.constant(DType::I8, &dims, vec![3u8; dims.iter().product()]);
            let bias = b.i32s(&[n], 5);
            let (m, s) = sparq_runtime::quant::quantize_multiplier(0.25);
            let (mult, shift) = (b.i32s(&[n], m), b.i32s(&[n], s));
            let y = b.act(DType::I16, &[1, n, 3, 3], Layout::Nhwc, 1.0 / 64.0);
            let mut pw = window(1);
            pw[win::GROUPS] = groups;
            (pw[rop::ACT_MIN], pw[rop::ACT_MAX]) = (p[rop::ACT_MIN], p[rop::ACT_MAX]);
            b.op(kind, vec![q, w, bias, mult, shift], y, pw);
            y
        }
        rop::ADD => {
            let q2 = b.act(DType::I16, &[1, n, 3, 3], Layout::Nhwc, 1.0 / 256.0);
            b.op(rop::QUANTIZE, vec![x], q2, [0; OP_PARAMS]);
            let y = b.act(DType::I16, &[1, n, 3, 3], Layout::Nhwc, 1.0 / 128.0);
            // (a + b) / 2 in the output's codes.
            (p[rop::MULT_A], p[rop::MULT_B], p[rop::SHIFT]) = (1 << 29, 1 << 29, 30);
            b.op(rop::ADD, vec![q, q2], y, p);
            y
        }
        rop::GLOBAL_AVERAGE_POOL => {
            let y = b.act(DType::I16, &[1, n, 1, 1], Layout::Nhwc, 1.0 / 256.0);
            let mut pg = [0i32; OP_PARAMS];
            (pg[rop::MULT_A], pg[rop::SHIFT]) = sparq_runtime::quant::quantize_multiplier(1.0 / 9.0);
            b.op(rop::GLOBAL_AVERAGE_POOL, vec![q], y, pg);
            y
        }
        rop::REQUANTIZE => {
            let mut pr = [0i32; OP_PARAMS];
            let r8 = b.act(DType::I8, &[1, n, 3, 3], Layout::Nhwc, 1.0 / 16.0);
            (pr[rop::MULT_A], pr[rop::SHIFT]) = sparq_runtime::quant::quantize_multiplier(1.0 / 16.0);
            b.op(rop::REQUANTIZE, vec![q], r8, pr);
            let y = b.act(DType::I16, &[1, n, 3, 3], Layout::Nhwc, 1.0 / 256.0);
            (pr[rop::MULT_A], pr[rop::SHIFT]) = sparq_runtime::quant::quantize_multiplier(16.0);
            b.op(rop::REQUANTIZE, vec![r8], y, pr);
            y
        }
        _ => unreachable!("no int16 form here: {}", rop::name(kind)),
    };
    let dims = b.spec.tensors[y as usize].dims.clone();
    let z = b.act(DType::F32, &dims, Layout::Nhwc, 0.0);
    b.op(rop::DEQUANTIZE, vec![y], z, [0; OP_PARAMS]);
    b.finish(vec![x], vec![z]).to_bytes()
}

/// The zero-size rule and the kernel paths' agreement cover the int16 forms (format 1.6) and the
/// per-channel lookups (1.7, int8 and int16 tables) too: with 1 or 3 channels (every SIMD kernel
/// on its tail alone) each loads and gives the scalar reference's outputs on every kernel path;
/// with 0 channels each is refused at load, naming the zero-size tensor.
#[test]
fn zero_size_rule_and_kernel_paths_cover_int16_and_per_channel_lookup_forms() {
    let paths = paths();
    type Form = (&'static str, Box<dyn Fn(usize) -> Vec<u8>>);
    let mut forms: Vec<Form> =
        [rop::CONV2D, rop::DEPTHWISE_CONV2D, rop::ADD, rop::GLOBAL_AVERAGE_POOL, rop::REQUANTIZE]
            .into_iter()
            .map(|k| (rop::name(k), Box::new(move |n| int16_single_op(k, n)) as Box<dyn Fn(usize) -> Vec<u8>>))
            .collect();
    forms.push(("int16 FullyConnected (outputs)", Box::new(|n| int16_fc(n, 40, 5, 100, |_| {}))));
    forms.push(("int16 FullyConnected (reduction)", Box::new(|n| int16_fc(3, n, 5, 100, |_| {}))));
    forms.push(("per-channel Lookup", Box::new(|n| per_channel_lookup(n, Layout::Nhwc, |_| {}))));
    forms.push((
        "per-channel Lookup into int16",
        Box::new(|n| per_channel_lookup_into(DType::I16, n, Layout::Nhwc, |_| {})),
    ));
    for (name, build) in &forms {
        for n in [1, 3] {
            let bytes = build(n);
            load(&bytes).unwrap_or_else(|e| panic!("{name} with n = {n}: {e}"));
            let want = run_on(&bytes, "scalar");
            assert!(want.iter().all(|v| v.is_finite()) && want.iter().any(|&v| v != 0.0), "{name}: {want:?}");
            for p in &paths {
                assert_eq!(run_on(&bytes, p), want, "{name} with n = {n} on {p}");
            }
        }
        let err = load(&build(0)).expect_err(name).to_string();
        assert!(err.contains("zero-size"), "{name}: {err}");
    }
    println!("{} int16 and per-channel lookup forms checked on kernel paths {paths:?}", forms.len());
}
