//! The commands as the Python package (`python/`) calls them. Options arrive as keyword
//! arguments and are turned into the CLI's own flags, parsed by the same definitions: the two
//! take the same options with the same defaults, refuse the same values with the same messages,
//! and compute the same files and numbers. Arrays arrive as `.npy` bytes (numpy writes them),
//! read by the same reader as a `.npy` file on the command line.

use crate::{Cli, Command};
use clap::{ArgAction, CommandFactory, Parser};
use sparq_compiler::data;

/// Why a call failed.
#[derive(Debug)]
pub enum ApiError {
    /// A keyword the command does not have, or a value of the wrong kind for it (Python: `TypeError`).
    Usage(String),
    /// Anything else: the one-line message `sparq` prints after `error: ` (Python: `sparq.Error`).
    Failed(String),
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        ApiError::Failed(crate::error_line(&e))
    }
}

/// A keyword argument's value: a bool (a switch, or `true`/`false` for options that take one),
/// or values (one, or several: repeated for a repeatable option, joined by commas for a list).
pub enum Value {
    Bool(bool),
    Values(Vec<String>),
}

/// `--flag value` arguments of `command` for keyword arguments named as its long options with
/// `_` for `-` (`min_agreement=0.97` is `--min-agreement 0.97`).
fn flags(command: &str, kwargs: Vec<(String, Value)>) -> Result<Vec<String>, ApiError> {
    let cli = Cli::command();
    let sub = cli.find_subcommand(command).expect("a sparq command");
    let mut args = Vec::new();
    for (key, value) in kwargs {
        let long = key.replace('_', "-");
        let known = |a: &&clap::Arg| a.get_long() == Some(long.as_str()) && !a.is_positional();
        let arg = sub.get_arguments().find(known).or_else(|| cli.get_arguments().find(known)).ok_or_else(|| {
            let mut names: Vec<String> = sub
                .get_arguments()
                .chain(cli.get_arguments())
                .filter_map(|a| a.get_long())
                .filter(|l| !["help", "version", "json", "output", "calib", "data", "labels", "list-nodes"].contains(l))
                .map(|l| l.replace('-', "_"))
                .collect();
            names.sort();
            names.dedup();
            ApiError::Usage(format!(
                "{command}() got an unexpected keyword argument '{key}' (options: {})",
                names.join(", ")
            ))
        })?;
        let flag = format!("--{long}");
        match (arg.get_action(), value) {
            (ArgAction::SetTrue, Value::Bool(on)) => {
                if on {
                    args.push(flag);
                }
            }
            (ArgAction::SetTrue, Value::Values(_)) => {
                return Err(ApiError::Usage(format!("{command}(): {key} is a switch: give True or False")));
            }
            (ArgAction::Append, Value::Values(vs)) => {
                for v in vs {
                    args.push(flag.clone());
                    args.push(v);
                }
            }
            (_, Value::Bool(on)) => {
                args.push(flag);
                args.push(on.to_string());
            }
            (_, Value::Values(vs)) => {
                args.push(flag);
                args.push(vs.join(","));
            }
        }
    }
    Ok(args)
}

/// Parse `sparq <command> <positional...> <flags>` with the CLI's parser and set the global
/// options (`quiet`, `max_arena`) the way `sparq` does.
fn parse(command: &str, positional: &[&str], kwargs: Vec<(String, Value)>) -> Result<Command, ApiError> {
    let mut argv: Vec<String> = vec!["sparq".into(), command.into()];
    argv.extend(positional.iter().map(|s| s.to_string()));
    argv.extend(flags(command, kwargs)?);
    let cli = Cli::try_parse_from(&argv).map_err(|e| {
        // clap's first paragraph is the message ("error: invalid value 'int4' for '--quant <QUANT>'",
        // then "[possible values: int8, f32]"); the usage lines after it are CLI syntax.
        let text = e.to_string();
        let first: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
        ApiError::Failed(first.join(" ").trim_start_matches("error: ").to_string())
    })?;
    crate::QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    let _ = crate::MAX_ARENA.set(cli.max_arena);
    Ok(cli.command)
}

