"""Whether the model runs for a hop, and why not when it does not: skips counted by cause.

The model step costs about 0.1 ms of a 16 ms hop, so the model is skipped only for a reason:
- ``bypass``: the user asked for the noisy signal (SIGUSR1, ``enhance.bypass``, no attenuation);
- ``overload``: a step missed its deadline (that hop passed through); repeated misses are an overload,
  and ``OverloadGuard`` passes audio through while the CPU catches up;
- ``ring_low``: the output ring still plays for less than the step's median time, so waiting for the
  model would most likely let playback run dry, and the step is long enough for skipping it to matter (a
  median of at least ``RING_LOW_MIN_STEP_S``: a slow backend or CPU). The median, not the p99: on a busy
  machine the p99 measures the preemptions of the model thread (a 0.1 ms step with a 2.5 ms p99 on CI).
  A sub-millisecond step is never skipped for this: the sound server takes audio in fragments of several
  ms, so finishing it a fraction of a ms sooner saves no underflow, while a skipped hop resets the model's
  state. A ring that has already run dry is no reason either: the hop is late whatever runs.
A step's deadline is ``OVERLOAD_FACTOR`` times its p99 or ``RING_SHARE`` of the time the output ring still
plays, whichever is longer (at least ``MIN_DEADLINE_S``): only a step far slower than usual is a miss (a
busy machine preempts the model thread for a few ms now and then), and waiting for it never eats the
whole ring (waiting as long as the ring still played left the rest of the hop too late, and playback ran
dry at every miss). Until ``MIN_STEPS``
steps have been timed (the first ones are slow: cold caches, page faults) the p99 is not trusted: no
``ring_low`` skip, and a step may take up to a hop (``START_DEADLINE_S``) or what the ring holds.
Both percentiles are recomputed every ``P99_EVERY_HOPS`` steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

STEP_HISTORY = 256  # model step times kept for the p99 (4 s of hops)
P99_EVERY_HOPS = 32  # the p99 is recomputed this often (0.5 s)
OVERLOAD_FACTOR = 4.0  # a step this many times its p99 (and past the ring) is a miss
MIN_DEADLINE_S = 0.002  # the shortest wait for a step, in s
RING_SHARE = 0.5  # a step may use this share of what the output ring still plays
MIN_STEPS = 64  # steps timed before their p99 is used (1 s of hops)
RING_LOW_MIN_STEP_S = 0.002  # a step with a shorter median is never skipped for a low ring
START_DEADLINE_S = 0.016  # the wait for a step until then: one hop


@dataclass
class SkipCounts:
    """Hops that did not run the model since start, by cause."""

    ring_low: int = 0
    overload: int = 0
    bypass: int = 0

    @property
    def unwanted(self) -> int:
        """Skips the user did not ask for (``ring_low`` + ``overload``)."""
        return self.ring_low + self.overload


class StepTimes:
    """The model's recent step times, their median and p99 in s; ``add`` never allocates."""

    def __init__(self) -> None:
        self._values = np.zeros(STEP_HISTORY, dtype=np.float64)
        self._scratch = np.zeros(STEP_HISTORY, dtype=np.float64)
        self._count = 0
        self.p50_s = 0.0
        self.p99_s = 0.0

    @property
    def ready(self) -> bool:
        """Enough steps have been timed for their p99 to mean something."""
        return self._count >= MIN_STEPS

    def add(self, seconds: float) -> None:
        """Record one finished step's duration in seconds (NaN is ignored)."""
        if math.isnan(seconds):
            return
        self._values[self._count % STEP_HISTORY] = seconds
        self._count += 1
        if self._count % P99_EVERY_HOPS == 0 or self._count <= P99_EVERY_HOPS:
            n = min(self._count, STEP_HISTORY)
            scratch = self._scratch[:n]
            scratch[:] = self._values[:n]
            k50, k99 = (n - 1) // 2, min(n - 1, int(math.ceil(0.99 * n)) - 1)
            scratch.partition(k99)
            self.p99_s = float(scratch[k99])
            if k50 < k99:  # the k99 smallest come first, the median among them
                scratch[:k99].partition(k50)
            self.p50_s = float(scratch[k50])


def ring_low(ring_s: float, steps: StepTimes) -> bool:
    """Whether the output ring, still playing for ``ring_s`` s (> 0), runs dry before a median step ends."""
    return steps.ready and steps.p50_s >= RING_LOW_MIN_STEP_S and 0.0 < ring_s < steps.p50_s


def step_deadline_s(ring_s: float, steps: StepTimes) -> float:
    """How long to wait for the model, in s: a few usual steps or half the ring (at start, up to a hop)."""
    if not steps.ready:
        return max(min(ring_s, START_DEADLINE_S), MIN_DEADLINE_S)
    return max(OVERLOAD_FACTOR * steps.p99_s, RING_SHARE * ring_s, MIN_DEADLINE_S)
