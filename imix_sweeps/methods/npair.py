"""N-pair (SimCLR-style, B-way) with i-Mix, as the official i-Mix code computes it.

The mixed view 1 and the clean view 2 go through the encoder in one forward pass
(``cat([mixed_x1, x2])``), so BatchNorm statistics cover all 2B rows; keys are not detached.

Under DDP (``gather``): ``local`` is the official form, each rank's own B-way loss over its
B keys (kibok90/imix ``builder.py`` gathers keys only for ``mocon``, L212-214, and labels are
``arange(B)``, L246-247); ``global`` scores each anchor against the keys of every rank,
gathered with gradient (B x W-way). In one process both are the same loss.

Other mix families (``self.mix.family``):

- ``manifold``: view 1 mixed at a hidden layer (same pass), i-Mix two-target loss;
- ``unmix``: ``loss(q, k) + lam loss(q_mix, k) + (1 - lam) loss(flip(q_mix), k)`` with the plain
  B-way loss; the mixture (of view 1) is encoded in its own pass, as Un-Mix encodes it;
- ``mixco``: the B/2 mixtures of view 1 are encoded with the two views in one pass and scored
  against the clean keys with MixCo's soft targets and ``mix_temperature``, ``+ mix_weight x``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from imix_sweeps import dist
from imix_sweeps.contracts import MethodHooks
from imix_sweeps.losses import mixco_loss, npair_loss, unmix_combine
from imix_sweeps.methods.common import Encoder, StepOut, both_directions
from imix_sweeps.methods.family import check_family, manifold_forward, unmix_lam
from imix_sweeps.mix import Mixed, MixStrategy, apply_input_mix

GATHERS = ("local", "global")


class NPair(MethodHooks, nn.Module):
    families = ("none", "imix", "manifold", "unmix", "mixco")

    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: nn.Module,
        mix: MixStrategy,
        temperature: float,
        symmetric: bool,
        gather: str,
        mix_temperature: float,
        mix_weight: float,
    ) -> None:
        super().__init__()
        check_family("npair", mix, self.families)
        if gather not in GATHERS:
            raise ValueError(f"npair: unknown gather {gather!r}; allowed: {', '.join(GATHERS)}")
        self.gather = gather
        self.encoder = Encoder(backbone, head)
        self.mix = mix
        self.temperature = temperature
        self.symmetric = symmetric
        self.mix_temperature = mix_temperature
        self.mix_weight = mix_weight

    @property
    def backbone(self) -> nn.Module:
        return self.encoder.backbone

    def _keys(self, k: Tensor) -> tuple[Tensor, int]:
        """The keys each anchor is scored against, and the label offset of this rank's keys."""
        if self.gather == "local":
            return k, 0
        return dist.gather(k, with_grad=True), dist.info().rank * k.shape[0]  # [B * W, D]

    def plain_loss(self, q: Tensor, k: Tensor) -> Tensor:
        """B-way loss of q against k (gathered when ``global``), one target each."""
        k, offset = self._keys(k)
        ones = torch.ones(q.shape[0], device=q.device)
        return npair_loss(
            q, k, torch.arange(q.shape[0], device=q.device), ones, self.temperature,
            label_offset=offset,
        )  # fmt: skip

    def mixed_loss(self, q: Tensor, k: Tensor, m: Mixed) -> Tensor:
        """i-Mix's N-pair loss: the mixed anchors ``q`` [B, D] against the keys ``k`` [B, D]
        (gathered when ``global``), two targets weighted by ``lam``."""
        k, offset = self._keys(k)
        return npair_loss(q, k, m.perm, m.lam, self.temperature, label_offset=offset)

    def direction(self, xa: Tensor, xb: Tensor, generator: torch.Generator | None) -> Tensor:
        """The loss of the anchors from ``xa`` against the keys from ``xb``."""
        return PAIRS[self.mix.family](self, xa, xb, generator)

    def forward(
        self, x1: Tensor, x2: Tensor, *, generator: torch.Generator | None = None
    ) -> StepOut:
        x1, x2 = apply_input_mix(self.mix, x1, x2, generator)
        if self.mix.family == "unmix":
            return StepOut(unmix_step(self, x1, x2, generator), {})
        loss = both_directions(lambda a, b: self.direction(a, b, generator), x1, x2, self.symmetric)
        return StepOut(loss, {})


# ---- each family's step: (model, xa, xb, generator) -> loss of one direction
def mixed_pair(model: NPair, xa: Tensor, xb: Tensor, generator: torch.Generator | None) -> Tensor:
    """``none`` / ``imix``: the mixed view 1 and the clean view 2 in one pass."""
    b = xa.shape[0]
    m = model.mix.fn(xa, generator=generator)
    z = model.encoder(torch.cat([m.x, xb]))  # [2B, D]: shared BN over the 2B rows
    return model.mixed_loss(z[:b], z[b:], m)


def manifold_pair(
    model: NPair, xa: Tensor, xb: Tensor, generator: torch.Generator | None
) -> Tensor:
    """``manifold``: view 1 mixed at a hidden layer, in the same pass as the clean view 2."""
    q, k, m = manifold_forward(model.encoder, model.mix, xa, xb, generator)
    return model.mixed_loss(q, k, m)


def mixco_pair(model: NPair, xa: Tensor, xb: Tensor, generator: torch.Generator | None) -> Tensor:
    """``mixco``: the B/2 mixtures of view 1 encoded with the two views in one pass."""
    b = xa.shape[0]
    m = model.mix.fn(xa, generator=generator)
    z = model.encoder(torch.cat([xa, xb, m.x]))  # [2B + B/2, D]
    q, k, q_mix = z[:b], z[b : 2 * b], z[2 * b :]
    mix_term = mixco_loss(q_mix, k, m.lam, model.mix_temperature)
    return model.plain_loss(q, k) + model.mix_weight * mix_term


PAIRS: dict[str, Callable[[NPair, Tensor, Tensor, torch.Generator | None], Tensor]] = {
    "none": mixed_pair,
    "imix": mixed_pair,
    "manifold": manifold_pair,
    "mixco": mixco_pair,
}


def unmix_step(model: NPair, x1: Tensor, x2: Tensor, generator: torch.Generator | None) -> Tensor:
    """Un-Mix: the mixture always comes from view 1; symmetric adds the view-2 anchors."""
    b = x1.shape[0]
    m = model.mix.fn(x1, generator=generator)
    lam = unmix_lam(m)
    z = model.encoder(torch.cat([x1, x2]))
    z1, z2 = z[:b], z[b:]
    q_mix = model.encoder(m.x)  # [B, D], its own pass

    def direction(q: Tensor, k: Tensor) -> Tensor:
        return unmix_combine(
            model.plain_loss(q, k),
            model.plain_loss(q_mix, k),
            model.plain_loss(q_mix.flip(0), k),
            lam,
        )

    return both_directions(direction, z1, z2, model.symmetric)
