"""SimCLR: NT-Xent over the 2B embeddings of both views (one pass, shared BatchNorm), as the
SimCLR baselines of MixCo and Un-Mix.

- ``unmix``: ``nt_xent(z1, z2) + lam nt_xent(z_mix, z2) + (1 - lam) nt_xent(flip(z_mix), z2)``
  with the mixture of view 1 encoded in its own pass (NT-Xent is already symmetric);
- ``mixco`` (MixCo's SimCLR variant): each view's B/2 mixtures (own draws) scored against the
  other view's projections (not detached), ``[B/2, B] / mix_temperature`` with soft targets;
  each term added with weight ``mix_weight / 2``. ``separate_passes``: the two views and the
  two sets of mixtures go through the encoder in four passes, each with its own BatchNorm
  statistics, as MixCo's ``simclr/pretrain.py`` (``_step`` L167-180, ``_mix_step`` L183-204);
  otherwise one pass over all 3B inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from imix_sweeps.contracts import MethodHooks
from imix_sweeps.losses import mixco_loss, nt_xent_loss, unmix_combine
from imix_sweeps.methods.common import Encoder, StepOut
from imix_sweeps.methods.family import check_family, unmix_lam
from imix_sweeps.mix import MixStrategy, apply_input_mix


class SimCLR(MethodHooks, nn.Module):
    families = ("none", "unmix", "mixco")

    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: nn.Module,
        mix: MixStrategy,
        temperature: float,
        mix_temperature: float,
        mix_weight: float,
        separate_passes: bool,
    ) -> None:
        super().__init__()
        check_family("simclr", mix, self.families)
        self.separate_passes = separate_passes
        self.encoder = Encoder(backbone, head)
        self.mix = mix
        self.temperature = temperature
        self.mix_temperature = mix_temperature
        self.mix_weight = mix_weight

    @property
    def backbone(self) -> nn.Module:
        return self.encoder.backbone

    def forward(
        self, x1: Tensor, x2: Tensor, *, generator: torch.Generator | None = None
    ) -> StepOut:
        x1, x2 = apply_input_mix(self.mix, x1, x2, generator)
        b = x1.shape[0]
        family = self.mix.family
        if family == "mixco":
            m1 = self.mix.fn(x1, generator=generator)
            m2 = self.mix.fn(x2, generator=generator)
            h = b // 2
            if self.separate_passes:
                z1, z2, zm1, zm2 = (self.encoder(v) for v in (x1, x2, m1.x, m2.x))
            else:
                z = self.encoder(torch.cat([x1, x2, m1.x, m2.x]))  # [3B, D]
                z1, z2, zm1, zm2 = z[:b], z[b : 2 * b], z[2 * b : 2 * b + h], z[2 * b + h :]
            mix_term = 0.5 * (
                mixco_loss(zm1, z2, m1.lam, self.mix_temperature)
                + mixco_loss(zm2, z1, m2.lam, self.mix_temperature)
            )
            return StepOut(nt_xent_loss(z1, z2, self.temperature) + self.mix_weight * mix_term, {})
        z = self.encoder(torch.cat([x1, x2]))  # [2B, D]
        z1, z2 = z[:b], z[b:]
        loss = nt_xent_loss(z1, z2, self.temperature)
        if family == "unmix":
            m = self.mix.fn(x1, generator=generator)
            z_mix = self.encoder(m.x)
            loss = unmix_combine(
                loss,
                nt_xent_loss(z_mix, z2, self.temperature),
                nt_xent_loss(z_mix.flip(0), z2, self.temperature),
                unmix_lam(m),
            )
        return StepOut(loss, {})
