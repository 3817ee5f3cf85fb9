"""A streaming resampler whose ratio may change every chunk, for taking up clock drift (a few hundred ppm).

Between two devices on different clocks the playback side consumes slightly more or fewer samples per
second than capture delivers. ``DriftResampler`` stretches each chunk by a ratio close to 1 (output
samples per input sample) with four-point cubic (Catmull-Rom) interpolation, carrying its position and the
last input samples across chunks, so the output is continuous whatever the chunking. At ratio 1 and from a
fresh start it reproduces its input exactly, two samples late (``delay_samples``). Interpolating with a
ratio within 0.5 % of 1 moves speech harmonics by less than a cent and leaves no audible trace.
"""

from __future__ import annotations

import math

import numpy as np

HISTORY = 4  # input samples kept from the previous chunk (taps t-1 .. t+2 around a position t in [1, 2))
MAX_DEVIATION = 0.01  # the ratio is clamped to 1 +- this (1 %: ten times any real clock mismatch)


class DriftResampler:
    """Stretches a stream by a ratio near 1 that may change from one chunk to the next.

    Args:
        max_chunk: the largest input chunk ``process`` takes, in samples (bounds the preallocated buffers).
    """

    delay_samples = 2  # at ratio 1 the output is the input two samples late (the taps right of t)

    def __init__(self, max_chunk: int) -> None:
        self._max_chunk = max_chunk
        self._buffer = np.zeros(max_chunk + HISTORY, dtype=np.float64)  # history, then the new chunk
        out_max = int(math.ceil((max_chunk + HISTORY) * (1.0 + MAX_DEVIATION))) + 2
        self._out = np.zeros(out_max, dtype=np.float32)
        self._steps = np.arange(out_max, dtype=np.float64)
        self._t = np.zeros(out_max, dtype=np.float64)  # work arrays: positions, tap indices, fractions, taps
        self._index = np.zeros(out_max, dtype=np.intp)
        self._frac = np.zeros(out_max, dtype=np.float64)
        self._taps = np.zeros((4, out_max), dtype=np.float64)
        self._acc = np.zeros(out_max, dtype=np.float64)
        self._position = 2.0  # in buffer coordinates: index of the next output's left-centre tap

    def reset(self) -> None:
        """Forget the past: silence history and a fresh position."""
        self._buffer[:HISTORY] = 0.0
        self._position = 2.0

    def process(self, chunk: np.ndarray, ratio: float) -> np.ndarray:
        """Stretch one chunk.

        Args:
            chunk: (N,) input samples, N at most ``max_chunk``.
            ratio: output samples per input sample, clamped to 1 +- ``MAX_DEVIATION``.

        Returns:
            (M,) float32 output samples, M about N * ratio (it varies by one with the carried position);
            a view on internal memory, valid until the next call.
        """
        n = chunk.shape[0]
        if n > self._max_chunk:
            raise ValueError(f"chunk of {n} samples exceeds the {self._max_chunk} this resampler was made for")
        ratio = min(max(ratio, 1.0 - MAX_DEVIATION), 1.0 + MAX_DEVIATION)
        buffer = self._buffer
        buffer[HISTORY : HISTORY + n] = chunk
        step = 1.0 / ratio
        last = HISTORY + n - 3  # the last left-centre index with both right-hand taps (t+1, t+2) available
        count = max(0, int(math.floor((last - self._position) / step)) + 1) if self._position <= last else 0
        t, index, frac, acc = self._t[:count], self._index[:count], self._frac[:count], self._acc[:count]
        np.multiply(self._steps[:count], step, out=t)
        t += self._position  # (count,) positions in buffer coordinates
        np.floor(t, out=frac)
        index[:] = frac
        np.subtract(t, frac, out=frac)
        p0, p1, p2, p3 = (self._taps[k, :count] for k in range(4))
        for k, tap in enumerate((p0, p1, p2, p3)):
            np.take(buffer, index + (k - 1), out=tap)
        # Catmull-Rom: p1 + f/2 (p2 - p0 + f (2 p0 - 5 p1 + 4 p2 - p3 + f (3 (p1 - p2) + p3 - p0))), Horner form
        np.subtract(p1, p2, out=acc)
        acc *= 3.0
        acc += p3
        acc -= p0
        acc *= frac
        acc += 2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3
        acc *= frac
        acc += p2 - p0
        acc *= frac
        acc *= 0.5
        acc += p1
        out = self._out[:count]
        out[:] = acc
        self._position += step * count - n  # the chunk's samples shift out of the front
        buffer[:HISTORY] = buffer[n : n + HISTORY]
        return out
