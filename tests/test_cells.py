"""Every paper cell composes, validates, builds its model, and equals its official manifest entry.

The manifests (``conf/manifest/*.yaml``) record the official settings with their sources; the
network entries are re-derived from the official model code (``imix_sweeps.official_nets``),
independently of the project's modules, and checked against that derivation here too.
"""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from imix_sweeps import official_nets as O
from imix_sweeps.backbones import resnet
from imix_sweeps.config import CONF_DIR, validate
from imix_sweeps.heads import build_head
from imix_sweeps.manifest import (
    EXTRACT,
    Row,
    build_model,
    compare,
    entry_for,
    manifests,
    network_summary,
)
from imix_sweeps.run import explain_main
from tests.conftest import compose

CELLS = sorted(p.stem for p in (CONF_DIR / "cell").glob("*.yaml"))


def test_every_cell_has_a_manifest_entry_and_every_entry_a_cell() -> None:
    assert sorted(n for n, e in manifests().items() if e["kind"] == "cell") == CELLS
    presets = [n for n, e in manifests().items() if e["kind"] == "experiment"]
    assert presets and all((CONF_DIR / "experiment" / f"{n}.yaml").exists() for n in presets)


@pytest.mark.parametrize("cell", sorted(manifests()))
def test_cell_builds_and_equals_its_manifest(cell: str) -> None:
    cfg = compose(entry_for(cell)["overrides"])
    OmegaConf.to_container(cfg, resolve=True)
    validate(cfg)
    entry = entry_for(cell)
    assert entry is not None and entry["settings"], cell
    assert entry.get("command") or entry.get("why"), "a cell without a command says why"
    model = build_model(cfg, list(entry["input_shape"]))
    rows = compare(cfg, entry, model)
    bad = [(r.name, r.project, r.official, r.source) for r in rows if r.status == "MISMATCH"]
    assert not bad, bad
    stale = [r.name for r in rows if r.status == "stale"]
    assert not stale, f"marked as differing but equal: {stale}"
    if entry.get("network"):
        assert {r.name for r in rows if r.expressed} >= {f"network.{n}" for n in entry["network"]}


COMPARED = ("augmentation", "eval")


@pytest.mark.parametrize("cell", sorted(manifests()))
def test_augmentation_and_evaluation_are_compared(cell: str) -> None:
    """Every cell with an official command states its augmentation and linear protocol as
    structured values that the composed config is compared with (not text only)."""
    entry = entry_for(cell)
    settings = entry["settings"]
    if entry.get("command") is None and set(COMPARED) - set(settings):
        assert entry.get("why"), cell  # a quoted row without code says why instead
        return
    rows = {r.name: r for r in compare(compose(entry["overrides"]), entry)}
    for name in COMPARED:
        assert isinstance(settings[name]["value"], dict), (cell, name)
        assert rows[name].expressed and rows[name].status in ("match", "differs"), (cell, name)
    assert not [r.name for r in rows.values() if r.status == "documented"], cell


def test_a_stale_difference_fails() -> None:
    equal = Row("eval", {"lrs": [30.0]}, {"lrs": [30.0]}, "x", True, "said to differ")
    assert equal.status == "stale"
    assert Row("eval", {"lrs": [3.0]}, {"lrs": [30.0]}, "x", True, "why").status == "differs"
    assert Row("eval", {"lrs": [3.0]}, {"lrs": [30.0]}, "x", True).status == "MISMATCH"


def test_domain_default_augmentation_resolves_to_the_builders_parameters() -> None:
    cifar = EXTRACT["augmentation"](compose(["+cell=imix_t1_cifar10_npair_none"]))
    assert cifar == {
        "enabled": True, "size": 32, "crop_scale": [0.2, 1.0], "jitter": [0.4, 0.4, 0.4, 0.1],
        "p_jitter": 0.8, "p_gray": 0.2, "gray_first": False, "blur": False,
    }  # fmt: skip
    imagenet = EXTRACT["augmentation"](compose(["domain=imagenet100"]))
    assert imagenet is not None and imagenet["size"] == 224 and imagenet["blur"] is True
    assert EXTRACT["augmentation"](compose(["domain=cifar10", "augment=none"])) == {
        "enabled": False
    }
    covtype = EXTRACT["augmentation"](compose(["domain=covtype", "backbone=mlp5"]))
    assert covtype == {"enabled": True, "input_drop": 0.2}


def test_eval_extract_scales_the_lr_grid_and_resolves_the_crop() -> None:
    ev = EXTRACT["eval"](compose(["+cell=imix_t1_covtype_npair_none"]))
    assert ev["batch"] == 512 and ev["lrs"] == [1.0, 3.0, 5.0, 10.0, 30.0, 50.0, 70.0]
    assert ev["crop"] is None
    unscaled = EXTRACT["eval"](
        compose(["+cell=imix_t1_covtype_npair_none", "eval.linear_lr_batch=null"])
    )
    assert unscaled["lrs"][0] == 2.0  # 512 / 256: what the cell's linear_lr_batch avoids
    assert EXTRACT["eval"](compose(["+cell=imix_t1_cifar10_npair_none"]))["crop"] == "padded"
    assert EXTRACT["eval"](compose(["+cell=unmix_t1_mocov2_none_200"]))["crop"] == "resized"
    assert EXTRACT["eval"](compose(["domain=cifar10"]))["method"] == "lbfgs"