/// Named `.npy` byte strings as arrays; `what` names them in errors.
fn arrays(named: Vec<(String, Vec<u8>)>, what: &str) -> Result<Vec<(String, data::Array)>, ApiError> {
    named
        .into_iter()
        .map(|(name, bytes)| {
            Ok((name.clone(), data::parse_npy(&bytes, &format!("{what} '{name}'")).map_err(anyhow::Error::from)?))
        })
        .collect()
}

/// A model compiled in memory.
pub struct Compiled {
    /// The `.sparq` file's bytes.
    pub bytes: Vec<u8>,
    /// What `sparq compile` prints (the compile report; per layer with `per_layer=True`).
    pub report: String,
}

/// `sparq compile MODEL [options]`, on calibration arrays in memory (`calib`) or the `calib`
/// option's files. With `output`, the file is also written (atomically), and with `report` the
/// HTML page.
pub fn compile(
    model: &str,
    output: Option<&str>,
    calib: Option<Vec<(String, Vec<u8>)>>,
    kwargs: Vec<(String, Value)>,
) -> Result<Compiled, ApiError> {
    let Command::Compile(a) = parse("compile", &[model, "--output", output.unwrap_or("(in memory)")], kwargs)? else {
        unreachable!("parsed as compile")
    };
    if a.list_nodes {
        return Err(ApiError::Usage("compile(): list_nodes is the CLI's; read the graph with the onnx package".into()));
    }
    if let Some(path) = output {
        sparq_compiler::check_output_path(std::path::Path::new(path)).map_err(anyhow::Error::from)?;
    }
    if let Some(r) = &a.report {
        sparq_compiler::check_output_path(r).map_err(anyhow::Error::from)?;
    }
    let calib = calib.map(|c| arrays(c, "calib")).transpose()?;
    let built = crate::build(&a, calib)?;
    if let Some(path) = output {
        sparq_format::writer::write_atomic(std::path::Path::new(path), &built.compiled.bytes)
            .map_err(|e| ApiError::Failed(format!("cannot write {path}: {e}")))?;
    }
    if let Some(path) = &a.report {
        crate::compile_report(path, &a, &built.compiled, built.per_layer.as_ref())?;
    }
    let report = built.text(a.per_layer);
    Ok(Compiled { bytes: built.compiled.bytes, report })
}

/// `sparq bench MODEL --json [options]`: the JSON object, as text.
pub fn bench(model: &str, kwargs: Vec<(String, Value)>) -> Result<String, ApiError> {
    let Command::Bench(a) = parse("bench", &[model], kwargs)? else { unreachable!("parsed as bench") };
    Ok(crate::bench::measure(&a)?.0.to_string())
}

/// `sparq eval MODEL --json [options]` on data and labels in memory (`.npy` bytes) or the
/// `data`/`labels` options' files: the JSON object, as text.
pub fn eval(
    model: &str,
    data: Option<Vec<(String, Vec<u8>)>>,
    labels: Option<Vec<u8>>,
    kwargs: Vec<(String, Value)>,
) -> Result<String, ApiError> {
    let mut positional = vec![model];
    if data.is_some() {
        // `--data` is required on the command line; the arrays stand in for it.
        positional.extend(["--data", "(numpy arrays)"]);
    }
    let Command::Eval(a) = parse("eval", &positional, kwargs)? else { unreachable!("parsed as eval") };
    if let Some(r) = &a.report {
        sparq_compiler::check_output_path(r).map_err(anyhow::Error::from)?;
    }
    let data = data.map(|d| arrays(d, "data")).transpose()?;
    let labels = labels
        .map(|b| -> Result<Vec<i64>, ApiError> {
            let a = data::parse_npy(&b, "labels").map_err(anyhow::Error::from)?;
            Ok(a.data.iter().map(|&v| v as i64).collect())
        })
        .transpose()?;
    let e = crate::evaluate(&a, data, labels)?;
    if let Some(path) = &a.report {
        e.report(path, &a)?;
    }
    Ok(e.json(&a).to_string())
}
