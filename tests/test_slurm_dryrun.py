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


def test_dry_run_needs_no_srun(tmp_path, sweep_conf, capsys, monkeypatch):
    """Off-cluster: no srun/sbatch on PATH, the job list and sbatch lines still print."""
    import shutil
    import sys

    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(bare))
    assert shutil.which("srun") is None
    rc = main(["submit", "--dry-run", f"hydra.sweep.dir={tmp_path / 's'}", sweep_conf,
               "+sweep=mini", *TINY])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "4 run(s): 4 to submit" in out
    assert sbatch_lines(out)["array"] == "0-3%4"


def test_dry_run_marks_invalid_configs_with_the_reason(tmp_path, capsys):
    overrides = [f"hydra.sweep.dir={tmp_path / 's'}", "domain=digits_tab", "mix=icutmix,imixup",
                 *TINY[:2]]  # fmt: skip
    assert main(["submit", "--dry-run", "--launcher", "slurm_cpu", *overrides]) == 0
    out = capsys.readouterr().out
    assert "2 run(s): 1 to submit, 0 already done, 1 invalid" in out
    bad = re.search(r"#0 +invalid +domain=digits_tab mix=icutmix.*\n.*\n +- (.*)", out)
    assert bad and "mix=icutmix does not apply to tabular data" in bad.group(1)
    assert not re.search(r"#0 +submit", out)
    assert re.search(r"#1 +submit +domain=digits_tab mix=imixup", out)
    assert "1 invalid run(s): not submitted" in out
    assert "sbatch parameters (one job)" in out  # the invalid run is not in the array


def test_dry_run_estimates_from_measured_step_times(tmp_path, capsys):
    times = tmp_path / "step_times.csv"
    times.write_text(
        "# a comment line\n"
        "device,backbone,input_size,batch,seconds_per_step,source\n"
        "a100,small_cnn,1x8x8,128,0.5,test\n"
        "a100,small_cnn,1x8x8,128,0.7,test\n"
        "a100,mlp,64,256,,not measured\n"
    )
    overrides = [f"hydra.sweep.dir={tmp_path / 's'}", *TINY, "seed=0,1",
                 "hydra.launcher.gpus_per_node=2", "hydra.launcher.timeout_min=60"]  # fmt: skip
    rc = main(["submit", "--dry-run", "--device-type", "a100", "--step-times", str(times),
               *overrides])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    # digits: 1,297 samples // batch 128 = 10 steps/epoch x 2 epochs = 20 steps; 2 ranks each
    # take 64 -> the batch-128 rows (median 0.6 s) scaled to 64: 0.3 s/step -> 6 s per run
    assert out.count("~6.0s, 0.00 GPU-h [measured, scaled from batch 128]") == 2
    assert "estimate for 2 run(s): 12s of run time, 0.0 GPU-hours" in out
    assert "(basis: measured)" in out
    # no matching row: the documented model, and the dry run says so
    assert main(["submit", "--dry-run", "--device-type", "h100", "--step-times", str(times),
                 *overrides]) == 0  # fmt: skip
    assert "[model (assumed 150 TFLOP/s)]" in capsys.readouterr().out


def test_estimate_model_and_lookup():
    from launchers.estimate import StepTime, estimate

    rows = [StepTime("cpu", "resnet18", "3x32x32", 64, 5.0, "t")]
    e = estimate(domain="cifar10", backbone="resnet18", epochs=2, batch=64, device="cpu",
                 rows=rows)  # fmt: skip
    assert e.basis == "measured" and e.steps == 2 * (50_000 // 64) and e.wall_s == e.steps * 5.0
    e = estimate(domain="cifar10", backbone="resnet50", epochs=1, batch=64, device="cpu",
                 rows=rows)  # fmt: skip
    assert e.basis.startswith("model (") and "fitted to the measured CPU rows" in e.basis
    # the fitted CPU throughput reproduces the measured row through the model
    e18 = estimate(domain="cifar10", backbone="resnet18", epochs=1, batch=32, device="cpu",
                   rows=[r for r in rows if r.batch == 999] or [])  # fmt: skip
    assert e18.basis == "model (assumed 0.05 TFLOP/s)"
    g = estimate(domain="imagenet", backbone="resnet50_imagenet", epochs=100, batch=256,
                 device="gpu", ranks=8, gpus=8, rows=[])  # fmt: skip
    assert g.gpus == 8 and g.gpu_hours == g.wall_s * 8 / 3600
