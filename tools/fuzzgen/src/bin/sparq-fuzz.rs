//! `sparq-fuzz`: generate and mutate `.sparq` files, check them in child processes (a panic, a
//! signal, a timeout or an output that differs between kernel paths is a failure), name the
//! failing files, and now and then run a file through the real `sparq` CLI as well.
//!
//! `sparq-fuzz run --generated N --mutants M --seed S [--corpus F ...]`; `check-batch PATH ...`
//! is the child's side (one result line per file).

use arbitrary::Unstructured;
use clap::{Parser, Subcommand};
use sparq_fuzzgen::{check, error_class, generate, mutate, seed_bytes, Outcome};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Structure-aware fuzzing of .sparq files (generate, mutate, check)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate and mutate files, check them in batches of child processes.
    Run(RunArgs),
    /// Check files (or every .sparq file of directories) in this process, one line per file.
    CheckBatch { paths: Vec<PathBuf> },
}

#[derive(Parser)]
struct RunArgs {
    /// Files to generate.
    #[arg(long, default_value_t = 1000)]
    generated: usize,
    /// Mutants to make: of the corpus files (round-robin) and of generated files, alternately.
    #[arg(long, default_value_t = 1000)]
    mutants: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seed files to mutate.
    #[arg(long, num_args = 1..)]
    corpus: Vec<PathBuf>,
    /// Files per child process.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// A child that takes longer than this is a failure (a hang).
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// Where failing files are copied.
    #[arg(long)]
    save_dir: Option<PathBuf>,
    /// Check in this process (for qemu-user, which does not emulate a child's exec); a panic
    /// ends the run after the failing file is saved and named.
    #[arg(long)]
    in_process: bool,
    /// The `sparq` CLI to run every `--cli-every`-th file through (`inspect`, `run` per path).
    #[arg(long)]
    sparq: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    cli_every: usize,
    /// Print the distinct error messages with their counts.
    #[arg(long)]
    verbose: bool,
}

/// One case: its name (index and origin) and bytes.
struct Case {
    name: String,
    bytes: Vec<u8>,
}

/// The result line of one file, as `check-batch` prints it: name, loaded, ran, mismatch, error.
#[derive(Debug)]
struct Line {
    name: String,
    loaded: bool,
    ran: bool,
    mismatch: Option<String>,
    nonconforming: Option<String>,
    error: String,
}

impl Line {
    fn is_finding(&self) -> bool {
        self.mismatch.is_some() || self.nonconforming.is_some()
    }
}

fn format_line(name: &str, o: &Outcome) -> String {
    let mismatch = o.mismatch.as_ref().map_or("-".to_string(), |m| {
        let output = if m.output == usize::MAX { "-".to_string() } else { m.output.to_string() };
        format!("{} output {} ({})", m.run, output, m.detail)
    });
    let error = o.loaded.as_ref().err().cloned().unwrap_or_default().replace(['\t', '\n'], " ");
    let nonconforming = o.nonconforming.as_deref().unwrap_or("-");
    format!("RESULT\t{name}\t{}\t{}\t{mismatch}\t{nonconforming}\t{error}", o.is_loaded() as u8, o.ran as u8)
}

fn parse_line(s: &str) -> Option<Line> {
    let f: Vec<&str> = s.splitn(7, '\t').collect();
    if f.len() != 7 || f[0] != "RESULT" {
        return None;
    }
    Some(Line {
        name: f[1].to_string(),
        loaded: f[2] == "1",
        ran: f[3] == "1",
        mismatch: (f[4] != "-").then(|| f[4].to_string()),
        nonconforming: (f[5] != "-").then(|| f[5].to_string()),
        error: f[6].to_string(),
    })
}

fn check_batch(paths: &[PathBuf]) -> std::io::Result<()> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "sparq"))
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(p.clone());
        }
    }
    use std::io::Write;
    let stdout = std::io::stdout();
    for f in files {
        let bytes = std::fs::read(&f)?;
        let name = f.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let o = check(&bytes);
        let mut lock = stdout.lock();
        writeln!(lock, "{}", format_line(&name, &o))?;
        lock.flush()?;
    }
    Ok(())
}

