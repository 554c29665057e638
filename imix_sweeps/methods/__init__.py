"""Methods: builders referenced by ``_target_`` in ``conf/method/*.yaml``.

Each builder takes the backbone and the mix strategy (built from the other config groups) and
the method's own options, and returns a small composed ``nn.Module`` whose
``forward(x1, x2, *, generator) -> StepOut``.
"""

from __future__ import annotations

from torch import nn

from imix_sweeps.heads import build_head
from imix_sweeps.methods.byol import BYOL
from imix_sweeps.methods.common import StepOut
from imix_sweeps.methods.moco import MoCo
from imix_sweeps.methods.npair import NPair
from imix_sweeps.mix import MixStrategy

__all__ = ["BYOL", "MoCo", "NPair", "StepOut", "byol", "moco", "npair"]


def npair(
    backbone: nn.Module,
    mix: MixStrategy,
    *,
    dim: int = 128,
    head: str = "mlpbn",
    hidden_dim: int | None = None,
    temperature: float = 0.2,
    symmetric: bool = False,
) -> NPair:
    return NPair(
        backbone, build_head(head, backbone.out_dim, dim, hidden_dim), mix, temperature, symmetric
    )


def moco(
    backbone: nn.Module,
    mix: MixStrategy,
    *,
    dim: int = 128,
    head: str = "mlpbn1",
    hidden_dim: int | None = None,
    temperature: float = 0.2,
    queue_size: int = 4096,
    momentum: float = 0.999,
    symmetric: bool = False,
    shuffle_bn: bool = True,
) -> MoCo:
    """MoCo v1 is ``head=linear``; MoCo v2 ``head=mlp`` (the i-Mix CIFAR runs use ``mlpbn1``)."""
    return MoCo(
        backbone,
        build_head(head, backbone.out_dim, dim, hidden_dim),
        mix,
        dim,
        temperature,
        queue_size,
        momentum,
        symmetric,
        shuffle_bn,
    )


def byol(
    backbone: nn.Module,
    mix: MixStrategy,
    *,
    dim: int = 128,
    head: str = "mlpbn1",
    predictor: str = "mlpbn1",
    hidden_dim: int | None = None,
    momentum: float = 0.999,
    symmetric: bool = False,
) -> BYOL:
    return BYOL(
        backbone,
        build_head(head, backbone.out_dim, dim, hidden_dim),
        build_head(predictor, dim, dim, hidden_dim),
        mix,
        momentum,
        symmetric,
    )
