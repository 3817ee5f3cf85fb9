"""The end-to-end tests' alignment measure: it must follow a drifting delay and still reject unrelated audio."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from tests.audio.daemon_support import aligned_correlation

RATE = 48000


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """(N,) float64 low-passed noise with a 4 Hz syllable envelope."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    noise = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * np.arange(n) / RATE)
    return noise * envelope


def drifting_copy(reference: np.ndarray, delay_s: float, drops_ms: list[float]) -> np.ndarray:
    """``reference`` delayed by ``delay_s``, with one splice per entry of ``drops_ms`` spread evenly: a cut of
    that many milliseconds, or a repeat where it is negative."""
    pieces, start = [np.zeros(int(delay_s * RATE))], 0
    cuts = np.linspace(0, reference.shape[0], len(drops_ms) + 2)[1:-1].astype(int)
    for cut, drop_ms in zip(cuts, drops_ms):
        pieces.append(reference[start:cut])
        start = cut + int(drop_ms * RATE / 1000)
    pieces.append(reference[start:])
    return np.concatenate(pieces)


@pytest.mark.parametrize("drops_ms", [[12.0] * 4, [3.0] * 16, [-4.0] * 10], ids=["cuts", "trims", "repeats"])
def test_follows_a_delay_that_drifts_in_steps(drops_ms):
    """The splices add up to 40-48 ms, past one window's search range, like the daemon's latency trims."""
    reference = speech_like(6.0, seed=1)
    assert aligned_correlation(reference, drifting_copy(reference, 0.12, drops_ms), RATE) > 0.9


def test_rejects_unrelated_audio():
    reference = speech_like(6.0, seed=1)
    other = drifting_copy(speech_like(6.0, seed=2), 0.12, [])
    assert aligned_correlation(reference, other, RATE) < 0.3
