"""Shared test set-up: one CPU thread per test process, and Hydra composition of the real tree."""

from __future__ import annotations

import os

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
