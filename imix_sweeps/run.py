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
import shutil
import signal
import subprocess
import sys
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
    ConfigError,
    build_backbone,
    build_domain,
    build_method,
    build_mix,
    config_hash,
    loss_of,
    lr_of,
    pretrain_hash,
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
from imix_sweeps.runlock import RunLock, RunLocked
from imix_sweeps.runstate import (
    RunRecord,
    RunSignalled,
    StopSignals,
    archive_attempt,
    check_free_space,
    describe_os_error,
    remove_stale_temp_files,
    write_record,
)
from imix_sweeps.train import CHECKPOINT, TrainSpec, train

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
        "pretrain_hash": pretrain_hash(cfg),
        "cell_hash": config_hash(cfg, include_seed=False),
        "git_commit": _git_commit(),
        "experiment": cfg.experiment,
        "world_size": dist.info().world_size,
        "started_at": _now(),
        "finished_at": None,
        "run_dir": str(run_dir.resolve()),
    }


def write_results(run_dir: Path, results: dict[str, Any]) -> None:
    """Atomic write of ``results.json`` (in place on a full disk, see ``runstate``)."""
    write_record(run_dir / RESULTS, results)


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


class RunDirConflict(RuntimeError):
    """The run dir holds the record of a different run (another seed or config)."""


def _identity(record: dict[str, Any]) -> str | None:
    """The pre-training identity of a results.json (older records: their config hash)."""
    return record.get("pretrain_hash") or record.get("config_hash")


def _skipped(run_dir: Path, why: str) -> dict[str, Any]:
    return {"status": "skipped", "reason": why, "run_dir": str(run_dir.resolve())}


def run(
    cfg: DictConfig,
    run_dir: Path,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    log_path: Path | None = None,
) -> dict[str, Any]:
    """Train and evaluate one config in ``run_dir``; return (and write) its results.

    The config is validated before anything is created. Rank 0 holds the run dir's lock
    (``imix_sweeps.runlock``) for the whole run: a second launch of the same run returns
    ``status: skipped`` without touching the dir. Raises after writing ``status: failed`` (or
    ``interrupted``) when anything goes wrong. A preempted run (``should_stop``, SIGUSR1)
    returns with ``status: preempted`` and its checkpoint in place. While it runs,
    ``results.json`` carries a ``heartbeat`` refreshed every ``train.heartbeat_interval_s``.
    """
    validate(cfg)
    run_dir = Path(run_dir)
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
    lock: RunLock | None = None
    busy: str | None = None
    error: OSError | None = None
    if info.is_main:  # rank 0 owns the run dir; the other ranks follow its answer
        try:
            check_free_space(run_dir)
            lock = RunLock(run_dir).acquire()
        except RunLocked as e:
            busy = str(e)
        except OSError as e:  # a full disk, an unwritable dir: said plainly, nothing written
            error = e
    if dist.any_rank(busy is not None or error is not None):
        if error is not None:
            raise error
        why = busy or "rank 0 could not take the run dir (in use, or no space)"
        log.warning("%s", why)
        return _skipped(run_dir, why)
    signals = StopSignals().install()
    record: RunRecord | None = None
    logger: loggers.Logger = loggers.NullLogger()
    try:
        if info.is_main:
            remove_stale_temp_files(run_dir)
        previous = read_results(run_dir)  # re-read under the lock
        other = bool(
            info.is_main
            and previous
            and _identity(previous) not in (results["pretrain_hash"], results["config_hash"])
        )
        if dist.any_rank(other):  # rank 0's view (the other ranks may already see our record)
            previous = previous or {}
            if cfg.train.resume:
                raise RunDirConflict(
                    f"{run_dir} holds the record of another run ({_describe(previous)}; "
                    f"hash {_identity(previous)}, this run {results['pretrain_hash']}); it is not "
                    "overwritten. Use another output dir, or set train.resume=false to move the "
                    f"earlier run's files to {run_dir / 'attempts'}/ and start over."
                )
            if info.is_main:
                moved = archive_attempt(run_dir, (RESULTS, "metrics.jsonl", CHECKPOINT))
                log.warning("train.resume=false: the earlier run's files moved to %s", moved)
            previous = None
        if previous and previous.get("started_at"):
            results["started_at"] = previous["started_at"]
        if previous and previous.get("status") == "ok":
            why = (
                "evaluation options changed"
                if previous.get("config_hash") != results["config_hash"]
                else "skip_done=false"
            )
            log.info("%s: %s; re-evaluating the finished checkpoint", run_dir, why)
        record = RunRecord(
            run_dir,
            results,
            previous=previous,
            heartbeat_interval_s=cfg.train.heartbeat_interval_s,
            enabled=info.is_main,
        )
        record.write()
        record.start_heartbeat()
        if info.is_main:
            logger = start_logger(cfg, run_dir)
        out = _train_and_evaluate(cfg, run_dir, record, signals, should_stop, info, logger)
    except BaseException as e:
        if record is None:  # refused before the record was taken over: leave it as it is
            raise
        status = "failed"
        if isinstance(e, RunSignalled):
            status = signals.status()
            reason = f"{e.name} received; the last good checkpoint is kept (re-launch to resume)"
        elif isinstance(e, KeyboardInterrupt):
            status, reason = "interrupted", "KeyboardInterrupt (SIGINT); re-launch to resume"
        else:
            reason = describe_os_error(e, run_dir)
        record.stop_heartbeat()
        record.update(status=status, reason=reason, finished_at=_now())
        try:
            record.write()
        except OSError as werr:
            log.error("could not record the failure in %s: %s", run_dir / RESULTS, werr)
        if isinstance(e, (RunSignalled, KeyboardInterrupt)):
            log.error("run %s: %s", status, reason)
        else:
            log.error("run %s: %s\n%s", status, reason, traceback.format_exc())
        raise
    finally:
        if record is not None:
            record.stop_heartbeat()
        logger.close()
        signals.restore()
        if lock is not None:
            lock.release()
    dist.barrier()
    return out


