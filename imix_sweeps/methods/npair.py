"""N-pair (SimCLR-style, B-way) with i-Mix, as the official i-Mix code computes it.

The mixed view 1 and the clean view 2 go through the encoder in one forward pass
(``cat([mixed_x1, x2])``), so BatchNorm statistics cover all 2B rows; keys are not detached.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from imix_sweeps import dist
from imix_sweeps.losses import npair_loss
from imix_sweeps.methods.common import Encoder, StepOut
from imix_sweeps.mix import MixStrategy, apply_input_mix


class NPair(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        mix: MixStrategy,
        temperature: float = 0.2,
        symmetric: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = Encoder(backbone, head)
        self.mix = mix
        self.temperature = temperature
        self.symmetric = symmetric

    @property
    def backbone(self) -> nn.Module:
        return self.encoder.backbone

    def _direction(self, xa: Tensor, xb: Tensor, generator: torch.Generator | None) -> Tensor:
        m = self.mix.fn(xa, generator=generator)
        b = xa.shape[0]
        z = self.encoder(torch.cat([m.x, xb]))  # [2B, D]: shared BN over the 2B rows
        q, k = z[:b], z[b:]
        k = dist.gather(k, with_grad=True)  # [B * W, D]
        offset = dist.info().rank * b
        return npair_loss(q, k, m.perm, m.lam, self.temperature, label_offset=offset)

    def forward(
        self, x1: Tensor, x2: Tensor, *, generator: torch.Generator | None = None
    ) -> StepOut:
        x1, x2 = apply_input_mix(self.mix, x1, x2, generator)
        loss = self._direction(x1, x2, generator)
        if self.symmetric:
            loss = loss + self._direction(x2, x1, generator)
        return StepOut(loss, {})
