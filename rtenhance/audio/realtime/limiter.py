"""Soft limiter: unity gain below a knee, a tanh curve above it that approaches 0 dBFS and never exceeds it."""

from __future__ import annotations

import numpy as np


INITIAL_CAPACITY = 2048  # samples of scratch; grows (once) for longer chunks


class SoftLimiter:
    """Instantaneous soft clipper, continuous in value and slope at the knee.

    Chunks whose samples all stay below the knee (the usual case) allocate nothing.
    """

    def __init__(self, knee_dbfs: float) -> None:
        """Args:
        knee_dbfs: level below which samples pass unchanged, in dBFS (negative).
        """
        self.knee = float(10.0 ** (knee_dbfs / 20.0))
        self._magnitude = np.zeros(INITIAL_CAPACITY, dtype=np.float32)
        self._over = np.zeros(INITIAL_CAPACITY, dtype=bool)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Limit (N,) float32 samples in place and return them."""
        n = x.shape[0]
        if n > self._magnitude.shape[0]:
            self._magnitude = np.zeros(n, dtype=np.float32)
            self._over = np.zeros(n, dtype=bool)
        magnitude = np.abs(x, out=self._magnitude[:n])
        over = np.greater(magnitude, self.knee, out=self._over[:n])
        if over.any():
            headroom = 1.0 - self.knee
            x[over] = np.sign(x[over]) * (self.knee + headroom * np.tanh((magnitude[over] - self.knee) / headroom))
        return x
