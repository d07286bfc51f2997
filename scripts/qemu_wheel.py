#!/usr/bin/env python3
"""Install the aarch64 Python wheel the way a Raspberry Pi user would, and use it, under qemu-user.

No aarch64 machine here, so: Debian bookworm's own arm64 CPython 3.11 (the interpreter of 64-bit
Raspberry Pi OS; its .deb files from deb.debian.org, each checked against the SHA256 of Debian's
package index, unpacked into a root directory), numpy's aarch64 wheel from PyPI, and the sparq
wheel, both unpacked into one site directory as pip would. Then, under
`qemu-aarch64-static -cpu cortex-a72` (a Raspberry Pi 4's core): import sparq, run a model compiled
on this x86-64 machine and require the outputs to equal, bit for bit, what the x86-64 package
gives (every kernel path is bit-exact to the scalar one), and compile the digits model there.

    .venv/bin/python scripts/qemu_wheel.py --wheel dist/rpi4/sparq-*_aarch64.whl --python .venv/bin/python
"""

import argparse
import hashlib
import lzma
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIRROR = "http://deb.debian.org/debian/"
INDEX = MIRROR + "dists/bookworm/main/binary-arm64/Packages.xz"
# CPython and what `import numpy, sparq` loads.
PACKAGES = ["python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "zlib1g", "libexpat1",
            "libffi8", "libbz2-1.0", "liblzma5", "libgcc-s1", "libstdc++6"]
NUMPY = "numpy==1.26.4"

# Run by the aarch64 interpreter: outputs of the x86-compiled model, then a compile on aarch64.
SNIPPET = r"""
import sys, numpy as np, sparq
model, x, y_path, onnx, calib, labels = sys.argv[1:7]
s = sparq.Session(model, threads=2)
y = s.run(np.load(x))
np.save(y_path, y)
m = sparq.compile(onnx, calib=np.load(calib), quiet=True)
acc = (m.session().run(np.load(x)).argmax(1) == np.load(labels)).mean()
print(f"aarch64 (qemu cortex-a72): sparq {sparq.version()}, numpy {np.__version__}, kernels {s.kernels}; "
      f"compiled the digits model there: {len(m)} bytes, test accuracy {acc:.4f}")
assert acc > 0.98
"""


def fetch(url, path, sha256=None):
    if not path.exists():
        tmp = path.with_suffix(".part")
        urllib.request.urlretrieve(url, tmp)
        tmp.rename(path)
    if sha256 and hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        path.unlink()
        sys.exit(f"{url}: checksum mismatch against Debian's index")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", required=True, help="the sparq aarch64 wheel")
    ap.add_argument("--python", required=True, help="a python with the x86-64 sparq package (the reference)")
    ap.add_argument("--cache", default=os.path.join(os.environ.get("SPARQ_CACHE", Path.home() / ".cache/sparq"), "arm64-python"))
    args = ap.parse_args()
    cache = Path(args.cache)
    (cache / "debs").mkdir(parents=True, exist_ok=True)
    # The current index (it names the current versions), fetched anew each run.
    index = lzma.decompress(urllib.request.urlopen(INDEX).read()).decode()
    entries = {}
    for block in index.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z0-9.+-]+): (.*)$", block, re.M))
        if "Package" in fields:
            entries[fields["Package"]] = fields
    work = Path(tempfile.mkdtemp(prefix="sparq-arm64-"))
    root, site = work / "root", work / "site"
    for name in PACKAGES:
        e = entries[name]
        deb = fetch(MIRROR + e["Filename"], cache / "debs" / Path(e["Filename"]).name, e["SHA256"])
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    wheels = cache / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", NUMPY, "--only-binary=:all:", "--no-deps",
                    "--platform", "manylinux2014_aarch64", "--python-version", "3.11", "-d", str(wheels)], check=True)
    import zipfile
    for w in [*wheels.glob("numpy-*aarch64*.whl"), Path(args.wheel)]:
        with zipfile.ZipFile(w) as z:
            z.extractall(site)
    digits = ROOT / "models" / "digits"
    model = work / "digits.sparq"
    subprocess.run([args.python, "-c", f"""
import numpy as np, sparq
m = sparq.compile("{digits / 'digits_cnn.onnx'}", calib=np.load("{digits / 'calib_x.npy'}"), quiet=True, target="aarch64")
m.save("{model}")
np.save("{work / 'y_x86.npy'}", m.session().run(np.load("{digits / 'test_x.npy'}")))
"""], check=True)
    env = dict(os.environ, PYTHONPATH=str(site), PYTHONNOUSERSITE="1")
    cmd = ["qemu-aarch64-static", "-cpu", "cortex-a72", "-L", str(root), str(root / "usr/bin/python3.11"), "-c", SNIPPET,
           str(model), str(digits / "test_x.npy"), str(work / "y_arm.npy"), str(digits / "digits_cnn.onnx"),
           str(digits / "calib_x.npy"), str(digits / "test_y.npy")]
    subprocess.run(cmd, check=True, env=env)
    import numpy as np
    same = np.array_equal(np.load(work / "y_x86.npy"), np.load(work / "y_arm.npy"))
    print(f"{Path(args.wheel).name}: outputs on aarch64 {'equal' if same else 'DIFFER FROM'} x86-64's, bit for bit "
          "(digits model compiled here with --target aarch64, 360 test samples)")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
