//! The `sparq` binary on good and bad input: every bad input is a one-line error, exit code 1,
//! no panic, and no output file left behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn sparq(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sparq")).args(args).output().expect("run sparq");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sparq-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_npy(path: &Path, shape: &[usize], data: &[f32]) {
    sparq_compiler::data::write_npy(path, shape, data).unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts a failed command's contract and returns its error line.
fn fails(args: &[&str], must_mention: &str, no_file: Option<&Path>) -> String {
    let (code, _, err) = sparq(args);
    assert_eq!(code, 1, "sparq {args:?}: exit code {code}, stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "sparq {args:?}: expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(must_mention), "sparq {args:?}: '{}' does not mention '{must_mention}'", lines[0]);
    if let Some(f) = no_file {
        assert!(!f.exists(), "{} was left behind", f.display());
        let dir = f.parent().unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left behind");
    }
    lines[0].to_string()
}

#[test]
fn compile_run_eval_inspect_round_trip() {
    let d = tmpdir("ok");
    let m = common::depthwise_separable();
    let onnx = d.join("m.onnx");
    std::fs::write(&onnx, &m.onnx).unwrap();
    let calib = common::samples(&m.input_shape, 16, 5).concat();
    let calib_path = d.join("calib.npy");
    write_npy(&calib_path, &[16, 4, 16, 16], &calib);
    let out = d.join("m.sparq");
    let (code, stdout, err) = sparq(&["compile", s(&onnx), "-o", s(&out), "--calib", s(&calib_path), "--per-layer"]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("compile report") && stdout.contains("agreement"), "{stdout}");
    // --per-layer: one line per IR node with its SQNR against the float model.
    assert!(stdout.contains("per layer"), "{stdout}");
    let layer_lines = stdout.lines().filter(|l| l.contains(" dB  i8") || l.contains(" dB  f32")).count();
    assert_eq!(layer_lines, 7, "{stdout}");
    let (code, stdout, err) = sparq(&["inspect", s(&out)]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("DepthwiseConv2d") && stdout.contains("arena"), "{stdout}");
    // The planned arena is within 1.1x of the liveness lower bound.
    let arena_line = stdout.lines().find(|l| l.starts_with("arena:")).unwrap();
    let ratio: f64 = arena_line.rsplit("; ").next().unwrap().trim_end_matches("x)").parse().unwrap();
    assert!((1.0..=1.1).contains(&ratio), "{arena_line}");
    let y = d.join("y.npy");
    let (code, _, err) = sparq(&["run", s(&out), "--input", s(&calib_path), "--output", s(&y)]);
    assert_eq!(code, 0, "{err}");
    let ya = sparq_compiler::data::read_npy(&y).unwrap();
    assert_eq!(ya.shape, vec![16, 7]);
    let (code, stdout, err) = sparq(&["eval", s(&out), "--data", s(&calib_path), "--reference", s(&onnx)]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("agreement"), "{stdout}");
    let (code, stdout, err) = sparq(&["bench", s(&out), "--iters", "5", "--warmup", "1", "--json"]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for k in ["p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "iters", "threads", "kernels"] {
        assert!(j.get(k).is_some(), "bench JSON lacks {k}: {stdout}");
    }
    // An app's start-up: open (with and without the CRC pass) and session times, the file and arena sizes.
    let st = &j["startup"];
    for k in ["open_ms", "open_no_crc_ms", "session_ms"] {
        assert!(st[k].as_f64().is_some_and(|v| v >= 0.0), "startup.{k}: {stdout}");
    }
    assert_eq!(st["file_bytes"].as_u64(), Some(std::fs::metadata(&out).unwrap().len()), "{stdout}");
    assert!(st["arena_bytes"].as_u64().is_some_and(|v| v > 0), "{stdout}");
    // Against a baseline (here the same file): both timed alternately, a speed-up per pair of
    // runs, its median between the 10th and 90th percentiles; an unreadable baseline is named.
    let (code, stdout, err) =
        sparq(&["bench", s(&out), "--baseline", s(&out), "--iters", "6", "--warmup", "1", "--json"]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let num = |k: &str| j[k].as_f64().unwrap_or_else(|| panic!("bench JSON lacks {k}: {stdout}"));
    let (med, p10, p90) = (num("speedup_median"), num("speedup_p10"), num("speedup_p90"));
    assert!(0.0 < p10 && p10 <= med && med <= p90, "{stdout}");
    assert!(j["baseline"]["p50_ms"].as_f64().is_some_and(|v| v > 0.0), "{stdout}");
    assert_eq!(j["baseline"]["macs"], j["macs"], "{stdout}");
    let (code, stdout, err) = sparq(&["bench", s(&out), "--baseline", s(&out), "--iters", "2", "--warmup", "0"]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("speed-up over the baseline") && stdout.contains("median"), "{stdout}");
    fails(&["bench", s(&out), "--baseline", s(&d.join("missing.sparq")), "--iters", "1"], "missing.sparq", None);
    // Output into a pipe whose reader has gone (`sparq inspect m.sparq | head -1`): the process
    // ends on SIGPIPE like any Unix tool, not with a panic.
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        use std::process::Stdio;
        let mut child = Command::new(env!("CARGO_BIN_EXE_sparq"))
            .args(["inspect", s(&out)])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let done = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&done.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert!(done.status.success() || done.status.signal() == Some(13), "{:?}: {err}", done.status);
    }
}

#[test]
fn bad_inputs_fail_cleanly() {
    let d = tmpdir("bad");
    let out = d.join("out.sparq");
    // Missing file.
    fails(&["compile", s(&d.join("missing.onnx")), "-o", s(&out), "--quant", "f32"], "missing.onnx", Some(&out));
    // Not ONNX.
    let junk = d.join("junk.onnx");
    std::fs::write(&junk, b"this is not a protobuf \xff\xff\xff").unwrap();
    fails(&["compile", s(&junk), "-o", s(&out), "--quant", "f32"], "not a valid ONNX model", Some(&out));
    // Truncated ONNX.
    let m = common::plain_cnn();
    let trunc = d.join("trunc.onnx");
    std::fs::write(&trunc, &m.onnx[..m.onnx.len() / 2]).unwrap();
    fails(&["compile", s(&trunc), "-o", s(&out), "--quant", "f32"], "trunc.onnx", Some(&out));
    // Unsupported op, named with its node and opset.
    let mut b = sparq_compiler::onnx_builder::OnnxBuilder::new("bad", 13);
    let x = b.input("input", &[1, 4]);
    let y = b.node("Cosh", &[&x], vec![]);
    b.output(&y);
    let unsup = d.join("unsup.onnx");
    std::fs::write(&unsup, b.build()).unwrap();
    let line = fails(&["compile", s(&unsup), "-o", s(&out), "--quant", "f32"], "Cosh", Some(&out));
    assert!(line.contains("opset 13") && line.contains("Cosh_"), "{line}");
    // Calibration data of the wrong shape.
    let good = d.join("good.onnx");
    std::fs::write(&good, &m.onnx).unwrap();
    let wrong = d.join("wrong.npy");
    write_npy(&wrong, &[4, 3, 10, 10], &vec![0.5; 4 * 300]);
    fails(&["compile", s(&good), "-o", s(&out), "--calib", s(&wrong)], "wrong.npy", Some(&out));
    // int8 without calibration data.
    fails(&["compile", s(&good), "-o", s(&out)], "calibration", Some(&out));
    // Unknown --keep-float node.
    let calib = d.join("calib.npy");
    write_npy(&calib, &[2, 3, 20, 20], &common::samples(&[3, 20, 20], 2, 3).concat());
    fails(&["compile", s(&good), "-o", s(&out), "--calib", s(&calib), "--keep-float", "nope"], "nope", Some(&out));
    // Wrong input shape at run time.
    let (code, _, err) = sparq(&["compile", s(&good), "-o", s(&out), "--calib", s(&calib)]);
    assert_eq!(code, 0, "{err}");
    let y = d.join("y.npy");
    fails(&["run", s(&out), "--input", s(&wrong), "--output", s(&y)], "shape", Some(&y));
    // Bad .sparq files: empty, truncated, corrupted, not a model at all.
    let bytes = std::fs::read(&out).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.sparq", vec![], "empty"),
        ("trunc.sparq", bytes[..bytes.len() - 10].to_vec(), "truncated"),
        (
            "flip.sparq",
            {
                let mut b = bytes.clone();
                let n = b.len() - 100;
                b[n] ^= 0x40;
                b
            },
            "checksum",
        ),
        (
            "text.sparq",
            b"hello world, not a model at all; long enough to have a header......".to_vec(),
            "not a .sparq file",
        ),
    ];
    for (name, data, msg) in cases {
        let p = d.join(name);
        std::fs::write(&p, data).unwrap();
        fails(&["inspect", s(&p)], msg, None);
        fails(&["run", s(&p), "--input", s(&calib), "--output", s(&y)], msg, Some(&y));
    }
}

