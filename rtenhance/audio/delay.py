"""Holding the engine's delay at its target: measure it every hop, drop or insert output samples.

The engine's delay is the audio in flight between the capture callback and the playback callback (both
rings, the hop being assembled, the STFT overlap and the resampler filters). It drifts when the devices'
clocks differ and jumps when playback ran dry (silence was played, so everything queued now plays later).
``DelayController`` smooths the per-hop measurement and asks for a correction; ``splice`` makes it by
cutting or repeating a few milliseconds inside a chunk with a short crossfade. Corrections wait for a
quiet chunk unless the error is large (after an overload, a device hiccup or at start).
"""

from __future__ import annotations

import math

import numpy as np

SMOOTHING = 0.1  # weight of each hop's measurement in the running delay estimate
DEADBAND_S = 0.002  # smaller errors are left alone (the measurement varies with callback block phase)
FORCE_S = 0.008  # larger errors are corrected even in loud audio
MAX_STEP_FRACTION = 0.25  # at most this fraction of one chunk is dropped or inserted per hop
QUIET_DBFS = -45.0  # a chunk below this RMS hides a splice
FADE_S = 0.002  # crossfade across a splice


def splice(chunk: np.ndarray, jump: int, fade: int) -> np.ndarray:
    """Shorten (jump > 0: drop ``jump`` samples) or lengthen (jump < 0: repeat ``-jump``) a chunk.

    The chunk is cut in the middle and joined with a linear crossfade of ``fade`` samples.

    Args:
        chunk: (N,) samples; |jump| + fade must not exceed N.
        jump: samples to drop (> 0) or insert (< 0).
        fade: crossfade length in samples.

    Returns:
        (N - jump,) samples (a new array unless jump is 0).
    """
    n = chunk.shape[0]
    if jump == 0:
        return chunk
    fade = max(1, min(fade, n - abs(jump)))
    cut = max(0, -jump) + (n - abs(jump) - fade) // 2
    ramp = (np.arange(fade, dtype=np.float32) + 0.5) / fade
    joined = chunk[cut : cut + fade] * (1.0 - ramp) + chunk[cut + jump : cut + jump + fade] * ramp
    return np.concatenate([chunk[:cut], joined, chunk[cut + jump + fade :]])


class DelayController:
    """Smoothed delay estimate and the corrections that bring it to ``target_s``.

    Attributes:
        target_s: the delay to hold, in seconds.
        adjusted_samples: total samples dropped (+) or inserted (-) so far.
    """

    def __init__(self, rate: int, target_s: float) -> None:
        self.rate = rate
        self.target_s = target_s
        self.adjusted_samples = 0
        self._estimate_s = math.nan
        self._quiet = float(10.0 ** (QUIET_DBFS / 20.0))
        self._fade = max(1, int(FADE_S * rate))

    def restart(self, target_s: float) -> None:
        """Forget the estimate (new streams) and set a new target; the adjustment total is kept."""
        self.target_s = target_s
        self._estimate_s = math.nan

    @property
    def estimate_s(self) -> float:
        """Smoothed measured delay in seconds (NaN before the first measurement)."""
        return self._estimate_s

    def observe(self, delay_s: float) -> None:
        """Feed one hop's measurement of the delay in seconds."""
        if math.isnan(self._estimate_s):
            self._estimate_s = delay_s
        else:
            self._estimate_s += SMOOTHING * (delay_s - self._estimate_s)

    def correct(self, chunk: np.ndarray) -> np.ndarray:
        """The chunk with the correction this hop calls for applied (the chunk itself when none)."""
        error = self._estimate_s - self.target_s
        if math.isnan(error) or abs(error) < DEADBAND_S:
            return chunk
        if abs(error) < FORCE_S and float(np.sqrt(np.mean(chunk * chunk))) > self._quiet:
            return chunk
        limit = int(MAX_STEP_FRACTION * chunk.shape[0])
        jump = int(math.copysign(min(round(abs(error) * self.rate), limit), error))
        if jump == 0:
            return chunk
        self._estimate_s -= jump / self.rate
        self.adjusted_samples += jump
        return splice(chunk, jump, self._fade)
