//! `sparq bench`: latency percentiles of a .sparq model, measured with the runtime in this process.

use anyhow::{anyhow, Result};
use clap::Args;
use sparq_runtime::{Model, Session};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args)]
pub struct BenchArgs {
    pub model: PathBuf,
    /// Timed runs
    #[arg(long, default_value_t = 100)]
    pub iters: usize,
    /// Untimed runs first (caches, page faults of the mapped weights)
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// Print one JSON object instead of the table
    #[arg(long)]
    pub json: bool,
    /// Also time every op (name, type, output shape, MACs, ms, share, GMAC/s)
    #[arg(long)]
    pub per_op: bool,
    /// Threads each convolution is split across (a pool started once per session)
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Another .sparq to compare against (e.g. the dense model of a pruned one): the two run
    /// alternately, run after run, and the speed-up printed is the median of each pair's
    /// baseline time / model time, so drift of a shared host's speed cancels out
    #[arg(long, value_name = "SPARQ")]
    pub baseline: Option<PathBuf>,
    /// Also write a self-contained HTML report (latency histogram with p50/p90/p99, per-layer
    /// latency bars and a sortable per-layer table; opens offline)
    #[arg(long, value_name = "HTML")]
    pub report: Option<PathBuf>,
}

/// An app's start-up on a model file: mapping and validating it (`Model::open`, whose CRC pass
/// reads every section; and without that pass), then a session (its arena allocated and the plan
/// decoded once), each with the growth of the process's resident memory (Linux).
pub struct StartUp {
    pub open_ms: f64,
    pub open_no_crc_ms: f64,
    pub session_ms: f64,
    pub rss_open: Option<i64>,
    pub rss_open_no_crc: Option<i64>,
    pub rss_session: Option<i64>,
}

/// Resident bytes of this process (Linux: `/proc/self/statm`).
fn resident_bytes() -> Option<i64> {
    #[cfg(target_os = "linux")]
    {
        let s = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: i64 = s.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as i64;
        Some(pages * page)
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Measures [`StartUp`] on `path` (already validated once by the caller): each step maps the
/// file anew, so its pages count again as it touches them.
pub fn start_up(path: &Path, threads: usize) -> Result<StartUp> {
    let delta = |a: Option<i64>, b: Option<i64>| a.zip(b).map(|(a, b)| b - a);
    let r0 = resident_bytes();
    let t = Instant::now();
    let plain = sparq_runtime::MappedModel::open_with(path, sparq_runtime::format::ParseOptions { verify_crc: false })
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let open_no_crc_ms = t.elapsed().as_secs_f64() * 1e3;
    let r1 = resident_bytes();
    let t = Instant::now();
    let mapped = crate::open_model(path)?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let r2 = resident_bytes();
    let t = Instant::now();
    let mut arena = crate::new_arena(mapped.model())?;
    let session = Session::with_options(mapped.model(), arena.as_mut_slice(), crate::session_options(threads))?;
    let session_ms = t.elapsed().as_secs_f64() * 1e3;
    let r3 = resident_bytes();
    drop((session, plain));
    Ok(StartUp {
        open_ms,
        open_no_crc_ms,
        session_ms,
        rss_open_no_crc: delta(r0, r1),
        rss_open: delta(r1, r2),
        rss_session: delta(r2, r3),
    })
}

impl StartUp {
    fn describe(&self, file_bytes: usize, arena_bytes: usize) -> String {
        let mb = |b: Option<i64>| b.map_or("?".to_string(), |b| format!("{:+.2} MB", b as f64 / 1e6));
        format!(
            "open {:.3} ms (validation with the CRC pass over the {:.2} MB file; {:.3} ms without it), session {:.3} ms; \
             resident memory {} on open without CRC, {} with it, {} for the session (arena {:.2} MB)",
            self.open_ms,
            file_bytes as f64 / 1e6,
            self.open_no_crc_ms,
            self.session_ms,
            mb(self.rss_open_no_crc),
            mb(self.rss_open),
            mb(self.rss_session),
            arena_bytes as f64 / 1e6
        )
    }
}

/// Accumulates the wall time of each op over timed runs.
struct OpTimer {
    start: Option<Instant>,
    total_ns: Vec<u128>,
}

impl sparq_runtime::Observer for OpTimer {
    fn before_op(&mut self, _op: usize) {
        self.start = Some(Instant::now());
    }
    fn after_op(&mut self, op: usize, _arena: &[u8]) {
        if let Some(t) = self.start.take() {
            self.total_ns[op] += t.elapsed().as_nanos();
        }
    }
}

/// Mean milliseconds per op over `iters` observed runs, and the kernel each op resolved to.
pub fn time_ops(model: &Model<'_>, warmup: usize, iters: usize, threads: usize) -> Result<Vec<(f64, &'static str)>> {
    let mut arena = crate::new_arena(model)?;
    let mut session = Session::with_options(model, arena.as_mut_slice(), crate::session_options(threads))?;
    for _ in 0..warmup {
        session.run();
    }
    let mut timer = OpTimer { start: None, total_ns: vec![0; model.op_count()] };
    for _ in 0..iters.max(1) {
        session.run_observed(&mut timer);
    }
    Ok(timer
        .total_ns
        .iter()
        .enumerate()
        .map(|(i, &ns)| (ns as f64 / 1e6 / iters.max(1) as f64, session.op_kernel(i).unwrap_or("-")))
        .collect())
}

/// Latency statistics in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    /// Kernel path that ran (`scalar`, `avx2`).
    pub kernels: &'static str,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub iters: usize,
}

/// Nearest-rank percentile of sorted samples.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Latency {
    /// The statistics of run times `ms` (any order).
    pub fn from_samples(kernels: &'static str, ms: &[f64]) -> Latency {
        let mut ms = ms.to_vec();
        ms.sort_by(|a, b| a.total_cmp(b));
        Latency {
            kernels,
            min: ms[0],
            mean: ms.iter().sum::<f64>() / ms.len() as f64,
            p50: percentile(&ms, 50.0),
            p90: percentile(&ms, 90.0),
            p99: percentile(&ms, 99.0),
            max: ms[ms.len() - 1],
            iters: ms.len(),
        }
    }
}

