"""The C libraries behind ``native_pulse``: their functions' types, the layout check, and their memory.

Two libraries implement one C API (``native_end.h`` and the stream functions): ``LIBRARY`` talks to the
server through libpulse (PulseAudio, or PipeWire's pipewire-pulse), ``PIPEWIRE_LIBRARY`` through libpipewire
(``native_pipewire.c``). ``_EndMemory`` owns one ``rtp_end`` (a stream's ring, counters and readings in C memory) and ``NativeRing``
shows its ring to the worker through the ``SpscRing`` interface; ``native_pulse`` builds the streams on them.
"""

from __future__ import annotations

import ctypes
import weakref

import numpy as np

from rtenhance.native_abi import check_layout
from rtenhance.native_build import CLibrary, NativeUnavailable, listed_library

# Default fragments, measured on the live matrix's delay scenario (end to end over a plain loopback): libpulse
# with 5 ms fragments (a 15 ms server buffer) 45-46 ms, 40-42 ms with the cushion below, with 8 ms 46-49 ms, with
# 4 ms underflows; libpipewire asks 8 ms of node latency (the graph's quantum follows the smallest asked), 43 ms,
# with 5 ms underflows.
PULSE_FRAGMENT_MS = 5.0
PIPEWIRE_FRAGMENT_MS = 8.0
PULSE_CUSHION_FRAGMENTS = 1  # libpulse asks when its buffer (RTP_BUFFER_FRAGMENTS = 3) is down to 2 fragments: a
# write may come 1 late and leave it 1 (feed in native_pulse.c); a PipeWire cycle never waits for a late write
TIMING_SLOTS = 512  # RTP_TIMING_SLOTS: latest latency readings kept per stream
ERROR_BYTES = 256  # RTP_ERROR_BYTES
RECORD, PLAYBACK = 0, 1  # RTP_RECORD, RTP_PLAYBACK
ARRIVAL_WAIT_US = 50_000  # the worker re-checks stop and faults at least this often while waiting for input
APP_NAME = b"rtenhance"
THREAD_NAME = b"rtenhance-pulse"


class _Stats(ctypes.Structure):
    """Mirror of ``rtp_stats``: a copy of an end's counters (see ``rtp_end_stats``)."""

    _fields_ = [
        ("capacity", ctypes.c_uint64),
        ("overflows", ctypes.c_uint64),
        ("dropped_samples", ctypes.c_uint64),
        ("underflows", ctypes.c_uint64),
        ("missing_samples", ctypes.c_uint64),
        ("fragments", ctypes.c_uint64),
        ("short_fragments", ctypes.c_uint64),
        ("server_underflows", ctypes.c_uint64),
        ("last_callback_s", ctypes.c_double),
        ("latency_count", ctypes.c_uint64),
        ("gaps", ctypes.c_uint64),
        ("gap_samples", ctypes.c_uint64),
        ("failed", ctypes.c_int32),
    ]


_PTR, _U64 = ctypes.c_void_p, ctypes.c_uint64
RING_SIGNATURES = {  # short: called holding the interpreter lock (see ``_ring_functions``); only rtp_end_write
    # may wait, for the main-loop lock while the C thread dispatches a callback (it never needs Python's)
    "rtp_ring_available": ([_PTR], _U64),
    "rtp_ring_free": ([_PTR], _U64),
    "rtp_ring_write": ([_PTR, _PTR, _U64], _U64),
    "rtp_ring_read": ([_PTR, _PTR, _U64], _U64),
    "rtp_ring_reset": ([_PTR], None),
    "rtp_end_stats": ([_PTR, _PTR], None),
    "rtp_end_latencies": ([_PTR, _PTR, _U64], _U64),
    "rtp_end_depth": ([_PTR], ctypes.c_int64),
    "rtp_end_write": ([_PTR, _PTR, _U64], _U64),
    "rtp_end_error": ([_PTR, ctypes.c_char_p, ctypes.c_size_t], ctypes.c_int),
}


def _set_types(lib: ctypes.CDLL, signatures: dict[str, tuple[list[type], type | None]]) -> None:
    for name, (argtypes, restype) in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = argtypes, restype


def _declare(lib: ctypes.CDLL) -> None:
    ptr, u64 = _PTR, _U64
    _set_types(lib, RING_SIGNATURES)
    _set_types(lib, {
        "rtp_end_new": ([ctypes.c_int, u64, ctypes.c_uint32, ctypes.c_uint32], ptr),
        "rtp_end_free": ([ptr], None),
        "rtp_wait_input": ([ptr, u64, ctypes.c_int64], u64),
        "rtp_conn_open": ([ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t], ptr),
        "rtp_conn_close": ([ptr], None),
        "rtp_conn_thread_id": ([ptr], ctypes.c_long),
        "rtp_stream_open": ([ptr, ptr, ctypes.c_char_p, ctypes.c_char_p], ctypes.c_int),
        "rtp_stream_start": ([ptr], None),
        "rtp_stream_close": ([ptr], None),
    })
    check_layout(lib, "rtp_stats_layout", _Stats)


