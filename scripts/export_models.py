#!/usr/bin/env python3
"""Export the real edge architectures of issue 22 to ONNX with torch/torchvision (opset 13; 17 for
the vision transformer, whose LayerNormalization is an operator from 17 on).

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


def conv_bn(cin, cout, k, stride=1, padding=None, act=True):
    layers = [
        torch.nn.Conv2d(cin, cout, k, stride, k // 2 if padding is None else padding, bias=False),
        torch.nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class DBNet(torch.nn.Module):
    """A DBNet-style text detector (Liao et al. 2020) on a MobileNetV3-Small backbone: an FPN neck
    (1x1 laterals, nearest upsampling and sums, every level resized to 1/4 and concatenated) and
    the probability head (3x3 conv, two stride-2 transposed convolutions, sigmoid)."""

    def __init__(self):
        super().__init__()
        f = torchvision.models.mobilenet_v3_small().features
        self.stages = torch.nn.ModuleList([f[:2], f[2:4], f[4:9], f[9:]])  # strides 4, 8, 16, 32
        chans = [16, 24, 48, 576]
        self.lateral = torch.nn.ModuleList([torch.nn.Conv2d(c, 64, 1) for c in chans])
        self.smooth = torch.nn.ModuleList([conv_bn(64, 16, 3) for _ in chans])
        self.head = torch.nn.Sequential(
            conv_bn(64, 16, 3),
            torch.nn.ConvTranspose2d(16, 16, 2, 2),
            torch.nn.BatchNorm2d(16),
            torch.nn.ReLU(),
            torch.nn.ConvTranspose2d(16, 1, 2, 2),
            torch.nn.Sigmoid(),
        )

    def forward(self, x):
        feats = []
        for s in self.stages:
            x = s(x)
            feats.append(x)
        lat = [l(f) for l, f in zip(self.lateral, feats)]
        for i in range(len(lat) - 2, -1, -1):
            lat[i] = lat[i] + torch.nn.functional.interpolate(lat[i + 1], scale_factor=2, mode="nearest")
        size = lat[0].shape[2:]
        outs = [torch.nn.functional.interpolate(sm(l), size=size, mode="nearest") for sm, l in zip(self.smooth, lat)]
        return self.head(torch.cat(outs, 1))


class CRNN(torch.nn.Module):
    """A CRNN text recognizer (Shi et al. 2015): convolutions collapse a 32-pixel-high line to one
    row, read as a sequence by a two-layer bidirectional LSTM, then per-step class scores."""

    def __init__(self, classes=37):
        super().__init__()
        self.cnn = torch.nn.Sequential(
            conv_bn(1, 32, 3), torch.nn.MaxPool2d(2, 2),
            conv_bn(32, 64, 3), torch.nn.MaxPool2d(2, 2),
            conv_bn(64, 96, 3), torch.nn.MaxPool2d((2, 1), (2, 1)),
            conv_bn(96, 128, 3), torch.nn.MaxPool2d((2, 1), (2, 1)),
            conv_bn(128, 128, (2, 1), padding=0),
        )
        self.rnn = torch.nn.LSTM(128, 64, num_layers=2, bidirectional=True)
        self.fc = torch.nn.Linear(128, classes)

    def forward(self, x):
        f = self.cnn(x).squeeze(2).permute(2, 0, 1)  # [W, B, C]
        y, _ = self.rnn(f)
        return self.fc(y)


class KWS(torch.nn.Module):
    """A keyword-spotting network (in the style of Zhang et al. 2017, "Hello Edge": CRNN/GRU):
    a convolution over 40 MFCCs x 49 frames, a two-layer GRU over time, the last step classified
    into 12 keywords."""

    def __init__(self):
        super().__init__()
        self.conv = conv_bn(1, 16, (10, 4), stride=(2, 2), padding=(5, 1))
        self.gru = torch.nn.GRU(16 * 21, 64, num_layers=2, batch_first=True)
        self.fc = torch.nn.Linear(64, 12)

    def forward(self, x):
        f = self.conv(x)  # [B, 16, 21, T]
        b, c, h, t = f.shape
        f = f.permute(0, 3, 1, 2).reshape(b, t, c * h)
        y, _ = self.gru(f)
        return self.fc(y[:, -1])


def vit_tiny():
    """A small vision transformer (torchvision's VisionTransformer: patch embedding, class token,
    position embedding, LayerNorm, multi-head attention, GELU MLP)."""
    m = torchvision.models.VisionTransformer(
        image_size=64, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=10
    )
    # torchvision initializes the classifier to zeros (fine-tuning starts there): random instead,
    # so that the outputs say something.
    torch.nn.init.normal_(m.heads.head.weight, std=0.1)
    torch.nn.init.normal_(m.heads.head.bias, std=0.1)
    return m


def others():
    """name -> (constructor, input shape, opset)"""
    return {
        "dbnet_mobilenet_v3_small": (DBNet, (1, 3, 256, 256), 13),
        "crnn": (CRNN, (1, 1, 32, 128), 13),
        "vit_tiny": (vit_tiny, (1, 3, 64, 64), 17),
        "kws_gru": (KWS, (1, 1, 40, 49), 13),
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


def export(name, make, shape, out_dir, opset=13):
    torch.manual_seed(0)
    model = make()
    recalibrate_batchnorm(model, shape)
    if "lraspp" in name or "deeplab" in name:
        model = SegOut(model).eval()
    x = torch.randn(*shape)
    path = os.path.join(out_dir, name + ".onnx")
    torch.onnx.export(model, x, path, opset_version=opset, dynamo=False, input_names=["input"], output_names=["output"])
    print(f"{name}: {path} ({os.path.getsize(path)} bytes)")


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    wanted = sys.argv[2:]
    for name, (make, shape) in classifiers().items():
        if not wanted or name in wanted:
            export(name, make, shape, out_dir)
    for name, (make, shape, opset) in others().items():
        if not wanted or name in wanted:
            export(name, make, shape, out_dir, opset)


if __name__ == "__main__":
    main()
