"""No run's record is lost, doubled or left lying: kills, signals, concurrent launches, full
disks, torn files and bad values (issue 13). The embedded digits domain with tiny epochs."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.collect import collect, effective_status
from imix_sweeps.config import ConfigError, config_hash, pretrain_hash
from imix_sweeps.faults import Campaign, finish, launch, metric_rows, read_json, wait_epochs
from imix_sweeps.run import RunDirConflict, read_results, run
from imix_sweeps.runlock import LOCK, RunLock, RunLocked
from imix_sweeps.runstate import RunRecord, RunSignalled, archive_attempt
from imix_sweeps.train import CHECKPOINT
from tests.conftest import compose

SUBPROCESS = [
    "train.epochs=6",
    "train.batch_size=64",
    "backbone.net.width=8",
    "method.model.dim=16",
    "train.heartbeat_interval_s=1",
    "mix=imixup",
]


def epochs(run_dir: Path) -> list[int]:
    return [r["epoch"] for r in metric_rows(run_dir)]


def stop_at(n: int):
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] == n

    return should_stop


# ----------------------------------------------------------------------------- lock
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_second_lock_on_a_held_run_dir_is_refused_naming_the_holder(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunLocked, match=rf"pid {os.getpid()} on {socket.gethostname()}"):
            RunLock(tmp_path).acquire()
    RunLock(tmp_path).acquire().release()  # released: free again


def test_stale_lock_of_a_dead_pid_on_this_host_is_taken_over(tmp_path):
    held = RunLock(tmp_path).acquire()  # still held (as by an orphaned child), holder pid dead
    dead = _dead_pid()
    (tmp_path / LOCK).write_text(json.dumps({"host": socket.gethostname(), "pid": dead}))
    old_inode = (tmp_path / LOCK).stat().st_ino
    new = RunLock(tmp_path).acquire()
    assert (tmp_path / LOCK).stat().st_ino != old_inode
    assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    new.release()
    held.release()


def test_requeued_slurm_job_takes_over_its_own_lock(tmp_path, monkeypatch):
    held = RunLock(tmp_path).acquire()
    holder = {"host": "node-17", "pid": 4242, "slurm_job_id": "777"}
    (tmp_path / LOCK).write_text(json.dumps(holder))
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    RunLock(tmp_path).acquire().release()
    # another job's lock on another host, with no squeue to ask: respected
    (tmp_path / LOCK).unlink()
    held.release()
    held = RunLock(tmp_path).acquire()
    (tmp_path / LOCK).write_text(json.dumps({**holder, "slurm_job_id": "778"}))
    monkeypatch.setenv("PATH", str(tmp_path))  # no squeue
    with pytest.raises(RunLocked, match="SLURM job 778"):
        RunLock(tmp_path).acquire()
    held.release()


def test_a_launch_of_a_locked_run_skips_it_and_touches_nothing(tmp_path, tiny_overrides, caplog):
    with RunLock(tmp_path), caplog.at_level(logging.WARNING):
        res = run(compose(tiny_overrides), tmp_path)
    assert res["status"] == "skipped" and "in use by" in res["reason"]
    assert sum("in use by" in r.message for r in caplog.records) == 1
    assert not (tmp_path / "results.json").exists() and not (tmp_path / "metrics.jsonl").exists()


# ----------------------------------------------------------------------------- metrics history
def test_fresh_start_archives_the_earlier_attempt(tmp_path, tiny_overrides):
    run(compose(tiny_overrides), tmp_path)
    first = (tmp_path / "metrics.jsonl").read_text()
    res = run(compose([*tiny_overrides, "train.resume=false", "skip_done=false"]), tmp_path)
    assert res["status"] == "ok" and epochs(tmp_path) == [1, 2]
    assert (tmp_path / "attempts" / "1" / "metrics.jsonl").read_text() == first
    assert (tmp_path / "attempts" / "1" / CHECKPOINT).exists()


def test_rows_without_a_checkpoint_are_archived_not_continued(tmp_path, tiny_overrides):
    # checkpoint_every=0 and a kill (or a bad checkpoint moved away): rows but no checkpoint
    rows = "".join(json.dumps({"epoch": e, "step": e, "loss": 9.0}) + "\n" for e in (1, 2, 3))
    (tmp_path / "metrics.jsonl").write_text(rows)
    res = run(compose([*tiny_overrides, "train.checkpoint_every=0"]), tmp_path)
    assert res["status"] == "ok" and epochs(tmp_path) == [1, 2]
    assert (tmp_path / "attempts" / "1" / "metrics.jsonl").read_text() == rows


def test_archive_numbers_attempts(tmp_path):
    for n in (1, 2):
        (tmp_path / "metrics.jsonl").write_text(f"{n}\n")
        assert archive_attempt(
            tmp_path, ["metrics.jsonl", "absent"]
        ) == tmp_path / "attempts" / str(n)
    assert archive_attempt(tmp_path, ["metrics.jsonl"]) is None


TINY3 = ["train.epochs=3", "train.batch_size=128", "backbone.net.width=8", "method.model.dim=16"]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("full")
    return d, run(compose(TINY3), d)


@pytest.mark.parametrize("tail", ['{"epoch": 2, "st', "\x00\x00garbage\x00", "[1, 2]"])
def test_resume_survives_a_torn_last_metrics_line(tmp_path, full_run, tail, caplog):
    overrides = TINY3
    full_dir, full = full_run
    cut = tmp_path / "cut"
    assert run(compose(overrides), cut, should_stop=stop_at(14))["status"] == "preempted"
    with open(cut / "metrics.jsonl", "a") as f:
        f.write(tail)
    with caplog.at_level(logging.WARNING):
        res = run(compose(overrides), cut)
    assert res["status"] == "ok" and epochs(cut) == [1, 2, 3]
    assert [r["loss"] for r in metric_rows(cut)] == [r["loss"] for r in metric_rows(full_dir)]
    assert res["linear_top1"] == full["linear_top1"]
    assert any(str(cut / "metrics.jsonl") in r.getMessage() for r in caplog.records)


# ----------------------------------------------------------------------------- signals, heartbeat
@pytest.mark.parametrize(
    "sig,status", [("SIGTERM", "failed"), ("SIGINT", "interrupted"), ("SIGUSR1", "preempted")]
)
def test_a_signal_checkpoints_and_records_the_truth(tmp_path, tiny_overrides, sig, status):
    overrides = [*tiny_overrides, "train.epochs=3"]
    calls = {"n": 0}

    def send_at_step_14() -> bool:
        calls["n"] += 1
        if calls["n"] == 14:
            os.kill(os.getpid(), getattr(signal, sig))
        return False

    before = signal.getsignal(signal.SIGTERM)
    if status == "preempted":
        res = run(compose(overrides), tmp_path, should_stop=send_at_step_14)
        assert res["status"] == "preempted" and "SIGUSR1" in res["reason"]
    else:
        with pytest.raises(RunSignalled):
            run(compose(overrides), tmp_path, should_stop=send_at_step_14)
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
    rec = read_results(tmp_path)
    assert rec["status"] == status and sig in rec["reason"]
    ck = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    assert (ck["epoch"], ck["step"]) == (1, 4)  # stopped at the step boundary, checkpointed
    again = run(compose(overrides), tmp_path)
    assert again["status"] == "ok" and epochs(tmp_path) == [1, 2, 3]
    assert [a["status"] for a in again["attempts"]] == [status, "ok"]


def test_heartbeat_is_refreshed_while_running(tmp_path):
    rec = RunRecord(tmp_path, {"status": "running"}, heartbeat_interval_s=0.2)
    rec.write()
    first = read_json(tmp_path / "results.json")
    rec.start_heartbeat()
    time.sleep(0.9)
    rec.stop_heartbeat()
    later = read_json(tmp_path / "results.json")
    assert later["heartbeat"] > first["heartbeat"] + 0.3
    assert later["heartbeat_interval_s"] == 0.2 and later["wall_seconds"] >= 0.6


def test_effective_status_reports_a_dead_running_record_as_lost():
    now = 10_000.0
    rec = {"status": "running", "heartbeat": now - 200, "heartbeat_interval_s": 60}
    assert effective_status(rec, now) == "running"  # 3 x 60 s < 5 min floor
    assert effective_status({**rec, "heartbeat": now - 301}, now) == "lost"
    assert (
        effective_status({**rec, "heartbeat_interval_s": 600, "heartbeat": now - 1000}, now)
        == "running"
    )
    assert effective_status({**rec, "status": "ok", "heartbeat": 0}, now) == "ok"
    assert effective_status({"status": "running"}, now) == "running"  # an older record


def test_collect_reports_lost_runs_and_doubled_rows(tmp_path):
    base = {"method": "npair", "mix": "none", "domain": "digits", "backbone": "small_cnn"}
    lost = tmp_path / "lost"
    lost.mkdir()
    (lost / "results.json").write_text(
        json.dumps(
            {
                **base,
                "seed": 0,
                "status": "running",
                "config_hash": "a",
                "heartbeat": time.time() - 3600,
                "heartbeat_interval_s": 60,
            }
        )
    )
    dbl = tmp_path / "doubled"
    dbl.mkdir()
    (dbl / "results.json").write_text(
        json.dumps({**base, "seed": 1, "status": "ok", "config_hash": "b"})
    )
    (dbl / "metrics.jsonl").write_text(
        "".join(json.dumps({"epoch": e}) + "\n" for e in (1, 1, 2, 2))
    )
    issues = collect([tmp_path]).issues
    kinds = dict(zip(issues["path"], issues["kind"]))
    assert kinds[str(lost)] == "lost"
    assert any("2 epoch row(s) repeated" in d for d in issues["detail"])


def test_wall_time_adds_up_over_attempts_and_a_killed_one_is_marked_lost(tmp_path, tiny_overrides):
    cfg = compose(tiny_overrides)
    killed = {
        "status": "running",
        "wall_seconds": 5.0,
        "config_hash": config_hash(cfg),
        "pretrain_hash": pretrain_hash(cfg),
        "heartbeat": time.time() - 900,
        "attempts": [{"status": "running", "wall_seconds": 5.0, "pid": 1}],
    }
    (tmp_path / "results.json").write_text(json.dumps(killed))
    res = run(cfg, tmp_path)
    assert res["status"] == "ok" and [a["status"] for a in res["attempts"]] == ["lost", "ok"]
    assert res["wall_seconds"] == pytest.approx(5.0 + res["attempts"][1]["wall_seconds"], abs=0.02)


# ----------------------------------------------------------------------------- kill -9
def _kill9_then_resume(tmp_path: Path, rng: random.Random, ref: Path) -> tuple[bool, list[int]]:
    d = tmp_path / f"killed_{rng.random():.6f}"
    for _ in range(rng.randint(1, 2)):
        k, delay = rng.randint(0, 5), rng.uniform(0.0, 1.5)  # start-up or within epoch k + 1
        p = launch(d, SUBPROCESS, tmp_path)
        if wait_epochs(d, p, k):
            time.sleep(delay)
        p.kill()
        finish(p)
    code, out = finish(launch(d, SUBPROCESS, tmp_path))
    assert code == 0, out[-2000:]
    rec, ref_rec = read_results(d), read_results(ref)
    assert rec["status"] == "ok" and not list(d.glob(".*.tmp*"))
    same = [r["loss"] for r in metric_rows(d)] == [r["loss"] for r in metric_rows(ref)] and all(
        rec[k] == ref_rec[k] for k in ("linear_top1", "knn_top1", "final_loss")
    )
    return same, epochs(d)


@pytest.fixture(scope="module")
def concurrent_launches(tmp_path_factory) -> tuple[Path, str, str]:
    """Two launches of one run dir at once; the run they leave is the kill -9 tests' reference."""
    d = tmp_path_factory.mktemp("reference") / "run"
    a, b = launch(d, SUBPROCESS, d.parent), launch(d, SUBPROCESS, d.parent)
    (ca, oa), (cb, ob) = finish(a), finish(b)
    assert ca == 0 and cb == 0, oa[-2000:] + ob[-2000:]
    return d, oa, ob


