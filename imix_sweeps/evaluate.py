"""Evaluation of frozen features: linear probe, few-label probe, closed-form head, kNN monitor,
and the official linear protocol.

The fast probes extract features once (backbone in eval mode, no augmentation) and work on
those tensors on the training device. ``official_linear`` is the official i-Mix protocol
(``main_lincls.py``): it recomputes augmented training features every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imix_sweeps import augment as A
from imix_sweeps.contracts import Domain
from imix_sweeps.data.base import InMemoryDomain


@torch.no_grad()
def extract(
    backbone: nn.Module, batches, *, amp_dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor]:
    """Features ``[N, D]`` (float32) and labels ``[N]`` of every batch, backbone in eval mode."""
    was_training = backbone.training
    backbone.eval()
    feats, labels = [], []
    for x, y in batches:
        with torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            feats.append(backbone(x).float())
        labels.append(y)
    backbone.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def extract_splits(
    backbone: nn.Module,
    domain: Domain,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``train_f, train_y, test_f, test_y``: features and labels of the domain's two splits."""
    train_f, train_y = extract(
        backbone, domain.eval_batches("train", batch_size, device=device), amp_dtype=amp_dtype
    )
    test_f, test_y = extract(
        backbone, domain.eval_batches("test", batch_size, device=device), amp_dtype=amp_dtype
    )
    return train_f, train_y, test_f, test_y


def knn_top1(
    train_f: Tensor,
    train_y: Tensor,
    test_f: Tensor,
    test_y: Tensor,
    *,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    chunk: int = 1024,
) -> float:
    """Weighted kNN (InstDisc / Un-Mix monitor): cosine similarity, top-k neighbours voting with
    weight exp(sim / t). Returns top-1 in %."""
    c = int(num_classes or int(train_y.max()) + 1)
    train_f, test_f = F.normalize(train_f, dim=1), F.normalize(test_f, dim=1)
    k = min(k, train_f.shape[0])
    correct = torch.zeros((), dtype=torch.long, device=test_f.device)  # summed on the device
    for i in range(0, test_f.shape[0], chunk):
        sim = test_f[i : i + chunk] @ train_f.t()  # [b, N]
        w, idx = sim.topk(k, dim=1)  # [b, k]
        votes = torch.zeros(sim.shape[0], c, device=sim.device)
        votes.scatter_add_(1, train_y[idx], (w / temperature).exp())
        correct += (votes.argmax(1) == test_y[i : i + chunk]).sum()
    return 100.0 * correct.item() / test_f.shape[0]  # the one host synchronisation


@dataclass
class LinearProbeConfig:
    method: str = (
        "lbfgs"  # lbfgs (full batch) | sgd (mini-batch, official schedule) | pinv (closed form)
    )
    epochs: int = 100
    lr: float = 1.0
    weight_decay: float = 0.0
    batch_size: int = 256
    max_iter: int = 300


def _standardize(train_f: Tensor, *others: Tensor) -> list[Tensor]:
    mean, std = train_f.mean(0), train_f.std(0).clamp_min(1e-6)
    return [(t - mean) / std for t in (train_f, *others)]


