"""The papers' tables with our numbers beside the reported ones, and the summary of verdicts.

Each table in the reported data has a ``TableSpec``: which cell fields make its rows and its
columns (as the paper lays them out), which committed sweep runs its cells, and the command-line
overrides that select one cell of that sweep. A cell reads
``ours mean ± std (n) | reported ± std | Δ``; a cell nobody ran shows ``missing [mK]`` and
the footnote ``[mK]`` gives the command that fills it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis import REPORTED_CSV
from analysis.reported import (
    IMIX_T1_BACKBONE,
    IMIX_T1_BATCH,
    IMIX_T1_EPOCHS,
    Cell,
    load_cells,
    match_runs,
    tables,
)

NAMES = {
    # domains
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "stl10": "STL-10",
    "tiny_imagenet": "Tiny-ImageNet",
    "imagenet": "ImageNet",
    "imagenet100": "ImageNet-100",
    "speech_commands": "Speech Commands",
    "covtype": "CovType",
    "higgs100k": "Higgs-100k",
    "higgs1m": "Higgs-1M",
    "fashion_mnist": "Fashion-MNIST",
    "digits": "digits",
    "digits_tab": "digits (tabular)",
    # methods
    "npair": "N-pair",
    "simclr": "SimCLR",
    "moco": "MoCo",
    "mocov2": "MoCo v2",
    "byol": "BYOL",
    "swav": "SwAV",
    "insdis": "InsDis",
    "cmc": "CMC",
    "pirl": "PIRL",
    # mixes
    "none": "",
    "imixup": "i-Mix",
    "icutmix": "i-CutMix",
    "inputmix": "InputMix",
    "imixup_inputmix": "InputMix + i-Mix",
    "unmix": "Un-Mix",
    "mixco": "MixCo",
    "im": "IM",
    # backbones
    "resnet18": "ResNet-18",
    "resnet50": "ResNet-50",
    "resnet50x2": "ResNet-50 (2x)",
    "2xresnet50half": "2x ResNet-50 (half)",
    "mlp5": "MLP-5",
}


def pretty(field_: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "?"
    if field_ == "epochs":
        return f"{int(value)} ep"  # type: ignore[call-overload]
    if field_ == "batch_size":
        return f"bs {int(value)}"  # type: ignore[call-overload]
    if field_ == "mix":
        return NAMES.get(str(value), str(value)) or "baseline"
    return NAMES.get(str(value), str(value))


def _field(cell: Cell, f: str) -> object:
    if f == "backbone":
        return cell.reported_backbone or cell.backbone
    if f == "variant":
        return cell.variant.label
    return getattr(cell, f)


def _label(cell: Cell, fields: Sequence[str]) -> str:
    parts = []
    for f in fields:
        v = _field(cell, f)
        if f == "variant" and not v:
            continue
        if f == "mix":
            parts.append(f"+ {pretty(f, v)}" if v != "none" else "")
        else:
            parts.append(pretty(f, v))
    return " ".join(p for p in parts if p) or "top-1"


@dataclass
class TableSpec:
    paper: str
    table: str
    title: str
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    sweep: str | None = None
    overrides: Callable[[Cell], list[str]] | None = None
    grid: Callable[[], list[Cell]] | None = None  # expected cells beyond the reported rows
    notes: str = ""

    def command(self, cell: Cell) -> str | None:
        if not cell.runnable or self.sweep is None or self.overrides is None:
            return None
        return " ".join(
            ["imix-sweeps", "--multirun", f"+sweep={self.sweep}", *self.overrides(cell)]
        )


def _imix_t1_grid() -> list[Cell]:
    return [
        Cell(
            paper="imix",
            table="Table 1",
            domain=d,
            backbone=IMIX_T1_BACKBONE[d],
            method=m,
            mix=x,
            epochs=e,
            batch_size=IMIX_T1_BATCH[d],
            eval="linear",
        )
        for (d, m, x), e in IMIX_T1_EPOCHS.items()
    ]


def _swav(c: Cell) -> list[str]:
    return [f"domain={c.domain}", f"mix={c.mix}", f"train.epochs={c.epochs}"]


def _qs(c: Cell) -> int:
    return int(dict(c.variant.match).get("queue_size") or 0)


def _cmc_cell(prefix: str) -> Callable[[Cell], list[str]]:
    """The CMC-repository cell of a row: ``<prefix>_<method>_k<negatives>``, ``_nce`` for the
    NCE-loss rows (the Softmax-CE cells carry no suffix)."""

    def overrides(c: Cell) -> list[str]:
        nce = "_nce" if dict(c.variant.match).get("loss") == "nce" else ""
        return [f"+cell={prefix}_{c.method}_k{_qs(c)}{nce}"]

    return overrides


SPECS: dict[tuple[str, str], TableSpec] = {}


def _register(*specs: TableSpec) -> None:
    for s in specs:
        SPECS[(s.paper, s.table)] = s


_register(
    TableSpec(
        "imix",
        "Table 1",
        "i-Mix Table 1: linear top-1 (%) without / with i-Mix",
        rows=("domain",),
        cols=("method", "mix"),
        sweep="imix_table1",
        overrides=lambda c: [f"+cell=imix_t1_{c.domain}_{c.method}_{c.mix}"],
        grid=_imix_t1_grid,
        notes="Epochs per cell from the authors' run.sh (the paper prints none).",
    ),
    TableSpec(
        "unmix",
        "Table 1",
        "Un-Mix Table 1: ImageNet linear top-1 (%), ResNet-50",
        rows=("method", "mix", "variant", "epochs"),
        cols=(),
        sweep="unmix_table1",
        overrides=lambda c: [f"+cell=unmix_t1_{c.method}_{c.mix}_{c.epochs}"],
    ),
    TableSpec(
        "unmix",
        "Fig:SwAV-CIFAR (paper)",
        "Un-Mix, SwAV on CIFAR (paper figure): linear top-1 (%) by pre-training epochs",
        rows=("epochs",),
        cols=("domain", "mix"),
        sweep="unmix_swav_cifar",
        overrides=_swav,
    ),
    TableSpec(
        "unmix",
        "repo:UnMix_SwAV/for_CIFAR",
        "Un-Mix repo rerun, SwAV on CIFAR: linear top-1 (%) by pre-training epochs",
        rows=("epochs",),
        cols=("domain", "mix"),
        sweep="unmix_swav_cifar_repo",
        overrides=_swav,
    ),
    TableSpec(
        "unmix",
        "repo:CIFAR-demo",
        "Un-Mix repo CIFAR demo: MoCo kNN top-1 (%), 1000 epochs",
        rows=("variant",),
        cols=("domain", "mix"),
        sweep="unmix_cifar_demo",
        overrides=lambda c: [
            f"domain={c.domain}",
            f"mix={c.mix}",
            f"method.model.symmetric={str(dict(c.variant.match)['symmetric']).lower()}",
        ],
    ),
    TableSpec(
        "cmc",
        "repo:README ImageNet",
        "CMC repo: ImageNet linear top-1 (%), ResNet-50, 200 epochs",
        rows=("method", "variant"),
        cols=(),
        sweep="cmc_imagenet",
        overrides=_cmc_cell("cmc_in"),
    ),
    TableSpec(
        "cmc",
        "repo:README ImageNet-100",
        "CMC repo: ImageNet-100 linear top-1 (%), 240 epochs",
        rows=("method", "backbone", "variant"),
        cols=(),
        sweep="cmc_imagenet100",
        overrides=_cmc_cell("cmc_in100"),
    ),
    TableSpec(
        "cmc",
        "paper (table id unknown)",
        "CMC paper (second-hand): ImageNet linear top-1 (%)",
        rows=("method", "backbone"),
        cols=(),
        sweep=None,
        notes="No sweep: the source states no pre-training epochs.",
    ),
)


def spec_for(paper: str, table: str) -> TableSpec:
    """The registered layout, or a one-column fallback for a table added to the CSV later."""
    return SPECS.get(
        (paper, table),
        TableSpec(
            paper, table, f"{paper} {table}", ("domain", "method", "mix", "variant", "epochs"), ()
        ),
    )


# ----------------------------------------------------------------------------- cell values
@dataclass
class CellResult:
    cell: Cell
    mean: float | None
    std: float | None
    n: int
    command: str | None
    run_dirs: list[str] = field(default_factory=list)

    @property
    def delta(self) -> float | None:
        if self.mean is None or self.cell.top1 is None:
            return None
        return self.mean - self.cell.top1


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None, int]:
    """Mean, sample std (ddof 1; None for one value) and count of the finite values."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    n = len(v)
    if n == 0:
        return None, None, 0
    m = sum(v) / n
    s = math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1)) if n > 1 else None
    return m, s, n


