"""SwAV (Caron et al. 2020) with two crops, as the Un-Mix CIFAR code (``main_swav_unmix.py``)
uses it: projection head -> L2-normalised embedding -> prototype scores; per crop used for
assignment, codes from Sinkhorn-Knopp on the (queue-extended) scores, predicted from the other
crop's softmax(scores / t); the prototypes are re-normalised before every step and receive no
gradient for the first ``freeze_prototypes_steps`` steps.

Queue: ``queue_length`` embeddings per crop (0: none; the official CIFAR script's 120 with
batch 128 rounds down to 0). Queue rows are used once the queue is full, and every loss
evaluation shifts the step's embeddings in, as the official ``swav_loss``.

Mix family ``unmix``: the mixture of crop 1 with its reverse is encoded with the two crops in
one pass; ``loss = swav(x1, x2) + lam swav(mix, x2) + (1 - lam) swav'(mix, x2)`` where ``swav'``
computes the mixture's codes from its flipped scores (the official ``reverse`` flag).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imix_sweeps.contracts import MethodHooks
from imix_sweeps.losses import sinkhorn, swav_swapped_loss, unmix_combine
from imix_sweeps.methods.common import Encoder, StepOut
from imix_sweeps.methods.family import check_family, unmix_lam
from imix_sweeps.mix import MixStrategy, apply_input_mix


class SwAV(MethodHooks, nn.Module):
    families = ("none", "unmix")

    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: nn.Module,
        mix: MixStrategy,
        dim: int,
        num_prototypes: int,
        temperature: float,
        epsilon: float,
        sinkhorn_iterations: int,
        queue_length: int,
        freeze_prototypes_steps: int,
    ) -> None:
        super().__init__()
        check_family("swav", mix, self.families)
        self.encoder = Encoder(backbone, head)
        self.prototypes = nn.Linear(dim, num_prototypes, bias=False)
        self.mix = mix
        self.temperature = temperature
        self.epsilon = epsilon
        self.sinkhorn_iterations = sinkhorn_iterations
        self.freeze_prototypes_steps = freeze_prototypes_steps
        self.register_buffer("queue", torch.zeros(2, queue_length, dim))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @property
    def backbone(self) -> nn.Module:
        return self.encoder.backbone

    def _scores(self, emb: Tensor) -> Tensor:
        w = self.prototypes.weight
        if self.freeze_prototypes_steps and int(self.steps) < self.freeze_prototypes_steps:
            w = w.detach()
        return emb @ w.t()  # [N, P]

    def _swav(self, emb: Tensor, out: Tensor, reverse: bool) -> Tensor:
        """Official ``swav_loss`` for two crops: ``emb``/``out`` are [2B, D]/[2B, P] (crop 0
        rows first). ``reverse`` flips crop 0's scores and queued embeddings before assignment."""
        b = emb.shape[0] // 2
        loss = emb.new_zeros(())
        for i, crop in enumerate((0, 1)):
            with torch.no_grad():
                o = out[crop * b : (crop + 1) * b].detach()
                e = emb[crop * b : (crop + 1) * b].detach()
                if reverse and crop == 0:
                    o, e = o.flip(0), e.flip(0)
                if self.queue.shape[1] > 0:
                    if bool((self.queue[i, -1] != 0).any()):
                        o = torch.cat([self.queue[i] @ self.prototypes.weight.t(), o])
                    self.queue[i, b:] = self.queue[i, :-b].clone()
                    self.queue[i, :b] = e[: self.queue.shape[1]]
                q = sinkhorn(o, self.epsilon, self.sinkhorn_iterations)[-b:]  # [B, P]
            other = 1 - crop
            loss = loss + swav_swapped_loss(q, out[other * b : (other + 1) * b], self.temperature)
        return loss / 2

    def forward(
        self, x1: Tensor, x2: Tensor, *, generator: torch.Generator | None = None
    ) -> StepOut:
        x1, x2 = apply_input_mix(self.mix, x1, x2, generator)
        with torch.no_grad():
            self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        b = x1.shape[0]
        if self.queue.shape[1] and self.queue.shape[1] < b:
            raise ValueError(f"swav queue_length {self.queue.shape[1]} < batch {b}")
        if self.mix.family == "unmix":
            m = self.mix.fn(x1, generator=generator)
            emb = F.normalize(self.encoder(torch.cat([x1, x2, m.x])), dim=1)  # [3B, D]
            out = self._scores(emb)
            e1, e2, em = emb[:b], emb[b : 2 * b], emb[2 * b :]
            o1, o2, om = out[:b], out[b : 2 * b], out[2 * b :]
            loss_ori = self._swav(torch.cat([e1, e2]), torch.cat([o1, o2]), False)
            loss_mix = self._swav(torch.cat([em, e2]), torch.cat([om, o2]), False)
            loss_flip = self._swav(torch.cat([em, e2]), torch.cat([om, o2]), True)
            loss = unmix_combine(loss_ori, loss_mix, loss_flip, unmix_lam(m))
        else:
            emb = F.normalize(self.encoder(torch.cat([x1, x2])), dim=1)  # [2B, D]
            loss = self._swav(emb, self._scores(emb), False)
        with torch.no_grad():
            self.steps += 1
        return StepOut(loss, {})
