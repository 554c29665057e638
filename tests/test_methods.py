"""Method mechanics that the official code fixes: shared BN over 2B rows, EMA order, the queue."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from imix_sweeps.backbones import mlp
from imix_sweeps.losses import npair_loss
from imix_sweeps.mix import MixStrategy, imixup, no_mix
from tests.method_yaml import byol, moco, npair

IMIX = MixStrategy(name="imixup", family="imix", fn=imixup)
NONE = MixStrategy()


def batch(b=8, f=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, f, generator=g), torch.randn(b, f, generator=g)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_npair_encodes_mixed_and_clean_views_in_one_forward():
    model = npair(mlp([12], width=16, depth=1), IMIX, dim=8)
    sizes = []
    model.encoder.backbone.register_forward_hook(lambda m, i, o: sizes.append(i[0].shape[0]))
    x1, x2 = batch()
    model(x1, x2, generator=gen())
    assert sizes == [16]  # one pass over cat([mixed x1, x2]): BatchNorm sees 2B rows


def test_npair_loss_is_the_formula_on_its_own_embeddings():
    model = npair(mlp([12], width=16, depth=1), IMIX, dim=8, temperature=0.3)
    x1, x2 = batch()
    out = model(x1, x2, generator=gen(4))
    m = imixup(x1, generator=gen(4))  # the same draws
    z = model.encoder(torch.cat([m.x, x2]))
    assert torch.allclose(out.loss, npair_loss(z[:8], z[8:], m.perm, m.lam, 0.3))


def test_npair_without_mix_equals_plain_npair():
    model = npair(mlp([12], width=16, depth=1), NONE, dim=8, temperature=0.2)
    x1, x2 = batch()
    out = model(x1, x2, generator=gen())
    z = F.normalize(model.encoder(torch.cat([x1, x2])), dim=1)
    plain = F.cross_entropy(z[:8] @ z[8:].T / 0.2, torch.arange(8))
    assert torch.allclose(out.loss, plain)


def test_moco_updates_the_key_encoder_before_the_key_forward():
    model = moco(
        mlp([12], width=16, depth=1), NONE, dim=8, queue_size=32, momentum=0.9, shuffle_bn=False
    )
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(torch.randn_like(p))
    q0 = [p.clone() for p in model.encoder.parameters()]
    k0 = [p.clone() for p in model.key_encoder.parameters()]
    seen = {}

    def record(module, inputs):
        seen.setdefault("w", [p.clone() for p in module.parameters()])

    model.key_encoder.register_forward_pre_hook(record)
    x1, x2 = batch()
    model(x1, x2, generator=gen())
    expected = [0.9 * k + 0.1 * q for k, q in zip(k0, q0, strict=True)]
    for w, e in zip(seen["w"], expected, strict=True):
        assert torch.allclose(w, e)  # the key forward already used the updated weights


def test_moco_enqueues_normalised_keys_and_wraps():
    model = moco(mlp([12], width=16, depth=1), IMIX, dim=8, queue_size=12, shuffle_bn=False)
    x1, x2 = batch()
    model(x1, x2, generator=gen())
    assert model.queue.ptr.item() == 8
    with torch.no_grad():
        k = F.normalize(model.key_encoder(x2), dim=1)
    assert torch.allclose(model.queue.keys[:8], k, atol=1e-6)
    model(x1, x2, generator=gen())
    assert model.queue.ptr.item() == (16 % 12)
    assert torch.allclose(model.queue.keys.norm(dim=1), torch.ones(12))


def test_symmetric_adds_the_other_direction():
    x1, x2 = batch()
    torch.manual_seed(0)
    sym = npair(mlp([12], width=16, depth=1), IMIX, dim=8, symmetric=True)
    g = gen(7)
    out = sym(x1, x2, generator=g)
    g2 = gen(7)
    manual = sym.direction(x1, x2, g2) + sym.direction(x2, x1, g2)
    assert torch.allclose(out.loss, manual)


def test_byol_target_is_an_ema_copy_without_gradients():
    model = byol(mlp([12], width=16, depth=1), IMIX, dim=8, momentum=0.5)
    assert all(not p.requires_grad for p in model.target.parameters())
    x1, x2 = batch()
    out = model(x1, x2, generator=gen())
    out.loss.backward()
    assert all(p.grad is None for p in model.target.parameters())
    assert model.predictor[0].weight.grad is not None
    assert 0.0 <= out.loss.item() <= 4.0


def test_every_method_has_a_backbone_for_evaluation():
    for build in (npair, moco, byol):
        model = build(mlp([12], width=16, depth=1), NONE, dim=8)
        assert isinstance(model.backbone, nn.Module) and model.backbone.out_dim == 16
    assert no_mix(torch.zeros(2, 3)).lam.tolist() == [1.0, 1.0]
