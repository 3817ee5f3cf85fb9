"""Captured audio that is too old to play: found after a stall and dropped at once.

A live stream has no use for seconds of old audio. ``StaleCapture`` watches the worker's passes: after a
gap longer than ``STALL_S`` (SIGSTOP, a suspend, a VM pause: the worker wakes at least every 50 ms) it
counts what the capture delivers against the wall clock. A device delivers in real time, so what arrives
beyond the time since the stall (plus ``ARRIVAL_SLACK_S`` of fragment timing) is what the server kept
meanwhile, and is dropped. The server hands that backlog over as fast as our capture thread reads it,
a fragment at a time, interleaved with the worker's reads: measured on PulseAudio after a 2 s SIGSTOP,
0.5-1.2 s of it came after the first 20 ms in pieces of under one hop each, which a look at the ring alone
took for fresh audio (it went through the model and the output ring then cut 0.5-1.2 s in 16 ms steps).
The count ends ``STALL_DRAIN_S`` after the last excess. At any time, what waits in the ring beyond
``MAX_BACKLOG_S`` is dropped too. What it drops is counted (``dropped_s``) for the stats, which warn about it.
"""

from __future__ import annotations

import math

import numpy as np

from rtenhance.audio.io.ring import SpscRing

MAX_BACKLOG_S = 0.5  # captured audio waiting beyond this is stale (the process stalled): dropped at once
STALL_S = 0.25  # a longer gap between the worker's passes means the process was stopped
STALL_DRAIN_S = 0.2  # after a stall, the count of arrivals goes on until this long after the last excess
ARRIVAL_SLACK_S = 0.03  # a device may deliver this much ahead of the wall clock (a fragment or two early)


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
        self._stalled_at = 0.0  # time.monotonic() of the pass that found the latest stall
        self._kept = 0  # frames delivered since the stall and not dropped: read by the worker or in the ring
        self._last_available = 0  # frames in the ring after the previous ``drop``
        self._read = 0  # frames ``read`` took from the ring since the previous ``drop``

    def passed(self, now: float) -> None:
        """The worker makes a pass at ``now`` (time.monotonic() in s)."""
        if self._last_pass and now - self._last_pass > STALL_S:
            self._drain_until = now + STALL_DRAIN_S
            self._stalled_at = now
            self._kept = 0
        self._last_pass = now

    def recovering(self, now: float) -> bool:
        """Whether ``now`` is within the drain after a stall (what happens then is the stall's doing)."""
        return now < self._drain_until

    def read(self, ring: SpscRing, out: np.ndarray) -> None:
        """Fill ``out`` ((frames * channels,) float32) from ``ring``: the worker's reads, counted."""
        ring.read_into(out)
        self._read += out.shape[0] // self.channels

    def drop(self, ring: SpscRing, available: int, scratch: np.ndarray, now: float) -> int:
        """Drop what is stale of the ``available`` frames in ``ring``; returns the frames left.

        Args:
            ring: the capture ring.
            available: frames it holds.
            scratch: (N,) float32 buffer to read dropped samples into (any size).
            now: time.monotonic() in s.
        """
        drop = 0
        if available > MAX_BACKLOG_S * self.rate:
            drop = available - self.keep_frames
        if now < self._drain_until:
            self._kept += self._read + available - self._last_available
            allowed = (now - self._stalled_at + ARRIVAL_SLACK_S) * self.rate
            drop = min(available, max(drop, math.ceil(self._kept - allowed)))
        if drop > 0:
            self._skip(ring, drop, scratch)
            self._kept -= drop
            if now < self._drain_until:
                self._drain_until = now + STALL_DRAIN_S
        self._last_available = available - drop
        self._read = 0
        return available - drop

    def _skip(self, ring: SpscRing, frames: int, scratch: np.ndarray) -> None:
        """Read ``frames`` frames out of ``ring`` into ``scratch`` and count them as dropped."""
        per_read = scratch.shape[0] // self.channels
        left = frames
        while left > 0:
            n = min(left, per_read)
            ring.read_into(scratch[: n * self.channels])
            left -= n
        self.dropped_s += frames / self.rate


def hop_frames(hop: int, source_rate: int, model_rate: int) -> int:
    """Capture frames that make one hop at the model rate."""
    return int(math.ceil(hop * source_rate / model_rate))
