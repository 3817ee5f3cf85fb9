"""Cutting audio out of a chunk without a click: ``splice`` drops (or repeats) samples with a short crossfade.

The engine drops queued output this way after a stall (``PlayoutController.take_drop``); clock drift is
taken up by resampling instead (``DriftResampler``).
"""

from __future__ import annotations

import numpy as np


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
