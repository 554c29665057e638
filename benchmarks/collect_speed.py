"""Collect speed: generate N run directories (default 10,000) and time ``analysis.collect``.

    PYTHONPATH=$PWD python benchmarks/collect_speed.py [--runs 10000] [--epochs 20] [--keep DIR]

The generated tree looks like real sweep output (sweep dirs of numbered job dirs, each with a
results.json and a metrics.jsonl) and includes what collect must survive: 1% failed, 1%
running, 0.5% corrupt results.json, and 5% re-runs of an existing config. Prints the time
with and without reading the curves. Not a test: timings depend on the machine and its cache.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.collect import collect

METHODS = ("npair", "mocov2", "byol")
MIXES = ("none", "imixup")
DOMAINS = ("cifar10", "cifar100", "speech_commands", "covtype")


def generate(root: Path, n: int, epochs: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    per_sweep = 100
    configs: list[dict] = []
    for i in range(n):
        sweep = root / f"sweep_{i // per_sweep:04d}"
        d = sweep / f"{i % per_sweep}_job"
        d.mkdir(parents=True, exist_ok=True)
        if configs and rng.random() < 0.05:  # a re-run of an earlier config
            rec = dict(rng.choice(configs))
        else:
            m, x, dom = rng.choice(METHODS), rng.choice(MIXES), rng.choice(DOMAINS)
            rec = {
                "method": m,
                "mix": x,
                "domain": dom,
                "backbone": "mlp5" if dom == "covtype" else "resnet50",
                "seed": rng.randrange(5),
                "epochs": rng.choice((500, 1000, 2000)),
                "batch_size": 256,
                "lr": 0.125,
                "temperature": 0.2,
                "alpha": None if x == "none" else 1.0,
                "symmetric": False,
                "queue_size": 4096 if m == "mocov2" else None,
                "eval": "linear",
                "config_hash": f"{i:016x}",
                "cell_hash": f"{hash((m, x, dom)) & 0xFFFFFFFF:016x}",
                "git_commit": "0" * 40,
                "experiment": "bench",
                "world_size": 1,
            }
            configs.append(rec)
        u = rng.random()
        status = "failed" if u < 0.01 else "running" if u < 0.02 else "ok"
        rec.update(
            status=status,
            reason="RuntimeError: loss is NaN" if status == "failed" else None,
            linear_top1=rng.uniform(60, 95) if status == "ok" else None,
            knn_top1=rng.uniform(50, 90) if status == "ok" else None,
            fewshot_top1=None,
            final_loss=rng.uniform(1, 5),
            wall_seconds=rng.uniform(100, 10000),
            started_at=f"2026-11-{1 + i % 28:02d}T00:00:00+00:00",
            finished_at=None if status == "running" else f"2026-11-{1 + i % 28:02d}T05:00:00+00:00",
            log_path=str(d / "run.log"),
            run_dir=str(d),
        )
        text = json.dumps(rec, indent=1, sort_keys=True)
        if rng.random() < 0.005:
            text = text[: len(text) // 2]  # a corrupt (truncated) file
        (d / "results.json").write_text(text)
        with open(d / "metrics.jsonl", "w") as f:
            for e in range(1, epochs + 1):
                f.write(
                    json.dumps(
                        {
                            "epoch": e,
                            "step": 10 * e,
                            "loss": 5.0 / e,
                            "lr": 0.1,
                            "epoch_seconds": 1.0,
                        }
                    )
                    + "\n"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=20, help="metrics.jsonl lines per run")
    ap.add_argument("--keep", help="generate into this directory and keep it")
    a = ap.parse_args()
    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="collect_bench_"))
    try:
        t0 = time.perf_counter()
        generate(root, a.runs, a.epochs)
        print(f"generated {a.runs} run dirs in {time.perf_counter() - t0:.1f}s under {root}")
        for curves in (False, True):
            t0 = time.perf_counter()
            c = collect([root], curves=curves)
            dt = time.perf_counter() - t0
            what = f"with curves ({len(c.curves)} rows)" if curves else "results.json only"
            print(f"collect {what}: {dt:.2f}s  -- {c.describe()}")
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