#[test]
fn calibrates_from_an_image_directory() {
    let d = tmpdir("images");
    let imgs = d.join("calib");
    std::fs::create_dir_all(&imgs).unwrap();
    let mut rng = sparq_compiler::onnx_builder::Rng::new(8);
    for i in 0..6 {
        // Different sizes: the compiler resizes to the model input.
        let (w, h) = (24 + 4 * i, 20 + 2 * i);
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 9) as u8, (y * 11) as u8, (rng.next_u64() % 256) as u8])
        });
        img.save(imgs.join(format!("img{i}.png"))).unwrap();
    }
    std::fs::write(imgs.join("notes.txt"), "not an image").unwrap();
    let m = common::plain_cnn();
    let onnx = d.join("m.onnx");
    std::fs::write(&onnx, &m.onnx).unwrap();
    let out = d.join("m.sparq");
    let (code, stdout, err) = sparq(&[
        "compile",
        s(&onnx),
        "-o",
        s(&out),
        "--calib",
        s(&imgs),
        "--mean",
        "0.485,0.456,0.406",
        "--std",
        "0.229,0.224,0.225",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("on 6 calibration samples"), "{stdout}");
    // An empty directory is a clear error.
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out2 = d.join("m2.sparq");
    fails(&["compile", s(&onnx), "-o", s(&out2), "--calib", s(&empty)], "no .png/.jpg images", Some(&out2));
    // --mean with the wrong number of channels.
    fails(&["compile", s(&onnx), "-o", s(&out2), "--calib", s(&imgs), "--mean", "0.5,0.5"], "--mean", Some(&out2));
}

