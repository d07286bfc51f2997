//! The int8 forms of format 1.5: RESIZE linear, CONV_TRANSPOSE and BINARY Sub. Each runs on
//! every kernel set this CPU runs (the sets must agree to the bit), against the f32 op on the
//! dequantized operands (within one int8 step), and on cases whose result is exact.

use sparq_runtime::format::layout::op::{self, binary, window};
use sparq_runtime::format::layout::OP_PARAMS;
use sparq_runtime::format::writer::{ModelSpec, OpSpec, TensorSpec};
use sparq_runtime::format::{DType, Layout};
use sparq_runtime::kernels::registry;
use sparq_runtime::quant::{dequantize_i8, quantize_f32, quantize_multiplier};
use sparq_runtime::{AlignedBytes, Model, Session};

/// A model under construction: arena tensors at sequential 64-byte aligned offsets.
#[derive(Default)]
struct Builder {
    spec: ModelSpec,
    arena: usize,
}

impl Builder {
    fn tensor(
        &mut self,
        dtype: DType,
        dims: &[usize],
        layout: Layout,
        data: Option<Vec<u8>>,
        quant: (f32, i32),
    ) -> u32 {
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
            layout,
            arena_offset: offset,
            scale: quant.0,
            zero_point: quant.1,
            data,
            pack: None,
        });
        (self.spec.tensors.len() - 1) as u32
    }
    fn act(&mut self, dtype: DType, dims: &[usize], layout: Layout, quant: (f32, i32)) -> u32 {
        self.tensor(dtype, dims, layout, None, quant)
    }
    fn f32s(&mut self, dims: &[usize], v: &[f32]) -> u32 {
        self.tensor(
            DType::F32,
            dims,
            Layout::RowMajor,
            Some(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            (0.0, 0),
        )
    }
    fn i32s(&mut self, dims: &[usize], v: &[i32]) -> u32 {
        self.tensor(
            DType::I32,
            dims,
            Layout::RowMajor,
            Some(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            (0.0, 0),
        )
    }
    fn i8s(&mut self, dims: &[usize], v: &[i8]) -> u32 {
        self.tensor(DType::I8, dims, Layout::RowMajor, Some(v.iter().map(|&x| x as u8).collect()), (0.0, 0))
    }
    fn op(&mut self, kind: u16, inputs: Vec<u32>, output: u32, params: [i32; OP_PARAMS]) {
        let name = format!("{}_{}", op::name(kind), self.spec.ops.len());
        self.spec.ops.push(OpSpec { kind, name, inputs, outputs: vec![output], params });
    }
    /// f32 row-major graph input of `dims` quantized into an int8 arena tensor of `layout`.
    fn quantized_input(&mut self, dims: &[usize], layout: Layout, q: (f32, i32)) -> (u32, u32) {
        let x = self.act(DType::F32, dims, Layout::RowMajor, (0.0, 0));
        let xq = self.act(DType::I8, dims, layout, q);
        self.op(op::QUANTIZE, vec![x], xq, [0; OP_PARAMS]);
        (x, xq)
    }
    /// An f32 row-major graph output dequantized from int8 `y`.
    fn dequantized_output(&mut self, y: u32) -> u32 {
        let dims = self.spec.tensors[y as usize].dims.clone();
        let out = self.act(DType::F32, &dims, Layout::RowMajor, (0.0, 0));
        self.op(op::DEQUANTIZE, vec![y], out, [0; OP_PARAMS]);
        out
    }
    fn finish(mut self, inputs: Vec<u32>, outputs: Vec<u32>) -> Vec<u8> {
        self.spec.name = "ops_1_5".into();
        self.spec.arena_size = self.arena;
        self.spec.inputs = inputs;
        self.spec.outputs = outputs;
        self.spec.to_bytes()
    }
}

/// Output 0 of `bytes` run with its inputs set to `inputs`, on every kernel set this CPU runs;
/// the sets must agree to the bit.
fn run(bytes: &[u8], inputs: &[&[f32]]) -> Vec<f32> {
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
        for (i, x) in inputs.iter().enumerate() {
            s.set_input(i, x).unwrap();
        }
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

/// Deterministic values in `[-amp, amp)` (xorshift).
fn values(n: usize, seed: u64, amp: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amp
        })
        .collect()
}

