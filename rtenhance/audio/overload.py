"""When the model runs and when it is skipped: the engine's response to a CPU that cannot keep up.

The model is skipped (passthrough, same delay, crossfaded by the STFT overlap) when a hop took longer
than its budget, or when the output ring is so low that a model hop would make playback run dry. After
``recover_s`` the model is tried again; while overloads repeat the wait doubles, up to ``MAX_BACKOFF``
times, and it falls back to ``recover_s`` after ``HEALTHY_RESET_S`` of enhancement without overload.
"""

from __future__ import annotations

import logging

from rtenhance.stats import RateLimitedWarning

log = logging.getLogger(__name__)

MAX_BACKOFF = 8  # longest wait is recover_s * MAX_BACKOFF
HEALTHY_RESET_S = 10.0  # enhancement without overload for this long forgets past overloads
WARN_PERIOD_S = 5.0  # at most one overload warning per this many seconds


class OverloadGuard:
    """Per-hop decision: run the model or pass through.

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
        self._warn = RateLimitedWarning(log, WARN_PERIOD_S)

    def before_hop(self, now: float, ring_s: float, low_water_s: float, recover_s: float) -> bool:
        """Decide for the next hop.

        Args:
            now: monotonic time in seconds.
            ring_s: audio left in the output ring, in seconds.
            low_water_s: a model hop started with less than this would let playback run dry.
            recover_s: configured passthrough time after an overload.

        Returns:
            True when the model may run.
        """
        if self.enhancing and ring_s < low_water_s:
            self._trip(now, f"output buffer down to {ring_s * 1e3:.1f} ms (needs {low_water_s * 1e3:.1f} ms)", recover_s)
        elif not self.enhancing and now >= self._resume_at:
            self.enhancing = True
            self._enhancing_since = now
            log.info("CPU caught up: enhancing again")
        return self.enhancing

    def after_hop(self, now: float, compute_s: float, budget_s: float, ran_model: bool, recover_s: float) -> None:
        """Account for a finished hop: a model hop over budget starts a passthrough period."""
        if ran_model and compute_s > budget_s:
            self._trip(now, f"hop took {compute_s * 1e3:.1f} ms (budget {budget_s * 1e3:.1f} ms)", recover_s)
        elif self.enhancing and now - self._enhancing_since > HEALTHY_RESET_S:
            self._backoff = 1

    def _trip(self, now: float, reason: str, recover_s: float) -> None:
        wait = recover_s * self._backoff
        self.enhancing = False
        self.trips += 1
        self._resume_at = now + wait
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)
        self._warn.warn(f"overload: {reason}; passing audio through for {wait:.1f} s (overloads so far: {self.trips})")
