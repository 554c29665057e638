"""``imix-analysis status``: effective statuses (lost runs), counts per sweep and cell, grouped
failure reasons, time left from the epoch times."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from analysis.cli import main
from analysis.collect import effective_status, lost_after
from analysis.status import reason_group, sweep_status
from tests.test_analysis_collect import write_run

NOW = 1_800_000_000.0


def test_effective_status_rules(tmp_path: Path) -> None:
    assert effective_status({"status": "ok"}, NOW) == "ok"
    assert effective_status({"status": "failed"}, NOW) == "failed"
    assert effective_status({"status": "preempted"}, NOW) == "preempted"
    beat = {"status": "running", "heartbeat_interval_s": 60.0}
    # 3 x 60 s < the 5-minute floor: lost only after 300 s
    assert lost_after(beat) == 300.0
    assert effective_status({**beat, "heartbeat": NOW - 299}, NOW) == "running"
    assert effective_status({**beat, "heartbeat": NOW - 301}, NOW) == "lost"
    slow = {"status": "running", "heartbeat_interval_s": 200.0}
    assert lost_after(slow) == 600.0
    assert effective_status({**slow, "heartbeat": NOW - 500}, NOW) == "running"
    assert effective_status({**slow, "heartbeat": NOW - 601}, NOW) == "lost"
    # no heartbeat field (older runs): results.json / metrics.jsonl mtime
    d = write_run(tmp_path / "old", status="running", metrics=[{"epoch": 1, "epoch_seconds": 2}])
    for name in ("results.json", "metrics.jsonl"):
        os.utime(d / name, (NOW - 1000, NOW - 1000))
    rec = {"status": "running", "path": str(d)}
    assert effective_status(rec, NOW) == "lost"
    os.utime(d / "metrics.jsonl", (NOW - 10, NOW - 10))  # an epoch just ended
    assert effective_status(rec, NOW) == "running"
    assert effective_status({"status": "running", "mtime": NOW - 100}, NOW) == "running"
    assert effective_status({"status": "running"}, NOW) == "running"  # no sign of life at all


@pytest.fixture
def sweeps(tmp_path: Path) -> Path:
    now = time.time()
    a = tmp_path / "multirun" / "a"
    metrics = [{"epoch": e, "epoch_seconds": 10.0} for e in (1, 2, 3, 4)]
    for seed in (0, 1):
        write_run(
            a / f"mix=none,seed={seed}",
            config_hash=f"ok{seed}",
            cell_hash="none",
            seed=seed,
            epochs=10,
        )
    # running, alive, 4 of 10 epochs at 10 s: 60 s left
    write_run(
        a / "mix=imixup,seed=0",
        metrics=metrics,
        config_hash="r0",
        cell_hash="imixup",
        mix="imixup",
        status="running",
        epochs=10,
        heartbeat=now - 5,
        heartbeat_interval_s=30.0,
        linear_top1=None,
    )
    # running by its record, but its heartbeat stopped 20 minutes ago: lost
    write_run(
        a / "mix=imixup,seed=1",
        metrics=metrics[:2],
        config_hash="r1",
        cell_hash="imixup",
        mix="imixup",
        seed=1,
        status="running",
        epochs=10,
        heartbeat=now - 1200,
        heartbeat_interval_s=30.0,
        linear_top1=None,
    )
    for seed in (0, 1, 2):
        write_run(
            a / f"mix=icutmix,seed={seed}",
            config_hash=f"f{seed}",
            cell_hash="icutmix",
            mix="icutmix",
            seed=seed,
            epochs=10,
            status="failed",
            reason=f"CUDA out of memory. Tried to allocate {seed + 2}.00 GiB on /dev/gpu{seed}",
            linear_top1=None,
        )
    write_run(
        a / "mix=mixco,seed=0",
        config_hash="p0",
        cell_hash="mixco",
        mix="mixco",
        status="preempted",
        epochs=10,
        metrics=metrics[:1],
        linear_top1=None,
    )
    b = tmp_path / "multirun" / "b"
    write_run(b / "seed=0", config_hash="b0", experiment="b")
    (b / "broken").mkdir()
    (b / "broken" / "results.json").write_text("{")
    return tmp_path / "multirun"


def test_sweep_status_counts_reasons_time_left(sweeps: Path) -> None:
    got = {Path(s.sweep).name: s for s in sweep_status([sweeps])}
    a, b = got["a"], got["b"]
    assert a.counts == {"ok": 2, "running": 1, "lost": 1, "failed": 3, "preempted": 1}
    cells = {c.label: c for c in a.cells}
    assert set(cells) == {"mix=none", "mix=imixup", "mix=icutmix", "mix=mixco"}
    assert cells["mix=imixup"].counts == {"running": 1, "lost": 1}
    assert cells["mix=imixup"].seconds_left == pytest.approx(80.0)  # the lost one: 8 x 10 s
    assert a.seconds_left_max == pytest.approx(90.0)  # the preempted run: 9 epochs x 10 s
    assert a.seconds_left_sum == pytest.approx(60.0 + 80.0 + 90.0)
    # three OOMs of different sizes and devices are one reason; the lost run is another
    reasons = {w: n for w, n, _ in a.reasons}
    assert reasons[reason_group("CUDA out of memory. Tried to allocate 7.00 GiB on /dev/x")] == 3
    assert any(w.startswith("lost: no sign of life for 20min") for w in reasons)
    assert b.counts == {"ok": 1} and b.n_corrupt == 1
    text = a.text()
    assert "8 runs: 2 ok, 1 running, 3 failed, 1 preempted, 1 lost" in text
    assert "| mix=imixup |  | 1 |  |  | 1 | 80s |" in text
    assert "- 3 x CUDA out of memory. Tried to allocate … GiB on …" in text


def test_cli_status(sweeps: Path, tmp_path: Path, capsys) -> None:
    assert main(["status", str(sweeps), str(tmp_path / "missing")]) == 0
    cap = capsys.readouterr()
    assert "warning:" in cap.err and "missing" in cap.err
    assert "## " + str(sweeps / "a") in cap.out and "## " + str(sweeps / "b") in cap.out
    assert "1 runs: 1 ok" in cap.out and "1 unreadable results.json" in cap.out
    with pytest.raises(SystemExit, match="no such run directory"):
        main(["status", str(tmp_path / "missing")])


def test_table_shows_lost_runs_with_the_reason(sweeps: Path, capsys) -> None:
    assert main(["table", "--runs", str(sweeps / "a"), "--rows", "method", "--out", ""]) == 0
    out = capsys.readouterr().out
    assert "failed (3): CUDA out of memory" in out
    assert "| N-pair | 90.0 ± 0.0 (2) |" in out
