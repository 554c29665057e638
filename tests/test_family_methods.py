"""The methods under the new mix families against direct re-computations of the official steps."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from imix_sweeps.backbones import mlp, small_cnn
from imix_sweeps.losses import moco_loss, mocon_loss, npair_loss, nt_xent_loss
from imix_sweeps.methods.cmc import rgb_to_lab, rgb_to_ycbcr
from imix_sweeps.methods.common import ema_update
from imix_sweeps.mix import (
    MixStrategy,
    im_global,
    imixup,
    mixco,
    no_mix,
    unmix,
)
from tests.method_yaml import byol, cmc, insdis, moco, npair, simclr, swav

B = 8


def _views(channels: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, channels, 8, 8, generator=g), torch.randn(B, channels, 8, 8, generator=g)


def _bb(channels: int = 1):
    torch.manual_seed(0)
    return small_cnn([channels, 8, 8], width=4)


def _g(seed: int = 5) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


UNMIX = MixStrategy("unmix", "unmix", unmix)
MIXCO = MixStrategy("mixco", "mixco", mixco)


def _ce0(q, k, queue, t):  # plain MoCo written out
    q, k, queue = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(queue, dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.t()], 1) / t
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long))


# ----------------------------------------------------------------------------- core families unchanged
def test_moco_without_mix_is_plain_moco_bit_for_bit():
    model = moco(_bb(), MixStrategy(), dim=8, queue_size=16, head="linear")
    ref = copy.deepcopy(model)
    x1, x2 = _views()
    loss = model(x1, x2, generator=_g()).loss
    ema_update(ref.key_encoder, ref.encoder, ref.momentum)
    q, k = ref.encoder(x1), ref.key_encoder(x2)
    expected = moco_loss(q, k, ref.queue.keys.clone(), ref.temperature)
    assert torch.equal(loss, expected)


def test_moco_with_imix_is_mocon_bit_for_bit():
    mix = MixStrategy("imixup", "imix", imixup)
    model = moco(_bb(), mix, dim=8, queue_size=16, head="linear")
    ref = copy.deepcopy(model)
    x1, x2 = _views()
    loss = model(x1, x2, generator=_g()).loss
    ema_update(ref.key_encoder, ref.encoder, ref.momentum)
    m = imixup(x1, generator=_g())
    q, k = ref.encoder(m.x), ref.key_encoder(x2)
    expected = mocon_loss(q, k, ref.queue.keys.clone(), m.perm, m.lam, ref.temperature)
    assert torch.equal(loss, expected)


# ----------------------------------------------------------------------------- Un-Mix
@pytest.mark.parametrize("symmetric", [False, True])
def test_moco_unmix_is_the_official_sum_and_enqueues_once(symmetric):
    model = moco(
        _bb(), UNMIX, dim=8, queue_size=32, head="linear", symmetric=symmetric, temperature=0.1
    )
    ref = copy.deepcopy(model)
    x1, x2 = _views()
    loss = model(x1, x2, generator=_g()).loss
    ema_update(ref.key_encoder, ref.encoder, ref.momentum)  # once per step
    m = unmix(x1, generator=_g())
    lam = float(m.lam[0])
    queue = ref.queue.keys.clone()
    q1, q2, qm = ref.encoder(x1), ref.encoder(x2), ref.encoder(m.x)
    k1, k2 = ref.key_encoder(x1), ref.key_encoder(x2)
    t = 0.1
    expected = (
        _ce0(q1, k2, queue, t)
        + lam * _ce0(qm, k2, queue, t)
        + (1 - lam) * _ce0(qm.flip(0), k2, queue, t)
    )
    if symmetric:  # the mixture still comes from view 1, scored against view 1's keys
        expected = expected + _ce0(q2, k1, queue, t) + lam * _ce0(qm, k1, queue, t)
        expected = expected + (1 - lam) * _ce0(qm.flip(0), k1, queue, t)
    torch.testing.assert_close(loss, expected)
    keys = torch.cat([k1, k2]) if symmetric else k2
    torch.testing.assert_close(model.queue.keys[: keys.shape[0]], F.normalize(keys, dim=1))
    assert int(model.queue.ptr) == keys.shape[0]


def test_byol_unmix_matches_formula():
    model = byol(_bb(), UNMIX, dim=8)
    ref = copy.deepcopy(model)
    x1, x2 = _views()
    loss = model(x1, x2, generator=_g()).loss
    ema_update(ref.target, ref.encoder, ref.momentum)
    m = unmix(x1, generator=_g())
    lam = float(m.lam[0])
    p, pm = ref.predictor(ref.encoder(x1)), ref.predictor(ref.encoder(m.x))
    z = ref.target(x2)

    def cos_loss(a, b):
        return (2 - 2 * F.cosine_similarity(a, b, dim=1)).mean()

    expected = cos_loss(p, z) + lam * cos_loss(pm, z) + (1 - lam) * cos_loss(pm.flip(0), z)
    torch.testing.assert_close(loss, expected)


def test_simclr_unmix_matches_formula_and_plain_simclr_is_nt_xent():
    model = simclr(_bb(), UNMIX, dim=8)
    ref = copy.deepcopy(model)
    x1, x2 = _views()
    loss = model(x1, x2, generator=_g()).loss
    m = unmix(x1, generator=_g())
    lam = float(m.lam[0])
    z = ref.encoder(torch.cat([x1, x2]))
    zm = ref.encoder(m.x)
    t = ref.temperature
    expected = (
        nt_xent_loss(z[:B], z[B:], t)
        + lam * nt_xent_loss(zm, z[B:], t)
        + (1 - lam) * nt_xent_loss(zm.flip(0), z[B:], t)
    )
    torch.testing.assert_close(loss, expected)
    plain = simclr(_bb(), MixStrategy(), dim=8)
    ref = copy.deepcopy(plain)
    z = ref.encoder(torch.cat([x1, x2]))
    torch.testing.assert_close(plain(x1, x2).loss, nt_xent_loss(z[:B], z[B:], t))


def test_npair_unmix_with_lambda_one_and_no_mixing_is_twice_npair():
    same = MixStrategy("unmix", "unmix", lambda x, alpha=1.0, generator=None: no_mix(x))
    model = npair(_bb(), same, dim=8)
    ref = copy.deepcopy(model)
    x1, x2 = _views()
    loss = model(x1, x2, generator=_g()).loss
    z = ref.encoder(torch.cat([x1, x2]))
    base = npair_loss(z[:B], z[B:], torch.arange(B), torch.ones(B), ref.temperature)
    # q_mix = q; flip term weighted 0; the mixture is encoded in its own pass
    qm = ref.encoder(x1)
    expected = base + npair_loss(qm, z[B:], torch.arange(B), torch.ones(B), ref.temperature)
    torch.testing.assert_close(loss, expected)


# ----------------------------------------------------------------------------- MixCo
def test_moco_mixco_is_moco_plus_soft_target_term():
    model = moco(
        _bb(), MIXCO, dim=8, queue_size=16, head="linear", mix_temperature=0.05, temperature=0.2
    )
    ref = copy.deepcopy(model)
    x1, x2 = _views()
    loss = model(x1, x2, generator=_g()).loss
    ema_update(ref.key_encoder, ref.encoder, ref.momentum)
    m = mixco(x1, generator=_g())
    z = ref.encoder(torch.cat([x1, m.x]))
    q, qm = z[:B], z[B:]
    k = ref.key_encoder(x2)
    queue = ref.queue.keys.clone()
    logits = F.normalize(qm, dim=1) @ torch.cat([F.normalize(k, dim=1), queue]).t() / 0.05
    target = torch.zeros_like(logits)
    for i in range(B // 2):
        target[i, i], target[i, B // 2 + i] = m.lam[i], 1 - m.lam[i]
    mix_term = -(target * logits.log_softmax(1)).sum(1).mean()
    torch.testing.assert_close(loss, _ce0(q, k, queue, 0.2) + mix_term)


def test_simclr_mixco_adds_half_of_each_views_term():
    model = simclr(_bb(), MIXCO, dim=8, mix_temperature=0.5)
    ref = copy.deepcopy(model)
    x1, x2 = _views()
    loss = model(x1, x2, generator=_g()).loss
    g = _g()
    m1, m2 = mixco(x1, generator=g), mixco(x2, generator=g)
    z = ref.encoder(torch.cat([x1, x2, m1.x, m2.x]))
    z1, z2, zm1, zm2 = z[:B], z[B : 2 * B], z[2 * B : 2 * B + 4], z[2 * B + 4 :]

    def term(zm, zk, lam):
        logits = F.normalize(zm, dim=1) @ F.normalize(zk, dim=1).t() / 0.5
        t = torch.zeros_like(logits)
        for i in range(4):
            t[i, i], t[i, 4 + i] = lam[i], 1 - lam[i]
        return -(t * logits.log_softmax(1)).sum(1).mean()

    expected = nt_xent_loss(z1, z2, 0.5) + 0.5 * (term(zm1, z2, m1.lam) + term(zm2, z1, m2.lam))
    torch.testing.assert_close(loss, expected)


def test_simclr_mixco_separate_passes_is_the_official_four_pass_step():
    """MixCo simclr/pretrain.py: model(xis), model(xjs) (_step L167-180), then one model(mix)
    per view (_mix_step L183-204): four BatchNorm batches, not one."""
    model = simclr(_bb(), MIXCO, dim=8, mix_temperature=0.5, separate_passes=True)
    joint = simclr(_bb(), MIXCO, dim=8, mix_temperature=0.5)
    ref = copy.deepcopy(model)
    x1, x2 = _views()
    loss = model(x1, x2, generator=_g()).loss
    g = _g()
    m1, m2 = mixco(x1, generator=g), mixco(x2, generator=g)
    zis, zjs = ref.encoder(x1), ref.encoder(x2)
    h = B // 2

    def soft_ce(
        zm, zk, lam
    ):  # SoftCrossEntropy on [B/2, B] logits, targets diag(lam) | diag(1-lam)
        logits = F.normalize(zm, dim=1) @ F.normalize(zk, dim=1).t() / 0.5
        target = torch.cat([torch.diag(lam), torch.diag(1 - lam)], 1)
        return -(target * logits.log_softmax(1)).sum(1).mean()

    expected = nt_xent_loss(zis, zjs, 0.5)
    expected = expected + soft_ce(ref.encoder(m1.x), zjs, m1.lam) / 2
    expected = expected + soft_ce(ref.encoder(m2.x), zis, m2.lam) / 2
    torch.testing.assert_close(loss, expected)
    assert m1.x.shape[0] == h
    # BatchNorm statistics per pass change the loss against one joint pass
    assert not torch.allclose(loss, joint(x1, x2, generator=_g()).loss)


def test_byol_rejects_mixco_at_build_time():
    with pytest.raises(ValueError, match="does not implement mix family 'mixco'"):
        byol(_bb(), MIXCO)


# ----------------------------------------------------------------------------- manifold
def test_manifold_npair_mixes_hidden_features_of_view_one():
    mix = MixStrategy(
        "manifold",
        "manifold",
        lambda h, alpha=1.0, generator=None, layer=1: imixup(h, generator=generator),
    )
    mix.fn = __import__("functools").partial(
        __import__("imix_sweeps.mix", fromlist=["manifold_mixup"]).manifold_mixup, layer=1
    )
    model = npair(_bb(), mix, dim=8)
    ref = copy.deepcopy(model)
    x1, x2 = _views()
    loss = model(x1, x2, generator=_g()).loss
    f = ref.encoder.backbone.features
    h = f[0:3](torch.cat([x1, x2]))
    m = imixup(h[:B], generator=_g())
    z = ref.encoder.head(f[3:](torch.cat([m.x, h[B:]])))
    expected = npair_loss(z[:B], z[B:], m.perm, m.lam, ref.temperature)
    torch.testing.assert_close(loss, expected)


# ----------------------------------------------------------------------------- memory banks
def test_insdis_scores_against_its_bank_and_updates_the_rows():
    model = insdis(_bb(), MixStrategy(), dim=8, num_negatives=5, loss="softmax")
    model.bind_num_samples(30)
    assert model.memory.bank.shape == (30, 8)
    bound = 1 / (8 / 3) ** 0.5
    assert model.memory.bank.abs().max() <= bound  # official uniform init
    before = model.memory.bank.clone()
    ref = copy.deepcopy(model)
    x1, x2 = _views()
    idx = torch.arange(3, 3 + B)
    loss = model(x1, x2, generator=_g(), index=idx).loss
    z = F.normalize(ref.encoder(x1), dim=1)
    neg = torch.randint(0, 30, (B, 5), generator=_g())
    rows = torch.cat([idx.view(-1, 1), neg], 1)
    scores = torch.einsum("bkd,bd->bk", before[rows], z) / 0.07
    torch.testing.assert_close(loss, F.cross_entropy(scores, torch.zeros(B, dtype=torch.long)))
    upd = F.normalize(0.5 * before[idx] + 0.5 * z.detach(), dim=1)
    torch.testing.assert_close(model.memory.bank[idx], upd)
    assert torch.equal(model.memory.bank[:3], before[:3])


def test_insdis_nce_sets_its_normaliser_once_and_needs_indices():
    model = insdis(_bb(), MixStrategy(), dim=8, num_negatives=5, loss="nce")
    model.bind_num_samples(30)
    x1, x2 = _views()
    model(x1, x2, generator=_g(), index=torch.arange(B))
    z1 = model.memory.log_z.clone()
    assert torch.isfinite(z1)
    model(x1, x2, generator=_g(1), index=torch.arange(B))
    assert torch.equal(model.memory.log_z, z1)
    with pytest.raises(ValueError, match="needs each sample's dataset index"):
        model(x1, x2, generator=_g())


def test_memory_bank_resizes_when_a_checkpoint_is_loaded():
    a = insdis(_bb(), MixStrategy(), dim=8)
    a.bind_num_samples(12)
    b = insdis(_bb(), MixStrategy(), dim=8)
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.memory.bank, a.memory.bank)


def test_insdis_with_im_mixes_the_view():
    mix = MixStrategy(
        "im_global", "im", lambda x, generator=None: im_global(x, generator=generator, prob=1.0)
    )
    model = insdis(_bb(), mix, dim=8, num_negatives=5, loss="softmax")
    model.bind_num_samples(30)
    ref = copy.deepcopy(model)
    x1, x2 = _views()
    loss = model(x1, x2, generator=_g(), index=torch.arange(B)).loss
    g = _g()
    xm = im_global(x1, generator=g, prob=1.0).x
    z = F.normalize(ref.encoder(xm), dim=1)
    neg = torch.randint(0, 30, (B, 5), generator=g)
    rows = torch.cat([torch.arange(B).view(-1, 1), neg], 1)
    scores = torch.einsum("bkd,bd->bk", ref.memory.bank[rows], z) / 0.07
    torch.testing.assert_close(loss, F.cross_entropy(scores, torch.zeros(B, dtype=torch.long)))


def test_lab_and_ycbcr_conversions_match_reference_values():
    px = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    lab = rgb_to_lab(px.view(4, 3, 1, 1)).view(4, 3)
    # skimage.color.rgb2lab: white, black, red, blue
    ref = torch.tensor(
        [
            [100.0, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            [53.2408, 80.0925, 67.2032],
            [32.2970, 79.1875, -107.8602],
        ]
    )
    torch.testing.assert_close(lab, ref, atol=2e-2, rtol=0)
    ycc = rgb_to_ycbcr(px.view(4, 3, 1, 1)).view(4, 3)
    torch.testing.assert_close(ycc[0], torch.tensor([235.0, 128.0, 128.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(ycc[1], torch.tensor([16.0, 128.0, 128.0]), atol=1e-3, rtol=0)


def test_cmc_undoes_the_domain_normalisation_and_rejects_normalised_inputs():
    rgb = torch.rand(B, 3, 8, 8, generator=_g())
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    normed = (rgb - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    a = cmc(_bb(3), MixStrategy(), dim=8, input_mean=mean, input_std=std)
    b = cmc(_bb(3), MixStrategy(), dim=8)
    va, vb = a.views(normed), b.views(rgb)
    torch.testing.assert_close(va[0], vb[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(va[1], vb[1], atol=1e-4, rtol=0)
    c = cmc(_bb(3), MixStrategy(), dim=8)
    with pytest.raises(ValueError, match="input_mean / input_std"):
        c.views(normed)
    with pytest.raises(ValueError, match="RGB images"):
        cmc(_bb(1), MixStrategy(), dim=8).views(torch.rand(B, 1, 8, 8))


def test_cmc_scores_each_view_against_the_other_views_bank():
    model = cmc(_bb(3), MixStrategy(), dim=8, num_negatives=4, loss="softmax")
    model.bind_num_samples(20)
    ref = copy.deepcopy(model)
    x = torch.rand(B, 3, 8, 8, generator=_g(1))
    idx = torch.arange(B)
    loss = model(x, x, generator=_g(), index=idx).loss
    v1, v2 = ref.views(x)
    z1 = F.normalize(ref.head_1(ref.net_1(v1)), dim=1)
    z2 = F.normalize(ref.head_2(ref.net_2(v2)), dim=1)
    neg = torch.randint(0, 20, (B, 4), generator=_g())
    rows = torch.cat([idx.view(-1, 1), neg], 1)
    s1 = torch.einsum("bkd,bd->bk", ref.memory_2.bank[rows], z1) / 0.07
    s2 = torch.einsum("bkd,bd->bk", ref.memory_1.bank[rows], z2) / 0.07
    zero = torch.zeros(B, dtype=torch.long)
    torch.testing.assert_close(loss, F.cross_entropy(s1, zero) + F.cross_entropy(s2, zero))
    torch.testing.assert_close(
        model.memory_1.bank[idx],
        F.normalize(0.5 * ref.memory_1.bank[idx] + 0.5 * z1.detach(), dim=1),
    )
    feats = model.backbone(x)
    assert feats.shape == (B, model.backbone.out_dim) and model.backbone.out_dim == 2 * 16


# ----------------------------------------------------------------------------- SwAV
def test_swav_normalises_prototypes_and_unmix_combines_three_swav_losses():
    model = swav(_bb(), UNMIX, dim=8, num_prototypes=6, hidden_dim=16)
    ref = copy.deepcopy(model)
    x1, x2 = _views()
    loss = model(x1, x2, generator=_g()).loss
    assert torch.allclose(model.prototypes.weight.norm(dim=1), torch.ones(6))
    with torch.no_grad():
        ref.prototypes.weight.copy_(F.normalize(ref.prototypes.weight, dim=1))
    m = unmix(x1, generator=_g())
    lam = float(m.lam[0])
    e = F.normalize(ref.encoder(torch.cat([x1, x2, m.x])), dim=1)
    o = e @ ref.prototypes.weight.t()
    from imix_sweeps.losses import sinkhorn, swav_swapped_loss

    def sw(oa, ob, flip):
        qa = sinkhorn((oa.flip(0) if flip else oa).detach(), 0.05, 3)
        qb = sinkhorn(ob.detach(), 0.05, 3)
        return (swav_swapped_loss(qa, ob, 0.1) + swav_swapped_loss(qb, oa, 0.1)) / 2

    o1, o2, om = o[:B], o[B : 2 * B], o[2 * B :]
    expected = sw(o1, o2, False) + lam * sw(om, o2, False) + (1 - lam) * sw(om, o2, True)
    torch.testing.assert_close(loss, expected)


def test_swav_queue_fills_then_extends_the_assignment():
    model = swav(
        mlp([4], width=8, depth=1),
        MixStrategy(),
        dim=4,
        num_prototypes=3,
        hidden_dim=8,
        queue_length=16,
    )
    x1, x2 = torch.randn(B, 4), torch.randn(B, 4)
    model(x1, x2)
    assert (model.queue[:, B:] == 0).all() and (model.queue[:, :B] != 0).any()
    model(x1, x2)
    assert (model.queue[:, -1] != 0).any()  # full: the next step uses it
    assert torch.isfinite(model(x1, x2).loss)
