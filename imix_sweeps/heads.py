"""Projection and prediction heads, named as in the official i-Mix code (``--proj``)."""

from __future__ import annotations

from torch import nn

HEADS = ("linear", "mlp", "mlpbn", "mlpbn1")


def build_head(kind: str, in_dim: int, out_dim: int, hidden_dim: int | None = None) -> nn.Module:
    """``linear``: Linear. ``mlp``: Linear-ReLU-Linear. ``mlpbn``: Linear-BN-ReLU-Linear.
    ``mlpbn1``: ``mlpbn`` followed by a BatchNorm on the output (used for MoCo and BYOL heads)."""
    hidden = hidden_dim or in_dim
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "mlp":
        return nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
        )
    if kind in ("mlpbn", "mlpbn1"):
        layers: list[nn.Module] = [
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out_dim),
        ]
        if kind == "mlpbn1":
            layers.append(nn.BatchNorm1d(out_dim))
        return nn.Sequential(*layers)
    raise ValueError(f"unknown head {kind!r}; allowed: {', '.join(HEADS)}")
