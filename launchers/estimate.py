"""Wall time and GPU-hours of a planned run, before anything is submitted.

Seconds per training step come from ``benchmarks/step_times.csv`` (one row per measurement:
``device, backbone, input_size, batch, seconds_per_step, source``; only figures that were
measured, see ``benchmarks/step_times.py``), looked up in this order:

1. ``measured``: a row for the same device type, backbone, input size and batch (several
   rows: their median);
2. ``measured, scaled``: a row for the same device type, backbone and input size at another
   batch, scaled linearly with the batch (the nearest batch is used);
3. ``model``: no row fits. seconds/step = 2 views x 3 (forward + backward) x batch x
   GFLOPs(backbone, input) / effective throughput of the device type (``THROUGHPUT``).
   The throughputs are assumptions (``cpu`` is fitted to the measured CPU rows when there are
   any), so a ``model`` estimate is a rough order of magnitude only.

A run's wall time = epochs x ceil(train samples / batch) steps x seconds/step, with the
global batch split over the job's ``nodes x tasks_per_node`` ranks (perfect scaling assumed;
evaluation at the end is not counted). GPU-hours = wall time x GPUs of the job.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

STEP_TIMES = Path(__file__).resolve().parent.parent / "benchmarks" / "step_times.csv"

# Training samples per epoch and the input shape a backbone sees, per domain of conf/domain/.
DOMAINS: dict[str, tuple[int, tuple[int, ...]]] = {
    "digits": (1_297, (1, 8, 8)),
    "digits_rgb": (1_297, (3, 8, 8)),
    "digits_tab": (1_297, (64,)),
    "cifar10": (50_000, (3, 32, 32)),
    "cifar100": (50_000, (3, 32, 32)),
    "stl10": (100_000, (3, 96, 96)),  # pre-trains on the unlabeled split
    "tiny_imagenet": (100_000, (3, 64, 64)),
    "imagenet": (1_281_167, (3, 224, 224)),
    "imagenet100": (126_689, (3, 224, 224)),
    "fashion_mnist": (60_000, (1, 28, 28)),
    "speech_commands": (51_088, (1, 32, 32)),
    "covtype": (15_120, (54,)),
    "higgs100k": (100_000, (28,)),
    "higgs1m": (1_000_000, (28,)),
}

# Forward GFLOPs (multiply-adds x 2) per image at a reference input, scaled by pixel count.
GFLOPS: dict[str, tuple[float, int]] = {  # backbone -> (GFLOPs, reference pixels H*W)
    "small_cnn": (0.0005, 64),
    "mlp": (0.0002, 1),
    "mlp5": (0.02, 1),
    "resnet18": (1.11, 32 * 32),
    "resnet34": (2.32, 32 * 32),
    "resnet50": (2.6, 32 * 32),
    "resnet18_imagenet": (3.6, 224 * 224),
    "resnet34_imagenet": (7.3, 224 * 224),
    "resnet50_imagenet": (8.2, 224 * 224),
    "alexnet": (1.4, 224 * 224),
    "alexnet_halves": (1.4, 224 * 224),
}
# Effective training throughput in TFLOP/s per device type (assumed; see the module doc).
THROUGHPUT = {"cpu": 0.05, "gpu": 60.0, "a100": 60.0, "h100": 150.0, "h200": 160.0, "v100": 20.0}


def input_size(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


@dataclass
class StepTime:
    device: str
    backbone: str
    input_size: str
    batch: int
    seconds_per_step: float
    source: str


def load_step_times(path: str | Path = STEP_TIMES) -> list[StepTime]:
    """The measured rows (a missing file: none). Rows without a number are skipped."""
    p = Path(path)
    if not p.is_file():
        return []
    out = []
    with open(p, newline="") as f:
        for r in csv.DictReader(ln for ln in f if not ln.lstrip().startswith("#")):
            try:
                s = float(r["seconds_per_step"])
            except (TypeError, ValueError):
                continue
            if not math.isfinite(s) or s <= 0:
                continue
            out.append(
                StepTime(
                    r["device"].strip().lower(),
                    r["backbone"].strip(),
                    r["input_size"].strip(),
                    int(r["batch"]),
                    s,
                    r.get("source", "").strip(),
                )
            )
    return out


def model_gflops(backbone: str, shape: Sequence[int]) -> float:
    g, ref = GFLOPS.get(backbone, (1.0, 32 * 32))
    pixels = shape[-1] * shape[-2] if len(shape) >= 2 else 1
    return g * pixels / ref


def _cpu_throughput(rows: list[StepTime]) -> float | None:
    """TFLOP/s that the measured CPU rows imply (median), for the model's cpu constant."""
    rates = []
    for r in rows:
        if r.device != "cpu" or r.backbone not in GFLOPS:
            continue
        shape = [int(x) for x in r.input_size.split("x")]
        rates.append(6 * r.batch * model_gflops(r.backbone, shape) / r.seconds_per_step / 1e3)
    return statistics.median(rates) if rates else None


@dataclass
class Estimate:
    seconds_per_step: float
    steps: int
    wall_s: float
    gpus: int
    basis: str  # measured | measured, scaled from batch N | model (...)

    @property
    def gpu_hours(self) -> float:
        return self.wall_s * self.gpus / 3600.0


def step_seconds(
    device: str,
    backbone: str,
    shape: Sequence[int],
    batch: int,
    rows: list[StepTime],
) -> tuple[float, str]:
    """Seconds per step of one rank at ``batch`` and where the figure comes from."""
    size = input_size(shape)
    same = [r for r in rows if r.device == device and r.backbone == backbone]
    same = [r for r in same if r.input_size == size]
    exact = [r.seconds_per_step for r in same if r.batch == batch]
    if exact:
        return statistics.median(exact), "measured"
    if same:
        b = min({r.batch for r in same}, key=lambda n: (abs(math.log(n / batch)), n))
        s = statistics.median(r.seconds_per_step for r in same if r.batch == b)
        return s * batch / b, f"measured, scaled from batch {b}"
    tput = THROUGHPUT.get(device, THROUGHPUT["gpu"] if device != "cpu" else THROUGHPUT["cpu"])
    how = f"assumed {tput:g} TFLOP/s"
    if device == "cpu":
        fitted = _cpu_throughput(rows)
        if fitted:
            tput, how = fitted, f"{fitted:.3g} TFLOP/s fitted to the measured CPU rows"
    s = 6 * batch * model_gflops(backbone, shape) / (tput * 1e3)
    return max(s, 1e-4), f"model ({how})"


def estimate(
    *,
    domain: str,
    backbone: str,
    epochs: int,
    batch: int,
    device: str,
    ranks: int = 1,
    gpus: int = 0,
    rows: list[StepTime] | None = None,
    shape: Sequence[int] | None = None,
    samples: int | None = None,
) -> Estimate:
    """The estimate of one run; ``device`` is the device type (``cpu``, ``gpu``, ``a100``...)."""
    rows = load_step_times() if rows is None else rows
    n, dshape = DOMAINS.get(domain, (samples or 50_000, tuple(shape or (3, 32, 32))))
    shape = tuple(shape or dshape)
    n = samples or n
    ranks = max(int(ranks), 1)
    per_rank = max(batch // ranks, 1)
    s, basis = step_seconds(device, backbone, shape, per_rank, rows)
    steps = epochs * max(n // batch, 1)
    return Estimate(s, steps, steps * s, gpus, basis)


def fmt_hours(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"
