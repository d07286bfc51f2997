//! `sparq-conformance NODE_DIR`: the ONNX backend node test cases through sparq (see the lib).
//! Exit code 1 on a crash, on a mismatch not in the known-failures file, or on a known failure
//! that now passes.

use clap::Parser;
use sparq_conformance as conf;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Run the ONNX backend node test cases (onnx 1.17.0 wheel) through sparq")]
struct Cli {
    /// `onnx/backend/test/data/node` of the onnx wheel: one directory per case.
    node_dir: PathBuf,
    /// Only the cases whose name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Known failures: one case name per line, `# reason` after it.
    #[arg(long)]
    known: Option<PathBuf>,
    /// Write every case's outcome as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// One line per case (outcome and message) as it runs.
    #[arg(short, long)]
    verbose: bool,
    /// List the groups with no claimed case too.
    #[arg(long)]
    all: bool,
    /// Skip the int8 compiles.
    #[arg(long)]
    no_int8: bool,
    /// Do not retry refused cases with their other inputs frozen to constants.
    #[arg(long)]
    no_freeze: bool,
    /// A case with no answer after this many seconds is reported as crashed (hang).
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Print the mismatched cases as known-failure lines (`name  # reason`) to start a list.
    #[arg(long)]
    print_known: bool,
}

fn main() {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("sparq-conformance: {e}");
            std::process::exit(2);
        }
    }
}

fn run(cli: &Cli) -> Result<i32, String> {
    let start = Instant::now();
    let dirs = conf::case_dirs(&cli.node_dir, cli.filter.as_deref())
        .map_err(|e| format!("{}: {e}", cli.node_dir.display()))?;
    if dirs.is_empty() {
        return Err(format!("no case directories (with a model.onnx) in {}", cli.node_dir.display()));
    }
    let known = match &cli.known {
        Some(p) => conf::parse_known(&std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => Default::default(),
    };
    let supported = conf::supported_set();
    let timeout = Duration::from_secs(cli.timeout);
    let mut results = Vec::with_capacity(dirs.len());
    for dir in &dirs {
        let r = conf::run_case_with_timeout(dir, &supported, !cli.no_freeze, !cli.no_int8, timeout);
        if cli.verbose {
            let int8 = match &r.int8 {
                Some(conf::Int8::Compiled { sqnr_db }) => format!("  [int8 {sqnr_db:.1} dB]"),
                Some(conf::Int8::Refused(m)) => format!("  [int8 refused: {m}]"),
                Some(conf::Int8::Failed(m)) => format!("  [int8 failed: {m}]"),
                Some(conf::Int8::Crashed(m)) => format!("  [int8 crashed: {m}]"),
                None => String::new(),
            };
            let detail = r.outcome.detail();
            let sep = if detail.is_empty() { "" } else { ": " };
            let frozen = match &r.frozen {
                Some(f) if f.detail().is_empty() => format!("  [frozen: {}]", f.label()),
                Some(f) => format!("  [frozen: {}: {}]", f.label(), f.detail()),
                None => String::new(),
            };
            println!("{:<60} {}{sep}{detail}{frozen}{int8}  ({} ms)", r.name, r.outcome.label(), r.millis);
        }
        results.push(r);
    }
    conf::assign_groups(&mut results);
    println!("{}", conf::table(&results, cli.all));
    if let Some(path) = &cli.json {
        let text = serde_json::to_string_pretty(&conf::to_json(&results)).expect("serializable");
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if cli.print_known {
        for r in results.iter().filter(|r| conf::fails(r)) {
            println!("{}  # {}", r.name, conf::failure(r));
        }
    }
    let names: std::collections::HashSet<&str> = results.iter().map(|r| r.name.as_str()).collect();
    let stale: Vec<&String> = known
        .keys()
        .filter(|k| cli.filter.as_deref().is_none_or(|f| k.contains(f)) && !names.contains(k.as_str()))
        .collect();
    for k in &stale {
        println!("note: known failure {k} is not a case in {}", cli.node_dir.display());
    }
    let fails = conf::failures(&results, &known);
    println!("{} cases in {:.1} s", results.len(), start.elapsed().as_secs_f64());
    if fails.is_empty() {
        println!("conformance: OK");
        Ok(0)
    } else {
        println!("conformance: FAILED ({})", fails.len());
        for f in &fails {
            println!("  {f}");
        }
        Ok(1)
    }
}
