"""The pre-training loop, readable top to bottom.

    prepare the model (device, DDP); resume from checkpoint.pt or archive an earlier attempt
    for epoch:
        for step: two views -> method(x1, x2) -> loss -> backward -> SGD step (lr per step)
        every epoch: metrics.jsonl line, kNN monitor if due, atomic checkpoint
    stop early (checkpoint kept, status "preempted") when ``should_stop()`` turns true

No host synchronisation inside a step except the finite-loss check every
``check_finite_every`` steps; epoch metrics are accumulated on the device.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from imix_sweeps import dist
from imix_sweeps.contracts import Domain, Method
from imix_sweeps.data.base import step_generator
from imix_sweeps.evaluate import extract_splits, knn_top1
from imix_sweeps.runstate import archive_attempt, write_then_replace

log = logging.getLogger("imix_sweeps.train")

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the run stops and the last good checkpoint is kept."""


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used (unreadable, or written by another config)."""


@dataclass
class TrainSpec:
    epochs: int = 10
    batch_size: int = 256  # global batch (all ranks)
    lr: float = 0.125  # after batch scaling
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: float = 5
    schedule: str = "cosine"  # cosine_epoch | cosine | step (see lr_at)
    milestones: list[int] = field(default_factory=list)  # for step: epochs where lr *= gamma
    final_lr: float = 0.0  # cosine: the lr the per-step cosine ends at
    hold_epochs: int = 0  # cosine_epoch: epochs at the full lr before the cosine starts
    gamma: float = 0.1
    seed: int = 0
    amp: bool = True  # bf16 autocast where the device supports it (CUDA)
    channels_last: bool = False
    compile: bool = False
    fused_optimizer: bool = True  # fused SGD on CUDA
    checkpoint_every: int = 1  # epochs; 0 = only at the end / on preemption
    check_finite_every: int = 10  # steps
    knn_every: int = 0  # epochs; 0 = never during training
    knn_k: int = 200
    knn_temperature: float = 0.1
    resume: bool = True
    log_every: int = 0  # steps; 0 = one line per epoch
    sync_bn: bool = False  # SyncBatchNorm under DDP (CUDA); MoCo's key encoder keeps shuffle BN
    augment_threads: int = 0  # in-memory domains: background threads augmenting the coming steps


SCHEDULES = ("cosine_epoch", "cosine", "step")


def warmup_target(spec: TrainSpec) -> float:
    """The lr the official i-Mix warm-up ramps to (main_pretext.py L221-226): with the cosine,
    ``eta_min + (lr - eta_min) * (1 + cos(pi * warm / epochs)) / 2`` with ``eta_min = 0.001 * lr``;
    with step decay, ``lr``."""
    if spec.schedule != "cosine_epoch":
        return spec.lr
    eta_min = 0.001 * spec.lr
    return eta_min + (spec.lr - eta_min) * 0.5 * (
        1.0 + math.cos(math.pi * spec.warmup_epochs / spec.epochs)
    )


def lr_at(spec: TrainSpec, epoch: float, step: int = 0, steps_per_epoch: int = 1) -> float:
    """The lr of step ``step`` (of ``steps_per_epoch``) of epoch ``epoch`` (0-based).

    ``cosine_epoch`` (official i-Mix, MoCo, Un-Mix, MixCo: ``adjust_learning_rate``,
    imix main_pretext.py L685-694): ``lr * (1 + cos(pi * (epoch - hold) / epochs)) / 2`` set once
    per epoch, over all epochs (warm-up included), no floor; ``hold_epochs`` keeps the full lr
    first (MixCo SimCLR steps its cosine only from epoch 10, simclr/pretrain.py L251-253).
    ``step``: ``lr * gamma ** #(milestones <= epoch)``, once per epoch (L690-692).
    Both warm up per step while ``epoch < warmup_epochs`` (``warmup_learning_rate``, L697-702):
    ``(step + 1 + epoch * steps) / (warmup * steps) * warmup_target``.
    ``cosine`` (SwAV's per-step schedule, UnMix_SwAV main_swav_unmix.py L193-197): linear warm-up
    from 0 over ``warmup_epochs``, then a per-step cosine over the remaining epochs to ``final_lr``.
    """
    t = epoch + step / steps_per_epoch
    w = spec.warmup_epochs
    if spec.schedule == "cosine":
        if w > 0 and t < w:
            return spec.lr * t / w
        span = max(spec.epochs - w, 1e-8)
        progress = min((t - w) / span, 1.0)
        return spec.final_lr + (spec.lr - spec.final_lr) * 0.5 * (
            1.0 + math.cos(math.pi * progress)
        )
    if spec.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {spec.schedule!r}; allowed: {', '.join(SCHEDULES)}")
    e = math.floor(t)
    if w > 0 and e < w:
        return (t + 1.0 / steps_per_epoch) / w * warmup_target(spec)
    if spec.schedule == "cosine_epoch":
        return (
            spec.lr * 0.5 * (1.0 + math.cos(math.pi * max(e - spec.hold_epochs, 0) / spec.epochs))
        )
    return spec.lr * spec.gamma ** sum(e >= m for m in spec.milestones)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same directory, fsync, then rename over
    ``path`` (``runstate.write_then_replace``, which also writes the text files)."""
    write_then_replace(path, lambda f: torch.save(obj, f), "wb")


def load_checkpoint(
    run_dir: Path, config_hash: str | None, also_accept: tuple[str, ...] = ()
) -> dict | None:
    path = run_dir / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated or corrupt file
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(e).__name__}: {e}). It was left in place; move it "
            "away to start this run from scratch, or set train.resume=false."
        ) from e
    if config_hash is not None and state.get("config_hash") not in (
        None,
        config_hash,
        *also_accept,
    ):
        raise CheckpointError(
            f"checkpoint {path} was written by a different config (hash {state.get('config_hash')}, "
            f"this run {config_hash}). Use a fresh output dir, or set train.resume=false to overwrite it."
        )
    return state


