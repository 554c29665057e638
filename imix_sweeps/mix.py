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
    cx = int(torch.randint(0, w, (1,), generator=generator).item())
    cy = int(torch.randint(0, h, (1,), generator=generator).item())
    return box_at(size, lam, cx, cy)


def box_at(size: tuple[int, int], lam: float, cx: int, cy: int) -> tuple[int, int, int, int]:
    """The official ``rand_bbox`` box of area fraction ``1 - lam`` centred at ``(cx, cy)``,
    clipped to the grid: ``(x1, y1, x2, y2)`` over the last two dims."""
    w, h = size
    cut_rat = float(np.sqrt(1.0 - lam))
    cut_w, cut_h = int(w * cut_rat), int(h * cut_rat)
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

    One extra sample: folded Beta(a, a) mixup. More (official ``inputmix``, imix
    ``builder.py`` L294-316): weights d ~ Dirichlet(a, ..., a) over all ``1 + num_extra``
    samples, halved, with 0.5 added to the original's, so the original weighs 0.5 + 0.5 d_0 and
    extra j weighs 0.5 d_j; each extra is drawn by its own random permutation. Labels are not
    mixed (``lam`` reports the weight on the original, ``perm`` the first partner).
    """
    if num_extra <= 1:
        return imixup(x, alpha, generator=generator)
    b = x.shape[0]
    rng = _numpy_rng(generator)
    d = rng.dirichlet([alpha] * (num_extra + 1), size=b)  # [B, 1 + E]
    weights = torch.as_tensor(0.5 * d, dtype=torch.float32, device=x.device)
    weights[:, 0] += 0.5
    perms = [randperm(b, generator=generator, device=x.device) for _ in range(num_extra)]
    mixed = _expand(weights[:, 0], x) * x
    for j, perm in enumerate(perms, start=1):
        mixed = mixed + _expand(weights[:, j], x) * x[perm]
    return Mixed(mixed.to(x.dtype), perms[0], weights[:, 0].clone())


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


# ----------------------------------------------------------------------------- Un-Mix
def flip_perm(b: int, device=None) -> Tensor:
    """Un-Mix's partner: the batch in reverse order (row i <-> row B-1-i)."""
    return torch.arange(b - 1, -1, -1, device=device)


def unmix(
    x: Tensor,
    alpha: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    prob: float = 0.5,
) -> Mixed:
    """Un-Mix (official ``unmix_c10.py``): mix the batch with its reverse.

    Draw order as the official code: ``r ~ U(0, 1)``, then one ``lam ~ Beta(a, a)`` for the whole
    batch (not folded). If ``r < prob``: global mixup ``lam * x + (1 - lam) * flip(x)``; else one
    CutMix box from ``flip(x)`` pasted into ``x`` (``rand_bbox`` axis convention) and ``lam``
    recomputed as the kept area. ``perm`` is the reversal, ``lam`` the same value for every row.
    Inputs without two spatial dims (tabular rows) only take the global branch (``prob >= 1``).
    """
    b = x.shape[0]
    r = float(torch.rand(1, generator=generator).item())
    lam = float(sample_beta(alpha, 1, generator=generator)[0])
    perm = flip_perm(b, x.device)
    flipped = x.flip(0)
    if r < prob:
        mixed = lam * x + (1.0 - lam) * flipped
    else:
        if x.dim() < 3:
            raise ValueError(
                "unmix region mixing needs inputs with two spatial dims [B, ..., H, W]; got shape "
                f"{tuple(x.shape)} (use prob=1 for global mixing only)"
            )
        size = (x.shape[-2], x.shape[-1])
        box = rand_bbox(size, lam, generator=generator)
        mixed = paste_box(x, flipped, box)
        lam = 1.0 - box_area_fraction(size, box)
    return Mixed(mixed.to(x.dtype), perm, torch.full((b,), lam, device=x.device))


