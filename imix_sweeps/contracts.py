"""The two contracts the training loop and the evaluation rely on: ``Domain`` and ``Method``.

``train``, ``evaluate`` and ``knn_monitor`` are annotated with these Protocols and call only what
they state. A method gets every optional hook with a neutral default from ``MethodHooks``, so no
caller probes an object for attributes; a domain implements every member of ``Domain``.

``Domain.pretrain_batches`` is the one statement of the two-view batch signature; the domains in
``imix_sweeps.data`` subclass ``Domain`` and ``tests/test_contracts.py`` checks that their
signatures match it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, NamedTuple, Protocol

import torch
from torch import Tensor, nn


class StepOut(NamedTuple):
    loss: Tensor  # scalar, the quantity to minimise
    stats: dict[str, Tensor]  # detached scalars to log (averaged over the epoch on device)


class Domain(Protocol):
    """What a training run needs from a dataset (``conf/domain/*.yaml``'s ``data._target_``)."""

    name: str
    modality: str  # image | audio | tabular
    num_classes: int
    # per-channel (mean, std) that the domain's normalisation applies to images in [0, 1], for
    # methods that must undo it (CMC's colour conversion); None where inputs are not images
    input_stats: tuple[list[float], list[float]] | None

    @property
    def in_shape(self) -> list[int]:
        """The shape of one evaluation input (what the backbone is built for)."""
        ...

    @property
    def num_pretrain(self) -> int:
        """Number of pre-training samples (what the indices of ``with_index=True`` range over)."""
        ...

    def steps_per_epoch(self, batch_size: int, world_size: int = 1) -> int:
        """Full global batches per epoch; raises ``ValueError`` when there is not one."""
        ...

    def epoch_order(self, epoch: int, seed: int) -> Tensor:
        """The epoch's permutation of the pre-training samples, a function of ``(seed, epoch)``."""
        ...

    def pretrain_batches(
        self,
        epoch: int,
        batch_size: int,
        *,
        seed: int,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        with_index: bool = False,
        prefetch: int = 0,
    ) -> Iterator[tuple[Tensor, ...]]:
        """Two augmented views ``(x1, x2)`` [B/W, ...] of this rank's share of each global batch
        from ``start_step`` on; ``with_index``: ``(x1, x2, idx)`` with each sample's index into the
        pre-training set (memory-bank methods). The batches are a pure function of
        ``(seed, epoch, step, rank)``, so a resumed run sees what the interrupted one would have.
        ``prefetch``: background threads that prepare the coming steps (no effect on values)."""
        ...

    def linear_batches(
        self, epoch: int, batch_size: int, *, seed: int, device: torch.device
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of the linear evaluation's training batches ``(x, y)``: the labelled
        training split in a seeded order, full batches only, with the domain's linear augmentation."""
        ...

    def eval_batches(
        self, split: str, batch_size: int, *, device: torch.device
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Deterministic ``(x, y)`` batches of ``split`` (``train`` or ``test``), in order."""
        ...

    def without_augmentation(self) -> Domain:
        """This domain with pre-training views that are the evaluation inputs themselves."""
        ...


class Method(Protocol):
    """A pre-training method (``conf/method/*.yaml``'s ``model._target_`` builds one).

    ``forward(x1, x2, *, generator, index=None) -> StepOut``: ``x1`` the view that is mixed,
    ``x2`` the clean view, both [B, ...]; ``generator`` seeds the step's mix draws; ``index``
    [B] is passed only to a method with ``needs_index``.
    """

    # the mix families (``MixStrategy.family``) the method implements: the one source that
    # ``config.validate`` and the tests read
    families: ClassVar[tuple[str, ...]]
    # True: the method keeps a memory bank over the pre-training set; train passes ``index=``
    needs_index: ClassVar[bool]
    # True: the key encoder keeps per-rank BatchNorm statistics (MoCo's shuffle BN), so
    # ``train.sync_bn`` leaves the submodule ``key_encoder`` as it is
    shuffle_bn: bool

    @property
    def backbone(self) -> nn.Module:
        """The encoder whose features are evaluated; ``backbone.out_dim`` is their width."""
        ...

    def bind_num_samples(self, num_samples: int) -> None:
        """Called once before training (and before a checkpoint is loaded) with the number of
        pre-training samples; memory-bank methods size their bank here."""
        ...

    def __call__(
        self,
        x1: Tensor,
        x2: Tensor,
        *,
        generator: torch.Generator | None = None,
        index: Tensor | None = None,
    ) -> StepOut: ...


class MethodHooks:
    """The optional ``Method`` hooks with neutral defaults; every method class mixes this in
    (``class MyMethod(MethodHooks, nn.Module)``) and overrides what it uses."""

    families: ClassVar[tuple[str, ...]] = ("none",)
    needs_index: ClassVar[bool] = False
    shuffle_bn: bool = False

    def bind_num_samples(self, num_samples: int) -> None:
        """No memory bank: nothing to size."""