@pytest.fixture(scope="module")
def reference_run(concurrent_launches) -> Path:
    return concurrent_launches[0]


def test_two_launches_of_the_same_run_dir_at_once_train_it_once(concurrent_launches):
    d, oa, ob = concurrent_launches
    # one skips it while the other holds it (or, on a very slow machine, after it finished)
    said = [("in use by" in o) or ("already says ok" in o) for o in (oa, ob)]
    assert sum(said) == 1, oa[-1500:] + ob[-1500:]
    assert epochs(d) == [1, 2, 3, 4, 5, 6]
    assert read_results(d)["status"] == "ok" and len(read_results(d)["attempts"]) == 1


def test_kill9_at_a_seeded_random_point_resumes_bit_exact(tmp_path, reference_run):
    same, eps = _kill9_then_resume(tmp_path, random.Random(13), reference_run)
    assert eps == [1, 2, 3, 4, 5, 6] and same


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_kill9_many_trials_resume_bit_exact(tmp_path, reference_run, seed):
    same, eps = _kill9_then_resume(tmp_path, random.Random(seed), reference_run)
    assert eps == [1, 2, 3, 4, 5, 6] and same


@pytest.mark.slow
def test_fault_campaign_finds_nothing_lost_doubled_or_stuck(tmp_path):
    c = Campaign(tmp_path, seed=5)
    c.reference()
    for k in range(6):
        c.trial(k)
    assert c.tally.ok(), c.report()


