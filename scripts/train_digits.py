#!/usr/bin/env python3
"""Train sparq's embedded default model: a small CNN on scikit-learn's real handwritten digits.

The digits (1797 8x8 scans of handwriting from 43 writers, UCI) ship inside the scikit-learn wheel,
so nothing is downloaded. Writes, next to this repo's models/digits/:
  digits_cnn.onnx   opset 13, input "input" [1,1,8,8] float (pixel / 16), output "logits" [1,10]
  calib_x.npy       100 training images, float32 [100,1,8,8] (calibration set)
  test_x.npy        the held-out test split, float32 [N,1,8,8]
  test_y.npy        its labels, int64 [N]
Reproducible: fixed seeds, deterministic CPU training.
usage: python3 scripts/train_digits.py   (needs torch, onnx, scikit-learn, numpy)
"""
import os
import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

torch.manual_seed(0)
np.random.seed(0)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "digits")
os.makedirs(out_dir, exist_ok=True)

digits = load_digits()
x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
y = digits.target.astype(np.int64)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)


class DigitsCNN(nn.Module):
    """Conv-BN-ReLU, a depthwise-separable block with a residual add, max pool, and a classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.down = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, inp):
        h = self.stem(inp)
        h = h + self.pw(self.dw(h))
        h = self.pool(self.down(h))
        return self.fc(torch.flatten(h, 1))


model = DigitsCNN()
opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=60)
xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
for epoch in range(60):
    model.train()
    perm = torch.randperm(len(xt))
    for i in range(0, len(xt), 64):
        idx = perm[i:i + 64]
        # light augmentation: shift by up to one pixel
        xb = torch.roll(xt[idx], shifts=(int(np.random.randint(-1, 2)), int(np.random.randint(-1, 2))), dims=(2, 3))
        loss = nn.functional.cross_entropy(model(xb), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    sched.step()
model.eval()
with torch.no_grad():
    acc = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
print(f"float test accuracy: {acc * 100:.2f}% on {len(y_test)} held-out digits")

torch.onnx.export(model, torch.zeros(1, 1, 8, 8), os.path.join(out_dir, "digits_cnn.onnx"), opset_version=13,
                  input_names=["input"], output_names=["logits"], dynamo=False)
np.save(os.path.join(out_dir, "calib_x.npy"), x_train[:100])
np.save(os.path.join(out_dir, "test_x.npy"), x_test)
np.save(os.path.join(out_dir, "test_y.npy"), y_test)
