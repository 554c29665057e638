"""imix-analysis (or python -m analysis): collect, table, status, summary, plot, list, mini-table1.

imix-analysis collect multirun/ outputs/ --out results/collected
imix-analysis table --runs multirun/mine --rows method --cols mix   # a table of your own sweep
imix-analysis table --paper imix --table "Table 1"        # one of the papers' tables
imix-analysis table --all                                 # every reported table
imix-analysis status multirun/                            # ok / running / failed / lost per cell
imix-analysis summary --tol 0.5                           # verdict for every reported cell
imix-analysis plot --out results/figures
imix-analysis list                                        # tables, their sweeps, cell counts
imix-analysis mini-table1 --runs multirun/mini_table1     # the CPU mini Table 1 + gain plot

Outputs go under the current directory (results/...) unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from analysis import REPORTED_CSV
from analysis.collect import COLUMNS, collect, load_runs, write
from imix_sweeps.clihelp import HelpFormatter

# Relative: outputs land under the directory the command runs in, never inside the install.
DEFAULT_COLLECTED = Path("results") / "collected"
DEFAULT_TABLES = Path("results") / "tables"
DEFAULT_FIGURES = Path("results") / "figures"
METRIC_CHOICES = ("linear_top1", "knn_top1", "fewshot_top1")


def _warn_missing(paths: list[str]) -> list[str]:
    """The paths that exist; a warning on stderr for each one that does not."""
    kept = []
    for p in paths:
        if Path(p).exists():
            kept.append(p)
        else:
            print(f"warning: {p}: no such file or directory (skipped)", file=sys.stderr)
    return kept


def _runs(paths: list[str] | None) -> pd.DataFrame:
    """Runs from ``--runs`` (collected tables or run directories), else the default collection."""
    if not paths:
        default = DEFAULT_COLLECTED / "runs.parquet"
        if default.is_file():
            return pd.read_parquet(default)
        print(
            f"note: no --runs given and no {default}; every cell shows as missing "
            "(run `imix-analysis collect RUN_DIRS` first)",
            file=sys.stderr,
        )
        return pd.DataFrame(columns=list(COLUMNS))
    frames = []
    kept = _warn_missing(paths)
    if not kept:
        raise SystemExit(f"error: --runs {' '.join(paths)}: no such file or directory")
    for p in kept:
        try:
            frames.append(load_runs(p))
        except ValueError as e:
            raise SystemExit(f"error: --runs {e}") from None
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def cmd_collect(a: argparse.Namespace) -> int:
    import warnings

    from imix_sweeps.progress import progress

    kept = _warn_missing(a.run_dirs)
    if not kept:
        raise SystemExit(f"error: no such run directory: {' '.join(a.run_dirs)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing dirs were warned about above
        c = collect(
            a.run_dirs,  # the missing ones become `missing` issues
            curves=not a.no_curves,
            progress=lambda it: progress(it, "collect", unit="run dirs"),
        )
    paths = write(c, a.out)
    print(c.describe())
    shown = c.issues[c.issues["kind"] != "duplicate"]
    for r in shown.head(a.show).itertuples():
        print(f"  {r.kind:9s} {r.path}: {r.detail}")
    if len(shown) > a.show:
        print(f"  ... {len(shown) - a.show} more in {Path(a.out) / 'issues.csv'}")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _resolve_tables(a: argparse.Namespace) -> list[tuple[str, str]]:
    """The (paper, table) pairs asked for; names match case-insensitively. Unknown: exit 2."""
    from analysis.reported import tables

    known = tables(a.reported)
    if a.all:
        return known
    papers = sorted({p for p, _ in known})
    paper = next((p for p in papers if p.lower() == a.paper.lower()), None)
    if paper is None:
        raise SystemExit(f"error: unknown paper {a.paper!r}; papers: {', '.join(papers)}")
    mine = [t for p, t in known if p == paper]
    if not a.table:
        return [(paper, t) for t in mine]
    want = " ".join(a.table.lower().split())
    table = next((t for t in mine if " ".join(t.lower().split()) == want), None)
    if table is None:
        names = ", ".join(repr(t) for t in mine)
        raise SystemExit(f"error: unknown table {a.table!r} of {paper}; tables: {names}")
    return [(paper, table)]


def cmd_table(a: argparse.Namespace) -> int:
    if a.rows or a.cols or (a.runs and not (a.all or a.paper)):
        return _grid(a)  # a table of one's own runs (no --rows/--cols: the swept fields)
    if not (a.all or a.paper):
        raise SystemExit(
            "error: give --runs DIR [--rows/--cols] (a table of your own runs), "
            "or --paper [--table], or --all"
        )
    from analysis.tables import render, write_table

    which = _resolve_tables(a)
    runs = _runs(a.runs)
    for p, t in which:
        try:
            r = render(runs, p, t, reported=a.reported)
        except KeyError as e:
            raise SystemExit(f"error: {e.args[0]}") from None
        print(r.markdown())
        if a.latex:
            print(r.latex_paper(reported_row=not a.no_reported, caption=a.caption, label=a.label))
        if a.out:
            written = write_table(r, a.out, tol=a.tol, reported_row=not a.no_reported)
            print("wrote " + ", ".join(str(x) for x in written) + "\n")
    return 0


def _grid(a: argparse.Namespace) -> int:
    from analysis.grid import grid_table, parse_where, sweep_axes
    from analysis.status import with_effective_status

    if not a.runs:
        raise SystemExit("error: --rows/--cols need --runs DIR... (run dirs or collected tables)")
    runs = _runs(a.runs)
    if "status" in runs and len(runs):
        runs = with_effective_status(runs)
    rows, cols = a.rows, a.cols
    if not rows or not cols:
        auto_rows, auto_cols = sweep_axes(runs)
        rows = rows or [r for r in auto_rows if r not in (cols or [])] or ["method"]
        cols = cols or [c for c in auto_cols if c not in rows] or ["mix"]
    try:
        t = grid_table(runs, rows, cols, metric=a.metric, where=parse_where(a.where))
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    if not t.cells:
        print("no runs match" + (f" --where {' '.join(a.where)}" if a.where else ""))
        return 1
    print(t.markdown())
    if a.latex:
        print(t.latex(caption=a.caption, label=a.label))
    if a.out:
        name = a.name or "_".join([*rows, "by", *cols, a.metric])
        written = t.write(a.out, name)
        print("wrote " + ", ".join(str(x) for x in written))
    return 0


def cmd_status(a: argparse.Namespace) -> int:
    import warnings

    from analysis.status import sweep_status
    from imix_sweeps.progress import progress

    kept = _warn_missing(a.dirs)
    if not kept:
        raise SystemExit(f"error: no such run directory: {' '.join(a.dirs)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = collect(
            kept, curves=False, progress=lambda it: progress(it, "status", unit="results.json")
        )
    sweeps = sweep_status(kept, collected=c)
    if not sweeps:
        print("no runs found under " + " ".join(kept))
        return 0
    for s in sweeps:
        print(s.text(max_cells=a.max_cells))
    return 0


def cmd_summary(a: argparse.Namespace) -> int:
    from analysis.tables import summary, summary_markdown

    paper = None
    if a.paper:
        a.all, a.table = False, None
        paper = _resolve_tables(a)[0][0]  # case-insensitive; unknown: exit with the names
    runs = _runs(a.runs)
    try:
        df = summary(runs, paper=paper, tol=a.tol, std_k=a.std_k, reported=a.reported)
    except KeyError as e:
        raise SystemExit(f"error: {e.args[0]}") from None
    md = summary_markdown(df)
    print(md)
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.md").write_text(md)
        df.to_csv(out / "summary.csv", index=False)
        print(f"wrote {out / 'summary.md'}, {out / 'summary.csv'}")
    return 0


def cmd_plot(a: argparse.Namespace) -> int:
    from analysis import plots
    from analysis.grid import filter_runs, parse_where

    runs = _runs(a.runs)
    if a.where:
        try:
            runs = filter_runs(runs, parse_where(a.where))
        except ValueError as e:
            raise SystemExit(f"error: {e}") from None
    curves = pd.DataFrame()
    if a.curves:
        curves = (
            pd.read_parquet(a.curves) if a.curves.endswith(".parquet") else pd.read_csv(a.curves)
        )
    elif not a.runs and (DEFAULT_COLLECTED / "curves.parquet").is_file():
        curves = pd.read_parquet(DEFAULT_COLLECTED / "curves.parquet")
    elif a.runs:
        dirs = [p for p in a.runs if Path(p).is_dir() and not (Path(p) / "runs.parquet").is_file()]
        if dirs:
            curves = collect(dirs).curves
    written = plots.plot_all(
        runs,
        curves,
        a.out,
        kinds=a.kind,
        by=a.by,
        reported=a.reported,
        fmt=a.format,
        facet=a.facet,
        max_legend=a.max_legend,
        progress=True,
    )
    for p in written:
        print(f"wrote {p}")
    if not written:
        print("nothing to plot (no runs / curves for the requested kinds)")
    return 0


def cmd_list(a: argparse.Namespace) -> int:
    from analysis.reported import tables
    from analysis.tables import spec_for, table_cells

    print("| paper | table | sweep | cells | runnable | reported |")
    print("|---|---|---|---|---|---|")
    for p, t in tables(a.reported):
        cells = table_cells(p, t, reported=a.reported)
        s = spec_for(p, t)
        print(
            f"| {p} | {t} | {s.sweep or '-'} | {len(cells)} | "
            f"{sum(c.runnable for c in cells)} | {sum(c.top1 is not None for c in cells)} |"
        )
    return 0


def cmd_mini_table1(a: argparse.Namespace) -> int:
    from analysis.mini_table1 import metric_dir, mini_table1, write

    runs = _runs(a.runs)
    for metric in a.metric:
        t = mini_table1(runs, metric=metric)
        print(t.markdown())
        if a.out:
            out = metric_dir(a.out, metric)
            print("wrote " + ", ".join(str(p) for p in write(t, out)) + "\n")
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="imix-analysis", description=__doc__, formatter_class=HelpFormatter
    )
    ap.add_argument("--reported", default=str(REPORTED_CSV), help="reported top-1 CSV")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    c = sub.add_parser(
        "collect",
        help="run dirs -> runs.{parquet,csv}, issues.csv, curves",
        formatter_class=HelpFormatter,
        description="Read every results.json (and metrics.jsonl) under the given directories.",
    )
    c.add_argument("run_dirs", nargs="+", help="sweep / run output directories (missing: warned)")
    c.add_argument("--out", default=str(DEFAULT_COLLECTED), help="output directory")
    c.add_argument("--no-curves", action="store_true", help="skip metrics.jsonl")
    c.add_argument("--show", type=int, default=20, help="issues to print")
    c.set_defaults(fn=cmd_collect)

    runs_help = "collected runs.parquet/csv or run directories (default: results/collected)"
    t = sub.add_parser(
        "table",
        help="a table of your own runs (--rows/--cols) or a paper's table (--paper)",
        formatter_class=HelpFormatter,
        description=(
            "Own runs: imix-analysis table --runs multirun/mine --rows method --cols mix "
            "[--metric knn_top1] [--where domain=digits seed=0,1]: mean ± std (n) per cell, "
            "Δ against the mix=none column. Papers: --paper imix --table 'Table 1' "
            "(names are case-insensitive; an unknown one lists the valid ones)."
        ),
    )
    t.add_argument("--runs", nargs="+", help=runs_help)
    t.add_argument(
        "--rows", nargs="+", help="run fields for the rows, e.g. method domain (default: swept)"
    )
    t.add_argument("--cols", nargs="+", help="run fields for the columns (default: mix)")
    t.add_argument(
        "--metric", default="linear_top1", choices=METRIC_CHOICES, help="top-1 to tabulate"
    )
    t.add_argument(
        "--where",
        nargs="+",
        metavar="KEY=VALUE[,VALUE]",
        help="keep only runs whose field KEY has one of the VALUEs",
    )
    t.add_argument("--name", help="file name for --rows/--cols tables (default: from the axes)")
    t.add_argument("--paper", help="paper of a reported table (see `imix-analysis list`)")
    t.add_argument("--table", help="table name within --paper (default: all of the paper's)")
    t.add_argument("--all", action="store_true", help="every table in the reported data")
    t.add_argument(
        "--out", default=str(DEFAULT_TABLES), help="where .md/.tex/.csv go ('' = write nothing)"
    )
    t.add_argument("--latex", action="store_true", help="also print the paper-ready LaTeX table")
    t.add_argument("--caption", help="LaTeX caption (default: the table's title)")
    t.add_argument("--label", help="LaTeX label (default: tab:<paper>_<table>)")
    t.add_argument(
        "--no-reported", action="store_true", help="paper tables: leave the reported row out"
    )
    t.add_argument("--tol", type=float, default=0.5, help="band (pp) for the cell verdicts")
    t.set_defaults(fn=cmd_table)

    st = sub.add_parser(
        "status",
        help="per sweep and cell: ok / running / failed / preempted / lost, reasons, time left",
        formatter_class=HelpFormatter,
        description=(
            "A running run whose heartbeat (else results.json / metrics.jsonl mtime) is older "
            "than 3 x its heartbeat interval (at least 5 minutes) is shown as lost."
        ),
    )
    st.add_argument("dirs", nargs="+", help="sweep directories (or directories of sweeps)")
    st.add_argument("--max-cells", type=int, default=200, help="cells listed per sweep")
    st.set_defaults(fn=cmd_status)

    s = sub.add_parser(
        "summary", help="verdict for every reported cell", formatter_class=HelpFormatter
    )
    s.add_argument("--paper", help="only this paper's cells")
    s.add_argument("--runs", nargs="+", help=runs_help)
    s.add_argument("--tol", type=float, default=0.5, help="band (pp) where the paper prints no std")
    s.add_argument("--std-k", type=float, default=1.0, help="band = K x the paper's std")
    s.add_argument("--out", default=str(DEFAULT_TABLES), help="output directory ('' = none)")
    s.set_defaults(fn=cmd_summary)

    p = sub.add_parser(
        "plot", help="top-1 vs epochs, learning curves, i-Mix gain", formatter_class=HelpFormatter
    )
    p.add_argument("--runs", nargs="+", help=runs_help)
    p.add_argument("--curves", help="curves.parquet/csv (default: beside the runs)")
    p.add_argument("--out", default=str(DEFAULT_FIGURES), help="output directory")
    p.add_argument(
        "--kind",
        nargs="+",
        default=["epochs", "curves", "gain"],
        choices=["epochs", "curves", "gain"],
        help="figures to draw",
    )
    p.add_argument("--by", default="backbone", help="x axis of the gain plot (a runs column)")
    p.add_argument(
        "--where",
        nargs="+",
        metavar="KEY=VALUE[,VALUE]",
        help="plot only runs whose field KEY has one of the VALUEs",
    )
    p.add_argument(
        "--facet",
        default="domain",
        help="learning curves: one figure per value of this runs column",
    )
    p.add_argument(
        "--max-legend", type=int, default=12, help="legend entries (and lines) per panel at most"
    )
    p.add_argument(
        "--format",
        nargs="+",
        default=["png", "pdf"],
        choices=["png", "pdf", "svg"],
        help="file formats",
    )
    p.set_defaults(fn=cmd_plot)

    ls = sub.add_parser(
        "list", help="reported tables and the sweeps that run them", formatter_class=HelpFormatter
    )
    ls.set_defaults(fn=cmd_list)

    mt = sub.add_parser(
        "mini-table1",
        help="the CPU mini Table 1 (paired tests) and gain plot",
        formatter_class=HelpFormatter,
    )
    mt.add_argument("--runs", nargs="+", help=runs_help)
    mt.add_argument(
        "--metric",
        nargs="+",
        default=["linear_top1", "knn_top1"],
        choices=["linear_top1", "knn_top1", "fewshot_top1"],
        help="metrics to tabulate (the first goes to --out, the others to --out/<metric>)",
    )
    mt.add_argument("--out", default=str(Path("results") / "mini_table1"), help="output directory")
    mt.set_defaults(fn=cmd_mini_table1)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    try:
        return int(a.fn(a) or 0)
    except BrokenPipeError:
        # `imix-analysis ... | head`: the reader is gone; end quietly, as the shell tools do.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
