"""The SLURM launcher against a real SLURM cluster (``launchers/local-cluster.sh up``).

Every job here is tiny (digits, width-8 CNN, 2-rank gloo DDP where it matters) because the
local cluster is one node with as few as 2 CPUs: jobs queue, and each test waits for its own.
Skipped, with the reason, where ``sbatch`` is absent or the cluster does not answer; with
``IMIX_REQUIRE_SLURM=1`` (CI) a missing cluster is an error instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch.multiprocessing as mp

REPO = Path(__file__).resolve().parent.parent
TINY = [
    "domain=digits",
    "train.epochs=2",
    "train.batch_size=128",
    "backbone.net.width=8",
    "method.model.dim=16",
    "eval.linear_epochs=20",
]
WAIT_S = 300  # bound of every wait on the cluster

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _cluster_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "sbatch not on PATH (start a cluster: sudo bash launchers/local-cluster.sh up)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
        if "is UP" not in ping.stdout:
            return f"SLURM controller not up ({ping.stdout.strip() or ping.stderr.strip()})"
        acct = subprocess.run(["sacct", "-n", "-X"], capture_output=True, text=True, timeout=20)
        if acct.returncode != 0:
            return f"sacct fails (accounting/slurmdbd needed by submitit): {acct.stderr.strip()}"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"SLURM not reachable: {e}"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    problem = _cluster_problem()
    if problem:
        if os.environ.get("IMIX_REQUIRE_SLURM") == "1":
            pytest.fail(f"IMIX_REQUIRE_SLURM=1 but {problem}")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def job_name(cluster) -> str:
    """A job name unique to this test module; every job left behind is cancelled at the end."""
    name = f"imix-test-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["scancel", f"--name={name}"], check=False, timeout=30)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    return env


def multirun(
    sweep_dir: Path, job_name: str, *overrides: str, launcher: str = "slurm_cpu"
) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "imix_sweeps",
        "--multirun",
        f"hydra/launcher={launcher}",
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.launcher.name={job_name}",
        "hydra.launcher.poll_s=1",
        *TINY,
        *overrides,
    ]
    return subprocess.run(
        cmd, cwd=sweep_dir.parent, env=_env(), capture_output=True, text=True, timeout=WAIT_S * 2
    )


def results_of(sweep_dir: Path) -> dict[str, dict]:
    return {
        p.parent.name: json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/results.json"))
    }


def losses(run_dir: Path) -> list[float]:
    return [json.loads(ln)["loss"] for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


def job_dirs(sweep_dir: Path) -> set[str]:
    d = sweep_dir / ".submitit"
    return {p.name for p in d.iterdir() if p.is_dir()} if d.exists() else set()


# ------------------------------------------------------------------ a 4-run sweep, re-launched
@pytest.fixture(scope="module")
def done_sweep(tmp_path_factory, job_name) -> Path:
    sweep_dir = tmp_path_factory.mktemp("slurm") / "sweep4"
    out = multirun(sweep_dir, job_name, "seed=0,1", "mix=none,imixup")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return sweep_dir


def test_four_run_sweep_lands_every_result(done_sweep: Path) -> None:
    res = results_of(done_sweep)
    assert len(res) == 4, sorted(res)
    assert {(r["seed"], r["mix"]) for r in res.values()} == {
        (s, m) for s in (0, 1) for m in ("none", "imixup")
    }
    for name, r in res.items():
        assert r["status"] == "ok", (name, r["reason"])
        assert r["world_size"] == 1
        assert r["linear_top1"] is not None and 0.0 <= r["linear_top1"] <= 100.0
        assert Path(r["log_path"]).exists()
        assert len(losses(done_sweep / name)) == 2
    assert len({r["config_hash"] for r in res.values()}) == 4
    # one SLURM array of 4 jobs, all completed according to accounting
    assert len(job_dirs(done_sweep)) >= 4


def test_relaunch_skips_done_runs_and_resumes_unfinished(done_sweep: Path, job_name: str) -> None:
    before = results_of(done_sweep)
    jobs_before = job_dirs(done_sweep)
    out = multirun(done_sweep, job_name, "seed=0,1", "mix=none,imixup")
    assert out.returncode == 0, out.stderr[-3000:]
    assert job_dirs(done_sweep) == jobs_before, "a done run was submitted again"
    assert results_of(done_sweep) == before
    assert (out.stdout + out.stderr).count("skipped (results.json says ok)") == 4

    # one run interrupted before its evaluation: only that one is submitted, and it resumes
    name = sorted(before)[1]
    interrupted = dict(before[name], status="preempted", linear_top1=None, knn_top1=None)
    (done_sweep / name / "results.json").write_text(json.dumps(interrupted))
    losses_before = losses(done_sweep / name)
    out = multirun(done_sweep, job_name, "seed=0,1", "mix=none,imixup")
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(job_dirs(done_sweep) - jobs_before) == 1
    after = results_of(done_sweep)
    assert after[name]["status"] == "ok"
    assert after[name]["linear_top1"] == before[name]["linear_top1"]
    assert losses(done_sweep / name) == losses_before  # training was not redone
    assert "resumed from" in (done_sweep / name / "run.log").read_text()
    assert {k: v for k, v in after.items() if k != name} == {
        k: v for k, v in before.items() if k != name
    }


# ------------------------------------------------------------------ failures stay local
def test_crashing_jobs_are_reported_failed_while_siblings_finish(tmp_path, job_name) -> None:
    sweep_dir = tmp_path / "crash"
    # The dataset builder of run 0 is the real one; run 1's raises a Python error at run time
    # (a builder called without its arguments); run 2's segfaults the process, so that only
    # SLURM knows what happened.
    builders = "imix_sweeps.data.digits.digits,imix_sweeps.data.base.require,faulthandler._sigsegv"
    out = multirun(
        sweep_dir,
        job_name,
        "~domain.data.crop_scale",
        "~domain.data.jitter",
        f"domain.data._target_={builders}",
    )
    assert out.returncode != 0, "a sweep with failed runs must exit non-zero"
    dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(dirs) == 3, dirs
    # each run dir names its overrides: order them as the builders above
    runs = [next(d for d in dirs if f"_target_={b}," in d.name) for b in builders.split(",")]
    res = [json.loads((r / "results.json").read_text()) for r in runs]
    assert res[0]["status"] == "ok" and res[0]["linear_top1"] is not None
    # raised in Python: run.py recorded the error itself, with the run's own log file
    assert res[1]["status"] == "failed"
    assert "require" in res[1]["reason"] or "TypeError" in res[1]["reason"], res[1]["reason"]
    assert res[1]["log_path"] == str(runs[1] / "run.log")
    assert "run failed" in Path(res[1]["log_path"]).read_text()
    # killed by a signal: the sweep driver recorded the SLURM state and the job's stderr log
    assert res[2]["status"] == "failed"
    assert re.search(r"SLURM job \S+ ended in state (FAILED|CANCELLED|NODE_FAIL)", res[2]["reason"])
    assert Path(res[2]["log_path"]).exists() and res[2]["log_path"].endswith("_log.err")
    assert "2 of 3 runs failed" in out.stdout + out.stderr


# ------------------------------------------------------------------ preemption
def _reference_worker(rank: int, world: int, port: int, overrides: list[str], run_dir: str) -> None:
    """One rank of the uninterrupted reference run (the same code path as a SLURM task)."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        OMP_NUM_THREADS="1",
    )
    import torch
    from hydra import compose, initialize_config_dir

    from imix_sweeps import dist
    from imix_sweeps.config import CONF_DIR
    from imix_sweeps.run import run

    torch.set_num_threads(1)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    try:
        run(cfg, Path(run_dir))
    finally:
        dist.destroy()


