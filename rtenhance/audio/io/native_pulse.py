"""PulseAudio capture and playback on one C main-loop thread (``native_pulse.c``), behind the engine's interface.

``NativePulseCapture`` and ``NativePulsePlayback`` show the engine what ``PulseCapture`` and
``PulsePlayback`` (``pulse_streams``) show it, but no Python thread moves audio: libpulse's asynchronous
API runs in one C thread per ``PulseConnection`` (named ``rtenhance-pulse``), which serves the capture
and the playback stream when both share it, and moves each fragment between the server and a ring in C
memory. The worker reads and writes those rings through ``NativeRing`` (the ``SpscRing`` interface) and
blocks in ``wait_input`` with the interpreter lock released until the capture ring holds a whole hop.
Counters, latency readings and errors are C11 atomics of the C end, read here through short C functions
(``rtp_end_stats``, ``rtp_end_latencies``, ``rtp_end_error``) without locking, never as struct fields; the
one struct mirrored (``_Stats``, in ``native_pulse_lib`` with the library's types and memory) is checked
against the C layout when the library loads.

The library is built on first use with the system C compiler (``rtenhance.native_build``) and linked
against libpulse.so.0; ``unavailable_reason`` says why it cannot be used (the daemon then falls back to
``pulse_streams``).
"""

from __future__ import annotations

import ctypes
import threading
import time

import numpy as np

from rtenhance.audio.io.devices import DeviceError, Endpoint
from rtenhance.audio.io.native_pulse_lib import (  # noqa: F401  (LIBRARY, _Stats, ARRIVAL_WAIT_US: for callers)
    APP_NAME, ARRIVAL_WAIT_US, ERROR_BYTES, LIBRARY, PIPEWIRE_FRAGMENT_MS, PIPEWIRE_LIBRARY, PLAYBACK,
    PULSE_CUSHION_FRAGMENTS, PULSE_FRAGMENT_MS, RECORD, THREAD_NAME, TIMING_SLOTS, NativeRing, _EndMemory, _Stats,
    as_float32, unavailable_reason,
)
from rtenhance.native_build import CLibrary
from rtenhance.audio.io.streams import FIRST_CALLBACK_GRACE_S, RING_SECONDS, RingPlayback, prime
from rtenhance.audio.realtime.thread_priority import promote_when_running

class PulseConnection:
    """One sound-server connection and its main-loop thread, shared by the streams opened on it.

    Connects when the first stream opens and disconnects when the last one closes (so a connection the
    server dropped is replaced at the next open). Used from one thread at a time (the worker's).

    Args:
        library: ``LIBRARY`` (libpulse: PulseAudio, or pipewire-pulse) or ``PIPEWIRE_LIBRARY`` (libpipewire).

    Raises:
        NativeUnavailable: the library cannot be built or loaded.
    """

    def __init__(self, library: CLibrary = LIBRARY) -> None:
        self.library = library
        self.server = "PipeWire" if library is PIPEWIRE_LIBRARY else "pulse"
        self.fragment_ms = PIPEWIRE_FRAGMENT_MS if library is PIPEWIRE_LIBRARY else PULSE_FRAGMENT_MS
        self._lib = library.load()
        self._handle: int | None = None
        self._users = 0
        self._lock = threading.Lock()

    def acquire(self) -> int:
        """The connection's handle, connecting first if no stream uses it.

        Raises:
            DeviceError: no sound server.
        """
        with self._lock:
            if self._handle is None:
                error = ctypes.create_string_buffer(ERROR_BYTES)
                handle = self._lib.rtp_conn_open(APP_NAME, THREAD_NAME, error, ERROR_BYTES)
                if not handle:
                    raise DeviceError(f"{self.server}: {error.value.decode(errors='replace')}")
                self._handle = handle
            self._users += 1
            return self._handle

    @property
    def thread_id(self) -> int:
        """The kernel id of the thread that moves the audio, 0 while not connected."""
        with self._lock:
            return int(self._lib.rtp_conn_thread_id(self._handle)) if self._handle is not None else 0

    def release(self) -> None:
        """A stream no longer uses the connection; the last one disconnects it."""
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._handle is not None:
                handle, self._handle = self._handle, None
                self._lib.rtp_conn_close(handle)


