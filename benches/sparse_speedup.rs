//! Block-sparse against dense int8, interleaved: the same numbers as the criterion group
//! `qs8_spgemm` (`cargo bench --bench kernels -- qs8_spgemm`), every 1x1 shape of MobileNetV2 at
//! 50/80/90% of its 16x4 blocks zeroed, but with the kernels timed in turn, round after round,
//! instead of one after the other for seconds each. On a shared machine whose speed drifts by
//! tens of percent from one second to the next, criterion's ratios of two separately measured
//! medians drift with it; here each round times dense and every sparsity within a few hundred
//! microseconds, and the speed-up printed is the median over rounds of that round's
//! dense time / sparse time (the ratio of the per-kernel minimums is printed beside it).
//!
//! Where a bar is missed, the bench says whether any kernel with this output stage could have met
//! it on this placement of the blocks: it also times, in the same rounds, the sparse kernel with exactly one
//! stored block in every block-row (`1/row`: one multiply-accumulate per pixel and block-row,
//! plus the whole output stage, the least a block-row that is not empty costs). `bound` is the
//! speed-up the sparsity would give if each of its non-empty block-rows cost no more than a
//! `1/row` block-row and the empty ones nothing: dense / (`1/row` x non-empty block-rows /
//! block-rows), median over rounds. A bar above its bound cannot be met on this placement of the
//! blocks (spread evenly, so as many block-rows hold a block as the count allows) but by a cheaper
//! output stage (requantization, narrowing, stores), which the dense kernel would then share, or
//! by a pruning that empties more whole block-rows.
//!
//! `cargo bench --bench sparse_speedup` (`SPARQ_KERNELS=avx2 cargo bench ...` for another set).
//! Uses nothing outside the repository.

mod common;

use common::{block_sparse_weights, bytes, mobilenet_v2_pointwise, one_block_per_row, params, rq};
use sparq_format::sparse::{encode, BlockSparse, KERNEL_BLOCK};
use sparq_runtime::kernels::gemm::{WeightMatrix, SIMD_PACK};
use sparq_runtime::kernels::registry;
use std::time::{Duration, Instant};

