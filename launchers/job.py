"""What runs inside each SLURM task: one run of a sweep as one DDP rank.

``RunJob()`` is the pickled callable that submitit executes in every task of a job:

1. exports ``RANK``/``LOCAL_RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` from the job
   environment (submitit's ``TorchDistributedEnvironment``); ``imix_sweeps.run.run`` then calls
   ``imix_sweeps.dist.init_from_env`` (NCCL on GPU, gloo on CPU) and pins the task's GPU;
2. replaces submitit's preemption handler (``USR2``) with one that only sets a flag; the
   training loop reads it through ``should_stop`` (all ranks agree with one all-reduce every
   ``stop_check_every`` steps), writes the checkpoint at that step boundary and returns;
3. rank 0 then requeues the job (``scontrol requeue``, at most ``max_requeues`` times); the
   requeued job reloads the same pickle and resumes from ``checkpoint.pt``.

Rank 0 runs through Hydra's ``run_job`` (output dir, ``.hydra/``, the run's log file,
callbacks); the other ranks call ``run`` directly and write nothing in the run dir.
A signal that arrives before training starts is handled by submitit itself: ``checkpoint``
below re-submits the same job, which resumes from whatever checkpoint exists.
"""

from __future__ import annotations

import copy
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import submitit
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from imix_sweeps import dist
from imix_sweeps import run as imix_run
from launchers._private import usr_signal

log = logging.getLogger("launchers.job")

# How long ranks > 0 wait for the requeue to end them before exiting on their own.
REQUEUE_GRACE_S = 120.0


class StopFlag:
    """Set by the preemption / time-limit signal; read by the training loop at step boundaries."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def set(self, signum: int, frame: Any = None) -> None:
        self.signal = signal.Signals(signum).name
        log.warning("caught %s: will checkpoint at the next step boundary", self.signal)

    def __bool__(self) -> bool:
        return self.signal is not None


def make_should_stop(flag: StopFlag, every: int) -> Callable[[], bool]:
    """``should_stop()`` for ``train``: True on all ranks once any rank caught the signal.

    Single process: reads the flag every step. DDP: every ``every`` calls, one MAX all-reduce
    (every rank calls ``should_stop`` once per step, so they agree on the step)."""
    every = max(int(every), 1)
    calls = 0

    def should_stop() -> bool:
        nonlocal calls
        if dist.info().world_size == 1:
            return bool(flag)
        calls += 1
        if calls % every:
            return False
        return dist.any_rank(bool(flag))

    return should_stop


def run_dir_of(config: DictConfig) -> Path:
    """The run's output dir, resolved as Hydra's ``run_job`` does (sweep dir / subdir)."""
    orig = HydraConfig.instance().cfg
    try:
        HydraConfig.instance().set_config(config)
        out = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        return (out / str(OmegaConf.select(config, "hydra.sweep.subdir"))).absolute()
    finally:
        if orig is not None:
            HydraConfig.instance().cfg = orig  # type: ignore[assignment]


def task_config(config: DictConfig) -> DictConfig:
    """The config a run sees (``hydra`` node removed), as ``run_job`` passes it."""
    cfg = copy.deepcopy(config)
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    return cfg


class RunJob:
    """One run of a sweep, executed by every task of its SLURM job (pickled by submitit)."""

    def __init__(
        self,
        hydra_context: HydraContext,
        config: DictConfig,
        overrides: list[str],
        job_num: int,
        singleton_state: dict,
        *,
        max_requeues: int,
        stop_check_every: int,
    ) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.overrides = list(overrides)
        self.job_num = job_num
        self.singleton_state = singleton_state
        self.max_requeues = max_requeues
        self.stop_check_every = stop_check_every

    # submitit calls this on a preemption signal that arrives before __call__ installed its
    # own handler (or after training): re-submit the same job; it resumes from checkpoint.pt.
    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)

    def sweep_config(self) -> DictConfig:
        Singleton.set_state(self.singleton_state)
        setup_globals()
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, self.overrides)
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.id = submitit.JobEnvironment().job_id
            cfg.hydra.job.num = self.job_num
        return cfg

    def __call__(self) -> JobReturn | None:
        env = submitit.JobEnvironment()
        # MASTER_PORT etc. may be inherited from a submitter that itself ran under DDP.
        denv = submitit.helpers.TorchDistributedEnvironment().export(
            set_cuda_visible_devices=False, overwrite=True
        )
        flag = StopFlag()
        signal.signal(usr_signal(), flag.set)
        should_stop = make_should_stop(flag, self.stop_check_every)
        config = self.sweep_config()
        run_dir = run_dir_of(config)
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
        if denv.rank == 0:
            ret = self._run_main(config, should_stop)
            results = ret._return_value if ret.status == JobStatus.COMPLETED else None
        else:
            logging.basicConfig(
                level=logging.INFO,
                format=f"[rank {denv.rank}][%(name)s][%(levelname)s] %(message)s",
            )
            ret = None
            results = imix_run.run(task_config(config), run_dir, should_stop=should_stop)
        try:
            if ret is not None and ret.status == JobStatus.FAILED:
                raise ret._return_value  # the SLURM job fails too; results.json says why
            if isinstance(results, dict) and results.get("status") == "preempted":
                self._after_preemption(env, denv.rank, run_dir, results, restarts, flag)
        finally:
            dist.destroy()
        return ret

    def _run_main(self, config: DictConfig, should_stop: Callable[[], bool]) -> JobReturn:
        def task(cfg: DictConfig) -> dict[str, Any]:
            hc = HydraConfig.get()
            out = Path(hc.runtime.output_dir)
            return imix_run.run(
                cfg, out, should_stop=should_stop, log_path=out / f"{hc.job.name}.log"
            )

        return run_job(
            hydra_context=self.hydra_context,
            task_function=task,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )

    def _after_preemption(
        self,
        env: submitit.JobEnvironment,
        rank: int,
        run_dir: Path,
        results: dict[str, Any],
        restarts: int,
        flag: StopFlag,
    ) -> None:
        """Checkpoint is on disk (written by the training loop); requeue, or give up."""
        requeue = env.cluster == "slurm" and restarts < self.max_requeues
        if rank == 0:
            if requeue:
                results["reason"] = (
                    f"{flag.signal or 'stop request'}: checkpointed and requeued "
                    f"(requeue {restarts + 1} of at most {self.max_requeues})"
                )
            else:
                why = (
                    f"max_requeues={self.max_requeues} reached"
                    if env.cluster == "slurm"
                    else f"the {env.cluster} executor cannot requeue"
                )
                results.update(
                    status="failed",
                    reason=f"preempted or timed out and not requeued ({why}); the checkpoint "
                    "is kept: re-launch the sweep to resume it",
                )
            imix_run.write_results(run_dir, results)
        if requeue:
            if rank == 0:
                subprocess.check_call(["scontrol", "requeue", env.job_id], timeout=60)
                log.warning("requeued job %s; exiting", env.job_id)
            else:  # the requeue ends this task; leave on our own if it does not come
                deadline = time.monotonic() + REQUEUE_GRACE_S
                while time.monotonic() < deadline:
                    time.sleep(1.0)
            # SystemExit is not an Exception: submitit writes no result, the job stays pending.
            sys.exit(-1)
        raise RuntimeError(results.get("reason") or "preempted")