#[test]
fn mutated_files_exit_with_code_1_or_0_never_a_crash() {
    let d = tmpdir("mut");
    let m = common::concat();
    let calib = common::samples(&m.input_shape, 4, 2);
    let bytes =
        sparq_compiler::compile(&m.onnx, m.name, &calib, &sparq_compiler::CompileOptions::default()).unwrap().bytes;
    let x = d.join("x.npy");
    write_npy(&x, &[1, 3, 10, 10], &calib[0]);
    let mut rng = sparq_compiler::onnx_builder::Rng::new(99);
    let (mut rejected, mut accepted) = (0, 0);
    for i in 0..60 {
        let mut b = bytes.clone();
        match i % 3 {
            0 => b.truncate((rng.next_u64() as usize) % b.len()),
            1 => {
                let k = (rng.next_u64() as usize) % b.len();
                b[k] ^= 1 << (rng.next_u64() % 8);
            }
            _ => {
                let k = (rng.next_u64() as usize) % (b.len() - 8);
                b[k..k + 8].copy_from_slice(&u64::MAX.to_le_bytes());
            }
        }
        let p = d.join(format!("m{i}.sparq"));
        std::fs::write(&p, &b).unwrap();
        let y = d.join(format!("y{i}.npy"));
        for args in [vec!["inspect", s(&p)], vec!["run", s(&p), "--input", s(&x), "--output", s(&y)]] {
            let (code, _, err) = sparq(&args);
            assert!(code == 0 || code == 1, "sparq {args:?} exited with {code}: {err}");
            if code == 1 {
                assert_eq!(err.lines().count(), 1, "{err}");
                rejected += 1;
            } else {
                accepted += 1;
            }
        }
    }
    println!(
        "{rejected} rejected with exit code 1, {accepted} accepted (changes outside checked bytes are impossible)"
    );
    assert_eq!(accepted, 0, "checksums cover every byte");
}

