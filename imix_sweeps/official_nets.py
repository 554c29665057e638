"""Trainable parameter shapes of the official networks, re-derived from reading their code.

Nothing here imports or builds the project's modules: each function writes down, layer by
layer, the parameters the official model definition creates (the comments name the file and
lines). ``summary`` turns a list of shapes into the compact form the cell manifests store
(parameter count, number of tensors, sha1 of the sorted shape list), and ``module_summary``
computes the same form for a built ``nn.Module``, so the two can be compared.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence

from torch import nn

Shape = tuple[int, ...]

RESNET_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3)}


def _bn(c: int) -> list[Shape]:
    return [(c,), (c,)]  # weight, bias (running stats are buffers)


def _linear(cin: int, cout: int, bias: bool = True) -> list[Shape]:
    return [(cout, cin), (cout,)] if bias else [(cout, cin)]


def resnet(
    arch: str, *, in_channels: int, stem_kernel: int, width: float = 1.0
) -> tuple[list[Shape], int]:
    """The ResNet trunk without ``fc``: (shapes, feature width).

    i-Mix ``models/resnet.py``: stem L144-155 (``small``: 3x3 conv, else 7x7), stages of
    ``in_planes * (1, 2, 4, 8)`` planes L156-160, Bottleneck L83-96 (1x1, 3x3, 1x1 convs, no
    bias, BN after each), downsample conv1x1 + BN L191-196. CMC ``models/resnet.py``: the same
    layout with ``base = int(64 * width)`` planes after a 64-channel stem (L110-126, Bottleneck
    L69-83). torchvision (Un-Mix ``main_moco_unmix.py`` ``models.__dict__[arch]``): the same."""
    blocks = RESNET_BLOCKS[arch]
    bottleneck = arch == "resnet50"
    expansion = 4 if bottleneck else 1
    shapes: list[Shape] = [(64, in_channels, stem_kernel, stem_kernel), *_bn(64)]
    inplanes = 64
    base = int(64 * width)
    for stage, n in enumerate(blocks):
        planes = base * 2**stage
        for i in range(n):
            stride = 2 if (stage > 0 and i == 0) else 1
            if bottleneck:
                shapes += [(planes, inplanes, 1, 1), *_bn(planes)]
                shapes += [(planes, planes, 3, 3), *_bn(planes)]
                shapes += [(planes * 4, planes, 1, 1), *_bn(planes * 4)]
            else:
                shapes += [(planes, inplanes, 3, 3), *_bn(planes)]
                shapes += [(planes, planes, 3, 3), *_bn(planes)]
            if stride != 1 or inplanes != planes * expansion:
                shapes += [(planes * expansion, inplanes, 1, 1), *_bn(planes * expansion)]
            inplanes = planes * expansion
    return shapes, inplanes


def mlp_5layer(in_channels: Sequence[int] | int, width: int = 64) -> tuple[list[Shape], int]:
    """i-Mix ``models/mlp.py`` L10-30 and L58-60 without ``fc``: per-group ``Linear(ch, 64)``
    (or ``Linear(F, 64, bias) + BN``), body Linear+BN(+ReLU) over ``hiddens``, ``last_fc``,
    maxout over 4 (L53)."""
    hiddens = [32 * width, 32 * width, 64 * width, 64 * width, 128 * width]
    shapes: list[Shape] = []
    if isinstance(in_channels, (list, tuple)):
        for ch in in_channels:
            shapes += _linear(int(ch), 64)
        dims = [64 * len(in_channels), *hiddens]
    else:
        shapes += [*_linear(int(in_channels), 64), *_bn(64)]
        dims = [64, *hiddens]
    for a, b in itertools.pairwise(dims[:-1]):  # the body; last_fc below
        shapes += [*_linear(a, b), *_bn(b)]
    shapes += _linear(dims[-2], dims[-1])
    return shapes, dims[-1] // 4


def head(kind: str, dim_in: int, dim_out: int, dim_mlp: int) -> list[Shape]:
    """i-Mix ``builder.py`` L22-59 (``proj`` / ``pred``): ``lin`` Linear; ``mlp``
    Linear-ReLU-Linear; ``mlpbn`` Linear-BN-ReLU-Linear-BN; ``mlpbn1`` Linear-BN-ReLU-Linear.
    MoCo's ``--mlp`` (Un-Mix ``moco/builder.py`` L33-36) is ``mlp``; CMC's ``fc`` is ``lin``."""
    if kind in ("lin", "linear"):
        return _linear(dim_in, dim_out)
    if kind == "mlp":
        return [*_linear(dim_in, dim_mlp), *_linear(dim_mlp, dim_out)]
    if kind == "mlpbn":
        return [*_linear(dim_in, dim_mlp), *_bn(dim_mlp), *_linear(dim_mlp, dim_out), *_bn(dim_out)]
    if kind == "mlpbn1":
        return [*_linear(dim_in, dim_mlp), *_bn(dim_mlp), *_linear(dim_mlp, dim_out)]
    raise ValueError(f"unknown official head {kind!r}")


def summary(shapes: Iterable[Shape]) -> dict[str, int | str]:
    """``{params, tensors, shapes_sha1}`` of a list of parameter shapes (order-free)."""
    shapes = [tuple(int(d) for d in s) for s in shapes]
    count = 0
    for s in shapes:
        n = 1
        for d in s:
            n *= d
        count += n
    text = ";".join("x".join(map(str, s)) for s in sorted(shapes))
    return {
        "params": count,
        "tensors": len(shapes),
        "shapes_sha1": hashlib.sha1(text.encode()).hexdigest()[:12],
    }


def module_summary(module: nn.Module | Sequence[nn.Module]) -> dict[str, int | str]:
    """``summary`` of the trainable parameters of one module or several."""
    mods = [module] if isinstance(module, nn.Module) else list(module)
    return summary(tuple(p.shape) for m in mods for p in m.parameters() if p.requires_grad)
