"""How much audio the output ring holds, and how the engine keeps it there: an adaptive jitter buffer.

Each hop the worker reads the output ring's depth just before it writes. Between two writes only the
playback side takes from the ring, so that reading is the lowest the ring got since the previous hop: it
is 0 when playback ran dry. ``PlayoutController`` groups the readings in blocks of about half a second
and keeps, per block, their mean and their minimum:

- the *jitter span* is the largest (mean - minimum) of the recent blocks: how far below its mean the ring
  dips as capture arrives in bursts and the worker wakes late (it rises at once, and falls only when the
  larger dips have left the window, as a jitter buffer does);
- the ring's mean is held at span + headroom + margin (or the user's latency target, when that is more),
  so its lowest point stays ``headroom_s`` above empty: the delay is the smallest the observed timing allows;
- each underflow (a dip deeper than any seen in the window) adds to a safety margin that decays slowly,
  as a jitter buffer's peak detector does: timing worse than the window showed is expected again;
- a PI controller turns the error of the block mean into a resampling ratio (``ratio``, output samples per
  input sample) for ``DriftResampler``: the integral term settles at the clocks' mismatch (``drift_ppm``),
  the proportional one removes what a change of the target or a burst left over, a few ms per second at most;
- an error that no ratio can absorb quickly (a stalled process, a device that stopped) is dropped at once
  from the next chunks (``take_drop``), counted and logged by the engine.

Times are in seconds; the controller never touches audio and never allocates after construction.
"""

from __future__ import annotations

import math

import numpy as np

BLOCK_S = 0.5  # readings per control update
SPAN_WINDOW_BLOCKS = 20  # the jitter span is the largest of this many recent blocks (10 s)
KP_PER_S = 0.3  # ratio change per second of error: a 10 ms error is worked off at 3 ms/s
KI_PER_S2 = 0.01  # integral gain: a 1000 ppm clock mismatch is taken up in about 30 s, within 3 ms
MAX_CORRECTION = 0.005  # the proportional ratio change is capped at 0.5 % (5 ms per second)
MAX_DRIFT = 0.005  # the integral (the clocks' mismatch) is capped at 0.5 %: real clocks differ by < 0.05 %
INTEGRATE_WITHIN_S = 0.003  # the integral learns the drift only from errors this small (no wind-up)
UNDERFLOW_MARGIN_S = 0.004  # each playback underflow adds this to the margin...
MAX_MARGIN_S = 0.04  # ...up to this
MARGIN_DECAY_PER_S = 0.0002  # and the margin shrinks by this per second without one (4 ms in 20 s)
JUMP_S = 0.08  # a block mean this far above its target is dropped at once instead of resampled away


class PlayoutController:
    """The output ring's target depth, the drift ratio and the drops that hold it.

    Args:
        hop_s: the engine's hop duration in seconds (one reading per hop).
        headroom_s: how far above empty the ring's lowest point is held, in seconds.

    Attributes:
        headroom_s: see Args.
        floor_s: an extra floor for the block mean (from the user's latency target), in seconds.
        dropped_s: total audio dropped at once so far, in seconds.
    """

    def __init__(self, hop_s: float, headroom_s: float) -> None:
        self.headroom_s = headroom_s
        self.floor_s = 0.0
        self.dropped_s = 0.0
        self.margin_s = 0.0
        self._block_hops = max(1, round(BLOCK_S / hop_s))
        self._block_s = self._block_hops * hop_s
        self._spans = np.zeros(SPAN_WINDOW_BLOCKS, dtype=np.float64)
        self._drift = 0.0
        self.restart()

    def restart(self) -> None:
        """Forget the readings (new streams); the clocks' mismatch and the drop total are kept."""
        self._spans[:] = 0.0
        self._blocks = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf
        self._count = 0
        self._mean_s = math.nan
        self._correction = 0.0
        self._pending_drop_s = 0.0

    @property
    def span_s(self) -> float:
        """The jitter span: the deepest dip below the mean among the recent blocks, in seconds."""
        return float(self._spans.max())

    @property
    def target_s(self) -> float:
        """The block mean the controller holds, in seconds."""
        return max(self.span_s + self.headroom_s + self.margin_s, self.floor_s)

    @property
    def mean_s(self) -> float:
        """The latest block's mean depth in seconds (NaN before the first block)."""
        return self._mean_s

    @property
    def ratio(self) -> float:
        """Output samples per input sample for the next chunk."""
        return 1.0 + self._drift + self._correction

    @property
    def drift_ppm(self) -> float:
        """The clocks' mismatch the integral term has settled at, in parts per million."""
        return 1e6 * self._drift

    def observe(self, depth_s: float) -> None:
        """Feed the output ring's depth read just before a hop's write, in seconds."""
        self._sum += depth_s
        self._min = min(self._min, depth_s)
        self._max = max(self._max, depth_s)
        self._count += 1
        if self._count == self._block_hops:
            self._end_block(self._sum / self._count, self._min, self._max, depth_s)
            self._sum, self._min, self._max, self._count = 0.0, math.inf, -math.inf, 0

    def underflowed(self) -> None:
        """Playback ran dry since the previous hop: expect timing that bad again (raises the margin)."""
        self.margin_s = min(MAX_MARGIN_S, self.margin_s + UNDERFLOW_MARGIN_S)

    def take_drop(self) -> float:
        """Seconds of output to drop now (0 almost always); the caller drops them and reports them back
        with ``dropped``."""
        return self._pending_drop_s

    def dropped(self, seconds: float) -> None:
        """``seconds`` of output were dropped to honour ``take_drop``."""
        self._pending_drop_s = max(0.0, self._pending_drop_s - seconds)
        self.dropped_s += seconds

    def _end_block(self, mean_s: float, min_s: float, max_s: float, last_s: float) -> None:
        if max_s - min_s < JUMP_S:  # a block with a step in it (a stall) says nothing about jitter
            self._spans[self._blocks % SPAN_WINDOW_BLOCKS] = mean_s - min_s
            self._blocks += 1
        self._mean_s = mean_s
        self.margin_s = max(0.0, self.margin_s - MARGIN_DECAY_PER_S * self._block_s)
        error = mean_s - self.target_s
        self._pending_drop_s = 0.0
        if error > JUMP_S:
            # far too much queued (the process or a device stalled): drop what the latest reading has in excess
            self._pending_drop_s = max(0.0, last_s - self.target_s)
            self._correction = 0.0
            return
        if abs(error) < INTEGRATE_WITHIN_S:
            self._drift = min(max(self._drift - KI_PER_S2 * error * self._block_s, -MAX_DRIFT), MAX_DRIFT)
        self._correction = min(max(-KP_PER_S * error, -MAX_CORRECTION), MAX_CORRECTION)
