"""``python -m launchers submit --dry-run``: the job list and sbatch lines of a sweep, with no
cluster needed and nothing written (runs everywhere)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from launchers.cli import compose_sweep, main

TINY = ["train.epochs=2", "train.batch_size=128", "backbone.net.width=8", "method.model.dim=16"]


@pytest.fixture(autouse=True)
def _fresh_hydra():
    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


@pytest.fixture
def sweep_conf(tmp_path: Path) -> str:
    """A sweep config in the shape of conf/sweep/*.yaml, on an extra search path."""
    d = tmp_path / "extra" / "sweep"
    d.mkdir(parents=True)
    (d / "mini.yaml").write_text(
        "# @package _global_\nhydra:\n  sweeper:\n    params:\n      seed: 0,1\n      mix: none,imixup\n"
    )
    return f"hydra.searchpath=[file://{d.parent}]"


def sbatch_lines(text: str) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(.*))?$", text, flags=re.M))


def test_dry_run_expands_the_sweep_and_prints_sbatch_parameters(tmp_path, sweep_conf, capsys):
    sweep_dir = tmp_path / "sweep"
    rc = main(
        ["submit", "--dry-run", f"hydra.sweep.dir={sweep_dir}", sweep_conf, "+sweep=mini", *TINY,
         "method=moco", "hydra.launcher.partition=gpu", "hydra.launcher.account=proj",
         "hydra.launcher.qos=high", "hydra.launcher.constraint=a100", "hydra.launcher.nodes=2",
         "hydra.launcher.gpus_per_node=4", "hydra.launcher.cpus_per_task=6",
         "hydra.launcher.mem_gb=64", "hydra.launcher.timeout_min=90",
         "hydra.launcher.array_parallelism=3", "+hydra.launcher.additional_parameters.exclusive=true"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "4 run(s): 4 to submit, 0 already done" in out
    runs = re.findall(r"-> (\S+)", out)
    assert runs == [
        # the subdir names the run's overrides (sorted): stable across re-launches
        str(sweep_dir / ",".join(sorted([*TINY, "method=moco", f"mix={m}", f"seed={s}"])))
        for s in (0, 1)
        for m in ("none", "imixup")
    ]
    sb = sbatch_lines(out)
    expected = {
        "partition": "gpu", "account": "proj", "qos": "high", "constraint": "a100",
        "nodes": "2", "gpus-per-node": "4", "ntasks-per-node": "4", "cpus-per-task": "6",
        "mem": "64GB", "time": "90", "array": "0-3%3", "signal": "USR2@120",
    }  # fmt: skip
    assert {k: sb.get(k) for k in expected} == expected
    assert "exclusive" in sb
    assert "--kill-on-bad-exit=1" in out and "OMP_NUM_THREADS" in out
    assert not sweep_dir.exists(), "a dry run must not write anything"


def test_dry_run_marks_done_runs_as_skipped(tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    overrides = [f"hydra.sweep.dir={sweep_dir}", *TINY, "seed=0,1,2", "hydra/launcher=slurm_cpu"]
    sweep, jobs = compose_sweep(overrides, "slurm_cpu")
    plans = sweep.plan(jobs)
    assert [p.skip for p in plans] == [False, False, False]
    done = plans[1]
    done.run_dir.mkdir(parents=True)
    (done.run_dir / "results.json").write_text(
        json.dumps({"status": "ok", "config_hash": done.config_hash})
    )
    stale = plans[2]  # ok, but for another config: run again
    stale.run_dir.mkdir(parents=True)
    (stale.run_dir / "results.json").write_text(
        json.dumps({"status": "ok", "config_hash": "0" * 16})
    )
    GlobalHydra.instance().clear()
    assert main(["submit", "--dry-run", *overrides]) == 0
    out = capsys.readouterr().out
    assert "3 run(s): 2 to submit, 1 already done" in out
    assert re.search(r"#1 +skip \(done\)", out) and re.search(r"#2 +resume", out)
    assert sbatch_lines(out)["array"] == "0-1%2"  # the 2 runs to submit
    assert sbatch_lines(out)["ntasks-per-node"] == "1" and "gpus-per-node" not in sbatch_lines(out)


def test_submit_reports_a_bad_override_clearly(capsys):
    assert main(["submit", "--dry-run", "method=nonexistent"]) == 2
    assert "nonexistent" in capsys.readouterr().err
