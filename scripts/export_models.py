#!/usr/bin/env python3
"""Export the real edge architectures of issue 22 to ONNX (opset 13) with torch/torchvision.

Random weights (seeded): they do not change which operators a model needs. So that activations
have realistic ranges (a freshly initialized network's logits can be ~1e-9, which says nothing
about int8), every BatchNormalization's statistics are re-estimated on random inputs before
export, as a trained network's would be on its data. The files are not
committed (tens of MB); tests build small models in Rust, and the benches and the conformance
notes use these.

    python3 scripts/export_models.py OUT_DIR [name ...]
"""
import os
import sys

import torch
import torchvision


def classifiers():
    m = torchvision.models
    return {
        "mobilenet_v3_small": (lambda: m.mobilenet_v3_small(), (1, 3, 224, 224)),
        "mobilenet_v3_large": (lambda: m.mobilenet_v3_large(), (1, 3, 224, 224)),
        "efficientnet_b0": (lambda: m.efficientnet_b0(), (1, 3, 224, 224)),
        "shufflenet_v2_x1_0": (lambda: m.shufflenet_v2_x1_0(), (1, 3, 224, 224)),
        "squeezenet1_1": (lambda: m.squeezenet1_1(), (1, 3, 224, 224)),
        "resnet18": (lambda: m.resnet18(), (1, 3, 224, 224)),
        "lraspp_mobilenet_v3_large": (
            lambda: m.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None),
            (1, 3, 256, 256),
        ),
        "deeplabv3_mobilenet_v3_large": (
            lambda: m.segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, aux_loss=False),
            (1, 3, 256, 256),
        ),
    }


class SegOut(torch.nn.Module):
    """torchvision segmentation models return a dict; export its 'out'."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)["out"]


def recalibrate_batchnorm(model, shape, batches=8):
    """BatchNorm running statistics = the exact mean/variance of its input over random batches."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(max(shape[0], 4), *shape[1:]))
    model.eval()


def export(name, make, shape, out_dir):
    torch.manual_seed(0)
    model = make()
    recalibrate_batchnorm(model, shape)
    if "lraspp" in name or "deeplab" in name:
        model = SegOut(model).eval()
    x = torch.randn(*shape)
    path = os.path.join(out_dir, name + ".onnx")
    torch.onnx.export(model, x, path, opset_version=13, dynamo=False, input_names=["input"], output_names=["output"])
    print(f"{name}: {path} ({os.path.getsize(path)} bytes)")


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    wanted = sys.argv[2:]
    for name, (make, shape) in classifiers().items():
        if not wanted or name in wanted:
            export(name, make, shape, out_dir)


if __name__ == "__main__":
    main()
