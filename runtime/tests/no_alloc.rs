//! `Session::run` makes zero heap allocations, on every kernel set this CPU runs (so, under
//! qemu in `.ci/run`, the NEON, dotprod and armv7 sets too), with 1 and 2 threads, on the golden
//! files: f32, int8 with row-major weights, int8 with packed weights. A counting global allocator
//! sees every allocation of the process, so this binary holds this one test only. (The root
//! crate's `tests/no_alloc.rs` covers every generated model on the host.)

use sparq_runtime::kernels::registry;
use sparq_runtime::{AlignedBytes, Model, Session, SessionOptions};
#[path = "../../tests/common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{allocations, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

const FILES: [(&str, &[u8]); 3] = [
    ("f32", include_bytes!("../../tests/golden/residual_f32.sparq")),
    ("int8", include_bytes!("../../tests/golden/residual_int8.sparq")),
    ("int8 packed", include_bytes!("../../tests/golden/residual_int8_packed.sparq")),
];

#[test]
fn run_never_allocates() {
    let sets: Vec<&str> = registry::available().map(|k| k.name()).collect();
    let mut checked = 0;
    for (name, file) in FILES {
        let bytes = AlignedBytes::from_slice(file);
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
                let x = s.input_mut(0).unwrap();
                for (i, v) in x.iter_mut().enumerate() {
                    *v = ((i * 37) % 101) as f32 / 50.0 - 1.0;
                }
                s.run(); // warm: first touches
                         // The counter sees every thread of the process, the test harness's too: on a loaded
                         // host it may allocate during a window. An allocation of `run` itself happens in
                         // every window, so the test asks for one clean window of 3 runs in up to 5.
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
    println!("{checked} (golden file, kernel set, threads) combinations: run() made 0 allocations; sets {sets:?}");
}
