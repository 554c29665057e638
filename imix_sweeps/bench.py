"""Side-by-side benchmark of the device data path and the reference per-sample pipeline.

    python -m imix_sweeps.bench [--data DIR] [--device auto|cpu|cuda] [--batch N] [--steps N]
                                [--workers N] [--aug-batches N] [--knn-train N] [--knn-test N]
                                [--aug-seconds S] [--rounds N] [--compile] [--imagenet DIR]
                                [--json PATH]

In one process, on the device it runs on, it measures

1. augmented two-view pairs per second of the CIFAR i-Mix augmentation (RandomResizedCrop(32,
   0.2-1), ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8, grayscale p 0.2, flip, normalisation):
   - ``device``: the dataset resident on the device as uint8, batches augmented there with
     per-sample parameters (``imix_sweeps.augment.contrastive_views`` through the project's
     ``InMemoryDomain``); on a CPU, where every worker computes on one core, it runs in
     ``--workers`` threads (``train.augment_threads``), and is also timed in-process on one
     thread and in ``--workers`` DataLoader worker processes;
   - ``reference``: torchvision transforms on PIL images in ``--workers`` DataLoader workers
     (the official i-Mix data path), batches copied to the device;
   on a CPU the paths take turns for ``--rounds`` rounds, each timed in steady state, and the
   medians are compared;
2. the training step of ResNet-18 (CIFAR stem) N-pair + i-Mix mixup, built with the project's
   builders and run by ``imix_sweeps.train.train_step`` (bf16 autocast, channels_last and fused
   SGD on CUDA) fed by each data path: step time, images/s, peak memory
   (``torch.cuda.max_memory_allocated`` on a GPU; peak RSS of the process, plus the loader
   workers' RSS, on a CPU), and the same step on resident pre-augmented batches (pure compute:
   the GPU-busy estimate is compute time / step time);
3. the kNN monitor (``imix_sweeps.train.knn_monitor``: features of the train and test splits,
   weighted kNN k 200) on ``--knn-train`` / ``--knn-test`` images, scaled to 50,000 / 10,000;
4. the projected CIFAR-10 epoch time (50,000 images: ``50000 // batch`` steps + the kNN
   monitor) of each path, checked against the targets;
5. with ``--imagenet DIR``: pairs/s of the streaming ImageNet domain
   (``imix_sweeps.data.images.imagenet``), ``device`` (workers crop, the rest batched on the
   device) against ``reference`` (all of it on PIL images in the workers), 224 px.

``--data DIR``: a CIFAR-10 python folder (``DIR/cifar-10-batches-py`` or the folder itself),
read with ``torchvision.datasets.CIFAR10(download=False)``. Without it a synthetic CIFAR-10 is
written in exactly that format (``data_batch_1..5``, ``test_batch``, ``batches.meta`` pickles)
to a temporary folder and read back the same way (the MD5 check of the official files is
skipped for it), so both paths start from the same files.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from imix_sweeps import augment as A
from imix_sweeps import hostmem
from imix_sweeps.backbones import resnet
from imix_sweeps.data.base import InMemoryDomain, step_generator
from imix_sweeps.methods import npair
from imix_sweeps.mix import MixStrategy, imixup
from imix_sweeps.train import TrainSpec, build_optimizer, knn_monitor, train_step

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # official i-Mix constants
CIFAR_STD = (0.2023, 0.1994, 0.2010)
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
EPOCH_IMAGES = 50_000
TEST_IMAGES = 10_000

# Targets (the GPU ones are evaluated only on a CUDA device at batch 512).
TARGET_DATA_SPEEDUP = 10.0  # device pairs/s over reference pairs/s, same device, same workers
TARGET_EPOCH_S = 6.0  # CIFAR-10 epoch incl. kNN monitor, batch 512, one H100
TARGET_EPOCH_SPEEDUP = 4.0  # reference epoch time / device epoch time
TARGET_GPU_BUSY = 0.90
TARGET_PEAK_GB = 8.0


# ----------------------------------------------------------------------------- CIFAR-10 files
def write_synthetic_cifar10(
    root: Path, n_train: int = EPOCH_IMAGES, n_test: int = TEST_IMAGES, seed: int = 0
) -> Path:
    """Write a synthetic CIFAR-10 in the python-pickle format under ``root/cifar-10-batches-py``:
    five ``data_batch_*`` files and ``test_batch`` (dicts with ``data`` uint8 ``[n, 3072]``, rows
    are the R, G, B planes of a 32x32 image, ``labels``, ``filenames``, ``batch_label``) and
    ``batches.meta`` (``label_names``, ``num_cases_per_batch``, ``num_vis``). The images are
    smooth random colour fields (upsampled 4x4 noise plus a little pixel noise), so crops,
    colour jitter and blur all change them. Returns ``root``."""
    folder = root / CIFAR_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def images(n: int) -> np.ndarray:
        coarse = torch.from_numpy(rng.random((n, 3, 4, 4), dtype=np.float32))
        fine = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear")
        fine = fine + 0.05 * torch.from_numpy(rng.standard_normal((n, 3, 32, 32), np.float32))
        return (fine.clamp(0, 1) * 255).round().to(torch.uint8).reshape(n, 3072).numpy()

    def dump(name: str, n: int, label: str, offset: int) -> None:
        entry = {
            "batch_label": label,
            "labels": rng.integers(0, 10, n).tolist(),
            "data": images(n),
            "filenames": [f"synthetic_{offset + i:06d}.png" for i in range(n)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)

    per = -(-n_train // 5)
    for i in range(5):
        lo, hi = i * per, min((i + 1) * per, n_train)
        dump(f"data_batch_{i + 1}", hi - lo, f"training batch {i + 1} of 5", lo)
    dump("test_batch", n_test, "testing batch 1 of 1", n_train)
    meta = {"label_names": CIFAR_CLASSES, "num_cases_per_batch": per, "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return root


def _cifar_class(checked: bool):
    from torchvision.datasets import CIFAR10

    if checked:
        return CIFAR10

    class SyntheticCIFAR10(CIFAR10):
        """The stock reader; only the MD5 comparison with the official files is skipped."""

        def _check_integrity(self) -> bool:
            return all(
                (Path(self.root) / self.base_folder / name).is_file()
                for name, _ in self.train_list + self.test_list
            )

        def _load_meta(self) -> None:
            with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return SyntheticCIFAR10


def cifar_root(path: Path) -> Path:
    """Accept the folder holding ``cifar-10-batches-py`` or that folder itself."""
    path = Path(path)
    if (path / CIFAR_FOLDER).is_dir():
        return path
    if path.name == CIFAR_FOLDER and path.is_dir():
        return path.parent
    raise FileNotFoundError(
        f"no CIFAR-10 python folder at {path}: expected {path / CIFAR_FOLDER}/ with data_batch_1..5, "
        "test_batch and batches.meta (the 'CIFAR-10 python version' archive, extracted)"
    )


def load_cifar10(root: Path, *, checked: bool, train: bool, transform=None):
    cls = _cifar_class(checked)
    try:
        return cls(str(root), train=train, transform=transform, download=False)
    except RuntimeError as e:
        raise RuntimeError(f"cannot read CIFAR-10 from {root / CIFAR_FOLDER}: {e}") from e


# ----------------------------------------------------------------------------- the two paths
def device_domain(train_ds, test_ds, *, knn_test: int) -> InMemoryDomain:
    """The device path: the project's ``InMemoryDomain`` holding uint8 NCHW tensors."""

    def to_tensor(ds, n: int) -> tuple[Tensor, Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(ds.data[:n])).permute(0, 3, 1, 2).contiguous()
        return x, torch.as_tensor(ds.targets[:n], dtype=torch.long)

    train_x, train_y = to_tensor(train_ds, len(train_ds))
    test_x, test_y = to_tensor(test_ds, knn_test)

    def augment(x: Tensor, g: torch.Generator) -> Tensor:
        return A.contrastive_views(x, 32, generator=g)

    dom = InMemoryDomain(
        name="cifar10-bench",
        modality="image",
        num_classes=10,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        augment=augment,
        normalize=A.Normalize(CIFAR_MEAN, CIFAR_STD),
    )
    return dom


