//! Every registered int8 kernel set against the scalar specification, `assert_eq!` with no
//! tolerance, over swept shapes (0, 1, tile +-1, primes, channel counts not multiples of the
//! vector width), random zero points and per-channel multipliers, and edge values (all -128 /
//! 127 inputs, +-127 weights).

use sparq_runtime::kernels::conv::{ConvGeometry, Requant};
use sparq_runtime::kernels::gemm::{Pack, WeightMatrix, SIMD_PACK};
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

/// A square-kernel convolution geometry with symmetric padding (dilation 1).
#[allow(clippy::too_many_arguments)]
fn square(
    batch: usize,
    (h, w): (usize, usize),
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    groups: usize,
) -> ConvGeometry {
    ConvGeometry {
        batch,
        in_h: h,
        in_w: w,
        in_c: cin,
        out_h: (h + 2 * pad - k) / stride + 1,
        out_w: (w + 2 * pad - k) / stride + 1,
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

fn sets() -> Vec<KernelSet> {
    let sets: Vec<KernelSet> = registry::available().collect();
    println!("kernel sets exercised: {:?}", sets);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        assert!(sets.iter().any(|k| k.name() == "avx2"), "this host has AVX2 but the avx2 kernels did not run");
    }
    // The host's widest path runs whatever the other features: AVX-512 VNNI without AVX-VNNI
    // (most AVX-512 servers) must still run the AVX-512 kernels.
    #[cfg(target_arch = "x86_64")]
    {
        use sparq_runtime::Features;
        let cpu = Features::detect();
        let want = Features::AVX2.union(Features::AVX512).union(Features::AVX512VNNI);
        if cpu.contains(want) {
            assert!(
                sets.iter().any(|k| k.name() == "avx512vnni"),
                "this host has AVX-512 VNNI but its kernels did not run"
            );
        }
    }
    #[cfg(sparq_arm_neon)]
    assert!(sets.iter().any(|k| k.name() == "armv7-neon"), "the armv7-neon kernels did not run");
    #[cfg(target_arch = "aarch64")]
    {
        assert!(sets.iter().any(|k| k.name() == "neon"), "the neon kernels did not run on aarch64");
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            assert!(sets.iter().any(|k| k.name() == "dotprod"), "this CPU has dotprod but its kernels did not run");
        }
        if std::arch::is_aarch64_feature_detected!("i8mm") && std::arch::is_aarch64_feature_detected!("dotprod") {
            assert!(sets.iter().any(|k| k.name() == "i8mm"), "this CPU has i8mm but its kernels did not run");
        }
    }
    sets
}