# ----------------------------------------------------------------------------- full disk
@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(disk: Path, leave: int) -> None:
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(free - leave, 0))


def test_full_disk_records_the_failure_keeps_the_checkpoint_and_leaves_no_temp_files(
    small_disk, tiny_overrides, monkeypatch
):
    overrides = [*tiny_overrides, "train.epochs=4"]
    probe = small_disk / "probe"
    run(compose([*tiny_overrides, "train.epochs=1"]), probe)
    ckpt = (probe / CHECKPOINT).stat().st_size
    for p in probe.rglob("*"):
        if p.is_file():
            p.unlink()
    d = small_disk / "run"
    monkeypatch.setenv("IMIX_MIN_FREE_MB", "0")
    _fill(small_disk, int(1.6 * ckpt) + 24 * 1024)  # room for one checkpoint, not for two
    with pytest.raises(OSError):
        run(compose(overrides), d)
    rec = read_results(d)
    assert rec["status"] == "failed" and rec["reason"].startswith("disk full"), rec["reason"]
    assert str(d) in rec["reason"]
    assert not list(d.glob(".*.tmp*"))
    assert torch.load(d / CHECKPOINT, weights_only=False)["epoch"] >= 1
    monkeypatch.delenv("IMIX_MIN_FREE_MB")  # a re-launch on the full disk says so plainly
    with pytest.raises(OSError, match=r"disk full: .* MB free on the file system of"):
        run(compose(overrides), d)
    (small_disk / "filler").unlink()
    res = run(compose(overrides), d)
    assert res["status"] == "ok" and epochs(d) == [1, 2, 3, 4]