#[test]
fn a_sealed_file_declaring_a_huge_arena_is_refused_cleanly() {
    let d = tmpdir("arena");
    let m = common::mlp();
    let calib = common::samples(&m.input_shape, 4, 2);
    let mut bytes =
        sparq_compiler::compile(&m.onnx, m.name, &calib, &sparq_compiler::CompileOptions::default()).unwrap().bytes;
    // META is the first section; arena_size is its first field.
    let meta = u64::from_le_bytes(bytes[64 + 8..64 + 16].try_into().unwrap()) as usize;
    bytes[meta..meta + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    common::fix_checksums(&mut bytes);
    let p = d.join("huge.sparq");
    std::fs::write(&p, &bytes).unwrap();
    let x = d.join("x.npy");
    write_npy(&x, &[1, 64], &calib[0]);
    let y = d.join("y.npy");
    // Refused by the arena limit before anything is allocated (issue 21: 2^62 bytes used to be
    // attempted); `inspect` states the size and the limit.
    fails(&["run", s(&p), "--input", s(&x), "--output", s(&y)], "above the 1073741824-byte limit", Some(&y));
    fails(&["bench", s(&p), "--iters", "1"], "--max-arena", None);
    let (code, out, _) = sparq(&["inspect", s(&p)]);
    assert_eq!(code, 0);
    assert!(out.contains("above the 1073741824-byte arena limit"), "{out}");
    // Raising the limit lets the allocation be tried; the allocator's refusal is still an error.
    fails(&["run", s(&p), "--max-arena", "4096P", "--input", s(&x), "--output", s(&y)], "cannot allocate", Some(&y));
    let (code, _, err) = sparq(&["run", s(&p), "--max-arena", "lots", "--input", s(&x), "--output", s(&y)]);
    assert!(code == 2 && err.contains("expected a byte count such as 4096, 512M or 2G"), "{code}: {err}");
    // And an ONNX input too large to plan is an error, not an overflow.
    let mut b = sparq_compiler::onnx_builder::OnnxBuilder::new("big", 13);
    let x = b.input("input", &[1 << 20, 1 << 20, 4]);
    let y = b.node("Relu", &[&x], vec![]);
    b.output(&y);
    let big = d.join("big.onnx");
    std::fs::write(&big, b.build()).unwrap();
    let out = d.join("big.sparq");
    fails(&["compile", s(&big), "-o", s(&out), "--quant", "f32"], "too large", Some(&out));
}

/// A `.npy` file of dtype `descr` holding `data` (raw bytes) with `shape`.
fn write_raw_npy(path: &Path, descr: &str, shape: &[usize], data: &[u8]) {
    let shape: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({},), }}", shape.join(", ")).into_bytes();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

/// The binary16 bits of `x`, which must be 0 or a normal half value (exactly representable).
fn f16_bits(x: f32) -> u16 {
    if x == 0.0 {
        return 0;
    }
    let b = x.to_bits();
    let (sign, exp, mant) = (b >> 31, ((b >> 23) & 0xff) as i32 - 127 + 15, b & 0x7f_ffff);
    assert!((1..31).contains(&exp) && mant & 0x1fff == 0, "{x} is not a normal half");
    ((sign << 15) | ((exp as u32) << 10) | (mant >> 13)) as u16
}

#[test]
fn bad_calibration_values_and_output_paths_are_named_before_any_work() {
    let d = tmpdir("early");
    let m = common::plain_cnn();
    let good = d.join("good.onnx");
    std::fs::write(&good, &m.onnx).unwrap();
    let values = common::samples(&[3, 20, 20], 3, 7).concat();
    let calib = d.join("calib.npy");
    write_npy(&calib, &[3, 3, 20, 20], &values);
    let out = d.join("out.sparq");

    // NaN in the calibration data: the file, the sample and the position are named.
    let mut bad = values.clone();
    bad[1200 + 400 + 21] = f32::NAN; // sample 1, channel 1, row 1, column 1
    let nan = d.join("nan.npy");
    write_npy(&nan, &[3, 3, 20, 20], &bad);
    let line = fails(&["compile", s(&good), "-o", s(&out), "--calib", s(&nan)], "nan.npy", Some(&out));
    assert!(line.contains("sample 1") && line.contains("NaN") && line.contains("[1, 1, 1]"), "{line}");
    // An existing output is not clobbered by a failed compile.
    std::fs::write(&out, b"previous").unwrap();
    fails(&["compile", s(&good), "-o", s(&out), "--calib", s(&nan)], "nan.npy", None);
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");
    std::fs::remove_file(&out).unwrap();

    // An output in a missing directory is refused first (before the missing calibration file
    // is even looked at), naming the path.
    let nowhere = d.join("no").join("such").join("out.sparq");
    let line =
        fails(&["compile", s(&good), "-o", s(&nowhere), "--calib", s(&d.join("absent.npy"))], "does not exist", None);
    assert!(line.contains(s(&nowhere)), "{line}");
    assert!(!d.join("no").exists());
    let y = d.join("no").join("y.npy");
    fails(&["run", s(&d.join("absent.sparq")), "--input", s(&calib), "--output", s(&y)], "does not exist", None);
}

