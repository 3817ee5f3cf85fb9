"""Low-delay streaming resampling for the real-time path: a linear-phase polyphase FIR.

``soxr`` streams in internal blocks: measured here with 16 ms chunks its output lags the input by
1.5-20 ms (LQ), 5-38 ms (MQ) or about 21 ms (HQ) on top of its filter, in each direction, which is more
than the whole budget above the STFT's 32 ms. This resampler returns every output sample as soon as the
input sample it needs has arrived; its only delay is the filter's group delay (1.8 ms for a 1 kHz
transition band), constant and known, so the daemon can account for it exactly.
"""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy import signal

TRANSITION_HZ = 1000.0  # anti-alias/anti-image transition band just below the lower Nyquist frequency
STOPBAND_DB = 60.0  # stopband attenuation of the Kaiser-window design


class PolyphaseResampler:
    """Chunk-by-chunk mono resampling by a rational factor with a constant, known delay.

    Equivalent to ``scipy.signal.upfirdn(h, x, up, down)`` computed incrementally: after N input samples
    exactly ceil(N * up / down) output samples have been returned, whatever the chunking.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        """Args:
        in_rate: input sample rate in Hz.
        out_rate: output sample rate in Hz.

        Raises:
            ValueError: a rate that is not positive.
        """
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} Hz -> {out_rate} Hz")
        self.in_rate = in_rate
        self.out_rate = out_rate
        common = gcd(in_rate, out_rate)
        self.up = out_rate // common
        self.down = in_rate // common
        self._phases = self._design() if not self.passthrough else np.ones((1, 1), dtype=np.float32)
        self.taps_per_phase = self._phases.shape[1]
        self._history = np.zeros(self.taps_per_phase - 1, dtype=np.float32)
        self._samples_in = 0
        self._samples_out = 0

    @property
    def passthrough(self) -> bool:
        """True when the rates are equal and samples pass unchanged."""
        return self.up == self.down

    @property
    def delay_seconds(self) -> float:
        """Group delay of the filter in seconds (0 when the rates match)."""
        if self.passthrough:
            return 0.0
        length = self._phases.size
        return (length - 1) / 2.0 / (self.in_rate * self.up)

    def _design(self) -> np.ndarray:
        """Kaiser-window lowpass at the up-sampled rate, split into ``up`` phases: (up, K), reversed taps."""
        fs_high = float(self.in_rate * self.up)
        edge = min(self.in_rate, self.out_rate) / 2.0
        width = TRANSITION_HZ / (fs_high / 2.0)
        numtaps, beta = signal.kaiserord(STOPBAND_DB, width)
        numtaps = -(-numtaps // self.up) * self.up  # a multiple of up: every phase has K taps
        taps = signal.firwin(numtaps, edge - TRANSITION_HZ / 2.0, window=("kaiser", beta), fs=fs_high) * self.up
        phases = taps.reshape(numtaps // self.up, self.up).T  # (up, K): phase p holds taps p, p + up, ...
        return np.ascontiguousarray(phases[:, ::-1], dtype=np.float32)

    def reset(self) -> None:
        """Back to silence history and zero counts."""
        self._history.fill(0.0)
        self._samples_in = 0
        self._samples_out = 0

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Resample the next chunk.

        Args:
            chunk: (N,) float32 samples at ``in_rate``.

        Returns:
            (M,) float32 samples at ``out_rate``, every output sample whose inputs have arrived; when the
            rates match, ``chunk`` itself (no copy, nothing allocated).
        """
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if self.passthrough:
            return chunk
        k = self.taps_per_phase
        start_in = self._samples_in
        self._samples_in += chunk.shape[0]
        end_out = -(-self._samples_in * self.up // self.down)  # ceil(N_in * up / down)
        m = np.arange(self._samples_out, end_out, dtype=np.int64)
        self._samples_out = end_out
        buffer = np.concatenate([self._history, chunk])  # input samples [start_in - (K - 1), samples_in)
        if k > 1:
            self._history[:] = buffer[-(k - 1) :]
        if m.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        high = m * self.down
        newest = high // self.up  # newest input sample each output needs
        windows = np.lib.stride_tricks.sliding_window_view(buffer, k)[newest - start_in]  # (M, K)
        return np.einsum("ij,ij->i", self._phases[high % self.up], windows).astype(np.float32, copy=False)
