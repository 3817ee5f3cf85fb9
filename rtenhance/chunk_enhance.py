"""Whole-signal enhancement of one channel in chunks, with bounded memory and the offline model's output.

GTCRN is causal over frames and carries its history in a small streaming state (convolution caches and
GRU hidden states, ``StreamState``), so running ``GTCRN.step`` frame by frame with that state carried
computes exactly what ``GTCRN.forward`` computes over the whole spectrogram: no overlap or warm-up is
needed, and none would be exact (a GRU never forgets completely). What differs between the offline path
and the live one is only the framing:

- ``CentredStream`` reproduces ``enhance_offline`` (``stft``/``istft`` with centred, reflect-padded frames):
  frame k covers padded samples [k * hop, k * hop + n_fft) of the input with ``hop`` samples reflected at
  each end (zeros for inputs of at most ``hop`` samples), and overlap-add divides by the window envelope
  as ``torch.istft`` does. It holds one hop of input and one hop of overlap between calls.
- ``CausalStream`` is the live path (``Enhancer``: zero history, causal frames), aligned to the input.

Both take any chunk sizes and return, over all calls, exactly as many samples as they were given.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from rtenhance.backends import FrameStepper
from rtenhance.config import StftConfig
from rtenhance.dsp.stft import sqrt_hann_numpy
from rtenhance.enhancer import Enhancer

EMPTY = np.zeros(0, dtype=np.float32)


class ChannelStream(Protocol):
    """One channel of a signal enhanced chunk by chunk."""

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """(N,) float32 input samples -> the (M,) output samples that are final now (a new array)."""
        ...

    def finish(self) -> np.ndarray:
        """The remaining output samples: the total output equals the total input in length."""
        ...


class CentredStream:
    """``enhance_offline(model, x)`` of a whole channel, computed chunk by chunk (see the module docstring).

    Args:
        stepper: a fresh frame stepper of the model (its state is carried across chunks).
        cfg: the model's STFT (n_fft = 2 * hop).
    """

    def __init__(self, stepper: FrameStepper, cfg: StftConfig) -> None:
        self._stepper = stepper
        self._hop = cfg.hop_samples
        self._n_fft = cfg.n_fft
        self._window = sqrt_hann_numpy(cfg.n_fft)
        squared = self._window**2
        self._envelope = squared[: self._hop] + squared[self._hop :]  # two frames overlap every sample
        self._head: np.ndarray | None = EMPTY  # input kept until the leading reflection can be built
        self._pending = EMPTY  # padded input from the start of the next frame on
        self._tail = EMPTY  # the last hop + 1 input samples, for the trailing reflection
        self._overlap = np.zeros(self._hop, dtype=np.float32)  # second half of the last frame
        self._skip = self._hop  # output samples before the input's first one (the leading padding)
        self._samples_in = 0

    def feed(self, samples: np.ndarray) -> np.ndarray:
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._samples_in += x.shape[0]
        self._tail = np.concatenate([self._tail, x])[-(self._hop + 1) :]
        if self._head is not None:
            self._head = np.concatenate([self._head, x])
            if self._head.shape[0] <= self._hop:  # reflection needs more samples than it pads
                return EMPTY
            lead = self._head[self._hop : 0 : -1]  # torch's reflect padding: x[hop], ..., x[1]
            x, self._head = np.concatenate([lead, self._head]), None
        self._pending = np.concatenate([self._pending, x])
        return self._frames()

    def finish(self) -> np.ndarray:
        h = self._hop
        if self._head is not None:  # at most hop samples in all: zero padding, as ``stft`` does
            self._pending = np.concatenate([np.zeros(h, np.float32), self._head, np.zeros(h, np.float32)])
            self._head = None
        else:
            self._pending = np.concatenate([self._pending, self._tail[-2::-1][:h]])  # x[N-2], ..., x[N-1-hop]
        out = self._frames()
        rest = self._samples_in % h  # covered by the last frame only: torch divides by its window alone
        last = self._overlap[:rest] / self._window[h : h + rest] ** 2
        return np.concatenate([out, last.astype(np.float32)])

    def _frames(self) -> np.ndarray:
        """Step every complete frame of ``_pending``; returns the samples they complete."""
        h, n_fft = self._hop, self._n_fft
        count = (self._pending.shape[0] - n_fft) // h + 1 if self._pending.shape[0] >= n_fft else 0
        if count == 0:
            return EMPTY
        frames = np.lib.stride_tricks.sliding_window_view(self._pending, n_fft)[::h][:count]  # (T, n_fft)
        spectra = np.fft.rfft(frames * self._window, axis=1).astype(np.complex64)  # (T, F)
        pairs = spectra.view(np.float32).reshape(count, -1, 2)  # (T, F, 2) real, imaginary
        for t in range(count):
            pairs[t] = self._stepper.step(pairs[t])
        y = np.fft.irfft(spectra, n=n_fft, axis=1).astype(np.float32) * self._window  # (T, n_fft)
        previous = np.concatenate([self._overlap[None], y[:-1, h:]])  # (T, hop) overlap from frame t - 1
        out = ((y[:, :h] + previous) / self._envelope).reshape(-1)
        self._overlap = y[-1, h:].copy()
        self._pending = self._pending[count * h :]
        skip = min(self._skip, out.shape[0])
        self._skip -= skip
        return out[skip:]


class CausalStream:
    """The live path (``Enhancer``, causal framing) over a whole channel, aligned to the input.

    Args:
        stepper: a fresh frame stepper of the model.
        cfg: the model's STFT.
    """

    def __init__(self, stepper: FrameStepper, cfg: StftConfig) -> None:
        self._enhancer = Enhancer(stepper, cfg)
        self._skip = self._enhancer.latency_samples  # the output lags the input by this much

    def feed(self, samples: np.ndarray) -> np.ndarray:
        return self._aligned(self._enhancer.feed(samples))

    def finish(self) -> np.ndarray:
        return self._aligned(self._enhancer.flush())

    def _aligned(self, out: np.ndarray) -> np.ndarray:
        skip = min(self._skip, out.shape[0])
        self._skip -= skip
        return out[skip:]
