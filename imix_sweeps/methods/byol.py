"""BYOL with i-Mix: the online predictor of the mixed view is scored against the EMA target's
projections of the clean view, own and partner, weighted by lam.

Other mix families: ``manifold`` (the online view mixed at a hidden layer, i-Mix loss) and
``unmix``: one EMA update per step, ``byol(p, z) + lam byol(p_mix, z) + (1 - lam)
byol(flip(p_mix), z)`` per direction with the mixture of view 1 (its own pass), as Un-Mix does
for MoCo; symmetric sums both directions."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from imix_sweeps.contracts import MethodHooks
from imix_sweeps.losses import byol_loss, unmix_combine
from imix_sweeps.methods.common import Encoder, StepOut, both_directions, ema_update, frozen_copy
from imix_sweeps.methods.family import check_family, manifold_forward, unmix_lam
from imix_sweeps.mix import MixStrategy, apply_input_mix


def _plain_byol(p: Tensor, z: Tensor) -> Tensor:
    b = p.shape[0]
    return byol_loss(p, z, torch.arange(b, device=p.device), torch.ones(b, device=p.device))


class BYOL(MethodHooks, nn.Module):
    families = ("none", "imix", "manifold", "unmix")

    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: nn.Module,
        predictor: nn.Module,
        mix: MixStrategy,
        momentum: float,
        symmetric: bool,
    ) -> None:
        super().__init__()
        check_family("byol", mix, self.families)
        self.encoder = Encoder(backbone, head)
        self.predictor = predictor
        self.target = frozen_copy(self.encoder)
        self.mix = mix
        self.momentum = momentum
        self.symmetric = symmetric

    @property
    def backbone(self) -> nn.Module:
        return self.encoder.backbone

    def _direction(self, xa: Tensor, xb: Tensor, generator: torch.Generator | None) -> Tensor:
        ema_update(self.target, self.encoder, self.momentum)
        if self.mix.family == "manifold":
            q, _, m = manifold_forward(self.encoder, self.mix, xa, None, generator)
            p = self.predictor(q)
        else:
            m = self.mix.fn(xa, generator=generator)
            p = self.predictor(self.encoder(m.x))  # [B, D]
        with torch.no_grad():
            z = self.target(xb)  # [B, D]
        return byol_loss(p, z, m.perm, m.lam)

    def _unmix(self, x1: Tensor, x2: Tensor, generator: torch.Generator | None) -> Tensor:
        ema_update(self.target, self.encoder, self.momentum)
        m = self.mix.fn(x1, generator=generator)
        lam = unmix_lam(m)

        def direction(xq: Tensor, xk: Tensor) -> Tensor:
            p = self.predictor(self.encoder(xq))
            p_mix = self.predictor(self.encoder(m.x))
            with torch.no_grad():
                z = self.target(xk)
            return unmix_combine(
                _plain_byol(p, z), _plain_byol(p_mix, z), _plain_byol(p_mix.flip(0), z), lam
            )

        return both_directions(direction, x1, x2, self.symmetric)

    def forward(
        self, x1: Tensor, x2: Tensor, *, generator: torch.Generator | None = None
    ) -> StepOut:
        x1, x2 = apply_input_mix(self.mix, x1, x2, generator)
        if self.mix.family == "unmix":
            return StepOut(self._unmix(x1, x2, generator), {})
        loss = both_directions(
            lambda a, b: self._direction(a, b, generator), x1, x2, self.symmetric
        )
        return StepOut(loss, {})