def append_metrics(run_dir: Path, row: dict) -> None:
    with open(run_dir / METRICS, "a") as f:
        f.write(json.dumps(row) + "\n")


def truncate_metrics(run_dir: Path, last_epoch: int) -> None:
    """Keep the metric lines of epochs 1..``last_epoch`` (the checkpoint we resume from), once
    each. Lines written after that checkpoint, a torn last line (a kill mid-write, a full disk)
    and other unreadable lines are dropped with a warning that names the file."""
    path = run_dir / METRICS
    if not path.exists():
        return
    keep: dict[int, str] = {}
    bad = 0
    for ln in path.read_text(errors="replace").splitlines():
        if not ln.strip():
            continue
        try:
            row = json.loads(ln)
            epoch = int(row["epoch"])
        except (ValueError, TypeError, KeyError):
            bad += 1
            continue
        if 1 <= epoch <= last_epoch:
            keep[epoch] = ln  # a doubled epoch keeps its last line
    if bad:
        log.warning(
            "%s: dropped %d unreadable line(s) (torn by a kill or a full disk); the file now "
            "holds epochs 1..%d of the checkpoint",
            path,
            bad,
            last_epoch,
        )
    text = "".join(keep[e] + "\n" for e in sorted(keep))
    if text != path.read_text(errors="replace"):
        write_then_replace(path, lambda f: f.write(text), "w")


def convert_sync_bn(model: Method) -> Method:
    """Turn the BatchNorm layers of ``model`` into SyncBatchNorm (statistics over all ranks),
    except in a key encoder that uses shuffle BN (MoCo), whose point is per-rank statistics."""
    keep = {"key_encoder"} if model.shuffle_bn else set()
    for name, child in model.named_children():
        if name not in keep:
            setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    return model


@dataclass
class TrainResult:
    final_loss: float | None
    epochs_done: int
    preempted: bool = False
    history: list[dict] = field(default_factory=list)


def build_optimizer(
    model: nn.Module, spec: TrainSpec, device: torch.device
) -> torch.optim.Optimizer:
    """SGD over the trainable parameters with ``spec``'s momentum and weight decay (fused on CUDA
    when ``spec.fused_optimizer``); the lr is set per step by ``train``."""
    params = [p for p in model.parameters() if p.requires_grad]
    kwargs: dict[str, Any] = {
        "lr": spec.lr,
        "momentum": spec.momentum,
        "weight_decay": spec.weight_decay,
    }
    if spec.fused_optimizer and device.type == "cuda":
        kwargs["fused"] = True
    return torch.optim.SGD(params, **kwargs)


