"""Low-delay streaming resampling for the real-time path: a linear-phase polyphase FIR.

``soxr`` streams in internal blocks: measured here with 16 ms chunks its output lags the input by
1.5-20 ms (LQ), 5-38 ms (MQ) or about 21 ms (HQ) on top of its filter, in each direction, which is more
than the whole budget above the STFT's 32 ms. This resampler returns every output sample as soon as the
input sample it needs has arrived; its only delay is the filter's group delay (1.8 ms for a 1 kHz
transition band), constant and known, so the daemon can account for it exactly.

The filter runs in a small C library (``polyphase.c``, built on first use by ``rtenhance.native_build``),
one foreign call per chunk; without a working compiler the same filter runs in NumPy.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from math import gcd

import numpy as np
from scipy import signal

from rtenhance.native_build import NativeUnavailable, listed_library

TRANSITION_HZ = 1000.0  # anti-alias/anti-image transition band just below the lower Nyquist frequency
STOPBAND_DB = 60.0  # stopband attenuation of the Kaiser-window design
INITIAL_CAPACITY = 16384  # input samples per chunk the native path's buffers hold (8 hops at 96 kHz); they
# grow for longer chunks
P_UP, P_DOWN, P_TAPS, P_SAMPLES_IN, P_SAMPLES_OUT = range(5)  # pp_process's int64 parameters


def _declare(lib: ctypes.CDLL) -> None:
    lib.pp_process.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int64]
    lib.pp_process.restype = ctypes.c_int64


LIBRARY = listed_library("polyphase", _declare)


def _native_function() -> Callable[..., int] | None:
    """``pp_process`` called holding the interpreter lock (it is short), or None without a working compiler."""
    try:
        lib = LIBRARY.load()
    except NativeUnavailable:
        return None
    fast = ctypes.PyDLL(lib._name)  # a CDLL call would release and retake the lock: a thread switch when contended
    _declare(fast)
    return fast.pp_process


class PolyphaseResampler:
    """Chunk-by-chunk mono resampling by a rational factor with a constant, known delay.

    Equivalent to ``scipy.signal.upfirdn(h, x, up, down)`` computed incrementally: after N input samples
    exactly ceil(N * up / down) output samples have been returned, whatever the chunking.

    Attributes:
        passthrough: the rates are equal and samples pass unchanged.
    """

    def __init__(self, in_rate: int, out_rate: int, native: bool = True) -> None:
        """Args:
        in_rate: input sample rate in Hz.
        out_rate: output sample rate in Hz.
        native: filter in C when the library builds here (else, or when False, in NumPy).

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
        self.passthrough = self.up == self.down
        self._phases = self._design() if not self.passthrough else np.ones((1, 1), dtype=np.float32)
        self.taps_per_phase = self._phases.shape[1]
        self._native = _native_function() if native and not self.passthrough else None
        self._params = np.array([self.up, self.down, self.taps_per_phase, 0, 0], dtype=np.int64)
        self._history = np.zeros(self.taps_per_phase - 1, dtype=np.float32)  # the newest K - 1 input samples
        self._allocate(INITIAL_CAPACITY if self._native is not None else 0)

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

    def _allocate(self, capacity: int) -> None:
        """Buffers for chunks of up to ``capacity`` input samples, keeping the history."""
        self._capacity = capacity
        self._buffer = np.zeros(self.taps_per_phase - 1 + capacity, dtype=np.float32)  # history, then the chunk
        self._buffer[: self.taps_per_phase - 1] = self._history
        self._history = self._buffer[: self.taps_per_phase - 1]
        self._out = np.zeros(-(-capacity * self.up // self.down) + 1, dtype=np.float32)
        self._args = tuple(a.ctypes.data for a in (self._params, self._phases, self._buffer, self._out))

    def reset(self) -> None:
        """Back to silence history and zero counts."""
        self._history.fill(0.0)
        self._params[P_SAMPLES_IN] = self._params[P_SAMPLES_OUT] = 0

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Resample the next chunk.

        Args:
            chunk: (N,) float32 samples at ``in_rate``.

        Returns:
            (M,) float32 samples at ``out_rate``, every output sample whose inputs have arrived, valid until
            the next call (in C: a view of an internal buffer); when the rates match, ``chunk`` itself (no
            copy, nothing allocated).
        """
        if chunk.dtype != np.float32 or chunk.ndim != 1:
            chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        if self.passthrough:
            return chunk
        if self._native is not None:
            n = chunk.shape[0]
            if n > self._capacity:
                self._allocate(n)
            if not chunk.flags.c_contiguous:
                chunk = np.ascontiguousarray(chunk)
            return self._out[: self._native(*self._args, chunk.ctypes.data, n)]
        k = self.taps_per_phase
        start_in = int(self._params[P_SAMPLES_IN])
        samples_in = start_in + chunk.shape[0]
        end_out = -(-samples_in * self.up // self.down)  # ceil(N_in * up / down)
        m = np.arange(self._params[P_SAMPLES_OUT], end_out, dtype=np.int64)
        self._params[P_SAMPLES_IN], self._params[P_SAMPLES_OUT] = samples_in, end_out
        buffer = np.concatenate([self._history, chunk])  # input samples [start_in - (K - 1), samples_in)
        if k > 1:
            self._history[:] = buffer[-(k - 1) :]
        if m.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        high = m * self.down
        newest = high // self.up  # newest input sample each output needs
        windows = np.lib.stride_tricks.sliding_window_view(buffer, k)[newest - start_in]  # (M, K)
        return np.einsum("ij,ij->i", self._phases[high % self.up], windows).astype(np.float32, copy=False)
