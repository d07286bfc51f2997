//! `--report FILE.html` of `compile`, `bench` and `eval`: one self-contained HTML file (inline SVG
//! plots drawn by `plotters`, inline CSS and a few lines of inline script, no external fetch: a
//! Content-Security-Policy forbids any) that opens offline in any browser.
//!
//! Every plot sits in a `<figure class="plot" data-points="N">`, N being the number of data
//! points drawn; on load, the page's script checks that each figure holds an SVG with at least
//! that many marks, and writes the result into `<body data-check>` (`ok: K plots` or what is
//! wrong), with any script error in `#errors`: what the headless-browser test reads back.

use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use sparq_format::layout::op;
use sparq_format::{DType, Storage};
use sparq_runtime::Model;
use std::fmt::Write as _;
use std::path::Path;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 320;
const INT8: RGBColor = RGBColor(0x3b, 0x6e, 0xc9);
const INT16: RGBColor = RGBColor(0xe8, 0x8a, 0x1a);
const F32: RGBColor = RGBColor(0xc9, 0x3b, 0x3b);
const OTHER: RGBColor = RGBColor(0x88, 0x88, 0x88);

/// One op of a `.sparq` file, as the report's per-layer table shows it.
#[derive(Clone, Debug)]
pub struct Layer {
    pub name: String,
    pub op: &'static str,
    pub shape: Vec<usize>,
    pub macs: u64,
    /// `i8`, `i16`, `f32`, or `in>out` for a conversion.
    pub precision: String,
    /// Bytes of the op's constant inputs (weights, biases, tables) in the file.
    pub bytes: usize,
    pub kernel: &'static str,
    /// Sparsity and pattern of its weights, when the compiler reported them.
    pub sparsity: Option<String>,
    /// Output SQNR against the float model (dB), when measured.
    pub sqnr_db: Option<f64>,
    /// Mean time per run (ms), when benched.
    pub ms: Option<f64>,
}

/// The ops of `model` with what the file says about them.
pub fn layers(model: &Model<'_>) -> Result<Vec<Layer>> {
    let (_, features) = sparq_runtime::session::kernel_path()?;
    let v = model.view();
    Ok((0..model.op_count())
        .map(|i| {
            let o = model.op(i);
            let y = model.tensor(o.output(0));
            let bytes = (0..o.input_count)
                .map(|k| v.tensor(o.input(k)))
                .filter(|t| t.storage == Storage::Constant)
                .map(|t| t.data_size)
                .sum();
            Layer {
                name: o.name.to_string(),
                op: op::name(o.kind),
                shape: y.shape().to_vec(),
                macs: model.op_macs(i),
                precision: precision(model, i),
                bytes,
                kernel: model.op_kernel(i, features).unwrap_or("-"),
                sparsity: None,
                sqnr_db: None,
                ms: None,
            }
        })
        .collect())
}

/// Colour of a layer's bar by its precision (the output's, or the wider side of a conversion).
fn colour(precision: &str) -> RGBColor {
    if precision.contains("i16") {
        INT16
    } else if precision.contains("i8") {
        INT8
    } else if precision.contains("f32") {
        F32
    } else {
        OTHER
    }
}

/// Op `i`'s precision: its output's dtype, or `in>out` for a conversion.
fn precision(model: &Model<'_>, i: usize) -> String {
    let o = model.op(i);
    let (x, y) = (model.tensor(o.input(0)), model.tensor(o.output(0)));
    if x.dtype == y.dtype {
        y.dtype.name().to_string()
    } else {
        format!("{}>{}", x.dtype.name(), y.dtype.name())
    }
}

