"""The official linear protocol (eval=official) against imix main_lincls.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from imix_sweeps import augment as A
from imix_sweeps.data.images import image_domain
from imix_sweeps.evaluate import (
    OfficialLinearConfig,
    init_official_fc,
    linear_crop_augment,
    official_linear,
    official_lr,
    shuffled_batches,
)
from imix_sweeps.run import run
from tests.conftest import compose

CPU = torch.device("cpu")


def test_fc_init_is_normal_001_with_zero_bias():
    """main_lincls.py L204-205: fc.weight ~ N(0, 0.01), fc.bias = 0."""
    fc = init_official_fc(2048, 100, 0.01, torch.Generator().manual_seed(0))
    assert fc.weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert abs(fc.weight.mean().item()) < 1e-3
    assert torch.equal(fc.bias, torch.zeros(100))


def test_lr_grid_scaling_and_milestones():
    """main_pretext.py L856-858 (grid, x0.2 at 80/90/95), main_lincls.py L113 (x batch/256),
    L693-699 (per-epoch decay)."""
    cfg = OfficialLinearConfig(batch_size=128)
    assert [official_lr(cfg, lr, 0) for lr in cfg.lrs] == [0.5, 1.5, 2.5, 5.0, 15.0, 25.0, 35.0]
    big = OfficialLinearConfig(batch_size=512)
    want = {0: 20.0, 79: 20.0, 80: 4.0, 89: 4.0, 90: 0.8, 94: 0.8, 95: 0.16, 99: 0.16}
    for epoch, lr in want.items():
        assert official_lr(big, 10.0, epoch) == pytest.approx(lr)
    tab = OfficialLinearConfig(batch_size=512, lr_batch=256)  # tabular: loader 512, -b 256
    assert official_lr(tab, 10.0, 0) == 10.0
    imnet = OfficialLinearConfig(lrs=(30.0,), milestones=(60, 80), gamma=0.1)
    assert [official_lr(imnet, 30.0, e) for e in (59, 60, 80)] == pytest.approx([30.0, 3.0, 0.3])


def _blobs(n: int = 64, d: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, d, generator=g) + 3.0 * (2 * y[:, None] - 1).float()
    return x, y


def test_every_lr_is_trained_and_the_epoch_batches_are_drawn_each_epoch():
    x, y = _blobs()
    seen: list[int] = []

    def batches(epoch: int):
        seen.append(epoch)
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(epoch))
        return [(x[perm[i : i + 16]], y[perm[i : i + 16]]) for i in range(0, len(y), 16)]

    cfg = OfficialLinearConfig(lrs=(1e-9, 1.0), epochs=3, milestones=(2,), batch_size=16)
    by_lr = official_linear(nn.Identity(), batches, x, y, 2, cfg, seed=0)
    assert seen == [0, 1, 2]
    assert set(by_lr) == {1e-9, 1.0}
    assert by_lr[1.0] == 100.0  # separable blobs
    assert by_lr[1e-9] <= by_lr[1.0]


def _tiny_image_domain():
    rng = np.random.RandomState(0)
    one = rng.randint(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    xtr = np.repeat(one, 32, axis=0)  # the same image 32 times
    ytr = np.zeros(32, dtype=np.int64)
    return image_domain(
        "tiny", 2, xtr, ytr, xtr[:4], ytr[:4], mean=(0.5,) * 3, std=(0.25,) * 3, size=8,
        pipeline="device",
    )  # fmt: skip


def test_linear_batches_are_augmented_per_sample_and_per_epoch():
    """RandomCrop(size, padding) + flip (main_lincls.py L362-366) on every epoch's batches."""
    d = _tiny_image_domain()
    [(e0, y0)] = list(d.linear_batches(0, 32, seed=0, device=CPU))
    [(e1, _)] = list(d.linear_batches(1, 32, seed=0, device=CPU))
    [(plain, _)] = list(d.eval_batches("train", 32, device=CPU))
    assert e0.shape == plain.shape == (32, 3, 8, 8) and torch.equal(y0, torch.zeros(32).long())
    assert not torch.equal(e0, e1)  # new draws every epoch
    assert len({tuple(v.flatten().tolist()) for v in e0}) > 4  # per-sample draws
    # each view is a shifted (and maybe mirrored) window of the zero-padded image
    raw = d.test_x[:1].float() / 255.0
    padded = torch.nn.functional.pad(raw, (1, 1, 1, 1))  # padding 8 // 8 = 1
    unnorm = e0 * 0.25 + 0.5
    for v in unnorm:
        found = any(
            torch.allclose(v, w, atol=1e-5) or torch.allclose(v, w.flip(-1), atol=1e-5)
            for oy in range(3)
            for ox in range(3)
            for w in [padded[0, :, oy : oy + 8, ox : ox + 8]]
        )
        assert found