def submit(sweep_dir: Path, job_name: str, *overrides: str) -> list[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "launchers",
            "submit",
            "--launcher",
            "slurm_cpu",
            f"hydra.sweep.dir={sweep_dir}",
            f"hydra.launcher.name={job_name}",
            *overrides,
        ],
        cwd=sweep_dir.parent,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return re.findall(r"^\s+#\d+\s+job (\S+)$", out.stdout, flags=re.M)


def node_cpus() -> int:
    out = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, timeout=30)
    return max(
        (int(c.rstrip("+")) for c in out.stdout.split() if c.rstrip("+").isdigit()), default=0
    )


def test_preempted_ddp_run_requeues_and_matches_uninterrupted_run(tmp_path, job_name) -> None:
    import submitit

    if node_cpus() < 2:  # the job would pend forever (reason PartitionConfig)
        pytest.skip(f"a 2-rank job needs a node with 2 CPUs; the largest has {node_cpus()}")

    overrides = [*TINY, "train.epochs=25", "mix=imixup"]
    sweep_dir = tmp_path / "preempt"
    sweep_dir.mkdir()
    job_ids = submit(
        sweep_dir,
        job_name,
        *overrides,
        "hydra.launcher.tasks_per_node=2",  # 2-rank DDP: the ranks must agree on the stop step
        "hydra.launcher.timeout_min=60",  # > 10, else submitit takes USR2 for a time-out
        "hydra.launcher.stop_check_every=1",
    )
    assert len(job_ids) == 1
    job = submitit.SlurmJob(folder=sweep_dir / ".submitit" / "%j", job_id=job_ids[0])

    # the uninterrupted reference: the same 2-rank run, outside SLURM, meanwhile
    ref_dir = tmp_path / "reference"
    ctx = mp.get_context("spawn")
    port = _free_port()
    ref = [
        ctx.Process(target=_reference_worker, args=(r, 2, port, overrides, str(ref_dir)))
        for r in range(2)
    ]
    for p in ref:
        p.start()

    run_dir: Path | None = None
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if dirs and (dirs[0] / "metrics.jsonl").exists():
            run_dir = dirs[0]
            if len(losses(run_dir)) >= 2:
                break
        time.sleep(0.2)
    else:
        pytest.fail(f"the job made no progress in {WAIT_S}s: {job.stderr()}")
    done_before = len(losses(run_dir))
    assert done_before < 25, "the run finished before it could be interrupted"
    job._interrupt()  # what SLURM does on preemption: SIGTERM, then USR2

    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        res = json.loads((run_dir / "results.json").read_text())
        if res["status"] in ("ok", "failed"):
            break
        time.sleep(1.0)
    for p in ref:
        p.join(timeout=WAIT_S)
        assert p.exitcode == 0, "reference run failed"

    assert res["status"] == "ok", res["reason"]
    log = (run_dir / "run.log").read_text()
    assert "stop requested: checkpointed" in log, log[-2000:]
    assert "resumed from" in log
    assert sacct_states(job.job_id)[:1] == ["REQUEUED"], sacct_states(job.job_id)
    # rank 0 alone writes the run dir (rank 1 logs only to its SLURM files)
    assert {p.name for p in run_dir.iterdir()} == {
        ".hydra", ".run.lock", "run.log", "metrics.jsonl", "checkpoint.pt", "results.json"
    }  # fmt: skip
    expected = json.loads((ref_dir / "results.json").read_text())
    assert res["world_size"] == expected["world_size"] == 2
    assert losses(run_dir) == losses(ref_dir)  # every epoch, before and after the interruption
    assert res["final_loss"] == expected["final_loss"]
    assert res["linear_top1"] == expected["linear_top1"]
    assert res["knn_top1"] == expected["knn_top1"]


