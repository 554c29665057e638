"""Projection and prediction heads, named as in the official i-Mix code (``--proj`` / ``--pred``,
kibok90/imix ``builder.py`` ``Builder.__init__``)."""

from __future__ import annotations

from torch import nn

HEADS = ("linear", "mlp", "mlpbn", "mlpbn1")


def build_head(kind: str, in_dim: int, out_dim: int, hidden_dim: int) -> nn.Module:
    """``linear``: Linear. ``mlp``: Linear-ReLU-Linear. ``mlpbn``: Linear-BN-ReLU-Linear-BN (a
    BatchNorm on the output too). ``mlpbn1``: Linear-BN-ReLU-Linear (BatchNorm in the middle
    only). ``hidden_dim`` is the official ``dim_mlp`` (backbone width x ``head_mul``); a linear
    head ignores it."""
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "mlp":
        return nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)
        )
    if kind in ("mlpbn", "mlpbn1"):
        layers: list[nn.Module] = [
            nn.Linear(in_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        ]
        if kind == "mlpbn":
            layers.append(nn.BatchNorm1d(out_dim))
        return nn.Sequential(*layers)
    raise ValueError(f"unknown head {kind!r}; allowed: {', '.join(HEADS)}")


def hidden_width(hidden_dim: int | None, backbone_dim: int) -> int:
    """A head's hidden width: ``hidden_dim``, or (null) the backbone's feature width, as the
    official ``dim_mlp = dim_in * head_mul`` with ``head_mul`` 1 (every published run)."""
    return int(hidden_dim) if hidden_dim is not None else int(backbone_dim)
