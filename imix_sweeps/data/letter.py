"""UCI Letter Recognition: 20,000 rows, 16 integer features (0..15), 26 classes (A..Z).

Read from ``<root>/letter-recognition.data`` (optionally ``.gz``), the UCI file as distributed
(https://archive.ics.uci.edu/dataset/59/letter+recognition); Debian's ``opencv-doc`` package
ships it as ``/usr/share/doc/opencv-doc/examples/data/letter-recognition.data``. Each line is
``<letter>,<16 integers>``, e.g. ``T,2,8,3,5,1,8,13,0,6,6,10,8,0,8,0,8``.

Split: a fixed seeded permutation (``np.random.RandomState(split_seed).permutation(N)``); its
last ``round(test_fraction * N)`` rows (0.2: 4,000 of 20,000, the size of the UCI suggested test
block) are the test split. Features are standardised with the training rows' mean/std. Augmentation is the
official tabular input-drop mask (``imix_sweeps.augment.input_drop``, each feature multiplied by
``rand > drop``, no rescale) on all 16 features, as for HIGGS; both views are the same rows.
"""

from __future__ import annotations

import gzip
import string
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from imix_sweeps import augment as A
from imix_sweeps.data.base import InMemoryDomain, require
from imix_sweeps.data.cache import CorruptDataError
from imix_sweeps.data.loader import root_path

FILENAME = "letter-recognition.data"
FEATURES = 16
CLASSES = tuple(string.ascii_uppercase)
DEBIAN_DIR = "/usr/share/doc/opencv-doc/examples/data"


def _letter_file(root: Path) -> Path:
    for p in (root / FILENAME, root / f"{FILENAME}.gz"):
        if p.exists():
            return p
    return require(
        root / FILENAME,
        f"UCI Letter Recognition ({FILENAME})",
        f"{root}/{FILENAME} (or .gz): lines '<A..Z>,<16 integers>', as distributed by UCI "
        "(https://archive.ics.uci.edu/dataset/59/letter+recognition); Debian's opencv-doc "
        f"package installs it in {DEBIAN_DIR} (apt-get install opencv-doc)",
    )


def read_letter(root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(x [N, 16] float32, y [N] int64 in 0..25)`` from the UCI file; a clear error if malformed."""
    path = _letter_file(Path(root))
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise CorruptDataError(f"{path}: cannot be read ({e})") from e
    if not lines:
        raise CorruptDataError(f"{path}: no rows")
    index = {c: i for i, c in enumerate(CLASSES)}
    x = np.empty((len(lines), FEATURES), dtype=np.float32)
    y = np.empty(len(lines), dtype=np.int64)
    for i, ln in enumerate(lines):
        parts = ln.split(",")
        if len(parts) != 1 + FEATURES or parts[0] not in index:
            raise CorruptDataError(
                f"{path}: line {i + 1} is not '<A..Z>,<{FEATURES} integers>': {ln[:60]!r}"
            )
        try:
            x[i] = [int(v) for v in parts[1:]]
        except ValueError as e:
            raise CorruptDataError(f"{path}: line {i + 1} has a non-integer feature ({e})") from e
        y[i] = index[parts[0]]
    return x, y


def letter_split(n: int, test_fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_rows, test_rows)``: the fixed seeded split (sorted row indices)."""
    test_size = round(test_fraction * n)
    if not 0 < test_size < n:
        raise ValueError(
            f"letter: test_fraction={test_fraction} leaves no train or no test rows of {n}"
        )
    perm = np.random.RandomState(split_seed).permutation(n)
    return np.sort(perm[: n - test_size]), np.sort(perm[n - test_size :])


def letter(
    root: str,
    drop: float = 0.2,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    train_subset: int | None = None,
) -> InMemoryDomain:
    """Letter Recognition as a tabular domain (see the module doc); ``train_subset``: the first
    that many rows of the (seeded, shuffled) training split, for quicker runs."""
    x, y = read_letter(root_path(root, "letter"))
    tr, te = letter_split(len(x), test_fraction, split_seed)
    if train_subset:
        tr = np.sort(np.random.RandomState(split_seed + 1).permutation(tr)[:train_subset])
    mean, std = x[tr].mean(0), x[tr].std(0)
    std = np.where(std < 1e-6, 1.0, std).astype(np.float32)
    xs = (x - mean) / std

    def augment(b: Tensor, g: torch.Generator) -> Tensor:
        return A.input_drop(b, drop, generator=g)

    return InMemoryDomain(
        name="letter",
        modality="tabular",
        num_classes=len(CLASSES),
        train_x=torch.from_numpy(np.ascontiguousarray(xs[tr], dtype=np.float32)),
        train_y=torch.from_numpy(y[tr]),
        test_x=torch.from_numpy(np.ascontiguousarray(xs[te], dtype=np.float32)),
        test_y=torch.from_numpy(y[te]),
        augment=augment,
    )
