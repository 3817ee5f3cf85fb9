"""Keep the kernel's khugepaged out of the daemon's memory.

With transparent huge pages (``/sys/kernel/mm/transparent_hugepage/enabled`` at ``always``, or at ``madvise``,
where NumPy asks for them on large arrays), the kernel thread khugepaged wakes every 10 s
(``khugepaged/scan_sleep_millisecs``) and collapses a process's small pages into huge ones. On a kernel
without full preemption it does so in stretches of about 5 ms with no preemption point, and a real-time
thread woken on its CPU waits until it yields. Measured with ``perf sched`` while the daemon ran on
PipeWire: rtenhance's audio thread and pipewire-pulse's waited 5.0-5.1 ms behind it four times within
20 ms, and rtenhance's playback missed one to five graph cycles every 10.24 s (khugepaged's sleep and its
scan), from about 6.5 s after the daemon started: the expected failures of the PipeWire live cells.
``PR_SET_THP_DISABLE`` takes this process out of khugepaged's scans (and of huge pages; its memory is a
few hundred MB at most, the TLB gain is nothing to an audio loop); the setting is per process, needs no
privilege and is inherited by the threads and children.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

PR_SET_THP_DISABLE = 41  # <linux/prctl.h>
PR_GET_THP_DISABLE = 42


def disable_huge_pages() -> bool:
    """Take this process out of transparent huge pages; True when the kernel took it (or had already).

    Logs why not otherwise (a kernel before 3.15, or not Linux) at debug level: the daemon runs on.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError) as exc:
        log.debug("transparent huge pages left as they are (no prctl: %s)", exc)
        return False
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    if prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0:
        log.debug("transparent huge pages left as they are (prctl: %s)", os.strerror(ctypes.get_errno()))
        return False
    return prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1
