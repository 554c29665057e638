"""The two data paths the benchmark compares: the device path (the project's ``InMemoryDomain``)
and the reference per-sample torchvision pipeline in DataLoader workers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from imix_sweeps import augment as A
from imix_sweeps.bench.cifar import CIFAR_MEAN, CIFAR_STD, load_cifar10
from imix_sweeps.data.base import InMemoryDomain, step_generator


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