def train_step(
    step_fn: Callable[..., Any],
    opt: torch.optim.Optimizer,
    x1: torch.Tensor,
    x2: torch.Tensor,
    *,
    generator: torch.Generator,
    amp_dtype: torch.dtype | None,
    channels_last: bool = False,
    index: torch.Tensor | None = None,
) -> torch.Tensor:
    """One optimisation step on a two-view batch; returns the detached float32 loss, still on
    the device (nothing here waits for the device)."""
    if channels_last and x1.dim() == 4:
        x1 = x1.contiguous(memory_format=torch.channels_last)
        x2 = x2.contiguous(memory_format=torch.channels_last)
    with torch.autocast(x1.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        extra = {} if index is None else {"index": index}  # memory-bank methods (InsDis, CMC)
        out = step_fn(x1, x2, generator=generator, **extra)
    opt.zero_grad(set_to_none=True)
    out.loss.backward()
    opt.step()
    return out.loss.detach().float()


def knn_monitor(
    model: Method,
    domain: Domain,
    spec: TrainSpec,
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> float:
    train_f, train_y, test_f, test_y = extract_splits(
        model.backbone, domain, 512, device, amp_dtype
    )
    return knn_top1(
        train_f,
        train_y,
        test_f,
        test_y,
        k=spec.knn_k,
        temperature=spec.knn_temperature,
        num_classes=domain.num_classes,
    )


def prepare_model(model: Method, spec: TrainSpec, device: torch.device) -> nn.Module:
    """Move ``model`` to the device (SyncBatchNorm, channels-last, DDP, compile as ``spec``
    asks) and return the module a step calls; ``model`` itself stays the unwrapped one."""
    info = dist.info()
    if spec.sync_bn and info.world_size > 1:
        if device.type != "cuda":
            raise ValueError(
                "train.sync_bn=true needs CUDA devices (torch's SyncBatchNorm runs on GPUs only); "
                "set train.sync_bn=false for CPU/gloo runs"
            )
        convert_sync_bn(model)
    model.to(device)
    if spec.channels_last:
        model.to(memory_format=torch.channels_last)
    ddp_model: nn.Module = model
    if info.world_size > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=False,
        )
    return torch.compile(ddp_model) if spec.compile else ddp_model  # type: ignore[return-value]


@dataclass
class StartPoint:
    """Where a run starts: epoch 0 of a fresh run, or the position of its checkpoint."""

    epoch: int = 0
    step: int = 0  # the next step of ``epoch`` (mid-epoch checkpoints, written on a stop)
    history: list[dict] = field(default_factory=list)
    # the interrupted epoch's loss sum on this rank and its number of steps, so that the resumed
    # epoch's mean is exactly the one the interrupted run would have logged
    partial_loss: tuple[float, int] = (0.0, 0)
    from_checkpoint: bool = False


def resume_or_archive(
    model: Method,
    opt: torch.optim.Optimizer,
    spec: TrainSpec,
    run_dir: Path,
    config_hash: str | None,
    accept_hashes: tuple[str, ...],
) -> StartPoint:
    """Load the run dir's checkpoint into ``model`` and ``opt`` (when ``spec.resume``), keeping
    the metric lines of its complete epochs; without one, move an earlier attempt's files to
    ``attempts/<n>/`` (rank 0). All ranks leave together."""
    info = dist.info()
    state = load_checkpoint(run_dir, config_hash, accept_hashes) if spec.resume else None
    start = StartPoint()
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = StartPoint(
            state["epoch"],
            state["step"],
            state["history"],
            replayed_partial_loss(state, info.rank, info.world_size),
            from_checkpoint=True,
        )
        if info.is_main:  # rows are numbered from 1: epochs 1..start.epoch are complete
            truncate_metrics(run_dir, start.epoch)
        log.info(
            "resumed from %s at epoch %d step %d", run_dir / CHECKPOINT, start.epoch, start.step
        )
    elif info.is_main:
        moved = archive_attempt(run_dir, (METRICS, CHECKPOINT))
        if moved is not None:
            log.warning(
                "fresh start in %s: the earlier attempt's files moved to %s", run_dir, moved
            )
    dist.barrier()
    return start


def replayed_partial_loss(state: dict, rank: int, world_size: int) -> tuple[float, int]:
    """This rank's loss sum and the step count of the epoch a mid-epoch checkpoint interrupted:
    the rank's own sum when the checkpoint kept one per rank for this world size, else the
    saved (rank 0) sum."""
    prev_sum, prev_n = state["partial_loss"]
    ranks_sums = state.get("partial_loss_ranks")
    if prev_n and ranks_sums and len(ranks_sums) == world_size:
        prev_sum = ranks_sums[rank]
    return prev_sum, prev_n


def save_checkpoint(
    run_dir: Path,
    model: Method,
    opt: torch.optim.Optimizer,
    *,
    epoch: int,
    step: int,
    history: list[dict],
    config_hash: str | None,
    device: torch.device,
    partial_loss: tuple[float, int] = (0.0, 0),
) -> None:
    """Checkpoint at ``(epoch, step)`` (rank 0 writes; all ranks leave together). Mid-epoch,
    every rank's own partial loss sum is kept (``replayed_partial_loss`` reads it back)."""
    info = dist.info()
    partial_sums = [partial_loss[0]]
    if info.world_size > 1:
        mine = torch.tensor([partial_loss[0]], dtype=torch.float64, device=device)
        partial_sums = dist.gather(mine).tolist()
    if info.is_main:
        atomic_save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "epoch": epoch,
                "step": step,
                "history": history,
                "config_hash": config_hash,
                "partial_loss": partial_loss,
                "partial_loss_ranks": partial_sums,
            },
            run_dir / CHECKPOINT,
        )
    dist.barrier()


