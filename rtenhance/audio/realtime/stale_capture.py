"""Captured audio that is too old to play: found after a stall and dropped at once.

A live stream has no use for seconds of old audio. ``StaleCapture`` watches the worker's passes: after a
gap longer than ``STALL_S`` (SIGSTOP, a suspend, a VM pause: the worker wakes at least every 50 ms) all but
the newest hop is dropped from whatever arrives in the next ``STALL_DRAIN_S`` (the server hands over what
it kept meanwhile), and at any time what waits beyond ``MAX_BACKLOG_S``. What it drops is counted
(``dropped_s``) for the stats, which warn about it.
"""

from __future__ import annotations

import math

import numpy as np

from rtenhance.audio.io.ring import SpscRing

MAX_BACKLOG_S = 0.5  # captured audio waiting beyond this is stale (the process stalled): dropped at once
STALL_S = 0.25  # a longer gap between the worker's passes means the process was stopped
STALL_DRAIN_S = 0.2  # after a stall, the server's backlog arrives within this: all but the newest hop dropped


class StaleCapture:
    """Drops stale input from a capture ring.

    Args:
        rate: the capture rate in Hz.
        channels: interleaved channels of the ring.
        keep_frames: frames of the newest input kept when stale input is dropped (one hop).

    Attributes:
        dropped_s: stale audio dropped since construction, in seconds.
    """

    def __init__(self, rate: int, channels: int, keep_frames: int) -> None:
        self.rate = rate
        self.channels = channels
        self.keep_frames = keep_frames
        self.dropped_s = 0.0
        self.restart()

    def restart(self) -> None:
        """A new session: no previous pass to measure a gap from."""
        self._last_pass = 0.0
        self._drain_until = 0.0

    def passed(self, now: float) -> None:
        """The worker makes a pass at ``now`` (time.monotonic() in s)."""
        if self._last_pass and now - self._last_pass > STALL_S:
            self._drain_until = now + STALL_DRAIN_S
        self._last_pass = now

    def recovering(self, now: float) -> bool:
        """Whether ``now`` is within the drain after a stall (what happens then is the stall's doing)."""
        return now < self._drain_until

    def drop(self, ring: SpscRing, available: int, scratch: np.ndarray, now: float) -> int:
        """Drop what is stale of the ``available`` frames in ``ring``; returns the frames left.

        Args:
            ring: the capture ring.
            available: frames it holds.
            scratch: (N,) float32 buffer to read dropped samples into (any size).
            now: time.monotonic() in s.
        """
        if available <= MAX_BACKLOG_S * self.rate and now >= self._drain_until:
            return available
        keep = min(available, self.keep_frames)
        drop = available - keep
        per_read = scratch.shape[0] // self.channels
        while drop > 0:
            n = min(drop, per_read)
            ring.read_into(scratch[: n * self.channels])
            drop -= n
        self.dropped_s += (available - keep) / self.rate
        return keep


def hop_frames(hop: int, source_rate: int, model_rate: int) -> int:
    """Capture frames that make one hop at the model rate."""
    return int(math.ceil(hop * source_rate / model_rate))
