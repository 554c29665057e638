"""BYOL with i-Mix: the online predictor of the mixed view is scored against the EMA target's
projections of the clean view, own and partner, weighted by lam."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from imix_sweeps.losses import byol_loss
from imix_sweeps.methods.common import Encoder, StepOut, ema_update, frozen_copy
from imix_sweeps.mix import MixStrategy, apply_input_mix


class BYOL(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        predictor: nn.Module,
        mix: MixStrategy,
        momentum: float = 0.999,
        symmetric: bool = False,
    ) -> None:
        super().__init__()
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
        m = self.mix.fn(xa, generator=generator)
        p = self.predictor(self.encoder(m.x))  # [B, D]
        with torch.no_grad():
            z = self.target(xb)  # [B, D]
        return byol_loss(p, z, m.perm, m.lam)

    def forward(
        self, x1: Tensor, x2: Tensor, *, generator: torch.Generator | None = None
    ) -> StepOut:
        x1, x2 = apply_input_mix(self.mix, x1, x2, generator)
        loss = self._direction(x1, x2, generator)
        if self.symmetric:
            loss = loss + self._direction(x2, x1, generator)
        return StepOut(loss, {})
