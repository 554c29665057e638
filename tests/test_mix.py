"""Mix properties: each mix against its definition (official i-Mix semantics)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imix_sweeps.mix import MixStrategy, apply_input_mix, icutmix, imixup, inputmix, no_mix


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", [(8, 3, 6, 5), (8, 1, 32, 32), (8, 28), (8, 2, 7)])
def test_no_mix_is_identity(shape):
    x = torch.randn(shape)
    m = no_mix(x, generator=gen())
    assert m.x is x
    assert torch.equal(m.perm, torch.arange(8))
    assert torch.equal(m.lam, torch.ones(8))


@pytest.mark.parametrize("shape", [(16, 3, 6, 5), (16, 28), (16, 1, 32, 32)])
def test_imixup_is_convex_combination_with_its_partner(shape):
    x = torch.randn(shape, dtype=torch.float64)
    m = imixup(x, alpha=1.0, generator=gen(1))
    assert m.x.shape == x.shape and m.x.dtype == x.dtype
    assert sorted(m.perm.tolist()) == list(range(16))  # a permutation
    assert ((m.lam >= 0.5) & (m.lam <= 1.0)).all()  # folded: max(lam, 1 - lam)
    lam = m.lam.double().view(-1, *([1] * (x.dim() - 1)))
    assert torch.allclose(m.x, lam * x + (1 - lam) * x[m.perm])


def test_imixup_lambda_distribution_is_folded_beta():
    # Beta(1, 1) folded to [0.5, 1] is U(0.5, 1): mean 0.75, variance 1/48.
    lam = imixup(torch.zeros(20000, 1), alpha=1.0, generator=gen(2)).lam
    assert abs(lam.mean().item() - 0.75) < 0.01
    assert abs(lam.var().item() - 1 / 48) < 0.002


def test_mixes_are_deterministic_given_the_generator():
    x = torch.randn(8, 3, 8, 8)
    for fn in (imixup, icutmix, inputmix):
        a, b = fn(x, generator=gen(5)), fn(x, generator=gen(5))
        assert torch.equal(a.x, b.x) and torch.equal(a.perm, b.perm) and torch.equal(a.lam, b.lam)


@pytest.mark.parametrize("seed", range(12))
def test_icutmix_pastes_one_rectangle_with_area_one_minus_lambda(seed):
    b, c, h, w = 6, 2, 9, 7
    x = torch.arange(b * c * h * w, dtype=torch.float32).view(b, c, h, w)  # all values distinct
    m = icutmix(x, alpha=1.0, generator=gen(seed))
    assert torch.equal(m.lam, torch.full((b,), m.lam[0].item()))  # one lam for the batch
    moved = [i for i in range(b) if m.perm[i] != i]  # a sample paired with itself shows no change
    regions = [(m.x[i] != x[i]).any(dim=0) for i in moved]  # [H, W] each
    for r in regions[1:]:
        assert torch.equal(r, regions[0]), "one box for the whole batch"
    region = regions[0]
    assert abs((1 - m.lam[0].item()) - region.float().mean().item()) < 1e-6  # exact kept area
    if region.any():
        rows, cols = region.any(1).nonzero().flatten(), region.any(0).nonzero().flatten()
        box = torch.zeros_like(region)
        box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        assert torch.equal(region, box), "the changed pixels form one rectangle"
        for i in range(b):
            assert torch.equal(m.x[i][:, region], x[m.perm[i]][:, region])
            assert torch.equal(m.x[i][:, ~region], x[i][:, ~region])


def test_icutmix_rejects_tabular_rows():
    with pytest.raises(ValueError, match="two spatial dims"):
        icutmix(torch.randn(8, 28))


def test_inputmix_two_extras_keeps_at_least_half_weight_on_the_original():
    b = 12
    x = torch.eye(b)  # one-hot rows: the mixed row shows every weight
    m = inputmix(x, alpha=1.0, generator=gen(3), num_extra=2)
    assert torch.allclose(m.x.sum(1), torch.ones(b))  # weights sum to 1
    assert (m.x >= 0).all()
    own = m.x[torch.arange(b), torch.arange(b)]
    assert (own >= 0.5 - 1e-6).all()
    assert (own >= m.lam - 1e-6).all()  # lam: the original's weight (a partner may be itself)
    assert (m.lam > 0.5).all()  # the Dirichlet covers the original too


def _official_inputmix(x: np.ndarray, d: np.ndarray, perms: list[np.ndarray]) -> np.ndarray:
    """imix builder.py inputmix (num_aux > 1), written out in numpy for given draws:
    lam = pmin * Dirichlet draw (transposed), lam[0] += pmin, output = sum_i lam[i] * x[randind_i]
    with randind_0 = arange."""
    pmin = 0.5
    lam = pmin * d.T  # [1 + k, B]
    lam[0] = lam[0] + pmin
    out = np.zeros_like(x)
    for i, randind in enumerate([np.arange(len(x)), *perms]):
        out += lam[i].reshape(-1, *([1] * (x.ndim - 1))) * x[randind]
    return out


@pytest.mark.parametrize("num_extra,alpha", [(2, 1.0), (3, 0.5), (4, 2.0)])
def test_inputmix_matches_the_official_formula(num_extra, alpha):
    b = 10
    x = torch.randn(b, 3, 4, 4, dtype=torch.float64)
    m = inputmix(x, alpha=alpha, generator=gen(7), num_extra=num_extra)
    # the same draws, in the order the function makes them
    g = gen(7)
    seed = int(torch.randint(0, 2**62, (1,), generator=g).item())
    d = np.random.default_rng(seed).dirichlet([alpha] * (num_extra + 1), size=b)
    perms = [torch.randperm(b, generator=g).numpy() for _ in range(num_extra)]
    ref = _official_inputmix(x.numpy(), d, perms)
    assert np.allclose(m.x.numpy(), ref, atol=1e-6)
    assert np.allclose(m.lam.numpy(), 0.5 + 0.5 * d[:, 0], atol=1e-6)
    assert torch.equal(m.perm, torch.as_tensor(perms[0]))


def test_inputmix_one_extra_is_folded_mixup():
    x = torch.randn(8, 5)
    a, b = inputmix(x, generator=gen(4), num_extra=1), imixup(x, generator=gen(4))
    assert torch.equal(a.x, b.x)


def test_input_mix_is_applied_to_the_stacked_two_view_batch():
    x1, x2 = torch.eye(6), torch.eye(6) * 2
    strategy = MixStrategy(name="inputmix", family="none", input_fn=inputmix)
    y1, y2 = apply_input_mix(strategy, x1, x2, gen(0))
    assert y1.shape == x1.shape and y2.shape == x2.shape
    assert not torch.equal(y1, x1)
    plain = MixStrategy()
    assert apply_input_mix(plain, x1, x2, gen(0)) == (x1, x2)


def test_unknown_family_is_rejected():
    with pytest.raises(ValueError, match="unknown mix family"):
        MixStrategy(name="x", family="bogus")
