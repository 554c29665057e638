"""The memory bank of Instance Discrimination and CMC (official ``NCEAverage.MemoryInsDis``).

One L2-normalised row per training sample, updated with momentum from the sample's current
embedding after the step's scores are computed. Negatives are drawn uniformly over the whole
dataset (the official alias sampler with uniform weights); column 0 of the scores is the
sample's own row. The bank's size is bound from the domain by the training loop
(``bind_num_samples``) before a checkpoint is loaded; loading a checkpoint also resizes it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from imix_sweeps import dist
from imix_sweeps.losses import bank_scores, bank_update, nce_loss, softmax_ce_loss

LOSSES = ("nce", "softmax")


class MemoryBank(nn.Module):
    def __init__(
        self,
        dim: int,
        *,
        num_negatives: int,
        temperature: float,
        momentum: float,
        loss: str,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"unknown memory-bank loss {loss!r}; allowed: {', '.join(LOSSES)}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"memory-bank momentum must be in [0, 1); got {momentum}")
        self.dim = dim
        self.num_negatives = num_negatives
        self.temperature = temperature
        self.momentum = momentum
        self.loss_kind = loss
        self.register_buffer("bank", torch.empty(0, dim))
        self.register_buffer("log_z", torch.tensor(float("nan")))  # NCE normaliser, set once

    @property
    def num_samples(self) -> int:
        return self.bank.shape[0]

    def allocate(self, n: int, generator: torch.Generator | None = None) -> None:
        """Official initialisation: uniform in [-s, s], s = 1 / sqrt(dim / 3)."""
        stdv = 1.0 / math.sqrt(self.dim / 3)
        bank = torch.rand(n, self.dim, generator=generator).mul_(2 * stdv).add_(-stdv)
        self.bank = bank.to(self.bank.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        saved = state_dict.get(prefix + "bank")
        if saved is not None and saved.shape != self.bank.shape:
            self.bank = torch.empty_like(saved, device=self.bank.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def negatives(self, b: int, generator: torch.Generator | None, device) -> Tensor:
        """[B, K] indices drawn uniformly over the bank."""
        return torch.randint(0, self.num_samples, (b, self.num_negatives), generator=generator).to(
            device
        )

    def scores(self, z: Tensor, index: Tensor, neg: Tensor) -> Tensor:
        """[B, 1+K] scores of z against its own row (col 0) and the negatives' rows."""
        return bank_scores(z, self.bank, index, neg, self.temperature)

    def loss(self, scores: Tensor) -> Tensor:
        if self.loss_kind == "softmax":
            return softmax_ce_loss(scores)
        if torch.isnan(self.log_z):  # official: Z = mean(exp(s)) * N on the first batch, then fixed
            with torch.no_grad():
                log_z = torch.logsumexp(scores.float().flatten(), 0) - math.log(scores.numel())
                self.log_z.copy_(log_z + math.log(self.num_samples))
        return nce_loss(scores.float(), self.num_samples, self.log_z)

    @torch.no_grad()
    def update(self, z: Tensor, index: Tensor) -> None:
        """Momentum update of the rows of this step's samples (gathered from every rank)."""
        bank_update(self.bank, dist.gather(index), dist.gather(z.detach()), self.momentum)

    def check_ready(self, index: Tensor | None) -> Tensor:
        if index is None:
            raise ValueError(
                "this method needs each sample's dataset index: the training loop passes it when "
                "the method sets needs_index = True (domain.pretrain_batches(..., with_index=True))"
            )
        if self.num_samples == 0:
            raise RuntimeError("memory bank not allocated: call bind_num_samples(n) first")
        return index
