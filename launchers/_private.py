"""Every use of a private submitit or Hydra API, in one place.

The launcher needs a few things that submitit and Hydra do not export: the signal submitit
sends before a time limit, the inner executor and its sbatch text (for the dry-run preview),
and Hydra's own sweep expansion and app construction (for ``python -m launchers submit``
without the Hydra sweeper and for listing a sweep's jobs). They are reached through this module
only; ``tests/test_launcher_private.py`` checks each against the installed versions, which
``pyproject.toml`` pins (the ``TESTED_WITH`` versions below), so an upgrade that changes one
fails there, naming it, instead of in a sweep.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import submitit
from hydra._internal.callbacks import Callbacks
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_config_search_path
from hydra.core.override_parser.types import Override

__all__ = [
    "TESTED_WITH",
    "Callbacks",
    "Hydra",
    "create_config_search_path",
    "expand_sweep",
    "inner_executor",
    "sbatch_text",
    "usr_signal",
    "without_srun_check",
]

# the versions these uses were written and tested against (pyproject.toml pins them)
TESTED_WITH = {"submitit": "1.5.4", "hydra-core": "1.3.8", "hydra-submitit-launcher": "1.2.0"}


def usr_signal() -> signal.Signals:
    """The signal submitit asks SLURM to send before the time limit (``--signal``); a
    classmethod of every job environment (``USR_SIG``, default USR2)."""
    return submitit.JobEnvironment._usr_sig()


def inner_executor(ex: submitit.AutoExecutor) -> Any:
    """The cluster executor an ``AutoExecutor`` wraps (its ``parameters``, ``folder``)."""
    return ex._executor


def sbatch_text(ex: submitit.AutoExecutor, params: dict[str, Any]) -> str:
    """The sbatch script a SLURM ``AutoExecutor`` submits with ``params``."""
    from submitit.slurm.slurm import _make_sbatch_string

    inner = inner_executor(ex)
    return _make_sbatch_string(command=inner._submitit_command_str, folder=inner.folder, **params)


@contextmanager
def without_srun_check() -> Iterator[None]:
    """Build a SLURM executor where ``srun`` is not on PATH (for the preview only)."""
    from unittest import mock

    from submitit.slurm.slurm import SlurmExecutor

    with mock.patch.object(SlurmExecutor, "affinity", classmethod(lambda cls: 2)):
        yield


def expand_sweep(overrides: Sequence[Override]) -> list[list[str]]:
    """Hydra's basic-sweeper expansion of parsed overrides: one override list per job."""
    return [job for batch in BasicSweeper.split_arguments(list(overrides), None) for job in batch]
