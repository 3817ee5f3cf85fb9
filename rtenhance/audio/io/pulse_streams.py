"""PulseAudio capture and playback behind the same rings as the PortAudio streams, with less CPU.

The fallback for ``native_pulse`` (which moves the audio of both streams on one C thread, at about a
third of this CPU) where that library cannot be built, and what ``audio.pulse_io: simple`` selects.

Each stream has one I/O thread that blocks in libpulse-simple (``pulse_simple``), moving one fragment
per wake-up between the server and a preallocated ring; it never allocates sample buffers, logs or
raises on the audio path (a broken stream ends the thread and is reported by ``fault``). The capture
thread also sets ``arrived`` once the ring holds what the worker waits for (a whole hop), so the worker
wakes once per hop instead of polling. Both streams are mono: the server mixes the device's channels down on capture and up on
playback.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod

import numpy as np

from rtenhance.audio.io.devices import DeviceError, Endpoint
from rtenhance.audio.io.pulse_simple import SimpleStream, StreamError
from rtenhance.audio.io.ring import SpscRing
from rtenhance.audio.io.streams import FIRST_CALLBACK_GRACE_S, RING_SECONDS, CallbackLatency, RingPlayback, prime

FRAGMENT_MS = 8.0  # default fragment: the server wakes each I/O thread 125 times a second
PLAYBACK_QUEUE_FRAGMENTS = 1  # playback keeps about this much queued in the server (its latency)...
PLAYBACK_BUFFER_FRAGMENTS = 3  # ...below a server buffer this large, so that a write never waits for room
CLOSE_TIMEOUT_S = 1.0  # how long close() waits for an I/O thread stuck in the server
ARRIVAL_WAIT_S = 0.05  # the worker re-checks stop and faults at least this often while waiting for input


class _PulseStream(ABC):
    """What capture and playback share: the connection, the I/O thread, latency readings and faults.

    Args:
        endpoint: a ``pulse`` endpoint (``pulse_name`` None means the server's default device).
        fragment_ms: frames moved per wake-up, in ms; 0 for ``FRAGMENT_MS``.
    """

    direction: str
    device = True

    def __init__(self, endpoint: Endpoint, fragment_ms: float = 0.0) -> None:
        self.endpoint = endpoint
        self.rate = endpoint.sample_rate
        self.channels = 1
        self.ring = SpscRing(int(RING_SECONDS * self.rate))
        self.latency = CallbackLatency()
        self.status_flags = 0  # xruns the server reported (libpulse-simple reports none; the ring counts its own)
        self.gap_samples = 0  # a blocking stream misses no server cycle
        self.callbacks = 0  # fragments moved since start
        self.fragment = np.zeros(max(1, round((fragment_ms or FRAGMENT_MS) * self.rate / 1e3)), dtype=np.float32)
        self._stream: SimpleStream | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: str | None = None
        self._started = 0.0  # time.monotonic() at start

    @abstractmethod
    def _connect(self) -> SimpleStream:
        """Open the server-side stream."""

    def open(self) -> None:
        """Connect to the server (the I/O thread starts with ``start``).

        Raises:
            DeviceError: no server or no such device.
        """
        self._stream = self._connect()

    def start(self, prefill: int = 0) -> None:
        """Empty the ring, put ``prefill`` samples of silence in it, and start the I/O thread."""
        prime(self.ring, prefill)
        self.latency = CallbackLatency()
        self.callbacks = 0
        self._error = None
        self._started = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=f"rtenhance-pulse-{self.direction}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        stream = self._stream
        assert stream is not None
        try:
            self._prepare(stream)
            while not self._stop.is_set():
                self._move(stream)
                self.latency.last_callback = time.monotonic()
                self.callbacks += 1
        except StreamError as exc:
            self._error = str(exc)

    def _prepare(self, stream: SimpleStream) -> None:
        """Called once on the I/O thread before the first fragment."""

    @abstractmethod
    def _move(self, stream: SimpleStream) -> None:
        """Move one fragment between the ring and the server (blocks until the server is ready)."""

    def device_latency_s(self) -> float:
        """Server-side latency: the median of the readings taken after each fragment."""
        return self.latency.median() or 0.0

    def fault(self, stall_s: float) -> str | None:
        """Why the stream is no longer usable, or None."""
        if self._stream is None:
            return "not open"
        if self._error is not None:
            return f"{self.endpoint.direction} stream: {self._error}"
        if self._thread is None or not self._thread.is_alive():
            return f"{self.endpoint.direction} stream stopped"
        now = time.monotonic()
        silent = now - max(self.latency.last_callback, self._started)
        # an idle null sink takes its first 2 s block before it asks for more: no stall verdict during start-up
        starting = now - self._started < FIRST_CALLBACK_GRACE_S
        if silent > (max(stall_s, FIRST_CALLBACK_GRACE_S) if starting else stall_s):
            return f"{self.endpoint.direction} device delivered no audio for {silent:.1f} s"
        return None

    def close(self) -> None:
        """Stop the I/O thread and disconnect (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(CLOSE_TIMEOUT_S)
        stream, self._stream = self._stream, None
        if stream is not None and not (thread is not None and thread.is_alive()):
            stream.close()  # a thread still blocked in the server keeps its stream (freed with the process)


class PulseCapture(_PulseStream):
    """Mono capture from a PulseAudio source into ``ring``; ``arrived`` is set once it holds ``wanted`` samples."""

    direction = "record"

    def __init__(self, endpoint: Endpoint, fragment_ms: float = 0.0) -> None:
        super().__init__(endpoint, fragment_ms)
        self.arrived = threading.Event()
        self.wanted = 1  # samples the worker waits for (set by wait_input)

    def _connect(self) -> SimpleStream:
        return SimpleStream("record", self.endpoint.pulse_name, self.rate, 1, self.fragment.shape[0],
                            stream_name="rtenhance capture")

    def _prepare(self, stream: SimpleStream) -> None:
        stream.flush()  # audio captured between open and start is stale

    def _move(self, stream: SimpleStream) -> None:
        stream.read_into(self.fragment)
        self.ring.write(self.fragment)  # a shortfall is counted by the ring
        # age of the fragment's middle sample when it enters the ring
        self.latency.add(stream.latency_s() + 0.5 * self.fragment.shape[0] / self.rate)
        if self.ring.available >= self.wanted:
            self.arrived.set()

    def pump(self) -> None:
        """The I/O thread fills the ring: nothing to do."""

    def wait_input(self, samples: int, expected_s: float) -> None:
        """Sleep until the ring holds ``samples`` samples (at most ``ARRIVAL_WAIT_S``, whatever ``expected_s``)."""
        self.wanted = samples
        self.arrived.clear()
        if self.ring.available < samples:
            self.arrived.wait(ARRIVAL_WAIT_S)

    @property
    def exhausted(self) -> bool:
        """A device never runs out of input."""
        return False


class PulsePlayback(_PulseStream, RingPlayback):
    """Mono playback of ``ring`` to a PulseAudio sink; silence when the ring runs dry."""

    direction = "playback"

    def _connect(self) -> SimpleStream:
        frames = self.fragment.shape[0]
        stream = SimpleStream("playback", self.endpoint.pulse_name, self.rate, 1, frames,
                              PLAYBACK_BUFFER_FRAGMENTS * frames, stream_name="rtenhance playback")
        # play one fragment of silence to the end: a sink that was idle (a null sink renders its first block
        # of up to 2 s before it follows its streams' latency) is running when this returns, so the engine
        # does not queue up seconds of audio behind it at start
        self.fragment[:] = 0.0
        try:
            stream.write(self.fragment)
            stream.drain()
        except StreamError as exc:
            stream.close()
            raise DeviceError(f"pulse playback on {self.endpoint.pulse_name or 'the default sink'}: {exc}") from None
        return stream

    def _move(self, stream: SimpleStream) -> None:
        n = self.ring.read_into(self.fragment)  # a shortfall is counted by the ring
        if n < self.fragment.shape[0]:
            self.fragment[n:] = 0.0
        stream.write(self.fragment)
        queued_s = stream.latency_s()
        fragment_s = self.fragment.shape[0] / self.rate
        # time from leaving the ring to the speaker, for the fragment's middle sample
        self.latency.add(queued_s - 0.5 * fragment_s)
        # a write into a nearly full buffer would trickle in as the server frees a few bytes at a time, waking
        # this thread for each: sleep instead until the queue is back to its target (at most one fragment:
        # a sink that reports a long latency, such as an idle null sink, is still fed at the stream's rate)
        # (time.sleep, not Event.wait: no lock is allocated per fragment; close() waits at most one fragment)
        time.sleep(min(fragment_s, max(0.0, queued_s - PLAYBACK_QUEUE_FRAGMENTS * fragment_s)))
