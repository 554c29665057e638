"""Backbones: ``build(in_shape, **options) -> nn.Module`` mapping ``[B, *in_shape]`` to ``[B, out_dim]``.

Every returned module has an ``out_dim`` attribute (the feature size evaluated by the linear
probe and kNN). Builders are referenced by ``_target_`` in ``conf/backbone/*.yaml``; input
channels / features always come from the domain's ``in_shape``, so one ResNet yaml serves RGB
images and 1x32x32 spectrograms alike.
"""

from imix_sweeps.backbones.alexnet import alexnet
from imix_sweeps.backbones.mlp5 import mlp5
from imix_sweeps.backbones.resnet import resnet
from imix_sweeps.backbones.small import mlp, small_cnn

__all__ = ["alexnet", "mlp", "mlp5", "resnet", "small_cnn"]
