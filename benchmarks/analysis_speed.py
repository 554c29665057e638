"""Analysis speed at scale: collect, table, status and plot on N synthetic runs.

    PYTHONPATH=$PWD python benchmarks/analysis_speed.py --runs 10000 100000 [--keep DIR]

The runs come from ``benchmarks/collect_speed.py``'s generator (sweeps of 100 run dirs with
results.json + metrics.jsonl; 1% failed, 1% running, 0.5% corrupt, 5% re-runs; 20 epochs of
metrics each). For each size it times, in one process (so later steps reuse nothing but the
collected tables, as the CLI would from runs.parquet):

- ``collect``: results.json only, then with the curves;
- ``table``: ``imix-analysis table --rows domain method --cols mix`` (``analysis.grid``);
- ``status``: ``imix-analysis status`` on the collected runs (``analysis.status``), rendered;
- ``plot``: every figure (``epochs``, ``curves``, ``gain``), PNG, default legend cap.

Not a test: timings depend on the machine, its load and its file cache. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("IMIX_PROGRESS", "0")

from analysis.collect import collect  # noqa: E402
from analysis.grid import grid_table  # noqa: E402
from analysis.plots import plot_all  # noqa: E402
from analysis.status import sweep_status  # noqa: E402


def _generator():
    spec = importlib.util.spec_from_file_location(
        "collect_speed", ROOT / "benchmarks" / "collect_speed.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.generate


def bench(root: Path, n: int, epochs: int, out: Path) -> list[tuple[str, float, str]]:
    rows: list[tuple[str, float, str]] = []
    t0 = time.perf_counter()
    _generator()(root, n, epochs)
    rows.append(("generate", time.perf_counter() - t0, f"{n} run dirs"))

    t0 = time.perf_counter()
    c0 = collect([root], curves=False)
    rows.append(("collect (results.json only)", time.perf_counter() - t0, c0.describe()))
    t0 = time.perf_counter()
    c = collect([root], curves=True)
    rows.append(("collect (with curves)", time.perf_counter() - t0, f"{len(c.curves)} curve rows"))

    t0 = time.perf_counter()
    t = grid_table(c.runs, ["domain", "method"], ["mix"])
    md = t.markdown()
    t.latex()
    t.csv()
    rows.append(
        (
            "table --rows domain method --cols mix",
            time.perf_counter() - t0,
            f"{len(t.cells)} cells, {len(md.splitlines())} lines",
        )
    )

    t0 = time.perf_counter()
    st = sweep_status([root], collected=c)
    text = "".join(s.text() for s in st)
    rows.append(
        ("status", time.perf_counter() - t0, f"{len(st)} sweeps, {len(text.splitlines())} lines")
    )

    t0 = time.perf_counter()
    written = plot_all(c.runs, c.curves, out, fmt=("png",))
    rows.append(("plot (all kinds, png)", time.perf_counter() - t0, f"{len(written)} files"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--epochs", type=int, default=20, help="metrics.jsonl lines per run")
    ap.add_argument("--keep", help="generate under this directory and keep it")
    a = ap.parse_args()
    base = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="analysis_bench_"))
    print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    try:
        for n in a.runs:
            root = base / f"runs_{n}"
            rows = bench(root, n, a.epochs, base / f"figures_{n}")
            print(f"\n{n:,} runs\n\n| step | seconds | what |\n|---|---:|---|")
            for name, s, what in rows:
                print(f"| {name} | {s:.2f} | {what} |")
            sys.stdout.flush()
            if not a.keep:
                shutil.rmtree(root, ignore_errors=True)
    finally:
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
