"""The frame stepper the engine's ``Enhancer`` runs: strength mix, passthrough and bypass, per STFT frame.

Working per frame inside the STFT keeps every path on the same delay: a frame that skips the model
comes out of the same overlap-add as an enhanced one, so switching between model and passthrough is
crossfaded by the synthesis window over one hop (16 ms) with no extra delay line. The strength setting
is an attenuation limit (DeepFilterNet's ``atten_lim_db``): the output frame is
``(1 - g) * enhanced + g * noisy`` with ``g = 10 ** (-limit_db / 20)``, which in the time domain is the
same mix of the enhanced and the equally delayed noisy signal, so the noise floor is lowered by at most
``limit_db``.
"""

from __future__ import annotations

import time

import numpy as np

from rtenhance.backends import FrameStepper

DRY_EPSILON = 1e-6  # dry gains below this are treated as 0 (full strength)


def dry_gain(attenuation_limit_db: float) -> float:
    """Gain of the noisy signal in the mix for an attenuation limit in dB (0 dB -> 1.0: bypass)."""
    return float(10.0 ** (-attenuation_limit_db / 20.0))


class FrameGate:
    """Wraps the model's stepper; the engine sets ``run_model``, ``dry`` and ``inject_s`` between hops.

    Attributes:
        run_model: False passes frames through unchanged (passthrough or bypass).
        dry: noisy-signal gain in the mix, from ``dry_gain``; 1.0 also skips the model.
        inject_s: extra seconds spent in each model step (test-only overload simulation).
        state_resets: times the model state was reset because frames had skipped it.
    """

    def __init__(self, stepper: FrameStepper, n_bins: int) -> None:
        self.stepper = stepper
        self.run_model = True
        self.dry = 0.0
        self.inject_s = 0.0
        self.state_resets = 0
        self._stale = False  # frames skipped the model since its state was last valid
        self._out = np.zeros((n_bins, 2), dtype=np.float32)

    @property
    def enhancing(self) -> bool:
        """Whether the next frame goes through the model."""
        return self.run_model and self.dry < 1.0 - DRY_EPSILON

    def step(self, frame: np.ndarray) -> np.ndarray:
        """(F, 2) noisy frame -> (F, 2) output frame (valid until the next call)."""
        if not self.enhancing:
            self._stale = True
            return frame
        if self._stale:
            self.stepper.reset()
            self.state_resets += 1
            self._stale = False
        wet = self.stepper.step(frame)
        if self.inject_s > 0.0:
            time.sleep(self.inject_s)
        if self.dry <= DRY_EPSILON:
            return wet
        np.multiply(wet, 1.0 - self.dry, out=self._out)
        self._out += self.dry * frame
        return self._out

    def warm_up(self, frames: int) -> None:
        """Run the model on ``frames`` silent frames and reset it, so the first live hops are not slow."""
        silence = np.zeros_like(self._out)
        for _ in range(frames):
            self.stepper.step(silence)
        self.reset()

    def reset(self) -> None:
        """Back to the zero state (a fresh stream, not counted as a reset)."""
        self.stepper.reset()
        self._stale = False
