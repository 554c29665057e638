"""``python -m imix_sweeps.bench``: the command line, and ``main`` as its phases in order."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imix_sweeps import hostmem
from imix_sweeps.bench.cifar import (
    EPOCH_IMAGES,
    TEST_IMAGES,
    cifar_root,
    load_cifar10,
    write_synthetic_cifar10,
)
from imix_sweeps.bench.measure import (
    Trainer,
    _sync,
    resident,
    steady_pairs_per_s,
    stream_pairs_per_s,
    time_batches,
    time_trainers,
)
from imix_sweeps.bench.paths import (
    _KnnView,
    batched_views_loader,
    device_batches,
    device_domain,
    loop,
    reference_batches,
    reference_loader,
)
from imix_sweeps.bench.report import Report, check_targets, render
from imix_sweeps.data.base import InMemoryDomain
from imix_sweeps.train import TrainSpec, knn_monitor


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m imix_sweeps.bench",
        description="Device data path vs reference per-sample pipeline: throughput, step time, "
        "memory, projected CIFAR-10 epoch.",
    )
    p.add_argument(
        "--data", type=Path, default=None, help="CIFAR-10 python folder (default: synthetic)"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch", type=int, default=None, help="default 512 on CUDA, 64 on CPU")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed training steps per mode (default 50 GPU / 3 CPU)",
    )
    p.add_argument(
        "--warmup", type=int, default=None, help="untimed steps first (default 5 GPU / 1 CPU)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="CPU workers for both paths (default: CPU count, at most 8)",
    )
    p.add_argument(
        "--aug-batches",
        type=int,
        default=None,
        help="batches timed for pairs/s (default 20 GPU / at least 10 CPU)",
    )
    p.add_argument(
        "--aug-seconds",
        type=float,
        default=None,
        help="CPU: time each path for at least this long per round (default 2)",
    )
    p.add_argument(
        "--rounds", type=int, default=None, help="CPU: rounds of turns of the paths (default 3)"
    )
    p.add_argument(
        "--knn-train",
        type=int,
        default=None,
        help="train images for the kNN timing (default all on GPU, 1024 on CPU)",
    )
    p.add_argument(
        "--knn-test",
        type=int,
        default=None,
        help="test images for the kNN timing (default all on GPU, 256 on CPU)",
    )
    p.add_argument(
        "--imagenet",
        type=Path,
        default=None,
        help="also time the streaming ImageNet path on this ImageFolder root (train/, val/)",
    )
    p.add_argument(
        "--imagenet-batch", type=int, default=None, help="default 256 on CUDA, 32 on CPU"
    )
    p.add_argument("--modes", default="device,reference", help="training modes to time")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--synthetic-train", type=int, default=EPOCH_IMAGES, help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    return p.parse_args(argv)


@dataclass
class Setup:
    """What every phase shares: the device, the sizes chosen for it, the data and its domain."""

    device: torch.device
    batch: int
    workers: int
    threads: int
    steps: int
    warmup: int
    aug_batches: int
    aug_seconds: float
    rounds: int
    modes: list[str]
    root: Path
    checked: bool
    dom: InMemoryDomain
    knn_train: int
    knn_test: int
    tmp: tempfile.TemporaryDirectory | None = None

    @property
    def gpu(self) -> bool:
        return self.device.type == "cuda"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def setup(args: argparse.Namespace, argv: list[str] | None) -> tuple[Setup, Report]:
    """The device, the per-device defaults, the CIFAR-10 files (real or synthetic), the report."""
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is available")
    gpu = device.type == "cuda"
    malloc = hostmem.tune_malloc()  # process-wide, before any worker starts: both paths get it
    batch = args.batch or (512 if gpu else 64)
    workers = args.workers if args.workers is not None else min(8, os.cpu_count() or 1)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in ("device", "reference"):
            raise SystemExit(f"--modes: unknown mode {m!r}; allowed: device, reference")
    threads = max(1, workers) if not gpu else torch.get_num_threads()
    if not gpu:
        torch.set_num_threads(threads)
    if gpu:
        torch.backends.cudnn.benchmark = True

    tmp = None
    if args.data is not None:
        root, checked, data_desc = cifar_root(args.data), True, f"CIFAR-10 at {args.data}"
    else:
        tmp = tempfile.TemporaryDirectory(prefix="imix-bench-")
        root = write_synthetic_cifar10(Path(tmp.name), n_train=args.synthetic_train)
        checked = False
        data_desc = (
            f"synthetic CIFAR-10 ({args.synthetic_train:,} train images, python-pickle format)"
        )
    train_ds = load_cifar10(root, checked=checked, train=True)
    test_ds = load_cifar10(root, checked=checked, train=False)
    knn_train = min(args.knn_train or (len(train_ds) if gpu else 1024), len(train_ds))
    knn_test = min(args.knn_test or (len(test_ds) if gpu else 256), len(test_ds))
    s = Setup(
        device=device,
        batch=batch,
        workers=workers,
        threads=threads,
        steps=args.steps or (50 if gpu else 3),
        warmup=args.warmup if args.warmup is not None else (5 if gpu else 1),
        aug_batches=args.aug_batches or (20 if gpu else 10),
        aug_seconds=args.aug_seconds if args.aug_seconds is not None else (0.0 if gpu else 2.0),
        rounds=args.rounds or 3,
        modes=modes,
        root=root,
        checked=checked,
        dom=device_domain(train_ds, test_ds, knn_test=knn_test),
        knn_train=knn_train,
        knn_test=knn_test,
        tmp=tmp,
    )
    name = torch.cuda.get_device_name(device) if gpu else (platform.processor() or "CPU")
    dev_desc = f"{device.type}: {name}" + ("" if gpu else f" ({os.cpu_count()} cores)")
    rep = Report(
        device=dev_desc,
        torch=torch.__version__,
        python=platform.python_version(),
        command="python -m imix_sweeps.bench " + " ".join(sys.argv[1:] if argv is None else argv),
        batch=batch,
        workers=workers,
        threads=threads,
        data=data_desc,
        malloc="glibc malloc tuned (imix_sweeps.hostmem)" if malloc else "malloc as is",
    )
    return s, rep


def measure_augmentation(s: Setup, rep: Report) -> tuple[Iterator, Iterator, Any]:
    """1. Augmented pairs/s of each path; returns the device batches, the reference batches
    and the reference loader, which the training phase goes on using."""
    device, batch, workers, dom = s.device, s.batch, s.workers, s.dom
    it = device_batches(dom, batch, device)
    loader = reference_loader(
        s.root, checked=s.checked, batch=batch, workers=workers, device=device
    )
    ref_it = reference_batches(loader, device)
    if s.gpu:
        time_batches(it, 1, device)  # warm-up (moves the dataset to the device)
        dev_pairs = s.aug_batches * batch / time_batches(it, s.aug_batches, device)
        rep.pairs_per_s["device (batched ops on the GPU, main process)"] = dev_pairs
        time_batches(ref_it, 1, device)  # worker start-up
        ref_pairs = s.aug_batches * batch / time_batches(ref_it, s.aug_batches, device)
        rep.pairs_per_s[f"reference: torchvision on PIL, {workers} DataLoader workers"] = ref_pairs
    else:
        # Every CPU worker computes on one core: the reference's DataLoader processes (one
        # thread each, as DataLoader sets), and the device path's batched ops either in
        # ``workers`` threads of this process (``train.augment_threads``: the ops release the
        # GIL, nothing is copied between processes) or, for comparison, in ``workers``
        # DataLoader processes (one whole batch per item, sent back through shared memory).
        # The paths take turns for ``--rounds`` rounds and each reports its median, so load
        # from other processes on a shared CPU hits them alike.
        torch.set_num_threads(1)
        ref_name = f"reference: torchvision on PIL, {workers} DataLoader workers"
        dev_name = "device path, batched ops in-process (1 thread)"
        paths: dict[str, tuple[Iterator, int]] = {dev_name: (it, 0)}
        if workers > 0:
            dev_name = f"device path, batched ops in {workers} threads (train.augment_threads)"
            paths[dev_name] = (
                device_batches(dom, batch, device, prefetch=workers),
                2 * workers,
            )
            paths[f"device path, batched ops in {workers} DataLoader worker processes"] = (
                loop(batched_views_loader(dom, batch, workers)),
                2 * workers,
            )
        paths[ref_name] = (ref_it, 2 * workers)
        for p_it, _ in paths.values():
            time_batches(p_it, 1, device)  # worker / thread start-up, first touch of the data
        samples: dict[str, list[float]] = {k: [] for k in paths}
        for _ in range(s.rounds):
            for name, (p_it, drain) in paths.items():
                samples[name].append(
                    steady_pairs_per_s(
                        p_it,
                        batch=batch,
                        drain=drain,
                        min_batches=s.aug_batches,
                        min_seconds=s.aug_seconds,
                    )
                )
        for name, v in samples.items():
            rep.pairs_per_s[name] = float(np.median(v))
        rep.pairs_per_s_rounds = {k: [round(x, 1) for x in v] for k, v in samples.items()}
        dev_pairs = rep.pairs_per_s[dev_name]
        ref_pairs = rep.pairs_per_s[ref_name]
        del paths, samples
        torch.set_num_threads(s.threads)
    log(f"device path: {dev_pairs:,.0f} pairs/s")
    log(f"reference path: {ref_pairs:,.0f} pairs/s")
    rep.data_speedup = dev_pairs / ref_pairs
    return it, ref_it, loader


def measure_streaming(args: argparse.Namespace, s: Setup, rep: Report) -> None:
    """5. (``--imagenet``) pairs/s of the streaming ImageNet domain, device vs reference."""
    ib = args.imagenet_batch or (256 if s.gpu else 32)
    rep.stream_desc = f"{args.imagenet}, 224 px, batch {ib}, {s.workers} workers" + (
        "" if s.gpu else ", device ops on 1 CPU thread"
    )
    if not s.gpu:
        torch.set_num_threads(1)  # main-process batched ops on one thread, as above
    for pipe in ("device", "reference"):
        v = stream_pairs_per_s(
            args.imagenet, pipe, batch=ib, workers=s.workers, n=s.aug_batches, device=s.device
        )
        rep.stream_pairs_per_s[pipe] = v
        log(f"imagenet {pipe}: {v:,.1f} pairs/s")
    if not s.gpu:
        torch.set_num_threads(s.threads)


def measure_training(
    args: argparse.Namespace, s: Setup, rep: Report, it: Iterator, ref_it: Iterator, loader: Any
) -> tuple[torch.nn.Module, TrainSpec]:
    """2. The training step fed by each path, and on resident batches (pure compute); returns
    the trained model and its spec for the kNN phase."""
    trainers = []
    for mode in s.modes:
        batches, mode_loader = ref_it, loader
        if mode == "device":
            batches, mode_loader = it, None
            if not s.gpu and s.workers > 0:  # as the reference: `workers` workers run ahead
                batches = device_batches(s.dom, s.batch, s.device, prefetch=s.workers)
        trainers.append(
            Trainer(
                mode,
                batches,
                device=s.device,
                batch=s.batch,
                compile_model=args.compile,
                loader=mode_loader,
            )
        )
    trainers.append(
        Trainer(
            "compute",
            resident(next(it)),
            device=s.device,
            batch=s.batch,
            compile_model=args.compile,
        )
    )
    results = time_trainers(trainers, steps=s.steps, warmup=s.warmup)
    for r in results:
        log(f"{r.mode}: {1000 * r.step_s:.1f} ms/step")
    rep.training = [r for r in results if r.mode != "compute"]
    rep.compute_step_s = results[-1].step_s
    return trainers[-1].model, trainers[-1].spec


def measure_knn(s: Setup, rep: Report, model: torch.nn.Module, spec: TrainSpec) -> None:
    """3. The kNN monitor on ``knn_train`` / ``knn_test`` images, scaled to the full splits."""
    amp = torch.bfloat16 if s.gpu else None
    view = _KnnView(s.dom, s.knn_train)
    knn_monitor(model, view, spec, s.device, amp)  # warm-up
    _sync(s.device)
    t0 = time.perf_counter()
    knn_monitor(model, view, spec, s.device, amp)
    _sync(s.device)
    measured = time.perf_counter() - t0
    scale = (EPOCH_IMAGES + TEST_IMAGES) / (s.knn_train + s.knn_test)
    rep.knn_s = measured * scale
    rep.knn_measured_on = f"measured on {s.knn_train:,} / {s.knn_test:,} images" + (
        f", scaled x{scale:.1f}" if scale != 1 else ""
    )


def project_epoch(s: Setup, rep: Report) -> None:
    """4. The projected CIFAR-10 epoch of each path, checked against the targets."""
    steps_per_epoch = EPOCH_IMAGES // s.batch
    for r in rep.training:
        r.epoch_s = steps_per_epoch * r.step_s + rep.knn_s
        if s.gpu:
            r.gpu_busy = min(1.0, rep.compute_step_s / r.step_s)
    check_targets(rep, s.device)


def main(argv: list[str] | None = None) -> Report:
    args = parse_args(argv)
    s, rep = setup(args, argv)
    it, ref_it, loader = measure_augmentation(s, rep)
    if args.imagenet is not None:
        measure_streaming(args, s, rep)
    model, spec = measure_training(args, s, rep, it, ref_it, loader)
    del loader, ref_it  # the reference workers end before the kNN phase
    measure_knn(s, rep, model, spec)
    project_epoch(s, rep)
    print(render(rep))
    if args.json:
        args.json.write_text(json.dumps(asdict(rep), indent=2))
    if s.tmp is not None:
        s.tmp.cleanup()
    return rep
