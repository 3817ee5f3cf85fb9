"""SoftLimiter: transparent below the knee, smooth and bounded above it."""

from __future__ import annotations

import numpy as np

from rtenhance.audio.realtime.limiter import SoftLimiter


def test_below_knee_unchanged_above_bounded_monotonic_continuous():
    limiter = SoftLimiter(-3.0)
    x = np.linspace(-4.0, 4.0, 80001, dtype=np.float32)
    y = limiter.apply(x.copy())
    below = np.abs(x) <= limiter.knee
    np.testing.assert_array_equal(y[below], x[below])
    assert np.all(np.abs(y) <= 1.0)
    assert np.all(np.diff(y) >= 0)
    assert np.max(np.abs(np.diff(y))) <= np.max(np.diff(x)) * 1.0001  # slope never above 1: no kink