/// Block sparsities timed against dense, and the speed-up the acceptance bar asks at each.
const SPARSITIES: [(u32, f64); 3] = [(50, 0.0), (80, 2.0), (90, 3.0)];
/// Rounds per shape (at least; more while the shape's budget lasts).
const MIN_ROUNDS: usize = 101;
const BUDGET: Duration = Duration::from_millis(1500);
/// Calls per sample are chosen so that one sample takes at least this long (timer resolution).
const SAMPLE: Duration = Duration::from_micros(50);

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported here.
    let force = std::env::var("SPARQ_KERNELS").ok();
    let set = registry::select(force.as_deref()).expect("SPARQ_KERNELS names a set this CPU runs");
    println!(
        "kernel set {} ({} / {}); speed-up = dense / sparse, median over interleaved rounds [ratio of minimums]",
        set.name(),
        set.gemm_name(),
        set.spgemm_name()
    );
    println!(
        "{:>20}  {:>9}  {:>16}  {:>16}  {:>16}  {:>8}  {:>7}  {:>7}  rounds",
        "shape", "dense us", "50%", "80%", "90%", "1/row us", "bound80", "bound90"
    );
    let (mut met, mut above_bound) = ([0usize; 3], [0usize; 3]);
    let shapes = mobilenet_v2_pointwise();
    for (name, geo) in &shapes {
        let k = geo.in_c;
        let x = bytes(geo.in_h * geo.in_w * k, 1);
        let p = params(geo.out_c);
        let r = rq(&p);
        let mut y = vec![0i8; geo.out_h * geo.out_w * geo.out_c];
        let w = bytes(geo.out_c * k, 2);
        let packed = SIMD_PACK.pack(geo.out_c, k, &w);
        let m = WeightMatrix { data: &packed, n: geo.out_c, k, pack: Some(SIMD_PACK) };
        // The sparsities, then one stored block per block-row.
        let stores: Vec<_> = SPARSITIES
            .iter()
            .map(|&(sparsity, _)| block_sparse_weights(geo.out_c, k, sparsity))
            .chain([one_block_per_row(geo.out_c, k)])
            .map(|wz| sparq_runtime::AlignedBytes::from_slice(&encode(KERNEL_BLOCK, geo.out_c, k, &wz)))
            .collect();
        let sparse: Vec<BlockSparse> =
            stores.iter().map(|s| BlockSparse::parse(s.as_slice(), geo.out_c, k, KERNEL_BLOCK).unwrap()).collect();

        // Kernel 0 is dense, 1..=3 the sparsities, 4 one stored block per block-row.
        let one_row = 1 + SPARSITIES.len();
        let run = |i: usize, y: &mut [i8]| {
            if i == 0 {
                set.qs8_gemm(geo, &x, &m, &r, y)
            } else {
                set.qs8_spgemm(geo, &x, &sparse[i - 1], &r, y)
            }
        };
        let kernels = one_row + 1;
        // Warm up, and size a sample from the dense kernel (the slowest).
        for i in 0..kernels {
            for _ in 0..3 {
                run(i, &mut y);
            }
        }
        let t = Instant::now();
        run(0, &mut y);
        let calls = (SAMPLE.as_secs_f64() / t.elapsed().as_secs_f64().max(1e-9)).ceil().max(1.0) as usize;

        let mut times: Vec<Vec<f64>> = vec![Vec::new(); kernels];
        let start = Instant::now();
        let mut round = 0usize;
        while round < MIN_ROUNDS || start.elapsed() < BUDGET {
            // Rotate the order so that no kernel always follows the same one.
            for j in 0..kernels {
                let i = (round + j) % kernels;
                let t = Instant::now();
                for _ in 0..calls {
                    run(i, &mut y);
                }
                times[i].push(t.elapsed().as_secs_f64() * 1e6 / calls as f64);
            }
            round += 1;
        }
        let dense_min = times[0].iter().copied().fold(f64::INFINITY, f64::min);
        let mut cells = Vec::new();
        for (s, &(_, bar)) in SPARSITIES.iter().enumerate() {
            let mut paired: Vec<f64> = times[0].iter().zip(&times[s + 1]).map(|(d, sp)| d / sp).collect();
            let speedup = median(&mut paired);
            let of_min = dense_min / times[s + 1].iter().copied().fold(f64::INFINITY, f64::min);
            if bar > 0.0 && speedup >= bar {
                met[s] += 1;
            }
            cells.push(format!("{speedup:5.2}x [{of_min:5.2}x]"));
        }
        // The bound of each bar's sparsity: its share of non-empty block-rows at the `1/row` cost.
        let bounds: Vec<String> = (1..SPARSITIES.len())
            .map(|s| {
                let w = &sparse[s];
                let busy = (0..w.block_rows()).filter(|&rb| !w.blocks(rb).is_empty()).count();
                let share = busy as f64 / w.block_rows() as f64;
                let mut b: Vec<f64> = times[0].iter().zip(&times[one_row]).map(|(d, t)| d / (share * t)).collect();
                let bound = median(&mut b);
                if bound < SPARSITIES[s].1 {
                    above_bound[s] += 1;
                }
                format!("{bound:5.2}x")
            })
            .collect();
        let dense_med = median(&mut times[0].clone());
        let one_med = median(&mut times[one_row].clone());
        println!(
            "{name:>20}  {dense_med:9.1}  {:>16}  {:>16}  {:>16}  {one_med:8.1}  {:>7}  {:>7}  {round}",
            cells[0], cells[1], cells[2], bounds[0], bounds[1]
        );
    }
    for (s, &(sparsity, bar)) in SPARSITIES.iter().enumerate() {
        if bar > 0.0 {
            println!(
                "{sparsity}%: {} of {} shapes at least {bar}x faster than dense; on {} the bar is above the bound",
                met[s],
                shapes.len(),
                above_bound[s]
            );
        }
    }
}
