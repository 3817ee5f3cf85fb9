"""sd_notify by hand: datagrams to $NOTIFY_SOCKET (path or abstract), watchdog pacing, no-op without it."""

from __future__ import annotations

import os
import socket
import time

import pytest

from rtenhance.notify import SystemdNotifier


def _listen(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(1.0)
    return sock


@pytest.mark.parametrize("abstract", [False, True])
def test_ready_status_watchdog_stopping(tmp_path, abstract):
    name = f"@rtenhance-test-{os.getpid()}" if abstract else str(tmp_path / "notify.sock")
    listener = _listen("\0" + name[1:] if abstract else name)
    notifier = SystemdNotifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "200000"})
    try:
        notifier.ready("running")
        notifier.watchdog()
        notifier.watchdog()  # within half the interval: not sent
        time.sleep(0.11)
        notifier.watchdog()
        notifier.stopping()
        got = [listener.recv(4096).decode() for _ in range(4)]
    finally:
        notifier.close()
        listener.close()
    assert got == ["READY=1\nSTATUS=running", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]


def test_without_socket_or_for_another_pid_nothing_is_sent():
    quiet = SystemdNotifier({})
    assert not quiet.enabled and quiet.watchdog_interval_s is None
    quiet.ready("x")
    other = SystemdNotifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.watchdog_interval_s is None


def test_a_listener_that_does_not_read_never_blocks_the_sender(tmp_path):
    listener = _listen(str(tmp_path / "notify.sock"))  # never read: its queue fills after a few datagrams
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    try:
        started = time.monotonic()
        for _ in range(1000):
            notifier.status("x" * 100)
        notifier.stopping()
        assert time.monotonic() - started < 1.0  # blocking sends would wait forever
    finally:
        notifier.close()
        listener.close()
