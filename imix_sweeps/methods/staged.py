"""Running a backbone in two parts, for mixing at a hidden layer (the ``manifold`` mix family).

``split_backbone(backbone, layer)`` returns ``(front, back)`` with ``back(front(x)) ==
backbone(x)``; ``layer`` counts the stages run before the mix:

- ``ResNetTrunk``: 0 input, 1 stem (conv1-bn-relu-maxpool), 2..5 after layer1..layer4;
- ``SmallCNN``: 0 input, 1..3 after each conv block (the max-pool belongs to block 2);
- ``MLP``: 0 input (flattened), 1..depth after each Linear-BN-ReLU block.

Other backbones raise ``ValueError`` (the mix YAML lists the backbones it accepts, so the config
is rejected at compose time first). The parts share the backbone's modules (no copies).
"""

from __future__ import annotations

from torch import nn

from imix_sweeps.backbones.resnet import ResNetTrunk
from imix_sweeps.backbones.small import MLP, SmallCNN


def backbone_stages(backbone: nn.Module) -> list[nn.Module]:
    """The backbone as a list of sequential stages, the last one ending in the feature vector."""
    if isinstance(backbone, ResNetTrunk):
        n = backbone.net
        return [
            nn.Sequential(n.conv1, n.bn1, n.relu, n.maxpool),
            n.layer1,
            n.layer2,
            n.layer3,
            nn.Sequential(n.layer4, n.avgpool, nn.Flatten(1), n.fc),
        ]
    if isinstance(backbone, SmallCNN):
        f = backbone.features
        return [f[0:3], f[3:7], nn.Sequential(*f[7:])]
    if isinstance(backbone, MLP):
        layers = list(backbone.net)
        blocks: list[nn.Module] = [
            nn.Sequential(*layers[i : i + 3]) for i in range(0, len(layers), 3)
        ]
        blocks[0] = nn.Sequential(nn.Flatten(1), blocks[0])
        return blocks
    raise ValueError(
        f"mixing at a hidden layer is not supported for backbone {type(backbone).__name__}; "
        "supported: ResNetTrunk (resnet18/34/50), SmallCNN (small_cnn), MLP (mlp)"
    )


def split_backbone(backbone: nn.Module, layer: int) -> tuple[nn.Module, nn.Module]:
    stages = backbone_stages(backbone)
    # the last stage ends in the pooled feature vector: mixing there would be a mix of features,
    # not of a hidden layer, so 0 <= layer <= len(stages) - 1
    if not 0 <= layer < len(stages):
        raise ValueError(
            f"manifold mix layer={layer} is out of range for {type(backbone).__name__}: "
            f"0 (input) .. {len(stages) - 1}"
        )
    front = nn.Sequential(*stages[:layer]) if layer else nn.Identity()
    if layer == 0 and isinstance(backbone, MLP):
        front = nn.Flatten(1)
    return front, nn.Sequential(*stages[layer:])
