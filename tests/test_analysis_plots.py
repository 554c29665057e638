"""Plots are written (PNG + PDF, non-empty) and the i-Mix gain is computed as hand-computed."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from analysis.cli import main
from analysis.collect import collect
from analysis.plots import gain_table, plot_all
from tests.test_analysis_collect import write_run

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    i = 0
    # i-Mix gain by backbone: small_cnn (none 80, 82 | imixup 85, 85) -> +4.0; resnet18 (90 | 91) -> +1.0
    for bb, x, vals in (
        ("small_cnn", "none", [80.0, 82.0]),
        ("small_cnn", "imixup", [85.0, 85.0]),
        ("resnet18", "none", [90.0]),
        ("resnet18", "imixup", [91.0]),
    ):
        for seed, v in enumerate(vals):
            curve = [
                {"epoch": e, "step": 5 * e, "loss": 5.0 - e + seed, "lr": 0.1, "knn_top1": 50.0 + e}
                for e in (1, 2, 3)
            ]
            write_run(
                root / f"{i}",
                curve,
                config_hash=f"g{i}",
                backbone=bb,
                mix=x,
                seed=seed,
                linear_top1=v,
            )
            i += 1
    # top-1 vs epochs for one group, plus a SwAV-CIFAR paper cell (cifar10, swav, 200 ep, batch 256)
    for ep, v in ((2, 70.0), (4, 75.0)):
        write_run(root / f"{i}", config_hash=f"e{i}", epochs=ep, method="byol", linear_top1=v)
        i += 1
    write_run(
        root / f"{i}",
        config_hash="swav",
        domain="cifar10",
        backbone="resnet18",
        method="swav",
        epochs=200,
        batch_size=256,
        linear_top1=80.5,
    )
    return root


def test_gain_table_hand_computed(runs_dir: Path) -> None:
    g = gain_table(collect([runs_dir], curves=False).runs, "backbone").set_index("backbone")
    assert g.loc["small_cnn", "gain"] == pytest.approx(85.0 - 81.0)
    # combined std error: sqrt(s_none^2/2 + s_mix^2/2), s_none = stdev(80, 82) = sqrt(2), s_mix = 0
    assert g.loc["small_cnn", "err"] == pytest.approx(math.sqrt(2.0 / 2))
    assert g.loc["resnet18", "gain"] == pytest.approx(1.0) and g.loc["resnet18", "err"] == 0.0
    assert set(g.index) == {"small_cnn", "resnet18"}


def test_plot_all_writes_nonempty_png_and_pdf(runs_dir: Path, tmp_path: Path) -> None:
    c = collect([runs_dir])
    out = tmp_path / "fig"
    written = plot_all(c.runs, c.curves, out, fmt=("png",))
    written += plot_all(c.runs, c.curves, out, kinds=["gain"], fmt=("pdf",))
    names = {p.name for p in written}
    stems = (
        "epochs_unmix_fig_swav_cifar_paper",
        "epochs_unmix_repo_unmix_swav_for_cifar",
        "epochs_runs",
        "curves_digits",
        "gain_backbone",
    )
    assert names == {f"{s}.png" for s in stems} | {"gain_backbone.pdf"}
    for p in written:
        data = p.read_bytes()
        assert len(data) > 5000, p
        assert data.startswith(PNG if p.suffix == ".png" else b"%PDF"), p


def test_plot_nothing_to_plot(tmp_path: Path) -> None:
    empty = collect([tmp_path], curves=True)
    written = plot_all(empty.runs, empty.curves, tmp_path / "fig", kinds=["curves", "gain"])
    assert written == []


def test_cli_plot(runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert (
        main(
            [
                "plot",
                "--runs",
                str(runs_dir),
                "--out",
                str(out),
                "--kind",
                "curves",
                "gain",
                "--format",
                "png",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["curves_digits.png", "gain_backbone.png"]
    assert "wrote" in capsys.readouterr().out


def test_learning_curves_cap_lines_facet_and_filter(tmp_path: Path, monkeypatch) -> None:
    """30 (method x epochs) groups: at most --max-legend lines per panel, one figure per facet."""
    import analysis.plots as plots

    root = tmp_path / "many"
    i = 0
    for dom in ("digits", "digits_tab"):
        for m in ("npair", "mocov2", "byol"):
            for ep in range(1, 6):
                n_seeds = 2 if (m == "npair" and ep <= 2) else 1  # the most-run groups
                for seed in range(n_seeds):
                    curve = [{"epoch": e, "loss": 3.0 - 0.1 * e} for e in (1, 2)]
                    write_run(root / f"{i}", curve, config_hash=f"m{i}", domain=dom, method=m,
                              epochs=ep, seed=seed)  # fmt: skip
                    i += 1
    c = collect([root])
    figs: dict[str, object] = {}

    def keep(fig, out, name, fmt):
        figs[name] = fig
        return [out / f"{name}.png"]

    monkeypatch.setattr(plots, "_save", keep)
    plots.plot_curves(c.curves, c.runs, tmp_path / "f", max_legend=4)
    assert set(figs) == {"curves_digits", "curves_digits_tab"}
    fig = figs["curves_digits"]
    labels = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]  # type: ignore[attr-defined]
    assert len(labels) == 4 and sum("N-pair" in x for x in labels) == 2
    assert "11 more lines not shown" in fig._suptitle.get_text()  # type: ignore[attr-defined]
    figs.clear()
    plots.plot_curves(c.curves, c.runs, tmp_path / "f", facet="method", max_legend=0)
    assert set(figs) == {"curves_method_npair", "curves_method_mocov2", "curves_method_byol"}
    monkeypatch.undo()
    assert main(["plot", "--runs", str(root), "--where", "method=byol", "domain=digits",
                 "--kind", "curves", "--out", str(tmp_path / "g"), "--format", "png"]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["curves_digits.png"]
