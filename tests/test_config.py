"""Every method x mix x domain x backbone either composes and builds, or fails validation naming why."""

from __future__ import annotations

import itertools

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from imix_sweeps.config import (
    CONF_DIR,
    ConfigError,
    build_backbone,
    build_method,
    build_mix,
    config_hash,
    group_options,
    lr_of,
    method_families,
    validate,
    warmup_of,
)
from imix_sweeps.data.digits import digits, digits_rgb, digits_tab
from tests.conftest import compose

EMBEDDED = {
    "digits": digits,
    "digits_tab": digits_tab,
    "digits_rgb": digits_rgb,
}  # built without data files

# The validity of a method x mix x domain x backbone choice is the conjunction of pairwise rules
# (backbone-domain, mix-domain, mix-method, method-domain). The full method x mix grid is composed,
# built and stepped on the embedded domains; every pair involving the other domains is composed
# and validated.


def _check_rejection(cfg, **choices: str) -> bool:
    """Validate; on rejection assert the message names a conflicting choice and what is allowed."""
    try:
        validate(cfg)
    except ConfigError as e:
        msg = str(e)
        assert any(f"{g}={v}" in msg for g, v in choices.items()), msg
        assert ": " in msg.split("\n", 1)[1], msg  # "... for tabular: mlp, mlp5"
        return False
    return True


@pytest.fixture(scope="module")
def embedded():
    return {name: build() for name, build in EMBEDDED.items()}


@pytest.mark.parametrize(
    "method,mix,domain",
    list(itertools.product(group_options("method"), group_options("mix"), EMBEDDED)),
)
def test_method_mix_grid_composes_and_steps_or_is_rejected_clearly(method, mix, domain, embedded):
    cfg = compose(
        [f"method={method}", f"mix={mix}", f"domain={domain}", "backbone.net.width=8"]
        if domain == "digits"
        else [f"method={method}", f"mix={mix}", f"domain={domain}", "backbone.net.width=16"]
    )
    assert (cfg.method.name, cfg.mix.name, cfg.domain.name) == (method, mix, domain)
    if not _check_rejection(cfg, method=method, mix=mix):
        return
    dom = embedded[domain]
    model = build_method(cfg, build_backbone(cfg, dom.in_shape), build_mix(cfg), dom)
    extra = {}
    if model.needs_index:  # memory-bank methods get sample indices
        model.bind_num_samples(dom.num_pretrain)
        x1, x2, extra["index"] = next(
            dom.pretrain_batches(0, 16, seed=0, device=torch.device("cpu"), with_index=True)
        )
    else:
        x1, x2 = next(dom.pretrain_batches(0, 16, seed=0, device=torch.device("cpu")))
    out = model(x1, x2, generator=torch.Generator().manual_seed(0), **extra)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    out.loss.backward()


@pytest.mark.parametrize(
    "backbone,domain", list(itertools.product(group_options("backbone"), group_options("domain")))
)
def test_backbone_domain_pairs_compose_or_are_rejected_clearly(backbone, domain):
    cfg = compose([f"domain={domain}", f"backbone={backbone}"])
    assert cfg.backbone.name == backbone
    _check_rejection(cfg, backbone=backbone)


@pytest.mark.parametrize(
    "mix,domain", list(itertools.product(group_options("mix"), group_options("domain")))
)
def test_mix_domain_pairs_compose_or_are_rejected_clearly(mix, domain):
    cfg = compose([f"domain={domain}", f"mix={mix}"])
    if cfg.mix.family not in method_families(cfg.method.model):  # a method that takes this mix
        takes = [
            m
            for m, o in group_options("method").items()
            if cfg.mix.family in method_families(o["model"])
        ]
        cfg = compose([f"domain={domain}", f"mix={mix}", f"method={takes[0]}"])
    _check_rejection(cfg, mix=mix, method=cfg.method.name)


@pytest.mark.parametrize(
    "method,domain", list(itertools.product(group_options("method"), group_options("domain")))
)
def test_method_domain_pairs_compose_or_are_rejected_clearly(method, domain):
    _check_rejection(compose([f"domain={domain}", f"method={method}"]), method=method)


def test_image_backbone_on_tabular_domain_names_the_alternatives():
    cfg = compose(["domain=digits_tab", "backbone=small_cnn"])
    with pytest.raises(
        ConfigError,
        match=r"backbone=small_cnn .* domain=digits_tab is tabular; backbones for tabular: .*mlp",
    ):
        validate(cfg)


def test_cutmix_on_tabular_data_is_rejected():
    cfg = compose(["domain=digits_tab", "mix=icutmix"])
    with pytest.raises(
        ConfigError,
        match=r"mix=icutmix does not apply to tabular data .* mixes for tabular: .*imixup",
    ):
        validate(cfg)


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(ConfigCompositionException) as e:
        compose(["mix=imixupp"])
    assert "imixup" in str(e.value.__cause__ or e.value) and "icutmix" in str(
        e.value.__cause__ or e.value
    )


def test_domain_selects_its_backbone_and_command_line_wins():
    assert compose(["domain=digits_tab"]).backbone.name == "mlp"
    assert compose(["domain=digits"]).backbone.name == "small_cnn"
    assert compose(["domain=digits", "backbone=resnet18"]).backbone.name == "resnet18"


def test_official_defaults():
    cfg = compose(["method=mocov2", "mix=imixup"])
    assert cfg.optim.momentum == 0.9 and cfg.optim.weight_decay == 1e-4
    assert lr_of(cfg) == pytest.approx(0.125 * cfg.train.batch_size / 256)
    assert cfg.method.model.queue_size == 4096 and cfg.method.model.momentum == 0.999
    assert cfg.method.model.dim == 128 and cfg.method.model.temperature == 0.2
    assert cfg.mix.alpha == 1.0
    assert compose(["method=byol"]).method.model.momentum == 0.999
    assert (
        warmup_of(compose(["train.epochs=100"])) == 5
        and warmup_of(compose(["train.epochs=1000"])) == 10
    )
    assert lr_of(compose(["train.batch_size=512"])) == pytest.approx(0.25)


def test_config_hash_ignores_run_only_keys_and_cell_hash_ignores_seed():
    a, b = compose(["seed=0"]), compose(["seed=1", "train.resume=false"])
    assert config_hash(a) != config_hash(b)
    assert config_hash(a, include_seed=False) == config_hash(b, include_seed=False)
    assert config_hash(compose(["train.resume=false"])) == config_hash(a)
    assert config_hash(compose(["mix=imixup"])) != config_hash(a)


def test_every_option_declares_its_metadata():
    for name, opt in group_options("backbone").items():
        assert opt["name"] == name and opt["modalities"], name
    for name, opt in group_options("mix").items():
        assert opt["name"] == name and opt["family"], name
    for name, opt in group_options("method").items():
        assert opt["name"] == name and "_target_" in opt["model"], name
    assert OmegaConf.is_config(compose())


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")))
def test_named_experiments_compose_and_validate(name):
    cfg = compose([f"+experiment={name}"])
    if cfg.method.domains and cfg.domain.name not in cfg.method.domains:  # e.g. CMC needs RGB data
        cfg = compose([f"+experiment={name}", f"domain={cfg.method.domains[0]}"])
    validate(cfg)
    assert cfg.experiment == name
