//! Generated test models covering every supported operator, with random weights.
#![allow(dead_code)]

use sparq_compiler::onnx_builder::{Attr, OnnxBuilder, Rng};

pub struct TestModel {
    pub name: &'static str,
    pub onnx: Vec<u8>,
    pub input_shape: Vec<usize>,
}

#[allow(clippy::too_many_arguments)]
fn conv(
    b: &mut OnnxBuilder,
    rng: &mut Rng,
    x: &str,
    cin: usize,
    cout: usize,
    k: usize,
    attrs: Vec<(&str, Attr)>,
    group: usize,
) -> String {
    let fan_in = (cin / group * k * k) as f32;
    let w = b.constant(&[cout, cin / group, k, k], rng.vec(cout * cin / group * k * k, (2.0 / fan_in).sqrt()));
    let bias = b.constant(&[cout], rng.vec(cout, 0.1));
    let mut a = attrs;
    a.push(("group", Attr::Int(group as i64)));
    a.push(("kernel_shape", Attr::Ints(vec![k as i64, k as i64])));
    b.node("Conv", &[x, &w, &bias], a)
}

fn bn(b: &mut OnnxBuilder, rng: &mut Rng, x: &str, c: usize) -> String {
    let scale = b.constant(&[c], (0..c).map(|_| rng.uniform(0.5, 1.5)).collect());
    let shift = b.constant(&[c], rng.vec(c, 0.2));
    let mean = b.constant(&[c], rng.vec(c, 0.2));
    let var = b.constant(&[c], (0..c).map(|_| rng.uniform(0.5, 2.0)).collect());
    b.node("BatchNormalization", &[x, &scale, &shift, &mean, &var], vec![("epsilon", Attr::Float(1e-5))])
}

fn clip(b: &mut OnnxBuilder, x: &str, lo: f32, hi: f32) -> String {
    let l = b.constant(&[], vec![lo]);
    let h = b.constant(&[], vec![hi]);
    b.node("Clip", &[x, &l, &h], vec![])
}

fn gemm(b: &mut OnnxBuilder, rng: &mut Rng, x: &str, k: usize, n: usize, trans_b: bool) -> String {
    let w = if trans_b {
        b.constant(&[n, k], rng.vec(n * k, (1.0 / k as f32).sqrt()))
    } else {
        b.constant(&[k, n], rng.vec(n * k, (1.0 / k as f32).sqrt()))
    };
    let c = b.constant(&[n], rng.vec(n, 0.1));
    b.node(
        "Gemm",
        &[x, &w, &c],
        vec![("transB", Attr::Int(trans_b as i64)), ("alpha", Attr::Float(1.0)), ("beta", Attr::Float(1.0))],
    )
}

fn pads(p: [i64; 4]) -> (&'static str, Attr) {
    ("pads", Attr::Ints(p.to_vec()))
}
fn strides(s: i64) -> (&'static str, Attr) {
    ("strides", Attr::Ints(vec![s, s]))
}

/// Conv (asymmetric pads, stride 2), ReLU, MaxPool, Conv 5x5 grouped, Clip, AveragePool (both
/// padding conventions), Flatten, Gemm, Softmax.
pub fn plain_cnn() -> TestModel {
    let mut rng = Rng::new(1);
    let mut b = OnnxBuilder::new("plain_cnn", 13);
    let x = b.input("input", &[1, 3, 20, 20]);
    let h = conv(&mut b, &mut rng, &x, 3, 8, 3, vec![pads([1, 0, 1, 2]), strides(1)], 1);
    let h = b.node("Relu", &[&h], vec![]);
    let h = b.node("MaxPool", &[&h], vec![("kernel_shape", Attr::Ints(vec![3, 3])), strides(2), pads([1, 1, 1, 1])]);
    let h = conv(&mut b, &mut rng, &h, 8, 12, 5, vec![pads([2, 2, 2, 2]), strides(2)], 2);
    let h = clip(&mut b, &h, -1.0, 3.0);
    let h = b.node(
        "AveragePool",
        &[&h],
        vec![
            ("kernel_shape", Attr::Ints(vec![2, 2])),
            strides(1),
            pads([0, 0, 1, 1]),
            ("count_include_pad", Attr::Int(1)),
        ],
    );
    let h =
        b.node("AveragePool", &[&h], vec![("kernel_shape", Attr::Ints(vec![3, 3])), strides(1), pads([1, 1, 1, 1])]);
    let h = b.node("Flatten", &[&h], vec![("axis", Attr::Int(1))]);
    let h = gemm(&mut b, &mut rng, &h, 12 * 5 * 5, 10, true);
    let y = b.node("Softmax", &[&h], vec![("axis", Attr::Int(1))]);
    b.output(&y);
    TestModel { name: "plain_cnn", onnx: b.build(), input_shape: vec![1, 3, 20, 20] }
}

/// MobileNet-style block: Conv-BN-ReLU6, depthwise 3x3 stride 2 - BN - ReLU, pointwise, a
/// standalone BatchNormalization, GlobalAveragePool, Flatten, Gemm (transB = 0).
pub fn depthwise_separable() -> TestModel {
    let mut rng = Rng::new(2);
    let mut b = OnnxBuilder::new("depthwise_separable", 13);
    let x = b.input("input", &[1, 4, 16, 16]);
    let h = conv(&mut b, &mut rng, &x, 4, 16, 3, vec![pads([1, 1, 1, 1])], 1);
    let h = bn(&mut b, &mut rng, &h, 16);
    let h = clip(&mut b, &h, 0.0, 6.0);
    let h = conv(&mut b, &mut rng, &h, 16, 16, 3, vec![pads([1, 1, 1, 1]), strides(2)], 16);
    let h = bn(&mut b, &mut rng, &h, 16);
    let h = b.node("Relu", &[&h], vec![]);
    let h = conv(&mut b, &mut rng, &h, 16, 24, 1, vec![], 1);
    let h = b.node("Relu", &[&h], vec![]);
    let h = bn(&mut b, &mut rng, &h, 24);
    let h = b.node("GlobalAveragePool", &[&h], vec![]);
    let h = b.node("Flatten", &[&h], vec![]);
    let y = gemm(&mut b, &mut rng, &h, 24, 7, false);
    b.output(&y);
    TestModel { name: "depthwise_separable", onnx: b.build(), input_shape: vec![1, 4, 16, 16] }
}