# ----------------------------------------------------------------------------- MixCo
def mixco(x: Tensor, alpha: float = 1.0, *, generator: torch.Generator | None = None) -> Mixed:
    """MixCo (official ``img_mixer``): the first half of the batch mixed with the second half.

    Returns ``B // 2`` rows (the one mix whose output is not ``[B, ...]``): row ``i`` is
    ``lam_i * x[i] + (1 - lam_i) * x[B/2 + i]`` with ``lam_i ~ Beta(a, a)`` per pair (``a = 1``:
    U(0, 1) as the official code), ``perm[i] = B/2 + i``. Needs an even batch.
    """
    b = x.shape[0]
    if b % 2:
        raise ValueError(f"mixco needs an even batch size; got {b}")
    h = b // 2
    lam = sample_beta(alpha, h, generator=generator, device=x.device)  # [B/2]
    mixed = _expand(lam, x[:h]) * x[:h] + _expand(1.0 - lam, x[:h]) * x[h:]
    perm = torch.arange(h, b, device=x.device)
    return Mixed(mixed.to(x.dtype), perm, lam)


# ----------------------------------------------------------------------------- CMC image mixtures
# Input-space mixtures of the CMC / Un-Mix "IM" code (``IM/mixture.py``). The official code mixes
# dataset items (both two-crop views at once, with one partner and one draw); labels (the sample
# index) stay the sample's own. Here each row draws independently; the partner is a random row
# of the same batch, in its state before this mix. ``lam`` reports the weight left on the
# sample's own pixels (informational: the ``im`` family does not use it in the loss).


def _box_mask(size: tuple[int, int], x1: Tensor, y1: Tensor, x2: Tensor, y2: Tensor) -> Tensor:
    """[B, 1, H, W] bool mask of per-row boxes ``[x1:x2, y1:y2]`` over the last two dims."""
    rows = torch.arange(size[0], device=x1.device).view(1, -1, 1)
    cols = torch.arange(size[1], device=x1.device).view(1, 1, -1)
    m = (rows >= x1.view(-1, 1, 1)) & (rows < x2.view(-1, 1, 1))
    m = m & (cols >= y1.view(-1, 1, 1)) & (cols < y2.view(-1, 1, 1))
    return m.unsqueeze(1)


def _mask_like(mask: Tensor, x: Tensor) -> Tensor:
    """[B, 1, H, W] -> broadcastable against x [B, ..., H, W]."""
    return mask.view(mask.shape[0], *([1] * (x.dim() - 3)), *mask.shape[-2:])


def _require_spatial(name: str, x: Tensor) -> None:
    if x.dim() < 3:
        raise ValueError(
            f"{name} needs inputs with two spatial dims [B, ..., H, W]; got shape {tuple(x.shape)}"
        )


def im_global(
    x: Tensor,
    alpha: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    num_mix: int = 2,
    prob: float = 0.1,
) -> Mixed:
    """IM global mixture (``GM``): ``num_mix`` rounds; in each, a row is mixed with probability
    ``prob`` with a random partner's original: ``x = lam x + (1 - lam) x0[j]``, lam ~ Beta(g_alpha)."""
    b, dev = x.shape[0], x.device
    rng = _numpy_rng(generator)
    x0, out = x, x.clone()
    own = torch.ones(b, device=dev)
    perm = torch.arange(b, device=dev)
    for _ in range(num_mix):
        apply = torch.as_tensor(rng.random(b) <= prob, device=dev)  # official: skip if p > prob
        j = torch.as_tensor(rng.integers(0, b, size=b), device=dev)
        lam = torch.as_tensor(rng.beta(alpha, alpha, size=b), dtype=torch.float32, device=dev)
        lam = torch.where(apply, lam, torch.ones_like(lam))
        out = _expand(lam, x) * out + _expand(1.0 - lam, x) * x0[j]
        own = own * lam
        perm = torch.where(apply, j, perm)
    return Mixed(out.to(x.dtype), perm, own)


