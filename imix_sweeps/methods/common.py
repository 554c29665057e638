"""Pieces shared by the methods: step output, EMA copies, the key queue, shuffle BN."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imix_sweeps import dist
from imix_sweeps.contracts import StepOut as StepOut  # re-exported: the methods import it here


def both_directions(
    direction: Callable[[Tensor, Tensor], Tensor], xa: Tensor, xb: Tensor, symmetric: bool
) -> Tensor:
    """``direction(xa, xb)``, plus ``direction(xb, xa)`` when the loss is symmetric (summed)."""
    loss = direction(xa, xb)
    if symmetric:
        loss = loss + direction(xb, xa)
    return loss


class Encoder(nn.Module):
    """backbone -> projection head: ``[B, ...] -> [B, dim]``."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy for an EMA / momentum target: same weights, no gradients."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target = m * target + (1 - m) * online, parameters and floating buffers (BN stats are copied)."""
    for pt, po in zip(target.parameters(), online.parameters(), strict=True):
        pt.mul_(momentum).add_(po.detach(), alpha=1.0 - momentum)
    for bt, bo in zip(target.buffers(), online.buffers(), strict=True):
        bt.copy_(bo)


class KeyQueue(nn.Module):
    """A FIFO of ``size`` L2-normalised keys ``[K, D]`` (MoCo's dictionary), saved in checkpoints."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, k: Tensor) -> None:
        """Write ``k`` (gathered from every rank) at the pointer, wrapping around."""
        k = F.normalize(dist.gather(k.detach()), dim=1)
        size = self.keys.shape[0]
        n = min(k.shape[0], size)
        idx = (self.ptr + torch.arange(n, device=k.device)) % size
        self.keys[idx] = k[:n].to(self.keys.dtype)
        self.ptr.copy_((self.ptr + n) % size)


@torch.no_grad()
def shuffled_forward(
    encoder: nn.Module, x: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """MoCo's shuffle BN: the key encoder sees the batch shuffled across ranks, so BatchNorm
    statistics cannot leak which key belongs to which query. A plain forward in one process."""
    info = dist.info()
    if info.world_size == 1:
        return encoder(x)
    x_all = dist.gather(x)  # [B * W, ...]
    perm = torch.randperm(x_all.shape[0], generator=generator).to(x.device)
    dist.broadcast(perm, src=0)
    b = x.shape[0]
    mine = perm[info.rank * b : (info.rank + 1) * b]
    k = encoder(x_all[mine])
    k_all = dist.gather(k)
    unshuffle = torch.argsort(perm)
    return k_all[unshuffle][info.rank * b : (info.rank + 1) * b]