def fit_linear(
    train_f: Tensor, train_y: Tensor, num_classes: int, cfg: LinearProbeConfig, *, seed: int = 0
) -> nn.Linear:
    """A linear classifier on (standardised) features."""
    d = train_f.shape[1]
    torch.manual_seed(seed)
    clf = nn.Linear(d, num_classes).to(train_f.device)
    if cfg.method == "pinv":
        onehot = F.one_hot(train_y, num_classes).float()
        ones = torch.ones(train_f.shape[0], 1, device=train_f.device)
        sol = torch.linalg.lstsq(torch.cat([train_f, ones], 1).cpu(), onehot.cpu()).solution.to(
            train_f.device
        )
        clf.weight.data.copy_(sol[:-1].t())
        clf.bias.data.copy_(sol[-1])
        return clf
    if cfg.method == "lbfgs":
        opt = torch.optim.LBFGS(
            clf.parameters(), lr=cfg.lr, max_iter=cfg.max_iter, line_search_fn="strong_wolfe"
        )

        def closure() -> Tensor:
            opt.zero_grad()
            loss = (
                F.cross_entropy(clf(train_f), train_y) + cfg.weight_decay * clf.weight.pow(2).sum()
            )
            loss.backward()
            return loss

        opt.step(closure)
        return clf
    if cfg.method == "sgd":
        opt = torch.optim.SGD(
            clf.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay
        )
        n = train_f.shape[0]
        steps = math.ceil(n / cfg.batch_size)
        sched = torch.optim.lr_scheduler.MultiStepLR(
            opt,
            [
                int(cfg.epochs * 0.8) * steps,
                int(cfg.epochs * 0.9) * steps,
                int(cfg.epochs * 0.95) * steps,
            ],
            0.2,
        )
        g = torch.Generator().manual_seed(seed)
        for _ in range(cfg.epochs):
            order = torch.randperm(n, generator=g).to(train_f.device)
            for i in range(0, n, cfg.batch_size):
                idx = order[i : i + cfg.batch_size]
                loss = F.cross_entropy(clf(train_f[idx]), train_y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        return clf
    raise ValueError(f"unknown linear probe method {cfg.method!r}; allowed: lbfgs, sgd, pinv")


@torch.no_grad()
def accuracy(clf: nn.Module, f: Tensor, y: Tensor) -> float:
    return 100.0 * (clf(f).argmax(1) == y).float().mean().item()


def linear_top1(
    train_f: Tensor,
    train_y: Tensor,
    test_f: Tensor,
    test_y: Tensor,
    num_classes: int,
    cfg: LinearProbeConfig,
    *,
    seed: int = 0,
) -> float:
    train_f, test_f = _standardize(train_f, test_f)
    with torch.enable_grad():
        clf = fit_linear(train_f, train_y, num_classes, cfg, seed=seed)
    return accuracy(clf, test_f, test_y)


def fewshot_top1(
    train_f: Tensor,
    train_y: Tensor,
    test_f: Tensor,
    test_y: Tensor,
    num_classes: int,
    cfg: LinearProbeConfig,
    *,
    per_class: int,
    draws: int = 5,
    seed: int = 0,
) -> float:
    """Mean linear top-1 over ``draws`` seeded subsets of ``per_class`` labelled samples per class.
    Tells representations apart where the full linear probe saturates."""
    accs = []
    for d in range(draws):
        g = torch.Generator().manual_seed(seed * 1000 + d)
        idx = []
        for c in range(num_classes):
            members = (train_y == c).nonzero().flatten().cpu()
            pick = members[torch.randperm(len(members), generator=g)[:per_class]]
            idx.append(pick)
        sel = torch.cat(idx).to(train_f.device)
        accs.append(
            linear_top1(train_f[sel], train_y[sel], test_f, test_y, num_classes, cfg, seed=seed + d)
        )
    return sum(accs) / len(accs)


# ----------------------------------------------------------------------------- official protocol
@dataclass
class OfficialLinearConfig:
    """The official linear evaluation (imix ``main_pretext.py`` L852-859 -> ``main_lincls.py``):
    one run per lr of ``lrs`` (each scaled by ``batch_size / 256``, L113), ``epochs`` of SGD
    (momentum 0.9, wd 0) on the frozen backbone (eval mode, L514-518), lr x ``gamma`` at each of
    ``milestones`` (set once per epoch, L693-699), fc initialised N(0, ``init_std``) with zero
    bias (L204-205); the best final top-1 over the lrs is reported."""

    lrs: Sequence[float] = (1.0, 3.0, 5.0, 10.0, 30.0, 50.0, 70.0)
    epochs: int = 100
    milestones: Sequence[int] = (80, 90, 95)
    gamma: float = 0.2
    batch_size: int = 256
    momentum: float = 0.9
    weight_decay: float = 0.0
    init_std: float = 0.01
    lr_batch: int | None = None  # the batch the lrs are scaled by; None: batch_size
    report: str = "last"  # last (i-Mix's log.txt) | best_epoch (MixCo's best_acc1)


def official_lr(cfg: OfficialLinearConfig, lr: float, epoch: int) -> float:
    """The lr of ``epoch`` (0-based) for grid value ``lr``: scaled by batch / 256, then decayed.
    The official tabular loaders take 512 rows a batch while the lr is scaled by the ``-b``
    argument (256), hence ``lr_batch``."""
    scaled = lr * (cfg.lr_batch or cfg.batch_size) / 256
    return scaled * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)


def init_official_fc(
    dim: int, num_classes: int, std: float, generator: torch.Generator
) -> nn.Linear:
    fc = nn.Linear(dim, num_classes)
    with torch.no_grad():
        fc.weight.normal_(0.0, std, generator=generator)
        fc.bias.zero_()
    return fc


