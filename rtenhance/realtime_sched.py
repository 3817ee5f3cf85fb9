"""Real-time scheduling for the audio threads through rtkit (RealtimeKit), the way desktop audio gets it.

An unprivileged process may not make itself SCHED_RR; rtkit, a small system service on most desktops,
does it on request over the system D-Bus, within limits: a priority up to its ``MaxRealtimePriority``
and only for a process whose ``RLIMIT_RTTIME`` is set (a thread that runs longer than that without
sleeping gets SIGXCPU, so a runaway real-time thread cannot freeze the machine).

The request goes through ``busctl`` (part of systemd, present wherever rtkit is) with
``MakeThreadRealtimeWithPID``, so rtenhance needs no D-Bus library. Anything that fails (no busctl, no
system bus, no rtkit, a refusal) raises ``RealtimeUnavailable`` with the reason; the daemon then keeps
its nice level and says so.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import threading

RTKIT_SERVICE = "org.freedesktop.RealtimeKit1"
RTKIT_PATH = "/org/freedesktop/RealtimeKit1"
BUSCTL_TIMEOUT_S = 2.0
RTTIME_LIMIT_US = 200_000  # rtkit's default RTTimeUSecMax: the most a real-time thread may run without sleeping


class RealtimeUnavailable(RuntimeError):
    """rtkit cannot give real-time scheduling here; the message says why."""


def _busctl(*args: str) -> str:
    """Run ``busctl --system ARGS``; its output, or ``RealtimeUnavailable`` with the reason."""
    busctl = shutil.which("busctl")
    if busctl is None:
        raise RealtimeUnavailable("busctl (systemd) is not installed")
    try:
        done = subprocess.run([busctl, "--system", *args], capture_output=True, text=True, timeout=BUSCTL_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RealtimeUnavailable(f"busctl failed: {exc}") from exc
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise RealtimeUnavailable(lines[-1] if lines else f"busctl exited with status {done.returncode}")
    return done.stdout


def _rtkit_int(name: str) -> int:
    """An integer property of rtkit (``busctl get-property`` prints e.g. ``i 20``)."""
    out = _busctl("get-property", RTKIT_SERVICE, RTKIT_PATH, RTKIT_SERVICE, name).split()
    try:
        return int(out[-1])
    except (IndexError, ValueError) as exc:
        raise RealtimeUnavailable(f"unexpected rtkit {name}: {' '.join(out)!r}") from exc


def _limit_rttime(limit_us: int) -> None:
    """Set RLIMIT_RTTIME to at most ``limit_us`` (rtkit refuses processes without such a limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_RTTIME)
    capped = limit_us if hard == resource.RLIM_INFINITY else min(hard, limit_us)
    if soft == resource.RLIM_INFINITY or soft > capped:
        resource.setrlimit(resource.RLIMIT_RTTIME, (capped, capped if hard == resource.RLIM_INFINITY else hard))


def make_thread_realtime(tid: int | None = None) -> int:
    """Ask rtkit to run thread ``tid`` of this process (default: the calling thread) SCHED_RR at rtkit's
    highest allowed priority; threads it starts afterwards inherit that.

    Returns:
        The real-time priority granted.

    Raises:
        RealtimeUnavailable: no busctl, no system bus or rtkit, or rtkit refused; the message says which.
    """
    tid = threading.get_native_id() if tid is None else tid
    priority = _rtkit_int("MaxRealtimePriority")
    if priority < 1:
        raise RealtimeUnavailable(f"rtkit allows no real-time priority (MaxRealtimePriority {priority})")
    try:
        _limit_rttime(min(RTTIME_LIMIT_US, _rtkit_int("RTTimeUSecMax")))
    except (OSError, ValueError) as exc:
        raise RealtimeUnavailable(f"cannot set RLIMIT_RTTIME: {exc}") from exc
    _busctl("call", RTKIT_SERVICE, RTKIT_PATH, RTKIT_SERVICE, "MakeThreadRealtimeWithPID", "ttu",
            str(os.getpid()), str(tid), str(priority))
    return priority


def drop_realtime() -> None:
    """Put the calling thread back to normal scheduling (threads it already started keep theirs)."""
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
