"""The benchmark's report: its fields, the markdown it prints and the targets it checks."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from imix_sweeps.bench.measure import StepResult

# Targets (the GPU ones are evaluated only on a CUDA device at batch 512).
TARGET_DATA_SPEEDUP = 10.0  # device pairs/s over reference pairs/s, same device, same workers
TARGET_EPOCH_S = 6.0  # CIFAR-10 epoch incl. kNN monitor, batch 512, one H100
TARGET_EPOCH_SPEEDUP = 4.0  # reference epoch time / device epoch time
TARGET_GPU_BUSY = 0.90
TARGET_PEAK_GB = 8.0


@dataclass
class Report:
    device: str
    torch: str
    python: str
    command: str
    batch: int
    workers: int
    threads: int
    data: str
    malloc: str = ""
    pairs_per_s: dict[str, float] = field(default_factory=dict)
    pairs_per_s_rounds: dict[str, list[float]] = field(default_factory=dict)
    data_speedup: float = 0.0
    stream_pairs_per_s: dict[str, float] = field(default_factory=dict)
    stream_desc: str = ""
    training: list[StepResult] = field(default_factory=list)
    compute_step_s: float = 0.0
    knn_s: float = 0.0
    knn_measured_on: str = ""
    targets: list[tuple[str, str, str]] = field(default_factory=list)


def _fmt_bytes(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def render(rep: Report) -> str:
    lines = [
        f"device: {rep.device} | torch {rep.torch} | python {rep.python}",
        f"command: {rep.command}",
        f"data: {rep.data} | batch {rep.batch} | CPU workers {rep.workers} "
        f"| torch threads {rep.threads} | {rep.malloc}",
        "",
        "| augmentation (two views) | pairs/s |",
        "|---|---:|",
    ]
    for k, v in rep.pairs_per_s.items():
        lines.append(f"| {k} | {v:,.0f} |")
    lines.append(f"| speed-up device / reference | {rep.data_speedup:.1f}x |")
    if rep.pairs_per_s_rounds:
        lines.append("")
        lines.append("pairs/s per round (the paths take turns; the table gives the medians):")
        lines += [
            f"- {k}: " + ", ".join(f"{v:,.0f}" for v in vs)
            for k, vs in rep.pairs_per_s_rounds.items()
        ]
    if rep.stream_pairs_per_s:
        lines += ["", f"| streaming ImageNet folder ({rep.stream_desc}) | pairs/s |", "|---|---:|"]
        lines += [f"| {k} | {v:,.1f} |" for k, v in rep.stream_pairs_per_s.items()]
    lines += [
        "",
        "| training (ResNet-18 N-pair + i-Mix) | step | images/s | peak memory | "
        "CIFAR-10 epoch (50k, incl. kNN) | GPU busy (est.) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rep.training:
        busy = "n/a (CPU)" if r.gpu_busy is None else f"{100 * r.gpu_busy:.0f} %"
        lines.append(
            f"| {r.mode} | {1000 * r.step_s:.1f} ms | {r.images_per_s:,.0f} | "
            f"{_fmt_bytes(r.peak_bytes)} | {r.epoch_s:.1f} s | {busy} |"
        )
    lines.append(
        f"| compute only (resident batch) | {1000 * rep.compute_step_s:.1f} ms | "
        f"{rep.batch / rep.compute_step_s:,.0f} | | | |"
    )
    lines += [
        "",
        f"kNN monitor (k 200, 50k train / 10k test features): {rep.knn_s:.2f} s "
        f"({rep.knn_measured_on}); peak memory: {rep.training[0].peak_what if rep.training else ''}",
        "images/s: two-view pairs per second; GPU busy: compute-only step time / step time.",
        "",
        "| target | result | status |",
        "|---|---|---|",
    ]
    lines += [f"| {t} | {r} | {s} |" for t, r, s in rep.targets]
    return "\n".join(lines)


def check_targets(rep: Report, device: torch.device) -> None:
    t = rep.targets
    ok = rep.data_speedup >= TARGET_DATA_SPEEDUP
    t.append(
        (
            f"data path >= {TARGET_DATA_SPEEDUP:.0f}x reference pairs/s (same device, same workers)",
            f"{rep.data_speedup:.1f}x on {device.type}",
            "met" if ok else "not met",
        )
    )
    by_mode = {r.mode: r for r in rep.training}
    gpu = device.type == "cuda" and rep.batch == 512
    why = (
        "GPU target, not measured (this run is on a CPU)"
        if device.type != "cuda"
        else "GPU target, not measured (needs --batch 512)"
    )
    dev_r, ref_r = by_mode.get("device"), by_mode.get("reference")
    rows = []
    if dev_r:
        rows.append(
            (
                f"CIFAR-10 epoch, batch 512, incl. kNN <= {TARGET_EPOCH_S:.0f} s on one H100",
                f"{dev_r.epoch_s:.1f} s",
                dev_r.epoch_s <= TARGET_EPOCH_S,
            )
        )
    if dev_r and ref_r:
        sp = ref_r.epoch_s / dev_r.epoch_s
        rows.append(
            (
                f"epoch >= {TARGET_EPOCH_SPEEDUP:.0f}x faster than the reference path",
                f"{sp:.1f}x",
                sp >= TARGET_EPOCH_SPEEDUP,
            )
        )
    if dev_r:
        busy = dev_r.gpu_busy
        rows.append(
            (
                f"GPU busy >= {100 * TARGET_GPU_BUSY:.0f} %",
                "n/a" if busy is None else f"{100 * busy:.0f} %",
                busy is not None and busy >= TARGET_GPU_BUSY,
            )
        )
        rows.append(
            (
                f"batch-512 peak memory < {TARGET_PEAK_GB:.0f} GB",
                _fmt_bytes(dev_r.peak_bytes),
                dev_r.peak_bytes < TARGET_PEAK_GB * 1e9,
            )
        )
    for name, result, passed in rows:
        if gpu:
            t.append((name, result, "met" if passed else "not met"))
        else:
            t.append((name, f"({result} here)", why))
