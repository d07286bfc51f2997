//! Compression passes over the IR: magnitude pruning ([`prune`]), structured channel pruning
//! ([`channels`]) and the least-squares re-fitting of pruned layers ([`reconstruct`]).
//!
//! Every pass has one shape, [`Pass`]: it edits the graph in place, reads what it may from a
//! [`PassContext`], and returns a [`Record`] that the report prints. `compile` builds the pipeline
//! from the options and runs the passes in order. Low-rank factorization and distillation will be
//! further implementations of [`Pass`] (with their own [`Record`] variants).

pub mod channels;
pub mod equalize;
pub mod prune;
pub mod reconstruct;
pub mod rounding;

use crate::error::Result;
use crate::ir::{Graph, Stats};

/// What a pass may read besides the graph it changes.
#[derive(Clone, Copy)]
pub struct PassContext<'a> {
    /// Calibration statistics of the *original* model (tract): ranges, per-channel means and RMS
    /// by tensor name. `None` without calibration data. Their channel counts no longer match
    /// layers an earlier pass changed.
    pub stats: Option<&'a Stats>,
    /// The calibration samples (model inputs) a pass may fit to: the re-fitting of pruned layers.
    /// Samples held out for the report's agreement are not in it; `None` when re-fitting is off
    /// (`--prune-reconstruct false`).
    pub fit: Option<&'a [Vec<f32>]>,
    /// Up to 8 calibration samples on which a pass measures what it did to the float model
    /// ([`prune::layer_impact`]); empty without calibration data.
    pub impact: &'a [Vec<f32>],
    /// Show progress bars on stderr.
    pub progress: bool,
}

/// What a pass reports: the report prints each kind in its own section.
#[derive(Clone, Debug)]
pub enum Record {
    /// The chains and residual groups whose channels were removed ([`channels`]).
    Channels(Vec<channels::ChainPruned>),
    /// Per conv / fully-connected layer: its pattern and sparsity ([`prune`]; also the survey of
    /// the model's own zeros when nothing is pruned).
    Prune(Vec<prune::LayerSparsity>),
}

/// A compression pass: edits `g` in place (weights in `g.tensors[t].value`, shapes in
/// `g.tensors[t].shape`, ops in `g.nodes[n].op`; never ONNX) and returns what it did.
///
/// Implementations: [`ChannelPruning`], [`WeightPruning`]. Low-rank factorization and
/// distillation are to be added as more.
pub trait Pass {
    /// A short name for messages and tests.
    fn name(&self) -> &'static str;
    fn run(&self, g: &mut Graph, cx: &PassContext<'_>) -> Result<Record>;
}

/// Structured channel pruning (`--prune-channels`): [`channels::prune_channels`], ranked and
/// re-fitted with the original model's statistics and the fitting samples when there are some.
pub struct ChannelPruning {
    pub fraction: f64,
    /// Also prune residual groups (`--prune-channels-residual`).
    pub residual: bool,
}

impl Pass for ChannelPruning {
    fn name(&self) -> &'static str {
        "channels"
    }

    fn run(&self, g: &mut Graph, cx: &PassContext<'_>) -> Result<Record> {
        let stats =
            cx.stats.map(|s| channels::ChannelStats { means: &s.channel_means, rms: &s.channel_rms, samples: cx.fit });
        Ok(Record::Channels(channels::prune_channels(g, self.fraction, self.residual, stats.as_ref())?))
    }
}

/// Magnitude / block / N:M weight pruning (`--prune`, `--prune-file`): [`prune::prune`] with
/// its re-fitting, then [`prune::layer_impact`] on the impact samples.
pub struct WeightPruning {
    pub policy: prune::PrunePolicy,
}

