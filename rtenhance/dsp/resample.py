"""Sample-rate conversion: offline (whole signals) and streaming (chunk by chunk), both with soxr."""

from __future__ import annotations

import numpy as np
import soxr

STREAM_QUALITY = "HQ"  # soxr high quality: low delay, transparent for speech
OFFLINE_QUALITY = "VHQ"  # soxr very high quality for files


def resample(x: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a whole signal; the output has round(N * out_rate / in_rate) samples.

    Args:
        x: (N,) or (N, C) samples.
        in_rate: input sample rate in Hz.
        out_rate: output sample rate in Hz.

    Returns:
        float32 samples, (M,) or (M, C).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if in_rate == out_rate:
        return x.copy()
    return soxr.resample(x, in_rate, out_rate, quality=OFFLINE_QUALITY).astype(np.float32, copy=False)


class StreamingResampler:
    """Chunk-by-chunk mono resampling with state carried across chunks (identity when the rates match).

    The output lags the input by ``soxr``'s filter delay; ``process`` returns whatever is ready, so the
    number of output samples per call varies around len(chunk) * out_rate / in_rate.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} Hz -> {out_rate} Hz")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream: soxr.ResampleStream | None = None
        self.reset()

    @property
    def passthrough(self) -> bool:
        """True when the rates are equal and samples pass unchanged."""
        return self.in_rate == self.out_rate

    def reset(self) -> None:
        """Drop the filter history and start a new stream."""
        self._stream = None if self.passthrough else soxr.ResampleStream(
            self.in_rate, self.out_rate, 1, dtype="float32", quality=STREAM_QUALITY
        )

    def process(self, chunk: np.ndarray, last: bool = False) -> np.ndarray:
        """Resample the next chunk.

        Args:
            chunk: (N,) float32 samples at ``in_rate``.
            last: flush the filter tail (end of the stream).

        Returns:
            (M,) float32 samples at ``out_rate``.
        """
        if self._stream is None:
            return np.asarray(chunk, dtype=np.float32)
        return self._stream.resample_chunk(np.asarray(chunk, dtype=np.float32), last=last)
