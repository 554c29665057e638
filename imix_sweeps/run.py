"""The Hydra app: ``imix-sweeps [overrides]`` or ``python -m imix_sweeps``.

One run = validate the composed config -> build domain, backbone, mix, method -> pre-train
(resuming from the run dir) -> evaluate -> ``results.json``. ``results.json`` is written at the
start (status ``running``) and at the end, also when the run fails (status ``failed`` with
the reason), so a sweep's outcome is always on disk.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from imix_sweeps import dist, hostmem, loggers
from imix_sweeps.config import (
    CONF_DIR,
    build_backbone,
    build_domain,
    build_method,
    build_mix,
    config_hash,
    loss_of,
    lr_of,
    temperature_of,
    validate,
    warmup_of,
)
from imix_sweeps.evaluate import (
    LinearProbeConfig,
    OfficialLinearConfig,
    extract_splits,
    fewshot_top1,
    knn_top1,
    linear_top1,
    official_linear,
    shuffled_batches,
)
from imix_sweeps.train import TrainSpec, atomic_save_text, train

log = logging.getLogger("imix_sweeps")

RESULTS = "results.json"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=CONF_DIR.parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() if out.returncode == 0 else None
    except Exception:
        return None


def _device(cfg: DictConfig) -> torch.device:
    want = cfg.train.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda":
        return torch.device("cuda", dist.info().local_rank)
    return torch.device(want)


def spec_of(cfg: DictConfig) -> TrainSpec:
    t, o = cfg.train, cfg.optim
    return TrainSpec(
        epochs=t.epochs,
        batch_size=t.batch_size,
        lr=lr_of(cfg),
        momentum=o.momentum,
        weight_decay=o.weight_decay,
        warmup_epochs=warmup_of(cfg),
        schedule=o.schedule,
        milestones=list(o.milestones),
        gamma=o.gamma,
        final_lr=o.final_lr,
        hold_epochs=o.hold_epochs,
        seed=cfg.seed,
        amp=t.amp,
        channels_last=t.channels_last,
        compile=t.compile,
        checkpoint_every=t.checkpoint_every,
        check_finite_every=t.check_finite_every,
        knn_every=cfg.eval.knn_every,
        knn_k=cfg.eval.knn_k,
        knn_temperature=cfg.eval.knn_temperature,
        resume=t.resume,
        log_every=t.log_every,
        sync_bn=t.sync_bn,
        augment_threads=t.augment_threads,
    )


def negatives_of(cfg: DictConfig) -> int | None:
    """The number of negatives a run contrasts with: MoCo's queue or a memory bank's draws."""
    for key in ("method.model.queue_size", "method.model.num_negatives"):
        value = OmegaConf.select(cfg, key)
        if value is not None:
            return int(value)
    return None


def base_results(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """The config-derived part of ``results.json`` (what analysis groups runs by)."""
    return {
        "method": cfg.method.name,
        "mix": cfg.mix.name,
        "domain": cfg.domain.name,
        "backbone": cfg.backbone.name,
        "seed": cfg.seed,
        "epochs": cfg.train.epochs,
        "batch_size": cfg.train.batch_size,
        "lr": lr_of(cfg),
        "temperature": temperature_of(cfg),
        "alpha": cfg.mix.alpha,
        "symmetric": OmegaConf.select(cfg, "method.model.symmetric"),
        "queue_size": negatives_of(cfg),
        "loss": loss_of(cfg),  # nce | softmax (queue / memory-bank methods), else None
        "eval": cfg.eval.linear_method if cfg.eval.linear_method == "pinv" else "linear",
        "linear_protocol": cfg.eval.linear_method,  # lbfgs | sgd | pinv | official_sgd
        "linear_top1": None,
        "linear_top1_by_lr": None,  # official_sgd: {lr: top-1}; linear_top1 is the best
        "knn_top1": None,
        "fewshot_top1": None,
        "final_loss": None,
        "wall_seconds": 0.0,
        "status": "running",
        "reason": None,
        "log_path": None,
        "config_hash": config_hash(cfg),
        "cell_hash": config_hash(cfg, include_seed=False),
        "git_commit": _git_commit(),
        "experiment": cfg.experiment,
        "world_size": dist.info().world_size,
        "started_at": _now(),
        "finished_at": None,
        "run_dir": str(run_dir.resolve()),
    }


def write_results(run_dir: Path, results: dict[str, Any]) -> None:
    atomic_save_text(json.dumps(results, indent=1, sort_keys=True) + "\n", run_dir / RESULTS)


def read_results(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / RESULTS).read_text())
    except (OSError, ValueError):
        return None


def official_linear_top1(
    cfg: DictConfig, backbone, domain, test_f, test_y, device: torch.device, amp_dtype
) -> dict[str, Any]:
    """``eval=official``: the official linear protocol (``evaluate.official_linear``), the best
    top-1 over the lr grid as ``linear_top1`` and every lr's in ``linear_top1_by_lr``."""
    e = cfg.eval
    ocfg = OfficialLinearConfig(
        lrs=list(e.linear_lrs),
        epochs=e.linear_epochs,
        milestones=list(e.linear_milestones),
        gamma=e.linear_gamma,
        batch_size=e.linear_batch_size,
        weight_decay=e.linear_weight_decay,
        init_std=e.linear_init_std,
        lr_batch=e.linear_lr_batch,
        report=e.linear_report,
    )
    by_lr = official_linear(
        backbone,
        lambda epoch: shuffled_batches(
            domain, epoch, ocfg.batch_size, seed=cfg.seed, device=device, crop=e.linear_crop
        ),
        test_f,
        test_y,
        domain.num_classes,
        ocfg,
        seed=cfg.seed,
        amp_dtype=amp_dtype,
    )
    return {
        "linear_top1": max(by_lr.values()),
        "linear_top1_by_lr": {f"{lr:g}": acc for lr, acc in by_lr.items()},
    }


