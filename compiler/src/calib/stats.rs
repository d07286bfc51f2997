//! Calibration statistics: every activation's range (min/max, percentiles, MSE), per-channel
//! means and root mean squares, taken from the float model over the calibration samples.

use super::reference::Reference;
use crate::error::Result;
use crate::ir::{Graph, Range, Stats};
use std::collections::HashMap;

/// How activation ranges are taken from the calibration data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CalibMethod {
    MinMax,
    /// The given percentile of all calibration values at the high end (and its mirror at the low
    /// end), from a histogram over the observed range.
    Percentile(f32),
    /// The given percentile of each sample's values, averaged over samples: robust to a few
    /// calibration images with extreme activations.
    SamplePercentile(f32),
    /// The range minimizing the expected int8 quantization error (rounding inside the range,
    /// clipping outside) over a histogram of all calibration values.
    Mse,
    /// Try min/max, global 99.99th and per-sample 99.999th percentiles; keep the one whose
    /// compiled model has the best output SQNR against the float model (measured with the runtime
    /// on fitting samples), then, segment by segment of the graph, another one's ranges where they
    /// measure better (`RANGE_SEGMENTS`).
    Auto,
}

impl std::fmt::Display for CalibMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CalibMethod::MinMax => write!(f, "minmax"),
            CalibMethod::Percentile(p) => write!(f, "percentile {p}"),
            CalibMethod::SamplePercentile(p) => write!(f, "per-sample percentile {p}"),
            CalibMethod::Mse => write!(f, "mse"),
            CalibMethod::Auto => write!(f, "auto"),
        }
    }
}

const BINS: usize = 2048;

/// Histogram of a tensor's values over `[lo, hi]`.
#[derive(Clone, Debug)]
struct Histogram {
    lo: f32,
    hi: f32,
    counts: Vec<f64>,
}

impl Histogram {
    fn new(lo: f32, hi: f32) -> Histogram {
        Histogram { lo, hi, counts: vec![0.0; BINS] }
    }
    fn add(&mut self, v: &[f32]) {
        let w = (self.hi - self.lo).max(1e-12);
        for &x in v {
            let b = (((x - self.lo) / w) * BINS as f32) as isize;
            self.counts[b.clamp(0, BINS as isize - 1) as usize] += 1.0;
        }
    }
    /// Expected squared error of quantizing to 256 levels over `[a, b]`.
    fn error(&self, a: f32, b: f32) -> f64 {
        let step = ((b - a) as f64 / 255.0).max(1e-12);
        let w = (self.hi - self.lo) as f64 / BINS as f64;
        let mut e = 0.0;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0.0 {
                continue;
            }
            let v = self.lo as f64 + (i as f64 + 0.5) * w;
            e += c * if v < a as f64 {
                (a as f64 - v).powi(2)
            } else if v > b as f64 {
                (v - b as f64).powi(2)
            } else {
                step * step / 12.0
            };
        }
        e
    }
    /// Values below which `lo_frac` and above which `hi_frac` of the samples lie.
    fn tails(&self, frac: f64) -> Range {
        let total: f64 = self.counts.iter().sum();
        let w = (self.hi - self.lo) as f64 / BINS as f64;
        let target = frac * total;
        let mut acc = 0.0;
        let mut lo = self.lo as f64;
        for (i, &c) in self.counts.iter().enumerate() {
            if acc + c > target {
                lo = self.lo as f64 + (i as f64 + (target - acc) / c) * w;
                break;
            }
            acc += c;
        }
        acc = 0.0;
        let mut hi = self.hi as f64;
        for (i, &c) in self.counts.iter().enumerate().rev() {
            if acc + c > target {
                hi = self.lo as f64 + (i as f64 + 1.0 - (target - acc) / c) * w;
                break;
            }
            acc += c;
        }
        Range { min: lo as f32, max: hi as f32 }
    }

    /// Coordinate search of the clipping range (both ends include zero): each end in turn is
    /// shrunk towards zero over a grid down to 5% of it, keeping the least error.
    fn best_range(&self) -> Range {
        let (mut a, mut b) = (self.lo.min(0.0), self.hi.max(0.0));
        // The best of `end` scaled by 1, 0.99525, ..., 0.05 under `error(candidate)`.
        let shrink = |end: f32, error: &dyn Fn(f32) -> f64| {
            (0..=200)
                .map(|k| end * (1.0 - k as f32 / 200.0 * 0.95))
                .map(|c| (error(c), c))
                .fold((f64::INFINITY, end), |best, cur| if cur.0 < best.0 { cur } else { best })
                .1
        };
        for _ in 0..2 {
            if b > 0.0 {
                b = shrink(b, &|c| self.error(a, c));
            }
            if a < 0.0 {
                a = shrink(a, &|c| self.error(c, b));
            }
        }
        Range { min: a, max: b }
    }
}

