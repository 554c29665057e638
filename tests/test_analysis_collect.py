"""analysis.collect on generated run directories: ok, failed, running, corrupt, re-runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.cli import main
from analysis.collect import collect, load_runs, write


def result(**kw: object) -> dict:
    """A complete results.json record (schema: docs/ARCHITECTURE.md)."""
    rec = {
        "method": "npair",
        "mix": "none",
        "domain": "digits",
        "backbone": "small_cnn",
        "seed": 0,
        "epochs": 2,
        "batch_size": 256,
        "lr": 0.125,
        "temperature": 0.2,
        "alpha": None,
        "symmetric": False,
        "queue_size": None,
        "eval": "linear",
        "linear_top1": 90.0,
        "knn_top1": 80.0,
        "fewshot_top1": None,
        "final_loss": 3.0,
        "wall_seconds": 5.0,
        "status": "ok",
        "reason": None,
        "log_path": None,
        "config_hash": "h0",
        "cell_hash": "c0",
        "git_commit": None,
        "experiment": "test",
        "world_size": 1,
        "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:01:00+00:00",
        "run_dir": "",
    }
    rec.update(kw)
    return rec


def write_run(d: Path, metrics: list[dict] | None = None, **kw: object) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "results.json").write_text(json.dumps(result(run_dir=str(d), **kw)))
    if metrics is not None:
        (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return d


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    s = tmp_path / "multirun" / "exp" / "2026-01-01"
    curve = [
        {"epoch": 1, "step": 5, "loss": 4.0, "lr": 0.1},
        {"epoch": 2, "step": 10, "loss": 3.0, "lr": 0.1},
    ]
    write_run(s / "0_a", curve, config_hash="a", seed=0, linear_top1=91.0)
    write_run(s / "1_b", curve, config_hash="b", seed=1, linear_top1=93.0)
    # config c: an old ok run, a newer ok re-run (kept), and a newest failed attempt
    write_run(
        s / "2_c_old",
        config_hash="c",
        seed=2,
        linear_top1=10.0,
        finished_at="2026-01-01T00:01:00+00:00",
    )
    write_run(
        s / "2_c_new",
        curve,
        config_hash="c",
        seed=2,
        linear_top1=95.0,
        finished_at="2026-01-02T00:00:00+00:00",
    )
    write_run(
        s / "2_c_fail",
        config_hash="c",
        seed=2,
        status="failed",
        reason="RuntimeError: loss is NaN",
        linear_top1=None,
        finished_at="2026-01-03T00:00:00+00:00",
    )
    write_run(s / "3_failed", config_hash="f", status="failed", reason="OOM", linear_top1=None)
    write_run(
        s / "4_running", config_hash="r", status="running", linear_top1=None, finished_at=None
    )
    (s / "5_truncated").mkdir()
    (s / "5_truncated" / "results.json").write_text('{"method": "npair", "mix"')
    (s / "6_empty").mkdir()
    (s / "6_empty" / "results.json").write_text("")
    (s / "7_list").mkdir()
    (s / "7_list" / "results.json").write_text("[1, 2]")
    (s / "8_nokeys").mkdir()
    (s / "8_nokeys" / "results.json").write_text(json.dumps({"method": "npair", "status": "ok"}))
    write_run(s / "9_badstatus", config_hash="x", status="exploded")
    write_run(s / "10_nan", config_hash="n", linear_top1=float("nan"))
    (s / "11_not_a_run").mkdir()  # a directory without results.json is just walked past
    (s / ".hydra").mkdir()
    (s / ".hydra" / "results.json").write_text("not walked into")
    return tmp_path / "multirun"


def issues_of(c, kind: str) -> set[str]:
    return {Path(p).name for p in c.issues.loc[c.issues["kind"] == kind, "path"]}


def test_collect_keeps_one_row_per_config_and_reports_the_rest(sweep: Path) -> None:
    c = collect([sweep])
    assert c.n_files == 13  # .hydra is not entered
    # configs a, b, c, f, r, n (x has an unknown status, the rest are corrupt)
    assert sorted(c.runs["config_hash"]) == ["a", "b", "c", "f", "n", "r"]
    kept = dict(zip(c.runs["config_hash"], c.runs["path"].map(lambda p: Path(p).name)))
    assert kept["c"] == "2_c_new"  # newest ok run, not the newer failed attempt
    assert c.runs.set_index("config_hash").loc["c", "n_attempts"] == 3
    assert c.runs.set_index("config_hash").loc["c", "linear_top1"] == 95.0
    assert sorted(c.ok["config_hash"]) == ["a", "b", "c", "n"]
    assert issues_of(c, "corrupt") == {
        "5_truncated",
        "6_empty",
        "7_list",
        "8_nokeys",
        "9_badstatus",
    }
    assert issues_of(c, "duplicate") == {"2_c_old", "2_c_fail"}
    assert issues_of(c, "failed") == {"3_failed"}
    assert issues_of(c, "running") == {"4_running"}
    assert issues_of(c, "warning") == {"10_nan"}
    detail = c.issues.set_index(c.issues["path"].map(lambda p: Path(p).name))["detail"]
    assert "empty" in detail["6_empty"]
    assert "lacks" in detail["8_nokeys"] and "config_hash" in detail["8_nokeys"]
    assert "OOM" in detail["3_failed"]
    assert math.isnan(c.runs.set_index("config_hash").loc["n", "linear_top1"])
    assert "4 ok" in c.describe()


def test_failed_config_keeps_its_newest_attempt(tmp_path: Path) -> None:
    write_run(
        tmp_path / "a1",
        config_hash="z",
        status="failed",
        reason="first",
        started_at="2026-01-01T00:00:00+00:00",
    )
    write_run(
        tmp_path / "a2",
        config_hash="z",
        status="failed",
        reason="second",
        started_at="2026-01-02T00:00:00+00:00",
    )
    c = collect([tmp_path])
    assert list(c.runs["reason"]) == ["second"]
    assert c.ok.empty


def test_curves_of_kept_runs_with_corrupt_lines(tmp_path: Path) -> None:
    d = write_run(
        tmp_path / "r",
        [{"epoch": 1, "step": 3, "loss": 2.5, "lr": 0.1, "knn_top1": 50.0}],
        config_hash="q",
    )
    with open(d / "metrics.jsonl", "a") as f:
        f.write(
            '{"epoch": 2, "step": 6, "loss": 2.0, "lr": 0.1}\n{"epoch": 3, "lo'
        )  # truncated last line
    c = collect([tmp_path])
    assert list(c.curves["epoch"]) == [1, 2]
    assert list(c.curves["loss"]) == [2.5, 2.0]
    assert c.curves["knn_top1"].iloc[0] == 50.0 and math.isnan(c.curves["knn_top1"].iloc[1])
    assert set(c.curves["config_hash"]) == {"q"}
    assert "1 corrupt line" in c.issues.loc[c.issues["kind"] == "warning", "detail"].iloc[0]


def test_write_and_reload_parquet_and_csv(sweep: Path, tmp_path: Path) -> None:
    c = collect([sweep])
    out = tmp_path / "col"
    paths = write(c, out)
    assert {p.name for p in paths} == {
        "runs.parquet",
        "runs.csv",
        "curves.parquet",
        "curves.csv",
        "issues.csv",
    }
    for name in ("runs.parquet", "runs.csv"):
        back = load_runs(out / name)
        assert sorted(back["config_hash"]) == sorted(c.runs["config_hash"])
        assert back.set_index("config_hash").loc["c", "linear_top1"] == 95.0
    assert len(pd.read_csv(out / "issues.csv")) == len(c.issues)
    assert sorted(load_runs(sweep)["config_hash"]) == sorted(c.runs["config_hash"])  # a dir


def test_cli_collect(sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["collect", str(sweep), "--out", str(out), "--no-curves"]) == 0
    text = capsys.readouterr().out
    assert "13 results.json files -> 6 configs (4 ok)" in text
    assert "corrupt" in text and "6_empty" in text
    assert (out / "runs.parquet").is_file() and not (out / "curves.parquet").exists()


def test_cli_collect_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no such run directory"):
        main(["collect", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])


def test_collect_empty_dir(tmp_path: Path) -> None:
    c = collect([tmp_path])
    assert c.runs.empty and c.issues.empty and c.n_files == 0
    write(c, tmp_path / "o")
    assert load_runs(tmp_path / "o" / "runs.parquet").empty


def test_collect_real_run_dir_layout(tmp_path: Path) -> None:
    """A results.json path itself is accepted, as written by imix_sweeps.run (indent, sorted)."""
    d = tmp_path / "run"
    d.mkdir()
    (d / "results.json").write_text(
        json.dumps(result(config_hash="real"), indent=1, sort_keys=True) + "\n"
    )
    c = collect([d / "results.json"])
    assert list(c.runs["config_hash"]) == ["real"]


def test_benchmark_tree_collects_without_crashing(tmp_path: Path) -> None:
    """The benchmark's generator (failed, running, truncated, re-runs) at a small size."""
    import importlib.util

    from analysis import REPO_ROOT

    spec = importlib.util.spec_from_file_location(
        "collect_speed", REPO_ROOT / "benchmarks" / "collect_speed.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.generate(tmp_path, 300, epochs=3, seed=1)
    c = collect([tmp_path])
    assert c.n_files == 300
    kinds = c.issues["kind"].value_counts()
    n_corrupt = int(kinds.get("corrupt", 0))
    assert len(c.runs) + n_corrupt + int(kinds.get("duplicate", 0)) == 300
    assert c.runs["config_hash"].is_unique
    assert len(c.curves) == 3 * len(c.runs)
