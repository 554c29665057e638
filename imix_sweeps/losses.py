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