def im_region(
    x: Tensor,
    alpha: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    num_mix: int = 2,
    prob: float = 0.1,
    decay: float = 1.0,
) -> Mixed:
    """IM region mixture (``RM``): ``num_mix`` rounds; in each, with probability ``prob`` a
    ``rand_bbox`` box (lam ~ Beta(r_beta)) from a random partner is pasted in. In the first
    round a row that mixes is first multiplied by ``decay`` (``r_pixel_decay``)."""
    _require_spatial("im_region", x)
    b, dev = x.shape[0], x.device
    size = (x.shape[-2], x.shape[-1])
    rng = _numpy_rng(generator)
    x0, out = x, x.clone()
    own = torch.ones(b, device=dev)
    perm = torch.arange(b, device=dev)
    if alpha <= 0:
        return Mixed(out, perm, own)
    for round_ in range(num_mix):
        apply = rng.random(b) <= prob
        lam = rng.beta(alpha, alpha, size=b)
        j = rng.integers(0, b, size=b)
        boxes = []
        for i in range(b):  # rand_bbox per row (centre uniform, clipped), as the official code
            cx, cy = int(rng.integers(size[0])), int(rng.integers(size[1]))
            boxes.append(box_at(size, float(lam[i]), cx, cy))
        bx = torch.as_tensor(boxes, device=dev).view(b, 4)
        on = torch.as_tensor(apply, device=dev)
        mask = _box_mask(size, bx[:, 0], bx[:, 1], bx[:, 2], bx[:, 3]) & on.view(-1, 1, 1, 1)
        if round_ == 0 and decay != 1.0:
            out = torch.where(on.view(-1, *([1] * (x.dim() - 1))), out * decay, out)
        jj = torch.as_tensor(j, device=dev)
        out = torch.where(_mask_like(mask, x), x0[jj], out)
        area = mask.flatten(1).float().mean(1)
        own = own * (1.0 - area)
        perm = torch.where(on, jj, perm)
    return Mixed(out.to(x.dtype), perm, own)


def im_mixture(
    x: Tensor,
    alpha: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    g_num: int = 2,
    g_prob: float = 0.1,
    r_beta: float = 1.0,
    r_prob: float = 0.1,
    r_num: int = 2,
    r_pixel_decay: float = 1.0,
) -> Mixed:
    """IM (``--IM_type IM``): global mixture (``alpha`` = g_alpha) then region mixture, whose
    partners are rows after the global step (official: the partner item also passes ``GM``)."""
    g = im_global(x, alpha, generator=generator, num_mix=g_num, prob=g_prob)
    r = im_region(g.x, r_beta, generator=generator, num_mix=r_num, prob=r_prob, decay=r_pixel_decay)
    perm = torch.where(r.perm != torch.arange(x.shape[0], device=x.device), r.perm, g.perm)
    return Mixed(r.x, perm, g.lam * r.lam)


def cutout(
    x: Tensor,
    alpha: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    mask_size: float = 50 / 224,
    prob: float = 0.1,
    inside: bool = False,
    color: float = 0.0,
) -> Mixed:
    """Cutout as the IM code's ``Cutout``: with probability ``prob`` a ``mask_size`` square
    (pixels, or a fraction of the side when < 1; official 50 on 224) is set to ``color``; its
    centre is uniform over the image (``inside``: the square stays inside). ``alpha`` unused."""
    _require_spatial("cutout", x)
    b, dev = x.shape[0], x.device
    h, w = x.shape[-2], x.shape[-1]
    m = round(mask_size * min(h, w)) if mask_size < 1 else int(mask_size)
    half, offset = m // 2, 1 if m % 2 == 0 else 0
    rng = _numpy_rng(generator)
    apply = torch.as_tensor(rng.random(b) <= prob, device=dev)
    lo_x, hi_x = (half, h + offset - half) if inside else (0, h + offset)
    lo_y, hi_y = (half, w + offset - half) if inside else (0, w + offset)
    cx = torch.as_tensor(rng.integers(lo_x, max(hi_x, lo_x + 1), size=b), device=dev)
    cy = torch.as_tensor(rng.integers(lo_y, max(hi_y, lo_y + 1), size=b), device=dev)
    x1, y1 = (cx - half).clamp(min=0), (cy - half).clamp(min=0)
    x2, y2 = (cx - half + m).clamp(max=h), (cy - half + m).clamp(max=w)
    mask = _box_mask((h, w), x1, y1, x2, y2) & apply.view(-1, 1, 1, 1)
    out = torch.where(_mask_like(mask, x), torch.full_like(x, color), x)
    own = 1.0 - mask.flatten(1).float().mean(1)
    return Mixed(out, torch.arange(b, device=dev), own)


