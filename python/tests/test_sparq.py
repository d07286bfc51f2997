"""The Python package against the `sparq` CLI: the same files, outputs and numbers, and a
`sparq.Error` (never a crash) for bad input.

Run from the repository (``.ci/run`` does, in a venv): ``pip install ./python pytest`` then
``SPARQ_CLI=target/release/sparq pytest python/tests``. The models are the repository's own
(``models/digits``: a CNN on scikit-learn's handwritten digits). With ``SPARQ_MOBILENET`` (an ONNX
file) and ``SPARQ_CROPS`` (an (N, 224, 224, 3) uint8 ``.npy``) set, MobileNetV2 is checked too.
"""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import sparq

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "models" / "digits"
ONNX = DIGITS / "digits_cnn.onnx"


@pytest.fixture(scope="session")
def cli():
    path = Path(os.environ.get("SPARQ_CLI", ROOT / "target" / "release" / "sparq"))
    if not path.is_file():
        pytest.fail(f"no sparq CLI at {path}: build it (cargo build --release) or set SPARQ_CLI")
    return path


def run_cli(cli, *args):
    p = subprocess.run([str(cli), "--quiet", *map(str, args)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture(scope="session")
def digits():
    return {k: np.load(DIGITS / f"{k}.npy") for k in ["calib_x", "test_x", "test_y"]}


@pytest.fixture(scope="session")
def int8_model(tmp_path_factory, digits):
    path = tmp_path_factory.mktemp("m") / "digits.sparq"
    sparq.compile(ONNX, calib=digits["calib_x"], quiet=True).save(path)
    return path


def test_compile_is_the_clis_file(cli, digits, tmp_path):
    """Default options, and options given as keywords: byte for byte the CLI's file."""
    m = sparq.compile(ONNX, calib=digits["calib_x"], quiet=True)
    run_cli(cli, "compile", ONNX, "--calib", DIGITS / "calib_x.npy", "-o", tmp_path / "cli.sparq")
    assert m.data == (tmp_path / "cli.sparq").read_bytes()
    assert "compile report (int8)" in m.report and len(m) == len(m.data)

    m = sparq.compile(ONNX, calib=DIGITS / "calib_x.npy", weight_rounding="nearest", equalize=False,
                      calib_method="minmax", keep_float=["/fc/Gemm"], quiet=True, output=tmp_path / "py.sparq")
    run_cli(cli, "compile", ONNX, "--calib", DIGITS / "calib_x.npy", "--weight-rounding", "nearest",
            "--equalize", "false", "--calib-method", "minmax", "--keep-float", "/fc/Gemm", "-o", tmp_path / "cli2.sparq")
    assert m.data == (tmp_path / "cli2.sparq").read_bytes() == (tmp_path / "py.sparq").read_bytes()

    f32 = sparq.compile(ONNX, quant="f32")
    run_cli(cli, "compile", ONNX, "--quant", "f32", "-o", tmp_path / "f32.sparq")
    assert f32.data == (tmp_path / "f32.sparq").read_bytes()


def test_session_outputs_are_the_clis(cli, digits, int8_model, tmp_path):
    run_cli(cli, "run", int8_model, "--input", DIGITS / "test_x.npy", "--output", tmp_path / "y.npy")
    want = np.load(tmp_path / "y.npy")
    for threads in (1, 2):
        s = sparq.Session(int8_model, threads=threads)
        y = s.run(digits["test_x"])
        assert y.dtype == np.float32 and y.shape == want.shape == (360, 10)
        assert np.array_equal(y, want), f"threads={threads}"
    # One sample, with or without its batch dimension, by name, from the file's bytes.
    assert np.array_equal(s.run(digits["test_x"][0]), want[:1])
    assert np.array_equal(s.run({"input": digits["test_x"][:1]}), want[:1])
    assert np.array_equal(sparq.Session(int8_model.read_bytes()).run(digits["test_x"][5:6]), want[5:6])
    assert s.inputs == [("input", "float32", (1, 1, 8, 8))] and s.outputs == [("logits", "float32", (1, 10))]
    assert (y.argmax(1) == digits["test_y"]).mean() > 0.98


def test_sessions_run_in_threads(cli, digits, int8_model, tmp_path):
    """`Session.run` releases the GIL: sessions created and run in several Python threads at once give the CLI's
    outputs, every run."""
    import threading

    run_cli(cli, "run", int8_model, "--input", DIGITS / "test_x.npy", "--output", tmp_path / "y.npy")
    want = np.load(tmp_path / "y.npy")
    results, errors = {}, []

    def work(k):
        try:
            s = sparq.Session(int8_model)  # `unsendable`: each thread makes and uses its own
            results[k] = [s.run(digits["test_x"]) for _ in range(5)]
        except Exception as e:  # surfaced below, with the thread's number
            errors.append((k, e))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(results) == [0, 1, 2, 3]
    assert all(np.array_equal(y, want) for ys in results.values() for y in ys)


def test_uint8_frames(cli, digits, tmp_path):
    """A model compiled for camera frames takes uint8 (N, H, W, C) arrays, as `sparq run` does."""
    frames = np.round(digits["calib_x"] * 255).astype(np.uint8).transpose(0, 2, 3, 1)  # (100, 8, 8, 1)
    test = np.round(digits["test_x"] * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    np.save(tmp_path / "frames.npy", frames)
    np.save(tmp_path / "test.npy", test)
    m = sparq.compile(ONNX, calib=frames, input_dtype="u8", quiet=True)
    run_cli(cli, "compile", ONNX, "--calib", tmp_path / "frames.npy", "--input-dtype", "u8", "-o", tmp_path / "u8.sparq")
    assert m.data == (tmp_path / "u8.sparq").read_bytes()
    s = m.session()
    assert s.inputs == [("input", "uint8", (1, 8, 8, 1))]
    run_cli(cli, "run", tmp_path / "u8.sparq", "--input", tmp_path / "test.npy", "--output", tmp_path / "y.npy")
    y = s.run(test)
    assert np.array_equal(y, np.load(tmp_path / "y.npy"))
    assert (y.argmax(1) == digits["test_y"]).mean() > 0.97
    with pytest.raises(sparq.Error, match="takes uint8 camera frames"):
        s.run(digits["test_x"][:1])
    got = sparq.eval(tmp_path / "u8.sparq", test, labels=digits["test_y"])
    assert got["uint8_frames"] and got["samples"] == 360


def test_eval_is_the_clis(cli, digits, int8_model):
    want = json.loads(run_cli(cli, "eval", int8_model, "--data", DIGITS / "test_x.npy", "--labels",
                              DIGITS / "test_y.npy", "--reference", ONNX, "--json"))
    got = sparq.eval(int8_model, digits["test_x"], labels=digits["test_y"], reference=ONNX)
    assert got == want
    assert got["samples"] == 360 and got["top1_agreement"] > 0.98 and got["sqnr_db"] > 20
    labels_only = sparq.eval(int8_model, DIGITS / "test_x.npy", labels=DIGITS / "test_y.npy")
    assert labels_only["accuracy"] == got["accuracy"] and labels_only["top1_agreement"] is None


def test_bench_has_the_clis_fields(cli, int8_model):
    want = json.loads(run_cli(cli, "bench", int8_model, "--iters", "5", "--warmup", "1", "--json", "--per-op"))
    got = sparq.bench(int8_model, iters=5, warmup=1, per_op=True, threads=2)
    assert set(got) == set(want) and set(got["startup"]) == set(want["startup"])
    assert got["iters"] == 5 and got["threads"] == 2 and 0 < got["min_ms"] <= got["p50_ms"] <= got["max_ms"]
    assert [op["name"] for op in got["per_op"]] == [op["name"] for op in want["per_op"]]
    paired = sparq.bench(int8_model, iters=4, warmup=1, baseline=int8_model)
    assert paired["speedup_median"] > 0 and "baseline" in paired


def test_reports(digits, int8_model, tmp_path):
    sparq.compile(ONNX, calib=digits["calib_x"][:20], quiet=True, report=tmp_path / "c.html")
    sparq.bench(int8_model, iters=3, warmup=1, report=tmp_path / "b.html")
    sparq.eval(int8_model, digits["test_x"][:50], reference=ONNX, report=tmp_path / "e.html")
    for page in ["c.html", "b.html", "e.html"]:
        text = (tmp_path / page).read_text()
        assert text.startswith("<!DOCTYPE html>") and "<svg" in text, page


def test_bad_input_raises_sparq_error(digits, int8_model, tmp_path):
    s = sparq.Session(int8_model)
    x = digits["test_x"][:2]
    cases = [
        (lambda: s.run(x.astype(np.float64)), "dtype float64, the model takes float32"),
        (lambda: s.run(x[:, :, :4]), r"shape \(2, 1, 4, 8\), the model takes \(1, 1, 8, 8\)"),
        (lambda: s.run({"image": x}), "the model's inputs are \\['input'\\]"),
        (lambda: s.run([x, x]), "takes 1 input"),
        (lambda: sparq.Session(tmp_path / "missing.sparq"), "cannot read .*missing.sparq"),
        (lambda: sparq.Session(ONNX), "not a .sparq file|bad magic|invalid .sparq"),
        (lambda: sparq.Session(int8_model.read_bytes()[:100]), "truncated"),
        (lambda: sparq.Session(int8_model, threads=0), "threads must be at least 1"),
        (lambda: sparq.compile(tmp_path / "missing.onnx"), "cannot read .*missing.onnx"),
        (lambda: sparq.compile(ONNX, calib=digits["calib_x"][:, :, :3]), "calib has shape \\[100, 1, 3, 8\\]"),
        (lambda: sparq.compile(ONNX, calib=digits["calib_x"].astype(object)), "dtype object"),
        (lambda: sparq.compile(ONNX, calib=digits["calib_x"], quant="int4"), "invalid value 'int4'.*possible values"),
        (lambda: sparq.compile(ONNX, calib=digits["calib_x"], min_agreement=2), "--min-agreement 2"),
        (lambda: sparq.eval(int8_model, x, labels=digits["test_y"]), "360 labels for 2 samples"),
        (lambda: sparq.bench(tmp_path / "missing.sparq"), "cannot read"),
    ]
    bad = ONNX.read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(bad[: len(bad) // 2])
    cases.append((lambda: sparq.compile(tmp_path / "truncated.onnx"), "truncated.onnx"))
    # One byte flipped inside the weights: the file's checksum names the section.
    data = bytearray(int8_model.read_bytes())
    data[len(data) // 2] ^= 0x40
    (tmp_path / "corrupt.sparq").write_bytes(bytes(data))
    cases.append((lambda: sparq.Session(tmp_path / "corrupt.sparq"), "checksum|CRC|crc"))
    for call, message in cases:
        with pytest.raises(sparq.Error, match=message):
            call()
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        sparq.compile(ONNX, bogus=1)
    with pytest.raises(TypeError, match="per_layer is a switch"):
        sparq.compile(ONNX, per_layer="yes")
    # Nothing half-written: a failed compile leaves no output file.
    with pytest.raises(sparq.Error):
        sparq.compile(tmp_path / "truncated.onnx", output=tmp_path / "out.sparq")
    assert not (tmp_path / "out.sparq").exists()
    # The session still works after all that.
    assert s.run(x).shape == (2, 10)


@pytest.mark.skipif(not (os.environ.get("SPARQ_MOBILENET") and os.environ.get("SPARQ_CROPS")),
                    reason="set SPARQ_MOBILENET (ONNX) and SPARQ_CROPS ((N, 224, 224, 3) uint8 .npy) to check MobileNetV2")
def test_mobilenet_v2_is_the_clis(cli, tmp_path):
    """MobileNetV2 from numpy arrays: calibrated on crops 0-99, run and evaluated on crops 100-255."""
    onnx, crops = Path(os.environ["SPARQ_MOBILENET"]), np.load(os.environ["SPARQ_CROPS"])
    norm = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    np.save(tmp_path / "calib.npy", crops[:100])
    np.save(tmp_path / "eval.npy", crops[100:])
    m = sparq.compile(onnx, calib=crops[:100], quiet=True, **norm)
    run_cli(cli, "compile", onnx, "--calib", tmp_path / "calib.npy", "--mean", "0.485,0.456,0.406",
            "--std", "0.229,0.224,0.225", "-o", tmp_path / "cli.sparq")
    assert m.data == (tmp_path / "cli.sparq").read_bytes()
    # Normalized in float32 as the CLI does it (x / 255, - mean, / std, per channel), then NCHW.
    x = crops[100:].astype(np.float32) / np.float32(255)
    x = ((x - np.array(norm["mean"], np.float32)) / np.array(norm["std"], np.float32)).transpose(0, 3, 1, 2)
    run_cli(cli, "run", tmp_path / "cli.sparq", "--input", tmp_path / "eval.npy", "--mean", "0.485,0.456,0.406",
            "--std", "0.229,0.224,0.225", "--output", tmp_path / "y.npy")
    y = m.session(threads=2).run(np.ascontiguousarray(x))
    assert np.array_equal(y, np.load(tmp_path / "y.npy"))
    got = sparq.eval(tmp_path / "cli.sparq", crops[100:], reference=onnx, quiet=True, **norm)
    want = json.loads(run_cli(cli, "eval", tmp_path / "cli.sparq", "--data", tmp_path / "eval.npy", "--reference", onnx,
                              "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225", "--json"))
    assert {k: v for k, v in got.items() if k != "model"} == {k: v for k, v in want.items() if k != "model"}
    print(f"MobileNetV2 on crops 100-255: top-1 agreement {got['top1_agreement']:.4f}, SQNR {got['sqnr_db']:.1f} dB")
