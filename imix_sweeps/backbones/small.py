"""Small backbones for the embedded data (digits, digits as tabular rows) and tests."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU blocks (one 2x2 max-pool), global average pool: ``[B, C, H, W] -> [B, width*4]``."""

    def __init__(self, in_channels: int, width: int = 32) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]

        self.features = nn.Sequential(
            *block(in_channels, width),
            *block(width, width * 2),
            nn.MaxPool2d(2),
            *block(width * 2, width * 4),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_dim = width * 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def small_cnn(in_shape: Sequence[int], width: int = 32) -> SmallCNN:
    if len(in_shape) != 3:
        raise ValueError(f"small_cnn needs image inputs [C, H, W]; got in_shape={list(in_shape)}")
    return SmallCNN(in_shape[0], width)


class MLP(nn.Module):
    """``depth`` Linear-BN-ReLU layers of ``width`` units: ``[B, F] -> [B, width]``."""

    def __init__(self, in_features: int, width: int = 256, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_features
        for _ in range(depth):
            layers += [
                nn.Linear(d, width, bias=False),
                nn.BatchNorm1d(width),
                nn.ReLU(inplace=True),
            ]
            d = width
        self.net = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


def mlp(in_shape: Sequence[int], width: int = 256, depth: int = 3) -> MLP:
    features = 1
    for s in in_shape:
        features *= int(s)
    return MLP(features, width, depth)
