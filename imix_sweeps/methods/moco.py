"""MoCo v1/v2 with i-Mix's in-batch keys + queue ("mocon") whenever an i-Mix mix is on.

``forward`` is MoCo's Algorithm 1 per direction, in the official order: EMA update of the key
encoder -> queries -> keys (shuffle BN) -> logits and loss against the queue -> enqueue.
What a mix family changes is the query and its loss, one small function each (``QUERIES``):

- ``none`` / ``im``: plain MoCo (``im``: both views were mixed first, one draw per sample,
  labels unchanged);
- ``imix``: the query of the mixed view scored against every rank's in-batch keys and the
  queue with i-Mix's two targets ("mocon");
- ``manifold``: the query mixed at a hidden layer, scored as ``imix``;
- ``mixco`` (official MixCo ``encoder.py``): query and the B/2 mixtures in one pass; plain MoCo
  loss plus ``mix_weight`` x MixCo's soft-target loss over ``[keys, queue] / mix_temperature``;
- ``unmix`` (official ``unmix_c10.py``, its own step ``unmix_step``): one EMA update per step;
  per direction the clean query, the mixture of view 1 and its flipped embeddings are each
  scored with plain MoCo logits against that direction's keys; symmetric sums both
  directions; the queue is updated once with the keys of every direction.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from imix_sweeps import dist
from imix_sweeps.contracts import MethodHooks
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
from imix_sweeps.mix import Mixed, MixStrategy, apply_input_mix, apply_to_views

# A query strategy: (model, xa, generator) -> score, where score(k [B, D], queue [K, D]) -> loss.
Score = Callable[[Tensor, Tensor], Tensor]


def plain_query(model: MoCo, xa: Tensor, generator: torch.Generator | None) -> Score:
    q = model.encoder(xa)  # [B, D]
    return lambda k, queue: moco_loss(q, k, queue, model.temperature)


def imix_query(model: MoCo, xa: Tensor, generator: torch.Generator | None) -> Score:
    m = model.mix.fn(xa, generator=generator)
    return _mocon(model, model.encoder(m.x), m)  # query of the mixed view, [B, D]


def manifold_query(model: MoCo, xa: Tensor, generator: torch.Generator | None) -> Score:
    q, _, m = manifold_forward(model.encoder, model.mix, xa, None, generator)
    return _mocon(model, q, m)


def _mocon(model: MoCo, q: Tensor, m: Mixed) -> Score:
    def score(k: Tensor, queue: Tensor) -> Tensor:
        k_all = dist.gather(k)  # [B * W, D] in-batch keys of every rank
        offset = dist.info().rank * q.shape[0]
        return mocon_loss(q, k_all, queue, m.perm, m.lam, model.temperature, label_offset=offset)

    return score


def mixco_query(model: MoCo, xa: Tensor, generator: torch.Generator | None) -> Score:
    m = model.mix.fn(xa, generator=generator)
    z = model.encoder(torch.cat([xa, m.x]))  # [B + B/2, D], one pass as the official
    q, q_mix = z[: xa.shape[0]], z[xa.shape[0] :]

    def score(k: Tensor, queue: Tensor) -> Tensor:
        return moco_loss(q, k, queue, model.temperature) + model.mix_weight * mixco_loss(
            q_mix, k, m.lam, model.mix_temperature, queue
        )

    return score


QUERIES: dict[str, Callable[[MoCo, Tensor, torch.Generator | None], Score]] = {
    "none": plain_query,
    "im": plain_query,
    "imix": imix_query,
    "manifold": manifold_query,
    "mixco": mixco_query,
}


def unmix_step(model: MoCo, x1: Tensor, x2: Tensor, generator: torch.Generator | None) -> Tensor:
    """Un-Mix's MoCo step (one EMA update, the mixture of view 1, one enqueue)."""
    ema_update(model.key_encoder, model.encoder, model.momentum)
    m = model.mix.fn(x1, generator=generator)  # the mixture always comes from view 1
    lam = unmix_lam(m)
    queue = model.queue.keys.clone()

    def direction(xq: Tensor, xk: Tensor) -> tuple[Tensor, Tensor]:
        q = model.encoder(xq)
        q_mix = model.encoder(m.x)  # encoded per direction, as the official code
        k = model.keys(xk, generator)
        return moco_unmix_loss(q, q_mix, k, queue, lam, model.temperature), k

    loss, k2 = direction(x1, x2)
    keys = k2
    if model.symmetric:
        loss21, k1 = direction(x2, x1)
        loss = loss + loss21
        keys = torch.cat([k1, k2])
    model.queue.enqueue(keys)
    return loss


class MoCo(MethodHooks, nn.Module):
    families = ("none", "imix", "manifold", "unmix", "mixco", "im")

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
        check_family("moco", mix, self.families)
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

    def direction(self, xa: Tensor, xb: Tensor, generator: torch.Generator | None) -> Tensor:
        """One direction of MoCo's Algorithm 1: ``xa`` gives the queries, ``xb`` the keys."""
        ema_update(self.key_encoder, self.encoder, self.momentum)  # momentum update
        score = QUERIES[self.mix.family](self, xa, generator)  # queries, [B, D]
        k = self.keys(xb, generator)  # [B, D], shuffled BN, no grad
        queue = self.queue.keys.clone()  # [K, D] as before this step's enqueue
        loss = score(k, queue)  # logits [B, 1+K] (i-Mix: [B, B*W+K]) -> cross-entropy
        self.queue.enqueue(k)
        return loss

    def forward(
        self, x1: Tensor, x2: Tensor, *, generator: torch.Generator | None = None
    ) -> StepOut:
        x1, x2 = apply_input_mix(self.mix, x1, x2, generator)
        if self.mix.family == "unmix":
            return StepOut(unmix_step(self, x1, x2, generator), {})
        if self.mix.family == "im":  # both views mixed, one draw per sample; labels unchanged
            x1, x2 = apply_to_views(self.mix.fn, x1, x2, generator)
        loss = both_directions(lambda a, b: self.direction(a, b, generator), x1, x2, self.symmetric)
        return StepOut(loss, {})
