#!/usr/bin/env python3
"""Strip the weights of exported architectures for the repository's architecture tests.

Every float initializer of more than 64 values keeps its name, type and shape but loses its
data (the file then holds the graph only: tens of KB instead of tens of MB); integer
initializers (shapes, indices) and small float constants are kept. `tests/architectures.rs`
fills the stripped weights with seeded random values before compiling, so the tests exercise the
real graphs (operators, shapes, attributes, the exporters' shape arithmetic) of the models that
`scripts/export_models.py` exports, without weights in the repository or the network at test time.

    python3 scripts/export_models.py /tmp/models
    python3 scripts/strip_weights.py /tmp/models tests/models/arch
"""
import os
import sys

import onnx


def strip(src, dst):
    m = onnx.load(src)
    kept = stripped = 0
    for t in m.graph.initializer:
        n = 1
        for d in t.dims:
            n *= d
        if t.data_type == onnx.TensorProto.FLOAT and n > 64:
            t.ClearField("raw_data")
            t.ClearField("float_data")
            stripped += 1
        else:
            kept += 1
    m.doc_string = "weights stripped by scripts/strip_weights.py (float initializers of more than 64 values)"
    onnx.save(m, dst)
    print(f"{os.path.basename(dst)}: {stripped} initializers stripped, {kept} kept, {os.path.getsize(dst)} bytes")


if __name__ == "__main__":
    src_dir, dst_dir = sys.argv[1], sys.argv[2]
    os.makedirs(dst_dir, exist_ok=True)
    for f in sorted(os.listdir(src_dir)):
        if f.endswith(".onnx"):
            strip(os.path.join(src_dir, f), os.path.join(dst_dir, f))