def evaluate(cfg: DictConfig, model, domain, device: torch.device) -> dict[str, Any]:
    e = cfg.eval
    backbone = model.backbone
    amp_dtype = torch.bfloat16 if (cfg.train.amp and device.type == "cuda") else None
    train_f, train_y, test_f, test_y = extract_splits(
        backbone, domain, e.batch_size, device, amp_dtype
    )
    probe = LinearProbeConfig(
        method=e.linear_method,
        epochs=e.linear_epochs,
        lr=e.linear_lr,
        weight_decay=e.linear_weight_decay,
        batch_size=256,
    )
    out: dict[str, Any] = {}
    if e.linear and e.linear_method == "official_sgd":
        out.update(official_linear_top1(cfg, backbone, domain, test_f, test_y, device, amp_dtype))
    elif e.linear:
        out["linear_top1"] = linear_top1(
            train_f, train_y, test_f, test_y, domain.num_classes, probe, seed=cfg.seed
        )
    if e.knn:
        out["knn_top1"] = knn_top1(
            train_f,
            train_y,
            test_f,
            test_y,
            k=e.knn_k,
            temperature=e.knn_temperature,
            num_classes=domain.num_classes,
        )
    if e.fewshot_per_class > 0:
        out["fewshot_top1"] = fewshot_top1(
            train_f,
            train_y,
            test_f,
            test_y,
            domain.num_classes,
            probe,
            per_class=e.fewshot_per_class,
            draws=e.fewshot_draws,
            seed=cfg.seed,
        )
    return out


FINAL = ("linear_top1", "knn_top1", "fewshot_top1", "final_loss", "wall_seconds")


def done_line(results: dict[str, Any]) -> str:
    """``linear 98.60 knn 97.80`` (top-1 with two decimals; metrics not run left out)."""
    parts = [
        f"{name} {results[k]:.2f}"
        for k, name in (("linear_top1", "linear"), ("knn_top1", "knn"), ("fewshot_top1", "fewshot"))
        if isinstance(results.get(k), (int, float))
    ]
    return " ".join(parts) or "no evaluation"