/// An axis label: 1.2M, 350k, 12, 0.35.
fn human(v: &f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || a == 0.0 || (v.fract() == 0.0 && a >= 1.0) {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a report plot: {e:?}")
}

/// A chart of `x` by `y` (f64 axes; `y_label_width` pixels for the y labels) drawn by `draw`, as
/// an SVG document, with the series' labels boxed at `legend`.
fn svg_chart(
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    y_label_width: u32,
    legend: Option<SeriesLabelPosition>,
    draw: impl FnOnce(&mut Chart<'_, '_>) -> Result<()>,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(y_label_width)
            .build_cartesian_2d(x, y)
            .map_err(plot_err)?;
        draw(&mut chart)?;
        if let Some(at) = legend {
            chart
                .configure_series_labels()
                .position(at)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// An HTML page being assembled.
pub struct Page {
    title: String,
    body: String,
    plots: usize,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl Page {
    pub fn new(title: &str) -> Page {
        Page { title: title.to_string(), body: String::new(), plots: 0 }
    }

    pub fn heading(&mut self, text: &str) {
        let _ = writeln!(self.body, "<h2>{}</h2>", esc(text));
    }

    pub fn paragraph(&mut self, text: &str) {
        let _ = writeln!(self.body, "<p>{}</p>", esc(text));
    }

    /// Text shown as it is (a terminal report).
    pub fn preformatted(&mut self, text: &str) {
        let _ = writeln!(self.body, "<pre class=\"text\">{}</pre>", esc(text));
    }

    /// A two-column table of facts.
    pub fn facts(&mut self, rows: &[(String, String)]) {
        self.body.push_str("<table class=\"facts\">\n");
        for (k, v) in rows {
            let _ = writeln!(self.body, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
        }
        self.body.push_str("</table>\n");
    }

    /// A table sorted by clicking a column's header: each cell is (text, sort key); numeric
    /// keys sort as numbers.
    pub fn sortable(&mut self, headers: &[&str], rows: &[Vec<(String, Option<f64>)>]) {
        self.body.push_str("<table class=\"layers sortable\">\n<thead><tr>");
        for h in headers {
            let _ = write!(self.body, "<th title=\"click to sort\">{}</th>", esc(h));
        }
        self.body.push_str("</tr></thead>\n<tbody>\n");
        for r in rows {
            self.body.push_str("<tr>");
            for (text, key) in r {
                match key {
                    Some(k) if k.is_finite() => {
                        let _ = write!(self.body, "<td class=\"n\" data-v=\"{k}\">{}</td>", esc(text));
                    }
                    _ => {
                        let _ = write!(self.body, "<td>{}</td>", esc(text));
                    }
                }
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</tbody></table>\n");
    }

    fn figure(&mut self, caption: &str, svg: String, points: usize) {
        self.plots += 1;
        let _ = writeln!(
            self.body,
            "<figure class=\"plot\" data-points=\"{points}\">{svg}<figcaption>{}</figcaption></figure>",
            esc(caption)
        );
    }

    /// Bars per layer (index on x), coloured by precision, with a legend.
    pub fn layer_bars(
        &mut self,
        caption: &str,
        y_desc: &str,
        layers: &[Layer],
        value: impl Fn(&Layer) -> Option<f64>,
    ) -> Result<()> {
        let pts: Vec<(usize, f64, RGBColor)> = layers
            .iter()
            .enumerate()
            .filter_map(|(i, l)| value(l).filter(|v| v.is_finite()).map(|v| (i, v, colour(&l.precision))))
            .collect();
        if pts.is_empty() {
            return Ok(());
        }
        let lo = pts.iter().map(|p| p.1).fold(0.0f64, f64::min);
        let hi = pts.iter().map(|p| p.1).fold(0.0f64, f64::max);
        let hi = if hi > lo { hi + (hi - lo) * 0.05 } else { lo + 1.0 };
        let svg = svg_chart(0f64..layers.len() as f64, lo..hi, 64, Some(SeriesLabelPosition::UpperRight), |chart| {
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_desc("layer (# in the file, in run order)")
                .y_desc(y_desc)
                .x_label_formatter(&|v| format!("{}", *v as usize))
                .y_label_formatter(&human)
                .draw()
                .map_err(plot_err)?;
            for (name, c) in [("int8", INT8), ("int16", INT16), ("f32", F32), ("other", OTHER)] {
                if !pts.iter().any(|p| p.2 == c) {
                    continue;
                }
                chart
                    .draw_series(pts.iter().filter(|p| p.2 == c).map(|&(i, v, c)| {
                        Rectangle::new([(i as f64 + 0.12, 0f64.max(lo)), (i as f64 + 0.88, v)], c.filled())
                    }))
                    .map_err(plot_err)?
                    .label(name)
                    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
            }
            Ok(())
        })?;
        self.figure(caption, svg, pts.len());
        Ok(())
    }

    /// Histogram of run times with p50, p90 and p99 marked.
    pub fn latency_histogram(&mut self, caption: &str, ms: &[f64]) -> Result<()> {
        let mut s: Vec<f64> = ms.iter().copied().filter(|v| v.is_finite()).collect();
        s.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| crate::bench::percentile(&s, p);
        let marks = if s.is_empty() {
            Vec::new()
        } else {
            vec![("p50", pct(50.0), BLACK), ("p90", pct(90.0), INT16), ("p99", pct(99.0), F32)]
        };
        self.histogram(caption, "latency of one run (ms)", "runs", &s, 40, &marks, "ms")
    }

    /// A histogram of values (e.g. per-sample SQNR in dB).
    pub fn value_histogram(&mut self, caption: &str, x_desc: &str, values: &[f64]) -> Result<()> {
        self.histogram(caption, x_desc, "samples", values, 30, &[], "")
    }

    /// `values` in `bins` bins, with vertical lines at `marks` (label, value, colour; the value
    /// written with `unit`).
    #[allow(clippy::too_many_arguments)]
    fn histogram(
        &mut self,
        caption: &str,
        x_desc: &str,
        y_desc: &str,
        values: &[f64],
        bins: usize,
        marks: &[(&str, f64, RGBColor)],
        unit: &str,
    ) -> Result<()> {
        let v: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if v.is_empty() {
            return Ok(());
        }
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let width = if hi > lo { (hi - lo) / bins as f64 } else { (lo.abs() * 0.01).max(1e-6) };
        let mut counts = vec![0usize; bins];
        for &x in &v {
            counts[(((x - lo) / width) as usize).min(bins - 1)] += 1;
        }
        let top = *counts.iter().max().unwrap_or(&1) as f64 * 1.15;
        let x_end = lo + width * bins as f64;
        let svg = svg_chart(lo..x_end, 0f64..top, 56, None, |chart| {
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .y_label_formatter(&human)
                .draw()
                .map_err(plot_err)?;
            chart
                .draw_series(counts.iter().enumerate().filter(|(_, &c)| c > 0).map(|(b, &c)| {
                    let x0 = lo + b as f64 * width;
                    Rectangle::new([(x0 + width * 0.05, 0.0), (x0 + width * 0.95, c as f64)], INT8.filled())
                }))
                .map_err(plot_err)?;
            for (k, &(label, x, c)) in marks.iter().enumerate() {
                chart.draw_series(LineSeries::new([(x, 0.0), (x, top)], c.stroke_width(2))).map_err(plot_err)?;
                // Labels stacked (the first highest) and kept inside the plot on the right half.
                let h = if x > lo + (x_end - lo) * 0.5 { HPos::Right } else { HPos::Left };
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!(" {label} {x:.3} {unit} "),
                        (x, top * (0.99 - 0.07 * k as f64)),
                        ("sans-serif", 13).into_font().color(&c).pos(Pos::new(h, VPos::Top)),
                    )))
                    .map_err(plot_err)?;
            }
            Ok(())
        })?;
        self.figure(caption, svg, counts.iter().filter(|&&c| c > 0).count());
        Ok(())
    }

    /// Labelled bars in percent (agreement, accuracy), each with its value written above it.
    pub fn percent_bars(&mut self, caption: &str, bars: &[(String, f64)]) -> Result<()> {
        if bars.is_empty() {
            return Ok(());
        }
        let n = bars.len();
        let svg = svg_chart(0f64..n as f64, 0f64..110.0, 56, None, |chart| {
            let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n * 2 + 1)
                .x_label_formatter(&|v| {
                    let i = v.floor() as usize;
                    if (v - v.floor() - 0.5).abs() < 1e-6 && i < labels.len() {
                        labels[i].clone()
                    } else {
                        String::new()
                    }
                })
                .y_desc("%")
                .draw()
                .map_err(plot_err)?;
            chart
                .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                    Rectangle::new([(i as f64 + 0.2, 0.0), (i as f64 + 0.8, v * 100.0)], INT8.filled())
                }))
                .map_err(plot_err)?;
            chart
                .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                    Text::new(format!("{:.2}%", v * 100.0), (i as f64 + 0.38, v * 100.0 + 7.0), ("sans-serif", 14))
                }))
                .map_err(plot_err)?;
            Ok(())
        })?;
        self.figure(caption, svg, bars.len());
        Ok(())
    }

    /// Candidates as points (x: cost, y: agreement in %), the chosen one marked, the Pareto
    /// front (no other point both cheaper and better) joined by a line.
    pub fn pareto(&mut self, caption: &str, x_desc: &str, points: &[(f64, f64)], chosen: Option<usize>) -> Result<()> {
        let pts: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
        if pts.is_empty() {
            return Ok(());
        }
        let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
        for &(x, y) in &pts {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y * 100.0), y1.max(y * 100.0));
        }
        let (dx, dy) = (((x1 - x0) * 0.08).max(x1.abs() * 0.02 + 1e-9), ((y1 - y0) * 0.1).max(0.5));
        let mut front: Vec<(f64, f64)> = pts
            .iter()
            .copied()
            .filter(|&(x, y)| !pts.iter().any(|&(a, b)| (a <= x && b >= y) && (a < x || b > y)))
            .collect();
        front.sort_by(|a, b| a.0.total_cmp(&b.0));
        let svg = svg_chart(
            x0 - dx..x1 + dx,
            y0 - dy..(y1 + dy).min(100.5),
            56,
            Some(SeriesLabelPosition::LowerRight),
            |chart| {
                chart.configure_mesh().x_desc(x_desc).y_desc("agreement (%)").draw().map_err(plot_err)?;
                chart
                    .draw_series(LineSeries::new(front.iter().map(|&(x, y)| (x, y * 100.0)), OTHER.stroke_width(1)))
                    .map_err(plot_err)?
                    .label("Pareto front")
                    .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], OTHER));
                chart
                    .draw_series(pts.iter().map(|&(x, y)| Circle::new((x, y * 100.0), 4, INT8.filled())))
                    .map_err(plot_err)?
                    .label("candidate evaluated")
                    .legend(|(x, y)| Circle::new((x + 6, y), 4, INT8.filled()));
                if let Some(&(x, y)) = chosen.and_then(|c| points.get(c)) {
                    chart
                        .draw_series(std::iter::once(Circle::new((x, y * 100.0), 8, F32.stroke_width(3))))
                        .map_err(plot_err)?
                        .label("chosen")
                        .legend(|(x, y)| Circle::new((x + 6, y), 6, F32.stroke_width(2)));
                }
                Ok(())
            },
        )?;
        self.figure(caption, svg, pts.len());
        Ok(())
    }

    /// The per-layer table and plots every report shows: latency (when benched), SQNR (when
    /// measured), bytes.
    /// `sqnr_note` says on what the SQNR was measured.
    pub fn layer_section(&mut self, layers: &[Layer], sqnr_note: &str) -> Result<()> {
        let total_ms: f64 = layers.iter().filter_map(|l| l.ms).sum();
        if total_ms > 0.0 {
            self.layer_bars("Per-layer latency (mean ms per run, this machine)", "ms", layers, |l| l.ms)?;
        }
        self.layer_bars(
            &format!("Per-layer output SQNR against the float model (dB; errors accumulate downstream){sqnr_note}"),
            "SQNR (dB)",
            layers,
            |l| l.sqnr_db,
        )?;
        self.layer_bars("Size by layer: bytes of weights, biases and tables in the file", "bytes", layers, |l| {
            (l.bytes > 0).then_some(l.bytes as f64)
        })?;
        self.heading("Layers");
        self.paragraph("Click a column's header to sort by it.");
        let mut headers =
            vec!["#", "name", "op", "output shape", "MACs", "precision", "sparsity", "bytes", "SQNR (dB)"];
        if total_ms > 0.0 {
            headers.extend(["ms", "% of total"]);
        }
        headers.push("kernel");
        let rows: Vec<Vec<(String, Option<f64>)>> = layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut r = vec![
                    (i.to_string(), Some(i as f64)),
                    (l.name.clone(), None),
                    (l.op.to_string(), None),
                    (format!("{:?}", l.shape), Some(l.shape.iter().product::<usize>() as f64)),
                    (l.macs.to_string(), Some(l.macs as f64)),
                    (l.precision.clone(), None),
                    (l.sparsity.clone().unwrap_or_else(|| "-".into()), None),
                    (l.bytes.to_string(), Some(l.bytes as f64)),
                    (l.sqnr_db.map_or("-".into(), |v| format!("{v:.1}")), l.sqnr_db),
                ];
                if total_ms > 0.0 {
                    r.push((l.ms.map_or("-".into(), |v| format!("{v:.4}")), l.ms));
                    r.push((
                        l.ms.map_or("-".into(), |v| format!("{:.1}", 100.0 * v / total_ms)),
                        l.ms.map(|v| 100.0 * v / total_ms),
                    ));
                }
                r.push((l.kernel.to_string(), None));
                r
            })
            .collect();
        self.sortable(&headers, &rows);
        Ok(())
    }

    /// The page, complete.
    pub fn finish(&self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; \
             script-src 'unsafe-inline'; img-src data:\">\n\
             <meta name=\"generator\" content=\"sparq {}\">\n<title>{}</title>\n<style>{STYLE}</style>\n\
             <script>{ERRORS}</script>\n</head>\n<body data-check=\"not run\">\n<h1>{}</h1>\n{}\
             <pre id=\"errors\"></pre>\n<script>{SCRIPT}</script>\n</body></html>\n",
            env!("CARGO_PKG_VERSION"),
            esc(&self.title),
            esc(&self.title),
            self.body
        )
    }

    /// Write the page to `path` atomically (a temporary file renamed into place).
    pub fn write(&self, path: &Path) -> Result<()> {
        sparq_format::writer::write_atomic(path, self.finish().as_bytes())
            .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
        println!("wrote {} ({} plots)", path.display(), self.plots);
        Ok(())
    }
}

