"""Figures (matplotlib, Agg backend; PNG and PDF):

- ``epochs_<table>``: top-1 vs pre-training epochs for the reported tables laid out by epochs
  (Un-Mix's SwAV-CIFAR figure and its repo rerun): reported dashed, ours solid with ± std;
- ``epochs_runs``: top-1 vs epochs of any collected runs that vary the epochs;
- ``curves_<domain>``: learning curves from ``metrics.jsonl`` (loss, and kNN top-1 where the
  monitor ran), mean over seeds with a min-max band, one line per method x mix;
- ``gain_<by>``: i-Mix gain (top-1 with ``imixup`` minus without) against a run column such as
  ``backbone`` (model size), ``epochs`` or a dataset-size column, one line per domain x method.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from analysis import REPORTED_CSV
from analysis.reported import tables
from analysis.tables import mean_std, pretty, render, slug, spec_for

# Parameter counts (millions) that order backbones by model size on the gain plot's x axis.
BACKBONE_SIZE = {
    "small_cnn": 0.1,
    "mlp": 0.2,
    "alexnet": 2.5,
    "mlp5": 10.0,
    "resnet18": 11.2,
    "resnet34": 21.3,
    "resnet50": 23.5,
}
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]
LINESTYLES = ("-", "--", ":", "-.")


def _save(fig, out: Path, name: str, fmt: Sequence[str]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in fmt:
        p = out / f"{name}.{f}"
        fig.savefig(p, dpi=150, bbox_inches="tight")
        paths.append(p)
    plt.close(fig)
    return paths


def _ok(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] == "ok"] if len(runs) else runs


# ----------------------------------------------------------------------------- top-1 vs epochs
def plot_epochs_reported(
    runs: pd.DataFrame,
    out: Path,
    *,
    reported: str | Path = REPORTED_CSV,
    fmt: Sequence[str] = ("png",),
) -> list[Path]:
    """One figure per reported table whose rows are epochs; a panel per dataset."""
    written: list[Path] = []
    for paper, table in tables(reported):
        if spec_for(paper, table).rows != ("epochs",):
            continue
        t = render(runs, paper, table, reported=reported)
        df = pd.DataFrame(
            [
                {
                    "domain": r.cell.domain,
                    "mix": r.cell.mix,
                    "epochs": r.cell.epochs,
                    "reported": r.cell.top1,
                    "ours": r.mean,
                    "std": r.std or 0.0,
                    "n": r.n,
                }
                for r in t.results
            ]
        )
        domains = list(dict.fromkeys(df["domain"]))
        fig, axes = plt.subplots(1, len(domains), figsize=(4.6 * len(domains), 3.6), squeeze=False)
        for ax, dom in zip(axes[0], domains):
            d = df[df["domain"] == dom]
            for i, mix in enumerate(dict.fromkeys(d["mix"])):
                g = d[d["mix"] == mix].sort_values("epochs")
                label = pretty("mix", mix)
                c = COLORS[i % len(COLORS)]
                ax.plot(
                    g["epochs"],
                    g["reported"],
                    "--o",
                    color=c,
                    mfc="white",
                    label=f"{label} (reported)",
                )
                o = g[g["ours"].notna()]
                if len(o):
                    ax.errorbar(
                        o["epochs"],
                        o["ours"],
                        yerr=o["std"],
                        fmt="-s",
                        color=c,
                        capsize=3,
                        label=f"{label} (ours)",
                    )
            ax.set_title(pretty("domain", dom))
            ax.set_xlabel("pre-training epochs")
            ax.set_ylabel("top-1 (%)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(t.spec.title, fontsize=10)
        written += _save(fig, out, f"epochs_{paper}_{slug(table)}", fmt)
    return written


def plot_epochs_runs(
    runs: pd.DataFrame,
    out: Path,
    *,
    metric: str = "linear_top1",
    fmt: Sequence[str] = ("png",),
    max_legend: int = 12,
) -> list[Path]:
    """Top-1 vs epochs for collected (domain, method, mix) groups run at two or more epochs."""
    ok = _ok(runs)
    if ok.empty or ok[metric].notna().sum() == 0:
        return []
    keys = ["domain", "backbone", "method", "mix"]
    groups = [(k, g) for k, g in ok.groupby(keys) if g["epochs"].nunique() > 1]
    if not groups:
        return []
    domains = list(dict.fromkeys(k[0] for k, _ in groups))
    fig, axes = plt.subplots(1, len(domains), figsize=(4.6 * len(domains), 3.6), squeeze=False)
    for ax, dom in zip(axes[0], domains):
        mine, left_out = _cap([x for x in groups if x[0][0] == dom], max_legend)
        if left_out:
            ax.text(0.0, -0.25, f"{left_out} more lines not shown", transform=ax.transAxes)
        for i, (k, g) in enumerate(mine):
            pts = sorted((e, *mean_std(list(gg[metric]))) for e, gg in g.groupby("epochs"))
            pts = [p for p in pts if p[1] is not None]
            if not pts:
                continue
            ax.errorbar(
                [p[0] for p in pts],
                [p[1] for p in pts],
                yerr=[p[2] or 0.0 for p in pts],
                fmt="-o",
                capsize=3,
                color=COLORS[i % len(COLORS)],
                label=f"{pretty('method', k[2])} {('+ ' + pretty('mix', k[3])) if k[3] != 'none' else ''}",
            )
        ax.set_title(f"{pretty('domain', dom)}")
        ax.set_xlabel("pre-training epochs")
        ax.set_ylabel(f"{metric.replace('_top1', '')} top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out, "epochs_runs", fmt)


# ----------------------------------------------------------------------------- learning curves
def _cap(groups: list, max_lines: int) -> tuple[list, int]:
    """The first ``max_lines`` groups (by run count, most first) and how many were left out."""
    if max_lines <= 0 or len(groups) <= max_lines:
        return groups, 0
    ranked = sorted(groups, key=lambda kg: -kg[1]["config_hash"].nunique())
    keep = {id(g) for _, g in ranked[:max_lines]}
    return [kg for kg in groups if id(kg[1]) in keep], len(groups) - max_lines


def plot_curves(
    curves: pd.DataFrame,
    runs: pd.DataFrame,
    out: Path,
    *,
    fmt: Sequence[str] = ("png",),
    facet: str = "domain",
    max_legend: int = 12,
) -> list[Path]:
    """Loss (and kNN top-1) vs epoch, mean over seeds with a min-max band; one figure per value
    of ``facet`` (a runs column), at most ``max_legend`` lines (the most-run ones) per figure."""
    if curves is None or curves.empty or runs.empty:
        return []
    if facet not in runs:
        raise ValueError(f"--facet {facet}: no such run field")
    cols = list(
        dict.fromkeys(["config_hash", "domain", "backbone", "method", "mix", "epochs", facet])
    )
    meta = runs[cols].rename(columns={"epochs": "epochs_run"})
    if facet == "epochs":
        meta["epochs"] = meta["epochs_run"]
    keep = [c for c in ("config_hash", "epoch", "loss", "knn_top1") if c in curves]
    df = curves[keep].merge(meta, on="config_hash", how="inner")
    if df.empty:
        return []
    written: list[Path] = []
    has_knn = "knn_top1" in df and df["knn_top1"].notna().any()
    for dom, d in df.groupby(facet):
        ncol = 2 if has_knn and d["knn_top1"].notna().any() else 1
        fig, axes = plt.subplots(1, ncol, figsize=(5.0 * ncol, 3.6), squeeze=False)
        # colour = method (x backbone x epochs), line style = mix
        colour_keys = list(dict.fromkeys(zip(d["method"], d["backbone"], d["epochs_run"])))
        mixes = list(dict.fromkeys(d["mix"]))
        groups, left_out = _cap(
            list(d.groupby(["backbone", "method", "mix", "epochs_run"])), max_legend
        )
        for (bb, m, x, ep), g in groups:
            label = f"{pretty('method', m)}{' + ' + pretty('mix', x) if x != 'none' else ''}"
            if d["backbone"].nunique() > 1:
                label += f" ({pretty('backbone', bb)})"
            if d["epochs_run"].nunique() > 1:
                label += f", {int(ep)} ep run"
            c = COLORS[colour_keys.index((m, bb, ep)) % len(COLORS)]
            ls = LINESTYLES[mixes.index(x) % len(LINESTYLES)]
            for ax, col in zip(axes[0], ["loss", "knn_top1"][:ncol]):
                s = g.groupby("epoch")[col].agg(["mean", "min", "max"]).dropna()
                if s.empty:
                    continue
                marker = "o" if len(s) <= 12 else None
                ax.plot(s.index, s["mean"], color=c, ls=ls, marker=marker, ms=4, label=label)
                ax.fill_between(s.index, s["min"], s["max"], color=c, alpha=0.15)
        axes[0][0].set_ylabel("pre-training loss")
        if ncol == 2:
            axes[0][1].set_ylabel("kNN top-1 (%)")
        for ax in axes[0]:
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        more = f"; {left_out} more lines not shown (--where / --max-legend)" if left_out else ""
        fig.suptitle(
            f"Learning curves: {pretty(facet, dom)} (mean over seeds, band = min-max){more}",
            fontsize=10,
        )
        name = (
            f"curves_{slug(str(dom))}" if facet == "domain" else f"curves_{facet}_{slug(str(dom))}"
        )
        written += _save(fig, out, name, fmt)
    return written


# ----------------------------------------------------------------------------- i-Mix gain
def gain_table(
    runs: pd.DataFrame,
    by: str = "backbone",
    *,
    metric: str = "linear_top1",
    baseline: str = "none",
    mixed: str = "imixup",
) -> pd.DataFrame:
    """Per (domain, method, ``by``) [and the other settings held equal]: the i-Mix gain."""
    ok = _ok(runs)
    if ok.empty or by not in ok:
        return pd.DataFrame()
    keys = [k for k in ("domain", "method", "backbone", "epochs", "batch_size", "eval") if k != by]
    keys = [*keys, by]
    rows = []
    for k, g in ok[ok["mix"].isin([baseline, mixed])].groupby(keys, dropna=False):
        a = mean_std(list(g.loc[g["mix"] == baseline, metric]))
        b = mean_std(list(g.loc[g["mix"] == mixed, metric]))
        if a[0] is None or b[0] is None:
            continue
        err = math.sqrt(((a[1] or 0.0) ** 2) / a[2] + ((b[1] or 0.0) ** 2) / b[2])
        rows.append(
            {**dict(zip(keys, k)), "gain": b[0] - a[0], "err": err, "n_base": a[2], "n_mixed": b[2]}
        )
    return pd.DataFrame(rows)


def _order(values: Iterable, by: str) -> list:
    vals = list(dict.fromkeys(values))
    if by == "backbone":
        return sorted(vals, key=lambda v: (BACKBONE_SIZE.get(v, 1e9), str(v)))
    try:
        return sorted(vals, key=float)
    except (TypeError, ValueError):
        return sorted(vals, key=str)


def plot_gain(
    runs: pd.DataFrame,
    out: Path,
    *,
    by: str = "backbone",
    metric: str = "linear_top1",
    fmt: Sequence[str] = ("png",),
    max_legend: int = 12,
) -> list[Path]:
    g = gain_table(runs, by, metric=metric)
    if g.empty:
        return []
    xs = _order(g[by], by)
    pos = {v: i for i, v in enumerate(xs)}
    fig, ax = plt.subplots(figsize=(max(4.5, 1.2 * len(xs) + 2), 3.6))
    line_keys = [
        k
        for k in ("domain", "method", "backbone", "epochs", "batch_size")
        if k != by and g[k].nunique() > 1
    ]
    line_keys = line_keys or ["method"]
    lines = list(g.groupby(line_keys))
    left_out = max(0, len(lines) - max_legend) if max_legend > 0 else 0
    if left_out:  # the lines with the most points
        lines = sorted(lines, key=lambda kd: -len(kd[1]))[:max_legend]
    for i, (k, d) in enumerate(lines):
        k = k if isinstance(k, tuple) else (k,)
        d = d.assign(_x=d[by].map(pos)).sort_values("_x")
        label = " ".join(pretty(f, v) for f, v in zip(line_keys, k))
        ax.errorbar(
            d["_x"],
            d["gain"],
            yerr=d["err"],
            fmt="-o",
            capsize=3,
            color=COLORS[i % len(COLORS)],
            label=label,
        )
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels(
        [pretty(by, v) if by in ("backbone", "domain", "method") else str(v) for v in xs]
    )
    ax.set_xlabel(by + (" (ordered by parameter count)" if by == "backbone" else ""))
    ax.set_ylabel(f"i-Mix gain, {metric.replace('_top1', '')} top-1 (pp)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    more = f"\n{left_out} more lines not shown (--where / --max-legend)" if left_out else ""
    ax.set_title(
        "i-Mix gain: top-1 with i-Mix minus without (± combined std error)" + more, fontsize=10
    )
    return _save(fig, out, f"gain_{slug(by)}", fmt)


def plot_all(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    out: str | Path,
    *,
    kinds: Sequence[str] = ("epochs", "curves", "gain"),
    by: str = "backbone",
    reported: str | Path = REPORTED_CSV,
    fmt: Sequence[str] = ("png", "pdf"),
    facet: str = "domain",
    max_legend: int = 12,
    progress: bool = False,
) -> list[Path]:
    """Every figure of ``kinds``; ``max_legend`` caps the lines (and legend entries) per panel."""
    from imix_sweeps.progress import progress as bar

    out = Path(out)
    written: list[Path] = []
    steps = [k for k in ("epochs", "curves", "gain") if k in kinds]
    for kind in bar(steps, "plot", unit="kind", every_s=0.0) if progress else steps:
        if kind == "epochs":
            written += plot_epochs_reported(runs, out, reported=reported, fmt=fmt)
            written += plot_epochs_runs(runs, out, fmt=fmt, max_legend=max_legend)
        elif kind == "curves":
            written += plot_curves(curves, runs, out, fmt=fmt, facet=facet, max_legend=max_legend)
        else:
            written += plot_gain(runs, out, by=by, fmt=fmt, max_legend=max_legend)
    return written