def evaluate_cell(runs: pd.DataFrame, cell: Cell, spec: TableSpec) -> CellResult:
    got = match_runs(runs, cell)
    m, s, n = mean_std(list(got[cell.metric])) if len(got) else (None, None, 0)
    dirs = list(got["path"]) if "path" in got else []
    return CellResult(cell, m, s, n, spec.command(cell), dirs)


def verdict(r: CellResult, *, tol: float = 0.5, std_k: float = 1.0) -> str:
    """``reproduced`` when |ours - reported| <= band, else ``below`` / ``above``.

    band = std_k x the paper's std where it prints one, else ``tol`` (percentage points).
    ``not run`` when no run matches, ``no config`` when no config can run the cell.
    """
    if not r.cell.runnable:
        return "no config"
    if r.n == 0 or r.mean is None:
        return "not run"
    if r.cell.top1 is None:
        return "no reported value"
    band = std_k * r.cell.std if r.cell.std is not None else tol
    d = r.mean - r.cell.top1
    if abs(d) <= band + 1e-9:
        return "reproduced"
    return "below" if d < 0 else "above"


def table_cells(paper: str, table: str, *, reported: str | Path = REPORTED_CSV) -> list[Cell]:
    """The table's cells: its reported rows, then expected cells nobody reported (grid)."""
    cells = [c for c in load_cells(reported) if c.paper == paper and c.table == table]
    if not cells:
        known = ", ".join(f"{p} / {t!r}" for p, t in tables(reported))
        raise KeyError(f"no reported table {paper} / {table!r}; known: {known}")
    spec = spec_for(paper, table)
    if spec.grid:
        keys = {c.key() for c in cells}
        cells += [c for c in spec.grid() if c.key() not in keys]
    return cells