def train(
    model: Method,
    domain: Domain,
    spec: TrainSpec,
    run_dir: Path,
    *,
    device: torch.device,
    config_hash: str | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_epoch: Callable[[dict], None] | None = None,
    accept_hashes: tuple[str, ...] = (),
) -> TrainResult:
    """Pre-train ``model`` in ``run_dir`` (resuming from its checkpoint when ``spec.resume``).

    A fresh start moves the files of an earlier attempt (``metrics.jsonl``, ``checkpoint.pt``)
    to ``attempts/<n>/`` first, so ``metrics.jsonl`` always holds this run's history once.
    ``on_epoch(row)`` is called on rank 0 after each epoch's metrics line is written. A
    checkpoint carries ``config_hash``; one carrying a hash in ``accept_hashes`` (the same
    pre-training under an older hash) is resumed too."""
    run_dir.mkdir(parents=True, exist_ok=True)
    info = dist.info()
    amp_dtype = torch.bfloat16 if (spec.amp and device.type == "cuda") else None
    if model.needs_index:  # a memory bank over the pre-training set, sized before resuming
        model.bind_num_samples(domain.num_pretrain)
    step_fn = prepare_model(model, spec, device)
    opt = build_optimizer(model, spec, device)
    steps_per_epoch = domain.steps_per_epoch(spec.batch_size, info.world_size)
    start = resume_or_archive(model, opt, spec, run_dir, config_hash, accept_hashes)
    history = start.history
    have_checkpoint = start.from_checkpoint

    def save(epoch: int, step: int, partial_loss: tuple[float, int] = (0.0, 0)) -> None:
        save_checkpoint(
            run_dir, model, opt, epoch=epoch, step=step, history=history,
            config_hash=config_hash, device=device, partial_loss=partial_loss,
        )  # fmt: skip

    model.train()
    final_loss = history[-1]["loss"] if history else None
    for epoch in range(start.epoch, spec.epochs):
        t0 = time.time()
        resumed = epoch == start.epoch
        first = start.step if resumed else 0
        prev_sum, prev_n = start.partial_loss if resumed else (0.0, 0)
        loss_sum = torch.zeros((), device=device)  # on the device: no sync inside the epoch
        loss_sum += prev_sum
        n_steps = prev_n
        batches = domain.pretrain_batches(
            epoch,
            spec.batch_size,
            seed=spec.seed,
            device=device,
            rank=info.rank,
            world_size=info.world_size,
            start_step=first,
            with_index=model.needs_index,
            prefetch=spec.augment_threads,
        )
        for step, (x1, x2, *index) in enumerate(batches, start=first):
            lr = lr_at(spec, epoch, step, steps_per_epoch)
            for group in opt.param_groups:
                group["lr"] = lr
            gen = step_generator(spec.seed, epoch, step, info.rank, "mix")
            loss = train_step(
                step_fn,
                opt,
                x1,
                x2,
                generator=gen,
                amp_dtype=amp_dtype,
                channels_last=spec.channels_last,
                index=index[0] if index else None,
            )
            loss_sum += loss
            n_steps += 1
            if spec.check_finite_every and (step + 1) % spec.check_finite_every == 0:
                _check_finite(loss_sum, epoch, step, have_checkpoint)
            if spec.log_every and info.is_main and (step + 1) % spec.log_every == 0:
                log.info(
                    "epoch %d step %d/%d loss %.4f lr %.4g",
                    epoch + 1,
                    step + 1,
                    steps_per_epoch,
                    loss.item(),
                    lr,
                )
            if should_stop():
                _check_finite(loss_sum, epoch, step, have_checkpoint)
                save(epoch, step + 1, (float(loss_sum), n_steps))
                log.info("stop requested: checkpointed at epoch %d step %d", epoch, step + 1)
                return TrainResult(final_loss, epoch, preempted=True, history=history)
        _check_finite(loss_sum, epoch, steps_per_epoch - 1, have_checkpoint)
        mean_loss = float(dist.all_reduce_mean(loss_sum / max(n_steps, 1)))
        row = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * steps_per_epoch,
            "loss": mean_loss,
            "lr": lr_at(spec, epoch, steps_per_epoch - 1, steps_per_epoch),
            "epoch_seconds": round(time.time() - t0, 3),
            "images_per_s": round(
                (n_steps - prev_n) * spec.batch_size / max(time.time() - t0, 1e-9), 1
            ),
        }
        if spec.knn_every and ((epoch + 1) % spec.knn_every == 0 or epoch + 1 == spec.epochs):
            row["knn_top1"] = knn_monitor(model, domain, spec, device, amp_dtype)
        history.append(row)
        final_loss = mean_loss
        if info.is_main:
            append_metrics(run_dir, row)
            if on_epoch is not None:
                on_epoch(row)
            log_epoch(row, history[-(epoch + 1 - start.epoch) :], spec.epochs)
        last = epoch + 1 == spec.epochs
        if last or (spec.checkpoint_every and (epoch + 1) % spec.checkpoint_every == 0):
            save(epoch + 1, 0)
            have_checkpoint = True
    return TrainResult(final_loss, spec.epochs, history=history)


