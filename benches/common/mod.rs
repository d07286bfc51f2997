//! Helpers shared by the kernel benches: deterministic inputs, MobileNetV2-like requantization,
//! geometries and block-sparse weights.
#![allow(dead_code)]

use sparq_runtime::kernels::conv::{ConvGeometry, Requant};
use sparq_runtime::quant::quantize_multiplier;

pub fn bytes(n: usize, seed: u64) -> Vec<i8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 255) as i8
        })
        .collect()
}

pub struct Params {
    pub bias: Vec<i32>,
    pub mult: Vec<i32>,
    pub shift: Vec<i32>,
}

pub fn params(c: usize) -> Params {
    let (m, s) = quantize_multiplier(0.0021);
    Params { bias: vec![100; c], mult: vec![m; c], shift: vec![s; c] }
}

pub fn rq(p: &Params) -> Requant<'_> {
    Requant {
        bias: &p.bias,
        mult: &p.mult,
        shift: &p.shift,
        input_zero_point: -128,
        output_zero_point: -128,
        act_min: -128,
        act_max: 127,
    }
}

pub fn geometry(hw: usize, cin: usize, cout: usize, k: usize, stride: usize, groups: usize) -> ConvGeometry {
    let pad = k / 2;
    let out = (hw + 2 * pad - k) / stride + 1;
    ConvGeometry {
        batch: 1,
        in_h: hw,
        in_w: hw,
        in_c: cin,
        out_h: out,
        out_w: out,
        out_c: cout,
        kernel_h: k,
        kernel_w: k,
        stride_h: stride,
        stride_w: stride,
        pad_top: pad,
        pad_left: pad,
        dilation_h: 1,
        dilation_w: 1,
        groups,
    }
}

/// An `n x k` matrix of deterministic weights, none of them zero (so that a block is zero only
/// where a pattern zeroes it).
fn nonzero_weights(n: usize, k: usize) -> Vec<i8> {
    bytes(n * k, 2).into_iter().map(|v| if v == 0 { 1 } else { v }).collect()
}

/// An `n x k` matrix of non-zero weights with `sparsity`% of its 16x4 blocks zeroed, spread evenly
/// (block-rows keep the same count give or take one, as a threshold over a real layer roughly
/// does).
pub fn block_sparse_weights(n: usize, k: usize, sparsity: u32) -> Vec<i8> {
    let mut w = nonzero_weights(n, k);
    let (kb, nrb) = (k.div_ceil(4), n.div_ceil(16));
    // `sparsity`% of the layer's blocks are zero: the kept ones (rounded up over the whole
    // layer, not per block-row, so that a short reduction is not left denser than asked) are
    // spread evenly over the block-rows, the counts of two rows differing by at most one.
    let total = (nrb * kb * (100 - sparsity as usize)).div_ceil(100);
    for rb in 0..nrb {
        let keep = total * (rb + 1) / nrb - total * rb / nrb;
        for cb in 0..kb {
            // Keep `keep` columns of this block-row, rotating the choice between block-rows.
            if (cb + kb - (rb * 7) % kb) % kb >= keep {
                for r in rb * 16..(rb * 16 + 16).min(n) {
                    for c in cb * 4..(cb * 4 + 4).min(k) {
                        w[r * k + c] = 0;
                    }
                }
            }
        }
    }
    w
}

/// An `n x k` matrix with exactly one stored 16x4 block in every block-row (the least work a
/// block-row that is not empty can cost a block-sparse kernel: one multiply-accumulate per pixel,
/// and the whole output stage).
pub fn one_block_per_row(n: usize, k: usize) -> Vec<i8> {
    let mut w = nonzero_weights(n, k);
    let kb = k.div_ceil(4);
    for r in 0..n {
        let keep = ((r / 16) * 7) % kb;
        for c in 0..k {
            if c / 4 != keep {
                w[r * k + c] = 0;
            }
        }
    }
    w
}

/// Every distinct 1x1 convolution of MobileNetV2 (224x224 input), named `HxW_INtoOUT_1x1`.
pub fn mobilenet_v2_pointwise() -> Vec<(&'static str, ConvGeometry)> {
    [
        ("112x112_32to16_1x1", 112, 32, 16),
        ("112x112_16to96_1x1", 112, 16, 96),
        ("56x56_96to24_1x1", 56, 96, 24),
        ("56x56_24to144_1x1", 56, 24, 144),
        ("56x56_144to24_1x1", 56, 144, 24),
        ("28x28_144to32_1x1", 28, 144, 32),
        ("28x28_32to192_1x1", 28, 32, 192),
        ("28x28_192to32_1x1", 28, 192, 32),
        ("14x14_192to64_1x1", 14, 192, 64),
        ("14x14_64to384_1x1", 14, 64, 384),
        ("14x14_384to64_1x1", 14, 384, 64),
        ("14x14_384to96_1x1", 14, 384, 96),
        ("14x14_96to576_1x1", 14, 96, 576),
        ("14x14_576to96_1x1", 14, 576, 96),
        ("7x7_576to160_1x1", 7, 576, 160),
        ("7x7_160to960_1x1", 7, 160, 960),
        ("7x7_960to160_1x1", 7, 960, 160),
        ("7x7_960to320_1x1", 7, 960, 320),
        ("7x7_320to1280_1x1", 7, 320, 1280),
    ]
    .into_iter()
    .map(|(name, hw, cin, cout)| (name, geometry(hw, cin, cout, 1, 1, 1)))
    .collect()
}
