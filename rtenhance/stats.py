"""Rolling run-time statistics of the daemon and their log line / JSON form.

The worker records one compute time per hop into a preallocated ``HopTimes``; a normal thread takes a
``StatsSnapshot`` every interval (percentiles over the hops of that interval, counters since start) and
logs ``snapshot.line()`` and, with ``--stats-json``, appends ``snapshot.as_json()`` through a
``JsonLinesWriter`` opened at start.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import stat
import time
from dataclasses import asdict, dataclass

import numpy as np

HOP_HISTORY = 8192  # hop times kept between snapshots (131 s of 16 ms hops)
PERCENTILES = (50.0, 95.0, 99.0)


class HopTimes:
    """Compute time of each hop since the last ``take``; ``add`` never allocates."""

    def __init__(self, capacity: int = HOP_HISTORY) -> None:
        self._values = np.zeros(capacity, dtype=np.float64)
        self._count = 0  # total ever added
        self._taken = 0  # total already returned by take()

    def add(self, ms: float) -> None:
        """Record one hop's compute time in milliseconds (worker thread)."""
        self._values[self._count % self._values.shape[0]] = ms
        self._count += 1

    def take(self) -> np.ndarray:
        """The times added since the previous call (at most ``capacity`` of the newest), as a new array."""
        end = self._count
        start = max(self._taken, end - self._values.shape[0])
        self._taken = end
        idx = np.arange(start, end) % self._values.shape[0]
        return self._values[idx].copy()


class CpuMeter:
    """CPU time of this process (all threads) as a percentage of one core since the previous sample."""

    def __init__(self) -> None:
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def sample(self) -> float:
        """Percent of one core used since the previous call (or since construction)."""
        cpu, wall = time.process_time(), time.monotonic()
        used, elapsed = cpu - self._cpu, wall - self._wall
        self._cpu, self._wall = cpu, wall
        return 100.0 * used / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True)
