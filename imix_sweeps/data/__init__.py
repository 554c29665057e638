"""Domains: datasets in their real on-disk formats and their two-view pipelines (docs/DOMAINS.md).

``base`` (``InMemoryDomain``: batched augmentation on the device), ``loader`` (``LoaderDomain``:
the official per-sample pipelines in DataLoader workers), ``cache`` (verified, atomically
written preprocessing caches), and the domains: ``digits``, ``images`` (CIFAR-10/100, STL-10,
Tiny-ImageNet, Fashion-MNIST, ImageNet / ImageNet-100), ``speech`` (Speech Commands v0.01),
``tabular`` (CovType, HIGGS).
"""
