"""Inference backends: objects that run ``GTCRN.step`` on one STFT frame held in NumPy buffers.

A backend keeps its own streaming state between calls. ``make_stepper`` picks one by name.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from rtenhance.model.gtcrn import GTCRN


class FrameStepper(Protocol):
    """One stream of frame-by-frame enhancement with its state kept inside."""

    def step(self, frame: np.ndarray) -> np.ndarray:
        """(F, 2) float32 noisy frame -> (F, 2) float32 enhanced frame (valid until the next call)."""
        ...

    def reset(self) -> None:
        """Back to the zero state."""
        ...


BACKENDS = ("torch",)


def make_stepper(model: GTCRN, backend: str = "torch") -> FrameStepper:
    """A stepper for ``model`` on the named backend.

    Raises:
        ValueError: unknown backend name.
    """
    if backend == "torch":
        from rtenhance.backends.torch_backend import TorchStepper

        return TorchStepper(model)
    raise ValueError(f"backend {backend!r} is not available; choose one of: {', '.join(BACKENDS)}")