def sacct_states(job_id: str) -> list[str]:
    """States of every incarnation of a job (requeues included), oldest first; sacct may lag."""
    states: list[str] = []
    for _ in range(30):
        out = subprocess.run(
            ["sacct", "-j", job_id, "-X", "-D", "-n", "-P", "-o", "State"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        states = [ln.split()[0] for ln in out.stdout.splitlines() if ln.strip()]
        if states and states[-1] == "COMPLETED":
            break
        time.sleep(1.0)
    return states


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_requeues_are_bounded_and_a_relaunch_resumes_the_checkpoint(tmp_path, job_name) -> None:
    import submitit

    sweep_dir = tmp_path / "bounded"
    sweep_dir.mkdir()
    overrides = [*TINY, "train.epochs=25", f"hydra.sweep.dir={sweep_dir}"]
    (job_id,) = submit(sweep_dir, job_name, *overrides, "hydra.launcher.max_requeues=0",
                       "hydra.launcher.stop_check_every=1")  # fmt: skip
    job = submitit.SlurmJob(folder=sweep_dir / ".submitit" / "%j", job_id=job_id)
    deadline = time.monotonic() + WAIT_S
    run_dir = None
    while time.monotonic() < deadline:
        dirs = [p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if dirs and (dirs[0] / "metrics.jsonl").exists():
            run_dir = dirs[0]
            break
        time.sleep(0.2)
    assert run_dir is not None, f"no progress: {job.stderr()}"
    job._interrupt()
    while time.monotonic() < deadline:
        res = json.loads((run_dir / "results.json").read_text())
        if res["status"] != "running":
            break
        time.sleep(0.5)
    assert res["status"] == "failed" and "max_requeues=0 reached" in res["reason"], res
    assert (run_dir / "checkpoint.pt").exists()
    assert "REQUEUED" not in sacct_states(job_id)
    n_before = len(losses(run_dir))
    assert n_before < 25

    out = subprocess.run(
        [sys.executable, "-m", "launchers", "submit", "--wait", "--launcher", "slurm_cpu",
         f"hydra.launcher.name={job_name}", "hydra.launcher.poll_s=1", *overrides],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=WAIT_S,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"#0 +resume", out.stdout)
    res = json.loads((run_dir / "results.json").read_text())
    assert res["status"] == "ok" and res["reason"] is None
    assert [
        json.loads(ln)["epoch"] for ln in (run_dir / "metrics.jsonl").read_text().splitlines()
    ] == list(range(1, 26))
    assert "resumed from" in (run_dir / "run.log").read_text()
