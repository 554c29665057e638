"""The ``augment`` config group: each option's parameters against the official scripts, and
both image pipelines (device and torchvision reference) honouring them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from imix_sweeps.config import build_domain, group_options, validate
from imix_sweeps.data import images as I
from tests.conftest import compose
from tests.test_domains_images import write_cifar

CPU = torch.device("cpu")

# option -> (size, scale, jitter, p_jitter, p_gray, gray_first, blur) on a 32 px domain with
# the MoCo v2 defaults (scale 0.2-1, no blur)
OFFICIAL = {
    "domain_default": (32, (0.2, 1.0), (0.4, 0.4, 0.4, 0.1), 0.8, 0.2, False, False),
    "mocov2": (32, (0.2, 1.0), (0.4, 0.4, 0.4, 0.1), 0.8, 0.2, False, False),
    # train_CMC.py L171-177 (crop_low 0.1, L116)
    "cmc_crop_flip": (32, (0.1, 1.0), None, 0.0, 0.0, False, False),
    # train_moco_ins.py L211-218: crop 0.1 (L65), grayscale 0.2 then ColorJitter(0.4 x 4) always
    "insdis_cmcrepo": (32, (0.1, 1.0), (0.4, 0.4, 0.4, 0.4), 1.0, 0.2, True, False),
    "mocov1": (32, (0.2, 1.0), (0.4, 0.4, 0.4, 0.4), 1.0, 0.2, True, False),
    # unmix_c10.py L84-90: RandomResizedCrop(32) (torchvision's scale 0.08-1)
    "unmix_cifar_moco": (32, (0.08, 1.0), (0.4, 0.4, 0.4, 0.1), 0.8, 0.2, False, False),
    # script_unmix_c10.sh min_scale_crops 0.14; get_color_distortion(s=0.5)
    "unmix_cifar_swav": (32, (0.14, 1.0), (0.4, 0.4, 0.4, 0.1), 0.8, 0.2, False, False),
    # MixCo simclr data_loader.py L18-33: 224 px, s = 1 jitter, blur
    "mixco_simclr": (224, (0.2, 1.0), (0.8, 0.8, 0.8, 0.2), 0.8, 0.2, False, True),
    "mixco_moco": (224, (0.2, 1.0), (0.4, 0.4, 0.4, 0.1), 0.8, 0.2, False, True),
}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_each_option_resolves_to_the_official_parameters(name):
    opts = {k: v for k, v in group_options("augment")[name].items() if k in I.AUGMENT_KEYS}
    size, aug = I.resolve_augment(32, (0.2, 1.0), False, opts)
    p_jitter = aug.p_jitter if aug.jitter is not None else 0.0
    got = (size, aug.scale, aug.jitter, p_jitter, aug.p_gray, aug.gray_first, aug.blur)
    assert got == OFFICIAL[name]


def test_every_committed_option_is_covered():
    assert set(group_options("augment")) == set(OFFICIAL) | {"none"}


def _uniform_domain(pipeline: str, augment: dict | None):
    """Images of one flat colour each: crop and flip keep the colour, colour ops change it."""
    rng = np.random.RandomState(0)
    colours = rng.randint(30, 220, (64, 1, 1, 3)).astype(np.uint8)
    x = np.broadcast_to(colours, (64, 32, 32, 3)).copy()
    y = np.zeros(64, dtype=np.int64)
    return I.image_domain(
        "flat", 2, x, y, x[:8], y[:8], mean=(0.0,) * 3, std=(1.0,) * 3, size=32,
        pipeline=pipeline, workers=0, augment=augment,
    ), colours  # fmt: skip


@pytest.mark.parametrize("pipeline", ["device", "reference"])
def test_crop_flip_only_keeps_colours_and_the_default_does_not(pipeline):
    crop_flip = {
        k: v for k, v in group_options("augment")["cmc_crop_flip"].items() if k in I.AUGMENT_KEYS
    }
    d, colours = _uniform_domain(pipeline, crop_flip)
    order = d.epoch_order(0, 0)[:32]
    x1, x2 = next(iter(d.pretrain_batches(0, 32, seed=0, device=CPU)))
    want = torch.from_numpy(colours[order.numpy(), 0, 0]).float().div(255)  # [32, 3]
    for v in (x1, x2):
        torch.testing.assert_close(v.mean((2, 3)), want, atol=2e-3, rtol=0)
        assert v.std((2, 3)).max() < 2e-3  # still flat
    d0, _ = _uniform_domain(pipeline, None)
    y1, _ = next(iter(d0.pretrain_batches(0, 32, seed=0, device=CPU)))
    assert (y1.mean((2, 3)) - want).abs().max() > 0.05  # jitter / grayscale changed colours


@pytest.mark.parametrize("pipeline", ["device", "reference"])
def test_grayscale_first_then_jitter(pipeline):
    """insdis_cmcrepo's order: with grayscale always on, hue and saturation jitter of a gray
    image keep it gray, so every view has equal channels."""
    opts = {"crop_scale": [0.5, 1.0], "jitter": [0.4, 0.4, 0.4, 0.4], "p_jitter": 1.0,
            "p_gray": 1.0, "gray_first": True, "blur": False}  # fmt: skip
    d, _ = _uniform_domain(pipeline, opts)
    x1, _ = next(iter(d.pretrain_batches(0, 32, seed=0, device=CPU)))
    assert (x1[:, 0] - x1[:, 1]).abs().max() < 2e-2 and (x1[:, 1] - x1[:, 2]).abs().max() < 2e-2


def _cifar_cfg(root: Path, *overrides: str):
    cfg = compose(["domain=cifar10", f"domain.root={root}", "backbone=small_cnn", *overrides])
    validate(cfg)
    return cfg


def test_augment_none_gives_the_evaluation_inputs_as_both_views(tmp_path: Path):
    """i-Mix --no-aug (main_pretext.py L419-430): ToTensor + normalise, nothing random."""
    write_cifar(tmp_path / "c", 10, n_train=40)
    d = build_domain(_cifar_cfg(tmp_path / "c", "augment=none"))
    x1, x2 = next(iter(d.pretrain_batches(0, 20, seed=0, device=CPU)))
    plain = torch.cat([x for x, _ in d.eval_batches("train", 40, device=CPU)])
    order = d.epoch_order(0, 0)[:20]
    assert torch.equal(x1, x2)
    torch.testing.assert_close(x1, plain[order])
    tab = build_domain(compose(["domain=digits_tab", "augment=none"]))
    a, b = next(iter(tab.pretrain_batches(0, 32, seed=0, device=CPU)))
    assert torch.equal(a, b) and (a == 0).float().mean() < 0.5  # no input-drop


def test_mixco_simclr_option_crops_to_224(tmp_path: Path):
    write_cifar(tmp_path / "c", 10, n_train=10, n_test=4)
    d = build_domain(_cifar_cfg(tmp_path / "c", "augment=mixco_simclr"))
    x1, _ = next(iter(d.pretrain_batches(0, 4, seed=0, device=CPU)))
    assert x1.shape == (4, 3, 224, 224) and d.in_shape == [3, 224, 224]


def test_cells_and_experiments_pin_their_pipelines():
    assert compose(["+cell=cmc_in100_cmc_k4096"]).augment.name == "cmc_crop_flip"
    assert compose(["+cell=cmc_in_insdis_k16384"]).augment.name == "insdis_cmcrepo"
    assert compose(["+cell=unmix_t1_moco_none_200"]).augment.name == "mocov1"
    cmc_in = compose(["+cell=unmix_t1_cmc_none_200"]).augment
    assert cmc_in.name == "cmc_crop_flip" and list(cmc_in.crop_scale) == [0.08, 1.0]
    assert compose(["+experiment=unmix_moco_cifar"]).augment.name == "unmix_cifar_moco"
    assert compose(["+experiment=unmix_swav_cifar"]).augment.name == "unmix_cifar_swav"
    assert compose(["+experiment=mixco_simclr"]).augment.name == "mixco_simclr"
    assert compose(["+cell=imix_t1_cifar10_npair_none"]).augment.name == "domain_default"
