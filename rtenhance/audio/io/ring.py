"""Preallocated single-producer single-consumer float32 ring buffer for audio callbacks.

One thread only writes, one thread only reads. The producer publishes by advancing ``_written`` after the
copy and the consumer by advancing ``_read`` after its copy; each index is written by one thread only, so
under the interpreter lock no lock is needed and neither side can block the other. Nothing allocates a
sample buffer after construction.
"""

from __future__ import annotations

import numpy as np


class SpscRing:
    """A fixed-capacity FIFO of float32 samples with overflow and underflow counters.

    Attributes:
        overflows: writes that did not fit completely (the samples that did not fit are dropped).
        dropped_samples: samples dropped by those writes.
        underflows: reads that asked for more samples than were available.
        missing_samples: samples those reads could not deliver.
    """

    def __init__(self, capacity: int) -> None:
        """Args:
        capacity: the most samples the ring holds.
        """
        if capacity <= 0:
            raise ValueError(f"ring capacity must be positive, got {capacity}")
        self.capacity = capacity
        self._buffer = np.zeros(capacity, dtype=np.float32)
        self._written = 0  # total samples ever written; advanced by the producer only
        self._read = 0  # total samples ever read or skipped; advanced by the consumer only
        self.overflows = 0
        self.dropped_samples = 0
        self.underflows = 0
        self.missing_samples = 0

    @property
    def available(self) -> int:
        """Samples ready to read."""
        return self._written - self._read

    @property
    def free(self) -> int:
        """Samples that can be written without overflow."""
        return self.capacity - (self._written - self._read)

    def write(self, samples: np.ndarray) -> int:
        """Producer: append samples; what does not fit is dropped and counted as one overflow.

        Args:
            samples: (N,) float32 samples (any contiguous 1-D array).

        Returns:
            The number of samples written.
        """
        total = samples.shape[0]
        n = min(total, self.capacity - (self._written - self._read))
        if n < total:
            self.overflows += 1
            self.dropped_samples += total - n
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        self._buffer[start : start + first] = samples[:first]
        self._buffer[: n - first] = samples[first:n]
        self._written += n
        return n

    def read_into(self, out: np.ndarray) -> int:
        """Consumer: move the oldest samples into ``out``; a shortfall counts as one underflow.

        Args:
            out: (N,) float32 destination; only its first (returned) samples are written.

        Returns:
            The number of samples read, at most N.
        """
        wanted = out.shape[0]
        n = min(wanted, self._written - self._read)
        if n < wanted:
            self.underflows += 1
            self.missing_samples += wanted - n
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._buffer[start : start + first]
        out[first:n] = self._buffer[: n - first]
        self._read += n
        return n

    def reset(self) -> None:
        """Empty the ring, keeping the counters; only while neither side is running."""
        self._written = 0
        self._read = 0

    def skip(self, n: int) -> int:
        """Consumer: discard up to ``n`` of the oldest samples; returns how many were discarded."""
        n = max(0, min(n, self._written - self._read))
        self._read += n
        return n