/// Fill every input with a fixed deterministic pattern.
fn fill_inputs(session: &mut Session<'_, '_>, model: &Model<'_>) -> Result<()> {
    for i in 0..model.input_count() {
        let t = model.input(i).ok_or_else(|| anyhow!("model has no input {i}"))?;
        if t.dtype == sparq_runtime::format::DType::I8 {
            // A camera-frame model (--input-dtype u8): uint8 frames.
            let frame: Vec<u8> = (0..t.elements()).map(|k| ((k * 7919) % 255) as u8).collect();
            session.set_input_u8(i, &frame)?;
            continue;
        }
        let x = session.input_mut(i)?;
        for (k, v) in x.iter_mut().enumerate() {
            *v = ((k * 7919) % 255) as f32 / 255.0 - 0.5;
        }
    }
    Ok(())
}

/// Time `iters` runs of a model (input: a fixed deterministic pattern).
pub fn time_model(model: &Model<'_>, warmup: usize, iters: usize, threads: usize) -> Result<Latency> {
    let (kernels, ms) = time_runs(model, warmup, iters, threads)?;
    Ok(Latency::from_samples(kernels, &ms))
}

/// The kernel path and the milliseconds of each of `iters` timed runs.
pub fn time_runs(model: &Model<'_>, warmup: usize, iters: usize, threads: usize) -> Result<(&'static str, Vec<f64>)> {
    if iters == 0 {
        return Err(anyhow!("--iters must be at least 1"));
    }
    let mut arena = crate::new_arena(model)?;
    let mut session = Session::with_options(model, arena.as_mut_slice(), crate::session_options(threads))?;
    fill_inputs(&mut session, model)?;
    for _ in 0..warmup {
        session.run();
    }
    let mut ms = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        session.run();
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((session.kernels(), ms))
}

/// Two models timed in alternation (which one goes first swaps every pair), and the spread of
/// the per-pair speed-up `baseline ms / model ms`.
pub struct Paired {
    pub model: Latency,
    pub baseline: Latency,
    /// Median, 10th and 90th percentile of the per-pair speed-ups.
    pub speedup: (f64, f64, f64),
    /// The model's run times (ms), in order.
    pub model_ms: Vec<f64>,
}