def random_erasing(
    x: Tensor,
    alpha: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    prob: float = 0.1,
    area_ratio_range: tuple[float, float] = (0.02, 0.4),
    min_aspect_ratio: float = 0.3,
    max_attempt: int = 20,
) -> Mixed:
    """RandomErasing as the IM code: with probability ``prob``, up to ``max_attempt`` tries for a
    box of area ~ U(range) x image and aspect ~ U(r, 1/r) that fits; filled with one value
    ~ U(0, 1). ``alpha`` unused."""
    _require_spatial("random_erasing", x)
    b, dev = x.shape[0], x.device
    h, w = x.shape[-2], x.shape[-1]
    rng = _numpy_rng(generator)
    boxes, fill = [], []
    for _ in range(b):
        box = (0, 0, 0, 0)
        value = 0.0
        if rng.random() <= prob:
            for _ in range(max_attempt):
                area = rng.uniform(*area_ratio_range) * h * w
                ratio = rng.uniform(min_aspect_ratio, 1.0 / min_aspect_ratio)
                mh, mw = int(np.sqrt(area * ratio)), int(np.sqrt(area / ratio))
                if mw < w and mh < h:
                    x0, y0 = int(rng.integers(0, w - mw)), int(rng.integers(0, h - mh))
                    box = (x0, y0, x0 + mw, y0 + mh)
                    value = float(rng.uniform(0, 1))
                    break
        boxes.append(box)
        fill.append(value)
    bx = torch.as_tensor(boxes, device=dev).view(b, 4)
    mask = _box_mask((h, w), bx[:, 0], bx[:, 1], bx[:, 2], bx[:, 3])
    values = torch.as_tensor(fill, dtype=x.dtype, device=dev).view(-1, *([1] * (x.dim() - 1)))
    out = torch.where(_mask_like(mask, x), values.expand_as(x), x)
    own = 1.0 - mask.flatten(1).float().mean(1)
    return Mixed(out, torch.arange(b, device=dev), own)


def apply_to_views(
    fn: MixFn, x1: Tensor, x2: Tensor | None, generator: torch.Generator | None
) -> tuple[Tensor, Tensor | None]:
    """Apply an ``im`` mix to both views with one draw per sample, as the official code mixes the
    two-crop item (views stacked on the channel dim). ``x2=None``: only ``x1``."""
    if x2 is None:
        return fn(x1, generator=generator).x, None
    c = x1.shape[1]
    out = fn(torch.cat([x1, x2], dim=1), generator=generator).x
    return out[:, :c], out[:, c:]


# ----------------------------------------------------------------------------- manifold
def manifold_mixup(
    h: Tensor,
    alpha: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    layer: int = 2,
) -> Mixed:
    """i-Mix mixup applied to hidden features ``h`` (per-sample lam ~ Beta folded to [0.5, 1],
    random partner). ``layer`` is read by the method: the backbone stage after which ``h`` is
    taken (see ``imix_sweeps.methods.staged``); it does not change the draw."""
    return imixup(h, alpha, generator=generator)


def mix_option(strategy: MixStrategy, name: str, default=None):
    """A keyword bound into ``strategy.fn`` (a ``functools.partial`` from the mix YAML)."""
    return getattr(strategy.fn, "keywords", {}).get(name, default)