class _KnnView:
    """The domain restricted to ``n`` training images for the kNN monitor (eval batches only)."""

    def __init__(self, dom: InMemoryDomain, n: int) -> None:
        self.dom, self.n, self.num_classes = dom, n, dom.num_classes

    def eval_batches(self, split: str, batch_size: int, *, device: torch.device):
        n = self.n if split == "train" else len(self.dom.test_x)
        seen = 0
        for x, y in self.dom.eval_batches(split, batch_size, device=device):
            if seen >= n:
                return
            take = min(n - seen, x.shape[0])
            seen += take
            yield x[:take], y[:take]


class TwoViews:
    """The official ``TwoCropsTransform``: the same transform applied twice."""

    def __init__(self, transform: Callable) -> None:
        self.transform = transform

    def __call__(self, img):
        return self.transform(img), self.transform(img)


def reference_transform():
    """The official i-Mix CIFAR pipeline on PIL images (main_pretext.py)."""
    import torchvision.transforms as T

    return T.Compose(
        [
            T.RandomResizedCrop(32, scale=(0.2, 1.0)),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(CIFAR_MEAN, CIFAR_STD),
        ]
    )


def reference_loader(root: Path, *, checked: bool, batch: int, workers: int, device):
    ds = load_cifar10(root, checked=checked, train=True, transform=TwoViews(reference_transform()))
    return torch.utils.data.DataLoader(
        ds,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )


def reference_batches(loader, device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    while True:
        for (x1, x2), _ in loader:
            yield (
                x1.to(device, non_blocking=True),
                x2.to(device, non_blocking=True),
            )


class BatchedViews(torch.utils.data.Dataset):
    """The device path's batched ops run inside DataLoader workers on the CPU: item ``step`` is the
    whole two-view batch of that step (``InMemoryDomain.pretrain_batches`` semantics), so the
    device path can be compared with the reference pipeline with the same worker processes."""

    def __init__(self, dom: InMemoryDomain, batch: int, seed: int = 0) -> None:
        self.dom, self.batch, self.seed = dom, batch, seed
        self.order = dom.epoch_order(0, seed)

    def __len__(self) -> int:
        return len(self.order) // self.batch

    def __getitem__(self, step: int) -> tuple[Tensor, Tensor]:
        if not 0 <= step < len(self):
            raise IndexError(f"step {step} out of range (0..{len(self) - 1})")
        idx = self.order[step * self.batch : (step + 1) * self.batch]
        return self.dom.two_views(
            self.dom.train_x[idx], step_generator(self.seed, 0, step, 0, "augment")
        )


def batched_views_loader(dom: InMemoryDomain, batch: int, workers: int):
    return torch.utils.data.DataLoader(
        BatchedViews(dom, batch),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        persistent_workers=workers > 0,
    )


def loop(loader) -> Iterator[tuple[Tensor, Tensor]]:
    while True:
        yield from loader


def device_batches(
    dom: InMemoryDomain, batch: int, device, prefetch: int = 0
) -> Iterator[tuple[Tensor, Tensor]]:
    """The project's in-memory path, epoch after epoch; ``prefetch``: background threads
    augmenting the coming steps (``train.augment_threads``)."""
    epoch = 0
    while True:
        yield from dom.pretrain_batches(epoch, batch, seed=0, device=device, prefetch=prefetch)
        epoch += 1


# ----------------------------------------------------------------------------- measuring
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


# ----------------------------------------------------------------------------- report
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


# ----------------------------------------------------------------------------- main
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


def main(argv: list[str] | None = None) -> Report:
    args = parse_args(argv)
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
    steps = args.steps or (50 if gpu else 3)
    warmup = args.warmup if args.warmup is not None else (5 if gpu else 1)
    aug_batches = args.aug_batches or (20 if gpu else 10)
    aug_seconds = args.aug_seconds if args.aug_seconds is not None else (0.0 if gpu else 2.0)
    rounds = args.rounds or 3
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
    dom = device_domain(train_ds, test_ds, knn_test=knn_test)

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
    log = lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True)  # noqa: E731

    # 1. augmentation throughput
    it = device_batches(dom, batch, device)
    loader = reference_loader(root, checked=checked, batch=batch, workers=workers, device=device)
    ref_it = reference_batches(loader, device)
    if gpu:
        time_batches(it, 1, device)  # warm-up (moves the dataset to the device)
        dev_pairs = aug_batches * batch / time_batches(it, aug_batches, device)
        rep.pairs_per_s["device (batched ops on the GPU, main process)"] = dev_pairs
        time_batches(ref_it, 1, device)  # worker start-up
        ref_pairs = aug_batches * batch / time_batches(ref_it, aug_batches, device)
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
        for _ in range(rounds):
            for name, (p_it, drain) in paths.items():
                samples[name].append(
                    steady_pairs_per_s(
                        p_it,
                        batch=batch,
                        drain=drain,
                        min_batches=aug_batches,
                        min_seconds=aug_seconds,
                    )
                )
        for name, v in samples.items():
            rep.pairs_per_s[name] = float(np.median(v))
        rep.pairs_per_s_rounds = {k: [round(x, 1) for x in v] for k, v in samples.items()}
        dev_pairs = rep.pairs_per_s[dev_name]
        ref_pairs = rep.pairs_per_s[ref_name]
        del paths, samples
        torch.set_num_threads(threads)
    log(f"device path: {dev_pairs:,.0f} pairs/s")
    log(f"reference path: {ref_pairs:,.0f} pairs/s")
    rep.data_speedup = dev_pairs / ref_pairs
    if args.imagenet is not None:
        ib = args.imagenet_batch or (256 if gpu else 32)
        rep.stream_desc = f"{args.imagenet}, 224 px, batch {ib}, {workers} workers" + (
            "" if gpu else ", device ops on 1 CPU thread"
        )
        if not gpu:
            torch.set_num_threads(1)  # main-process batched ops on one thread, as above
        for pipe in ("device", "reference"):
            v = stream_pairs_per_s(
                args.imagenet, pipe, batch=ib, workers=workers, n=aug_batches, device=device
            )
            rep.stream_pairs_per_s[pipe] = v
            log(f"imagenet {pipe}: {v:,.1f} pairs/s")
        if not gpu:
            torch.set_num_threads(threads)

    # 2. training steps
    trainers = []
    for mode in modes:
        batches, mode_loader = ref_it, loader
        if mode == "device":
            batches, mode_loader = it, None
            if not gpu and workers > 0:  # as the reference: `workers` workers run ahead
                batches = device_batches(dom, batch, device, prefetch=workers)
        trainers.append(
            Trainer(
                mode,
                batches,
                device=device,
                batch=batch,
                compile_model=args.compile,
                loader=mode_loader,
            )
        )
    trainers.append(
        Trainer(
            "compute", resident(next(it)), device=device, batch=batch, compile_model=args.compile
        )
    )
    results = time_trainers(trainers, steps=steps, warmup=warmup)
    for r in results:
        log(f"{r.mode}: {1000 * r.step_s:.1f} ms/step")
    rep.training = [r for r in results if r.mode != "compute"]
    rep.compute_step_s = results[-1].step_s
    model, spec = trainers[-1].model, trainers[-1].spec
    del loader, ref_it, trainers

    # 3. kNN monitor, scaled to the full splits
    amp = torch.bfloat16 if gpu else None
    view = _KnnView(dom, knn_train)
    knn_monitor(model, view, spec, device, amp)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    knn_monitor(model, view, spec, device, amp)
    _sync(device)
    measured = time.perf_counter() - t0
    scale = (EPOCH_IMAGES + TEST_IMAGES) / (knn_train + knn_test)
    rep.knn_s = measured * scale
    rep.knn_measured_on = f"measured on {knn_train:,} / {knn_test:,} images" + (
        f", scaled x{scale:.1f}" if scale != 1 else ""
    )

    # 4. projected epoch and targets
    steps_per_epoch = EPOCH_IMAGES // batch
    for r in rep.training:
        r.epoch_s = steps_per_epoch * r.step_s + rep.knn_s
        if gpu:
            r.gpu_busy = min(1.0, rep.compute_step_s / r.step_s)
    check_targets(rep, device)
    text = render(rep)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(asdict(rep), indent=2))
    if tmp is not None:
        tmp.cleanup()
    return rep


if __name__ == "__main__":
    main()
