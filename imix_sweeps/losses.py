"""Contrastive losses as pure functions.

Each loss L2-normalises its embedding inputs itself. Notation: B batch, D embedding dim,
K queue length, tau temperature, lam [B] weight of each sample's own identity, perm [B] its
mixing partner. In DDP, keys may be gathered from all ranks (``k`` has ``B * world`` rows);
``label_offset = rank * B`` then points each query at its own key.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def two_target_ce(logits: Tensor, target: Tensor, partner: Tensor, lam: Tensor) -> Tensor:
    """mean_i [ lam_i * CE(logits_i, target_i) + (1 - lam_i) * CE(logits_i, partner_i) ]."""
    # logits: [B, N]; target, partner: [B] long; lam: [B]
    ce_own = F.cross_entropy(logits, target, reduction="none")  # [B]
    ce_partner = F.cross_entropy(logits, partner, reduction="none")  # [B]
    lam = lam.to(logits.dtype)
    return (lam * ce_own + (1.0 - lam) * ce_partner).mean()


def npair_loss(
    q: Tensor,
    k: Tensor,
    perm: Tensor,
    lam: Tensor,
    temperature: float,
    *,
    label_offset: int = 0,
) -> Tensor:
    """N-pair / i-Mix N-pair: B-way classification of the mixed anchors against the keys."""
    q = F.normalize(q, dim=1)  # [B, D] from the mixed view
    k = F.normalize(k, dim=1)  # [B', D] from the clean view (B' = B * world in DDP)
    logits = q @ k.t() / temperature  # [B, B']
    target = torch.arange(q.shape[0], device=q.device) + label_offset  # [B]
    return two_target_ce(logits, target, perm + label_offset, lam)


def moco_loss(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """Plain MoCo InfoNCE: logits [q.k, q.queue] / tau, [B, 1+K], label 0."""
    q = F.normalize(q, dim=1)  # [B, D]
    k = F.normalize(k, dim=1)  # [B, D]
    queue = F.normalize(queue, dim=1)  # [K, D]
    l_pos = (q * k).sum(dim=1, keepdim=True)  # [B, 1]
    l_neg = q @ queue.t()  # [B, K]
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature  # [B, 1+K]
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, labels)


def mocon_loss(
    q: Tensor,
    k: Tensor,
    queue: Tensor,
    perm: Tensor,
    lam: Tensor,
    temperature: float,
    *,
    label_offset: int = 0,
) -> Tensor:
    """i-Mix's MoCo: in-batch keys followed by the queue, [B, B'+K], two-target weighting."""
    q = F.normalize(q, dim=1)  # [B, D]
    k = F.normalize(k, dim=1)  # [B', D]
    queue = F.normalize(queue, dim=1)  # [K, D]
    logits = q @ torch.cat([k, queue]).t() / temperature  # [B, B'+K]
    target = torch.arange(q.shape[0], device=q.device) + label_offset
    return two_target_ce(logits, target, perm + label_offset, lam)


def byol_loss(p: Tensor, z: Tensor, perm: Tensor, lam: Tensor) -> Tensor:
    """BYOL / i-Mix BYOL: mean_i 2 - 2 (lam_i cos(p_i, z_i) + (1 - lam_i) cos(p_i, z_perm_i))."""
    p = F.normalize(p, dim=1)  # [B, D] online prediction of the mixed view
    z = F.normalize(z, dim=1)  # [B, D] target projection of the clean view
    lam = lam.to(p.dtype)
    own = (p * z).sum(dim=1)  # [B]
    partner = (p * z[perm]).sum(dim=1)  # [B]
    return (2.0 - 2.0 * (lam * own + (1.0 - lam) * partner)).mean()


# ----------------------------------------------------------------------------- Un-Mix
def unmix_combine(loss_ori: Tensor, loss_mix: Tensor, loss_mix_flip: Tensor, lam: float) -> Tensor:
    """Un-Mix: ``loss_ori + lam * loss(view, mixed) + (1 - lam) * loss(view, flip(mixed))``."""
    return loss_ori + lam * loss_mix + (1.0 - lam) * loss_mix_flip


def moco_unmix_loss(
    q: Tensor, q_mixed: Tensor, k: Tensor, queue: Tensor, lam: float, temperature: float
) -> Tensor:
    """One Un-Mix MoCo direction (``unmix_c10.py`` ``contrastive_loss``): q, the mixed query and
    its flipped embeddings (rows reversed; the flipped images are never encoded) each scored
    with plain MoCo logits [B, 1+K] against the same keys."""
    # q, q_mixed: [B, D]; k: [B, D]; queue: [K, D]
    return unmix_combine(
        moco_loss(q, k, queue, temperature),
        moco_loss(q_mixed, k, queue, temperature),
        moco_loss(q_mixed.flip(0), k, queue, temperature),
        lam,
    )


# ----------------------------------------------------------------------------- SimCLR
def nt_xent_loss(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """SimCLR NT-Xent, 2B-way: each of the 2B rows is an anchor, its other view the positive,
    the remaining 2B-2 rows negatives; mean over the 2B anchors."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # [2B, D]
    b = z1.shape[0]
    sim = z @ z.t() / temperature  # [2B, 2B]
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)  # [2B]
    return F.cross_entropy(sim, target)


