"""Presence of named sinks and sources from libpulse subscribe events (``native_watch.c``).

``NativeWatch`` is the ``PresenceWatch`` the daemon uses: a libpulse connection of its own on a C
main-loop thread (named ``rtenhance-watch``), subscribed to sink and source events, that reconnects by
itself after the sound server restarts and dies with the process (no ``pactl`` child to leave behind).
``missing`` reads the C fields without locking or calling into C, so the worker may read it every loop.

``start_watch`` builds it, or ``pulse.PollingWatch`` when the library cannot be built here.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable

from rtenhance.audio.io.pulse import PollingWatch, PresenceWatch, gone_message, report_change, unreachable_message
from rtenhance.native_abi import check_layout
from rtenhance.native_build import NativeUnavailable, listed_library

log = logging.getLogger(__name__)

MAX_NAMES = 8  # RTW_MAX_NAMES
ERROR_BYTES = 256  # RTW_ERROR_BYTES
SINK, SOURCE = 0, 1  # RTW_SINK, RTW_SOURCE
REFRESH_TIMEOUT_US = 2_000_000  # ``refresh`` waits this long for the server's answers
APP_NAME = b"rtenhance watch"
THREAD_NAME = b"rtenhance-watch"


class _Head(ctypes.Structure):
    """Mirror of ``rtw_head``, the public head of ``rtw_watch`` (checked through ``rtw_head_layout`` at load)."""

    _fields_ = [
        ("connected", ctypes.c_int32),
        ("count", ctypes.c_int32),
        ("connects", ctypes.c_uint64),
        ("events", ctypes.c_uint64),
        ("answered", ctypes.c_uint64),
        ("present", ctypes.c_int32 * MAX_NAMES),
        ("error", ctypes.c_char * ERROR_BYTES),
    ]


def _declare(lib: ctypes.CDLL) -> None:
    signatures: dict[str, tuple[list[type], type | None]] = {
        "rtw_open": ([ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p),
                      ctypes.POINTER(ctypes.c_int), ctypes.c_int], ctypes.c_void_p),
        "rtw_refresh": ([ctypes.c_void_p, ctypes.c_int64], ctypes.c_int),
        "rtw_close": ([ctypes.c_void_p], None),
    }
    for name, (argtypes, restype) in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = argtypes, restype
    check_layout(lib, "rtw_head_layout", _Head)


LIBRARY = listed_library("native_watch", _declare)


class NativeWatch:
    """Tracks whether named sinks and sources exist, on a libpulse connection that survives server restarts.

    Args:
        sinks: sink names to watch.
        sources: source names to watch.
        restore: called by ``refresh`` when the server answers but a watched device is missing (the
            virtual microphone recreates its modules); may raise ``DeviceError``.

    Raises:
        NativeUnavailable: the library cannot be built or loaded here.
        ValueError: more than ``MAX_NAMES`` names.
    """

    def __init__(self, sinks: tuple[str, ...], sources: tuple[str, ...],
                 restore: Callable[[], None] | None = None) -> None:
        self._lib = LIBRARY.load()
        self._kinds = [SINK] * len(sinks) + [SOURCE] * len(sources)
        self._names = [*sinks, *sources]
        if len(self._names) > MAX_NAMES:
            raise ValueError(f"at most {MAX_NAMES} devices can be watched, got {len(self._names)}")
        self._gone = [gone_message("sinks" if kind == SINK else "sources", name)
                      for kind, name in zip(self._kinds, self._names)]
        self._restore = restore
        self._handle: int | None = None
        self._head: _Head | None = None
        self._lock = threading.Lock()  # ``stop`` waits for a ``refresh`` in progress (at most its timeouts)
        self._reported: str | None = None

    def start(self) -> None:
        """Connect (in the background), then ask for every device once and wait for the answers."""
        count = len(self._names)
        names = (ctypes.c_char_p * count)(*[name.encode() for name in self._names])
        kinds = (ctypes.c_int * count)(*self._kinds)
        handle = self._lib.rtw_open(APP_NAME, THREAD_NAME, names, kinds, count)
        if not handle:
            raise NativeUnavailable("cannot start the device watch (out of memory)")
        self._handle = handle
        self._head = _Head.from_address(handle)
        self._lib.rtw_refresh(handle, REFRESH_TIMEOUT_US)

    @property
    def connected(self) -> bool:
        """Whether the watch's connection to the sound server is up."""
        return self._head is not None and bool(self._head.connected)

    @property
    def connects(self) -> int:
        """Connections made so far: one more after each server restart the watch has followed."""
        return int(self._head.connects) if self._head is not None else 0

    @property
    def missing(self) -> str | None:
        """Why the watched devices are not all usable (server unreachable, a device gone), or None."""
        head = self._head
        if head is None:
            return "the device watch is not running"
        if not head.connected:
            return unreachable_message(head.error.decode(errors="replace"))
        present = head.present
        for i, gone in enumerate(self._gone):
            if not present[i]:
                return gone
        return None

    def refresh(self) -> None:
        """Ask the server again (reconnecting first if it was lost) and wait for the answers, and log a
        new reason for ``missing``; when the server answers but a device is missing, call ``restore`` and
        ask again.

        Raises:
            DeviceError: ``restore`` failed.
        """
        with self._lock:
            if self._handle is None:
                return
            self._lib.rtw_refresh(self._handle, REFRESH_TIMEOUT_US)
            self._reported = report_change(self._reported, self.missing)
            if self._restore is not None and self.connected and self.missing:
                self._restore()
                self._lib.rtw_refresh(self._handle, REFRESH_TIMEOUT_US)

    def stop(self) -> None:
        """Disconnect and end the main-loop thread (idempotent)."""
        with self._lock:
            handle, self._handle, self._head = self._handle, None, None
            if handle is not None:
                self._lib.rtw_close(handle)


def start_watch(sinks: tuple[str, ...], sources: tuple[str, ...],
                restore: Callable[[], None] | None = None) -> PresenceWatch:
    """A started watch of these devices: ``NativeWatch``, else ``PollingWatch`` (with a warning).

    Args:
        sinks: sink names.
        sources: source names.
        restore: see ``NativeWatch``.
    """
    watch: PresenceWatch
    try:
        watch = NativeWatch(sinks, sources, restore)
        watch.start()
    except NativeUnavailable as exc:
        log.warning("device presence polled with pactl (the libpulse watch is unavailable: %s)", exc)
        watch = PollingWatch(sinks, sources, restore)
        watch.start()
    return watch
