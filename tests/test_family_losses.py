"""Un-Mix, NT-Xent, MixCo, memory-bank (NCE / softmax-CE) and SwAV losses against direct formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from imix_sweeps.losses import (
    bank_scores,
    bank_update,
    mixco_loss,
    mixco_targets,
    moco_loss,
    moco_unmix_loss,
    nce_loss,
    nt_xent_loss,
    sinkhorn,
    softmax_ce_loss,
    swav_swapped_loss,
    unmix_combine,
)

B, D, K = 6, 5, 7


def _t(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _n(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def _ce(logits_row: torch.Tensor, label: int) -> float:
    return float(-logits_row[label] + torch.logsumexp(logits_row, 0))


def _moco_direct(q, k, queue, t) -> float:
    q, k, queue = _n(q), _n(k), _n(queue)
    total = 0.0
    for i in range(q.shape[0]):
        row = torch.cat([(q[i] * k[i]).sum().view(1), queue @ q[i]]) / t
        total += _ce(row, 0)
    return total / q.shape[0]


def test_moco_unmix_matches_formula_with_flipped_embeddings():
    q, qm, k, queue = _t(B, D, seed=0), _t(B, D, seed=1), _t(B, D, seed=2), _t(K, D, seed=3)
    lam, t = 0.3, 0.1
    expected = (
        _moco_direct(q, k, queue, t)
        + lam * _moco_direct(qm, k, queue, t)
        + (1 - lam) * _moco_direct(qm.flip(0), k, queue, t)
    )
    assert float(moco_unmix_loss(q, qm, k, queue, lam, t)) == pytest.approx(expected, rel=1e-9)


def test_unmix_with_lambda_one_and_no_mixing_is_twice_the_base_loss():
    q, k, queue = _t(B, D, seed=0), _t(B, D, seed=2), _t(K, D, seed=3)
    base = moco_loss(q, k, queue, 0.2)
    assert float(moco_unmix_loss(q, q, k, queue, 1.0, 0.2)) == pytest.approx(2 * float(base))
    assert float(unmix_combine(base, base, base * 0 + 123.0, 1.0)) == pytest.approx(2 * float(base))


def test_nt_xent_matches_the_2b_way_formula():
    z1, z2, t = _t(B, D, seed=4), _t(B, D, seed=5), 0.5
    z = _n(torch.cat([z1, z2]))
    total = 0.0
    for i in range(2 * B):
        pos = (i + B) % (2 * B)
        others = [j for j in range(2 * B) if j != i]
        row = torch.stack([(z[i] * z[j]).sum() for j in others]) / t
        total += _ce(row, others.index(pos))
    assert float(nt_xent_loss(z1, z2, t)) == pytest.approx(total / (2 * B), rel=1e-9)


def test_mixco_targets_put_lambda_on_both_sources():
    lam = torch.tensor([0.2, 0.9, 0.5])
    t = mixco_targets(lam, 6 + 4)
    assert t.shape == (3, 10)
    for i in range(3):
        assert t[i, i] == pytest.approx(float(lam[i])) and t[i, 3 + i] == pytest.approx(
            1 - float(lam[i])
        )
    assert torch.allclose(t.sum(1), torch.ones(3)) and t[:, 6:].abs().sum() == 0


def test_mixco_loss_matches_soft_cross_entropy_over_keys_and_queue():
    h = B // 2
    qm, k, queue = _t(h, D, seed=6), _t(B, D, seed=7), _t(K, D, seed=8)
    lam = torch.tensor([0.1, 0.6, 0.8], dtype=torch.float64)
    mt = 0.05
    keys = _n(torch.cat([k, queue]))
    total = 0.0
    for i in range(h):
        logp = F.log_softmax(keys @ _n(qm)[i] / mt, dim=0)
        total += -(float(lam[i]) * float(logp[i]) + (1 - float(lam[i])) * float(logp[h + i]))
    assert float(mixco_loss(qm, k, lam, mt, queue)) == pytest.approx(total / h, rel=1e-6)


def test_mixco_with_lambda_one_is_plain_infonce_on_the_first_half():
    h = B // 2
    qm, k, queue = _t(h, D, seed=9), _t(B, D, seed=10), _t(K, D, seed=11)
    logits = _n(qm) @ _n(torch.cat([k, queue])).t() / 0.2
    expected = F.cross_entropy(logits, torch.arange(h))
    got = mixco_loss(qm, k, torch.ones(h, dtype=torch.float64), 0.2, queue)
    assert float(got) == pytest.approx(float(expected), rel=1e-9)


def test_bank_scores_take_own_row_first_then_negatives():
    bank, z = _n(_t(20, D, seed=12)), _t(3, D, seed=13)
    idx, neg = torch.tensor([4, 0, 19]), torch.tensor([[1, 2], [3, 3], [19, 5]])
    s = bank_scores(z, bank, idx, neg, 0.07)
    for i in range(3):
        cols = [int(idx[i]), *neg[i].tolist()]
        for c, j in enumerate(cols):
            assert float(s[i, c]) == pytest.approx(float(_n(z)[i] @ bank[j]) / 0.07)


def test_memory_bank_update_rule():
    bank = _n(_t(10, D, seed=14))
    before = bank.clone()
    z, idx, m = _t(2, D, seed=15), torch.tensor([3, 7]), 0.5
    bank_update(bank, idx, z, m)
    for r, i in enumerate(idx.tolist()):
        expected = m * before[i] + (1 - m) * _n(z)[r]
        torch.testing.assert_close(bank[i], expected / expected.norm())
    untouched = [i for i in range(10) if i not in (3, 7)]
    assert torch.equal(bank[untouched], before[untouched])


def test_nce_loss_matches_the_official_criterion():
    scores, n_data, log_z = _t(4, 1 + K, seed=16), 1000, torch.tensor(3.0, dtype=torch.float64)
    p = torch.exp(scores) / math.exp(3.0)
    pn = K / n_data
    total = 0.0
    for b in range(4):
        total += math.log(float(p[b, 0]) / (float(p[b, 0]) + pn + 1e-7))
        for j in range(1, 1 + K):
            total += math.log(pn / (float(p[b, j]) + pn + 1e-7))
    assert float(nce_loss(scores, n_data, log_z)) == pytest.approx(-total / 4, rel=1e-9)


def test_softmax_ce_labels_the_positive_column():
    scores = _t(4, 1 + K, seed=17)
    expected = sum(_ce(scores[b], 0) for b in range(4)) / 4
    assert float(softmax_ce_loss(scores)) == pytest.approx(expected, rel=1e-9)


def _sinkhorn_direct(scores: torch.Tensor, eps: float, iters: int) -> torch.Tensor:
    q = torch.exp(scores.double() / eps).t()
    q = q / q.sum()
    p, n = q.shape
    for _ in range(iters):
        q = q * ((1 / p) / q.sum(1)).view(-1, 1)
        q = q * ((1 / n) / q.sum(0)).view(1, -1)
    return (q / q.sum(0, keepdim=True)).t()


def test_sinkhorn_matches_the_official_iterations_and_its_marginals():
    scores = _n(_t(16, D, seed=18)) @ _n(_t(4, D, seed=19)).t()  # [N, P] cosine scores
    q = sinkhorn(scores, 0.05, 3)
    torch.testing.assert_close(q.double(), _sinkhorn_direct(scores, 0.05, 3), rtol=1e-5, atol=1e-7)
    assert torch.allclose(q.sum(1), torch.ones(16), atol=1e-5)  # each sample: a distribution
    many = sinkhorn(scores, 0.05, 200)  # converged: equal mass on every prototype
    assert torch.allclose(many.sum(1), torch.ones(16), atol=1e-5)
    assert torch.allclose(many.sum(0), torch.full((4,), 16 / 4), atol=1e-3)


def test_swav_swapped_loss_matches_formula():
    codes = torch.softmax(_t(5, 4, seed=20), 1)
    scores = _t(5, 4, seed=21)
    expected = -(codes * torch.log_softmax(scores / 0.1, 1)).sum(1).mean()
    assert float(swav_swapped_loss(codes, scores, 0.1)) == pytest.approx(float(expected))