/// Time `iters` pairs of runs, `model` and `baseline` back to back, each on its own session.
pub fn time_paired(
    model: &Model<'_>,
    baseline: &Model<'_>,
    warmup: usize,
    iters: usize,
    threads: usize,
) -> Result<Paired> {
    if iters == 0 {
        return Err(anyhow!("--iters must be at least 1"));
    }
    let (mut arena_m, mut arena_b) = (crate::new_arena(model)?, crate::new_arena(baseline)?);
    let mut sm = Session::with_options(model, arena_m.as_mut_slice(), crate::session_options(threads))?;
    let mut sb = Session::with_options(baseline, arena_b.as_mut_slice(), crate::session_options(threads))?;
    fill_inputs(&mut sm, model)?;
    fill_inputs(&mut sb, baseline)?;
    for _ in 0..warmup {
        sm.run();
        sb.run();
    }
    let time = |s: &mut Session<'_, '_>| {
        let t = Instant::now();
        s.run();
        t.elapsed().as_secs_f64() * 1e3
    };
    let (mut ms_m, mut ms_b) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for i in 0..iters {
        if i % 2 == 0 {
            ms_m.push(time(&mut sm));
            ms_b.push(time(&mut sb));
        } else {
            ms_b.push(time(&mut sb));
            ms_m.push(time(&mut sm));
        }
    }
    let mut ratios: Vec<f64> = ms_b.iter().zip(&ms_m).map(|(b, m)| b / m).collect();
    ratios.sort_by(|a, b| a.total_cmp(b));
    let speedup = (percentile(&ratios, 50.0), percentile(&ratios, 10.0), percentile(&ratios, 90.0));
    Ok(Paired {
        model: Latency::from_samples(sm.kernels(), &ms_m),
        model_ms: ms_m,
        baseline: Latency::from_samples(sb.kernels(), &ms_b),
        speedup,
    })
}

pub fn bench(a: BenchArgs) -> Result<()> {
    let (json, text) = measure(&a)?;
    if a.json {
        println!("{json}");
    } else {
        print!("{text}");
    }
    Ok(())
}

