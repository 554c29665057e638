"""BYOL with i-Mix: the online predictor of the mixed view is scored against the EMA target's
projections of the clean view, own and partner, weighted by lam.

Other mix families: ``manifold`` (the online view mixed at a hidden layer, i-Mix loss) and
``unmix``: one EMA update per step, ``byol(p, z) + lam byol(p_mix, z) + (1 - lam)
byol(flip(p_mix), z)`` per direction with the mixture of view 1 (its own pass), as Un-Mix does
for MoCo; symmetric sums both directions."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from imix_sweeps.contracts import MethodHooks
from imix_sweeps.losses import byol_loss, unmix_combine
from imix_sweeps.methods.common import Encoder, StepOut, both_directions, ema_update, frozen_copy
from imix_sweeps.methods.family import check_family, manifold_forward, unmix_lam
from imix_sweeps.mix import Mixed, MixStrategy, apply_input_mix


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

    def direction(self, xa: Tensor, xb: Tensor, generator: torch.Generator | None) -> Tensor:
        """BYOL's loss of the online prediction from ``xa`` against the target's ``xb``."""
        ema_update(self.target, self.encoder, self.momentum)  # target <- EMA of online
        p, m = ONLINE[self.mix.family](self, xa, generator)  # online prediction, [B, D]
        with torch.no_grad():
            z = self.target(xb)  # [B, D] target projection
        return byol_loss(p, z, m.perm, m.lam)

    def forward(
        self, x1: Tensor, x2: Tensor, *, generator: torch.Generator | None = None
    ) -> StepOut:
        x1, x2 = apply_input_mix(self.mix, x1, x2, generator)
        if self.mix.family == "unmix":
            return StepOut(unmix_step(self, x1, x2, generator), {})
        loss = both_directions(lambda a, b: self.direction(a, b, generator), x1, x2, self.symmetric)
        return StepOut(loss, {})


# ---- each family's online branch: (model, xa, generator) -> (prediction [B, D], Mixed)
def mixed_online(
    model: BYOL, xa: Tensor, generator: torch.Generator | None
) -> tuple[Tensor, Mixed]:
    """``none`` / ``imix``: the prediction of the mixed view."""
    m = model.mix.fn(xa, generator=generator)
    return model.predictor(model.encoder(m.x)), m


def manifold_online(
    model: BYOL, xa: Tensor, generator: torch.Generator | None
) -> tuple[Tensor, Mixed]:
    """``manifold``: the view mixed at a hidden layer."""
    q, _, m = manifold_forward(model.encoder, model.mix, xa, None, generator)
    return model.predictor(q), m


ONLINE: dict[str, Callable[[BYOL, Tensor, torch.Generator | None], tuple[Tensor, Mixed]]] = {
    "none": mixed_online,
    "imix": mixed_online,
    "manifold": manifold_online,
}


def unmix_step(model: BYOL, x1: Tensor, x2: Tensor, generator: torch.Generator | None) -> Tensor:
    """Un-Mix: one EMA update per step, the mixture of view 1 in its own pass per direction."""
    ema_update(model.target, model.encoder, model.momentum)
    m = model.mix.fn(x1, generator=generator)
    lam = unmix_lam(m)

    def direction(xq: Tensor, xk: Tensor) -> Tensor:
        p = model.predictor(model.encoder(xq))
        p_mix = model.predictor(model.encoder(m.x))
        with torch.no_grad():
            z = model.target(xk)
        return unmix_combine(
            _plain_byol(p, z), _plain_byol(p_mix, z), _plain_byol(p_mix.flip(0), z), lam
        )

    return both_directions(direction, x1, x2, model.symmetric)
