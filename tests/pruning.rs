//! `--prune`: the zeros land where the pattern says, the requested sparsity is reached, existing
//! sparsity is reported without a flag, and on the embedded digits model 50% pruning + int8 stays
//! within 1 point of the float model's test accuracy.

mod common;

use sparq_compiler::ir::{Graph, Op};
use sparq_compiler::prune::{LayerSparsity, Pattern, PrunePolicy};
use sparq_compiler::{eval, CompileOptions, Precision};

/// Weights of every conv (one group) / fc layer as `[rows][reduction]` in the runtime's order
/// (kernel row, kernel column, input channel).
fn matrices(g: &Graph) -> Vec<(String, usize, usize, Vec<f32>)> {
    g.nodes
        .iter()
        .filter_map(|n| {
            if !matches!(n.op, Op::Conv { group: 1, .. } | Op::Dense { .. }) {
                return None;
            }
            let w = g.value(n.inputs[1]);
            let shape = &g.tensors[n.inputs[1]].shape;
            match n.op {
                Op::Conv { group: 1, .. } => {
                    let (o, i, kh, kw) = (shape[0], shape[1], shape[2], shape[3]);
                    let k = i * kh * kw;
                    let m = (0..o * k)
                        .map(|e| {
                            let (r, c) = (e / k, e % k);
                            let (tap, ic) = (c / i, c % i);
                            w[r * k + ic * kh * kw + tap]
                        })
                        .collect();
                    Some((n.name.clone(), o, k, m))
                }
                Op::Dense { .. } => Some((n.name.clone(), shape[0], shape[1], w.to_vec())),
                _ => None,
            }
        })
        .collect()
}

fn pruned_graph(m: &common::TestModel, policy: &PrunePolicy) -> (Graph, Vec<LayerSparsity>) {
    let mut g = sparq_compiler::load_graph(&m.onnx, m.name, &Default::default()).unwrap();
    let record = sparq_compiler::prune::prune(&mut g, policy, None).unwrap();
    (g, record)
}

#[test]
fn patterns_are_where_the_policy_says() {
    for m in common::all_models() {
        // N:M along the reduction, per output channel.
        let (g, record) = pruned_graph(&m, &PrunePolicy::parse("2:4", Pattern::Unstructured).unwrap());
        for (name, n, k, w) in matrices(&g) {
            let layer = record.iter().find(|l| l.name == name).unwrap();
            if let Some(note) = &layer.note {
                // A 3x3 convolution over 1 or 3 channels: groups of 4 would span kernel taps.
                assert!(layer.policy.is_none() && note.contains("span kernel taps"), "{name}: {note}");
                assert_eq!(layer.zeros, 0, "{}: {name} was left dense but has zeros", m.name);
                continue;
            }
            assert!(layer.policy.is_some(), "{}: {name} was not pruned", m.name);
            for r in 0..n {
                for c0 in (0..k).step_by(4) {
                    let nz = (c0..(c0 + 4).min(k)).filter(|&c| w[r * k + c] != 0.0).count();
                    assert!(nz <= 2, "{}: {name} row {r} group {c0}: {nz} non-zeros", m.name);
                }
            }
        }
        // Blocks of 8 output channels x 4 reduction steps are all zero or all kept.
        let policy = PrunePolicy::parse("conv=0.6,fc=0.6", "block8x4".parse().unwrap()).unwrap();
        let (g, _) = pruned_graph(&m, &policy);
        let mut zero_blocks = 0;
        let mut blocks = 0;
        for (name, n, k, w) in matrices(&g) {
            for r0 in (0..n).step_by(8) {
                for c0 in (0..k).step_by(4) {
                    let cells: Vec<f32> = (r0..(r0 + 8).min(n))
                        .flat_map(|r| (c0..(c0 + 4).min(k)).map(move |c| (r, c)))
                        .map(|(r, c)| w[r * k + c])
                        .collect();
                    let zeros = cells.iter().filter(|&&v| v == 0.0).count();
                    // A kept block has no zeros (random weights are never exactly 0).
                    assert!(zeros == 0 || zeros == cells.len(), "{}: {name} block ({r0},{c0}) is mixed", m.name);
                    zero_blocks += (zeros == cells.len()) as usize;
                    blocks += 1;
                }
            }
        }
        let frac = zero_blocks as f64 / blocks as f64;
        println!("{:<20} block8x4 at 0.6: {zero_blocks}/{blocks} blocks zero", m.name);
        assert!((frac - 0.6).abs() < 0.1, "{}: {frac:.2} of the blocks are zero", m.name);
    }
}