class _NativeStream:
    """What capture and playback share: the C end, open/start/close, latency readings and faults.

    Args:
        endpoint: a ``pulse`` endpoint (``pulse_name`` None means the server's default device).
        fragment_ms: frames moved per server round trip, in ms; 0 for the connection's default (5 ms through
            libpulse, 8 ms through libpipewire).
        connection: the connection to open the stream on; None for one of its own.

    Raises:
        NativeUnavailable: the library cannot be built or loaded.
    """

    direction: int
    stream_name: bytes
    device = True

    def __init__(self, endpoint: Endpoint, fragment_ms: float = 0.0, connection: PulseConnection | None = None) -> None:
        self.endpoint = endpoint
        self.rate = endpoint.sample_rate
        self.channels = 1
        self._connection = connection or PulseConnection()
        self.fragment_frames = max(1, round((fragment_ms or self._connection.fragment_ms) * self.rate / 1e3))
        memory = _EndMemory(self.direction, int(RING_SECONDS * self.rate), self.rate, self.fragment_frames,
                            self._connection.library)
        self._memory, self._lib, self._end = memory, memory.lib, memory.pointer
        self._latencies = np.zeros(TIMING_SLOTS, dtype=np.float64)  # (TIMING_SLOTS,) s, copied from C
        self._read_latencies, self._read_error = memory.fast.rtp_end_latencies, memory.fast.rtp_end_error
        self._read_depth = memory.fast.rtp_end_depth
        self._error_buffer = ctypes.create_string_buffer(ERROR_BYTES)
        self.ring = NativeRing(memory)
        self._open = False
        self._started = 0.0  # time.monotonic() at start

    @property
    def status_flags(self) -> int:
        """Xruns the server reported beyond the ring's own counters: playback underflows of the server
        (capture has none: a fragment the ring could not take is a ring overflow)."""
        return int(self._memory.stats().server_underflows) if self.direction == PLAYBACK else 0

    @property
    def gap_samples(self) -> int:
        """Samples of graph cycles PipeWire ran without this stream (see pipewire_cycles.h), written to the
        ring as silence (capture) or only counted (playback); 0 on PulseAudio."""
        return int(self._memory.stats().gap_samples)

    @property
    def callbacks(self) -> int:
        """Fragments moved since start."""
        return int(self._memory.stats().fragments)

    def open(self) -> None:
        """Connect (if this stream's connection is not yet) and open the server-side stream.

        Raises:
            DeviceError: no server or no such device.
        """
        if self._open:
            return
        handle = self._connection.acquire()
        device = self.endpoint.pulse_name.encode() if self.endpoint.pulse_name else None
        if self._lib.rtp_stream_open(handle, self._end, device, self.stream_name) < 0:
            self._connection.release()
            kind = "record" if self.direction == RECORD else "playback"
            raise DeviceError(f"pulse {kind} stream on {self.endpoint.pulse_name or 'the default device'}: "
                              f"{self._error()}")
        self._open = True

    def _error(self) -> str:
        """Why the stream broke ("" when it did not)."""
        self._read_error(self._end, self._error_buffer, ERROR_BYTES)
        return self._error_buffer.value.decode(errors="replace")

    def start(self, prefill: int = 0) -> None:
        """Empty the ring, put ``prefill`` samples of silence in it, and start moving audio."""
        prime(self.ring, prefill)
        self._started = time.monotonic()
        self._lib.rtp_stream_start(self._end)
        promote_when_running(lambda: self._connection.thread_id, "audio I/O")

    def device_latency_s(self) -> float:
        """Server-side latency: the median of the readings taken after each fragment, in s."""
        n = int(self._read_latencies(self._end, self._latencies.ctypes.data, TIMING_SLOTS))
        return float(np.median(self._latencies[:n])) if n else 0.0

    def fault(self, stall_s: float) -> str | None:
        """Why the stream is no longer usable, or None."""
        if not self._open:
            return "not open"
        stats = self._memory.stats()
        if stats.failed:
            return f"{self.endpoint.direction} stream: {self._error()}"
        now = time.monotonic()
        silent = now - max(stats.last_callback_s, self._started)
        # an idle null sink takes its first 2 s block before it asks for more: no stall verdict during start-up
        starting = now - self._started < FIRST_CALLBACK_GRACE_S
        if silent > (max(stall_s, FIRST_CALLBACK_GRACE_S) if starting else stall_s):
            return f"{self.endpoint.direction} device delivered no audio for {silent:.1f} s"
        return None

    def close(self) -> None:
        """Stop and disconnect the stream (idempotent); the ring and counters stay readable."""
        if self._open:
            self._open = False
            self._lib.rtp_stream_close(self._end)
            self._connection.release()


