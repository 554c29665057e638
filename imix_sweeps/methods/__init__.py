"""Methods: builders referenced by ``_target_`` in ``conf/method/*.yaml``.

Each builder takes the backbone and the mix strategy (built from the other config groups) and
the method's own options, and returns a small composed ``nn.Module`` whose
``forward(x1, x2, *, generator) -> StepOut``.

Every option is keyword-only and has no default here: the method's YAML is the one source of
its values. ``hidden_dim: null`` is the official head width ``dim_mlp`` (the backbone's feature
width x ``head_mul`` 1, i-Mix ``builder.py`` L22-23), used by projection and prediction heads.
"""

from __future__ import annotations

from torch import nn

from imix_sweeps.heads import build_head, hidden_width
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


def _head(kind: str, backbone: nn.Module, dim: int, hidden_dim: int | None) -> nn.Module:
    return build_head(kind, backbone.out_dim, dim, hidden_width(hidden_dim, backbone.out_dim))


def npair(
    backbone: nn.Module,
    mix: MixStrategy,
    *,
    dim: int,
    head: str,
    hidden_dim: int | None,
    temperature: float,
    symmetric: bool,
    gather: str,
    mix_temperature: float,
    mix_weight: float,
) -> NPair:
    """``gather``: ``local`` (each rank's B-way loss, the official form) or ``global`` (keys of
    every rank gathered with gradient). ``mix_temperature`` / ``mix_weight``: MixCo's term
    (family ``mixco``) only."""
    return NPair(
        backbone=backbone,
        head=_head(head, backbone, dim, hidden_dim),
        mix=mix,
        temperature=temperature,
        symmetric=symmetric,
        gather=gather,
        mix_temperature=mix_temperature,
        mix_weight=mix_weight,
    )


def moco(
    backbone: nn.Module,
    mix: MixStrategy,
    *,
    dim: int,
    head: str,
    hidden_dim: int | None,
    temperature: float,
    queue_size: int,
    momentum: float,
    symmetric: bool,
    shuffle_bn: bool,
    mix_temperature: float,
    mix_weight: float,
) -> MoCo:
    """MoCo v1 is ``head=linear``; MoCo v2 ``head=mlp`` (the i-Mix CIFAR runs use ``mlpbn1``).
    ``mix_temperature`` / ``mix_weight``: MixCo's ``mix_T`` / ``mix_param`` (family ``mixco``)."""
    return MoCo(
        backbone=backbone,
        head=_head(head, backbone, dim, hidden_dim),
        mix=mix,
        dim=dim,
        temperature=temperature,
        queue_size=queue_size,
        momentum=momentum,
        symmetric=symmetric,
        shuffle_bn=shuffle_bn,
        mix_temperature=mix_temperature,
        mix_weight=mix_weight,
    )


def byol(
    backbone: nn.Module,
    mix: MixStrategy,
    *,
    dim: int,
    head: str,
    predictor: str,
    hidden_dim: int | None,
    momentum: float,
    symmetric: bool,
) -> BYOL:
    """The predictor maps ``dim -> hidden -> dim`` with the projection's hidden width, as the
    official ``pred`` (``Linear(dim_out, dim_mlp)``, i-Mix ``builder.py`` L43-57)."""
    hidden = hidden_width(hidden_dim, backbone.out_dim)
    return BYOL(
        backbone=backbone,
        head=build_head(head, backbone.out_dim, dim, hidden),
        predictor=build_head(predictor, dim, dim, hidden),
        mix=mix,
        momentum=momentum,
        symmetric=symmetric,
    )


def simclr(
    backbone: nn.Module,
    mix: MixStrategy,
    *,
    dim: int,
    head: str,
    hidden_dim: int | None,
    temperature: float,
    mix_temperature: float,
    mix_weight: float,
    separate_passes: bool,
) -> SimCLR:
    return SimCLR(
        backbone=backbone,
        head=_head(head, backbone, dim, hidden_dim),
        mix=mix,
        temperature=temperature,
        mix_temperature=mix_temperature,
        mix_weight=mix_weight,
        separate_passes=separate_passes,
    )


def insdis(
    backbone: nn.Module,
    mix: MixStrategy,
    *,
    dim: int,
    head: str,
    hidden_dim: int | None,
    temperature: float,
    num_negatives: int,
    bank_momentum: float,
    loss: str,
) -> InsDis:
    """Instance Discrimination; ``loss``: ``nce`` or ``softmax`` (softmax-CE)."""
    return InsDis(
        backbone=backbone,
        head=_head(head, backbone, dim, hidden_dim),
        mix=mix,
        dim=dim,
        temperature=temperature,
        num_negatives=num_negatives,
        bank_momentum=bank_momentum,
        loss=loss,
    )


def swav(
    backbone: nn.Module,
    mix: MixStrategy,
    *,
    dim: int,
    head: str,
    hidden_dim: int | None,
    num_prototypes: int,
    temperature: float,
    epsilon: float,
    sinkhorn_iterations: int,
    queue_length: int,
    freeze_prototypes_steps: int,
) -> SwAV:
    return SwAV(
        backbone=backbone,
        head=_head(head, backbone, dim, hidden_dim),
        mix=mix,
        dim=dim,
        num_prototypes=num_prototypes,
        temperature=temperature,
        epsilon=epsilon,
        sinkhorn_iterations=sinkhorn_iterations,
        queue_length=queue_length,
        freeze_prototypes_steps=freeze_prototypes_steps,
    )


# CMC builds its own two encoders and heads from the backbone: the class is its builder.
cmc = CMC
