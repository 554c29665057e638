"""Integration: pre-train and evaluate on the real Fashion-MNIST (Debian's dataset-fashion-mnist)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from imix_sweeps.data.images import fashion_mnist
from tests.conftest import compose

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="module")
def fashion_root() -> Path:
    """The real dataset; installed with apt-get when missing (skipped only where apt is absent)."""
    if not (DEBIAN_DIR / "train-images-idx3-ubyte.gz").exists():
        if shutil.which("apt-get") is None:
            pytest.skip("Fashion-MNIST not in /usr/share/datasets and apt-get is not available")
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)
        r = subprocess.run(
            ["apt-get", "install", "-y", "dataset-fashion-mnist"], capture_output=True, text=True
        )
        if r.returncode != 0:
            pytest.skip(f"apt-get install dataset-fashion-mnist failed: {r.stderr[-300:]}")
    return DEBIAN_DIR


@pytest.mark.slow
def test_real_fashion_mnist_files(fashion_root: Path):
    d = fashion_mnist(str(fashion_root))
    assert d.train_x.shape == (60000, 1, 28, 28) and d.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(d.train_y).tolist() == [6000] * 10
    assert torch.bincount(d.test_y).tolist() == [1000] * 10


@pytest.mark.slow
def test_pretrain_and_linear_eval_far_above_chance(fashion_root: Path, tmp_path: Path):
    from imix_sweeps.run import run

    cfg = compose(
        [
            "domain=fashion_mnist",
            f"domain.root={fashion_root}",
            "domain.data.train_subset=3000",
            "domain.data.test_subset=1000",
            "backbone.net.width=16",
            "train.epochs=3",
            "train.batch_size=256",
            "method.model.dim=32",
            "train.device=cpu",
        ]
    )
    r = run(cfg, tmp_path / "run")
    assert r["status"] == "ok" and r["domain"] == "fashion_mnist"
    assert r["linear_top1"] > 50.0  # chance is 10%
    assert r["knn_top1"] > 40.0


@pytest.mark.slow
def test_device_and_reference_pipelines_agree_on_real_images(fashion_root: Path):
    def stats(pipeline: str):
        d = fashion_mnist(str(fashion_root), pipeline=pipeline, workers=0, train_subset=1024)
        cpu = torch.device("cpu")
        xs = torch.cat(
            [torch.cat([a, b]) for a, b in d.pretrain_batches(0, 256, seed=0, device=cpu)]
        )
        ev = torch.cat([x for x, _ in d.eval_batches("test", 1000, device=cpu)])
        return xs.mean(), xs.std(), (xs[..., 1:] - xs[..., :-1]).abs().mean(), ev

    dev, ref = stats("device"), stats("reference")
    for a, b in zip(dev[:3], ref[:3]):
        torch.testing.assert_close(a, b, atol=0.03, rtol=0)
    torch.testing.assert_close(dev[3], ref[3])  # evaluation inputs identical
