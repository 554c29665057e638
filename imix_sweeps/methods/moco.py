"""MoCo v1/v2 with i-Mix's in-batch keys + queue ("mocon") whenever an i-Mix mix is on.

Order inside a step, as the official code: EMA update of the key encoder -> key forward
(shuffle BN) -> logits -> enqueue -> loss.

Other mix families (``self.mix.family``):

- ``manifold``: the query mixed at a hidden layer, scored as i-Mix ("mocon");
- ``unmix`` (official ``unmix_c10.py``): one EMA update per step; per direction the clean query,
  the mixture of view 1 and its flipped embeddings are each scored with plain MoCo logits
  against that direction's keys; symmetric sums both directions; the queue is updated once
  with the keys of every direction;
- ``mixco`` (official MixCo ``encoder.py``): query and the B/2 mixtures in one pass; plain MoCo
  loss plus ``mix_weight`` x MixCo's soft-target loss over ``[keys, queue] / mix_temperature``;
- ``im`` (CMC / Un-Mix image mixtures): both views mixed with one draw per sample, labels
  unchanged, plain MoCo loss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from imix_sweeps import dist
from imix_sweeps.losses import mixco_loss, moco_loss, moco_unmix_loss, mocon_loss
from imix_sweeps.methods.common import (
    Encoder,
    KeyQueue,
    StepOut,
    both_directions,
    ema_update,
    frozen_copy,
    shuffled_forward,
)
from imix_sweeps.methods.family import check_family, manifold_forward, unmix_lam
from imix_sweeps.mix import MixStrategy, apply_input_mix, apply_to_views

FAMILIES = ("none", "imix", "manifold", "unmix", "mixco", "im")


class MoCo(nn.Module):
    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: nn.Module,
        mix: MixStrategy,
        dim: int,
        temperature: float,
        queue_size: int,
        momentum: float,
        symmetric: bool,
        shuffle_bn: bool,
        mix_temperature: float,
        mix_weight: float,
    ) -> None:
        super().__init__()
        check_family("moco", mix, FAMILIES)
        self.encoder = Encoder(backbone, head)
        self.key_encoder = frozen_copy(self.encoder)
        self.queue = KeyQueue(queue_size, dim)
        self.mix = mix
        self.temperature = temperature
        self.momentum = momentum
        self.symmetric = symmetric
        self.shuffle_bn = shuffle_bn
        self.mix_temperature = mix_temperature
        self.mix_weight = mix_weight

    @property
    def backbone(self) -> nn.Module:
        return self.encoder.backbone

    @torch.no_grad()
    def keys(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        if self.shuffle_bn:
            return shuffled_forward(self.key_encoder, x, generator)
        return self.key_encoder(x)

    def _direction(self, xa: Tensor, xb: Tensor, generator: torch.Generator | None) -> Tensor:
        ema_update(self.key_encoder, self.encoder, self.momentum)
        family = self.mix.family
        if family == "manifold":
            q, _, m = manifold_forward(self.encoder, self.mix, xa, None, generator)
        elif family == "mixco":
            m = self.mix.fn(xa, generator=generator)
            z = self.encoder(torch.cat([xa, m.x]))  # [B + B/2, D], one pass as the official
            q, q_mix = z[: xa.shape[0]], z[xa.shape[0] :]
        elif family == "im":  # both views were mixed in forward; the labels stay the same
            q = self.encoder(xa)
        else:
            m = self.mix.fn(xa, generator=generator)
            q = self.encoder(m.x)  # [B, D]
        k = self.keys(xb, generator)  # [B, D], no grad
        queue = self.queue.keys.clone()  # [K, D] as before this step's enqueue
        if family in ("imix", "manifold"):
            k_all = dist.gather(k)  # [B * W, D] in-batch keys of every rank
            offset = dist.info().rank * xa.shape[0]
            loss = mocon_loss(q, k_all, queue, m.perm, m.lam, self.temperature, label_offset=offset)
        elif family == "mixco":
            loss = moco_loss(q, k, queue, self.temperature) + self.mix_weight * mixco_loss(
                q_mix, k, m.lam, self.mix_temperature, queue
            )
        else:
            loss = moco_loss(q, k, queue, self.temperature)
        self.queue.enqueue(k)
        return loss

    def _unmix(self, x1: Tensor, x2: Tensor, generator: torch.Generator | None) -> Tensor:
        ema_update(self.key_encoder, self.encoder, self.momentum)
        m = self.mix.fn(x1, generator=generator)  # the mixture always comes from view 1
        lam = unmix_lam(m)
        queue = self.queue.keys.clone()

        def direction(xq: Tensor, xk: Tensor) -> tuple[Tensor, Tensor]:
            q = self.encoder(xq)
            q_mix = self.encoder(m.x)  # encoded per direction, as the official code
            k = self.keys(xk, generator)
            return moco_unmix_loss(q, q_mix, k, queue, lam, self.temperature), k

        loss, k2 = direction(x1, x2)
        keys = k2
        if self.symmetric:
            loss21, k1 = direction(x2, x1)
            loss = loss + loss21
            keys = torch.cat([k1, k2])
        self.queue.enqueue(keys)
        return loss

    def forward(
        self, x1: Tensor, x2: Tensor, *, generator: torch.Generator | None = None
    ) -> StepOut:
        x1, x2 = apply_input_mix(self.mix, x1, x2, generator)
        if self.mix.family == "unmix":
            return StepOut(self._unmix(x1, x2, generator), {})
        if self.mix.family == "im":
            x1, x2 = apply_to_views(self.mix.fn, x1, x2, generator)
        loss = both_directions(
            lambda a, b: self._direction(a, b, generator), x1, x2, self.symmetric
        )
        return StepOut(loss, {})
