//! `Session::run` performs zero heap allocations (after `Session::new`): every generated model
//! (every op), int8 with packed and with row-major weights, f32, and a mixed int8/f32 model, on
//! every kernel set this CPU runs, with 1 and 2 threads. A counting global allocator sees every
//! allocation of the process, so this binary holds this one test only.

mod common;

use sparq_compiler::target;
use sparq_compiler::{CompileOptions, Precision};
use sparq_runtime::kernels::registry;
use sparq_runtime::{AlignedBytes, Model, Session, SessionOptions};
#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{allocations, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn run_never_allocates() {
    let mut files = Vec::new();
    for m in common::all_models() {
        let calib = common::samples(&m.input_shape, 8, 41);
        let generic = *target::find("generic").unwrap();
        let keep =
            vec![sparq_compiler::load_graph(&m.onnx, m.name, &Default::default()).unwrap().nodes[0].name.clone()];
        let variants = [
            ("int8 packed", CompileOptions::default()),
            ("int8 row-major", CompileOptions { target: generic, ..Default::default() }),
            ("f32", CompileOptions { precision: Precision::F32, ..Default::default() }),
            ("int8 + f32", CompileOptions { keep_float: keep, ..Default::default() }),
        ];
        for (what, opts) in variants {
            let c = sparq_compiler::compile(&m.onnx, m.name, &calib, &opts).unwrap();
            files.push((format!("{} {what}", m.name), c.bytes, common::samples(&m.input_shape, 1, 42).remove(0)));
        }
    }
    let sets: Vec<&str> = registry::available().map(|k| k.name()).collect();
    let mut checked = 0;
    for (name, bytes, input) in &files {
        let bytes = AlignedBytes::from_slice(bytes);
        let model = Model::from_bytes(&bytes).unwrap();
        for set in &sets {
            std::env::set_var("SPARQ_KERNELS", set);
            for threads in [1, 2] {
                let mut arena = AlignedBytes::try_zeroed(model.arena_size()).unwrap();
                let mut s = Session::with_options(
                    &model,
                    arena.as_mut_slice(),
                    SessionOptions { threads, ..Default::default() },
                )
                .unwrap();
                s.set_input(0, input).unwrap();
                // Warm: first touches. The counter then sees every thread of the process, the
                // test harness's too: on a loaded host it may allocate during a window. An
                // allocation of `run` itself happens in every window, so the test asks for one
                // clean window of 3 runs in up to 5.
                s.run();
                let counts: Vec<usize> = (0..5)
                    .map(|_| {
                        let before = allocations();
                        for _ in 0..3 {
                            s.run();
                        }
                        allocations() - before
                    })
                    .collect();
                assert!(counts.contains(&0), "{name}: run() allocated on {set} with {threads} thread(s): {counts:?}");
                checked += 1;
            }
        }
    }
    std::env::remove_var("SPARQ_KERNELS");
    println!("{checked} (model, kernel set, threads) combinations: run() made 0 allocations; sets {sets:?}");
}