# ----------------------------------------------------------------------------- values, identity
@pytest.mark.parametrize(
    "override,key",
    [
        ("train.epochs=-3", "train.epochs"),
        ("train.epochs=0", "train.epochs"),
        ("train.batch_size=0", "train.batch_size"),
        ("mix.alpha=-1", "mix.alpha"),
        ("mix.alpha=0", "mix.alpha"),
        ("method.model.temperature=0", "method.model.temperature"),
        ("optim.lr=-0.1", "optim.lr"),
        ("optim.lr=inf", "optim.lr"),
        ("optim.schedule=cosin", "optim.schedule"),
        ("eval.linear_method=lbgfs", "eval.linear_method"),
        ("eval.knn_k=0", "eval.knn_k"),
        ("train.heartbeat_interval_s=0", "train.heartbeat_interval_s"),
    ],
)
def test_bad_values_fail_before_the_run_dir_exists(tmp_path, override, key):
    overrides = ["mix=imixup", override]
    with pytest.raises(ConfigError, match=rf"{key}=.*allowed"):
        run(compose(overrides), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_changed_evaluation_re_evaluates_without_re_training(tmp_path, tiny_overrides, caplog):
    first = run(compose(tiny_overrides), tmp_path)
    ck_mtime = (tmp_path / CHECKPOINT).stat().st_mtime_ns
    rows = (tmp_path / "metrics.jsonl").read_text()
    with caplog.at_level(logging.INFO):
        second = run(
            compose([*tiny_overrides, "eval.knn_k=20", "eval.linear_method=pinv"]), tmp_path
        )
    assert second["status"] == "ok" and second["config_hash"] != first["config_hash"]
    assert second["pretrain_hash"] == first["pretrain_hash"] and second["eval"] == "pinv"
    assert (tmp_path / CHECKPOINT).stat().st_mtime_ns == ck_mtime  # no training step ran
    assert (tmp_path / "metrics.jsonl").read_text() == rows
    assert any("re-evaluating" in r.getMessage() for r in caplog.records)


def test_a_run_dir_of_another_seed_is_refused_not_overwritten(tmp_path, tiny_overrides):
    run(compose(tiny_overrides), tmp_path)
    before = (tmp_path / "results.json").read_text()
    with pytest.raises(RunDirConflict, match=r"another run .*seed=0.*train.resume=false"):
        run(compose([*tiny_overrides, "seed=1"]), tmp_path)
    assert (tmp_path / "results.json").read_text() == before
    res = run(compose([*tiny_overrides, "seed=1", "train.resume=false"]), tmp_path)
    assert res["status"] == "ok" and res["seed"] == 1
    assert json.loads((tmp_path / "attempts" / "1" / "results.json").read_text())["seed"] == 0


# ----------------------------------------------------------------------------- small messages
def test_nan_before_any_checkpoint_says_none_was_kept(tmp_path, tiny_overrides, monkeypatch):
    from imix_sweeps.methods import NPair

    original = NPair.forward

    def poisoned(self, x1, x2, *, generator=None):
        out = original(self, x1, x2, generator=generator)
        return out._replace(loss=out.loss * float("nan"))

    monkeypatch.setattr(NPair, "forward", poisoned)
    with pytest.raises(RuntimeError, match="no checkpoint had been written yet"):
        run(compose(tiny_overrides), tmp_path)
    assert "last good checkpoint" not in read_results(tmp_path)["reason"]


def test_random_bytes_in_an_npz_cache_are_called_what_they_are(tmp_path):
    from imix_sweeps.data.cache import load_verified

    bad = tmp_path / "cache.npz"
    bad.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(ValueError, match=r"not an \.npz archive") as e:
        load_verified(bad, [])
    assert "pickled" not in str(e.value)


def test_table_with_a_garbage_runs_file_is_a_one_line_error(tmp_path):
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"this is not parquet at all\n" * 10)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "analysis",
            "table",
            "--paper",
            "imix",
            "--runs",
            str(garbage),
            "--out",
            "",
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and str(garbage) in out.stderr, out.stderr


