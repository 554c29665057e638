"""Instance Discrimination (Wu et al. 2018, as the CMC / Un-Mix ``train_moco_ins.py`` code):
one view per sample, its L2-normalised embedding scored against its own memory-bank row and
``num_negatives`` random rows, NCE or softmax-CE, then the bank row updated with momentum.

Mix family ``im``: the CMC image mixtures applied to the view (labels, i.e. indices, unchanged).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from imix_sweeps.contracts import MethodHooks
from imix_sweeps.methods.common import Encoder, StepOut
from imix_sweeps.methods.family import check_family, single_view
from imix_sweeps.methods.memory import MemoryBank
from imix_sweeps.mix import MixStrategy


class InsDis(MethodHooks, nn.Module):
    families = ("none", "im")
    needs_index = True

    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: nn.Module,
        mix: MixStrategy,
        dim: int,
        temperature: float,
        num_negatives: int,
        bank_momentum: float,
        loss: str,
    ) -> None:
        super().__init__()
        check_family("insdis", mix, self.families)
        self.encoder = Encoder(backbone, head)
        self.memory = MemoryBank(
            dim,
            num_negatives=num_negatives,
            temperature=temperature,
            momentum=bank_momentum,
            loss=loss,
        )
        self.mix = mix

    @property
    def backbone(self) -> nn.Module:
        return self.encoder.backbone

    def bind_num_samples(self, num_samples: int) -> None:
        if self.memory.num_samples != num_samples:
            self.memory.allocate(num_samples, torch.Generator().manual_seed(0))

    def forward(
        self,
        x1: Tensor,
        x2: Tensor,
        *,
        generator: torch.Generator | None = None,
        index: Tensor | None = None,
    ) -> StepOut:
        index = self.memory.check_ready(index)
        x1 = single_view(self.mix, x1, x2, generator)
        z = self.encoder(x1)  # [B, D]; InsDis uses one view
        neg = self.memory.negatives(x1.shape[0], generator, x1.device)
        scores = self.memory.scores(z, index, neg)  # [B, 1+K]
        loss = self.memory.loss(scores)
        self.memory.update(z, index)
        return StepOut(loss, {})