def _ring_functions(lib: ctypes.CDLL) -> ctypes.PyDLL:
    """The library again as a ``PyDLL``, for the ring and read-out functions: a ``CDLL`` call releases and
    retakes the interpreter lock, which costs a thread switch whenever another thread waits for it (the model
    thread)."""
    fast = ctypes.PyDLL(lib._name)
    _set_types(fast, RING_SIGNATURES)
    return fast


LIBRARY = listed_library("native_pulse", _declare)
PIPEWIRE_LIBRARY = listed_library("native_pipewire", _declare)


def unavailable_reason(library: CLibrary = LIBRARY) -> str | None:
    """Why a C stream library cannot be used here, or None when it can (builds it on the first call)."""
    return library.unavailable_reason()


class _EndMemory:
    """An ``rtp_end`` in C memory, freed (its stream closed first) when the last holder lets go of it.

    Its counters are read through ``stats`` (one ``_Stats`` buffer, refilled by each call).

    Args:
        direction: ``RECORD`` or ``PLAYBACK``.
        capacity: ring samples.
        rate: sample rate in Hz.
        fragment_frames: frames per fragment.
        library: the stream library whose streams will use it.

    Raises:
        NativeUnavailable: the library cannot be built or loaded, or there is no memory for the ring.
    """

    def __init__(self, direction: int, capacity: int, rate: int, fragment_frames: int,
                 library: CLibrary = LIBRARY) -> None:
        self.lib = library.load()
        self.fast = _ring_functions(self.lib)
        end = self.lib.rtp_end_new(direction, capacity, rate, fragment_frames)
        if not end:
            raise NativeUnavailable("out of memory for a stream's ring")
        self.pointer = ctypes.c_void_p(end)
        self._stats = _Stats()
        self._stats_address = ctypes.addressof(self._stats)
        self._read_stats = self.fast.rtp_end_stats
        # Freed only once no Python object refers to it, so no Python thread can be inside a call on it; the
        # C main-loop thread lets go of it in rtp_stream_close, first. Not at interpreter exit: a daemon
        # worker may still be blocked in rtp_wait_input on it then (the OS reclaims the memory).
        weakref.finalize(self, _free_end, self.lib, end).atexit = False

    def stats(self) -> _Stats:
        """The end's counters now (the same buffer each call: read the fields before the next call)."""
        self._read_stats(self.pointer, self._stats_address)
        return self._stats


def _free_end(lib: ctypes.CDLL, end: int) -> None:
    """Stop the C server thread's use of ``end`` (close its stream), then free it."""
    lib.rtp_stream_close(end)
    lib.rtp_end_free(end)


def as_float32(samples: np.ndarray) -> np.ndarray:
    """(N,) samples as contiguous float32 for a C call: the same array when it already is, else a copy."""
    if samples.dtype != np.float32 or not samples.flags.c_contiguous:
        return np.ascontiguousarray(samples, dtype=np.float32)
    return samples


class NativeRing:
    """The ``SpscRing`` interface over a ring in C memory (one end's ``rtp_ring``).

    The producer and the consumer are the C thread and the worker, one on each side.
    """

    def __init__(self, memory: _EndMemory) -> None:
        lib = memory.fast
        self._memory = memory  # keeps the C memory alive
        self._ring = memory.pointer  # the ring is the end's first member
        self._available = lib.rtp_ring_available
        self._free = lib.rtp_ring_free
        self._write = lib.rtp_ring_write
        self._read = lib.rtp_ring_read
        self._reset = lib.rtp_ring_reset
        self.capacity = int(memory.stats().capacity)

    @property
    def available(self) -> int:
        """Samples ready to read."""
        return int(self._available(self._ring))

    @property
    def free(self) -> int:
        """Samples that can be written without overflow."""
        return int(self._free(self._ring))

    @property
    def overflows(self) -> int:
        """Writes that did not fit completely."""
        return int(self._memory.stats().overflows)

    @property
    def dropped_samples(self) -> int:
        return int(self._memory.stats().dropped_samples)

    @property
    def underflows(self) -> int:
        """Reads that asked for more samples than were available."""
        return int(self._memory.stats().underflows)

    @property
    def missing_samples(self) -> int:
        return int(self._memory.stats().missing_samples)

    def write(self, samples: np.ndarray) -> int:
        """Producer: append (N,) samples; what does not fit is dropped and counted.

        Args:
            samples: (N,) float32 samples; any other dtype or layout is first copied into a new array.

        Returns:
            The number of samples written.
        """
        samples = as_float32(samples)
        return int(self._write(self._ring, samples.ctypes.data, samples.shape[0]))

    def read_into(self, out: np.ndarray) -> int:
        """Consumer: move the oldest samples into ``out``; a shortfall is counted.

        Args:
            out: (N,) contiguous float32 destination; only its first (returned) samples are written.

        Returns:
            The number of samples read, at most N.

        Raises:
            ValueError: ``out`` is not a contiguous float32 array (the C side writes it as raw memory).
        """
        if out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"read_into needs a contiguous float32 array, got {out.dtype} {out.flags.c_contiguous=}")
        return int(self._read(self._ring, out.ctypes.data, out.shape[0]))

    def reset(self) -> None:
        """Empty the ring, keeping the counters; only while the stream is not running."""
        self._reset(self._ring)