#[test]
fn global_sparsity_is_reached_and_reported() {
    for m in common::all_models() {
        let calib = common::samples(&m.input_shape, 16, 31);
        let opts = CompileOptions {
            precision: Precision::F32,
            prune: Some(PrunePolicy::parse("0.5", Pattern::Unstructured).unwrap()),
            ..Default::default()
        };
        let c = sparq_compiler::compile(&m.onnx, m.name, &calib, &opts).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        let pruned: Vec<_> = c.report.sparsity.iter().filter(|l| l.policy.is_some()).collect();
        assert!(!pruned.is_empty(), "{}: nothing pruned", m.name);
        let (w, z) = pruned.iter().fold((0, 0), |(w, z), l| (w + l.weights, z + l.zeros));
        let frac = z as f64 / w as f64;
        println!("{:<20} global 0.5: {z}/{w} zeros over {} layers", m.name, pruned.len());
        assert!((frac - 0.5).abs() < 0.01, "{}: {frac:.3} sparse", m.name);
        assert!(c.report.to_string().contains("pruning"), "{}: the report does not list the pruning", m.name);
        // The pruned model runs, and its outputs are finite.
        let outs = eval::run_sparq(&c.bytes, &calib[..2], None).unwrap();
        assert!(outs.iter().flatten().flatten().all(|v| v.is_finite()));
        // Compiling a file pruned elsewhere without a flag reports the sparsity it already has.
        let bytes = sparq_compiler::onnx_builder::zero_smallest(&m.onnx, 0.5);
        let again = sparq_compiler::compile(
            &bytes,
            m.name,
            &[],
            &CompileOptions { precision: Precision::F32, ..Default::default() },
        )
        .unwrap();
        assert!(
            again.report.sparsity.iter().any(|l| l.policy.is_none() && l.sparsity() > 0.3),
            "{}: existing sparsity not detected",
            m.name
        );
    }
}

#[test]
fn bad_policies_are_rejected_with_the_reason() {
    let m = common::plain_cnn();
    let mut g = sparq_compiler::load_graph(&m.onnx, m.name, &Default::default()).unwrap();
    let policy = PrunePolicy::parse("no_such_layer=0.5", Pattern::Unstructured).unwrap();
    let e = sparq_compiler::prune::prune(&mut g, &policy, None).unwrap_err().to_string();
    assert!(e.contains("no_such_layer"), "{e}");
    for bad in ["1.2", "conv=x", "3:2"] {
        assert!(PrunePolicy::parse(bad, Pattern::Unstructured).is_err(), "{bad}");
    }
}

fn npy_f32(path: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec().unwrap())
}

/// The bar on the embedded digits model: 50% pruning (global, activation-aware) and 2:4
/// pruning, each with the kept weights re-fitted on the calibration data, then int8, lose at most
/// 1 point of test accuracy against the float model.
#[test]
fn digits_pruned_int8_stays_within_one_point() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models/digits");
    let onnx = std::fs::read(format!("{dir}/digits_cnn.onnx")).unwrap();
    let (cs, calib) = npy_f32(&format!("{dir}/calib_x.npy"));
    let (ts, test) = npy_f32(&format!("{dir}/test_x.npy"));
    let labels: Vec<i64> =
        npyz::NpyFile::new(&std::fs::read(format!("{dir}/test_y.npy")).unwrap()[..]).unwrap().into_vec().unwrap();
    let per = |s: &[usize]| s[1..].iter().product::<usize>();
    let calib: Vec<Vec<f32>> = calib.chunks(per(&cs)).map(<[f32]>::to_vec).collect();
    let test: Vec<Vec<f32>> = test.chunks(per(&ts)).map(<[f32]>::to_vec).collect();
    let accuracy = |bytes: &[u8]| {
        let outs = eval::run_sparq(bytes, &test, None).unwrap();
        let right = outs.iter().zip(&labels).filter(|(o, &y)| eval::argmax(&o[0]) as i64 == y).count();
        right as f64 / labels.len() as f64
    };
    let float = sparq_compiler::compile(
        &onnx,
        "digits",
        &[],
        &CompileOptions { precision: Precision::F32, ..Default::default() },
    )
    .unwrap();
    let a_float = accuracy(&float.bytes);
    for spec in ["0.5", "2:4"] {
        let opts = CompileOptions {
            prune: Some(PrunePolicy::parse(spec, Pattern::Unstructured).unwrap()),
            ..Default::default()
        };
        let pruned = sparq_compiler::compile(&onnx, "digits", &calib, &opts).unwrap();
        let a_pruned = accuracy(&pruned.bytes);
        let sparsity = pruned.report.sparsity.iter().filter(|l| l.policy.is_some()).fold((0, 0), |(w, z), l| {
            assert!(l.reconstructed, "{spec}: {} was not re-fitted", l.name);
            (w + l.weights, z + l.zeros)
        });
        println!(
            "digits: float {:.2}%, --prune {spec} ({} of {} weights zero) + int8 {:.2}%",
            a_float * 100.0,
            sparsity.1,
            sparsity.0,
            a_pruned * 100.0
        );
        assert!(a_pruned >= a_float - 0.01, "--prune {spec} + int8 lost {:.2} points", (a_float - a_pruned) * 100.0);
        if spec == "2:4" {
            // The one-channel 3x3 stem stays dense (its groups of 4 would span kernel taps), and
            // the report says so.
            let stem = pruned.report.sparsity.iter().find(|l| l.name.contains("stem")).unwrap();
            assert!(stem.policy.is_none() && stem.note.as_deref().unwrap_or_default().contains("span kernel taps"));
        }
    }
}

