"""Contrastive Multiview Coding (Tian et al. 2019, official ``train_CMC.py`` / ``NCEAverage``).

The two views are colour channels of one image, converted inside the method from the RGB
batch: ``lab`` (L | ab) or ``ycbcr`` (Y | CbCr). Each view has its own encoder: two copies of
the configured backbone whose first convolution takes 1 and 2 channels (pick a narrower
backbone for the paper's "half" networks). Each view's embedding is scored against the other
view's memory bank (``l`` against ``ab``'s rows and vice versa), NCE or softmax-CE, and each
bank is updated with its own view's embedding. The evaluated feature is the concatenation of
both encoders' features.

Inputs: domains normalise their images; the colour conversion needs RGB in [0, 1], so give the
domain's normalisation as ``input_mean`` / ``input_std`` (per channel) to undo it. Without them
the inputs must already lie in [0, 1] (checked on the first batch; a clear error otherwise).
Only view 1 of each two-view batch is used (CMC's views are the colour channels).

Mix family ``im``: the CMC image mixtures applied to the RGB image before the conversion.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from imix_sweeps.backbones.resnet import init_conv
from imix_sweeps.contracts import MethodHooks
from imix_sweeps.heads import build_head, hidden_width
from imix_sweeps.methods.common import StepOut
from imix_sweeps.methods.family import check_family, single_view
from imix_sweeps.methods.memory import MemoryBank
from imix_sweeps.mix import MixStrategy

COLORS = ("lab", "ycbcr")

# official CMC normalisation of Lab (ranges of L, a, b): (v - mean) / std
LAB_MEAN = (50.0, (-86.183 + 98.233) / 2, (-107.857 + 94.478) / 2)
LAB_STD = (50.0, (86.183 + 98.233) / 2, (107.857 + 94.478) / 2)
# YCbCr (ITU-R BT.601 studio range, as skimage.rgb2ycbcr), normalised by its ranges
YCBCR_MEAN = ((16 + 235) / 2, 128.0, 128.0)
YCBCR_STD = ((235 - 16) / 2, 112.0, 112.0)


def rgb_to_lab(x: Tensor) -> Tensor:
    """sRGB [B, 3, H, W] in [0, 1] -> CIE Lab (D65), as ``skimage.color.rgb2lab``."""
    lin = torch.where(x > 0.04045, ((x + 0.055) / 1.055).clamp_min(0) ** 2.4, x / 12.92)
    m = torch.tensor(
        [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
         [0.019334, 0.119193, 0.950227]],
        dtype=x.dtype, device=x.device,
    )  # fmt: skip
    xyz = torch.einsum("ij,bjhw->bihw", m, lin)
    white = torch.tensor([0.95047, 1.0, 1.08883], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    t = xyz / white
    f = torch.where(t > 0.008856, t.clamp_min(1e-12) ** (1 / 3), 7.787 * t + 16 / 116)
    lum = 116 * f[:, 1:2] - 16
    a = 500 * (f[:, 0:1] - f[:, 1:2])
    b = 200 * (f[:, 1:2] - f[:, 2:3])
    return torch.cat([lum, a, b], dim=1)


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """sRGB [B, 3, H, W] in [0, 1] -> YCbCr (BT.601 studio range, as ``skimage.rgb2ycbcr``)."""
    m = torch.tensor(
        [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]],
        dtype=x.dtype, device=x.device,
    )  # fmt: skip
    off = torch.tensor([16.0, 128.0, 128.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", m, x) + off


class ColorViews(nn.Module):
    """Normalised RGB batch -> (view 1 [B, 1, H, W], view 2 [B, 2, H, W]), each normalised."""

    def __init__(
        self,
        *,
        color: str,
        input_mean: Sequence[float] | None,
        input_std: Sequence[float] | None,
    ) -> None:
        super().__init__()
        if color not in COLORS:
            raise ValueError(f"unknown CMC colour space {color!r}; allowed: {', '.join(COLORS)}")
        if (input_mean is None) != (input_std is None):
            raise ValueError("cmc: give both input_mean and input_std, or neither")
        self.color = color
        self.undo = input_mean is not None
        mean = torch.tensor(list(input_mean) if input_mean is not None else [0.0] * 3)
        std = torch.tensor(list(input_std) if input_std is not None else [1.0] * 3)
        if mean.numel() != 3 or std.numel() != 3:
            raise ValueError("cmc: input_mean / input_std need 3 values (R, G, B)")
        self.register_buffer("in_mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_std", std.view(1, 3, 1, 1), persistent=False)
        out_mean, out_std = (LAB_MEAN, LAB_STD) if color == "lab" else (YCBCR_MEAN, YCBCR_STD)
        self.register_buffer("out_mean", torch.tensor(out_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("out_std", torch.tensor(out_std).view(1, 3, 1, 1), persistent=False)
        self.checked = False

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"cmc needs RGB images [B, 3, H, W] (its views are colour channels); got shape "
                f"{tuple(x.shape)}"
            )
        x = x.float()
        rgb = x * self.in_std + self.in_mean if self.undo else x
        if not self.checked:
            lo, hi = float(rgb.min()), float(rgb.max())
            if lo < -0.02 or hi > 1.02:
                raise ValueError(
                    f"cmc: RGB values span [{lo:.3g}, {hi:.3g}], not [0, 1]; the domain normalises "
                    "its inputs: set method.model.input_mean / input_std to its normalisation"
                )
            self.checked = True
        rgb = rgb.clamp(0, 1)
        v = rgb_to_lab(rgb) if self.color == "lab" else rgb_to_ycbcr(rgb)
        v = (v - self.out_mean) / self.out_std
        return v[:, :1], v[:, 1:]


def with_in_channels(backbone: nn.Module, channels: int) -> nn.Module:
    """A copy of ``backbone`` whose first ``Conv2d`` takes ``channels`` input channels."""
    net = copy.deepcopy(backbone)
    for parent in net.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                setattr(
                    parent,
                    name,
                    init_conv(
                        nn.Conv2d(
                            channels,
                            child.out_channels,
                            child.kernel_size,  # type: ignore[arg-type]
                            child.stride,  # type: ignore[arg-type]
                            child.padding,  # type: ignore[arg-type]
                            bias=child.bias is not None,
                        )
                    ),
                )
                return net
    raise ValueError(
        f"cmc needs a convolutional backbone (one encoder per colour view); "
        f"{type(backbone).__name__} has no Conv2d"
    )


class CMCFeatures(nn.Module):
    """The evaluated backbone: colour views -> both encoders -> concatenated features."""

    def __init__(self, views: ColorViews, net_1: nn.Module, net_2: nn.Module) -> None:
        super().__init__()
        self.views, self.net_1, self.net_2 = views, net_1, net_2
        self.out_dim = net_1.out_dim + net_2.out_dim

    def forward(self, x: Tensor) -> Tensor:
        v1, v2 = self.views(x)
        return torch.cat([self.net_1(v1), self.net_2(v2)], dim=1)


class CMC(MethodHooks, nn.Module):
    families = ("none", "im")
    needs_index = True

    def __init__(
        self,
        *,
        backbone: nn.Module,
        mix: MixStrategy,
        dim: int,
        head: str,
        hidden_dim: int | None,
        color: str,
        input_mean: Sequence[float] | None,
        input_std: Sequence[float] | None,
        temperature: float,
        num_negatives: int,
        bank_momentum: float,
        loss: str,
    ) -> None:
        super().__init__()
        check_family("cmc", mix, self.families)
        self.views = ColorViews(color=color, input_mean=input_mean, input_std=input_std)
        self.net_1 = with_in_channels(backbone, 1)
        self.net_2 = with_in_channels(backbone, 2)
        self.head_1 = build_head(
            head, self.net_1.out_dim, dim, hidden_width(hidden_dim, self.net_1.out_dim)
        )
        self.head_2 = build_head(
            head, self.net_2.out_dim, dim, hidden_width(hidden_dim, self.net_2.out_dim)
        )
        self.memory_1 = MemoryBank(
            dim,
            num_negatives=num_negatives,
            temperature=temperature,
            momentum=bank_momentum,
            loss=loss,
        )
        self.memory_2 = MemoryBank(
            dim,
            num_negatives=num_negatives,
            temperature=temperature,
            momentum=bank_momentum,
            loss=loss,
        )
        self.mix = mix

    @property
    def backbone(self) -> nn.Module:
        return CMCFeatures(self.views, self.net_1, self.net_2)

    def bind_num_samples(self, num_samples: int) -> None:
        if self.memory_1.num_samples != num_samples:
            g = torch.Generator().manual_seed(0)
            self.memory_1.allocate(num_samples, g)
            self.memory_2.allocate(num_samples, g)

    def forward(
        self,
        x1: Tensor,
        x2: Tensor,
        *,
        generator: torch.Generator | None = None,
        index: Tensor | None = None,
    ) -> StepOut:
        index = self.memory_1.check_ready(index)
        x1 = single_view(self.mix, x1, x2, generator)
        v1, v2 = self.views(x1)
        z1 = self.head_1(self.net_1(v1))  # [B, D], e.g. L
        z2 = self.head_2(self.net_2(v2))  # [B, D], e.g. ab
        neg = self.memory_1.negatives(x1.shape[0], generator, x1.device)  # shared, as official
        s1 = self.memory_2.scores(z1, index, neg)  # view 1 against view 2's bank
        s2 = self.memory_1.scores(z2, index, neg)  # view 2 against view 1's bank
        loss = self.memory_2.loss(s1) + self.memory_1.loss(s2)
        self.memory_1.update(z1, index)
        self.memory_2.update(z2, index)
        return StepOut(loss, {})
