"""The ``logger`` config group: what a run logs to TensorBoard, MLflow, CSV (and W&B offline),
read back with each library's own reader."""

from __future__ import annotations

import csv
import importlib.util
import logging
from pathlib import Path

import pytest

from imix_sweeps import loggers
from imix_sweeps.config import config_hash
from imix_sweeps.run import done_line, run
from tests.conftest import compose

TINY = ["train.epochs=2", "train.batch_size=128", "backbone.net.width=8", "method.model.dim=16",
        "eval.knn_every=1", "mix=imixup"]  # fmt: skip
EPOCH_KEYS = {"loss", "lr", "images_per_s", "epoch_seconds", "knn_top1"}


def test_logger_does_not_change_the_config_hash() -> None:
    base = config_hash(compose(TINY))
    for name in ("none", "csv", "tensorboard", "mlflow", "wandb"):
        cfg = compose([*TINY, f"logger={name}"])
        assert cfg.logger.name == name
        assert config_hash(cfg) == base, name


@pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None, reason="tensorboard not installed"
)
def test_tensorboard_logger_reads_back(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res = run(compose([*TINY, "logger=tensorboard"]), tmp_path / "run")
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {f"train/{k}" for k in EPOCH_KEYS} <= tags
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2]
    rows = [r for r in _jsonl(tmp_path / "run" / "metrics.jsonl")]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in rows], rel=1e-6)
    final = acc.Scalars("final/linear_top1")
    assert final[0].value == pytest.approx(res["linear_top1"], rel=1e-6)
    assert "config/text_summary" in acc.Tags()["tensors"]


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow not installed")
def test_mlflow_logger_reads_back(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    res = run(
        compose([*TINY, "logger=mlflow", f"logger.sink.tracking_uri={uri}"]), tmp_path / "run"
    )
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("imix-sweeps")
    (r,) = client.search_runs([exp.experiment_id])
    assert r.info.status == "FINISHED" and r.info.run_name == "run"
    assert r.data.params["method.name"] == "npair" and r.data.params["mix.name"] == "imixup"
    hist = client.get_metric_history(r.info.run_id, "loss")
    rows = _jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [m.step for m in hist] == [1, 2]
    assert [m.value for m in hist] == pytest.approx([x["loss"] for x in rows])
    assert EPOCH_KEYS <= set(r.data.metrics)
    assert r.data.metrics["final_linear_top1"] == pytest.approx(res["linear_top1"])


def test_csv_logger_reads_back_and_survives_a_resume(tmp_path: Path) -> None:
    d = tmp_path / "run"
    cfg = compose([*TINY, "logger=csv"])
    res = run(cfg, d)
    with open(d / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert EPOCH_KEYS <= set(rows[0])
    assert float(rows[1]["loss"]) == pytest.approx(_jsonl(d / "metrics.jsonl")[1]["loss"])
    with open(d / "final.csv") as f:
        (final,) = list(csv.DictReader(f))
    assert float(final["linear_top1"]) == pytest.approx(res["linear_top1"])
    with open(d / "config.csv") as f:
        conf = {r["key"]: r["value"] for r in csv.DictReader(f)}
    assert conf["mix.name"] == "imixup" and conf["train.epochs"] == "2"
    lg = loggers.CsvLogger(d)  # a resumed run re-logs epoch 2: one row per epoch stays
    lg.log_metrics({"loss": 1.0}, 2)
    with open(d / "progress.csv") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]


def test_wandb_logger_offline(tmp_path: Path, monkeypatch) -> None:
    if importlib.util.find_spec("wandb") is None:
        pytest.skip("wandb is not installed (optional extra imix-sweeps[wandb])")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")
    run(compose([*TINY, "logger=wandb"]), tmp_path / "run")
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def test_a_broken_logger_never_stops_the_run(tmp_path: Path, caplog) -> None:
    class Broken:
        def log_config(self, config):
            pass

        def log_metrics(self, metrics, step):
            raise OSError("disk full")

        def log_final(self, metrics):
            raise AssertionError("not called after the first failure")

        def close(self):
            pass

    lg = loggers.SafeLogger(Broken(), "broken")
    with caplog.at_level(logging.WARNING):
        lg.log_metrics({"loss": 1.0}, 1)
        lg.log_final({"linear_top1": 1.0})
    assert "logger broken failed in log_metrics (OSError: disk full)" in caplog.text
    bad = {"_target_": "imix_sweeps.loggers.NoSuchLogger"}
    assert isinstance(loggers.build(bad, tmp_path), loggers.NullLogger)
    assert isinstance(loggers.build(None, tmp_path), loggers.NullLogger)


def test_done_line_rounds() -> None:
    assert done_line(
        {"linear_top1": 98.60000014305115, "knn_top1": 97.8, "fewshot_top1": None}
    ) == ("linear 98.60 knn 97.80")


def _jsonl(p: Path) -> list[dict]:
    import json

    return [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]
