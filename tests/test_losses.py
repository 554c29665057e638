"""Each loss against a direct numpy implementation of the paper's formula."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from imix_sweeps.losses import byol_loss, moco_loss, mocon_loss, npair_loss


def _norm(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def _two_target_ref(
    logits: np.ndarray, target: np.ndarray, partner: np.ndarray, lam: np.ndarray
) -> float:
    lp = _log_softmax(logits)
    rows = np.arange(len(lam))
    return float(np.mean(-lam * lp[rows, target] - (1 - lam) * lp[rows, partner]))


def _data(b=6, d=5, k=7, seed=0):
    rng = np.random.default_rng(seed)
    q, key, queue = rng.normal(size=(b, d)), rng.normal(size=(b, d)), rng.normal(size=(k, d))
    perm = rng.permutation(b)
    lam = rng.uniform(0.5, 1.0, size=b)
    return q, key, queue, perm, lam


def t(a):
    return torch.tensor(a, dtype=torch.float64)


def test_npair_matches_formula():
    q, k, _, perm, lam = _data()
    ref = _two_target_ref(_norm(q) @ _norm(k).T / 0.2, np.arange(6), perm, lam)
    got = npair_loss(t(q), t(k), torch.tensor(perm), t(lam), 0.2)
    assert abs(got.item() - ref) < 1e-10


def test_npair_without_mix_is_plain_npair():
    q, k, _, _, _ = _data(seed=1)
    plain = F.cross_entropy(
        F.normalize(t(q), dim=1) @ F.normalize(t(k), dim=1).T / 0.5, torch.arange(6)
    )
    got = npair_loss(t(q), t(k), torch.arange(6), torch.ones(6, dtype=torch.float64), 0.5)
    assert torch.allclose(got, plain)


def test_npair_label_offset_points_at_own_rank_slice():
    q, k, _, perm, lam = _data(seed=2)
    k_all = np.concatenate([np.random.default_rng(9).normal(size=(6, 5)), k])  # this rank is rank 1
    ref = _two_target_ref(_norm(q) @ _norm(k_all).T / 0.2, np.arange(6) + 6, perm + 6, lam)
    got = npair_loss(t(q), t(k_all), torch.tensor(perm), t(lam), 0.2, label_offset=6)
    assert abs(got.item() - ref) < 1e-10


def test_moco_matches_formula():
    q, k, queue, _, _ = _data(seed=3)
    qn, kn, Qn = _norm(q), _norm(k), _norm(queue)
    logits = np.concatenate([(qn * kn).sum(1, keepdims=True), qn @ Qn.T], axis=1) / 0.07
    ref = float(np.mean(-_log_softmax(logits)[:, 0]))
    assert abs(moco_loss(t(q), t(k), t(queue), 0.07).item() - ref) < 1e-10


def test_mocon_matches_formula_and_reduces_to_in_batch_keys_plus_queue():
    q, k, queue, perm, lam = _data(seed=4)
    logits = _norm(q) @ np.concatenate([_norm(k), _norm(queue)]).T / 0.2  # [B, B + K]
    ref = _two_target_ref(logits, np.arange(6), perm, lam)
    got = mocon_loss(t(q), t(k), t(queue), torch.tensor(perm), t(lam), 0.2)
    assert abs(got.item() - ref) < 1e-10
    ones = mocon_loss(
        t(q), t(k), t(queue), torch.tensor(perm), torch.ones(6, dtype=torch.float64), 0.2
    )
    plain = float(np.mean(-_log_softmax(logits)[np.arange(6), np.arange(6)]))
    assert abs(ones.item() - plain) < 1e-10


def test_byol_matches_formula_and_no_mix_reduction():
    p, z, _, perm, lam = _data(seed=5)
    pn, zn = _norm(p), _norm(z)
    ref = float(np.mean(2 - 2 * (lam * (pn * zn).sum(1) + (1 - lam) * (pn * zn[perm]).sum(1))))
    assert abs(byol_loss(t(p), t(z), torch.tensor(perm), t(lam)).item() - ref) < 1e-10
    plain = float(np.mean(2 - 2 * (pn * zn).sum(1)))
    got = byol_loss(t(p), t(z), torch.arange(6), torch.ones(6, dtype=torch.float64))
    assert abs(got.item() - plain) < 1e-10


def test_gradients_flow_to_queries_and_keys():
    q, k, queue, perm, lam = _data(seed=6)
    qt, kt = t(q).requires_grad_(), t(k).requires_grad_()
    npair_loss(qt, kt, torch.tensor(perm), t(lam), 0.2).backward()
    assert qt.grad is not None and kt.grad is not None
    assert torch.isfinite(qt.grad).all() and qt.grad.abs().sum() > 0 and kt.grad.abs().sum() > 0
    qt2 = t(q).requires_grad_()
    mocon_loss(qt2, t(k), t(queue), torch.tensor(perm), t(lam), 0.2).backward()
    assert qt2.grad.abs().sum() > 0
