"""Tables of your own sweeps: any run fields as rows and columns, mean ± std (n) per cell.

``grid_table(runs, rows=["method"], cols=["mix"])`` groups the collected runs by the row and
column keys (seeds, and every key not named, are pooled), and gives per cell the mean, sample
std and count of one top-1 metric over the ``ok`` runs. Where the columns include ``mix`` and a
``mix=none`` column exists, every other column gets Δ against the ``mix=none`` column with the
same other column keys, in the same row. A cell with no ``ok`` run but failed ones reads
``failed (n): <reason>``; running / preempted ones read ``running (n)``.

Rendered as markdown, LaTeX (booktabs) and CSV (one tidy row per cell). ``sweep_axes`` picks
rows and columns from the fields that vary in a sweep (what the end-of-sweep table uses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.tables import mean_std, pretty

METRICS = ("linear_top1", "knn_top1", "fewshot_top1")
BASELINE_MIX = "none"


def parse_where(items: Sequence[str] | None) -> dict[str, list[str]]:
    """``["mix=none,imixup", "seed=0"]`` -> ``{"mix": ["none", "imixup"], "seed": ["0"]}``."""
    out: dict[str, list[str]] = {}
    for it in items or []:
        key, sep, val = it.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--where {it!r}: expected KEY=VALUE[,VALUE...]")
        out.setdefault(key.strip(), []).extend(v.strip() for v in val.split(","))
    return out


def _same(a: object, b: str) -> bool:
    """A run value equals a command-line string (numbers compare as numbers, bools as words)."""
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b.lower() in ("none", "null", "")
    if isinstance(a, bool):
        return str(a).lower() == b.lower()
    if isinstance(a, (int, float)):
        try:
            return float(a) == float(b)
        except ValueError:
            return False
    return str(a) == b


def filter_runs(runs: pd.DataFrame, where: dict[str, list[str]]) -> pd.DataFrame:
    """The runs whose every ``where`` key matches one of its values (unknown key: ValueError)."""
    for key, values in where.items():
        if key not in runs.columns:
            raise ValueError(
                f"--where {key}: no such run field; fields: {', '.join(map(str, runs.columns))}"
            )
        keep = [any(_same(v, want) for want in values) for v in runs[key]]
        runs = runs[keep]
    return runs


# The order in which varying fields are considered: a field that is a function of the fields
# already kept (alpha of mix, backbone of domain, lr of batch size...) is not an axis of its own.
AXIS_ORDER = (
    "method",
    "mix",
    "domain",
    "epochs",
    "batch_size",
    "eval",
    "backbone",
    "lr",
    "temperature",
    "alpha",
    "queue_size",
    "symmetric",
)


def varying(values: dict[str, list]) -> list[str]:
    """The fields (in the given order) that vary and are not determined by those before."""
    kept: list[str] = []
    for a, col in values.items():
        if len(set(col)) <= 1:
            continue
        seen: dict[tuple, object] = {}
        dependent = bool(kept)
        for i, v in enumerate(col):
            if seen.setdefault(tuple(values[b][i] for b in kept), v) != v:
                dependent = False
                break
        if not dependent:
            kept.append(a)
    return kept


def sweep_axes(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Rows and columns for a sweep's own table: the fields the sweep varies.

    A field counts when it takes more than one value and is not determined by the fields
    already counted (``alpha`` follows ``mix``, ``backbone`` follows ``domain``). ``mix`` (when
    it varies) is the column, the other fields are the rows; with no varying mix the last
    varying field becomes the column. Seeds are always pooled.
    """
    fields = [a for a in AXIS_ORDER if a in runs.columns]
    kept = varying({a: [_key(v) for v in runs[a]] for a in fields})
    if not kept:
        return ["method"], ["mix"]
    if "mix" in kept:
        rows = [a for a in kept if a != "mix"] or ["method"]
        return rows, ["mix"]
    if len(kept) == 1:
        return ["method"] if kept[0] != "method" else ["domain"], kept
    return kept[:-1], kept[-1:]


def _key(v: object) -> object:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _label(fields: Sequence[str], key: tuple) -> str:
    parts = []
    for f, v in zip(fields, key):
        if f in ("method", "domain", "backbone", "mix", "epochs", "batch_size"):
            parts.append(pretty(f, v) if not (f == "mix" and v == BASELINE_MIX) else "none")
        else:
            parts.append(f"{f}={'?' if v is None else v}")
    return " ".join(parts) or "all"