def official_linear(
    backbone: nn.Module,
    train_batches: Callable[[int], Iterable[tuple[Tensor, Tensor]]],
    test_f: Tensor,
    test_y: Tensor,
    num_classes: int,
    cfg: OfficialLinearConfig,
    *,
    seed: int = 0,
    amp_dtype: torch.dtype | None = None,
) -> dict[float, float]:
    """Top-1 (%) on ``(test_f, test_y)`` for each lr of ``cfg.lrs``: after the last epoch
    (``report="last"``), or the best over the epochs (``"best_epoch"``).

    ``train_batches(epoch)`` yields the epoch's shuffled, augmented training batches ``(x, y)``
    (the official loaders drop the last partial batch). Every epoch the frozen ``backbone``
    (eval mode) computes raw features of those batches, and the classifiers of all lrs take one
    SGD step on each: the runs differ only in lr (the official code runs them one after the
    other, each with its own augmentation draws)."""
    if cfg.report not in ("last", "best_epoch"):
        raise ValueError(f"unknown report {cfg.report!r}; allowed: last, best_epoch")
    was_training = backbone.training
    backbone.eval()
    device = test_f.device
    g = torch.Generator().manual_seed(seed)
    best = [0.0] * len(cfg.lrs)
    heads = [
        init_official_fc(test_f.shape[1], num_classes, cfg.init_std, g).to(device) for _ in cfg.lrs
    ]
    opts = [
        torch.optim.SGD(
            h.parameters(), lr=official_lr(cfg, lr, 0), momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
        )
        for h, lr in zip(heads, cfg.lrs)
    ]  # fmt: skip
    for epoch in range(cfg.epochs):
        for opt, lr in zip(opts, cfg.lrs):
            for group in opt.param_groups:
                group["lr"] = official_lr(cfg, lr, epoch)
        for x, y in train_batches(epoch):
            with (
                torch.no_grad(),
                torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None),
            ):
                f = backbone(x).float()
            with torch.enable_grad():
                for h, opt in zip(heads, opts):
                    loss = F.cross_entropy(h(f), y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
        if cfg.report == "best_epoch":
            best = [max(b, accuracy(h, test_f, test_y)) for b, h in zip(best, heads)]
    backbone.train(was_training)
    if cfg.report == "best_epoch":
        return {float(lr): b for b, lr in zip(best, cfg.lrs)}
    return {float(lr): accuracy(h, test_f, test_y) for h, lr in zip(heads, cfg.lrs)}


LINEAR_CROPS = ("padded", "resized")


def linear_crop_augment(kind: str) -> Callable[[Tensor, torch.Generator], Tensor]:
    """A linear-evaluation training augmentation for ``[B, C, S, S]`` images in [0, 1], then a
    horizontal flip: ``padded``, RandomCrop(S, padding S/8) (i-Mix CIFAR: 32, 4); ``resized``,
    RandomResizedCrop(S) with torchvision's scale 0.08-1 (ImageNet; MixCo's ``lincls.py``
    through ``data_loader.py`` L56-59)."""
    if kind not in LINEAR_CROPS:
        raise ValueError(f"unknown linear_crop {kind!r}; allowed: {', '.join(LINEAR_CROPS)}")

    def augment(x: Tensor, g: torch.Generator) -> Tensor:
        size = x.shape[-1]
        if kind == "padded":
            x = A.random_crop_padded(x, size, max(size // 8, 1), generator=g)
            return A.random_hflip(x, generator=g)
        flip = torch.rand(x.shape[0], generator=g) < 0.5
        return A.random_resized_crop(x, size, scale=(0.08, 1.0), generator=g, hflip=flip)

    return augment


def shuffled_batches(
    domain: Domain,
    epoch: int,
    batch_size: int,
    *,
    seed: int,
    device: torch.device,
    crop: str | None = None,
) -> Iterable[tuple[Tensor, Tensor]]:
    """The epoch's linear-evaluation training batches: the domain's own (``linear_batches``).
    ``crop`` (``LINEAR_CROPS``): replaces the domain's augmentation (in-memory domains)."""
    if crop is not None:
        if not isinstance(domain, InMemoryDomain) or domain.modality != "image":
            raise ValueError(
                f"eval.linear_crop={crop} needs an in-memory image domain; {domain.name} streams "
                "its own linear-evaluation transform (set eval.linear_crop=null)"
            )
        return domain.linear_batches(
            epoch, batch_size, seed=seed, device=device, augment=linear_crop_augment(crop)
        )
    return domain.linear_batches(epoch, batch_size, seed=seed, device=device)
