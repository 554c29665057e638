"""The sweep driver: plan the runs of a sweep, submit one job per run, wait, record outcomes.

Used by the Hydra launcher plugin (``imix-sweeps --multirun ... hydra/launcher=slurm``) and by
``python -m launchers submit``. For every run it

- resolves the run dir and the config hash; a run whose ``results.json`` already says ``ok``
  for the same hash is skipped without submitting anything (``skip_done``); any other run is
  submitted and resumes from its ``checkpoint.pt`` if there is one;
- submits the runs to be done as one job array (``array_parallelism`` at a time), each job
  ``nodes x tasks_per_node`` tasks running :class:`launchers.job.RunJob`;
- waits for all of them; a job that fails does not stop the others. A job that died without
  writing its outcome (killed, out of memory, cancelled, node failure) gets ``status: failed``
  with the SLURM state and the job's log file in its ``results.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.types import HydraContext
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_plugins.imix_sweeps_launcher.config import ImixLocalConf, ImixQueueFields, ImixSlurmConf
from imix_sweeps import run as imix_run
from imix_sweeps.config import ConfigError, config_hash, validate
from launchers._private import inner_executor, sbatch_text, without_srun_check
from launchers.job import RunJob, run_dir_of, task_config

log = logging.getLogger("launchers.sweep")


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


# The keys are derived from the launcher schema (hydra-submitit-launcher's dataclasses plus
# ours), so a field that upstream adds is routed by the same rule or refused, never misrouted.
OWN_KEYS = _names(ImixQueueFields) | {"_target_"}  # ours: not submitit parameters
INIT_KEYS = {"submitit_folder", "max_num_timeout"}  # the executor's constructor takes these
GENERIC = _names(BaseQueueConf) - INIT_KEYS  # AutoExecutor's cluster-independent names
QUEUE_CONF = {"slurm": ImixSlurmConf, "local": ImixLocalConf}


def cluster_keys(cluster: str) -> set[str]:
    """The keys that submitit takes as ``<cluster>_<key>`` (e.g. ``slurm_partition``)."""
    return _names(QUEUE_CONF[cluster]) - GENERIC - OWN_KEYS - INIT_KEYS


def executor_parameters(cluster: str, params: dict[str, Any]) -> dict[str, Any]:
    """``AutoExecutor.update_parameters`` arguments for the launcher ``params`` (None: unset)."""
    specific = cluster_keys(cluster)
    update = {}
    for k, v in params.items():
        if k in OWN_KEYS or k in INIT_KEYS or v is None:
            continue
        if k in GENERIC:
            update[k] = v
        elif k in specific:
            update[f"{cluster}_{k}"] = v
        else:
            raise ValueError(
                f"hydra.launcher.{k} is not a parameter of the {cluster} launcher; parameters: "
                f"{', '.join(sorted(GENERIC | specific | OWN_KEYS | INIT_KEYS - {'_target_'}))}"
            )
    return update


UNFINISHED = ("running", "preempted", None)


@dataclass
class PlannedRun:
    num: int
    overrides: list[str]
    run_dir: Path
    config_hash: str
    previous_status: str | None
    skip: bool
    task_cfg: DictConfig | None = field(default=None, repr=False)
    job: Any = field(default=None, repr=False)  # submitit.Job once submitted
    invalid: str | None = None  # the validation message: not submitted, no run dir made

    @property
    def label(self) -> str:
        return " ".join(filter_overrides(self.overrides)) or "(no overrides)"


class Sweep:
    def __init__(
        self,
        cluster: str,
        params: dict[str, Any],
        hydra_context: HydraContext,
        config: DictConfig,
    ) -> None:
        if cluster not in ("slurm", "local"):
            raise ValueError(f"unknown cluster {cluster!r}; allowed: slurm, local")
        self.cluster = cluster
        self.params = {
            k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in params.items()
        }
        # our own parameters, typed, with the schema's defaults (the one place they are set)
        self.options = ImixQueueFields(
            **{k: self.params[k] for k in _names(ImixQueueFields) if k in self.params}
        )
        self.hydra_context = hydra_context
        self.config = config

    # ------------------------------------------------------------------ planning
    def plan(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int = 0
    ) -> list[PlannedRun]:
        loader = self.hydra_context.config_loader
        plans = []
        for i, overrides in enumerate(job_overrides):
            num = initial_job_idx + i
            cfg = loader.load_sweep_config(self.config, list(overrides))
            with open_dict(cfg.hydra.job):
                cfg.hydra.job.num = num
            run_dir = run_dir_of(cfg)
            task_cfg = task_config(cfg)
            h = config_hash(task_cfg)
            prev = imix_run.read_results(run_dir)
            prev_status = prev.get("status") if prev else None
            skip = bool(
                self.options.skip_done
                and task_cfg.get("skip_done", True)
                and prev_status == "ok"
                and prev.get("config_hash") == h
            )
            plan = PlannedRun(num, list(overrides), run_dir, h, prev_status, skip, task_cfg)
            try:
                validate(task_cfg)
            except ConfigError as e:
                plan.invalid = str(e)
            plans.append(plan)
        return plans

    def executor(self) -> submitit.AutoExecutor:
        p = dict(self.params)
        folder = p.pop("submitit_folder", None) or str(
            Path(str(self.config.hydra.sweep.dir)) / ".submitit" / "%j"
        )
        init: dict[str, Any] = {"folder": folder}
        if self.cluster == "slurm" and p.get("max_num_timeout") is not None:
            init["slurm_max_num_timeout"] = p["max_num_timeout"]
        ex = submitit.AutoExecutor(cluster=self.cluster, **init)
        ex.update_parameters(**executor_parameters(self.cluster, p))
        return ex

    def sbatch_preview(self, n_jobs: int) -> str:
        """The ``#SBATCH`` lines (and srun line) of the job array that ``submit`` would send.

        Works off-cluster: submitit refuses to build a SLURM executor where ``srun`` is not on
        PATH, which only matters for submitting, so the check is bypassed for the preview.
        """
        with without_srun_check():
            ex = self.executor()
        if self.cluster != "slurm":
            params = inner_executor(ex).parameters
            return "\n".join(f"{k}: {v}" for k, v in sorted(params.items()))
        params = dict(inner_executor(ex).parameters)
        if n_jobs > 1:
            params["map_count"] = n_jobs
        text = sbatch_text(ex, params)
        return "\n".join(ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#!"))

    # ------------------------------------------------------------------ submitting
    def save_multirun_yaml(self) -> None:
        """What Hydra's sweeper writes in the sweep dir (for ``submit`` without the sweeper)."""
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

    def submit(self, plans: list[PlannedRun]) -> list[PlannedRun]:
        todo = [p for p in plans if not p.skip and p.invalid is None]
        for p in plans:
            if p.skip:
                log.info("#%d skipped (results.json says ok): %s", p.num, p.run_dir)
            elif p.invalid is not None:
                log.error("#%d not submitted: %s: %s", p.num, p.label, p.invalid)
        if not todo:
            return plans
        ex = self.executor()
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        state = Singleton.get_state()
        jobs = []
        with ex.batch():
            for p in todo:
                fn = RunJob(
                    self.hydra_context,
                    self.config,
                    p.overrides,
                    p.num,
                    state,
                    max_requeues=self.options.max_requeues,
                    stop_check_every=self.options.stop_check_every,
                )
                jobs.append(ex.submit(fn))
        for p, j in zip(todo, jobs):
            p.job = j
            log.info("#%d submitted as job %s: %s -> %s", p.num, j.job_id, p.label, p.run_dir)
        return plans

    # ------------------------------------------------------------------ waiting
    def wait(self, plans: list[PlannedRun]) -> list[JobReturn]:
        pending = [p for p in plans if p.job is not None]
        poll = self.options.poll_s
        while pending:
            pending = [p for p in pending if not p.job.done()]
            if pending:
                time.sleep(poll)
        return [self.outcome(p) for p in plans]

    def outcome(self, p: PlannedRun) -> JobReturn:
        ret = JobReturn(overrides=list(p.overrides), working_dir=str(p.run_dir))
        if p.invalid is not None:  # refused before anything was submitted or created
            ret.status = JobStatus.FAILED
            ret.return_value = ConfigError(p.invalid)
            return ret
        if p.job is None:  # skipped
            ret.status = JobStatus.COMPLETED
            ret.return_value = imix_run.read_results(p.run_dir)
            return ret
        try:
            task_returns = p.job.results()
            main = task_returns[0]
            if isinstance(main, JobReturn):
                return main
            ret.status = JobStatus.COMPLETED
            ret.return_value = main
            return ret
        except Exception as e:
            self._record_failure(p, e)
            ret.status = JobStatus.FAILED
            ret.return_value = e
            log.error("#%d failed (job %s): %s", p.num, p.job.job_id, _first_line(e))
            return ret

    def _record_failure(self, p: PlannedRun, error: Exception) -> None:
        """Make sure ``results.json`` says failed, with a reason and a log path."""
        res = imix_run.read_results(p.run_dir)
        if res is not None and res.get("status") not in UNFINISHED:
            return  # the run itself recorded its outcome (e.g. failed with the reason)
        try:
            state = p.job.get_info(mode="force").get("State") or p.job.state
        except Exception:
            state = "UNKNOWN"
        if res is None:  # died before the run wrote anything: the config-derived fields
            res = {"run_dir": str(p.run_dir), "config_hash": p.config_hash}
            if p.task_cfg is not None:
                try:
                    res = imix_run.base_results(p.task_cfg, p.run_dir)
                except Exception:  # an invalid config still gets its failure recorded
                    pass
            tasks = int(self.params.get("nodes") or 1) * int(self.params.get("tasks_per_node") or 1)
            res["world_size"] = tasks
        res.update(
            status="failed",
            reason=f"SLURM job {p.job.job_id} ended in state {state}: {_first_line(error)}",
            log_path=str(p.job.paths.stderr),
            finished_at=imix_run._now(),
        )
        p.run_dir.mkdir(parents=True, exist_ok=True)
        imix_run.write_results(p.run_dir, res)

    # ------------------------------------------------------------------ all together
    def run(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int = 0
    ) -> list[JobReturn]:
        plans = self.plan(job_overrides, initial_job_idx)
        log.info(
            "%s sweep: %d runs, %d to submit, %d already done; sweep dir %s",
            self.cluster,
            len(plans),
            sum(not p.skip for p in plans),
            sum(p.skip for p in plans),
            self.config.hydra.sweep.dir,
        )
        self.submit(plans)
        returns = self.wait(plans)
        failed = [p.num for p, r in zip(plans, returns) if r.status == JobStatus.FAILED]
        if failed:
            log.error("%d of %d runs failed: %s", len(failed), len(plans), failed)
        return returns


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    # submitit's FailedJobError carries the job's traceback: its last line is the error itself.
    if len(lines) > 1 and "Traceback" in text:
        tail = [ln for ln in lines if not ln.startswith((" ", "Traceback", "\t"))]
        return tail[-1][:500] if tail else lines[-1][:500]
    return (lines[0] if lines else type(e).__name__)[:500]