/// Running statistics for one tensor.
#[derive(Clone, Debug)]
struct Acc {
    min: f32,
    max: f32,
    /// Sums over samples of each sample's low and high percentile (SamplePercentile).
    lo_sum: f64,
    hi_sum: f64,
    n: usize,
    /// Per-channel (axis 1) sums over samples.
    channel_sum: Vec<f64>,
    /// Per-channel sums of squares.
    channel_sq: Vec<f64>,
    channel_count: f64,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            lo_sum: 0.0,
            hi_sum: 0.0,
            n: 0,
            channel_sum: Vec::new(),
            channel_sq: Vec::new(),
            channel_count: 0.0,
        }
    }
}

pub struct Calibration {
    /// Statistics per method tried (one unless the method is `Auto`).
    pub candidates: Vec<(CalibMethod, Stats)>,
    /// Float outputs of the graph for each calibration sample (for the compile report).
    pub outputs: Vec<Vec<Vec<f32>>>,
}

/// Names of the IR tensors that need calibration statistics: every node output.
pub fn activation_names(g: &Graph) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for n in &g.nodes {
        for &o in &n.outputs {
            let name = g.tensors[o].name.clone();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// Run the float model over `samples`, recording every activation's range.
/// Runs a model over every calibration sample, handing each sample's index and the values of
/// [`activation_names`] (in that order, row-major in logical NCHW order) to the callback.
pub type ForEachSample<'a> = dyn Fn(&mut dyn FnMut(usize, Vec<Vec<f32>>) -> Result<()>) -> Result<()> + 'a;

/// Run the original model `onnx` (imported as `g`) in the float reference (tract) over
/// `samples`, recording every activation's range.
pub fn calibrate(
    onnx: &[u8],
    g: &Graph,
    samples: &[Vec<f32>],
    method: CalibMethod,
    progress: &indicatif::ProgressBar,
) -> Result<Calibration> {
    calibrate_fit(onnx, g, samples, samples.len(), method, progress)
}

/// [`calibrate`] with the ranges (and channel means) taken from the first `fit` samples only; the
/// float outputs are recorded for all of them, so the others can measure the compiled model on
/// data no statistic saw.
pub fn calibrate_fit(
    onnx: &[u8],
    g: &Graph,
    samples: &[Vec<f32>],
    fit: usize,
    method: CalibMethod,
    progress: &indicatif::ProgressBar,
) -> Result<Calibration> {
    let reference = Reference::new(onnx, g, activation_names(g))?;
    let run = |f: &mut dyn FnMut(usize, Vec<Vec<f32>>) -> Result<()>| -> Result<()> {
        for (i, s) in samples.iter().enumerate() {
            f(i, reference.run(s)?)?;
        }
        Ok(())
    };
    calibrate_with(g, samples, fit, method, progress, &run)
}

/// Run `g` (a graph changed by passes, with no ONNX of its own) in f32 with sparq's runtime over
/// `samples`, recording every activation's range.
pub fn calibrate_graph(
    g: &Graph,
    samples: &[Vec<f32>],
    method: CalibMethod,
    progress: &indicatif::ProgressBar,
) -> Result<Calibration> {
    calibrate_graph_fit(g, samples, samples.len(), method, progress)
}

/// [`calibrate_graph`] with statistics from the first `fit` samples (see [`calibrate_fit`]).
pub fn calibrate_graph_fit(
    g: &Graph,
    samples: &[Vec<f32>],
    fit: usize,
    method: CalibMethod,
    progress: &indicatif::ProgressBar,
) -> Result<Calibration> {
    let names = activation_names(g);
    // The node outputs in the order of `activation_names`.
    let mut outputs: Vec<usize> = Vec::new();
    for &o in g.nodes.iter().flat_map(|n| &n.outputs) {
        if !outputs.iter().any(|&x| g.tensors[x].name == g.tensors[o].name) {
            outputs.push(o);
        }
    }
    debug_assert_eq!(outputs.len(), names.len());
    let run = |f: &mut dyn FnMut(usize, Vec<Vec<f32>>) -> Result<()>| -> Result<()> {
        super::eval::run_graph_f32(g, &outputs, samples, f)
    };
    calibrate_with(g, samples, fit, method, progress, &run)
}

/// Statistics of `g`'s activations over the first `fit` of `samples`, with the values given by
/// `run` (the outputs are kept for all samples).
fn calibrate_with(
    g: &Graph,
    samples: &[Vec<f32>],
    fit: usize,
    method: CalibMethod,
    progress: &indicatif::ProgressBar,
    run: &ForEachSample<'_>,
) -> Result<Calibration> {
    let methods: Vec<CalibMethod> = match method {
        CalibMethod::Auto => {
            vec![CalibMethod::MinMax, CalibMethod::Percentile(99.99), CalibMethod::SamplePercentile(99.999)]
        }
        m => vec![m],
    };
    let sample_p = methods.iter().find_map(|m| if let CalibMethod::SamplePercentile(p) = m { Some(*p) } else { None });
    let need_hist = methods.iter().any(|m| matches!(m, CalibMethod::Percentile(_) | CalibMethod::Mse));
    let mut names = activation_names(g);
    // The graph inputs are tracked like the activations, as the last entries.
    let mut shapes: Vec<Vec<usize>> = names
        .iter()
        .map(|n| g.tensors.iter().find(|t| &t.name == n).map(|t| t.shape.clone()).unwrap_or_default())
        .collect();
    for &i in &g.inputs {
        shapes.push(g.tensors[i].shape.clone());
        names.push(g.tensors[i].name.clone());
    }
    let lens = g.input_lens();
    let with_inputs = |vals: &mut Vec<Vec<f32>>, i: usize| {
        vals.extend(crate::data::split_sample(&samples[i], &lens).into_iter().map(|x| x.to_vec()));
    };
    // A graph output may be the graph input itself (an Identity or Dropout model).
    // (`None`: a constant output, shape arithmetic folded away.)
    let out_pos: Vec<Option<usize>> = g
        .outputs
        .iter()
        .map(|&o| {
            let p = names.iter().position(|n| *n == g.tensors[o].name);
            assert!(p.is_some() || g.is_const(o), "outputs are node outputs, the input or constants");
            p
        })
        .collect();
    let mut accs: Vec<Acc> = vec![Acc::new(); names.len()];
    let mut outputs = Vec::with_capacity(samples.len());
    let mut scratch = Vec::new();
    run(&mut |i, mut vals| {
        with_inputs(&mut vals, i);
        outputs.push(
            out_pos
                .iter()
                .zip(&g.outputs)
                .map(|(p, &o)| p.map_or_else(|| g.value(o).to_vec(), |p| vals[p].clone()))
                .collect(),
        );
        if i < fit {
            for ((acc, v), shape) in accs.iter_mut().zip(&vals).zip(&shapes) {
                record(acc, v, shape, sample_p, &mut scratch);
            }
        }
        progress.inc(1);
        Ok(())
    })?;
    let mut hists: Vec<Histogram> = Vec::new();
    if need_hist {
        // Second pass: histograms over each tensor's observed range.
        hists = accs.iter().map(|a| Histogram::new(a.min, a.max)).collect();
        run(&mut |i, mut vals| {
            if i < fit {
                with_inputs(&mut vals, i);
                for (h, v) in hists.iter_mut().zip(&vals) {
                    h.add(v);
                }
            }
            Ok(())
        })?;
    }
    let channel_means: HashMap<String, Vec<f32>> = names
        .iter()
        .zip(&accs)
        .map(|(n, a)| (n.clone(), a.channel_sum.iter().map(|&s| (s / a.channel_count.max(1.0)) as f32).collect()))
        .collect();
    let channel_rms: HashMap<String, Vec<f32>> = names
        .iter()
        .zip(&accs)
        .map(|(n, a)| (n.clone(), a.channel_sq.iter().map(|&s| (s / a.channel_count.max(1.0)).sqrt() as f32).collect()))
        .collect();
    let extremes: HashMap<String, Range> =
        names.iter().zip(&accs).map(|(n, a)| (n.clone(), Range { min: a.min, max: a.max })).collect();
    let candidates = methods
        .iter()
        .map(|&m| {
            let ranges = names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let a = &accs[i];
                    let r = match m {
                        CalibMethod::Percentile(p) => hists[i].tails(1.0 - p as f64 / 100.0),
                        CalibMethod::Mse => hists[i].best_range(),
                        CalibMethod::SamplePercentile(_) => Range {
                            min: (a.lo_sum / a.n.max(1) as f64) as f32,
                            max: (a.hi_sum / a.n.max(1) as f64) as f32,
                        },
                        _ => Range { min: a.min, max: a.max },
                    };
                    (n.clone(), r)
                })
                .collect();
            let (channel_means, channel_rms, extremes) = (channel_means.clone(), channel_rms.clone(), extremes.clone());
            (m, Stats { ranges, extremes, channel_means, channel_rms })
        })
        .collect();
    Ok(Calibration { candidates, outputs })
}

