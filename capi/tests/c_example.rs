//! The C example (`targets/c/example.c`) compiled against `runtime/include/sparq.h` and the static
//! library, then run on the golden models: this checks that the header matches the Rust side
//! (it must compile, link and behave), that errors come back as codes and messages, and that the
//! outputs equal the Rust API's. Needs a C compiler (`$CC`, else `cc`); `.ci/run` does the same
//! for aarch64 under qemu.

use sparq_runtime::{AlignedBytes, Model, Session};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The static library, built here: `cargo test` builds the package's rlib only, and the outer
/// cargo holds the target directory, so this build uses its own (`target/capi`).
fn static_lib() -> PathBuf {
    let target_dir = repo().join("target/capi");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "sparq-capi", "--target-dir"])
        .arg(&target_dir)
        .current_dir(repo())
        .status()
        .expect("cargo");
    assert!(status.success(), "building libsparq.a failed");
    let lib = target_dir.join("release/libsparq.a");
    assert!(lib.exists(), "{} not built", lib.display());
    lib
}

fn rust_outputs(model: &Path) -> Vec<f32> {
    let bytes = AlignedBytes::from_slice(&std::fs::read(model).unwrap());
    let m = Model::from_bytes(&bytes).unwrap();
    let mut arena = AlignedBytes::zeroed(m.arena_size());
    let mut s = Session::new(&m, arena.as_mut_slice()).unwrap();
    let x = s.input_mut(0).unwrap();
    for (i, v) in x.iter_mut().enumerate() {
        *v = ((i * 37) % 101) as f32 / 50.0 - 1.0;
    }
    s.run();
    s.output(0).unwrap().to_vec()
}

#[test]
fn c_example_compiles_runs_and_matches_rust() {
    let out = std::env::temp_dir().join(format!("sparq-c-example-{}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-std=c11", "-I"])
        .arg(repo().join("runtime/include"))
        .arg(repo().join("targets/c/example.c"))
        .arg(static_lib())
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&out)
        .status()
        .expect("a C compiler");
    assert!(status.success(), "compiling the C example failed");
    for name in ["residual_f32.sparq", "residual_int8.sparq", "residual_int8_packed.sparq"] {
        let model = repo().join("tests/golden").join(name);
        for threads in ["1", "2"] {
            let run = Command::new(&out).arg(&model).arg(threads).output().unwrap();
            let stdout = String::from_utf8_lossy(&run.stdout);
            assert!(run.status.success(), "{name}: {stdout}{}", String::from_utf8_lossy(&run.stderr));
            assert!(stdout.contains("corrupted model -> invalid .sparq file"), "{stdout}");
            assert!(stdout.contains("missing file -> "), "{stdout}");
            assert!(stdout.contains("uint8 frame into an f32 input -> input 0 does not take uint8 frames"), "{stdout}");
            let line = stdout.lines().find(|l| l.starts_with("outputs:")).unwrap();
            let c: Vec<f32> = line.split_whitespace().skip(1).map(|v| v.parse().unwrap()).collect();
            assert_eq!(c, rust_outputs(&model), "{name}: C and Rust outputs differ");
        }
    }
    let _ = std::fs::remove_file(&out);
}