/// Time the model as `a` says and write `--report` when asked; returns what `--json` prints
/// (also the Python package's `sparq.bench`) and the text printed otherwise.
pub fn measure(a: &BenchArgs) -> Result<(serde_json::Value, String)> {
    use std::fmt::Write;
    let mapped = crate::open_model(&a.model)?;
    let model = mapped.model();
    if a.threads == 0 {
        return Err(anyhow!("--threads must be at least 1"));
    }
    let startup = start_up(&a.model, a.threads)?;
    let base_mapped = a.baseline.as_deref().map(crate::open_model).transpose()?;
    let paired = match &base_mapped {
        Some(b) => Some(time_paired(model, b.model(), a.warmup, a.iters, a.threads)?),
        None => None,
    };
    let own_runs;
    let (l, runs): (Latency, &[f64]) = match &paired {
        Some(p) => (p.model, &p.model_ms),
        None => {
            let kernels;
            (kernels, own_runs) = time_runs(model, a.warmup, a.iters, a.threads)?;
            (Latency::from_samples(kernels, &own_runs), &own_runs)
        }
    };
    let macs: u64 = (0..model.op_count()).map(|i| model.op_macs(i)).sum();
    let base_macs: u64 =
        base_mapped.as_ref().map_or(0, |b| (0..b.model().op_count()).map(|i| b.model().op_macs(i)).sum());
    if let Some(path) = &a.report {
        // Checked before the per-op timing: an unwritable report fails before more work.
        sparq_compiler::check_output_path(path)?;
    }
    let per_op = if a.per_op || a.report.is_some() {
        Some(time_ops(model, a.warmup.min(3), a.iters.clamp(1, 20), a.threads)?)
    } else {
        None
    };
    let mut j = serde_json::json!({
        "model": a.model.display().to_string(),
        "min_ms": l.min, "mean_ms": l.mean, "p50_ms": l.p50, "p90_ms": l.p90, "p99_ms": l.p99, "max_ms": l.max,
        "iters": l.iters, "warmup": a.warmup, "threads": a.threads, "kernels": l.kernels,
        "macs": macs, "gmacs_per_s_p50": macs as f64 / (l.p50 * 1e6),
        "startup": {
            "open_ms": startup.open_ms, "open_no_crc_ms": startup.open_no_crc_ms, "session_ms": startup.session_ms,
            "rss_open_bytes": startup.rss_open, "rss_open_no_crc_bytes": startup.rss_open_no_crc,
            "rss_session_bytes": startup.rss_session, "file_bytes": mapped.bytes().len(),
            "arena_bytes": model.arena_size(),
        },
    });
    if let (Some(p), Some(path)) = (&paired, &a.baseline) {
        let b = &p.baseline;
        j["baseline"] = serde_json::json!({
            "model": path.display().to_string(),
            "min_ms": b.min, "mean_ms": b.mean, "p50_ms": b.p50, "p90_ms": b.p90, "p99_ms": b.p99, "max_ms": b.max,
            "kernels": b.kernels, "macs": base_macs,
        });
        j["speedup_median"] = p.speedup.0.into();
        j["speedup_p10"] = p.speedup.1.into();
        j["speedup_p90"] = p.speedup.2.into();
    }
    if let Some(ops) = per_op.as_ref().filter(|_| a.per_op) {
        j["per_op"] = ops
            .iter()
            .enumerate()
            .map(|(i, (ms, kernel))| {
                let o = model.op(i);
                serde_json::json!({"name": o.name, "type": sparq_format::layout::op::name(o.kind), "kernel": kernel, "macs": model.op_macs(i), "ms": ms})
            })
            .collect();
    }
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{}: {} runs after {} warm-up, {} thread(s), {} kernels",
        a.model.display(),
        l.iters,
        a.warmup,
        a.threads,
        l.kernels
    );
    let _ = writeln!(
        t,
        "  min {:.3} ms  mean {:.3} ms  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        l.min, l.mean, l.p50, l.p90, l.p99, l.max
    );
    let _ = writeln!(t, "  {:.1} M MACs, {:.2} GMAC/s at p50", macs as f64 / 1e6, macs as f64 / (l.p50 * 1e6));
    let _ = writeln!(t, "  start-up: {}", startup.describe(mapped.bytes().len(), model.arena_size()));
    if let (Some(p), Some(path)) = (&paired, &a.baseline) {
        let b = &p.baseline;
        let _ = writeln!(
            t,
            "baseline {} (run alternately with the model), {} kernels:\n  min {:.3} ms  mean {:.3} ms  p50 {:.3} ms  \
                 p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms\n  {:.1} M MACs",
            path.display(),
            b.kernels,
            b.min,
            b.mean,
            b.p50,
            b.p90,
            b.p99,
            b.max,
            base_macs as f64 / 1e6
        );
        let (med, p10, p90) = p.speedup;
        let _ = writeln!(
            t,
            "speed-up over the baseline (baseline ms / model ms per pair of runs): median {med:.3}x, \
                 p10-p90 {p10:.3}-{p90:.3}x; latency {:.3}x of the baseline's",
            1.0 / med
        );
    }
    if let Some(ops) = per_op.as_ref().filter(|_| a.per_op) {
        let total: f64 = ops.iter().map(|(ms, _)| ms).sum();
        let _ = writeln!(
            t,
            "\n  {:>4}  {:<18} {:<20} {:>10} {:>9} {:>6} {:>8}  {:<30} name",
            "#", "type", "output shape", "MACs", "ms", "%", "GMAC/s", "kernel"
        );
        for (i, &(ms, kernel)) in ops.iter().enumerate() {
            let o = model.op(i);
            let y = model.tensor(o.output(0));
            let m = model.op_macs(i);
            let rate = if m > 0 { format!("{:.2}", m as f64 / (ms * 1e6)) } else { "-".into() };
            let _ = writeln!(
                t,
                "  {:>4}  {:<18} {:<20} {:>10} {:>9.4} {:>6.1} {:>8}  {:<30} {}",
                i,
                sparq_format::layout::op::name(o.kind),
                format!("{:?}", y.shape()),
                m,
                ms,
                100.0 * ms / total,
                rate,
                kernel,
                o.name
            );
        }
    }
    if let Some(path) = &a.report {
        let mut page = crate::html::Page::new(&format!("sparq bench: {}", a.model.display()));
        page.facts(&crate::html::model_facts(&a.model, model, mapped.bytes().len()));
        page.heading("Latency");
        let mut facts = vec![
            (
                "runs".to_string(),
                format!("{} after {} warm-up, {} thread(s), {} kernels", l.iters, a.warmup, a.threads, l.kernels),
            ),
            (
                "latency".to_string(),
                format!(
                    "min {:.3} ms, p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                    l.min, l.p50, l.p90, l.p99, l.max
                ),
            ),
            ("throughput".to_string(), format!("{:.2} GMAC/s at p50", macs as f64 / (l.p50 * 1e6))),
            ("start-up".to_string(), startup.describe(mapped.bytes().len(), model.arena_size())),
        ];
        if let (Some(p), Some(path)) = (&paired, &a.baseline) {
            facts.push((
                "against the baseline".to_string(),
                format!(
                    "{}: p50 {:.3} ms; speed-up median {:.3}x (p10-p90 {:.3}-{:.3}x), runs alternated",
                    path.display(),
                    p.baseline.p50,
                    p.speedup.0,
                    p.speedup.1,
                    p.speedup.2
                ),
            ));
        }
        page.facts(&facts);
        page.latency_histogram("Latency of each timed run, p50 / p90 / p99 marked", runs)?;
        let mut layers = crate::html::layers(model)?;
        if let Some(ops) = &per_op {
            for (l, (ms, _)) in layers.iter_mut().zip(ops) {
                l.ms = Some(*ms);
            }
        }
        page.layer_section(&layers, "")?;
        page.write(path)?;
    }
    Ok((j, t))
}