/// Residual block: Conv-ReLU-Conv, Add with the block input, ReLU, Mul by a per-channel
/// constant, Sub/Div by constants, GlobalAveragePool, Reshape, MatMul.
pub fn residual() -> TestModel {
    let mut rng = Rng::new(3);
    let mut b = OnnxBuilder::new("residual", 13);
    let x = b.input("input", &[1, 8, 12, 12]);
    let h = conv(&mut b, &mut rng, &x, 8, 8, 3, vec![pads([1, 1, 1, 1])], 1);
    let h = b.node("Relu", &[&h], vec![]);
    let h = conv(&mut b, &mut rng, &h, 8, 8, 3, vec![pads([2, 2, 2, 2]), ("dilations", Attr::Ints(vec![2, 2]))], 1);
    let h = b.node("Add", &[&h, &x], vec![]);
    let h = b.node("Relu", &[&h], vec![]);
    let s = b.constant(&[1, 8, 1, 1], (0..8).map(|_| rng.uniform(0.5, 2.0)).collect());
    let h = b.node("Mul", &[&h, &s], vec![]);
    let m = b.constant(&[1], vec![0.25]);
    let h = b.node("Sub", &[&h, &m], vec![]);
    let d = b.constant(&[1], vec![2.0]);
    let h = b.node("Div", &[&h, &d], vec![]);
    let h = b.node("GlobalAveragePool", &[&h], vec![]);
    let shape = b.constant_i64(vec![1, -1]);
    let h = b.node("Reshape", &[&h, &shape], vec![]);
    let w = b.constant(&[8, 5], rng.vec(40, 0.5));
    let y = b.node("MatMul", &[&h, &w], vec![]);
    b.output(&y);
    TestModel { name: "residual", onnx: b.build(), input_shape: vec![1, 8, 12, 12] }
}

/// Two branches concatenated on channels, a second concat on height, Add of two activations,
/// Flatten of a spatial tensor (NHWC -> row-major), Gemm.
pub fn concat() -> TestModel {
    let mut rng = Rng::new(4);
    let mut b = OnnxBuilder::new("concat", 13);
    let x = b.input("input", &[1, 3, 10, 10]);
    let a = conv(&mut b, &mut rng, &x, 3, 6, 3, vec![pads([1, 1, 1, 1])], 1);
    let a = b.node("Relu", &[&a], vec![]);
    let c = conv(&mut b, &mut rng, &x, 3, 4, 1, vec![], 1);
    let h = b.node("Concat", &[&a, &c], vec![("axis", Attr::Int(1))]);
    let h2 = conv(&mut b, &mut rng, &h, 10, 10, 1, vec![], 1);
    let h = b.node("Add", &[&h, &h2], vec![]);
    let t = conv(&mut b, &mut rng, &h, 10, 10, 3, vec![pads([1, 1, 1, 1]), strides(2)], 1);
    let h = b.node("Concat", &[&t, &t], vec![("axis", Attr::Int(2))]);
    let h = b.node("Flatten", &[&h], vec![]);
    let y = gemm(&mut b, &mut rng, &h, 10 * 10 * 5, 6, true);
    b.output(&y);
    TestModel { name: "concat", onnx: b.build(), input_shape: vec![1, 3, 10, 10] }
}

/// Multi-layer perceptron: MatMul + Add bias, ReLU, Gemm, ReLU, Gemm, Softmax.
pub fn mlp() -> TestModel {
    let mut rng = Rng::new(5);
    let mut b = OnnxBuilder::new("mlp", 13);
    let x = b.input("input", &[1, 64]);
    let w = b.constant(&[64, 32], rng.vec(64 * 32, 0.2));
    let h = b.node("MatMul", &[&x, &w], vec![]);
    let bias = b.constant(&[32], rng.vec(32, 0.1));
    let h = b.node("Add", &[&h, &bias], vec![]);
    let h = b.node("Relu", &[&h], vec![]);
    let h = gemm(&mut b, &mut rng, &h, 32, 16, false);
    let h = b.node("Relu", &[&h], vec![]);
    let h = gemm(&mut b, &mut rng, &h, 16, 10, true);
    let y = b.node("Softmax", &[&h], vec![]);
    b.output(&y);
    TestModel { name: "mlp", onnx: b.build(), input_shape: vec![1, 64] }
}

