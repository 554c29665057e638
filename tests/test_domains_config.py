"""Every domain x backbone choice composes, and builds or fails with a clear message."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from imix_sweeps.config import ConfigError, build_backbone, group_options, validate
from tests.conftest import compose

NEW_DOMAINS = {
    # name: (modality, in_shape the domain produces, usual backbone)
    "cifar10": ("image", [3, 32, 32], "resnet50"),
    "cifar100": ("image", [3, 32, 32], "resnet50"),
    "stl10": ("image", [3, 96, 96], "resnet18_imagenet"),
    "tiny_imagenet": ("image", [3, 64, 64], "resnet18"),
    "imagenet": ("image", [3, 224, 224], "resnet50_imagenet"),
    "imagenet100": ("image", [3, 224, 224], "resnet50_imagenet"),
    "fashion_mnist": ("image", [1, 28, 28], "small_cnn"),
    "speech_commands": ("audio", [1, 32, 32], "resnet50"),
    "covtype": ("tabular", [54], "mlp5"),
    "higgs100k": ("tabular", [28], "mlp5"),
    "higgs1m": ("tabular", [28], "mlp5"),
}
BACKBONES = sorted(group_options("backbone"))


def test_all_new_options_exist():
    assert set(NEW_DOMAINS) <= set(group_options("domain"))
    want = {"mlp5", "alexnet", "alexnet_halves"} | {f"resnet{a}_imagenet" for a in (18, 34, 50)}
    assert want <= set(BACKBONES)


@pytest.mark.parametrize("domain", sorted(NEW_DOMAINS))
def test_domain_defaults(domain: str, monkeypatch):
    monkeypatch.delenv("IMIX_DATA", raising=False)
    modality, _, backbone = NEW_DOMAINS[domain]
    cfg = compose([f"domain={domain}"])
    validate(cfg)
    assert cfg.domain.modality == modality and cfg.backbone.name == backbone
    assert cfg.domain.root.startswith("data/")  # ${oc.env:IMIX_DATA,data}/<name>
    assert cfg.train.batch_size == cfg.domain.batch_size
    data = OmegaConf.to_container(cfg.domain.data, resolve=True)
    assert data["root"] == cfg.domain.root


def test_per_domain_settings_follow_the_papers():
    def dom(d):
        return compose([f"domain={d}"]).domain

    assert (dom("cifar10").temperature, dom("cifar10").batch_size) == (0.2, 256)
    s = dom("speech_commands")
    assert (s.temperature, s.batch_size, s.epochs) == (0.5, 256, 500)
    c = dom("covtype")
    assert (c.temperature, c.batch_size, c.epochs) == (0.1, 512, 500)
    h = dom("higgs1m")
    assert (h.temperature, h.batch_size, h.data.train_size) == (0.1, 512, 1_000_000)
    assert dom("higgs100k").data.train_size == 100_000
    assert dom("imagenet").batch_size == 512


def test_root_follows_imix_data(monkeypatch):
    monkeypatch.setenv("IMIX_DATA", "/datasets")
    cfg = compose(["domain=covtype"])
    assert cfg.domain.root == "/datasets/covtype" and cfg.domain.data.root == "/datasets/covtype"


def _check_combination(domain: str, bb: str) -> None:
    modality = NEW_DOMAINS[domain][0]
    cfg = compose([f"domain={domain}", f"backbone={bb}"])
    assert cfg.backbone.name == bb
    allowed = group_options("backbone")[bb]["modalities"]
    if modality not in allowed:
        with pytest.raises(ConfigError) as e:
            validate(cfg)
        msg = str(e.value)
        assert f"backbone={bb}" in msg and f"domain={domain}" in msg and modality in msg
        assert "backbones for " + modality in msg  # names the ones that would work
    else:
        validate(cfg)


@pytest.mark.parametrize("domain", sorted(NEW_DOMAINS))
def test_wrong_modality_backbone_is_rejected(domain: str):
    modality = NEW_DOMAINS[domain][0]
    _check_combination(domain, "resnet18" if modality == "tabular" else "mlp5")
    _check_combination(domain, "mlp" if modality == "tabular" else "resnet18_imagenet")


@pytest.mark.slow
@pytest.mark.parametrize("domain", sorted(NEW_DOMAINS))
def test_every_backbone_composes_and_validates_or_says_why(domain: str):
    for bb in BACKBONES:
        _check_combination(domain, bb)


# the cheap builders on every shape they validate for (ResNets build for any [C, H, W])
@pytest.mark.parametrize("bb", ["small_cnn", "mlp", "mlp5", "alexnet", "alexnet_halves"])
def test_backbones_build_on_domain_shapes_or_say_why(bb: str):
    for domain, (modality, in_shape, _) in NEW_DOMAINS.items():
        if modality not in group_options("backbone")[bb]["modalities"]:
            continue
        cfg = compose([f"domain={domain}", f"backbone={bb}", "backbone.net.width=1"])
        if bb.startswith("alexnet") and min(in_shape[1:]) < 63:
            with pytest.raises(Exception, match=r"at least 63x63"):  # hydra wraps the ValueError
                build_backbone(cfg, in_shape)
            continue
        if bb.startswith("alexnet"):
            continue  # builds at 224 px are covered in test_domains_backbones
        net = build_backbone(cfg, in_shape)
        assert net(torch.zeros(2, *in_shape)).shape == (2, net.out_dim)


def test_mlp5_takes_its_groups_from_the_domain():
    cov = compose(["domain=covtype", "backbone.net.width=2"])
    assert list(cov.backbone.net.groups) == [10, 4, 40]
    net = build_backbone(cov, [54])
    assert net.groups == [10, 4, 40]
    hig = compose(["domain=higgs100k", "backbone.net.width=2"])
    assert hig.backbone.net.groups is None and build_backbone(hig, [28]).groups is None
    other = compose(["domain=covtype", "domain.data.groups=[10,44]", "backbone.net.width=2"])
    assert build_backbone(other, [54]).groups == [10, 44]
