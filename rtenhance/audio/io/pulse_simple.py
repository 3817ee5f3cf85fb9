"""A typed ctypes binding of libpulse-simple: one blocking PulseAudio record or playback stream.

The simple API runs its own PulseAudio main-loop thread and wakes its caller once per fragment, which
costs a fraction of what PortAudio's ALSA ``pulse`` plugin spends on the same stream (see
``bench/daemon_cpu.py``). ``read_into`` and ``write`` block and release the GIL while they wait. One
``SimpleStream`` must only be used from one thread at a time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from rtenhance.audio.io.devices import DeviceError

PA_SAMPLE_FLOAT32LE = 5  # pa_sample_format_t
PA_STREAM_PLAYBACK = 1  # pa_stream_direction_t
PA_STREAM_RECORD = 2
DEFAULT_ATTR = 0xFFFFFFFF  # (uint32_t) -1: let the server choose
BYTES_PER_SAMPLE = 4  # float32
APP_NAME = b"rtenhance"


class _SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class _BufferAttr(ctypes.Structure):
    _fields_ = [
        ("maxlength", ctypes.c_uint32),
        ("tlength", ctypes.c_uint32),
        ("prebuf", ctypes.c_uint32),
        ("minreq", ctypes.c_uint32),
        ("fragsize", ctypes.c_uint32),
    ]


@lru_cache(maxsize=1)
def _library() -> Any:
    """libpulse-simple with argument types declared.

    Raises:
        DeviceError: the library is not installed.
    """
    name = ctypes.util.find_library("pulse-simple") or "libpulse-simple.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        raise DeviceError("libpulse-simple is not installed (Debian package libpulse0)") from None
    err = ctypes.POINTER(ctypes.c_int)
    lib.pa_simple_new.restype = ctypes.c_void_p
    lib.pa_simple_new.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                                  ctypes.POINTER(_SampleSpec), ctypes.c_void_p, ctypes.POINTER(_BufferAttr), err]
    lib.pa_simple_read.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, err]
    lib.pa_simple_write.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, err]
    lib.pa_simple_flush.argtypes = [ctypes.c_void_p, err]
    lib.pa_simple_drain.argtypes = [ctypes.c_void_p, err]
    lib.pa_simple_get_latency.restype = ctypes.c_uint64
    lib.pa_simple_get_latency.argtypes = [ctypes.c_void_p, err]
    lib.pa_simple_free.argtypes = [ctypes.c_void_p]
    lib.pa_strerror.restype = ctypes.c_char_p
    lib.pa_strerror.argtypes = [ctypes.c_int]
    return lib


class StreamError(RuntimeError):
    """A read, write or query on an open stream failed (the server went away, the device was removed)."""


class SimpleStream:
    """One connected PulseAudio stream of interleaved float32 frames.

    Args:
        direction: "record" (from a source) or "playback" (to a sink).
        device: source or sink name; None for the server's default.
        rate: sample rate in Hz.
        channels: channels per frame (the server remixes to and from the device's layout).
        fragment_frames: record: frames per delivered fragment; playback: the server requests more
            audio in pieces of this size.
        buffer_frames: playback only: the server-side buffer target (tlength) in frames.
        stream_name: the name shown in the sound server's stream list.

    Raises:
        DeviceError: no server, no such device, or the server refused the format.
    """

    def __init__(
        self,
        direction: Literal["record", "playback"],
        device: str | None,
        rate: int,
        channels: int,
        fragment_frames: int,
        buffer_frames: int = 0,
        stream_name: str = "rtenhance",
    ) -> None:
        self._lib = _library()
        self.frame_bytes = BYTES_PER_SAMPLE * channels
        spec = _SampleSpec(PA_SAMPLE_FLOAT32LE, rate, channels)
        if direction == "record":
            attr = _BufferAttr(DEFAULT_ATTR, DEFAULT_ATTR, DEFAULT_ATTR, DEFAULT_ATTR, fragment_frames * self.frame_bytes)
        else:
            attr = _BufferAttr(DEFAULT_ATTR, buffer_frames * self.frame_bytes, DEFAULT_ATTR,
                               fragment_frames * self.frame_bytes, DEFAULT_ATTR)
        err = ctypes.c_int(0)
        kind = PA_STREAM_RECORD if direction == "record" else PA_STREAM_PLAYBACK
        handle = self._lib.pa_simple_new(None, APP_NAME, kind, device.encode() if device else None,
                                         stream_name.encode(), ctypes.byref(spec), None, ctypes.byref(attr),
                                         ctypes.byref(err))
        if not handle:
            raise DeviceError(f"pulse {direction} stream on {device or 'the default device'}: {self._message(err)}")
        self._handle: int | None = handle
        self._err = err
        self._err_ref = ctypes.byref(err)  # made once: the per-fragment calls allocate nothing for it

    def _message(self, err: ctypes.c_int) -> str:
        return (self._lib.pa_strerror(err.value) or b"unknown error").decode(errors="replace")

    def _check(self, status: int, what: str) -> None:
        if status < 0:
            raise StreamError(f"pulse {what} failed: {self._message(self._err)}")

    def read_into(self, buffer: np.ndarray) -> None:
        """Fill ``buffer`` (contiguous float32, whole frames) with the next captured frames; blocks.

        Raises:
            StreamError: the stream broke.
        """
        self._check(self._lib.pa_simple_read(self._handle, buffer.ctypes.data, buffer.nbytes, self._err_ref),
                    "read")

    def write(self, buffer: np.ndarray) -> None:
        """Queue ``buffer`` (contiguous float32, whole frames) for playback; blocks while the server buffer is full.

        Raises:
            StreamError: the stream broke.
        """
        self._check(self._lib.pa_simple_write(self._handle, buffer.ctypes.data, buffer.nbytes, self._err_ref),
                    "write")

    def flush(self) -> None:
        """Drop what is buffered (record: captured but unread; playback: queued but unplayed).

        Raises:
            StreamError: the stream broke.
        """
        self._check(self._lib.pa_simple_flush(self._handle, self._err_ref), "flush")

    def drain(self) -> None:
        """Playback: block until everything written so far has been played.

        Raises:
            StreamError: the stream broke.
        """
        self._check(self._lib.pa_simple_drain(self._handle, self._err_ref), "drain")

    def latency_s(self) -> float:
        """Record: age of the next frame to be read; playback: time until the last written frame plays.

        Raises:
            StreamError: the stream broke.
        """
        micros = self._lib.pa_simple_get_latency(self._handle, self._err_ref)
        if micros == 2**64 - 1:
            self._check(-1, "latency query")
        return micros / 1e6

    def close(self) -> None:
        """Disconnect (idempotent). Must not run while another thread is inside a call on this stream."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            self._lib.pa_simple_free(handle)