#[test]
fn npy_dtypes_are_read_or_refused_by_name() {
    let d = tmpdir("dtypes");
    let m = common::plain_cnn();
    let good = d.join("good.onnx");
    std::fs::write(&good, &m.onnx).unwrap();
    // Values on a 1/64 grid in [-4, 4): exact in float16.
    let values: Vec<f32> = common::samples(&[3, 20, 20], 3, 7)
        .concat()
        .into_iter()
        .map(|v| ((v * 64.0).round() / 64.0).clamp(-4.0, 4.0 - 1.0 / 64.0))
        .collect();
    let calib = d.join("calib.npy");
    write_npy(&calib, &[3, 3, 20, 20], &values);
    let out = d.join("out.sparq");
    // float16 data is read, exactly: the same file as from the f32 data.
    let half: Vec<u8> = values.iter().flat_map(|&v| f16_bits(v).to_le_bytes()).collect();
    let calib16 = d.join("calib16.npy");
    write_raw_npy(&calib16, "<f2", &[3, 3, 20, 20], &half);
    let out16 = d.join("out16.sparq");
    for (c, o) in [(&calib, &out), (&calib16, &out16)] {
        let (code, _, err) = sparq(&["compile", s(&good), "-o", s(o), "--calib", s(c), "--target", "generic"]);
        assert_eq!(code, 0, "{err}");
    }
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&out16).unwrap());

    // Other dtypes are read or refused by name, never called truncated.
    let cplx = d.join("complex.npy");
    write_raw_npy(&cplx, "<c8", &[3, 3, 20, 20], &[0; 16]);
    let out2 = d.join("out2.sparq");
    let line = fails(&["compile", s(&good), "-o", s(&out2), "--calib", s(&cplx)], "complex.npy", Some(&out2));
    assert!(line.contains("dtype c8 is not supported"), "{line}");
    let bytes: Vec<u8> = values.iter().flat_map(|&v| ((v * 16.0) as i16).to_le_bytes()).collect();
    let i16s = d.join("i16.npy");
    write_raw_npy(&i16s, "<i2", &[3, 3, 20, 20], &bytes);
    let (code, _, err) = sparq(&["compile", s(&good), "-o", s(&out2), "--calib", s(&i16s)]);
    assert_eq!(code, 0, "{err}");
}

