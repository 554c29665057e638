"""Batched augmentations with per-sample random parameters, on whatever device the batch is on.

Each function takes a float batch and a ``torch.Generator`` (CPU) for its random draws, so a
step's augmentation is a pure function of the step's seed. Images are ``[B, C, H, W]`` in
[0, 1] (before normalisation); tabular rows are ``[B, F]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _rand(n: int, generator: torch.Generator | None, device) -> Tensor:
    return torch.rand(n, generator=generator).to(device)


def random_resized_crop(
    x: Tensor,
    size: Sequence[int] | int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-sample RandomResizedCrop, bilinear, as one ``grid_sample`` call.

    Area fraction ~ U(scale), log aspect ratio ~ U(log ratio); a crop that does not fit is
    clamped to the image (torchvision retries and falls back to a centre crop; the clamp keeps
    the scale distribution close while staying one batched op).
    """
    b = x.shape[0]
    out_h, out_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    dev = x.device
    area = scale[0] + (scale[1] - scale[0]) * _rand(b, generator, dev)
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * _rand(
        b, generator, dev
    )
    r = torch.exp(log_r)
    cw = torch.sqrt(area * r).clamp(max=1.0)  # crop width as a fraction of the image width
    ch = torch.sqrt(area / r).clamp(max=1.0)
    cx = (1.0 - cw) * _rand(b, generator, dev) + cw / 2  # centre in [cw/2, 1 - cw/2]
    cy = (1.0 - ch) * _rand(b, generator, dev) + ch / 2
    theta = torch.zeros(b, 2, 3, device=dev, dtype=x.dtype)
    theta[:, 0, 0] = cw
    theta[:, 0, 2] = 2 * cx - 1
    theta[:, 1, 1] = ch
    theta[:, 1, 2] = 2 * cy - 1
    grid = F.affine_grid(theta, [b, x.shape[1], out_h, out_w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_hflip(x: Tensor, p: float = 0.5, *, generator: torch.Generator | None = None) -> Tensor:
    flip = _rand(x.shape[0], generator, x.device) < p
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def _gray(x: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def brightness_contrast(
    x: Tensor,
    brightness: float = 0.4,
    contrast: float = 0.4,
    p: float = 0.8,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-sample brightness and contrast factors ~ U(1 - s, 1 + s), applied with probability p."""
    b, dev = x.shape[0], x.device
    apply = (_rand(b, generator, dev) < p).view(-1, 1, 1, 1)
    fb = 1.0 + brightness * (2 * _rand(b, generator, dev) - 1)
    fc = 1.0 + contrast * (2 * _rand(b, generator, dev) - 1)
    y = (x * fb.view(-1, 1, 1, 1)).clamp(0, 1)
    mean = _gray(y).mean(dim=(1, 2, 3), keepdim=True)
    y = ((y - mean) * fc.view(-1, 1, 1, 1) + mean).clamp(0, 1)
    return torch.where(apply, y, x)


def input_drop(
    x: Tensor,
    p: float = 0.2,
    columns: int | None = None,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Official i-Mix tabular augmentation: multiply by ``rand > p`` (no 1/(1-p) rescale).

    ``columns``: only the first ``columns`` features are dropped (CovType's continuous ones);
    ``None`` drops over all features (HIGGS)."""
    if p <= 0:
        return x
    n = x.shape[1] if columns is None else columns
    keep = (torch.rand(x.shape[0], n, generator=generator) > p).to(x.device, x.dtype)
    if columns is None:
        return x * keep
    out = x.clone()
    out[:, :n] = x[:, :n] * keep
    return out
