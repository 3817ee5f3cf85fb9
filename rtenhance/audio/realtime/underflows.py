"""Playback underflows by cause, per session and since start, leaving out each session's start-up.

A sink counts every underflow (``Sink.underflows``) and the part where its ring itself ran dry
(``Sink.ring_underflows``); the rest are xruns of the device or server while the ring held audio. Counting
starts at a session's first hop: before it the ring runs dry while capture starts, which is no glitch.
Plain integers only: ``hop`` runs on the worker each hop and allocates nothing.
"""

from __future__ import annotations

NONE, FIRST, RING, SERVER = 0, 1, 2, 3  # what ``hop`` saw since the previous hop


class UnderflowTally:
    """The sink's counters at the session's first hop, at the previous hop, and the earlier sessions' totals."""

    def __init__(self) -> None:
        self._base: tuple[int, int] | None = None  # (underflows, ring's part) at the session's first hop
        self._seen = (0, 0, 0)  # the same, and the cycles the server ran without the sink, at the previous hop
        self._before = (0, 0)  # (underflows, the server's part) of earlier sessions

    def hop(self, total: int, dry: int, missed: int) -> int:
        """Read the sink's counters at a hop (``missed``: its ``gap_samples``): FIRST (the session's first
        hop), RING (the ring ran dry since the previous hop), SERVER (only the device or server did, or the
        server ran cycles without the sink: the same silence played while the ring held audio, if the sink did
        not wait for it, though only counted as missed, not as an underflow), else NONE."""
        seen, self._seen = self._seen, (total, dry, missed)
        if self._base is None:
            self._base = (total, dry)
            return FIRST
        if dry != seen[1]:
            return RING
        return SERVER if total != seen[0] or missed != seen[2] else NONE

    def totals(self, total: int, dry: int) -> tuple[int, int]:
        """(underflows, the server's part) since start, given the sink's current counters."""
        before, before_server = self._before
        if self._base is None:
            return before, before_server
        grown = total - self._base[0]
        return before + grown, before_server + grown - (dry - self._base[1])

    def end_session(self, total: int, dry: int) -> None:
        """The session ends (its sink's counters restart with the next): keep its totals."""
        self._before = self.totals(total, dry)
        self._base = None
