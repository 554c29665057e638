"""MoCo v1/v2 with i-Mix's in-batch keys + queue ("mocon") whenever a mix is on.

Order inside a step, as the official code: EMA update of the key encoder -> key forward
(shuffle BN) -> logits -> enqueue -> loss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from imix_sweeps import dist
from imix_sweeps.losses import moco_loss, mocon_loss
from imix_sweeps.methods.common import (
    Encoder,
    KeyQueue,
    StepOut,
    ema_update,
    frozen_copy,
    shuffled_forward,
)
from imix_sweeps.mix import MixStrategy, apply_input_mix


class MoCo(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        mix: MixStrategy,
        dim: int = 128,
        temperature: float = 0.2,
        queue_size: int = 4096,
        momentum: float = 0.999,
        symmetric: bool = False,
        shuffle_bn: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = Encoder(backbone, head)
        self.key_encoder = frozen_copy(self.encoder)
        self.queue = KeyQueue(queue_size, dim)
        self.mix = mix
        self.temperature = temperature
        self.momentum = momentum
        self.symmetric = symmetric
        self.shuffle_bn = shuffle_bn

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
        m = self.mix.fn(xa, generator=generator)
        q = self.encoder(m.x)  # [B, D]
        k = self.keys(xb, generator)  # [B, D], no grad
        queue = self.queue.keys.clone()  # [K, D] as before this step's enqueue
        if self.mix.active:
            k_all = dist.gather(k)  # [B * W, D] in-batch keys of every rank
            offset = dist.info().rank * xa.shape[0]
            loss = mocon_loss(q, k_all, queue, m.perm, m.lam, self.temperature, label_offset=offset)
        else:
            loss = moco_loss(q, k, queue, self.temperature)
        self.queue.enqueue(k)
        return loss

    def forward(
        self, x1: Tensor, x2: Tensor, *, generator: torch.Generator | None = None
    ) -> StepOut:
        x1, x2 = apply_input_mix(self.mix, x1, x2, generator)
        loss = self._direction(x1, x2, generator)
        if self.symmetric:
            loss = loss + self._direction(x2, x1, generator)
        return StepOut(loss, {})
