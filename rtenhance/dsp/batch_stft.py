"""Hop-by-hop STFT analysis and synthesis for many streams at once, vectorised over streams.

Each stream owns a row (slot) of the history arrays; ``analyze`` and ``synthesize`` take the slots that
advance and their hops or frames as (n, ...) arrays. Per stream they compute what
``StreamingStft`` and ``StreamingIstft`` compute (same window, float32 FFTs; ``scipy.fft``, which is several
times faster than ``numpy.fft`` on a batch of short rows, so the two differ by float rounding), and a
stream's output does not depend on which other streams share the call.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from rtenhance.config import StftConfig
from rtenhance.dsp.stft import sqrt_hann


class BatchStft:
    """Causal analysis and synthesis of many streams held in slots.

    Args:
        cfg: the STFT configuration (n_fft = 2 hop).
        slots: initial capacity (grows with ``reserve``).
    """

    def __init__(self, cfg: StftConfig, slots: int = 0) -> None:
        self.cfg = cfg
        h = cfg.hop_samples
        self._window = sqrt_hann(cfg.n_fft).numpy().astype(np.float32)
        self._window_old, self._window_new = self._window[:h].copy(), self._window[h:].copy()
        self._previous = np.zeros((slots, h), dtype=np.float32)
        self._overlap = np.zeros((slots, cfg.n_fft - h), dtype=np.float32)

    @property
    def capacity(self) -> int:
        """Slots allocated."""
        return self._previous.shape[0]

    def reserve(self, slots: int) -> None:
        """Make room for at least ``slots`` slots, keeping the existing ones."""
        if slots <= self.capacity:
            return
        grown = max(slots, 2 * self.capacity)
        self._previous = np.concatenate([self._previous, np.zeros((grown - self.capacity, self._previous.shape[1]),
                                                                   dtype=np.float32)])
        self._overlap = np.concatenate([self._overlap, np.zeros((grown - self._overlap.shape[0],
                                                                 self._overlap.shape[1]), dtype=np.float32)])

    def reset(self, slot: int) -> None:
        """Zero the history of ``slot`` (a stream that starts there)."""
        self._previous[slot] = 0.0
        self._overlap[slot] = 0.0

    def analyze(self, slots: np.ndarray, hops: np.ndarray) -> np.ndarray:
        """Analyse one hop of each stream in ``slots``.

        Args:
            slots: (n,) distinct slots.
            hops: (n, hop_samples) float32 samples.

        Returns:
            (n, F, 2) float32 frames (a new array).
        """
        h = self.cfg.hop_samples
        windowed = np.empty((slots.shape[0], self.cfg.n_fft), dtype=np.float32)
        np.multiply(self._previous[slots], self._window_old, out=windowed[:, :h])
        np.multiply(hops, self._window_new, out=windowed[:, h:])
        self._previous[slots] = hops
        spectrum = scipy.fft.rfft(windowed, axis=1).astype(np.complex64, copy=False)
        return spectrum.view(np.float32).reshape(slots.shape[0], self.cfg.n_bins, 2)

    def synthesize(self, slots: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """Synthesise one frame of each stream in ``slots``.

        Args:
            slots: (n,) distinct slots.
            frames: (n, F, 2) float32 frames.

        Returns:
            (n, hop_samples) float32 samples (a new array).
        """
        h = self.cfg.hop_samples
        spectrum = np.ascontiguousarray(frames, dtype=np.float32).view(np.complex64)[..., 0]
        samples = scipy.fft.irfft(spectrum, n=self.cfg.n_fft, axis=1).astype(np.float32, copy=False)
        samples *= self._window
        out = self._overlap[slots] + samples[:, :h]
        self._overlap[slots] = samples[:, h:]
        return out
