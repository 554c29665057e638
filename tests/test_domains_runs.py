"""Whole runs (pre-train + evaluate via ``imix_sweeps.run.run``) on tiny files of the new domains."""

from __future__ import annotations

from pathlib import Path

import pytest

from imix_sweeps.data.tabular import COVTYPE_TRAIN
from imix_sweeps.run import run
from tests.conftest import compose
from tests.test_domains_images import write_cifar
from tests.test_domains_speech import write_speech
from tests.test_domains_tabular import write_covtype

SMALL = ["train.device=cpu", "train.epochs=1", "method.model.dim=8", "eval.knn_k=5"]


def _ok(r: dict, domain: str, backbone: str) -> None:
    assert r["status"] == "ok", r.get("reason")
    assert r["domain"] == domain and r["backbone"] == backbone
    assert 0.0 <= r["linear_top1"] <= 100.0 and r["final_loss"] == r["final_loss"]  # not NaN


@pytest.mark.slow
def test_covtype_run_with_grouped_mlp5(tmp_path: Path):
    write_covtype(tmp_path / "cov", COVTYPE_TRAIN + 200)
    cfg = compose(
        [
            "domain=covtype",
            f"domain.root={tmp_path / 'cov'}",
            "backbone.net.width=1",
            "train.batch_size=2048",
            *SMALL,
        ]
    )
    _ok(run(cfg, tmp_path / "run"), "covtype", "mlp5")


@pytest.mark.parametrize("pipeline", ["device", "reference"])
def test_cifar_run_both_pipelines(tmp_path: Path, pipeline: str):
    write_cifar(tmp_path / "c", 10)
    cfg = compose(
        [
            "domain=cifar10",
            f"domain.root={tmp_path / 'c'}",
            f"domain.data.pipeline={pipeline}",
            "domain.data.workers=0",
            "backbone=small_cnn",
            "backbone.net.width=4",
            "train.batch_size=16",
            *SMALL,
        ]
    )
    _ok(run(cfg, tmp_path / "run"), "cifar10", "small_cnn")


@pytest.mark.slow
def test_speech_run_device_pipeline(tmp_path: Path):
    write_speech(tmp_path / "sc")
    cfg = compose(
        [
            "domain=speech_commands",
            f"domain.root={tmp_path / 'sc'}",
            "backbone=small_cnn",
            "backbone.net.width=4",
            "train.batch_size=4",
            *SMALL,
        ]
    )
    _ok(run(cfg, tmp_path / "run"), "speech_commands", "small_cnn")


def test_missing_data_fails_the_run_with_the_layout(tmp_path: Path):
    cfg = compose(["domain=cifar100", f"domain.root={tmp_path / 'none'}", *SMALL])
    with pytest.raises(Exception, match="cifar-100-python"):
        run(cfg, tmp_path / "run")
