"""The papers' backbones: MLP-5 (tabular), AlexNet (+ CMC halves), ResNet stems and channels."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from imix_sweeps.backbones import alexnet, mlp5, resnet


def test_mlp5_grouped_layers_match_the_official_sizes():
    net = mlp5([54], groups=[10, 4, 40])
    assert net.out_dim == 2048
    assert [(m.in_features, m.out_features) for m in net.embed] == [(10, 64), (4, 64), (40, 64)]
    lin = [m for m in net.body.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin] == [
        (192, 2048),
        (2048, 2048),
        (2048, 4096),
        (4096, 4096),
    ]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in net.body.modules()) == 4
    assert (net.last_fc.in_features, net.last_fc.out_features) == (4096, 8192)
    # parameter count by hand: embeddings, 4 Linear+BN blocks, last Linear
    hand = (10 + 4 + 40) * 64 + 3 * 64
    for a, b in [(192, 2048), (2048, 2048), (2048, 4096), (4096, 4096)]:
        hand += a * b + b + 2 * b
    hand += 4096 * 8192 + 8192
    assert sum(p.numel() for p in net.parameters()) == hand


def test_mlp5_forward_is_grouped_embedding_then_maxout():
    torch.manual_seed(0)
    net = mlp5([54], groups=[10, 4, 40], width=2).eval()  # width scales the hidden sizes
    assert net.out_dim == 64
    x = torch.randn(5, 54)
    h = torch.cat([net.embed[0](x[:, :10]), net.embed[1](x[:, 10:14]), net.embed[2](x[:, 14:])], 1)
    z = net.last_fc(net.body(h))
    want = torch.stack([z[:, 4 * i : 4 * i + 4].max(1).values for i in range(64)], 1)
    torch.testing.assert_close(net(x), want)
    # the one-hot groups only enter through their own embedding
    x2 = x.clone()
    x2[:, 10:14] += 1
    h2 = net.embed[0](x2[:, :10])
    torch.testing.assert_close(h2, net.embed[0](x[:, :10]))


def test_mlp5_plain_input_and_bad_groups():
    net = mlp5([28])
    assert net.groups is None and net.out_dim == 2048
    first = net.embed[0]
    assert isinstance(first[0], nn.Linear) and isinstance(first[1], nn.BatchNorm1d)
    assert net(torch.randn(4, 28)).shape == (4, 2048)
    with pytest.raises(ValueError, match=r"add up to 50.*54 features"):
        mlp5([54], groups=[10, 40])
    with pytest.raises(ValueError, match="tabular"):
        mlp5([3, 32, 32])


def test_alexnet_and_cmc_halves():
    torch.manual_seed(0)
    full = alexnet([3, 224, 224], width=0.25).eval()
    assert full.out_dim == 1024
    assert full(torch.rand(2, 3, 224, 224)).shape == (2, 1024)
    halves = alexnet([3, 224, 224], halves=True, split=[1, 2], width=0.25).eval()
    assert halves.out_dim == 1024 and len(halves.nets) == 2
    assert [n.features[0].in_channels for n in halves.nets] == [1, 2]
    assert halves.nets[0].features[0].out_channels == 12  # half of 96 x 0.25
    x = torch.rand(2, 3, 224, 224)
    y = x.clone()
    y[:, 1:] = torch.rand(2, 2, 224, 224)  # change only the second view (ab)
    fx, fy = halves(x), halves(y)
    torch.testing.assert_close(fx[:, :512], fy[:, :512])  # the L half does not see it
    assert not torch.allclose(fx[:, 512:], fy[:, 512:])
    with pytest.raises(ValueError, match="63x63"):
        alexnet([3, 32, 32])
    with pytest.raises(ValueError, match="2-way channel split"):
        alexnet([3, 224, 224], halves=True, split=[1, 1])


def test_resnet_stems_and_channels_from_in_shape():
    spec = resnet([1, 32, 32], arch="resnet18", stem="cifar")
    assert spec.net.conv1.in_channels == 1 and spec.net.conv1.kernel_size == (3, 3)
    assert spec(torch.randn(2, 1, 32, 32)).shape == (2, 512)
    big = resnet([3, 96, 96], arch="resnet18", stem="imagenet")
    assert big.net.conv1.kernel_size == (7, 7) and isinstance(big.net.maxpool, nn.MaxPool2d)
    assert resnet([1, 64, 64], arch="resnet18", stem="imagenet").net.conv1.in_channels == 1
    assert resnet([3, 32, 32], arch="resnet50").out_dim == 2048