fn record(acc: &mut Acc, v: &[f32], shape: &[usize], sample_p: Option<f32>, scratch: &mut Vec<f32>) {
    if shape.len() >= 2 && shape.iter().product::<usize>() == v.len() {
        let c = shape[1];
        let inner: usize = shape[2..].iter().product();
        if acc.channel_sum.len() != c {
            acc.channel_sum = vec![0.0; c];
            acc.channel_sq = vec![0.0; c];
        }
        for (i, &x) in v.iter().enumerate() {
            let ch = (i / inner) % c;
            acc.channel_sum[ch] += x as f64;
            acc.channel_sq[ch] += x as f64 * x as f64;
        }
        acc.channel_count += (v.len() / c) as f64;
    }
    let (mn, mx) = v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    acc.min = acc.min.min(mn);
    acc.max = acc.max.max(mx);
    if let (Some(p), false) = (sample_p, v.is_empty()) {
        scratch.clear();
        scratch.extend_from_slice(v);
        let n = scratch.len();
        let k_hi = (((p as f64 / 100.0) * (n - 1) as f64).round() as usize).min(n - 1);
        let k_lo = n - 1 - k_hi;
        let hi = *scratch.select_nth_unstable_by(k_hi, |a, b| a.total_cmp(b)).1;
        let lo = *scratch.select_nth_unstable_by(k_lo, |a, b| a.total_cmp(b)).1;
        acc.lo_sum += lo as f64;
        acc.hi_sum += hi as f64;
    }
    acc.n += 1;
}
