"""Methods: builders referenced by ``_target_`` in ``conf/method/*.yaml``.

Each builder takes the backbone and the mix strategy (built from the other config groups) and
the method's own options, and returns a small composed ``nn.Module`` whose
``forward(x1, x2, *, generator) -> StepOut``.
"""

from __future__ import annotations

from torch import nn

from imix_sweeps.heads import build_head
from imix_sweeps.methods.byol import BYOL
from imix_sweeps.methods.cmc import CMC
from imix_sweeps.methods.common import StepOut
from imix_sweeps.methods.insdis import InsDis
from imix_sweeps.methods.moco import MoCo
from imix_sweeps.methods.npair import NPair
from imix_sweeps.methods.simclr import SimCLR
from imix_sweeps.methods.swav import SwAV
from imix_sweeps.mix import MixStrategy

__all__ = [
    "BYOL",
    "CMC",
    "InsDis",
    "MoCo",
    "NPair",
    "SimCLR",
    "StepOut",
    "SwAV",
    "byol",
    "cmc",
    "insdis",
    "moco",
    "npair",
    "simclr",
    "swav",
]


def npair(
    backbone: nn.Module,
    mix: MixStrategy,
    *,
    dim: int = 128,
    head: str = "mlpbn",
    hidden_dim: int | None = None,
    temperature: float = 0.2,
    symmetric: bool = False,
    mix_temperature: float = 0.2,
    mix_weight: float = 1.0,
) -> NPair:
    """``mix_temperature`` / ``mix_weight``: MixCo's term (family ``mixco``) only."""
    return NPair(
        backbone,
        build_head(head, backbone.out_dim, dim, hidden_dim),
        mix,
        temperature,
        symmetric,
        mix_temperature,
        mix_weight,
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
    mix_temperature: float = 0.05,
    mix_weight: float = 1.0,
) -> MoCo:
    """MoCo v1 is ``head=linear``; MoCo v2 ``head=mlp`` (the i-Mix CIFAR runs use ``mlpbn1``).
    ``mix_temperature`` / ``mix_weight``: MixCo's ``mix_T`` / ``mix_param`` (family ``mixco``)."""
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
        mix_temperature,
        mix_weight,
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


def simclr(
    backbone: nn.Module,
    mix: MixStrategy,
    *,
    dim: int = 128,
    head: str = "mlpbn",
    hidden_dim: int | None = None,
    temperature: float = 0.5,
    mix_temperature: float = 0.5,
    mix_weight: float = 1.0,
    separate_passes: bool = False,
) -> SimCLR:
    return SimCLR(
        backbone,
        build_head(head, backbone.out_dim, dim, hidden_dim),
        mix,
        temperature,
        mix_temperature,
        mix_weight,
        separate_passes=separate_passes,
    )


def insdis(
    backbone: nn.Module,
    mix: MixStrategy,
    *,
    dim: int = 128,
    head: str = "linear",
    hidden_dim: int | None = None,
    temperature: float = 0.07,
    num_negatives: int = 4096,
    bank_momentum: float = 0.5,
    loss: str = "nce",
) -> InsDis:
    """Instance Discrimination; ``loss``: ``nce`` or ``softmax`` (softmax-CE)."""
    return InsDis(
        backbone,
        build_head(head, backbone.out_dim, dim, hidden_dim),
        mix,
        dim,
        temperature,
        num_negatives,
        bank_momentum,
        loss,
    )


def swav(
    backbone: nn.Module,
    mix: MixStrategy,
    *,
    dim: int = 128,
    head: str = "mlpbn",
    hidden_dim: int | None = 512,
    num_prototypes: int = 100,
    temperature: float = 0.1,
    epsilon: float = 0.05,
    sinkhorn_iterations: int = 3,
    queue_length: int = 0,
    freeze_prototypes_steps: int = 0,
) -> SwAV:
    return SwAV(
        backbone,
        build_head(head, backbone.out_dim, dim, hidden_dim),
        mix,
        dim,
        num_prototypes,
        temperature,
        epsilon,
        sinkhorn_iterations,
        queue_length,
        freeze_prototypes_steps,
    )


# CMC builds its own two encoders and heads from the backbone: the class is its builder.
cmc = CMC