# ----------------------------------------------------------------------------- formatting
def fmt_ours(r: CellResult, tag: str | None) -> str:
    if r.n == 0 or r.mean is None:
        return "no config" if not r.cell.runnable else f"missing [{tag}]"
    s = f"{r.mean:.1f}"
    if r.std is not None:
        s += f" ± {r.std:.1f}"
    return s + f" ({r.n})"


def fmt_reported(c: Cell) -> str:
    if c.top1 is None:
        return "–"
    top1 = c.top1_text or f"{c.top1:g}"
    std = c.std_text or (f"{c.std:g}" if c.std is not None else "")
    return top1 + (f" ± {std}" if std else "")


def fmt_delta(r: CellResult) -> str:
    d = r.delta
    if d is None:
        return ""
    d = round(d, 1) or 0.0  # never print "-0.0"
    return f"{d:+.1f}"


@dataclass
class RenderedTable:
    spec: TableSpec
    results: list[CellResult]
    layout: pd.DataFrame  # rows x cols of cell strings
    footnotes: list[str]

    def markdown(self) -> str:
        df = self.layout
        head = [df.index.name or "", *map(str, df.columns)]
        lines = [
            f"### {self.spec.title}",
            "",
            "Each cell: ours mean ± std (n runs) | reported ± std | Δ (ours − reported).",
            "",
        ]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for idx, row in df.iterrows():
            vals = [str(idx), *(str(v).replace("|", "\\|") for v in row)]
            lines.append("| " + " | ".join(vals) + " |")
        if self.spec.notes:
            lines += ["", self.spec.notes]
        if self.footnotes:
            lines += ["", *[f"- {f}" for f in self.footnotes]]
        return "\n".join(lines) + "\n"

    def latex(self) -> str:
        df = self.layout
        ncol = len(df.columns)
        out = [
            "% " + self.spec.title,
            "% cell: ours mean $\\pm$ std (n) / reported $\\pm$ std / $\\Delta$",
            "\\begin{tabular}{l" + "c" * ncol + "}",
            "\\toprule",
            " & ".join([_tex(df.index.name or ""), *map(_tex, map(str, df.columns))]) + " \\\\",
            "\\midrule",
        ]
        for idx, row in df.iterrows():
            out.append(" & ".join([_tex(str(idx)), *(_tex(str(v)) for v in row)]) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}"]
        return "\n".join(out) + "\n"

    def latex_paper(
        self,
        *,
        reported_row: bool = True,
        caption: str | None = None,
        label: str | None = None,
    ) -> str:
        """A paper-ready booktabs table: ours mean $\\pm$ std, the best mean per row in bold,
        one multicolumn header level per column field, and (optional) the reported values
        in a row under ours, with caption and label."""
        spec = self.spec
        cols = list(spec.cols)
        key_of = {}
        for r in self.results:
            ck = tuple(pretty(f, _field(r.cell, f)) for f in cols) if cols else ("top-1",)
            key_of[id(r)] = (_label(r.cell, spec.rows), ck)
        col_keys = list(dict.fromkeys(k[1] for k in key_of.values()))
        row_keys = list(dict.fromkeys(k[0] for k in key_of.values()))
        by = {key_of[id(r)]: r for r in self.results}
        levels = max(len(cols), 1)
        lines = [
            "\\begin{table}[t]",
            "\\centering",
            "\\small",
            "\\begin{tabular}{l" + "c" * len(col_keys) + "}",
            "\\toprule",
        ]
        for level in range(levels):
            spans: list[list] = []
            for ck in col_keys:
                if spans and spans[-1][1] == ck[: level + 1]:
                    spans[-1][2] += 1
                else:
                    spans.append([ck[level] or "baseline", ck[: level + 1], 1])
            head = [_tex(" / ".join(spec.rows)) if level == levels - 1 else ""]
            rules = []
            col = 2
            for lab, _, w in spans:
                head.append(f"\\multicolumn{{{w}}}{{c}}{{{_tex(lab)}}}" if w > 1 else _tex(lab))
                if level < levels - 1:
                    rules.append(f"\\cmidrule(lr){{{col}-{col + w - 1}}}")
                col += w
            lines.append(" & ".join(head) + " \\\\")
            if rules:
                lines.append(" ".join(rules))
        lines.append("\\midrule")
        for rk in row_keys:
            got = [by[(rk, ck)] for ck in col_keys if (rk, ck) in by]
            means = [g.mean for g in got if g.n and g.mean is not None]
            best = max(means) if len(means) > 1 else None
            ours = [_tex(rk) + (" (ours)" if reported_row else "")]
            rep = ["\\quad reported"]
            for ck in col_keys:
                r = by.get((rk, ck))
                if r is None:
                    ours.append("")
                    rep.append("")
                    continue
                if r.n and r.mean is not None:
                    v = f"{r.mean:.1f}" + (f" $\\pm$ {r.std:.1f}" if r.std is not None else "")
                    if best is not None and r.mean >= best - 1e-9:
                        v = f"\\textbf{{{v}}}"
                    ours.append(v)
                else:
                    ours.append("--")
                rep.append(_tex(fmt_reported(r.cell)) if r.cell.top1 is not None else "")
            lines.append(" & ".join(ours) + " \\\\")
            if reported_row:
                lines.append(" & ".join(rep) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        cap = (
            _tex(caption)
            if caption
            else (
                _tex(spec.title)
                + ". Ours: mean $\\pm$ std over seeds; best per row in bold"
                + ("; reported: as printed by the source." if reported_row else ".")
            )
        )
        lines.append(f"\\caption{{{cap}}}")
        lines.append(f"\\label{{{label or 'tab:' + slug(spec.paper + ' ' + spec.table)}}}")
        lines.append("\\end{table}")
        return "\n".join(lines) + "\n"

    def cells_frame(self, *, tol: float = 0.5, std_k: float = 1.0) -> pd.DataFrame:
        rows = []
        for r in self.results:
            d = r.cell.as_row()
            d.update(
                ours_mean=r.mean,
                ours_std=r.std,
                n=r.n,
                delta=r.delta,
                verdict=verdict(r, tol=tol, std_k=std_k),
                command=r.command,
            )
            rows.append(d)
        return pd.DataFrame(rows)


_TEX = {
    "±": "$\\pm$",
    "Δ": "$\\Delta$",
    "†": "\\dag{}",
    "–": "--",
    "−": "$-$",
    "_": "\\_",
    "&": "\\&",
    "%": "\\%",
    "#": "\\#",
    "|": "/",
    "[": "{[}",
    "]": "{]}",
}


def _tex(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


def render(
    runs: pd.DataFrame, paper: str, table: str, *, reported: str | Path = REPORTED_CSV
) -> RenderedTable:
    """Lay out one table: cells evaluated against ``runs`` (the collected table)."""
    spec = spec_for(paper, table)
    cells = table_cells(paper, table, reported=reported)
    results = [evaluate_cell(runs, c, spec) for c in cells]
    row_labels = list(dict.fromkeys(_label(c, spec.rows) for c in cells))
    col_labels = (
        list(dict.fromkeys(_label(c, spec.cols) for c in cells)) if spec.cols else ["top-1"]
    )
    layout = pd.DataFrame("", index=row_labels, columns=col_labels)
    layout.index.name = " / ".join(spec.rows)
    footnotes: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for r in results:
        c = r.cell
        rl = _label(c, spec.rows)
        cl = _label(c, spec.cols) if spec.cols else "top-1"
        tag = None
        if r.n == 0:
            if c.runnable:
                tag = f"m{sum(1 for f in footnotes if f.startswith('[m')) + 1}"
                cmd = r.command or "(no sweep runs this table)"
                footnotes.append(f"[{tag}] {rl} / {cl}: `{cmd}`")
            else:
                tag = None
                footnotes.append(f"[no config] {rl} / {cl}: {c.why_not}")
        text = f"{fmt_ours(r, tag)} | {fmt_reported(c)}" + (
            f" | {fmt_delta(r)}" if r.delta is not None else ""
        )
        k = (rl, cl)
        if k in seen:  # two reported rows in one printed cell (should not happen): stack them
            layout.loc[rl, cl] = layout.loc[rl, cl] + " ; " + text
        else:
            layout.loc[rl, cl] = text
        seen[k] = 1
    for c in results:
        if c.cell.reported_backbone and c.cell.runnable:
            note = f"{c.cell.reported_backbone} -> backbone={c.cell.backbone}"
            if not any(note in f for f in footnotes):
                footnotes.append(f"[map] {note}")
    return RenderedTable(spec, results, layout, footnotes)


def slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def write_table(
    t: RenderedTable, out_dir: str | Path, *, tol: float = 0.5, reported_row: bool = True
) -> list[Path]:
    """``.md``, ``.tex`` (the full cell text), ``_paper.tex`` (paper-ready), ``.csv``,
    ``_cells.csv`` (one row per cell with its verdict)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"{t.spec.paper}_{slug(t.spec.table)}"
    paths = [base.with_suffix(".md"), base.with_suffix(".tex"), base.with_suffix(".csv")]
    paths[0].write_text(t.markdown())
    paths[1].write_text(t.latex())
    t.layout.to_csv(paths[2])
    paper = base.parent / (base.name + "_paper.tex")
    paper.write_text(t.latex_paper(reported_row=reported_row))
    cells = base.parent / (base.name + "_cells.csv")
    t.cells_frame(tol=tol).to_csv(cells, index=False)
    return [*paths, paper, cells]


# ----------------------------------------------------------------------------- summary
def summary(
    runs: pd.DataFrame,
    *,
    paper: str | None = None,
    tol: float = 0.5,
    std_k: float = 1.0,
    reported: str | Path = REPORTED_CSV,
) -> pd.DataFrame:
    """Every reported cell with its verdict (``reproduced`` / ``below`` / ``above`` / ...)."""
    frames = []
    for p, t in tables(reported):
        if paper and p != paper:
            continue
        r = render(runs, p, t, reported=reported)
        df = r.cells_frame(tol=tol, std_k=std_k)
        frames.append(df[df["top1"].notna()])
    if not frames:
        raise KeyError(f"no reported tables for paper {paper!r}")
    return pd.concat(frames, ignore_index=True)


def summary_markdown(df: pd.DataFrame) -> str:
    counts = df["verdict"].value_counts().to_dict()
    lines = [
        "### Reported cells: reproduced within the paper's std (or the tolerance)?",
        "",
        ", ".join(f"{v} {k}" for k, v in counts.items()),
        "",
        "| paper | table | cell | reported | ours | Δ | verdict | to do |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in df.itertuples():
        cell = " ".join(
            str(x)
            for x in (
                r.domain,
                r.reported_backbone or r.backbone,
                r.method,
                r.mix,
                r.variant,
                f"{int(r.epochs)}ep" if r.epochs == r.epochs and r.epochs is not None else "",
                r.eval,
            )
            if x
        )
        ours = (
            ""
            if r.ours_mean is None or r.ours_mean != r.ours_mean
            else f"{r.ours_mean:.1f} ({r.n})"
        )
        rep = r.reported or f"{r.top1:g}"
        d = "" if r.delta is None or r.delta != r.delta else f"{r.delta:+.1f}"
        todo = ""
        if r.verdict == "no config":
            todo = str(r.why_not)
        elif r.verdict == "not run" and isinstance(r.command, str):
            todo = f"`{r.command}`"
        lines.append(
            f"| {r.paper} | {r.table} | {cell} | {rep} | {ours} | {d} | {r.verdict} | {todo} |"
        )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- demo table
DEMO_METRICS = (("linear_top1", "linear"), ("fewshot_top1", "few-shot"), ("knn_top1", "kNN"))


def demo_table(runs: pd.DataFrame, *, baseline: str = "none", mixed: str = "imixup") -> str:
    """Markdown: rows = method, per metric the baseline, the i-Mix column and Δ."""
    ok = runs[runs["status"] == "ok"] if len(runs) else runs
    if ok.empty:
        return "No finished runs.\n"
    group = [c for c in ("domain", "backbone", "epochs") if ok[c].nunique() > 1] + ["method"]
    metrics = [(k, n) for k, n in DEMO_METRICS if k in ok and ok[k].notna().any()]
    head = [*group]
    for _, n in metrics:
        head += [f"{n} {pretty('mix', baseline)}", f"{n} {pretty('mix', mixed)}", f"{n} Δ"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = {k: i for i, k in enumerate(NAMES)}
    groups = sorted(
        ((k if isinstance(k, tuple) else (k,), g) for k, g in ok.groupby(group, sort=False)),
        key=lambda kg: tuple(
            (order.get(v, len(order)), str(v)) if isinstance(v, str) else (0, str(v)) for v in kg[0]
        ),
    )
    for key, g in groups:
        row = [pretty(f, v) for f, v in zip(group, key)]
        for k, _ in metrics:
            a = mean_std(list(g.loc[g["mix"] == baseline, k]))
            b = mean_std(list(g.loc[g["mix"] == mixed, k]))
            row += [_ms(a), _ms(b)]
            row.append(f"{b[0] - a[0]:+.1f}" if a[0] is not None and b[0] is not None else "")
        lines.append("| " + " | ".join(row) + " |")
    others = sorted(set(ok["mix"]) - {baseline, mixed})
    note = f"\nRuns with other mixes not shown: {', '.join(others)}.\n" if others else ""
    return (
        "Top-1 (%) on the test split, mean ± std over seeds (n runs).\n\n"
        + "\n".join(lines)
        + "\n"
        + note
    )


def _ms(t: tuple[float | None, float | None, int]) -> str:
    m, s, n = t
    if m is None:
        return "–"
    return f"{m:.1f}" + (f" ± {s:.1f}" if s is not None else "") + f" ({n})"