/// A MobileNetV3 / transformer mix of activations: HardSwish, a squeeze-excitation with
/// HardSigmoid and a broadcast Mul, SiLU as `x * Sigmoid(x)`, GELU as exported before opset 20
/// (`x * (1 + Erf(x / sqrt 2)) * 0.5`), Tanh, LeakyRelu.
pub fn activations() -> TestModel {
    let mut rng = Rng::new(6);
    let mut b = OnnxBuilder::new("activations", 13);
    let x = b.input("input", &[1, 4, 12, 12]);
    let h = conv(&mut b, &mut rng, &x, 4, 16, 3, vec![pads([1, 1, 1, 1])], 1);
    let h = b.node("HardSwish", &[&h], vec![]);
    let h = conv(&mut b, &mut rng, &h, 16, 16, 3, vec![pads([1, 1, 1, 1])], 16);
    let s = b.node("GlobalAveragePool", &[&h], vec![]);
    let s = conv(&mut b, &mut rng, &s, 16, 8, 1, vec![], 1);
    let s = b.node("Relu", &[&s], vec![]);
    let s = conv(&mut b, &mut rng, &s, 8, 16, 1, vec![], 1);
    let s = b.node("HardSigmoid", &[&s], vec![("alpha", Attr::Float(1.0 / 6.0)), ("beta", Attr::Float(0.5))]);
    let h = b.node("Mul", &[&h, &s], vec![]);
    let h = conv(&mut b, &mut rng, &h, 16, 16, 1, vec![], 1);
    let sg = b.node("Sigmoid", &[&h], vec![]);
    let h = b.node("Mul", &[&h, &sg], vec![]);
    let h = conv(&mut b, &mut rng, &h, 16, 12, 1, vec![], 1);
    let sqrt2 = b.constant(&[], vec![std::f32::consts::SQRT_2]);
    let d = b.node("Div", &[&h, &sqrt2], vec![]);
    let e = b.node("Erf", &[&d], vec![]);
    let one = b.constant(&[], vec![1.0]);
    let a = b.node("Add", &[&e, &one], vec![]);
    let m = b.node("Mul", &[&h, &a], vec![]);
    let half = b.constant(&[], vec![0.5]);
    let h = b.node("Mul", &[&m, &half], vec![]);
    let h = conv(&mut b, &mut rng, &h, 12, 12, 3, vec![pads([1, 1, 1, 1]), strides(2)], 1);
    let h = b.node("Tanh", &[&h], vec![]);
    let h = conv(&mut b, &mut rng, &h, 12, 12, 1, vec![], 1);
    let h = b.node("LeakyRelu", &[&h], vec![("alpha", Attr::Float(0.1))]);
    let h = b.node("GlobalAveragePool", &[&h], vec![]);
    let h = b.node("Flatten", &[&h], vec![]);
    let y = gemm(&mut b, &mut rng, &h, 12, 6, false);
    b.output(&y);
    TestModel { name: "activations", onnx: b.build(), input_shape: vec![1, 4, 12, 12] }
}

/// ShuffleNet's channel shuffle (Reshape to rank 5, Transpose, Reshape back), Split into two
/// branches (one convolved, both concatenated), Slice with a step of 2 and a reversing step of -1,
/// MaxPool and AveragePool with ceil_mode (a partial last window), a Transpose to NHWC order.
pub fn shuffle() -> TestModel {
    let mut rng = Rng::new(7);
    let mut b = OnnxBuilder::new("shuffle", 13);
    let x = b.input("input", &[1, 3, 13, 13]);
    let h = conv(&mut b, &mut rng, &x, 3, 8, 3, vec![pads([1, 1, 1, 1])], 1);
    let h = b.node("Relu", &[&h], vec![]);
    let s5 = b.constant_i64(vec![1, 2, 4, 13, 13]);
    let h = b.node("Reshape", &[&h, &s5], vec![]);
    let h = b.node("Transpose", &[&h], vec![("perm", Attr::Ints(vec![0, 2, 1, 3, 4]))]);
    let s4 = b.constant_i64(vec![1, 8, 13, 13]);
    let h = b.node("Reshape", &[&h, &s4], vec![]);
    let sizes = b.constant_i64(vec![3, 5]);
    let (l, r) = b.node2("Split", &[&h, &sizes], vec![("axis", Attr::Int(1))]);
    let r = conv(&mut b, &mut rng, &r, 5, 5, 1, vec![], 1);
    let h = b.node("Concat", &[&r, &l], vec![("axis", Attr::Int(1))]);
    let starts = b.constant_i64(vec![1, -1]);
    let ends = b.constant_i64(vec![13, -100]);
    let axes = b.constant_i64(vec![2, 3]);
    let steps = b.constant_i64(vec![2, -1]);
    let h = b.node("Slice", &[&h, &starts, &ends, &axes, &steps], vec![]);
    let k3 = ("kernel_shape", Attr::Ints(vec![3, 3]));
    let h = b.node("MaxPool", &[&h], vec![k3, strides(2), ("ceil_mode", Attr::Int(1))]);
    let h = b.node(
        "AveragePool",
        &[&h],
        vec![("kernel_shape", Attr::Ints(vec![2, 2])), strides(2), ("ceil_mode", Attr::Int(1))],
    );
    let h = b.node("Transpose", &[&h], vec![("perm", Attr::Ints(vec![0, 2, 3, 1]))]);
    let h = b.node("Flatten", &[&h], vec![]);
    let y = gemm(&mut b, &mut rng, &h, 8 * 2 * 3, 5, true);
    b.output(&y);
    TestModel { name: "shuffle", onnx: b.build(), input_shape: vec![1, 3, 13, 13] }
}

