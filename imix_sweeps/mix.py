"""Mixing strategies as pure functions.

Every mix has the signature ``fn(x, alpha=1.0, *, generator=None) -> Mixed``:

- ``x``: a batch ``[B, ...]`` (images ``[B, C, H, W]``, spectrograms, tabular rows ``[B, F]``);
- returns ``Mixed(x, perm, lam)``: the mixed batch (same shape and dtype), ``perm`` LongTensor
  ``[B]`` with each sample's partner, ``lam`` float tensor ``[B]`` with the weight of the
  sample's own identity.

The semantics follow the official i-Mix code (kibok90/imix, ``builder.py``), see
``docs/SEMANTICS.md``. All randomness comes from ``generator`` so that a step can be replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor


class Mixed(NamedTuple):
    x: Tensor  # [B, ...] mixed batch
    perm: Tensor  # [B] long, partner index of each sample
    lam: Tensor  # [B] float, weight of the sample's own identity


MixFn = Callable[..., Mixed]


# ----------------------------------------------------------------------------- random helpers
def _numpy_rng(generator: torch.Generator | None) -> np.random.Generator:
    """A numpy RNG derived from the torch generator (Beta/Dirichlet have no torch generator API)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return np.random.default_rng(seed)


def sample_beta(
    alpha: float, n: int, *, generator: torch.Generator | None = None, device=None
) -> Tensor:
    """``n`` draws of Beta(alpha, alpha) as a float32 tensor [n]."""
    draws = _numpy_rng(generator).beta(alpha, alpha, size=n)
    # non_blocking: a CPU -> GPU copy that does not wait for the queued GPU work
    return torch.as_tensor(draws, dtype=torch.float32).to(device, non_blocking=True)


def randperm(n: int, *, generator: torch.Generator | None = None, device=None) -> Tensor:
    return torch.randperm(n, generator=generator).to(device, non_blocking=True)


def _expand(lam: Tensor, x: Tensor) -> Tensor:
    """[B] -> [B, 1, 1, ...] broadcastable against x, in x's dtype."""
    return lam.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))


