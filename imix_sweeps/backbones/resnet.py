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


def init_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """Kaiming-normal (fan_out, ReLU) weights, as torchvision initialises every ResNet conv and
    as the official i-Mix (``models/resnet.py`` L166-169) and CMC (``models/resnet.py``
    L129-131, ``normal(0, sqrt(2 / (k * k * out)))``) ResNets initialise their first conv."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def _scale_width(net: torchvision.models.ResNet, width: float) -> None:
    """CMC's ``width``: stages of ``int(64 * width) * (1, 2, 4, 8)`` planes after a 64-channel
    stem (CMC ``models/resnet.py`` L110-126; ``width=0.5`` is its "ResNet-50 half")."""
    base = int(64 * width)
    block = type(net.layer1[0])
    net.inplanes, net.dilation = 64, 1
    layers = [len(getattr(net, f"layer{i}")) for i in range(1, 5)]
    net.layer1 = net._make_layer(block, base, layers[0])
    for i, stride in ((2, 2), (3, 2), (4, 2)):
        setattr(
            net, f"layer{i}", net._make_layer(block, base * 2 ** (i - 1), layers[i - 1], stride)
        )
    net.fc = nn.Linear(base * 8 * block.expansion, net.fc.out_features)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            init_conv(m)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resnet(
    in_shape: Sequence[int],
    arch: str = "resnet18",
    stem: str = "cifar",
    width_multiplier: int = 1,
    width: float = 1.0,
    zero_init_residual: bool = False,
) -> ResNetTrunk:
    """ResNet-18/34/50 with the ``cifar`` stem (3x3 conv stride 1, no max-pool, as i-Mix / Un-Mix
    use on 32x32 inputs and 1x32x32 spectrograms) or the ``imagenet`` stem (7x7 stride 2 + pool).
    ``in_shape[0]`` channels (1 for spectrograms). ``width_multiplier``: wide ResNet (bottleneck
    width only); ``width``: every stage scaled, as CMC's ``resnet50(width=...)``."""
    if arch not in ARCHS:
        raise ValueError(f"unknown ResNet {arch!r}; allowed: {', '.join(ARCHS)}")
    if len(in_shape) != 3:
        raise ValueError(f"{arch} needs image-like inputs [C, H, W]; got in_shape={list(in_shape)}")
    kwargs: dict = {"weights": None, "zero_init_residual": zero_init_residual}
    if width_multiplier != 1:
        kwargs["width_per_group"] = 64 * width_multiplier
    net = getattr(torchvision.models, arch)(**kwargs)
    if width != 1.0:
        _scale_width(net, width)
    in_channels = int(in_shape[0])
    if stem == "cifar":
        net.conv1 = init_conv(
            nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        )
        net.maxpool = nn.Identity()
    elif stem == "imagenet":
        if in_channels != 3:
            net.conv1 = init_conv(
                nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            )
    else:
        raise ValueError(f"unknown ResNet stem {stem!r}; allowed: cifar, imagenet")
    return ResNetTrunk(net)