@dataclass
class GridCell:
    row: tuple
    col: tuple
    mean: float | None
    std: float | None
    n: int
    n_failed: int = 0
    n_unfinished: int = 0
    reasons: list[str] = field(default_factory=list)
    delta: float | None = None

    @property
    def status(self) -> str:
        if self.n:
            return "ok"
        if self.n_failed:
            return "failed"
        return "running" if self.n_unfinished else "empty"

    def text(self, digits: int = 1) -> str:
        if self.n:
            s = f"{self.mean:.{digits}f}"
            if self.std is not None:
                s += f" ± {self.std:.{digits}f}"
            return s + f" ({self.n})"
        if self.n_failed:
            why = self.reasons[0] if self.reasons else "no reason recorded"
            more = (
                f" (+{len(set(self.reasons)) - 1} other reasons)"
                if len(set(self.reasons)) > 1
                else ""
            )
            return f"failed ({self.n_failed}): {_short(why)}{more}"
        if self.n_unfinished:
            return f"running ({self.n_unfinished})"
        return "–"


def _short(s: str, n: int = 80) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"


@dataclass
class GridTable:
    rows: list[str]
    cols: list[str]
    metric: str
    row_keys: list[tuple]
    col_keys: list[tuple]
    cells: dict[tuple[tuple, tuple], GridCell]
    where: dict[str, list[str]] = field(default_factory=dict)
    baseline_col: dict[tuple, tuple] = field(default_factory=dict)  # col -> its mix=none col

    @property
    def has_delta(self) -> bool:
        return bool(self.baseline_col)

    def title(self) -> str:
        where = "; ".join(f"{k}={','.join(v)}" for k, v in self.where.items())
        return (
            f"{self.metric} (%), mean ± std over seeds (n runs)"
            + (f"; Δ vs mix={BASELINE_MIX}" if self.has_delta else "")
            + (f"; where {where}" if where else "")
        )

    def header(self) -> list[str]:
        head = [" / ".join(self.rows)]
        for c in self.col_keys:
            head.append(_label(self.cols, c))
            if c in self.baseline_col:
                head.append("Δ")
        return head

    def body(self, fmt_delta=lambda d: f"{d:+.1f}") -> list[list[str]]:
        out = []
        for r in self.row_keys:
            line = [_label(self.rows, r)]
            for c in self.col_keys:
                cell = self.cells.get((r, c))
                line.append(cell.text() if cell else "–")
                if c in self.baseline_col:
                    d = cell.delta if cell else None
                    line.append("" if d is None else fmt_delta(round(d, 1) or 0.0))
            out.append(line)
        return out

    def markdown(self) -> str:
        head = self.header()
        lines = [self.title(), "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.body():
            lines.append("| " + " | ".join(v.replace("|", "\\|") for v in row) + " |")
        return "\n".join(lines) + "\n"

    def frame(self) -> pd.DataFrame:
        """One tidy row per cell: row keys, column keys, mean, std, n, delta, status, reason."""
        recs = []
        for (r, c), cell in self.cells.items():
            d: dict[str, object] = dict(zip(self.rows, r))
            d.update({k: v for k, v in zip(self.cols, c) if k not in d})
            d.update(
                metric=self.metric,
                mean=cell.mean,
                std=cell.std,
                n=cell.n,
                delta=cell.delta,
                status=cell.status,
                n_failed=cell.n_failed,
                n_unfinished=cell.n_unfinished,
                reason=cell.reasons[0] if cell.reasons else None,
            )
            recs.append(d)
        return pd.DataFrame(recs)

    def csv(self) -> str:
        return self.frame().to_csv(index=False)

    def latex(
        self,
        *,
        caption: str | None = None,
        label: str | None = None,
        bold_best: bool = True,
    ) -> str:
        """A booktabs table: best mean per row in bold, a multicolumn header per column field."""
        from analysis.tables import _tex

        ncols = sum(1 + (c in self.baseline_col) for c in self.col_keys)
        lines = [
            "\\begin{table}[t]",
            "\\centering",
            "\\small",
            "\\begin{tabular}{l" + "c" * ncols + "}",
            "\\toprule",
        ]
        # header rows: one per column field, adjacent equal values merged into a multicolumn
        for level in range(len(self.cols)):
            spans: list[list] = []  # [label, key prefix, width]
            for c in self.col_keys:
                prefix = c[: level + 1]
                w = 1 + (c in self.baseline_col)
                if spans and spans[-1][1] == prefix:
                    spans[-1][2] += w
                else:
                    spans.append([_label(self.cols[level : level + 1], prefix[-1:]), prefix, w])
            cells = [_tex(" / ".join(self.rows)) if level == len(self.cols) - 1 else ""]
            rules = []
            col = 2
            for lab, _, w in spans:
                cells.append(f"\\multicolumn{{{w}}}{{c}}{{{_tex(lab)}}}" if w > 1 else _tex(lab))
                if level < len(self.cols) - 1:
                    rules.append(f"\\cmidrule(lr){{{col}-{col + w - 1}}}")
                col += w
            lines.append(" & ".join(cells) + " \\\\")
            if rules:
                lines.append(" ".join(rules))
        if self.has_delta:
            sub = [""]
            for c in self.col_keys:
                sub.append("top-1")
                if c in self.baseline_col:
                    sub.append("$\\Delta$")
            lines.append(" & ".join(sub) + " \\\\")
        lines.append("\\midrule")
        for r in self.row_keys:
            means = [
                self.cells[(r, c)].mean
                for c in self.col_keys
                if (r, c) in self.cells and self.cells[(r, c)].n
            ]
            best = max(means) if means and bold_best else None
            out = [_tex(_label(self.rows, r))]
            for c in self.col_keys:
                cell = self.cells.get((r, c))
                if cell is None or not cell.n:
                    out.append("--" if cell is None or cell.status == "empty" else cell.status)
                else:
                    s = f"{cell.mean:.1f}"
                    if cell.std is not None:
                        s += f" $\\pm$ {cell.std:.1f}"
                    if best is not None and cell.mean is not None and cell.mean >= best - 1e-9:
                        s = f"\\textbf{{{s}}}"
                    out.append(s)
                if c in self.baseline_col:
                    d = cell.delta if cell else None
                    out.append("" if d is None else f"{round(d, 1) or 0.0:+.1f}")
            lines.append(" & ".join(out) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        lines.append(f"\\caption{{{_tex(caption or self.title())}}}")
        if label:
            lines.append(f"\\label{{{label}}}")
        lines.append("\\end{table}")
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | Path, name: str = "table") -> list[Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / f"{name}.md", out / f"{name}.tex", out / f"{name}.csv"]
        paths[0].write_text(self.markdown())
        paths[1].write_text(self.latex(label=f"tab:{name}"))
        paths[2].write_text(self.csv())
        return paths


def grid_table(
    runs: pd.DataFrame,
    rows: Sequence[str],
    cols: Sequence[str],
    *,
    metric: str = "linear_top1",
    where: dict[str, list[str]] | None = None,
) -> GridTable:
    """Group ``runs`` (a collected table) by ``rows`` x ``cols``; see the module docstring."""
    rows, cols = list(rows), list(cols)
    where = dict(where or {})
    if metric not in METRICS:
        raise ValueError(f"--metric {metric}: allowed: {', '.join(METRICS)}")
    for k in (*rows, *cols):
        if k not in runs.columns:
            raise ValueError(f"no run field {k!r}; fields: {', '.join(map(str, runs.columns))}")
    if set(rows) & set(cols):
        raise ValueError(f"a field cannot be both a row and a column: {set(rows) & set(cols)}")
    runs = filter_runs(runs, where)
    keys = rows + cols
    cells: dict[tuple[tuple, tuple], GridCell] = {}
    row_keys: list[tuple] = []
    col_keys: list[tuple] = []
    if len(runs):
        key_rows = [
            tuple(_key(v) for v in t) for t in runs[keys].itertuples(index=False, name=None)
        ]
        status = runs["status"].astype(str).to_numpy()
        values = pd.to_numeric(runs[metric], errors="coerce").to_numpy()
        reasons = runs["reason"].to_numpy() if "reason" in runs else [None] * len(runs)
        groups: dict[tuple[tuple, tuple], list[int]] = {}
        for i, t in enumerate(key_rows):
            groups.setdefault((t[: len(rows)], t[len(rows) :]), []).append(i)
        for (r, c), idx in groups.items():
            ok = [values[i] for i in idx if status[i] == "ok"]
            m, s, n = mean_std([v for v in ok if v == v])
            failed = [i for i in idx if status[i] in ("failed", "lost")]
            unfinished = [i for i in idx if status[i] in ("running", "preempted")]
            why = [str(reasons[i]) if reasons[i] else "no reason recorded" for i in failed]
            cells[(r, c)] = GridCell(r, c, m, s, n, len(failed), len(unfinished), why)
        row_keys = _sorted({r for r, _ in cells}, rows)
        col_keys = _sorted({c for _, c in cells}, cols)
    baseline_col: dict[tuple, tuple] = {}
    if "mix" in cols:
        j = cols.index("mix")
        for c in col_keys:
            if c[j] == BASELINE_MIX:
                continue
            base = (*c[:j], BASELINE_MIX, *c[j + 1 :])
            if base in col_keys:
                baseline_col[c] = base
        for (r, c), cell in cells.items():
            base = cells.get((r, baseline_col[c])) if c in baseline_col else None
            if base is not None and base.mean is not None and cell.mean is not None:
                cell.delta = cell.mean - base.mean
    return GridTable(rows, cols, metric, row_keys, col_keys, cells, where, baseline_col)


def _sorted(keys: set[tuple], fields: Sequence[str]) -> list[tuple]:
    """Known names in the config tree's order (mix=none first), numbers ascending."""
    from analysis.tables import NAMES

    order = {k: i for i, k in enumerate(NAMES)}

    def rank(t: tuple) -> tuple:
        out = []
        for f, v in zip(fields, t):
            if v is None:
                out.append((2, 0, ""))
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append((0, float(v), ""))
            elif f == "mix" and v == BASELINE_MIX:
                out.append((0, -1.0, ""))
            else:
                out.append((1, order.get(str(v), len(order)), str(v)))
        return tuple(out)

    return sorted(keys, key=rank)
