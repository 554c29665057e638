"""Backbones: ``build(in_shape, **options) -> nn.Module`` mapping ``[B, *in_shape]`` to ``[B, out_dim]``.

Every returned module has an ``out_dim`` attribute (the feature size evaluated by the linear
probe and kNN). Builders are referenced by ``_target_`` in ``conf/backbone/*.yaml``.
"""

from imix_sweeps.backbones.resnet import resnet
from imix_sweeps.backbones.small import mlp, small_cnn

__all__ = ["mlp", "resnet", "small_cnn"]