class NativePulseCapture(_NativeStream):
    """Mono capture from a PulseAudio source into ``ring``."""

    direction = RECORD
    stream_name = b"rtenhance capture"

    def __init__(self, endpoint: Endpoint, fragment_ms: float = 0.0, connection: PulseConnection | None = None) -> None:
        super().__init__(endpoint, fragment_ms, connection)
        self._wait = self._lib.rtp_wait_input

    def pump(self) -> None:
        """The C thread fills the ring: nothing to do."""

    def wait_input(self, samples: int, expected_s: float) -> None:
        """Block until the ring holds ``samples`` samples (at most ``ARRIVAL_WAIT_US``, whatever ``expected_s``)."""
        self._wait(self._end, samples, ARRIVAL_WAIT_US)

    @property
    def exhausted(self) -> bool:
        """A device never runs out of input."""
        return False


class NativePulsePlayback(_NativeStream, RingPlayback):
    """Mono playback of ``ring`` to a PulseAudio sink or a PipeWire graph.

    Through libpulse the server asks for audio a fragment at a time and gets what the ring holds; what the
    ring lacked is owed and goes over with the next ``write`` (``rtp_end_write``), so ``depth_samples`` can
    fall below 0 while the server's own buffer still plays: ``cushion_s`` says how far. A PipeWire cycle
    plays silence for what the ring lacks (``cushion_s`` 0).
    """

    direction = PLAYBACK
    stream_name = b"rtenhance playback"

    def __init__(self, endpoint: Endpoint, fragment_ms: float = 0.0, connection: PulseConnection | None = None) -> None:
        super().__init__(endpoint, fragment_ms, connection)
        self._write_end = self._memory.fast.rtp_end_write
        waits = self._connection.library is not PIPEWIRE_LIBRARY
        self.cushion_s = PULSE_CUSHION_FRAGMENTS * self.fragment_frames / self.rate if waits else 0.0

    @property
    def server_underflows(self) -> int:
        """Times the server ran out of this stream's audio since start while the ring had given all it was
        asked for (not when the ring ran dry: that is the ring's underflow)."""
        return int(self._memory.stats().server_underflows)

    def write(self, samples: np.ndarray) -> None:
        """Queue (N,) float32 samples, handing the server at once what it is owed."""
        samples = as_float32(samples)
        self._write_end(self._end, samples.ctypes.data, samples.shape[0])

    def depth_samples(self) -> int:
        """Samples queued, less the part of the fragment the device took last that has played since (the
        server takes a fragment at a time: see ``rtp_end_depth``), less what the server is owed: 0 when the
        device would find the ring short, below 0 while the server waits for a late write."""
        return int(self._read_depth(self._end))
