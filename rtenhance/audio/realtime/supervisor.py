"""Device supervision: open both ends, notice faults, close, and retry with backoff until stopped.

The ``Supervisor`` owns the life cycle of the engine's two ends; the hop loop (``Engine``) only moves audio
while both are open. A failed open or a fault while running is logged once per loss, counted, and retried
after ``devices.retry_initial_s`` doubling up to ``devices.retry_max_s``; the return of the devices is
logged with how long they were gone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from rtenhance.audio.io.devices import DeviceError, refind
from rtenhance.audio.io.ends import Sink, Source
from rtenhance.audio.io.pulse import PresenceWatch
from rtenhance.audio.io.streams import Capture, Playback, reinitialize_portaudio
from rtenhance.runtime_config import DevicesConfig

log = logging.getLogger(__name__)

RETRY_POLL_S = 0.1  # while waiting to reopen a device, stop and the watchdog are served this often


class Supervisor:
    """Opens, watches and reopens the two ends.

    Args:
        source: where audio comes from (not yet open).
        sink: where audio goes (not yet open).
        watch: presence of named pulse devices, or None.
        heartbeat: called while waiting (the systemd watchdog).
        stop: set when the engine is asked to stop.

    Attributes:
        device_errors: device losses and failed opens since start (one per loss).
    """

    def __init__(self, source: Source, sink: Sink, watch: PresenceWatch | None, heartbeat: Callable[[], None],
                 stop: threading.Event) -> None:
        self.source = source
        self.sink = sink
        self.watch = watch
        self.device_errors = 0
        self._heartbeat = heartbeat
        self._stop = stop
        self._lost_since: float | None = None

    def open_until_ready(self, devices: Callable[[], DevicesConfig], prefill: Callable[[], int],
                         on_waiting: Callable[[], None]) -> bool:
        """Open and start both ends, retrying with backoff; False when stopped first.

        Args:
            devices: the current retry settings (they may be reloaded while waiting).
            prefill: silence to queue in the sink before it starts, in samples (asked after both are open).
            on_waiting: called when an attempt failed (the engine shows "reconnecting").
        """
        backoff = devices().retry_initial_s
        while not self._stop.is_set():
            try:
                self._open(prefill)
            except DeviceError as exc:
                if self._lost_since is None:
                    self._lost_since = time.monotonic()
                    self.device_errors += 1
                    log.warning("audio device unavailable: %s; retrying", exc)
                on_waiting()
                self._wait(backoff)
                backoff = min(2 * backoff, devices().retry_max_s)
                continue
            if self._lost_since is not None:
                log.info("audio device back after %.1f s: resumed", time.monotonic() - self._lost_since)
            self._lost_since = None
            return True
        return False

    def fault(self, stall_s: float) -> str | None:
        """Why audio cannot go on (a stalled or failed end, a watched device gone), or None."""
        return self.source.fault(stall_s) or self.sink.fault(stall_s) or (self.watch.missing if self.watch else None)

    def lost(self, fault: str) -> None:
        """A fault ended the session: close the devices, count and log it once."""
        self.close_devices()
        self._lost_since = time.monotonic()
        self.device_errors += 1
        log.warning("audio device lost: %s; retrying", fault)

    def close_devices(self) -> None:
        """Close the device ends (file ends stay open for the whole run)."""
        for end in (self.source, self.sink):
            if end.device:
                end.close()

    def close_all(self) -> None:
        """Close both ends for good."""
        for end in (self.source, self.sink):
            end.close()

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._heartbeat()
            self._stop.wait(min(RETRY_POLL_S, max(0.0, deadline - time.monotonic())))

    def _open(self, prefill: Callable[[], int]) -> None:
        if self.watch is not None:
            self.watch.refresh()
            if self.watch.missing:
                raise DeviceError(self.watch.missing)
        portaudio = [end for end in (self.source, self.sink) if isinstance(end, (Capture, Playback))]
        if self.device_errors and portaudio:
            reinitialize_portaudio()
            for end in portaudio:
                end.endpoint = refind(end.endpoint)
        try:
            self.sink.open()
            self.source.open()
        except DeviceError:
            self.close_devices()
            raise
        self.sink.start(prefill())
        self.source.start()
