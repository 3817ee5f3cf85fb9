"""systemd's notification protocol (sd_notify) over $NOTIFY_SOCKET, written by hand with a datagram socket.

Without $NOTIFY_SOCKET (not started by systemd with Type=notify) every call is a no-op. The watchdog
is pinged at half of $WATCHDOG_USEC, and only when $WATCHDOG_PID (if set) is this process.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends READY=1, STATUS=..., WATCHDOG=1 and STOPPING=1 datagrams to the service manager."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if self._address else None
        if self._socket is not None:
            # the watchdog is pinged from the audio worker: a listener whose queue is full must never block it
            # (nor the shutdown); such a datagram is dropped instead
            self._socket.setblocking(False)
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        watchdog_pid = env.get("WATCHDOG_PID", "")
        ours = not watchdog_pid or watchdog_pid == str(os.getpid())
        self.watchdog_interval_s = int(watchdog_usec) / 2e6 if watchdog_usec.isdigit() and ours else None
        self._last_watchdog = 0.0
        self._failed = False

    @property
    def enabled(self) -> bool:
        """Whether a service manager is listening."""
        return self._socket is not None

    def send(self, *fields: str) -> None:
        """Send ``FIELD=value`` lines as one datagram without waiting; a failure (a full queue included) is
        logged once and never raised."""
        if self._socket is None:
            return
        try:
            self._socket.sendto("\n".join(fields).encode("utf-8"), self._address)
        except OSError as exc:
            if not self._failed:
                log.warning("cannot notify the service manager at %s: %s", self._address.lstrip("\0"), exc)
                self._failed = True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def watchdog(self) -> None:
        """Ping the watchdog if half its interval has passed since the last ping (cheap to call per hop)."""
        if self.watchdog_interval_s is None:
            return
        now = time.monotonic()
        if now - self._last_watchdog >= self.watchdog_interval_s:
            self._last_watchdog = now
            self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
