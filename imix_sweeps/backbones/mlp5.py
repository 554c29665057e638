"""The 5-layer MLP of the i-Mix tabular experiments (``mlp_5layer`` in the official code).

Input block: with feature ``groups`` (CovType: 10 continuous, 4 + 40 one-hot), one
``Linear(group, 64)`` per group, concatenated (3 x 64 = 192); without groups (HIGGS),
``Linear(F, 64) -> BN -> ReLU``. Body: ``-> 2048 -> 2048 -> 4096 -> 4096`` (Linear, BN, ReLU
each), then ``Linear(4096, 8192)`` and a maxout over groups of 4 -> 2048-d features.
``width`` scales every hidden size (the official ``width`` argument, 64 by default).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, cout), nn.BatchNorm1d(cout), nn.ReLU(inplace=True))


class MLP5(nn.Module):
    def __init__(
        self, in_features: int, groups: Sequence[int] | None = None, width: int = 64
    ) -> None:
        super().__init__()
        hiddens = [32 * width, 32 * width, 64 * width, 64 * width, 128 * width]
        if groups:
            groups = [int(g) for g in groups]
            if sum(groups) != in_features:
                raise ValueError(
                    f"mlp5 feature groups {groups} add up to {sum(groups)}, but the domain has "
                    f"{in_features} features"
                )
            self.groups = groups
            self.embed = nn.ModuleList(nn.Linear(g, 64) for g in groups)
            d = 64 * len(groups)
        else:
            self.groups = None
            self.embed = nn.ModuleList([_block(in_features, 64)])
            d = 64
        dims = [d, *hiddens[:-1]]
        self.body = nn.Sequential(*(_block(a, b) for a, b in itertools.pairwise(dims)))
        self.last_fc = nn.Linear(hiddens[-2], hiddens[-1])
        self.out_dim = hiddens[-1] // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if self.groups is not None:
            parts = x.split(self.groups, dim=1)
            h = torch.cat([f(p) for f, p in zip(self.embed, parts)], dim=1)
        else:
            h = self.embed[0](x)
        h = self.last_fc(self.body(h))
        return h.view(-1, self.out_dim, 4).amax(dim=2)  # maxout over groups of 4


def mlp5(in_shape: Sequence[int], groups: Sequence[int] | None = None, width: int = 64) -> MLP5:
    """``groups``: feature groups embedded separately (``null``: plain input)."""
    if len(in_shape) != 1:
        raise ValueError(f"mlp5 needs tabular inputs [F]; got in_shape={list(in_shape)}")
    return MLP5(int(in_shape[0]), groups, width)
