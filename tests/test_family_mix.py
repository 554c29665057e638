"""Un-Mix, MixCo, CMC image mixtures and hidden-layer mixing against their formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imix_sweeps.backbones import mlp, resnet, small_cnn
from imix_sweeps.methods.staged import split_backbone
from imix_sweeps.mix import (
    apply_to_views,
    cutout,
    im_global,
    im_mixture,
    im_region,
    manifold_mixup,
    mixco,
    random_erasing,
    unmix,
)


def _x(b: int = 8, shape=(3, 8, 8), seed: int = 0) -> torch.Tensor:
    return torch.randn(b, *shape, generator=torch.Generator().manual_seed(seed))


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _single_rectangle(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """The rectangle [r0:r1, c0:c1] a 2-D bool mask is made of (None if empty); asserts it is one."""
    if not mask.any():
        return None
    rows = mask.any(1).nonzero().flatten()
    cols = mask.any(0).nonzero().flatten()
    r0, r1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    assert mask[r0:r1, c0:c1].all() and mask.sum() == (r1 - r0) * (c1 - c0)
    return r0, r1, c0, c1


# ----------------------------------------------------------------------------- Un-Mix
def test_unmix_global_is_mixup_with_the_reversed_batch_and_one_lambda():
    x = _x()
    m = unmix(x, 1.0, generator=_g(3), prob=1.0)
    assert torch.equal(m.perm, torch.arange(7, -1, -1))
    lam = float(m.lam[0])
    assert torch.all(m.lam == lam)
    # the draws, in the official order: r, then lam
    g = _g(3)
    torch.rand(1, generator=g)
    seed = int(torch.randint(0, 2**62, (1,), generator=g).item())
    assert lam == pytest.approx(float(np.random.default_rng(seed).beta(1.0, 1.0)), abs=1e-6)
    expected = lam * x + (1 - lam) * x[torch.arange(7, -1, -1)]
    torch.testing.assert_close(m.x, expected)


@pytest.mark.parametrize("seed", range(6))
def test_unmix_region_pastes_one_box_from_the_reversed_batch_with_lambda_its_kept_area(seed):
    x = _x(seed=seed)
    m = unmix(x, 1.0, generator=_g(seed), prob=0.0)
    flipped = x.flip(0)
    changed = (m.x != x).any(dim=(0, 1))  # [H, W] positions where any row changed
    box = _single_rectangle(changed)
    area = 0 if box is None else (box[1] - box[0]) * (box[3] - box[2])
    assert float(m.lam[0]) == pytest.approx(1 - area / 64)
    if box is not None:
        r0, r1, c0, c1 = box
        torch.testing.assert_close(m.x[..., r0:r1, c0:c1], flipped[..., r0:r1, c0:c1])


def test_unmix_lambda_is_not_folded_and_prob_splits_the_branches():
    x = _x(4, (1, 8, 8))
    lams, globals_ = [], 0
    for s in range(400):
        m = unmix(x, 1.0, generator=_g(s), prob=0.5)
        lams.append(float(m.lam[0]))
        # a global mix changes every pixel of a row whose partner differs
        globals_ += bool((m.x != x)[0].all())
    assert min(lams) < 0.3 and max(lams) > 0.7
    assert 140 < globals_ < 260  # about half of 400


def test_unmix_region_needs_spatial_inputs_but_global_works_on_rows():
    rows = torch.randn(6, 5)
    with pytest.raises(ValueError, match="two spatial dims"):
        for s in range(20):  # some draw takes the region branch
            unmix(rows, generator=_g(s), prob=0.5)
    m = unmix(rows, generator=_g(0), prob=1.0)
    torch.testing.assert_close(m.x, m.lam[0] * rows + (1 - m.lam[0]) * rows.flip(0))


# ----------------------------------------------------------------------------- MixCo
def test_mixco_mixes_first_half_with_second_half():
    x = _x(8)
    m = mixco(x, 1.0, generator=_g(1))
    assert m.x.shape == (4, 3, 8, 8)
    assert torch.equal(m.perm, torch.arange(4, 8))
    assert m.lam.shape == (4,) and (m.lam > 0).all() and (m.lam < 1).all()
    for i in range(4):
        torch.testing.assert_close(m.x[i], m.lam[i] * x[i] + (1 - m.lam[i]) * x[4 + i])
    with pytest.raises(ValueError, match="even batch"):
        mixco(_x(7), generator=_g(0))


def test_mixco_lambda_is_uniform_for_alpha_one():
    lam = torch.cat([mixco(_x(64), generator=_g(s)).lam for s in range(20)])
    assert abs(float(lam.mean()) - 0.5) < 0.05 and float(lam.min()) < 0.05


# ----------------------------------------------------------------------------- CMC image mixtures
def test_im_global_is_a_convex_combination_with_the_partners_original():
    x = _x(16)
    m = im_global(x, 1.0, generator=_g(2), num_mix=1, prob=1.0)
    expected = m.lam.view(-1, 1, 1, 1) * x + (1 - m.lam.view(-1, 1, 1, 1)) * x[m.perm]
    torch.testing.assert_close(m.x, expected)
    none = im_global(x, 1.0, generator=_g(2), num_mix=2, prob=0.0)
    assert torch.equal(none.x, x) and torch.all(none.lam == 1)


def test_im_global_applies_with_probability_prob_per_row_and_round():
    x = _x(200, (1, 2, 2))
    m = im_global(x, 1.0, generator=_g(0), num_mix=1, prob=0.3)
    frac = float((m.lam < 1).float().mean())
    assert 0.2 < frac < 0.4


def test_im_region_pastes_one_partner_box_and_decays_the_rest():
    x = _x(16, (2, 8, 8)).abs() + 1.0  # positive, so decay and paste are distinguishable
    m = im_region(x, 1.0, generator=_g(4), num_mix=1, prob=1.0, decay=0.5)
    for i in range(16):
        changed = (m.x[i] != 0.5 * x[i]).any(0)
        box = _single_rectangle(changed)
        kept = 1.0 if box is None else 1 - (box[1] - box[0]) * (box[3] - box[2]) / 64
        assert float(m.lam[i]) == pytest.approx(kept)
        if box is not None:
            r0, r1, c0, c1 = box
            src = x[m.perm[i]]
            torch.testing.assert_close(m.x[i][:, r0:r1, c0:c1], src[:, r0:r1, c0:c1])
    off = im_region(x, 1.0, generator=_g(4), num_mix=2, prob=0.0, decay=0.5)
    assert torch.equal(off.x, x)  # decay only applies to a row that mixes


def test_im_mixture_is_global_then_region():
    x = _x(8)
    m = im_mixture(x, 1.0, generator=_g(0), g_num=1, g_prob=1.0, r_num=1, r_prob=0.0)
    g = im_global(x, 1.0, generator=_g(0), num_mix=1, prob=1.0)
    torch.testing.assert_close(m.x, g.x)
    with pytest.raises(ValueError, match="spatial"):
        im_mixture(torch.randn(4, 6), generator=_g(0))


def test_cutout_sets_a_square_to_the_colour():
    x = _x(10, (3, 16, 16)) + 5.0
    m = cutout(x, generator=_g(0), mask_size=4, prob=1.0, inside=True, color=0.0)
    for i in range(10):
        box = _single_rectangle((m.x[i] == 0).all(0))
        assert box is not None and (box[1] - box[0], box[3] - box[2]) == (4, 4)
    assert torch.allclose(m.lam, torch.full((10,), 1 - 16 / 256))
    assert torch.equal(cutout(x, generator=_g(0), prob=0.0).x, x)


def test_random_erasing_fills_one_box_with_one_value():
    x = _x(10, (3, 16, 16)) + 5.0  # values > 1, the fill is in [0, 1)
    m = random_erasing(x, generator=_g(0), prob=1.0)
    for i in range(10):
        erased = (m.x[i] < 1.5).all(0)
        box = _single_rectangle(erased)
        assert box is not None
        r0, r1, c0, c1 = box
        vals = m.x[i][:, r0:r1, c0:c1]
        assert torch.all(vals == vals.flatten()[0])
        area = (r1 - r0) * (c1 - c0) / 256
        assert 0.02 - 1e-6 <= area + 2 * 16 / 256  # int() truncation of the sides
        assert area <= 0.4 + 1e-6


def test_im_mixes_both_views_with_one_draw():
    x = _x(8)
    y1, y2 = apply_to_views(
        lambda t, generator=None: im_mixture(t, generator=generator, g_prob=1.0, r_prob=1.0),
        x,
        x.clone(),
        _g(0),
    )
    assert torch.equal(y1, y2) and not torch.equal(y1, x)


# ----------------------------------------------------------------------------- manifold
@pytest.mark.parametrize(
    "build,in_shape,layers",
    [
        (lambda s: resnet(s, "resnet18"), [3, 8, 8], range(5)),
        (lambda s: small_cnn(s, width=4), [1, 8, 8], range(3)),
        (lambda s: mlp(s, width=8, depth=3), [12], range(3)),
    ],
)
def test_split_backbone_recomposes_the_forward(build, in_shape, layers):
    torch.manual_seed(0)
    net = build(in_shape).eval()
    x = torch.randn(4, *in_shape)
    with torch.no_grad():
        full = net(x)
        for layer in layers:
            front, back = split_backbone(net, layer)
            torch.testing.assert_close(back(front(x)), full)
    with pytest.raises(ValueError, match="out of range"):
        split_backbone(net, len(list(layers)))


def test_split_backbone_rejects_unknown_backbones():
    with pytest.raises(ValueError, match="not supported for backbone Linear"):
        split_backbone(torch.nn.Linear(3, 3), 1)


def test_manifold_mixup_is_imixup_of_the_hidden_features():
    h = torch.randn(8, 5, 4, 4)
    m = manifold_mixup(h, 1.0, generator=_g(0), layer=3)
    lam = m.lam.view(-1, 1, 1, 1)
    torch.testing.assert_close(m.x, lam * h + (1 - lam) * h[m.perm])
    assert (m.lam >= 0.5).all()