/// `x` rounded to its int8 codes and back (what the int8 op sees).
fn fake_quant(x: &[f32], q: (f32, i32)) -> Vec<f32> {
    x.iter().map(|&v| dequantize_i8(quantize_f32(v, q.0, q.1), q.0, q.1)).collect()
}

fn max_steps(got: &[f32], want: &[f32], scale: f32) -> f32 {
    assert_eq!(got.len(), want.len());
    got.iter().zip(want).map(|(a, b)| (a - b).abs() / scale).fold(0.0, f32::max)
}

fn resize_params(mode: i32, coord: i32, scales: [f32; 2]) -> [i32; OP_PARAMS] {
    let mut p = [0; OP_PARAMS];
    p[op::RESIZE_MODE] = mode;
    p[op::RESIZE_COORD] = coord;
    p[op::RESIZE_SCALE_H] = scales[0].to_bits() as i32;
    p[op::RESIZE_SCALE_W] = scales[1].to_bits() as i32;
    p
}

/// An int8 bilinear resize of `[N, C, H, W]` (input layout `lx`, output layout `ly`), and the
/// same resize in f32.
fn resize_models(
    dims: [usize; 4],
    out_hw: [usize; 2],
    coord: i32,
    q: (f32, i32),
    lx: Layout,
    ly: Layout,
) -> (Vec<u8>, Vec<u8>) {
    let out = [dims[0], dims[1], out_hw[0], out_hw[1]];
    let scales = [out_hw[0] as f32 / dims[2] as f32, out_hw[1] as f32 / dims[3] as f32];
    let mut b = Builder::default();
    let (x, xq) = b.quantized_input(&dims, lx, q);
    let yq = b.act(DType::I8, &out, ly, q);
    b.op(op::RESIZE, vec![xq], yq, resize_params(1, coord, scales));
    let y = b.dequantized_output(yq);
    let int8 = b.finish(vec![x], vec![y]);
    let mut b = Builder::default();
    let x = b.act(DType::F32, &dims, Layout::RowMajor, (0.0, 0));
    let y = b.act(DType::F32, &out, Layout::RowMajor, (0.0, 0));
    b.op(op::RESIZE, vec![x], y, resize_params(1, coord, scales));
    (int8, b.finish(vec![x], vec![y]))
}

#[test]
fn int8_bilinear_resize_of_a_constant_image_is_the_constant() {
    let q = (0.02f32, -7);
    for coord in 0..=4 {
        for (dims, out_hw) in [([1, 3, 4, 5], [8, 10]), ([2, 2, 3, 3], [7, 5]), ([1, 1, 6, 6], [3, 4])] {
            let (int8, _) = resize_models(dims, out_hw, coord, q, Layout::Nhwc, Layout::Nhwc);
            let x = vec![0.77f32; dims.iter().product()];
            let want = fake_quant(&x[..1], q)[0];
            let y = run(&int8, &[&x]);
            assert!(y.iter().all(|&v| v == want), "coord {coord} {dims:?} -> {out_hw:?}: {:?} != {want}", &y[..4]);
        }
    }
}

#[test]
fn int8_bilinear_resize_matches_f32_on_the_dequantized_input() {
    let q = (0.05f32, 11);
    for coord in 0..=4 {
        for (k, (dims, out_hw)) in
            [([1, 3, 5, 7], [9, 12]), ([1, 4, 4, 4], [8, 8]), ([2, 2, 6, 5], [3, 11]), ([1, 2, 1, 3], [4, 6])]
                .into_iter()
                .enumerate()
        {
            let layouts =
                [(Layout::Nhwc, Layout::Nhwc), (Layout::RowMajor, Layout::Nhwc), (Layout::Nhwc, Layout::RowMajor)];
            let (lx, ly) = layouts[k % layouts.len()];
            let (int8, f32m) = resize_models(dims, out_hw, coord, q, lx, ly);
            let x = values(dims.iter().product(), 10 + k as u64, 6.0);
            let got = run(&int8, &[&x]);
            let want = run(&f32m, &[&fake_quant(&x, q)]);
            let steps = max_steps(&got, &want, q.0);
            assert!(steps <= 1.0, "coord {coord} {dims:?} -> {out_hw:?}: {steps} steps off");
        }
    }
}

