"""What a live scenario measured: the daemon's stats over the steady-state span, and its recording against
the offline enhancement of the same input in 1 s windows.

The stats reader takes whatever the daemon reports: per-cause skip counters (``ring_low``, ``overload``,
``bypass``; flat or nested, with or without a ``skipped_`` prefix) when present, else the older
``passthrough_hops`` total; a drift figure from any field whose name holds ``ppm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SKIP_CAUSES = ("ring_low", "overload", "bypass")
LEGACY_SKIP_KEY = "passthrough_hops"
WINDOW_S = 1.0
SEARCH_S = 0.2  # each window's delay is searched this far either side of the whole recording's delay
CONFIDENT_CORRELATION = 0.5  # windows below this give no delay reading (a glitch, or mostly noise)
QUIET_WINDOW = 0.3  # windows whose reference RMS is under this share of the median carry too little speech


@dataclass(frozen=True)
class StatsSummary:
    """The daemon's stats between two moments (the cumulative counters' increase, rates per minute).

    Attributes:
        seconds: span covered, s.
        hops: hops processed in the span.
        skipped: hops that skipped the model in the span, by cause (``{"passthrough": n}`` when the
            daemon reports no causes).
        adjust_ms_per_min: output dropped (+) or inserted (-) to hold the latency, ms per minute.
        underflows, overflows, state_resets, device_errors: increases in the span.
        drift_ppm: the last reported drift (resampling ratio) in ppm, None when the daemon reports none.
        drift_ppm_range: (min, max) of the drift over the span, None when not reported.
        modes: the distinct ``mode`` values seen in the span.
    """

    seconds: float
    hops: int
    skipped: dict[str, int]
    adjust_ms_per_min: float
    underflows: int
    overflows: int
    state_resets: int
    device_errors: int
    drift_ppm: float | None
    drift_ppm_range: tuple[float, float] | None
    modes: tuple[str, ...]

    @property
    def skipped_pct(self) -> float:
        """Skipped hops in percent of all hops, every cause."""
        return 100.0 * sum(self.skipped.values()) / max(1, self.hops)

    @property
    def skipped_pct_not_overload(self) -> float:
        """Skipped hops in percent of all hops, every cause but a real overload."""
        return 100.0 * sum(n for cause, n in self.skipped.items() if cause != "overload") / max(1, self.hops)


def flatten(record: dict[str, object], prefix: str = "") -> dict[str, object]:
    """Nested dicts flattened to ``outer.inner`` keys."""
    flat: dict[str, object] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def skip_counters(record: dict[str, object]) -> dict[str, int]:
    """Cumulative skipped hops by cause in one stats record; ``{"passthrough": n}`` for the older stats."""
    flat = flatten(record)
    found: dict[str, int] = {}
    for cause in SKIP_CAUSES:
        names = (cause, f"skipped_{cause}", f"skip_{cause}", f"{cause}_hops", f"skipped_hops_{cause}")
        for key, value in flat.items():
            if key.rsplit(".", 1)[-1] in names and isinstance(value, int) and not isinstance(value, bool):
                found[cause] = value
                break
    if found:
        return found
    return {"passthrough": int(record.get(LEGACY_SKIP_KEY, 0) or 0)}


def drift_value(record: dict[str, object]) -> float | None:
    """The first numeric field whose name holds ``ppm``, or None."""
    for key, value in flatten(record).items():
        if "ppm" in key and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def summarise_stats(records: list[dict[str, object]], start: float, end: float) -> StatsSummary:
    """The stats between wall-clock times ``start`` and ``end`` (``time`` field of each record, s).

    The baseline is the last record at or before ``start``; the span's records follow it up to ``end``.

    Raises:
        ValueError: fewer than one record before ``start`` and one in the span.
    """
    before = [r for r in records if float(r["time"]) <= start]
    span = [r for r in records if start < float(r["time"]) <= end]
    if not before or not span:
        raise ValueError(f"stats do not cover {start:.1f}..{end:.1f}: {len(before)} before, {len(span)} within")
    first, last = before[-1], span[-1]
    seconds = float(last["time"]) - float(first["time"])
    skipped_first, skipped_last = skip_counters(first), skip_counters(last)
    drifts = [d for d in (drift_value(r) for r in span) if d is not None]

    def increase(key: str) -> int:
        return int(last.get(key, 0) or 0) - int(first.get(key, 0) or 0)

    return StatsSummary(
        seconds=seconds,
        hops=sum(int(r.get("hops", 0) or 0) for r in span),
        skipped={cause: n - skipped_first.get(cause, 0) for cause, n in skipped_last.items()},
        adjust_ms_per_min=60.0 * (float(last["adjust_ms"]) - float(first["adjust_ms"])) / max(seconds, 1e-9),
        underflows=increase("underflows"),
        overflows=increase("overflows"),
        state_resets=increase("state_resets"),
        device_errors=increase("device_errors"),
        drift_ppm=drifts[-1] if drifts else None,
        drift_ppm_range=(min(drifts), max(drifts)) if drifts else None,
        modes=tuple(sorted({str(r.get("mode")) for r in span})),
    )


@dataclass(frozen=True)
class WindowMatch:
    """The recording against the reference in consecutive windows of speech.

    Attributes:
        correlations: best normalised correlation per window.
        lags_ms: delay of the recording behind the reference per window, ms (the producer's start offset
            in the recording included, so only its variation is meaningful).
        confident_lags_ms: ``lags_ms`` of the windows that correlate at CONFIDENT_CORRELATION or better.
    """

    correlations: np.ndarray
    lags_ms: np.ndarray

    @property
    def confident_lags_ms(self) -> np.ndarray:
        return self.lags_ms[self.correlations >= CONFIDENT_CORRELATION]

    @property
    def median(self) -> float:
        return float(np.median(self.correlations)) if self.correlations.size else 0.0

    @property
    def p10(self) -> float:
        return float(np.percentile(self.correlations, 10)) if self.correlations.size else 0.0

    @property
    def delay_spread_ms(self) -> float:
        """Largest minus smallest confident delay, ms (infinite when no window is confident)."""
        lags = self.confident_lags_ms
        return float(lags.max() - lags.min()) if lags.size else float("inf")


def match_windows(reference: np.ndarray, recording: np.ndarray, rate: int, skip_s: float,
                  max_lag_s: float) -> WindowMatch:
    """Compare ``recording`` with ``reference`` window by window, after the first ``skip_s`` of the reference.

    The whole recording's delay is found first (GCC-PHAT, up to ``max_lag_s``); each WINDOW_S window of
    the reference is then matched within +-SEARCH_S of it. Windows quieter than QUIET_WINDOW of the
    median window RMS are left out.

    Args:
        reference: (N,) the offline enhancement of the input.
        recording: (M,) what was recorded at the output, same rate, started before the producer.
        rate: sample rate of both, Hz.
        skip_s: reference time the comparison starts at, s.
        max_lag_s: largest delay searched for the whole recording, s.
    """
    from tests.audio.daemon_support import lag_and_correlation

    lag, _ = lag_and_correlation(reference, recording, int(max_lag_s * rate), rate)
    window, search = int(WINDOW_S * rate), int(SEARCH_S * rate)
    starts = range(int(skip_s * rate), reference.shape[0] - window + 1, window)
    rms = np.array([np.sqrt(np.mean(reference[s : s + window].astype(np.float64) ** 2)) for s in starts])
    loud = rms >= QUIET_WINDOW * float(np.median(rms)) if rms.size else rms.astype(bool)
    correlations, lags = [], []
    for start, keep in zip(starts, loud):
        lo = start + lag - search
        seg = recording[max(0, lo) : start + lag + search + window].astype(np.float64)
        if not keep or lo < 0 or seg.shape[0] < window + 2 * search:
            continue
        ref = reference[start : start + window].astype(np.float64)
        shift, best = best_shift(seg, ref)
        correlations.append(best)
        lags.append(1e3 * (lo + shift - start) / rate)
    return WindowMatch(np.array(correlations), np.array(lags))


def best_shift(segment: np.ndarray, ref: np.ndarray) -> tuple[int, float]:
    """(shift k, normalised correlation) maximising the match of ``segment[k : k + len(ref)]`` with ``ref``."""
    from scipy.signal import fftconvolve

    n = ref.shape[0]
    dots = fftconvolve(segment, ref[::-1], mode="valid")
    power = np.cumsum(np.concatenate([[0.0], segment * segment]))
    energy = power[n:] - power[:-n]
    scores = dots / np.sqrt(np.maximum(energy * float(np.dot(ref, ref)), 1e-20))
    shift = int(np.argmax(scores))
    return shift, float(scores[shift])
