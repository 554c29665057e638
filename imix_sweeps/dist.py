"""The one module that wraps ``torch.distributed``.

Everything else asks this module for the rank, the world size, and collective ops, so a
single-process run never touches ``torch.distributed`` and a DDP run (launched by SLURM or
torchrun) needs no code changes elsewhere.
"""

from __future__ import annotations

import datetime as dt
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


def init_from_env(backend: str | None = None, *, timeout_s: float | None = None) -> DistInfo:
    """Initialise the default process group from ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``
    (``env://``, as exported by torchrun or by submitit's ``TorchDistributedEnvironment`` in a SLURM
    task). Does nothing when ``WORLD_SIZE`` is unset or 1. Backend: NCCL with CUDA, else gloo.

    With CUDA, each task pins ``cuda:LOCAL_RANK`` (modulo the visible devices, so a task that
    sees only its own GPU uses that one) before the group is created.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or is_initialized():
        return info()
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set: a DDP task needs RANK, "
            "MASTER_ADDR and MASTER_PORT (torchrun and the SLURM launcher export them)"
        )
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"unknown torch.distributed backend {backend!r}; allowed: nccl, gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    kwargs = {}
    if timeout_s is not None:
        kwargs["timeout"] = dt.timedelta(seconds=timeout_s)
    dist.init_process_group(backend=backend, init_method="env://", **kwargs)
    return info()


def destroy() -> None:
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def any_rank(flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any rank (a MAX all-reduce of one integer).

    Every rank must call it at the same point (it is a collective); a single process just
    returns ``flag``. Used to agree on a stop request (preemption) at a step boundary."""
    if not is_initialized() or dist.get_world_size() == 1:
        return bool(flag)
    device = (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


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