def test_random_crop_padded_offsets_cover_the_padded_range():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(400, 1, 1, 1)
    out = A.random_crop_padded(x, 4, 2, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x[:1], (2, 2, 2, 2))
    offsets = set()
    for v in out:
        hits = [
            (oy, ox)
            for oy in range(5)
            for ox in range(5)
            if torch.equal(v[0], padded[0, 0, oy : oy + 4, ox : ox + 4])
        ]
        assert hits
        offsets.add(hits[0])
    assert len(offsets) == 25  # torchvision: randint(0, H + 2p - size + 1) on each axis


def test_run_with_eval_official_records_the_protocol_and_the_best_lr(tmp_path, tiny_overrides):
    cfg = compose(
        [*tiny_overrides, "eval=official", "eval.linear_epochs=2", "eval.linear_lrs=[0.001,1.0]",
         "eval.linear_batch_size=128", "eval.knn=false"]
    )  # fmt: skip
    res = run(cfg, tmp_path)
    assert res["status"] == "ok" and res["linear_protocol"] == "official_sgd"
    by_lr = res["linear_top1_by_lr"]
    assert set(by_lr) == {"0.001", "1"}
    assert res["linear_top1"] == max(by_lr.values())
    fast = run(compose([*tiny_overrides, "eval.knn=false"]), tmp_path / "fast")
    assert fast["linear_protocol"] == "lbfgs" and fast["linear_top1_by_lr"] is None


def test_reference_pipeline_linear_batches_use_the_official_torchvision_transform():
    rng = np.random.RandomState(1)
    xtr = rng.randint(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    ytr = np.arange(20) % 2
    d = image_domain(
        "tiny", 2, xtr, ytr, xtr[:4], ytr[:4], mean=(0.5,) * 3, std=(0.25,) * 3, size=32,
        pipeline="reference", workers=0,
    )  # fmt: skip
    a = list(d.linear_batches(0, 8, seed=0, device=CPU))
    b = list(d.linear_batches(0, 8, seed=0, device=CPU))
    c = list(d.linear_batches(1, 8, seed=0, device=CPU))
    assert len(a) == 2 and a[0][0].shape == (8, 3, 32, 32)  # full batches only
    assert all(torch.equal(p[0], q[0]) for p, q in zip(a, b))  # seeded
    assert not torch.equal(a[0][0], c[0][0])


def test_best_epoch_report_is_at_least_the_last_epoch():
    x, y = _blobs(seed=3)

    def batches(epoch: int):
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(epoch))
        return [(x[perm[i : i + 16]], y[perm[i : i + 16]]) for i in range(0, len(y), 16)]

    last = OfficialLinearConfig(lrs=(0.05, 70.0), epochs=4, milestones=(), batch_size=16)
    best = OfficialLinearConfig(**{**last.__dict__, "report": "best_epoch"})
    a = official_linear(nn.Identity(), batches, x, y, 2, last, seed=0)
    b = official_linear(nn.Identity(), batches, x, y, 2, best, seed=0)
    assert all(b[lr] >= a[lr] for lr in a)
    with pytest.raises(ValueError, match="best_epoch"):
        official_linear(nn.Identity(), batches, x, y, 2, OfficialLinearConfig(report="mean"))


@pytest.mark.parametrize("crop", ["padded", "resized"])
def test_linear_crop_replaces_the_domains_augmentation(crop):
    d = _tiny_image_domain()
    [(a, _)] = list(shuffled_batches(d, 0, 32, seed=0, device=CPU, crop=crop))
    [(b, _)] = list(shuffled_batches(d, 1, 32, seed=0, device=CPU, crop=crop))
    assert a.shape == (32, 3, 8, 8) and not torch.equal(a, b)
    raw = d.test_x[:1].float() / 255.0
    unnorm = a * 0.25 + 0.5
    if crop == "resized":  # no zero padding: every pixel stays inside the image's value range
        assert unnorm.min() >= raw.min() - 1e-4 and unnorm.max() <= raw.max() + 1e-4
    with pytest.raises(ValueError, match="allowed"):
        linear_crop_augment("center")


def test_official_mixco_eval_option():
    e = compose(["eval=official_mixco"]).eval
    assert list(e.linear_lrs) == [3.0] and list(e.linear_milestones) == [60, 80]
    assert e.linear_gamma == 0.1 and e.linear_crop == "resized"
    assert e.linear_report == "best_epoch" and e.linear_init_std == 0.01