impl Pass for WeightPruning {
    fn name(&self) -> &'static str {
        "prune"
    }

    fn run(&self, g: &mut Graph, cx: &PassContext<'_>) -> Result<Record> {
        // The graph before weight pruning (after earlier passes), for `layer_impact`.
        let before = g.clone();
        // After channel pruning the statistics' channel counts no longer match the pruned
        // layers; those layers are then ranked by magnitude alone.
        let pruned_layers = g
            .nodes
            .iter()
            .filter(|n| prune::kind(&n.op).is_some_and(|k| self.policy.for_layer(&n.name, k).is_some()))
            .count();
        let pb = crate::progress::bar(pruned_layers, "re-fitting", cx.progress && cx.fit.is_some());
        let stats = cx.stats.map(|s| prune::InputStats {
            means: &s.channel_means,
            rms: &s.channel_rms,
            samples: cx.fit,
            progress: Some(&pb),
        });
        let mut record = prune::prune(g, &self.policy, stats.as_ref())?;
        pb.finish_and_clear();
        // Where pruning costs the float model its fidelity, layer by layer.
        if !cx.impact.is_empty() {
            prune::layer_impact(&before, &mut record, cx.impact)?;
        }
        Ok(Record::Prune(record))
    }
}

#[cfg(test)]
mod tests {
    use super::{channels, prune};
    use crate::calib::eval::run_graph_f32;
    use crate::ir::{Graph, Op};
    use crate::onnx::builder::{mobile_block, Rng};

    fn graph() -> Graph {
        crate::load_graph(&mobile_block(3), "test.onnx", &Default::default()).unwrap()
    }

    fn samples(n: usize) -> Vec<Vec<f32>> {
        let mut rng = Rng::new(11);
        (0..n).map(|_| rng.vec(4 * 8 * 8, 1.0)).collect()
    }

