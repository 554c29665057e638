"""imix-analysis (or python -m analysis): collect, table, summary, plot, list.

imix-analysis collect multirun/ outputs/ --out results/collected
imix-analysis table --paper imix --table "Table 1"        # one table
imix-analysis table --all                                 # every reported table
imix-analysis summary --tol 0.5                           # verdict for every reported cell
imix-analysis plot --out results/figures
imix-analysis list                                        # tables, their sweeps, cell counts
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from analysis import REPO_ROOT, REPORTED_CSV
from analysis.collect import COLUMNS, collect, load_runs, write

DEFAULT_COLLECTED = REPO_ROOT / "results" / "collected"
DEFAULT_TABLES = REPO_ROOT / "results" / "tables"
DEFAULT_FIGURES = REPO_ROOT / "results" / "figures"


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
    for p in paths:
        if not Path(p).exists():
            raise SystemExit(f"error: --runs {p}: no such file or directory")
        try:
            frames.append(load_runs(p))
        except ValueError as e:
            raise SystemExit(f"error: --runs {e}") from None
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def cmd_collect(a: argparse.Namespace) -> int:
    try:
        c = collect(a.run_dirs, curves=not a.no_curves)
    except FileNotFoundError as e:
        raise SystemExit(f"error: {e}") from None
    paths = write(c, a.out)
    print(c.describe())
    shown = c.issues[c.issues["kind"] != "duplicate"]
    for r in shown.head(a.show).itertuples():
        print(f"  {r.kind:9s} {r.path}: {r.detail}")
    if len(shown) > a.show:
        print(f"  ... {len(shown) - a.show} more in {Path(a.out) / 'issues.csv'}")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_table(a: argparse.Namespace) -> int:
    from analysis.reported import tables
    from analysis.tables import render, write_table

    runs = _runs(a.runs)
    if a.all:
        which = tables(a.reported)
    elif a.paper and a.table:
        which = [(a.paper, a.table)]
    elif a.paper:
        which = [(p, t) for p, t in tables(a.reported) if p == a.paper]
    else:
        raise SystemExit("error: give --paper (and --table), or --all")
    for p, t in which:
        try:
            r = render(runs, p, t, reported=a.reported)
        except KeyError as e:
            raise SystemExit(f"error: {e.args[0]}") from None
        print(r.markdown())
        if a.out:
            written = write_table(r, a.out, tol=a.tol)
            print("wrote " + ", ".join(str(x) for x in written) + "\n")
    return 0


def cmd_summary(a: argparse.Namespace) -> int:
    from analysis.tables import summary, summary_markdown

    runs = _runs(a.runs)
    try:
        df = summary(runs, paper=a.paper, tol=a.tol, std_k=a.std_k, reported=a.reported)
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

    runs = _runs(a.runs)
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
        runs, curves, a.out, kinds=a.kind, by=a.by, reported=a.reported, fmt=a.format
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


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="imix-analysis", description=__doc__.split("\n")[0])
    ap.add_argument("--reported", default=str(REPORTED_CSV), help="reported top-1 CSV")
    sub = ap.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("collect", help="run dirs -> runs.{parquet,csv}, issues.csv, curves")
    c.add_argument("run_dirs", nargs="+", help="sweep / run output directories")
    c.add_argument("--out", default=str(DEFAULT_COLLECTED))
    c.add_argument("--no-curves", action="store_true", help="skip metrics.jsonl")
    c.add_argument("--show", type=int, default=20, help="issues to print")
    c.set_defaults(fn=cmd_collect)

    runs_help = "collected runs.parquet/csv or run directories (default: results/collected)"
    t = sub.add_parser("table", help="a paper's table, ours beside reported")
    t.add_argument("--paper")
    t.add_argument("--table")
    t.add_argument("--all", action="store_true", help="every table in the reported data")
    t.add_argument("--runs", nargs="+", help=runs_help)
    t.add_argument("--out", default=str(DEFAULT_TABLES), help="where .md/.tex/.csv go ('' = none)")
    t.add_argument("--tol", type=float, default=0.5)
    t.set_defaults(fn=cmd_table)

    s = sub.add_parser("summary", help="verdict for every reported cell")
    s.add_argument("--paper")
    s.add_argument("--runs", nargs="+", help=runs_help)
    s.add_argument("--tol", type=float, default=0.5, help="band (pp) where the paper prints no std")
    s.add_argument("--std-k", type=float, default=1.0, help="band = K x the paper's std")
    s.add_argument("--out", default=str(DEFAULT_TABLES))
    s.set_defaults(fn=cmd_summary)

    p = sub.add_parser("plot", help="top-1 vs epochs, learning curves, i-Mix gain")
    p.add_argument("--runs", nargs="+", help=runs_help)
    p.add_argument("--curves", help="curves.parquet/csv (default: beside the runs)")
    p.add_argument("--out", default=str(DEFAULT_FIGURES))
    p.add_argument(
        "--kind",
        nargs="+",
        default=["epochs", "curves", "gain"],
        choices=["epochs", "curves", "gain"],
    )
    p.add_argument("--by", default="backbone", help="x axis of the gain plot (a runs column)")
    p.add_argument("--format", nargs="+", default=["png", "pdf"], choices=["png", "pdf", "svg"])
    p.set_defaults(fn=cmd_plot)

    ls = sub.add_parser("list", help="reported tables and the sweeps that run them")
    ls.set_defaults(fn=cmd_list)
    return ap


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    return int(a.fn(a) or 0)


if __name__ == "__main__":
    sys.exit(main())
