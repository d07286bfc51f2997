//! The registry tables themselves: every entry is reached by some kernel path (so the per-path
//! bit-exact tests in `kernels.rs` run it), resolution follows the features a CPU has (checked
//! for feature sets other than this host's, without calling the kernels), and the source tree's
//! modules import only from layers below them.

use sparq_runtime::kernels::conv::ConvGeometry;
use sparq_runtime::kernels::gemm::SIMD_PACK;
use sparq_runtime::kernels::registry::{self, Entry, Features, KernelSet, Query};
use sparq_runtime::kernels::spgemm::KERNEL_BLOCK;

/// A query every entry of the family accepts when its CPU features are there: packed or
/// block-sparse weights as the SIMD kernels read them, a short reduction, one group, a 3x3
/// window.
fn query(pack: Option<sparq_runtime::kernels::gemm::Pack>) -> Query {
    let geometry = ConvGeometry {
        batch: 1,
        in_h: 8,
        in_w: 8,
        in_c: 16,
        out_h: 8,
        out_w: 8,
        out_c: 16,
        kernel_h: 3,
        kernel_w: 3,
        stride_h: 1,
        stride_w: 1,
        pad_top: 1,
        pad_left: 1,
        dilation_h: 1,
        dilation_w: 1,
        groups: 1,
    };
    Query { geometry, pack, k: 144 }
}

/// The entry each path resolves for `q`, per path name.
fn reached<F: Copy>(table: &'static [Entry<F>], paths: &[KernelSet], q: &Query) -> Vec<(&'static str, &'static str)> {
    paths.iter().map(|p| (p.name(), p.entry(table, q).name)).collect()
}

fn check_family<F: Copy>(family: &str, table: &'static [Entry<F>], pack: Option<sparq_runtime::kernels::gemm::Pack>) {
    let cpu = Features::detect();
    let paths: Vec<KernelSet> = registry::available().collect();
    let q = query(pack);
    let got = reached(table, &paths, &q);
    assert_eq!(table[0].requires, Features::NONE, "{family}: the first entry must be the scalar specification");
    for e in table {
        if e.requires.is_subset_of(cpu) {
            assert!(
                got.iter().any(|&(_, name)| name == e.name),
                "{family}: entry {} runs on this CPU but no kernel path reaches it (paths: {got:?})",
                e.name
            );
        } else {
            println!("{family}: {} not run: this CPU lacks its features", e.name);
        }
    }
    println!("{family}: {got:?}");
}

#[test]
fn every_entry_this_cpu_runs_is_reached_by_a_path() {
    let paths: Vec<&str> = registry::available().map(|p| p.name()).collect();
    println!("kernel paths on this CPU: {paths:?}");
    check_family("qs8_conv", registry::QS8_CONV, None);
    check_family("qs8_dwconv", registry::QS8_DWCONV, None);
    check_family("qs8_gemm", registry::QS8_GEMM, Some(SIMD_PACK));
    check_family("qs8_spgemm", registry::QS8_SPGEMM, Some(KERNEL_BLOCK));
    check_family("qs8_fc", registry::QS8_FC, None);
    check_family("qs8_fc_f32out", registry::QS8_FC_F32OUT, Some(SIMD_PACK));
    check_family("qs8_spfc_f32out", registry::QS8_SPFC_F32OUT, Some(KERNEL_BLOCK));
    check_family("qs8_add", registry::QS8_ADD, None);
    check_family("qs8_mul", registry::QS8_MUL, None);
    check_family("qs8_quantize", registry::QS8_QUANTIZE, None);
    check_family("qs8_lut", registry::QS8_LUT, None);
    check_family("f32_conv", registry::F32_CONV, None);
    check_family("f32_dwconv", registry::F32_DWCONV, None);
    check_family("qs8_max_pool", registry::QS8_MAX_POOL, None);
    check_family("qs8_global_avg_pool", registry::QS8_GLOBAL_AVG_POOL, None);
    check_family("qs16_dwconv", registry::QS16_DWCONV, None);
    check_family("qs16_add", registry::QS16_ADD, None);
    check_family("qs16_quantize", registry::QS16_QUANTIZE, None);
    check_family("qs16_widen", registry::QS16_WIDEN, None);
    check_family("qs16_narrow", registry::QS16_NARROW, None);
    check_family("qs16_global_avg_pool", registry::QS16_GLOBAL_AVG_POOL, None);
    // Entry names are unique across the registry (they name kernels in reports and benches).
    let mut names: Vec<&str> = registry::all_entries().map(|(_, n, _)| n).collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "duplicate kernel names in the registry");
}

