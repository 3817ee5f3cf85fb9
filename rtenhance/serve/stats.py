"""Counters and step timings of ``rtenhance serve``, reported to the log from the event loop (never from
the worker step)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from rtenhance.serve.session import Session

log = logging.getLogger("rtenhance.serve")

US_PER_S = 1e6
MS_PER_S = 1e3


@dataclass
class ServeStats:
    """Totals since start, and the step times since the last report.

    Attributes:
        skipped: hops skipped because a client's audio was late (all clients).
        passthrough: hops passed through unprocessed because a client's backlog was too long.
        late_ticks: ticks that started after their deadline (the previous step ran long).
        refused: clients refused before streaming (bad hello, server full).
        protocol_errors: clients closed for breaking the protocol while streaming.
        slow_readers: clients closed for leaving too much output unread.
        abrupt: clients whose connection ended without a closing handshake.
        hops: hops stepped since start.
    """

    skipped: int = 0
    passthrough: int = 0
    late_ticks: int = 0
    refused: int = 0
    protocol_errors: int = 0
    slow_readers: int = 0
    abrupt: int = 0
    hops: int = 0
    _step_s: list[float] = field(default_factory=list)
    _step_hops: int = 0

    def add_step(self, seconds: float, streams: int) -> None:
        """One batched step of ``streams`` hops took ``seconds``."""
        self._step_s.append(seconds)
        self._step_hops += streams
        self.hops += streams

    def log_totals(self, streams: int) -> None:
        """One INFO line: streams, step time p50/p99 and CPU per stream-hop since the last call, and totals."""
        if self._step_s:
            times = np.array(self._step_s)
            p50, p99 = np.percentile(times, [50, 99]) * MS_PER_S
            per_hop = times.sum() / self._step_hops * US_PER_S
            timing = f"step p50 {p50:.2f} ms, p99 {p99:.2f} ms, {per_hop:.1f} us per stream-hop"
        else:
            timing = "no steps"
        log.info("%d streams; %s; hops %d, skipped %d, passthrough %d, late ticks %d; refused %d, protocol errors "
                 "%d, slow readers %d, abrupt disconnects %d", streams, timing, self.hops, self.skipped,
                 self.passthrough, self.late_ticks, self.refused, self.protocol_errors, self.slow_readers, self.abrupt)
        self._step_s, self._step_hops = [], 0

    def log_session(self, session: Session, why: str, now: float) -> None:
        """One INFO line for a stream that ended: how long, its hop counts, and why it ended."""
        c = session.counts
        log.info("stream %d ended after %.1f s (%s): %d hops enhanced, %d skipped, %d passed through",
                 session.session_id, now - session.started_at, why, c.enhanced, c.skipped, c.passthrough)
