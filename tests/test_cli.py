"""The Hydra app as a user runs it: a single run and a multirun sweep through Hydra's own launcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TINY = ["train.epochs=1", "train.batch_size=128", "backbone.net.width=8", "method.model.dim=16"]


def imix_sweeps(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "imix_sweeps", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_single_run_writes_results_and_logs_progress(tmp_path):
    out = imix_sweeps("mix=imixup", *TINY, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["status"] == "ok" and res["mix"] == "imixup" and res["linear_top1"] > 20
    log = (tmp_path / "run" / "run.log").read_text()
    assert "epoch 1/1 loss" in log and res["log_path"].endswith("run.log")
    assert (tmp_path / "run" / ".hydra" / "config.yaml").exists()


def test_multirun_goes_on_past_an_invalid_job_that_leaves_nothing_and_exits_non_zero(tmp_path):
    out = imix_sweeps(
        "--multirun",
        "domain=digits_tab",
        "mix=icutmix,imixup",
        *TINY[:2],
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
    )
    assert out.returncode != 0
    results = {
        p.parent.name: json.loads(p.read_text())
        for p in (tmp_path / "sweep").glob("*/results.json")
    }
    by_mix = {r["mix"]: r for r in results.values()}
    assert set(by_mix) == {"imixup"} and by_mix["imixup"]["status"] == "ok"
    assert "does not apply to tabular" in out.stderr  # said, and no run dir left behind
    assert not [p for p in (tmp_path / "sweep").iterdir() if "icutmix" in p.name]


def test_invalid_single_run_fails_before_any_output_dir_exists(tmp_path):
    out = imix_sweeps("train.epochs=0", "mix=imixup", "mix.alpha=-1", cwd=tmp_path)
    assert out.returncode != 0
    assert "train.epochs=0" in out.stderr and "mix.alpha=-1.0" in out.stderr, out.stderr[-2000:]
    assert "allowed" in out.stderr
    assert not (tmp_path / "outputs").exists() and not list(tmp_path.iterdir())


def test_unknown_option_is_reported_with_the_valid_ones(tmp_path):
    out = imix_sweeps("method=mocov3", cwd=tmp_path)
    assert out.returncode != 0
    assert "mocov3" in out.stderr and "mocov2" in out.stderr and "npair" in out.stderr
