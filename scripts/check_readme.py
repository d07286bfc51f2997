#!/usr/bin/env python3
"""Run the README's commands top to bottom, as a new user would (issue 26), and list each one.

Every ```sh block's commands and every ```python block run in a scratch directory that holds the
repository's `models/` and `python/` (symlinks; `model.onnx` and `calib.npy` are the digits model
and its calibration set), with the `sparq` CLI first on PATH (`--sparq`)
and `python` the interpreter given (`--python`, with the package installed). `cargo run --release
-- ARGS` runs as `sparq ARGS`: the same binary. ```text blocks are syntax summaries, not run.
Commands that cannot run here are listed with the reason (what runs them instead); any other
command failing fails the check.

    python3 scripts/check_readme.py --sparq target/release/sparq --python .venv/bin/python \
        [--mobilenet mobilenet_v2.onnx --crops crops_224_nhwc_u8.npy]
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Commands not run here, by their start, and why.
SKIPPED = [
    ("cargo test --release --workspace", "the test command itself: .ci/run runs it first"),
    ("cargo install --locked --path .", "a second release build of the CLI (10+ minutes); installs target/release/sparq, which runs here"),
    ("pip install ./python", ".ci/run runs it into the venv whose python runs the Python block here"),
    ("rustup target add", ".ci/run installs the cross targets it needs"),
    ("sudo apt-get install", ".ci/run installs the cross compilers it needs"),
    ("targets/build.sh", ".ci/run's device section runs it (rpi4, rpi5, rpi-armv7, android-arm64)"),
    ("targets/bench-on-device.sh --profile rpi4 --ssh", "needs a Raspberry Pi; .ci/run runs it with --qemu"),
]

# The MobileNetV2 example needs the pretrained model and photo crops (../shared/), not in the repository.
NEEDS_SHARED = ("mobilenet_v2.onnx", "crops_100.npy", "crops_156.npy")


def blocks(text):
    """(language, first line number, body) of each fenced block."""
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        yield m.group(1), text[: m.start()].count("\n") + 2, m.group(2)


def commands(body):
    """Shell commands of a block: continuation lines joined, comments dropped."""
    out, cur = [], ""
    for line in body.splitlines():
        line = re.sub(r"\s+#.*$", "", line) if not line.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        if cur.strip():
            out.append(cur.strip())
        cur = ""
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparq", required=True, help="the sparq CLI to run as `sparq`")
    ap.add_argument("--python", default=sys.executable, help="a python with the sparq package installed")
    ap.add_argument("--readme", default=str(ROOT / "README.md"))
    ap.add_argument("--mobilenet", help="MobileNetV2's ONNX file: also run the MobileNetV2 example")
    ap.add_argument("--crops", help="with --mobilenet: (N, 224, 224, 3) uint8 photo crops; 0-99 calibrate, 100- evaluate")
    args = ap.parse_args()
    sparq = Path(args.sparq).resolve()
    text = Path(args.readme).read_text()
    work = Path(tempfile.mkdtemp(prefix="sparq-readme-"))
    for d in ["models", "python"]:
        (work / d).symlink_to(ROOT / d)
    # The generic names of the device section's example: the digits model and its calibration set.
    (work / "model.onnx").symlink_to(ROOT / "models/digits/digits_cnn.onnx")
    (work / "calib.npy").symlink_to(ROOT / "models/digits/calib_x.npy")
    shared = bool(args.mobilenet and args.crops)
    if shared:
        import numpy as np
        (work / "mobilenet_v2.onnx").symlink_to(Path(args.mobilenet).resolve())
        crops = np.load(args.crops)
        np.save(work / "crops_100.npy", crops[:100])
        np.save(work / "crops_156.npy", crops[100:])
    bindir = work / "bin"
    bindir.mkdir()
    (bindir / "sparq").symlink_to(sparq)
    # A wrapper, not a symlink: a venv's python finds its packages from the path it was started by.
    (bindir / "python").write_text(f'#!/bin/sh\nexec "{Path(args.python).absolute()}" "$@"\n')
    (bindir / "python").chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    ran, skipped, failed = 0, 0, 0
    for lang, line, body in blocks(text):
        if lang == "python":
            cmds = [("python (block)", [str(bindir / "python"), "-c", body])]
        elif lang == "sh":
            cmds = []
            for c in commands(body):
                reason = next((why for start, why in SKIPPED if c.startswith(start)), None)
                if reason is None and not shared and any(f in c for f in NEEDS_SHARED):
                    reason = "needs MobileNetV2 and the photo crops (../shared/); the results table was measured with it"
                if reason:
                    print(f"README:{line}: skipped  {c}\n    ({reason})")
                    skipped += 1
                    continue
                argv = shlex.split(c)
                if argv[:4] == ["cargo", "run", "--release", "--"]:
                    argv = ["sparq"] + argv[4:]
                cmds.append((c, argv))
        else:
            continue
        for shown, argv in cmds:
            t = time.time()
            p = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True)
            status = "ok" if p.returncode == 0 else f"FAILED (exit {p.returncode})"
            print(f"README:{line}: {status:<8} {shown if len(shown) < 200 else shown[:200] + '...'}  [{time.time() - t:.1f} s]")
            if p.returncode == 0 and shared and any(f in shown for f in NEEDS_SHARED):
                print("    " + "\n    ".join(p.stdout.strip().splitlines()[-4:]))
            ran += 1
            if p.returncode != 0:
                failed += 1
                print(p.stdout[-2000:], p.stderr[-2000:], sep="\n")
    print(f"README commands: {ran} run, {failed} failed, {skipped} skipped (reasons above)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
