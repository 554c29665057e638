"""Measure seconds per training step for the launcher's estimates (``benchmarks/step_times.csv``).

    python benchmarks/step_times.py                       # the default set, printed as CSV rows
    python benchmarks/step_times.py --append              # ... and appended to step_times.csv
    python benchmarks/step_times.py --only resnet18:3x32x32:64 --steps 5

One step = the real training step (``imix_sweeps.train.train_step``) of N-pair + i-Mix mixup
with the config tree's backbone, on random inputs of the domain's shape (the data path is not
timed). ``device`` is ``cpu`` or the CUDA device's name in lower case (e.g. ``nvidia h100 80gb
hbm3``) with ``gpu`` as the type the launcher looks up; bf16 autocast and channels-last on
GPUs, as training uses them. The median of ``--steps`` timed steps after ``--warmup``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imix_sweeps.config import build_backbone, build_method, build_mix  # noqa: E402
from imix_sweeps.data.base import step_generator  # noqa: E402
from imix_sweeps.train import TrainSpec, build_optimizer, train_step  # noqa: E402
from launchers.estimate import DOMAINS, STEP_TIMES  # noqa: E402

# backbone:input:batch, with the domain whose config composes it
DEFAULT = (
    ("digits", "small_cnn", 256),
    ("digits_tab", "mlp", 256),
    ("covtype", "mlp5", 512),
    ("cifar10", "resnet18", 32),
    ("cifar10", "resnet18", 64),
    ("cifar10", "resnet50", 32),
)
FIELDS = ("device", "backbone", "input_size", "batch", "seconds_per_step", "source")


def compose(domain: str, backbone: str, batch: int):
    from hydra import compose as hc
    from hydra import initialize_config_dir

    from imix_sweeps.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hc(
            "config",
            overrides=[
                f"domain={domain}",
                f"backbone={backbone}",
                "method=npair",
                "mix=imixup",
                f"train.batch_size={batch}",
            ],
        )


def time_step(domain: str, backbone: str, batch: int, *, steps: int, warmup: int) -> float:
    cfg = compose(domain, backbone, batch)
    shape = list(DOMAINS[domain][1])
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    torch.manual_seed(0)
    model = build_method(cfg, build_backbone(cfg, shape), build_mix(cfg)).to(device)
    if gpu and len(shape) == 3:
        model.to(memory_format=torch.channels_last)
    opt = build_optimizer(model, TrainSpec(batch_size=batch), device)
    model.train()
    x1 = torch.rand(batch, *shape, device=device)
    x2 = torch.rand(batch, *shape, device=device)
    times = []
    for i in range(warmup + steps):
        if gpu:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_step(
            model,
            opt,
            x1,
            x2,
            generator=step_generator(0, 0, i, 0, "mix"),
            amp_dtype=torch.bfloat16 if gpu else None,
            channels_last=gpu,
        ).item()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=3, help="timed steps per set-up (median)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--only", nargs="+", help="DOMAIN:BACKBONE:BATCH set-ups (default: a set)")
    ap.add_argument("--append", action="store_true", help=f"append the rows to {STEP_TIMES}")
    a = ap.parse_args(argv)
    setups = [(d, b, int(n)) for d, b, n in (s.split(":") for s in a.only or [])] or list(DEFAULT)
    gpu = torch.cuda.is_available()
    device = "gpu" if gpu else "cpu"
    what = torch.cuda.get_device_name() if gpu else f"{os.cpu_count()} CPUs"
    source = (
        f"benchmarks/step_times.py {dt.date.today().isoformat()}; {what}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); npair+imixup"
    )
    rows = []
    w = csv.DictWriter(sys.stdout, FIELDS)
    w.writeheader()
    for domain, backbone, batch in setups:
        s = time_step(domain, backbone, batch, steps=a.steps, warmup=a.warmup)
        row = {
            "device": device,
            "backbone": backbone,
            "input_size": "x".join(map(str, DOMAINS[domain][1])),
            "batch": batch,
            "seconds_per_step": f"{s:.4g}",
            "source": source,
        }
        rows.append(row)
        w.writerow(row)
        sys.stdout.flush()
    if a.append:
        new = not STEP_TIMES.is_file()
        with open(STEP_TIMES, "a", newline="") as f:
            out = csv.DictWriter(f, FIELDS)
            if new:
                out.writeheader()
            out.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
