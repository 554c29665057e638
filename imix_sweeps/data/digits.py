"""Embedded real data: scikit-learn's bundled ``load_digits`` (1,797 8x8 handwritten digits).

``digits``: an image domain ``[1, 8, 8]``; ``digits_tab``: the same samples as 64-feature
standardised tabular rows with the official tabular input-drop augmentation. The train/test
split is fixed and stratified (500 test samples, ``random_state=0``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from imix_sweeps import augment as A
from imix_sweeps.data.base import InMemoryDomain, standardize

TEST_SIZE = 500


def _split() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32) / 16.0  # [N, 8, 8] in [0, 1]
    y = torch.as_tensor(d.target, dtype=torch.long)
    idx = torch.arange(len(y)).numpy()
    tr, te = train_test_split(idx, test_size=TEST_SIZE, stratify=y.numpy(), random_state=0)
    tr, te = torch.as_tensor(tr), torch.as_tensor(te)
    return x[tr], y[tr], x[te], y[te]


def digits(crop_scale: tuple[float, float] = (0.5, 1.0), jitter: float = 0.4) -> InMemoryDomain:
    xtr, ytr, xte, yte = _split()

    def augment(x: Tensor, g: torch.Generator) -> Tensor:
        x = A.random_resized_crop(x, x.shape[-2:], scale=tuple(crop_scale), generator=g)
        return A.brightness_contrast(x, jitter, jitter, p=0.8, generator=g)

    mean, std = xtr.mean().item(), xtr.std().item()
    return InMemoryDomain(
        name="digits",
        modality="image",
        num_classes=10,
        train_x=xtr.unsqueeze(1),
        train_y=ytr,
        test_x=xte.unsqueeze(1),
        test_y=yte,
        augment=augment,
        normalize=lambda x: (x - mean) / std,
    )


def digits_tab(drop: float = 0.2) -> InMemoryDomain:
    xtr, ytr, xte, yte = _split()
    xtr, xte = standardize(xtr.flatten(1), xte.flatten(1))

    def augment(x: Tensor, g: torch.Generator) -> Tensor:
        return A.input_drop(x, drop, generator=g)

    return InMemoryDomain(
        name="digits_tab",
        modality="tabular",
        num_classes=10,
        train_x=xtr,
        train_y=ytr,
        test_x=xte,
        test_y=yte,
        augment=augment,
    )


def digits_rgb(
    mean: tuple[float, float, float] = (0.1, 0.1, 0.1),
    std: tuple[float, float, float] = (0.25, 0.25, 0.25),
    crop_scale: tuple[float, float] = (0.5, 1.0),
) -> InMemoryDomain:
    """The digits painted in a fixed per-sample colour (seeded): a tiny embedded RGB domain for
    methods whose views are colour channels (CMC) and their smoke runs. ``mean``/``std``: the
    normalisation, which the domain config also hands to CMC to undo it."""
    xtr, ytr, xte, yte = _split()
    g = torch.Generator().manual_seed(0)

    def paint(x: Tensor) -> Tensor:  # [N, 8, 8] -> [N, 3, 8, 8]
        colour = torch.rand(x.shape[0], 3, 1, 1, generator=g) * 0.8 + 0.2
        return (x.unsqueeze(1) * colour).clamp(0, 1)

    def augment(x: Tensor, gen: torch.Generator) -> Tensor:
        return A.random_resized_crop(x, x.shape[-2:], scale=tuple(crop_scale), generator=gen)

    return InMemoryDomain(
        name="digits_rgb",
        modality="image",
        num_classes=10,
        train_x=paint(xtr),
        train_y=ytr,
        test_x=paint(xte),
        test_y=yte,
        augment=augment,
        normalize=A.Normalize(mean, std),
        input_stats=(list(mean), list(std)),
    )
