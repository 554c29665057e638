"""Loader-based domains: the official per-sample pipelines, run in DataLoader workers.

``LoaderDomain`` satisfies the same contract as ``InMemoryDomain`` (``pretrain_batches``,
``steps_per_epoch``, ``eval_batches``, ``in_shape``, ``modality``, ``num_classes``) but
transforms one sample at a time on the CPU (torchvision transforms on PIL images, librosa on
waveforms), in ``workers`` processes with pinned memory, streaming from disk where the source
does (ImageNet folders). It is ``data.pipeline=reference`` for the in-memory domains and the
only pipeline for ImageNet-scale folders.

Exact resume: the epoch's sample order is the same seeded permutation as ``InMemoryDomain``'s,
and each view of each sample is transformed with its own seed derived from
``(seed, epoch, sample index, view)``, so a batch does not depend on worker scheduling or on
where a run was interrupted.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from imix_sweeps.contracts import Domain
from imix_sweeps.data.base import rank_share, step_generator

# (raw sample, seed) -> tensor; the transform draws all its randomness from ``seed``.
SeededTransform = Callable[[Any, int], Tensor]


class Source(Protocol):
    """Indexed raw samples (PIL images, waveforms) with integer labels."""

    labels: Sequence[int]

    def __len__(self) -> int: ...
    def load(self, i: int) -> Any: ...


def sample_seed(*keys: int | str) -> int:
    """A 63-bit seed from a stable hash of ``keys``."""
    d = hashlib.sha256(":".join(str(k) for k in keys).encode()).digest()
    return int.from_bytes(d[:8], "little") & ((1 << 63) - 1)


def torchvision_seeded(transform: Callable[[Any], Tensor]) -> SeededTransform:
    """Run a torchvision transform (torch and ``random`` draws) under a fixed seed.

    The global generators are forked, so the caller's random state is left untouched."""

    def apply(sample: Any, seed: int) -> Tensor:
        state = random.getstate()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                random.seed(seed)
                return transform(sample)
        finally:
            random.setstate(state)

    return apply


@dataclass
class ArraySource:
    """Images held as a uint8 array ``[N, H, W, C]`` (or ``[N, H, W]``), served as PIL images."""

    images: np.ndarray
    labels: Sequence[int]

    def __len__(self) -> int:
        return len(self.images)

    def load(self, i: int) -> Any:
        from PIL import Image

        a = self.images[i]
        return Image.fromarray(a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a)


@dataclass
class FileSource:
    """Image files on disk, decoded to RGB PIL images when loaded (ImageNet-scale folders)."""

    paths: Sequence[str]
    labels: Sequence[int]

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> Any:
        from PIL import Image

        with open(self.paths[i], "rb") as f:
            img = Image.open(f)
            return img.convert("RGB")


class _TwoViews(Dataset):
    def __init__(self, source: Source, transform: SeededTransform, seed: int, epoch: int) -> None:
        self.source, self.transform, self.seed, self.epoch = source, transform, seed, epoch

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        raw = self.source.load(i)
        return (
            self.transform(raw, sample_seed(self.seed, self.epoch, i, 0)),
            self.transform(raw, sample_seed(self.seed, self.epoch, i, 1)),
        )


@dataclass
class _Unseeded:
    """A deterministic transform in the ``SeededTransform`` signature."""

    transform: Callable[[Any], Tensor]

    def __call__(self, sample: Any, seed: int) -> Tensor:
        return self.transform(sample)


class _LinearTrain(Dataset):
    def __init__(self, source: Source, transform: SeededTransform, seed: int, epoch: int) -> None:
        self.source, self.transform, self.seed, self.epoch = source, transform, seed, epoch

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        x = self.transform(self.source.load(i), sample_seed(self.seed, self.epoch, i, "linear"))
        return x, int(self.source.labels[i])


class _Eval(Dataset):
    def __init__(self, source: Source, transform: Callable[[Any], Tensor]) -> None:
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.transform(self.source.load(i)), int(self.source.labels[i])


