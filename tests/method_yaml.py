"""Method builders for tests: every option a test does not give comes from the method's YAML
(``conf/method/<name>.yaml``, composed with the default domain), the one source of defaults."""

from __future__ import annotations

import functools
from typing import Any

from omegaconf import OmegaConf
from torch import nn

from imix_sweeps import methods
from imix_sweeps.mix import MixStrategy
from tests.conftest import compose


@functools.cache
def yaml_options(name: str) -> tuple[str, dict[str, Any]]:
    """(builder name, options) of ``conf/method/<name>.yaml``."""
    model = OmegaConf.to_container(compose([f"method={name}"]).method.model, resolve=True)
    assert isinstance(model, dict)
    target = str(model.pop("_target_"))
    return target.rsplit(".", 1)[1], model


def build(name: str, backbone: nn.Module, mix: MixStrategy, **overrides: Any) -> nn.Module:
    builder, options = yaml_options(name)
    unknown = set(overrides) - set(options)
    assert not unknown, f"{name}: options not in its YAML: {sorted(unknown)}"
    return getattr(methods, builder)(backbone=backbone, mix=mix, **{**options, **overrides})


def npair(backbone: nn.Module, mix: MixStrategy, **overrides: Any) -> nn.Module:
    return build("npair", backbone, mix, **overrides)


def moco(backbone: nn.Module, mix: MixStrategy, **overrides: Any) -> nn.Module:
    return build("moco", backbone, mix, **overrides)


def byol(backbone: nn.Module, mix: MixStrategy, **overrides: Any) -> nn.Module:
    return build("byol", backbone, mix, **overrides)


def simclr(backbone: nn.Module, mix: MixStrategy, **overrides: Any) -> nn.Module:
    return build("simclr", backbone, mix, **overrides)


def swav(backbone: nn.Module, mix: MixStrategy, **overrides: Any) -> nn.Module:
    return build("swav", backbone, mix, **overrides)


def insdis(backbone: nn.Module, mix: MixStrategy, **overrides: Any) -> nn.Module:
    return build("insdis", backbone, mix, **overrides)


def cmc(backbone: nn.Module, mix: MixStrategy, **overrides: Any) -> nn.Module:
    return build("cmc", backbone, mix, **overrides)