#[test]
fn int8_bilinear_2x_upscale_interpolates_exactly_between_codes() {
    // half_pixel, 2x along W (H has one row): outputs 1 and 2 sit at 1/4 and 3/4 between inputs 0
    // and 1, so codes 0 and 40 give 10 and 30 exactly (weights 512 and 1536 of 2048); outputs 0
    // and 3 fall outside and are clamped to the edges.
    let q = (1.0f32, 0);
    let mut b = Builder::default();
    let (x, xq) = b.quantized_input(&[1, 1, 1, 2], Layout::RowMajor, q);
    let yq = b.act(DType::I8, &[1, 1, 1, 4], Layout::RowMajor, q);
    b.op(op::RESIZE, vec![xq], yq, resize_params(1, 0, [1.0, 2.0]));
    let y = b.dequantized_output(yq);
    let bytes = b.finish(vec![x], vec![y]);
    assert_eq!(run(&bytes, &[&[0.0, 40.0]]), [0.0, 10.0, 30.0, 40.0]);
    // Halves round away from zero: codes -1 and 0 halfway (align_corners, 3 outputs) give -1.
    let mut b = Builder::default();
    let (x, xq) = b.quantized_input(&[1, 1, 1, 2], Layout::RowMajor, q);
    let yq = b.act(DType::I8, &[1, 1, 1, 3], Layout::RowMajor, q);
    b.op(op::RESIZE, vec![xq], yq, resize_params(1, 2, [1.0, 1.5]));
    let y = b.dequantized_output(yq);
    let bytes = b.finish(vec![x], vec![y]);
    assert_eq!(run(&bytes, &[&[-1.0, 0.0]]), [-1.0, -1.0, 0.0]);
    assert_eq!(run(&bytes, &[&[1.0, 0.0]]), [1.0, 1.0, 0.0]);
}

/// Per-output-channel symmetric int8 weights of ONNX-order `[C_in, C_out/g, KH, KW]` weights, and
/// each output channel's scale.
fn quantize_conv_transpose_weights(
    w: &[f32],
    cin: usize,
    cout: usize,
    groups: usize,
    kk: usize,
) -> (Vec<i8>, Vec<f32>) {
    let (cin_g, cout_g) = (cin / groups, cout / groups);
    let index = |ci: usize, col: usize, t: usize| (ci * cout_g + col) * kk + t;
    let mut scales = vec![1.0f32; cout];
    let mut q = vec![0i8; w.len()];
    for (co, scale) in scales.iter_mut().enumerate() {
        let (g, col) = (co / cout_g, co % cout_g);
        let taps = || (g * cin_g..(g + 1) * cin_g).flat_map(move |ci| (0..kk).map(move |t| index(ci, col, t)));
        let max = taps().fold(0f32, |m, i| m.max(w[i].abs()));
        *scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        for i in taps() {
            q[i] = (w[i] / *scale).round().clamp(-127.0, 127.0) as i8;
        }
    }
    (q, scales)
}

struct ConvT {
    cin: usize,
    cout: usize,
    groups: usize,
    k: [usize; 2],
    s: [usize; 2],
    pads: [usize; 4],
    hw: [usize; 2],
    out_hw: [usize; 2],
}