#[test]
fn conv_and_depthwise_match_scalar() {
    let sets = sets();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut cases = 0;
    for &cin in &[1usize, 3, 15, 16, 17, 24, 31, 32, 33, 64] {
        for &(cout, k, stride, pad) in &[(1usize, 1usize, 1usize, 0usize), (7, 3, 1, 1), (16, 3, 2, 1), (17, 1, 2, 0)] {
            for edge in 0..3 {
                for depthwise in [false, true] {
                    let cout = if depthwise { cin } else { cout };
                    let (h, w) = (5 + (cases % 3), 6);
                    let g = square(1, (h, w), cin, cout, k, stride, pad, if depthwise { cin } else { 1 });
                    let (out_h, out_w) = (g.out_h, g.out_w);
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

/// Multipliers spread log-uniformly over [1e-9, 4] (shifts from 29 to 60: past 55 the SIMD
/// kernels cannot fold the zero point into the rounding, below 32 they take the general 64-bit
/// path), and a random fused activation range, so requantization is exercised well beyond the
/// saturating region.
fn wide_quant(rng: &mut Rng, channels: usize) -> Quant {
    let mut q = Quant { bias: vec![], mult: vec![], shift: vec![] };
    for _ in 0..channels {
        q.bias.push((rng.next() % 200001) as i32 - 100000);
        let e = (rng.next() % 10_000) as f64 / 10_000.0;
        let (m, s) = quantize_multiplier(1e-9 * (4e9f64).powf(e));
        q.mult.push(m);
        q.shift.push(s);
    }
    q
}

fn act_range(rng: &mut Rng) -> (i32, i32) {
    match rng.next() % 3 {
        0 => (-128, 127),
        _ => {
            let a = (rng.next() % 256) as i32 - 128;
            let b = (rng.next() % 256) as i32 - 128;
            (a.min(b), a.max(b))
        }
    }
}

#[test]
fn gemm_on_packed_weights_matches_scalar_convolution() {
    use sparq_runtime::kernels::gemm::{WeightMatrix, SIMD_PACK};
    let sets = sets();
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avxvnni") {
        assert!(sets.iter().any(|k| k.name() == "avxvnni"), "this host has AVX-VNNI but its kernels did not run");
        if std::is_x86_feature_detected!("avx512vnni") && std::is_x86_feature_detected!("avx512bw") {
            assert!(
                sets.iter().any(|k| k.name() == "avx512vnni"),
                "this host has AVX-512 VNNI but its kernels did not run"
            );
        }
    }
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut cases = 0;
    // (cin, kernel, stride, pad, spatial): pointwise and general convolutions; reductions from 1
    // to past the SIMD limit (4096).
    type Geometry = (usize, usize, usize, usize, (usize, usize));
    let geoms: &[Geometry] = &[
        (1, 1, 1, 0, (1, 1)),
        (3, 3, 2, 1, (7, 9)),
        (4, 1, 1, 0, (2, 3)),
        (5, 1, 1, 0, (1, 5)),
        (16, 1, 1, 0, (3, 3)),
        (17, 3, 1, 1, (4, 5)),
        (31, 1, 2, 0, (5, 5)),
        (64, 1, 1, 0, (1, 7)),
        (12, 1, 1, 0, (3, 6)),
        (8, 3, 2, 1, (9, 5)),
        (3, 3, 2, 1, (9, 9)),
        (1, 3, 1, 1, (5, 6)),
        (5, 3, 1, 0, (6, 6)),
        (3, 3, 1, 1, (4, 20)),
        (3, 3, 2, 1, (6, 41)),
        (160, 1, 1, 0, (2, 2)),
        (4097, 1, 1, 0, (1, 2)),
        // Short pointwise reductions (the AVX-512 small-reduction path: K <= 32).
        (8, 1, 1, 0, (1, 3)),
        (24, 1, 1, 0, (3, 5)),
        (32, 1, 1, 0, (2, 9)),
        (36, 1, 1, 0, (3, 3)),
        (16, 1, 1, 0, (9, 15)),
        // Pixel counts that are multiples of 7, not of 8 (7x7 maps: blocks of 7 pixels).
        (64, 1, 1, 0, (7, 7)),
        (16, 3, 1, 1, (7, 7)),
    ];
    for &(cin, k, stride, pad, (h, w)) in geoms {
        for &cout in &[1usize, 7, 8, 9, 15, 16, 17, 24, 25, 31, 32, 33, 40, 48, 56, 63, 65, 96, 256, 272] {
            for edge in 0..3 {
                let g = square(1 + (cases % 2), (h, w), cin, cout, k, stride, pad, 1);
                let (out_h, out_w) = (g.out_h, g.out_w);
                let x = rng.i8s(g.batch * h * w * cin, edge);
                let kk = k * k * cin;
                let wt = rng.weights(cout * kk, edge);
                let q = if edge == 0 { wide_quant(&mut rng, cout) } else { quant(&mut rng, cout) };
                let mut r = rq(&q, &mut rng);
                (r.act_min, r.act_max) = act_range(&mut rng);
                let mut want = vec![0i8; g.batch * out_h * out_w * cout];
                registry::SCALAR.qs8_conv2d(&g, &x, &wt, &r, &mut want);
                for pack in [SIMD_PACK, Pack { nr: 3, kr: 5 }] {
                    let packed = pack.pack(cout, kk, &wt);
                    let m = WeightMatrix { data: &packed, n: cout, k: kk, pack: Some(pack) };
                    for set in &sets {
                        let mut got = vec![0i8; want.len()];
                        set.qs8_gemm(&g, &x, &m, &r, &mut got);
                        assert_eq!(
                            got,
                            want,
                            "{set:?} ({}) differs: cin {cin} cout {cout} k {k} stride {stride} edge {edge} pack {pack:?}",
                            set.gemm_name()
                        );
                    }
                }
                cases += 1;
            }
        }
    }
    println!("{cases} GEMM-convolution cases bit-exact on {:?}", sets);
}

#[test]
fn depthwise_with_wide_requantization_matches_scalar() {
    let sets = sets();
    let mut rng = Rng(0x94D0_49BB_1331_11EB);
    let mut cases = 0;
    for &c in &[1usize, 8, 15, 16, 17, 24, 32, 33, 47, 48, 63, 64, 65, 80, 96, 127, 130, 272] {
        for &(k, stride) in &[(3usize, 1usize), (3, 2), (5, 1), (5, 2), (1, 1), (7, 2)] {
            for edge in 0..3 {
                let (h, w) = (6, 7);
                let pad = k / 2;
                let g = square(1, (h, w), c, c, k, stride, pad, c);
                let (out_h, out_w) = (g.out_h, g.out_w);
                let x = rng.i8s(h * w * c, edge);
                let wt = rng.weights(k * k * c, edge);
                let q = wide_quant(&mut rng, c);
                let mut r = rq(&q, &mut rng);
                (r.act_min, r.act_max) = act_range(&mut rng);
                let mut want = vec![0i8; out_h * out_w * c];
                registry::SCALAR.qs8_dwconv(&g, &x, &wt, &r, &mut want);
                for set in &sets {
                    let mut got = vec![0i8; want.len()];
                    set.qs8_dwconv(&g, &x, &wt, &r, &mut got);
                    assert_eq!(got, want, "{set:?} differs: c {c} k {k} stride {stride} edge {edge}");
                }
                cases += 1;
            }
        }
    }
    println!("{cases} depthwise cases (wide requantization) bit-exact on {:?}", sets);
}

/// The vector requantization against the scalar one on accumulators at the extremes.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_requantization_matches_scalar_at_extremes() {
    use sparq_runtime::kernels::x86::{load_requant8, requant8};
    use sparq_runtime::quant::requantize_to_i8;
    use std::arch::x86_64::*;
    if !std::is_x86_feature_detected!("avx2") {
        println!("no AVX2 on this host: skipped");
        return;
    }
    let mut rng = Rng(0xA076_1D64_78BD_642F);
    let accs = [i32::MIN, i32::MIN + 1, -(1 << 30), -1, 0, 1, (1 << 30), i32::MAX - 1, i32::MAX];
    let mut checked = 0;
    for round in 0..20_000 {
        let mut mult = [0i32; 8];
        let mut shift = [0i32; 8];
        let mut acc = [0i32; 8];
        for l in 0..8 {
            mult[l] = match rng.next() % 4 {
                0 => 0,
                1 => i32::MAX,
                2 => (1 << 30) + (rng.next() % (1 << 30)) as i32,
                _ => (rng.next() % (1 << 31)) as i32,
            };
            // A third of the rounds keep every shift >= 31 (the 32-bit clamp path), a third >= 32
            // (the high-half path).
            shift[l] = match round % 3 {
                0 => 31 + (rng.next() % 32) as i32,
                1 => 32 + (rng.next() % 31) as i32,
                _ => 1 + (rng.next() % 62) as i32,
            };
            acc[l] = if round % 2 == 0 { accs[(rng.next() % accs.len() as u64) as usize] } else { rng.next() as i32 };
        }
        let bias = [0i32; 8];
        let r = Requant {
            bias: &bias,
            mult: &mult,
            shift: &shift,
            input_zero_point: 0,
            output_zero_point: (rng.next() % 256) as i32 - 128,
            act_min: -128,
            act_max: 127,
        };
        let (lo, hi) = act_range(&mut rng);
        let mut got = [0i32; 8];
        // SAFETY: AVX2 was detected above; 32-byte unaligned load and store.
        unsafe {
            let k = load_requant8(&r, 0, 8);
            let v = requant8(_mm256_loadu_si256(acc.as_ptr().cast()), &k, r.output_zero_point, lo, hi);
            _mm256_storeu_si256(got.as_mut_ptr().cast(), v);
        }
        for l in 0..8 {
            let want = requantize_to_i8(acc[l], mult[l], shift[l], r.output_zero_point, lo, hi) as i32;
            assert_eq!(got[l], want, "acc {} mult {} shift {} zp {}", acc[l], mult[l], shift[l], r.output_zero_point);
            checked += 1;
        }
    }
    println!("{checked} requantizations bit-exact");
}

#[test]
fn fully_connected_f32_output_on_packed_and_block_sparse_weights_matches_scalar() {
    use sparq_format::sparse::{encode, BlockSparse, KERNEL_BLOCK};
    use sparq_runtime::kernels::fc::scalar::qs8_fc_f32out_scalar;
    use sparq_runtime::kernels::fc::F32Out;
    use sparq_runtime::kernels::gemm::{WeightMatrix, SIMD_PACK};
    let sets = sets();
    let mut rng = Rng(0x8CB9_2BA7_2F3D_8DD7);
    let (mut cases, mut sparse_cases) = (0, 0);
    for &k in &[1usize, 5, 16, 33, 1280, 4097] {
        for &(m, n) in &[(1usize, 1usize), (1, 9), (3, 8), (2, 1000)] {
            for edge in 0..3 {
                let x = rng.i8s(m * k, edge);
                let w = rng.weights(n * k, edge);
                let bias: Vec<i32> = (0..n).map(|_| (rng.next() % 200001) as i32 - 100000).collect();
                let scale: Vec<f32> = (0..n).map(|_| 1e-6 + (rng.next() % 1000) as f32 * 1e-5).collect();
                let zp = (rng.next() % 256) as i32 - 128;
                let (lo, hi) = if edge == 0 { (f32::MIN, f32::MAX) } else { (-3.0, 2.5) };
                let out = F32Out { bias: &bias, scale: &scale, input_zero_point: zp, lo, hi };
                let rows = WeightMatrix { data: &w, n, k, pack: None };
                let mut want = vec![0f32; m * n];
                qs8_fc_f32out_scalar(m, &x, &rows, &out, &mut want);
                let packed = SIMD_PACK.pack(n, k, &w);
                let pm = WeightMatrix { data: &packed, n, k, pack: Some(SIMD_PACK) };
                for set in &sets {
                    let mut got = vec![0f32; m * n];
                    set.qs8_fc_f32out(m, &x, &pm, &out, &mut got);
                    let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{set:?} differs: m {m} k {k} n {n} edge {edge}");
                }
                // The same layer pruned in 16x4 blocks and stored block-sparse: every set's
                // sparse kernel gives the dense scalar kernel's outputs on the zeroed matrix.
                for density in [0.0, 0.2, 0.6] {
                    let mut wz = w.clone();
                    prune_blocks(&mut rng, &mut wz, n, k, KERNEL_BLOCK, density);
                    let mut want = vec![0f32; m * n];
                    let rows = WeightMatrix { data: &wz, n, k, pack: None };
                    qs8_fc_f32out_scalar(m, &x, &rows, &out, &mut want);
                    let store = sparq_runtime::AlignedBytes::from_slice(&encode(KERNEL_BLOCK, n, k, &wz));
                    let s = BlockSparse::parse(store.as_slice(), n, k, KERNEL_BLOCK).unwrap();
                    for set in &sets {
                        let mut got = vec![0f32; m * n];
                        set.qs8_spfc_f32out(m, &x, &s, &out, &mut got);
                        let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                        let name = set.spfc_f32out_name();
                        assert!(same, "{set:?} ({name}) differs: m {m} k {k} n {n} edge {edge} density {density}");
                    }
                    sparse_cases += 1;
                }
                cases += 1;
            }
        }
    }
    let names: Vec<&str> = sets.iter().map(|s| s.spfc_f32out_name()).collect();
    println!(
        "{cases} f32-output fully-connected cases bit-exact on {sets:?}; {sparse_cases} block-sparse on {names:?}"
    );
}

/// Elementwise cases over lengths (0, tails, long), edge inputs (random, all -128, all 127) and
/// 20 random parameter draws each: `check(rng, a, b, sets)` compares every set with scalar.
fn binary_cases(seed: u64, what: &str, mut check: impl FnMut(&mut Rng, &[i8], &[i8], &[KernelSet])) {
    let sets = sets();
    let mut rng = Rng(seed);
    let mut cases = 0;
    for &len in &[0usize, 1, 7, 8, 9, 31, 1000] {
        for edge in 0..3 {
            for _ in 0..20 {
                let a = rng.i8s(len, edge);
                let b = rng.i8s(len, if edge == 0 { 0 } else { 3 - edge });
                check(&mut rng, &a, &b, &sets);
                cases += 1;
            }
        }
    }
    println!("{cases} {what} cases bit-exact on {:?}", sets);
}

#[test]
fn int8_add_matches_scalar() {
    use sparq_runtime::kernels::elementwise::{qs8_add_contiguous_scalar, AddParams};
    use sparq_runtime::quant::quantize_multiplier;
    binary_cases(0x6A09_E667_F3BC_C908, "int8 add", |rng, a, b, sets| {
        // Real multipliers of 2^-20 to 2 on a common shift, as the compiler writes them.
        let ma = 2f64.powf(-20.0 + (rng.next() % 2100) as f64 / 100.0);
        let mb = 2f64.powf(-20.0 + (rng.next() % 2100) as f64 / 100.0);
        let (m, s) = quantize_multiplier(ma.max(mb));
        let (act_min, act_max) = act_range(rng);
        let p = AddParams {
            zp_a: (rng.next() % 256) as i32 - 128,
            zp_b: (rng.next() % 256) as i32 - 128,
            zp_out: (rng.next() % 256) as i32 - 128,
            mult_a: (m as f64 * ma / ma.max(mb)).round() as i32,
            mult_b: (m as f64 * mb / ma.max(mb)).round() as i32,
            shift: s,
            act_min,
            act_max,
        };
        let mut want = vec![0i8; a.len()];
        qs8_add_contiguous_scalar(a, b, &mut want, &p);
        for set in sets {
            let mut got = vec![0i8; a.len()];
            set.qs8_add(a, b, &mut got, &p);
            assert_eq!(got, want, "{set:?} differs: len {} {p:?}", a.len());
        }
    });
}

#[test]
fn input_quantization_matches_scalar() {
    let sets = sets();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut cases = 0;
    for &len in &[0usize, 1, 7, 8, 9, 31, 224, 1000] {
        for &scale in &[1.0f32, 0.0173, 3.9e-3, 250.0] {
            for &zp in &[0i32, -128, 17, 127] {
                let mut x: Vec<f32> =
                    (0..len).map(|_| ((rng.next() % 2_000_001) as f32 - 1.0e6) * scale / 3000.0).collect();
                // Exact halves, their neighbours, and the special values.
                let special = [
                    0.5,
                    -0.5,
                    1.5,
                    -2.5,
                    0.49999997,
                    -0.49999997,
                    f32::NAN,
                    f32::INFINITY,
                    -f32::INFINITY,
                    1e30,
                    -0.0,
                ];
                for (i, v) in x.iter_mut().enumerate().filter(|(i, _)| i % 3 == 0) {
                    *v = special[i % special.len()] * scale;
                }
                let mut want = vec![0i8; len];
                sparq_runtime::kernels::elementwise::qs8_quantize_scalar(&x, &mut want, scale, zp);
                for set in &sets {
                    let mut got = vec![0i8; len];
                    set.qs8_quantize(&x, &mut got, scale, zp);
                    assert_eq!(got, want, "{set:?} differs: len {len} scale {scale} zp {zp}");
                }
                cases += 1;
            }
        }
    }
    println!("{cases} quantization cases bit-exact on {:?}", sets);
}

#[test]
fn table_lookup_matches_scalar() {
    let sets = sets();
    let mut rng = Rng(0x3C6E_F372_FE94_F82B);
    let mut cases = 0;
    for round in 0..6 {
        // Random tables, a monotone one (a sigmoid's shape) and the identity.
        let table: [i8; 256] = core::array::from_fn(|i| match round {
            0 => i as i8 ^ -128,
            1 => ((i as i32 - 128) / 2) as i8,
            _ => rng.next() as i8,
        });
        for &len in &[0usize, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 256, 1000, 4099] {
            // Every code appears: the inputs walk all 256 values from a random start.
            let start = rng.next() as u8;
            let x: Vec<i8> = (0..len).map(|i| start.wrapping_add(i as u8) as i8).collect();
            let mut want = vec![0i8; len];
            sparq_runtime::kernels::lut::qs8_lut_scalar(&table, &x, &mut want);
            for (w, &v) in want.iter().zip(&x) {
                assert_eq!(*w, table[(v as i32 + 128) as usize]);
            }
            for set in &sets {
                let mut got = vec![0i8; len];
                set.qs8_lut(&table, &x, &mut got);
                assert_eq!(got, want, "{set:?} differs: len {len}, table {round}");
            }
            cases += 1;
        }
    }
    println!("{cases} table lookup cases bit-exact on {:?}", sets);
}

/// Per-channel tables (format 1.7; camera frames): the unrolled pixel loops (1, 3, 4 interleaved
/// channels) and the general walk against the definition, `tables[channel(i)][x_i + 128]`.
#[test]
fn per_channel_lookup_matches_its_definition() {
    use sparq_runtime::kernels::lut::qs8_lut_per_channel_scalar;
    let mut rng = Rng(0x510E_527F_ADE6_82D1);
    let mut cases = 0;
    for channels in 1..=6 {
        for inner in [1usize, 2, 7, 49] {
            for outer in [1usize, 3] {
                let tables: Vec<i8> = (0..channels * 256).map(|_| rng.next() as i8).collect();
                let len = outer * channels * inner;
                let x: Vec<i8> = (0..len).map(|_| rng.next() as i8).collect();
                let mut got = vec![0i8; len];
                qs8_lut_per_channel_scalar(&tables, channels, inner, &x, &mut got);
                for (i, (&g, &v)) in got.iter().zip(&x).enumerate() {
                    let c = (i / inner) % channels;
                    assert_eq!(
                        g,
                        tables[c * 256 + (v as i32 + 128) as usize],
                        "{channels} channels, inner {inner}, {i}"
                    );
                }
                cases += 1;
            }
        }
    }
    println!("{cases} per-channel lookup cases");
}

#[test]
fn int8_mul_matches_scalar() {
    use sparq_runtime::kernels::elementwise::{qs8_mul_contiguous_scalar, MulParams};
    use sparq_runtime::quant::quantize_multiplier;
    binary_cases(0xBB67_AE85_84CA_A73B, "int8 mul", |rng, a, b, sets| {
        // Real multipliers of 2^-20 to 2 (s_a s_b / s_out).
        let (mult, shift) = quantize_multiplier(2f64.powf(-20.0 + (rng.next() % 2100) as f64 / 100.0));
        let (act_min, act_max) = act_range(rng);
        let p = MulParams {
            zp_a: (rng.next() % 256) as i32 - 128,
            zp_b: (rng.next() % 256) as i32 - 128,
            zp_out: (rng.next() % 256) as i32 - 128,
            mult,
            shift,
            act_min,
            act_max,
        };
        let mut want = vec![0i8; a.len()];
        qs8_mul_contiguous_scalar(a, b, &mut want, &p);
        for set in sets {
            let mut got = vec![0i8; a.len()];
            set.qs8_mul(a, b, &mut got, &p);
            assert_eq!(got, want, "{set:?} differs: len {} {p:?}", a.len());
        }
    });
}

/// The NCHW -> NHWC input quantization (the model input's layout change) against a plain loop,
/// for the interleaving fast path (3 channels) and the general walk (others), long rows included.
#[test]
fn input_layout_change_quantizes_every_element_in_place() {
    use sparq_runtime::kernels::elementwise::{qs8_quantize_scalar, quantize_strided};
    use sparq_runtime::quant::quantize_f32;
    let sets = sets();
    let mut rng = Rng(0x3C6E_F372_FE94_F82B);
    for &(n, c, h, w) in &[(1usize, 3usize, 5usize, 7usize), (2, 3, 4, 300), (1, 1, 3, 9), (2, 2, 3, 5), (1, 4, 2, 260)]
    {
        let x: Vec<f32> = (0..n * c * h * w).map(|_| ((rng.next() % 20001) as f32 - 10000.0) / 1000.0).collect();
        let (scale, zp) = (0.037f32, -5);
        let mut want = vec![0i8; x.len()];
        for (ni, ci, hi, wi) in
            (0..n).flat_map(|a| (0..c).flat_map(move |b| (0..h).flat_map(move |d| (0..w).map(move |e| (a, b, d, e)))))
        {
            want[((ni * h + hi) * w + wi) * c + ci] = quantize_f32(x[((ni * c + ci) * h + hi) * w + wi], scale, zp);
        }
        // Logical NCHW, padded to the walker's 6 axes; x strides NCHW, y strides NHWC.
        let dims = [1, 1, n, c, h, w];
        let st = [[0, 0, c * h * w, h * w, w, 1], [0, 0, h * w * c, 1, w * c, c]];
        for set in sets.iter().map(Some).chain([None]) {
            let mut got = vec![0i8; x.len()];
            quantize_strided(&dims, &st, &x, &mut got, scale, zp, |a, b| match set {
                Some(k) => k.qs8_quantize(a, b, scale, zp),
                None => qs8_quantize_scalar(a, b, scale, zp),
            });
            assert_eq!(got, want, "{set:?}: n {n} c {c} h {h} w {w}");
        }
    }
}

/// Zero whole `block`s of a row-major `n x k` matrix until about `density` of them are left.
fn prune_blocks(rng: &mut Rng, m: &mut [i8], n: usize, k: usize, block: Pack, density: f64) {
    for rb in 0..n.div_ceil(block.nr) {
        for cb in 0..k.div_ceil(block.kr) {
            if (rng.next() % 1000) as f64 >= density * 1000.0 {
                for r in rb * block.nr..((rb + 1) * block.nr).min(n) {
                    for c in cb * block.kr..((cb + 1) * block.kr).min(k) {
                        m[r * k + c] = 0;
                    }
                }
            }
        }
    }
}

#[test]
fn block_sparse_gemm_matches_dense_and_scalar() {
    use sparq_format::sparse::{encode, BlockSparse, KERNEL_BLOCK};
    use sparq_runtime::kernels::spgemm::qs8_spgemm_scalar;
    let sets = sets();
    let mut rng = Rng(0x3C6E_F372_FE94_F82B);
    let mut cases = 0;
    type Geometry = (usize, usize, usize, usize, (usize, usize));
    let geoms: &[Geometry] = &[
        (16, 1, 1, 0, (3, 5)),
        (24, 1, 1, 0, (1, 1)),
        (5, 1, 1, 0, (2, 3)),
        (64, 1, 1, 0, (3, 3)),
        (96, 1, 1, 0, (2, 9)),
        (3, 3, 2, 1, (7, 9)),
        (17, 3, 1, 1, (4, 5)),
        (160, 1, 1, 0, (1, 7)),
        // Pointwise passes of the channel-lane AVX-512 kernel: a tail group; a 128-byte row
        // stride; a long reduction (32 rows per pass, several passes).
        (32, 1, 1, 0, (9, 11)),
        (100, 1, 1, 0, (3, 3)),
        (2048, 1, 1, 0, (5, 9)),
        // Passes of a few hundred rows (as many as keep a pass's outputs within 40 KiB) with a
        // tail group, on the constant strides.
        (16, 1, 1, 0, (23, 29)),
    ];
    for &(cin, k, stride, pad, (h, w)) in geoms {
        for &cout in &[1usize, 8, 15, 16, 17, 24, 32, 33, 48, 96] {
            for (edge, density) in [(0, 0.0), (0, 0.1), (0, 0.2), (0, 0.5), (0, 1.0), (1, 0.3), (2, 0.3)] {
                let g = square(1 + (cases % 2), (h, w), cin, cout, k, stride, pad, 1);
                let x = rng.i8s(g.batch * h * w * cin, edge);
                let kk = k * k * cin;
                let mut wt = rng.weights(cout * kk, edge);
                prune_blocks(&mut rng, &mut wt, cout, kk, KERNEL_BLOCK, density);
                let q = if edge == 0 { wide_quant(&mut rng, cout) } else { quant(&mut rng, cout) };
                let mut r = rq(&q, &mut rng);
                (r.act_min, r.act_max) = act_range(&mut rng);
                // The dense reference on the zeroed matrix.
                let mut want = vec![0i8; g.batch * g.out_h * g.out_w * cout];
                registry::SCALAR.qs8_conv2d(&g, &x, &wt, &r, &mut want);
                for block in [KERNEL_BLOCK, Pack { nr: 1, kr: 4 }, Pack { nr: 3, kr: 5 }] {
                    // A 64-byte aligned copy, as constants sit in a file.
                    let store = sparq_runtime::AlignedBytes::from_slice(&encode(block, cout, kk, &wt));
                    let s = BlockSparse::parse(store.as_slice(), cout, kk, block).unwrap();
                    let mut got = vec![0i8; want.len()];
                    qs8_spgemm_scalar(&g, &x, &s, &r, &mut got);
                    assert_eq!(got, want, "scalar sparse differs from dense: cin {cin} cout {cout} k {k} {block:?}");
                    // The AVX-512 fallback for CPUs without VBMI (this host may never pick it).
                    #[cfg(target_arch = "x86_64")]
                    if block == KERNEL_BLOCK && sets.iter().any(|s| s.name() == "avx512vnni") {
                        let mut got = vec![0i8; want.len()];
                        // SAFETY: the avx512vnni set is available, so are its features; the
                        // block shape and reduction fit the kernel; `s` was validated.
                        unsafe {
                            sparq_runtime::kernels::spgemm::avx512vnni::qs8_spgemm_8x16c4_avx512vnni(
                                &g, &x, &s, &r, &mut got,
                            )
                        };
                        assert_eq!(got, want, "qs8_spgemm_8x16c4_avx512vnni differs: cin {cin} cout {cout} k {k}");
                    }
                    for set in &sets {
                        let mut got = vec![0i8; want.len()];
                        set.qs8_spgemm(&g, &x, &s, &r, &mut got);
                        assert_eq!(
                            got,
                            want,
                            "{set:?} ({}) differs: cin {cin} cout {cout} k {k} stride {stride} edge {edge} density {density} {block:?}",
                            set.spgemm_name()
                        );
                    }
                }
                cases += 1;
            }
        }
    }
    let names: Vec<&str> = sets.iter().map(|s| s.spgemm_name()).collect();
    println!("{cases} block-sparse GEMM cases bit-exact to the dense scalar kernel on {names:?}");
}

#[test]
fn int8_pooling_matches_scalar() {
    use sparq_runtime::kernels::pool::GlobalPool;
    let sets = sets();
    let mut rng = Rng(0x510E_527F_ADE6_82D1);
    let mut cases = 0;
    for &c in &[1usize, 15, 16, 17, 31, 32, 33, 64, 65, 100] {
        for edge in 0..3 {
            // Max pooling: 2x2 stride 2, 3x3 stride 1 and 2 with padding, 1x1.
            for &(k, stride, pad) in &[(2usize, 2usize, 0usize), (3, 1, 1), (3, 2, 1), (1, 1, 0)] {
                let g = square(1 + cases % 2, (7, 6), c, c, k, stride, pad, 1);
                let x = rng.i8s(g.batch * 7 * 6 * c, edge);
                let mut want = vec![0i8; g.batch * g.out_h * g.out_w * c];
                registry::SCALAR.qs8_max_pool(&g, &x, &mut want);
                for set in &sets {
                    let mut got = vec![0i8; want.len()];
                    set.qs8_max_pool(&g, &x, &mut got);
                    assert_eq!(got, want, "{set:?} max pool differs: c {c} k {k} stride {stride} edge {edge}");
                }
                cases += 1;
            }
            // Global average pooling over 1 to 196 pixels, multipliers including 1 / hw and wide ones.
            for &hw in &[1usize, 7, 49, 196] {
                let batch = 1 + cases % 2;
                let x = rng.i8s(batch * hw * c, edge);
                let (zp_in, zp_out) = ((rng.next() % 256) as i32 - 128, (rng.next() % 256) as i32 - 128);
                let real =
                    if edge == 0 { 1e-3 * 4e3f64.powf((rng.next() % 1000) as f64 / 1000.0) } else { 1.0 / hw as f64 };
                let (mult, shift) = quantize_multiplier(real);
                let gp = GlobalPool { batch, hw, channels: c, zp_in, zp_out, mult, shift };
                let mut want = vec![0i8; batch * c];
                registry::SCALAR.qs8_global_avg_pool(&gp, &x, &mut want);
                for set in &sets {
                    let mut got = vec![0i8; want.len()];
                    set.qs8_global_avg_pool(&gp, &x, &mut got);
                    assert_eq!(got, want, "{set:?} global average pool differs: c {c} hw {hw} edge {edge}");
                }
                cases += 1;
            }
        }
    }
    println!("{cases} int8 pooling cases bit-exact on {:?}", sets);
}

/// Int16 global average pooling (format 1.6) of every path against the scalar specification:
/// channel counts around every vector width, 1 to 196 pixels (and 2^16, the largest window an
/// int16 file may declare: sums of +-2^31), multipliers including `1 / hw`, wide ones and ones
/// that saturate, random and extreme int16 codes.
#[test]
fn int16_global_average_pooling_matches_scalar() {
    use sparq_runtime::kernels::pool::GlobalPool;
    let sets = sets();
    let mut rng = Rng(0x3C6E_F372_FE94_F82B);
    let mut cases = 0;
    for &c in &[1usize, 3, 7, 8, 9, 15, 16, 17, 31, 33, 1280] {
        for edge in 0..3 {
            for &hw in &[1usize, 7, 49, 196] {
                let batch = 1 + cases % 2;
                let x = i16s(&mut rng, batch * hw * c, edge);
                let real = match edge {
                    0 => 1e-3 * 4e3f64.powf((rng.next() % 1000) as f64 / 1000.0),
                    1 => 1.0 / hw as f64,
                    _ => 37.0,
                };
                let (mult, shift) = quantize_multiplier(real);
                let gp = GlobalPool { batch, hw, channels: c, zp_in: 0, zp_out: 0, mult, shift };
                let mut want = vec![0i16; batch * c];
                registry::SCALAR.qs16_global_avg_pool(&gp, &x, &mut want);
                for set in &sets {
                    let mut got = vec![0i16; want.len()];
                    set.qs16_global_avg_pool(&gp, &x, &mut got);
                    assert_eq!(got, want, "{set:?} int16 global average pool differs: c {c} hw {hw} edge {edge}");
                }
                cases += 1;
            }
        }
    }
    // The widest window: every code at the int16 extremes sums to +-2^31 (exact in i32).
    for &v in &[i16::MIN, i16::MAX] {
        let (hw, c) = (1usize << 16, 17);
        let x = vec![v; hw * c];
        let (mult, shift) = quantize_multiplier(1.0 / hw as f64);
        let gp = GlobalPool { batch: 1, hw, channels: c, zp_in: 0, zp_out: 0, mult, shift };
        let mut want = vec![0i16; c];
        registry::SCALAR.qs16_global_avg_pool(&gp, &x, &mut want);
        assert!(want.iter().all(|&w| w == v), "{want:?}");
        for set in &sets {
            let mut got = vec![0i16; c];
            set.qs16_global_avg_pool(&gp, &x, &mut got);
            assert_eq!(got, want, "{set:?} int16 global average pool of 2^16 codes {v}");
        }
        cases += 1;
    }
    println!("{cases} int16 global average pooling cases bit-exact on {:?}", sets);
}

#[test]
fn f32_convolution_matches_scalar() {
    let sets = sets();
    let mut rng = Rng(0x9B05_688C_2B3E_6C1F);
    let mut floats = |n: usize, zeros: bool| -> Vec<f32> {
        (0..n)
            .map(|i| {
                let v = (rng.next() % 2001) as f32 / 1000.0 - 1.0;
                // Exact zeros of both signs exercise the order of the sums' first terms.
                match (zeros, i % 7) {
                    (true, 0) => 0.0,
                    (true, 3) => -0.0,
                    _ => v,
                }
            })
            .collect()
    };
    let mut cases = 0;
    type Geometry = (usize, usize, usize, usize, (usize, usize));
    let geoms: &[Geometry] = &[
        (1, 1, 1, 0, (1, 1)),
        (3, 3, 2, 1, (7, 9)),
        (16, 1, 1, 0, (3, 3)),
        (17, 3, 1, 1, (4, 5)),
        (64, 1, 1, 0, (1, 7)),
        (5, 3, 1, 0, (6, 6)),
        (1280, 1, 1, 0, (1, 1)),
        (2049, 1, 1, 0, (1, 2)),
        // Full tiles with padding, and reductions longer than one transposed chunk (256).
        (8, 3, 1, 1, (10, 12)),
        (300, 1, 1, 0, (3, 7)),
        (260, 3, 2, 1, (5, 6)),
    ];
    for &(cin, k, stride, pad, (h, w)) in geoms {
        for &cout in &[1usize, 7, 8, 9, 16, 17, 33] {
            for zeros in [false, true] {
                let g = square(1 + cases % 2, (h, w), cin, cout, k, stride, pad, 1);
                let x = floats(g.batch * h * w * cin, zeros);
                let wt = floats(cout * k * k * cin, zeros);
                let bias = floats(cout, zeros);
                let (lo, hi) = if zeros { (0.0, 6.0) } else { (f32::NEG_INFINITY, f32::INFINITY) };
                let mut want = vec![0f32; g.batch * g.out_h * g.out_w * cout];
                registry::SCALAR.f32_conv2d(&g, &x, &wt, &bias, lo, hi, &mut want);
                for set in &sets {
                    let mut got = vec![0f32; want.len()];
                    set.f32_conv2d(&g, &x, &wt, &bias, lo, hi, &mut got);
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "{set:?} f32 conv differs: cin {cin} cout {cout} k {k}");
                }
                cases += 1;
            }
        }
    }
    println!("{cases} f32 convolution cases bit-exact (to the bit, signed zeros included) on {:?}", sets);
}

/// int16 inputs: random, or all at an extreme (`edge` 1: -32768, 2: 32767).
fn i16s(rng: &mut Rng, n: usize, edge: u64) -> Vec<i16> {
    (0..n)
        .map(|_| match edge {
            1 => i16::MIN,
            2 => i16::MAX,
            _ => rng.next() as i16,
        })
        .collect()
}

/// Int8 weights of `rows` channels of `k` taps as large as the A16W8 no-overflow rule allows
/// (`|bias| + 32768 sum |w| < 2^31` per channel, what the loader checks), at most 127.
fn a16w8_weights(rng: &mut Rng, n: usize, k: usize, bias: &[i32], edge: u64) -> Vec<i8> {
    let worst_bias = bias.iter().map(|b| b.unsigned_abs() as i64).max().unwrap_or(0);
    let cap = ((i32::MAX as i64 - worst_bias) / (32768 * k as i64)).min(127) as i32;
    (0..n * k)
        .map(|i| match edge {
            1 | 2 => (if i % 3 == 0 { -cap } else { cap }) as i8,
            _ => ((rng.next() % (2 * cap as u64 + 1)) as i32 - cap) as i8,
        })
        .collect()
}

/// The A16W8 kernels (int16 activations, int8 weights, format 1.6) of every path against the
/// scalar specification, and the specification against an exact i64 evaluation: GEMM
/// convolutions (1x1 direct, 3x3 with padding and stride, reductions past the SIMD kernels'
/// stack rows), fully-connected rows, depthwise 3x3 / 5x5 / 7x7 over channel counts around
/// every vector width, wide multipliers and int16 activation ranges.
#[test]
fn int16_activation_kernels_match_scalar_and_exact_arithmetic() {
    use sparq_runtime::kernels::qs16::fits_i32;
    use sparq_runtime::quant::requantize;
    let sets = sets();
    let mut rng = Rng(0xA16_0008_5EED_2026);
    let i16_range = |rng: &mut Rng| match rng.next() % 3 {
        0 => (i16::MIN as i32, i16::MAX as i32),
        1 => (0, 6000 + (rng.next() % 20000) as i32),
        _ => (-((rng.next() % 30000) as i32), (rng.next() % 30000) as i32),
    };
    let (mut gemm_cases, mut dw_cases) = (0, 0);
    // GEMM: (cin, cout, kernel, stride, pad); 3x3x256 = 2304 taps exceeds the SIMD row length.
    for &(cin, cout, k, stride, pad) in &[
        (1usize, 1usize, 1usize, 1usize, 0usize),
        (3, 16, 3, 2, 1),
        (15, 7, 1, 1, 0),
        (16, 9, 1, 1, 0),
        (17, 33, 3, 1, 1),
        (32, 4, 1, 1, 0),
        (33, 5, 3, 1, 1),
        (64, 17, 1, 2, 0),
        (96, 24, 1, 1, 0),
        (256, 3, 3, 1, 1),
    ] {
        for edge in 0..3 {
            let g = square(1 + (edge as usize % 2), (5, 6), cin, cout, k, stride, pad, 1);
            let x = i16s(&mut rng, g.batch * g.in_h * g.in_w * cin, edge);
            let q = wide_quant(&mut rng, cout);
            let taps = k * k * cin;
            let wt = a16w8_weights(&mut rng, cout, taps, &q.bias, edge);
            assert!(fits_i32(&wt, &q.bias, cout, taps, false));
            let mut r = rq(&q, &mut rng);
            (r.input_zero_point, r.output_zero_point) = (0, 0);
            (r.act_min, r.act_max) = i16_range(&mut rng);
            let pixels = g.batch * g.out_h * g.out_w;
            let row_major = WeightMatrix { data: &wt, n: cout, k: taps, pack: None };
            let packed_data = SIMD_PACK.pack(cout, taps, &wt);
            let packed = WeightMatrix { data: &packed_data, n: cout, k: taps, pack: Some(SIMD_PACK) };
            let mut want = vec![0i16; pixels * cout];
            registry::SCALAR.qs16_gemm(&g, &x, &row_major, &r, &mut want);
            // Exact: the i64 sum never leaves i32, so the specification's i32 sum is it.
            for p in 0..pixels {
                let (ow, oh, n) = (p % g.out_w, (p / g.out_w) % g.out_h, p / (g.out_w * g.out_h));
                for oc in 0..cout {
                    let mut acc = q.bias[oc] as i64;
                    for kh in 0..k {
                        for kw in 0..k {
                            let (ih, iw) =
                                ((oh * stride + kh) as i64 - pad as i64, (ow * stride + kw) as i64 - pad as i64);
                            if ih < 0 || iw < 0 || ih >= g.in_h as i64 || iw >= g.in_w as i64 {
                                continue;
                            }
                            for c in 0..cin {
                                let xv = x[((n * g.in_h + ih as usize) * g.in_w + iw as usize) * cin + c] as i64;
                                acc += xv * wt[oc * taps + (kh * k + kw) * cin + c] as i64;
                            }
                        }
                    }
                    assert!(acc.abs() <= i32::MAX as i64);
                    let v = requantize(acc as i32, q.mult[oc], q.shift[oc]).clamp(r.act_min, r.act_max);
                    assert_eq!(want[p * cout + oc] as i32, v, "scalar A16W8 GEMM inexact: cin {cin} k {k}");
                }
            }
            for set in &sets {
                for (m, layout) in [(&row_major, "row-major"), (&packed, "packed")] {
                    let mut got = vec![0i16; want.len()];
                    set.qs16_gemm(&g, &x, m, &r, &mut got);
                    assert_eq!(
                        got, want,
                        "{set:?} A16W8 GEMM ({layout}) differs: cin {cin} cout {cout} k {k} stride {stride} edge {edge}"
                    );
                    // Fully-connected: the same kernel over rows of `taps` inputs.
                    if k == 1 && stride == 1 {
                        let fc = ConvGeometry::rows(pixels, cin, cout);
                        let mut rows = vec![0i16; want.len()];
                        set.qs16_gemm(&fc, &x, m, &r, &mut rows);
                        assert_eq!(
                            rows, want,
                            "{set:?} A16W8 fully-connected ({layout}) differs: cin {cin} cout {cout}"
                        );
                    }
                }
            }
            gemm_cases += 1;
        }
    }
    for &c in &[1usize, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 64, 65, 96, 144, 200] {
        for &(k, stride) in &[(3usize, 1usize), (3, 2), (5, 1), (7, 2), (1, 1)] {
            for edge in 0..3 {
                let g = square(1, (6, 7), c, c, k, stride, k / 2, c);
                let x = i16s(&mut rng, g.in_h * g.in_w * c, edge);
                let q = wide_quant(&mut rng, c);
                // [KH, KW, C]: the rule per channel, over its k*k taps.
                let per_channel = a16w8_weights(&mut rng, c, k * k, &q.bias, edge);
                let wt: Vec<i8> = (0..k * k * c).map(|i| per_channel[(i % c) * k * k + i / c]).collect();
                assert!(fits_i32(&wt, &q.bias, c, k * k, true));
                let mut r = rq(&q, &mut rng);
                (r.input_zero_point, r.output_zero_point) = (0, 0);
                (r.act_min, r.act_max) = i16_range(&mut rng);
                let mut want = vec![0i16; g.out_h * g.out_w * c];
                registry::SCALAR.qs16_dwconv(&g, &x, &wt, &r, &mut want);
                for set in &sets {
                    let mut got = vec![0i16; want.len()];
                    set.qs16_dwconv(&g, &x, &wt, &r, &mut got);
                    assert_eq!(got, want, "{set:?} A16W8 depthwise differs: c {c} k {k} stride {stride} edge {edge}");
                }
                dw_cases += 1;
            }
        }
    }
    // The rule refuses what could overflow: 127 * 32768 * 600 > 2^31.
    assert!(!fits_i32(&[127i8; 600], &[0], 1, 600, false));
    println!(
        "{gemm_cases} A16W8 GEMM cases and {dw_cases} A16W8 depthwise cases bit-exact (the scalar exact) on {:?}",
        sets
    );
}

/// The int16 add, f32 -> int16 quantization and int8 <-> int16 conversions (format 1.6) of every
/// path against their scalar specifications: multipliers over the range the compiler writes, random and extreme int16
/// operands, int16 activation ranges; exact halves, NaN, infinities and values past the int16
/// range for the quantization.
#[test]
fn int16_add_quantization_and_conversions_match_scalar() {
    use sparq_runtime::kernels::elementwise::{qs16_add_contiguous_scalar, qs16_quantize_scalar, AddParams};
    let sets = sets();
    let mut rng = Rng(0xB7E1_5162_8AED_2A6B);
    let (mut adds, mut quants) = (0, 0);
    for &len in &[0usize, 1, 7, 8, 9, 15, 16, 17, 31, 1000] {
        for edge in 0..3 {
            for _ in 0..10 {
                let a = i16s(&mut rng, len, edge);
                let b = i16s(&mut rng, len, if edge == 0 { 0 } else { 3 - edge });
                let ma = 2f64.powf(-8.0 + (rng.next() % 900) as f64 / 100.0);
                let mb = 2f64.powf(-8.0 + (rng.next() % 900) as f64 / 100.0);
                let (m, s) = quantize_multiplier(ma.max(mb));
                let (act_min, act_max) = match rng.next() % 3 {
                    0 => (i16::MIN as i32, i16::MAX as i32),
                    1 => (0, (rng.next() % 32768) as i32),
                    _ => (-((rng.next() % 32768) as i32), (rng.next() % 32768) as i32),
                };
                let p = AddParams {
                    zp_a: 0,
                    zp_b: 0,
                    zp_out: 0,
                    mult_a: (m as f64 * ma / ma.max(mb)).round() as i32,
                    mult_b: (m as f64 * mb / ma.max(mb)).round() as i32,
                    shift: s.max(2),
                    act_min,
                    act_max,
                };
                let mut want = vec![0i16; len];
                qs16_add_contiguous_scalar(&a, &b, &mut want, &p);
                for set in &sets {
                    let mut got = vec![0i16; len];
                    set.qs16_add(&a, &b, &mut got, &p);
                    assert_eq!(got, want, "{set:?} int16 add differs: len {len} {p:?}");
                }
                adds += 1;
            }
        }
        for &scale in &[1.0f32, 1.0 / 4096.0, 3.9e-5, 250.0] {
            let special =
                [0.5, -0.5, 1.5, -2.5, 0.49999997, -0.49999997, f32::NAN, f32::INFINITY, -f32::INFINITY, 4e4, -0.0];
            let x: Vec<f32> = (0..len)
                .map(|i| {
                    if i % 3 == 0 {
                        special[i % special.len()] * scale
                    } else {
                        ((rng.next() % 2_000_001) as f32 - 1.0e6) * scale / 25.0
                    }
                })
                .collect();
            let mut want = vec![0i16; len];
            qs16_quantize_scalar(&x, &mut want, scale);
            for set in &sets {
                let mut got = vec![0i16; len];
                set.qs16_quantize(&x, &mut got, scale);
                assert_eq!(got, want, "{set:?} int16 quantization differs: len {len} scale {scale}");
            }
            quants += 1;
        }
    }
    // Conversions between int8 and int16 codes, multipliers of the compiler's range (s8 / s16 up
    // to ~2^9, and back), zero points on the int8 side.
    use sparq_runtime::kernels::elementwise::{qs16_narrow_scalar, qs16_widen_scalar, Rescale};
    let mut conversions = 0;
    for &len in &[0usize, 1, 7, 8, 9, 15, 16, 17, 1000] {
        for edge in 0..3 {
            for &m in &[300.7f64, 128.0, 1.0, 0.0039, 1.0 / 256.5, 3.1e-5] {
                let (mult, shift) = quantize_multiplier(m);
                let p = Rescale { zp_in: (rng.next() % 256) as i32 - 128, zp_out: 0, mult, shift };
                let x8 = rng.i8s(len, edge);
                let mut want = vec![0i16; len];
                qs16_widen_scalar(&x8, &mut want, &p);
                let q = Rescale { zp_in: 0, zp_out: (rng.next() % 256) as i32 - 128, mult, shift };
                let x16 = i16s(&mut rng, len, edge);
                let mut want8 = vec![0i8; len];
                qs16_narrow_scalar(&x16, &mut want8, &q);
                for set in &sets {
                    let mut got = vec![0i16; len];
                    set.qs16_widen(&x8, &mut got, &p);
                    assert_eq!(got, want, "{set:?} int8 -> int16 differs: len {len} {p:?}");
                    let mut got8 = vec![0i8; len];
                    set.qs16_narrow(&x16, &mut got8, &q);
                    assert_eq!(got8, want8, "{set:?} int16 -> int8 differs: len {len} {q:?}");
                }
                conversions += 2;
            }
        }
    }
    println!(
        "{adds} int16 add, {quants} int16 quantization and {conversions} int8 <-> int16 conversion cases bit-exact on {:?}",
        sets
    );
}