    /// The graph's outputs over `samples`, run in f32 by the runtime.
    fn outputs(g: &Graph, samples: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let mut out = Vec::new();
        run_graph_f32(g, &g.outputs, samples, &mut |_, v| {
            out.push(v[0].clone());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn the_weight_pass_prunes_in_place_and_records_it() {
        let mut g = graph();
        let before = g.clone();
        let policy = prune::PrunePolicy::parse("pw=0.5", prune::Pattern::Unstructured).unwrap();
        let record = prune::prune(&mut g, &policy, None).unwrap();
        for (node, old) in g.nodes.iter().zip(&before.nodes) {
            let (w, w0) = (
                g.value(node.inputs.get(1).copied().unwrap_or(0)),
                before.value(old.inputs.get(1).copied().unwrap_or(0)),
            );
            let zeros = w.iter().filter(|&&v| v == 0.0).count();
            let rec = record.iter().find(|r| r.name == node.name);
            match prune::kind(&node.op) {
                Some("pw") => {
                    assert_eq!(zeros, w.len() / 2, "{}", node.name);
                    let rec = rec.unwrap();
                    assert_eq!((rec.zeros, rec.weights, rec.policy.is_some()), (zeros, w.len(), true));
                }
                Some(_) => assert_eq!(w, w0, "{} is not pointwise but changed", node.name),
                None => {}
            }
        }
        // Without statistics, pruning leaves the biases alone.
        assert_eq!(g.value(g.nodes[0].inputs[2]), before.value(before.nodes[0].inputs[2]));
    }

    #[test]
    fn a_pipeline_of_passes_runs_in_order_and_records_each() {
        use super::{ChannelPruning, Pass, PassContext, Record, WeightPruning};
        let calib = samples(4);
        let policy = prune::PrunePolicy::parse("pw=0.5", prune::Pattern::Unstructured).unwrap();
        let passes: Vec<Box<dyn Pass>> = vec![
            Box::new(ChannelPruning { fraction: 0.5, residual: false }),
            Box::new(WeightPruning { policy: policy.clone() }),
        ];
        assert_eq!(passes.iter().map(|p| p.name()).collect::<Vec<_>>(), ["channels", "prune"]);
        let cx = PassContext { stats: None, fit: None, impact: &calib, progress: false };
        let mut g = graph();
        let records: Vec<Record> = passes.iter().map(|p| p.run(&mut g, &cx).unwrap()).collect();
        // The same as calling the two functions in that order.
        let mut direct = graph();
        let chains = channels::prune_channels(&mut direct, 0.5, false, None).unwrap();
        let layers = prune::prune(&mut direct, &policy, None).unwrap();
        assert_eq!(format!("{g:?}"), format!("{direct:?}"));
        match &records[..] {
            [Record::Channels(c), Record::Prune(l)] => {
                assert_eq!(format!("{c:?}"), format!("{chains:?}"));
                assert_eq!(l.len(), layers.len());
                // The weight pass also measured each pruned layer on the impact samples.
                let pruned: Vec<_> = l.iter().filter(|x| x.policy.is_some()).collect();
                assert!(!pruned.is_empty() && pruned.iter().all(|x| x.impact.is_some()), "{l:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_channel_pass_removes_channels_from_weights_groups_and_shapes() {
        let mut g = graph();
        let calib = samples(4);
        let record = channels::prune_channels(&mut g, 0.5, false, None).unwrap();
        assert_eq!(record.len(), 1, "{record:?}");
        assert_eq!((record[0].channels, record[0].removed), (32, 16));
        let shape = |t: usize| g.tensors[t].shape.clone();
        let [a, d, p] = [&g.nodes[0], &g.nodes[1], &g.nodes[2]];
        assert_eq!(shape(a.inputs[1]), [16, 4, 1, 1]);
        assert_eq!(shape(a.inputs[2]), [16]);
        assert_eq!(shape(a.outputs[0]), [1, 16, 8, 8]);
        assert_eq!(shape(d.inputs[1]), [16, 1, 3, 3]);
        assert!(matches!(d.op, Op::Conv { group: 16, .. }));
        assert_eq!(shape(d.outputs[0]), [1, 16, 8, 8]);
        assert_eq!(shape(p.inputs[1]), [8, 16, 1, 1]);
        assert!(g.macs() < graph().macs());
        // The changed graph lowers and runs.
        assert!(outputs(&g, &calib).iter().flatten().all(|v| v.is_finite()));
    }

    #[test]
    fn removing_dead_channels_with_statistics_keeps_the_outputs() {
        // Channels whose expansion filter and bias are zero carry max(0, 0) = 0 through the
        // depthwise layer's bias: removing them, with the consumer's bias absorbing their
        // mean, changes nothing.
        let mut g = graph();
        let (w, b) = (g.nodes[0].inputs[1], g.nodes[0].inputs[2]);
        for ch in 0..16 {
            g.tensors[w].value.as_mut().unwrap()[ch * 4..ch * 4 + 4].fill(0.0);
            g.tensors[b].value.as_mut().unwrap()[ch] = 0.0;
        }
        let calib = samples(8);
        let full = outputs(&g, &calib);
        let original = crate::calib::stats::calibrate_graph(
            &g,
            &calib,
            crate::calib::CalibMethod::MinMax,
            &indicatif::ProgressBar::hidden(),
        )
        .unwrap();
        let stats = &original.candidates[0].1;
        let cs = channels::ChannelStats { means: &stats.channel_means, rms: &stats.channel_rms, samples: None };
        let mut pruned = g.clone();
        channels::prune_channels(&mut pruned, 0.5, false, Some(&cs)).unwrap();
        let after = outputs(&pruned, &calib);
        let worst = full.iter().flatten().zip(after.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "outputs moved by {worst}");
    }

    #[test]
    fn a_frontier_walk_gives_what_a_full_run_gives() {
        let g = graph();
        let calib = samples(3);
        let mut walk = crate::calib::eval::Frontier::new(&g, &calib);
        for (at, node) in g.nodes.iter().enumerate() {
            walk.advance(&g, at).unwrap();
            let t = node.inputs[0];
            let mut full = Vec::new();
            if t != g.inputs[0] {
                run_graph_f32(&g, &[t], &calib, &mut |_, v| {
                    full.push(v[0].clone());
                    Ok(())
                })
                .unwrap();
            } else {
                full = calib.clone();
            }
            for (s, want) in full.iter().enumerate() {
                assert_eq!(walk.value(s, t).unwrap(), &want[..], "node {at} ({}), sample {s}", node.name);
            }
        }
        walk.advance(&g, g.nodes.len()).unwrap();
        assert_eq!(walk.value(0, g.outputs[0]).unwrap(), &outputs(&g, &calib)[0][..]);
    }

    #[test]
    fn truncated_runs_give_the_intermediate_tensors() {
        let g = graph();
        let calib = samples(2);
        let mid = g.nodes[1].outputs[0];
        let mut seen = Vec::new();
        run_graph_f32(&g, &[mid, g.outputs[0]], &calib, &mut |i, v| {
            seen.push((i, v[0].len(), v[1].len()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [(0, 32 * 8 * 8, 5), (1, 32 * 8 * 8, 5)]);
    }
}