/// Block-pruned layers stored block-sparse run the sparse kernels and give exactly the outputs
/// of the same model stored dense (both int8, same calibration); the sparse file is smaller; a
/// corrupted block index is rejected at load, naming the tensor.
#[test]
fn block_sparse_storage_changes_nothing_but_size() {
    use sparq_compiler::SparseMode;
    let mut exercised = 0;
    for m in common::all_models() {
        let calib = common::samples(&m.input_shape, 16, 7);
        let compile = |sparse| {
            let opts = CompileOptions {
                prune: Some(PrunePolicy::parse("0.7", "block16x4".parse().unwrap()).unwrap()),
                sparse,
                ..Default::default()
            };
            sparq_compiler::compile(&m.onnx, m.name, &calib, &opts).unwrap_or_else(|e| panic!("{}: {e}", m.name))
        };
        let (sparse, dense) = (compile(SparseMode::Always), compile(SparseMode::Never));
        let stored: Vec<_> = sparse.report.matrices.iter().filter(|(_, k)| k.sparse).collect();
        if stored.is_empty() {
            // The global threshold pruned only matrices the sparse kernels do not take (an
            // f32-output classifier) or left no whole block empty.
            println!("{:<20} no int8 matrix with an empty 16x4 block", m.name);
            continue;
        }
        exercised += 1;
        assert!(dense.report.matrices.iter().all(|(_, k)| !k.sparse));
        assert!(sparse.report.to_string().contains("sparse16x4"), "{}: the report does not name the kernel", m.name);
        let a = eval::run_sparq(&sparse.bytes, &calib, None).unwrap();
        let b = eval::run_sparq(&dense.bytes, &calib, None).unwrap();
        assert_eq!(a, b, "{}: sparse and dense storage give different outputs", m.name);
        assert!(sparse.bytes.len() < dense.bytes.len(), "{}: the sparse file is not smaller", m.name);
        println!(
            "{:<20} {} of {} matrices block-sparse; file {} -> {} bytes; outputs identical on {} inputs",
            m.name,
            stored.len(),
            sparse.report.matrices.len(),
            dense.bytes.len(),
            sparse.bytes.len(),
            calib.len()
        );
        // Corrupt the first stored block's column index: the file no longer loads.
        let view = sparq_format::FileView::parse(&sparse.bytes).unwrap();
        // (The first one that stores a block: a layer pruned to nothing has no column index.)
        let stored_blocks = |t: &sparq_format::TensorInfo<'_>| {
            let at = view.weights_span().offset + t.data_offset + 4 * t.dims[0].div_ceil(16);
            u32::from_le_bytes(sparse.bytes[at..at + 4].try_into().unwrap())
        };
        let t = (0..view.tensor_count())
            .map(|i| view.tensor(i))
            .find(|t| t.layout == sparq_format::Layout::BlockSparse && stored_blocks(t) > 0)
            .unwrap();
        let nrb = t.dims[0].div_ceil(16);
        let at = view.weights_span().offset + t.data_offset + 4 * (nrb + 1);
        let mut bad = sparse.bytes.clone();
        bad[at..at + 2].copy_from_slice(&u16::MAX.to_le_bytes());
        // (The CRC check would catch it first; the structural check must catch it without.)
        let no_crc = sparq_format::ParseOptions { verify_crc: false };
        let e = sparq_runtime::Model::from_bytes_with(&bad, no_crc).map(|_| ()).unwrap_err().to_string();
        let tensor = format!("tensor {}", t.index);
        assert!(e.contains("block-sparse") && e.contains(&tensor), "{}: {e}", m.name);
    }
    assert!(exercised >= 3, "only {exercised} models had a block-sparse layer");
}

