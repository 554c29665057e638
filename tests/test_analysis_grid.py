"""Tables of one's own sweeps (``imix-analysis table --rows/--cols``), the end-of-sweep table,
and the command line's robustness (unknown names, closed pipes, missing dirs, help)."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from analysis import REPO_ROOT
from analysis.cli import main, parser
from analysis.collect import collect
from analysis.grid import filter_runs, grid_table, parse_where, sweep_axes
from analysis.hydra_callback import SweepTable
from tests.test_analysis_collect import write_run

VALUES = {  # (method, mix) -> linear top-1 per seed
    ("npair", "none"): [90.0, 92.0, 91.0],
    ("npair", "imixup"): [93.0, 95.0, 94.0],
    ("mocov2", "none"): [80.0, 82.0],
    ("mocov2", "imixup"): [85.0, 85.0],
}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    d = tmp_path / "multirun" / "mine"
    i = 0
    for (m, x), vs in VALUES.items():
        for seed, v in enumerate(vs):
            write_run(
                d / f"method={m},mix={x},seed={seed}",
                config_hash=f"h{i}",
                cell_hash=f"{m}-{x}",
                method=m,
                mix=x,
                seed=seed,
                linear_top1=v,
                knn_top1=v - 10,
            )
            i += 1
    for seed in (0, 1):  # a cell whose runs all failed
        write_run(
            d / f"method=byol,mix=imixup,seed={seed}",
            config_hash=f"f{seed}",
            cell_hash="byol-imixup",
            method="byol",
            mix="imixup",
            seed=seed,
            status="failed",
            reason="NonFiniteLossError: loss is not finite at epoch 3",
            linear_top1=None,
        )
    write_run(
        d / "method=byol,mix=none,seed=0",
        config_hash="b0",
        cell_hash="byol-none",
        method="byol",
        mix="none",
        linear_top1=70.0,
    )
    return d


def test_grid_table_mean_std_n_delta_and_failed_cells(sweep: Path) -> None:
    runs = collect([sweep], curves=False).runs
    assert sweep_axes(runs) == (["method"], ["mix"])
    t = grid_table(runs, ["method"], ["mix"])
    cells = {(r[0], c[0]): cell for (r, c), cell in t.cells.items()}
    a, b = cells[("npair", "none")], cells[("npair", "imixup")]
    assert (a.n, b.n) == (3, 3)
    assert a.mean == pytest.approx(91.0) and a.std == pytest.approx(statistics.stdev([90, 92, 91]))
    assert b.delta == pytest.approx(3.0) and a.delta is None
    assert cells[("mocov2", "imixup")].delta == pytest.approx(4.0)
    failed = cells[("byol", "imixup")]
    assert failed.status == "failed" and failed.n_failed == 2 and failed.delta is None
    md = t.markdown()
    rows = {ln.split(" | ")[0].strip("| "): ln for ln in md.splitlines() if ln.startswith("| ")}
    assert rows["method"] == "| method | none | i-Mix | Δ |"
    assert rows["N-pair"] == "| N-pair | 91.0 ± 1.0 (3) | 94.0 ± 1.0 (3) | +3.0 |"
    assert rows["MoCo v2"] == "| MoCo v2 | 81.0 ± 1.4 (2) | 85.0 ± 0.0 (2) | +4.0 |"
    assert rows["BYOL"].startswith("| BYOL | 70.0 (1) | failed (2): NonFiniteLossError: loss is")
    assert list(rows)[1:] == ["N-pair", "MoCo v2", "BYOL"]  # the config tree's order
    csv = pd.read_csv(pd.io.common.StringIO(t.csv()))
    row = csv[(csv["method"] == "npair") & (csv["mix"] == "imixup")].iloc[0]
    assert row["n"] == 3 and row["delta"] == pytest.approx(3.0) and row["status"] == "ok"
    byol = csv[(csv["method"] == "byol") & (csv["mix"] == "imixup")].iloc[0]
    assert byol["status"] == "failed" and "NonFiniteLossError" in byol["reason"]
    tex = t.latex(caption="Mine", label="tab:mine")
    assert "\\textbf{94.0 $\\pm$ 1.0}" in tex and "91.0 $\\pm$ 1.0 &" in tex
    assert "\\caption{Mine}" in tex and "\\label{tab:mine}" in tex and "$\\Delta$" in tex


def test_where_filters_and_metric(sweep: Path) -> None:
    runs = collect([sweep], curves=False).runs
    where = parse_where(["seed=0,1", "method=npair"])
    assert where == {"seed": ["0", "1"], "method": ["npair"]}
    assert len(filter_runs(runs, where)) == 4
    t = grid_table(runs, ["method"], ["mix"], metric="knn_top1", where=where)
    assert {k[0] for k in t.row_keys} == {"npair"}
    assert t.cells[(("npair",), ("none",))].mean == pytest.approx(81.0)
    with pytest.raises(ValueError, match="no such run field"):
        filter_runs(runs, {"colour": ["red"]})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_where(["seed"])


def test_cli_table_of_own_runs_writes_md_tex_csv(sweep: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "t"
    rc = main(
        ["table", "--runs", str(sweep), "--rows", "method", "--cols", "mix", "--out", str(out)]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| N-pair | 91.0 ± 1.0 (3) | 94.0 ± 1.0 (3) | +3.0 |" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "method_by_mix_linear_top1.csv",
        "method_by_mix_linear_top1.md",
        "method_by_mix_linear_top1.tex",
    ]
    assert main(["table", "--runs", str(sweep), "--rows", "method", "--out", ""]) == 0
    assert "| MoCo v2 |" in capsys.readouterr().out  # --cols defaults to the swept mix
    assert main(["table", "--runs", str(sweep), "--out", ""]) == 0  # both from the sweep
    assert "| method | none | i-Mix | Δ |" in capsys.readouterr().out
    assert main(["table", "--runs", str(sweep), "--rows", "method", "--where", "seed=9"]) == 1
    with pytest.raises(SystemExit, match="no run field 'colour'"):
        main(["table", "--runs", str(sweep), "--rows", "colour", "--out", ""])


def test_sweep_end_table_over_the_swept_axes(sweep: Path) -> None:
    SweepTable().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    md = (sweep / "summary.md").read_text()
    assert "linear_top1 (%)" in md and "knn_top1 (%)" in md
    assert "| N-pair | 91.0 ± 1.0 (3) | 94.0 ± 1.0 (3) | +3.0 |" in md
    assert "| N-pair | 81.0 ± 1.0 (3) | 84.0 ± 1.0 (3) | +3.0 |" in md  # kNN
    assert "failed: method=byol,mix=imixup,seed=0: NonFiniteLossError" in md
    # the callback is wired into every sweep, and the demo keeps its own layout in that slot
    base = OmegaConf.load(REPO_ROOT / "conf" / "config.yaml")
    assert base.hydra.callbacks.summary._target_ == "analysis.hydra_callback.SweepTable"
    demo = OmegaConf.load(REPO_ROOT / "conf" / "sweep" / "demo.yaml")
    assert demo.hydra.callbacks.summary._target_ == "analysis.hydra_callback.SummaryTable"


def test_sweep_axes_with_two_varying_fields_and_no_mix(tmp_path: Path) -> None:
    for i, (d, e) in enumerate([("digits", 2), ("digits", 4), ("digits_tab", 2)]):
        write_run(tmp_path / f"r{i}", config_hash=f"x{i}", domain=d, epochs=e)
    runs = collect([tmp_path], curves=False).runs
    assert sweep_axes(runs) == (["domain"], ["epochs"])


def test_fields_that_follow_a_swept_one_are_not_axes(tmp_path: Path) -> None:
    """alpha follows mix (null without a mix), lr follows the batch size: neither is an axis."""
    i = 0
    for mix, alpha in (("none", None), ("imixup", 1.0)):
        for bs in (128, 256):
            for seed in (0, 1):
                write_run(tmp_path / f"r{i}", config_hash=f"a{i}", mix=mix, alpha=alpha,
                          batch_size=bs, lr=0.125 * bs / 256, seed=seed)  # fmt: skip
                i += 1
    runs = collect([tmp_path], curves=False).runs
    assert sweep_axes(runs) == (["batch_size"], ["mix"])
    md = grid_table(runs, *sweep_axes(runs)).markdown()
    assert "| bs 128 | 90.0 ± 0.0 (2) | 90.0 ± 0.0 (2) | +0.0 |" in md and "nan" not in md


# ----------------------------------------------------------------------------- robustness
def test_unknown_paper_or_table_exits_non_zero_with_the_valid_names(capsys) -> None:
    with pytest.raises(SystemExit, match=r"unknown paper 'foo'; papers: cmc, imix, unmix") as e:
        main(["table", "--paper", "foo", "--out", ""])
    assert e.value.code != 0
    assert main(["table", "--paper", "IMIX", "--table", "table  1", "--out", ""]) == 0
    assert "i-Mix Table 1" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"unknown paper 'bar'; papers: cmc, imix, unmix"):
        main(["summary", "--paper", "bar", "--out", ""])
    assert main(["summary", "--paper", "UnMix", "--out", ""]) == 0
    assert "| unmix |" in capsys.readouterr().out


def test_help_lists_defaults_and_choices(capsys) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["table", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{linear_top1,knn_top1,fewshot_top1}" in text
    assert "(default: linear_top1)" in text and "(default: results/tables)" in text
    sub = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, p in sub.items():
        for act in p._actions:
            if act.dest != "help":
                assert act.help, f"{name} {act.option_strings or act.dest} has no help"


def test_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    code = "import sys; from analysis.cli import main; sys.exit(main(['list']))"
    proc = subprocess.run(
        f'{sys.executable} -c "{code}" | head -1',
        shell=True,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.startswith("| paper | table |")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_missing_dir_is_a_warning(sweep: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "c"
    assert main(["collect", str(tmp_path / "nope"), str(sweep), "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert "warning:" in cap.err and "nope" in cap.err
    assert "13 results.json files -> 13 configs (11 ok)" in cap.out
    issues = pd.read_csv(out / "issues.csv")
    assert "missing" in set(issues["kind"])


def test_outputs_default_to_the_working_directory(sweep: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["collect", str(sweep), "--no-curves"]) == 0
    assert (tmp_path / "results" / "collected" / "runs.parquet").is_file()
    assert main(["table", "--runs", str(sweep), "--rows", "method", "--cols", "mix"]) == 0
    assert (tmp_path / "results" / "tables" / "method_by_mix_linear_top1.md").is_file()