def rand_bbox(
    size: tuple[int, int], lam: float, *, generator: torch.Generator | None = None
) -> tuple[int, int, int, int]:
    """One CutMix box over the last two dims, as the official ``rand_bbox``.

    ``size = x.shape[-2:]``; the official code names dim -2 ``W`` and dim -1 ``H``. The box is
    ``x[..., x1:x2, y1:y2]``; its centre is uniform over the grid and it is clipped to the grid.
    """
    w, h = size
    cut_rat = float(np.sqrt(1.0 - lam))
    cut_w, cut_h = int(w * cut_rat), int(h * cut_rat)
    cx = int(torch.randint(0, w, (1,), generator=generator).item())
    cy = int(torch.randint(0, h, (1,), generator=generator).item())
    x1, x2 = int(np.clip(cx - cut_w // 2, 0, w)), int(np.clip(cx + cut_w // 2, 0, w))
    y1, y2 = int(np.clip(cy - cut_h // 2, 0, h)), int(np.clip(cy + cut_h // 2, 0, h))
    return x1, y1, x2, y2


def paste_box(x: Tensor, source: Tensor, box: tuple[int, int, int, int]) -> Tensor:
    """A copy of ``x`` with ``source``'s region ``box`` pasted in (last two dims)."""
    x1, y1, x2, y2 = box
    out = x.clone()
    out[..., x1:x2, y1:y2] = source[..., x1:x2, y1:y2]
    return out


def box_area_fraction(size: tuple[int, int], box: tuple[int, int, int, int]) -> float:
    x1, y1, x2, y2 = box
    return (x2 - x1) * (y2 - y1) / float(size[0] * size[1])


# ----------------------------------------------------------------------------- i-Mix mixes
def no_mix(x: Tensor, alpha: float = 1.0, *, generator: torch.Generator | None = None) -> Mixed:
    """Identity: perm = arange, lam = 1."""
    b = x.shape[0]
    return Mixed(
        x, torch.arange(b, device=x.device), torch.ones(b, device=x.device, dtype=torch.float32)
    )


def imixup(x: Tensor, alpha: float = 1.0, *, generator: torch.Generator | None = None) -> Mixed:
    """i-Mix mixup: per-sample lam ~ Beta(a, a) folded to [0.5, 1], partner by random permutation."""
    b = x.shape[0]
    lam = sample_beta(alpha, b, generator=generator, device=x.device)  # [B]
    lam = torch.maximum(lam, 1.0 - lam)
    perm = randperm(b, generator=generator, device=x.device)  # [B]
    mixed = _expand(lam, x) * x + _expand(1.0 - lam, x) * x[perm]
    return Mixed(mixed, perm, lam)


def icutmix(x: Tensor, alpha: float = 1.0, *, generator: torch.Generator | None = None) -> Mixed:
    """i-Mix CutMix: one lam ~ Beta(a, a) per batch (folded), one box, lam = exact kept area."""
    if x.dim() < 3:
        raise ValueError(
            f"icutmix needs inputs with two spatial dims [B, ..., H, W]; got shape {tuple(x.shape)}"
        )
    b = x.shape[0]
    lam0 = float(sample_beta(alpha, 1, generator=generator)[0])
    lam0 = max(lam0, 1.0 - lam0)
    perm = randperm(b, generator=generator, device=x.device)
    size = (x.shape[-2], x.shape[-1])
    box = rand_bbox(size, lam0, generator=generator)
    mixed = paste_box(x, x[perm], box)
    lam = 1.0 - box_area_fraction(size, box)
    return Mixed(mixed, perm, torch.full((b,), lam, device=x.device, dtype=torch.float32))


def inputmix(
    x: Tensor,
    alpha: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    num_extra: int = 1,
) -> Mixed:
    """InputMix (i-Mix paper's baseline): mix each input with ``num_extra`` random others.

    One extra sample: folded Beta(a, a) mixup. More: weights ~ Dirichlet(a, ..., a) over the
    extras, scaled by 0.5, and 0.5 on the original. Labels are not mixed (``lam`` reports the
    weight on the original, ``perm`` the first partner).
    """
    if num_extra <= 1:
        return imixup(x, alpha, generator=generator)
    b = x.shape[0]
    rng = _numpy_rng(generator)
    weights = torch.as_tensor(
        rng.dirichlet([alpha] * num_extra, size=b) * 0.5, dtype=torch.float32, device=x.device
    )  # [B, E]
    perms = [randperm(b, generator=generator, device=x.device) for _ in range(num_extra)]
    mixed = x * 0.5
    for j, perm in enumerate(perms):
        mixed = mixed + _expand(weights[:, j], x) * x[perm]
    return Mixed(mixed.to(x.dtype), perms[0], torch.full((b,), 0.5, device=x.device))


# ----------------------------------------------------------------------------- strategies
FAMILIES = ("none", "imix", "unmix", "mixco", "im", "manifold")


@dataclass
class MixStrategy:
    """A mix function together with the loss structure it implies.

    ``family`` tells a method how to score the mixture: ``imix`` (two-target soft labels over
    the batch), ``unmix``, ``mixco``, ``im`` or ``manifold``; ``none`` is the plain method.
    ``input_fn`` (InputMix) is applied to the stacked two-view batch before anything else.
    """

    name: str = "none"
    family: str = "none"
    fn: MixFn = no_mix
    input_fn: MixFn | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown mix family {self.family!r}; allowed: {FAMILIES}")

    @property
    def active(self) -> bool:
        return self.family != "none"


def apply_input_mix(
    strategy: MixStrategy, x1: Tensor, x2: Tensor, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Apply ``strategy.input_fn`` to the stacked 2B batch (official InputMix), if any."""
    if strategy.input_fn is None:
        return x1, x2
    b = x1.shape[0]
    mixed = strategy.input_fn(torch.cat([x1, x2]), generator=generator).x
    return mixed[:b], mixed[b:]