/// A model with two inputs and two outputs: compiled, run with inputs by name (in any order) into
/// a directory of outputs; wrong input counts and names are one-line errors.
#[test]
fn several_inputs_and_outputs_by_name() {
    use sparq_compiler::onnx_builder::OnnxBuilder;
    let d = tmpdir("multi");
    let mut b = OnnxBuilder::new("two", 13);
    let x = b.input("image", &[1, 2, 3]);
    let st = b.input("state", &[1, 2, 3]);
    let sum = b.node("Add", &[&x, &st], vec![]);
    let prod = b.node("Mul", &[&x, &st], vec![]);
    let diff = b.node("Sub", &[&prod, &sum], vec![]);
    b.output(&sum);
    b.output(&diff);
    let onnx = d.join("two.onnx");
    std::fs::write(&onnx, b.build()).unwrap();
    let model = d.join("two.sparq");
    let (code, _, err) = sparq(&["compile", s(&onnx), "--quant", "f32", "-o", s(&model)]);
    assert_eq!(code, 0, "{err}");
    let (xs, ss): (Vec<f32>, Vec<f32>) =
        ((0..12).map(|i| i as f32).collect(), (0..12).map(|i| 0.5 * i as f32).collect());
    write_npy(&d.join("x.npy"), &[2, 1, 2, 3], &xs);
    write_npy(&d.join("s.npy"), &[2, 1, 2, 3], &ss);
    let out = d.join("out");
    let state_arg = format!("state={}", s(&d.join("s.npy")));
    let image_arg = format!("image={}", s(&d.join("x.npy")));
    let (code, stdout, err) =
        sparq(&["run", s(&model), "--input", &state_arg, "--input", &image_arg, "--output", s(&out)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let read =
        |p: &Path| -> Vec<f32> { npyz::NpyFile::new(std::fs::File::open(p).unwrap()).unwrap().into_vec().unwrap() };
    let names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let mut outs: Vec<Vec<f32>> = names.iter().map(|n| read(&out.join(n))).collect();
    outs.sort_by(|a, b| a[1].total_cmp(&b[1]));
    let want_sum: Vec<f32> = xs.iter().zip(&ss).map(|(a, b)| a + b).collect();
    let want_diff: Vec<f32> = xs.iter().zip(&ss).map(|(a, b)| a * b - (a + b)).collect();
    assert!(outs.contains(&want_sum) && outs.contains(&want_diff), "{outs:?}");
    fails(&["run", s(&model), "--input", s(&d.join("x.npy")), "--output", s(&out)], "2 input(s)", None);
    let bad = format!("nope={}", s(&d.join("x.npy")));
    fails(&["run", s(&model), "--input", &bad, "--input", &image_arg, "--output", s(&out)], "no input 'nope'", None);
}

/// `--input-value` makes an input a constant: the compiled model no longer takes it, and bad
/// values are one-line errors naming the input.
#[test]
fn input_value_freezes_an_input() {
    use sparq_compiler::onnx_builder::OnnxBuilder;
    let d = tmpdir("freeze");
    let mut b = OnnxBuilder::new("gain", 13);
    let x = b.input("x", &[1, 4]);
    let gain = b.input("gain", &[1]);
    let y = b.node("Mul", &[&x, &gain], vec![]);
    b.output(&y);
    let onnx = d.join("gain.onnx");
    std::fs::write(&onnx, b.build()).unwrap();
    let model = d.join("gain.sparq");
    let (code, _, err) = sparq(&["compile", s(&onnx), "--quant", "f32", "--input-value", "gain=2.5", "-o", s(&model)]);
    assert_eq!(code, 0, "{err}");
    write_npy(&d.join("x.npy"), &[1, 4], &[1.0, -2.0, 0.5, 4.0]);
    let out = d.join("y.npy");
    let (code, _, err) = sparq(&["run", s(&model), "--input", s(&d.join("x.npy")), "--output", s(&out)]);
    assert_eq!(code, 0, "{err}");
    let y: Vec<f32> = npyz::NpyFile::new(std::fs::File::open(&out).unwrap()).unwrap().into_vec().unwrap();
    assert_eq!(y, [2.5, -5.0, 1.25, 10.0]);
    let bad = d.join("bad.sparq");
    fails(&["compile", s(&onnx), "--input-value", "gain=1,2", "-o", s(&bad)], "input 'gain'", Some(&bad));
    fails(&["compile", s(&onnx), "--input-value", "nope=1", "-o", s(&bad)], "input 'nope'", Some(&bad));
    fails(&["compile", s(&onnx), "--input-value", "gain", "-o", s(&bad)], "expected NAME=V1,V2", Some(&bad));
}

/// An `.npz` archive of f32 arrays (`numpy.savez`, compressed).
fn write_npz(path: &Path, arrays: &[(&str, &[usize], &[f32])]) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, shape, data) in arrays {
        let tmp = path.with_extension(format!("{name}.npy"));
        write_npy(&tmp, shape, data);
        zip.start_file(format!("{name}.npy"), opts).unwrap();
        zip.write_all(&std::fs::read(&tmp).unwrap()).unwrap();
        std::fs::remove_file(&tmp).unwrap();
    }
    zip.finish().unwrap();
}

