"""Stats: per-interval hop percentiles, every field in the line and the JSON, rate-limited warnings."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from rtenhance.stats import (
    HopTimes, JsonLinesWriter, RateLimitedWarning, StatsSnapshot, hop_percentiles, interval_warnings,
)


def test_hop_times_returns_each_interval_once():
    times = HopTimes(capacity=8)
    for ms in range(5):
        times.add(float(ms))
    np.testing.assert_array_equal(times.take(), [0, 1, 2, 3, 4])
    assert times.take().shape == (0,)
    for ms in range(20):
        times.add(float(ms))
    np.testing.assert_array_equal(times.take(), np.arange(12, 20))  # only the newest capacity survive


def test_percentiles():
    p50, p95, p99, pmax = hop_percentiles(np.arange(1.0, 101.0))
    assert (round(p50, 1), round(p95, 2), round(p99, 2), pmax) == (50.5, 95.05, 99.01, 100.0)
    assert all(math.isnan(v) for v in hop_percentiles(np.zeros(0)))


def _snapshot(**changes) -> StatsSnapshot:
    values = dict(hops=62, hop_ms_p50=1.0, hop_ms_p95=2.0, hop_ms_p99=3.0, hop_ms_max=4.0, rtf=0.07,
                  latency_ms=58.2, latency_target_ms=60.0, step_p99_ms=0.21, overflows=0, underflows=1,
                  underflows_server=1, passthrough_hops=2, skipped_ring_low=1, skipped_overload=1, skipped_bypass=7, state_resets=1,
                  adjust_ms=1.5, backlog_ms=0.0, missed_in_ms=5.3, missed_out_ms=0.0, drift_ppm=-120.0, jitter_ms=6.5, device_errors=0, mode="enhance",
                  cpu_percent=12.5)
    values.update(changes)
    return StatsSnapshot(**values)


def test_line_and_json_hold_every_field(tmp_path):
    snap = _snapshot()
    line = snap.line()
    for text in ("p50 1.00", "p95 2.00", "p99 3.00", "max 4.00", "rtf 0.070", "latency 58.2 ms", "overflows 0",
                 "underflows 1", "ring_low 1", "overload 1", "bypass 7", "resets 1", "cpu 12.5 %", "step p99 0.21",
                 "jitter 6.5 ms", "drift -120 ppm", "dropped 1.5 ms", "missed 5/0 ms", "target 60 ms",
                 "enhance"):
        assert text in line, text
    path = tmp_path / "stats.jsonl"
    writer = JsonLinesWriter(str(path), logging.getLogger("t"))
    assert writer.write(_snapshot(hop_ms_p50=math.nan, latency_ms=None).as_json())
    assert writer.write(snap.as_json())
    writer.close()
    first, second = (json.loads(x) for x in path.read_text().splitlines())
    assert first["hop_ms_p50"] is None and first["latency_ms"] is None
    assert second == snap.as_json()
    assert "latency n/a" in _snapshot(latency_ms=None).line()
    assert "target auto" in _snapshot(latency_target_ms=0.0).line()


def test_interval_warnings_name_every_fallback_by_cause():
    quiet = _snapshot()
    assert interval_warnings(quiet, quiet, 10.0) == []
    worse = _snapshot(skipped_ring_low=4, skipped_overload=3, underflows=3, underflows_server=2, overflows=1,
                      adjust_ms=41.5, backlog_ms=2000.0)
    kinds = dict(interval_warnings(quiet, worse, 10.0))
    assert set(kinds) == {"skips", "xruns", "drops"}
    assert "5 hops" in kinds["skips"] and "ring_low 3, overload 2" in kinds["skips"]
    assert "2 output underflows (1 of them the server's" in kinds["xruns"] and "1 input overflows" in kinds["xruns"]
    assert "dropped 40 ms" in kinds["drops"] and "2000 ms of stale capture" in kinds["drops"]
    assert interval_warnings(quiet, _snapshot(skipped_bypass=100), 10.0) == []
    filled = dict(interval_warnings(quiet, _snapshot(adjust_ms=quiet.adjust_ms - 12.0), 10.0))
    assert set(filled) == {"fills"} and "inserted 12 ms of silence" in filled["fills"]
    missed = dict(interval_warnings(quiet, _snapshot(missed_in_ms=quiet.missed_in_ms + 10.7, missed_out_ms=5.3), 10.0))
    assert set(missed) == {"missed"}
    assert "11 ms of cycles without the capture stream" in missed["missed"] and "5 ms without playback" in missed["missed"]


def test_rate_limited_warning(caplog):
    warn = RateLimitedWarning(logging.getLogger("t"), period_s=60.0)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            warn.warn("xrun")
    assert [r.getMessage() for r in caplog.records] == ["xrun"]


def test_json_writer_checks_at_open_and_logs_one_line_per_failure_period(tmp_path, caplog):
    """Opening fails at once (no folder, a symbolic link, not a regular file); a write that fails later
    (here /dev/full behind the open descriptor) logs one line, however often it recurs, and never raises."""
    import os

    log = logging.getLogger("t")
    target = tmp_path / "victim.txt"
    target.write_text("keep\n")
    link = tmp_path / "stats.jsonl"
    link.symlink_to(target)
    for path, reason in ((tmp_path / "no" / "dir.jsonl", "No such file or directory"),
                         (link, "symbolic link"), (tmp_path, "Is a directory"), ("/dev/null", "not a regular file")):
        with pytest.raises(OSError, match=reason):
            JsonLinesWriter(str(path), log)
    assert target.read_text() == "keep\n"
    writer = JsonLinesWriter(str(tmp_path / "ok.jsonl"), log)
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, writer._fd)  # the disk fills up after the start
    os.close(full)
    with caplog.at_level(logging.INFO):
        assert not any(writer.write({"n": n}) for n in range(5))
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert "No space left on device" in caplog.records[0].getMessage()
    writer.close()