def _describe(record: dict[str, Any]) -> str:
    keys = ("method", "mix", "domain", "seed", "epochs")
    return ", ".join(f"{k}={record.get(k)}" for k in keys if k in record) or "unknown config"


def _train_and_evaluate(
    cfg: DictConfig,
    run_dir: Path,
    record: RunRecord,
    signals: StopSignals,
    should_stop: Callable[[], bool],
    info: dist.DistInfo,
    logger: loggers.Logger,
) -> dict[str, Any]:
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
    calls = 0

    def stop() -> bool:
        nonlocal calls
        if should_stop():
            return True
        if info.world_size == 1:
            return signals.caught is not None
        calls += 1  # DDP: agree on a signal caught by any rank, every 10 steps
        return calls % 10 == 0 and dist.any_rank(signals.caught is not None)

    def on_epoch(row: dict[str, Any]) -> None:
        record.beat(row)
        logger.log_metrics(row, row["epoch"])

    signals.graceful = True
    try:
        out = train(
            method,
            domain,
            spec_of(cfg),
            run_dir,
            device=device,
            config_hash=record.data["pretrain_hash"],
            accept_hashes=(record.data["config_hash"],),
            should_stop=stop,
            on_epoch=on_epoch,
        )
    finally:
        signals.graceful = False
    record.update(final_loss=out.final_loss)
    if out.preempted:
        name = signals.caught
        if name is not None and signals.status() != "preempted":
            raise RunSignalled(name)  # recorded failed / interrupted by run(); the process ends
        why = f"{name}: " if name else ""
        record.update(
            status="preempted",
            reason=f"{why}stopped at epoch {out.epochs_done + 1} with a checkpoint; "
            "re-launch to resume",
        )
        return record.write()
    if info.is_main:
        record.update(**evaluate(cfg, method, domain, device))
    record.update(status="ok", reason=None, finished_at=_now())
    rec = record.write()
    logger.log_final({k: rec[k] for k in FINAL if rec.get(k) is not None})
    log.info("done: %s (%.1fs)", done_line(rec), rec["wall_seconds"])
    return rec


def _hydra_log_path() -> Path | None:
    try:
        hc = HydraConfig.get()
        return Path(hc.runtime.output_dir) / f"{hc.job.name}.log"
    except ValueError:
        return None


def remove_if_only_hydra(run_dir: Path, stop_at: Path) -> bool:
    """Remove ``run_dir`` when it holds nothing but what Hydra writes at job start (``.hydra/``,
    the job's log), and then its parents up to ``stop_at`` that became empty. For a job whose
    config is invalid: it leaves nothing behind."""
    try:
        names = [p.name for p in run_dir.iterdir()]
    except OSError:
        return False
    if any(n != ".hydra" and not n.endswith(".log") for n in names):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    parent = run_dir.parent
    stop_at = stop_at.resolve()
    while parent.resolve() != stop_at and stop_at in parent.resolve().parents:
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break
        parent = parent.parent
    return True


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> dict[str, Any]:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        validate(cfg)
    except ConfigError as e:
        # Hydra created the dir (and .hydra/) before calling us: take it away again.
        removed = remove_if_only_hydra(run_dir, Path.cwd())
        log.error("%s%s", e, f"\n(nothing was kept in {run_dir})" if removed else "")
        raise
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
    try:
        app()
    except RunSignalled as e:  # recorded in results.json; end like the signal would have
        print(f"imix-sweeps: stopped by {e.name}", file=sys.stderr)
        sys.exit(128 + int(getattr(signal, e.name)))


if __name__ == "__main__":
    main()
