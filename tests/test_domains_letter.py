"""UCI Letter Recognition from small files in the UCI format (and the Debian copy if present)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from imix_sweeps.data.base import DataMissingError
from imix_sweeps.data.cache import CorruptDataError
from imix_sweeps.data.letter import CLASSES, DEBIAN_DIR, FILENAME, letter, letter_split, read_letter
from imix_sweeps.run import run
from tests.conftest import compose


def write_letter(root: Path, n: int, seed: int = 0, gz: bool = False) -> tuple[np.ndarray, list]:
    """``n`` lines like letter-recognition.data: ``<A..Z>,<16 integers 0..15>``."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 16, size=(n, 16))
    y = [CLASSES[i % 26] for i in range(n)]
    text = "".join(f"{c},{','.join(map(str, row))}\n" for c, row in zip(y, x))
    root.mkdir(parents=True, exist_ok=True)
    if gz:
        (root / f"{FILENAME}.gz").write_bytes(gzip.compress(text.encode()))
    else:
        (root / FILENAME).write_text(text)
    return x, y


@pytest.mark.parametrize("gz", [False, True])
def test_reads_the_uci_format(tmp_path: Path, gz: bool):
    x, y = write_letter(tmp_path, 130, gz=gz)
    xr, yr = read_letter(tmp_path)
    assert xr.shape == (130, 16) and xr.dtype == np.float32
    np.testing.assert_array_equal(xr, x.astype(np.float32))
    assert yr.tolist() == [CLASSES.index(c) for c in y]


def test_split_is_fixed_seeded_and_standardised_on_train(tmp_path: Path):
    write_letter(tmp_path, 200)
    d = letter(str(tmp_path))
    assert d.modality == "tabular" and d.num_classes == 26 and d.in_shape == [16]
    assert len(d.train_x) == 160 and len(d.test_x) == 40
    tr, te = letter_split(200, 0.2, 0)
    assert not set(tr) & set(te) and len(set(tr) | set(te)) == 200
    again = letter(str(tmp_path))
    assert torch.equal(d.train_x, again.train_x) and torch.equal(d.test_y, again.test_y)
    torch.testing.assert_close(d.train_x.mean(0), torch.zeros(16), atol=1e-5, rtol=0)
    torch.testing.assert_close(d.train_x.std(0, unbiased=False), torch.ones(16), atol=1e-4, rtol=0)
    other = letter(str(tmp_path), split_seed=1)
    assert not torch.equal(d.test_y, other.test_y) or not torch.equal(d.test_x, other.test_x)
    assert len(letter(str(tmp_path), train_subset=50).train_x) == 50


def test_input_drop_views(tmp_path: Path):
    write_letter(tmp_path, 100)
    d = letter(str(tmp_path), drop=0.5)
    x1, x2 = next(d.pretrain_batches(0, 32, seed=0, device=torch.device("cpu")))
    assert x1.shape == x2.shape == (32, 16) and not torch.equal(x1, x2)
    zeros = (x1 == 0).float().mean().item()
    assert 0.3 < zeros < 0.7  # about half of the features dropped


def test_malformed_and_missing(tmp_path: Path):
    with pytest.raises(DataMissingError, match="opencv-doc"):
        letter(str(tmp_path / "nowhere"))
    (tmp_path / FILENAME).write_text("A,1,2,3\n")
    with pytest.raises(CorruptDataError, match="line 1"):
        read_letter(tmp_path)
    (tmp_path / FILENAME).write_text("a," + ",".join(["1"] * 16) + "\n")
    with pytest.raises(CorruptDataError, match="line 1"):
        read_letter(tmp_path)
    (tmp_path / FILENAME).write_text("A," + ",".join(["x"] * 16) + "\n")
    with pytest.raises(CorruptDataError, match="non-integer"):
        read_letter(tmp_path)


def test_mini_letter_run(tmp_path: Path):
    write_letter(tmp_path / "letter", 300)
    cfg = compose(
        [
            "+mini=letter",
            f"domain.root={tmp_path / 'letter'}",
            "train.epochs=1",
            "train.batch_size=64",
            "backbone.net.width=8",
            "method.model.dim=8",
            "eval.knn_k=5",
        ]
    )
    assert cfg.domain.name == "letter" and cfg.backbone.name == "mlp"
    r = run(cfg, tmp_path / "run")
    assert r["status"] == "ok", r.get("reason")
    assert r["domain"] == "letter" and 0.0 <= r["linear_top1"] <= 100.0
    again = run(cfg, tmp_path / "again")  # deterministic on the CPU: the same numbers
    for k in ("final_loss", "linear_top1", "knn_top1"):
        assert again[k] == r[k], k


def test_debian_copy():
    if not (Path(DEBIAN_DIR) / FILENAME).exists():
        pytest.skip(f"{DEBIAN_DIR}/{FILENAME} absent (apt-get install opencv-doc)")
    d = letter(DEBIAN_DIR)
    assert len(d.train_x) == 16000 and len(d.test_x) == 4000
    counts = torch.bincount(torch.cat([d.train_y, d.test_y]), minlength=26)
    assert counts.sum() == 20000 and counts.min() >= 700  # every letter, 734..813 rows each