/// A segmentation-style head: Resize nearest x2 (scales), bilinear to fixed sizes with
/// align_corners, bilinear half_pixel down by 0.5, nearest asymmetric with floor rounding.
pub fn upsample() -> TestModel {
    let mut rng = Rng::new(8);
    let mut b = OnnxBuilder::new("upsample", 13);
    let x = b.input("input", &[1, 3, 7, 9]);
    let h = conv(&mut b, &mut rng, &x, 3, 6, 3, vec![pads([1, 1, 1, 1])], 1);
    let h = b.node("Relu", &[&h], vec![]);
    // Pads: reflect (asymmetric), edge, a constant 0.25 (7x9 -> 10x12 -> conv 8x10 -> 10x12).
    let p = b.constant_i64(vec![0, 0, 1, 2, 0, 0, 2, 1]);
    let h = b.node("Pad", &[&h, &p], vec![("mode", Attr::Str("reflect"))]);
    let h = conv(&mut b, &mut rng, &h, 6, 6, 3, vec![], 1);
    let p = b.constant_i64(vec![0, 0, 0, 1, 0, 0, 1, 0]);
    let h = b.node("Pad", &[&h, &p], vec![("mode", Attr::Str("edge"))]);
    let p = b.constant_i64(vec![0, 0, 1, 0, 0, 0, 0, 1]);
    let v = b.constant(&[], vec![0.25]);
    let h = b.node("Pad", &[&h, &p, &v], vec![]);
    let roi = b.constant(&[0], vec![]);
    let up = b.constant(&[4], vec![1.0, 1.0, 2.0, 2.0]);
    let h = b.node("Resize", &[&h, &roi, &up], vec![("mode", Attr::Str("nearest"))]);
    let h = conv(&mut b, &mut rng, &h, 6, 6, 3, vec![pads([1, 1, 1, 1])], 1);
    let no_scales = b.constant(&[0], vec![]);
    let sizes = b.constant_i64(vec![1, 6, 11, 13]);
    let h = b.node(
        "Resize",
        &[&h, &roi, &no_scales, &sizes],
        vec![("mode", Attr::Str("linear")), ("coordinate_transformation_mode", Attr::Str("align_corners"))],
    );
    let h = b.node("Relu", &[&h], vec![]);
    let down = b.constant(&[4], vec![1.0, 1.0, 0.5, 0.5]);
    let h = b.node("Resize", &[&h, &roi, &down], vec![("mode", Attr::Str("linear"))]);
    let up3 = b.constant(&[4], vec![1.0, 1.0, 1.5, 1.5]);
    let h = b.node(
        "Resize",
        &[&h, &roi, &up3],
        vec![
            ("mode", Attr::Str("nearest")),
            ("coordinate_transformation_mode", Attr::Str("asymmetric")),
            ("nearest_mode", Attr::Str("floor")),
        ],
    );
    // Transposed convolutions (DBNet's upsampling head): stride 2 with pads and an output
    // padding, then a grouped one with a dilation.
    let wt = b.constant(&[6, 4, 3, 3], rng.vec(6 * 4 * 9, 0.3));
    let bt = b.constant(&[4], rng.vec(4, 0.1));
    let h = b.node(
        "ConvTranspose",
        &[&h, &wt, &bt],
        vec![strides(2), pads([1, 1, 1, 1]), ("output_padding", Attr::Ints(vec![1, 0]))],
    );
    let h = b.node("Relu", &[&h], vec![]);
    let wg = b.constant(&[4, 3, 2, 2], rng.vec(4 * 3 * 4, 0.3));
    let h = b.node(
        "ConvTranspose",
        &[&h, &wg],
        vec![("group", Attr::Int(2)), ("dilations", Attr::Ints(vec![2, 1])), strides(1)],
    );
    let h = b.node("GlobalAveragePool", &[&h], vec![]);
    let h = b.node("Flatten", &[&h], vec![]);
    let y = gemm(&mut b, &mut rng, &h, 6, 4, true);
    b.output(&y);
    TestModel { name: "upsample", onnx: b.build(), input_shape: vec![1, 3, 7, 9] }
}

/// A decoder head with the int8 forms of format 1.5: a stride-2 ConvTranspose (pads, output
/// padding) and a grouped one, bilinear Resizes (half_pixel up, align_corners to fixed sizes,
/// pytorch_half_pixel), and a Sub of two computed branches (a difference of features, as
/// DBNet's and LR-ASPP's heads combine branches).
pub fn decoder_head() -> TestModel {
    let mut rng = Rng::new(15);
    let mut b = OnnxBuilder::new("decoder_head", 13);
    let x = b.input("input", &[1, 3, 8, 10]);
    let h = conv(&mut b, &mut rng, &x, 3, 8, 3, vec![pads([1, 1, 1, 1]), strides(2)], 1);
    let h = b.node("Relu", &[&h], vec![]);
    // Branch 1: ConvTranspose x2 (4x5 -> 8x10), then a grouped one with kernel 3 and pads (same size).
    let wt = b.constant(&[8, 6, 3, 3], rng.vec(8 * 6 * 9, 0.25));
    let bt = b.constant(&[6], rng.vec(6, 0.1));
    let up = b.node(
        "ConvTranspose",
        &[&h, &wt, &bt],
        vec![strides(2), pads([1, 1, 1, 1]), ("output_padding", Attr::Ints(vec![1, 1]))],
    );
    let wg = b.constant(&[6, 2, 3, 3], rng.vec(6 * 2 * 9, 0.3));
    let up = b.node("ConvTranspose", &[&up, &wg], vec![("group", Attr::Int(3)), pads([1, 1, 1, 1]), strides(1)]);
    // Branch 2: bilinear x2 of another 1x1 projection (half_pixel, 4x5 -> 8x10).
    let p = conv(&mut b, &mut rng, &h, 8, 6, 1, vec![], 1);
    let roi = b.constant(&[0], vec![]);
    let two = b.constant(&[4], vec![1.0, 1.0, 2.0, 2.0]);
    let p = b.node("Resize", &[&p, &roi, &two], vec![("mode", Attr::Str("linear"))]);
    // Their difference, then bilinear to fixed sizes (align_corners), back down
    // (pytorch_half_pixel), a 1x1 head.
    let d = b.node("Sub", &[&up, &p], vec![]);
    let no_scales = b.constant(&[0], vec![]);
    let sizes = b.constant_i64(vec![1, 6, 13, 15]);
    let d = b.node(
        "Resize",
        &[&d, &roi, &no_scales, &sizes],
        vec![("mode", Attr::Str("linear")), ("coordinate_transformation_mode", Attr::Str("align_corners"))],
    );
    let sizes = b.constant_i64(vec![1, 6, 6, 7]);
    let d = b.node(
        "Resize",
        &[&d, &roi, &no_scales, &sizes],
        vec![("mode", Attr::Str("linear")), ("coordinate_transformation_mode", Attr::Str("pytorch_half_pixel"))],
    );
    let y = conv(&mut b, &mut rng, &d, 6, 2, 1, vec![], 1);
    b.output(&y);
    TestModel { name: "decoder_head", onnx: b.build(), input_shape: vec![1, 3, 8, 10] }
}

