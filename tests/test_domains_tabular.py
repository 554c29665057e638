"""CovType and HIGGS from tiny gzipped CSVs in the UCI format; the .npz cache and its repair."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from imix_sweeps.data import cache as C
from imix_sweeps.data.base import DataMissingError
from imix_sweeps.data.tabular import COVTYPE_TRAIN, covtype, higgs, higgs_train_rows

CPU = torch.device("cpu")


def write_covtype(root: Path, n: int, seed: int = 0) -> np.ndarray:
    """``n`` rows like covtype.data.gz: 10 integer continuous, one-hot 4 and 40, label 1..7."""
    rng = np.random.default_rng(seed)
    cont = rng.integers(0, 3000, size=(n, 10))
    wild = np.eye(4, dtype=int)[rng.integers(0, 4, n)]
    soil = np.eye(40, dtype=int)[rng.integers(0, 40, n)]
    label = rng.integers(1, 8, size=(n, 1))
    mat = np.concatenate([cont, wild, soil, label], axis=1)
    root.mkdir(parents=True, exist_ok=True)
    with gzip.open(root / "covtype.data.gz", "wt", compresslevel=1) as f:
        np.savetxt(f, mat, fmt="%d", delimiter=",")
    return mat.astype(np.float32)


def write_higgs(root: Path, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mat = np.concatenate(
        [rng.integers(0, 2, size=(n, 1)).astype(np.float32), rng.normal(size=(n, 28))], axis=1
    ).astype(np.float32)
    root.mkdir(parents=True, exist_ok=True)
    with gzip.open(root / "HIGGS.csv.gz", "wt", compresslevel=1) as f:
        np.savetxt(f, mat, fmt="%.18e", delimiter=",")
    return mat


@pytest.fixture
def cov_root(tmp_path: Path) -> tuple[Path, np.ndarray]:
    root = tmp_path / "covtype"
    return root, write_covtype(root, COVTYPE_TRAIN + 300)


def test_covtype_splits_labels_and_standardisation(cov_root):
    root, mat = cov_root
    d = covtype(str(root))
    assert d.modality == "tabular" and d.num_classes == 7 and d.in_shape == [54]
    assert len(d.train_x) == COVTYPE_TRAIN and len(d.test_x) == 300
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.int64
    # labels 1..7 -> 0..6, in the original row order
    assert torch.equal(d.train_y, torch.from_numpy(mat[:COVTYPE_TRAIN, -1].astype(np.int64) - 1))
    assert torch.equal(d.test_y, torch.from_numpy(mat[COVTYPE_TRAIN:, -1].astype(np.int64) - 1))
    # continuous columns standardised with the training rows' statistics; one-hots untouched
    tr = mat[:COVTYPE_TRAIN, :10]
    want = (mat[COVTYPE_TRAIN:, :10] - tr.mean(0)) / (tr.std(0) + 1e-7)
    np.testing.assert_allclose(d.test_x[:, :10].numpy(), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(d.train_x[:, :10].mean(0).numpy(), 0, atol=1e-4)
    assert torch.equal(d.train_x[:, 10:], torch.from_numpy(mat[:COVTYPE_TRAIN, 10:54]))


def test_covtype_input_drop_only_on_continuous_and_seeded(cov_root):
    d = covtype(str(cov_root[0]), drop=0.5)
    x1, x2 = next(d.pretrain_batches(0, 512, seed=3, device=CPU))
    assert x1.shape == (512, 54)
    rows = d.train_x[d.epoch_order(0, 3)[:512]]
    # one-hot groups never dropped; continuous entries either kept exactly or zeroed
    assert torch.equal(x1[:, 10:], rows[:, 10:]) and torch.equal(x2[:, 10:], rows[:, 10:])
    kept = x1[:, :10] == rows[:, :10]
    assert torch.all(kept | (x1[:, :10] == 0))
    assert 0.4 < (x1[:, :10] == 0).float().mean() < 0.6  # p = 0.5
    assert not torch.equal(x1, x2)  # two independent masks
    again = next(d.pretrain_batches(0, 512, seed=3, device=CPU))
    assert torch.equal(again[0], x1) and torch.equal(again[1], x2)


def test_covtype_eval_is_deterministic(cov_root):
    d = covtype(str(cov_root[0]))
    a = torch.cat([x for x, _ in d.eval_batches("test", 128, device=CPU)])
    b = torch.cat([x for x, _ in d.eval_batches("test", 128, device=CPU)])
    assert torch.equal(a, b) and torch.equal(a, d.test_x)


def test_covtype_missing_and_corrupt(tmp_path: Path):
    with pytest.raises(DataMissingError, match=r"covtype\.data\.gz.*UCI"):
        covtype(str(tmp_path / "nowhere"))
    root = tmp_path / "bad"
    root.mkdir()
    (root / "covtype.data.gz").write_bytes(b"this is not gzip")
    with pytest.raises(C.CorruptDataError, match=r"covtype\.data\.gz"):
        covtype(str(root))
    with gzip.open(root / "covtype.data.gz", "wt", compresslevel=1) as f:
        f.write("1,2,3\n4,5,6\n")
    with pytest.raises(C.CorruptDataError, match="55 columns"):
        covtype(str(root))


def test_cache_written_atomically_reused_and_rebuilt(cov_root, monkeypatch):
    root, _ = cov_root
    first = covtype(str(root))
    cache = root / "covtype.npz"
    assert cache.exists() and not list(root.glob(".covtype.npz.*"))  # no temp file left
    # a second load reads the cache, not the CSV
    calls = []
    import imix_sweeps.data.tabular as T

    real = T._read_csv
    monkeypatch.setattr(T, "_read_csv", lambda *a: calls.append(1) or real(*a))
    assert torch.equal(covtype(str(root)).train_x, first.train_x) and not calls
    # truncated cache -> rebuilt from the CSV
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) // 2])
    assert torch.equal(covtype(str(root)).train_x, first.train_x) and len(calls) == 1
    C.load_verified(cache, [root / "covtype.data.gz"], "covtype-v1")  # repaired
    # one changed value inside the array (metadata intact) -> checksum mismatch -> rebuilt
    z = dict(np.load(cache))
    z["data"][5, 3] += 1
    with open(cache, "wb") as f:
        np.savez(f, **z)
    with pytest.raises(ValueError, match="checksum"):
        C.load_verified(cache, [root / "covtype.data.gz"], "covtype-v1")
    assert torch.equal(covtype(str(root)).train_x, first.train_x) and len(calls) == 2
    # a changed raw file invalidates the cache
    os.utime(root / "covtype.data.gz", (1, 1))
    covtype(str(root))
    assert len(calls) == 3


def test_cache_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch):
    src = tmp_path / "src.txt"
    src.write_text("x")
    target = tmp_path / "c.npz"

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        C.write_atomic(target, {"a": np.arange(3)}, [src])
    assert not target.exists() and list(tmp_path.iterdir()) == [src]


def test_higgs_subset_split_and_drop_on_all_features(tmp_path: Path):
    root = tmp_path / "higgs"
    mat = write_higgs(root, 1200)
    d = higgs(str(root), train_size=300, test_size=500, drop=0.2)
    assert d.num_classes == 2 and d.in_shape == [28]
    assert len(d.train_x) == 300 and len(d.test_x) == 500
    # test = the last rows; train = the official RandomState(1).choice draw from the rest
    assert torch.equal(d.test_y, torch.from_numpy(mat[-500:, 0].astype(np.int64)))
    idx = np.random.RandomState(1).choice(700, 300, replace=False)
    assert torch.equal(d.train_y, torch.from_numpy(mat[idx, 0].astype(np.int64)))
    xtr = mat[idx, 1:]
    np.testing.assert_allclose(
        d.train_x.numpy(), (xtr - xtr.mean(0)) / (xtr.std(0) + 1e-7), rtol=1e-4, atol=1e-4
    )
    x1, _ = next(d.pretrain_batches(0, 256, seed=0, device=CPU))
    rows = d.train_x[d.epoch_order(0, 0)[:256]]
    zeroed = (x1 == 0) & (rows != 0)
    assert torch.all((x1 == rows) | zeroed)
    assert 0.15 < zeroed.float().mean() < 0.25  # every feature can drop, p 0.2
    # 21 low-level features, a different subset seed, and all of the training pool
    assert higgs(str(root), train_size=300, test_size=500, features=21).in_shape == [21]
    assert not torch.equal(higgs(str(root), 300, subset_seed=2, test_size=500).train_y, d.train_y)
    assert len(higgs(str(root), train_size=None, test_size=500).train_x) == 700


def test_higgs_1m_is_a_real_subset():
    """The official '1M' mode trained on every row; ours draws train_size of them."""
    rows = higgs_train_rows(10_500_000, 1_000_000, 1)
    assert len(rows) == 1_000_000 and len(np.unique(rows)) == 1_000_000 and rows.max() < 10_500_000
    # the draw itself is the official one (checked on a small pool in the test above)
    with pytest.raises(ValueError, match="exceeds"):
        higgs_train_rows(100, 1000, 1)


def test_higgs_missing_and_bad_labels(tmp_path: Path):
    with pytest.raises(DataMissingError, match=r"HIGGS\.csv\.gz.*label then 28 features"):
        higgs(str(tmp_path))
    root = tmp_path / "h"
    mat = write_higgs(root, 20)
    mat[3, 0] = 2.0
    with gzip.open(root / "HIGGS.csv.gz", "wt", compresslevel=1) as f:
        for row in mat:
            f.write(",".join(str(v) for v in row) + "\n")
    with pytest.raises(C.CorruptDataError, match="label column"):
        higgs(str(root), train_size=5, test_size=10)
