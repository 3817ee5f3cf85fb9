"""Exponential moving average of a model's weights: the averaged copy is what gets validated and shipped.

With batches of a few seconds of audio on a CPU, single steps are noisy; the average over the last
``1 / (1 - decay)`` steps generalises better than the latest weights and does not need the learning rate
to decay first (an anytime run can stop at any step and still have annealed-quality weights).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from rtenhance.model.gtcrn import GTCRN


class WeightAverage:
    """An eval-mode copy of ``model`` whose float parameters and buffers track ``model`` by EMA.

    Args:
        model: the trained model; the average starts as an exact copy of it.
        decay: per-update weight of the old average, in [0, 1).
    """

    def __init__(self, model: GTCRN, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: GTCRN) -> None:
        """Move the average towards ``model``'s current weights; integer buffers are copied."""
        for avg, new in zip(self.model.state_dict().values(), model.state_dict().values()):
            if avg.is_floating_point():
                avg.lerp_(new, 1.0 - self.decay)
            else:
                avg.copy_(new)

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights (CPU copies)."""
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore averaged weights saved by ``state_dict``."""
        self.model.load_state_dict(state)
