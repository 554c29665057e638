"""Helpers the methods share for the mix families beyond i-Mix (manifold, Un-Mix, MixCo, IM)."""

from __future__ import annotations

import torch
from torch import Tensor

from imix_sweeps.methods.common import Encoder
from imix_sweeps.methods.staged import split_backbone
from imix_sweeps.mix import Mixed, MixStrategy, apply_input_mix, apply_to_views, mix_option


def manifold_forward(
    encoder: Encoder,
    mix: MixStrategy,
    xa: Tensor,
    xb: Tensor | None,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor | None, Mixed]:
    """Encode ``xa`` mixed at hidden layer ``layer`` (from the mix YAML) and, in the same pass
    (shared BatchNorm statistics, as the i-Mix N-pair forward), the clean ``xb``.
    Returns ``(z_a [B, D], z_b [B, D] or None, Mixed)``."""
    front, back = split_backbone(encoder.backbone, int(mix_option(mix, "layer", 2)))
    b = xa.shape[0]
    h = front(xa if xb is None else torch.cat([xa, xb]))
    m = mix.fn(h[:b], generator=generator)
    h = m.x if xb is None else torch.cat([m.x, h[b:]])
    z = encoder.head(back(h))
    return z[:b], (None if xb is None else z[b:]), m


def unmix_lam(m: Mixed) -> float:
    """Un-Mix draws one lam per batch; ``Mixed.lam`` repeats it per row."""
    return float(m.lam[0])


def single_view(
    mix: MixStrategy, x1: Tensor, x2: Tensor, generator: torch.Generator | None
) -> Tensor:
    """The one view a memory-bank method (InsDis, CMC) encodes: view 1 after InputMix (applied
    to the stacked two-view batch) and, for the ``im`` family, the image mixture."""
    x1, _ = apply_input_mix(mix, x1, x2, generator)
    if mix.family == "im":
        x1, _ = apply_to_views(mix.fn, x1, None, generator)
    return x1


def check_family(method: str, mix: MixStrategy, allowed: tuple[str, ...]) -> None:
    """Build-time guard (compose-time validation names the same rule): ``mix.family`` must be one
    the method implements."""
    if mix.family not in allowed:
        raise ValueError(
            f"method {method} does not implement mix family {mix.family!r} (mix={mix.name}); "
            f"families: {', '.join(allowed)}"
        )