/// An int8 CONV_TRANSPOSE (x quantized with `qx`, y with `qy`) and the f32 one with the
/// dequantized weights and biases.
fn conv_transpose_models(c: &ConvT, w: &[f32], bias: &[f32], qx: (f32, i32), qy: (f32, i32)) -> (Vec<u8>, Vec<u8>) {
    let kk = c.k[0] * c.k[1];
    let (wq, ws) = quantize_conv_transpose_weights(w, c.cin, c.cout, c.groups, kk);
    let b32: Vec<i32> =
        bias.iter().zip(&ws).map(|(&b, &s)| (b as f64 / (qx.0 as f64 * s as f64)).round() as i32).collect();
    let (mult, shift): (Vec<i32>, Vec<i32>) =
        ws.iter().map(|&s| quantize_multiplier(qx.0 as f64 * s as f64 / qy.0 as f64)).unzip();
    let mut p = [0; OP_PARAMS];
    (p[window::KERNEL_H], p[window::KERNEL_W]) = (c.k[0] as i32, c.k[1] as i32);
    (p[window::STRIDE_H], p[window::STRIDE_W]) = (c.s[0] as i32, c.s[1] as i32);
    (p[window::PAD_TOP], p[window::PAD_LEFT]) = (c.pads[0] as i32, c.pads[1] as i32);
    (p[window::PAD_BOTTOM], p[window::PAD_RIGHT]) = (c.pads[2] as i32, c.pads[3] as i32);
    (p[window::DILATION_H], p[window::DILATION_W]) = (1, 1);
    p[window::GROUPS] = c.groups as i32;
    let xdims = [1, c.cin, c.hw[0], c.hw[1]];
    let ydims = [1, c.cout, c.out_hw[0], c.out_hw[1]];
    let wdims = [c.cin, c.cout / c.groups, c.k[0], c.k[1]];
    let mut b = Builder::default();
    let (x, xq) = b.quantized_input(&xdims, Layout::Nhwc, qx);
    let wid = b.i8s(&wdims, &wq);
    let (bid, mid, sid) = (b.i32s(&[c.cout], &b32), b.i32s(&[c.cout], &mult), b.i32s(&[c.cout], &shift));
    let yq = b.act(DType::I8, &ydims, Layout::Nhwc, qy);
    let mut pq = p;
    (pq[op::ACT_MIN], pq[op::ACT_MAX]) = (-128, 127);
    b.op(op::CONV_TRANSPOSE, vec![xq, wid, bid, mid, sid], yq, pq);
    let y = b.dequantized_output(yq);
    let int8 = b.finish(vec![x], vec![y]);
    // f32 with what the int8 op computes with: dequantized weights and biases.
    let wf: Vec<f32> = (0..w.len())
        .map(|i| {
            let (ci, col) = (i / kk / (c.cout / c.groups), i / kk % (c.cout / c.groups));
            let co = ci / (c.cin / c.groups) * (c.cout / c.groups) + col;
            wq[i] as f32 * ws[co]
        })
        .collect();
    let bf: Vec<f32> = b32.iter().zip(&ws).map(|(&b, &s)| b as f32 * qx.0 * s).collect();
    // Graph inputs and outputs are row-major: RESHAPE converts to and from NHWC.
    let mut b = Builder::default();
    let x = b.act(DType::F32, &xdims, Layout::RowMajor, (0.0, 0));
    let xn = b.act(DType::F32, &xdims, Layout::Nhwc, (0.0, 0));
    b.op(op::RESHAPE, vec![x], xn, [0; OP_PARAMS]);
    let wid = b.f32s(&wdims, &wf);
    let bid = b.f32s(&[c.cout], &bf);
    let yn = b.act(DType::F32, &ydims, Layout::Nhwc, (0.0, 0));
    let mut pf = p;
    (pf[op::ACT_MIN], pf[op::ACT_MAX]) = (f32::NEG_INFINITY.to_bits() as i32, f32::INFINITY.to_bits() as i32);
    b.op(op::CONV_TRANSPOSE, vec![xn, wid, bid], yn, pf);
    let y = b.act(DType::F32, &ydims, Layout::RowMajor, (0.0, 0));
    b.op(op::RESHAPE, vec![yn], y, [0; OP_PARAMS]);
    (int8, b.finish(vec![x], vec![y]))
}

