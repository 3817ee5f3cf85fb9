"""Aligning file output with file input: the signal path's delay is cut at the start, the tail at the end.

A file sink gets exactly one output sample per input sample, in step with the input, as an offline
enhancement would give; the real-time path instead keeps its delay (a device plays what arrives).
"""

from __future__ import annotations

import numpy as np


class OutputAligner:
    """Trims chunks of the output stream (any rate) so that the whole output lines up with the input."""

    def __init__(self) -> None:
        self._skip = 0
        self._limit = -1
        self._written = 0

    def restart(self, delay_samples: int) -> None:
        """A new stream whose first ``delay_samples`` output samples are the path's delay (dropped)."""
        self._skip = delay_samples
        self._limit = -1
        self._written = 0

    def end_at(self, total_samples: int) -> None:
        """The input has ended: at most ``total_samples`` output samples in all are kept."""
        self._limit = total_samples

    def trim(self, chunk: np.ndarray) -> np.ndarray:
        """The part of the (N,) chunk that belongs in the aligned output (a view)."""
        skip = min(self._skip, chunk.shape[0])
        self._skip -= skip
        chunk = chunk[skip:]
        if self._limit >= 0:
            chunk = chunk[: max(0, self._limit - self._written)]
        self._written += chunk.shape[0]
        return chunk
