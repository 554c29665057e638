"""Shared test set-up: one CPU thread per test process, and Hydra composition of the real tree."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

from imix_sweeps.config import CONF_DIR

torch.set_num_threads(1)


def compose(overrides: list[str] | None = None, *, return_hydra_config: bool = False) -> DictConfig:
    """The config that ``imix-sweeps OVERRIDES`` would run, composed from the committed tree."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(
            "config", overrides=overrides or [], return_hydra_config=return_hydra_config
        )


@pytest.fixture
def tiny_overrides() -> list[str]:
    """Overrides that make a digits run take a second or two on one CPU thread."""
    return ["train.epochs=2", "train.batch_size=128", "backbone.net.width=8", "method.model.dim=16"]


@functools.cache
def slurm_problem() -> str | None:
    """Why no SLURM cluster answers here (None: one does)."""
    if shutil.which("sbatch") is None:
        return "sbatch not on PATH (start a cluster: sudo bash launchers/local-cluster.sh up)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"SLURM not reachable: {e}"
    if "is UP" not in ping.stdout:
        return f"SLURM controller not up ({ping.stdout.strip() or ping.stderr.strip()})"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``slurm`` skip, with the reason, when no cluster answers; with
    ``IMIX_REQUIRE_SLURM=1`` (CI) they fail instead."""
    if item.get_closest_marker("slurm") is None:
        return
    problem = slurm_problem()
    if problem:
        if os.environ.get("IMIX_REQUIRE_SLURM") == "1":
            pytest.fail(f"IMIX_REQUIRE_SLURM=1 but {problem}", pytrace=False)
        pytest.skip(problem)