#[test]
fn int8_conv_transpose_matches_f32_on_the_dequantized_operands() {
    let (qx, qy) = ((0.04f32, -3), (0.09f32, 5));
    let cases = [
        ConvT { cin: 4, cout: 6, groups: 1, k: [3, 3], s: [2, 2], pads: [1, 1, 1, 1], hw: [5, 4], out_hw: [10, 8] },
        ConvT { cin: 4, cout: 6, groups: 2, k: [2, 3], s: [2, 1], pads: [0, 1, 0, 1], hw: [3, 5], out_hw: [6, 5] },
        ConvT { cin: 3, cout: 3, groups: 3, k: [4, 4], s: [2, 2], pads: [1, 1, 1, 1], hw: [4, 4], out_hw: [8, 8] },
        ConvT { cin: 5, cout: 2, groups: 1, k: [1, 1], s: [1, 1], pads: [0, 0, 0, 0], hw: [3, 3], out_hw: [3, 3] },
    ];
    for (k, c) in cases.iter().enumerate() {
        let n_w = c.cin * (c.cout / c.groups) * c.k[0] * c.k[1];
        let w = values(n_w, 100 + k as u64, 0.5);
        let bias = values(c.cout, 200 + k as u64, 0.3);
        let (int8, f32m) = conv_transpose_models(c, &w, &bias, qx, qy);
        let x = values(c.cin * c.hw[0] * c.hw[1], 300 + k as u64, 2.5);
        let got = run(&int8, &[&x]);
        // The f32 reference, clamped to the output's int8 range.
        let (lo, hi) = ((-128 - qy.1) as f32 * qy.0, (127 - qy.1) as f32 * qy.0);
        let want: Vec<f32> = run(&f32m, &[&fake_quant(&x, qx)]).iter().map(|v| v.clamp(lo, hi)).collect();
        let steps = max_steps(&got, &want, qy.0);
        assert!(steps <= 1.0, "case {k}: {steps} steps off");
        assert!(got.iter().any(|&v| v != got[0]), "case {k}: a constant output tests nothing");
    }
}

#[test]
fn int8_conv_transpose_with_identity_weights_is_exact() {
    // Kernel 2x2, stride 2, weight 1 on each channel's own taps (depthwise): every output pixel
    // reads exactly one input pixel, a nearest 2x upsample; same scale in and out.
    let q = (0.1f32, 4);
    let c = ConvT { cin: 3, cout: 3, groups: 3, k: [2, 2], s: [2, 2], pads: [0; 4], hw: [3, 2], out_hw: [6, 4] };
    let (int8, _) = conv_transpose_models(&c, &[1.0; 12], &[0.0; 3], q, q);
    let x = values(18, 7, 10.0);
    let xq = fake_quant(&x, q);
    let got = run(&int8, &[&x]);
    for ch in 0..3 {
        for oy in 0..6 {
            for ox in 0..4 {
                assert_eq!(got[(ch * 6 + oy) * 4 + ox], xq[(ch * 3 + oy / 2) * 2 + ox / 2], "{ch} {oy} {ox}");
            }
        }
    }
    // A 1x1 identity mixing no channels (one group, eye weights) returns the input's codes.
    let c = ConvT { cin: 2, cout: 2, groups: 1, k: [1, 1], s: [1, 1], pads: [0; 4], hw: [2, 3], out_hw: [2, 3] };
    let (int8, _) = conv_transpose_models(&c, &[1.0, 0.0, 0.0, 1.0], &[0.0; 2], q, q);
    let x = values(12, 8, 10.0);
    assert_eq!(run(&int8, &[&x]), fake_quant(&x, q));
}

