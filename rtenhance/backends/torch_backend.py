"""Reference backend: eager PyTorch ``GTCRN.step``."""

from __future__ import annotations

import numpy as np
import torch

from rtenhance.model.gtcrn import GTCRN
from rtenhance.model.state import StreamState


class TorchStepper:
    """Runs ``model.step`` in eager PyTorch, one stream, keeping the ``StreamState`` between frames."""

    def __init__(self, model: GTCRN) -> None:
        self.model = model.eval()
        self.state = model.init_state(1)
        self._out = np.zeros((model.config.stft.n_bins, 2), dtype=np.float32)

    def reset(self) -> None:
        self.state = self.model.init_state(1)

    def step(self, frame: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out, self.state = self.model.step(torch.from_numpy(frame)[None], self.state)
        self._out[:] = out[0].numpy()
        return self._out

    def stream_state(self) -> StreamState:
        """A copy of the current state."""
        return self.state.clone()
