"""The one module that wraps ``torch.distributed``.

Everything else asks this module for the rank, the world size, and collective ops, so a
single-process run never touches ``torch.distributed`` and a DDP run (launched by SLURM or
torchrun) needs no code changes elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def info() -> DistInfo:
    if not is_initialized():
        return DistInfo()
    return DistInfo(dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_world_size())


def init_from_env(backend: str | None = None) -> DistInfo:
    """Initialise the default process group from ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``
    (``env://``). Does nothing when ``WORLD_SIZE`` is unset or 1. Backend: NCCL with CUDA, else gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or is_initialized():
        return info()
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, init_method="env://")
    return info()


def destroy() -> None:
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        dist.barrier()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sends each rank the gradient of its own slice (summed over ranks)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return torch.cat(out)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad)
        b = grad.shape[0] // dist.get_world_size()
        r = dist.get_rank()
        return grad[r * b : (r + 1) * b]


def gather(x: Tensor, *, with_grad: bool = False) -> Tensor:
    """Concatenate ``x`` [B, ...] from every rank into [B * world, ...] (rank order)."""
    if not is_initialized() or dist.get_world_size() == 1:
        return x
    if with_grad:
        return _GatherWithGrad.apply(x)
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out)


def all_reduce_mean(x: Tensor) -> Tensor:
    if not is_initialized():
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / dist.get_world_size()


def broadcast(x: Tensor, src: int = 0) -> Tensor:
    if is_initialized():
        dist.broadcast(x, src)
    return x
