"""Config schema of the imix-sweeps launchers, registered as ``hydra/launcher/imix_slurm`` and
``hydra/launcher/imix_local``; the presets in ``conf/hydra/launcher/*.yaml`` start from these."""

# No `from __future__ import annotations`: Hydra's plugin scan executes this module outside
# sys.modules, and dataclasses / OmegaConf need the real types.
from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf


@dataclass
class ImixQueueFields:
    """What imix-sweeps adds to hydra-submitit-launcher's parameters."""

    # Requeue a run at most this many times after preemption or time limit (SLURM_RESTART_COUNT);
    # past it the run is recorded failed, its checkpoint kept for a re-launch.
    max_requeues: int = 3
    # DDP ranks agree on a stop request every this many training steps (one tiny all-reduce).
    stop_check_every: int = 10
    # Skip runs whose results.json already says ok for the same config (without submitting).
    skip_done: bool = True
    # How often (s) the sweep driver polls the jobs while it waits.
    poll_s: float = 2.0


@dataclass
class ImixSlurmConf(ImixQueueFields, SlurmQueueConf):
    _target_: str = "hydra_plugins.imix_sweeps_launcher.launcher.ImixSlurmLauncher"
    # Extra arguments of srun; --kill-on-bad-exit ends the other ranks when one rank fails.
    srun_args: list[str] = field(default_factory=lambda: ["--kill-on-bad-exit=1"])


@dataclass
class ImixLocalConf(ImixQueueFields, LocalQueueConf):
    _target_: str = "hydra_plugins.imix_sweeps_launcher.launcher.ImixLocalLauncher"


ConfigStore.instance().store(
    group="hydra/launcher", name="imix_slurm", node=ImixSlurmConf, provider="imix_sweeps"
)
ConfigStore.instance().store(
    group="hydra/launcher", name="imix_local", node=ImixLocalConf, provider="imix_sweeps"
)