# ----------------------------------------------------------------------------- MixCo
def soft_ce(logits: Tensor, target: Tensor) -> Tensor:
    """mean_rows( -sum_j target_ij * log_softmax(logits)_ij ) (MixCo's SoftCrossEntropy)."""
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def mixco_targets(lam: Tensor, n_cols: int) -> Tensor:
    """MixCo soft targets [B/2, n_cols]: lam_i at column i, 1 - lam_i at column B/2 + i, else 0."""
    h = lam.shape[0]
    t = torch.zeros(h, n_cols, device=lam.device, dtype=torch.float32)
    idx = torch.arange(h, device=lam.device)
    t[idx, idx] = lam.float()
    t[idx, idx + h] = 1.0 - lam.float()
    return t


def mixco_loss(
    q_mix: Tensor, k: Tensor, lam: Tensor, temperature: float, queue: Tensor | None = None
) -> Tensor:
    """MixCo term: mixed queries [B/2, D] against the B keys (and the queue), soft targets over
    the two sources, logits / mix temperature: ``[B/2, B(+K)]``."""
    q_mix = F.normalize(q_mix, dim=1)  # [B/2, D]
    keys = F.normalize(k, dim=1)  # [B, D]
    if queue is not None:
        keys = torch.cat([keys, F.normalize(queue, dim=1)])  # [B+K, D]
    logits = q_mix @ keys.t() / temperature  # [B/2, B(+K)]
    return soft_ce(logits, mixco_targets(lam, logits.shape[1]).to(logits.dtype))


# ----------------------------------------------------------------------------- memory bank (InsDis, CMC)
def bank_scores(
    z: Tensor, bank: Tensor, idx: Tensor, neg_idx: Tensor, temperature: float
) -> Tensor:
    """Scores of ``z`` [B, D] against its own bank row and ``neg_idx`` [B, K] rows: [B, 1+K]
    of ``<z, m_j> / t`` (column 0 the positive), as the official ``MemoryInsDis``."""
    z = F.normalize(z, dim=1)
    rows = torch.cat([idx.view(-1, 1), neg_idx], dim=1)  # [B, 1+K]
    w = bank[rows]  # [B, 1+K, D]
    return torch.einsum("bkd,bd->bk", w, z) / temperature


def nce_loss(scores: Tensor, n_data: int, log_z: Tensor) -> Tensor:
    """NCE (official ``NCECriterion``) on ``P = exp(score) / Z`` [B, 1+K] with ``K`` noise
    samples from the uniform ``Pn = 1 / n_data``: ``-mean_b[ log P+/(P+ + K Pn)
    + sum_k log K Pn/(P_k + K Pn) ]``."""
    eps = 1e-7
    p = torch.exp(scores - log_z)  # [B, 1+K]
    k = p.shape[1] - 1
    mpn = k / float(n_data)
    pos = torch.log(p[:, 0] / (p[:, 0] + mpn + eps))  # [B]
    neg = torch.log(mpn / (p[:, 1:] + mpn + eps))  # [B, K]
    return -(pos.sum() + neg.sum()) / p.shape[0]


def softmax_ce_loss(scores: Tensor) -> Tensor:
    """Softmax-CE over [positive, negatives] (official ``NCESoftmaxLoss``): label 0."""
    return F.cross_entropy(
        scores, torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
    )


@torch.no_grad()
def bank_update(bank: Tensor, idx: Tensor, z: Tensor, momentum: float) -> None:
    """``m_i <- normalize(momentum * m_i + (1 - momentum) * normalize(z_i))`` in place."""
    z = F.normalize(z.detach().to(bank.dtype), dim=1)
    rows = bank[idx] * momentum + z * (1.0 - momentum)
    bank[idx] = F.normalize(rows, dim=1)


# ----------------------------------------------------------------------------- SwAV
@torch.no_grad()
def sinkhorn(scores: Tensor, epsilon: float = 0.05, iterations: int = 3) -> Tensor:
    """SwAV's Sinkhorn-Knopp on prototype scores [N, P] -> codes Q [N, P].

    ``Q = exp(scores / eps)^T`` normalised to sum 1, then ``iterations`` rounds of row
    (prototype) scaling to 1/P and column (sample) scaling to 1/N; returned with each sample's
    row summing to 1 (official ``distributed_sinkhorn``, one process)."""
    q = scores.float() / epsilon
    q = torch.exp(q - q.max()).t()  # [P, N]; the max shift cancels in the normalisation
    q = q / q.sum()
    p, n = q.shape
    for _ in range(iterations):
        q = q * ((1.0 / p) / q.sum(dim=1, keepdim=True))
        q = q * ((1.0 / n) / q.sum(dim=0, keepdim=True))
    return (q / q.sum(dim=0, keepdim=True)).t()  # [N, P]


def swav_swapped_loss(codes: Tensor, scores: Tensor, temperature: float) -> Tensor:
    """``-mean_n sum_p q_np log softmax(scores_n / t)_p``: predict codes from another view."""
    return -(codes * F.log_softmax(scores / temperature, dim=1)).sum(dim=1).mean()
