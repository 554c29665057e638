"""Reported-table layout, mean ± std against hand-computed values, summary verdicts, mapping."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from analysis import REPORTED_CSV
from analysis.cli import main
from analysis.collect import collect
from analysis.hydra_callback import SummaryTable
from analysis.reported import load_cells, load_csv, variant_of
from analysis.tables import demo_table, mean_std, render, summary, table_cells, verdict
from tests.test_analysis_collect import write_run

C10 = {"domain": "cifar10", "backbone": "resnet50", "batch_size": 256, "eval": "linear"}


def runs_from(tmp: Path, specs: list[dict]) -> pd.DataFrame:
    for i, kw in enumerate(specs):
        kw.setdefault("config_hash", f"h{i}")
        write_run(tmp / f"run{i}", **kw)
    return collect([tmp], curves=False).runs


@pytest.fixture
def imix_runs(tmp_path: Path) -> pd.DataFrame:
    npair = {**C10, "method": "npair"}
    return runs_from(
        tmp_path,
        [
            # cifar10 / N-pair / none (2000 epochs): 93.0, 93.4, 93.5 -> 93.3 ± 0.26 (3)
            {**npair, "mix": "none", "epochs": 2000, "seed": 0, "linear_top1": 93.0},
            {**npair, "mix": "none", "epochs": 2000, "seed": 1, "linear_top1": 93.4},
            {**npair, "mix": "none", "epochs": 2000, "seed": 2, "linear_top1": 93.5},
            # not in the cell: wrong epochs, failed, pinv protocol, other batch size
            {**npair, "mix": "none", "epochs": 1000, "linear_top1": 10.0},
            {**npair, "mix": "none", "epochs": 2000, "status": "failed", "linear_top1": None},
            {**npair, "mix": "none", "epochs": 2000, "eval": "pinv", "linear_top1": 11.0},
            {**npair, "mix": "none", "epochs": 2000, "batch_size": 512, "linear_top1": 12.0},
            # cifar10 / N-pair + i-Mix (4000 epochs): 95.0, 94.8 -> 94.9 ± 0.14, below 95.6 ± 0.2
            {**npair, "mix": "imixup", "epochs": 4000, "seed": 0, "linear_top1": 95.0},
            {**npair, "mix": "imixup", "epochs": 4000, "seed": 1, "linear_top1": 94.8},
            # covtype / N-pair + i-Mix, mlp5, batch 512, 500 epochs: one run, above 72.1 ± 0.2
            {
                "domain": "covtype",
                "backbone": "mlp5",
                "batch_size": 512,
                "method": "npair",
                "mix": "imixup",
                "epochs": 500,
                "linear_top1": 73.0,
            },
            # cifar10 / MoCo v2 (no reported number): 1000 epochs
            {**C10, "method": "mocov2", "mix": "none", "epochs": 1000, "linear_top1": 90.0},
        ],
    )


def test_mean_std_matches_statistics() -> None:
    xs = [93.0, 93.4, 93.5]
    m, s, n = mean_std(xs)
    assert (
        n == 3
        and m == pytest.approx(statistics.mean(xs))
        and s == pytest.approx(statistics.stdev(xs))
    )
    assert mean_std([70.0]) == (70.0, None, 1)
    assert mean_std([float("nan")]) == (None, None, 0)


def test_imix_table1_layout_and_cells(imix_runs: pd.DataFrame) -> None:
    t = render(imix_runs, "imix", "Table 1")
    assert list(t.layout.index) == ["CIFAR-10", "CIFAR-100", "Speech Commands", "CovType"]
    assert list(t.layout.columns) == [
        "N-pair",
        "N-pair + i-Mix",
        "MoCo v2",
        "MoCo v2 + i-Mix",
        "BYOL",
        "BYOL + i-Mix",
    ]
    sd = statistics.stdev([93.0, 93.4, 93.5])  # 0.2646 -> "0.3"
    assert f"{sd:.1f}" == "0.3"
    assert t.layout.loc["CIFAR-10", "N-pair"] == "93.3 ± 0.3 (3) | 93.3 ± 0.1 | +0.0"
    assert t.layout.loc["CIFAR-10", "N-pair + i-Mix"] == "94.9 ± 0.1 (2) | 95.6 ± 0.2 | -0.7"
    assert t.layout.loc["CovType", "N-pair + i-Mix"] == "73.0 (1) | 72.1 ± 0.2 | +0.9"
    assert t.layout.loc["CIFAR-10", "MoCo v2"] == "90.0 (1) | –"
    assert t.layout.loc["CIFAR-100", "N-pair"].startswith("missing [m")
    md = t.markdown()
    tag = t.layout.loc["CIFAR-100", "N-pair"].split("[")[1].rstrip("] |").split("]")[0]
    assert (
        f"[{tag}] CIFAR-100 / N-pair: `imix-sweeps --multirun +sweep=imix_table1 +cell=imix_t1_cifar100_npair_none`"
        in md
    )
    assert "93.3 ± 0.3 (3) \\| 93.3 ± 0.1 \\| +0.0" in md  # pipes escaped inside markdown cells
    tex = t.latex()
    assert "\\toprule" in tex and "93.3 $\\pm$ 0.3 (3) / 93.3 $\\pm$ 0.1 / +0.0" in tex
    assert tex.count("\\\\") == 5  # header + 4 domains


def test_verdicts(imix_runs: pd.DataFrame) -> None:
    df = summary(imix_runs, paper="imix")
    v = {(r.domain, r.mix): r.verdict for r in df.itertuples() if r.method == "npair"}
    assert v[("cifar10", "none")] == "reproduced"  # |93.3 - 93.3| <= 0.1
    assert v[("cifar10", "imixup")] == "below"  # 94.9 < 95.6 - 0.2
    assert v[("covtype", "imixup")] == "above"  # 73.0 > 72.1 + 0.2
    assert v[("covtype", "none")] == "not run"
    assert len(df) == 8  # reported cells only (the MoCo v2 / BYOL grid has no reported values)
    # a wider band (3 x std) turns "below" by 0.7 into... still below (band 0.6), 4 x -> reproduced
    assert (
        summary(imix_runs, paper="imix", std_k=4.0)
        .set_index(["domain", "mix"])
        .loc[("cifar10", "imixup"), "verdict"]
        == "reproduced"
    )


def test_tolerance_applies_where_no_std_is_printed(tmp_path: Path) -> None:
    runs = runs_from(
        tmp_path,
        [
            {
                "domain": "imagenet",
                "backbone": "resnet50_imagenet",
                "batch_size": 256,
                "method": "moco",
                "mix": "none",
                "epochs": 200,
                "linear_top1": 60.9,
            }
        ],
    )
    t = render(runs, "unmix", "Table 1")
    r = next(r for r in t.results if r.cell.method == "moco")
    assert r.mean == 60.9 and r.cell.top1 == 60.6 and r.cell.std is None
    assert verdict(r, tol=0.5) == "reproduced"
    assert verdict(r, tol=0.2) == "above"
    pirl = next(r for r in t.results if r.cell.method == "pirl")
    dagger = next(r for r in t.results if r.cell.variant.label == "†")
    assert verdict(pirl) == "no config" and verdict(dagger) == "no config"
    assert "no config | 69.8" in t.layout.loc["MoCo v2 + Un-Mix † 200 ep", "top-1"]


def test_knn_and_symmetric_variants(tmp_path: Path) -> None:
    base = {
        "domain": "cifar10",
        "backbone": "resnet18",
        "batch_size": 512,
        "method": "moco",
        "epochs": 1000,
        "eval": "linear",
        "queue_size": 4096,
    }
    runs = runs_from(
        tmp_path,
        [
            {**base, "mix": "none", "symmetric": True, "knn_top1": 90.5, "linear_top1": 1.0},
            {**base, "mix": "none", "symmetric": False, "knn_top1": 89.0, "linear_top1": 1.0},
            # a run from before results.json recorded `symmetric`: counts as the default (asym)
            {**base, "mix": "unmix", "symmetric": None, "knn_top1": 91.3},
        ],
    )
    t = render(runs, "unmix", "repo:CIFAR-demo")
    assert list(t.layout.index) == ["asym", "sym"]
    assert list(t.layout.columns) == [
        "CIFAR-10",
        "CIFAR-10 + Un-Mix",
        "CIFAR-100",
        "CIFAR-100 + Un-Mix",
    ]
    assert t.layout.loc["sym", "CIFAR-10"] == "90.5 (1) | 90.49 | +0.0"  # the kNN value, not linear
    assert t.layout.loc["asym", "CIFAR-10"] == "89.0 (1) | 89.11 | -0.1"
    assert t.layout.loc["asym", "CIFAR-10 + Un-Mix"].startswith("91.3 (1)")
    assert t.layout.loc["sym", "CIFAR-10 + Un-Mix"].startswith("missing")
    cmd = next(
        r.command
        for r in t.results
        if r.cell.variant.label == "sym" and r.cell.mix == "unmix" and r.cell.domain == "cifar10"
    )
    assert (
        cmd
        == "imix-sweeps --multirun +sweep=unmix_cifar_demo domain=cifar10 mix=unmix method.model.symmetric=true"
    )


def test_cmc_negatives_and_mapping(tmp_path: Path) -> None:
    base = {
        "domain": "imagenet",
        "backbone": "resnet50_imagenet",
        "batch_size": 128,
        "epochs": 200,
        "mix": "none",
    }
    runs = runs_from(
        tmp_path,
        [
            {
                **base,
                "method": "insdis",
                "queue_size": 16384,
                "loss": "softmax",
                "linear_top1": 58.4,
            },
            {**base, "method": "insdis", "queue_size": 4096, "loss": "nce", "linear_top1": 56.0},
            {
                **base,
                "method": "insdis",
                "queue_size": 4096,
                "loss": "softmax",
                "linear_top1": 57.0,
            },
            {**base, "method": "moco", "queue_size": 16384, "loss": "softmax", "linear_top1": 59.0},
            {
                **base,
                "method": "insdis",
                "queue_size": None,
                "linear_top1": 1.0,
            },  # unknown K: no cell
        ],
    )
    t = render(runs, "cmc", "repo:README ImageNet")
    got = {(r.cell.method, r.cell.variant.label): (r.n, r.mean) for r in t.results}
    assert got == {
        ("insdis", "NCE, K=4096"): (1, 56.0),  # the NCE run fills the NCE row only
        ("insdis", "softmax, K=4096"): (1, 57.0),
        ("insdis", "softmax, K=16384"): (1, 58.4),
        ("moco", "softmax, K=16384"): (1, 59.0),
    }
    nce = next(r for r in t.results if r.cell.variant.label.startswith("NCE"))
    assert nce.cell.runnable and dict(nce.cell.variant.match) == {"queue_size": 4096, "loss": "nce"}
    cells = {
        (c.table, c.reported_backbone or c.backbone, c.method): c
        for c in load_cells()
        if c.paper == "cmc"
    }
    half = cells[("repo:README ImageNet-100", "2xresnet50half", "cmc")]
    assert half.backbone == "resnet50_imagenet_half" and half.runnable
    assert not cells[("paper (table id unknown)", "resnet50x2", "cmc")].runnable
    assert "epochs" in (cells[("paper (table id unknown)", "resnet50", "cmc")].why_not or "")


def test_reported_csv_repair_and_errors(tmp_path: Path) -> None:
    df = load_csv(REPORTED_CSV)
    assert len(df) == 75
    assert df.attrs["repaired_lines"] == []  # the committed data is well formed
    imix = df[df["paper"] == "imix"]
    assert set(imix["source"].str[:11]) == {"i-Mix paper"}
    # a row with an unquoted comma in `notes` is joined back, its source intact
    lines = REPORTED_CSV.read_text().splitlines()
    row = next(i for i, ln in enumerate(lines) if ln.startswith("imix,"))
    lines[row] = lines[row].replace("paper text; not yet", "paper text, not yet")
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join(lines) + "\n")
    fixed = load_csv(broken)
    assert fixed.attrs["repaired_lines"] == [row + 1]
    assert fixed["notes"].str.contains("paper text, not yet re-read").sum() == 1
    assert fixed["source"].tolist() == df["source"].tolist()
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(pd.Index(df.columns)) + "\nimix,Table 1,cifar10\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: 3 fields"):
        load_csv(bad)
    (tmp_path / "nohead.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing column"):
        load_csv(tmp_path / "nohead.csv")


def test_variant_parsing() -> None:
    assert variant_of("symmetric loss; repo").match == (("symmetric", True),)
    assert variant_of("asymmetric loss; repo").match == (("symmetric", False),)
    v = variant_of("loss=Softmax-CE; negatives=16384; README")
    assert v.match == (("queue_size", 16384), ("loss", "softmax")) and v.why_not is None
    nce = variant_of("loss=NCE; negatives=4096")
    assert nce.match == (("queue_size", 4096), ("loss", "nce")) and nce.why_not is None
    assert variant_of("Un-Mix row marked dagger = multi-scale").label == "†"
    assert variant_of("plain row").label == ""


def test_every_reported_row_is_a_cell_of_its_table() -> None:
    cells = load_cells()
    assert len(cells) == 75
    for c in cells:
        assert c in table_cells(c.paper, c.table) or any(
            x.key() == c.key() for x in table_cells(c.paper, c.table)
        )
    # i-Mix Table 1 epochs come from run.sh: cifar10 N-pair 2000 / i-Mix 4000
    e = {(c.domain, c.mix): c.epochs for c in cells if c.paper == "imix"}
    assert e[("cifar10", "none")] == 2000 and e[("cifar10", "imixup")] == 4000
    assert e[("cifar100", "none")] == 4000 and e[("covtype", "imixup")] == 500
    with pytest.raises(KeyError, match="known"):
        table_cells("imix", "Table 9")


def test_cli_table_and_summary(
    imix_runs: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs_file = tmp_path / "runs.parquet"
    imix_runs.to_parquet(runs_file, index=False)
    out = tmp_path / "tables"
    assert (
        main(
            [
                "table",
                "--paper",
                "imix",
                "--table",
                "Table 1",
                "--runs",
                str(runs_file),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "93.3 ± 0.3 (3)" in printed
    assert {p.name for p in out.iterdir()} == {
        "imix_table_1.md",
        "imix_table_1.tex",
        "imix_table_1.csv",
        "imix_table_1_paper.tex",
        "imix_table_1_cells.csv",
    }
    paper = (out / "imix_table_1_paper.tex").read_text()
    # ours with std, the reported row under it, caption and label, multicolumn method headers
    assert "\\textbf{94.9 $\\pm$ 0.1}" in paper  # the best of the CIFAR-10 row, in bold
    assert "93.3 $\\pm$ 0.3" in paper and "\\quad reported" in paper
    assert "\\caption{" in paper and "\\label{tab:imix_table_1}" in paper
    assert "(\\%)" in paper and "(%)" not in paper  # a bare % would comment out the rest
    assert "\\multicolumn{2}{c}{N-pair}" in paper and "\\cmidrule(lr){2-3}" in paper
    layout = pd.read_csv(out / "imix_table_1.csv", index_col=0)
    assert layout.shape == (4, 6)
    cells = pd.read_csv(out / "imix_table_1_cells.csv")
    row = cells[
        (cells["domain"] == "cifar10") & (cells["method"] == "npair") & (cells["mix"] == "none")
    ].iloc[0]
    assert row["n"] == 3 and math.isclose(row["ours_mean"], 93.3) and row["verdict"] == "reproduced"
    assert main(["summary", "--runs", str(runs_file), "--out", str(out)]) == 0
    s = pd.read_csv(out / "summary.csv")
    assert len(s) == 75 and (s["verdict"] == "reproduced").sum() == 1
    assert set(s["verdict"]) == {"reproduced", "below", "above", "not run", "no config"}
    md = (out / "summary.md").read_text()
    assert "| no config | PIRL has no method config |" in md
    assert (
        "| not run | `imix-sweeps --multirun +sweep=imix_table1 +cell=imix_t1_covtype_npair_none` |"
        in md
    )
    assert main(["table", "--all", "--runs", str(runs_file), "--out", ""]) == 0
    with pytest.raises(SystemExit, match="unknown table 'Table 7' of imix; tables: 'Table 1'"):
        main(
            [
                "table",
                "--paper",
                "imix",
                "--table",
                "Table 7",
                "--runs",
                str(runs_file),
                "--out",
                "",
            ]
        )


def test_demo_table_and_callback(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    vals = {
        ("npair", "none"): [90.0, 92.0],
        ("npair", "imixup"): [93.0, 95.0],
        ("byol", "none"): [80.0, 80.0],
    }
    i = 0
    for (m, x), vs in vals.items():
        for seed, v in enumerate(vs):
            write_run(
                sweep / f"{i}_{m}_{x}_s{seed}",
                config_hash=f"d{i}",
                method=m,
                mix=x,
                seed=seed,
                linear_top1=v,
                knn_top1=v - 10,
                fewshot_top1=v - 20,
            )
            i += 1
    write_run(
        sweep / "99_broken", config_hash="bad", status="failed", reason="boom", linear_top1=None
    )
    from hydra.experimental.callback import Callback

    cb = SummaryTable()
    assert isinstance(cb, Callback)
    cb.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    md = (sweep / "summary.md").read_text()
    s = statistics.stdev([90.0, 92.0])  # 1.41
    lines = {ln.split(" | ")[0].strip("| "): ln for ln in md.splitlines() if ln.startswith("| ")}
    assert lines["N-pair"] == (
        f"| N-pair | 91.0 ± {s:.1f} (2) | 94.0 ± {s:.1f} (2) | +3.0 | 71.0 ± {s:.1f} (2) | 74.0 ± {s:.1f} (2) | +3.0 "
        f"| 81.0 ± {s:.1f} (2) | 84.0 ± {s:.1f} (2) | +3.0 |"
    )
    assert lines["BYOL"].startswith("| BYOL | 80.0 ± 0.0 (2) | – |  |")
    assert list(lines)[1:] == ["N-pair", "BYOL"] or list(lines)[2:] == ["N-pair", "BYOL"]
    assert "failed: 99_broken: boom" in md
    # a broken sweep dir is logged, never raised
    SummaryTable().on_multirun_end(
        OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "missing")}}})
    )
    assert "No finished runs" in demo_table(pd.DataFrame(columns=["status"]))
