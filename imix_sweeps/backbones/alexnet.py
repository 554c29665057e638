"""AlexNet for contrastive learning on 224 px images, with CMC's two-half variant.

``halves=False``: one AlexNet (BN after every conv/fc, as in CMC's ``alexnet``), 4096-d
features after fc7. ``halves=True`` (CMC): the input channels are split into ``split`` groups
(Lab: L = 1 channel, ab = 2) and each goes through its own half-width AlexNet; the two
2048-d features are concatenated (``out_dim`` 4096). ``width`` scales the channel counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _conv(cin: int, cout: int, k: int, s: int, p: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class AlexNetHalf(nn.Module):
    """conv 96-256-384-384-256 (x ``scale``), 3 max-pools, fc 4096-4096 (x ``scale``)."""

    def __init__(self, in_channels: int, scale: float = 1.0) -> None:
        super().__init__()
        c = [round(n * scale) for n in (96, 256, 384, 384, 256)]
        fc = round(4096 * scale)
        self.features = nn.Sequential(
            *_conv(in_channels, c[0], 11, 4, 2),
            nn.MaxPool2d(3, 2),
            *_conv(c[0], c[1], 5, 1, 2),
            nn.MaxPool2d(3, 2),
            *_conv(c[1], c[2], 3, 1, 1),
            *_conv(c[2], c[3], 3, 1, 1),
            *_conv(c[3], c[4], 3, 1, 1),
            nn.MaxPool2d(3, 2),
            nn.AdaptiveAvgPool2d(6),
            nn.Flatten(),
        )
        self.fc = nn.Sequential(
            nn.Linear(c[4] * 36, fc, bias=False),
            nn.BatchNorm1d(fc),
            nn.ReLU(inplace=True),
            nn.Linear(fc, fc, bias=False),
            nn.BatchNorm1d(fc),
            nn.ReLU(inplace=True),
        )
        self.out_dim = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class AlexNet(nn.Module):
    def __init__(
        self, in_channels: int, halves: bool, split: Sequence[int], width: float = 1.0
    ) -> None:
        super().__init__()
        if halves:
            split = [int(s) for s in split]
            if sum(split) != in_channels or len(split) != 2:
                raise ValueError(
                    f"alexnet halves need a 2-way channel split adding up to {in_channels}; got {split}"
                )
            self.split = split
            self.nets = nn.ModuleList(AlexNetHalf(s, 0.5 * width) for s in split)
        else:
            self.split = None
            self.nets = nn.ModuleList([AlexNetHalf(in_channels, width)])
        self.out_dim = sum(n.out_dim for n in self.nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.split is None:
            return self.nets[0](x)
        return torch.cat([n(p) for n, p in zip(self.nets, x.split(self.split, dim=1))], dim=1)


def alexnet(
    in_shape: Sequence[int],
    halves: bool = False,
    split: Sequence[int] = (1, 2),
    width: float = 1.0,
) -> AlexNet:
    """``halves``: CMC's one half-width AlexNet per channel group (``split``)."""
    if len(in_shape) != 3:
        raise ValueError(f"alexnet needs image inputs [C, H, W]; got in_shape={list(in_shape)}")
    if min(in_shape[1:]) < 63:
        raise ValueError(
            f"alexnet needs images of at least 63x63 (224 px in the papers); got in_shape={list(in_shape)}"
        )
    return AlexNet(int(in_shape[0]), halves, split, width)
