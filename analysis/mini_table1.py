"""The mini Table 1: i-Mix's domain-agnostic claim on three small real domains, on a CPU.

Laid out like Table 1 of the i-Mix paper: one row per domain (image, speech, tabular), per
method two columns, without and with i-Mix (top-1 mean ± std over seeds), and the gain with a
paired test over seeds: runs are paired by ``(domain, method, seed)``, the gain of a pair is
``top1(imixup) - top1(none)``, and the p-value is the two-sided paired t-test
(``scipy.stats.ttest_rel``) of those gains. Without scipy the p-value is the exact two-sided
sign-flip permutation test of the mean gain (all ``2**n`` sign patterns). With 3 seeds the test
has little power: a p above 0.05 says "not shown at this n", not "no effect".

``imix-analysis mini-table1 --runs multirun/mini_table1`` prints the table and writes
``mini_table1.md``, ``mini_table1.csv`` and the gain plot ``mini_table1_gain.png`` (gain per
domain and method, error bars = std of the paired gains over seeds). ``MiniTable1Callback``
does the same at the end of the ``mini_table1`` sweep.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.tables import mean_std, pretty

log = logging.getLogger(__name__)

DOMAINS = ("fashion_mnist", "spoken_words", "letter")
METHODS = ("npair", "mocov2", "byol")
DOMAIN_LABELS = {
    "fashion_mnist": "Image: Fashion-MNIST",
    "spoken_words": "Speech: spoken words (espeak-ng)",
    "letter": "Tabular: Letter Recognition",
}
METRICS = {"linear_top1": "linear", "knn_top1": "kNN", "fewshot_top1": "few-shot"}


def paired_p(gains: Sequence[float]) -> tuple[float | None, str]:
    """Two-sided p-value that the mean paired gain is 0, and the test's name.

    Paired t-test (scipy) when available; else the exact sign-flip permutation test. ``None``
    with fewer than 2 pairs, or when every gain is 0 (t undefined)."""
    g = [float(x) for x in gains]
    if len(g) < 2:
        return None, "n<2"
    try:
        from scipy import stats
    except ImportError:
        return sign_flip_p(g), "exact sign-flip"
    if all(abs(x - g[0]) < 1e-12 for x in g):  # zero variance: t is 0/0 or ±inf
        return (1.0 if abs(g[0]) < 1e-12 else None), "paired t"
    # paired t on the gains = one-sample t of the gains against 0
    return float(stats.ttest_1samp(g, 0.0).pvalue), "paired t"


def sign_flip_p(gains: Sequence[float]) -> float:
    """Exact two-sided sign-flip test: the share of the ``2**n`` sign patterns whose |mean| is at
    least the observed |mean|."""
    g = [float(x) for x in gains]
    obs = abs(sum(g)) - 1e-12
    hits = sum(
        abs(sum(s * x for s, x in zip(signs, g))) >= obs
        for signs in itertools.product((1, -1), repeat=len(g))
    )
    return hits / 2 ** len(g)


@dataclass
class Cell:
    domain: str
    method: str
    base: tuple[float | None, float | None, int]
    mixed: tuple[float | None, float | None, int]
    gain: tuple[float | None, float | None, int]  # over the paired seeds
    p: float | None
    test: str
    seeds: list[int]

    @property
    def complete(self) -> bool:
        return self.base[0] is not None and self.mixed[0] is not None


@dataclass
class MiniTable1:
    metric: str
    cells: list[Cell]
    domains: list[str]
    methods: list[str]

    def cell(self, domain: str, method: str) -> Cell:
        for c in self.cells:
            if c.domain == domain and c.method == method:
                return c
        raise KeyError((domain, method))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "domain": c.domain,
                    "method": c.method,
                    "metric": self.metric,
                    "base_mean": c.base[0],
                    "base_std": c.base[1],
                    "base_n": c.base[2],
                    "imix_mean": c.mixed[0],
                    "imix_std": c.mixed[1],
                    "imix_n": c.mixed[2],
                    "gain_mean": c.gain[0],
                    "gain_std": c.gain[1],
                    "pairs": c.gain[2],
                    "p": c.p,
                    "test": c.test,
                }
                for c in self.cells
            ]
        )

    def markdown(self) -> str:
        head = ["domain"]
        for m in self.methods:
            head += [pretty("method", m), "+ i-Mix", "Δ (p)"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for d in self.domains:
            row = [DOMAIN_LABELS.get(d, pretty("domain", d))]
            for m in self.methods:
                c = self.cell(d, m)
                row += [_ms(c.base), _ms(c.mixed), _gain(c)]
            lines.append("| " + " | ".join(row) + " |")
        tests = sorted({c.test for c in self.cells if c.p is not None})
        return (
            f"Mini Table 1: {METRICS.get(self.metric, self.metric)} top-1 (%) on the test split, "
            "mean ± std over seeds (n runs); Δ = mean paired gain of i-Mix over the same seeds, "
            f"p = two-sided {', '.join(tests) or 'paired'} test over seeds.\n\n"
            + "\n".join(lines)
            + "\n"
        )


def _ms(t: tuple[float | None, float | None, int]) -> str:
    m, s, n = t
    if m is None:
        return "–"
    return f"{m:.1f}" + (f" ± {s:.1f}" if s is not None else "") + f" ({n})"


def _pfmt(p: float) -> str:
    return f"{p:.2f}" if p >= 0.01 else f"{p:.0e}"


def _gain(c: Cell) -> str:
    if c.gain[0] is None:
        return "–"
    if c.p is None:  # fewer than 2 pairs, or identical non-zero gains (t undefined)
        p = " (p=n/a)" if c.gain[2] >= 2 else ""
    else:
        p = f" (p={_pfmt(c.p)})"
    return f"{c.gain[0]:+.1f}{p}"


def mini_table1(
    runs: pd.DataFrame,
    *,
    metric: str = "linear_top1",
    domains: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    baseline: str = "none",
    mixed: str = "imixup",
) -> MiniTable1:
    """The table from collected runs (``analysis.collect``); finished (``ok``) runs only.

    ``domains``/``methods``: the rows and method columns, in order (default: the three mini
    domains and N-pair / MoCo v2 / BYOL, followed by any others found in ``runs``)."""
    ok = runs[runs["status"] == "ok"] if len(runs) else runs
    found_d = list(dict.fromkeys(ok["domain"])) if len(ok) else []
    found_m = list(dict.fromkeys(ok["method"])) if len(ok) else []
    if domains is None:
        domains = [d for d in DOMAINS if d in found_d] + sorted(set(found_d) - set(DOMAINS))
        domains = domains or list(DOMAINS)
    if methods is None:
        methods = list(METHODS) + sorted(set(found_m) - set(METHODS))
    cells = []
    for d in domains:
        for m in methods:
            g = ok[(ok["domain"] == d) & (ok["method"] == m)] if len(ok) else ok
            b = _by_seed(g, baseline, metric)
            x = _by_seed(g, mixed, metric)
            seeds = sorted(set(b) & set(x))
            gains = [x[s] - b[s] for s in seeds]
            p, test = paired_p(gains)
            cells.append(
                Cell(
                    d,
                    m,
                    mean_std(list(b.values())),
                    mean_std(list(x.values())),
                    mean_std(gains),
                    p,
                    test,
                    seeds,
                )
            )
    return MiniTable1(metric, cells, list(domains), list(methods))


def _by_seed(g: pd.DataFrame, mix: str, metric: str) -> dict[int, float]:
    if not len(g) or metric not in g:
        return {}
    sel = g[(g["mix"] == mix) & g[metric].notna()]
    # one run per seed after collect's de-duplication; if several remain, the newest wins
    return {int(r.seed): float(getattr(r, metric)) for r in sel.itertuples()}


def plot_gain(table: MiniTable1, path: str | Path) -> Path:
    """Bar chart of the mean paired gain per domain (groups) and method (bars), error bars = std
    of the paired gains over seeds, p-values above the bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nd, nm = len(table.domains), len(table.methods)
    width = 0.8 / max(nm, 1)
    fig, ax = plt.subplots(figsize=(2.2 + 2.0 * nd, 3.6))
    for j, m in enumerate(table.methods):
        xs, ys, es, ps = [], [], [], []
        for i, d in enumerate(table.domains):
            c = table.cell(d, m)
            if c.gain[0] is None:
                continue
            xs.append(i + (j - (nm - 1) / 2) * width)
            ys.append(c.gain[0])
            es.append(c.gain[1] or 0.0)
            ps.append(c.p)
        ax.bar(xs, ys, width, yerr=es, capsize=3, label=pretty("method", m))
        for x, y, e, p in zip(xs, ys, es, ps):
            if p is not None and math.isfinite(p):
                top = y + e if y >= 0 else y - e
                ax.annotate(
                    f"p={_pfmt(p)}",
                    (x, top),
                    ha="center",
                    va="bottom" if y >= 0 else "top",
                    fontsize=7,
                    xytext=(0, 2 if y >= 0 else -2),
                    textcoords="offset points",
                )
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(nd))
    ax.set_xticklabels([DOMAIN_LABELS.get(d, d).replace(": ", ":\n") for d in table.domains])
    ax.set_ylabel(f"i-Mix gain, {METRICS.get(table.metric, table.metric)} top-1 (pp)")
    ax.set_title("i-Mix gain over seeds (mean ± std of paired gains)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def metric_dir(out: str | Path, metric: str) -> Path:
    """Where a metric's files go: ``out`` itself for linear top-1, ``out/<metric>`` otherwise."""
    return Path(out) / ("" if metric == "linear_top1" else metric)


def write(table: MiniTable1, out: str | Path) -> list[Path]:
    """``mini_table1.md``, ``mini_table1.csv`` and ``mini_table1_gain.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "mini_table1.md"
    md.write_text(table.markdown())
    csv = out / "mini_table1.csv"
    table.frame().to_csv(csv, index=False)
    return [md, csv, plot_gain(table, out / "mini_table1_gain.png")]


def render_sweep(sweep_dir: Path, metric: str = "linear_top1") -> tuple[MiniTable1, str]:
    """The table of every run under ``sweep_dir`` and its markdown, runs left out listed."""
    from analysis.collect import collect, left_out

    c = collect([sweep_dir], curves=False)
    table = mini_table1(c.runs, metric=metric)
    text = f"## Mini Table 1: {sweep_dir}\n\n" + table.markdown()
    return table, text + left_out(c.issues)


try:
    from hydra.experimental.callback import Callback as _Callback
except ImportError:  # analysis without hydra installed: the callback is not needed
    _Callback = object  # type: ignore[assignment,misc]


class MiniTable1Callback(_Callback):  # type: ignore[misc,valid-type]
    """Hydra callback: at the end of the sweep, print the mini Table 1 (linear and kNN top-1)
    and write it with its gain plot to ``<sweep dir>/mini_table1/``. A problem in the analysis
    is logged, never raised: the runs are already on disk."""

    def __init__(self, metrics: Sequence[str] = ("linear_top1", "knn_top1")) -> None:
        self.metrics = list(metrics)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        for metric in self.metrics:
            try:
                table, text = render_sweep(sweep_dir, metric)
                out = metric_dir(sweep_dir / "mini_table1", metric)
                written = write(table, out)
            except Exception as e:  # the table is a convenience; never fail the sweep over it
                log.error("mini table 1 for %s failed: %s: %s", sweep_dir, type(e).__name__, e)
                continue
            print("\n" + text, flush=True)
            log.info("wrote %s", ", ".join(str(p) for p in written))
