"""PulseAudio / PipeWire-pulse control through ``pactl``: devices, modules, and the presence-watch interface.

Audio itself is streamed by ``native_pulse`` (or ``pulse_streams``); ``pactl`` is only used to look devices
up and to load and unload the virtual microphone's modules. A named device disappearing must not go
unnoticed (the server would move our streams to its default device): ``PresenceWatch`` says so, from
libpulse subscribe events (``native_watch``), else by polling ``pactl`` (``PollingWatch``).
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

PACTL_TIMEOUT_S = 5.0
WATCH_POLL_S = 0.5  # how often PollingWatch lists the devices
_SPEC = re.compile(r"(\d+)ch\s+(\d+)Hz")


class PulseError(OSError):
    """``pactl`` is missing, cannot reach the server, or refused a command."""


@dataclass(frozen=True)
class PulseDevice:
    """A sink or source as ``pactl list short`` shows it."""

    name: str
    channels: int
    rate: int


def pactl(*args: str) -> str:
    """Run ``pactl ARGS`` and return its standard output.

    Raises:
        PulseError: pactl is not installed, timed out or failed (the message carries its error).
    """
    try:
        done = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=PACTL_TIMEOUT_S)
    except FileNotFoundError:
        raise PulseError("pactl not found (install pulseaudio-utils)") from None
    except subprocess.TimeoutExpired:
        raise PulseError(f"pactl {' '.join(args)}: no answer from the sound server") from None
    if done.returncode != 0:
        reason = (done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}").splitlines()[0]
        raise PulseError(f"pactl {' '.join(args)}: {reason}")
    return done.stdout


def list_devices(kind: str) -> dict[str, PulseDevice]:
    """Sinks or sources of the server by name.

    Args:
        kind: "sinks" or "sources".
    """
    devices = {}
    for line in pactl("list", "short", kind).splitlines():
        fields = line.split("\t")
        if len(fields) < 4:
            continue
        spec = _SPEC.search(fields[3])
        channels, rate = (int(spec.group(1)), int(spec.group(2))) if spec else (2, 48000)
        devices[fields[1]] = PulseDevice(fields[1], channels, rate)
    return devices


def default_device(kind: str) -> PulseDevice | None:
    """The server's default sink or source, or None when no sound server answers or it has none.

    Args:
        kind: "sinks" or "sources".
    """
    key = "Default Sink: " if kind == "sinks" else "Default Source: "
    try:
        name = next((line[len(key) :].strip() for line in pactl("info").splitlines() if line.startswith(key)), "")
        return list_devices(kind).get(name)
    except PulseError:
        return None


def on_pipewire() -> bool:
    """Whether the sound server is PipeWire (its pipewire-pulse answers ``pactl info``); False when no
    server answers."""
    try:
        info = pactl("info")
    except PulseError:
        return False
    return any(line.startswith("Server Name:") and "PipeWire" in line for line in info.splitlines())


def load_module(name: str, *args: str) -> int:
    """Load a server module; returns its index."""
    return int(pactl("load-module", name, *args).strip())


def unload_module(index: int) -> None:
    """Unload a server module by index."""
    pactl("unload-module", str(index))


def modules_with_arguments(*arguments: str) -> list[int]:
    """Indices of loaded modules whose argument string contains one of ``arguments`` as a whole word,
    ordered by the first argument they contain (one ``pactl`` call)."""
    found: list[list[int]] = [[] for _ in arguments]
    for line in pactl("list", "short", "modules").splitlines():
        fields = line.split("\t")
        words = fields[2].split() if len(fields) >= 3 else []
        which = next((k for k, argument in enumerate(arguments) if argument in words), None)
        if which is not None:
            found[which].append(int(fields[0]))
    return [index for group in found for index in group]


def gone_message(kind: str, name: str) -> str:
    """What a watch reports when sink or source ``name`` is not there.

    Args:
        kind: "sinks" or "sources".
        name: the device.
    """
    return f"pulse {kind[:-1]} {name!r} is gone"


def unreachable_message(reason: str) -> str:
    """What a watch reports when the sound server does not answer."""
    return f"the sound server does not answer ({reason})"


def report_change(reported: str | None, missing: str | None) -> str | None:
    """Log ``missing`` (a watch's verdict after a refresh) when it is new; returns what is now reported."""
    if missing and missing != reported:
        log.warning("device watch: %s", missing)
    return missing


class PresenceWatch(Protocol):
    """Whether the named sinks and sources the streams use exist (``native_watch.NativeWatch``, else
    ``PollingWatch``).

    ``missing`` is read by the worker each loop: a reason (a device gone, the server unreachable), or
    None when every named device exists. ``refresh`` asks the server again and waits for the answer, and
    logs a new reason; a watch built with a ``restore`` hook calls it there when the server answers but
    a device is missing.
    """

    @property
    def missing(self) -> str | None: ...

    def start(self) -> None: ...

    def refresh(self) -> None: ...

    def stop(self) -> None: ...


class PollingWatch:
    """``PresenceWatch`` from ``pactl list short`` every ``WATCH_POLL_S`` (the fallback when the libpulse
    watch cannot be built): no long-lived child process, and a restarted server is simply asked again.

    Args:
        sinks: sink names to watch.
        sources: source names to watch.
        restore: called by ``refresh`` (never by the polling thread) when the server answers but a
            device is missing; may raise ``DeviceError``.
    """

    def __init__(self, sinks: tuple[str, ...], sources: tuple[str, ...],
                 restore: Callable[[], None] | None = None) -> None:
        self._wanted = {"sinks": sinks, "sources": sources}
        self._restore = restore
        self.missing: str | None = None
        self._reported: str | None = None
        self._reachable = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Check once, then poll in a daemon thread."""
        self._check()
        self._thread = threading.Thread(target=self._poll, name="rtenhance-pulse-watch", daemon=True)
        self._thread.start()

    def refresh(self) -> None:
        """Re-read the device lists; when the server answers but a device is missing, call ``restore``
        and read them again.

        Raises:
            DeviceError: ``restore`` failed.
        """
        self._check()
        self._reported = report_change(self._reported, self.missing)
        if self._restore is not None and self._reachable and self.missing:
            self._restore()
            self._check()

    def _check(self) -> None:
        missing = None
        try:
            for kind, names in self._wanted.items():
                if names:
                    present = list_devices(kind)
                    missing = missing or next((gone_message(kind, n) for n in names if n not in present), None)
            self._reachable = True
        except PulseError as exc:
            missing, self._reachable = unreachable_message(str(exc)), False
        self.missing = missing

    def _poll(self) -> None:
        while not self._stop.wait(WATCH_POLL_S):
            self._check()

    def stop(self) -> None:
        """End the polling thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=PACTL_TIMEOUT_S)
            self._thread = None
