//! 32-bit ARM NEON kernels are compiled in when the target has NEON in its baseline:
//! `thumbv7neon-*` targets, or `-C target-feature=+neon`. (Stable Rust does not expose ARM
//! target features to `cfg`, hence this check.)
fn main() {
    println!("cargo::rustc-check-cfg=cfg(sparq_arm_neon)");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let target = std::env::var("TARGET").unwrap_or_default();
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let arm = std::env::var("CARGO_CFG_TARGET_ARCH").map(|a| a == "arm").unwrap_or(false);
    if arm && (target.starts_with("thumbv7neon-") || flags.contains("+neon")) {
        println!("cargo::rustc-cfg=sparq_arm_neon");
    }
}