# ----------------------------------------------------------------------------- DDP
DDP_SCRIPT = """
import os, sys, torch
torch.set_num_threads(1)
from tests.conftest import compose
from imix_sweeps.run import run
ov = ["train.epochs=2", "train.batch_size=128", "backbone.net.width=8", "method.model.dim=16"]
print("STATUS", os.environ["RANK"], run(compose(ov), sys.argv[1])["status"], flush=True)
"""


def _ddp_run(run_dir: Path, port: int) -> list[str]:
    procs = []
    for rank in (0, 1):
        env = {
            **os.environ,
            "WORLD_SIZE": "2",
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", DDP_SCRIPT, str(run_dir)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outs = [p.communicate(timeout=300)[0] for p in procs]
    return [ln.split()[2] for o in outs for ln in o.splitlines() if ln.startswith("STATUS")]


@pytest.mark.slow
def test_ddp_rank0_owns_the_run_dir_and_all_ranks_follow_its_lock(tmp_path):
    port = 29500 + os.getpid() % 1000
    with RunLock(tmp_path / "held"):
        assert _ddp_run(tmp_path / "held", port) == ["skipped", "skipped"]
    assert not (tmp_path / "held" / "results.json").exists()
    assert _ddp_run(tmp_path / "free", port + 1) == ["ok", "ok"]
    rec = read_results(tmp_path / "free")
    assert (
        rec["world_size"] == 2 and len(rec["attempts"]) == 1 and epochs(tmp_path / "free") == [1, 2]
    )