def start_logger(cfg: DictConfig, run_dir: Path) -> loggers.Logger:
    """The run's ``logger`` (config group), with the config logged; none when not configured."""
    node = OmegaConf.select(cfg, "logger")
    if node is None or node.get("sink") is None:
        return loggers.NullLogger()
    logger = loggers.build(node.sink, run_dir, str(node.get("name") or "logger"))
    logger.log_config(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    return logger


def run(
    cfg: DictConfig,
    run_dir: Path,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    log_path: Path | None = None,
) -> dict[str, Any]:
    """Train and evaluate one config in ``run_dir``; return (and write) its results.

    Raises after writing ``status: failed`` when anything goes wrong. A preempted run (``should_stop``)
    returns with ``status: preempted`` and its checkpoint in place.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    info = dist.init_from_env()
    results = base_results(cfg, run_dir)
    results["log_path"] = str(log_path) if log_path else None
    previous = read_results(run_dir)
    if (
        cfg.skip_done
        and previous
        and previous.get("status") == "ok"
        and previous.get("config_hash") == results["config_hash"]
    ):
        log.info("skipping %s: results.json already says ok for this config", run_dir)
        return previous
    if previous and previous.get("started_at"):
        results["started_at"] = previous["started_at"]
    t0 = time.time() - float((previous or {}).get("wall_seconds") or 0.0)
    if info.is_main:
        write_results(run_dir, results)
    logger = start_logger(cfg, run_dir) if info.is_main else loggers.NullLogger()
    try:
        validate(cfg)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        hostmem.tune_malloc()
        torch.manual_seed(cfg.seed)
        device = _device(cfg)
        domain = build_domain(cfg)
        backbone = build_backbone(cfg, domain.in_shape)
        method = build_method(cfg, backbone, build_mix(cfg), domain)
        log.info(
            "run %s: method=%s mix=%s domain=%s backbone=%s seed=%d on %s (world %d)",
            run_dir,
            cfg.method.name,
            cfg.mix.name,
            cfg.domain.name,
            cfg.backbone.name,
            cfg.seed,
            device,
            info.world_size,
        )
        out = train(
            method,
            domain,
            spec_of(cfg),
            run_dir,
            device=device,
            config_hash=results["config_hash"],
            should_stop=should_stop,
            on_epoch=lambda row: logger.log_metrics(row, row["epoch"]),
        )
        results["final_loss"] = out.final_loss
        if out.preempted:
            results.update(status="preempted", wall_seconds=round(time.time() - t0, 2))
        else:
            if info.is_main:
                results.update(evaluate(cfg, method, domain, device))
            results.update(status="ok", wall_seconds=round(time.time() - t0, 2), finished_at=_now())
            logger.log_final({k: results[k] for k in FINAL if results.get(k) is not None})
            log.info("done: %s (%.1fs)", done_line(results), results["wall_seconds"])
    except BaseException as e:
        results.update(
            status="failed",
            reason=f"{type(e).__name__}: {e}",
            wall_seconds=round(time.time() - t0, 2),
            finished_at=_now(),
        )
        if info.is_main:
            write_results(run_dir, results)
        log.error("run failed: %s\n%s", results["reason"], traceback.format_exc())
        raise
    finally:
        logger.close()
    if info.is_main:
        write_results(run_dir, results)
    dist.barrier()
    return results


def _hydra_log_path() -> Path | None:
    try:
        hc = HydraConfig.get()
        return Path(hc.runtime.output_dir) / f"{hc.job.name}.log"
    except ValueError:
        return None


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> dict[str, Any]:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    return run(cfg, run_dir, log_path=_hydra_log_path())


def explain_main(overrides: list[str]) -> int:
    """``imix-sweeps --explain [overrides]``: print what the composed config will run, for a
    paper cell with the official value and source of each setting (``imix_sweeps.manifest``);
    nothing is trained. Returns the exit status, 0."""
    from hydra import compose, initialize_config_dir

    from imix_sweeps.manifest import cell_of, explain

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    validate(cfg)
    text, _ = explain(cfg, cell_of(overrides))
    print(text, end="")
    return 0


def main() -> None:
    """The console script; ``--explain`` prints the settings instead of running them."""
    if "--explain" in sys.argv[1:]:
        raise SystemExit(explain_main([a for a in sys.argv[1:] if a != "--explain"]))
    app()


if __name__ == "__main__":
    main()