@dataclass
class LoaderDomain(Domain):
    """A domain whose samples are transformed one by one in DataLoader workers.

    ``pretrain``: the source for two-view pre-training (``None``: ``train``);
    ``train_transform(raw, seed)``: one augmented view; ``eval_transform(raw)``: deterministic.
    """

    name: str
    modality: str
    num_classes: int
    train: Source
    test: Source
    train_transform: SeededTransform
    eval_transform: Callable[[Any], Tensor]
    pretrain: Source | None = None
    # Hybrid pipelines: workers deliver uint8 crops, the rest of the augmentation runs batched
    # on the device, seeded by (seed, epoch, step, rank) as in InMemoryDomain, then ``normalize``.
    device_augment: Callable[[Tensor, torch.Generator], Tensor] | None = None
    normalize: Callable[[Tensor], Tensor] | None = None
    workers: int = 4
    pin_memory: bool | None = None  # None: when the device is CUDA
    prefetch_factor: int = 4
    input_stats: tuple[list[float], list[float]] | None = None  # as InMemoryDomain.input_stats
    # the official linear evaluation's training transform (seeded); None: ``eval_transform``
    linear_transform: SeededTransform | None = None
    _in_shape: list[int] | None = field(default=None, repr=False)

    @property
    def pretrain_source(self) -> Source:
        return self.train if self.pretrain is None else self.pretrain

    @property
    def num_pretrain(self) -> int:
        """Number of pre-training samples (what the indices of with_index=True range over)."""
        return len(self.pretrain_source)

    @property
    def in_shape(self) -> list[int]:
        if self._in_shape is None:
            self._in_shape = list(self.eval_transform(self.test.load(0)).shape)
        return self._in_shape

    def steps_per_epoch(self, batch_size: int, world_size: int = 1) -> int:
        steps = (len(self.pretrain_source) // world_size) // (batch_size // world_size)
        if steps == 0:
            raise ValueError(
                f"{self.name}: batch size {batch_size} is larger than the "
                f"{len(self.pretrain_source)} training samples"
            )
        return steps

    def epoch_order(self, epoch: int, seed: int) -> Tensor:
        n = len(self.pretrain_source)
        return torch.randperm(n, generator=step_generator(seed, epoch, "order"))

    def _loader(
        self, dataset: Dataset, batches: list[list[int]], device: torch.device
    ) -> DataLoader:
        pin = (device.type == "cuda") if self.pin_memory is None else self.pin_memory
        kw: dict[str, Any] = {}
        if self.workers > 0:
            kw.update(prefetch_factor=self.prefetch_factor, persistent_workers=False)
        return DataLoader(
            dataset, batch_sampler=batches, num_workers=self.workers, pin_memory=pin, **kw
        )

    def pretrain_batches(
        self,
        epoch: int,
        batch_size: int,
        *,
        seed: int,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        with_index: bool = False,
        prefetch: int = 0,
    ) -> Iterator[tuple[Tensor, ...]]:
        """``Domain.pretrain_batches``; ``prefetch`` is unused: the DataLoader workers already
        run ahead."""
        steps = self.steps_per_epoch(batch_size, world_size)
        order = self.epoch_order(epoch, seed)
        batches = [
            rank_share(order, s, batch_size, rank, world_size).tolist()
            for s in range(start_step, steps)
        ]
        if not batches:
            return
        ds = _TwoViews(self.pretrain_source, self.train_transform, seed, epoch)
        for step, (x1, x2) in enumerate(self._loader(ds, batches, device), start=start_step):
            x1, x2 = x1.to(device, non_blocking=True), x2.to(device, non_blocking=True)
            if self.device_augment is not None:
                g = step_generator(seed, epoch, step, rank, "augment")
                x = torch.cat((x1, x2))  # both views in one call, each sample its own draws
                x = x.float().div_(255.0) if x.dtype == torch.uint8 else x
                x = self.device_augment(x, g)
                x = self.normalize(x) if self.normalize is not None else x
                x1, x2 = x[: len(x1)], x[len(x1) :]
            if with_index:
                idx = torch.tensor(batches[step - start_step], dtype=torch.long)
                yield x1, x2, idx.to(device, non_blocking=True)
            else:
                yield x1, x2

    def without_augmentation(self) -> LoaderDomain:
        """This domain with pre-training views that are the evaluation inputs themselves (the
        official ``--no-aug``); the hybrid device stage is dropped (``eval_transform``
        normalises)."""
        return replace(
            self,
            train_transform=_Unseeded(self.eval_transform),
            device_augment=None,
            normalize=None,
        )

    def linear_batches(
        self, epoch: int, batch_size: int, *, seed: int, device: torch.device
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of the official linear evaluation's training batches: the labelled training
        split in a seeded order, full batches only, through ``linear_transform``."""
        n = len(self.train)
        order = torch.randperm(n, generator=step_generator(seed, epoch, "linear"))
        batches = [
            order[i * batch_size : (i + 1) * batch_size].tolist() for i in range(n // batch_size)
        ]
        if not batches:
            return
        transform = self.linear_transform or _Unseeded(self.eval_transform)
        ds = _LinearTrain(self.train, transform, seed, epoch)
        for x, y in self._loader(ds, batches, device):
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def eval_batches(
        self, split: str, batch_size: int, *, device: torch.device
    ) -> Iterator[tuple[Tensor, Tensor]]:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        src = self.train if split == "train" else self.test
        n = len(src)
        batches = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
        for x, y in self._loader(_Eval(src, self.eval_transform), batches, device):
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def check_pipeline(pipeline: str, allowed: Sequence[str], domain: str) -> None:
    if pipeline not in allowed:
        raise ValueError(
            f"domain {domain}: data.pipeline={pipeline!r} is not available; allowed: {', '.join(allowed)}"
        )


def root_path(root: str | Path | None, domain: str) -> Path:
    if root is None or str(root) in ("", "None"):
        raise ValueError(f"domain {domain} needs domain.root (the dataset directory)")
    return Path(root)
