"""OverloadGuard: a lone missed deadline is a late wake-up (only its hop passes through); repeated misses are
an overload that rests the model, longer while overloads repeat."""

from __future__ import annotations

from rtenhance.audio.realtime.overload import MISS_WINDOW_S, MISSES_TO_TRIP, OverloadGuard

RECOVER_S = 1.0


def test_isolated_misses_do_not_stop_enhancement():
    guard = OverloadGuard()
    for k in range(10):  # one miss every 0.6 s: never MISSES_TO_TRIP within MISS_WINDOW_S
        now = 0.6 * k * MISS_WINDOW_S * (MISSES_TO_TRIP - 1)
        guard.missed(now, 0.002, 0.0005, RECOVER_S)
        assert guard.allow(now + 0.01)
    assert guard.trips == 0


def test_repeated_misses_pass_audio_through_then_recover_with_backoff():
    guard = OverloadGuard()
    for k in range(MISSES_TO_TRIP):
        assert guard.allow(0.016 * k)
        guard.missed(0.016 * k, 0.002, 0.0005, RECOVER_S)
    assert guard.trips == 1 and not guard.allow(0.5)
    assert guard.allow(0.016 * (MISSES_TO_TRIP - 1) + RECOVER_S)
    start = 2.0
    for k in range(MISSES_TO_TRIP):  # a second overload soon after: the wait doubles
        guard.missed(start + 0.016 * k, 0.002, 0.0005, RECOVER_S)
    end = start + 0.016 * (MISSES_TO_TRIP - 1)
    assert guard.trips == 2 and not guard.allow(end + 1.5 * RECOVER_S) and guard.allow(end + 2 * RECOVER_S)
