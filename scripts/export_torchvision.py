"""Export torchvision classifiers (random weights: nothing is downloaded) to ONNX for speed comparisons:
`python3 scripts/export_torchvision.py OUT_DIR [--calib CROPS.npy] [efficientnet_b0 mobilenet_v3_large ...]`.
Opset 13, batch 1, 224x224, the TorchScript exporter (`dynamo=False`). Weights are seeded, so the files are
reproducible; their accuracy means nothing, their latency is the point (issue 27: EfficientNet-B0 and
MobileNetV3-Large against ONNX Runtime int8 with `../shared/peers/compare.py`). A freshly initialized network's
logits are ~1e-13 (its batch-norm statistics are the identity); with `--calib` (uint8 NHWC crops, ImageNet
normalization) the batch-norm running statistics are first re-estimated on those images, so activations and
logits have realistic ranges and an int8 model's agreement with the float one can be checked."""
import os
import sys

import torch
import torchvision


def crops(path):
    import numpy as np

    x = np.load(path).astype(np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


def main():
    args = sys.argv[1:]
    calib = None
    if "--calib" in args:
        i = args.index("--calib")
        calib = crops(args[i + 1])
        del args[i : i + 2]
    out = args[0]
    names = args[1:] or ["efficientnet_b0", "mobilenet_v3_large"]
    os.makedirs(out, exist_ok=True)
    for name in names:
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)(weights=None)
        if calib is not None:
            # Batch-norm running statistics from the images (cumulative average), no weight changes.
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.reset_running_stats()
                    m.momentum = None
            model.train()
            with torch.no_grad():
                for b in range(0, len(calib), 20):
                    model(calib[b : b + 20])
        model = model.eval()
        path = os.path.join(out, f"{name}.onnx")
        x = torch.randn(1, 3, 224, 224)
        torch.onnx.export(model, x, path, opset_version=13, input_names=["input"], output_names=["logits"], dynamo=False)
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