/// A two-input model (audio features and a GRU state) compiled to int8 from per-input calibration
/// data (a .npy for one input, a directory of one .npy per sample for the other), evaluated and run
/// from one .npz; bad input specifications are one-line errors.
#[test]
fn several_inputs_calibrate_evaluate_and_run() {
    let d = tmpdir("multi-int8");
    let m = common::stateful();
    let onnx = d.join("stateful.onnx");
    std::fs::write(&onnx, &m.onnx).unwrap();
    write_npy(&d.join("features.npy"), &[24, 1, 6, 16], &common::samples(&[1, 6, 16], 24, 1).concat());
    let states = d.join("states");
    std::fs::create_dir_all(&states).unwrap();
    for (i, st) in common::samples(&[1, 1, 12], 24, 2).iter().enumerate() {
        write_npy(&states.join(format!("{i:03}.npy")), &[1, 1, 12], st);
    }
    let model = d.join("stateful.sparq");
    let f_arg = format!("features={}", s(&d.join("features.npy")));
    let s_arg = format!("state={}", s(&states));
    let (code, out, err) = sparq(&["compile", s(&onnx), "--calib", &s_arg, "--calib", &f_arg, "-o", s(&model)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("compile report (int8)") && out.contains("GRU"), "{out}");
    let (feats, sts) = (common::samples(&[1, 6, 16], 8, 3).concat(), common::samples(&[1, 1, 12], 8, 4).concat());
    let npz = d.join("eval.npz");
    write_npz(&npz, &[("state", &[8, 1, 1, 12], &sts), ("features", &[8, 1, 6, 16], &feats)]);
    let (code, out, err) = sparq(&["eval", s(&model), "--data", s(&npz), "--reference", s(&onnx)]);
    assert_eq!(code, 0, "{err}");
    let sqnr: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("output SQNR"))
        .and_then(|v| v.trim().trim_end_matches(" dB").parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(sqnr >= 25.0, "int8 output SQNR {sqnr} dB: {out}");
    let outdir = d.join("out");
    let (code, out, err) = sparq(&["run", s(&model), "--input", s(&npz), "--output", s(&outdir)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ran 8 sample(s)"), "{out}");
    assert_eq!(std::fs::read_dir(&outdir).unwrap().count(), 2);
    let bad = d.join("bad.sparq");
    fails(
        &["compile", s(&onnx), "--calib", &f_arg, "-o", s(&bad)],
        "2 input(s) ('features', 'state'); got 1",
        Some(&bad),
    );
    let short = d.join("short.npz");
    write_npz(&short, &[("features", &[8, 1, 6, 16], &feats)]);
    fails(&["compile", s(&onnx), "--calib", s(&short), "-o", s(&bad)], "has no array 'state'", Some(&bad));
    let few = d.join("few.npy");
    write_npy(&few, &[3, 1, 1, 12], &sts[..36]);
    let few_arg = format!("state={}", s(&few));
    fails(&["compile", s(&onnx), "--calib", &f_arg, "--calib", &few_arg, "-o", s(&bad)], "has 3 samples", Some(&bad));
    fails(
        &["compile", s(&onnx), "--calib", s(&npz), "--prune", "0.5", "-o", s(&bad)],
        "pruning needs a model with one input",
        Some(&bad),
    );
}

/// Bad models of the operators added with format 1.4: an LSTM whose initial state has the wrong
/// shape, a zero-size input dimension, an unsupported attribute value: one line naming the node
/// or input, exit code 1, no output file.
#[test]
fn bad_recurrent_and_zero_size_models_are_named() {
    use sparq_compiler::onnx_builder::{Attr, OnnxBuilder};
    let d = tmpdir("bad14");
    let out = d.join("m.sparq");
    let compile = |name: &str, onnx: Vec<u8>| {
        let p = d.join(format!("{name}.onnx"));
        std::fs::write(&p, onnx).unwrap();
        p
    };
    // LSTM: initial_h [1, 1, 3] for hidden size 4.
    let mut b = OnnxBuilder::new("lstm", 13);
    let x = b.input("x", &[5, 1, 2]);
    let w = b.constant(&[1, 16, 2], vec![0.1; 32]);
    let r = b.constant(&[1, 16, 4], vec![0.1; 64]);
    let bias = b.constant(&[1, 32], vec![0.0; 32]);
    let h0 = b.constant(&[1, 1, 3], vec![0.0; 3]);
    let y = b.node("LSTM", &[&x, &w, &r, &bias, "", &h0], vec![("hidden_size", Attr::Int(4))]);
    b.output(&y);
    let p = compile("lstm", b.build());
    let e = fails(&["compile", s(&p), "--quant", "f32", "-o", s(&out)], "initial_h must be [1, 1, 4]", Some(&out));
    assert!(e.contains("(LSTM)"), "{e}");
    // A zero-size input dimension.
    let mut b = OnnxBuilder::new("zero", 13);
    let x = b.input("frames", &[1, 0, 8]);
    let y = b.node("Relu", &[&x], vec![]);
    b.output(&y);
    let p = compile("zero", b.build());
    fails(&["compile", s(&p), "--quant", "f32", "-o", s(&out)], "input 'frames': dimension 1", Some(&out));
    // An unsupported attribute value, named with the node.
    let mut b = OnnxBuilder::new("gru", 13);
    let x = b.input("x", &[5, 1, 2]);
    let w = b.constant(&[1, 12, 2], vec![0.1; 24]);
    let r = b.constant(&[1, 12, 4], vec![0.1; 48]);
    let y = b.node("GRU", &[&x, &w, &r], vec![("direction", Attr::Str("sideways"))]);
    b.output(&y);
    let p = compile("gru", b.build());
    fails(&["compile", s(&p), "--quant", "f32", "-o", s(&out)], "direction=sideways is not supported", Some(&out));
}

#[test]
fn camera_frames_compile_run_eval_and_bench() {
    let d = tmpdir("frames");
    let m = common::depthwise_separable();
    let onnx = d.join("m.onnx");
    std::fs::write(&onnx, &m.onnx).unwrap();
    // 16 uint8 frames, N x H x W x C.
    let frames: Vec<u8> = (0..16 * 16 * 16 * 4).map(|i| ((i * 7919 + i / 97) % 256) as u8).collect();
    let frames_path = d.join("frames.npy");
    write_raw_npy(&frames_path, "|u1", &[16, 16, 16, 4], &frames);
    let (mean, std) = ("0.485,0.456,0.406,0.5", "0.229,0.224,0.225,0.25");
    let out = d.join("m.sparq");
    let (code, stdout, err) = sparq(&[
        "compile",
        s(&onnx),
        "-o",
        s(&out),
        "--calib",
        s(&frames_path),
        "--mean",
        mean,
        "--std",
        std,
        "--input-dtype",
        "u8",
        "--per-layer",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("uint8 frames"), "{stdout}");
    let (code, stdout, err) = sparq(&["inspect", s(&out)]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("i8 [1, 4, 16, 16] Nhwc scale 1.000000 zero_point -128  (uint8 frames"), "{stdout}");
    let y = d.join("y.npy");
    let (code, _, err) = sparq(&["run", s(&out), "--input", s(&frames_path), "--output", s(&y)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(sparq_compiler::data::read_npy(&y).unwrap().shape, vec![16, 7]);
    // The reference takes the frames normalized by --mean/--std; the model takes them as they are.
    let (code, stdout, err) =
        sparq(&["eval", s(&out), "--data", s(&frames_path), "--reference", s(&onnx), "--mean", mean, "--std", std]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("(uint8 frames)") && stdout.contains("agreement"), "{stdout}");
    let sqnr: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("output SQNR"))
        .and_then(|v| v.trim().trim_end_matches(" dB").parse().ok())
        .unwrap();
    assert!(sqnr > 20.0, "{stdout}");
    let (code, _, err) = sparq(&["bench", s(&out), "--iters", "3", "--warmup", "1"]);
    assert_eq!(code, 0, "{err}");
    // Float data, or a normalization the model already does, are named.
    let floats = d.join("floats.npy");
    write_npy(&floats, &[1, 4, 16, 16], &vec![0.5; 4 * 16 * 16]);
    fails(
        &["run", s(&out), "--input", s(&floats), "--output", s(&d.join("z.npy"))],
        "not uint8",
        Some(&d.join("z.npy")),
    );
    fails(
        &["run", s(&out), "--input", s(&frames_path), "--output", s(&d.join("z.npy")), "--mean", mean],
        "drop --mean/--std",
        Some(&d.join("z.npy")),
    );
    fails(
        &["compile", s(&onnx), "-o", s(&d.join("n.sparq")), "--calib", s(&frames_path), "--input-layout", "nchw"],
        "needs --input-dtype u8",
        Some(&d.join("n.sparq")),
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn version_names_the_crate_and_the_format() {
    let (code, out, err) = sparq(&["--version"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        format!(
            "sparq {} (.sparq format {}.{})",
            env!("CARGO_PKG_VERSION"),
            sparq_format::layout::VERSION_MAJOR,
            sparq_format::layout::VERSION_MINOR
        )
    );
}

#[test]
fn an_unwritable_report_fails_before_any_work_and_writes_nothing() {
    let d = tmpdir("report");
    let m = common::plain_cnn();
    let onnx = d.join("m.onnx");
    std::fs::write(&onnx, &m.onnx).unwrap();
    let out = d.join("m.sparq");
    let report = d.join("missing-dir").join("r.html");
    let e = fails(
        &["compile", s(&onnx), "-o", s(&out), "--quant", "f32", "--report", s(&report)],
        "missing-dir",
        Some(&out),
    );
    println!("{e}");
    assert!(!report.exists());
    // bench and eval check it before timing or evaluating anything.
    let (code, _, err) = sparq(&["compile", s(&onnx), "-o", s(&out), "--quant", "f32"]);
    assert_eq!(code, 0, "{err}");
    fails(&["bench", s(&out), "--report", s(&report)], "missing-dir", None);
    let x = d.join("x.npy");
    write_npy(&x, &m.input_shape, &vec![0.5; m.input_shape.iter().product()]);
    fails(&["eval", s(&out), "--data", s(&x), "--reference", s(&onnx), "--report", s(&report)], "missing-dir", None);
    let _ = std::fs::remove_dir_all(&d);
}