/// A small transformer encoder block over 8 tokens of 16 features (a ViT's core): layer
/// normalizations, attention with matrix products of two activations (two heads, Transpose,
/// Reshape, Softmax), a GELU MLP (the Erf pattern), a residual, Min/Max, Gather of the first
/// token, reductions over the tokens and a Gemm head with transB.
pub fn attention() -> TestModel {
    let mut rng = Rng::new(9);
    let (t, d, hd) = (8usize, 16usize, 8usize);
    let mut b = OnnxBuilder::new("attention", 17);
    let x = b.input("input", &[1, t, d]);
    let ln = |b: &mut OnnxBuilder, rng: &mut Rng, x: &str| {
        let g = b.constant(&[d], (0..d).map(|_| rng.uniform(0.5, 1.5)).collect());
        let be = b.constant(&[d], rng.vec(d, 0.1));
        b.node("LayerNormalization", &[x, &g, &be], vec![("axis", Attr::Int(-1)), ("epsilon", Attr::Float(1e-5))])
    };
    let h = ln(&mut b, &mut rng, &x);
    let proj = |b: &mut OnnxBuilder, rng: &mut Rng, x: &str, k: usize, n: usize| {
        let w = b.constant(&[k, n], rng.vec(k * n, (1.0 / k as f32).sqrt()));
        b.node("MatMul", &[x, &w], vec![])
    };
    let heads = b.constant_i64(vec![1, t as i64, 2, hd as i64]);
    let q = proj(&mut b, &mut rng, &h, d, d);
    let q = b.node("Reshape", &[&q, &heads], vec![]);
    let q = b.node("Transpose", &[&q], vec![("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
    let k = proj(&mut b, &mut rng, &h, d, d);
    let k = b.node("Reshape", &[&k, &heads], vec![]);
    let k = b.node("Transpose", &[&k], vec![("perm", Attr::Ints(vec![0, 2, 3, 1]))]);
    let v = proj(&mut b, &mut rng, &h, d, d);
    let v = b.node("Reshape", &[&v, &heads], vec![]);
    let v = b.node("Transpose", &[&v], vec![("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
    let scores = b.node("MatMul", &[&q, &k], vec![]);
    let sq = b.constant(&[], vec![(hd as f32).sqrt()]);
    let scores = b.node("Div", &[&scores, &sq], vec![]);
    let attn = b.node("Softmax", &[&scores], vec![("axis", Attr::Int(-1))]);
    let ctx = b.node("MatMul", &[&attn, &v], vec![]);
    let ctx = b.node("Transpose", &[&ctx], vec![("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
    let back = b.constant_i64(vec![1, t as i64, d as i64]);
    let ctx = b.node("Reshape", &[&ctx, &back], vec![]);
    let o = proj(&mut b, &mut rng, &ctx, d, d);
    let r = b.node("Add", &[&x, &o], vec![]);
    // MLP with the GELU of torch's export: x * 0.5 * (1 + erf(x / sqrt 2)).
    let h = ln(&mut b, &mut rng, &r);
    let h = proj(&mut b, &mut rng, &h, d, 2 * d);
    let s2 = b.constant(&[], vec![std::f32::consts::SQRT_2]);
    let e = b.node("Div", &[&h, &s2], vec![]);
    let e = b.node("Erf", &[&e], vec![]);
    let one = b.constant(&[], vec![1.0]);
    let e = b.node("Add", &[&e, &one], vec![]);
    let e = b.node("Mul", &[&h, &e], vec![]);
    let half = b.constant(&[], vec![0.5]);
    let h = b.node("Mul", &[&e, &half], vec![]);
    let h = proj(&mut b, &mut rng, &h, 2 * d, d);
    let r = b.node("Add", &[&r, &h], vec![]);
    let lo = b.constant(&[], vec![-2.5]);
    let r = b.node("Max", &[&r, &lo], vec![]);
    // Pooling over the tokens three ways: the first token, the mean, the maximum; their
    // difference with a computed operand (Sub of two activations).
    let first = b.constant_i64(vec![0]);
    let cls = b.node("Gather", &[&r, &first], vec![("axis", Attr::Int(1))]);
    let cls = b.node("Flatten", &[&cls], vec![("axis", Attr::Int(1))]);
    let mean = b.node("ReduceMean", &[&r], vec![("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(0))]);
    let max = b.node("ReduceMax", &[&r], vec![("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(0))]);
    let spread = b.node("Sub", &[&max, &mean], vec![]);
    let pooled = b.node("Concat", &[&cls, &mean, &spread], vec![("axis", Attr::Int(1))]);
    let w = b.constant(&[10, 3 * d], rng.vec(10 * 3 * d, (1.0 / (3 * d) as f32).sqrt()));
    let bias = b.constant(&[10], rng.vec(10, 0.1));
    let y = b.node("Gemm", &[&pooled, &w, &bias], vec![("transB", Attr::Int(1))]);
    b.output(&y);
    TestModel { name: "attention", onnx: b.build(), input_shape: vec![1, t, d] }
}

/// A keyword-spotting / text-recognizer style network: 1-d convolutional features read as a
/// sequence (Transpose), a bidirectional LSTM, a GRU (linear_before_reset, as torch
/// exports it) whose last hidden state feeds a Gemm classifier.
pub fn recurrent() -> TestModel {
    let mut rng = Rng::new(10);
    let mut b = OnnxBuilder::new("recurrent", 13);
    // Audio-style 1-d front end: [N, C, L] convolutions and pooling (rank-3 inputs).
    let x = b.input("input", &[1, 6, 20]);
    let w = b.constant(&[24, 6, 3], rng.vec(24 * 6 * 3, 0.3));
    let bias = b.constant(&[24], rng.vec(24, 0.1));
    let h =
        b.node("Conv", &[&x, &w, &bias], vec![("kernel_shape", Attr::Ints(vec![3])), ("pads", Attr::Ints(vec![1, 1]))]);
    let h = b.node("Relu", &[&h], vec![]);
    let w = b.constant(&[48, 24, 3], rng.vec(48 * 24 * 3, 0.2));
    let bias = b.constant(&[48], rng.vec(48, 0.1));
    let h = b.node(
        "Conv",
        &[&h, &w, &bias],
        vec![
            ("kernel_shape", Attr::Ints(vec![3])),
            ("pads", Attr::Ints(vec![1, 1])),
            ("dilations", Attr::Ints(vec![1])),
        ],
    );
    let h = b.node("MaxPool", &[&h], vec![("kernel_shape", Attr::Ints(vec![2])), ("strides", Attr::Ints(vec![2]))]);
    let seq = b.node("Transpose", &[&h], vec![("perm", Attr::Ints(vec![2, 0, 1]))]);
    let (hl, hg) = (12usize, 16usize);
    let w = b.constant(&[2, 4 * hl, 48], rng.vec(2 * 4 * hl * 48, 0.15));
    let r = b.constant(&[2, 4 * hl, hl], rng.vec(2 * 4 * hl * hl, 0.3));
    let bias = b.constant(&[2, 8 * hl], rng.vec(2 * 8 * hl, 0.1));
    let y = b.node(
        "LSTM",
        &[&seq, &w, &r, &bias],
        vec![("direction", Attr::Str("bidirectional")), ("hidden_size", Attr::Int(hl as i64))],
    );
    let y = b.node("Transpose", &[&y], vec![("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
    let s = b.constant_i64(vec![10, 1, 2 * hl as i64]);
    let y = b.node("Reshape", &[&y, &s], vec![]);
    let w = b.constant(&[1, 3 * hg, 2 * hl], rng.vec(3 * hg * 2 * hl, 0.2));
    let r = b.constant(&[1, 3 * hg, hg], rng.vec(3 * hg * hg, 0.25));
    let bias = b.constant(&[1, 6 * hg], rng.vec(6 * hg, 0.1));
    let (_, yh) = b.node2(
        "GRU",
        &[&y, &w, &r, &bias],
        vec![("hidden_size", Attr::Int(hg as i64)), ("linear_before_reset", Attr::Int(1))],
    );
    let s = b.constant_i64(vec![1, hg as i64]);
    let f = b.node("Reshape", &[&yh, &s], vec![]);
    let w = b.constant(&[5, hg], rng.vec(5 * hg, 0.4));
    let bias = b.constant(&[5], rng.vec(5, 0.1));
    let out = b.node("Gemm", &[&f, &w, &bias], vec![("transB", Attr::Int(1))]);
    b.output(&out);
    TestModel { name: "recurrent", onnx: b.build(), input_shape: vec![1, 6, 20] }
}

/// A streaming keyword spotter with two inputs and two outputs: audio features `[1, 6, 16]`
/// through a 1-d convolution into a batch-first GRU (ONNX `layout=1`) whose initial state is the
/// second input `state` `[1, 1, 12]`; outputs the class scores and the new state.
pub fn stateful() -> TestModel {
    let mut rng = Rng::new(12);
    let mut b = OnnxBuilder::new("stateful", 14);
    let x = b.input("features", &[1, 6, 16]);
    let state = b.input("state", &[1, 1, 12]);
    let w = b.constant(&[16, 6, 3], rng.vec(16 * 6 * 3, 0.3));
    let bias = b.constant(&[16], rng.vec(16, 0.1));
    let h =
        b.node("Conv", &[&x, &w, &bias], vec![("kernel_shape", Attr::Ints(vec![3])), ("pads", Attr::Ints(vec![1, 1]))]);
    let h = b.node("Relu", &[&h], vec![]);
    // [1, 16 channels, 16 steps] -> batch first [1, 16 steps, 16 channels].
    let seq = b.node("Transpose", &[&h], vec![("perm", Attr::Ints(vec![0, 2, 1]))]);
    let hg = 12usize;
    let w = b.constant(&[1, 3 * hg, 16], rng.vec(3 * hg * 16, 0.2));
    let r = b.constant(&[1, 3 * hg, hg], rng.vec(3 * hg * hg, 0.25));
    let bias = b.constant(&[1, 6 * hg], rng.vec(6 * hg, 0.1));
    let (_, yh) = b.node2(
        "GRU",
        &[&seq, &w, &r, &bias, "", &state],
        vec![("hidden_size", Attr::Int(hg as i64)), ("layout", Attr::Int(1))],
    );
    let s = b.constant_i64(vec![1, hg as i64]);
    let f = b.node("Reshape", &[&yh, &s], vec![]);
    let w = b.constant(&[5, hg], rng.vec(5 * hg, 0.4));
    let bias = b.constant(&[5], rng.vec(5, 0.1));
    let out = b.node("Gemm", &[&f, &w, &bias], vec![("transB", Attr::Int(1))]);
    b.output(&out);
    b.output(&yh);
    TestModel { name: "stateful", onnx: b.build(), input_shape: vec![1, 6, 16] }
}

pub fn all_models() -> Vec<TestModel> {
    vec![
        plain_cnn(),
        depthwise_separable(),
        residual(),
        concat(),
        mlp(),
        activations(),
        shuffle(),
        upsample(),
        attention(),
        recurrent(),
    ]
}

/// Random model inputs, roughly N(0, 1).
pub fn samples(shape: &[usize], n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let len: usize = shape.iter().product();
    (0..n).map(|_| rng.vec(len, 1.0)).collect()
}

/// An inverted-residual chain for channel pruning: Conv(4 -> 64) - BN - ReLU6 - depthwise 3x3
/// (no padding) - BN - ReLU - Conv(64 -> 8) - GlobalAveragePool - Gemm. The first `dead`
/// channels of the expansion have zero filters and biases: after the BatchNormalization shift
/// they are constants, so removing them (with the consumer's bias absorbing their mean) must not
/// change the outputs.
pub fn expansion_chain(dead: usize) -> TestModel {
    let mut rng = Rng::new(9);
    let mut b = OnnxBuilder::new("expansion_chain", 13);
    let x = b.input("input", &[1, 4, 10, 10]);
    let (c, k) = (64usize, 3usize);
    let mut w = rng.vec(c * 4 * k * k, (2.0 / 36.0f32).sqrt());
    let mut bias = rng.vec(c, 0.1);
    for ch in 0..dead {
        w[ch * 36..(ch + 1) * 36].iter_mut().for_each(|v| *v = 0.0);
        bias[ch] = 0.0;
    }
    let (w, bias) = (b.constant(&[c, 4, k, k], w), b.constant(&[c], bias));
    let h = b.node(
        "Conv",
        &[&x, &w, &bias],
        vec![pads([1, 1, 1, 1]), ("group", Attr::Int(1)), ("kernel_shape", Attr::Ints(vec![3, 3]))],
    );
    let h = bn(&mut b, &mut rng, &h, c);
    let h = clip(&mut b, &h, 0.0, 6.0);
    let h = conv(&mut b, &mut rng, &h, c, c, 3, vec![], c);
    let h = bn(&mut b, &mut rng, &h, c);
    let h = b.node("Relu", &[&h], vec![]);
    let h = conv(&mut b, &mut rng, &h, c, 8, 1, vec![], 1);
    let h = b.node("GlobalAveragePool", &[&h], vec![]);
    let h = b.node("Flatten", &[&h], vec![]);
    let y = gemm(&mut b, &mut rng, &h, 8, 5, true);
    b.output(&y);
    TestModel { name: "expansion_chain", onnx: b.build(), input_shape: vec![1, 4, 10, 10] }
}

/// A classifier head: conv 3x3 (4 -> 16), ReLU, conv 1x1 (16 -> 64), ReLU6, GlobalAveragePool,
/// Flatten, Gemm (64 -> 10, `[K, N]` weight when `!trans_b`). The first `dead` channels of the
/// 1x1 convolution have zero filters and biases: they are 0 after the ReLU6, so removing them
/// must not change the outputs.
#[allow(dead_code)]
pub fn classifier_head(dead: usize, trans_b: bool) -> TestModel {
    let mut rng = Rng::new(11);
    let mut b = OnnxBuilder::new("classifier_head", 13);
    let x = b.input("input", &[1, 4, 8, 8]);
    let h = conv(&mut b, &mut rng, &x, 4, 16, 3, vec![pads([1, 1, 1, 1])], 1);
    let h = b.node("Relu", &[&h], vec![]);
    let c = 64usize;
    let mut w = rng.vec(c * 16, (2.0 / 16.0f32).sqrt());
    let mut bias = rng.vec(c, 0.1);
    for ch in 0..dead {
        w[ch * 16..(ch + 1) * 16].iter_mut().for_each(|v| *v = 0.0);
        bias[ch] = 0.0;
    }
    let (w, bias) = (b.constant(&[c, 16, 1, 1], w), b.constant(&[c], bias));
    let h = b.node("Conv", &[&h, &w, &bias], vec![("kernel_shape", Attr::Ints(vec![1, 1]))]);
    let h = clip(&mut b, &h, 0.0, 6.0);
    let h = b.node("GlobalAveragePool", &[&h], vec![]);
    let h = b.node("Flatten", &[&h], vec![("axis", Attr::Int(1))]);
    let y = gemm(&mut b, &mut rng, &h, c, 10, trans_b);
    b.output(&y);
    TestModel { name: "classifier_head", onnx: b.build(), input_shape: vec![1, 4, 8, 8] }
}

/// Big enough for the runtime to split its elementwise ops and its classifier across threads (a
/// 3x96x96 input: the input quantization and a 96x96x16 Add pass 16 Ki elements; a 512 -> 600
/// f32-output Gemm passes 256 Ki multiply-accumulates): conv 3x3 (3 -> 16) - ReLU - conv 1x1 -
/// Add - ReLU - GlobalAveragePool - Flatten - Gemm (16 -> 512) - ReLU - Gemm (512 -> 600).
pub fn split_sized() -> TestModel {
    let mut rng = Rng::new(29);
    let mut b = OnnxBuilder::new("split_sized", 13);
    let x = b.input("input", &[1, 3, 96, 96]);
    let h = conv(&mut b, &mut rng, &x, 3, 16, 3, vec![pads([1, 1, 1, 1])], 1);
    let h = b.node("Relu", &[&h], vec![]);
    let r = conv(&mut b, &mut rng, &h, 16, 16, 1, vec![], 1);
    let h = b.node("Add", &[&h, &r], vec![]);
    let h = b.node("Relu", &[&h], vec![]);
    let h = b.node("GlobalAveragePool", &[&h], vec![]);
    let h = b.node("Flatten", &[&h], vec![("axis", Attr::Int(1))]);
    let h = gemm(&mut b, &mut rng, &h, 16, 512, true);
    let h = b.node("Relu", &[&h], vec![]);
    let y = gemm(&mut b, &mut rng, &h, 512, 600, true);
    b.output(&y);
    TestModel { name: "split_sized", onnx: b.build(), input_shape: vec![1, 3, 96, 96] }
}

/// A classifier too wide to re-fit after pruning: 2100 inputs -> 10 (Gemm, `[N, K]` weight).
pub fn wide_classifier() -> TestModel {
    let mut rng = Rng::new(13);
    let mut b = OnnxBuilder::new("wide_classifier", 13);
    let x = b.input("input", &[1, 2100]);
    let y = gemm(&mut b, &mut rng, &x, 2100, 10, true);
    b.output(&y);
    TestModel { name: "wide_classifier", onnx: b.build(), input_shape: vec![1, 2100] }
}

/// A residual group: conv 3x3 (4 -> 32) - ReLU, a block conv 1x1 (32 -> 48) - ReLU - conv 1x1
/// (48 -> 32), Add with the block input, then conv 1x1 (32 -> 16) - ReLU - GlobalAveragePool -
/// Flatten - Gemm (16 -> 5). The first `dead` channels of both convolutions writing the group
/// (the 3x3 and the block's last) have zero filters and biases, so the trunk carries 0 there and
/// removing those channels must not change the outputs.
#[allow(dead_code)]
pub fn residual_group(dead: usize) -> TestModel {
    let mut rng = Rng::new(17);
    let mut b = OnnxBuilder::new("residual_group", 13);
    let x = b.input("input", &[1, 4, 8, 8]);
    let dead_conv = |b: &mut OnnxBuilder, rng: &mut Rng, x: &str, cin: usize, cout: usize, k: usize| {
        let per = cin * k * k;
        let mut w = rng.vec(cout * per, (2.0 / per as f32).sqrt());
        let mut bias = rng.vec(cout, 0.1);
        for ch in 0..dead {
            w[ch * per..(ch + 1) * per].iter_mut().for_each(|v| *v = 0.0);
            bias[ch] = 0.0;
        }
        let (w, bias) = (b.constant(&[cout, cin, k, k], w), b.constant(&[cout], bias));
        let p = (k / 2) as i64;
        b.node(
            "Conv",
            &[x, &w, &bias],
            vec![pads([p, p, p, p]), ("group", Attr::Int(1)), ("kernel_shape", Attr::Ints(vec![k as i64, k as i64]))],
        )
    };
    let h = dead_conv(&mut b, &mut rng, &x, 4, 32, 3);
    let trunk = b.node("Relu", &[&h], vec![]);
    let h = conv(&mut b, &mut rng, &trunk, 32, 48, 1, vec![], 1);
    let h = b.node("Relu", &[&h], vec![]);
    let h = dead_conv(&mut b, &mut rng, &h, 48, 32, 1);
    let h = b.node("Add", &[&trunk, &h], vec![]);
    let h = conv(&mut b, &mut rng, &h, 32, 16, 1, vec![], 1);
    let h = b.node("Relu", &[&h], vec![]);
    let h = b.node("GlobalAveragePool", &[&h], vec![]);
    let h = b.node("Flatten", &[&h], vec![]);
    let y = gemm(&mut b, &mut rng, &h, 16, 5, true);
    b.output(&y);
    TestModel { name: "residual_group", onnx: b.build(), input_shape: vec![1, 4, 8, 8] }
}

/// Recompute every CRC-32 of a `.sparq` file, so that a deliberate change reaches the reader's
/// semantic checks (the fuzzer's own).
#[allow(unused_imports)]
pub use sparq_fuzzgen::fix_checksums;

/// Many near-tied classes (a conv, then 1024 -> 200 -> 500 matrix products), so that plain int8
/// with nearest rounding flips some top-1 decisions and `--min-agreement` has something to win
/// back: int16 reaches 0.99 on 48 samples of seed 13, 0.9999 needs f32 layers on top.
pub fn precision_search_model() -> TestModel {
    let mut rng = Rng::new(12);
    let mut b = OnnxBuilder::new("wide", 13);
    let x = b.input("input", &[1, 3, 8, 8]);
    let w = b.constant(&[16, 3, 3, 3], rng.vec(16 * 27, 0.4));
    let bias = b.constant(&[16], rng.vec(16, 0.1));
    let h = b.node("Conv", &[&x, &w, &bias], vec![("pads", Attr::Ints(vec![1, 1, 1, 1]))]);
    let h = b.node("Relu", &[&h], vec![]);
    let h = b.node("Flatten", &[&h], vec![]);
    let w2 = b.constant(&[1024, 200], rng.vec(1024 * 200, 0.05));
    let h = b.node("MatMul", &[&h, &w2], vec![]);
    let h = b.node("Relu", &[&h], vec![]);
    let w3 = b.constant(&[200, 500], rng.vec(200 * 500, 0.05));
    let y = b.node("MatMul", &[&h, &w3], vec![]);
    b.output(&y);
    TestModel { name: "wide", onnx: b.build(), input_shape: vec![1, 3, 8, 8] }
}
