"""Real-time scheduling for the threads that move audio to and from the sound server.

The libpulse main-loop thread of ``native_pulse`` answers the server's requests for playback audio; if it
wakes late the server runs dry and plays silence, whatever rtenhance has queued. ``promote`` gives such a
thread ``SCHED_FIFO`` at a low real-time priority when the system allows it (root, CAP_SYS_NICE or an
RLIMIT_RTPRIO, as audio groups usually grant), else asks rtkit (``rtenhance.realtime_sched``, the desktop's
way for unprivileged programs), else leaves it to its nice level; either way the outcome is logged once
per process. The thread's work per wake-up is a memcpy of a few ms of audio, so a real-time
priority cannot starve the system; the worker (one hop of DSP per 16 ms, well under a millisecond) gets
a lower real-time priority than the I/O thread; the model thread, started by the worker, inherits it (a
step takes well under a millisecond of its 16 ms hop).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from rtenhance.realtime_sched import RealtimeUnavailable, make_thread_realtime

log = logging.getLogger(__name__)

PRIORITY = 10  # SCHED_FIFO priority: above normal threads, well below the sound server's own (PipeWire: 88)
FIRST_CYCLE_WAIT_S = 0.5  # promote_when_running waits this long at most for the thread to name itself
THREAD_POLL_S = 0.005
_reported: set[str] = set()


def promote(thread_id: int, what: str, priority: int = PRIORITY) -> bool:
    """Ask for ``SCHED_FIFO`` at ``priority`` for the kernel thread ``thread_id``; True when granted.

    Args:
        thread_id: the thread's kernel id (0: unknown, nothing is done).
        what: the thread's name for the log line.
        priority: the SCHED_FIFO priority (1..99).
    """
    if thread_id <= 0:
        return False
    try:
        os.sched_setscheduler(thread_id, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        try:
            granted = make_thread_realtime(thread_id)
        except RealtimeUnavailable as refused:
            _report(what, f"{what} thread keeps normal scheduling (real-time: {exc.strerror}; rtkit: {refused})")
            return False
        _report(what, f"{what} thread runs with real-time scheduling from rtkit (SCHED_RR {granted})")
        return True
    _report(what, f"{what} thread runs with real-time scheduling (SCHED_FIFO {priority})")
    return True


def promote_when_running(thread_id: Callable[[], int], what: str, priority: int = PRIORITY) -> bool:
    """``promote`` a thread that names itself only once audio moves (PortAudio's callback thread, PipeWire's
    data thread: its kernel id is 0 until the first callback or graph cycle), waiting up to
    FIRST_CYCLE_WAIT_S for ``thread_id()`` to turn non-zero; True when granted.

    Such a thread otherwise keeps the scheduling of whichever thread created it: PipeWire's data thread
    ran at the worker's priority, where a burst of hops on both cores kept it from its graph cycle.
    """
    deadline = time.monotonic() + FIRST_CYCLE_WAIT_S
    tid = thread_id()
    while not tid and time.monotonic() < deadline:
        time.sleep(THREAD_POLL_S)
        tid = thread_id()
    return promote(tid, what, priority)


def _report(what: str, message: str) -> None:
    if what not in _reported:
        _reported.add(what)
        log.info("%s", message)
