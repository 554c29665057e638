"""Timing: pairs/s of a batch iterator, the training step fed by each path, peak memory."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from imix_sweeps.backbones import resnet
from imix_sweeps.data.base import step_generator
from imix_sweeps.methods import npair
from imix_sweeps.mix import MixStrategy, imixup
from imix_sweeps.train import TrainSpec, build_optimizer, train_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:  # Linux: reset the VmHWM high-water mark of this process
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def _rss_kb(pid: int | str = "self", key: str = "VmHWM") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if pid == "self" else 0


def _peak_bytes(device: torch.device, loader=None) -> tuple[int, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device), "torch.cuda.max_memory_allocated"
    total = _rss_kb() * 1024
    workers = getattr(getattr(loader, "_iterator", None), "_workers", []) if loader else []
    for w in workers:
        total += _rss_kb(w.pid, "VmRSS") * 1024
    what = "peak RSS (process)" + (" + loader workers' RSS" if workers else "")
    return total, what


def time_batches(it: Iterator, n: int, device: torch.device) -> float:
    """Seconds for ``n`` batches of ``it`` (synchronised at both ends)."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        x1, _x2 = next(it)
    _sync(device)
    del x1
    return time.perf_counter() - t0


def steady_pairs_per_s(
    it: Iterator, *, batch: int, drain: int, min_batches: int, min_seconds: float
) -> float:
    """Steady-state pairs/s of a pipeline that works ahead (worker processes or threads): the
    ``drain`` batches it may hold ready are taken untimed first, then batches are timed until
    both ``min_batches`` and ``min_seconds`` are reached."""
    for _ in range(drain):
        next(it)
    n, t0 = 0, time.perf_counter()
    while n < min_batches or time.perf_counter() - t0 < min_seconds:
        next(it)
        n += 1
    return n * batch / (time.perf_counter() - t0)


def build_model(device: torch.device) -> torch.nn.Module:
    """ResNet-18 (CIFAR stem) N-pair + i-Mix mixup, as ``method=npair mix=imixup backbone=resnet18``."""
    backbone = resnet([3, 32, 32], "resnet18", stem="cifar")
    mix = MixStrategy(name="imixup", family="imix", fn=imixup)
    model = npair(
        backbone,
        mix,
        dim=128,
        head="mlpbn",
        hidden_dim=None,
        temperature=0.2,
        symmetric=False,
        gather="local",
        mix_temperature=0.2,
        mix_weight=1.0,
    )  # conf/method/npair.yaml with the CIFAR temperature
    return model.to(device)


@dataclass
class StepResult:
    mode: str
    steps: int
    step_s: float
    images_per_s: float
    peak_bytes: int
    peak_what: str
    epoch_s: float = 0.0
    gpu_busy: float | None = None


class Trainer:
    """One training set-up (fresh model and optimizer) fed by one data path."""

    def __init__(
        self,
        mode: str,
        batches: Iterator[tuple[Tensor, Tensor]],
        *,
        device: torch.device,
        batch: int,
        compile_model: bool,
        loader=None,
    ) -> None:
        torch.manual_seed(0)
        self.mode, self.batches, self.device, self.batch, self.loader = (
            mode,
            batches,
            device,
            batch,
            loader,
        )
        self.model = build_model(device)
        gpu = device.type == "cuda"
        self.spec = TrainSpec(batch_size=batch, lr=0.125 * batch / 256, channels_last=gpu)
        if gpu:
            self.model.to(memory_format=torch.channels_last)
        self.amp = torch.bfloat16 if gpu else None
        self.opt = build_optimizer(self.model, self.spec, device)
        self.step_fn = torch.compile(self.model) if compile_model else self.model
        self.model.train()
        self.done = 0
        self.times: list[float] = []

    def run(self, n: int) -> None:
        for _ in range(n):
            x1, x2 = next(self.batches)
            train_step(
                self.step_fn,
                self.opt,
                x1,
                x2,
                generator=step_generator(0, 0, self.done, 0, "mix"),
                amp_dtype=self.amp,
                channels_last=self.spec.channels_last,
            )
            self.done += 1

    def timed(self, n: int) -> float:
        _sync(self.device)
        t0 = time.perf_counter()
        self.run(n)
        _sync(self.device)
        dt = (time.perf_counter() - t0) / n
        self.times.append(dt)
        return dt

    def result(self, step_s: float) -> StepResult:
        peak, what = _peak_bytes(self.device, self.loader)
        return StepResult(self.mode, len(self.times), step_s, self.batch / step_s, peak, what)


def time_trainers(trainers: list[Trainer], *, steps: int, warmup: int) -> list[StepResult]:
    """GPU: each set-up alone, ``steps`` steps queued back to back (mean), peak memory reset per
    set-up. CPU: the set-ups take turns one step at a time and each reports its median step, so
    that load from other processes on a shared CPU hits all of them alike (peak RSS is then the
    process' over all set-ups, plus the set-up's loader workers)."""
    if not trainers:
        return []
    device = trainers[0].device
    for t in trainers:
        t.run(warmup)
    _sync(device)
    results = []
    if device.type == "cuda":
        for t in trainers:
            _reset_peak(device)
            results.append(t.result(t.timed(steps)))
        return results
    _reset_peak(device)
    for _ in range(steps):
        for t in trainers:
            t.timed(1)
    return [t.result(float(np.median(t.times))) for t in trainers]


def resident(batch_pair: tuple[Tensor, Tensor]) -> Iterator[tuple[Tensor, Tensor]]:
    while True:
        yield batch_pair


def stream_pairs_per_s(
    root: Path, pipeline: str, *, batch: int, workers: int, n: int, device: torch.device
) -> float:
    """Pairs/s of the streaming ImageNet domain (``imix_sweeps.data.images.imagenet``):
    ``reference`` = the MoCo v2 pipeline on PIL images in the workers; ``device`` = workers
    decode and crop, colour / grayscale / blur / flip run batched on the device."""
    from imix_sweeps.data.images import imagenet

    dom = imagenet(str(root), pipeline=pipeline, workers=workers)
    n = min(n, dom.steps_per_epoch(batch) - 1)
    if n < 1:
        raise ValueError(f"--imagenet {root}: fewer than 2 batches of {batch} training images")
    it = dom.pretrain_batches(0, batch, seed=0, device=device)
    time_batches(it, 1, device)  # worker start-up
    return n * batch / time_batches(it, n, device)
