"""torchvision ResNets adapted (not rewritten) for small inputs and any channel count."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import nn

ARCHS = ("resnet18", "resnet34", "resnet50")


class ResNetTrunk(nn.Module):
    """A torchvision ResNet without its classifier: ``[B, C, H, W] -> [B, out_dim]``."""

    def __init__(self, net: torchvision.models.ResNet) -> None:
        super().__init__()
        self.out_dim = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def resnet(
    in_shape: Sequence[int],
    arch: str = "resnet18",
    stem: str = "cifar",
    width_multiplier: int = 1,
    zero_init_residual: bool = False,
) -> ResNetTrunk:
    """ResNet-18/34/50 with the ``cifar`` stem (3x3 conv stride 1, no max-pool, as i-Mix / Un-Mix
    use on 32x32 inputs and 1x32x32 spectrograms) or the ``imagenet`` stem (7x7 stride 2 + pool).
    ``in_shape[0]`` channels (1 for spectrograms)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown ResNet {arch!r}; allowed: {', '.join(ARCHS)}")
    if len(in_shape) != 3:
        raise ValueError(f"{arch} needs image-like inputs [C, H, W]; got in_shape={list(in_shape)}")
    kwargs: dict = {"weights": None, "zero_init_residual": zero_init_residual}
    if width_multiplier != 1:
        kwargs["width_per_group"] = 64 * width_multiplier
    net = getattr(torchvision.models, arch)(**kwargs)
    in_channels = int(in_shape[0])
    if stem == "cifar":
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif stem == "imagenet":
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    else:
        raise ValueError(f"unknown ResNet stem {stem!r}; allowed: cifar, imagenet")
    return ResNetTrunk(net)
