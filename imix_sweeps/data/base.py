"""Domains: what a training run needs from a dataset.

``InMemoryDomain`` holds the whole dataset as tensors and augments batches on the training
device with per-sample random parameters. Data order and augmentation are pure functions of
``(seed, epoch, step, rank)``, so a resumed run replays exactly the batches it would have seen.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import TypeVar

import torch
from torch import Tensor

from imix_sweeps.contracts import Domain

AugmentFn = Callable[[Tensor, torch.Generator], Tensor]
T = TypeVar("T")


def run_ahead(fn: Callable[[int], T], items: Iterable[int], threads: int) -> Iterator[T]:
    """``fn(i)`` for each item in order; with ``threads > 0`` computed up to ``2 * threads`` items
    ahead in a thread pool. Errors surface at their item; closing the iterator cancels the rest."""
    if threads <= 0:
        for i in items:
            yield fn(i)
        return
    pool = ThreadPoolExecutor(threads, thread_name_prefix="imix-prefetch")
    it = iter(items)
    pending: deque[Future[T]] = deque()
    try:
        pending.extend(pool.submit(fn, i) for i in islice(it, 2 * threads))
        while pending:
            out = pending.popleft().result()
            pending.extend(pool.submit(fn, i) for i in islice(it, 1))
            yield out
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True)


class DataMissingError(FileNotFoundError):
    """A domain's files are not where the config says; the message says what is expected."""


def require(path: Path, what: str, how: str) -> Path:
    """Raise ``DataMissingError`` naming the expected layout unless ``path`` exists."""
    if not path.exists():
        raise DataMissingError(f"{what} not found at {path}.\nExpected: {how}")
    return path


