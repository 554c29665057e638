"""The Hydra ``Launcher`` classes named by the launcher presets; all work is in launchers.sweep."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class _ImixLauncher(Launcher):
    cluster = "abstract"

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        # The task function is not shipped: each job calls imix_sweeps.run.run itself, with
        # the preemption flag as should_stop (see launchers/job.py).
        self.config = config
        self.hydra_context = hydra_context

    def sweep(self):  # -> launchers.sweep.Sweep
        from launchers.sweep import Sweep  # lazy: plugin discovery must stay cheap

        assert self.config is not None and self.hydra_context is not None
        return Sweep(self.cluster, self.params, self.hydra_context, self.config)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        return self.sweep().run(job_overrides, initial_job_idx)


class ImixSlurmLauncher(_ImixLauncher):
    cluster = "slurm"


class ImixLocalLauncher(_ImixLauncher):
    cluster = "local"