@pytest.mark.parametrize("cell", sorted(c for c, e in manifests().items() if e.get("network")))
def test_manifest_networks_are_the_official_derivation(cell: str) -> None:
    for name, net in entry_for(cell)["network"].items():
        shapes: list[tuple[int, ...]] = []
        for fn, kwargs in net["derive"]:
            out = getattr(O, fn)(**kwargs)
            shapes += out[0] if isinstance(out, tuple) else out
        assert O.summary(shapes) == {k: net[k] for k in ("params", "tensors", "shapes_sha1")}, name


# ------------------------------------------------------------------ the official heads and nets
@pytest.mark.parametrize("kind", ["linear", "mlp", "mlpbn", "mlpbn1"])
def test_heads_have_the_official_layers(kind: str) -> None:
    h = build_head(kind, 2048, 128, 2048)
    assert O.module_summary(h) == O.summary(O.head(kind, 2048, 128, 2048))
    layers = [type(m) for m in (h if isinstance(h, nn.Sequential) else [h])]
    expected = {
        "linear": [nn.Linear],
        "mlp": [nn.Linear, nn.ReLU, nn.Linear],
        "mlpbn": [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d],  # BN on output
        "mlpbn1": [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear],  # BN in the middle only
    }[kind]
    assert layers == expected


def test_byol_predictor_is_128_to_backbone_width_to_128() -> None:
    cfg = compose(["+cell=imix_t1_cifar10_byol_none"])
    model = build_model(cfg, [3, 32, 32])
    assert network_summary(model)["predictor"] == O.summary(O.head("mlpbn1", 128, 128, 2048))
    assert model.predictor[0].weight.shape == (2048, 128)


def test_cmc_half_width_resnet_is_the_official_one() -> None:
    shapes, width = O.resnet("resnet50", in_channels=1, stem_kernel=7, width=0.5)
    with torch.device("meta"):
        net = resnet([1, 224, 224], "resnet50", "imagenet", width=0.5)
    assert net.out_dim == width == 1024
    assert O.module_summary(net) == O.summary(shapes)


@pytest.mark.parametrize("stem,kernel", [("cifar", 3), ("imagenet", 7)])
def test_first_conv_is_kaiming_fan_out(stem: str, kernel: int) -> None:
    torch.manual_seed(0)
    conv = resnet([1, 64, 64], "resnet18", stem).net.conv1
    std = math.sqrt(2.0 / (64 * kernel * kernel))  # official: normal(0, sqrt(2 / (k k out)))
    assert conv.weight.shape == (64, 1, kernel, kernel)
    assert abs(conv.weight.std().item() / std - 1) < 0.1


def test_explain_prints_official_sources_and_exits_zero(capsys) -> None:
    assert explain_main(["+cell=imix_t1_covtype_byol_imixup"]) == 0
    out = capsys.readouterr().out
    assert "kibok90/imix@d40fabe (run.sh L35)" in out
    assert "predictor" in out and "run.sh L35 --pred" in out
    assert out.rstrip().endswith("0 unexplained")


def test_explain_finds_a_preset_by_its_experiment(capsys) -> None:
    assert explain_main(["+experiment=mixco_simclr", "domain=tiny_imagenet"]) == 0
    out = capsys.readouterr().out
    assert "Lee-Gihun/MixCo-Mixup-Contrast@8374aac" in out and "lr_hold_epochs" in out
    assert out.rstrip().endswith("0 unexplained")


def test_explain_without_a_cell_prints_the_effective_settings(capsys) -> None:
    assert explain_main(["method=npair", "mix=imixup"]) == 0
    out = capsys.readouterr().out
    assert "no official manifest" in out and "gather" in out


def test_nce_and_softmax_insdis_cells_differ_only_in_the_loss(tmp_path) -> None:
    from imix_sweeps.run import base_results

    nce = compose(["+cell=cmc_in_insdis_k4096_nce"])
    ce = compose(["+cell=cmc_in_insdis_k4096"])
    assert base_results(nce, tmp_path)["loss"] == "nce"
    assert base_results(ce, tmp_path)["loss"] == "softmax"
    assert base_results(compose(["+cell=cmc_in_moco_k16384"]), tmp_path)["loss"] == "softmax"
    a, b = (OmegaConf.to_container(c, resolve=True) for c in (nce, ce))
    assert (
        a["method"]["model"].pop("loss") == "nce" and b["method"]["model"].pop("loss") == "softmax"
    )
    assert a == b


def test_readme_explain_excerpt_is_what_the_command_prints(capsys) -> None:
    readme = (CONF_DIR.parent / "README.md").read_text()
    block = readme.split("(excerpt):\n\n```\n", 1)[1].split("```", 1)[0]
    assert explain_main(["+cell=imix_t1_cifar10_npair_none"]) == 0
    out = capsys.readouterr().out.splitlines()
    excerpt = [ln for ln in block.splitlines() if ln.strip() != "..."]
    assert excerpt and all(ln in out for ln in excerpt), [ln for ln in excerpt if ln not in out]
