"""LatencyMeter: the end-to-end estimate per stats interval and the ring depth a latency target asks for."""

from __future__ import annotations

import pytest

from rtenhance.audio.realtime.latency import FLOOR_DEADBAND_S, LatencyMeter


class ReportingEnd:
    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s

    def device_latency_s(self) -> float:
        return self.latency_s


def test_each_interval_reports_its_own_mean_plus_the_devices():
    meter = LatencyMeter(fixed_s=0.016, hop_s=0.016)
    assert meter.take_ms() is None  # no hop yet
    meter.refresh(ReportingEnd(0.005), ReportingEnd(0.010))  # type: ignore[arg-type]
    for delay_s in (0.030, 0.034):
        meter.add(delay_s)
    assert meter.take_ms() == pytest.approx(1e3 * (0.032 + 0.015))
    assert meter.take_ms() is None  # nothing since
    meter.add(0.040)
    assert meter.take_ms() == pytest.approx(1e3 * (0.040 + 0.015))  # the earlier hops no longer count


def test_the_ring_floor_is_the_target_less_everything_outside_the_ring():
    meter = LatencyMeter(fixed_s=0.016, hop_s=0.016)
    meter.refresh(ReportingEnd(0.005), ReportingEnd(0.010))  # type: ignore[arg-type]
    assert meter.ring_floor_s(0.0, 0.0) == 0.0  # auto: no floor
    assert meter.ring_floor_s(0.120, 0.0) == pytest.approx(0.120 - 0.015 - 0.016 - 0.008)
    assert meter.ring_floor_s(0.020, 0.0) == 0.0  # a target below what the path needs anyway
    # a sink whose server keeps 5 ms when it asks: the ring may run that far below empty, on the same delay
    assert meter.ring_floor_s(0.120, 0.005) == pytest.approx(0.120 - 0.015 - 0.016 - 0.008 + 0.005)


def test_the_ring_floor_follows_the_devices_latency_only_when_it_moved_beyond_the_deadband():
    meter = LatencyMeter(fixed_s=0.016, hop_s=0.016)
    capture, playback = ReportingEnd(0.0), ReportingEnd(0.0)
    meter.refresh(capture, playback, restart=True)  # type: ignore[arg-type]  # nothing measured yet
    capture.latency_s, playback.latency_s = 0.003, 0.007
    meter.refresh(capture, playback, restart=True)  # type: ignore[arg-type]  # the first audio: taken at once
    first = meter.ring_floor_s(0.120, 0.0)
    assert first == pytest.approx(0.120 - 0.010 - 0.024)
    capture.latency_s = 0.003 + 0.9 * FLOOR_DEADBAND_S  # a reading's usual wander
    meter.refresh(capture, playback)  # type: ignore[arg-type]
    assert meter.ring_floor_s(0.120, 0.0) == first
    assert meter.device_s == pytest.approx(0.010 + 0.9 * FLOOR_DEADBAND_S)  # the stats still show the latest
    capture.latency_s = 0.003 + 2 * FLOOR_DEADBAND_S  # a real change
    meter.refresh(capture, playback)  # type: ignore[arg-type]
    assert meter.ring_floor_s(0.120, 0.0) == pytest.approx(first - 2 * FLOOR_DEADBAND_S)
