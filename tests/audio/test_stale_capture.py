"""StaleCapture: what a server kept for us while the process was stopped is dropped, fresh audio is not.

The simulated capture writes, as each sample's value, the time it was captured (s), so what the worker
reads says how old it is.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from rtenhance.audio.io.ring import SpscRing
from rtenhance.audio.realtime.stale_capture import ARRIVAL_SLACK_S, MAX_BACKLOG_S, StaleCapture

RATE = 16000  # capture frames per s
HOP = 256  # frames the worker needs per hop
FRAGMENT = 160  # frames the server hands over at once (10 ms)
PASS_S = 0.004  # the worker's pass period while input is flowing, s
STALL_AT_S = 1.0
STALL_S = 2.0
MAX_FRESH_AGE_S = ARRIVAL_SLACK_S + 0.02  # what the worker reads once the backlog is gone is this fresh


def _run(deliver_x_realtime: float, end_s: float) -> tuple[StaleCapture, list[tuple[float, np.ndarray]], float]:
    """The server records in real time into a FIFO; the worker passes every PASS_S but not during the stall;
    after the stall the server hands its queue over at ``deliver_x_realtime`` times real time, a fragment at
    a time (before, and once the queue is short, as it is recorded). Returns the StaleCapture, what the
    worker read at each pass (time, capture times), and when the server's queue was last over a fragment."""
    stale = StaleCapture(RATE, 1, HOP)
    ring = SpscRing(4 * RATE)
    scratch = np.zeros(1024, dtype=np.float32)
    buffer = np.zeros(RATE, dtype=np.float32)
    server: deque[float] = deque()
    reads: list[tuple[float, np.ndarray]] = []
    recorded = 0
    queue_drained_at = 0.0
    now = 0.0
    while now < end_s:
        now += PASS_S
        while recorded < now * RATE:
            server.append(recorded / RATE)
            recorded += 1
        stopped = STALL_AT_S <= now < STALL_AT_S + STALL_S
        if stopped:
            continue
        handed = FRAGMENT * max(1, round(deliver_x_realtime * PASS_S * RATE / FRAGMENT))
        while len(server) >= FRAGMENT and handed > 0:
            ring.write(np.array([server.popleft() for _ in range(FRAGMENT)], dtype=np.float32))
            handed -= FRAGMENT
        if len(server) > FRAGMENT:
            queue_drained_at = now
        stale.passed(now)
        available = stale.drop(ring, ring.available, scratch, now)
        if available >= HOP:
            block = buffer[:available]
            stale.read(ring, block)
            reads.append((now, block.copy()))
    return stale, reads, queue_drained_at


def test_a_backlog_handed_over_slowly_after_a_stall_is_dropped_and_fresh_audio_kept():
    """Measured on PulseAudio after a 2 s SIGSTOP: the server's backlog came over 0.5-1.4 s, a fragment at a
    time, interleaved with the worker's reads; a look at the ring alone let 0.5-1.2 s of it through."""
    stale, reads, drained = _run(deliver_x_realtime=2.5, end_s=STALL_AT_S + STALL_S + 3.0)
    assert STALL_AT_S + STALL_S + 0.5 < drained < STALL_AT_S + STALL_S + 2.0, drained  # it did trickle
    assert abs(stale.dropped_s - STALL_S) < 0.05, stale.dropped_s
    resumed = STALL_AT_S + STALL_S
    taken = sum(block.shape[0] for t, block in reads if t >= resumed)
    assert taken <= (reads[-1][0] - resumed + ARRIVAL_SLACK_S) * RATE + FRAGMENT  # not ahead of the wall clock
    ages = [t - float(block.min()) for t, block in reads if t > drained + 0.1]
    assert ages and max(ages) < MAX_FRESH_AGE_S, max(ages)
    assert not stale.recovering(reads[-1][0])


def test_audio_delivered_in_real_time_is_never_dropped():
    stale, reads, _ = _run(deliver_x_realtime=1.0, end_s=STALL_AT_S - PASS_S)
    assert stale.dropped_s == 0.0
    assert sum(block.shape[0] for _, block in reads) >= (STALL_AT_S - 0.05) * RATE


def test_a_backlog_in_the_ring_beyond_its_limit_is_dropped_without_a_stall():
    stale = StaleCapture(RATE, 1, HOP)
    ring = SpscRing(4 * RATE)
    frames = int(MAX_BACKLOG_S * RATE) + 1000
    ring.write(np.arange(frames, dtype=np.float32))
    left = stale.drop(ring, ring.available, np.zeros(300, dtype=np.float32), 1.0)
    assert left == HOP and ring.available == HOP
    out = np.zeros(HOP, dtype=np.float32)
    stale.read(ring, out)
    assert out[0] == frames - HOP  # the newest hop is what is kept
    assert abs(stale.dropped_s - (frames - HOP) / RATE) < 1e-9