/// The model summary every report starts with: from the file alone.
pub fn model_facts(path: &Path, model: &Model<'_>, file_bytes: usize) -> Vec<(String, String)> {
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    let mut precisions = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..model.op_count() {
        let o = model.op(i);
        *kinds.entry(op::name(o.kind)).or_insert(0) += 1;
        if o.input_count > 1 || model.op_macs(i) > 0 {
            *precisions.entry(precision(model, i)).or_insert(0) += 1;
        }
    }
    let v = model.view();
    let mut weights = [0usize; 4];
    for i in 0..v.tensor_count() {
        let t = v.tensor(i);
        if t.storage == Storage::Constant {
            weights[t.dtype as usize] += t.data_size;
        }
    }
    let macs: u64 = (0..model.op_count()).map(|i| model.op_macs(i)).sum();
    let join = |m: Vec<String>| m.join(", ");
    vec![
        (
            "file".into(),
            format!(
                "{} ({} bytes, .sparq format {}.{})",
                path.display(),
                file_bytes,
                sparq_format::layout::VERSION_MAJOR,
                v.version_minor
            ),
        ),
        ("model".into(), model.name().to_string()),
        (
            "ops".into(),
            format!("{} ({})", model.op_count(), join(kinds.iter().map(|(k, n)| format!("{k} x{n}")).collect())),
        ),
        ("precision of computing ops".into(), join(precisions.iter().map(|(k, n)| format!("{k}: {n}")).collect())),
        ("compute".into(), format!("{:.1} M MACs", macs as f64 / 1e6)),
        (
            "constant bytes".into(),
            format!(
                "i8 {}, i16 {}, i32 {}, f32 {}",
                weights[DType::I8 as usize],
                weights.get(DType::I16 as usize).copied().unwrap_or(0),
                weights[DType::I32 as usize],
                weights[DType::F32 as usize]
            ),
        ),
        ("arena".into(), format!("{} bytes for a session", model.arena_size())),
    ]
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1000px;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}\
td{white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums}table.facts th{color:#555;font-weight:600}\
table.sortable th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}table.sortable th:hover{background:#e6eefc}\
figure{margin:16px 0}figcaption{font-size:13px;color:#444;margin-top:2px}svg{max-width:100%;height:auto}\
#errors{color:#b00}pre.text{font-size:12px;background:#f8f8f8;padding:8px;overflow-x:auto}";

/// Installed first: records script errors and console errors into `#errors` (the browser test
/// reads them back; the page itself logs nothing).
const ERRORS: &str = "window.sparqErrors=[];\
window.addEventListener('error',function(e){window.sparqErrors.push(String(e.message||e));});\
(function(){var f=console.error;console.error=function(){window.sparqErrors.push(Array.prototype.join.call(arguments,' '));f.apply(console,arguments);};})();";

/// Sorting by a column, and the self-check of the plots (see the module's doc).
const SCRIPT: &str = "document.querySelectorAll('table.sortable').forEach(function(t){\
var hs=t.querySelectorAll('th');hs.forEach(function(h,ci){var asc=true;h.addEventListener('click',function(){\
var b=t.tBodies[0];var rows=Array.prototype.slice.call(b.rows);\
rows.sort(function(x,y){var a=x.cells[ci],c=y.cells[ci];var va=a.getAttribute('data-v'),vc=c.getAttribute('data-v');\
var r=(va!==null&&vc!==null)?(parseFloat(va)-parseFloat(vc)):a.textContent.localeCompare(c.textContent);return asc?r:-r;});\
asc=!asc;rows.forEach(function(r){b.appendChild(r);});});});});\
(function(){var figs=document.querySelectorAll('figure.plot');var bad=[];\
figs.forEach(function(f,i){var s=f.querySelector('svg');var need=parseInt(f.getAttribute('data-points'),10);\
var marks=s?s.querySelectorAll('rect,circle,polyline,path,line').length:0;\
if(!s||!(need>0)||marks<need){bad.push('plot '+i+' ('+(f.querySelector('figcaption')||{}).textContent+'): '+marks+' marks for '+need+' points');}});\
var errs=document.getElementById('errors');if(window.sparqErrors.length){errs.textContent=window.sparqErrors.join('\\n');}\
document.body.setAttribute('data-check',bad.length||window.sparqErrors.length?('failed: '+bad.concat(window.sparqErrors).join('; ')):('ok: '+figs.length+' plots'));})();";