/// How a child ended.
enum ChildEnd {
    Exited(ExitStatus, String),
    TimedOut(String),
}

/// Run `program args` with a timeout, collecting its stdout.
fn run_child(program: &Path, args: &[&std::ffi::OsStr], env: Option<(&str, &str)>, timeout: Duration) -> ChildEnd {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return ChildEnd::Exited(ExitStatus::default(), format!("cannot start {}: {e}", program.display())),
    };
    // Drain stdout and stderr on threads so a chatty child never blocks on a full pipe.
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>));
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let stdout = out.join().unwrap_or_default();
                let stderr = err.join().unwrap_or_default();
                return ChildEnd::Exited(status, stdout + &stderr);
            }
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return ChildEnd::TimedOut(out.join().unwrap_or_default());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return ChildEnd::Exited(ExitStatus::default(), format!("wait failed: {e}")),
        }
    }
}

fn describe(status: &ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("killed by signal {sig}");
        }
    }
    match status.code() {
        Some(101) => "panicked (exit 101)".into(),
        Some(c) => format!("exit {c}"),
        None => "no exit code".into(),
    }
}

#[derive(Default)]
struct Stats {
    files: usize,
    loaded: usize,
    ran: usize,
    mismatches: usize,
    nonconforming: usize,
    errors: BTreeMap<String, usize>,
    cli_runs: usize,
    /// (case name, what went wrong)
    failures: Vec<(String, String)>,
}

impl Stats {
    fn add(&mut self, l: &Line) {
        self.files += 1;
        self.loaded += l.loaded as usize;
        self.ran += l.ran as usize;
        if !l.loaded {
            *self.errors.entry(error_class(&l.error)).or_default() += 1;
        }
        if let Some(m) = &l.mismatch {
            self.mismatches += 1;
            self.failures.push((l.name.clone(), format!("outputs differ: {m}")));
        }
        if let Some(m) = &l.nonconforming {
            self.nonconforming += 1;
            self.failures.push((l.name.clone(), format!("nonconforming: {m}")));
        }
    }
}

fn save(args: &RunArgs, name: &str, bytes: &[u8]) -> Option<PathBuf> {
    let dir = args.save_dir.as_ref()?;
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(name);
    std::fs::write(&path, bytes).ok()?;
    Some(path)
}

/// The case being checked in-process, for the panic hook to save and name.
static CURRENT: Mutex<Option<(String, Vec<u8>, Instant)>> = Mutex::new(None);

/// Save the case being checked in-process (for the panic hook and the watchdog).
fn save_current(save_dir: Option<&PathBuf>, name: &str, bytes: &[u8]) -> Option<PathBuf> {
    let d = save_dir?;
    std::fs::create_dir_all(d).ok()?;
    std::fs::write(d.join(name), bytes).ok().map(|_| d.join(name))
}

fn check_in_process(args: &RunArgs, cases: &[Case], stats: &mut Stats) {
    for c in cases {
        *CURRENT.lock().unwrap() = Some((c.name.clone(), c.bytes.clone(), Instant::now()));
        let o = check(&c.bytes);
        if let Some(l) = parse_line(&format_line(&c.name, &o)) {
            stats.add(&l);
            if l.is_finding() {
                save(args, &c.name, &c.bytes);
            }
        }
    }
    *CURRENT.lock().unwrap() = None;
}

/// A failure's class: its text with numbers replaced (as errors are), except the source
/// location of a panic (a different line is a different defect), and without the thread id.
fn failure_class(what: &str) -> String {
    let Some(at) = what.find("panicked at ") else { return error_class(what) };
    let head = &what[..at];
    let head = head.find("thread '").map_or(head, |t| &head[..t]);
    let rest = &what[at + "panicked at ".len()..];
    let (location, message) = rest.split_once(": ").unwrap_or((rest, ""));
    format!("{}panicked at {location}: {}", error_class(head), error_class(message))
}