def step_generator(*keys: int | str) -> torch.Generator:
    """A CPU generator seeded by a stable hash of ``keys`` (seed, epoch, step, rank, purpose)."""
    digest = hashlib.sha256(":".join(str(k) for k in keys).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def rank_share(order: Tensor, step: int, batch_size: int, rank: int, world_size: int) -> Tensor:
    """This rank's slice of global batch ``step`` of an epoch's sample ``order``: the ranks'
    slices partition the global batch, so a DDP step sees what one process would."""
    local = batch_size // world_size
    start = step * batch_size + rank * local
    return order[start : start + local]


@dataclass
class InMemoryDomain(Domain):
    """A dataset that fits in memory, augmented on the device.

    ``train_x``/``test_x``: raw samples (uint8 images are scaled to [0, 1] on the device);
    ``pretrain_x``: samples for pre-training when they differ from ``train_x`` (STL-10's
    unlabeled split), else ``None``; ``augment``: batched augmentation with independent draws per
    sample, called once per step on both views stacked (``two_views``); ``normalize``: applied
    after augmentation and to evaluation inputs.
    """

    name: str
    modality: str
    num_classes: int
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    augment: AugmentFn
    normalize: Callable[[Tensor], Tensor] = lambda x: x
    eval_transform: Callable[[Tensor], Tensor] = lambda x: x
    pretrain_x: Tensor | None = None
    # per-channel (mean, std) that ``normalize`` applies to images in [0, 1], for methods that
    # must undo it (CMC's colour conversion); None where inputs are not normalised images
    input_stats: tuple[list[float], list[float]] | None = None
    # the official linear evaluation's training augmentation (after ``eval_transform``, before
    # ``normalize``); None: the training split as evaluated
    linear_augment: AugmentFn | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def in_shape(self) -> list[int]:
        return list(self.eval_transform(self._to_float(self.test_x[:1])).shape[1:])

    def _to_float(self, x: Tensor) -> Tensor:
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()

    def _on(self, name: str, device: torch.device) -> Tensor:
        key = (name, str(device))
        if key not in self._cache:
            self._cache[key] = getattr(self, name).to(device)
        return self._cache[key]

    @property
    def _pretrain_name(self) -> str:
        return "train_x" if self.pretrain_x is None else "pretrain_x"

    @property
    def num_pretrain(self) -> int:
        """Number of pre-training samples (what the indices of with_index=True range over)."""
        return len(getattr(self, self._pretrain_name))

    def steps_per_epoch(self, batch_size: int, world_size: int = 1) -> int:
        per_rank = self.num_pretrain // world_size
        steps = per_rank // (batch_size // world_size)
        if steps == 0:
            raise ValueError(
                f"{self.name}: batch size {batch_size} is larger than the {self.num_pretrain} training samples"
            )
        return steps

    def epoch_order(self, epoch: int, seed: int) -> Tensor:
        return torch.randperm(self.num_pretrain, generator=step_generator(seed, epoch, "order"))

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
        """``Domain.pretrain_batches``. ``prefetch``: augment the coming steps in that many background threads while the caller
        trains on the current one (torch ops release the GIL; meant for CPU runs, with torch's
        intra-op threads set so that both together fit the cores). Each step's views depend only
        on ``(seed, epoch, step, rank)``, so the batches are the same with any ``prefetch``."""
        steps = self.steps_per_epoch(batch_size, world_size)
        order = self.epoch_order(epoch, seed).to(device)  # once per epoch: no copy inside a step
        data = self._on(self._pretrain_name, device)

        def batch(step: int) -> tuple[Tensor, ...]:
            idx = rank_share(order, step, batch_size, rank, world_size)
            x1, x2 = self.two_views(data[idx], step_generator(seed, epoch, step, rank, "augment"))
            return (x1, x2, idx) if with_index else (x1, x2)

        yield from run_ahead(batch, range(start_step, steps), prefetch)

    def without_augmentation(self) -> InMemoryDomain:
        """This domain with pre-training views that are the evaluation inputs themselves (the
        official ``--no-aug``: both views of a sample are the same, un-augmented input)."""
        ev = self.eval_transform
        return replace(self, augment=lambda x, g: ev(x), _cache={})

    def two_views(self, x: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
        """Two independently augmented, normalised views of the raw batch ``x``: one ``augment``
        call on ``[x; x]`` (every sample of it gets its own draws), so each op runs once per step."""
        views = self.normalize(self.augment(self._to_float(torch.cat((x, x))), g))
        return views[: len(x)], views[len(x) :]

    def linear_batches(
        self,
        epoch: int,
        batch_size: int,
        *,
        seed: int,
        device: torch.device,
        augment: AugmentFn | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of the official linear evaluation's training batches ``(x, y)``: the
        labelled training split in a seeded order, full batches only, each augmented by
        ``augment`` (default ``linear_augment``) with draws of ``(seed, epoch, step)``."""
        augment = augment or self.linear_augment
        xs, ys = self._on("train_x", device), self._on("train_y", device)
        order = torch.randperm(len(ys), generator=step_generator(seed, epoch, "linear")).to(device)
        for step in range(len(ys) // batch_size):
            idx = order[step * batch_size : (step + 1) * batch_size]
            x = self.eval_transform(self._to_float(xs[idx]))
            if augment is not None:
                x = augment(x, step_generator(seed, epoch, step, "linear-augment"))
            yield self.normalize(x), ys[idx]

    def eval_batches(
        self, split: str, batch_size: int, *, device: torch.device
    ) -> Iterator[tuple[Tensor, Tensor]]:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        xs, ys = self._on(f"{split}_x", device), self._on(f"{split}_y", device)
        for i in range(0, len(xs), batch_size):
            x = self.eval_transform(self._to_float(xs[i : i + batch_size]))
            yield self.normalize(x), ys[i : i + batch_size]


def standardize(
    train: Tensor, *others: Tensor, columns: Sequence[int] | slice | None = None
) -> list[Tensor]:
    """Standardise ``columns`` (all by default) with the training split's mean/std."""
    cols = slice(None) if columns is None else columns
    mean = train[:, cols].mean(0)
    std = train[:, cols].std(0)
    std = torch.where(std < 1e-6, torch.ones_like(std), std)  # constant columns stay as they are
    out = []
    for t in (train, *others):
        t = t.clone().float()
        t[:, cols] = (t[:, cols] - mean) / std
        out.append(t)
    return out
