"""PyTorch twins of the 10-layer BaselineCNN and ParallelRotScaleGCNN(paper), for same-run speed peers.

Re-implemented from the layer plans in docs/model-summary.md (the official PyTorch code's
structure): "std conv" = Conv2d(3x3, padding 1, bias) -> BatchNorm2d -> ReLU, 2x2 max-pools, a
global max-pool head and one Linear. The rot-scale model's C8 lifting uses e2cnn's ``R2Conv``
(as the official code does) when e2cnn is importable, else a plain 3 -> 128 convolution with the
same output shape and multiply-accumulates (the row is then labelled "plain-conv stand-in").

Nothing here is a project dependency: the benchmarks import this module only when ``torch``
is importable (e.g. installed with ``pip install --target DIR torch`` and passed as
``--peers-path DIR`` to model_throughput.py, ``--torch-path DIR`` to attack_throughput.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

try:  # the official code's steerable C8 lifting
    from e2cnn import gspaces
    from e2cnn import nn as enn
except ImportError:  # pragma: no cover - depends on the peer environment
    enn = None


def std_conv(in_channels, out_channels, kernel_size=3):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def _trunk(in_channels, plan):
    """``plan``: widths and "pool" markers, as in docs/model-summary.md."""
    layers, channels = [], in_channels
    for item in plan:
        if item == "pool":
            layers.append(nn.MaxPool2d(2))
        else:
            layers.append(std_conv(channels, item))
            channels = item
    return nn.Sequential(*layers), channels


class _Head(nn.Module):
    def __init__(self, channels, num_classes):
        super().__init__()
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, features):
        return self.linear(torch.amax(features, dim=(2, 3)))


class BaselineCNN10(nn.Module):
    """The official ``ExtendedCNN``: 10 std convs, 5 max-pools, global max pool, Linear."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.features, channels = _trunk(
            3, [16, "pool", 32, "pool", 32, 64, "pool", 64, 128, "pool", 128, 256, "pool",
                256, 256])
        self.head = _Head(channels, num_classes)

    def forward(self, images):
        return self.head(self.features(images))


class _C8Lifting(nn.Module):
    """3 trivial -> 16 regular C8 fields (+ ReLU), 128 channels; e2cnn when available."""

    def __init__(self):
        super().__init__()
        if enn is not None:
            space = gspaces.Rot2dOnR2(N=8)
            self.in_type = enn.FieldType(space, 3 * [space.trivial_repr])
            out_type = enn.FieldType(space, 16 * [space.regular_repr])
            self.conv = enn.R2Conv(self.in_type, out_type, kernel_size=3, padding=1)
            self.relu = enn.ReLU(out_type)
        else:
            self.conv = nn.Conv2d(3, 128, 3, padding=1)

    def forward(self, images):
        if enn is None:
            return F.relu(self.conv(images))
        return self.relu(self.conv(enn.GeometricTensor(images, self.in_type))).tensor


class ParallelRotScaleGCNN10(nn.Module):
    """The official ``BaselineCNNWithParallelScaleAndRotEquivariance`` (C8, as evaluated)."""

    uses_e2cnn = enn is not None

    def __init__(self, num_classes=10):
        super().__init__()
        self.standard = std_conv(3, 16)
        self.rotation = _C8Lifting()
        self.scale_half, self.scale_one, self.scale_two = (std_conv(3, 16), std_conv(3, 16),
                                                          std_conv(3, 16))
        self.fusion = std_conv(192, 32, kernel_size=1)
        self.features, channels = _trunk(
            32, ["pool", 32, 32, "pool", 64, 128, 128, 256, 256, 512])
        self.head = _Head(channels, num_classes)

    def forward(self, images):
        size = images.shape[-2:]

        def resized(tensor, factor):
            return F.interpolate(tensor, scale_factor=factor, mode="bilinear",
                                 align_corners=False)

        def back(tensor):
            return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)

        branches = [self.standard(images), self.rotation(images),
                    back(self.scale_half(resized(images, 0.5))), self.scale_one(images),
                    back(self.scale_two(resized(images, 2.0)))]
        return self.head(self.features(self.fusion(torch.cat(branches, dim=1))))


TWINS = {
    "BaselineCNN(10)": BaselineCNN10,
    "ParallelRotScaleGCNN(10, paper)": ParallelRotScaleGCNN10,
}


def training_step(model, images, labels):
    """A zero-argument callable: one Adam step on ``(images, labels)`` (NCHW float32 tensors)."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.detach()

    step()  # warm up
    return step


def input_gradient_step(model, images, labels):
    """A zero-argument callable: one forward + backward pass to the input (what attacks need)."""
    with torch.no_grad():  # e2cnn expands and caches its filter here: keep it out of the graph
        model.eval()
    images = images.clone().requires_grad_(True)

    def step():
        images.grad = None
        F.cross_entropy(model(images), labels).backward()
        return images.grad

    step()
    return step


def pgd(model, images, labels, eps, steps, step_size):
    """The textbook eager L-inf PGD (Madry et al.): uniform random start in the eps-ball, then
    ``steps`` signed-gradient steps of cross-entropy, each projected onto the ball and [0, 1];
    returns the last iterate (no best-iterate bookkeeping). NCHW float32 tensors in [0, 1]."""
    model.eval()
    adversarial = (images + torch.empty_like(images).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        adversarial.requires_grad_(True)
        (gradient,) = torch.autograd.grad(F.cross_entropy(model(adversarial), labels),
                                          adversarial)
        with torch.no_grad():
            adversarial = adversarial + step_size * gradient.sign()
            adversarial = torch.minimum(torch.maximum(adversarial, images - eps), images + eps)
            adversarial = adversarial.clamp(0, 1)
    return adversarial.detach()