/// What a failed child printed about its panic: the `panicked at` line and the message after it.
fn panic_text(out: &str) -> String {
    let at = out.lines().find(|l| l.contains("panicked at")).unwrap_or("").trim();
    let msg = out.lines().skip_while(|l| !l.contains("panicked at")).nth(1).unwrap_or("").trim();
    format!("{at} {msg}").trim().to_string()
}

/// Check `cases` in child processes: one child for the batch; when it dies (panic, signal,
/// timeout), the first file without a result line is run alone to confirm and name the failure,
/// and a new child takes the rest.
fn check_in_children(args: &RunArgs, cases: &[Case], batch_no: usize, stats: &mut Stats) {
    let dir = std::env::temp_dir().join(format!("sparq-fuzz-{}-{batch_no}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot create the batch directory");
    for c in cases {
        std::fs::write(dir.join(&c.name), &c.bytes).expect("cannot write a batch file");
    }
    let me = std::env::current_exe().expect("own executable");
    let timeout = Duration::from_secs(args.timeout_secs);
    let child = |files: &[&Case]| {
        let mut argv: Vec<std::ffi::OsString> = vec!["check-batch".into()];
        argv.extend(files.iter().map(|c| dir.join(&c.name).into_os_string()));
        let argv: Vec<&std::ffi::OsStr> = argv.iter().map(|a| a.as_os_str()).collect();
        match run_child(&me, &argv, None, timeout) {
            ChildEnd::Exited(status, out) if status.success() => (out, None),
            ChildEnd::Exited(status, out) => {
                let why = format!("{}: {}", describe(&status), panic_text(&out));
                (out, Some(why))
            }
            ChildEnd::TimedOut(out) => (out, Some(format!("timed out after {} s", args.timeout_secs))),
        }
    };
    let mut rest: Vec<&Case> = cases.iter().collect();
    while !rest.is_empty() {
        let (out, died) = child(&rest);
        let lines: Vec<Line> = out.lines().filter_map(parse_line).collect();
        for l in &lines {
            stats.add(l);
            if l.is_finding() {
                if let Some(c) = rest.iter().find(|c| c.name == l.name) {
                    save(args, &c.name, &c.bytes);
                }
            }
        }
        let done = lines.len().min(rest.len());
        if done == rest.len() {
            break;
        }
        let culprit = rest[done];
        let mut counted = false;
        let failure = if rest.len() == 1 {
            Some(died.unwrap_or_else(|| "no result line".into()))
        } else {
            eprintln!(
                "batch {batch_no}: child {}; running {} alone",
                died.as_deref().unwrap_or("gave no result"),
                culprit.name
            );
            let (out, died) = child(&[culprit]);
            match (died, out.lines().find_map(parse_line)) {
                (None, Some(l)) => {
                    // Passed alone: the failure depended on what ran before it in the batch.
                    stats.add(&l);
                    counted = true;
                    Some("failed only after the files before it in its batch (state kept across files?)".into())
                }
                (died, _) => Some(died.unwrap_or_else(|| "no result line".into())),
            }
        };
        if let Some(f) = failure {
            stats.files += !counted as usize;
            save(args, &culprit.name, &culprit.bytes);
            stats.failures.push((culprit.name.clone(), f));
        }
        rest.drain(..=done);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An `.npy` (version 1.0) of f32 values.
fn npy(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_s = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_s}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// `sparq inspect F` and `sparq run F` once per kernel path: exit status 0 or 1 only, and the
/// same output file on every path.
fn check_cli(args: &RunArgs, sparq: &Path, c: &Case, stats: &mut Stats) {
    let dir = std::env::temp_dir().join(format!("sparq-fuzz-cli-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let model = dir.join(&c.name);
    std::fs::write(&model, &c.bytes).expect("cannot write the CLI case");
    let aligned = sparq_runtime::AlignedBytes::from_slice(&c.bytes);
    let shape = sparq_runtime::Model::from_bytes(aligned.as_slice())
        .ok()
        .and_then(|m| m.input(0).map(|t| t.shape().to_vec()))
        .unwrap_or_else(|| vec![1]);
    let count: usize = shape.iter().product();
    let values: Vec<f32> = (0..count).map(|i| ((i * 37 + 11) % 23) as f32 * 0.25 - 2.75).collect();
    let input = dir.join("in.npy");
    std::fs::write(&input, npy(&shape, &values)).expect("cannot write the CLI input");
    let timeout = Duration::from_secs(args.timeout_secs);
    stats.cli_runs += 1;
    let bad = |end: &ChildEnd| match end {
        ChildEnd::Exited(s, out) if !matches!(s.code(), Some(0) | Some(1)) => {
            let panic = out.lines().find(|l| l.contains("panicked")).unwrap_or("").trim().to_string();
            Some(format!("{} {panic}", describe(s)))
        }
        ChildEnd::TimedOut(_) => Some("timed out".into()),
        _ => None,
    };
    let end = run_child(sparq, &["inspect".as_ref(), model.as_os_str()], None, timeout);
    let mut failure = bad(&end).map(|f| format!("sparq inspect: {f}"));
    let mut first: Option<(String, Vec<u8>)> = None;
    for (path, _) in sparq_fuzzgen::check::paths() {
        if failure.is_some() {
            break;
        }
        let out = dir.join(format!("out-{path}.npy"));
        let _ = std::fs::remove_file(&out);
        let run_args = [
            "run".as_ref(),
            model.as_os_str(),
            "--input".as_ref(),
            input.as_os_str(),
            "--output".as_ref(),
            out.as_os_str(),
        ];
        let end = run_child(sparq, &run_args, Some(("SPARQ_KERNELS", path)), timeout);
        if let Some(f) = bad(&end) {
            failure = Some(format!("sparq run (SPARQ_KERNELS={path}): {f}"));
            break;
        }
        let written = std::fs::read(&out).ok().map(|b| sparq_fuzzgen::check::canonical_npy(&b));
        match (&first, written) {
            (None, Some(w)) => first = Some((path.to_string(), w)),
            (Some((p0, w0)), Some(w)) if *w0 != w => {
                failure = Some(format!("sparq run: output on {path} differs from {p0}"));
            }
            (Some((p0, _)), None) => failure = Some(format!("sparq run: wrote an output on {p0}, not on {path}")),
            _ => {}
        }
    }
    if let Some(f) = failure {
        save(args, &c.name, &c.bytes);
        stats.failures.push((c.name.clone(), f));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn run(args: RunArgs) -> i32 {
    let start = Instant::now();
    let mut corpus = Vec::new();
    for p in &args.corpus {
        match std::fs::read(p) {
            Ok(b) => corpus.push(b),
            Err(e) => {
                eprintln!("cannot read {}: {e}", p.display());
                return 2;
            }
        }
    }
    if args.in_process {
        let save_dir = args.save_dir.clone();
        let default = std::panic::take_hook();
        let hook_dir = save_dir.clone();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(guard) = CURRENT.try_lock() {
                if let Some((name, bytes, _)) = guard.as_ref() {
                    let saved = save_current(hook_dir.as_ref(), name, bytes);
                    eprintln!("sparq-fuzz: FAILURE {name}: panicked (saved: {saved:?})");
                }
            }
            default(info);
        }));
        // The watchdog: a file checked for longer than the timeout is a hang; name it and stop.
        let timeout = Duration::from_secs(args.timeout_secs);
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            let guard = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((name, bytes, started)) = guard.as_ref() {
                if started.elapsed() > timeout {
                    let saved = save_current(save_dir.as_ref(), name, bytes);
                    eprintln!("sparq-fuzz: FAILURE {name}: timed out after {} s (saved: {saved:?})", timeout.as_secs());
                    std::process::exit(1);
                }
            }
        });
    }
    let mut stats = Stats::default();
    let mut generated: Vec<Vec<u8>> = Vec::new();
    let total = args.generated + args.mutants;
    let mut gen_errors = 0usize;
    let mut batch: Vec<Case> = Vec::new();
    let mut batch_no = 0;
    let flush = |batch: &mut Vec<Case>, batch_no: &mut usize, stats: &mut Stats| {
        if batch.is_empty() {
            return;
        }
        if args.in_process {
            check_in_process(&args, batch, stats);
        } else {
            check_in_children(&args, batch, *batch_no, stats);
        }
        if let (Some(sparq), true) = (&args.sparq, args.cli_every > 0) {
            for c in batch.iter().filter(|c| c.name[1..7].parse::<usize>().is_ok_and(|i| i % args.cli_every == 0)) {
                check_cli(&args, sparq, c, stats);
            }
        }
        *batch_no += 1;
        batch.clear();
    };
    for i in 0..total {
        let case = if i < args.generated {
            let data = seed_bytes(args.seed.wrapping_mul(0x1000_0000_01B3) ^ i as u64, 8192);
            match generate(&mut Unstructured::new(&data)) {
                Ok(bytes) => {
                    if generated.len() < 4096 {
                        generated.push(bytes.clone());
                    }
                    Case { name: format!("f{i:06}-gen.sparq"), bytes }
                }
                Err(_) => {
                    gen_errors += 1;
                    continue;
                }
            }
        } else {
            let j = i - args.generated;
            let data = seed_bytes(args.seed.wrapping_mul(0x1000_0000_01B3) ^ (1 << 63) ^ j as u64, 4096);
            let (origin, parent): (String, &[u8]) =
                if !corpus.is_empty() && (j.is_multiple_of(2) || generated.is_empty()) {
                    let k = (j / 2) % corpus.len();
                    (format!("c{k}"), &corpus[k])
                } else if !generated.is_empty() {
                    let k = j % generated.len();
                    (format!("g{k}"), &generated[k])
                } else {
                    continue;
                };
            match mutate(parent, &mut Unstructured::new(&data)) {
                Ok(bytes) => Case { name: format!("f{i:06}-mut-{origin}.sparq"), bytes },
                Err(_) => {
                    gen_errors += 1;
                    continue;
                }
            }
        };
        batch.push(case);
        if batch.len() >= args.batch.max(1) {
            flush(&mut batch, &mut batch_no, &mut stats);
        }
    }
    flush(&mut batch, &mut batch_no, &mut stats);
    let secs = start.elapsed().as_secs_f64();
    let n_gen = args.generated.min(total);
    println!(
        "sparq-fuzz: {} files ({} generated, {} mutated{}), {} loaded ({:.1}%), {} ran, {} distinct errors, {} \
         mismatches, {} nonconforming, {} CLI checks, {} failures, {:.1} s ({:.0} files/s); kernel paths {}",
        stats.files,
        n_gen,
        total - n_gen,
        if gen_errors > 0 { format!(", {gen_errors} not made") } else { String::new() },
        stats.loaded,
        100.0 * stats.loaded as f64 / stats.files.max(1) as f64,
        stats.ran,
        stats.errors.len(),
        stats.mismatches,
        stats.nonconforming,
        stats.cli_runs,
        stats.failures.len(),
        secs,
        stats.files as f64 / secs.max(1e-9),
        sparq_fuzzgen::check::paths().iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
    );
    if args.verbose {
        let mut errors: Vec<_> = stats.errors.iter().collect();
        errors.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (e, n) in errors {
            println!("  {n:>7}  {e}");
        }
    }
    // Failures grouped by what they hit (numbers aside), each with its files.
    let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, what) in &stats.failures {
        groups.entry(failure_class(what)).or_default().push(name);
    }
    for (what, names) in &groups {
        println!("FAILURE x{} {what}: {}", names.len(), names.join(" "));
    }
    if let (Some(d), false) = (&args.save_dir, stats.failures.is_empty()) {
        println!("failing files saved to {}", d.display());
    }
    if stats.failures.is_empty() {
        0
    } else {
        1
    }
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Cmd::Run(a) => run(a),
        Cmd::CheckBatch { paths } => match check_batch(&paths) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("check-batch: {e}");
                2
            }
        },
    };
    std::process::exit(code);
}
