"""The engine's 16 kHz hop behind one interface: STFT -> model behind its gate -> iSTFT -> soft limiter.

Two implementations compute the same samples:
- ``PythonHop``: ``Enhancer`` (NumPy STFT) around a ``FrameGate`` (the model on a Python thread) and a
  ``SoftLimiter``; it runs any backend;
- ``NativeHop`` (``rtenhance.audio.realtime.native_hop``): all of it in C with one foreign call per hop and the model
  on a C thread; only for the native backend's stepper, and only where the C library builds.

``make_hop_processor`` picks the native one when it can and says which one runs.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from rtenhance.audio.realtime.gate import FrameGate
from rtenhance.audio.realtime.limiter import SoftLimiter
from rtenhance.audio.realtime.native_hop import NativeHop
from rtenhance.backends import FrameStepper
from rtenhance.backends.native import NativeStepper
from rtenhance.config import StftConfig
from rtenhance.enhancer import Enhancer
from rtenhance.native_build import NativeUnavailable

log = logging.getLogger(__name__)


class HopProcessor(Protocol):
    """One mono stream's hop at the model rate, with the model behind ``FrameGate``'s semantics.

    Attributes:
        latency_samples: delay of the output stream relative to the input, in samples (n_fft - hop = 256).
        missed: the last ``process`` wanted the model but passed the frame through (late or still busy).
    """

    latency_samples: int
    missed: bool

    @property
    def model_s(self) -> float:
        """How long the latest finished model step took, in seconds (NaN before the first)."""
        ...

    @property
    def state_resets(self) -> int:
        """Times the model state was reset because frames had skipped it."""
        ...

    def process(self, hop: np.ndarray, run_model: bool, dry: float, deadline_s: float, slow_s: float) -> np.ndarray:
        """Enhance, mix and limit one hop.

        Args:
            hop: (hop_samples,) contiguous float32 samples.
            run_model: False passes the frame through unchanged (passthrough or bypass).
            dry: noisy-signal gain in the mix (``dry_gain``); 1.0 also skips the model.
            deadline_s: how long to wait for the model before passing the frame through, in s (inf: no limit).
            slow_s: each model step takes at least this long, in s (test-only overload simulation).

        Returns:
            (hop_samples,) float32 output samples, ``latency_samples`` behind the input; internal memory,
            valid until the next call.
        """
        ...

    def set_limiter_knee(self, knee_dbfs: float) -> None:
        """Use a new limiter knee (dBFS) from the next hop on."""
        ...

    def warm_up(self, frames: int) -> None:
        """Run the model on ``frames`` silent frames and reset, so the first live hops are not slow."""
        ...

    def reset(self) -> None:
        """Back to the zero state (a fresh stream, not counted as a reset); waits for a step in progress."""
        ...

    def close(self) -> None:
        """Stop the model thread (idempotent)."""
        ...


class PythonHop:
    """``HopProcessor`` in Python: ``Enhancer`` over a ``FrameGate``, then a ``SoftLimiter``.

    Args:
        stepper: the model's backend stepper (any backend).
        cfg: the model's STFT.
        knee_dbfs: the limiter knee in dBFS.
    """

    def __init__(self, stepper: FrameStepper, cfg: StftConfig, knee_dbfs: float) -> None:
        self.gate = FrameGate(stepper, cfg.n_bins)
        self._enhancer = Enhancer(self.gate, cfg)
        self._limiter = SoftLimiter(knee_dbfs)
        self.latency_samples = self._enhancer.latency_samples
        self.missed = False

    @property
    def model_s(self) -> float:
        """How long the latest finished model step took, in seconds (NaN before the first)."""
        return self.gate.model_s

    @property
    def state_resets(self) -> int:
        """Times the model state was reset because frames had skipped it."""
        return self.gate.state_resets

    def process(self, hop: np.ndarray, run_model: bool, dry: float, deadline_s: float, slow_s: float) -> np.ndarray:
        """One hop; see ``HopProcessor.process``."""
        gate = self.gate
        gate.run_model, gate.dry, gate.deadline_s, gate.slow_s = run_model, dry, deadline_s, slow_s
        out = self._limiter.apply(self._enhancer.process(hop))
        self.missed = gate.missed
        return out

    def set_limiter_knee(self, knee_dbfs: float) -> None:
        """Use a new limiter knee (dBFS) from the next hop on."""
        self._limiter = SoftLimiter(knee_dbfs)

    def warm_up(self, frames: int) -> None:
        """Run the model on ``frames`` silent frames and reset, so the first live hops are not slow."""
        self.gate.warm_up(frames)

    def reset(self) -> None:
        """Back to the zero state: STFT buffers and model (waits for a step in progress)."""
        self._enhancer.reset()

    def close(self) -> None:
        """Stop the model thread (idempotent)."""
        self.gate.close()


def make_hop_processor(stepper: FrameStepper, cfg: StftConfig, knee_dbfs: float) -> HopProcessor:
    """``NativeHop`` for the native backend's stepper when its library builds here, else ``PythonHop``;
    logs which one runs (and why not the native one, when the stepper is native)."""
    if isinstance(stepper, NativeStepper):
        try:
            processor = NativeHop(stepper, cfg, knee_dbfs)
        except NativeUnavailable as exc:
            log.warning("signal path in Python (more CPU): the native hop is unavailable: %s", exc)
            return PythonHop(stepper, cfg, knee_dbfs)
        log.info("signal path in C: STFT, model thread, iSTFT and limiter (native hop)")
        return processor
    log.info("signal path in Python: NumPy STFT, model on a Python thread")
    return PythonHop(stepper, cfg, knee_dbfs)
