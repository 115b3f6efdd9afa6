#!/usr/bin/python3
"""Makes the PyTorch-exported ONNX models that internal/onnx's tests import.

Regenerate (Debian 12: apt-get install python3-torch python3-onnx) with

    /usr/bin/python3 internal/onnx/testdata/make_torch_models.py

from the repository root. It writes testdata/torch/NAME.onnx and
testdata/torch/NAME.json for each model below: the JSON holds a fixed input
batch and PyTorch's output for it ({"input": {"shape", "data"}, "output":
{"shape", "data"}}), which the Go test compares the imported graph's output
with. Everything is seeded, so a rerun with the same torch (1.13) gives the
same numbers; commit the files it writes.

The models cover what PyTorch 1.13 emits at opset 13 for common layers:
  mlp     Linear, ReLU, Tanh, Sigmoid, GELU (as Div/Erf/Add/Mul), Softmax
  lenet   Conv2d, MaxPool2d, AvgPool2d with padding (count_include_pad),
          x.view(x.size(0), -1) (Shape/Gather/Unsqueeze/Concat/Reshape),
          torch.flatten, torch.cat, log_softmax
  resnet  bias-free Conv2d + BatchNorm2d (eval mode, kept as
          BatchNormalization nodes), identity and 1x1-projection residual
          blocks, AdaptiveAvgPool2d(1) (GlobalAveragePool), Linear
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch")


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 16)
        self.fc3 = nn.Linear(16, 12)
        self.fc4 = nn.Linear(12, 12)
        self.fc5 = nn.Linear(12, 4)
        self.gelu = nn.GELU()

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        x = torch.sigmoid(self.fc3(x))
        x = self.gelu(self.fc4(x))
        return F.softmax(self.fc5(x), dim=1)


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 8, 3)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1)  # counts the padding
        self.fc1 = nn.Linear(8 * 3 * 3 + 4 * 2 * 2, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 4x8x8
        g = self.pool(F.relu(self.conv2(h)))  # 8x3x3
        a = g.view(g.size(0), -1)
        b = torch.flatten(F.max_pool2d(h, 4), 1)  # 4x2x2
        z = F.relu(self.fc1(torch.cat([a, b], 1)))
        return F.log_softmax(self.fc2(z), dim=1)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        s = x if self.short is None else self.short(x)
        return F.relu(y + s)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.block1 = Block(8, 8, 1)
        self.block2 = Block(8, 16, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.block2(self.block1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def randomize_batchnorm(model):
    """Gives BatchNorm layers non-trivial statistics and affine parameters:
    the defaults (mean 0, var 1, weight 1, bias 0) would hide mistakes, and
    PyTorch's exporter merges equal initializers into Identity nodes."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn_like(m.running_mean) * 0.3)
                m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)
                m.weight.copy_(torch.rand_like(m.weight) + 0.5)
                m.bias.copy_(torch.randn_like(m.bias) * 0.2)


def export(name, model, shape):
    model.eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        y = model(x)
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(
        model, x, path,
        opset_version=13,
        input_names=["input"], output_names=["output"],
        dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
        # PRESERVE exports the eval-mode graph as it is; EVAL would fold
        # BatchNorm into the convolutions and leave nothing to test.
        training=torch.onnx.TrainingMode.PRESERVE,
    )
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump({
            "input": {"shape": list(x.shape), "data": x.flatten().tolist()},
            "output": {"shape": list(y.shape), "data": y.flatten().tolist()},
        }, f)
        f.write("\n")
    print("wrote %s (%d bytes)" % (path, os.path.getsize(path)))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    export("mlp", MLP(), (2, 8))
    torch.manual_seed(1)
    export("lenet", LeNet(), (2, 1, 16, 16))
    torch.manual_seed(2)
    resnet = ResNet()
    randomize_batchnorm(resnet)
    export("resnet", resnet, (2, 3, 16, 16))


if __name__ == "__main__":
    main()
