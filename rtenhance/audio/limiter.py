"""Soft limiter: unity gain below a knee, a tanh curve above it that approaches 0 dBFS and never exceeds it."""

from __future__ import annotations

import numpy as np


class SoftLimiter:
    """Instantaneous soft clipper, continuous in value and slope at the knee."""

    def __init__(self, knee_dbfs: float) -> None:
        """Args:
        knee_dbfs: level below which samples pass unchanged, in dBFS (negative).
        """
        self.knee = float(10.0 ** (knee_dbfs / 20.0))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Limit (N,) float32 samples in place and return them."""
        magnitude = np.abs(x)
        over = magnitude > self.knee
        if over.any():
            headroom = 1.0 - self.knee
            x[over] = np.sign(x[over]) * (self.knee + headroom * np.tanh((magnitude[over] - self.knee) / headroom))
        return x