/// The largest change of any output between two compiled models on `inputs`, relative to the
/// first model's output (or absolute below 1).
fn worst_change(a: &[u8], b: &[u8], inputs: &[Vec<f32>]) -> f32 {
    let (a, b) = (eval::run_sparq(a, inputs, None).unwrap(), eval::run_sparq(b, inputs, None).unwrap());
    a.iter()
        .flatten()
        .flatten()
        .zip(b.iter().flatten().flatten())
        .map(|(x, y)| (x - y).abs() / x.abs().max(1.0))
        .fold(0f32, f32::max)
}

/// Channel pruning removes whole channels of a conv -> depthwise -> conv chain: the graph gets
/// smaller layers, and removing channels that carry only a constant (zero filters) changes the
/// outputs by no more than float rounding, thanks to the consumer's bias correction.
#[test]
fn channel_pruning_removes_channels_and_keeps_what_they_carried() {
    let m = common::expansion_chain(16);
    let calib = common::samples(&m.input_shape, 24, 5);
    let compile = |prune_channels| {
        let opts = CompileOptions { precision: Precision::F32, prune_channels, ..Default::default() };
        sparq_compiler::compile(&m.onnx, m.name, &calib, &opts).unwrap()
    };
    let (full, pruned) = (compile(None), compile(Some(0.25)));
    assert_eq!(pruned.report.channels.len(), 1, "one chain");
    assert_eq!((pruned.report.channels[0].channels, pruned.report.channels[0].removed), (64, 16));
    assert!(pruned.report.macs * 100 <= pruned.report.macs_before * 80, "MACs did not drop by 20%");
    assert!(pruned.report.to_string().contains("64 -> 48"));
    let worst = worst_change(&full.bytes, &pruned.bytes, &calib);
    println!(
        "expansion_chain: 64 -> 48 channels, MACs {} -> {}, worst relative output change {worst:.2e}",
        pruned.report.macs_before, pruned.report.macs
    );
    assert!(worst < 1e-4, "outputs changed by {worst}");
    assert!(pruned.bytes.len() < full.bytes.len());
    // The int8 model of the pruned graph compiles and runs too.
    let opts = CompileOptions { prune_channels: Some(0.25), ..Default::default() };
    let q = sparq_compiler::compile(&m.onnx, m.name, &calib, &opts).unwrap();
    assert!(eval::run_sparq(&q.bytes, &calib[..2], None).unwrap().iter().flatten().flatten().all(|v| v.is_finite()));
}

/// The classifier head (conv -> global average pool -> flatten -> fully-connected) is a chain
/// too: the convolution loses filters and the classifier the matching input columns (both `[N,
/// K]` and `[K, N]` Gemm weights), and removing channels that carry nothing changes nothing.
#[test]
fn channel_pruning_shrinks_the_classifier_head() {
    for trans_b in [true, false] {
        let m = common::classifier_head(16, trans_b);
        let calib = common::samples(&m.input_shape, 24, 3);
        let compile = |prune_channels| {
            let opts = CompileOptions { precision: Precision::F32, prune_channels, ..Default::default() };
            sparq_compiler::compile(&m.onnx, m.name, &calib, &opts).unwrap()
        };
        let (full, pruned) = (compile(None), compile(Some(0.25)));
        let chains = &pruned.report.channels;
        assert_eq!(chains.len(), 1, "one chain");
        assert!(chains[0].depthwise.is_none(), "a head has no depthwise layer");
        assert_eq!((chains[0].channels, chains[0].removed), (64, 16));
        assert!(pruned.report.macs < pruned.report.macs_before);
        let worst = worst_change(&full.bytes, &pruned.bytes, &calib);
        println!("classifier_head (transB {trans_b}): 64 -> 48 channels, worst relative output change {worst:.2e}");
        assert!(worst < 1e-4, "outputs changed by {worst}");
    }
}

