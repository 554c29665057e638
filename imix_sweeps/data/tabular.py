"""Tabular domains of the i-Mix paper: Forest CoverType and HIGGS (UCI), read from the raw files.

- ``covtype``: ``<root>/covtype.data.gz`` (581,012 rows of 54 features + cover type 1..7).
  Columns: 10 continuous, 4 one-hot wilderness areas, 40 one-hot soil types. Train = the first
  15,120 rows (11,340 + 3,780, the dataset's own train+validation block), test = the rest.
  The 10 continuous columns are standardised; labels become 0..6.
- ``higgs``: ``<root>/HIGGS.csv.gz`` (11,000,000 rows: label, 21 low-level + 7 high-level
  features). Test = the last 500,000 rows. ``train_size`` selects a seeded subset of the
  10,500,000 training rows (``higgs100k``, ``higgs1m``) or all of them (``null``).

The parsed float32 matrix is cached once as ``covtype.npz`` / ``HIGGS.npz`` next to the raw
file (see ``imix_sweeps.data.cache``). Augmentation is the official input-drop mask
(``imix_sweeps.augment.input_drop``): Bernoulli ``drop`` on the continuous columns of CovType,
on all features of HIGGS; both views are the same rows.

Deviation from the official code, on purpose: its ``higgs1M`` setting falls through to the
``else`` branch of ``tabular.higgs`` (only ``'100k'`` is tested for), so "1M" trained on all
10.5M training rows. Here ``higgs1m`` is a real 1,000,000-row subset, drawn exactly like the
official 100k one (``np.random.RandomState(seed).choice(10_500_000, n, replace=False)``).
Also, the official code standardises with statistics over every row, test rows included;
``standardize_on: train`` (default) uses the training rows only, ``all`` reproduces the official.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from imix_sweeps import augment as A
from imix_sweeps.data.base import InMemoryDomain, require
from imix_sweeps.data.cache import CorruptDataError, cached_arrays

log = logging.getLogger(__name__)

COVTYPE_GROUPS = (10, 4, 40)
COVTYPE_TRAIN = 11340 + 3780
HIGGS_TEST = 500_000
HIGGS_FEATURES = 28


def _read_csv(path: Path, ncols: int) -> np.ndarray:
    """All rows of a (gzipped) numeric CSV as float32 ``[N, ncols]``; a clear error if malformed."""
    import pandas as pd

    try:
        df = pd.read_csv(path, header=None, dtype=np.float32, compression="infer")
    except (OSError, EOFError, ValueError, gzip.BadGzipFile) as e:
        raise CorruptDataError(f"{path}: cannot be parsed as a numeric CSV ({e})") from e
    mat = df.to_numpy(dtype=np.float32)
    if mat.ndim != 2 or mat.shape[1] != ncols:
        raise CorruptDataError(f"{path}: expected {ncols} columns per row, found {mat.shape[1]}")
    if not np.isfinite(mat).all():
        bad = int((~np.isfinite(mat)).any(1).nonzero()[0][0])
        raise CorruptDataError(f"{path}: row {bad + 1} has a missing or non-numeric value")
    return mat


def _standardize(x: np.ndarray, cols: int, rows: np.ndarray | slice) -> np.ndarray:
    x = x.copy()
    ref = x[rows, :cols]
    mean, std = ref.mean(0), ref.std(0)
    x[:, :cols] = (x[:, :cols] - mean) / (std + 1e-7)
    return x


def _tabular_domain(
    name: str,
    num_classes: int,
    xtr: np.ndarray,
    ytr: np.ndarray,
    xte: np.ndarray,
    yte: np.ndarray,
    drop: float,
    drop_columns: int | None,
) -> InMemoryDomain:
    def augment(x: Tensor, g: torch.Generator) -> Tensor:
        return A.input_drop(x, drop, drop_columns, generator=g)

    return InMemoryDomain(
        name=name,
        modality="tabular",
        num_classes=num_classes,
        train_x=torch.from_numpy(np.ascontiguousarray(xtr, dtype=np.float32)),
        train_y=torch.from_numpy(ytr.astype(np.int64)),
        test_x=torch.from_numpy(np.ascontiguousarray(xte, dtype=np.float32)),
        test_y=torch.from_numpy(yte.astype(np.int64)),
        augment=augment,
    )


# ----------------------------------------------------------------------------- CovType
def load_covtype_matrix(root: str | Path) -> np.ndarray:
    """The raw ``[581012, 55]`` float32 matrix (cached as ``covtype.npz``)."""
    raw = require(
        Path(root) / "covtype.data.gz",
        "Forest CoverType (covtype.data.gz)",
        f"{Path(root)}/covtype.data.gz, the UCI file as distributed "
        "(https://archive.ics.uci.edu/dataset/31/covertype): gzipped CSV, 54 features + label 1..7",
    )

    def build() -> dict[str, np.ndarray]:
        return {"data": _read_csv(raw, 55)}

    mat = cached_arrays(raw.with_name("covtype.npz"), build, [raw], key="covtype-v1")["data"]
    if len(mat) <= COVTYPE_TRAIN:
        raise CorruptDataError(
            f"{raw}: {len(mat)} rows, but the split needs more than {COVTYPE_TRAIN} (train rows)"
        )
    return mat


def covtype(
    root: str,
    drop: float = 0.2,
    groups: Sequence[int] = COVTYPE_GROUPS,
    standardize_on: str = "train",
    train_rows: int = COVTYPE_TRAIN,
) -> InMemoryDomain:
    """CovType: 54 features (10 standardised continuous + 4 + 40 one-hot), 7 classes.

    ``groups``: the feature groups (the ``mlp5`` backbone embeds each one separately; input-drop
    hits only the first, continuous group)."""
    groups = [int(g) for g in groups]
    if sum(groups) != 54:
        raise ValueError(f"covtype groups {groups} must add up to the 54 features")
    mat = load_covtype_matrix(root)
    x, y = mat[:, :-1], mat[:, -1].astype(np.int64) - 1
    if y.min() < 0 or y.max() > 6:
        raise CorruptDataError(f"{root}/covtype.data.gz: cover types must be 1..7")
    if standardize_on not in ("train", "all"):
        raise ValueError(f"standardize_on must be 'train' or 'all', not {standardize_on!r}")
    x = _standardize(
        x, groups[0], slice(0, train_rows) if standardize_on == "train" else slice(None)
    )
    return _tabular_domain(
        "covtype",
        7,
        x[:train_rows],
        y[:train_rows],
        x[train_rows:],
        y[train_rows:],
        drop,
        groups[0],
    )


# ----------------------------------------------------------------------------- HIGGS
def load_higgs_matrix(root: str | Path) -> np.ndarray:
    """The raw ``[11000000, 29]`` float32 matrix (label first; cached as ``HIGGS.npz``)."""
    raw = require(
        Path(root) / "HIGGS.csv.gz",
        "HIGGS (HIGGS.csv.gz)",
        f"{Path(root)}/HIGGS.csv.gz, the UCI file as distributed "
        "(https://archive.ics.uci.edu/dataset/280/higgs): gzipped CSV, label then 28 features",
    )

    def build() -> dict[str, np.ndarray]:
        return {"data": _read_csv(raw, 1 + HIGGS_FEATURES)}

    return cached_arrays(raw.with_name("HIGGS.npz"), build, [raw], key="higgs-v1")["data"]


def higgs_train_rows(n_train_pool: int, train_size: int | None, subset_seed: int) -> np.ndarray:
    """Indices of the training subset: the official draw, ``RandomState(seed).choice(pool, n)``."""
    if train_size is None:
        return np.arange(n_train_pool)
    if train_size > n_train_pool:
        raise ValueError(f"train_size={train_size} exceeds the {n_train_pool} training rows")
    return np.random.RandomState(subset_seed).choice(n_train_pool, train_size, replace=False)


def higgs(
    root: str,
    train_size: int | None = 100_000,
    subset_seed: int = 1,
    features: int = HIGGS_FEATURES,
    drop: float = 0.2,
    test_size: int = HIGGS_TEST,
    standardize_on: str = "train",
    name: str = "higgs",
) -> InMemoryDomain:
    """HIGGS: ``features`` columns (28 = all; 21 = the low-level ones), 2 classes.

    Test = the last ``test_size`` rows; train = a ``subset_seed``-seeded ``train_size`` subset of
    the rows before them (``null``: all of them)."""
    if not 1 <= features <= HIGGS_FEATURES:
        raise ValueError(f"features must be in 1..{HIGGS_FEATURES}, not {features}")
    mat = load_higgs_matrix(root)
    pool = len(mat) - test_size
    if pool <= 0:
        raise CorruptDataError(
            f"{root}/HIGGS.csv.gz: {len(mat)} rows, not more than the {test_size} test rows"
        )
    tr = higgs_train_rows(pool, train_size, subset_seed)
    x, y = mat[:, 1 : features + 1], mat[:, 0]
    if not np.isin(y, (0.0, 1.0)).all():
        raise CorruptDataError(f"{root}/HIGGS.csv.gz: the label column must be 0 or 1")
    if standardize_on not in ("train", "all"):
        raise ValueError(f"standardize_on must be 'train' or 'all', not {standardize_on!r}")
    xtr, xte = x[tr], x[pool:]
    ref = xtr if standardize_on == "train" else x
    mean, std = ref.mean(0), ref.std(0) + 1e-7
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    return _tabular_domain(name, 2, xtr, y[tr], xte, y[pool:], drop, None)
