//! Every registered int8 kernel set against the scalar specification, `assert_eq!` with no
//! tolerance, over swept shapes (0, 1, tile +-1, primes, channel counts not multiples of the
//! vector width), random zero points and per-channel multipliers, and edge values (all -128 /
//! 127 inputs, +-127 weights).

use sparq_runtime::kernels::conv::{ConvGeometry, Requant};
use sparq_runtime::kernels::registry::{self, KernelSet};
use sparq_runtime::quant::quantize_multiplier;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn i8s(&mut self, n: usize, edge: u64) -> Vec<i8> {
        (0..n)
            .map(|_| match edge {
                1 => -128,
                2 => 127,
                _ => self.next() as i8,
            })
            .collect()
    }
    fn weights(&mut self, n: usize, edge: u64) -> Vec<i8> {
        (0..n)
            .map(|i| match edge {
                1 | 2 => {
                    if i % 3 == 0 {
                        -127
                    } else {
                        127
                    }
                }
                _ => ((self.next() % 255) as i32 - 127) as i8,
            })
            .collect()
    }
}

struct Quant {
    bias: Vec<i32>,
    mult: Vec<i32>,
    shift: Vec<i32>,
}

fn quant(rng: &mut Rng, channels: usize) -> Quant {
    let mut q = Quant { bias: vec![], mult: vec![], shift: vec![] };
    for _ in 0..channels {
        q.bias.push((rng.next() % 20001) as i32 - 10000);
        let (m, s) = quantize_multiplier(1e-4 + (rng.next() % 1000) as f64 * 1e-5);
        q.mult.push(m);
        q.shift.push(s);
    }
    q
}

fn rq<'a>(q: &'a Quant, rng: &mut Rng) -> Requant<'a> {
    Requant {
        bias: &q.bias,
        mult: &q.mult,
        shift: &q.shift,
        input_zero_point: (rng.next() % 256) as i32 - 128,
        output_zero_point: (rng.next() % 256) as i32 - 128,
        act_min: -128,
        act_max: 127,
    }
}

fn sets() -> Vec<KernelSet> {
    let sets: Vec<KernelSet> = registry::available().collect();
    println!("kernel sets exercised: {:?}", sets);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        assert!(sets.iter().any(|k| k.name() == "avx2"), "this host has AVX2 but the avx2 kernels did not run");
    }
    sets
}

#[test]
fn conv_and_depthwise_match_scalar() {
    let sets = sets();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut cases = 0;
    for &cin in &[1usize, 3, 15, 16, 17, 31, 32, 33, 64] {
        for &(cout, k, stride, pad) in &[(1usize, 1usize, 1usize, 0usize), (7, 3, 1, 1), (16, 3, 2, 1), (17, 1, 2, 0)] {
            for edge in 0..3 {
                for depthwise in [false, true] {
                    let cout = if depthwise { cin } else { cout };
                    let (h, w) = (5 + (cases % 3), 6);
                    let out_h = (h + 2 * pad - k) / stride + 1;
                    let out_w = (w + 2 * pad - k) / stride + 1;
                    let g = ConvGeometry {
                        batch: 1,
                        in_h: h,
                        in_w: w,
                        in_c: cin,
                        out_h,
                        out_w,
                        out_c: cout,
                        kernel_h: k,
                        kernel_w: k,
                        stride_h: stride,
                        stride_w: stride,
                        pad_top: pad,
                        pad_left: pad,
                        dilation_h: 1,
                        dilation_w: 1,
                        groups: if depthwise { cin } else { 1 },
                    };
                    let x = rng.i8s(h * w * cin, edge);
                    let wt = rng.weights(if depthwise { k * k * cin } else { cout * k * k * cin }, edge);
                    let q = quant(&mut rng, cout);
                    let r = rq(&q, &mut rng);
                    let mut want = vec![0i8; out_h * out_w * cout];
                    let mut got = want.clone();
                    for set in &sets {
                        if depthwise {
                            registry::SCALAR.qs8_dwconv(&g, &x, &wt, &r, &mut want);
                            set.qs8_dwconv(&g, &x, &wt, &r, &mut got);
                        } else {
                            registry::SCALAR.qs8_conv2d(&g, &x, &wt, &r, &mut want);
                            set.qs8_conv2d(&g, &x, &wt, &r, &mut got);
                        }
                        assert_eq!(
                            got, want,
                            "{set:?} differs: cin {cin} cout {cout} k {k} stride {stride} edge {edge} dw {depthwise}"
                        );
                    }
                    cases += 1;
                }
            }
        }
    }
    println!("{cases} conv/depthwise cases bit-exact on {:?}", sets);
}

#[test]
fn fully_connected_matches_scalar() {
    let sets = sets();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut cases = 0;
    for &k in &[0usize, 1, 2, 15, 16, 17, 31, 32, 33, 97, 1280] {
        for &(m, n) in &[(1usize, 1usize), (1, 10), (3, 17)] {
            for edge in 0..3 {
                let x = rng.i8s(m * k, edge);
                let w = rng.weights(n * k, edge);
                let q = quant(&mut rng, n);
                let r = rq(&q, &mut rng);
                let mut want = vec![0i8; m * n];
                let mut got = want.clone();
                registry::SCALAR.qs8_fc(m, k, n, &x, &w, &r, &mut want);
                for set in &sets {
                    set.qs8_fc(m, k, n, &x, &w, &r, &mut got);
                    assert_eq!(got, want, "{set:?} differs: m {m} k {k} n {n} edge {edge}");
                }
                cases += 1;
            }
        }
    }
    println!("{cases} fully-connected cases bit-exact on {:?}", sets);
}