/// `a - b` in int8 (BINARY Sub, ADD's requantization) with the three quantizations, as the
/// compiler's `requant::add` computes the multipliers; the f32 Sub of the same shapes.
fn sub_models(
    da: &[usize],
    db: &[usize],
    dy: &[usize],
    layouts: [Layout; 3],
    q: [(f32, i32); 3],
) -> (Vec<u8>, Vec<u8>) {
    let (ma, mb) = (q[0].0 as f64 / q[2].0 as f64, q[1].0 as f64 / q[2].0 as f64);
    let shift = quantize_multiplier(ma.max(mb)).1.max(2);
    let mut p = [0; OP_PARAMS];
    p[op::FUNCTION] = binary::SUB;
    p[op::MULT_A] = (ma * 2f64.powi(shift)).round() as i32;
    p[op::MULT_B] = (mb * 2f64.powi(shift)).round() as i32;
    p[op::SHIFT] = shift;
    (p[op::ACT_MIN], p[op::ACT_MAX]) = (-128, 127);
    let mut b = Builder::default();
    let (a, aq) = b.quantized_input(da, layouts[0], q[0]);
    let (bb, bq) = b.quantized_input(db, layouts[1], q[1]);
    let yq = b.act(DType::I8, dy, layouts[2], q[2]);
    b.op(op::BINARY, vec![aq, bq], yq, p);
    let y = b.dequantized_output(yq);
    let int8 = b.finish(vec![a, bb], vec![y]);
    let mut b = Builder::default();
    let a = b.act(DType::F32, da, Layout::RowMajor, (0.0, 0));
    let bb = b.act(DType::F32, db, Layout::RowMajor, (0.0, 0));
    let y = b.act(DType::F32, dy, Layout::RowMajor, (0.0, 0));
    let mut pf = [0; OP_PARAMS];
    pf[op::FUNCTION] = binary::SUB;
    b.op(op::BINARY, vec![a, bb], y, pf);
    (int8, b.finish(vec![a, bb], vec![y]))
}

#[test]
fn int8_sub_matches_f32_on_every_add_kernel_shape() {
    let (rm, nhwc) = (Layout::RowMajor, Layout::Nhwc);
    let q = [(0.03f32, -10), (0.05f32, 7), (0.06f32, 2)];
    // Contiguous (the SIMD add kernels, with tails), a broadcast (the strided walk), and a
    // per-channel vector on either side of an NHWC tensor (the per-pixel rows).
    type Case<'a> = (&'a [usize], &'a [usize], &'a [usize], [Layout; 3]);
    let cases: [Case<'_>; 5] = [
        (&[1, 4, 5, 7], &[1, 4, 5, 7], &[1, 4, 5, 7], [nhwc, nhwc, nhwc]),
        (&[2, 67], &[2, 67], &[2, 67], [rm, rm, rm]),
        (&[2, 3, 4], &[1, 3, 1], &[2, 3, 4], [rm, rm, rm]),
        (&[1, 24, 3, 3], &[1, 24, 1, 1], &[1, 24, 3, 3], [nhwc, rm, nhwc]),
        (&[1, 24, 1, 1], &[1, 24, 3, 3], &[1, 24, 3, 3], [rm, nhwc, nhwc]),
    ];
    for (k, (da, db, dy, layouts)) in cases.into_iter().enumerate() {
        let (int8, f32m) = sub_models(da, db, dy, layouts, q);
        let a = values(da.iter().product(), 40 + k as u64, 3.5);
        let b = values(db.iter().product(), 50 + k as u64, 5.5);
        let got = run(&int8, &[&a, &b]);
        let (lo, hi) = ((-128 - q[2].1) as f32 * q[2].0, (127 - q[2].1) as f32 * q[2].0);
        let want: Vec<f32> =
            run(&f32m, &[&fake_quant(&a, q[0]), &fake_quant(&b, q[1])]).iter().map(|v| v.clamp(lo, hi)).collect();
        let steps = max_steps(&got, &want, q[2].0);
        assert!(steps <= 1.0, "case {k}: {steps} steps off");
    }
}

#[test]
fn int8_sub_of_equal_operands_is_exactly_zero() {
    // Same values, same quantization: the two products cancel before the one rounding.
    let q = (0.02f32, -20);
    let (int8, _) = sub_models(&[3, 40], &[3, 40], &[3, 40], [Layout::RowMajor; 3], [q, q, (0.07, 9)]);
    let a = values(120, 3, 2.0);
    assert!(run(&int8, &[&a, &a]).iter().all(|&v| v == 0.0));
}