def log_epoch(row: dict, this_attempt: list[dict], epochs: int) -> None:
    """The epoch's log line, with an ETA from the epochs this attempt has run."""
    knn = f" knn {row['knn_top1']:.2f}" if "knn_top1" in row else ""
    took = [r["epoch_seconds"] for r in this_attempt]
    eta = (epochs - row["epoch"]) * sum(took) / len(took)
    log.info(
        "epoch %d/%d loss %.4f lr %.4g %.1fs %.0f img/s eta %s%s",
        row["epoch"],
        epochs,
        row["loss"],
        row["lr"],
        row["epoch_seconds"],
        row["images_per_s"],
        _clock(eta),
        knn,
    )


def _clock(seconds: float) -> str:
    """``73`` -> ``1:13``, ``4000`` -> ``1:06:40``."""
    s = round(max(seconds, 0.0))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _check_finite(
    loss_sum: torch.Tensor, epoch: int, step: int, have_checkpoint: bool = True
) -> None:
    if not torch.isfinite(loss_sum):
        kept = (
            "the last good checkpoint was kept"
            if have_checkpoint
            else "no checkpoint had been written yet"
        )
        raise NonFiniteLossError(
            f"loss is not finite at epoch {epoch + 1}, by step {step + 1}; the run stopped and {kept} "
            "(try a lower lr, a higher temperature, or train.amp=false)"
        )