/// A layer with more weights per channel than the re-fit takes is pruned with the bias correction
/// only, and the report says so.
#[test]
fn too_wide_layers_are_pruned_without_refit() {
    let m = common::wide_classifier();
    let calib = common::samples(&m.input_shape, 16, 4);
    let opts =
        CompileOptions { prune: Some(PrunePolicy::parse("0.5", Pattern::Unstructured).unwrap()), ..Default::default() };
    let c = sparq_compiler::compile(&m.onnx, m.name, &calib, &opts).unwrap();
    let layer = &c.report.sparsity[0];
    assert!(layer.policy.is_some() && !layer.reconstructed);
    assert!((layer.sparsity() - 0.5).abs() < 0.01);
    assert!(c.report.to_string().contains("not re-fitted: 2100 weights per channel"), "{}", c.report);
}

/// `--sparse auto` on the x86-64 profile: the 1x1 convolution and the classifier, pruned 90% in
/// 16x4 blocks, run sparse (the pointwise crossover); the 3x3 convolution over 4 channels
/// (K = 36) stays dense however sparse, as the spatial crossover says (the im2col sparse kernel
/// loses on short reductions).
#[test]
fn the_crossover_tells_pointwise_from_spatial_layers() {
    let m = common::depthwise_separable();
    let calib = common::samples(&m.input_shape, 16, 7);
    let opts = CompileOptions {
        prune: Some(PrunePolicy::parse("conv=0.9,fc=0.9", "block16x4".parse().unwrap()).unwrap()),
        target: *sparq_compiler::target::find("x86-64").unwrap(),
        ..Default::default()
    };
    let c = sparq_compiler::compile(&m.onnx, m.name, &calib, &opts).unwrap();
    let kinds: Vec<(String, bool, f64)> =
        c.report.matrices.iter().map(|(name, k)| (name.clone(), k.sparse, k.block_density)).collect();
    println!("{kinds:?}");
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    // Graph order: the 3x3 convolution, the 1x1 convolution, the classifier.
    assert!(!kinds[0].1 && kinds[0].2 < 0.7, "the pruned 3x3 convolution went sparse: {kinds:?}");
    assert!(kinds[1].1 && kinds[2].1, "pointwise layers stayed dense: {kinds:?}");
}

/// `--prune-channels-residual`: a residual group (the tensors tied by an Add) loses the same
/// channels everywhere: the 3x3 convolution and the block's last convolution, which write it,
/// lose filters; the block's first convolution and the convolution after the Add, which read it,
/// lose the matching inputs. Removing channels that carry nothing changes nothing; without the
/// option the group is left whole.
#[test]
fn residual_groups_are_pruned_consistently() {
    let m = common::residual_group(16);
    let calib = common::samples(&m.input_shape, 24, 3);
    let compile = |prune_channels, prune_channels_residual| {
        let opts =
            CompileOptions { precision: Precision::F32, prune_channels, prune_channels_residual, ..Default::default() };
        sparq_compiler::compile(&m.onnx, m.name, &calib, &opts).unwrap()
    };
    let full = compile(None, false);
    assert!(compile(Some(0.5), false).report.channels.iter().all(|c| !c.residual), "pruned without the option");
    let pruned = compile(Some(0.5), true);
    let groups: Vec<_> = pruned.report.channels.iter().filter(|c| c.residual).collect();
    assert_eq!(groups.len(), 1, "{:?}", pruned.report.channels);
    assert_eq!((groups[0].channels, groups[0].removed), (32, 16));
    assert!(pruned.report.to_string().contains("(residual group)"), "{}", pruned.report);
    assert!(pruned.report.macs * 100 <= pruned.report.macs_before * 60, "MACs did not drop by 40%");
    let worst = worst_change(&full.bytes, &pruned.bytes, &calib);
    println!(
        "residual_group: 32 -> 16 channels, MACs {} -> {}, worst relative output change {worst:.2e}",
        pruned.report.macs_before, pruned.report.macs
    );
    assert!(worst < 1e-4, "outputs changed by {worst}");
    // The int8 model compiles and runs too.
    let opts = CompileOptions { prune_channels: Some(0.5), prune_channels_residual: true, ..Default::default() };
    let q = sparq_compiler::compile(&m.onnx, m.name, &calib, &opts).unwrap();
    assert!(eval::run_sparq(&q.bytes, &calib[..2], None).unwrap().iter().flatten().flatten().all(|v| v.is_finite()));
}