/// Resolution on CPUs other than this one: each subset of x86 features gets the widest kernels
/// it can run. In particular a CPU with AVX-512 VNNI but no AVX-VNNI (Cascade Lake, Ice Lake
/// servers) gets the AVX-512 kernels, and AVX-512 without VNNI (Skylake-X) its own.
#[test]
#[cfg(target_arch = "x86_64")]
fn resolution_follows_the_features_of_each_cpu_class() {
    use sparq_runtime::kernels::registry::{resolve, PATHS};
    let avx2 = Features::AVX2;
    let avx512 = avx2.union(Features::AVX512);
    let avx512vnni = avx512.union(Features::AVX512VNNI);
    let alder_lake = avx2.union(Features::AVXVNNI);
    let sapphire_rapids = avx512vnni.union(Features::AVXVNNI).union(Features::AVX512VBMI);
    let gemm = |f: Features| resolve(registry::QS8_GEMM, f, &query(Some(SIMD_PACK))).name;
    let dw = |f: Features| resolve(registry::QS8_DWCONV, f, &query(None)).name;
    let sp = |f: Features| resolve(registry::QS8_SPGEMM, f, &query(Some(KERNEL_BLOCK))).name;
    let add = |f: Features| resolve(registry::QS8_ADD, f, &query(None)).name;
    let pool = |f: Features| resolve(registry::QS8_MAX_POOL, f, &query(None)).name;

    assert_eq!(gemm(Features::NONE), "qs8_gemm_scalar");
    assert_eq!(gemm(avx2), "qs8_gemm_4x8c4_avx2");
    assert_eq!(gemm(alder_lake), "qs8_gemm_4x16c4_avxvnni");
    assert_eq!(gemm(avx512), "qs8_gemm_4x8c4_avx2");
    assert_eq!(gemm(avx512vnni), "qs8_gemm_8x32c4_avx512vnni", "AVX-512 VNNI without AVX-VNNI");
    assert_eq!(gemm(sapphire_rapids), "qs8_gemm_8x32c4_avx512vnni");
    assert_eq!(dw(avx512), "qs8_dwconv_c32_avx512");
    assert_eq!(dw(avx512vnni), "qs8_dwconv_c64_avx512vnni");
    assert_eq!(sp(avx512vnni), "qs8_spgemm_16x16c4_avx512vnni");
    assert_eq!(sp(alder_lake), "qs8_spgemm_4x8c4_avx2");
    assert_eq!(add(avx512), "qs8_add_x32_avx512");
    // Families without an AVX-512 entry keep their AVX2 kernel.
    assert_eq!(pool(avx512vnni), "qs8_max_pool_c32_avx2");

    // A kernel that does not take the shape is decided here, not per call: a reduction longer
    // than the SIMD kernels' stack rows, or weights not packed for them, resolve to scalar.
    let long = Query { k: 100_000, ..query(Some(SIMD_PACK)) };
    assert_eq!(resolve(registry::QS8_GEMM, sapphire_rapids, &long).name, "qs8_gemm_scalar");
    assert_eq!(resolve(registry::QS8_GEMM, sapphire_rapids, &query(None)).name, "qs8_gemm_scalar");
    let grouped = Query { geometry: ConvGeometry { groups: 2, ..query(None).geometry }, ..query(None) };
    assert_eq!(resolve(registry::F32_CONV, avx2, &grouped).name, "f32_conv2d_scalar");

    // Every named path's features resolve to kernels needing no more than those features.
    for p in PATHS {
        for (_, name, requires) in registry::all_entries() {
            if name.ends_with("_scalar") {
                assert_eq!(requires, Features::NONE, "{name}");
            }
        }
        assert!(resolve(registry::QS8_GEMM, p.features, &query(Some(SIMD_PACK))).requires.is_subset_of(p.features));
    }
}

/// The ARM classes: a Cortex-A72 (NEON only) takes the `smull` GEMM, an A76 / A55 the `sdot`
/// one, an Armv8.6 core (A710, Neoverse V1/N2) the `smmla` one; checked on any host.
#[test]
#[cfg(target_arch = "aarch64")]
fn arm_resolution_follows_the_features_of_each_cpu_class() {
    use sparq_runtime::kernels::registry::resolve;
    let neon = Features::NEON;
    let dotprod = neon.union(Features::DOTPROD);
    let i8mm = dotprod.union(Features::I8MM);
    let gemm = |f: Features| resolve(registry::QS8_GEMM, f, &query(Some(SIMD_PACK))).name;
    assert_eq!(gemm(neon), "qs8_gemm_4x8c4_neon");
    assert_eq!(gemm(dotprod), "qs8_gemm_4x8c4_dotprod");
    assert_eq!(gemm(i8mm), "qs8_gemm_8x8c4_i8mm");
    // i8mm without dotprod is not a class sparq targets: the dotprod entry's features are
    // missing, and so are the i8mm entry's (which needs both).
    assert_eq!(gemm(neon.union(Features::I8MM)), "qs8_gemm_4x8c4_neon");
}

/// No module of the runtime imports from a module above it, and no two import each other:
/// cpu, quant, tensor, error, pool <- kernels <- ops <- model <- session, storage.
#[test]
fn runtime_modules_import_only_from_layers_below() {
    let rank = |m: &str| match m {
        "cpu" | "quant" | "tensor" | "error" | "pool" => Some(0),
        "kernels" => Some(1),
        "ops" => Some(2),
        "model" => Some(3),
        "storage" => Some(4),
        "session" => Some(4),
        _ => None,
    };
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    let mut dirs = vec![src.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let mut checked = 0;
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let module = rel.components().next().unwrap().as_os_str().to_str().unwrap().trim_end_matches(".rs").to_string();
        let Some(own) = rank(&module) else { continue };
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + 7..];
            let dep: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if dep == module {
                continue;
            }
            if let Some(r) = rank(&dep) {
                // The leaf modules (layer 0) depend on nothing but each other's plain types.
                assert!(
                    r < own || own == 0,
                    "{} imports {dep} (layer {r}), not below its own layer {own}",
                    rel.display()
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "only {checked} imports checked");
}