/// A file that uses an int8 form of 1.5 is written as 1.5; the same op in f32 keeps its old minor,
/// and a file claiming 1.4 with the int8 form is refused.
#[test]
fn int8_forms_need_format_1_5() {
    let minor = |bytes: &[u8]| u16::from_le_bytes([bytes[10], bytes[11]]);
    let q = (0.1f32, 0);
    let (resize, resize_f32) = resize_models([1, 1, 2, 2], [4, 4], 0, q, Layout::Nhwc, Layout::Nhwc);
    assert_eq!((minor(&resize), minor(&resize_f32)), (5, 3));
    let c = ConvT { cin: 1, cout: 1, groups: 1, k: [1, 1], s: [1, 1], pads: [0; 4], hw: [2, 2], out_hw: [2, 2] };
    let (conv_t, conv_t_f32) = conv_transpose_models(&c, &[1.0], &[0.0], q, q);
    assert_eq!((minor(&conv_t), minor(&conv_t_f32)), (5, 3));
    let (sub, sub_f32) = sub_models(&[4], &[4], &[4], [Layout::RowMajor; 3], [q; 3]);
    assert_eq!((minor(&sub), minor(&sub_f32)), (5, 4));
    // int8 nearest keeps format 1.3.
    let mut nearest = resize.clone();
    let ops = nearest_ops_offset(&nearest);
    // The RESIZE is op 1 (after the QUANTIZE): its mode slot 0 to nearest.
    let at = ops + 128 + 24;
    nearest[at..at + 4].copy_from_slice(&0i32.to_le_bytes());
    fix_section_crc(&mut nearest, 4);
    assert!(Model::from_bytes(AlignedBytes::from_slice(&nearest).as_slice()).is_ok(), "a 1.5 file may hold 1.3 ops");
    for (bytes, name) in [(resize, "Resize"), (conv_t, "ConvTranspose"), (sub, "Binary")] {
        let mut old = bytes.clone();
        old[10..12].copy_from_slice(&4u16.to_le_bytes());
        fix_checksums(&mut old);
        let aligned = AlignedBytes::from_slice(&old);
        let err = Model::from_bytes(aligned.as_slice()).expect_err("refused").to_string();
        assert!(err.contains(name) && err.contains("needs format 1.5"), "{name}: {err}");
        assert!(Model::from_bytes(AlignedBytes::from_slice(&bytes).as_slice()).is_ok());
    }
}

/// File offset of section `kind`'s bytes (from the section table).
fn section(b: &[u8], kind: u32) -> (usize, usize, usize) {
    let count = u32::from_le_bytes(b[16..20].try_into().unwrap()) as usize;
    (0..count)
        .map(|i| 64 + 32 * i)
        .find(|&e| u32::from_le_bytes(b[e..e + 4].try_into().unwrap()) == kind)
        .map(|e| {
            let offset = u64::from_le_bytes(b[e + 8..e + 16].try_into().unwrap()) as usize;
            let size = u64::from_le_bytes(b[e + 16..e + 24].try_into().unwrap()) as usize;
            (e, offset, size)
        })
        .expect("section")
}

fn nearest_ops_offset(b: &[u8]) -> usize {
    section(b, 4).1
}

/// Recompute section `kind`'s CRC, then the table's and the header's.
fn fix_section_crc(b: &mut [u8], kind: u32) {
    let (entry, offset, size) = section(b, kind);
    let crc = crc32(&b[offset..offset + size]);
    b[entry + 24..entry + 28].copy_from_slice(&crc.to_le_bytes());
    let count = u32::from_le_bytes(b[16..20].try_into().unwrap()) as usize;
    let table = crc32(&b[64..64 + 32 * count]);
    b[20..24].copy_from_slice(&table.to_le_bytes());
    fix_checksums(b);
}

/// Recompute the header CRC after editing the header (the section table is untouched).
fn fix_checksums(b: &mut [u8]) {
    let crc = crc32(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