class StatsSnapshot:
    """One reporting interval.

    Attributes:
        hops: hops processed in the interval.
        hop_ms_p50, hop_ms_p95, hop_ms_p99, hop_ms_max: per-hop compute time (resampling, STFT, model,
            iSTFT, limiter) in ms over the interval; NaN when no hop ran.
        rtf: real-time factor, mean compute time / hop duration (below 1 keeps up).
        latency_ms: estimated end-to-end latency, capture (ADC) to playback (DAC), in ms; None for file output.
        latency_target_ms: the configured target (0: as low as the observed timing allows).
        step_p99_ms: the model step's p99 over its recent steps, the basis of its deadline, in ms.
        overflows: input overflows since start (capture samples lost: the worker did not drain in time).
        underflows: output underflows since start (playback ran dry and played silence), not counting
            the start of a session before its first hop.
        underflows_server: the part of ``underflows`` where the device or sound server ran dry while the
            output ring held audio (it was handed over late); the rest found the ring itself empty.
        passthrough_hops: hops since start that skipped the model for a reason other than bypass
            (``skipped_ring_low`` + ``skipped_overload``).
        skipped_ring_low: hops whose output ring would have run dry before a usual model step ended.
        skipped_overload: hops that missed their deadline or fell in the rest after an overload.
        skipped_bypass: hops the user bypassed (SIGUSR1, ``enhance.bypass``, no attenuation).
        state_resets: model-state resets since start (after each passthrough or bypass period).
        adjust_ms: output dropped at once since start after a stall (clock drift is resampled, not dropped),
            less the silence inserted at once in a session's first seconds to fill the jitter buffer.
        backlog_ms: stale captured audio dropped since start after the process or a device stalled.
        missed_in_ms, missed_out_ms: PipeWire graph cycles since start that ran without the capture stream
            (written as silence in their place) or the playback stream (the sink waited or played silence),
            in ms.
        drift_ppm: the playback resampling that takes up the clocks' mismatch, in parts per million.
        jitter_ms: how far the output ring dips below its mean (the jitter buffer's span), in ms.
        device_errors: device losses and stream failures since start.
        mode: "enhance", "passthrough", "bypass" or "reconnecting" at the end of the interval.
        cpu_percent: CPU time of the whole process in the interval, percent of one core.
    """

    hops: int
    hop_ms_p50: float
    hop_ms_p95: float
    hop_ms_p99: float
    hop_ms_max: float
    rtf: float
    latency_ms: float | None
    latency_target_ms: float
    step_p99_ms: float
    overflows: int
    underflows: int
    underflows_server: int
    passthrough_hops: int
    skipped_ring_low: int
    skipped_overload: int
    skipped_bypass: int
    state_resets: int
    adjust_ms: float
    backlog_ms: float
    missed_in_ms: float
    missed_out_ms: float
    drift_ppm: float
    jitter_ms: float
    device_errors: int
    mode: str
    cpu_percent: float

    def line(self) -> str:
        """One human-readable log line."""
        latency = "n/a" if self.latency_ms is None else f"{self.latency_ms:.1f} ms"
        target = f"{self.latency_target_ms:.0f} ms" if self.latency_target_ms else "auto"
        return (
            f"hop p50 {self.hop_ms_p50:.2f} p95 {self.hop_ms_p95:.2f} p99 {self.hop_ms_p99:.2f} "
            f"max {self.hop_ms_max:.2f} ms (step p99 {self.step_p99_ms:.2f}) | rtf {self.rtf:.3f} | "
            f"latency {latency} (target {target}, jitter {self.jitter_ms:.1f} ms, drift {self.drift_ppm:+.0f} ppm) | "
            f"overflows {self.overflows} underflows {self.underflows} (server {self.underflows_server}) | "
            f"skipped ring_low {self.skipped_ring_low} "
            f"overload {self.skipped_overload} bypass {self.skipped_bypass} resets {self.state_resets} | "
            f"dropped {self.adjust_ms:.1f} ms backlog {self.backlog_ms:.0f} ms missed {self.missed_in_ms:.0f}/"
            f"{self.missed_out_ms:.0f} ms device_errors {self.device_errors} | "
            f"{self.mode} | cpu {self.cpu_percent:.1f} %"
        )

    def as_json(self) -> dict[str, object]:
        """Plain data for one JSON line (NaN and infinity become null)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def interval_warnings(previous: StatsSnapshot | None, current: StatsSnapshot,
                      interval_s: float) -> list[tuple[str, str]]:
    """What went wrong between two snapshots: (kind, message) pairs, one per kind (empty when nothing did).

    Every fallback shows here: hops that skipped the model for a reason other than bypass (by cause),
    playback underflows and capture overflows, audio dropped after a stall, stale capture dropped.
    """
    def grew(field: str) -> float:
        before = getattr(previous, field) if previous is not None else 0
        return getattr(current, field) - before

    messages: list[tuple[str, str]] = []
    ring_low, overload = grew("skipped_ring_low"), grew("skipped_overload")
    if ring_low or overload:
        share = 100.0 * (ring_low + overload) / max(1, current.hops)
        messages.append(("skips", f"{ring_low + overload} hops ({share:.1f} %) skipped the model in the last {interval_s:g} s: "
                        f"ring_low {ring_low}, overload {overload}"))
    underflows, server, overflows = grew("underflows"), grew("underflows_server"), grew("overflows")
    if underflows or overflows:
        messages.append(("xruns", f"{underflows} output underflows ({server} of them the server's or device's with "
                        f"audio queued) and {overflows} input overflows in the last {interval_s:g} s "
                        f"(playback or capture glitches)"))
    dropped, backlog = grew("adjust_ms"), grew("backlog_ms")
    if dropped > 0 or backlog > 0:
        messages.append(("drops", f"dropped {dropped:.0f} ms of queued output and {backlog:.0f} ms of stale capture in the last "
                        f"{interval_s:g} s (the process or a device stalled)"))
    missed_in, missed_out = grew("missed_in_ms"), grew("missed_out_ms")
    if missed_in > 0 or missed_out > 0:
        messages.append(("missed", f"the sound server ran {missed_in:.0f} ms of cycles without the capture stream "
                        f"(silence written in their place) and {missed_out:.0f} ms without playback in the last "
                        f"{interval_s:g} s (the audio thread woke late)"))
    if dropped < 0:
        messages.append(("fills", f"inserted {-dropped:.0f} ms of silence in the last {interval_s:g} s to fill the output "
                        f"buffer to the timing seen at the start"))
    return messages


def hop_percentiles(hop_ms: np.ndarray) -> tuple[float, float, float, float]:
    """(p50, p95, p99, max) of hop times in ms; NaNs for an empty interval."""
    if hop_ms.shape[0] == 0:
        return (math.nan,) * 4
    p50, p95, p99 = np.percentile(hop_ms, PERCENTILES)
    return float(p50), float(p95), float(p99), float(hop_ms.max())


class RateLimitedWarning:
    """Logs a warning at most once per ``period_s``, saying how many were suppressed in between."""

    def __init__(self, logger: logging.Logger, period_s: float) -> None:
        self._logger = logger
        self._period_s = period_s
        self._last = -math.inf
        self._suppressed = 0

    def warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last < self._period_s:
            self._suppressed += 1
            return
        extra = f" ({self._suppressed} similar warnings suppressed)" if self._suppressed else ""
        self._logger.warning("%s%s", message, extra)
        self._last, self._suppressed = now, 0


class JsonLinesWriter:
    """Appends one JSON object per line to a file opened once, at start.

    The file is opened without following a symbolic link (``O_NOFOLLOW``: a link planted in a shared folder
    cannot redirect the writes) and must be a regular file. A write that fails later (a full disk, a
    removed mount) is logged once, as one line; later lines are still tried, and the first one that is
    written again is logged too. Writing never raises.
    """

    def __init__(self, path: str, logger: logging.Logger) -> None:
        """Open ``path`` for appending (created with the normal umask mode if needed).

        Raises:
            OSError: the file cannot be opened (no such folder, a symbolic link, permissions) or is not a
                regular file; the message names the path and the reason.
        """
        self.path = path
        self._logger = logger
        self._failing = False
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            self._fd = os.open(path, flags, 0o666)
        except OSError as exc:
            reason = "a symbolic link (refused)" if exc.errno == errno.ELOOP else exc.strerror
            raise OSError(exc.errno, f"--stats-json {path}: cannot open ({reason})") from None
        if not stat.S_ISREG(os.fstat(self._fd).st_mode):
            os.close(self._fd)
            raise OSError(errno.EINVAL, f"--stats-json {path}: not a regular file")
        os.set_blocking(self._fd, True)

    def write(self, data: dict[str, object]) -> bool:
        """Append ``data`` as one line; returns whether it was written whole."""
        import json

        line = (json.dumps(data) + "\n").encode()
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:
            if not self._failing:
                self._logger.error("stats JSON: cannot write %s (%s); the audio goes on, further failures are "
                                   "not logged", self.path, exc.strerror)
            self._failing = True
            return False
        if self._failing:
            self._logger.info("stats JSON: writing %s again", self.path)
            self._failing = False
        return True

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
