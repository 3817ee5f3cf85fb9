"""rtkit requests: the D-Bus call busctl makes, the RLIMIT_RTTIME rtkit requires, and a clear reason when
rtkit is not there (the daemon then keeps its nice level and says so)."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rtenhance import realtime_sched
from rtenhance.realtime_sched import RealtimeUnavailable, make_thread_realtime

FAKE_BUSCTL = """#!/bin/sh
echo "$@" >> "{log}"
case "$*" in
  *get-property*MaxRealtimePriority*) echo "i {priority}" ;;
  *get-property*RTTimeUSecMax*) echo "x 200000" ;;
  *call*) {call} ;;
esac
"""


def _fake_busctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, priority: int = 20, call: str = "exit 0") -> Path:
    log = tmp_path / "busctl.log"
    script = tmp_path / "bin" / "busctl"
    script.parent.mkdir()
    script.write_text(FAKE_BUSCTL.format(log=log, priority=priority, call=call))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{script.parent}:{os.environ['PATH']}")
    return log


def test_request_names_this_thread_and_sets_the_rttime_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = _fake_busctl(tmp_path, monkeypatch)
    limits: list[tuple[int, int]] = []
    monkeypatch.setattr(realtime_sched.resource, "setrlimit", lambda _which, limit: limits.append(limit))
    monkeypatch.setattr(realtime_sched.resource, "getrlimit",
                        lambda _which: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert make_thread_realtime() == 20
    call = log.read_text().splitlines()[-1].split()
    assert call[:2] == ["--system", "call"] and "MakeThreadRealtimeWithPID" in call
    assert call[-3:] == [str(os.getpid()), str(threading.get_native_id()), "20"]
    assert limits == [(200_000, 200_000)]


@pytest.mark.parametrize("call, reason", [
    ("echo 'Call failed: Operation not permitted' >&2; exit 1", "Operation not permitted"),
    ("exit 3", "status 3"),
])
def test_refusal_gives_the_reason(call: str, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_busctl(tmp_path, monkeypatch, call=call)
    monkeypatch.setattr(realtime_sched.resource, "setrlimit", lambda *_args: None)
    with pytest.raises(RealtimeUnavailable, match=reason):
        make_thread_realtime()


def test_no_priority_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_busctl(tmp_path, monkeypatch, priority=0)
    with pytest.raises(RealtimeUnavailable, match="no real-time priority"):
        make_thread_realtime()


def test_without_busctl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RealtimeUnavailable, match="busctl"):
        make_thread_realtime()


def test_audio_threads_say_which_scheduling_they_got(tmp_path: Path) -> None:
    """A thread asks for SCHED_FIFO, else rtkit, else keeps its nice level; the outcome is logged once, and
    asking is never fatal."""
    code = ("import logging, os, sys, threading; logging.basicConfig(level=logging.INFO, stream=sys.stdout)\n"
            "from rtenhance.audio.realtime.thread_priority import promote\n"
            "tid = threading.get_native_id()\n"
            "print('granted' if promote(tid, 'test') else 'not granted')\n"
            "promote(tid, 'test')\n"
            "print('unknown', promote(0, 'test'))\n"
            "print('policy', os.sched_getscheduler(0))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    lines = done.stdout.splitlines()
    granted = lines[-3] == "granted"
    said = [line for line in lines if "test thread" in line]
    assert len(said) == 1, done.stdout  # logged once per thread name
    if granted:
        assert "real-time scheduling" in said[0] and lines[-1] != f"policy {os.SCHED_OTHER}", done.stdout
    else:
        assert "keeps normal scheduling" in said[0] and lines[-1] == f"policy {os.SCHED_OTHER}", done.stdout
    assert "unknown False" in done.stdout
