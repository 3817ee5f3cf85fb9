"""PulseAudio / PipeWire-pulse control through ``pactl``: devices, modules, and a presence watch.

Audio itself is streamed by ``pulse_streams`` (libpulse-simple); ``pactl`` is only used to look devices up,
to load and unload the virtual microphone's modules, and to notice a named device disappearing (the
server then moves our streams to its default device, which must not go unnoticed).
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)

PACTL_TIMEOUT_S = 5.0
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


def load_module(name: str, *args: str) -> int:
    """Load a server module; returns its index."""
    return int(pactl("load-module", name, *args).strip())


def unload_module(index: int) -> None:
    """Unload a server module by index."""
    pactl("unload-module", str(index))


def modules_with_argument(argument: str) -> list[int]:
    """Indices of loaded modules whose argument string contains ``argument`` as a whole word."""
    found = []
    for line in pactl("list", "short", "modules").splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and argument in fields[2].split():
            found.append(int(fields[0]))
    return found


class PresenceWatch:
    """Tracks whether named sinks/sources exist, from ``pactl subscribe`` events.

    ``missing`` is read by the worker each loop (a plain attribute read); the watch thread updates it
    whenever the server reports a sink or source being added or removed.
    """

    def __init__(self, sinks: tuple[str, ...], sources: tuple[str, ...]) -> None:
        self._wanted = {"sinks": sinks, "sources": sources}
        self.missing: str | None = None
        self._process: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Check once, then follow the server's events in a daemon thread."""
        self.refresh()
        try:
            self._process = subprocess.Popen(
                ["pactl", "subscribe"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
        except FileNotFoundError:
            log.debug("pactl not found: device presence is not watched")
            return
        self._thread = threading.Thread(target=self._follow, name="rtenhance-pulse-watch", daemon=True)
        self._thread.start()

    def refresh(self) -> None:
        """Re-read the device lists and update ``missing`` (None when every named device exists)."""
        missing = None
        try:
            for kind, names in self._wanted.items():
                if not names:
                    continue
                present = list_devices(kind)
                missing = missing or next((f"pulse {kind[:-1]} {n!r} is gone" for n in names if n not in present), None)
        except PulseError as exc:
            missing = str(exc)
        self.missing = missing

    def _follow(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            if ("'new'" in line or "'remove'" in line) and (" sink " in line or " source " in line):
                self.refresh()

    def stop(self) -> None:
        """End the subscription process and its thread."""
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=PACTL_TIMEOUT_S)
            self._process = None
        if self._thread is not None:
            self._thread.join(timeout=PACTL_TIMEOUT_S)
            self._thread = None
