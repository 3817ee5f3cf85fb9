"""The live scenario measurements on synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from tests.audio.live_metrics import match_windows, skip_counters, summarise_stats

RATE = 16000
HOPS_PER_S = 62


def records(seconds: int, **cumulative_per_s: float) -> list[dict[str, object]]:
    """One stats record per second; each named field grows by the given amount per second."""
    return [{"time": 1000.0 + t, "hops": HOPS_PER_S, "mode": "enhance",
             **{key: (type(rate)(rate * t)) for key, rate in cumulative_per_s.items()}} for t in range(seconds + 1)]


def test_summary_takes_increases_over_the_span_only():
    recs = records(20, passthrough_hops=2, adjust_ms=0.5, underflows=1, overflows=0, state_resets=1,
                   device_errors=0)
    summary = summarise_stats(recs, start=1005.0, end=1015.0)
    assert summary.seconds == 10.0
    assert summary.hops == 10 * HOPS_PER_S
    assert summary.skipped == {"passthrough": 20}
    assert summary.skipped_pct == pytest.approx(100.0 * 20 / (10 * HOPS_PER_S))
    assert summary.adjust_ms_per_min == pytest.approx(30.0)
    assert summary.underflows == 10 and summary.state_resets == 10
    assert summary.drift_ppm is None and summary.modes == ("enhance",)


def test_skip_causes_flat_or_nested_and_overload_excluded():
    flat = {"ring_low": 3, "skipped_overload": 5, "bypass_hops": 1, "passthrough_hops": 9}
    nested = {"skipped": {"ring_low": 3, "overload": 5, "bypass": 1}, "passthrough_hops": 9}
    assert skip_counters(flat) == skip_counters(nested) == {"ring_low": 3, "overload": 5, "bypass": 1}
    recs = [{"time": 0.0, "hops": 0, "adjust_ms": 0.0, "skipped": {"ring_low": 0, "overload": 0, "bypass": 0},
             "drift_ppm": 0.0},
            {"time": 10.0, "hops": 1000, "adjust_ms": 0.0, "skipped": {"ring_low": 4, "overload": 50, "bypass": 0},
             "drift_ppm": 999.5}]
    summary = summarise_stats(recs, 0.0, 10.0)
    assert summary.skipped_pct == pytest.approx(5.4)
    assert summary.skipped_pct_not_overload == pytest.approx(0.4)
    assert summary.drift_ppm == 999.5 and summary.drift_ppm_range == (999.5, 999.5)


def test_summary_needs_records_before_and_within_the_span():
    with pytest.raises(ValueError, match="do not cover"):
        summarise_stats(records(3, adjust_ms=0.0), start=1010.0, end=1020.0)


def test_windows_find_the_delay_its_jump_and_a_corrupted_span():
    rng = np.random.default_rng(1)
    seconds, offset, drop = 14, 1600, 160  # 100 ms in, then 10 ms of output dropped at 8 s
    reference = (rng.standard_normal(seconds * RATE) * np.repeat(rng.uniform(0.5, 1.5, seconds * 50), RATE // 50))
    recording = np.concatenate([np.zeros(offset), reference[: 8 * RATE], reference[8 * RATE + drop :], np.zeros(RATE)])
    recording[offset + 10 * RATE : offset + 12 * RATE] = rng.standard_normal(2 * RATE)  # two windows of garbage
    match = match_windows(reference.astype(np.float32), recording.astype(np.float32), RATE, skip_s=2.0,
                          max_lag_s=1.0)
    assert match.correlations.shape[0] == seconds - 2
    lags = np.round(match.confident_lags_ms, 3)
    assert set(lags) == {100.0, 90.0}, match.lags_ms
    assert match.delay_spread_ms == pytest.approx(10.0)
    assert match.confident_lags_ms.shape[0] == seconds - 2 - 2
    assert match.median > 0.99 and match.p10 < 0.5
