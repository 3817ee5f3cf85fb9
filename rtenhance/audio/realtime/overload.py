"""When the model may run: the engine's response to a CPU that cannot keep up.

A model step that misses its deadline passes its frame through instead (see ``FrameGate``). One miss is a
late wake-up (a busy sound server, another process's burst), not an overload: only the hop it hit passes
through. ``MISSES_TO_TRIP`` misses within ``MISS_WINDOW_S`` are an overload, and start a passthrough period:
the model is not even tried for ``recover_s``, which lets a busy CPU catch up. While overloads repeat, the
wait doubles up to ``MAX_BACKOFF`` times; it falls back to ``recover_s`` after ``HEALTHY_RESET_S`` of
enhancement without an overload.
"""

from __future__ import annotations

import logging
import math

from rtenhance.stats import RateLimitedWarning

log = logging.getLogger(__name__)

MAX_BACKOFF = 8  # longest wait is recover_s * MAX_BACKOFF
HEALTHY_RESET_S = 10.0  # enhancement without overload for this long forgets past overloads
MISSES_TO_TRIP = 3  # misses within MISS_WINDOW_S that make an overload
MISS_WINDOW_S = 1.0
WARN_PERIOD_S = 5.0  # at most one overload warning per this many seconds


class OverloadGuard:
    """Per-hop permission to run the model.

    Attributes:
        enhancing: the model is allowed to run.
        trips: overloads detected so far.
    """

    def __init__(self) -> None:
        self.enhancing = True
        self.trips = 0
        self._resume_at = 0.0
        self._backoff = 1
        self._enhancing_since = 0.0
        self._misses = [-math.inf] * (MISSES_TO_TRIP - 1)  # monotonic times of the misses before, oldest first out
        self._next_miss = 0
        self._warn = RateLimitedWarning(log, WARN_PERIOD_S)

    def allow(self, now: float) -> bool:
        """Whether the model may run for the next hop (ends a passthrough period that is over).

        Args:
            now: monotonic time in seconds.
        """
        if not self.enhancing and now >= self._resume_at:
            self.enhancing = True
            self._enhancing_since = now
            log.info("CPU caught up: enhancing again")
        elif self.enhancing and now - self._enhancing_since > HEALTHY_RESET_S:
            self._backoff = 1
        return self.enhancing

    def missed(self, now: float, deadline_s: float, step_p99_s: float, recover_s: float) -> None:
        """The model missed its ``deadline_s`` (its hop passed through; ``step_p99_s`` is the usual step, for the
        warning); the ``MISSES_TO_TRIP``-th miss within ``MISS_WINDOW_S`` is an overload: pass audio through
        for ``recover_s`` times the backoff."""
        oldest = self._misses[self._next_miss]
        self._misses[self._next_miss] = now
        self._next_miss = (self._next_miss + 1) % len(self._misses)
        if now - oldest > MISS_WINDOW_S:
            return
        wait = recover_s * self._backoff
        self.enhancing = False
        self.trips += 1
        self._resume_at = now + wait
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)
        reason = f"the model missed its {1e3 * deadline_s:.1f} ms deadline (step p99 {1e3 * step_p99_s:.2f} ms)"
        self._warn.warn(f"overload: {reason}; passing audio through for {wait:.1f} s (overloads so far: {self.trips})")
